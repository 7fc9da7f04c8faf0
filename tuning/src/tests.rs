//! End-to-end tests of `run_check` on fake roots: the table, the JSON document, the script for
//! a failing host (and that `sh -n` accepts it), and the exit code.

use std::path::PathBuf;
use std::process::Command;

use super::*;
use crate::testing::{FakeRoot, FAKE_DATA_DIR};

fn options(fake: &FakeRoot, format: OutputFormat) -> CheckOptions {
    CheckOptions {
        root: fake.path().to_path_buf(),
        format,
        data_dir: Some(PathBuf::from(FAKE_DATA_DIR)),
        shards: None,
        pid: None,
    }
}

fn run(fake: &FakeRoot, format: OutputFormat) -> (CheckOutcome, String) {
    let mut out = Vec::new();
    let outcome = run_check(&options(fake, format), &mut out).expect("run_check");
    (outcome, String::from_utf8(out).expect("utf-8 output"))
}

/// A host with one FAIL (io_uring disabled), WARNs and an INFO.
fn failing_host() -> FakeRoot {
    let fake = FakeRoot::healthy();
    fake.sysctl("kernel.io_uring_disabled", "2");
    fake.sysctl("vm.swappiness", "60");
    fake.sysctl("net.ipv4.tcp_wmem", "4096\t16384\t4194304");
    fake.file(
        "/sys/kernel/mm/transparent_hugepage/enabled",
        "[always] madvise never\n",
    );
    fake.file(
        "/sys/devices/system/cpu/cpu1/cpufreq/scaling_governor",
        "powersave\n",
    );
    fake.file("/proc/321/comm", "irqbalance\n");
    fake.file(
        "/proc/self/limits",
        "Max open files 1024 4096 files\nMax locked memory 65536 65536 bytes\n",
    );
    fake.file(
        "/proc/self/mountinfo",
        "35 21 259:2 / /var/lib/rmq rw,relatime - ext4 /dev/nvme0n1p2 rw,data=ordered\n",
    );
    fake.file(
        "/sys/devices/pci0000:00/0000:00:04.0/nvme/nvme0/nvme0n1/queue/scheduler",
        "none mq-deadline [bfq]\n",
    );
    fake.sysctl("net.core.rmem_max", "212992");
    fake
}

#[test]
fn a_healthy_host_exits_zero_with_an_all_ok_table() {
    let fake = FakeRoot::healthy();
    let (outcome, table) = run(&fake, OutputFormat::Table);
    assert_eq!(outcome.exit_code, EXIT_OK);
    let summary = outcome.report.summary();
    assert_eq!(summary.ok, CATALOG.len());
    let rows: Vec<&str> = table
        .lines()
        .filter(|line| line.starts_with("OK "))
        .collect();
    assert_eq!(rows.len(), CATALOG.len(), "{table}");
    assert!(table.contains(&format!(
        "{} checks: {} ok, 0 info, 0 warn, 0 fail; exit code 0.",
        CATALOG.len(),
        CATALOG.len()
    )));
    let swappiness = table
        .lines()
        .find(|line| line.contains(" vm.swappiness "))
        .expect("row");
    let cells: Vec<&str> = swappiness.split_whitespace().collect();
    assert_eq!(cells, vec!["OK", "vm.swappiness", "1", "<=", "1"]);
}

#[test]
fn warnings_alone_exit_zero() {
    let fake = FakeRoot::healthy();
    fake.sysctl("vm.swappiness", "60");
    let (outcome, table) = run(&fake, OutputFormat::Table);
    assert_eq!(outcome.exit_code, EXIT_OK);
    assert_eq!(outcome.report.summary().warn, 1);
    let row = table
        .lines()
        .find(|line| line.contains(" vm.swappiness "))
        .expect("row");
    assert!(row.starts_with("WARN"), "{row}");
}

#[test]
fn a_failing_host_exits_one_and_the_table_shows_each_status() {
    let fake = failing_host();
    let (outcome, table) = run(&fake, OutputFormat::Table);
    assert_eq!(outcome.exit_code, EXIT_FAIL);
    let status_of = |id: &str| outcome.report.result(id).map(|result| result.status);
    assert_eq!(status_of("kernel.io_uring_disabled"), Some(Status::Fail));
    assert_eq!(status_of("rlimit.nofile"), Some(Status::Fail));
    assert_eq!(status_of("rlimit.memlock"), Some(Status::Fail));
    assert_eq!(status_of("vm.swappiness"), Some(Status::Warn));
    assert_eq!(status_of("net.core.rmem_max"), Some(Status::Info));
    let row = table
        .lines()
        .find(|line| line.contains(" rlimit.nofile "))
        .expect("row");
    assert!(row.starts_with("FAIL"), "{row}");
    assert!(row.contains("soft 1024, hard 4096"), "{row}");
}

#[test]
fn the_script_for_a_failing_host_applies_every_warn_and_fail() {
    let fake = failing_host();
    let (outcome, script) = run(&fake, OutputFormat::Script);
    assert_eq!(
        outcome.exit_code, EXIT_FAIL,
        "the exit code does not depend on the format"
    );
    let expected_lines = [
        "#!/bin/sh",
        "set -eu",
        "sysctl -w 'kernel.io_uring_disabled=0'",
        "persist 'kernel\\.io_uring_disabled *=' 'kernel.io_uring_disabled = 0' \"$SYSCTL_CONF\"",
        "sysctl -w 'vm.swappiness=1'",
        "sysctl -w 'net.ipv4.tcp_wmem=4096 16384 16777216'",
        "echo 'madvise' > '/sys/kernel/mm/transparent_hugepage/enabled'",
        "for file in /sys/devices/system/cpu/cpu*/cpufreq/scaling_governor; do",
        "    if [ -e \"$file\" ]; then echo 'performance' > \"$file\"; fi",
        "done",
        "systemctl disable --now 'irqbalance'",
        "persist '\\* soft nofile ' '* soft nofile 655350' \"$LIMITS_CONF\"",
        "persist '\\* hard nofile ' '* hard nofile 655350' \"$LIMITS_CONF\"",
        "persist '\\* soft memlock ' '* soft memlock unlimited' \"$LIMITS_CONF\"",
        "mount -o 'remount,noatime' '/var/lib/rmq'",
        "echo 'none' > '/sys/block/nvme0n1/queue/scheduler'",
    ];
    for line in expected_lines {
        assert!(
            script.lines().any(|candidate| candidate == line),
            "missing line {line:?} in:\n{script}"
        );
    }
    assert!(script.contains("LimitMEMLOCK=infinity"), "{script}");
    // Only WARN and FAIL results are rendered: the INFO rmem_max and the passing checks are not.
    assert!(!script.contains("net.core.rmem_max"), "{script}");
    assert!(!script.contains("vm.dirty_ratio"), "{script}");
    let sections = script
        .lines()
        .filter(|line| line.starts_with("# [WARN]") || line.starts_with("# [FAIL]"))
        .count();
    let summary = outcome.report.summary();
    assert_eq!(sections, summary.warn + summary.fail);
    assert_shell_syntax_ok(&script);
}

#[test]
fn the_script_for_a_healthy_host_does_nothing() {
    let fake = FakeRoot::healthy();
    let (_, script) = run(&fake, OutputFormat::Script);
    assert!(script.contains("# Nothing to do"), "{script}");
    assert!(!script.contains("sysctl -w"), "{script}");
    assert_shell_syntax_ok(&script);
}

fn assert_shell_syntax_ok(script: &str) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("tune.sh");
    std::fs::write(&path, script).expect("write script");
    let status = Command::new("sh")
        .arg("-n")
        .arg(&path)
        .status()
        .expect("run sh -n");
    assert!(status.success(), "sh -n rejects the script:\n{script}");
}

#[test]
fn json_output_round_trips_with_summary_and_exit_code() {
    let fake = failing_host();
    let (outcome, json) = run(&fake, OutputFormat::Json);
    let document: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
    assert_eq!(document["exit_code"], 1);
    let results = document["results"].as_array().expect("results array");
    assert_eq!(results.len(), CATALOG.len());
    let summary = outcome.report.summary();
    assert_eq!(document["summary"]["fail"], summary.fail);
    let io_uring = results
        .iter()
        .find(|result| result["id"] == "kernel.io_uring_disabled")
        .expect("row");
    assert_eq!(io_uring["status"], "fail");
    assert_eq!(io_uring["guide"], "sysctl.md");
    assert_eq!(io_uring["remedies"][0]["kind"], "sysctl");
}

#[test]
fn without_a_data_dir_the_disk_checks_are_skipped_as_info() {
    let fake = FakeRoot::healthy();
    let mut options = options(&fake, OutputFormat::Table);
    options.data_dir = None;
    let mut out = Vec::new();
    let outcome = run_check(&options, &mut out).expect("run_check");
    let disk: Vec<&CheckResult> = outcome
        .report
        .results
        .iter()
        .filter(|result| result.id.starts_with("disk."))
        .collect();
    assert!(!disk.is_empty());
    for result in disk {
        assert_eq!(result.status, Status::Info, "{}", result.id);
        assert_eq!(result.current, "not checked (no data directory given)");
    }
}

#[test]
fn a_missing_root_is_an_error_not_a_report() {
    let options = CheckOptions {
        root: PathBuf::from("/nonexistent/rmq-fake-root"),
        ..CheckOptions::default()
    };
    let mut out = Vec::new();
    assert!(matches!(
        run_check(&options, &mut out),
        Err(TuningError::Root { .. })
    ));
    assert!(out.is_empty());
}

#[test]
fn the_live_host_produces_a_report_for_every_check() {
    let options = CheckOptions {
        data_dir: Some(PathBuf::from(".")),
        ..CheckOptions::default()
    };
    let report = check_host(&options).expect("live host");
    assert_eq!(report.results.len(), CATALOG.len());
    assert_eq!(report.limits_source, probe::LimitsSource::Getrlimit);
}
