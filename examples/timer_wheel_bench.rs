//! Benchmark of one shard's timing wheel without the network (perf-reports/2026-12-06-timer):
//! schedules N timers spread over the maximum delay, printing the scheduling rate, the wheel's
//! checkpoint time and the process RSS at each power of ten of pending timers (memory must stay
//! flat: timers live in the timer log on disk); then fires a 10-minute range of timers against
//! a virtual clock to measure the delivery-side rate of the structure (chain reads, slot
//! finishes, round promotions).
//!
//! `cargo run --release --example timer_wheel_bench -- <dir> <pending> <fire_count>`

use std::path::PathBuf;
use std::time::Instant;

use rmq::broker::timer::wheel::{TimerEntry, TimerWheel, WheelSettings};

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().unwrap_or_else(|| "target/timer-bench".into()));
    let pending: u64 = args.next().map_or(Ok(10_000_000), |a| a.parse())?;
    let fire_count: u64 = args.next().map_or(Ok(1_000_000), |a| a.parse())?;
    let _ = std::fs::remove_dir_all(&dir);
    let settings = WheelSettings {
        precision_ms: 1_000,
        round_ms: 3_600_000,
        max_delay_ms: 40 * 24 * 3_600_000,
    };
    let now: i64 = 1_800_000_000_000;
    let (mut wheel, _) = TimerWheel::open(&dir, settings, now)?;
    println!("rss_kib_empty_wheel={}", rss_kib());
    let span = i64::try_from(settings.max_delay_ms)?;
    let started = Instant::now();
    let mut next_report = 100_000;
    for i in 0..pending {
        // A multiplicative hash spreads due times over the whole 40 days.
        let spread = (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 16) % u64::try_from(span)?;
        wheel.schedule(TimerEntry {
            deliver_ms: now + i64::try_from(spread)?,
            queue_offset: i,
        })?;
        if i + 1 == next_report {
            let elapsed = started.elapsed().as_secs_f64();
            let checkpoint = Instant::now();
            wheel.checkpoint_blocking(&[])?;
            println!(
                "pending={} schedule_rate_per_s={:.0} rss_kib={} checkpoint_ms={:.1}",
                i + 1,
                (i + 1) as f64 / elapsed,
                rss_kib(),
                checkpoint.elapsed().as_secs_f64() * 1e3
            );
            next_report *= 10;
        }
    }
    let disk: u64 = std::fs::read_dir(dir.join("timerlog"))?
        .filter_map(Result::ok)
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum();
    println!(
        "timer_log_bytes={disk} bytes_per_timer={:.1}",
        disk as f64 / pending as f64
    );
    drop(wheel);

    // Delivery side: a fresh wheel, fire_count timers over 10 minutes, fired on a virtual clock.
    let fire_dir = dir.join("fire");
    let (mut wheel, _) = TimerWheel::open(&fire_dir, settings, now)?;
    let range_ms: i64 = 600_000;
    for i in 0..fire_count {
        let offset = i64::try_from(i)? * range_ms / i64::try_from(fire_count)?;
        wheel.schedule(TimerEntry {
            deliver_ms: now + offset,
            queue_offset: i,
        })?;
    }
    let started = Instant::now();
    let mut fired = 0u64;
    let end = now + range_ms + 1_000;
    while let Some(_slot) = wheel.due_slot(end) {
        let start = wheel.due_chain();
        let mut chain = start;
        while !chain.is_done() {
            fired += wheel.read_chain(&mut chain, 256)?.len() as u64;
        }
        wheel.finish_slot(start)?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    assert_eq!(fired, fire_count, "every timer fires once");
    println!(
        "fired={fired} fire_rate_per_s={:.0} rss_kib={}",
        fired as f64 / elapsed,
        rss_kib()
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
