#!/usr/bin/env python3
"""Records golden ggml-RPC 7.0.0 traces: llama.cpp's own client (greedy-ids) against ggml's
rpc-server, through tests/ggml/record_proxy.py, into tests/traces/ggml7-<session>.trace.

Each trace gets a sidecar <trace>.json saying what produced it: the model (its hyperparameters,
read back from the GGUF, and its sha256), the greedy-ids flags, prompt and token count, the token
ids it printed, and the byte offset of each connection in the trace. A replay test can feed the
client bytes to our server and compare its replies, and the ids, with the recorded ones.

The sessions use the `narrow` model (2 layers, width 64, see scripts/llama-models.sh) with
output.weight kept on the CPU (-ot '^output\.weight$=CPU'): the output matrix is 32000 x width,
the one big tensor, and keeping it local keeps each trace well under 1 MiB while every op of the
offloaded blocks still goes through RPC. (The token embeddings stay on the CPU anyway.)

  record_traces.py                 # every session below
  record_traces.py f16-fa-on       # one session
"""

import argparse
import hashlib
import json
import sys
from pathlib import Path

import llama_ref
from gguf import GGUFReader
from record_proxy import RecordingProxy

TRACES = llama_ref.ROOT / "tests" / "traces"
LIMIT = 1536 * 1024  # bytes a trace may take in the repository
PROMPT = "Once upon a time"

# ngl 2 of narrow's 2 blocks + output layer: blk.1 (and the output norm) on the server, blk.0 local
SESSIONS = {
    "f32-fa-off": dict(model="narrow-f32", flash_attn="off"),
    "f16-fa-on": dict(model="narrow-f16", flash_attn="on"),
    "q8_0-fa-on-kv-q8_0": dict(model="narrow-q8_0", flash_attn="on", cache_k="q8_0", cache_v="q8_0"),
    "f16-partial-fa-off": dict(model="narrow-f16", flash_attn="off", ngl=2),
}
COMMON = dict(n_predict=8, ngl=99, threads=1, cache_k="f16", cache_v="f16", overrides="^output\\.weight$=CPU")


def model_spec(path):
    """The hyperparameters of a GGUF model, as recorded in its keys."""
    reader = GGUFReader(path)
    spec = {}
    for key in ("general.name", "llama.block_count", "llama.embedding_length", "llama.attention.head_count",
                "llama.attention.head_count_kv", "llama.feed_forward_length", "llama.context_length",
                "general.file_type"):  # fmt: skip
        field = reader.fields.get(key)
        if field is not None:
            spec[key] = field.contents()
    spec["tokens"] = len(reader.fields["tokenizer.ggml.tokens"].contents())
    spec["sha256"] = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return spec


def record(name, session, bins, models):
    options = {**COMMON, **session}
    model = models / f"{options.pop('model')}.gguf"
    n_predict = options.pop("n_predict")
    trace = TRACES / f"ggml7-{name}.trace"
    with llama_ref.RpcServer(bins, threads=1) as server:
        # the same run once without the proxy first: the ids must be reproducible to be golden
        expected, _ = llama_ref.greedy_ids(bins, model, PROMPT, n_predict, rpc=server.endpoint, **options)
        with RecordingProxy(("127.0.0.1", server.port)) as proxy:
            ids, argv = llama_ref.greedy_ids(bins, model, PROMPT, n_predict, rpc=proxy.endpoint, **options)
            if not proxy.wait_idle(timeout=10):
                raise RuntimeError("a recorded connection did not end")
        offsets = proxy.write(trace)
    if ids != expected:
        raise RuntimeError(f"{name}: ids through the proxy {ids} differ from the direct run {expected}")
    size = trace.stat().st_size
    sidecar = {
        "trace": trace.name,
        "produced_by": "tests/ggml/record_traces.py",
        "client": "greedy-ids (examples/simple/simple.cpp + tests/ggml/patch_llama.py), llama.cpp 0c1e570",
        "server": "ggml-rpc-server -H 127.0.0.1 -t 1, llama.cpp 0c1e570, ggml-RPC 7.0.0",
        "model": {"file": model.name, **model_spec(model)},
        # greedy-ids argv without the binary, -m path and prompt; the proxy's port varies
        "flags": ["SERVER" if flag == proxy.endpoint else flag for flag in argv[3:-1]],
        "prompt": PROMPT,
        "n_predict": n_predict,
        "greedy_ids": ids,
        "connections": {
            "offsets": offsets,
            "client_bytes": [c.bytes_from(b"C") for c in proxy.connections],
            "server_bytes": [c.bytes_from(b"S") for c in proxy.connections],
        },
        "bytes": size,
    }
    trace.with_suffix(".json").write_text(json.dumps(sidecar, indent=2) + "\n")
    print(f"record_traces: {trace.name}: {size} bytes, {len(offsets)} connections, ids {ids}", file=sys.stderr)
    if size > LIMIT:
        raise RuntimeError(f"{trace.name} is {size} bytes, more than the {LIMIT} allowed")


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sessions", nargs="*", help=f"of {', '.join(SESSIONS)} (default: all)")
    a = ap.parse_args(argv)
    unknown = [s for s in a.sessions if s not in SESSIONS]
    if unknown:
        ap.error(f"unknown session(s) {unknown}; known: {list(SESSIONS)}")
    bins = llama_ref.bin_dir()
    models = llama_ref.models_dir()
    TRACES.mkdir(parents=True, exist_ok=True)
    for name in a.sessions or list(SESSIONS):
        record(name, SESSIONS[name], bins, models)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
