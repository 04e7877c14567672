#!/usr/bin/env python3
"""Checks that greedy decoding through ggml's rpc-server is deterministic and sane.

For each model and flash-attention setting: two greedy-ids runs in a row against one rpc-server
(all layers offloaded) must give the same token ids, and those ids must not be all one token.
A CPU-only run without weight repacking is printed beside them for information (it runs the same
kernels in-process, so it usually matches, but nothing here requires it).

  check_greedy.py                                  # tiny-f32, tiny-f16; flash attention off, on
  check_greedy.py --models tiny-q8_0,tiny-q4_k_m --fa on -n 24

Exits 1 when a check fails. Needs scripts/llama-ref.sh and scripts/llama-models.sh (run here).
"""

import argparse
import sys

import llama_ref

PROMPT = "Once upon a time"


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="tiny-f32,tiny-f16", help="comma-separated names in the models dir")
    ap.add_argument("--fa", default="off,on", help="flash attention settings to try")
    ap.add_argument("-n", type=int, default=32, help="tokens to predict")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--min-distinct", type=int, default=3, help="fewest distinct ids counted as sane")
    a = ap.parse_args(argv)
    bins = llama_ref.bin_dir()
    models = llama_ref.models_dir()
    failures = 0
    for name in a.models.split(","):
        model = models / f"{name}.gguf"
        for fa in a.fa.split(","):
            with llama_ref.RpcServer(bins, threads=a.threads) as server:
                runs = [
                    llama_ref.greedy_ids(bins, model, PROMPT, a.n, rpc=server.endpoint, threads=a.threads,
                                         flash_attn=fa)[0]
                    for _ in range(2)
                ]  # fmt: skip
            cpu, _ = llama_ref.greedy_ids(bins, model, PROMPT, a.n, ngl=0, threads=a.threads, flash_attn=fa,
                                          no_repack=True)  # fmt: skip
            problems = []
            if runs[0] != runs[1]:
                problems.append("the two RPC runs differ")
            if len(runs[0]) != a.n:
                problems.append(f"{len(runs[0])} ids instead of {a.n}")
            if len(set(runs[0])) < a.min_distinct:
                problems.append(f"only {len(set(runs[0]))} distinct ids")
            failures += bool(problems)
            verdict = "FAIL: " + "; ".join(problems) if problems else "ok"
            same_as_cpu = "same as CPU" if cpu == runs[0] else "differs from CPU"
            print(f"{name:<14} fa={fa:<3} {verdict}; {len(set(runs[0]))} distinct, {same_as_cpu}")
            print(f"  rpc: {runs[0]}")
            if runs[1] != runs[0]:
                print(f"  rpc: {runs[1]} (second run)")
            if cpu != runs[0]:
                print(f"  cpu: {cpu}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
