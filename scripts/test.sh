#!/usr/bin/env bash
# The project's test command (README.md): unit, property and golden tests, storage tests on a
# real disk directory, black-box broker and NameServer tests against the built binary, and the
# interop suites with real third-party clients (rocketmq-client-rust from crates.io, ali-ons
# from npm; installed by scripts/interop.sh itself).
# Storage tests use MQ_TEST_DISK_DIR, or target/test-disk (a real disk, not tmpfs).
set -euo pipefail
cd "$(dirname "$0")/.."
export MQ_TEST_DISK_DIR="${MQ_TEST_DISK_DIR:-$PWD/target/test-disk}"
mkdir -p "$MQ_TEST_DISK_DIR"

echo "== codec without the runtime"
cargo test -p rmq-net --no-default-features

echo "== workspace"
cargo test --workspace

echo "== interop with real clients"
./scripts/interop.sh
