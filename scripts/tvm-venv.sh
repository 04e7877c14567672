#!/usr/bin/env bash
# Creates (once) the Python venv holding TVM 0.27's own client, server and tracker,
# which the interop tests and benchmarks run against our server.
# Prints the venv's python path on stdout; everything else goes to stderr.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=${TVM_VENV:-$root/target/tvm-venv}
# The stamp names what the venv holds; a venv made before tornado was added gets it then.
stamp=$venv/.tensor-rpc-ready-with-tornado
if [ ! -f "$stamp" ]; then
  echo "tvm-venv: creating $venv (apache-tvm 0.27, about 300 MB)" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    apache-tvm==0.27.0.post1 cloudpickle psutil tornado >&2
  "$venv/bin/python" -c "import tvm, tvm.rpc, tornado" >&2
  touch "$stamp"
fi
echo "$venv/bin/python"
