#!/usr/bin/env python3
"""torch_decode.py — the PyTorch decode peer for ridge's GPU benchmarks (issue 4).

A Llama decoder written in plain torch (RMSNorm, RoPE, grouped-query attention
over a static preallocated KV cache [layers][batch][kv_heads][max_ctx][head_dim],
SwiGLU MLP, output head) with random bf16 weights made directly on the device,
for the shapes `ridge synth --shape` makes (src/model/synth.c). It prefills a
prompt of P tokens, then times N greedy decode steps: each step is the decode
forward compiled with torch.compile (fullgraph, static shapes; inductor's own
CUDA graphs off) and captured once, together with the argmax that feeds the next
token and the position increment, in one torch.cuda.CUDAGraph. The position
lives in a device tensor, so the one graph serves every step; attention reads
the whole static cache and masks the positions past the current one.

The peer fuses Q/K/V into one matrix and gate/up into one (bytes unchanged),
as compiled PyTorch decoders usually do: it should be a strong peer.

Report: ms per decode step (median of 3 repetitions of the N-step loop, CUDA
events), bytes per step counted as ridge bench does (tools/cmd_bench.c,
src/perf/plan.c: every weight byte including the output head, the token
embedding as one row, plus the bf16 K and V of every layer at the average
context int(P + N/2 + 1.5), per sequence), the device copy bandwidth (a 1 GiB
device-to-device copy, bytes read + written, as tests/gpu/run.sh measures it)
and the fraction bytes / bandwidth / time. The last line is one JSON object.
With --batch B a step makes B tokens; decode_ms_per_token is the time of one
step (each sequence's per-token latency) and bytes_per_token the bytes of one
step (weights once, KV of all B sequences).

--check runs a small shape (default tiny) and compares each decode step's
logits with a plain forward, without any cache, over the whole prefix — the
cache is poisoned first, so reading a position past the current length shows.

Usage:
  python3 torch_decode.py --shape llama3.2-1b
  python3 torch_decode.py --shape llama3-8b --layers 8
  python3 torch_decode.py --check --device cpu            (no GPU needed)
Options: --prompt P (512) --gen N (128) --batch B (1) --layers L --tied
  --no-compile (eager + CUDA graph) --compile-mode default|max-autotune-no-cudagraphs
  --attn grouped|sdpa --device cuda|cpu --dtype bfloat16|float32 --seed S
"""
import argparse
import json
import math
import statistics
import sys
import time

import torch
import torch.nn.functional as F

# name: (layers, hidden, heads, kv_heads, ffn, vocab, rope base) — src/model/synth.c
SHAPES = {
    "tiny": (2, 64, 4, 2, 128, 512, 10000.0),
    "smollm2-135m": (30, 576, 9, 3, 1536, 49152, 100000.0),
    "llama3.2-1b": (16, 2048, 32, 8, 8192, 128256, 500000.0),
    "bench-1b": (16, 2048, 32, 8, 8192, 32000, 10000.0),
    "llama3-8b": (32, 4096, 32, 8, 14336, 128256, 500000.0),
    "llama2-7b": (32, 4096, 32, 32, 11008, 32000, 10000.0),
    "llama2-70b": (80, 8192, 64, 8, 28672, 32000, 10000.0),
}
EPS = 1e-5  # synth.c's attention.layer_norm_rms_epsilon


class Llama(torch.nn.Module):
    def __init__(self, shape, layers, tied, batch, max_ctx, dtype, device, seed):
        super().__init__()
        n_layer, d, nh, nkv, ff, vocab, base = SHAPES[shape]
        self.n_layer = layers or n_layer
        self.d, self.nh, self.nkv, self.hd, self.ff, self.vocab = d, nh, nkv, d // nh, ff, vocab
        self.tied = tied
        g = torch.Generator(device=device)
        g.manual_seed(seed)

        def rand(*shape, std):  # made on the device in the target type: no host copy, no f32 temporary
            return torch.nn.Parameter(torch.empty(*shape, dtype=dtype, device=device).normal_(0, std, generator=g),
                                      requires_grad=False)

        def norm():
            w = rand(d, std=0.1)
            w.data.add_(1)
            return w

        nq, nk = nh * self.hd, nkv * self.hd
        self.embed = rand(vocab, d, std=1.0)
        self.output = self.embed if tied else rand(vocab, d, std=d ** -0.5)
        self.out_norm = norm()
        self.attn_norm = torch.nn.ParameterList([norm() for _ in range(self.n_layer)])
        self.ffn_norm = torch.nn.ParameterList([norm() for _ in range(self.n_layer)])
        self.wqkv = torch.nn.ParameterList([rand(nq + 2 * nk, d, std=d ** -0.5) for _ in range(self.n_layer)])
        self.wo = torch.nn.ParameterList([rand(d, nq, std=d ** -0.5) for _ in range(self.n_layer)])
        self.w13 = torch.nn.ParameterList([rand(2 * ff, d, std=d ** -0.5) for _ in range(self.n_layer)])
        self.w2 = torch.nn.ParameterList([rand(d, ff, std=ff ** -0.5) for _ in range(self.n_layer)])
        cache = (self.n_layer, batch, nkv, max_ctx, self.hd)
        self.register_buffer("k_cache", torch.zeros(cache, dtype=dtype, device=device))
        self.register_buffer("v_cache", torch.zeros(cache, dtype=dtype, device=device))
        inv = base ** (-torch.arange(0, self.hd, 2, dtype=torch.float64, device=device) / self.hd)
        ang = torch.arange(max_ctx, dtype=torch.float64, device=device)[:, None] * inv[None, :]
        self.register_buffer("rope_cos", ang.cos().float())
        self.register_buffer("rope_sin", ang.sin().float())
        self.attn = "grouped"

    def weight_bytes_streamed(self):
        """Bytes one decode step reads from the weights: every parameter once, the
        token embedding only as one row unless it is also the output head."""
        total = sum(p.numel() * p.element_size() for p in self.parameters())  # a tied head is listed once
        if not self.tied:
            total -= self.embed.numel() * self.embed.element_size() - self.d * self.embed.element_size()
        return total

    def kv_bytes_per_position(self):
        return 2 * self.n_layer * self.nkv * self.hd * self.k_cache.element_size()

    @staticmethod
    def rmsnorm(x, w):
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + EPS)).to(x.dtype) * w

    def rope(self, x, positions):  # x [B, heads, T, hd]; rotate the two halves (GPT-NeoX / HF order)
        cos, sin = self.rope_cos[positions], self.rope_sin[positions]  # [T, hd/2]
        x1, x2 = x.float().chunk(2, dim=-1)
        return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1).to(x.dtype)

    def attention(self, q, k, v, positions):
        """q [B, H, T, hd] at `positions`; k, v [B, KV, S, hd] for keys 0..S-1. A key
        is visible when its index is <= the query's position (causal, and nothing
        past the current length of a static cache)."""
        S = k.shape[2]
        visible = torch.arange(S, device=q.device)[None, :] <= positions[:, None]  # [T, S]
        if self.attn == "sdpa":
            return F.scaled_dot_product_attention(q, k, v, attn_mask=visible, enable_gqa=True)
        B, H, T, hd = q.shape
        G = H // self.nkv  # the query heads sharing one KV head read it once, without copying K/V
        qg = q.reshape(B, self.nkv, G * T, hd)
        s = torch.matmul(qg, k.transpose(-1, -2)).float() * (hd ** -0.5)  # [B, KV, G*T, S]
        s = s.reshape(B, self.nkv, G, T, S).masked_fill(~visible, float("-inf"))
        p = torch.softmax(s, dim=-1).to(q.dtype).reshape(B, self.nkv, G * T, S)
        return torch.matmul(p, v).reshape(B, H, T, hd)

    def forward(self, tokens, positions, use_cache=True):
        """tokens [B, T] at positions [T] (a device tensor). With use_cache the new K/V
        are written into the static cache and attention reads the whole cache;
        without, attention sees only these T tokens (the reference: positions must
        then be 0..T-1). Returns f32 logits [B, T, vocab]."""
        B, T = tokens.shape
        nq, nk = self.nh * self.hd, self.nkv * self.hd
        x = F.embedding(tokens, self.embed)
        for l in range(self.n_layer):
            h = self.rmsnorm(x, self.attn_norm[l])
            q, k, v = F.linear(h, self.wqkv[l]).split([nq, nk, nk], dim=-1)
            q = self.rope(q.view(B, T, self.nh, self.hd).transpose(1, 2), positions)
            k = self.rope(k.view(B, T, self.nkv, self.hd).transpose(1, 2), positions)
            v = v.view(B, T, self.nkv, self.hd).transpose(1, 2)
            if use_cache:
                kc, vc = self.k_cache[l], self.v_cache[l]
                kc[:, :, positions] = k
                vc[:, :, positions] = v
                k, v = kc, vc
            a = self.attention(q, k, v, positions)
            x = x + F.linear(a.transpose(1, 2).reshape(B, T, nq), self.wo[l])
            h = self.rmsnorm(x, self.ffn_norm[l])
            gate, up = F.linear(h, self.w13[l]).chunk(2, dim=-1)
            x = x + F.linear(F.silu(gate) * up, self.w2[l])
        return F.linear(self.rmsnorm(x, self.out_norm), self.output).float()


class Decoder:
    """The decode step: one token per sequence at the position in `pos`, its logits,
    the greedy next token written back into `tok`, the position advanced. On CUDA
    the whole step is one captured graph; `run` replays it."""

    def __init__(self, model, batch, device, compile_mode, use_graph):
        self.model, self.device = model, device
        self.tok = torch.zeros(batch, 1, dtype=torch.long, device=device)
        self.pos = torch.zeros(1, dtype=torch.long, device=device)
        self.logits = None
        fwd = model.forward
        if compile_mode != "eager":
            kw = {} if compile_mode == "default" else {"mode": compile_mode}
            fwd = torch.compile(model.forward, fullgraph=True, dynamic=False, **kw)
        self.fwd = fwd
        self.graph = None
        if use_graph:
            s = torch.cuda.Stream()
            s.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(s):  # compile and warm up outside the capture
                for _ in range(3):
                    self._step()
            torch.cuda.current_stream().wait_stream(s)
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph):
                self._step()
        else:
            self._step()  # compile now, so no timed step pays for it

    def _step(self):
        self.logits = self.fwd(self.tok, self.pos)
        self.tok.copy_(self.logits[:, -1].argmax(-1, keepdim=True))
        self.pos.add_(1)

    def reset(self, tok, pos):
        self.tok.copy_(tok)
        self.pos.fill_(pos)

    def run(self):
        if self.graph is not None:
            self.graph.replay()
        else:
            self._step()


def build(args, dtype, max_ctx, compile_mode, use_graph):
    model = Llama(args.shape, args.layers, args.tied, args.batch, max_ctx, dtype, args.device, args.seed)
    model.attn = args.attn
    g = torch.Generator(device="cpu").manual_seed(args.seed + 1)
    prompt = torch.randint(0, model.vocab, (args.batch, args.prompt), generator=g).to(args.device)
    return model, prompt


def make_decoder(model, args, compile_mode, use_graph):
    """The requested mode, else a named fallback: compiled -> eager + graph -> eager."""
    tries = [(compile_mode, use_graph)]
    if compile_mode != "eager":
        tries.append(("eager", use_graph))
    if use_graph:
        tries.append(("eager", False))
    for i, (cm, ug) in enumerate(tries):
        try:
            dec = Decoder(model, args.batch, args.device, cm, ug)
            mode = cm + (" + CUDA graph" if ug else "")
            return dec, mode if i == 0 else "%s (fallback: %s failed)" % (mode, tries[0][0])
        except Exception as e:  # report and fall back: a peer that runs beats one that crashes
            msg = str(e).strip().splitlines()
            print("mode %s%s failed (%s: %s); falling back" % (cm, " + CUDA graph" if ug else "", type(e).__name__,
                                                              msg[0][:200] if msg else ""), file=sys.stderr)
            if args.device == "cuda":
                torch.cuda.synchronize()
            torch._dynamo.reset()
    raise SystemExit("no decode mode ran")


def copy_bandwidth_gb_s(device):
    """Device-to-device copy of 1 GiB, bytes read + written, median of 3 timings of
    10 copies (tests/gpu/run.sh measures it the same way, one timing)."""
    n = (1 << 30) if device == "cuda" else (256 << 20)
    a = torch.empty(n, dtype=torch.uint8, device=device)
    b = torch.empty_like(a)
    for _ in range(3):
        b.copy_(a)
    rates = []
    for _ in range(3):
        ms = timed_ms(device, lambda: [b.copy_(a) for _ in range(10)])
        rates.append(2 * n * 10 / (ms * 1e-3) / 1e9)
    del a, b
    return statistics.median(rates)


def timed_ms(device, fn):
    if device == "cuda":
        e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize()
        e0.record()
        fn()
        e1.record()
        torch.cuda.synchronize()
        return e0.elapsed_time(e1)
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1e3


@torch.inference_mode()
def bench(args):
    dtype = getattr(torch, args.dtype)
    max_ctx = -(-(args.prompt + args.gen + 8) // 64) * 64  # a few spare positions for the warm-up steps
    model, prompt = build(args, dtype, max_ctx, None, None)
    compile_mode = "eager" if args.no_compile else args.compile_mode
    t0 = time.perf_counter()
    # the decoder first: its warm-up steps write the cache near position 0, which the prefill then overwrites
    dec, mode = make_decoder(model, args, compile_mode, args.device == "cuda")
    logits = model(prompt, torch.arange(args.prompt, device=args.device))  # prefill, eager
    first = logits[:, -1].argmax(-1, keepdim=True)
    setup_s = time.perf_counter() - t0
    print("mode: %s (prefill + compile + capture %.1f s)" % (mode, setup_s), file=sys.stderr)
    ms = []
    for r in range(4):  # one untimed warm-up repetition, then 3
        dec.reset(first, args.prompt)
        t = timed_ms(args.device, lambda: [dec.run() for _ in range(args.gen)])
        if r:
            ms.append(t / args.gen)
    step_ms = statistics.median(ms)
    avg_ctx = int(args.prompt + 0.5 * args.gen + 1.5)  # ridge bench's average context (tools/cmd_bench.c)
    wbytes = model.weight_bytes_streamed()
    kv = model.kv_bytes_per_position() * avg_ctx * args.batch
    bw = copy_bandwidth_gb_s(args.device)
    frac = (wbytes + kv) / (bw * 1e9) / (step_ms * 1e-3)
    print("%s, %d layers, batch %d, prompt %d, %d steps: %.3f ms/step (reps %s)" % (
        args.shape, model.n_layer, args.batch, args.prompt, args.gen, step_ms,
        ", ".join("%.3f" % m for m in ms)), file=sys.stderr)
    print("bytes per step %.1f MB (weights %.1f MB + KV %.2f MB at avg context %d); copy bandwidth %.1f GB/s; "
          "fraction %.3f" % ((wbytes + kv) / 1e6, wbytes / 1e6, kv / 1e6, avg_ctx, bw, frac), file=sys.stderr)
    print(json.dumps({"shape": args.shape, "layers": model.n_layer, "batch": args.batch, "prompt": args.prompt,
                      "gen": args.gen, "mode": mode, "attn": args.attn, "decode_ms_per_token": round(step_ms, 4),
                      "decode_ms_reps": [round(m, 4) for m in ms], "bytes_per_token": wbytes + kv,
                      "weight_bytes": wbytes, "kv_bytes": kv, "copy_gb_s": round(bw, 1),
                      "fraction": round(frac, 4), "setup_s": round(setup_s, 1),
                      "device": torch.cuda.get_device_name() if args.device == "cuda" else "cpu",
                      "torch": torch.__version__}), flush=True)


@torch.inference_mode()
def check(args):
    """Each decode step's logits against a cache-free forward over the same prefix."""
    dtype = getattr(torch, args.dtype)
    tol = {"float32": 1e-4, "bfloat16": 3e-2}[args.dtype]
    max_ctx = args.prompt + args.gen + 8
    model, prompt = build(args, dtype, max_ctx, None, None)
    model.k_cache.fill_(1e3)  # poison: a read past the current length changes the logits a lot
    model.v_cache.fill_(1e3)
    compile_mode = "eager" if args.no_compile else args.compile_mode
    # the decoder first: its warm-up steps write the cache at positions 0..3, which the prefill then overwrites
    dec, mode = make_decoder(model, args, compile_mode, args.device == "cuda")
    logits = model(prompt, torch.arange(args.prompt, device=args.device))
    first = logits[:, -1].argmax(-1, keepdim=True)
    print("mode: %s" % mode, file=sys.stderr)
    dec.reset(first, args.prompt)
    seq, steps = torch.cat([prompt, first], dim=1), []
    for _ in range(args.gen):
        dec.run()
        steps.append(dec.logits[:, -1].clone())
        seq = torch.cat([seq, dec.tok.clone()], dim=1)
    worst, prev = 0.0, None
    for i, got in enumerate(steps):
        n = args.prompt + 1 + i  # the prefix up to and including the token fed at step i
        ref = model(seq[:, :n], torch.arange(n, device=args.device), use_cache=False)[:, -1]
        err = ((got - ref).abs().max() / ref.abs().max()).item()
        worst = max(worst, err)
        if not err <= tol:
            print("FAIL step %d: max |decode - reference| / max |reference| = %.3g > %.1g" % (i, err, tol))
            return 1
        if prev is not None and torch.equal(prev, ref):
            print("FAIL step %d: reference logits equal the previous step's (the check would be blind)" % i)
            return 1
        prev = ref
    print("check passed: %s, %d layers, batch %d, %s, %s attention, %d steps after a %d-token prompt, "
          "worst relative error %.2g (tolerance %.0g)" % (args.shape, model.n_layer, args.batch, mode, args.attn,
                                                          args.gen, args.prompt, worst, tol))
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shape", choices=sorted(SHAPES), default=None)
    ap.add_argument("--layers", type=int, default=0, help="use only the first N layers (0: the shape's count)")
    ap.add_argument("--tied", action="store_true", help="output head = token embedding (ridge synth --tied)")
    ap.add_argument("--prompt", type=int, default=None)
    ap.add_argument("--gen", type=int, default=None)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--no-compile", action="store_true", help="eager decode step (still one CUDA graph)")
    ap.add_argument("--compile-mode", default="default", choices=["default", "max-autotune-no-cudagraphs"])
    ap.add_argument("--attn", default="grouped", choices=["grouped", "sdpa"])
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    ap.add_argument("--dtype", default=None, choices=["bfloat16", "float32"])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--check", action="store_true", help="compare decode logits with a cache-free forward")
    args = ap.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device (use --device cpu)")
    if args.check:
        args.shape = args.shape or "tiny"
        args.prompt = 16 if args.prompt is None else args.prompt
        args.gen = 8 if args.gen is None else args.gen
        args.dtype = args.dtype or "float32"
        if args.device == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = False
        return check(args)
    args.shape = args.shape or "llama3.2-1b"
    args.prompt = 512 if args.prompt is None else args.prompt
    args.gen = 128 if args.gen is None else args.gen
    args.dtype = args.dtype or "bfloat16"
    if args.prompt < 1 or args.gen < 1 or args.batch < 1 or args.layers < 0:
        raise SystemExit("--prompt, --gen, --batch must be >= 1 and --layers >= 0")
    bench(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
