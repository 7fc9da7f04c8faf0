//! The list of checks, in the order they are printed (grouped by guide). Each entry's `why` is
//! the one-line reason; the guide named by `guide` has the long form and how to check by hand.
//! Must hold only data: judgement logic lives in `system`, `disk` and `Want`.

use super::disk;
use super::system;
use super::{Check, Guide, Rule, Severity, Want};

/// 16 MiB: socket buffer ceiling that lets one connection fill a 10 Gbit/s link at ~13 ms RTT
/// (a cross-zone HA link), instead of the 4-6 MiB kernel defaults.
const SOCKET_BUFFER_MAX_BYTES: u64 = 16 * 1024 * 1024;

/// 1 Mi descriptors: comfortably above [`super::NOFILE_RECOMMENDED`], so the per-process limit
/// is what binds, never the system-wide table.
const FILES_SYSTEM_MIN: u64 = 1024 * 1024;

/// Every check, in print order.
pub static CATALOG: &[Check] = &[
    // --- kernel and io_uring (sysctl.md) ---
    Check {
        id: "kernel.io_uring_disabled",
        guide: Guide::Sysctl,
        severity: Severity::Fail,
        why: "every shard runs on io_uring; 1 or 2 makes io_uring_setup fail with EPERM",
        rule: Rule::Custom(system::io_uring_disabled),
    },
    Check {
        id: "kernel.osrelease",
        guide: Guide::Sysctl,
        severity: Severity::Warn,
        why: "io_uring features and fixes compio relies on (multishot accept, memcg accounting)",
        rule: Rule::Custom(system::kernel_release),
    },
    // --- memory (memory.md) ---
    Check {
        id: "vm.swappiness",
        guide: Guide::Memory,
        severity: Severity::Warn,
        why: "a swapped-out shard page turns a microsecond request into a disk read",
        rule: Rule::Sysctl {
            key: "vm.swappiness",
            want: Want::AtMost(1),
        },
    },
    Check {
        id: "thp.enabled",
        guide: Guide::Memory,
        severity: Severity::Warn,
        why: "THP=always lets khugepaged and fault-time compaction stall shard threads",
        rule: Rule::Custom(system::thp_enabled),
    },
    Check {
        id: "thp.defrag",
        guide: Guide::Memory,
        severity: Severity::Warn,
        why: "defrag=always compacts memory synchronously inside page faults",
        rule: Rule::Custom(system::thp_defrag),
    },
    Check {
        id: "vm.zone_reclaim_mode",
        guide: Guide::Memory,
        severity: Severity::Warn,
        why:
            "node-local reclaim evicts cache and stalls allocations instead of using a remote node",
        rule: Rule::Sysctl {
            key: "vm.zone_reclaim_mode",
            want: Want::OneOf(&[0]),
        },
    },
    Check {
        id: "kernel.numa_balancing",
        guide: Guide::Memory,
        severity: Severity::Warn,
        why: "shards are pinned; NUMA balancing adds hinting faults and migrates their pages",
        rule: Rule::Custom(system::numa_balancing),
    },
    // --- page cache and memory accounting (sysctl.md) ---
    Check {
        id: "vm.dirty_ratio",
        guide: Guide::Sysctl,
        severity: Severity::Warn,
        why: "store files bypass the cache; others' big dirty backlogs flush in storms ahead of us",
        rule: Rule::Sysctl {
            key: "vm.dirty_ratio",
            want: Want::AtMost(40),
        },
    },
    Check {
        id: "vm.dirty_background_ratio",
        guide: Guide::Sysctl,
        severity: Severity::Warn,
        why: "start other writers' writeback early, in batches that do not starve our fdatasync",
        rule: Rule::Sysctl {
            key: "vm.dirty_background_ratio",
            want: Want::AtMost(10),
        },
    },
    Check {
        id: "vm.max_map_count",
        guide: Guide::Sysctl,
        severity: Severity::Info,
        why: "this broker maps no store file (all O_DIRECT); the Java broker maps every one",
        rule: Rule::Sysctl {
            key: "vm.max_map_count",
            want: Want::AtLeast {
                min: 655_360,
                recommended: 655_360,
            },
        },
    },
    Check {
        id: "vm.overcommit_memory",
        guide: Guide::Sysctl,
        severity: Severity::Warn,
        why: "mode 2 (strict) refuses the up-front ring and buffer reservations of every shard",
        rule: Rule::Sysctl {
            key: "vm.overcommit_memory",
            want: Want::OneOf(&[0, 1]),
        },
    },
    // --- network (sysctl.md) ---
    Check {
        id: "net.core.somaxconn",
        guide: Guide::Sysctl,
        severity: Severity::Warn,
        why: "caps each shard's listen backlog (4096); client reconnect storms overflow it",
        rule: Rule::Sysctl {
            key: "net.core.somaxconn",
            want: Want::AtLeast {
                min: 4096,
                recommended: 4096,
            },
        },
    },
    Check {
        id: "net.ipv4.tcp_max_syn_backlog",
        guide: Guide::Sysctl,
        severity: Severity::Warn,
        why: "half-open connections queue here before accept; keep it at least the listen backlog",
        rule: Rule::Sysctl {
            key: "net.ipv4.tcp_max_syn_backlog",
            want: Want::AtLeast {
                min: 4096,
                recommended: 4096,
            },
        },
    },
    Check {
        id: "net.core.netdev_max_backlog",
        guide: Guide::Sysctl,
        severity: Severity::Warn,
        why: "per-CPU queue of received packets; 1000 drops bursts at 10 Gbit/s and up",
        rule: Rule::Sysctl {
            key: "net.core.netdev_max_backlog",
            want: Want::AtLeast {
                min: 16_384,
                recommended: 16_384,
            },
        },
    },
    Check {
        id: "net.ipv4.tcp_rmem",
        guide: Guide::Sysctl,
        severity: Severity::Warn,
        why: "receive-window autotuning ceiling: caps per-connection throughput into the broker",
        rule: Rule::Sysctl {
            key: "net.ipv4.tcp_rmem",
            want: Want::MaxFieldAtLeast(SOCKET_BUFFER_MAX_BYTES),
        },
    },
    Check {
        id: "net.ipv4.tcp_wmem",
        guide: Guide::Sysctl,
        severity: Severity::Warn,
        why: "send-buffer autotuning ceiling: caps per-connection pull and HA throughput",
        rule: Rule::Sysctl {
            key: "net.ipv4.tcp_wmem",
            want: Want::MaxFieldAtLeast(SOCKET_BUFFER_MAX_BYTES),
        },
    },
    Check {
        id: "net.core.rmem_max",
        guide: Guide::Sysctl,
        severity: Severity::Info,
        why: "caps explicit SO_RCVBUF; the broker relies on autotuning, clients may set it",
        rule: Rule::Sysctl {
            key: "net.core.rmem_max",
            want: Want::AtLeast {
                min: SOCKET_BUFFER_MAX_BYTES,
                recommended: SOCKET_BUFFER_MAX_BYTES,
            },
        },
    },
    Check {
        id: "net.core.wmem_max",
        guide: Guide::Sysctl,
        severity: Severity::Info,
        why: "caps explicit SO_SNDBUF; the broker relies on autotuning, clients may set it",
        rule: Rule::Sysctl {
            key: "net.core.wmem_max",
            want: Want::AtLeast {
                min: SOCKET_BUFFER_MAX_BYTES,
                recommended: SOCKET_BUFFER_MAX_BYTES,
            },
        },
    },
    Check {
        id: "net.ipv4.tcp_slow_start_after_idle",
        guide: Guide::Sysctl,
        severity: Severity::Warn,
        why: "remoting connections idle between bursts; 1 collapses the window back to 10 segments",
        rule: Rule::Sysctl {
            key: "net.ipv4.tcp_slow_start_after_idle",
            want: Want::OneOf(&[0]),
        },
    },
    Check {
        id: "net.ipv4.ip_local_port_range",
        guide: Guide::Sysctl,
        severity: Severity::Warn,
        why: "ephemeral ports must not cover 9876/10909/10911/10912 unless they are reserved",
        rule: Rule::Custom(system::local_port_range),
    },
    Check {
        id: "net.ipv4.tcp_tw_reuse",
        guide: Guide::Sysctl,
        severity: Severity::Info,
        why: "lets outbound connections (HA, name server) reuse TIME_WAIT ports after churn",
        rule: Rule::Sysctl {
            key: "net.ipv4.tcp_tw_reuse",
            want: Want::OneOf(&[1]),
        },
    },
    // --- file tables (sysctl.md) ---
    Check {
        id: "fs.file-max",
        guide: Guide::Sysctl,
        severity: Severity::Warn,
        why: "system-wide open-file table; must sit above every process's nofile limit",
        rule: Rule::Sysctl {
            key: "fs.file-max",
            want: Want::AtLeast {
                min: FILES_SYSTEM_MIN,
                recommended: FILES_SYSTEM_MIN,
            },
        },
    },
    Check {
        id: "fs.nr_open",
        guide: Guide::Sysctl,
        severity: Severity::Warn,
        why: "ceiling for RLIMIT_NOFILE: a nofile limit above it cannot be set",
        rule: Rule::Sysctl {
            key: "fs.nr_open",
            want: Want::AtLeast {
                min: FILES_SYSTEM_MIN,
                recommended: FILES_SYSTEM_MIN,
            },
        },
    },
    Check {
        id: "fs.aio-max-nr",
        guide: Guide::Sysctl,
        severity: Severity::Info,
        why: "only for legacy Linux AIO; io_uring does not use it (other tenants on the host may)",
        rule: Rule::Sysctl {
            key: "fs.aio-max-nr",
            want: Want::AtLeast {
                min: FILES_SYSTEM_MIN,
                recommended: FILES_SYSTEM_MIN,
            },
        },
    },
    // --- resource limits (limits.md) ---
    Check {
        id: "rlimit.nofile",
        guide: Guide::Limits,
        severity: Severity::Fail,
        why: "every client connection and every open segment, queue and index file is a descriptor",
        rule: Rule::Custom(system::nofile),
    },
    Check {
        id: "rlimit.memlock",
        guide: Guide::Limits,
        severity: Severity::Fail,
        why: "io_uring rings and registered buffers are locked memory: >= 512 KiB per shard",
        rule: Rule::Custom(system::memlock),
    },
    // --- CPU (cpu.md) ---
    Check {
        id: "cpu.governor",
        guide: Guide::Cpu,
        severity: Severity::Warn,
        why: "a polling thread-per-core runtime wants full clock speed, not ramp-up latency",
        rule: Rule::Custom(system::governor),
    },
    Check {
        id: "cpu.irqbalance",
        guide: Guide::Cpu,
        severity: Severity::Warn,
        why: "irqbalance moves NIC and NVMe interrupts onto shard cores, undoing manual affinity",
        rule: Rule::Custom(system::irqbalance),
    },
    Check {
        id: "cpu.isolation",
        guide: Guide::Cpu,
        severity: Severity::Info,
        why: "on a dedicated host, isolated shard cores see no other tasks or timer ticks",
        rule: Rule::Custom(system::isolation),
    },
    Check {
        id: "numa.nodes",
        guide: Guide::Cpu,
        severity: Severity::Info,
        why: "with several nodes, shards, their memory and their IRQs should share a node",
        rule: Rule::Custom(system::numa_nodes),
    },
    // --- the store directory (disk.md) ---
    Check {
        id: "disk.data_dir",
        guide: Guide::Disk,
        severity: Severity::Info,
        why: "the disk checks below are about the filesystem and device holding this directory",
        rule: Rule::Custom(disk::data_dir_rule),
    },
    Check {
        id: "disk.fs_type",
        guide: Guide::Disk,
        severity: Severity::Fail,
        why: "CommitLog is written with O_DIRECT + fdatasync: needs a durable local filesystem",
        rule: Rule::Custom(disk::fs_type),
    },
    Check {
        id: "disk.barrier",
        guide: Guide::Disk,
        severity: Severity::Fail,
        why: "nobarrier drops the cache flushes that make fdatasync (and SYNC_FLUSH acks) durable",
        rule: Rule::Custom(disk::barrier),
    },
    Check {
        id: "disk.noatime",
        guide: Guide::Disk,
        severity: Severity::Warn,
        why: "atime updates turn reads of freshly written segments into metadata writes",
        rule: Rule::Custom(disk::noatime),
    },
    Check {
        id: "disk.logical_block_size",
        guide: Guide::Disk,
        severity: Severity::Fail,
        why: "O_DIRECT alignment is max(4 KiB, logical block); storage refuses blocks above 64 KiB",
        rule: Rule::Custom(disk::logical_block_size),
    },
    Check {
        id: "disk.rotational",
        guide: Guide::Disk,
        severity: Severity::Warn,
        why: "one CommitLog stream per shard plus consume-queue and index reads want flash",
        rule: Rule::Custom(disk::rotational),
    },
    Check {
        id: "disk.scheduler",
        guide: Guide::Disk,
        severity: Severity::Warn,
        why: "flash needs no reordering: none (or mq-deadline) keeps the O_DIRECT path short",
        rule: Rule::Custom(disk::scheduler),
    },
    Check {
        id: "disk.nr_requests",
        guide: Guide::Disk,
        severity: Severity::Info,
        why: "a short request queue throttles parallel O_DIRECT writes and reads of all shards",
        rule: Rule::Custom(disk::nr_requests),
    },
    Check {
        id: "disk.read_ahead_kb",
        guide: Guide::Disk,
        severity: Severity::Info,
        why: "store files are O_DIRECT (no readahead); a big value only serves other readers",
        rule: Rule::Custom(disk::read_ahead_kb),
    },
];
