//! Test support: [`FakeRoot`] builds a fake host (`/proc`, `/sys`) in a temporary directory.
//! `FakeRoot::healthy()` is a fully tuned 4-CPU NVMe host on which every check passes; tests
//! then overwrite or remove single files to make one check warn, fail or go missing.
//! Compiled for tests only; must never be used against the live root.

use std::fs;
use std::path::{Path, PathBuf};

use crate::host::HostRoot;
use crate::probe::ProbeRequest;

/// The data directory of the healthy fake host.
pub const FAKE_DATA_DIR: &str = "/var/lib/rmq/store";

/// The sysfs directory of the healthy fake host's NVMe disk.
pub const FAKE_DISK_DIR: &str = "/sys/devices/pci0000:00/0000:00:04.0/nvme/nvme0/nvme0n1";

/// A fake host root in a temporary directory, removed on drop.
pub struct FakeRoot {
    dir: tempfile::TempDir,
}

impl FakeRoot {
    /// An empty root: every check reads "not available".
    pub fn empty() -> FakeRoot {
        FakeRoot {
            dir: tempfile::tempdir().expect("temp dir for the fake root"),
        }
    }

    /// A host on which every check passes.
    pub fn healthy() -> FakeRoot {
        let fake = FakeRoot::empty();
        for (key, value) in HEALTHY_SYSCTLS {
            fake.sysctl(key, value);
        }
        fake.file(
            "/proc/self/limits",
            "Limit                     Soft Limit           Hard Limit           Units\n\
             Max open files            655350               655350               files\n\
             Max locked memory         unlimited            unlimited            bytes\n",
        );
        fake.file("/proc/1/comm", "systemd\n");
        fake.file(
            "/sys/kernel/mm/transparent_hugepage/enabled",
            "always [madvise] never\n",
        );
        fake.file(
            "/sys/kernel/mm/transparent_hugepage/defrag",
            "always defer defer+madvise [madvise] never\n",
        );
        fake.file("/sys/devices/system/cpu/online", "0-3\n");
        fake.file("/sys/devices/system/cpu/isolated", "1-3\n");
        fake.file("/sys/devices/system/cpu/nohz_full", "1-3\n");
        for cpu in 0..4 {
            let path = format!("/sys/devices/system/cpu/cpu{cpu}/cpufreq/scaling_governor");
            fake.file(&path, "performance\n");
        }
        fake.dir("/sys/devices/system/node/node0");
        fake.file("/sys/devices/system/node/online", "0\n");
        fake.file(
            "/proc/self/mountinfo",
            "21 1 259:1 / / rw,relatime shared:1 - xfs /dev/nvme0n1p1 rw,attr2\n\
             35 21 259:2 / /var/lib/rmq rw,noatime shared:9 - ext4 /dev/nvme0n1p2 rw,data=ordered\n\
             40 21 0:40 / /run rw,nosuid - tmpfs tmpfs rw,mode=755\n",
        );
        fake.dir(FAKE_DATA_DIR);
        for (attribute, value) in [
            ("scheduler", "[none] mq-deadline kyber\n"),
            ("rotational", "0\n"),
            ("nr_requests", "1023\n"),
            ("read_ahead_kb", "128\n"),
            ("logical_block_size", "512\n"),
        ] {
            fake.file(&format!("{FAKE_DISK_DIR}/queue/{attribute}"), value);
        }
        for partition in ["nvme0n1p1", "nvme0n1p2"] {
            fake.file(&format!("{FAKE_DISK_DIR}/{partition}/partition"), "1\n");
        }
        let disk_target = "../../devices/pci0000:00/0000:00:04.0/nvme/nvme0/nvme0n1";
        fake.symlink("/sys/dev/block/259:1", &format!("{disk_target}/nvme0n1p1"));
        fake.symlink("/sys/dev/block/259:2", &format!("{disk_target}/nvme0n1p2"));
        fake
    }

    /// The root as a host reader.
    pub fn host(&self) -> HostRoot {
        HostRoot::new(self.dir.path()).expect("fake root is a directory")
    }

    /// The root directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A probe request for the fake data directory.
    pub fn request(&self) -> ProbeRequest {
        ProbeRequest {
            data_dir: Some(PathBuf::from(FAKE_DATA_DIR)),
            pid: None,
        }
    }

    fn under(&self, host_path: &str) -> PathBuf {
        self.dir.path().join(host_path.trim_start_matches('/'))
    }

    /// Writes a file, creating its parents.
    pub fn file(&self, host_path: &str, contents: &str) -> &FakeRoot {
        let path = self.under(host_path);
        fs::create_dir_all(path.parent().expect("host paths have a parent")).expect("mkdir");
        fs::write(&path, contents).expect("write fake file");
        self
    }

    /// Writes `/proc/sys/<key with dots as slashes>`.
    pub fn sysctl(&self, key: &str, value: &str) -> &FakeRoot {
        self.file(&crate::probe::sysctl_path(key), &format!("{value}\n"))
    }

    /// Creates a directory and its parents.
    pub fn dir(&self, host_path: &str) -> &FakeRoot {
        fs::create_dir_all(self.under(host_path)).expect("mkdir");
        self
    }

    /// Creates a symlink (targets are relative, as in sysfs).
    pub fn symlink(&self, host_path: &str, target: &str) -> &FakeRoot {
        let link = self.under(host_path);
        fs::create_dir_all(link.parent().expect("host paths have a parent")).expect("mkdir");
        std::os::unix::fs::symlink(target, &link).expect("symlink");
        self
    }

    /// Removes a file, symlink or whole directory.
    pub fn remove(&self, host_path: &str) -> &FakeRoot {
        let path = self.under(host_path);
        let metadata = fs::symlink_metadata(&path).expect("path to remove exists");
        if metadata.is_dir() {
            fs::remove_dir_all(&path).expect("remove dir");
        } else {
            fs::remove_file(&path).expect("remove file");
        }
        self
    }
}

/// Sysctl values of the healthy fake host, each meeting its check's recommendation.
const HEALTHY_SYSCTLS: &[(&str, &str)] = &[
    ("vm.swappiness", "1"),
    ("vm.dirty_ratio", "20"),
    ("vm.dirty_background_ratio", "5"),
    ("vm.max_map_count", "655360"),
    ("vm.overcommit_memory", "1"),
    ("vm.zone_reclaim_mode", "0"),
    ("net.core.somaxconn", "4096"),
    ("net.core.netdev_max_backlog", "16384"),
    ("net.core.rmem_max", "16777216"),
    ("net.core.wmem_max", "16777216"),
    ("net.ipv4.tcp_rmem", "4096\t131072\t16777216"),
    ("net.ipv4.tcp_wmem", "4096\t16384\t16777216"),
    ("net.ipv4.tcp_max_syn_backlog", "8192"),
    ("net.ipv4.tcp_tw_reuse", "1"),
    ("net.ipv4.ip_local_port_range", "32768\t60999"),
    ("net.ipv4.ip_local_reserved_ports", ""),
    ("net.ipv4.tcp_slow_start_after_idle", "0"),
    ("fs.file-max", "9223372036854775807"),
    ("fs.nr_open", "1048576"),
    ("fs.aio-max-nr", "1048576"),
    ("kernel.io_uring_disabled", "0"),
    ("kernel.osrelease", "6.8.0-45-generic"),
    ("kernel.numa_balancing", "0"),
];
