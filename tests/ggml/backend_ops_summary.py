#!/usr/bin/env python3
"""Summarises test-backend-ops console logs as JSON: per op, the cases passed, failed, not
supported and skipped, with the failing case lines.

test-backend-ops prints one line per case on stdout once the case has run, `  OP(params): ...
OK|FAIL`, or `not supported [..]`, or `skipping large tensors for speed`; OP is ggml_op_desc (so
GLU cases appear as SWIGLU, GEGLU, ..., and UNARY ones as SILU, GELU, ...). A line without a
status is reported as `interrupted_at`; for a run that exited non-zero the last lines of its
stderr (LOG.stderr, where an abort is reported) are included.

  backend_ops_summary.py --run FILTER LOG SECONDS EXIT_CODE [--run ...] [--server H:P]

Writes the JSON on stdout. Uses only the standard library.
"""

import argparse
import json
import re
import sys

ANSI = re.compile(r"\x1b\[[0-9;]*m")
CASE = re.compile(r"^  ([A-Za-z0-9_]+)\((.*)\): (.*)$")


def classify(rest):
    rest = rest.strip()
    if rest.startswith("not supported"):
        return "not_supported"
    if rest.startswith("skipping"):
        return "skipped"
    if rest.endswith("OK"):
        return "passed"
    if rest.endswith("FAIL"):
        return "failed"
    return None


def summarise_log(text):
    ops = {}
    interrupted = None
    for raw in text.splitlines():
        line = ANSI.sub("", raw)
        m = CASE.match(line)
        if not m:
            continue
        op, params, rest = m.groups()
        status = classify(rest)
        if status is None:
            interrupted = line.strip()
            continue
        entry = ops.setdefault(op, {"passed": 0, "failed": 0, "not_supported": 0, "skipped": 0, "failures": []})
        entry[status] += 1
        if status == "failed":
            entry["failures"].append(line.strip())
    return ops, interrupted


def tail(path, lines=20):
    try:
        with open(path, errors="replace") as f:
            return f.read().splitlines()[-lines:]
    except OSError:
        return []


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", nargs=4, action="append", metavar=("FILTER", "LOG", "SECONDS", "EXIT_CODE"),
                    required=True, help="one test-backend-ops run: its -o filter ('' for all ops), log, time, status")
    ap.add_argument("--server", default="", help="the endpoint that was tested")
    a = ap.parse_args(argv)
    runs = []
    total = {"passed": 0, "failed": 0, "not_supported": 0, "skipped": 0}
    all_ops = {}
    for op_filter, log, seconds, exit_code in a.run:
        with open(log, errors="replace") as f:
            ops, interrupted = summarise_log(f.read())
        counts = {k: sum(o[k] for o in ops.values()) for k in total}
        for k in total:
            total[k] += counts[k]
        for name, o in ops.items():
            merged = all_ops.setdefault(name, {"passed": 0, "failed": 0, "not_supported": 0, "skipped": 0, "failures": []})
            for k in total:
                merged[k] += o[k]
            merged["failures"] += o["failures"]
        runs.append({
            "filter": op_filter or None,
            "seconds": float(seconds),
            "exit_code": int(exit_code),
            "interrupted_at": interrupted,
            # a case is printed only once it has run, so a crash shows in stderr, not in the log
            "stderr_tail": tail(log + ".stderr") if int(exit_code) != 0 else [],
            "counts": counts,
            "ops": ops,
        })  # fmt: skip
    json.dump({"server": a.server, "total": total, "ops": all_ops, "runs": runs}, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
