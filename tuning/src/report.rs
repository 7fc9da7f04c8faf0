//! The evaluated report and its human (table) and machine (JSON) renderings.
//! Owns column layout and the exit-code rule (non-zero iff any check fails).
//! Must never probe or judge: it only formats [`CheckResult`]s it is given.

use std::io::Write;
use std::path::PathBuf;

use serde::Serialize;

use crate::checks::{CheckResult, Status};
use crate::error::TuningError;
use crate::probe::LimitsSource;

/// Exit code when no check fails (warnings and infos included).
pub const EXIT_OK: i32 = 0;

/// Exit code when at least one check fails.
pub const EXIT_FAIL: i32 = 1;

/// Widest CURRENT / RECOMMENDED column before a long value simply overflows its cell: keeps the
/// table readable on a 120-column terminal.
const VALUE_COLUMN_WIDTH_MAX: usize = 44;

/// Everything `rmq tuning check` found on one host.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// The root the host was read through.
    pub root: PathBuf,
    /// Data directory checked, if any.
    pub data_dir: Option<PathBuf>,
    /// Shard count the requirements were sized for.
    pub shards: usize,
    /// Where resource limits came from.
    pub limits_source: LimitsSource,
    /// One result per check, in catalog order.
    pub results: Vec<CheckResult>,
}

/// How many results have each status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Meet the recommendation.
    pub ok: usize,
    /// Not available, or advisory and not met.
    pub info: usize,
    /// Miss a recommendation.
    pub warn: usize,
    /// Must be fixed.
    pub fail: usize,
}

impl Report {
    /// Counts per status.
    pub fn summary(&self) -> Summary {
        let mut summary = Summary::default();
        for result in &self.results {
            match result.status {
                Status::Ok => summary.ok += 1,
                Status::Info => summary.info += 1,
                Status::Warn => summary.warn += 1,
                Status::Fail => summary.fail += 1,
            }
        }
        assert_eq!(
            summary.ok + summary.info + summary.warn + summary.fail,
            self.results.len()
        );
        summary
    }

    /// [`EXIT_FAIL`] if any check fails, else [`EXIT_OK`].
    pub fn exit_code(&self) -> i32 {
        if self
            .results
            .iter()
            .any(|result| result.status == Status::Fail)
        {
            EXIT_FAIL
        } else {
            EXIT_OK
        }
    }

    /// The result of one check, by id.
    pub fn result(&self, id: &str) -> Option<&CheckResult> {
        self.results.iter().find(|result| result.id == id)
    }
}

/// Writes the table: a header line, one row per check, and a summary.
///
/// # Errors
/// [`TuningError::Output`] if writing fails.
pub fn write_table(report: &Report, out: &mut dyn Write) -> Result<(), TuningError> {
    let limits = match &report.limits_source {
        LimitsSource::Getrlimit => "getrlimit".to_string(),
        LimitsSource::File(path) => path.clone(),
    };
    let data_dir = report.data_dir.as_ref().map_or_else(
        || "none (disk checks skipped)".to_string(),
        |dir| dir.display().to_string(),
    );
    writeln!(
        out,
        "rmq tuning check: root {}, data dir {data_dir}, {} shards, limits from {limits}\n",
        report.root.display(),
        report.shards,
    )?;
    let id_width = column_width(report.results.iter().map(|result| result.id), usize::MAX);
    let current_width = column_width(
        report.results.iter().map(|result| result.current.as_str()),
        VALUE_COLUMN_WIDTH_MAX,
    );
    writeln!(
        out,
        "{:<6}  {:<id_width$}  {:<current_width$}  RECOMMENDED",
        "STATUS", "CHECK", "CURRENT"
    )?;
    for result in &report.results {
        writeln!(
            out,
            "{:<6}  {:<id_width$}  {:<current_width$}  {}",
            result.status.label(),
            result.id,
            result.current,
            result.recommended,
        )?;
    }
    let summary = report.summary();
    writeln!(
        out,
        "\n{} checks: {} ok, {} info, {} warn, {} fail; exit code {}.",
        report.results.len(),
        summary.ok,
        summary.info,
        summary.warn,
        summary.fail,
        report.exit_code(),
    )?;
    writeln!(
        out,
        "Why each check matters and how to check it by hand: tuning/README.md.\n\
         `rmq tuning check --script` prints the commands for every WARN and FAIL."
    )?;
    Ok(())
}

fn column_width<'a>(values: impl Iterator<Item = &'a str>, cap: usize) -> usize {
    values
        .map(|value| value.chars().count())
        .max()
        .unwrap_or(0)
        .min(cap)
        .max("CURRENT".len())
}

#[derive(Serialize)]
struct JsonReport<'a> {
    #[serde(flatten)]
    report: &'a Report,
    summary: Summary,
    exit_code: i32,
}

/// Writes the report as one pretty-printed JSON document.
///
/// # Errors
/// [`TuningError::Json`] or [`TuningError::Output`] if serialising or writing fails.
pub fn write_json(report: &Report, out: &mut dyn Write) -> Result<(), TuningError> {
    let document = JsonReport {
        report,
        summary: report.summary(),
        exit_code: report.exit_code(),
    };
    serde_json::to_writer_pretty(&mut *out, &document)?;
    writeln!(out)?;
    Ok(())
}
