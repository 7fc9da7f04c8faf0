//! The injected filesystem: every host file the checker reads goes through [`HostRoot`], which
//! joins host paths (`/proc/sys/vm/swappiness`) under a root directory: `/` for the live
//! machine, a temporary directory holding a fake `/proc` and `/sys` in tests.
//! Must never write, never panic on a missing or unreadable file (that is a [`Reading`]), and
//! never read more than [`FILE_SIZE_MAX`] bytes of one file.

use std::fs;
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};

use serde::Serialize;

use crate::error::TuningError;

/// Largest host file read, in bytes. `/proc/self/mountinfo` on a container host with thousands
/// of mounts is the biggest legitimate input (~200 bytes a line); anything larger means the root
/// points somewhere it should not, and is reported as unreadable instead of being slurped.
pub const FILE_SIZE_MAX: u64 = 4 * 1024 * 1024;

/// The outcome of reading one thing from the host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "reading", content = "detail")]
pub enum Reading<T = String> {
    /// Read (and, for typed readings, parsed) successfully.
    Value(T),
    /// The file or directory does not exist: the kernel or hardware lacks the feature.
    Missing,
    /// It exists but could not be read or parsed; the text says why.
    Unreadable(String),
}

impl<T> Reading<T> {
    /// The value, if there is one.
    pub fn value(&self) -> Option<&T> {
        match self {
            Reading::Value(value) => Some(value),
            Reading::Missing | Reading::Unreadable(_) => None,
        }
    }

    /// Converts the value, keeping `Missing` and `Unreadable` as they are.
    pub fn map<U>(self, convert: impl FnOnce(T) -> U) -> Reading<U> {
        match self {
            Reading::Value(value) => Reading::Value(convert(value)),
            Reading::Missing => Reading::Missing,
            Reading::Unreadable(why) => Reading::Unreadable(why),
        }
    }

    /// Parses the value; a parse failure becomes `Unreadable` naming `what`.
    pub fn parse<U>(self, what: &str, parser: impl FnOnce(&T) -> Option<U>) -> Reading<U> {
        match self {
            Reading::Value(value) => match parser(&value) {
                Some(parsed) => Reading::Value(parsed),
                None => Reading::Unreadable(format!("cannot parse {what}")),
            },
            Reading::Missing => Reading::Missing,
            Reading::Unreadable(why) => Reading::Unreadable(why),
        }
    }
}

/// Read-only access to a host's `/proc` and `/sys` through a root directory.
#[derive(Clone, Debug)]
pub struct HostRoot {
    root: PathBuf,
}

impl HostRoot {
    /// Opens a root. The root must be an existing directory; it is canonicalised so that
    /// resolved paths under it can be mapped back to host paths.
    ///
    /// # Errors
    /// [`TuningError::Root`] if the root does not exist or is not a directory.
    pub fn new(root: &Path) -> Result<HostRoot, TuningError> {
        let canonical = fs::canonicalize(root).map_err(|source| TuningError::Root {
            path: root.to_path_buf(),
            source,
        })?;
        let metadata = fs::metadata(&canonical).map_err(|source| TuningError::Root {
            path: root.to_path_buf(),
            source,
        })?;
        if !metadata.is_dir() {
            let source = io::Error::new(io::ErrorKind::InvalidInput, "not a directory");
            return Err(TuningError::Root {
                path: root.to_path_buf(),
                source,
            });
        }
        assert!(
            canonical.is_absolute(),
            "canonicalize returns absolute paths"
        );
        Ok(HostRoot { root: canonical })
    }

    /// The canonical root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// True when this root is the live machine's `/`.
    pub fn is_live(&self) -> bool {
        self.root == Path::new("/")
    }

    /// Where a host path (absolute, like `/proc/sys/vm/swappiness`) lives under the root.
    /// `..` components are dropped so a host path can never climb out of the root.
    pub fn path(&self, host_path: &Path) -> PathBuf {
        let mut joined = self.root.clone();
        for component in host_path.components() {
            if let Component::Normal(part) = component {
                joined.push(part);
            }
        }
        joined
    }

    /// Maps a path under the root back to the host path it stands for, if it is under the root.
    pub fn host_path(&self, under_root: &Path) -> Option<PathBuf> {
        let relative = under_root.strip_prefix(&self.root).ok()?;
        Some(Path::new("/").join(relative))
    }

    /// Reads a small text file, trimmed of trailing whitespace.
    pub fn read(&self, host_path: &str) -> Reading {
        let path = self.path(Path::new(host_path));
        match read_capped(&path) {
            Ok(text) => Reading::Value(text.trim_end().to_string()),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Reading::Missing,
            Err(error) => Reading::Unreadable(format!("{host_path}: {error}")),
        }
    }

    /// Lists the names in a directory, sorted.
    pub fn list(&self, host_path: &str) -> Reading<Vec<String>> {
        let path = self.path(Path::new(host_path));
        let entries = match fs::read_dir(&path) {
            Ok(entries) => entries,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Reading::Missing,
            Err(error) => return Reading::Unreadable(format!("{host_path}: {error}")),
        };
        let mut names = Vec::new();
        for entry in entries {
            // An entry vanishing mid-listing (a process exiting under /proc) is normal.
            let Ok(entry) = entry else { continue };
            if let Some(name) = entry.file_name().to_str() {
                names.push(name.to_string());
            }
        }
        names.sort();
        Reading::Value(names)
    }

    /// Resolves symlinks of a host path under the root and returns the host path it points to.
    /// Used to follow `/sys/dev/block/<major>:<minor>` to the device directory.
    pub fn canonical_host_path(&self, host_path: &Path) -> Reading<PathBuf> {
        match fs::canonicalize(self.path(host_path)) {
            Ok(resolved) => match self.host_path(&resolved) {
                Some(host) => Reading::Value(host),
                None => Reading::Unreadable(format!(
                    "{} resolves outside the root to {}",
                    host_path.display(),
                    resolved.display()
                )),
            },
            Err(error) if error.kind() == io::ErrorKind::NotFound => Reading::Missing,
            Err(error) => Reading::Unreadable(format!("{}: {error}", host_path.display())),
        }
    }

    /// True if the host path exists under the root.
    pub fn exists(&self, host_path: &Path) -> bool {
        self.path(host_path).exists()
    }
}

fn read_capped(path: &Path) -> io::Result<String> {
    let file = fs::File::open(path)?;
    let mut text = String::new();
    // Read one byte past the cap so an oversized file is detected rather than truncated.
    let read = file.take(FILE_SIZE_MAX + 1).read_to_string(&mut text)?;
    if read as u64 > FILE_SIZE_MAX {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than {FILE_SIZE_MAX} bytes"),
        ));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_trimmed_values_and_reports_missing_files() {
        let dir = tempfile::tempdir().expect("temp dir");
        fs::create_dir_all(dir.path().join("proc/sys/vm")).expect("mkdir");
        fs::write(dir.path().join("proc/sys/vm/swappiness"), "60\n").expect("write");
        let host = HostRoot::new(dir.path()).expect("root");
        assert!(!host.is_live());
        assert_eq!(
            host.read("/proc/sys/vm/swappiness"),
            Reading::Value("60".to_string())
        );
        assert_eq!(host.read("/proc/sys/vm/nope"), Reading::Missing);
        assert_eq!(
            host.list("/proc/sys"),
            Reading::Value(vec!["vm".to_string()])
        );
        assert_eq!(host.list("/sys"), Reading::Missing);
    }

    #[test]
    fn host_paths_never_climb_out_of_the_root() {
        let dir = tempfile::tempdir().expect("temp dir");
        let host = HostRoot::new(dir.path()).expect("root");
        let joined = host.path(Path::new("/proc/../../etc/passwd"));
        assert!(joined.starts_with(host.root()));
        assert_eq!(
            host.host_path(&joined),
            Some(PathBuf::from("/proc/etc/passwd"))
        );
    }

    #[test]
    fn a_root_that_is_not_a_directory_is_an_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("file");
        fs::write(&file, "x").expect("write");
        assert!(matches!(
            HostRoot::new(&file),
            Err(TuningError::Root { .. })
        ));
        assert!(matches!(
            HostRoot::new(&dir.path().join("absent")),
            Err(TuningError::Root { .. })
        ));
    }

    #[test]
    fn oversized_files_are_unreadable_not_slurped() {
        let dir = tempfile::tempdir().expect("temp dir");
        let big = vec![b'x'; usize::try_from(FILE_SIZE_MAX).expect("fits") + 1];
        fs::write(dir.path().join("big"), big).expect("write");
        let host = HostRoot::new(dir.path()).expect("root");
        assert!(matches!(host.read("/big"), Reading::Unreadable(why) if why.contains("larger")));
    }

    #[test]
    fn the_live_root_is_recognised() {
        let host = HostRoot::new(Path::new("/")).expect("live root");
        assert!(host.is_live());
        assert_eq!(
            host.path(Path::new("/proc/sys")),
            PathBuf::from("/proc/sys")
        );
    }
}
