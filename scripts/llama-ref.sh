#!/usr/bin/env bash
# Installs (once) the reference llama.cpp that our ggml-RPC server is tested against: llama.cpp
# commit 0c1e570, as vendored by the llama-cpp-python 0.3.36 sdist, with two local patches
# (tests/ggml/patch_llama.py), built for the CPU with GGML_RPC=ON.
#
#   scripts/llama-ref.sh           # prints the bin dir, e.g. target/llama-ref/build/bin
#
# Stages, each skipped when its output exists: venv (cmake, ninja, numpy, gguf), source (the sdist,
# unpacked), patch (idempotent), configure, build (only when a binary is missing or the patched
# sources changed). Builds under `nice`, with $LLAMA_REF_JOBS (default 2) jobs.
# Prints the bin dir on stdout; everything else goes to stderr.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
ref=${LLAMA_REF_DIR:-$root/target/llama-ref}
jobs=${LLAMA_REF_JOBS:-2}
lcp_version=0.3.36
venv=$ref/venv
src=$ref/src/llama_cpp_python-$lcp_version/vendor/llama.cpp
build=$ref/build
bin=$build/bin
targets="ggml-rpc-server llama-bench llama-quantize test-backend-ops llama-completion greedy-ids"

log() { echo "llama-ref: $*" >&2; }
mkdir -p "$ref"

# 1. venv: the build tools and the Python packages the model and trace scripts use (gguf pinned
#    to the version of the tree's own gguf-py)
if [ ! -f "$venv/.ready" ]; then
  log "creating $venv (cmake, ninja, numpy, gguf)"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check cmake ninja numpy gguf==0.19.0 >&2
  "$venv/bin/python" -c "import gguf, numpy" >&2
  touch "$venv/.ready"
fi

# 2. source: the sdist of llama-cpp-python only (--no-deps: its build deps are not wanted)
if [ ! -f "$src/.unpacked" ]; then
  log "downloading llama-cpp-python==$lcp_version (sdist)"
  rm -rf "$ref/src"
  mkdir -p "$ref/src"
  "$venv/bin/pip" download --quiet --disable-pip-version-check --no-binary llama-cpp-python --no-deps \
    -d "$ref/src" "llama-cpp-python==$lcp_version" >&2
  tar -C "$ref/src" -xzf "$ref/src/llama_cpp_python-$lcp_version.tar.gz"
  test -f "$src/ggml/src/ggml-rpc/ggml-rpc.cpp"
  touch "$src/.unpacked"
fi

# 3. patch: idempotent, rewrites files only when their content changes
"$venv/bin/python" "$root/tests/ggml/patch_llama.py" "$src" >&2

# 4. configure
export PATH=$venv/bin:$PATH
if [ ! -f "$build/build.ninja" ]; then
  log "configuring $build"
  cmake -S "$src" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DGGML_RPC=ON -DGGML_CPU=ON -DGGML_NATIVE=ON \
    -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF -DLLAMA_BUILD_UI=OFF \
    -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_TESTS=ON -DLLAMA_BUILD_TOOLS=ON \
    -DLLAMA_BUILD_EXAMPLES=ON >&2
fi

# 5. build: skipped when every binary exists and is newer than the patched sources
stale=0
for t in $targets; do
  if [ ! -x "$bin/$t" ]; then stale=1; fi
done
if [ $stale = 0 ]; then
  if [ "$src/tests/test-backend-ops.cpp" -nt "$bin/test-backend-ops" ] ||
     [ "$src/examples/greedy-ids/greedy-ids.cpp" -nt "$bin/greedy-ids" ]; then stale=1; fi
fi
if [ $stale = 1 ]; then
  log "building $targets (-j$jobs)"
  started=$(date +%s)
  # shellcheck disable=SC2086 # the target list is meant to split
  nice -n 19 cmake --build "$build" -j "$jobs" --target $targets >&2
  log "built in $(( $(date +%s) - started )) s"
fi
for t in $targets; do
  test -x "$bin/$t" || { log "missing $bin/$t after the build"; exit 1; }
done
echo "$bin"
