#!/usr/bin/env bash
# The project's test command (README.md): unit, property, golden, storage-on-real-disk and
# integration tests. Storage tests use a real disk directory (not tmpfs): MQ_TEST_DISK_DIR, or
# target/test-disk by default.
set -euo pipefail
cd "$(dirname "$0")/.."
export MQ_TEST_DISK_DIR="${MQ_TEST_DISK_DIR:-$PWD/target/test-disk}"
mkdir -p "$MQ_TEST_DISK_DIR"
# The codec must build and pass without the runtime.
cargo test -p rmq-net --no-default-features
cargo test --workspace
