//! Runs `rmq tuning check` on this machine until the `rmq` binary wires it into its CLI.
//!
//! `cargo run -p rmq-tuning --example check -- [--data-dir DIR] [--json | --script]
//!  [--root DIR] [--shards N] [--pid PID]`; exits with the check's exit code.

use std::path::PathBuf;
use std::process::ExitCode;

use rmq_tuning::{run_check, CheckOptions, OutputFormat};

fn main() -> ExitCode {
    let options = match parse_args(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(message) => {
            eprintln!("check: {message}");
            return ExitCode::from(2);
        }
    };
    let mut stdout = std::io::stdout().lock();
    match run_check(&options, &mut stdout) {
        Ok(outcome) => ExitCode::from(u8::try_from(outcome.exit_code).unwrap_or(1)),
        Err(error) => {
            eprintln!("check: {error}");
            ExitCode::from(2)
        }
    }
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<CheckOptions, String> {
    let mut options = CheckOptions::default();
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--json" => options.format = OutputFormat::Json,
            "--script" => options.format = OutputFormat::Script,
            "--root" => options.root = PathBuf::from(value("--root")?),
            "--data-dir" => options.data_dir = Some(PathBuf::from(value("--data-dir")?)),
            "--shards" => {
                let text = value("--shards")?;
                options.shards = Some(text.parse().map_err(|_| format!("bad --shards {text}"))?);
            }
            "--pid" => {
                let text = value("--pid")?;
                options.pid = Some(text.parse().map_err(|_| format!("bad --pid {text}"))?);
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(options)
}
