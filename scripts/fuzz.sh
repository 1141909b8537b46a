#!/usr/bin/env bash
# Fuzz each target for a fixed number of executions (default 10 million) and
# print libFuzzer's summary lines: executions, speed, and whether it crashed.
# Not part of the test command: it needs the nightly toolchain and
# `cargo install cargo-fuzz`, and takes minutes per target.
#   scripts/fuzz.sh [RUNS] [TARGET...]      (targets: parse sse logs)
#   FUZZ_SECONDS=N caps each target's time as well (libFuzzer's -max_total_time).
#   FUZZ_MAX_LEN=N bounds an input's size (default 65536; smaller runs faster).
#   FUZZ_SANITIZER=none drops AddressSanitizer (the crates are safe Rust, so a
#   panic is still caught; runs several times faster).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-10000000}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(parse sse logs)
cd "$root/fuzz"
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t"
  seeds=()
  case $t in
    parse) seeds=("$root/tests/golden/promtext") ;;
    logs) seeds=("$root/tests/golden/logs") ;;
  esac
  echo "== $t: $runs runs"
  start=$(date +%s)
  log="target/fuzz-$t.log"
  mkdir -p target
  status=0
  limit=()
  [ -z "${FUZZ_SECONDS:-}" ] || limit=(-max_total_time="$FUZZ_SECONDS")
  cargo +nightly fuzz run --sanitizer "${FUZZ_SANITIZER:-address}" "$t" "corpus/$t" "${seeds[@]}" -- -runs="$runs" "${limit[@]}" -max_len="${FUZZ_MAX_LEN:-65536}" -print_final_stats=1 \
    >"$log" 2>&1 || status=$?
  grep -E '^(stat::number_of_executed_units|stat::average_exec_per_sec|stat::peak_rss_mb|==[0-9]+== ERROR|SUMMARY|Done|error)' "$log" || true
  echo "   exit $status, $(( $(date +%s) - start )) s (full output: fuzz/$log)"
done
