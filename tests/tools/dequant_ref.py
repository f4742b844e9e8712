#!/usr/bin/env python3
"""Make tests/data/quant_fixtures/*.bin: expected values for core/quant.c from
implementations that are not ridge's (test tooling only; not part of the build).

For each block format (Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q4_K Q5_K Q6_K) one file holds
  real:   the first blocks of blk.0.ffn_up.weight in the llama-quantize output of
          tests/data/refdata/models (512 elements for the 32-element formats, 1024
          for the K-quants), their dequantization by gguf-py, and the f32 weights
          llama-quantize started from (the same tensor in ref-gqa-f32.gguf);
  random: as many elements of random block bytes (fixed seed) whose f16 scale
          fields are replaced by finite values (-0, subnormals, negatives),
          dequantized by gguf-py. These reach bit patterns real weights rarely
          use: high 6-bit scale bits, every qh bit, negative Q6_K scales.
tests/test_quant.c checks that rg_dequantize_ref reproduces both expectations
bit for bit, and that rg_quantize_ref of the f32 weights reproduces
llama-quantize's bytes.

Layout, little-endian:
  "RGQF", u32 version (1), u32 GGUF type id, u32 n_real, u32 n_random,
  real block bytes, f32 expected[n_real], f32 source[n_real],
  random block bytes, f32 expected[n_random]

Made with gguf-py 0.19.0 and numpy (pip install gguf numpy):
  python3 tests/tools/dequant_ref.py
"""
import argparse
import os
import struct

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf import GGUFReader, quants
from gguf.constants import GGML_QUANT_SIZES

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.normpath(os.path.join(HERE, "..", "data"))
TENSOR = "blk.0.ffn_up.weight"

# type -> (model file, byte offsets of the f16 scale fields within a block)
FORMATS = {
    T.Q4_0: ("ref-gqa-q4_0.gguf", [0]),
    T.Q4_1: ("ref-gqa-q4_1.gguf", [0, 2]),
    T.Q5_0: ("ref-gqa-q5_0.gguf", [0]),
    T.Q5_1: ("ref-gqa-q5_1.gguf", [0, 2]),
    T.Q8_0: ("ref-gqa-q8_0.gguf", [0]),
    T.Q4_K: ("ref-gqa-q4_k_m.gguf", [0, 2]),
    T.Q5_K: ("ref-gqa-q5_k_m.gguf", [0, 2]),
    T.Q6_K: ("ref-gqa-q6_k.gguf", [208]),
}


def tensor(path, name):
    for t in GGUFReader(path).tensors:
        if t.name == name:
            return t
    raise KeyError(f"{path}: no tensor {name}")


def random_blocks(rng, n_blocks, type_size, f16_offsets):
    raw = rng.integers(0, 256, size=(n_blocks, type_size), dtype=np.uint8)
    for i, off in enumerate(f16_offsets):
        scale = (rng.standard_normal(n_blocks) * 0.05).astype(np.float16)
        if i == 0:  # odd values in the first scale of the first 3 blocks
            scale[0] = np.float16(-0.0)
            scale[1:3] = np.array([0x0005, 0x83FF], dtype=np.uint16).view(np.float16)  # subnormals
        raw[:, off:off + 2] = scale.view(np.uint8).reshape(n_blocks, 2)
    return raw


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=os.path.join(DATA, "refdata", "models"))
    ap.add_argument("--out", default=os.path.join(DATA, "quant_fixtures"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    source = np.array(tensor(os.path.join(args.models, "ref-gqa-f32.gguf"), TENSOR).data, dtype=np.float32).reshape(-1)
    rng = np.random.default_rng(20240601)
    for qtype, (model, f16_offsets) in FORMATS.items():
        block_size, type_size = GGML_QUANT_SIZES[qtype]
        n_real = 1024 if block_size == 256 else 512
        n_random = n_real
        t = tensor(os.path.join(args.models, model), TENSOR)
        assert t.tensor_type == qtype, f"{model}: {TENSOR} is {t.tensor_type.name}"
        real = np.array(t.data).view(np.uint8).reshape(-1)[: n_real // block_size * type_size]
        rand = random_blocks(rng, n_random // block_size, type_size, f16_offsets).reshape(-1)
        real_exp = quants.dequantize(real, qtype).astype(np.float32).reshape(-1)
        rand_exp = quants.dequantize(rand, qtype).astype(np.float32).reshape(-1)
        assert real_exp.size == n_real and rand_exp.size == n_random
        path = os.path.join(args.out, f"{qtype.name.lower()}.bin")
        with open(path, "wb") as f:
            f.write(b"RGQF" + struct.pack("<4I", 1, int(qtype), n_real, n_random))
            for part in (real, real_exp.astype("<f4"), source[:n_real].astype("<f4"), rand, rand_exp.astype("<f4")):
                f.write(np.ascontiguousarray(part).tobytes())
        print(f"{path}: {os.path.getsize(path)} bytes")


if __name__ == "__main__":
    main()
