//! The shipped deployment files and the CLI's operator surface: every example broker config in
//! `deploy/conf/` parses with the broker's parser (no unknown key, roles and ids consistent, a
//! 2-master-2-slave layout), the systemd units carry the settings deploy/README.md promises,
//! `rmq completions bash|zsh|fish` prints a script naming the subcommands, and the log on
//! stderr has no colour codes when stderr is a file, and is one JSON object per line with
//! `RMQ_LOG_FORMAT=json`.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use rmq::config::{parse_properties, BrokerConfig, BrokerRole};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn every_example_broker_conf_parses() {
    let dir = repo().join("deploy/conf");
    let mut layout = BTreeSet::new();
    let mut files = 0;
    for entry in std::fs::read_dir(&dir).expect("deploy/conf") {
        let path = entry.expect("entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("conf") {
            continue;
        }
        files += 1;
        let text = std::fs::read_to_string(&path).expect("read");
        let props = parse_properties(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let loaded = BrokerConfig::from_properties(&props)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            loaded.unknown_keys.is_empty(),
            "{}: unknown keys {:?}",
            path.display(),
            loaded.unknown_keys
        );
        let config = loaded.config;
        config
            .check_relations()
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(config.namesrv_addrs.len(), 2, "{}", path.display());
        assert!(!config.broker_ip1.is_loopback(), "{}", path.display());
        layout.insert((
            config.broker_name.clone(),
            config.broker_id,
            config.broker_role == BrokerRole::Slave,
        ));
    }
    assert_eq!(files, 4);
    let expected: BTreeSet<(String, i64, bool)> = [
        ("broker-a".to_owned(), 0, false),
        ("broker-a".to_owned(), 1, true),
        ("broker-b".to_owned(), 0, false),
        ("broker-b".to_owned(), 1, true),
    ]
    .into();
    assert_eq!(layout, expected, "two masters, each with one slave");
}

fn unit(name: &str) -> String {
    std::fs::read_to_string(repo().join("deploy/systemd").join(name)).expect("unit file")
}

#[test]
fn systemd_units_carry_limits_restart_and_a_flush_covering_stop() {
    for (name, exec) in [
        (
            "rmq-namesrv.service",
            "ExecStart=/usr/local/bin/rmq namesrv ",
        ),
        (
            "rmq-broker.service",
            "ExecStart=/usr/local/bin/rmq broker -c /etc/rmq/broker.conf",
        ),
    ] {
        let text = unit(name);
        for needle in [
            exec,
            "\nLimitNOFILE=655350\n",
            "\nLimitMEMLOCK=infinity\n",
            "\nRestart=on-failure\n",
            "\nKillSignal=SIGTERM\n",
            "\n[Install]\nWantedBy=multi-user.target\n",
        ] {
            assert!(text.contains(needle), "{name} lacks {needle:?}");
        }
    }
    // The broker's clean stop drains for up to 5 s and flushes for up to 10 s.
    let broker = unit("rmq-broker.service");
    let stop: u64 = broker
        .lines()
        .find_map(|l| l.strip_prefix("TimeoutStopSec="))
        .expect("TimeoutStopSec")
        .parse()
        .expect("seconds");
    let needed = rmq::limits::SHUTDOWN_DRAIN_TIMEOUT.as_secs() + 10;
    assert!(stop >= needed, "TimeoutStopSec={stop} < {needed}");
    assert!(broker.contains("CPUAffinity="), "CPU affinity notes");
}

#[test]
fn completions_name_the_subcommands() {
    for shell in ["bash", "zsh", "fish"] {
        let output = Command::new(env!("CARGO_BIN_EXE_rmq"))
            .args(["completions", shell])
            .output()
            .expect("run rmq");
        assert!(output.status.success(), "{shell}");
        let script = String::from_utf8(output.stdout).expect("UTF-8");
        for word in [
            "standalone",
            "namesrv",
            "admin",
            "update-broker-config",
            "wipe-write-perm",
            "query-msg-by-id",
        ] {
            assert!(script.contains(word), "{shell} completion lacks {word}");
        }
    }
    let bad = Command::new(env!("CARGO_BIN_EXE_rmq"))
        .args(["completions", "tcsh"])
        .output()
        .expect("run rmq");
    assert!(!bad.status.success());
}

/// Runs `rmq namesrv` with stderr in a file until its READY line, stops it, returns the log.
fn namesrv_log(dir: &Path, format: Option<&str>) -> Vec<u8> {
    let log = dir.join(format!("stderr-{}.log", format.unwrap_or("text")));
    let file = std::fs::File::create(&log).expect("log file");
    let mut command = Command::new(env!("CARGO_BIN_EXE_rmq"));
    command
        .args([
            "namesrv",
            "--port",
            "0",
            "--bind",
            "127.0.0.1",
            "--kv-config",
        ])
        .arg(dir.join("kv.json"))
        .env("RUST_LOG", "info")
        .env_remove("RMQ_LOG_FORMAT")
        .stdout(Stdio::piped())
        .stderr(file);
    if let Some(format) = format {
        command.env("RMQ_LOG_FORMAT", format);
    }
    let mut child = command.spawn().expect("spawn namesrv");
    let stdout = child.stdout.take().expect("stdout");
    let ready = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .any(|line| line.starts_with("READY namesrv "));
    assert!(ready, "namesrv announced READY");
    child.kill().expect("kill");
    child.wait().expect("wait");
    std::fs::read(&log).expect("read log")
}

#[test]
fn logs_have_no_colour_codes_in_a_file_and_json_lines_on_request() {
    let dir = common::TempDir::new("logs");
    let text = namesrv_log(dir.path(), None);
    assert!(!text.is_empty(), "info lines were logged");
    assert!(!text.contains(&0x1b), "no ESC bytes in a file");
    assert!(String::from_utf8_lossy(&text).contains("NameServer listening"));

    let json = namesrv_log(dir.path(), Some("json"));
    let text = String::from_utf8(json).expect("UTF-8");
    let mut lines = 0;
    for line in text.lines() {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(
            value["level"].is_string() && value["timestamp"].is_string(),
            "{line}"
        );
        lines += 1;
    }
    assert!(lines >= 1);
    assert!(text.contains("NameServer listening"), "{text}");
}
