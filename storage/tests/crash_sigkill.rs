//! Crash test: a child process appends under SYNC_FLUSH and prints every acknowledged append;
//! the parent SIGKILLs it mid-stream (several times, resuming on the same directory), reopens
//! the log and checks that every acknowledged record is there, byte for byte.
//!
//! The child is this test binary itself, re-run with `MQ_CRASH_CHILD=<dir>,<first_seq>`: the
//! test function then appends forever from several tasks and prints `ACK <seq> <offset>` after
//! each append's fdatasync completed.

mod commitlog_common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::time::Duration;

use commitlog_common::{assert_same, run, scratch, TestRecord};
use rmq_storage::commitlog::{CommitLog, CommitLogConfig, FlushPolicy};
use rmq_storage::file::Disk;

const CHILD_ENV: &str = "MQ_CRASH_CHILD";
const TEST_NAME: &str = "every_acknowledged_append_survives_sigkill";
/// Appending tasks in the child (concurrent waiters make group commit happen).
const CHILD_TASKS: u64 = 8;

fn payload_len(seq: u64) -> usize {
    (seq as usize * 131) % 6000
}

fn config() -> CommitLogConfig {
    CommitLogConfig {
        segment_size_bytes: 1 << 20,
        record_size_max_bytes: 64 * 1024,
        tail_cache_bytes: 1 << 20,
        flush_pending_bytes_max: 256 * 1024,
        flush_policy: FlushPolicy::Sync,
        ..CommitLogConfig::default()
    }
}

/// The child: append and acknowledge until killed.
fn child_main(spec: &str) {
    let (dir, first_seq) = spec.split_once(',').expect("<dir>,<first_seq>");
    let first_seq: u64 = first_seq.parse().expect("first_seq");
    run(async move {
        let (log, _) = CommitLog::open(Path::new(dir), config(), Disk::real())
            .await
            .expect("open");
        let log = Rc::new(log);
        let mut tasks = Vec::new();
        for task in 0..CHILD_TASKS {
            let log = Rc::clone(&log);
            tasks.push(compio::runtime::spawn(async move {
                let mut seq = first_seq + task;
                loop {
                    let record = TestRecord::new(seq, payload_len(seq));
                    let appended = log.append(&record.as_append()).await.expect("append");
                    log.wait_durable(appended.end_offset)
                        .await
                        .expect("durable");
                    println!("ACK {seq} {}", appended.phys_offset);
                    seq += CHILD_TASKS;
                }
            }));
        }
        for task in tasks {
            task.await.expect("task");
        }
    });
}

/// Runs the child for `kill_after`, SIGKILLs it, returns every `(seq, offset)` it acknowledged.
fn run_and_kill(dir: &Path, first_seq: u64, kill_after: Duration) -> Vec<(u64, u64)> {
    let mut child = Command::new(std::env::current_exe().expect("current exe"))
        .args(["--exact", TEST_NAME, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, format!("{},{first_seq}", dir.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut acks = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let mut parts = line.split_whitespace();
            if parts.next() == Some("ACK") {
                let seq = parts.next().and_then(|s| s.parse().ok()).expect("seq");
                let offset = parts.next().and_then(|s| s.parse().ok()).expect("offset");
                acks.push((seq, offset));
            }
        }
        acks
    });
    std::thread::sleep(kill_after);
    assert!(
        child.try_wait().expect("try_wait").is_none(),
        "child exited on its own"
    );
    child.kill().expect("SIGKILL"); // std's kill sends SIGKILL on Unix
    let status = child.wait().expect("wait");
    assert!(!status.success());
    reader.join().expect("reader thread")
}

#[test]
fn every_acknowledged_append_survives_sigkill() {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        child_main(&spec);
        return;
    }
    let dir = scratch("crash-sigkill");
    let mut acknowledged: Vec<(u64, u64)> = Vec::new();
    for (round, kill_after_ms) in [700u64, 450, 900].into_iter().enumerate() {
        let first_seq = round as u64 * 1_000_000_000;
        let acks = run_and_kill(&dir, first_seq, Duration::from_millis(kill_after_ms));
        assert!(
            !acks.is_empty(),
            "round {round}: the child acknowledged nothing"
        );
        acknowledged.extend(acks);
        run(async {
            let (log, report) = CommitLog::open(&dir, config(), Disk::real())
                .await
                .expect("reopen");
            assert!(!report.clean_shutdown, "SIGKILL leaves the abort marker");
            for (seq, offset) in &acknowledged {
                let stored = log
                    .read(*offset, None)
                    .await
                    .expect("acknowledged record readable");
                assert_same(&stored, &TestRecord::new(*seq, payload_len(*seq)));
            }
            // Close cleanly; the next round's child opens the same directory.
            log.close().await.expect("close");
        });
    }
    assert!(
        acknowledged.len() > 30,
        "too few acknowledged appends: {}",
        acknowledged.len()
    );
}
