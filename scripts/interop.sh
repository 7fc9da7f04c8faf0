#!/usr/bin/env bash
# Interop tests with real third-party RocketMQ clients against the built `rmq` binary, each on
# ephemeral ports with its own store directory:
#   interop/rust-client  crates.io rocketmq-client-rust 1.0.0 (its own Cargo workspace and lock)
#   interop/ali-ons      npm ali-ons 3.12.0 (package-lock.json; node's built-in test runner)
# Installs what it needs locally (npm ci; no global installs), builds `rmq` (debug: the tests
# wait on clients, not on the broker, and the debug binary is shared with `cargo test`), runs
# both suites even if the first fails, and exits non-zero on any failure.
# The first run builds rocketmq-client-rust: about 12 CPU-minutes and 2 GB of memory.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
# Wall-clock cap per suite; the tests bound themselves well inside it.
suite_timeout=900

command -v node >/dev/null || { echo "interop: node (>= 18) is required" >&2; exit 2; }
command -v npm >/dev/null || { echo "interop: npm is required" >&2; exit 2; }

# Scratch left by earlier runs: stores kept by failed tests, broker logs, client offset files.
rm -rf interop/rust-client/target/interop interop/ali-ons/target

echo "== interop: build rmq"
cargo build -p rmq --bin rmq
export RMQ_BIN="${CARGO_TARGET_DIR:-$root/target}/debug/rmq"
[ -x "$RMQ_BIN" ] || { echo "interop: $RMQ_BIN was not built" >&2; exit 2; }

echo "== interop: install ali-ons (npm ci)"
(cd interop/ali-ons && npm ci --no-audit --no-fund)

rust_status=0
echo "== interop: rocketmq-client-rust (cargo test)"
timeout "$suite_timeout" cargo test --manifest-path interop/rust-client/Cargo.toml --no-fail-fast \
    -- --test-threads=1 || rust_status=$?

node_status=0
echo "== interop: ali-ons (node --test)"
timeout "$suite_timeout" node --test interop/ali-ons/ || node_status=$?

verdict() { if [ "$1" -eq 0 ]; then echo "passed"; else echo "FAILED (exit $1)"; fi; }
echo "== interop summary: rocketmq-client-rust $(verdict $rust_status); ali-ons $(verdict $node_status)"
[ "$rust_status" -eq 0 ] && [ "$node_status" -eq 0 ]
