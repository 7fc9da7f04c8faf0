//! The check model and the pure evaluation: each [`Check`] has an id, the guide that explains
//! it, a severity, a one-line why and a [`Rule`]; [`evaluate`] turns an [`Observed`] host into
//! one [`CheckResult`] per check, with the current value, the recommended value, a status and
//! the [`Remedy`] the script renderer prints.
//! Must never read the host (probing is `probe`), print, or panic on odd values: a value it
//! cannot parse is "not available", never a crash.

mod catalog;
mod disk;
mod system;

use std::path::PathBuf;

use serde::Serialize;

use crate::error::TuningError;
use crate::host::Reading;
use crate::parse;
use crate::probe::{sysctl_path, Observed};

pub use catalog::CATALOG;
pub use disk::{DIRECT_IO_ALIGNMENT_BYTES, DIRECT_IO_BLOCK_SIZE_MAX};
pub use system::{MEMLOCK_PER_SHARD_BYTES, NOFILE_MIN, NOFILE_RECOMMENDED};

/// Largest shard count accepted: one shard per CPU, and the kernel supports at most 8192 CPUs.
pub const SHARDS_MAX: usize = 8192;

/// How much a missed recommendation matters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Advisory: worth knowing, never fails the run.
    Info,
    /// Hurts latency or throughput; the broker still works.
    Warn,
    /// Breaks the broker or its durability; `rmq tuning check` exits non-zero.
    Fail,
}

/// The outcome of one check on this host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Meets the recommendation.
    Ok,
    /// Not available on this host, or an advisory check not met.
    Info,
    /// Misses the recommendation; see the guide.
    Warn,
    /// Must be fixed before running the broker here.
    Fail,
}

impl Status {
    /// Upper-case label for the table.
    pub fn label(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::Info => "INFO",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        }
    }
}

impl Severity {
    fn status(self) -> Status {
        match self {
            Severity::Info => Status::Info,
            Severity::Warn => Status::Warn,
            Severity::Fail => Status::Fail,
        }
    }
}

/// The guide (a markdown file under `tuning/`) that explains a check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Guide {
    /// `sysctl.md`: vm.*, net.*, fs.*, kernel.* settings.
    Sysctl,
    /// `limits.md`: nofile and memlock.
    Limits,
    /// `cpu.md`: governor, isolation, IRQs, NUMA layout.
    Cpu,
    /// `memory.md`: THP, swappiness, NUMA memory policy.
    Memory,
    /// `disk.md`: filesystem, mount options, block queue.
    Disk,
}

impl Guide {
    /// The guide's file name under `tuning/`.
    pub fn file(self) -> &'static str {
        match self {
            Guide::Sysctl => "sysctl.md",
            Guide::Limits => "limits.md",
            Guide::Cpu => "cpu.md",
            Guide::Memory => "memory.md",
            Guide::Disk => "disk.md",
        }
    }
}

/// One tuning check.
#[derive(Debug)]
pub struct Check {
    /// Stable id: the sysctl key for sysctls, `area.name` otherwise.
    pub id: &'static str,
    /// Where the check is explained.
    pub guide: Guide,
    /// What a miss counts as.
    pub severity: Severity,
    /// Why it matters for this broker, in one line.
    pub why: &'static str,
    /// How the observed value is judged.
    pub rule: Rule,
}

/// How a check judges the host.
#[derive(Debug)]
pub enum Rule {
    /// A numeric sysctl compared with a wanted value.
    Sysctl {
        /// Sysctl key (`vm.swappiness`); must be in `probe::SYSCTL_KEYS`.
        key: &'static str,
        /// The wanted value.
        want: Want,
    },
    /// Anything else.
    Custom(fn(&Observed, &Context) -> Judgement),
}

/// A wanted numeric sysctl value.
#[derive(Clone, Copy, Debug)]
pub enum Want {
    /// At most this.
    AtMost(u64),
    /// Below `min` is a miss at the check's severity; below `recommended` is a warning.
    AtLeast {
        /// Required.
        min: u64,
        /// Recommended; at least `min`.
        recommended: u64,
    },
    /// One of these; the first is what the remedy sets.
    OneOf(&'static [u64]),
    /// The third field of a `min default max` triple is at least this.
    MaxFieldAtLeast(u64),
}

/// How the observed value compares with the recommendation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Meets it.
    Met,
    /// Meets the requirement but not the recommendation: a warning at most.
    Short,
    /// Misses it: the check's severity.
    Missed,
    /// Could not be read on this host.
    NotAvailable,
}

/// A limit the script sets in `/etc/security/limits.d`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitItem {
    /// `nofile`.
    Nofile,
    /// `memlock`.
    Memlock,
}

impl LimitItem {
    /// The limits.conf item name.
    pub fn name(self) -> &'static str {
        match self {
            LimitItem::Nofile => "nofile",
            LimitItem::Memlock => "memlock",
        }
    }

    /// The systemd `[Service]` directive for the same limit.
    pub fn systemd_directive(self) -> &'static str {
        match self {
            LimitItem::Nofile => "LimitNOFILE",
            LimitItem::Memlock => "LimitMEMLOCK",
        }
    }
}

/// One step that moves the host towards the recommendation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Remedy {
    /// `sysctl -w key=value`, persisted in `/etc/sysctl.d`.
    Sysctl {
        /// Sysctl key.
        key: String,
        /// Value to set.
        value: String,
    },
    /// Write a value into a sysfs file; `*` in the path is a shell glob.
    WriteSysfs {
        /// Host path.
        path: String,
        /// Value to write.
        value: String,
    },
    /// Raise a resource limit for the broker's user or unit.
    Rlimit {
        /// Which limit.
        item: LimitItem,
        /// New soft and hard value (`unlimited` allowed).
        value: String,
    },
    /// Stop and disable a systemd service.
    StopService {
        /// Unit name.
        name: String,
    },
    /// Remount with an extra option (and add it in `/etc/fstab`).
    Remount {
        /// Mount point.
        mount_point: PathBuf,
        /// Option to add.
        option: String,
    },
    /// Needs a human: printed as a comment.
    Manual {
        /// What to do.
        note: String,
    },
}

/// What a rule found.
#[derive(Clone, Debug)]
pub struct Judgement {
    /// Comparison outcome.
    pub verdict: Verdict,
    /// The value found, for humans.
    pub current: String,
    /// The recommended value, for humans.
    pub recommended: String,
    /// Steps towards the recommendation (used when the result warns or fails).
    pub remedies: Vec<Remedy>,
}

impl Judgement {
    fn new(verdict: Verdict, current: String, recommended: impl Into<String>) -> Judgement {
        Judgement {
            verdict,
            current,
            recommended: recommended.into(),
            remedies: Vec::new(),
        }
    }

    fn with(mut self, remedy: Remedy) -> Judgement {
        self.remedies.push(remedy);
        self
    }

    /// A judgement for something that could not be read; `recommended` is still shown.
    fn unavailable(why: String, recommended: impl Into<String>) -> Judgement {
        Judgement::new(Verdict::NotAvailable, why, recommended)
    }
}

/// The value of a reading, or the "not available" judgement for `what` (a host path).
fn require<'a, T>(
    reading: &'a Reading<T>,
    what: &str,
    recommended: &str,
) -> Result<&'a T, Judgement> {
    let current = match reading {
        Reading::Value(value) => return Ok(value),
        Reading::Missing => format!("not available ({what} missing)"),
        Reading::Unreadable(why) => format!("not available ({why})"),
    };
    Err(Judgement::unavailable(current, recommended))
}

/// Inputs to the rules that do not come from the host files.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Context {
    /// Shards the broker will run: one io_uring per shard, so memlock scales with it.
    pub shards: usize,
}

impl Context {
    /// `shards` if given, else one shard per online CPU, else 1.
    ///
    /// # Errors
    /// [`TuningError::Shards`] if `shards` is 0 or above [`SHARDS_MAX`].
    pub fn new(observed: &Observed, shards: Option<usize>) -> Result<Context, TuningError> {
        let online = observed
            .online_cpus
            .value()
            .map(Vec::len)
            .filter(|count| *count > 0);
        let shards = shards.or(online).unwrap_or(1);
        if shards == 0 || shards > SHARDS_MAX {
            return Err(TuningError::Shards {
                got: shards,
                max: SHARDS_MAX,
            });
        }
        Ok(Context { shards })
    }
}

/// One evaluated check.
#[derive(Clone, Debug, Serialize)]
pub struct CheckResult {
    /// Check id.
    pub id: &'static str,
    /// Guide file explaining it.
    pub guide: &'static str,
    /// What a miss counts as.
    pub severity: Severity,
    /// Outcome on this host.
    pub status: Status,
    /// Value found.
    pub current: String,
    /// Value recommended.
    pub recommended: String,
    /// Why it matters.
    pub why: &'static str,
    /// Steps towards the recommendation.
    pub remedies: Vec<Remedy>,
}

/// Evaluates every check in [`CATALOG`] against an observed host. Pure.
pub fn evaluate(observed: &Observed, context: &Context) -> Vec<CheckResult> {
    CATALOG
        .iter()
        .map(|check| evaluate_one(check, observed, context))
        .collect()
}

fn evaluate_one(check: &Check, observed: &Observed, context: &Context) -> CheckResult {
    let judgement = match &check.rule {
        Rule::Sysctl { key, want } => judge_sysctl(observed, key, *want),
        Rule::Custom(rule) => rule(observed, context),
    };
    let status = match judgement.verdict {
        Verdict::Met => Status::Ok,
        Verdict::NotAvailable => Status::Info,
        Verdict::Missed => check.severity.status(),
        Verdict::Short => check.severity.status().min(Status::Warn),
    };
    CheckResult {
        id: check.id,
        guide: check.guide.file(),
        severity: check.severity,
        status,
        current: judgement.current,
        recommended: judgement.recommended,
        why: check.why,
        remedies: judgement.remedies,
    }
}

/// The raw sysctl reading; every key a rule uses must be probed.
fn sysctl<'a>(observed: &'a Observed, key: &str) -> &'a Reading {
    let reading = observed.sysctls.get(key);
    assert!(
        reading.is_some(),
        "sysctl {key} is used by a check but not in SYSCTL_KEYS"
    );
    reading.expect("asserted above")
}

/// Sysctl text as one line (`4096\t131072` becomes `4096 131072`).
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn judge_sysctl(observed: &Observed, key: &'static str, want: Want) -> Judgement {
    let recommended = want.describe();
    let text = match require(sysctl(observed, key), &sysctl_path(key), &recommended) {
        Ok(text) => text,
        Err(unavailable) => return unavailable,
    };
    let current = one_line(text);
    let unparseable = || Judgement::unavailable(format!("unparseable: {current}"), &recommended);
    let (verdict, target) = match want {
        Want::MaxFieldAtLeast(max_min) => {
            let Some([low, default, max]) = parse::parse_triple(text) else {
                return unparseable();
            };
            let verdict = if max >= max_min {
                Verdict::Met
            } else {
                Verdict::Missed
            };
            (verdict, format!("{low} {default} {max_min}"))
        }
        Want::AtMost(_) | Want::AtLeast { .. } | Want::OneOf(_) => {
            let Some(value) = parse::parse_u64(text) else {
                return unparseable();
            };
            want.judge_number(value)
        }
    };
    Judgement::new(verdict, current, recommended).with(Remedy::Sysctl {
        key: key.to_string(),
        value: target,
    })
}

impl Want {
    fn describe(self) -> String {
        match self {
            Want::AtMost(max) => format!("<= {max}"),
            Want::AtLeast { min, recommended } if min == recommended => format!(">= {min}"),
            Want::AtLeast { min, recommended } => format!(">= {recommended} (>= {min} required)"),
            Want::OneOf(values) => {
                let words: Vec<String> = values.iter().map(u64::to_string).collect();
                words.join(" or ")
            }
            Want::MaxFieldAtLeast(max) => format!("max >= {max}"),
        }
    }

    /// Verdict for a number, and the value a remedy sets.
    fn judge_number(self, value: u64) -> (Verdict, String) {
        match self {
            Want::AtMost(max) => (Verdict::when(value <= max), max.to_string()),
            Want::AtLeast { min, recommended } => {
                assert!(min <= recommended, "a recommendation below the requirement");
                let verdict = if value >= recommended {
                    Verdict::Met
                } else if value >= min {
                    Verdict::Short
                } else {
                    Verdict::Missed
                };
                (verdict, recommended.to_string())
            }
            Want::OneOf(values) => {
                assert!(!values.is_empty(), "OneOf needs at least one value");
                (
                    Verdict::when(values.contains(&value)),
                    values[0].to_string(),
                )
            }
            Want::MaxFieldAtLeast(_) => unreachable!("triples are judged by judge_sysctl"),
        }
    }
}

impl Verdict {
    fn when(met: bool) -> Verdict {
        if met {
            Verdict::Met
        } else {
            Verdict::Missed
        }
    }
}

#[cfg(test)]
mod tests;
