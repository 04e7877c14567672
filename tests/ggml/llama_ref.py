"""Running the reference llama.cpp tools from Python: ggml's rpc-server and greedy-ids.

Used by check_greedy.py and record_traces.py. The bin dir comes from scripts/llama-ref.sh.
"""

import os
import socket
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def bin_dir():
    """Runs scripts/llama-ref.sh (a no-op once built) and returns its bin dir."""
    out = subprocess.run([str(ROOT / "scripts" / "llama-ref.sh")], check=True, stdout=subprocess.PIPE, text=True)
    return Path(out.stdout.strip())


def models_dir():
    out = subprocess.run([str(ROOT / "scripts" / "llama-models.sh")], check=True, stdout=subprocess.PIPE, text=True)
    return Path(out.stdout.strip())


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RpcServer:
    """ggml's own rpc-server on 127.0.0.1, on a free port, for the duration of a `with`."""

    def __init__(self, bin_path, threads=1, log=None):
        self.port = free_port()
        self.endpoint = f"127.0.0.1:{self.port}"
        self.log = open(log, "wb") if log else subprocess.DEVNULL
        cmd = [str(Path(bin_path) / "ggml-rpc-server"), "-H", "127.0.0.1", "-p", str(self.port), "-t", str(threads)]
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        self._wait_listening()

    def _wait_listening(self, timeout=20.0):
        # rpc-server prints before it binds, so the port itself is watched. A probe connection
        # that closes without a HELLO is dropped by the server, which then accepts the next.
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ggml-rpc-server exited with {self.proc.returncode}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        self.close()
        raise RuntimeError(f"ggml-rpc-server did not listen on {self.endpoint}")

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.log is not subprocess.DEVNULL:
            self.log.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def greedy_ids(bin_path, model, prompt, n_predict, rpc=None, threads=1, flash_attn="off", ngl=99,
               cache_k="f16", cache_v="f16", no_repack=False, overrides=None, tensor_split=None,
               timeout=300):
    """Runs greedy-ids; returns (the sampled token ids, the argv used). Raises on failure."""
    argv = [str(Path(bin_path) / "greedy-ids"), "-m", str(model), "-n", str(n_predict), "-ngl", str(ngl),
            "-t", str(threads), "-fa", flash_attn, "-ctk", cache_k, "-ctv", cache_v]  # fmt: skip
    if rpc:
        argv += ["--rpc", rpc]
    if no_repack:
        argv += ["--no-repack"]
    if overrides:
        argv += ["-ot", overrides]
    if tensor_split:
        argv += ["-ts", tensor_split]
    argv.append(prompt)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GREEDY_")}
    done = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    if done.returncode != 0:
        tail = done.stderr.decode(errors="replace")[-3000:]
        raise RuntimeError(f"greedy-ids exited with {done.returncode}:\n{tail}")
    ids = [int(line.split()[1]) for line in done.stdout.decode().splitlines() if line.startswith("GREEDY_ID ")]
    return ids, argv
