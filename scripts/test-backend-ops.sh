#!/usr/bin/env bash
# Runs llama.cpp's test-backend-ops against a ggml-RPC server: every case is computed on the
# server (device RPC0) and on the client's own CPU backend, and compared.
#
#   scripts/test-backend-ops.sh [--json FILE] [--logs DIR] HOST:PORT [OP...]
#
# One test-backend-ops run per OP (each timed on its own; a crash ends only that run), or one run
# of every op when none is given. OP is a test-backend-ops -o filter: an op name as ggml_op_desc
# spells it (ADD, MUL_MAT, SWIGLU, SILU, ...), a regex, or a full case string; GLU stands for all
# the GLU variants and UNARY for all the unary ops. OP@REGEX also filters the cases by their
# parameters (test-backend-ops -p REGEX), e.g. 'MUL_MAT@type_a=f(32|16)'. Writes a JSON summary (per op: passed,
# failed, not supported, skipped, and the failing case lines; per run: time, exit code) to
# stdout or FILE; the console logs go to DIR (default: a temporary dir, removed afterwards).
# Exits 1 if any case failed or any run died.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
json=""
logs=""
while [ $# -gt 0 ]; do
  case $1 in
    --json) json=$2; shift 2 ;;
    --logs) logs=$2; shift 2 ;;
    -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) break ;;
  esac
done
if [ $# -lt 1 ]; then
  echo "usage: $0 [--json FILE] [--logs DIR] HOST:PORT [OP...]" >&2
  exit 2
fi
server=$1
shift
bin=$("$root/scripts/llama-ref.sh")
if [ -z "$logs" ]; then
  logs=$(mktemp -d)
  trap 'rm -rf "$logs"' EXIT
fi
mkdir -p "$logs"

expand() {
  case $1 in
    GLU) echo "REGLU,GEGLU,SWIGLU,SWIGLU_OAI,GEGLU_ERF,GEGLU_QUICK,SWIGLU_CLAMP" ;;
    UNARY) echo "ABS,SGN,NEG,STEP,TANH,ELU,RELU,SIGMOID,GELU,GELU_QUICK,SILU,HARDSWISH,HARDSIGMOID,EXP,EXPM1,SOFTPLUS,GELU_ERF,XIELU,FLOOR,CEIL,ROUND,TRUNC" ;;
    *) echo "$1" ;;
  esac
}

runs=()
failed=0
run_one() {  # run_one LABEL [FILTER]
  local label=$1 log started status
  log=$logs/$(printf %s "$1" | tr -c "A-Za-z0-9_.-" "_").log
  shift
  local args=(test -b RPC0)
  if [ $# -gt 0 ]; then
    args+=(-o "$(expand "${1%%@*}")")
    case $1 in *@*) args+=(-p "${1#*@}") ;; esac
  fi
  echo "test-backend-ops: $label against $server" >&2
  started=$(date +%s%N)
  status=0
  GGML_TEST_RPC_SERVERS=$server "$bin/test-backend-ops" "${args[@]}" > "$log" 2> "$log.stderr" || status=$?
  local ms seconds
  ms=$(( ($(date +%s%N) - started) / 1000000 ))
  seconds=$(printf '%d.%03d' $((ms / 1000)) $((ms % 1000)))
  echo "test-backend-ops: $label: exit $status in ${seconds}s" >&2
  [ $status = 0 ] || failed=1
  runs+=(--run "${1:-}" "$log" "$seconds" "$status")
}

if [ $# -eq 0 ]; then
  run_one all
else
  for op in "$@"; do run_one "$op" "$op"; done
fi
if [ -n "$json" ]; then
  python3 "$root/tests/ggml/backend_ops_summary.py" --server "$server" "${runs[@]}" > "$json"
else
  python3 "$root/tests/ggml/backend_ops_summary.py" --server "$server" "${runs[@]}"
fi
exit $failed
