#!/usr/bin/env bash
# Runs the cargo-fuzz targets of fuzz/.
#   scripts/fuzz.sh smoke          each target for FUZZ_SMOKE_SECONDS (default 20) seconds
#   scripts/fuzz.sh long SECONDS   each target for SECONDS, corpora kept in fuzz/corpus
# Needs a nightly toolchain; without one it says so and exits 0.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-smoke}
seconds=${2:-${FUZZ_SMOKE_SECONDS:-20}}

if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "fuzz: skipped, no nightly toolchain (rustup toolchain install nightly to enable)"
  exit 0
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz"
  if ! cargo install --locked cargo-fuzz >&2; then
    echo "fuzz: skipped, cargo-fuzz could not be installed"
    exit 0
  fi
fi

targets=$(cargo +nightly fuzz list)
for target in $targets; do
  corpus=fuzz/corpus/$target
  mkdir -p "$corpus"
  if [ -d "fuzz/seeds/$target" ]; then
    cp -n fuzz/seeds/"$target"/* "$corpus"/ 2>/dev/null || true
  fi
  echo "fuzz: $target for ${seconds}s"
  log=fuzz/$target.log
  if ! cargo +nightly fuzz run "$target" "$corpus" -- -max_total_time="$seconds" \
      -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
    tail -n 60 "$log" >&2
    echo "fuzz: $target failed (crash inputs, if any, in fuzz/artifacts/$target)" >&2
    exit 1
  fi
  grep -E "^(stat::number_of_executed_units|stat::peak_rss_mb|#[0-9]+ +DONE)" "$log" || true
done
[ "$mode" = smoke ] || echo "fuzz: corpora in fuzz/corpus"
