//! `rmq-tuning`: host tuning checks for the broker (`rmq tuning check`) and the guides that
//! explain them (`tuning/*.md`).
//!
//! Map, in data-flow order:
//! - [`host`]: the injected filesystem; reads host paths under a root (`/` or a fake root).
//! - [`probe`]: reads every needed file into one [`Observed`] value; resolves the data
//!   directory to its mount and block device.
//! - [`checks`]: the catalog of checks and the pure [`evaluate`]; each result carries the
//!   current value, the recommended value, a [`Status`] and its remedies.
//! - [`report`] prints a table or JSON; [`script`] renders the remedies as a shell script.
//! - [`parse`]: pure parsers of the `/proc` and `/sys` text formats.
//!
//! Must never change the host: fixes are only ever printed as a script, for a human to review.
//! Must never crash on a missing or odd file: that is a "not available" (INFO) result.

pub mod checks;
pub mod error;
pub mod host;
pub mod parse;
pub mod probe;
pub mod report;
pub mod script;

#[cfg(test)]
mod testing;

use std::io::Write;
use std::path::PathBuf;

pub use checks::{evaluate, CheckResult, Context, Severity, Status, CATALOG};
pub use error::TuningError;
pub use host::HostRoot;
pub use probe::{observe, Observed, ProbeRequest};
pub use report::{Report, EXIT_FAIL, EXIT_OK};

/// What `rmq tuning check` prints.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OutputFormat {
    /// A table: status, check, current, recommended.
    #[default]
    Table,
    /// One JSON document with every result, the summary and the exit code.
    Json,
    /// A shell script applying the remedies of every WARN and FAIL (`--script`).
    Script,
}

/// Options of `rmq tuning check`.
#[derive(Clone, Debug)]
pub struct CheckOptions {
    /// Root to read `/proc` and `/sys` under: `/` for this machine, a fake root in tests.
    pub root: PathBuf,
    /// Output format.
    pub format: OutputFormat,
    /// The broker's store directory; without it the disk checks are skipped.
    pub data_dir: Option<PathBuf>,
    /// Shards the broker will run (sizes the memlock requirement); default: online CPUs.
    pub shards: Option<usize>,
    /// Check the resource limits of this running process (the broker) instead of our own.
    pub pid: Option<u32>,
}

impl Default for CheckOptions {
    fn default() -> CheckOptions {
        CheckOptions {
            root: PathBuf::from("/"),
            format: OutputFormat::Table,
            data_dir: None,
            shards: None,
            pid: None,
        }
    }
}

/// What a run found.
#[derive(Clone, Debug)]
pub struct CheckOutcome {
    /// The full report.
    pub report: Report,
    /// Process exit code: [`EXIT_FAIL`] if any check fails, else [`EXIT_OK`].
    pub exit_code: i32,
}

/// Probes and evaluates the host without printing anything.
///
/// # Errors
/// [`TuningError::Root`] if the root is not a directory; [`TuningError::Shards`] if the shard
/// count is out of range.
pub fn check_host(options: &CheckOptions) -> Result<Report, TuningError> {
    let host = HostRoot::new(&options.root)?;
    let request = ProbeRequest {
        data_dir: options.data_dir.clone(),
        pid: options.pid,
    };
    let observed = observe(&host, &request);
    let context = Context::new(&observed, options.shards)?;
    let results = evaluate(&observed, &context);
    assert_eq!(results.len(), CATALOG.len(), "one result per check");
    Ok(Report {
        root: host.root().to_path_buf(),
        data_dir: options.data_dir.clone(),
        shards: context.shards,
        limits_source: observed.limits_source,
        results,
    })
}

/// `rmq tuning check`: probes the host, prints the table, JSON or script to `out`, and returns
/// the outcome whose `exit_code` the binary should exit with.
///
/// # Errors
/// As [`check_host`], plus [`TuningError::Output`] / [`TuningError::Json`] if printing fails.
pub fn run_check(options: &CheckOptions, out: &mut dyn Write) -> Result<CheckOutcome, TuningError> {
    let report = check_host(options)?;
    match options.format {
        OutputFormat::Table => report::write_table(&report, out)?,
        OutputFormat::Json => report::write_json(&report, out)?,
        OutputFormat::Script => script::write_script(&report, out)?,
    }
    let exit_code = report.exit_code();
    Ok(CheckOutcome { report, exit_code })
}

#[cfg(test)]
mod tests;
