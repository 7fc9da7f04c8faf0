//! `rmq-bench`: parses the command line, runs the benchmark with a live progress line on
//! stderr, prints the final table on stdout and writes the JSON report and plots when
//! `--report` is given. All logic lives in the `rmq_bench` library.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::Parser;
use rmq_bench::cli::BenchArgs;
use rmq_bench::progress::format_line;
use rmq_bench::report::Report;
use rmq_bench::run::run;
use rmq_bench::sysinfo::MachineInfo;

fn main() -> ExitCode {
    let command: Vec<String> = std::env::args().collect();
    let args = BenchArgs::parse();
    let machine = MachineInfo::collect();
    let terminal = std::io::stderr().is_terminal();
    let quiet = args.quiet;
    let mut progress = |progress: &rmq_bench::run::Progress| {
        if quiet {
            return;
        }
        let line = format_line(progress);
        let mut stderr = std::io::stderr().lock();
        // Progress output is best effort: a closed stderr must not stop the run.
        let _ = if terminal {
            write!(stderr, "\r\x1b[2K{line}")
        } else {
            writeln!(stderr, "{line}")
        };
        let _ = stderr.flush();
    };
    let outcome = match run(&args, &mut progress) {
        Ok(outcome) => outcome,
        Err(error) => {
            eprintln!("\nrmq-bench: {error}");
            return ExitCode::from(2);
        }
    };
    if terminal && !quiet {
        eprintln!();
    }
    let mut report = Report::build(&args, command, machine, outcome);
    if let Some(path) = &args.report {
        match report.write(path) {
            Ok(files) => {
                for file in files {
                    eprintln!("wrote {}", file.display());
                }
            }
            Err(error) => {
                eprintln!(
                    "rmq-bench: cannot write the report to {}: {error}",
                    path.display()
                );
                print!("{}", report.table());
                return ExitCode::from(1);
            }
        }
    }
    print!("{}", report.table());
    ExitCode::SUCCESS
}
