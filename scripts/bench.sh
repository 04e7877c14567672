#!/usr/bin/env bash
# Side-by-side benchmarks (TVM 0.27's server vs ours, numpy vs our GEMM) in one run.
#   scripts/bench.sh           full profile; figures go to bench/results.json, docs/bench.png
#   scripts/bench.sh --quick   short profile
# Run it on a quiet machine: figures taken while other work competes for the cores mislead.
set -euo pipefail
cd "$(dirname "$0")/.."
python=$(scripts/tvm-venv.sh)
"$python" -m pip install --quiet --disable-pip-version-check matplotlib
cargo build --release --quiet
cargo bench --bench rpc --no-run --quiet
exec "$python" bench/run.py "$@"
