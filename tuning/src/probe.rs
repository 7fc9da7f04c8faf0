//! Probing: reads everything the checks need from a [`HostRoot`] into one [`Observed`] value,
//! so that evaluation is a pure function of it. Also resolves the data directory to its mount
//! (via `/proc/self/mountinfo`) and block device (via `/sys/dev/block/<major>:<minor>`).
//! Must never judge a value (that is `checks`), never write, and never fail: anything it
//! cannot read is recorded as `Missing` or `Unreadable`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::host::{HostRoot, Reading};
use crate::parse::{self, MountEntry, ProcessLimits};

/// What to probe besides the fixed set of host files.
#[derive(Clone, Debug, Default)]
pub struct ProbeRequest {
    /// The broker's store directory; its filesystem and block device are checked.
    pub data_dir: Option<PathBuf>,
    /// Read resource limits of this process (the running broker) instead of the checker's own.
    pub pid: Option<u32>,
}

/// Where the resource limits were read from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitsSource {
    /// `getrlimit(2)` of the checker process itself (live root, no `--pid`).
    Getrlimit,
    /// A `/proc/<pid>/limits` file under the root.
    File(String),
}

/// Everything read from the host, before any judgement.
#[derive(Clone, Debug, Serialize)]
pub struct Observed {
    /// Raw sysctl values by key (`vm.swappiness`).
    pub sysctls: BTreeMap<&'static str, Reading>,
    /// Resource limits (nofile, memlock).
    pub limits: Reading<ProcessLimits>,
    /// Where `limits` came from.
    pub limits_source: LimitsSource,
    /// `/sys/kernel/mm/transparent_hugepage/enabled`.
    pub thp_enabled: Reading,
    /// `/sys/kernel/mm/transparent_hugepage/defrag`.
    pub thp_defrag: Reading,
    /// `(cpu name, scaling_governor)` for every CPU that has cpufreq; `Missing` if none has.
    pub governors: Reading<Vec<(String, String)>>,
    /// Pids whose `comm` is `irqbalance`.
    pub irqbalance_pids: Reading<Vec<u32>>,
    /// NUMA node numbers from `/sys/devices/system/node`.
    pub numa_nodes: Reading<Vec<u32>>,
    /// `/sys/devices/system/cpu/online`.
    pub online_cpus: Reading<Vec<u32>>,
    /// `/sys/devices/system/cpu/isolated` (from `isolcpus=`).
    pub isolated_cpus: Reading<Vec<u32>>,
    /// `/sys/devices/system/cpu/nohz_full` (from `nohz_full=`).
    pub nohz_full_cpus: Reading<Vec<u32>>,
    /// The data directory's mount and device.
    pub data_dir: DataDirProbe,
}

/// What was found for the data directory.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum DataDirProbe {
    /// No data directory was given, so disk checks are skipped.
    NotGiven,
    /// A data directory was given but its mount could not be found.
    Unresolved {
        /// The directory as given.
        requested: PathBuf,
        /// Why it could not be resolved.
        reason: String,
    },
    /// The mount (and, if it has one, block device) holding the data directory.
    Resolved(Box<DataDir>),
}

/// The data directory's filesystem and device.
#[derive(Clone, Debug, Serialize)]
pub struct DataDir {
    /// The directory as given.
    pub requested: PathBuf,
    /// The same directory with symlinks resolved (host path).
    pub resolved: PathBuf,
    /// The mount holding it.
    pub mount: MountEntry,
    /// Its block device; `Missing` for filesystems without one (tmpfs, overlay, NFS).
    pub device: Reading<BlockDevice>,
}

/// The `queue/` attributes of the whole-disk device behind the data directory.
#[derive(Clone, Debug, Serialize)]
pub struct BlockDevice {
    /// Kernel name of the disk (`nvme0n1`, `vda`, `dm-0`): partitions are mapped to their disk.
    pub name: String,
    /// `queue/scheduler`.
    pub scheduler: Reading,
    /// `queue/rotational`.
    pub rotational: Reading,
    /// `queue/nr_requests`.
    pub nr_requests: Reading,
    /// `queue/read_ahead_kb`.
    pub read_ahead_kb: Reading,
    /// `queue/logical_block_size`.
    pub logical_block_size: Reading,
}

/// Every sysctl the checks read. A test asserts each key used by a check is listed here.
pub const SYSCTL_KEYS: &[&str] = &[
    "vm.swappiness",
    "vm.dirty_ratio",
    "vm.dirty_background_ratio",
    "vm.max_map_count",
    "vm.overcommit_memory",
    "vm.zone_reclaim_mode",
    "net.core.somaxconn",
    "net.core.netdev_max_backlog",
    "net.core.rmem_max",
    "net.core.wmem_max",
    "net.ipv4.tcp_rmem",
    "net.ipv4.tcp_wmem",
    "net.ipv4.tcp_max_syn_backlog",
    "net.ipv4.tcp_tw_reuse",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_slow_start_after_idle",
    "fs.file-max",
    "fs.nr_open",
    "fs.aio-max-nr",
    "kernel.io_uring_disabled",
    "kernel.osrelease",
    "kernel.numa_balancing",
];

/// The host path of a sysctl key: `vm.swappiness` is `/proc/sys/vm/swappiness`.
pub fn sysctl_path(key: &str) -> String {
    format!("/proc/sys/{}", key.replace('.', "/"))
}

/// Reads everything the checks need. Never fails; see [`Reading`].
pub fn observe(host: &HostRoot, request: &ProbeRequest) -> Observed {
    let sysctls = SYSCTL_KEYS
        .iter()
        .map(|key| (*key, host.read(&sysctl_path(key))))
        .collect();
    let (limits, limits_source) = read_limits(host, request.pid);
    Observed {
        sysctls,
        limits,
        limits_source,
        thp_enabled: host.read("/sys/kernel/mm/transparent_hugepage/enabled"),
        thp_defrag: host.read("/sys/kernel/mm/transparent_hugepage/defrag"),
        governors: read_governors(host),
        irqbalance_pids: find_processes(host, "irqbalance"),
        numa_nodes: read_numa_nodes(host),
        online_cpus: read_cpu_list(host, "/sys/devices/system/cpu/online"),
        isolated_cpus: read_cpu_list(host, "/sys/devices/system/cpu/isolated"),
        nohz_full_cpus: read_cpu_list(host, "/sys/devices/system/cpu/nohz_full"),
        data_dir: match &request.data_dir {
            None => DataDirProbe::NotGiven,
            Some(data_dir) => probe_data_dir(host, data_dir),
        },
    }
}

fn read_limits(host: &HostRoot, pid: Option<u32>) -> (Reading<ProcessLimits>, LimitsSource) {
    if host.is_live() && pid.is_none() {
        return (getrlimit_limits(), LimitsSource::Getrlimit);
    }
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/limits"),
        None => "/proc/self/limits".to_string(),
    };
    let reading = host
        .read(&path)
        .parse(&path, |text| parse::parse_limits(text));
    (reading, LimitsSource::File(path))
}

/// The checker's own limits through `getrlimit(2)`: what the broker inherits when it is
/// started from the same shell or unit.
fn getrlimit_limits() -> Reading<ProcessLimits> {
    match (
        getrlimit(libc::RLIMIT_NOFILE),
        getrlimit(libc::RLIMIT_MEMLOCK),
    ) {
        (Ok(nofile), Ok(memlock)) => Reading::Value(ProcessLimits { nofile, memlock }),
        (Err(error), _) | (_, Err(error)) => Reading::Unreadable(format!("getrlimit: {error}")),
    }
}

fn getrlimit(resource: libc::__rlimit_resource_t) -> std::io::Result<parse::Rlimit> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable `rlimit` that outlives the call; getrlimit only
    // writes into it and has no other memory effects.
    let status = unsafe { libc::getrlimit(resource, &mut limit) };
    if status != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let convert = |value: libc::rlim_t| {
        if value == libc::RLIM_INFINITY {
            parse::LimitValue::Unlimited
        } else {
            parse::LimitValue::Finite(value)
        }
    };
    Ok(parse::Rlimit {
        soft: convert(limit.rlim_cur),
        hard: convert(limit.rlim_max),
    })
}

fn read_cpu_list(host: &HostRoot, path: &str) -> Reading<Vec<u32>> {
    host.read(path)
        .parse(path, |text| parse::parse_cpu_list(text))
}

/// Names of the form `<prefix><number>` in a directory, as numbers (`cpu3`, `node1`).
fn numbered_entries(names: &[String], prefix: &str) -> Vec<u32> {
    let mut numbers: Vec<u32> = names
        .iter()
        .filter_map(|name| name.strip_prefix(prefix)?.parse().ok())
        .collect();
    numbers.sort_unstable();
    numbers
}

fn read_governors(host: &HostRoot) -> Reading<Vec<(String, String)>> {
    let names = match host.list("/sys/devices/system/cpu") {
        Reading::Value(names) => names,
        Reading::Missing => return Reading::Missing,
        Reading::Unreadable(why) => return Reading::Unreadable(why),
    };
    let mut governors = Vec::new();
    for cpu in numbered_entries(&names, "cpu") {
        let path = format!("/sys/devices/system/cpu/cpu{cpu}/cpufreq/scaling_governor");
        if let Reading::Value(governor) = host.read(&path) {
            governors.push((format!("cpu{cpu}"), governor));
        }
    }
    if governors.is_empty() {
        // No cpufreq driver: typical of VMs, where the hypervisor owns frequency.
        return Reading::Missing;
    }
    Reading::Value(governors)
}

fn read_numa_nodes(host: &HostRoot) -> Reading<Vec<u32>> {
    host.list("/sys/devices/system/node")
        .map(|names| numbered_entries(&names, "node"))
}

/// Pids under `/proc` whose `comm` equals `name`.
pub fn find_processes(host: &HostRoot, name: &str) -> Reading<Vec<u32>> {
    host.list("/proc").map(|entries| {
        entries
            .iter()
            .filter_map(|entry| entry.parse::<u32>().ok())
            .filter(|pid| {
                host.read(&format!("/proc/{pid}/comm"))
                    .value()
                    .map(String::as_str)
                    == Some(name)
            })
            .collect()
    })
}

fn probe_data_dir(host: &HostRoot, requested: &Path) -> DataDirProbe {
    let unresolved = |reason: String| DataDirProbe::Unresolved {
        requested: requested.to_path_buf(),
        reason,
    };
    let resolved = match resolve_existing(host, requested) {
        Ok(resolved) => resolved,
        Err(reason) => return unresolved(reason),
    };
    let mountinfo = match host.read("/proc/self/mountinfo") {
        Reading::Value(text) => text,
        Reading::Missing => return unresolved("/proc/self/mountinfo is missing".to_string()),
        Reading::Unreadable(why) => return unresolved(why),
    };
    let mounts = parse::parse_mountinfo(&mountinfo);
    let Some(mount) = parse::find_mount(&mounts, &resolved) else {
        return unresolved(format!(
            "no mount in /proc/self/mountinfo holds {}",
            resolved.display()
        ));
    };
    let device = probe_block_device(host, mount);
    DataDirProbe::Resolved(Box::new(DataDir {
        requested: requested.to_path_buf(),
        resolved,
        mount: mount.clone(),
        device,
    }))
}

/// Resolves symlinks in the data directory. A directory that does not exist yet (first start)
/// is resolved through its nearest existing ancestor, since that is where it will be created.
fn resolve_existing(host: &HostRoot, requested: &Path) -> Result<PathBuf, String> {
    let absolute = if requested.is_absolute() {
        requested.to_path_buf()
    } else if host.is_live() {
        let cwd = std::env::current_dir().map_err(|error| format!("current directory: {error}"))?;
        cwd.join(requested)
    } else {
        Path::new("/").join(requested)
    };
    let mut existing = absolute.as_path();
    let mut missing_tail: Vec<&std::ffi::OsStr> = Vec::new();
    loop {
        match host.canonical_host_path(existing) {
            Reading::Value(mut resolved) => {
                for part in missing_tail.iter().rev() {
                    resolved.push(part);
                }
                return Ok(resolved);
            }
            Reading::Unreadable(why) => return Err(why),
            Reading::Missing => {
                let (Some(parent), Some(name)) = (existing.parent(), existing.file_name()) else {
                    return Err(format!("no part of {} exists", absolute.display()));
                };
                missing_tail.push(name);
                existing = parent;
            }
        }
    }
}

fn probe_block_device(host: &HostRoot, mount: &MountEntry) -> Reading<BlockDevice> {
    let Some(disk_dir) = find_disk_dir(host, mount) else {
        return Reading::Missing;
    };
    let queue = |attribute: &str| host.read(&format!("{}/queue/{attribute}", disk_dir.display()));
    let Some(name) = disk_dir.file_name().and_then(|name| name.to_str()) else {
        return Reading::Unreadable(format!("odd device path {}", disk_dir.display()));
    };
    Reading::Value(BlockDevice {
        name: name.to_string(),
        scheduler: queue("scheduler"),
        rotational: queue("rotational"),
        nr_requests: queue("nr_requests"),
        read_ahead_kb: queue("read_ahead_kb"),
        logical_block_size: queue("logical_block_size"),
    })
}

/// The sysfs directory (host path) of the whole disk holding a mount, or `None` when the mount
/// has no block device. Tries `/sys/dev/block/<major>:<minor>` first, then the mount source
/// name under `/sys/class/block` (btrfs reports an anonymous 0:N device number).
fn find_disk_dir(host: &HostRoot, mount: &MountEntry) -> Option<PathBuf> {
    let by_number = format!("/sys/dev/block/{}:{}", mount.major, mount.minor);
    let by_name = mount
        .source
        .strip_prefix("/dev/")
        .filter(|name| !name.contains('/'))
        .map(|name| format!("/sys/class/block/{name}"));
    let candidates = [Some(by_number), by_name];
    let device_dir = candidates.iter().flatten().find_map(|candidate| {
        host.canonical_host_path(Path::new(candidate))
            .value()
            .cloned()
    })?;
    // A partition's directory holds a `partition` file; its queue lives on the parent disk.
    if host.exists(&device_dir.join("partition")) {
        return device_dir.parent().map(Path::to_path_buf);
    }
    Some(device_dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::FakeRoot;

    #[test]
    fn a_partition_maps_to_its_disk_queue() {
        let fake = FakeRoot::healthy();
        let observed = observe(&fake.host(), &fake.request());
        let DataDirProbe::Resolved(data_dir) = &observed.data_dir else {
            panic!("data dir not resolved: {:?}", observed.data_dir);
        };
        assert_eq!(data_dir.mount.mount_point, PathBuf::from("/var/lib/rmq"));
        assert_eq!(data_dir.resolved, PathBuf::from("/var/lib/rmq/store"));
        let device = data_dir.device.value().expect("device found");
        assert_eq!(device.name, "nvme0n1");
        assert_eq!(
            device.scheduler,
            Reading::Value("[none] mq-deadline kyber".to_string())
        );
    }

    #[test]
    fn a_data_dir_that_does_not_exist_yet_resolves_through_its_parent() {
        let fake = FakeRoot::healthy();
        let request = ProbeRequest {
            data_dir: Some(PathBuf::from("/var/lib/rmq/store/not/yet")),
            pid: None,
        };
        let observed = observe(&fake.host(), &request);
        let DataDirProbe::Resolved(data_dir) = &observed.data_dir else {
            panic!("data dir not resolved: {:?}", observed.data_dir);
        };
        assert_eq!(
            data_dir.resolved,
            PathBuf::from("/var/lib/rmq/store/not/yet")
        );
        assert_eq!(data_dir.mount.fs_type, "ext4");
    }

    #[test]
    fn the_whole_disk_device_is_found_without_a_partition() {
        let fake = FakeRoot::healthy();
        fake.file(
            "/proc/self/mountinfo",
            "1 0 252:0 / / rw,noatime - xfs /dev/vdb rw\n",
        );
        fake.dir("/sys/devices/virtual/block/vdb/queue");
        fake.file(
            "/sys/devices/virtual/block/vdb/queue/scheduler",
            "[mq-deadline] none",
        );
        fake.symlink("/sys/dev/block/252:0", "../../devices/virtual/block/vdb");
        let observed = observe(&fake.host(), &fake.request());
        let DataDirProbe::Resolved(data_dir) = &observed.data_dir else {
            panic!("data dir not resolved");
        };
        let device = data_dir.device.value().expect("device found");
        assert_eq!(device.name, "vdb");
        assert_eq!(
            device.scheduler.value().map(String::as_str),
            Some("[mq-deadline] none")
        );
        assert_eq!(device.rotational, Reading::Missing);
    }

    #[test]
    fn tmpfs_has_no_block_device() {
        let fake = FakeRoot::healthy();
        fake.file("/proc/self/mountinfo", "1 0 0:27 / / rw - tmpfs tmpfs rw\n");
        let observed = observe(&fake.host(), &fake.request());
        let DataDirProbe::Resolved(data_dir) = &observed.data_dir else {
            panic!("data dir not resolved");
        };
        assert_eq!(
            data_dir.device.value().map(|device| device.name.clone()),
            None
        );
    }

    #[test]
    fn limits_come_from_the_pid_file_when_asked() {
        let fake = FakeRoot::healthy();
        fake.file(
            "/proc/4242/limits",
            "Max open files 1024 4096 files\nMax locked memory 65536 65536 bytes\n",
        );
        let request = ProbeRequest {
            data_dir: None,
            pid: Some(4242),
        };
        let observed = observe(&fake.host(), &request);
        assert_eq!(
            observed.limits_source,
            LimitsSource::File("/proc/4242/limits".to_string())
        );
        let limits = observed.limits.value().expect("limits");
        assert_eq!(limits.nofile.soft, parse::LimitValue::Finite(1024));
        assert!(matches!(observed.data_dir, DataDirProbe::NotGiven));
    }

    /// On the live machine, `getrlimit` and `/proc/self/limits` describe the same process, so
    /// the syscall path and the fakeable file path must agree.
    #[test]
    fn getrlimit_agrees_with_proc_self_limits() {
        let live = HostRoot::new(Path::new("/")).expect("live root");
        let Reading::Value(text) = live.read("/proc/self/limits") else {
            panic!("this test needs /proc/self/limits");
        };
        let from_file = parse::parse_limits(&text).expect("parses");
        let from_syscall = getrlimit_limits();
        assert_eq!(from_syscall.value(), Some(&from_file));
    }

    #[test]
    fn irqbalance_is_found_by_comm() {
        let fake = FakeRoot::healthy();
        fake.file("/proc/77/comm", "irqbalance\n");
        fake.file("/proc/78/comm", "irqbalancer\n");
        assert_eq!(
            find_processes(&fake.host(), "irqbalance"),
            Reading::Value(vec![77])
        );
    }
}
