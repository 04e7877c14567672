"""Side-by-side benchmark: TVM 0.27's RPC server vs tensor-rpc on loopback, in one run.

usage: python bench/run.py [--quick] [--out bench/results.json] [--chart docs/bench.png]
Run through scripts/bench.sh, which builds the release binary and the bench venv.
"""
import argparse
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OURS = ROOT / "target" / "release" / "tensor-rpc"
PY = sys.executable
CLIENT = str(ROOT / "bench" / "tvm_client.py")
RPC_MAGIC = 0xFF271


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def handshake(port, timeout=0.5):
    """Opens a connection and completes the RPC handshake; returns the socket."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    key = b"client:"
    s.sendall(struct.pack("<ii", RPC_MAGIC, len(key)) + key)
    status = struct.unpack("<i", s.recv(4))[0]
    assert status == RPC_MAGIC, status
    (n,) = struct.unpack("<i", s.recv(4))
    s.recv(n)
    return s


def init_server(s):
    version = b"0.8.0"
    body = struct.pack("<iQ", 2, len(version)) + version + struct.pack("<i", 0)
    s.sendall(struct.pack("<Q", len(body)) + body)
    (n,) = struct.unpack("<Q", s.recv(8))
    s.recv(n)


class Server:
    def __init__(self, name, argv, port):
        self.name, self.port = name, port
        self.started = time.perf_counter()
        # A process group of its own: TVM's server forks worker processes, and `stop` ends
        # them with it (once the server is gone they belong to init, not to it).
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        deadline = time.time() + 60
        while True:
            try:
                handshake(self.port).close()
                break
            except OSError:
                if time.time() > deadline or self.proc.poll() is not None:
                    raise RuntimeError(f"{name} did not start")
                time.sleep(0.002)
        self.ready_ms = (time.perf_counter() - self.started) * 1000
        time.sleep(1.0)  # let a forked TVM session of the probe end

    def rss_mib(self):
        total = 0
        for pid in [self.proc.pid] + children(self.proc.pid):
            try:
                for line in open(f"/proc/{pid}/status"):
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
            except FileNotFoundError:
                pass
        return total / 1024

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # whatever it forked
        except ProcessLookupError:
            pass


def children(pid):
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    pids = [int(p) for p in out.split()]
    return pids + [c for p in pids for c in children(p)]


def start_tvm():
    port = free_port()
    return Server("tvm", [PY, "-m", "tvm.exec.rpc_server", "--host", "127.0.0.1", "--port",
                          str(port), "--port-end", str(port + 1)], port)


def start_ours(*extra):
    port = free_port()
    return Server("ours", [str(OURS), "server", "--host", "127.0.0.1", "--port", str(port),
                           "--log-level", "warn", *extra], port)


def tvm_client(port, *args):
    out = subprocess.run([PY, CLIENT, str(port), *map(str, args)], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"tvm_client {args}: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def rust_client(ports, quick, sections=None):
    """Our Rust client (benches/rpc.rs) against the servers on `ports` side by side: returns
    one dict of figures per server, each holding this machine's floor as well."""
    argv = ["cargo", "bench", "-q", "--bench", "rpc", "--", *(f"127.0.0.1:{p}" for p in ports)]
    if sections:
        argv += ["--only", ",".join(sections)]
    if quick:
        argv += ["--seconds", "0.5", "--sizes-mib", "1,64"]
    out = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"rust bench: {out.stderr[-2000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    shared = {k: v for k, v in result.items() if k != "servers"}
    servers = [{**shared, **figures} for figures in result["servers"]]
    for figures in servers:  # sizes and client counts in numeric order, for the table
        for key in ("upload_gib_s", "download_gib_s", "concurrent_calls_s",
                    "concurrent_client_cpu_us"):
            if key in figures:
                figures[key] = dict(sorted(figures[key].items(), key=lambda kv: int(kv[0])))
    return servers


def idle_connections_rss(server, n=64):
    socks = []
    for _ in range(n):
        try:
            s = handshake(server.port, timeout=2)
            init_server(s)
            socks.append(s)
        except OSError:
            break  # TVM's server serves one session at a time: the rest stay queued
    time.sleep(0.5)
    rss = server.rss_mib()
    for s in socks:
        s.close()
    return rss, len(socks)


def side_by_side(quick):
    """The measurements that run against both servers at once, alternating between them:
    measured one after the other, the two would see different minutes of this machine (its
    blocking ping-pong floor moved from 28 to 43 µs within one run). Echo with TVM's client
    in alternating blocks, then our Rust client's sections (see benches/rpc.rs). Our client's
    concurrent clients run against ours alone: TVM's server holds one session at a time, so
    concurrent clients of it would wait in its backlog past their connect timeout (TVM's own
    client measures that case)."""
    tvm, ours = start_tvm(), start_ours()
    try:
        n = 2000 if quick else 10000
        echo_pair = tvm_client(tvm.port, "latency_pair", n, 500, ours.port)
        rust_on_tvm, rust_on_ours = rust_client([tvm.port, ours.port], quick,
                                                ["floor", "echo", "pipelined", "transfer"])
        (concurrent,) = rust_client([ours.port], quick, ["concurrent"])
        for key in ("concurrent_calls_s", "concurrent_client_cpu_us"):
            rust_on_ours[key] = concurrent[key]
        return echo_pair, rust_on_tvm, rust_on_ours
    finally:
        tvm.stop()
        ours.stop()


def measure_server(server, quick):
    r = {"ready_ms": server.ready_ms, "rss_idle_mib": server.rss_mib()}
    sizes = [1, 64] if quick else [1, 64, 256]
    for mib in sizes:
        r[f"tvm_upload_{mib}"] = tvm_client(server.port, "upload", mib, 2)["gib_s"]
        r[f"tvm_download_{mib}"] = tvm_client(server.port, "download", mib, 2)["gib_s"]
    secs = 1 if quick else 3
    for clients in (1, 8, 64):
        c = tvm_client(server.port, "concurrent", clients, secs if clients < 64 else 1)
        r[f"tvm_calls_{clients}"] = c["calls_s"]
        r[f"tvm_calls_{clients}_client_cpu_us"] = c["client_cpu_us"]
    r["rss_64_idle_mib"], r["idle_connections_served"] = idle_connections_rss(server)
    return r


def gemm(quick):
    """SGEMM through tensor_rpc.matmul (TVM's client), one server per backend, against numpy.

    This machine's GEMM speed drifts by tens of percent from minute to minute (other VMs share
    its cores), so one client process runs numpy and then each server's matmul in turn (0.3 s
    apart, so that no run starts while the previous one's threads still spin), round after
    round: each ratio is the median over rounds of numpy's time over the server's in the same
    round, and the GFLOP/s figures are each one's best round.
    """
    sizes = [256, 1024] if quick else [256, 1024, 2048]
    rounds = {256: 40, 1024: 30, 2048: 15}
    if quick:
        rounds = {n: r // 3 for n, r in rounds.items()}
    backends = ["blis", "matrixmultiply", "gemm-crate"]
    out = {"numpy": {}, **{b: {} for b in backends}, "ratio": {b: {} for b in backends}}
    servers = [start_ours("--gemm-backend", backend) for backend in backends]
    try:
        for n in sizes:
            ports = [s.port for s in servers]
            r = tvm_client(ports[0], "matmul_vs_numpy", n, rounds[n], *ports[1:])
            out["numpy"][n] = r["numpy"]["gflops"]
            for backend, figures in zip(backends, r["servers"]):
                out[backend][n] = figures["gflops"]
                out["ratio"][backend][n] = figures["median_ratio"]
            print(f"gemm {n}: {json.dumps(r)}", file=sys.stderr)
    finally:
        for server in servers:
            server.stop()
    return out


def table(results):
    tvm, ours, rust = results["tvm"], results["ours"], results["rust_ours"]
    floor_block = rust["floor_blocking"]["p50_us"]
    floor_spin = rust["floor_spinning"]["p50_us"]
    rows = []

    def row(name, t, o, unit, higher_is_better):
        ratio = (o / t if higher_is_better else t / o) if t and o else float("nan")
        rows.append((name, t, o, unit, ratio))

    row("echo p50, TVM client", tvm["tvm_echo"]["p50_us"], ours["tvm_echo"]["p50_us"], "µs", False)
    row("echo p99, TVM client", tvm["tvm_echo"]["p99_us"], ours["tvm_echo"]["p99_us"], "µs", False)
    for k in sorted({k for k in ours if k.startswith("tvm_upload") or k.startswith("tvm_download")},
                    key=lambda k: (k.split("_")[1], int(k.split("_")[2]))):
        _, way, mib = k.split("_")
        row(f"{way} {mib} MiB, TVM client", tvm[k], ours[k], "GiB/s", True)
    for c in (1, 8, 64):
        row(f"{c} concurrent clients", tvm[f"tvm_calls_{c}"], ours[f"tvm_calls_{c}"], "calls/s", True)
    row("RSS idle", tvm["rss_idle_mib"], ours["rss_idle_mib"], "MiB", False)
    row("RSS, 64 idle connections", tvm["rss_64_idle_mib"], ours["rss_64_idle_mib"], "MiB", False)
    row("start to ready", tvm["ready_ms"], ours["ready_ms"], "ms", False)

    lines = ["| measure | TVM server | tensor-rpc | unit | advantage |", "|---|---:|---:|---|---:|"]
    for name, t, o, unit, ratio in rows:
        lines.append(f"| {name} | {t:,.2f} | {o:,.2f} | {unit} | {ratio:.2f}× |")
    lines.append("")
    lines.append(f"Floor of this machine (32-byte TCP ping-pong between two threads): "
                 f"{floor_block:.1f} µs blocking, {floor_spin:.1f} µs spinning.")
    lines.append(f"Echo p50 with TVM's client, as multiples of the blocking floor: TVM server "
                 f"{tvm['tvm_echo']['p50_us'] / floor_block:.1f}×, tensor-rpc "
                 f"{ours['tvm_echo']['p50_us'] / floor_block:.1f}×.")
    pair = results.get("tvm_echo_pair")
    if pair:
        lines.append(f"Echo with TVM's client ran against both servers from one client in "
                     f"alternating blocks of {pair['block']} calls; tensor-rpc's block p50 over "
                     f"TVM's, median over blocks: {pair['median_block_ratio']:.2f}×.")
    lines.append("")
    lines.append("Our Rust client measured both servers side by side: every section below but the "
                 "concurrent one alternates between them round by round.")
    for label, key in [("busy-poll", "echo"), ("no busy-poll", "echo_no_spin")]:
        ratio = rust[key].get("median_block_ratio")
        if ratio is not None:
            lines.append(f"Echo p50 ({label}) in alternating blocks of {rust['echo_block']} "
                         f"calls: tensor-rpc's block p50 over TVM's, median over blocks: "
                         f"{ratio:.2f}×.")
    lines.append("")
    lines.append("| our Rust client | vs TVM server | vs tensor-rpc | unit |")
    lines.append("|---|---:|---:|---|")
    rt = results.get("rust_tvm", {})
    for label, key in [("echo p50 (busy-poll)", "echo"), ("echo p50 (no busy-poll)", "echo_no_spin")]:
        o = rust[key]["p50_us"]
        t = rt.get(key, {}).get("p50_us", float("nan"))
        lines.append(f"| {label} | {t:.2f} | {o:.2f} ({o / floor_spin:.1f}× spinning floor) | µs |")
        lines.append(f"| {label.replace('p50', 'p99')} | {rt.get(key, {}).get('p99_us', float('nan')):.2f} | {rust[key]['p99_us']:.2f} | µs |")
    lines.append(f"| pipelined echo, 64 in flight | {rt.get('pipelined_calls_s', float('nan')):,.0f} | {rust['pipelined_calls_s']:,.0f} | calls/s |")
    for way in ("upload", "download"):
        for mib, v in rust[f"{way}_gib_s"].items():
            t = rt.get(f"{way}_gib_s", {}).get(mib, float("nan"))
            lines.append(f"| {way} {mib} MiB | {t:.2f} | {v:.2f} | GiB/s |")
    for c, v in rust["concurrent_calls_s"].items():
        t = rt.get("concurrent_calls_s", {}).get(c, float("nan"))
        lines.append(f"| {c} concurrent clients | {t:,.0f} | {v:,.0f} | calls/s |")
    lines.append("")
    lines.extend(client_cpu_bounds(results))
    if "gemm" in results:
        lines.append("")
        lines.append(gemm_table(results["gemm"]))
    return "\n".join(lines)


def client_cpu_bounds(results):
    """What TVM's Python client costs itself, measured in the same run: its own CPU time per
    echo bounds the round trip from below, and its CPU time per call with many clients bounds
    their aggregate rate on this machine's cores, whatever the server does."""
    tvm, ours = results["tvm"], results["ours"]
    if "client_cpu_us" not in ours["tvm_echo"]:
        return []
    cores = results["machine"]["cpus"]
    half = tvm["tvm_echo"]["p50_us"] / 2
    own = ours["tvm_echo"]["client_cpu_us"]
    lines = [f"TVM's client's own CPU time per echo (user + system, over the timed calls): "
             f"{tvm['tvm_echo']['client_cpu_us']:.1f} µs with TVM's server, {own:.1f} µs "
             f"with tensor-rpc; half of TVM's server's p50 is {half:.1f} µs"
             + (", less than that: no server reaches it with this client." if half < own
                else ".")]
    for c in (8, 64):
        cpu = ours.get(f"tvm_calls_{c}_client_cpu_us")
        if cpu:
            lines.append(f"{c} TVM clients on tensor-rpc spent {cpu:.1f} µs of CPU per call "
                         f"themselves: on {cores} cores they can make at most "
                         f"{cores / cpu * 1e6:,.0f} calls/s, whatever the server does "
                         f"({cores / cpu * 1e6 / ours['tvm_calls_1']:.2f}× one client's rate).")
    rust = results["rust_ours"]
    cpu = rust.get("concurrent_client_cpu_us", {}).get("64")
    if cpu:
        one = rust["concurrent_calls_s"]["1"]
        lines.append(f"64 of our Rust clients spent {cpu:.1f} µs of CPU per call themselves "
                     f"(threads blocking on their sockets): at most {cores / cpu * 1e6:,.0f} "
                     f"calls/s on {cores} cores, {cores / cpu * 1e6 / one:.2f}× one client's "
                     f"rate, before the server's own share.")
    return lines


def gemm_table(g):
    backends = [b for b in g if b not in ("numpy", "ratio")]
    lines = ["| SGEMM n | numpy GFLOP/s | " + " | ".join(f"{b} via RPC (ratio)" for b in backends) + " |",
             "|---:|---:|" + "---:|" * len(backends)]
    for n in g["numpy"]:
        cells = [f"{g[b][n]:.1f} ({g['ratio'][b][n]:.2f}×)" for b in backends]
        lines.append(f"| {n} | {g['numpy'][n]:.1f} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("GFLOP/s: best round. Ratio: median over rounds of numpy's time over the "
                 "server's in the same round (numpy, then each server, in turn).")
    return "\n".join(lines)


def chart(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tvm, ours = results["tvm"], results["ours"]
    fig, axes = plt.subplots(1, 4, figsize=(16, 4))
    panels = [
        ("Echo latency, TVM client (µs, lower is better)",
         ["p50", "p99"], [tvm["tvm_echo"]["p50_us"], tvm["tvm_echo"]["p99_us"]],
         [ours["tvm_echo"]["p50_us"], ours["tvm_echo"]["p99_us"]]),
        ("Aggregate calls/s (higher is better)",
         ["1", "8", "64 clients"], [tvm[f"tvm_calls_{c}"] for c in (1, 8, 64)],
         [ours[f"tvm_calls_{c}"] for c in (1, 8, 64)]),
        ("Server RSS (MiB, lower is better)",
         ["idle", "64 idle conns"], [tvm["rss_idle_mib"], tvm["rss_64_idle_mib"]],
         [ours["rss_idle_mib"], ours["rss_64_idle_mib"]]),
    ]
    for ax, (title, labels, t, o) in zip(axes, panels):
        xs = range(len(labels))
        ax.bar([x - 0.2 for x in xs], t, 0.4, label="TVM 0.27 server")
        ax.bar([x + 0.2 for x in xs], o, 0.4, label="tensor-rpc")
        ax.set_xticks(list(xs), labels)
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=8)
    rust = results["rust_ours"]
    ax = axes[3]
    # (upload/download of our Rust client against our server)
    sizes = list(rust["upload_gib_s"])
    xs = range(len(sizes))
    ax.bar([x - 0.2 for x in xs], [rust["upload_gib_s"][s] for s in sizes], 0.4, label="upload")
    ax.bar([x + 0.2 for x in xs], [rust["download_gib_s"][s] for s in sizes], 0.4, label="download")
    ax.set_xticks(list(xs), [f"{s} MiB" for s in sizes])
    ax.set_title("tensor-rpc with its Rust client (GiB/s)", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="short profile (smoke test)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results.json"))
    ap.add_argument("--chart", default=str(ROOT / "docs" / "bench.png"))
    ap.add_argument("--no-gemm", action="store_true")
    ap.add_argument("--only-gemm", action="store_true",
                    help="only the GEMM section; prints it, writes nothing")
    args = ap.parse_args()
    if args.only_gemm:
        print(gemm_table(gemm(args.quick)))
        return
    results = {"machine": {"cpus": os.cpu_count(), "load": os.getloadavg()}}
    pair, results["rust_tvm"], results["rust_ours"] = side_by_side(args.quick)
    results["tvm_echo_pair"] = {"block": pair["block"],
                                "median_block_ratio": pair["median_block_ratio"]}
    for (name, start), echo in zip([("tvm", start_tvm), ("ours", start_ours)], pair["servers"]):
        server = start()
        try:
            results[name] = measure_server(server, args.quick)
            results[name]["tvm_echo"] = echo
            print(f"{name}: {json.dumps(results[name])}", file=sys.stderr)
        finally:
            server.stop()
    if not args.no_gemm:
        results["gemm"] = gemm(args.quick)
    Path(args.out).write_text(json.dumps(results, indent=1))
    print(table(results))
    chart(results, args.chart)
    print(f"\nresults: {args.out}\nchart: {args.chart}")


if __name__ == "__main__":
    main()
