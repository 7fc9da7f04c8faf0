//! Pure parsers for the text formats of `/proc` and `/sys`: numbers, bracketed selections
//! (`always [madvise] never`), CPU lists (`0-3,8`), `/proc/<pid>/limits`, `/proc/self/mountinfo`,
//! port ranges and kernel releases.
//! Must never touch the filesystem and never panic on malformed input (they return `None`).

use std::path::{Path, PathBuf};

use serde::Serialize;

/// Largest CPU or NUMA node number accepted in a list: the kernel's `NR_CPUS` ceiling is 8192,
/// so a range past it is corrupt input, not a machine, and is rejected before allocating.
pub const CPU_NUMBER_MAX: u32 = 8191;

/// Parses a decimal unsigned number, ignoring surrounding whitespace.
pub fn parse_u64(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

/// The selected word of a sysfs choice file: `always [madvise] never` gives `madvise`. A file
/// holding a single bare word (a device with only `none`) gives that word.
pub fn parse_selected(text: &str) -> Option<&str> {
    let mut words = text.split_whitespace();
    for word in words.clone() {
        if let Some(inner) = word
            .strip_prefix('[')
            .and_then(|rest| rest.strip_suffix(']'))
        {
            return Some(inner);
        }
    }
    let only = words.next()?;
    match words.next() {
        None => Some(only),
        Some(_) => None,
    }
}

/// Parses a kernel CPU list (`0-3,8,10-11`; empty means no CPUs) into sorted numbers.
pub fn parse_cpu_list(text: &str) -> Option<Vec<u32>> {
    let mut cpus = Vec::new();
    for part in text.trim().split(',').filter(|part| !part.is_empty()) {
        let (first, last) = match part.split_once('-') {
            Some((first, last)) => (first.trim().parse().ok()?, last.trim().parse().ok()?),
            None => {
                let single: u32 = part.trim().parse().ok()?;
                (single, single)
            }
        };
        if first > last || last > CPU_NUMBER_MAX {
            return None;
        }
        cpus.extend(first..=last);
    }
    cpus.sort_unstable();
    cpus.dedup();
    Some(cpus)
}

/// Formats sorted numbers back into the compact kernel list form (`0-3,8`).
pub fn format_cpu_list(cpus: &[u32]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut index = 0;
    while index < cpus.len() {
        let first = cpus[index];
        let mut last = first;
        while index + 1 < cpus.len() && cpus[index + 1] == last + 1 {
            index += 1;
            last = cpus[index];
        }
        if first == last {
            parts.push(first.to_string());
        } else {
            parts.push(format!("{first}-{last}"));
        }
        index += 1;
    }
    parts.join(",")
}

/// One resource limit value: a number or `unlimited` (`RLIM_INFINITY`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitValue {
    /// A finite limit.
    Finite(u64),
    /// No limit.
    Unlimited,
}

impl LimitValue {
    /// True if the limit is at least `needed`.
    pub fn at_least(self, needed: u64) -> bool {
        match self {
            LimitValue::Finite(value) => value >= needed,
            LimitValue::Unlimited => true,
        }
    }

    fn parse(word: &str) -> Option<LimitValue> {
        if word == "unlimited" {
            return Some(LimitValue::Unlimited);
        }
        word.parse().ok().map(LimitValue::Finite)
    }
}

impl std::fmt::Display for LimitValue {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LimitValue::Finite(value) => write!(formatter, "{value}"),
            LimitValue::Unlimited => formatter.write_str("unlimited"),
        }
    }
}

/// Soft and hard value of one resource limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Rlimit {
    /// The limit in force (what `ulimit -n` prints).
    pub soft: LimitValue,
    /// The ceiling an unprivileged process may raise its soft limit to.
    pub hard: LimitValue,
}

/// The resource limits the checker cares about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ProcessLimits {
    /// `RLIMIT_NOFILE`: open file descriptors (sockets + segment files).
    pub nofile: Rlimit,
    /// `RLIMIT_MEMLOCK`, in bytes: io_uring rings and registered buffers.
    pub memlock: Rlimit,
}

/// Parses the text of `/proc/<pid>/limits`.
pub fn parse_limits(text: &str) -> Option<ProcessLimits> {
    Some(ProcessLimits {
        nofile: limits_row(text, "Max open files")?,
        memlock: limits_row(text, "Max locked memory")?,
    })
}

fn limits_row(text: &str, name: &str) -> Option<Rlimit> {
    let line = text.lines().find(|line| line.starts_with(name))?;
    let mut words = line[name.len()..].split_whitespace();
    let soft = LimitValue::parse(words.next()?)?;
    let hard = LimitValue::parse(words.next()?)?;
    Some(Rlimit { soft, hard })
}

/// One line of `/proc/<pid>/mountinfo`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MountEntry {
    /// Device major number (0 for virtual filesystems such as tmpfs and overlay).
    pub major: u32,
    /// Device minor number.
    pub minor: u32,
    /// Where it is mounted.
    pub mount_point: PathBuf,
    /// Per-mount options (`rw,noatime`).
    pub mount_options: Vec<String>,
    /// Filesystem type (`ext4`, `xfs`, `tmpfs`, `overlay`).
    pub fs_type: String,
    /// Mount source (`/dev/nvme0n1p1`).
    pub source: String,
    /// Per-superblock options (`rw,errors=remount-ro,data=ordered`).
    pub super_options: Vec<String>,
}

/// Parses `/proc/<pid>/mountinfo`; malformed lines are skipped.
pub fn parse_mountinfo(text: &str) -> Vec<MountEntry> {
    text.lines().filter_map(parse_mountinfo_line).collect()
}

fn parse_mountinfo_line(line: &str) -> Option<MountEntry> {
    // Fields: id parent major:minor root mount_point options [optional...] - fstype source super
    let (head, tail) = line.split_once(" - ")?;
    let mut head_fields = head.split(' ');
    let _mount_id = head_fields.next()?;
    let _parent_id = head_fields.next()?;
    let (major, minor) = head_fields.next()?.split_once(':')?;
    let _root = head_fields.next()?;
    let mount_point = unescape_mount_field(head_fields.next()?);
    let mount_options = split_options(head_fields.next()?);
    let mut tail_fields = tail.split(' ');
    let fs_type = tail_fields.next()?.to_string();
    let source = unescape_mount_field(tail_fields.next()?);
    let super_options = split_options(tail_fields.next().unwrap_or(""));
    Some(MountEntry {
        major: major.parse().ok()?,
        minor: minor.parse().ok()?,
        mount_point: PathBuf::from(mount_point),
        mount_options,
        fs_type,
        source,
        super_options,
    })
}

fn split_options(text: &str) -> Vec<String> {
    text.split(',')
        .filter(|option| !option.is_empty())
        .map(str::to_string)
        .collect()
}

/// Undoes the kernel's octal escaping of space, tab, newline and backslash (`\040`).
fn unescape_mount_field(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let escaped = bytes.get(index + 1..index + 4).filter(|digits| {
            bytes[index] == b'\\' && digits.iter().all(|digit| (b'0'..=b'7').contains(digit))
        });
        match escaped {
            Some(digits) => {
                let value = digits
                    .iter()
                    .fold(0u32, |acc, digit| acc * 8 + u32::from(digit - b'0'));
                out.push(u8::try_from(value).unwrap_or(b'?'));
                index += 4;
            }
            None => {
                out.push(bytes[index]);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The mount holding `path`: the longest mount point that is a prefix of it; among equal mount
/// points the last one listed wins, because a later mount on the same point hides earlier ones.
pub fn find_mount<'a>(mounts: &'a [MountEntry], path: &Path) -> Option<&'a MountEntry> {
    let mut best: Option<&MountEntry> = None;
    for mount in mounts
        .iter()
        .filter(|mount| path.starts_with(&mount.mount_point))
    {
        let depth = mount.mount_point.components().count();
        let best_depth = best.map_or(0, |best| best.mount_point.components().count());
        if best.is_none() || depth >= best_depth {
            best = Some(mount);
        }
    }
    best
}

/// Parses `net.ipv4.ip_local_port_range` (`32768\t60999`).
pub fn parse_port_range(text: &str) -> Option<(u16, u16)> {
    let mut words = text.split_whitespace();
    let first = words.next()?.parse().ok()?;
    let last = words.next()?.parse().ok()?;
    if words.next().is_some() || first > last {
        return None;
    }
    Some((first, last))
}

/// Parses `net.ipv4.ip_local_reserved_ports` (`9876,10909-10912`; empty means none).
pub fn parse_port_list(text: &str) -> Option<Vec<(u16, u16)>> {
    let mut ranges = Vec::new();
    for part in text.trim().split(',').filter(|part| !part.is_empty()) {
        let range = match part.split_once('-') {
            Some((first, last)) => (first.trim().parse().ok()?, last.trim().parse().ok()?),
            None => {
                let single: u16 = part.trim().parse().ok()?;
                (single, single)
            }
        };
        if range.0 > range.1 {
            return None;
        }
        ranges.push(range);
    }
    Some(ranges)
}

/// Parses a `min default max` triple (`net.ipv4.tcp_rmem`).
pub fn parse_triple(text: &str) -> Option<[u64; 3]> {
    let mut words = text.split_whitespace();
    let triple = [
        words.next()?.parse().ok()?,
        words.next()?.parse().ok()?,
        words.next()?.parse().ok()?,
    ];
    match words.next() {
        None => Some(triple),
        Some(_) => None,
    }
}

/// `(major, minor)` of a kernel release string (`6.18.44-fc-v595` gives `(6, 18)`).
pub fn parse_kernel_release(text: &str) -> Option<(u32, u32)> {
    let mut numbers = text.trim().split(|c: char| !c.is_ascii_digit());
    let major = numbers.next()?.parse().ok()?;
    let minor = numbers.next()?.parse().ok()?;
    Some((major, minor))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selected_word_of_choice_files() {
        assert_eq!(parse_selected("always [madvise] never"), Some("madvise"));
        assert_eq!(parse_selected("[none] mq-deadline kyber bfq"), Some("none"));
        assert_eq!(parse_selected("none"), Some("none"));
        assert_eq!(parse_selected("none mq-deadline"), None);
        assert_eq!(parse_selected(""), None);
    }

    #[test]
    fn cpu_lists_round_trip_and_reject_nonsense() {
        assert_eq!(
            parse_cpu_list("0-3,8,10-11"),
            Some(vec![0, 1, 2, 3, 8, 10, 11])
        );
        assert_eq!(parse_cpu_list(""), Some(vec![]));
        assert_eq!(parse_cpu_list("\n"), Some(vec![]));
        assert_eq!(parse_cpu_list("3-1"), None);
        assert_eq!(parse_cpu_list("0-4294967295"), None);
        assert_eq!(parse_cpu_list("x"), None);
        assert_eq!(format_cpu_list(&[0, 1, 2, 3, 8, 10, 11]), "0-3,8,10-11");
        assert_eq!(format_cpu_list(&[]), "");
    }

    #[test]
    fn limits_file_is_parsed_including_unlimited() {
        let text = "Limit                     Soft Limit           Hard Limit           Units\n\
                    Max open files            20000                40000                files\n\
                    Max locked memory         unlimited            unlimited            bytes\n";
        let limits = parse_limits(text).expect("parses");
        assert_eq!(limits.nofile.soft, LimitValue::Finite(20000));
        assert_eq!(limits.nofile.hard, LimitValue::Finite(40000));
        assert_eq!(limits.memlock.soft, LimitValue::Unlimited);
        assert!(LimitValue::Unlimited.at_least(u64::MAX));
        assert!(!LimitValue::Finite(1).at_least(2));
        assert_eq!(
            parse_limits("Max open files 1 2\n"),
            None,
            "memlock row missing"
        );
    }

    #[test]
    fn mountinfo_lines_with_optional_fields_and_escapes() {
        let text = "27 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw,discard\n\
                    30 27 0:27 / /var/lib/my\\040store rw,noatime - tmpfs tmpfs rw,size=4k\n\
                    garbage line\n";
        let mounts = parse_mountinfo(text);
        assert_eq!(mounts.len(), 2);
        assert_eq!((mounts[0].major, mounts[0].minor), (254, 0));
        assert_eq!(mounts[0].fs_type, "ext4");
        assert_eq!(mounts[0].source, "/dev/vda");
        assert_eq!(mounts[0].mount_options, vec!["rw", "relatime"]);
        assert_eq!(mounts[0].super_options, vec!["rw", "discard"]);
        assert_eq!(mounts[1].mount_point, PathBuf::from("/var/lib/my store"));
        let found = find_mount(&mounts, Path::new("/var/lib/my store/commitlog")).expect("found");
        assert_eq!(found.fs_type, "tmpfs");
        let root = find_mount(&mounts, Path::new("/var/lib/my")).expect("root mount");
        assert_eq!(
            root.fs_type, "ext4",
            "prefix match is by component, not by string"
        );
    }

    #[test]
    fn the_last_mount_on_the_same_point_wins() {
        let text = "1 0 8:1 / /data rw - ext4 /dev/sda1 rw\n2 1 0:40 / /data rw - tmpfs tmpfs rw\n";
        let mounts = parse_mountinfo(text);
        let found = find_mount(&mounts, Path::new("/data/x")).expect("found");
        assert_eq!(found.fs_type, "tmpfs");
    }

    #[test]
    fn ports_triples_and_kernel_releases() {
        assert_eq!(parse_port_range("32768\t60999"), Some((32768, 60999)));
        assert_eq!(parse_port_range("60999 32768"), None);
        assert_eq!(parse_port_list(""), Some(vec![]));
        assert_eq!(
            parse_port_list("9876,10909-10912"),
            Some(vec![(9876, 9876), (10909, 10912)])
        );
        assert_eq!(parse_port_list("10912-10909"), None);
        assert_eq!(
            parse_triple("4096\t131072\t33554432"),
            Some([4096, 131072, 33554432])
        );
        assert_eq!(parse_triple("4096 131072"), None);
        assert_eq!(parse_kernel_release("6.18.44-fc-v595"), Some((6, 18)));
        assert_eq!(parse_kernel_release("5.4.0-150-generic"), Some((5, 4)));
        assert_eq!(parse_kernel_release("weird"), None);
    }
}
