#!/usr/bin/env bash
# The test command: installs what is missing, then checks formatting, lints, and runs every
# test of the workspace (unit, conformance, CLI, property tests; benches and examples are
# built and run once in test mode). `.ci/run` calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --all-targets --locked
