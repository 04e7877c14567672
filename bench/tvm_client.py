"""Benchmarks with TVM 0.27's own Python client against one server (ours or TVM's).

usage: python tvm_client.py PORT WHAT [ARGS]
  latency N            echo round trips: prints {"p50_us", "p99_us", "mean_us",
                       "client_cpu_us"} (this client's own CPU time per call)
  latency_pair N BLOCK PORT2
                       echo round trips to PORT and PORT2 in alternating blocks of BLOCK
                       calls, N to each: prints {"servers": [{...}, {...}],
                       "median_block_ratio"} (PORT2's block p50 over PORT's, median)
  upload MIB REPEAT    tensor upload (copyfrom) throughput: prints {"gib_s"}
  download MIB REPEAT  tensor download (numpy()) throughput: prints {"gib_s"}
  concurrent C SECS    C client processes echoing for SECS: prints {"calls_s",
                       "client_cpu_us"} (the clients' own CPU time per call)
  matmul N REPEAT      tensor_rpc.matmul of two NxN float32 on the server: prints {"gflops"}
  matmul_vs_numpy N ROUNDS [PORT...]
                       numpy's N×N float32 matmul here, then tensor_rpc.matmul on each
                       server (PORT first, then the others), in turn, for ROUNDS rounds:
                       prints {"numpy": {...}, "servers": [{...}, ...]} with each one's best
                       GFLOP/s and each server's median ratio to numpy within a round
Prints one JSON object on the last line.
"""
import json
import multiprocessing as mp
import os
import sys
import time

import numpy as np
import tvm
from tvm import rpc


def connect(port):
    return rpc.connect("127.0.0.1", port)


def warm_echo(port):
    """testing.echo of a new session to `port`, after 200 calls of warm-up."""
    f = connect(port).get_function("testing.echo")
    for i in range(200):
        f(i)
    return f


def time_echoes(f, times, calls):
    """Times one echo call per index of `calls`, into those slots of `times`. Returns the CPU
    time this client process spent on them (user and system), in seconds."""
    cpu = time.process_time()
    for i in calls:
        t = time.perf_counter()
        f(i)
        times[i] = time.perf_counter() - t
    return time.process_time() - cpu


def latency_stats(times, client_cpu_s):
    """`client_cpu_s`: this client's own CPU time over all the calls. Per call, it is a floor
    under the round trip that no server can lower."""
    return {"p50_us": float(np.percentile(times, 50) * 1e6),
            "p99_us": float(np.percentile(times, 99) * 1e6),
            "mean_us": float(times.mean() * 1e6), "calls": len(times),
            "client_cpu_us": client_cpu_s / len(times) * 1e6}


def latency(port, n):
    times = np.empty(n)
    cpu = time_echoes(warm_echo(port), times, range(n))
    return latency_stats(times, cpu)


def latency_pair(port, n, block, other_port):
    """Echo round trips to two servers from one client, in alternating blocks of `block`
    calls (which server goes first alternates too), `n` calls to each: both see the same
    minutes of this machine, whose speed drifts between runs of a benchmark."""
    echoes = [warm_echo(port), warm_echo(other_port)]
    times = [np.empty(n), np.empty(n)]
    cpu = [0.0, 0.0]
    block_p50 = [[], []]
    for start in range(0, n, block):
        calls = range(start, min(start + block, n))
        for which in ((0, 1) if (start // block) % 2 == 0 else (1, 0)):
            cpu[which] += time_echoes(echoes[which], times[which], calls)
            block_p50[which].append(np.percentile(times[which][calls.start:calls.stop], 50))
    ratios = np.array(block_p50[1]) / np.array(block_p50[0])
    return {"servers": [latency_stats(t, c) for t, c in zip(times, cpu)], "block": block,
            "median_block_ratio": float(np.median(ratios))}


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
        cpu = time.process_time()
        end = time.perf_counter() + secs
        while time.perf_counter() < end:
            f(n)
            n += 1
        out.put((n, time.process_time() - cpu, None))
    except Exception as e:  # reported, so the parent never waits for a dead worker
        out.put((0, 0.0, f"{type(e).__name__}: {e}"))


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
    total, client_cpu, errors = 0, 0.0, []
    for _ in procs:
        try:
            n, cpu, error = out.get(timeout=clients * secs + 120)
        except Exception:
            errors.append("no result from a client process")
            break
        total += n
        client_cpu += cpu
        if error:
            errors.append(error)
    wall = time.perf_counter() - t
    for p in procs:
        p.join(timeout=5)
        if p.is_alive():
            p.kill()
    # The clients' own CPU time per call bounds what they can make of this machine's cores,
    # whatever the server does: cores / client_cpu_us calls per second at most.
    return {"calls_s": total / wall, "calls": total, "wall_s": wall, "errors": errors[:3],
            "failed_clients": len(errors),
            "client_cpu_us": client_cpu / total * 1e6 if total else float("nan")}


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
    best = min(_timed(lambda: f(a, b, c)) for _ in range(repeat))
    ref = a_np @ b_np
    err = float(np.abs(c.numpy() - ref).max() / np.abs(ref).max())
    return {"gflops": 2 * n ** 3 / best / 1e9, "seconds": best, "rel_err": err}


def matmul_vs_numpy(port, n, rounds, *other_ports):
    """Adjacent runs pair up: this machine's speed drifts by tens of percent from minute to
    minute (other VMs share its cores), so a ratio of two runs made a second apart is far
    steadier than one of two bests made minutes apart."""
    rng = np.random.default_rng(0)
    a_np = rng.standard_normal((n, n)).astype("float32")
    b_np = rng.standard_normal((n, n)).astype("float32")
    c_np = np.empty((n, n), "float32")
    ref = a_np @ b_np
    calls = []
    for p in (port, *other_ports):
        r = connect(p)
        dev = r.cpu(0)
        a, b = tvm.runtime.tensor(a_np, dev), tvm.runtime.tensor(b_np, dev)
        c = tvm.runtime.empty((n, n), "float32", dev)
        f = r.get_function("tensor_rpc.matmul")
        f(a, b, c)
        err = float(np.abs(c.numpy() - ref).max() / np.abs(ref).max())
        if err > 1e-4:
            raise SystemExit(f"server on port {p}: relative error {err}")
        calls.append((r, lambda f=f, a=a, b=b, c=c: f(a, b, c)))
    numpy_times, server_times = [], [[] for _ in calls]
    for turn in range(rounds):
        numpy_times.append(_timed_after_pause(lambda: np.matmul(a_np, b_np, out=c_np)))
        # Each server takes its turn first after numpy as often as the others.
        for i in range(len(calls)):
            which = (turn + i) % len(calls)
            server_times[which].append(_timed_after_pause(calls[which][1]))
    gflops = lambda seconds: 2 * n ** 3 / seconds / 1e9
    return {
        "numpy": {"gflops": gflops(min(numpy_times))},
        "servers": [{"gflops": gflops(min(times)),
                     "median_ratio": float(np.median(np.array(numpy_times) / np.array(times)))}
                    for times in server_times],
        "rounds": rounds,
    }


# OpenBLAS's threads spin after a product for 2^28 cycles (≈ 0.11 s here),
# and a server's GEMM threads briefly too: each run waits this long first, so
# that none runs while the previous one's threads still hold the cores.
PAUSE_S = float(os.environ.get("GEMM_PAUSE_S", "0.3"))


def _timed_after_pause(call):
    time.sleep(PAUSE_S)
    return _timed(call)


def _timed(call):
    t = time.perf_counter()
    call()
    return time.perf_counter() - t


if __name__ == "__main__":
    port, what = int(sys.argv[1]), sys.argv[2]
    args = [int(a) for a in sys.argv[3:]]
    if what == "latency":
        result = latency(port, *args)
    elif what == "latency_pair":
        result = latency_pair(port, *args)
    elif what in ("upload", "download"):
        result = transfer(port, args[0], args[1], what)
    elif what == "concurrent":
        result = concurrent(port, *args)
    elif what == "matmul":
        result = matmul(port, *args)
    elif what == "matmul_vs_numpy":
        result = matmul_vs_numpy(port, *args)
    else:
        raise SystemExit(f"unknown benchmark {what}")
    print(json.dumps(result))
