//! Rules for host-wide checks that need more than a numeric comparison: io_uring gating, kernel
//! release, the ephemeral port range, resource limits, THP, NUMA, CPU governor, irqbalance and
//! CPU isolation. Each rule is a pure function of the observed host.
//! Must never read the host or decide severity (the catalog does).

use super::{require, sysctl, Context, Judgement, LimitItem, Remedy, Verdict};
use crate::host::Reading;
use crate::parse::{self, LimitValue};
use crate::probe::{sysctl_path, Observed};

/// Required soft `RLIMIT_NOFILE`: below this a few thousand clients plus open segments, consume
/// queues and index files exhaust descriptors and accept fails with EMFILE.
pub const NOFILE_MIN: u64 = 65_536;

/// Recommended soft `RLIMIT_NOFILE`, the value RocketMQ's `bin/os.sh` sets.
pub const NOFILE_RECOMMENDED: u64 = 655_350;

/// Locked memory one shard needs for its io_uring (glommio's figure per executor): the rings
/// on kernels before 5.12 and registered buffers on every kernel count against memlock.
pub const MEMLOCK_PER_SHARD_BYTES: u64 = 512 * 1024;

/// Oldest kernel recommended: 6.1 LTS has the io_uring features compio uses and memcg
/// accounting of rings; older kernels work with fewer features and more locked memory.
pub const KERNEL_RECOMMENDED: (u32, u32) = (6, 1);

/// Ports the broker and name server listen on: name server, VIP channel (listen port - 2),
/// remoting, HA (listen port + 1).
pub const BROKER_PORTS: [u16; 4] = [9876, 10909, 10911, 10912];

/// Fewest ephemeral ports: the kernel default range (32768-60999) has 28232.
pub const PORT_RANGE_WIDTH_MIN: u32 = 28_000;

const THP_ENABLED_PATH: &str = "/sys/kernel/mm/transparent_hugepage/enabled";
const THP_DEFRAG_PATH: &str = "/sys/kernel/mm/transparent_hugepage/defrag";
const GOVERNOR_GLOB: &str = "/sys/devices/system/cpu/cpu*/cpufreq/scaling_governor";

pub(super) fn io_uring_disabled(observed: &Observed, _: &Context) -> Judgement {
    let recommended = "0";
    let text = match sysctl(observed, "kernel.io_uring_disabled") {
        Reading::Value(text) => text,
        Reading::Missing => {
            let current = "not present (kernel < 6.6: io_uring is not gated)".to_string();
            return Judgement::unavailable(current, recommended);
        }
        Reading::Unreadable(why) => return Judgement::unavailable(why.clone(), recommended),
    };
    let current = match parse::parse_u64(text) {
        Some(0) => return Judgement::new(Verdict::Met, "0".to_string(), recommended),
        Some(1) => "1 (only CAP_SYS_ADMIN or kernel.io_uring_group may use io_uring)".to_string(),
        Some(2) => "2 (io_uring disabled)".to_string(),
        _ => format!("{text} (unknown)"),
    };
    Judgement::new(Verdict::Missed, current, recommended).with(Remedy::Sysctl {
        key: "kernel.io_uring_disabled".to_string(),
        value: "0".to_string(),
    })
}

pub(super) fn kernel_release(observed: &Observed, _: &Context) -> Judgement {
    let (major, minor) = KERNEL_RECOMMENDED;
    let recommended = format!(">= {major}.{minor}");
    let key = "kernel.osrelease";
    let text = match require(sysctl(observed, key), &sysctl_path(key), &recommended) {
        Ok(text) => text,
        Err(unavailable) => return unavailable,
    };
    let Some(release) = parse::parse_kernel_release(text) else {
        return Judgement::unavailable(format!("unparseable: {text}"), recommended);
    };
    Judgement::new(
        Verdict::when(release >= KERNEL_RECOMMENDED),
        text.clone(),
        recommended,
    )
    .with(Remedy::Manual {
        note: format!("upgrade the kernel to {major}.{minor} or newer"),
    })
}

pub(super) fn local_port_range(observed: &Observed, _: &Context) -> Judgement {
    let recommended = format!(
        ">= {PORT_RANGE_WIDTH_MIN} ports, not covering {} unless reserved",
        join_ports(&BROKER_PORTS)
    );
    let key = "net.ipv4.ip_local_port_range";
    let text = match require(sysctl(observed, key), &sysctl_path(key), &recommended) {
        Ok(text) => text,
        Err(unavailable) => return unavailable,
    };
    let Some((first, last)) = parse::parse_port_range(text) else {
        return Judgement::unavailable(format!("unparseable: {text}"), recommended);
    };
    // A missing reserved-ports file (very old kernels) means nothing is reserved.
    let reserved_text = sysctl(observed, "net.ipv4.ip_local_reserved_ports").value();
    let reserved = reserved_text
        .and_then(|text| parse::parse_port_list(text))
        .unwrap_or_default();
    let is_reserved = |port: u16| {
        reserved
            .iter()
            .any(|(low, high)| (*low..=*high).contains(&port))
    };
    let exposed: Vec<u16> = BROKER_PORTS
        .into_iter()
        .filter(|port| (first..=last).contains(port) && !is_reserved(*port))
        .collect();
    let width = u32::from(last) - u32::from(first) + 1;
    let mut current = format!("{first}-{last} ({width} ports)");
    if !exposed.is_empty() {
        current.push_str(&format!(", covers {}", join_ports(&exposed)));
    }
    let mut judgement = Judgement::new(
        Verdict::when(exposed.is_empty() && width >= PORT_RANGE_WIDTH_MIN),
        current,
        recommended,
    );
    if width < PORT_RANGE_WIDTH_MIN {
        // 15000-65000 is wide and below it sit all four broker ports.
        judgement = judgement.with(Remedy::Sysctl {
            key: key.to_string(),
            value: "15000 65000".to_string(),
        });
    } else if !exposed.is_empty() {
        // Keep what is already reserved: the sysctl replaces the whole list.
        let mut ports: Vec<String> = reserved_text
            .and_then(|text| one_item(text))
            .into_iter()
            .collect();
        ports.extend(exposed.iter().map(u16::to_string));
        judgement = judgement.with(Remedy::Sysctl {
            key: "net.ipv4.ip_local_reserved_ports".to_string(),
            value: ports.join(","),
        });
    }
    judgement
}

/// The existing reserved-port list as one item, if not empty.
fn one_item(text: &str) -> Option<String> {
    let trimmed = text.trim();
    (!trimmed.is_empty()).then(|| trimmed.to_string())
}

/// `a`, `a or b`, `a, b or c`.
fn one_of(words: &[&str]) -> String {
    match words.split_last() {
        None => String::new(),
        Some((last, [])) => (*last).to_string(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

fn join_ports(ports: &[u16]) -> String {
    ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join("/")
}

fn limits_path(observed: &Observed) -> String {
    match &observed.limits_source {
        crate::probe::LimitsSource::Getrlimit => "getrlimit".to_string(),
        crate::probe::LimitsSource::File(path) => path.clone(),
    }
}

pub(super) fn nofile(observed: &Observed, _: &Context) -> Judgement {
    let recommended = format!(">= {NOFILE_RECOMMENDED} (>= {NOFILE_MIN} required)");
    let limits = match require(&observed.limits, &limits_path(observed), &recommended) {
        Ok(limits) => limits,
        Err(unavailable) => return unavailable,
    };
    let soft = limits.nofile.soft;
    let verdict = if soft.at_least(NOFILE_RECOMMENDED) {
        Verdict::Met
    } else if soft.at_least(NOFILE_MIN) {
        Verdict::Short
    } else {
        Verdict::Missed
    };
    let current = format!("soft {soft}, hard {}", limits.nofile.hard);
    Judgement::new(verdict, current, recommended).with(Remedy::Rlimit {
        item: LimitItem::Nofile,
        value: NOFILE_RECOMMENDED.to_string(),
    })
}

pub(super) fn memlock(observed: &Observed, context: &Context) -> Judgement {
    let shards = u64::try_from(context.shards).expect("shard count fits in u64");
    let needed = shards
        .checked_mul(MEMLOCK_PER_SHARD_BYTES)
        .expect("SHARDS_MAX keeps this small");
    let recommended = format!(
        "unlimited (>= {} KiB: {} shards x {} KiB)",
        needed / 1024,
        context.shards,
        MEMLOCK_PER_SHARD_BYTES / 1024
    );
    let limits = match require(&observed.limits, &limits_path(observed), &recommended) {
        Ok(limits) => limits,
        Err(unavailable) => return unavailable,
    };
    let kib = |value: LimitValue| match value {
        LimitValue::Finite(bytes) => format!("{} KiB", bytes / 1024),
        LimitValue::Unlimited => "unlimited".to_string(),
    };
    let current = format!(
        "soft {}, hard {}",
        kib(limits.memlock.soft),
        kib(limits.memlock.hard)
    );
    Judgement::new(
        Verdict::when(limits.memlock.soft.at_least(needed)),
        current,
        recommended,
    )
    .with(Remedy::Rlimit {
        item: LimitItem::Memlock,
        value: "unlimited".to_string(),
    })
}

/// Judges a sysfs choice file (`always [madvise] never`) by its selected word.
fn choice(reading: &Reading, path: &str, accepted: &[&str], set: &str) -> Judgement {
    let recommended = one_of(accepted);
    let text = match require(reading, path, &recommended) {
        Ok(text) => text,
        Err(unavailable) => return unavailable,
    };
    let Some(selected) = parse::parse_selected(text) else {
        return Judgement::unavailable(format!("unparseable: {text}"), recommended);
    };
    Judgement::new(
        Verdict::when(accepted.contains(&selected)),
        selected.to_string(),
        recommended,
    )
    .with(Remedy::WriteSysfs {
        path: path.to_string(),
        value: set.to_string(),
    })
}

pub(super) fn thp_enabled(observed: &Observed, _: &Context) -> Judgement {
    choice(
        &observed.thp_enabled,
        THP_ENABLED_PATH,
        &["madvise", "never"],
        "madvise",
    )
}

pub(super) fn thp_defrag(observed: &Observed, _: &Context) -> Judgement {
    let accepted = ["madvise", "never", "defer", "defer+madvise"];
    choice(&observed.thp_defrag, THP_DEFRAG_PATH, &accepted, "madvise")
}

pub(super) fn numa_balancing(observed: &Observed, _: &Context) -> Judgement {
    let recommended = "0 (on hosts with more than one NUMA node)";
    let key = "kernel.numa_balancing";
    let text = match require(sysctl(observed, key), &sysctl_path(key), recommended) {
        Ok(text) => text,
        Err(unavailable) => return unavailable,
    };
    let Some(value) = parse::parse_u64(text) else {
        return Judgement::unavailable(format!("unparseable: {text}"), recommended);
    };
    let nodes = observed.numa_nodes.value().map_or(1, Vec::len);
    let (verdict, current) = match (value, nodes) {
        (0, _) => (Verdict::Met, "0".to_string()),
        (_, 0 | 1) => (
            Verdict::Met,
            format!("{value} (no effect on a single node)"),
        ),
        (_, nodes) => (Verdict::Missed, format!("{value} ({nodes} nodes)")),
    };
    Judgement::new(verdict, current, recommended).with(Remedy::Sysctl {
        key: key.to_string(),
        value: "0".to_string(),
    })
}

pub(super) fn governor(observed: &Observed, _: &Context) -> Judgement {
    let recommended = "performance";
    let governors = match &observed.governors {
        Reading::Value(governors) => governors,
        Reading::Missing => {
            let current = "not available (no cpufreq: VM or no driver)".to_string();
            return Judgement::unavailable(current, recommended);
        }
        Reading::Unreadable(why) => return Judgement::unavailable(why.clone(), recommended),
    };
    assert!(
        !governors.is_empty(),
        "the probe reports Missing when no CPU has cpufreq"
    );
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for (_, governor) in governors {
        match counts.iter_mut().find(|(name, _)| name == governor) {
            Some((_, count)) => *count += 1,
            None => counts.push((governor, 1)),
        }
    }
    let current: Vec<String> = counts
        .iter()
        .map(|(name, count)| format!("{name} x{count}"))
        .collect();
    let all_performance = counts.iter().all(|(name, _)| *name == recommended);
    Judgement::new(
        Verdict::when(all_performance),
        current.join(", "),
        recommended,
    )
    .with(Remedy::WriteSysfs {
        path: GOVERNOR_GLOB.to_string(),
        value: recommended.to_string(),
    })
}

pub(super) fn irqbalance(observed: &Observed, _: &Context) -> Judgement {
    let recommended = "not running (or IRQBALANCE_BANNED_CPULIST = shard cores)";
    let pids = match require(&observed.irqbalance_pids, "/proc", recommended) {
        Ok(pids) => pids,
        Err(unavailable) => return unavailable,
    };
    if pids.is_empty() {
        return Judgement::new(Verdict::Met, "not running".to_string(), recommended);
    }
    let pids: Vec<String> = pids.iter().map(u32::to_string).collect();
    Judgement::new(
        Verdict::Missed,
        format!("running (pid {})", pids.join(",")),
        recommended,
    )
    .with(Remedy::StopService {
        name: "irqbalance".to_string(),
    })
    .with(Remedy::Manual {
        note: "then pin NIC and NVMe IRQs: see tuning/cpu.md (IRQ affinity)".to_string(),
    })
}

pub(super) fn isolation(observed: &Observed, _: &Context) -> Judgement {
    let recommended = "shard cores in isolcpus= and nohz_full= (dedicated hosts)";
    let isolated = match require(
        &observed.isolated_cpus,
        "/sys/devices/system/cpu/isolated",
        recommended,
    ) {
        Ok(isolated) => isolated,
        Err(unavailable) => return unavailable,
    };
    let nohz = observed
        .nohz_full_cpus
        .value()
        .map_or_else(|| "n/a".to_string(), |cpus| list_or_none(cpus));
    let current = format!("isolated {}, nohz_full {nohz}", list_or_none(isolated));
    Judgement::new(Verdict::when(!isolated.is_empty()), current, recommended).with(Remedy::Manual {
        note: "add isolcpus=<shard cores> nohz_full=<shard cores> to the kernel command line \
               and reboot; see tuning/cpu.md"
            .to_string(),
    })
}

fn list_or_none(cpus: &[u32]) -> String {
    if cpus.is_empty() {
        "none".to_string()
    } else {
        parse::format_cpu_list(cpus)
    }
}

pub(super) fn numa_nodes(observed: &Observed, _: &Context) -> Judgement {
    let recommended = "1 node, or shards + memory + IRQs placed per node";
    let nodes = match require(
        &observed.numa_nodes,
        "/sys/devices/system/node",
        recommended,
    ) {
        Ok(nodes) => nodes,
        Err(unavailable) => return unavailable,
    };
    let count = nodes.len().max(1);
    let current = format!("{count} node{}", if count == 1 { "" } else { "s" });
    Judgement::new(Verdict::when(count == 1), current, recommended).with(Remedy::Manual {
        note: "pin shards, their memory (numactl --membind) and NIC/NVMe IRQs to one node each; \
               see tuning/cpu.md (NUMA)"
            .to_string(),
    })
}
