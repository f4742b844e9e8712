#!/usr/bin/env python3
"""make_hostile_gguf.py — write the hostile-GGUF regression corpus (tests/corpus/gguf/).

Each case is a small file built by an independent, minimal GGUF serializer below
(not ridge's writer), starting from a valid tiny Llama model and breaking one
thing. Files named ok-*.gguf must load; bad-*.gguf must be rejected by `ridge info`
with exit status 2 and one line naming the file and the problem (tests/cli/run.sh).
Re-run to regenerate: python3 tests/tools/make_hostile_gguf.py tests/corpus/gguf
"""
import os
import struct
import sys

U8, I8, U16, I16, U32, I32, F32, BOOL, STR, ARR, U64, I64, F64 = range(13)


def s(text):
    b = text.encode() if isinstance(text, str) else text
    return struct.pack("<Q", len(b)) + b


def val(t, v):
    fmt = {U8: "<B", I8: "<b", U16: "<H", I16: "<h", U32: "<I", I32: "<i", F32: "<f",
           BOOL: "<B", U64: "<Q", I64: "<q", F64: "<d"}
    if t == STR:
        return s(v)
    if t == ARR:
        et, items = v
        return struct.pack("<IQ", et, len(items)) + b"".join(val(et, x) for x in items)
    return struct.pack(fmt[t], v)


def kv(key, t, v):
    return s(key) + struct.pack("<I", t) + val(t, v)


def tinfo(name, dims, ttype, offset):
    return s(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims) + \
        struct.pack("<IQ", ttype, offset)


def gguf(kvs, tinfos, data, version=3, n_kv=None, n_t=None, align=32):
    head = b"GGUF" + struct.pack("<IQQ", version, len(tinfos) if n_t is None else n_t,
                                 len(kvs) if n_kv is None else n_kv)
    body = head + b"".join(kvs) + b"".join(tinfos)
    body += b"\0" * ((-len(body)) % align)
    return body + data


VOCAB = ["<unk>", "<s>", "</s>"] + ["<0x%02X>" % i for i in range(256)] + ["\u2581a", "\u2581b", "ab"]


def model_kvs(**over):
    base = {
        "general.architecture": (STR, "llama"),
        "llama.block_count": (U32, 1),
        "llama.context_length": (U32, 64),
        "llama.embedding_length": (U32, 32),
        "llama.feed_forward_length": (U32, 64),
        "llama.attention.head_count": (U32, 4),
        "llama.attention.head_count_kv": (U32, 2),
        "llama.rope.freq_base": (F32, 10000.0),
        "llama.attention.layer_norm_rms_epsilon": (F32, 1e-5),
        "tokenizer.ggml.model": (STR, "llama"),
        "tokenizer.ggml.tokens": (ARR, (STR, VOCAB)),
        "tokenizer.ggml.scores": (ARR, (F32, [0.0] * len(VOCAB))),
        "tokenizer.ggml.token_type": (ARR, (I32, [2, 3, 3] + [6] * 256 + [1, 1, 1])),
        "tokenizer.ggml.bos_token_id": (U32, 1),
        "tokenizer.ggml.eos_token_id": (U32, 2),
    }
    base.update(over)
    return [kv(k, t, v) for k, (t, v) in base.items() if t is not None]


def tensors(n_embd=32, n_vocab=len(VOCAB)):
    """token_embd (F32) and one norm: enough for the reader's checks."""
    infos, data = [], b""
    for name, dims in [("token_embd.weight", [n_embd, n_vocab]), ("output_norm.weight", [n_embd])]:
        infos.append(tinfo(name, dims, 0, len(data)))
        size = 4 * dims[0] * (dims[1] if len(dims) > 1 else 1)
        data += bytes((i * 7) & 0xFF for i in range(size))
        data += b"\0" * ((-len(data)) % 32)
    return infos, data


def cases():
    ti, td = tensors()
    good = gguf(model_kvs(), ti, td)
    yield "ok-tiny-llama", good
    yield "ok-v2-header", gguf(model_kvs(), ti, td, version=2)
    yield "ok-vocab-only", gguf(model_kvs(), [], b"")
    yield "ok-align-64", gguf(model_kvs(**{"general.alignment": (U32, 64)}),
                              [tinfo("token_embd.weight", [32, len(VOCAB)], 0, 0)],
                              bytes(4 * 32 * len(VOCAB)), align=64)

    yield "bad-empty", b""
    yield "bad-magic", b"GGUX" + good[4:]
    yield "bad-version-1", good[:4] + struct.pack("<I", 1) + good[8:]
    yield "bad-version-99", good[:4] + struct.pack("<I", 99) + good[8:]
    yield "bad-truncated-header", good[:13]
    for cut in (40, 300, len(good) // 2, len(good) - 100):
        yield "bad-truncated-at-%d" % cut, good[:cut]
    yield "bad-kv-count-huge", gguf(model_kvs(), ti, td, n_kv=1 << 60)
    yield "bad-tensor-count-huge", gguf(model_kvs(), ti, td, n_t=(1 << 64) - 1)
    yield "bad-key-length-huge", gguf([struct.pack("<Q", 1 << 62) + b"k"], [], b"", n_kv=1)
    yield "bad-key-empty", gguf([kv("", U32, 1)], [], b"")
    yield "bad-string-past-eof", gguf([s("general.architecture") + struct.pack("<IQ", STR, 1 << 40) + b"llama"], [], b"")
    yield "bad-value-type", gguf([s("general.architecture") + struct.pack("<I", 77) + b"\0" * 8], [], b"")
    yield "bad-array-elem-type", gguf([s("x.arr") + struct.pack("<IIQ", ARR, 55, 2) + b"\0" * 16], [], b"")
    yield "bad-array-count-huge", gguf([s("x.arr") + struct.pack("<IIQ", ARR, U32, 1 << 61) + b"\0" * 16], [], b"")
    nested = struct.pack("<IQ", ARR, 1) * 64 + struct.pack("<IQ", U8, 0)
    yield "bad-array-nesting", gguf([s("x.nest") + struct.pack("<I", ARR) + nested], [], b"")
    yield "bad-bool-value", gguf(model_kvs(**{"x.flag": (U8, 0)})[:-1] + [s("x.flag") + struct.pack("<IB", BOOL, 7)], [], b"")
    yield "bad-duplicate-key", gguf(model_kvs() + [kv("llama.block_count", U32, 2)], ti, td)
    yield "bad-alignment-3", gguf(model_kvs(**{"general.alignment": (U32, 3)}), ti, td)
    yield "bad-alignment-0", gguf(model_kvs(**{"general.alignment": (U32, 0)}), ti, td)
    yield "bad-tensor-5-dims", gguf(model_kvs(), [tinfo("t", [32, 1, 1, 1, 1], 0, 0)], bytes(128))
    yield "bad-tensor-zero-dim", gguf(model_kvs(), [tinfo("t", [32, 0], 0, 0)], bytes(128))
    yield "bad-tensor-dims-overflow", gguf(model_kvs(), [tinfo("t", [1 << 32, 1 << 32, 1 << 8], 0, 0)], bytes(128))
    yield "bad-tensor-type-unknown", gguf(model_kvs(), [tinfo("t", [32], 99, 0)], bytes(128))
    yield "bad-tensor-ragged-blocks", gguf(model_kvs(), [tinfo("t", [33], 2, 0)], bytes(128))  # Q4_0 rows of 33
    yield "bad-tensor-offset-past-eof", gguf(model_kvs(), [tinfo("t", [32], 0, 1 << 40)], bytes(128))
    yield "bad-tensor-size-past-eof", gguf(model_kvs(), [tinfo("t", [32, 1 << 20], 0, 0)], bytes(128))
    yield "bad-tensor-offset-unaligned", gguf(model_kvs(), [tinfo("t", [8], 0, 4)], bytes(128))
    yield "bad-tensor-overlap", gguf(model_kvs(), [tinfo("a", [32], 0, 0), tinfo("b", [32], 0, 64)], bytes(256))
    yield "bad-tensor-duplicate-name", gguf(model_kvs(), [tinfo("a", [8], 0, 0), tinfo("a", [8], 0, 32)], bytes(64))
    yield "bad-tensor-name-nul", gguf(model_kvs(), [tinfo("a\0b", [8], 0, 0)], bytes(64))
    # well-formed files whose metadata a model or tokenizer cannot use
    yield "bad-meta-no-architecture", gguf(model_kvs(**{"general.architecture": (None, None)}), ti, td)
    yield "bad-meta-unknown-architecture", gguf(model_kvs(**{"general.architecture": (STR, "gpt-j")}), ti, td)
    yield "bad-meta-heads-zero", gguf(model_kvs(**{"llama.attention.head_count": (U32, 0)}), ti, td)
    yield "bad-meta-heads-indivisible", gguf(model_kvs(**{"llama.attention.head_count": (U32, 5)}), ti, td)
    yield "bad-meta-gqa-indivisible", gguf(model_kvs(**{"llama.attention.head_count_kv": (U32, 3)}), ti, td)
    yield "bad-meta-block-count-string", gguf(model_kvs(**{"llama.block_count": (STR, "one")}), ti, td)
    yield "bad-meta-embd-absurd", gguf(model_kvs(**{"llama.embedding_length": (U64, 1 << 62)}), ti, td)
    yield "bad-tok-bos-out-of-range", gguf(model_kvs(**{"tokenizer.ggml.bos_token_id": (U32, 99999)}), ti, td)
    yield "bad-tok-tokens-not-strings", gguf(model_kvs(**{"tokenizer.ggml.tokens": (ARR, (U32, [1, 2, 3]))}), ti, td)
    yield "bad-tok-scores-short", gguf(model_kvs(**{"tokenizer.ggml.scores": (ARR, (F32, [0.0]))}), ti, td)
    yield "bad-tok-model-unknown", gguf(model_kvs(**{"tokenizer.ggml.model": (STR, "wordpiece-9000")}), ti, td)
    yield "bad-tok-pre-unknown", gguf(model_kvs(**{"tokenizer.ggml.model": (STR, "gpt2"),
                                                   "tokenizer.ggml.pre": (STR, "no-such-pre"),
                                                   "tokenizer.ggml.merges": (ARR, (STR, ["a b"]))}), ti, td)
    yield "bad-tok-bad-utf8-token", gguf(model_kvs(**{"tokenizer.ggml.tokens": (ARR, (STR, VOCAB[:-1] + [b"\xff\xfe"]))}), ti, td)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "corpus", "gguf")
    os.makedirs(out, exist_ok=True)
    for name, data in cases():
        with open(os.path.join(out, name + ".gguf"), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
