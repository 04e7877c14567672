#!/usr/bin/env python3
"""A recording TCP proxy: listens, forwards every connection to a target, and keeps what passed.

Each connection becomes a list of records, `direction | u32 LE length | bytes`, direction b'C'
for client->server and b'S' for server->client, one record per chunk read from a socket (the
format tests/support/trace.rs reads). Within a direction the bytes are exact and in order; the
interleaving of C and S records is only as good as the proxy's scheduling.

A session file holds the connections one after another, in the order they were accepted; the
byte offset where each connection starts is returned (and printed), so a reader can split them.
ggml's RPC client opens a connection per "dispatcher" and reconnects whenever it has released the
last one, so one llama.cpp run makes several connections, each starting with HELLO.

  record_proxy.py --listen 127.0.0.1:50200 --target 127.0.0.1:50100 --out session.trace
    (runs until SIGINT or SIGTERM, then writes the file and prints the connection offsets)

As a module: `with RecordingProxy(target) as proxy: ...; proxy.write(path)`.
"""

import argparse
import signal
import socket
import struct
import sys
import threading

CLIENT = b"C"
SERVER = b"S"
CHUNK = 1 << 16


def parse_endpoint(text):
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"endpoint {text!r} is not HOST:PORT")
    return host, int(port)


class Connection:
    """The records of one proxied connection."""

    def __init__(self, index):
        self.index = index
        self.records = []  # (direction, bytes)
        self.lock = threading.Lock()
        self.done = threading.Event()

    def add(self, direction, data):
        with self.lock:
            self.records.append((direction, data))

    def encode(self):
        with self.lock:
            return b"".join(d + struct.pack("<I", len(b)) + b for d, b in self.records)

    def bytes_from(self, direction):
        with self.lock:
            return sum(len(b) for d, b in self.records if d == direction)


class RecordingProxy:
    """Listens on `listen` (port 0: any free port; see .port) and forwards to `target`."""

    def __init__(self, target, listen=("127.0.0.1", 0)):
        self.target = target
        self.listener = socket.create_server(listen)
        self.host, self.port = self.listener.getsockname()[:2]
        self.connections = []
        self.lock = threading.Lock()
        self.closing = False
        self.accept_thread = threading.Thread(target=self._accept_loop, daemon=True)

    @property
    def endpoint(self):
        return f"{self.host}:{self.port}"

    def __enter__(self):
        self.accept_thread.start()
        return self

    def __exit__(self, *exc):
        self.close()

    def _accept_loop(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # the listener was closed
            with self.lock:
                if self.closing:
                    client.close()
                    return
                conn = Connection(len(self.connections))
                self.connections.append(conn)
            threading.Thread(target=self._serve, args=(conn, client), daemon=True).start()

    def _serve(self, conn, client):
        try:
            server = socket.create_connection(self.target)
        except OSError as e:
            print(f"record_proxy: cannot reach {self.target}: {e}", file=sys.stderr)
            client.close()
            conn.done.set()
            return
        for s in (client, server):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        pumps = [
            threading.Thread(target=self._pump, args=(conn, client, server, CLIENT), daemon=True),
            threading.Thread(target=self._pump, args=(conn, server, client, SERVER), daemon=True),
        ]
        for p in pumps:
            p.start()
        for p in pumps:
            p.join()
        client.close()
        server.close()
        conn.done.set()

    @staticmethod
    def _pump(conn, source, sink, direction):
        """Copies source -> sink until source ends, then half-closes sink."""
        while True:
            try:
                data = source.recv(CHUNK)
            except OSError:
                data = b""
            if not data:
                break
            conn.add(direction, data)
            try:
                sink.sendall(data)
            except OSError:
                break
        try:
            sink.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def wait_idle(self, timeout=10.0):
        """Waits until every connection accepted so far has ended; False on timeout."""
        with self.lock:
            conns = list(self.connections)
        return all(c.done.wait(timeout) for c in conns)

    def close(self):
        with self.lock:
            self.closing = True
        try:
            self.listener.close()
        except OSError:
            pass

    def write(self, path):
        """Writes the connections, in accept order; returns the starting offset of each."""
        offsets = []
        with open(path, "wb") as f:
            for conn in self.connections:
                offsets.append(f.tell())
                f.write(conn.encode())
        return offsets


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--listen", required=True, help="HOST:PORT to listen on")
    ap.add_argument("--target", required=True, help="HOST:PORT to forward to")
    ap.add_argument("--out", required=True, help="session trace to write on SIGINT/SIGTERM")
    a = ap.parse_args(argv)
    try:
        listen, target = parse_endpoint(a.listen), parse_endpoint(a.target)
    except ValueError as e:
        ap.error(str(e))
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with RecordingProxy(target, listen) as proxy:
        print(f"record_proxy: {proxy.endpoint} -> {a.target}", file=sys.stderr)
        while not stop.wait(0.2):  # a timed wait lets the signal handlers run
            pass
    proxy.wait_idle(timeout=2.0)
    offsets = proxy.write(a.out)
    print(f"record_proxy: wrote {a.out}: {len(offsets)} connections at offsets {offsets}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
