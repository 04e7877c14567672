#!/usr/bin/env python3
"""Prints the ggml-RPC 7.0.0 commands of a recorded trace (tests/ggml/record_proxy.py format).

For each command: its index, the connection, the command name, the payload size and the reply
size, with a few decoded details (device, sizes, tensor names, graph node counts); then the count
of each command and, with --ops, how often each (op, type) pair appears in the graphs.

  dump_trace.py tests/traces/ggml7-f32-fa-off.trace            # every command
  dump_trace.py --summary --ops tests/traces/ggml7-f32-fa-off.trace

Connections are split at the byte offsets listed in the sidecar JSON (`connections`), when there
is one next to the trace; otherwise the whole file is read as one stream, which works as long as
every command got its reply.
"""

import argparse
import collections
import json
import signal
import struct
import sys
from pathlib import Path

COMMANDS = [
    "ALLOC_BUFFER", "GET_ALIGNMENT", "GET_MAX_SIZE", "BUFFER_GET_BASE", "FREE_BUFFER",
    "BUFFER_CLEAR", "SET_TENSOR", "SET_TENSOR_HASH", "GET_TENSOR", "COPY_TENSOR",
    "GRAPH_COMPUTE", "GET_DEVICE_MEMORY", "INIT_TENSOR", "GET_ALLOC_SIZE", "HELLO",
    "DEVICE_COUNT", "GRAPH_RECOMPUTE", "MEMSET_TENSOR",
]  # fmt: skip
# commands the server answers (ggml-rpc.cpp, rpc_serve_client); the others get no reply
REPLIED = {
    "ALLOC_BUFFER", "GET_ALIGNMENT", "GET_MAX_SIZE", "BUFFER_GET_BASE", "SET_TENSOR_HASH",
    "GET_TENSOR", "COPY_TENSOR", "GET_DEVICE_MEMORY", "GET_ALLOC_SIZE", "HELLO", "DEVICE_COUNT",
}  # fmt: skip

# enum ggml_op of ggml.h at llama.cpp 0c1e570 (GGML_OP_COUNT == 101)
OPS = """NONE DUP ADD ADD_ID ADD1 ACC SUB MUL DIV SQR SQRT LOG SIN COS SUM SUM_ROWS CUMSUM MEAN ARGMAX
COUNT_EQUAL REPEAT REPEAT_BACK CONCAT SILU_BACK NORM RMS_NORM RMS_NORM_BACK GROUP_NORM L2_NORM MUL_MAT
MUL_MAT_ID OUT_PROD SCALE SET CPY CONT RESHAPE VIEW PERMUTE TRANSPOSE GET_ROWS GET_ROWS_BACK SET_ROWS
DIAG DIAG_MASK_INF DIAG_MASK_ZERO SOFT_MAX SOFT_MAX_BACK ROPE ROPE_BACK CLAMP CONV_TRANSPOSE_1D IM2COL
IM2COL_BACK IM2COL_3D COL2IM_1D CONV_2D CONV_3D CONV_2D_DW CONV_TRANSPOSE_2D POOL_1D POOL_2D POOL_2D_BACK
UPSCALE PAD PAD_REFLECT_1D ROLL ARANGE TIMESTEP_EMBEDDING ARGSORT TOP_K LEAKY_RELU TRI FILL
FLASH_ATTN_EXT FLASH_ATTN_BACK SSM_CONV SSM_SCAN WIN_PART WIN_UNPART GET_REL_POS ADD_REL_POS RWKV_WKV6
GATED_LINEAR_ATTN RWKV_WKV7 SOLVE_TRI GATED_DELTA_NET LIGHTNING_INDEXER DSV4_HC_COMB DSV4_HC_PRE
DSV4_HC_POST UNARY MAP_CUSTOM1 MAP_CUSTOM2 MAP_CUSTOM3 CUSTOM CROSS_ENTROPY_LOSS
CROSS_ENTROPY_LOSS_BACK OPT_STEP_ADAMW OPT_STEP_SGD GLU""".split()
assert len(OPS) == 101
TYPES = {
    0: "f32", 1: "f16", 2: "q4_0", 3: "q4_1", 6: "q5_0", 7: "q5_1", 8: "q8_0", 9: "q8_1",
    10: "q2_K", 11: "q3_K", 12: "q4_K", 13: "q5_K", 14: "q6_K", 15: "q8_K", 16: "iq2_xxs",
    17: "iq2_xs", 18: "iq3_xxs", 19: "iq1_s", 20: "iq4_nl", 21: "iq3_s", 22: "iq2_s", 23: "iq4_xs",
    24: "i8", 25: "i16", 26: "i32", 27: "i64", 28: "f64", 29: "iq1_m", 30: "bf16", 34: "tq1_0",
    35: "tq2_0", 39: "mxfp4", 40: "nvfp4", 41: "q1_0", 42: "q2_0",
}  # fmt: skip
GLU_OPS = ["REGLU", "GEGLU", "SWIGLU", "SWIGLU_OAI", "GEGLU_ERF", "GEGLU_QUICK", "SWIGLU_CLAMP"]
UNARY_OPS = """ABS SGN NEG STEP TANH ELU RELU SIGMOID GELU GELU_QUICK SILU HARDSWISH HARDSIGMOID EXP
EXPM1 SOFTPLUS GELU_ERF XIELU FLOOR CEIL ROUND TRUNC""".split()

RPC_TENSOR_SIZE = 296


class TraceError(Exception):
    pass


def read_records(data):
    """Yields (direction, bytes) records."""
    i = 0
    while i < len(data):
        if i + 5 > len(data):
            raise TraceError(f"record header cut at offset {i}")
        direction, length = data[i : i + 1], struct.unpack_from("<I", data, i + 1)[0]
        if direction not in (b"C", b"S"):
            raise TraceError(f"bad direction byte {data[i]:#x} at offset {i}")
        if i + 5 + length > len(data):
            raise TraceError(f"record at offset {i} runs past the end")
        yield direction, data[i + 5 : i + 5 + length]
        i += 5 + length


def streams(data):
    client, server = bytearray(), bytearray()
    for direction, payload in read_records(data):
        (client if direction == b"C" else server).extend(payload)
    return bytes(client), bytes(server)


class Tensor:
    def __init__(self, raw, at=0):
        self.id, self.type, self.buffer = struct.unpack_from("<QIQ", raw, at)
        self.ne = struct.unpack_from("<4I", raw, at + 20)
        self.nb = struct.unpack_from("<4I", raw, at + 36)
        self.op = struct.unpack_from("<I", raw, at + 52)[0]
        self.op_params = struct.unpack_from("<16i", raw, at + 56)
        self.flags = struct.unpack_from("<i", raw, at + 120)[0]
        self.src = struct.unpack_from("<10Q", raw, at + 124)
        self.name = raw[at + 228 : at + 292].split(b"\0", 1)[0].decode(errors="replace")

    def op_name(self):
        name = OPS[self.op] if self.op < len(OPS) else f"op{self.op}"
        if name == "GLU" and 0 <= self.op_params[0] < len(GLU_OPS):
            name += "/" + GLU_OPS[self.op_params[0]]
        if name == "UNARY" and 0 <= self.op_params[0] < len(UNARY_OPS):
            name += "/" + UNARY_OPS[self.op_params[0]]
        return name

    def type_name(self):
        return TYPES.get(self.type, f"type{self.type}")

    def shape(self):
        return "x".join(str(n) for n in self.ne)


def graph_details(payload, op_counts):
    device, n_nodes = struct.unpack_from("<II", payload, 0)
    node_ids = struct.unpack_from(f"<{n_nodes}Q", payload, 8)
    at = 8 + 8 * n_nodes
    n_tensors = struct.unpack_from("<I", payload, at)[0]
    at += 4
    tensors = {}
    for k in range(n_tensors):
        t = Tensor(payload, at + k * RPC_TENSOR_SIZE)
        tensors[t.id] = t
    if op_counts is not None:
        for nid in node_ids:
            t = tensors.get(nid)
            if t is None:
                continue
            srcs = ",".join(tensors[s].type_name() if s in tensors else "?" for s in t.src if s)
            op_counts[(t.op_name(), t.type_name(), srcs)] += 1
    return f"device {device}, {n_nodes} nodes, {n_tensors} tensors"


def details(cmd, payload, reply):
    try:
        if cmd in ("ALLOC_BUFFER",):
            device, size = struct.unpack_from("<IQ", payload)
            ptr, rsize = struct.unpack_from("<QQ", reply) if len(reply) >= 16 else (0, 0)
            return f"device {device}, size {size} -> ptr {ptr:#x}, size {rsize}"
        if cmd in ("GET_ALIGNMENT", "GET_MAX_SIZE", "GET_DEVICE_MEMORY", "GRAPH_RECOMPUTE"):
            text = f"device {struct.unpack_from('<I', payload)[0]}"
            if reply:
                text += " -> " + " ".join(str(v) for v in struct.unpack_from(f"<{len(reply) // 8}Q", reply))
            return text
        if cmd in ("BUFFER_GET_BASE", "FREE_BUFFER", "BUFFER_CLEAR"):
            ptr = struct.unpack_from("<Q", payload)[0]
            text = f"buffer {ptr:#x}"
            if cmd == "BUFFER_CLEAR":
                text += f", value {payload[8]}"
            if reply:
                text += f" -> base {struct.unpack_from('<Q', reply)[0]:#x}"
            return text
        if cmd == "DEVICE_COUNT":
            return f"-> {struct.unpack_from('<I', reply)[0]}"
        if cmd in ("SET_TENSOR", "SET_TENSOR_HASH", "GET_TENSOR", "INIT_TENSOR", "MEMSET_TENSOR", "GET_ALLOC_SIZE"):
            at = 4 if cmd == "GET_ALLOC_SIZE" else 0
            t = Tensor(payload, at)
            text = f"{t.name or '-'} {t.type_name()} {t.shape()}"
            if cmd == "SET_TENSOR":
                offset = struct.unpack_from("<Q", payload, RPC_TENSOR_SIZE + 1)[0]
                text += f", offset {offset}, {len(payload) - RPC_TENSOR_SIZE - 9} bytes"
            elif cmd == "GET_TENSOR":
                offset, size = struct.unpack_from("<QQ", payload, RPC_TENSOR_SIZE)
                text += f", offset {offset}, {size} bytes"
            elif cmd == "GET_ALLOC_SIZE":
                text += f" {t.op_name()}"
                if reply:
                    text += f" -> {struct.unpack_from('<Q', reply)[0]}"
            return text
        if cmd == "HELLO" and len(reply) >= 3:
            return f"-> version {reply[0]}.{reply[1]}.{reply[2]}"
    except struct.error:
        return "(short payload)"
    return ""


def decode(client, server, connection, commands, op_counts):
    """Appends (connection, cmd, payload size, reply size, details) for one connection."""
    c = s = 0
    while c < len(client):
        if c + 9 > len(client):
            raise TraceError(f"connection {connection}: command header cut at client byte {c}")
        cmd_id = client[c]
        size = struct.unpack_from("<Q", client, c + 1)[0]
        payload = client[c + 9 : c + 9 + size]
        if len(payload) != size:
            raise TraceError(f"connection {connection}: payload of command {cmd_id} cut")
        c += 9 + size
        cmd = COMMANDS[cmd_id] if cmd_id < len(COMMANDS) else f"cmd{cmd_id}"
        reply = b""
        reply_size = None
        if cmd in REPLIED and s + 8 <= len(server):
            reply_size = struct.unpack_from("<Q", server, s)[0]
            reply = server[s + 8 : s + 8 + reply_size]
            s += 8 + reply_size
        if cmd == "GRAPH_COMPUTE":
            text = graph_details(payload, op_counts)
        else:
            text = details(cmd, payload, reply)
        commands.append((connection, cmd, size, reply_size, text))
    if s != len(server):
        raise TraceError(f"connection {connection}: {len(server) - s} server bytes left over")


def main(argv):
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # quiet when piped into head
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("trace")
    ap.add_argument("--summary", action="store_true", help="counts only, no command list")
    ap.add_argument("--ops", action="store_true", help="count graph nodes by (op, type, source types)")
    a = ap.parse_args(argv)
    path = Path(a.trace)
    data = path.read_bytes()
    sidecar = path.with_suffix(".json")
    offsets = [0]
    if sidecar.exists():
        offsets = json.loads(sidecar.read_text()).get("connections", {}).get("offsets", [0])
    bounds = list(zip(offsets, offsets[1:] + [len(data)]))
    commands = []
    op_counts = collections.Counter() if a.ops else None
    try:
        for n, (start, end) in enumerate(bounds):
            client, server = streams(data[start:end])
            decode(client, server, n, commands, op_counts)
    except TraceError as e:
        print(f"dump_trace.py: {path}: {e}", file=sys.stderr)
        return 1
    if not a.summary:
        print(f"{'#':>5} {'conn':>4} {'command':<18} {'payload':>9} {'reply':>7}  details")
        for i, (conn, cmd, size, reply_size, text) in enumerate(commands):
            reply = "-" if reply_size is None else str(reply_size)
            print(f"{i:>5} {conn:>4} {cmd:<18} {size:>9} {reply:>7}  {text}")
    counts = collections.Counter(cmd for _, cmd, *_ in commands)
    payload = collections.Counter()
    for _, cmd, size, *_ in commands:
        payload[cmd] += size
    print(f"{path.name}: {len(data)} bytes, {len(bounds)} connection(s), {len(commands)} commands")
    for cmd, n in sorted(counts.items(), key=lambda kv: COMMANDS.index(kv[0]) if kv[0] in COMMANDS else 99):
        print(f"  {cmd:<18} {n:>5}  ({payload[cmd]} payload bytes)")
    if op_counts:
        print("graph nodes (op, dst type, src types), over all GRAPH_COMPUTE:")
        for (op, dst, srcs), n in sorted(op_counts.items()):
            print(f"  {op:<16} {dst:<5} [{srcs}] {n:>5}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
