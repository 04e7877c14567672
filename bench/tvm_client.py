"""Benchmarks with TVM 0.27's own Python client against one server (ours or TVM's).

usage: python tvm_client.py PORT WHAT [ARGS]
  latency N            echo round trips: prints {"p50_us", "p99_us", "mean_us"}
  upload MIB REPEAT    tensor upload (copyfrom) throughput: prints {"gib_s"}
  download MIB REPEAT  tensor download (numpy()) throughput: prints {"gib_s"}
  concurrent C SECS    C client processes echoing for SECS: prints {"calls_s"}
  matmul N REPEAT      tensor_rpc.matmul of two NxN float32 on the server: prints {"gflops"}
Prints one JSON object on the last line.
"""
import json
import multiprocessing as mp
import sys
import time

import numpy as np
import tvm
from tvm import rpc


def connect(port):
    return rpc.connect("127.0.0.1", port)


def latency(port, n):
    r = connect(port)
    f = r.get_function("testing.echo")
    for i in range(200):
        f(i)
    times = np.empty(n)
    for i in range(n):
        t = time.perf_counter()
        f(i)
        times[i] = time.perf_counter() - t
    return {"p50_us": float(np.percentile(times, 50) * 1e6),
            "p99_us": float(np.percentile(times, 99) * 1e6),
            "mean_us": float(times.mean() * 1e6), "calls": n}


def transfer(port, mib, repeat, direction):
    r = connect(port)
    dev = r.cpu(0)
    x = np.random.default_rng(0).integers(0, 255, mib << 20, dtype="uint8")
    a = tvm.runtime.empty(x.shape, "uint8", dev)
    a.copyfrom(x)  # warm-up (and the server's first-touch of the pages)
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        if direction == "upload":
            a.copyfrom(x)
        else:
            y = a.numpy()
        best = min(best, time.perf_counter() - t)
    if direction == "download":
        assert np.array_equal(y, x)
    return {"gib_s": (mib / 1024) / best, "seconds": best}


def _echo_worker(port, secs, start, out):
    try:
        r = connect(port)
        f = r.get_function("testing.echo")
        f(0)
        start.wait()
        n = 0
        end = time.perf_counter() + secs
        while time.perf_counter() < end:
            f(n)
            n += 1
        out.put((n, None))
    except Exception as e:  # reported, so the parent never waits for a dead worker
        out.put((0, f"{type(e).__name__}: {e}"))


def concurrent(port, clients, secs):
    ctx = mp.get_context("fork")
    start = ctx.Event()
    out = ctx.Queue()
    procs = [ctx.Process(target=_echo_worker, args=(port, secs, start, out)) for _ in range(clients)]
    for p in procs:
        p.start()
    # TVM's server accepts one session at a time: the others wait in its backlog.
    time.sleep(1.0)
    t = time.perf_counter()
    start.set()
    total, errors = 0, []
    for _ in procs:
        try:
            n, error = out.get(timeout=clients * secs + 120)
        except Exception:
            errors.append("no result from a client process")
            break
        total += n
        if error:
            errors.append(error)
    wall = time.perf_counter() - t
    for p in procs:
        p.join(timeout=5)
        if p.is_alive():
            p.kill()
    return {"calls_s": total / wall, "calls": total, "wall_s": wall, "errors": errors[:3],
            "failed_clients": len(errors)}


def matmul(port, n, repeat):
    r = connect(port)
    dev = r.cpu(0)
    rng = np.random.default_rng(0)
    a_np = rng.standard_normal((n, n)).astype("float32")
    b_np = rng.standard_normal((n, n)).astype("float32")
    a = tvm.runtime.tensor(a_np, dev)
    b = tvm.runtime.tensor(b_np, dev)
    c = tvm.runtime.empty((n, n), "float32", dev)
    f = r.get_function("tensor_rpc.matmul")
    f(a, b, c)
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        f(a, b, c)
        best = min(best, time.perf_counter() - t)
    ref = a_np @ b_np
    err = float(np.abs(c.numpy() - ref).max() / np.abs(ref).max())
    return {"gflops": 2 * n ** 3 / best / 1e9, "seconds": best, "rel_err": err}


if __name__ == "__main__":
    port, what = int(sys.argv[1]), sys.argv[2]
    args = [int(a) for a in sys.argv[3:]]
    if what == "latency":
        result = latency(port, *args)
    elif what in ("upload", "download"):
        result = transfer(port, args[0], args[1], what)
    elif what == "concurrent":
        result = concurrent(port, *args)
    elif what == "matmul":
        result = matmul(port, *args)
    else:
        raise SystemExit(f"unknown benchmark {what}")
    print(json.dumps(result))
