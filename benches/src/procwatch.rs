//! Watches the broker process under test (`--broker-pid`) through `/proc`: its resident
//! memory and the CPU it used since the last reading, once per sample, so a backlog run can
//! plot broker RSS against backlog size. Reads two small files per second. Also reads the
//! process's total CPU time ([`cpu_seconds`]) at the start and end of the measured interval,
//! for the broker's CPU µs per message.
//! Must never write to, signal or otherwise touch the watched process.

use std::path::PathBuf;
use std::time::Instant;

/// One reading of the watched process.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcessReading {
    /// Resident set size (VmRSS), bytes.
    pub rss_bytes: u64,
    /// CPU used since the previous reading, in cores (None on the first reading).
    pub cpu_cores: Option<f64>,
}

/// Reads `/proc/<pid>/status` and `/proc/<pid>/stat` of one process.
#[derive(Debug)]
pub struct ProcessProbe {
    dir: PathBuf,
    ticks_per_s: f64,
    last: Option<(Instant, u64)>,
}

impl ProcessProbe {
    /// A probe of process `pid` under `proc_root` (normally `/proc`); fails if the process's
    /// files cannot be read now.
    ///
    /// # Errors
    /// The I/O error of the first reading.
    pub fn new(proc_root: impl Into<PathBuf>, pid: u32) -> std::io::Result<Self> {
        let mut probe = Self {
            dir: proc_root.into().join(pid.to_string()),
            ticks_per_s: clock_ticks_per_second(),
            last: None,
        };
        probe.try_read()?;
        Ok(probe)
    }

    /// The current reading; `None` once the process is gone.
    pub fn read(&mut self) -> Option<ProcessReading> {
        self.try_read().ok()
    }

    fn try_read(&mut self) -> std::io::Result<ProcessReading> {
        let status = std::fs::read_to_string(self.dir.join("status"))?;
        let stat = std::fs::read_to_string(self.dir.join("stat"))?;
        let invalid = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what);
        let rss_bytes = vm_rss_bytes(&status).ok_or_else(|| invalid("no VmRSS in status"))?;
        let ticks = cpu_ticks(&stat).ok_or_else(|| invalid("malformed stat"))?;
        let now = Instant::now();
        let cpu_cores = self.last.map(|(at, before)| {
            let wall = now.saturating_duration_since(at).as_secs_f64().max(1e-3);
            ticks.saturating_sub(before) as f64 / self.ticks_per_s / wall
        });
        self.last = Some((now, ticks));
        Ok(ProcessReading {
            rss_bytes,
            cpu_cores,
        })
    }
}

/// Clock ticks per second of `/proc/<pid>/stat` times.
fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf only reads a configuration value.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

/// CPU seconds (user + system, all threads) process `pid` has used so far, read from
/// `<proc_root>/<pid>/stat`; resolution one clock tick (10 ms).
///
/// # Errors
/// The read error, or `InvalidData` for a malformed file.
pub fn cpu_seconds(proc_root: impl Into<PathBuf>, pid: u32) -> std::io::Result<f64> {
    let stat = std::fs::read_to_string(proc_root.into().join(pid.to_string()).join("stat"))?;
    let ticks = cpu_ticks(&stat)
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "malformed stat"))?;
    Ok(ticks as f64 / clock_ticks_per_second())
}

/// `VmRSS:   1234 kB` → bytes.
fn vm_rss_bytes(status: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line
        .trim_start_matches("VmRSS:")
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// utime + stime (clock ticks) from `/proc/<pid>/stat`; the command name may hold spaces and
/// parentheses, so fields are counted after the last `)`.
fn cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ")": field 3 (state) is index 0, so utime (14) is 11 and stime (15) is 12.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "4242 (rmq (shard) x) S 1 4242 4242 0 -1 4194560 100 0 0 0 \
                        250 50 0 0 20 0 9 0 12345 1000000 300 18446744073709551615";

    #[test]
    fn parses_rss_and_cpu_ticks() {
        assert_eq!(
            vm_rss_bytes("Name:\trmq\nVmRSS:\t   72340 kB\nThreads: 9\n"),
            Some(72_340 * 1024)
        );
        assert_eq!(vm_rss_bytes("Name:\trmq\n"), None);
        assert_eq!(cpu_ticks(STAT), Some(300));
        assert_eq!(cpu_ticks("garbage"), None);
    }

    #[test]
    fn reads_a_fake_proc_root_and_reports_cpu_between_readings() {
        let root = std::env::temp_dir().join(format!("rmq-procwatch-{}", std::process::id()));
        let dir = root.join("4242");
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join("status"), "VmRSS:\t1024 kB\n").expect("write");
        std::fs::write(dir.join("stat"), STAT).expect("write");
        let mut probe = ProcessProbe::new(&root, 4242).expect("readable");
        let ticks_per_s = clock_ticks_per_second();
        let cpu = cpu_seconds(&root, 4242).expect("readable");
        assert!((cpu - 300.0 / ticks_per_s).abs() < 1e-9);
        std::fs::write(dir.join("stat"), STAT.replace(" 250 50 ", " 350 50 ")).expect("write");
        let reading = probe.read().expect("reading");
        assert_eq!(reading.rss_bytes, 1024 * 1024);
        assert!(reading.cpu_cores.expect("second reading has cpu") > 0.0);
        std::fs::remove_dir_all(&dir).expect("rm");
        assert_eq!(probe.read(), None, "a vanished process reads as None");
        assert!(ProcessProbe::new(&root, 4242).is_err());
        std::fs::remove_dir_all(&root).expect("rm");
    }
}
