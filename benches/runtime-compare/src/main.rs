//! runtime-compare: compio 0.19 and glommio 0.9 side by side on this machine.
//!
//! Owns: the command line, the test files (zero-filled with O_DIRECT before any measurement,
//! refused on tmpfs), the repetition loop that alternates which runtime goes first, the medians,
//! and the JSON report plus its markdown table. Evidence for the broker's runtime choice.
//! Must never: run a measurement on tmpfs or without O_DIRECT, write outside the test
//! directory and the report path, or touch the broker workspace (this crate is standalone).
//!
//! Measurements per runtime and repetition: 64-byte TCP echo with 1 and 16 connections (server
//! pinned to one core, client to the other), sequential 256 KiB O_DIRECT overwrites with 8 and
//! 1 writes in flight, and 4 KiB O_DIRECT write + fdatasync latency.

mod common;
mod compio_driver;
#[cfg(feature = "glommio")]
mod glommio_driver;
mod stats;

use std::io::{self, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use common::{AlignedBuf, Config, APPEND_WRITE_BYTES, CONNECTIONS_MANY};
use stats::{median, RuntimeRun};

/// compio version under test (pinned with `=` in Cargo.toml, as in the broker workspace).
const COMPIO_VERSION: &str = "0.19.2";
/// glommio version under test (pinned with `=` in Cargo.toml).
const GLOMMIO_VERSION: &str = "0.9.0";
/// Repetitions accepted on the command line; the run must stay a few minutes long.
const REPETITIONS_MAX: usize = 21;
/// Bytes of each zero-filling write while preallocating the test files.
const PREALLOCATE_CHUNK_BYTES: usize = 1024 * 1024;
/// statfs magic of tmpfs, where O_DIRECT is meaningless.
const TMPFS_MAGIC: i64 = 0x0102_1994;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Runtime {
    Compio,
    Glommio,
}

impl Runtime {
    fn name(self) -> &'static str {
        match self {
            Runtime::Compio => "compio",
            Runtime::Glommio => "glommio",
        }
    }
}

#[derive(Debug)]
struct Options {
    repetitions: usize,
    runtimes: Vec<Runtime>,
    data_dir: PathBuf,
    out: PathBuf,
    config: Config,
}

fn usage() -> String {
    "usage: runtime-compare [--reps N] [--runtimes compio,glommio] [--tcp-seconds S] \
     [--tcp-warmup-ms MS] [--append-mib MIB] [--sync-iterations N] [--sync-warmup N] \
     [--dir PATH] [--out FILE.json]"
        .to_owned()
}

fn parse_number<T: std::str::FromStr>(flag: &str, value: Option<String>) -> io::Result<T> {
    let value = value.ok_or_else(|| invalid(format!("{flag} needs a value")))?;
    value
        .parse()
        .map_err(|_| invalid(format!("{flag}: cannot parse {value:?}")))
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

fn parse_options(mut args: impl Iterator<Item = String>) -> io::Result<Options> {
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut repetitions = 5usize;
    let mut runtimes = vec![Runtime::Compio];
    if cfg!(feature = "glommio") {
        runtimes.push(Runtime::Glommio);
    }
    let mut tcp_seconds = 3.0f64;
    let mut tcp_warmup_ms = 500u64;
    let mut append_mib = 1024u64;
    let mut sync_iterations = 2000u64;
    let mut sync_warmup_iterations = 50u64;
    let mut data_dir = manifest_dir.join("target").join("bench-data");
    let mut out = PathBuf::from("runtime-compare.json");
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--reps" => repetitions = parse_number(&flag, args.next())?,
            "--tcp-seconds" => tcp_seconds = parse_number(&flag, args.next())?,
            "--tcp-warmup-ms" => tcp_warmup_ms = parse_number(&flag, args.next())?,
            "--append-mib" => append_mib = parse_number(&flag, args.next())?,
            "--sync-iterations" => sync_iterations = parse_number(&flag, args.next())?,
            "--sync-warmup" => sync_warmup_iterations = parse_number(&flag, args.next())?,
            "--dir" => data_dir = PathBuf::from(parse_number::<String>(&flag, args.next())?),
            "--out" => out = PathBuf::from(parse_number::<String>(&flag, args.next())?),
            "--runtimes" => {
                let list: String = parse_number(&flag, args.next())?;
                runtimes = list
                    .split(',')
                    .map(|name| match name {
                        "compio" => Ok(Runtime::Compio),
                        "glommio" if cfg!(feature = "glommio") => Ok(Runtime::Glommio),
                        "glommio" => Err(invalid("built without the glommio feature".into())),
                        other => Err(invalid(format!("unknown runtime {other:?}"))),
                    })
                    .collect::<io::Result<_>>()?;
            }
            "--help" | "-h" => return Err(invalid(usage())),
            other => return Err(invalid(format!("unknown flag {other:?}\n{}", usage()))),
        }
    }
    if !(1..=REPETITIONS_MAX).contains(&repetitions) {
        return Err(invalid(format!("--reps must be 1..={REPETITIONS_MAX}")));
    }
    if runtimes.is_empty()
        || tcp_seconds.is_nan()
        || tcp_seconds <= 0.0
        || append_mib == 0
        || sync_iterations == 0
    {
        return Err(invalid(format!("empty measurement requested\n{}", usage())));
    }
    let append_bytes = append_mib * 1024 * 1024;
    assert!(
        append_bytes.is_multiple_of(APPEND_WRITE_BYTES as u64),
        "1 MiB is a multiple of 256 KiB"
    );
    let config = Config {
        server_core: 0,
        client_core: 1,
        tcp_warmup: Duration::from_millis(tcp_warmup_ms),
        tcp_measure: Duration::from_secs_f64(tcp_seconds),
        append_path: data_dir.join("append.dat"),
        append_bytes,
        sync_path: data_dir.join("sync.dat"),
        sync_iterations,
        sync_warmup_iterations,
    };
    Ok(Options {
        repetitions,
        runtimes,
        data_dir,
        out,
        config,
    })
}

/// First line of a command's standard output, or a note saying why there is none.
fn command_output(program: &str, args: &[&str]) -> String {
    match Command::new(program).args(args).output() {
        Ok(output) if output.status.success() => {
            String::from_utf8_lossy(&output.stdout).trim().to_owned()
        }
        Ok(output) => format!("unavailable ({program} exited with {})", output.status),
        Err(error) => format!("unavailable ({program}: {error})"),
    }
}

fn lscpu_field(lscpu: &str, field: &str) -> String {
    lscpu
        .lines()
        .find_map(|line| line.strip_prefix(field).map(|rest| rest.trim().to_owned()))
        .unwrap_or_else(|| "unknown".to_owned())
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| text.trim().to_owned())
        .unwrap_or_else(|error| format!("unavailable ({error})"))
}

#[derive(Debug, Serialize)]
struct Environment {
    cpu_model: String,
    cpus: String,
    threads_per_core: String,
    hypervisor: String,
    kernel: String,
    glibc: String,
    rustc: String,
    test_dir: String,
    filesystem: String,
    filesystem_source: String,
    statfs_magic: String,
    o_direct: bool,
    git_head: String,
    load_average_at_start: String,
    load_average_at_end: String,
}

fn statfs_magic(path: &Path) -> io::Result<i64> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| invalid(format!("{} contains a NUL byte", path.display())))?;
    let mut buf = std::mem::MaybeUninit::<libc::statfs>::zeroed();
    // SAFETY: `c_path` is a valid NUL-terminated string and `buf` is writable memory of the
    // size statfs(2) fills; it is read only after the call reports success.
    let rc = unsafe { libc::statfs(c_path.as_ptr(), buf.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: statfs returned 0, so it initialised the whole struct.
    let stat = unsafe { buf.assume_init() };
    Ok(stat.f_type)
}

fn environment(data_dir: &Path) -> io::Result<Environment> {
    let lscpu = command_output("lscpu", &[]);
    let dir = data_dir.to_string_lossy().into_owned();
    let magic = statfs_magic(data_dir)?;
    if magic == TMPFS_MAGIC {
        return Err(invalid(format!(
            "{dir} is on tmpfs: O_DIRECT numbers would be meaningless"
        )));
    }
    let repo = env!("CARGO_MANIFEST_DIR");
    Ok(Environment {
        cpu_model: lscpu_field(&lscpu, "Model name:"),
        cpus: lscpu_field(&lscpu, "CPU(s):"),
        threads_per_core: lscpu_field(&lscpu, "Thread(s) per core:"),
        hypervisor: lscpu_field(&lscpu, "Hypervisor vendor:"),
        kernel: command_output("uname", &["-r"]),
        glibc: command_output("getconf", &["GNU_LIBC_VERSION"]),
        rustc: command_output("rustc", &["--version"]),
        filesystem: command_output("findmnt", &["-n", "-o", "FSTYPE", "-T", &dir]),
        filesystem_source: command_output("findmnt", &["-n", "-o", "SOURCE", "-T", &dir]),
        test_dir: dir.clone(),
        statfs_magic: format!("{magic:#x}"),
        o_direct: true,
        git_head: command_output("git", &["-C", repo, "rev-parse", "--short", "HEAD"]),
        load_average_at_start: load_average(),
        load_average_at_end: String::new(),
    })
}

/// Creates `path` with `bytes` of zeros written through O_DIRECT, then fsyncs it, so the
/// measured writes overwrite allocated, initialised blocks (no extent conversion).
fn preallocate(path: &Path, bytes: u64) -> io::Result<()> {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)?;
    if !common::o_direct_enabled(std::os::fd::AsRawFd::as_raw_fd(&file))? {
        return Err(io::Error::other(format!(
            "{} did not open with O_DIRECT",
            path.display()
        )));
    }
    let zeros = AlignedBuf::new(PREALLOCATE_CHUNK_BYTES);
    let mut position = 0u64;
    while position < bytes {
        let chunk = (bytes - position).min(PREALLOCATE_CHUNK_BYTES as u64) as usize;
        file.write_all_at(&zeros.as_slice()[..chunk], position)?;
        position += chunk as u64;
    }
    file.sync_all()?;
    assert_eq!(
        file.metadata()?.len(),
        bytes,
        "preallocated file has the wrong size"
    );
    Ok(())
}

fn run_once(runtime: Runtime, config: &Config) -> io::Result<RunMeasurements> {
    let step = |name: &str| eprintln!("  {:>7} {name}", runtime.name());
    let measurements = match runtime {
        Runtime::Compio => {
            step("tcp x1");
            let tcp_1 = compio_driver::tcp(config, 1)?;
            step("tcp x16");
            let tcp_16 = compio_driver::tcp(config, CONNECTIONS_MANY)?;
            step("append x8");
            let append_8 = compio_driver::append(config, 8)?;
            step("append x1");
            let append_1 = compio_driver::append(config, 1)?;
            step("write+fdatasync");
            let sync = compio_driver::write_fdatasync(config)?;
            RunMeasurements {
                tcp_1,
                tcp_16,
                append_8,
                append_1,
                sync,
            }
        }
        #[cfg(feature = "glommio")]
        Runtime::Glommio => {
            step("tcp x1");
            let tcp_1 = glommio_driver::tcp(config, 1)?;
            step("tcp x16");
            let tcp_16 = glommio_driver::tcp(config, CONNECTIONS_MANY)?;
            step("append x8");
            let append_8 = glommio_driver::append(config, 8)?;
            step("append x1");
            let append_1 = glommio_driver::append(config, 1)?;
            step("write+fdatasync");
            let sync = glommio_driver::write_fdatasync(config)?;
            RunMeasurements {
                tcp_1,
                tcp_16,
                append_8,
                append_1,
                sync,
            }
        }
        #[cfg(not(feature = "glommio"))]
        Runtime::Glommio => return Err(invalid("built without the glommio feature".into())),
    };
    let all_direct = measurements.append_8.o_direct
        && measurements.append_1.o_direct
        && measurements.sync.o_direct;
    if !all_direct {
        return Err(io::Error::other(format!(
            "{} opened a test file without O_DIRECT",
            runtime.name()
        )));
    }
    Ok(measurements)
}

struct RunMeasurements {
    tcp_1: stats::TcpResult,
    tcp_16: stats::TcpResult,
    append_8: stats::AppendResult,
    append_1: stats::AppendResult,
    sync: stats::SyncResult,
}

/// One row of the summary table: a metric's median per runtime.
#[derive(Debug, Serialize)]
struct MedianRow {
    metric: &'static str,
    unit: &'static str,
    higher_is_better: bool,
    compio: Option<f64>,
    glommio: Option<f64>,
    ratio_glommio_over_compio: Option<f64>,
}

type Extract = fn(&RuntimeRun) -> f64;

const METRICS: [(&str, &str, bool, Extract); 22] = [
    ("tcp 1 conn round trips/s", "1/s", true, |r| {
        r.tcp_1_connection.round_trips_per_second
    }),
    ("tcp 1 conn p50", "us", false, |r| {
        r.tcp_1_connection.latency.p50_us
    }),
    ("tcp 1 conn p99", "us", false, |r| {
        r.tcp_1_connection.latency.p99_us
    }),
    ("tcp 1 conn p99.9", "us", false, |r| {
        r.tcp_1_connection.latency.p999_us
    }),
    ("tcp 1 conn client CPU per round trip", "us", false, |r| {
        r.tcp_1_connection.client_cpu.cpu_us_per_operation
    }),
    ("tcp 1 conn server CPU per round trip", "us", false, |r| {
        r.tcp_1_connection.server_cpu.cpu_us_per_operation
    }),
    (
        "tcp 1 conn client involuntary switches",
        "count",
        false,
        |r| r.tcp_1_connection.client_cpu.involuntary_switches as f64,
    ),
    ("tcp 16 conn round trips/s", "1/s", true, |r| {
        r.tcp_16_connections.round_trips_per_second
    }),
    ("tcp 16 conn p50", "us", false, |r| {
        r.tcp_16_connections.latency.p50_us
    }),
    ("tcp 16 conn p99", "us", false, |r| {
        r.tcp_16_connections.latency.p99_us
    }),
    ("tcp 16 conn p99.9", "us", false, |r| {
        r.tcp_16_connections.latency.p999_us
    }),
    ("tcp 16 conn client CPU per round trip", "us", false, |r| {
        r.tcp_16_connections.client_cpu.cpu_us_per_operation
    }),
    ("tcp 16 conn server CPU per round trip", "us", false, |r| {
        r.tcp_16_connections.server_cpu.cpu_us_per_operation
    }),
    ("O_DIRECT append 256K x8 in flight", "MB/s", true, |r| {
        r.append_in_flight_8.megabytes_per_second
    }),
    ("O_DIRECT append 256K x8 CPU per write", "us", false, |r| {
        r.append_in_flight_8.cpu.cpu_us_per_operation
    }),
    ("O_DIRECT append 256K x1 in flight", "MB/s", true, |r| {
        r.append_in_flight_1.megabytes_per_second
    }),
    ("O_DIRECT append 256K x1 CPU per write", "us", false, |r| {
        r.append_in_flight_1.cpu.cpu_us_per_operation
    }),
    ("4K write+fdatasync p50", "us", false, |r| {
        r.write_fdatasync_4k.latency.p50_us
    }),
    ("4K write+fdatasync p99", "us", false, |r| {
        r.write_fdatasync_4k.latency.p99_us
    }),
    ("4K write+fdatasync p99.9", "us", false, |r| {
        r.write_fdatasync_4k.latency.p999_us
    }),
    ("4K write+fdatasync mean", "us", false, |r| {
        r.write_fdatasync_4k.latency.mean_us
    }),
    ("4K write+fdatasync CPU per iteration", "us", false, |r| {
        r.write_fdatasync_4k.cpu.cpu_us_per_operation
    }),
];

fn medians(runs: &[RuntimeRun]) -> Vec<MedianRow> {
    let of = |runtime: &str, extract: Extract| {
        let values: Vec<f64> = runs
            .iter()
            .filter(|run| run.runtime == runtime)
            .map(extract)
            .collect();
        (!values.is_empty()).then(|| median(&values))
    };
    METRICS
        .iter()
        .map(|&(metric, unit, higher_is_better, extract)| {
            let compio = of("compio", extract);
            let glommio = of("glommio", extract);
            let ratio = compio.zip(glommio).map(|(c, g)| g / c);
            MedianRow {
                metric,
                unit,
                higher_is_better,
                compio,
                glommio,
                ratio_glommio_over_compio: ratio,
            }
        })
        .collect()
}

fn markdown_table(rows: &[MedianRow]) -> String {
    let cell = |value: Option<f64>| value.map_or("n/a".to_owned(), |v| format!("{v:.1}"));
    let mut table = String::from(
        "| metric | unit | compio median | glommio median | ratio glommio/compio |\n\
         | --- | --- | ---: | ---: | ---: |\n",
    );
    for row in rows {
        let ratio = row
            .ratio_glommio_over_compio
            .map_or("n/a".to_owned(), |r| format!("{r:.3}"));
        table.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            row.metric,
            row.unit,
            cell(row.compio),
            cell(row.glommio),
            ratio
        ));
    }
    table
}

#[derive(Debug, Serialize)]
struct Report {
    schema: &'static str,
    started_unix_seconds: u64,
    wall_seconds: f64,
    command: String,
    build_command: &'static str,
    compio_version: &'static str,
    glommio_version: &'static str,
    glommio_built: bool,
    repetitions: usize,
    order: &'static str,
    parameters: serde_json::Value,
    environment: Environment,
    preallocate_seconds: f64,
    medians: Vec<MedianRow>,
    runs: Vec<RuntimeRun>,
}

fn run(options: Options) -> io::Result<()> {
    let started = Instant::now();
    let started_unix_seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(io::Error::other)?
        .as_secs();
    std::fs::create_dir_all(&options.data_dir)?;
    let mut environment = environment(&options.data_dir)?;
    let config = &options.config;
    eprintln!(
        "preallocating {} MiB + sync file in {}",
        config.append_bytes >> 20,
        options.data_dir.display()
    );
    let preallocating = Instant::now();
    preallocate(&config.append_path, config.append_bytes)?;
    preallocate(&config.sync_path, config.sync_file_bytes())?;
    std::fs::File::open(&options.data_dir)?.sync_all()?;
    let preallocate_seconds = preallocating.elapsed().as_secs_f64();

    let mut runs = Vec::new();
    for repetition in 0..options.repetitions {
        let mut order = options.runtimes.clone();
        if repetition % 2 == 1 {
            order.reverse();
        }
        for (position, &runtime) in order.iter().enumerate() {
            let load_average_before = load_average();
            eprintln!(
                "repetition {repetition}: {} (load {load_average_before})",
                runtime.name()
            );
            let m = run_once(runtime, config)?;
            runs.push(RuntimeRun {
                runtime: runtime.name(),
                repetition,
                order_in_repetition: position,
                load_average_before,
                tcp_1_connection: m.tcp_1,
                tcp_16_connections: m.tcp_16,
                append_in_flight_8: m.append_8,
                append_in_flight_1: m.append_1,
                write_fdatasync_4k: m.sync,
            });
        }
    }
    environment.load_average_at_end = load_average();
    let rows = medians(&runs);
    let table = markdown_table(&rows);
    let report = Report {
        schema: "runtime-compare/1",
        started_unix_seconds,
        wall_seconds: started.elapsed().as_secs_f64(),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        build_command: "cargo build --release -j 1 (in benches/runtime-compare)",
        compio_version: COMPIO_VERSION,
        glommio_version: GLOMMIO_VERSION,
        glommio_built: cfg!(feature = "glommio"),
        repetitions: options.repetitions,
        order: "runtimes alternate: even repetitions run compio first, odd ones glommio first",
        parameters: serde_json::json!({
            "server_core": config.server_core,
            "client_core": config.client_core,
            "disk_core": config.client_core,
            "message_bytes": common::MESSAGE_BYTES,
            "connections": [1, CONNECTIONS_MANY],
            "tcp_warmup_seconds": config.tcp_warmup.as_secs_f64(),
            "tcp_measure_seconds": config.tcp_measure.as_secs_f64(),
            "append_write_bytes": APPEND_WRITE_BYTES,
            "append_total_bytes": config.append_bytes,
            "append_in_flight": [8, 1],
            "sync_write_bytes": common::SYNC_WRITE_BYTES,
            "sync_iterations": config.sync_iterations,
            "sync_warmup_iterations": config.sync_warmup_iterations,
            "direct_align_bytes": common::DIRECT_ALIGN,
            "test_files": [config.append_path, config.sync_path],
        }),
        environment,
        preallocate_seconds,
        medians: rows,
        runs,
    };
    let json = serde_json::to_string_pretty(&report).map_err(io::Error::other)?;
    if let Some(parent) = options.out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&options.out, json + "\n")?;
    let mut stdout = io::stdout().lock();
    writeln!(stdout, "{table}")?;
    writeln!(stdout, "report: {}", options.out.display())?;
    Ok(())
}

fn main() -> ExitCode {
    let result = parse_options(std::env::args().skip(1)).and_then(run);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("runtime-compare: {error}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_defaults_and_flags() {
        let options = parse_options(
            [
                "--reps",
                "3",
                "--append-mib",
                "4",
                "--runtimes",
                "compio",
                "--tcp-seconds",
                "0.5",
            ]
            .into_iter()
            .map(String::from),
        )
        .expect("valid flags");
        assert_eq!(options.repetitions, 3);
        assert_eq!(options.runtimes, vec![Runtime::Compio]);
        assert_eq!(options.config.append_bytes, 4 << 20);
        assert_eq!(options.config.tcp_measure, Duration::from_millis(500));
        assert!(parse_options(["--reps", "0"].into_iter().map(String::from)).is_err());
        assert!(parse_options(["--bogus"].into_iter().map(String::from)).is_err());
    }

    /// Runs every measurement of every built runtime on a tiny budget, on the real disk under
    /// target/ (never tmpfs), and checks the numbers are plausible and O_DIRECT was on.
    #[test]
    fn every_runtime_measures_for_real() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("target")
            .join(format!("test-data-{}", std::process::id()));
        let args = [
            "--reps",
            "1",
            "--tcp-seconds",
            "0.2",
            "--tcp-warmup-ms",
            "20",
        ]
        .into_iter()
        .chain([
            "--append-mib",
            "2",
            "--sync-iterations",
            "20",
            "--sync-warmup",
            "2",
        ])
        .map(String::from)
        .chain(["--dir".to_owned(), dir.to_string_lossy().into_owned()]);
        let options = parse_options(args).expect("valid flags");
        std::fs::create_dir_all(&options.data_dir).expect("test dir");
        let environment = environment(&options.data_dir).expect("not tmpfs");
        assert_ne!(environment.filesystem, "tmpfs");
        let config = &options.config;
        preallocate(&config.append_path, config.append_bytes).expect("preallocate append");
        preallocate(&config.sync_path, config.sync_file_bytes()).expect("preallocate sync");
        for &runtime in &options.runtimes {
            let m = run_once(runtime, config).expect("measurements");
            assert_eq!(m.tcp_1.connections, 1);
            assert_eq!(m.tcp_16.connections, CONNECTIONS_MANY);
            for tcp in [&m.tcp_1, &m.tcp_16] {
                assert!(tcp.round_trips > 0, "{runtime:?}: no round trip recorded");
                // The server echoed exactly what the client sent, warm-up included.
                assert_eq!(tcp.client_cpu.operations, tcp.server_cpu.operations);
                assert!(tcp.client_cpu.operations >= tcp.round_trips);
                assert!(tcp.latency.p50_us > 0.0 && tcp.latency.p50_us <= tcp.latency.p99_us);
            }
            for append in [&m.append_8, &m.append_1] {
                assert!(append.o_direct, "{runtime:?}: append without O_DIRECT");
                assert_eq!(append.total_bytes, 2 << 20);
                assert!(append.megabytes_per_second > 0.0);
            }
            assert!(m.sync.o_direct);
            assert_eq!(m.sync.iterations, 20);
            assert_eq!(m.sync.cpu.operations, 22, "warm-up and recorded iterations");
            assert_eq!(
                m.append_8.cpu.operations,
                (2 << 20) / APPEND_WRITE_BYTES as u64
            );
            // The writes landed: the append file holds the pattern of buffer 0 at offset 0.
            let head = std::fs::read(&config.append_path).expect("read back");
            assert_eq!(head.len() as u64, config.append_bytes);
            let mut expected = vec![0u8; 64];
            common::fill_pattern(&mut expected, 0);
            assert_eq!(
                &head[..64],
                &expected[..],
                "{runtime:?}: first block not written"
            );
        }
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn lscpu_fields_are_found() {
        let text = "Architecture: x86_64\nModel name:   Some CPU @ 2GHz\nCPU(s):  2\n";
        assert_eq!(lscpu_field(text, "Model name:"), "Some CPU @ 2GHz");
        assert_eq!(lscpu_field(text, "CPU(s):"), "2");
        assert_eq!(lscpu_field(text, "Missing:"), "unknown");
    }
}
