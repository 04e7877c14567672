#!/usr/bin/env python3
"""Writes a GGUF with random, seeded weights and llama.cpp's SPM vocabulary.

Architectures (--arch), as llama.cpp 0c1e570 loads them (src/models/<arch>.cpp):

  llama     RMS norms, SwiGLU FFN, normal RoPE. With --experts it is mixtral-style MoE: a
            router (ffn_gate_inp) and 3-D ffn_{gate,up,down}_exps in place of the FFN.
  qwen2     llama's blocks with biases on the q, k and v projections, NeoX RoPE.
  qwen3     llama's blocks with per-head RMS norms of q and k (attn_q_norm, attn_k_norm) before
            RoPE, NeoX RoPE; --head-dim may differ from width / heads (the q projection is then
            heads x head-dim wide, as in the real Qwen3).
  qwen3moe  qwen3's attention with the MoE FFN (softmax router, top --experts-used, weights
            renormalised to sum 1); --experts and --experts-used are required.

The tokenizer keys (tokenizer.*) are copied from a vocabulary-only GGUF of the llama.cpp tree,
models/ggml-vocab-llama-spm.gguf (SentencePiece, 32000 tokens); llama.cpp picks the tokenizer
from those keys whatever the architecture. The same arguments always give the same bytes, and
the llama models are drawn in the same order as before the other architectures were added.

Weights are scaled so that a forward pass stays numerically tame and greedy decoding wanders:
every projection (and every expert's) is N(0, 1/fan_in) (activations keep unit scale through
the residual stream), the token embeddings are N(0, 1), the norm weights are 1 + 0.1 N(0, 1)
rather than all ones, so a server that ignored them would produce different tokens, and the
q/k/v biases are N(0, 0.5^2). The router is a projection like the others: its logits have unit
scale, so the softmax over experts is far from one-hot and tokens spread over the experts.

  make_model.py --vocab SRC/models/ggml-vocab-llama-spm.gguf --out tiny-f32.gguf \\
      --layers 4 --width 256 --heads 4 --kv-heads 2 --ff 512 --ftype f32
  make_model.py --arch qwen3 --head-dim 128 ...
  make_model.py --arch qwen3moe --experts 4 --experts-used 2 ...

Needs numpy and gguf (0.19.0, the version of the tree's gguf-py).
"""

import argparse
import sys

import numpy as np
from gguf import GGUFReader, GGUFValueType, GGUFWriter, LlamaFileType

ARCHS = ("llama", "qwen2", "qwen3", "qwen3moe")
BIAS_STD = 0.5
MAX_EXPERTS = 1024  # LLAMA_MAX_EXPERTS, src/llama-hparams.h


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vocab", required=True, help="vocabulary-only GGUF (ggml-vocab-llama-spm.gguf)")
    ap.add_argument("--out", required=True, help="GGUF file to write")
    ap.add_argument("--arch", choices=ARCHS, default="llama", help="llama.cpp architecture")
    ap.add_argument("--layers", type=int, default=4, help="transformer blocks")
    ap.add_argument("--width", type=int, default=256, help="embedding length (n_embd)")
    ap.add_argument("--heads", type=int, default=4, help="attention heads")
    ap.add_argument("--kv-heads", type=int, default=0, help="key/value heads (0: as many as --heads)")
    ap.add_argument("--head-dim", type=int, default=0, help="size of a head (0: width / heads)")
    ap.add_argument("--ff", type=int, default=512, help="feed-forward length (of each expert, in a MoE)")
    ap.add_argument("--experts", type=int, default=0, help="experts per MoE layer (0: a dense FFN)")
    ap.add_argument("--experts-used", type=int, default=0, help="experts each token is routed to")
    ap.add_argument("--context", type=int, default=2048, help="training context length")
    ap.add_argument("--ftype", choices=["f32", "f16"], default="f32", help="type of the 2-D and 3-D weights")
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args(argv)
    args.kv_heads = args.kv_heads or args.heads
    problems = check_shapes(args)
    if problems:
        ap.error("; ".join(problems))
    args.head_dim = args.head_dim or args.width // args.heads
    return args


def check_shapes(a):
    """What llama.cpp would reject (or assert on) in these sizes, as messages."""
    if min(a.layers, a.width, a.heads, a.kv_heads, a.ff, a.context) <= 0:
        return ["sizes must be positive"]
    if min(a.head_dim, a.experts, a.experts_used) < 0:
        return ["--head-dim, --experts and --experts-used must not be negative"]
    problems = []
    if a.experts > MAX_EXPERTS:
        problems.append(f"--experts {a.experts} exceeds llama.cpp's LLAMA_MAX_EXPERTS, {MAX_EXPERTS}")
    if a.heads % a.kv_heads:
        problems.append(f"--heads {a.heads} is not a multiple of --kv-heads {a.kv_heads}")
    if not a.head_dim and a.width % a.heads:
        problems.append(f"--width {a.width} is not a multiple of --heads {a.heads} (or give --head-dim)")
    head_dim = a.head_dim or a.width // a.heads
    if head_dim % 2:
        problems.append("the head size must be even (RoPE rotates pairs)")
    if a.arch == "qwen2" and head_dim * a.heads != a.width:
        problems.append("qwen2's q projection is width wide: --head-dim must be width / heads")
    if a.arch in ("qwen2", "qwen3") and a.experts:
        problems.append(f"--arch {a.arch} has no experts (use qwen3moe or llama)")
    if a.arch == "qwen3moe" and not a.experts:
        problems.append("qwen3moe needs --experts and --experts-used")
    if a.experts and not 0 < a.experts_used <= a.experts:
        problems.append(f"--experts-used {a.experts_used} must be in 1..--experts {a.experts}")
    if not a.experts and a.experts_used:
        problems.append("--experts-used without --experts")
    return problems


def model_name(a):
    name = f"random-{a.arch}-L{a.layers}-W{a.width}-H{a.heads}-KV{a.kv_heads}"
    if a.head_dim != a.width // a.heads:
        name += f"-HD{a.head_dim}"
    name += f"-FF{a.ff}"
    if a.experts:
        name += f"-E{a.experts}x{a.experts_used}"
    return name + f"-{a.ftype}-s{a.seed}"


def copy_tokenizer(vocab_path, writer):
    """Copies the tokenizer.* keys; returns the vocabulary size."""
    vocab = GGUFReader(vocab_path)
    fields = {k: f for k, f in vocab.fields.items() if k.startswith("tokenizer.")}
    if "tokenizer.ggml.tokens" not in fields:
        raise SystemExit(f"{vocab_path}: no tokenizer.ggml.tokens")
    for key, field in fields.items():
        value_type = field.types[0]
        sub_type = field.types[1] if value_type == GGUFValueType.ARRAY else None
        writer.add_key_value(key, field.contents(), value_type, sub_type=sub_type)
    return len(fields["tokenizer.ggml.tokens"].contents())


def write_hparams(w, a):
    """The {arch}.* keys but the vocabulary size (written after the tokenizer, as always)."""
    w.add_name(model_name(a))
    w.add_context_length(a.context)
    w.add_embedding_length(a.width)
    w.add_block_count(a.layers)
    w.add_feed_forward_length(a.ff)
    w.add_head_count(a.heads)
    w.add_head_count_kv(a.kv_heads)
    if a.head_dim != a.width // a.heads:
        w.add_key_length(a.head_dim)
        w.add_value_length(a.head_dim)
    if a.experts:
        w.add_expert_count(a.experts)
        w.add_expert_used_count(a.experts_used)
        if a.arch == "qwen3moe":  # without it qwen3moe takes ff / experts-used per expert
            w.add_expert_feed_forward_length(a.ff)
    w.add_layer_norm_rms_eps(1e-5 if a.arch == "llama" else 1e-6)
    w.add_rope_dimension_count(a.head_dim)
    w.add_rope_freq_base(10000.0 if a.arch == "llama" else 1000000.0)
    w.add_file_type(LlamaFileType.ALL_F32 if a.ftype == "f32" else LlamaFileType.MOSTLY_F16)


def main(argv):
    a = parse_args(argv)
    q_width = a.head_dim * a.heads
    kv_width = a.head_dim * a.kv_heads
    weight_dtype = np.float32 if a.ftype == "f32" else np.float16

    w = GGUFWriter(a.out, a.arch)
    write_hparams(w, a)
    n_vocab = copy_tokenizer(a.vocab, w)
    w.add_vocab_size(n_vocab)

    rng = np.random.default_rng(a.seed)

    # numpy shape (rows, cols) is ggml's (ne[1], ne[0]): cols is the input (fan-in) side; a 3-D
    # (experts, rows, cols) is ggml's (ne[2], ne[1], ne[0]), one matrix per expert
    def projection(*shape):
        return (rng.standard_normal(shape, dtype=np.float32) / np.sqrt(shape[-1])).astype(weight_dtype)

    # 1-D tensors stay f32, as llama.cpp's converters write them
    def norm(n):
        return (1.0 + 0.1 * rng.standard_normal(n, dtype=np.float32)).astype(np.float32)

    def bias(n):
        return (BIAS_STD * rng.standard_normal(n, dtype=np.float32)).astype(np.float32)

    w.add_tensor("token_embd.weight", rng.standard_normal((n_vocab, a.width), dtype=np.float32).astype(weight_dtype))
    for i in range(a.layers):
        p = f"blk.{i}."
        w.add_tensor(p + "attn_norm.weight", norm(a.width))
        w.add_tensor(p + "attn_q.weight", projection(q_width, a.width))
        w.add_tensor(p + "attn_k.weight", projection(kv_width, a.width))
        w.add_tensor(p + "attn_v.weight", projection(kv_width, a.width))
        if a.arch == "qwen2":
            w.add_tensor(p + "attn_q.bias", bias(q_width))
            w.add_tensor(p + "attn_k.bias", bias(kv_width))
            w.add_tensor(p + "attn_v.bias", bias(kv_width))
        if a.arch in ("qwen3", "qwen3moe"):
            w.add_tensor(p + "attn_q_norm.weight", norm(a.head_dim))
            w.add_tensor(p + "attn_k_norm.weight", norm(a.head_dim))
        w.add_tensor(p + "attn_output.weight", projection(a.width, q_width))
        w.add_tensor(p + "ffn_norm.weight", norm(a.width))
        if a.experts:
            w.add_tensor(p + "ffn_gate_inp.weight", projection(a.experts, a.width))
            w.add_tensor(p + "ffn_gate_exps.weight", projection(a.experts, a.ff, a.width))
            w.add_tensor(p + "ffn_up_exps.weight", projection(a.experts, a.ff, a.width))
            w.add_tensor(p + "ffn_down_exps.weight", projection(a.experts, a.width, a.ff))
        else:
            w.add_tensor(p + "ffn_gate.weight", projection(a.ff, a.width))
            w.add_tensor(p + "ffn_up.weight", projection(a.ff, a.width))
            w.add_tensor(p + "ffn_down.weight", projection(a.width, a.ff))
    w.add_tensor("output_norm.weight", norm(a.width))
    w.add_tensor("output.weight", projection(n_vocab, a.width))

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    experts = f", {a.experts} experts ({a.experts_used} used)" if a.experts else ""
    print(f"make_model.py: wrote {a.out}: {a.arch}, vocab {n_vocab}, {a.layers} layers, width {a.width}, "
          f"{a.heads} heads, {a.kv_heads} kv heads, head size {a.head_dim}, ff {a.ff}{experts}, {a.ftype}",
          file=sys.stderr)  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1:])
