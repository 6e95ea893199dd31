#!/usr/bin/env bash
# The test command: installs what is missing, then checks formatting, lints, and runs every
# test of the workspace (unit, conformance, CLI, property tests; benches and examples are
# built and run once in test mode), the browser interop tests included: they need
# Debian's chromium and firefox-esr, and iproute2 for the loopback of the network
# namespace each browser case runs in; coturn for the STUN/TURN tests (tests/turn.rs start
# their own turnserver; the package's service is never started: see setup.sh); ffmpeg
# (ffprobe, ffmpeg) to read back `view --record`'s files (tests/view.rs); janus for the
# Janus VideoRoom tests (tests/janus.rs start their own; its service is never started
# either); g++ for libFuzzer, then every fuzz target runs for 25 s (scripts/fuzz.sh);
# python3-numpy to write the side-by-side's clip (tests/compare.rs runs scripts/compare.sh).
# `.ci/run` calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh chromium firefox-esr iproute2 coturn ffmpeg janus g++ python3-numpy
cargo fmt --all -- --check
cargo fmt --manifest-path fuzz/Cargo.toml -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --all-targets --locked
./scripts/fuzz.sh --seconds 25
