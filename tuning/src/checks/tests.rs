//! Every check against a fake root: the healthy host passes it, each listed edit makes it warn
//! or fail (or report INFO for advisory checks), and removing what it reads makes it "not
//! available". A test also proves every catalog id has a case here.

use std::collections::BTreeSet;

use super::*;
use crate::probe::{observe, SYSCTL_KEYS};
use crate::testing::{FakeRoot, FAKE_DISK_DIR};

/// One change to the healthy fake host.
#[derive(Clone, Copy, Debug)]
enum Edit {
    /// Overwrite (or create) a file.
    Write(&'static str, &'static str),
    /// Create a directory.
    Dir(&'static str),
    /// Remove a file or directory tree.
    Remove(&'static str),
}

/// Cases for one check.
struct Case {
    id: &'static str,
    /// Extra hosts (healthy + edits) on which the check still passes.
    pass: &'static [&'static [Edit]],
    /// Hosts on which it misses, with the expected status.
    bad: &'static [(&'static [Edit], Status)],
    /// Edits that take away what it reads.
    missing: Vec<Edit>,
}

macro_rules! queue_file {
    ($name:literal) => {
        concat!(
            "/sys/devices/pci0000:00/0000:00:04.0/nvme/nvme0/nvme0n1/queue/",
            $name
        )
    };
}

const MOUNTINFO: &str = "/proc/self/mountinfo";
const THP_ENABLED: &str = "/sys/kernel/mm/transparent_hugepage/enabled";
const PORT_RANGE: &str = "/proc/sys/net/ipv4/ip_local_port_range";
const NOFILE_1024: &str = concat!(
    "Max open files 1024 4096 files\n",
    "Max locked memory unlimited unlimited bytes\n"
);
const NOFILE_65536: &str = concat!(
    "Max open files 65536 65536 files\n",
    "Max locked memory unlimited unlimited bytes\n"
);

/// The healthy mounts with the store mount's type and options replaced.
macro_rules! store_mount {
    ($options:literal, $fs_and_source:literal, $super_options:literal) => {
        concat!(
            "21 1 259:1 / / rw,relatime - xfs /dev/nvme0n1p1 rw\n35 21 259:2 / /var/lib/rmq ",
            $options,
            " - ",
            $fs_and_source,
            " ",
            $super_options,
            "\n"
        )
    };
}

const GOVERNOR_CPU2: &str = "/sys/devices/system/cpu/cpu2/cpufreq/scaling_governor";

const CPUFREQ_GONE: &[Edit] = &[
    Edit::Remove("/sys/devices/system/cpu/cpu0/cpufreq"),
    Edit::Remove("/sys/devices/system/cpu/cpu1/cpufreq"),
    Edit::Remove("/sys/devices/system/cpu/cpu2/cpufreq"),
    Edit::Remove("/sys/devices/system/cpu/cpu3/cpufreq"),
];

fn sysctl_case(
    id: &'static str,
    path: &'static str,
    bad: &'static [(&'static [Edit], Status)],
) -> (
    &'static str,
    &'static str,
    &'static [(&'static [Edit], Status)],
) {
    (id, path, bad)
}

/// Cases for checks that read exactly one sysctl: (id, path, bad hosts).
fn simple_sysctl_cases() -> Vec<Case> {
    let table = [
        sysctl_case(
            "kernel.osrelease",
            "/proc/sys/kernel/osrelease",
            &[(
                &[Edit::Write(
                    "/proc/sys/kernel/osrelease",
                    "5.15.0-91-generic",
                )],
                Status::Warn,
            )],
        ),
        sysctl_case(
            "vm.swappiness",
            "/proc/sys/vm/swappiness",
            &[(
                &[Edit::Write("/proc/sys/vm/swappiness", "60")],
                Status::Warn,
            )],
        ),
        sysctl_case(
            "vm.zone_reclaim_mode",
            "/proc/sys/vm/zone_reclaim_mode",
            &[(
                &[Edit::Write("/proc/sys/vm/zone_reclaim_mode", "1")],
                Status::Warn,
            )],
        ),
        sysctl_case(
            "vm.dirty_ratio",
            "/proc/sys/vm/dirty_ratio",
            &[(
                &[Edit::Write("/proc/sys/vm/dirty_ratio", "50")],
                Status::Warn,
            )],
        ),
        sysctl_case(
            "vm.dirty_background_ratio",
            "/proc/sys/vm/dirty_background_ratio",
            &[(
                &[Edit::Write("/proc/sys/vm/dirty_background_ratio", "50")],
                Status::Warn,
            )],
        ),
        sysctl_case(
            "vm.max_map_count",
            "/proc/sys/vm/max_map_count",
            &[(
                &[Edit::Write("/proc/sys/vm/max_map_count", "65530")],
                Status::Info,
            )],
        ),
        sysctl_case(
            "vm.overcommit_memory",
            "/proc/sys/vm/overcommit_memory",
            &[(
                &[Edit::Write("/proc/sys/vm/overcommit_memory", "2")],
                Status::Warn,
            )],
        ),
        sysctl_case(
            "net.core.somaxconn",
            "/proc/sys/net/core/somaxconn",
            &[(
                &[Edit::Write("/proc/sys/net/core/somaxconn", "128")],
                Status::Warn,
            )],
        ),
        sysctl_case(
            "net.ipv4.tcp_max_syn_backlog",
            "/proc/sys/net/ipv4/tcp_max_syn_backlog",
            &[(
                &[Edit::Write(
                    "/proc/sys/net/ipv4/tcp_max_syn_backlog",
                    "2048",
                )],
                Status::Warn,
            )],
        ),
        sysctl_case(
            "net.core.netdev_max_backlog",
            "/proc/sys/net/core/netdev_max_backlog",
            &[(
                &[Edit::Write("/proc/sys/net/core/netdev_max_backlog", "1000")],
                Status::Warn,
            )],
        ),
        sysctl_case(
            "net.ipv4.tcp_rmem",
            "/proc/sys/net/ipv4/tcp_rmem",
            &[(
                &[Edit::Write(
                    "/proc/sys/net/ipv4/tcp_rmem",
                    "4096\t131072\t6291456",
                )],
                Status::Warn,
            )],
        ),
        sysctl_case(
            "net.ipv4.tcp_wmem",
            "/proc/sys/net/ipv4/tcp_wmem",
            &[(
                &[Edit::Write(
                    "/proc/sys/net/ipv4/tcp_wmem",
                    "4096\t16384\t4194304",
                )],
                Status::Warn,
            )],
        ),
        sysctl_case(
            "net.core.rmem_max",
            "/proc/sys/net/core/rmem_max",
            &[(
                &[Edit::Write("/proc/sys/net/core/rmem_max", "212992")],
                Status::Info,
            )],
        ),
        sysctl_case(
            "net.core.wmem_max",
            "/proc/sys/net/core/wmem_max",
            &[(
                &[Edit::Write("/proc/sys/net/core/wmem_max", "212992")],
                Status::Info,
            )],
        ),
        sysctl_case(
            "net.ipv4.tcp_slow_start_after_idle",
            "/proc/sys/net/ipv4/tcp_slow_start_after_idle",
            &[(
                &[Edit::Write(
                    "/proc/sys/net/ipv4/tcp_slow_start_after_idle",
                    "1",
                )],
                Status::Warn,
            )],
        ),
        sysctl_case(
            "net.ipv4.tcp_tw_reuse",
            "/proc/sys/net/ipv4/tcp_tw_reuse",
            &[(
                &[Edit::Write("/proc/sys/net/ipv4/tcp_tw_reuse", "2")],
                Status::Info,
            )],
        ),
        sysctl_case(
            "fs.file-max",
            "/proc/sys/fs/file-max",
            &[(
                &[Edit::Write("/proc/sys/fs/file-max", "65536")],
                Status::Warn,
            )],
        ),
        sysctl_case(
            "fs.nr_open",
            "/proc/sys/fs/nr_open",
            &[(
                &[Edit::Write("/proc/sys/fs/nr_open", "65536")],
                Status::Warn,
            )],
        ),
        sysctl_case(
            "fs.aio-max-nr",
            "/proc/sys/fs/aio-max-nr",
            &[(
                &[Edit::Write("/proc/sys/fs/aio-max-nr", "65536")],
                Status::Info,
            )],
        ),
    ];
    table
        .into_iter()
        .map(|(id, path, bad)| Case {
            id,
            pass: &[],
            bad,
            missing: vec![Edit::Remove(path)],
        })
        .collect()
}

fn special_cases() -> Vec<Case> {
    vec![
        Case {
            id: "kernel.io_uring_disabled",
            pass: &[],
            bad: &[
                (
                    &[Edit::Write("/proc/sys/kernel/io_uring_disabled", "1")],
                    Status::Fail,
                ),
                (
                    &[Edit::Write("/proc/sys/kernel/io_uring_disabled", "2")],
                    Status::Fail,
                ),
            ],
            missing: vec![Edit::Remove("/proc/sys/kernel/io_uring_disabled")],
        },
        Case {
            id: "thp.enabled",
            pass: &[&[Edit::Write(THP_ENABLED, "always madvise [never]")]],
            bad: &[(
                &[Edit::Write(THP_ENABLED, "[always] madvise never")],
                Status::Warn,
            )],
            missing: vec![Edit::Remove("/sys/kernel/mm/transparent_hugepage/enabled")],
        },
        Case {
            id: "thp.defrag",
            pass: &[&[Edit::Write(
                "/sys/kernel/mm/transparent_hugepage/defrag",
                "always defer [defer+madvise] madvise never",
            )]],
            bad: &[(
                &[Edit::Write(
                    "/sys/kernel/mm/transparent_hugepage/defrag",
                    "[always] defer defer+madvise madvise never",
                )],
                Status::Warn,
            )],
            missing: vec![Edit::Remove("/sys/kernel/mm/transparent_hugepage/defrag")],
        },
        Case {
            id: "kernel.numa_balancing",
            pass: &[&[Edit::Write("/proc/sys/kernel/numa_balancing", "1")]],
            bad: &[(
                &[
                    Edit::Write("/proc/sys/kernel/numa_balancing", "1"),
                    Edit::Dir("/sys/devices/system/node/node1"),
                ],
                Status::Warn,
            )],
            missing: vec![Edit::Remove("/proc/sys/kernel/numa_balancing")],
        },
        Case {
            id: "net.ipv4.ip_local_port_range",
            pass: &[&[
                Edit::Write("/proc/sys/net/ipv4/ip_local_port_range", "1024\t65535"),
                Edit::Write(
                    "/proc/sys/net/ipv4/ip_local_reserved_ports",
                    "9876,10909-10912",
                ),
            ]],
            bad: &[
                (&[Edit::Write(PORT_RANGE, "1024\t65535")], Status::Warn),
                (&[Edit::Write(PORT_RANGE, "50000\t60000")], Status::Warn),
            ],
            missing: vec![Edit::Remove("/proc/sys/net/ipv4/ip_local_port_range")],
        },
        Case {
            id: "rlimit.nofile",
            pass: &[],
            bad: &[
                (
                    &[Edit::Write("/proc/self/limits", NOFILE_1024)],
                    Status::Fail,
                ),
                (
                    &[Edit::Write("/proc/self/limits", NOFILE_65536)],
                    Status::Warn,
                ),
            ],
            missing: vec![Edit::Remove("/proc/self/limits")],
        },
        Case {
            id: "rlimit.memlock",
            // 4 online CPUs = 4 shards = 2048 KiB.
            pass: &[&[Edit::Write(
                "/proc/self/limits",
                "Max open files 655350 655350 files\nMax locked memory 2097152 2097152 bytes\n",
            )]],
            bad: &[(
                &[Edit::Write(
                    "/proc/self/limits",
                    "Max open files 655350 655350 files\nMax locked memory 65536 65536 bytes\n",
                )],
                Status::Fail,
            )],
            missing: vec![Edit::Remove("/proc/self/limits")],
        },
        Case {
            id: "cpu.governor",
            pass: &[],
            bad: &[(&[Edit::Write(GOVERNOR_CPU2, "powersave")], Status::Warn)],
            missing: CPUFREQ_GONE.to_vec(),
        },
        Case {
            id: "cpu.irqbalance",
            pass: &[&[Edit::Write("/proc/900/comm", "irqbalancer")]],
            bad: &[(&[Edit::Write("/proc/900/comm", "irqbalance")], Status::Warn)],
            missing: vec![Edit::Remove("/proc")],
        },
        Case {
            id: "cpu.isolation",
            pass: &[],
            bad: &[(
                &[Edit::Write("/sys/devices/system/cpu/isolated", "")],
                Status::Info,
            )],
            missing: vec![Edit::Remove("/sys/devices/system/cpu/isolated")],
        },
        Case {
            id: "numa.nodes",
            pass: &[],
            bad: &[(&[Edit::Dir("/sys/devices/system/node/node1")], Status::Info)],
            missing: vec![Edit::Remove("/sys/devices/system/node")],
        },
    ]
}

fn disk_cases() -> Vec<Case> {
    vec![
        Case {
            id: "disk.data_dir",
            pass: &[],
            bad: &[],
            missing: vec![Edit::Remove(MOUNTINFO)],
        },
        Case {
            id: "disk.fs_type",
            pass: &[&[Edit::Write(
                MOUNTINFO,
                store_mount!("rw,noatime", "xfs /dev/nvme0n1p2", "rw"),
            )]],
            bad: &[
                (
                    &[Edit::Write(
                        MOUNTINFO,
                        store_mount!("rw,noatime", "tmpfs tmpfs", "rw"),
                    )],
                    Status::Fail,
                ),
                (
                    &[Edit::Write(
                        MOUNTINFO,
                        store_mount!("rw,noatime", "overlay overlay", "rw"),
                    )],
                    Status::Fail,
                ),
                (
                    &[Edit::Write(
                        MOUNTINFO,
                        store_mount!("rw,noatime", "ext4 /dev/nvme0n1p2", "rw,data=journal"),
                    )],
                    Status::Fail,
                ),
                (
                    &[Edit::Write(
                        MOUNTINFO,
                        store_mount!("rw,noatime", "btrfs /dev/nvme0n1p2", "rw"),
                    )],
                    Status::Warn,
                ),
            ],
            missing: vec![Edit::Remove(MOUNTINFO)],
        },
        Case {
            id: "disk.barrier",
            pass: &[],
            bad: &[(
                &[Edit::Write(
                    MOUNTINFO,
                    store_mount!("rw,noatime", "ext4 /dev/nvme0n1p2", "rw,nobarrier"),
                )],
                Status::Fail,
            )],
            missing: vec![Edit::Remove(MOUNTINFO)],
        },
        Case {
            id: "disk.noatime",
            pass: &[],
            bad: &[
                (
                    &[Edit::Write(
                        MOUNTINFO,
                        store_mount!("rw,relatime", "ext4 /dev/nvme0n1p2", "rw"),
                    )],
                    Status::Warn,
                ),
                (
                    &[Edit::Write(
                        MOUNTINFO,
                        store_mount!("rw", "ext4 /dev/nvme0n1p2", "rw"),
                    )],
                    Status::Warn,
                ),
            ],
            missing: vec![Edit::Remove(MOUNTINFO)],
        },
        Case {
            id: "disk.logical_block_size",
            pass: &[&[Edit::Write(queue_file!("logical_block_size"), "4096")]],
            bad: &[
                (
                    &[Edit::Write(queue_file!("logical_block_size"), "8192")],
                    Status::Warn,
                ),
                (
                    &[Edit::Write(queue_file!("logical_block_size"), "131072")],
                    Status::Fail,
                ),
            ],
            missing: vec![Edit::Remove(queue_file!("logical_block_size"))],
        },
        Case {
            id: "disk.rotational",
            pass: &[],
            bad: &[(&[Edit::Write(queue_file!("rotational"), "1")], Status::Warn)],
            missing: vec![Edit::Remove(queue_file!("rotational"))],
        },
        Case {
            id: "disk.scheduler",
            pass: &[
                &[Edit::Write(
                    queue_file!("scheduler"),
                    "none [mq-deadline] kyber",
                )],
                &[
                    Edit::Write(queue_file!("rotational"), "1"),
                    Edit::Write(queue_file!("scheduler"), "none [mq-deadline]"),
                ],
            ],
            bad: &[
                (
                    &[Edit::Write(
                        queue_file!("scheduler"),
                        "none mq-deadline [bfq]",
                    )],
                    Status::Warn,
                ),
                (
                    &[
                        Edit::Write(queue_file!("rotational"), "1"),
                        Edit::Write(queue_file!("scheduler"), "[none] mq-deadline"),
                    ],
                    Status::Warn,
                ),
            ],
            missing: vec![Edit::Remove(queue_file!("scheduler"))],
        },
        Case {
            id: "disk.nr_requests",
            pass: &[],
            bad: &[(
                &[Edit::Write(queue_file!("nr_requests"), "64")],
                Status::Info,
            )],
            missing: vec![Edit::Remove(queue_file!("nr_requests"))],
        },
        Case {
            id: "disk.read_ahead_kb",
            pass: &[],
            bad: &[(
                &[Edit::Write(queue_file!("read_ahead_kb"), "8192")],
                Status::Info,
            )],
            missing: vec![Edit::Remove(queue_file!("read_ahead_kb"))],
        },
    ]
}

fn all_cases() -> Vec<Case> {
    let mut cases = simple_sysctl_cases();
    cases.extend(special_cases());
    cases.extend(disk_cases());
    cases
}

fn apply(fake: &FakeRoot, edits: &[Edit]) {
    for edit in edits {
        match *edit {
            Edit::Write(path, contents) => {
                fake.file(path, contents);
            }
            Edit::Dir(path) => {
                fake.dir(path);
            }
            Edit::Remove(path) => {
                fake.remove(path);
            }
        }
    }
}

/// Evaluates the healthy host with `edits` applied and returns the result of check `id`.
fn result_after(edits: &[Edit], id: &str) -> CheckResult {
    let fake = FakeRoot::healthy();
    apply(&fake, edits);
    let observed = observe(&fake.host(), &fake.request());
    let context = Context::new(&observed, None).expect("shard count");
    let results = evaluate(&observed, &context);
    results
        .into_iter()
        .find(|result| result.id == id)
        .expect("check id in catalog")
}

#[test]
fn every_catalog_check_has_cases_and_ids_are_unique() {
    let catalog: BTreeSet<&str> = CATALOG.iter().map(|check| check.id).collect();
    assert_eq!(catalog.len(), CATALOG.len(), "duplicate check id");
    let cases = all_cases();
    let covered: BTreeSet<&str> = cases.iter().map(|case| case.id).collect();
    assert_eq!(covered.len(), cases.len(), "duplicate case");
    assert_eq!(
        covered, catalog,
        "every check needs pass, bad and missing cases"
    );
}

#[test]
fn the_healthy_host_passes_every_check() {
    let fake = FakeRoot::healthy();
    let observed = observe(&fake.host(), &fake.request());
    let context = Context::new(&observed, None).expect("shard count");
    assert_eq!(context.shards, 4, "one shard per online CPU");
    for result in evaluate(&observed, &context) {
        assert_eq!(
            result.status,
            Status::Ok,
            "{}: {} vs {}",
            result.id,
            result.current,
            result.recommended
        );
    }
}

#[test]
fn each_check_passes_on_its_pass_hosts() {
    for case in all_cases() {
        for edits in case.pass {
            let result = result_after(edits, case.id);
            assert_eq!(
                result.status,
                Status::Ok,
                "{} after {edits:?}: {}",
                case.id,
                result.current
            );
        }
    }
}

#[test]
fn each_check_misses_on_its_bad_hosts() {
    for case in all_cases() {
        assert!(
            !case.bad.is_empty() || case.id == "disk.data_dir",
            "{} has no bad case",
            case.id
        );
        for (edits, expected) in case.bad {
            let result = result_after(edits, case.id);
            assert_eq!(
                result.status, *expected,
                "{} after {edits:?}: {}",
                case.id, result.current
            );
            assert!(
                !result.current.starts_with("not "),
                "{}: a miss, not missing: {}",
                case.id,
                result.current
            );
            assert!(
                !result.remedies.is_empty(),
                "{}: a miss needs a remedy",
                case.id
            );
        }
    }
}

#[test]
fn each_check_reports_not_available_when_its_input_is_missing() {
    for case in all_cases() {
        assert!(!case.missing.is_empty(), "{} has no missing case", case.id);
        let result = result_after(&case.missing, case.id);
        assert_eq!(
            result.status,
            Status::Info,
            "{} after {:?}: {}",
            case.id,
            case.missing,
            result.current
        );
        assert!(
            result.current.starts_with("not "),
            "{}: {}",
            case.id,
            result.current
        );
    }
}

#[test]
fn an_empty_root_is_all_info_and_never_panics() {
    let fake = FakeRoot::empty();
    let observed = observe(&fake.host(), &fake.request());
    let context = Context::new(&observed, None).expect("shard count");
    assert_eq!(context.shards, 1, "no online CPU list: one shard");
    for result in evaluate(&observed, &context) {
        assert_eq!(
            result.status,
            Status::Info,
            "{}: {}",
            result.id,
            result.current
        );
    }
}

#[test]
fn garbage_values_are_not_available_rather_than_a_crash() {
    let result = result_after(
        &[Edit::Write("/proc/sys/vm/swappiness", "sixty")],
        "vm.swappiness",
    );
    assert_eq!(result.status, Status::Info);
    assert_eq!(result.current, "unparseable: sixty");
    let result = result_after(
        &[Edit::Write("/proc/self/limits", "nonsense")],
        "rlimit.nofile",
    );
    assert_eq!(result.status, Status::Info);
    let result = result_after(
        &[Edit::Write(queue_file!("scheduler"), "a b c")],
        "disk.scheduler",
    );
    assert_eq!(result.status, Status::Info);
}

#[test]
fn every_sysctl_rule_key_is_probed() {
    for check in CATALOG {
        if let Rule::Sysctl { key, .. } = check.rule {
            assert!(SYSCTL_KEYS.contains(&key), "{key} missing from SYSCTL_KEYS");
            assert_eq!(check.id, key, "sysctl checks are named after their key");
        }
    }
}

#[test]
fn remedies_carry_the_values_to_set() {
    let result = result_after(
        &[Edit::Write(
            "/proc/sys/net/ipv4/tcp_rmem",
            "4096\t131072\t6291456",
        )],
        "net.ipv4.tcp_rmem",
    );
    assert_eq!(result.current, "4096 131072 6291456");
    assert_eq!(
        result.remedies,
        vec![Remedy::Sysctl {
            key: "net.ipv4.tcp_rmem".to_string(),
            value: "4096 131072 16777216".to_string()
        }]
    );
    let result = result_after(
        &[
            Edit::Write("/proc/sys/net/ipv4/ip_local_port_range", "1024\t65535"),
            Edit::Write("/proc/sys/net/ipv4/ip_local_reserved_ports", "8080"),
        ],
        "net.ipv4.ip_local_port_range",
    );
    assert_eq!(
        result.current,
        "1024-65535 (64512 ports), covers 9876/10909/10911/10912"
    );
    assert_eq!(
        result.remedies,
        vec![Remedy::Sysctl {
            key: "net.ipv4.ip_local_reserved_ports".to_string(),
            value: "8080,9876,10909,10911,10912".to_string(),
        }]
    );
    let result = result_after(
        &[Edit::Write(
            queue_file!("scheduler"),
            "none mq-deadline [bfq]",
        )],
        "disk.scheduler",
    );
    assert_eq!(
        result.remedies,
        vec![Remedy::WriteSysfs {
            path: "/sys/block/nvme0n1/queue/scheduler".to_string(),
            value: "none".to_string()
        }]
    );
}

#[test]
fn memlock_requirement_scales_with_shards() {
    let fake = FakeRoot::healthy();
    fake.file(
        "/proc/self/limits",
        "Max open files 655350 655350 files\nMax locked memory 2097152 2097152 bytes\n",
    );
    let observed = observe(&fake.host(), &fake.request());
    let at = |shards: usize| {
        let context = Context::new(&observed, Some(shards)).expect("shard count");
        let results = evaluate(&observed, &context);
        results
            .into_iter()
            .find(|result| result.id == "rlimit.memlock")
            .expect("memlock check")
    };
    assert_eq!(at(4).status, Status::Ok, "4 x 512 KiB = 2048 KiB fits");
    let five = at(5);
    assert_eq!(five.status, Status::Fail, "5 x 512 KiB does not");
    assert_eq!(
        five.recommended,
        "unlimited (>= 2560 KiB: 5 shards x 512 KiB)"
    );
    assert_eq!(five.current, "soft 2048 KiB, hard 2048 KiB");
    assert!(matches!(
        Context::new(&observed, Some(0)),
        Err(TuningError::Shards { got: 0, .. })
    ));
    assert!(Context::new(&observed, Some(SHARDS_MAX + 1)).is_err());
}

#[test]
fn the_queue_file_macro_points_into_the_fake_disk() {
    assert_eq!(
        queue_file!("scheduler"),
        format!("{FAKE_DISK_DIR}/queue/scheduler")
    );
}
