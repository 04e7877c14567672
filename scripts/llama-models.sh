#!/usr/bin/env bash
# Makes (once) the random-weight models (llama, qwen3, qwen3moe, qwen2) the ggml-RPC tests run,
# in target/llama-ref/models:
#
#   tiny-f32, tiny-f16     4 layers, width 256, 4 heads, 2 kv heads, ff 512 (tests/ggml/make_model.py)
#   tiny-<quant>           tiny-f32 through llama-quantize: q8_0 q4_0 q4_1 q5_0 q5_1 q2_k q3_k_m
#                          q4_k_m q5_k_m q6_k iq4_nl iq4_xs bf16. Width 256 and ff 512 are multiples
#                          of 256, the K-quant and IQ4_XS block, so no tensor falls back to another type.
#   narrow-f32, narrow-f16 2 layers, width 64, 2 heads, 1 kv head, ff 128: small enough that a
#   narrow-q8_0            whole session's ggml-RPC traffic (tests/traces/ggml7-*.trace) stays small
#                          (64 is a multiple of the 32-wide q8_0 block, not of the K-quants' 256)
#   qwen3-f32, qwen3-q8_0  --arch qwen3 (q/k norms, NeoX RoPE): 4 layers, width 256, 4 heads, 2 kv
#                          heads of 128 (q is 512 wide, as in the real Qwen3), ff 512
#   qwen3moe-f32           --arch qwen3moe: qwen3's attention (heads of 64) and a MoE FFN of 4
#   qwen3moe-q4_0          experts, 2 used per token, each ff 512
#   qwen2-f32              --arch qwen2 (q/k/v biases, NeoX RoPE): tiny's shape
#
# Every model is written to a temporary name and renamed, so an interrupted run leaves nothing
# that looks finished. Needs scripts/llama-ref.sh (run first, from here). Prints the models dir
# on stdout; everything else goes to stderr.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$("$root/scripts/llama-ref.sh")
ref=${LLAMA_REF_DIR:-$root/target/llama-ref}
models=$ref/models
python=$ref/venv/bin/python
vocab=$ref/src/llama_cpp_python-0.3.36/vendor/llama.cpp/models/ggml-vocab-llama-spm.gguf
mkdir -p "$models"

log() { echo "llama-models: $*" >&2; }

# make NAME FTYPE make_model.py-args...
make() {
  local name=$1 ftype=$2
  shift 2
  local out=$models/$name-$ftype.gguf
  [ -f "$out" ] && return
  log "making $out"
  "$python" "$root/tests/ggml/make_model.py" --vocab "$vocab" --out "$out.tmp" --ftype "$ftype" --seed 42 "$@"
  mv "$out.tmp" "$out"
}

# quantize NAME TYPE: NAME-f32 -> NAME-<type in lower case>; the log is kept next to the model
quantize() {
  local name=$1 type=$2
  local out
  out=$models/$name-$(echo "$type" | tr '[:upper:]' '[:lower:]').gguf
  [ -f "$out" ] && return
  log "quantizing $name to $type"
  if ! "$bin/llama-quantize" "$models/$name-f32.gguf" "$out.tmp" "$type" 1 > "$out.log" 2>&1; then
    log "llama-quantize $name $type failed (see $out.log)"
    rm -f "$out.tmp"
    return 1
  fi
  mv "$out.tmp" "$out"
}

tiny=(--layers 4 --width 256 --heads 4 --kv-heads 2 --ff 512 --context 2048)
narrow=(--layers 2 --width 64 --heads 2 --kv-heads 1 --ff 128 --context 512)
qwen3=(--arch qwen3 --layers 4 --width 256 --heads 4 --kv-heads 2 --head-dim 128 --ff 512 --context 2048)
qwen3moe=(--arch qwen3moe --layers 4 --width 256 --heads 4 --kv-heads 2 --ff 512 --experts 4 --experts-used 2
  --context 2048)
qwen2=(--arch qwen2 --layers 4 --width 256 --heads 4 --kv-heads 2 --ff 512 --context 2048)
make tiny f32 "${tiny[@]}"
make tiny f16 "${tiny[@]}"
make narrow f32 "${narrow[@]}"
make narrow f16 "${narrow[@]}"
make qwen3 f32 "${qwen3[@]}"
make qwen3moe f32 "${qwen3moe[@]}"
make qwen2 f32 "${qwen2[@]}"
failed=""
for type in Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q2_K Q3_K_M Q4_K_M Q5_K_M Q6_K IQ4_NL IQ4_XS BF16; do
  quantize tiny "$type" || failed="$failed tiny:$type"
done
quantize narrow Q8_0 || failed="$failed narrow:Q8_0"
quantize qwen3 Q8_0 || failed="$failed qwen3:Q8_0"
quantize qwen3moe Q4_0 || failed="$failed qwen3moe:Q4_0"
if [ -n "$failed" ]; then
  log "quantization failed for:$failed"
  exit 1
fi
echo "$models"
