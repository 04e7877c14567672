#!/usr/bin/env bash
# The project's test command. Installs what the tests need (the TVM 0.27 venv used by the
# interop tests; the reference llama.cpp, built once from PyPI's llama-cpp-python 0.3.36 sdist,
# and its random-weight models; cargo-fuzz where a nightly toolchain exists) and runs every
# test: formatting and lints, cargo tests (unit, golden traces, interop with TVM's own client,
# server and tracker and with llama.cpp's own client, rpc-server and test-backend-ops), and a
# short fuzz smoke run.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "TVM 0.27 Python environment (scripts/tvm-venv.sh)"
scripts/tvm-venv.sh

step "reference llama.cpp and its models (scripts/llama-ref.sh, scripts/llama-models.sh)"
scripts/llama-models.sh

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings

# Benches are compiled by clippy above; they are run by scripts/bench.sh, not here (the rpc
# bench needs a server address).
step "cargo test (unit, golden traces, interop, fault and load profiles)"
cargo test --lib --bins --tests --examples

step "fuzz smoke run"
scripts/fuzz.sh smoke
