"""tensor_rpc.* kernels called through TVM 0.27's own client on remote tensors, compared
with numpy on the same inputs. Prints one line per check: "<name> <max relative error>"
or "<name> error: <message>" for the cases that must be refused.

usage: python compute.py PORT
"""
import json
import sys

import numpy as np
import tvm
from tvm import rpc

r = rpc.connect("127.0.0.1", int(sys.argv[1]))
dev = r.cpu(0)
rng = np.random.default_rng(42)


def remote(a):
    return tvm.runtime.tensor(np.ascontiguousarray(a), dev)


def empty(shape, dtype):
    return tvm.runtime.empty(shape, dtype, dev)


def rel_err(got, want):
    want = np.asarray(want, dtype="float64")
    got = np.asarray(got, dtype="float64")
    if want.size == 0:
        return 0.0 if got.shape == want.shape else float("inf")
    scale = max(np.abs(want).max(), 1e-6)
    return float(np.abs(got - want).max() / scale)


def check(name, func, inputs, want, *extra, out_dtype=None):
    out = empty(want.shape, out_dtype or str(want.dtype))
    r.get_function("tensor_rpc." + func)(*[remote(x) for x in inputs], out, *extra)
    print(name, f"{rel_err(out.numpy(), want):.2e}")


def refused(name, func, *args):
    try:
        r.get_function("tensor_rpc." + func)(*args)
        print(name, "accepted")
    except Exception as e:
        print(name, "error:", str(e).splitlines()[-1])


def gelu(x):
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))


def softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


for dtype in ["float32", "float64"]:
    a = rng.standard_normal((37, 53)).astype(dtype)
    b = rng.standard_normal((53, 29)).astype(dtype)
    check(f"matmul {dtype} non-square", "matmul", [a, b], a @ b)
    check(f"matmul {dtype} transpose_b", "matmul", [a, a], a @ a.T, False, True)
    batched_a = rng.standard_normal((4, 1, 8, 16)).astype(dtype)
    batched_b = rng.standard_normal((3, 16, 5)).astype(dtype)
    check(f"matmul {dtype} batched broadcast", "matmul", [batched_a, batched_b], batched_a @ batched_b)
check("matmul 0-size", "matmul", [np.zeros((0, 4), "float32"), np.zeros((4, 3), "float32")], np.zeros((0, 3), "float32"))

for dtype in ["float32", "float64", "float16", "int32", "int64"]:
    x = (rng.standard_normal((6, 1, 5)) * 10).astype(dtype)
    y = (rng.standard_normal((4, 1)) * 10 + 20).astype(dtype)
    for op, f in [("add", np.add), ("sub", np.subtract), ("mul", np.multiply), ("maximum", np.maximum)]:
        check(f"{op} {dtype} broadcast", op, [x, y], f(x, y))
    if dtype.startswith("float"):
        check(f"div {dtype} broadcast", "div", [x, y], x / y)
    else:
        check(f"div {dtype} truncates", "div", [x, y], np.trunc(x / y).astype(dtype))

for dtype in ["float32", "float64"]:
    x = rng.standard_normal((7, 9)).astype(dtype)
    check(f"relu {dtype}", "relu", [x], np.maximum(x, 0))
    check(f"gelu {dtype}", "gelu", [x], gelu(x).astype(dtype))
    check(f"exp {dtype}", "exp", [x], np.exp(x))
    check(f"neg {dtype}", "neg", [x], -x)
    check(f"softmax {dtype}", "softmax", [x], softmax(x).astype(dtype))
    check(f"sum {dtype} axis 0", "sum", [x], x.sum(axis=0), 0)
    check(f"mean {dtype} axis -1 keepdims", "mean", [x], x.mean(axis=-1, keepdims=True), -1, True)
    check(f"max {dtype} axis 1", "max", [x], x.max(axis=1), 1)
    check(f"transpose {dtype}", "transpose", [x.reshape(7, 3, 3)], x.reshape(7, 3, 3).swapaxes(0, 2), 0, 2)
check("softmax 0-size", "softmax", [np.zeros((0, 5), "float32")], np.zeros((0, 5), "float32"))

for src, dst in [("float32", "int32"), ("int64", "float16"), ("float64", "float32"), ("int32", "int64")]:
    x = (rng.standard_normal((3, 4)) * 100).astype(src)
    check(f"cast {src} to {dst}", "cast", [x], x.astype(dst), out_dtype=dst)

out = empty((2, 3), "float64")
r.get_function("tensor_rpc.fill")(out, 3.25)
print("fill float64", f"{rel_err(out.numpy(), np.full((2, 3), 3.25)):.2e}")

a = remote(np.ones((3, 4), "float32"))
refused("matmul inner mismatch", "matmul", a, a, empty((3, 3), "float32"))
refused("add wrong out dtype", "add", a, a, empty((3, 4), "int32"))
refused("relu out aliases x", "relu", a, a)
refused("exp of int32", "exp", remote(np.ones(3, "int32")), empty((3,), "int32"))
refused("sum axis out of range", "sum", a, empty((3,), "float32"), 5)

# A two-layer MLP forward pass in one call.
x = rng.standard_normal((32, 64)).astype("float32")
w1 = (rng.standard_normal((64, 128)) / 8).astype("float32")
b1 = rng.standard_normal(128).astype("float32")
w2 = (rng.standard_normal((128, 10)) / 11).astype("float32")
b2 = rng.standard_normal(10).astype("float32")
plan = {
    "inputs": ["x", "w1", "b1", "w2", "b2", "y"],
    "nodes": [
        {"op": "matmul", "inputs": ["x", "w1"], "output": "h"},
        {"op": "add", "inputs": ["h", "b1"], "output": "hb"},
        {"op": "gelu", "inputs": ["hb"], "output": "a"},
        {"op": "matmul", "inputs": ["a", "w2"], "output": "z"},
        {"op": "add", "inputs": ["z", "b2"], "output": "zb"},
        {"op": "softmax", "inputs": ["zb"], "output": "y"},
    ],
}
y = empty((32, 10), "float32")
r.get_function("tensor_rpc.graph_compute")(json.dumps(plan), *[remote(t) for t in (x, w1, b1, w2, b2)], y)
x64, w164, b164, w264, b264 = (t.astype("float64") for t in (x, w1, b1, w2, b2))
want = softmax(gelu(x64 @ w164 + b164) @ w264 + b264)
print("mlp graph", f"{rel_err(y.numpy(), want):.2e}")

timings = np.frombuffer(r.get_function("tensor_rpc.time")("tensor_rpc.softmax", 5, 3, remote(x), empty(x.shape, "float32")), "float64")
print("time repeats", len(timings), bool((timings > 0).all()))
