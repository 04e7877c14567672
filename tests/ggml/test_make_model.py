#!/usr/bin/env python3
"""Specification of make_model.py (and of numpy_forward.py, which reads its models back).

  target/llama-ref/venv/bin/python tests/ggml/test_make_model.py [-v]

Most tests use a 64-token vocabulary written on the fly and need only numpy and gguf. Two
groups also need what scripts/llama-ref.sh makes ($LLAMA_REF_DIR, default target/llama-ref) and
are skipped without it: the llama models keep the sha256 the recorded traces name (needs the
tree's SPM vocabulary), and numpy_forward.py's greedy ids equal greedy-ids' (needs the binaries).
"""

import contextlib
import hashlib
import io
import json
import os
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

import numpy as np
from gguf import GGUFReader, GGUFWriter

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import make_model  # noqa: E402
import numpy_forward  # noqa: E402

ROOT = HERE.parents[1]
REF = Path(os.environ.get("LLAMA_REF_DIR", ROOT / "target" / "llama-ref"))
SPM_VOCAB = REF / "src" / "llama_cpp_python-0.3.36" / "vendor" / "llama.cpp" / "models" / "ggml-vocab-llama-spm.gguf"
GREEDY_IDS = REF / "build" / "bin" / "greedy-ids"

SMALL = ["--layers", "2", "--width", "64", "--heads", "2", "--kv-heads", "1", "--ff", "128", "--context", "256"]
ARCH_ARGS = {
    "llama": [],
    "qwen2": ["--arch", "qwen2"],
    "qwen3": ["--arch", "qwen3", "--head-dim", "64"],
    "qwen3moe": ["--arch", "qwen3moe", "--experts", "4", "--experts-used", "2"],
    "mixtral": ["--experts", "4", "--experts-used", "2"],
}


def write_small_vocab(path, n=64):
    w = GGUFWriter(str(path), "llama")
    w.add_tokenizer_model("llama")
    w.add_token_list(["<unk>", "<s>", "</s>"] + [f"\u2581w{i}" for i in range(n - 3)])
    w.add_token_scores([0.0] * n)
    w.add_token_types([2, 3, 3] + [1] * (n - 3))
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def make(vocab, out, *args):
    with contextlib.redirect_stderr(io.StringIO()):
        make_model.main(["--vocab", str(vocab), "--out", str(out), *args])
    return out


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def tensor_shapes(path):
    """name -> ggml shape (ne[0] first), as llama.cpp's create_tensor states them."""
    return {t.name: tuple(int(n) for n in t.shape) for t in GGUFReader(str(path)).tensors}


def rejects(*args):
    with contextlib.redirect_stderr(io.StringIO()), contextlib.suppress(SystemExit):
        make_model.parse_args(["--vocab", "v", "--out", "o", *args])
        return False
    return True


class Generator(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.TemporaryDirectory()
        cls.tmp = Path(cls.dir.name)
        cls.vocab = cls.tmp / "vocab.gguf"
        write_small_vocab(cls.vocab)
        cls.models = {arch: make(cls.vocab, cls.tmp / f"{arch}.gguf", *SMALL, *extra)
                      for arch, extra in ARCH_ARGS.items()}  # fmt: skip

    @classmethod
    def tearDownClass(cls):
        cls.dir.cleanup()

    def test_same_arguments_give_the_same_bytes(self):
        for arch, extra in ARCH_ARGS.items():
            again = make(self.vocab, self.tmp / f"{arch}-again.gguf", *SMALL, *extra)
            self.assertEqual(sha256(again), sha256(self.models[arch]), arch)

    def test_another_seed_gives_other_weights(self):
        other = make(self.vocab, self.tmp / "seed7.gguf", *SMALL, "--seed", "7")
        self.assertNotEqual(sha256(other), sha256(self.models["llama"]))

    def test_qwen3_has_per_head_q_and_k_norms_and_a_wider_q_when_head_dim_is_given(self):
        shapes = tensor_shapes(self.models["qwen3"])  # 2 heads of 64 on width 64: q is 128 wide
        self.assertEqual(shapes["blk.0.attn_q.weight"], (64, 128))
        self.assertEqual(shapes["blk.0.attn_k.weight"], (64, 64))
        self.assertEqual(shapes["blk.0.attn_output.weight"], (128, 64))
        self.assertEqual(shapes["blk.1.attn_q_norm.weight"], (64,))
        self.assertEqual(shapes["blk.1.attn_k_norm.weight"], (64,))
        fields = GGUFReader(str(self.models["qwen3"])).fields
        self.assertEqual(fields["general.architecture"].contents(), "qwen3")
        self.assertEqual(fields["qwen3.attention.key_length"].contents(), 64)
        self.assertEqual(fields["qwen3.attention.value_length"].contents(), 64)

    def test_qwen2_has_q_k_v_biases_and_no_norms_of_q_and_k(self):
        shapes = tensor_shapes(self.models["qwen2"])
        self.assertEqual(shapes["blk.0.attn_q.bias"], (64,))
        self.assertEqual(shapes["blk.0.attn_k.bias"], (32,))
        self.assertEqual(shapes["blk.0.attn_v.bias"], (32,))
        self.assertNotIn("blk.0.attn_q_norm.weight", shapes)

    def test_moe_has_a_router_and_3d_expert_tensors_instead_of_the_ffn(self):
        for arch in ("qwen3moe", "mixtral"):
            shapes = tensor_shapes(self.models[arch])
            self.assertEqual(shapes["blk.0.ffn_gate_inp.weight"], (64, 4), arch)
            self.assertEqual(shapes["blk.0.ffn_gate_exps.weight"], (64, 128, 4), arch)
            self.assertEqual(shapes["blk.0.ffn_up_exps.weight"], (64, 128, 4), arch)
            self.assertEqual(shapes["blk.0.ffn_down_exps.weight"], (128, 64, 4), arch)
            self.assertNotIn("blk.0.ffn_gate.weight", shapes, arch)
        fields = GGUFReader(str(self.models["qwen3moe"])).fields
        self.assertEqual(fields["qwen3moe.expert_count"].contents(), 4)
        self.assertEqual(fields["qwen3moe.expert_used_count"].contents(), 2)
        self.assertEqual(fields["qwen3moe.expert_feed_forward_length"].contents(), 128)

    def test_every_layer_has_the_same_tensors(self):
        for arch, path in self.models.items():
            names = tensor_shapes(path)
            layer0 = {n.removeprefix("blk.0.") for n in names if n.startswith("blk.0.")}
            layer1 = {n.removeprefix("blk.1.") for n in names if n.startswith("blk.1.")}
            self.assertEqual(layer0, layer1, arch)
            self.assertTrue({"token_embd.weight", "output_norm.weight", "output.weight"} <= set(names), arch)

    def test_f16_stores_matrices_as_f16_and_norms_as_f32(self):
        path = make(self.vocab, self.tmp / "qwen3moe-f16.gguf", *SMALL, *ARCH_ARGS["qwen3moe"], "--ftype", "f16")
        types = {t.name: int(t.tensor_type) for t in GGUFReader(str(path)).tensors}
        self.assertEqual(types["blk.0.ffn_up_exps.weight"], 1)
        self.assertEqual(types["blk.0.attn_q_norm.weight"], 0)

    def test_rejects_shapes_llama_cpp_cannot_load(self):
        self.assertTrue(rejects("--arch", "qwen2", "--head-dim", "128"))
        self.assertTrue(rejects("--arch", "qwen3moe"))
        self.assertTrue(rejects("--arch", "qwen3", "--experts", "4", "--experts-used", "2"))
        self.assertTrue(rejects("--experts", "4", "--experts-used", "5"))
        self.assertTrue(rejects("--experts-used", "2"))
        self.assertTrue(rejects("--experts", "1025", "--experts-used", "2"))
        self.assertTrue(rejects("--heads", "4", "--kv-heads", "3"))
        self.assertTrue(rejects("--width", "250", "--heads", "4"))
        self.assertTrue(rejects("--head-dim", "63"))
        self.assertFalse(rejects("--arch", "qwen3", "--width", "250", "--heads", "4", "--head-dim", "64"))

    def test_router_spreads_tokens_over_every_expert(self):
        for arch in ("qwen3moe", "mixtral"):
            m = numpy_forward.Model(self.models[arch])
            _, picks = numpy_forward.forward(m, list(range(1, 33)))
            for layer, top in enumerate(picks):
                counts = np.bincount(top.ravel(), minlength=4)
                self.assertTrue((counts > 0).all(), f"{arch} layer {layer}: {counts}")
                self.assertLess(counts.max(), 0.5 * top.size, f"{arch} layer {layer}: {counts}")


@unittest.skipUnless(SPM_VOCAB.exists(), f"no {SPM_VOCAB} (run scripts/llama-ref.sh)")
class LlamaBytes(unittest.TestCase):
    def test_narrow_models_keep_the_sha256_their_traces_recorded(self):
        narrow = ["--layers", "2", "--width", "64", "--heads", "2", "--kv-heads", "1", "--ff", "128",
                  "--context", "512", "--seed", "42"]  # fmt: skip
        with tempfile.TemporaryDirectory() as tmp:
            for trace, ftype in (("ggml7-f32-fa-off", "f32"), ("ggml7-f16-fa-on", "f16")):
                recorded = json.loads((ROOT / "tests" / "traces" / f"{trace}.json").read_text())["model"]["sha256"]
                out = make(SPM_VOCAB, Path(tmp) / f"narrow-{ftype}.gguf", *narrow, "--ftype", ftype)
                self.assertEqual(sha256(out), recorded, trace)


@unittest.skipUnless(SPM_VOCAB.exists() and GREEDY_IDS.exists(), f"no {GREEDY_IDS} (run scripts/llama-ref.sh)")
class AgainstLlamaCpp(unittest.TestCase):
    PROMPT = "Once upon a time"

    def test_numpy_forward_gives_greedy_ids_tokens_for_every_arch(self):
        with tempfile.TemporaryDirectory() as tmp:
            for arch, extra in ARCH_ARGS.items():
                path = make(SPM_VOCAB, Path(tmp) / f"{arch}.gguf", *SMALL, *extra)
                done = subprocess.run([str(GREEDY_IDS), "-m", str(path), "-n", "8", "-t", "1", "-ngl", "0",
                                       "--no-repack", self.PROMPT], capture_output=True, text=True,
                                      check=True)  # fmt: skip
                llama_ids = [int(line.split()[1]) for line in done.stdout.splitlines() if line.startswith("GREEDY_ID ")]
                m = numpy_forward.Model(path)
                ids = m.tokenize(self.PROMPT)
                for _ in range(8):
                    logits, _ = numpy_forward.forward(m, ids)
                    ids.append(int(np.argmax(logits)))
                self.assertEqual(ids[-8:], llama_ids, arch)


if __name__ == "__main__":
    unittest.main()
