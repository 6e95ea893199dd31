#!/usr/bin/env bash
# Builds the fuzz targets of fuzz/ once and runs each for N seconds (docs/testing.md,
# "Fuzzing"), on stable Rust: `cargo fuzz run --sanitizer none` (AddressSanitizer needs a
# nightly compiler). Installs cargo-fuzz (pinned) when it is missing. Each target starts
# from its committed seeds (fuzz/seeds/TARGET) and the inputs that once crashed it
# (fuzz/regressions/TARGET); what it finds goes to fuzz/corpus/TARGET (not committed).
# A crash fails the script, with the input saved under fuzz/artifacts/TARGET.
#   scripts/fuzz.sh [--seconds N] [--seed N] [--no-build] [TARGET...]   (default: 25 s, every target)
#   --seed N: libFuzzer's seed (default 1, so a CI run replays the same mutations and fails
#   only on a change of code, not on the luck of a new seed; 0 picks one at random, as a
#   longer local hunt should).
# Prints one line per target: seconds, execs, coverage (cov, ft), corpus size.
set -euo pipefail
self="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
cd "$(dirname "$0")/../fuzz"

CARGO_FUZZ_VERSION=0.13.1
seconds=25
seed=1
build=1
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    --seconds=*) seconds="${1#*=}"; shift ;;
    --seed) seed="$2"; shift 2 ;;
    --seed=*) seed="${1#*=}"; shift ;;
    --no-build) build=0; shift ;;
    -h|--help) sed -n '2,12p' "$self"; exit 0 ;;
    -*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done

if ! cargo fuzz --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
  echo "fuzz.sh: installing cargo-fuzz $CARGO_FUZZ_VERSION" >&2
  cargo install cargo-fuzz --locked --version "$CARGO_FUZZ_VERSION"
fi
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo fuzz list)
fi

# One build (release, debug assertions on: cargo-fuzz's default) for every target; the
# runs then start the built binaries (what `cargo fuzz run` would, without rebuilding).
if [ "$build" -eq 1 ]; then
  cargo fuzz build --sanitizer none
fi
host=$(rustc -vV | sed -n 's/^host: //p')
bin_dir="${CARGO_TARGET_DIR:-$PWD/target}/$host/release"

for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "artifacts/$t" logs
  dirs=("corpus/$t" "seeds/$t")
  [ -d "regressions/$t" ] && dirs+=("regressions/$t")
  log="logs/$t.log"
  status=0
  "$bin_dir/$t" "${dirs[@]}" \
    -max_total_time="$seconds" -seed="$seed" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="artifacts/$t/" >"$log" 2>&1 || status=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1 || true)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$done_line")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$done_line")
  corp=$(sed -n 's/.* corp: \([0-9]*\).*/\1/p' <<<"$done_line")
  printf 'fuzz: %-14s %5ss  execs %-10s cov %-6s ft %-6s corpus %s\n' \
    "$t" "$seconds" "${execs:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}"
  if [ "$status" -ne 0 ]; then
    grep -v '^Output of `std::fmt::Debug`' "$log" | grep -v '^\s*\[[0-9, ]*\]$' | tail -n 60 >&2
    echo "fuzz.sh: $t failed (exit $status); the input is under fuzz/artifacts/$t/" >&2
    exit 1
  fi
done
