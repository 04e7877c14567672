#!/usr/bin/env python3
"""Greedy decoding of make_model.py's f32/f16 models in numpy, independently of llama.cpp.

It reads the GGUF back and runs the forward pass its architecture defines (llama, qwen2,
qwen3, qwen3moe, llama with experts), with the whole sequence recomputed per token. Two uses:

- the token ids it prints should equal greedy-ids' on the same model and prompt (-ngl 0): then
  the file holds the model make_model.py meant to write, and llama.cpp reads it the same way;
- for a MoE model, it counts how often each expert is picked per layer (prompt and generated
  tokens), to show the router spreads tokens over the experts instead of sending all to one.

  numpy_forward.py -n 16 MODELS/moe-f32.gguf "Once upon a time"

The prompt is tokenized as a BOS then one "▁word" piece per space-separated word (enough for
the prompts the tests use; a word that is not one piece is an error). Prints one JSON object.
Needs numpy and gguf (the venv of scripts/llama-ref.sh).
"""

import argparse
import json
import sys

import numpy as np
from gguf import GGUFReader, GGUFValueType

NEOX_ARCHS = ("qwen2", "qwen3", "qwen3moe")


class Model:
    def __init__(self, path):
        r = GGUFReader(path)
        self.fields = {k: f.contents() for k, f in r.fields.items() if not k.startswith("tokenizer.ggml.")
                       or r.fields[k].types[0] != GGUFValueType.ARRAY}  # fmt: skip
        self.tokens = r.fields["tokenizer.ggml.tokens"].contents()
        self.tensors = {}
        for t in r.tensors:
            if t.tensor_type not in (0, 1):  # F32, F16
                raise SystemExit(f"{path}: {t.name} is of ggml type {t.tensor_type}; only f32 and f16 are read")
            self.tensors[t.name] = np.asarray(t.data, dtype=np.float32)
        self.arch = self.fields["general.architecture"]
        k = lambda name, default=None: self.fields.get(f"{self.arch}.{name}", default)  # noqa: E731
        self.n_layer = k("block_count")
        self.n_embd = k("embedding_length")
        self.n_head = k("attention.head_count")
        self.n_head_kv = k("attention.head_count_kv", self.n_head)
        self.head_dim = k("attention.key_length", self.n_embd // self.n_head)
        self.eps = k("attention.layer_norm_rms_epsilon")
        self.rope_base = k("rope.freq_base", 10000.0)
        self.n_expert = k("expert_count", 0)
        self.n_expert_used = k("expert_used_count", 0)
        self.bos = self.fields["tokenizer.ggml.bos_token_id"]

    def t(self, name):
        return self.tensors.get(name)

    def tokenize(self, prompt):
        ids = [self.bos]
        for word in prompt.split(" "):
            try:
                ids.append(self.tokens.index("\u2581" + word))
            except ValueError:
                raise SystemExit(f"{word!r} is not a single piece of the vocabulary") from None
        return ids


def rms_norm(x, weight, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * weight


def rope(x, positions, base, neox):
    """x: (tokens, heads, head_dim). Normal RoPE rotates pairs (2i, 2i+1), NeoX (i, i + d/2)."""
    d = x.shape[-1]
    theta = positions[:, None] * base ** (-np.arange(0, d, 2, dtype=np.float64) / d)  # (tokens, d/2)
    cos, sin = np.cos(theta)[:, None, :], np.sin(theta)[:, None, :]
    if neox:
        a, b = x[..., : d // 2], x[..., d // 2 :]
        return np.concatenate([a * cos - b * sin, a * sin + b * cos], axis=-1)
    a, b = x[..., 0::2], x[..., 1::2]
    out = np.empty_like(x)
    out[..., 0::2], out[..., 1::2] = a * cos - b * sin, a * sin + b * cos
    return out


def silu(x):
    return x / (1.0 + np.exp(-x))


def attention(m, p, h, positions):
    n = h.shape[0]
    q = h @ m.t(p + "attn_q.weight").T
    k = h @ m.t(p + "attn_k.weight").T
    v = h @ m.t(p + "attn_v.weight").T
    for name, y in (("q", q), ("k", k), ("v", v)):
        b = m.t(p + f"attn_{name}.bias")
        if b is not None:
            y += b
    q = q.reshape(n, m.n_head, m.head_dim)
    k = k.reshape(n, m.n_head_kv, m.head_dim)
    v = v.reshape(n, m.n_head_kv, m.head_dim)
    if m.t(p + "attn_q_norm.weight") is not None:
        q = rms_norm(q, m.t(p + "attn_q_norm.weight"), m.eps)
        k = rms_norm(k, m.t(p + "attn_k_norm.weight"), m.eps)
    neox = m.arch in NEOX_ARCHS
    q, k = rope(q, positions, m.rope_base, neox), rope(k, positions, m.rope_base, neox)
    group = m.n_head // m.n_head_kv
    k, v = np.repeat(k, group, axis=1), np.repeat(v, group, axis=1)
    scores = np.einsum("qhd,khd->hqk", q, k) / np.sqrt(m.head_dim)
    scores = np.where(np.tril(np.ones((n, n), dtype=bool)), scores, -np.inf)
    scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
    scores /= scores.sum(axis=-1, keepdims=True)
    out = np.einsum("hqk,khd->qhd", scores, v).reshape(n, m.n_head * m.head_dim)
    return out @ m.t(p + "attn_output.weight").T


def dense_ffn(m, p, h):
    return (silu(h @ m.t(p + "ffn_gate.weight").T) * (h @ m.t(p + "ffn_up.weight").T)) @ m.t(p + "ffn_down.weight").T


def moe_ffn(m, p, h, picks):
    """Softmax router, top n_expert_used, the picked probabilities renormalised to sum 1."""
    logits = h @ m.t(p + "ffn_gate_inp.weight").T  # (tokens, experts)
    probs = np.exp(logits - logits.max(axis=-1, keepdims=True))
    probs /= probs.sum(axis=-1, keepdims=True)
    top = np.argsort(-probs, axis=-1, kind="stable")[:, : m.n_expert_used]
    gate, up, down = (m.t(p + f"ffn_{n}_exps.weight") for n in ("gate", "up", "down"))
    out = np.zeros_like(h)
    for i in range(h.shape[0]):
        weights = probs[i, top[i]] / probs[i, top[i]].sum()
        for e, wt in zip(top[i], weights):
            out[i] += wt * ((silu(gate[e] @ h[i]) * (up[e] @ h[i])) @ down[e].T)
    picks.append(top)
    return out


def forward(m, ids):
    """Logits of the last position, and per layer the experts each position picked."""
    x = m.t("token_embd.weight")[ids]
    positions = np.arange(len(ids), dtype=np.float64)
    picks = []
    for i in range(m.n_layer):
        p = f"blk.{i}."
        x = x + attention(m, p, rms_norm(x, m.t(p + "attn_norm.weight"), m.eps), positions)
        h = rms_norm(x, m.t(p + "ffn_norm.weight"), m.eps)
        x = x + (moe_ffn(m, p, h, picks) if m.n_expert else dense_ffn(m, p, h))
    x = rms_norm(x[-1], m.t("output_norm.weight"), m.eps)
    return x @ m.t("output.weight").T, picks


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=16, help="tokens to predict")
    ap.add_argument("model")
    ap.add_argument("prompt")
    a = ap.parse_args(argv)
    m = Model(a.model)
    ids = m.tokenize(a.prompt)
    n_prompt = len(ids)
    margins = []
    for _ in range(a.n):
        logits, picks = forward(m, ids)
        best = np.sort(logits)[-2:]
        margins.append(float(best[1] - best[0]))
        ids.append(int(np.argmax(logits)))
    report = {"model": a.model, "arch": m.arch, "prompt_ids": ids[:n_prompt], "greedy_ids": ids[n_prompt:],
              "top2_margins": [round(x, 4) for x in margins]}  # fmt: skip
    if m.n_expert:
        # the last forward pass saw every position but the last generated token
        report["expert_picks_per_layer"] = [np.bincount(top.ravel(), minlength=m.n_expert).tolist() for top in picks]
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
