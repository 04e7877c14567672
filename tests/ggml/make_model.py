#!/usr/bin/env python3
"""Writes a llama-architecture GGUF with random, seeded weights and llama.cpp's SPM vocabulary.

The tokenizer keys (tokenizer.*) are copied from a vocabulary-only GGUF of the llama.cpp tree,
models/ggml-vocab-llama-spm.gguf (SentencePiece, 32000 tokens). The same arguments always give
the same bytes.

Weights are scaled so that a forward pass stays numerically tame and greedy decoding wanders:
every projection is N(0, 1/fan_in) (activations keep unit scale through the residual stream),
the token embeddings are N(0, 1), and the norm weights are 1 + 0.1 N(0, 1) rather than
all ones, so a server that ignored them would produce different tokens.

  make_model.py --vocab SRC/models/ggml-vocab-llama-spm.gguf --out tiny-f32.gguf \\
      --layers 4 --width 256 --heads 4 --kv-heads 2 --ff 512 --ftype f32

Needs numpy and gguf (0.19.0, the version of the tree's gguf-py).
"""

import argparse
import sys

import numpy as np
from gguf import GGUFReader, GGUFValueType, GGUFWriter, LlamaFileType


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vocab", required=True, help="vocabulary-only GGUF (ggml-vocab-llama-spm.gguf)")
    ap.add_argument("--out", required=True, help="GGUF file to write")
    ap.add_argument("--layers", type=int, default=4, help="transformer blocks")
    ap.add_argument("--width", type=int, default=256, help="embedding length (n_embd)")
    ap.add_argument("--heads", type=int, default=4, help="attention heads")
    ap.add_argument("--kv-heads", type=int, default=0, help="key/value heads (0: as many as --heads)")
    ap.add_argument("--ff", type=int, default=512, help="feed-forward length")
    ap.add_argument("--context", type=int, default=2048, help="training context length")
    ap.add_argument("--ftype", choices=["f32", "f16"], default="f32", help="type of the 2-D weights")
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args(argv)
    kv_heads = args.kv_heads or args.heads
    problems = []
    if min(args.layers, args.width, args.heads, kv_heads, args.ff, args.context) <= 0:
        problems.append("sizes must be positive")
    elif args.width % args.heads:
        problems.append(f"--width {args.width} is not a multiple of --heads {args.heads}")
    elif args.heads % kv_heads:
        problems.append(f"--heads {args.heads} is not a multiple of --kv-heads {kv_heads}")
    elif (args.width // args.heads) % 2:
        problems.append("the head size must be even (RoPE rotates pairs)")
    if problems:
        ap.error("; ".join(problems))
    args.kv_heads = kv_heads
    return args


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


def main(argv):
    a = parse_args(argv)
    head_dim = a.width // a.heads
    kv_width = head_dim * a.kv_heads
    weight_dtype = np.float32 if a.ftype == "f32" else np.float16

    w = GGUFWriter(a.out, "llama")
    w.add_name(f"random-llama-L{a.layers}-W{a.width}-H{a.heads}-KV{a.kv_heads}-FF{a.ff}-{a.ftype}-s{a.seed}")
    w.add_context_length(a.context)
    w.add_embedding_length(a.width)
    w.add_block_count(a.layers)
    w.add_feed_forward_length(a.ff)
    w.add_head_count(a.heads)
    w.add_head_count_kv(a.kv_heads)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_dimension_count(head_dim)
    w.add_rope_freq_base(10000.0)
    w.add_file_type(LlamaFileType.ALL_F32 if a.ftype == "f32" else LlamaFileType.MOSTLY_F16)
    n_vocab = copy_tokenizer(a.vocab, w)
    w.add_vocab_size(n_vocab)

    rng = np.random.default_rng(a.seed)

    # numpy shape (rows, cols) is ggml's (ne[1], ne[0]): cols is the input (fan-in) side
    def projection(rows, cols):
        return (rng.standard_normal((rows, cols), dtype=np.float32) / np.sqrt(cols)).astype(weight_dtype)

    def norm(n):  # 1-D tensors stay f32, as llama.cpp's converters write them
        return (1.0 + 0.1 * rng.standard_normal(n, dtype=np.float32)).astype(np.float32)

    w.add_tensor("token_embd.weight", rng.standard_normal((n_vocab, a.width), dtype=np.float32).astype(weight_dtype))
    for i in range(a.layers):
        p = f"blk.{i}."
        w.add_tensor(p + "attn_norm.weight", norm(a.width))
        w.add_tensor(p + "attn_q.weight", projection(a.width, a.width))
        w.add_tensor(p + "attn_k.weight", projection(kv_width, a.width))
        w.add_tensor(p + "attn_v.weight", projection(kv_width, a.width))
        w.add_tensor(p + "attn_output.weight", projection(a.width, a.width))
        w.add_tensor(p + "ffn_norm.weight", norm(a.width))
        w.add_tensor(p + "ffn_gate.weight", projection(a.ff, a.width))
        w.add_tensor(p + "ffn_up.weight", projection(a.ff, a.width))
        w.add_tensor(p + "ffn_down.weight", projection(a.width, a.ff))
    w.add_tensor("output_norm.weight", norm(a.width))
    w.add_tensor("output.weight", projection(n_vocab, a.width))

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"make_model.py: wrote {a.out}: vocab {n_vocab}, {a.layers} layers, width {a.width}, "
          f"{a.heads} heads, {a.kv_heads} kv heads, ff {a.ff}, {a.ftype}", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1:])
