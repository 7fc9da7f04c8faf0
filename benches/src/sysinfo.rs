//! Facts about the machine a run happened on, for the report: CPU model and count, kernel
//! release, the filesystem holding the store directory (from `/proc/self/mountinfo`), and the
//! git commit of the checkout. Read once before a run starts, never during it. Every fact is
//! optional: a missing file or tool gives `None`, never an error. Must never change anything.

use std::path::Path;
use std::process::Command;

use serde::Serialize;

/// The machine and build a report was taken on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MachineInfo {
    /// `model name` of the first CPU in `/proc/cpuinfo`.
    pub cpu_model: Option<String>,
    /// CPUs this process may run on.
    pub cpus: usize,
    /// Kernel release (`uname -r`).
    pub kernel: Option<String>,
    /// Host name.
    pub hostname: Option<String>,
    /// `git rev-parse --short HEAD`, with `-dirty` if the tree has changes.
    pub commit: Option<String>,
    /// 1, 5 and 15 minute load averages when the facts were collected (a shared machine's
    /// noise shows here).
    pub load_average: Option<[f64; 3]>,
}

impl MachineInfo {
    /// Collects what can be found.
    #[must_use]
    pub fn collect() -> Self {
        Self {
            cpu_model: read("/proc/cpuinfo").and_then(|text| cpu_model(&text)),
            cpus: std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
            kernel: read("/proc/sys/kernel/osrelease").map(|text| text.trim().to_owned()),
            hostname: read("/proc/sys/kernel/hostname").map(|text| text.trim().to_owned()),
            commit: git_commit(),
            load_average: load_average(),
        }
    }
}

/// The 1, 5 and 15 minute load averages from `/proc/loadavg`.
#[must_use]
pub fn load_average() -> Option<[f64; 3]> {
    parse_load_average(&read("/proc/loadavg")?)
}

fn parse_load_average(text: &str) -> Option<[f64; 3]> {
    let mut fields = text.split_whitespace().map(str::parse::<f64>);
    Some([
        fields.next()?.ok()?,
        fields.next()?.ok()?,
        fields.next()?.ok()?,
    ])
}

/// The filesystem a directory lives on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FilesystemInfo {
    /// The directory asked about.
    pub path: String,
    /// Mount point that holds it.
    pub mount_point: String,
    /// Filesystem type (`ext4`, `xfs`, `tmpfs`, ...).
    pub fs_type: String,
    /// Mounted device.
    pub source: String,
    /// Mount options.
    pub options: String,
}

/// The filesystem of `dir`, from `/proc/self/mountinfo`.
#[must_use]
pub fn filesystem_of(dir: &Path) -> Option<FilesystemInfo> {
    let canonical = std::fs::canonicalize(dir).ok()?;
    let mountinfo = read("/proc/self/mountinfo")?;
    mount_of(&mountinfo, canonical.to_str()?)
}

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

fn cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key.trim() == "model name").then(|| value.trim().to_owned())
    })
}

/// The mount whose mount point is the longest prefix of `path` (a canonical absolute path).
/// Mountinfo lines: `id parent major:minor root mount_point options [optional...] - type
/// source super_options`.
fn mount_of(mountinfo: &str, path: &str) -> Option<FilesystemInfo> {
    let mut best: Option<FilesystemInfo> = None;
    for line in mountinfo.lines() {
        let (before, after) = line.split_once(" - ")?;
        let fields: Vec<&str> = before.split(' ').collect();
        let (Some(mount_point), Some(options)) = (fields.get(4), fields.get(5)) else {
            continue;
        };
        let mount_point = unescape_octal(mount_point);
        let contains = path == mount_point
            || mount_point == "/"
            || path
                .strip_prefix(mount_point.as_str())
                .is_some_and(|rest| rest.starts_with('/'));
        if !contains {
            continue;
        }
        let longer = best
            .as_ref()
            .is_none_or(|found| mount_point.len() >= found.mount_point.len());
        if longer {
            let mut tail = after.split(' ');
            best = Some(FilesystemInfo {
                path: path.to_owned(),
                mount_point,
                fs_type: tail.next().unwrap_or_default().to_owned(),
                source: tail.next().unwrap_or_default().to_owned(),
                options: (*options).to_owned(),
            });
        }
    }
    best
}

/// Mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_octal(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let digits = bytes.get(index + 1..index + 4);
        if let (b'\\', Some(digits)) = (bytes[index], digits) {
            if digits.iter().all(|digit| (b'0'..=b'7').contains(digit)) {
                let code = digits
                    .iter()
                    .fold(0_u32, |code, digit| code * 8 + u32::from(digit - b'0'));
                out.push(u8::try_from(code).unwrap_or(b'?'));
                index += 4;
                continue;
            }
        }
        out.push(bytes[index]);
        index += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn git_commit() -> Option<String> {
    let head = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .filter(|output| output.status.success())?;
    let mut commit = String::from_utf8_lossy(&head.stdout).trim().to_owned();
    let dirty = Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=no"])
        .output()
        .ok()
        .filter(|output| output.status.success())
        .is_some_and(|output| !output.stdout.is_empty());
    if dirty {
        commit.push_str("-dirty");
    }
    Some(commit)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
30 22 0:25 / /tmp rw,nosuid shared:5 - tmpfs tmpfs rw,size=1024k
31 22 259:1 / /data\\040disk rw,noatime - xfs /dev/nvme0n1 rw,attr2
32 22 0:26 / /data rw - tmpfs none rw
";

    #[test]
    fn longest_mount_prefix_wins() {
        let root = mount_of(MOUNTINFO, "/work/store").expect("root");
        assert_eq!(root.fs_type, "ext4");
        assert_eq!(root.mount_point, "/");
        let tmp = mount_of(MOUNTINFO, "/tmp/x").expect("tmp");
        assert_eq!(tmp.fs_type, "tmpfs");
        let spaced = mount_of(MOUNTINFO, "/data disk/commitlog").expect("xfs");
        assert_eq!(spaced.fs_type, "xfs");
        assert_eq!(spaced.source, "/dev/nvme0n1");
        assert_eq!(spaced.options, "rw,noatime");
        // "/tmpfoo" is not under "/tmp".
        assert_eq!(
            mount_of(MOUNTINFO, "/tmpfoo").expect("root").fs_type,
            "ext4"
        );
        assert_eq!(mount_of(MOUNTINFO, "/data").expect("data").fs_type, "tmpfs");
    }

    #[test]
    fn cpu_model_is_the_first_model_name() {
        let text = "processor\t: 0\nmodel name\t: Test CPU @ 1GHz\n\nmodel name\t: Other\n";
        assert_eq!(cpu_model(text).as_deref(), Some("Test CPU @ 1GHz"));
        assert_eq!(cpu_model("flags: x\n"), None);
    }

    #[test]
    fn load_average_parses() {
        assert_eq!(
            parse_load_average("8.75 6.48 5.67 3/120 2345\n"),
            Some([8.75, 6.48, 5.67])
        );
        assert_eq!(parse_load_average("x"), None);
    }

    #[test]
    fn collects_this_machine() {
        let info = MachineInfo::collect();
        assert!(info.cpus >= 1);
        assert!(
            info.kernel.is_some(),
            "Linux exposes /proc/sys/kernel/osrelease"
        );
        let fs = filesystem_of(Path::new(".")).expect("the current directory is mounted");
        assert!(!fs.fs_type.is_empty());
    }
}
