/* decode_stack.cu — the layer stack of a one-token decode step as one
 * persistent kernel (backend.h's layer_stack), for bf16 weights.
 *
 * Why: batch-1 decode streams every weight once per token, so its floor is the
 * weight bytes over HBM bandwidth. Run as ~8 dependent kernels a layer, each
 * small product spends about as long filling and draining the memory pipeline
 * as streaming (1B shape: ~72 µs of kernels a layer against a 39 µs floor,
 * docs/BENCHMARKS.md), and no weight can move while the next kernel waits for
 * its input. Weights do not depend on activations, so here they never wait:
 *
 * One block per SM, 8 consumer warps and 1 producer warp. The products are
 * cut into work items of whole rows (~16 KB each) that blocks take from a
 * counter per (layer, phase). The producer's one lane takes items and brings
 * their rows in with bulk copies (TMA) into a ring of 16 KB shared-memory
 * stages, each guarded by a full and an empty mbarrier and marked with its
 * item. It never looks at activations: it runs ahead across the phase
 * boundaries as far as the ring allows (~200 KB, ~8 µs of this SM's share of
 * HBM), so grid barriers, norms, attention and epilogues hide behind streaming.
 *
 * The consumers go through each layer's phases, a grid barrier after each:
 *   QKV    rmsnorm(x) into the bf16 activation vector (every block computes the
 *          row's scale itself from x in shared memory), the q/k/v rows of its
 *          items (whole RoPE pairs, so the rotation uses the item's own sums),
 *          q to scratch, k and v into the paged cache
 *   ATTN   split-KV attention (attn_decode.cuh, the decode kernel's split):
 *          one (KV head, split) per block
 *   MERGE  the splits of a head into its output (a block per head)
 *   O      x += Wo·att for its items' rows (x from shared memory: no reload)
 *   FFN    rmsnorm(x), then gate and up rows: h = silu(g)·u
 *   DOWN   x += Wd·h
 * A warp dots one 1024-element chunk of one row per stage (16 bytes of weights
 * and of activations a lane, 4 times, bank-conflict free) and leaves the sum in
 * shared memory; an item's epilogue adds a row's chunks in order, so the
 * result is the same every run, whichever block took the item. Activations are
 * rounded to bf16 before the products, as the GEMV and the CPU round them.
 *
 * Requirements (else layer_stack declines and the per-op path runs): sm_90,
 * bf16 matrices without biases, every matrix input width a multiple of 1024,
 * adjacent-pair RoPE, f16/bf16 KV with power-of-two blocks, head_dim 64 or
 * 128, up to 8 query heads per KV head. The grid barrier needs all blocks
 * resident at once: one block an SM, launched only where the occupancy
 * calculator gives one.
 *
 * Status: opt-in (RIDGE_CUDA_STACK=1; =require also fails a one-token step it
 * declines, for tests), because it is slower than the per-op path it
 * replaces (docs/BENCHMARKS.md, session 7): 1B shape 1.70 against 1.21 ms a
 * token on the H100, 1.56 against 0.99 on the H200 (1.65 before the QKV
 * epilogue's RoPE angles and K/V address were computed once a step instead of
 * per item: global loads on every item's path); 8B shape (8 layers) 2.35
 * against 1.76 (H100), 2.25 against 1.34 (H200). Traced with %globaltimer,
 * each block took 0.7-0.9 µs a 16 KB stage in its streaming phases, whatever
 * the ring depth (6-16 stages), the wait instruction or the L2 policy. The
 * ring itself is not the limit: bench_cuda's "stream" section (stream_probe.cu)
 * streams 1 GiB through the same kind of ring at 91% of copy bandwidth with
 * 16 KB stages, 90% with the consumers' dot products added (37% with 4 KB
 * stages: a stage costs ~0.3 µs of handshakes). So the time goes to what the
 * stack adds per stage (per-item block barrier and epilogue, item lookup) and
 * to its 6 grid barriers a layer; a variant whose item epilogue ran on the
 * warp that completed the item, without the block barrier, measured 1.43 ms
 * (H200) but gave wrong tokens (not found; reverted). Fixed shares of rows per
 * block (the first version) measured 1.33 ms (H100) with per-block FFN times
 * of 11-33 µs; items from counters even the blocks out (31-32 items each). */
#include "backend/cuda/attn_decode.cuh"
#include "backend/cuda/rmsnorm.cuh"
#include "backend/cuda/rope.cuh"
#include "backend/cuda/tma.cuh"

#define CONSUMERS 8 /* consumer warps; the producer is warp CONSUMERS */
#define STACK_THREADS ((CONSUMERS + 1) * 32)
#define STAGE_BYTES 16384
#define CHUNK 1024 /* elements of one row a warp dots per stage */
#define MAX_STAGES 16
#define STACK_MAX_LAYERS 40 /* per launch: the kernel parameters hold their pointers */
static_assert(RG_CUDA_STACK_CLAIMS >= STACK_MAX_LAYERS * 4, "a counter per layer and phase");

static_assert(CONSUMERS * 32 == RMS_THREADS, "the consumers compute the rmsnorm scale");
static_assert(STAGE_BYTES == CONSUMERS * CHUNK * 2, "a stage is one chunk per consumer warp");

typedef __nv_bfloat16 bf16;

enum { PH_QKV, PH_O, PH_FFN, PH_DOWN, N_PH };

struct stack_layer {
    const float *attn_norm, *ffn_norm;
    const bf16 *wq, *wk, *wv, *wo, *wg, *wu, *wd;
};

struct stack_params {
    stack_layer layer[STACK_MAX_LAYERS];
    int n_layer;
    int n_embd, n_ff, n_q, n_kv; /* n_q, n_kv: rows of Wq and of Wk / Wv */
    int n_stages, part_floats;   /* ring stages; partial sums a work item leaves (one of two buffers) */
    int unit[N_PH];              /* units (rows, pairs, gate+up rows) per work item of each phase */
    float eps;
    float *x, *q, *att, *h;
    unsigned *bar;       /* grid barrier: arrivals, generation */
    int *claims;         /* [STACK_MAX_LAYERS][N_PH] work items taken; zero between launches */
    rope_kv_layout rope; /* the first layer's pool; layer l's lies l * layer_bytes on */
    attn_params attn;    /* likewise; n_split splits per KV head, out NULL */
    size_t layer_bytes;
};
static_assert(sizeof(stack_params) <= 4096, "kernel parameters are limited to 4 KB");

/* The consumers' barrier (named barrier 1: the producer warp never joins). */
struct consumer_sync {
    __device__ __forceinline__ void operator()() const {
        asm volatile("bar.sync 1, %0;" ::"n"(CONSUMERS * 32) : "memory");
    }
};

/* All blocks' consumers meet; what any wrote before is visible to all after.
 * Sense by generation: the last block to arrive resets the count and moves the
 * generation on, so the barrier is ready for the next use and the next launch. */
__device__ __forceinline__ void grid_barrier(unsigned *bar) {
    consumer_sync()();
    if (threadIdx.x == 0) {
        volatile unsigned *gen = bar + 1;
        const unsigned g = *gen;
        __threadfence();
        if (atomicAdd(bar, 1u) == gridDim.x - 1) {
            atomicExch(bar, 0u);
            __threadfence();
            atomicAdd(bar + 1, 1u);
        } else {
            while (*gen == g) {
            }
        }
        __threadfence();
    }
    consumer_sync()();
}

/* ---- work items
 *
 * The products are cut into work items of whole rows (whole RoPE pairs for
 * QKV, gate and up rows together for the FFN), about one stage each. Blocks
 * take items from a counter per (layer, phase) as their producers get to
 * them, not by a fixed share: on the H100, with every SM streaming, some SMs
 * get three times the bandwidth of others (a fixed share of rows left the
 * fastest blocks idle 2/3 of each FFN phase, waiting at its barrier). */

/* Rows a..: k elements each, `rows` in all — b's second half (FFN: up) after a's (gate). */
struct item {
    const bf16 *a, *b;
    int k, rows, row0; /* row0: the first output row (QKV: of the rows q | k | v) */
};

__device__ __forceinline__ int n_items(const stack_params &p, int ph) {
    const int u = p.unit[ph];
    return ph == PH_QKV ? (p.n_q + 2 * p.n_kv) / (2 * u) : ph == PH_FFN ? p.n_ff / u : p.n_embd / u;
}

__device__ __forceinline__ item get_item(const stack_params &p, int l, int ph, int j) {
    const stack_layer &L = p.layer[l];
    const int u = p.unit[ph];
    if (ph == PH_QKV) {
        const int r = j * 2 * u, m = r < p.n_q ? 0 : r < p.n_q + p.n_kv ? 1 : 2;
        const bf16 *w = m == 0 ? L.wq : m == 1 ? L.wk : L.wv;
        const int base = m == 0 ? 0 : m == 1 ? p.n_q : p.n_q + p.n_kv;
        return {w + (size_t)(r - base) * p.n_embd, NULL, p.n_embd, 2 * u, r};
    }
    const int r = j * u;
    if (ph == PH_O) return {L.wo + (size_t)r * p.n_q, NULL, p.n_q, u, r};
    if (ph == PH_FFN) return {L.wg + (size_t)r * p.n_embd, L.wu + (size_t)r * p.n_embd, p.n_embd, 2 * u, r};
    return {L.wd + (size_t)r * p.n_ff, NULL, p.n_ff, u, r};
}

/* ---- the ring: stages of weights, each with the item it holds */

struct ring {
    uint8_t *stage; /* n * STAGE_BYTES */
    uint64_t *full, *empty;
    int *item, *chunk0; /* per stage: the item (-1: the phase has no more), its first chunk there */
    int n;
};

/* Item j of phase ph of layer l (j >= its count: none left, an empty stage
 * marked -1) into the ring from stage `it` on. */
__device__ __forceinline__ void stream_item(const stack_params &p, const ring &r, uint32_t &it, int l, int ph, int j) {
    const bool more = j < n_items(p, ph);
    const item I = more ? get_item(p, l, ph, j) : item{};
    const size_t bytes = (size_t)I.rows * I.k * 2, a_bytes = I.b ? bytes / 2 : bytes;
    size_t off = 0;
    do {
        const int slot = (int)(it % (uint32_t)r.n);
        if (it >= (uint32_t)r.n) mbar_wait(&r.empty[slot], ((it / r.n) - 1) & 1);
        it++;
        r.item[slot] = more ? j : -1;
        r.chunk0[slot] = (int)(off / (CHUNK * 2));
        if (!more) {
            mbar_arrive(&r.full[slot]);
            break;
        }
        const uint32_t sz = (uint32_t)(bytes - off < STAGE_BYTES ? bytes - off : STAGE_BYTES);
        uint8_t *dst = r.stage + (size_t)slot * STAGE_BYTES;
        mbar_arrive_expect(&r.full[slot], sz);
        /* the stage's bytes [off, off + sz): from a below a_bytes, from b above */
        const uint32_t na = off < a_bytes ? (uint32_t)(a_bytes - off < sz ? a_bytes - off : sz) : 0;
        if (na) bulk_copy(dst, (const uint8_t *)I.a + off, na, &r.full[slot]);
        if (sz > na) bulk_copy(dst + na, (const uint8_t *)I.b + (off + na - a_bytes), sz - na, &r.full[slot]);
        off += sz;
    } while (off < bytes);
}

/* The producer lane: for every layer and phase, items from the counter until
 * none is left. A claim is an atomic with ~1 µs of round trip, so four are
 * in flight: each register is refilled as its item is streamed, and is read
 * again only four items later (measured: no change against one at a time,
 * 1.70 and 1.66 ms a token, 1B shape). */
__device__ void produce(const stack_params &p, const ring &r) {
    uint32_t it = 0;
    for (int l = 0; l < p.n_layer; l++)
        for (int ph = 0; ph < N_PH; ph++) {
            int *ctr = &p.claims[l * N_PH + ph];
            const int ni = n_items(p, ph);
            int c0 = atomicAdd(ctr, 1), c1 = atomicAdd(ctr, 1), c2 = atomicAdd(ctr, 1), c3 = atomicAdd(ctr, 1);
            /* stream claim c unless none was left, then claim again into c */
            auto take = [&](int &c) {
                if (c >= ni) return false;
                stream_item(p, r, it, l, ph, c);
                c = atomicAdd(ctr, 1);
                return true;
            };
            while (take(c0) && take(c1) && take(c2) && take(c3)) {
            }
            /* every claim has returned before the phase's end is marked: after the
             * last phase, block 0 zeroes the counters for the next launch, and a
             * claim still in flight would land after that (its items skipped then).
             * An atomic's thread waits only where it reads the result: the OR does. */
            const int returned = c0 | c1 | c2 | c3;
            asm volatile("" ::"r"(returned) : "memory");
            stream_item(p, r, it, l, ph, ni);
        }
}

/* 8 bf16 from a 16-byte word into floats */
__device__ __forceinline__ void bf16x8(const uint4 &v, float *f) {
    const uint32_t w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
    for (int i = 0; i < 4; i++)
        f[2 * i] = __uint_as_float(w[i] << 16), f[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
}

/* Row i's dot product from its chunks, in chunk order (the same sum every run). */
__device__ __forceinline__ float row_sum(const float *part, int i, int kch) {
    float v = 0.0f;
    for (int c = 0; c < kch; c++)
        v += part[i * kch + c];
    return v;
}

/* What the consumers need besides the ring in the phases' epilogues. */
struct phase_io {
    const bf16 *act;   /* the products' input */
    float *part;       /* two buffers of part_floats */
    const float *x_s;  /* x as the phase's rmsnorm read it (O, DOWN: the residual) */
    rope_kv_layout rl; /* QKV: the layer's pool and RoPE */
    /* QKV, the same for every item of the step: the token's RoPE cos / sin per
     * pair (n_rot / 2 each) and its kv_pos_offset, so that no item's epilogue
     * waits for a global load */
    const float *cs, *sn;
    size_t kv_off;
};

/* The epilogue of one item from its rows' partial sums. */
template <typename E>
__device__ __forceinline__ void item_epilogue(const stack_params &p, int ph, const item &I, const float *part,
                                              const phase_io &io) {
    const int kch = I.k / CHUNK, tid = threadIdx.x;
    if (ph == PH_QKV) {
        const rope_kv_layout &rl = io.rl;
        for (int i = tid; i < I.rows; i += CONSUMERS * 32) {
            const int rg = I.row0 + i, m = rg < p.n_q ? 0 : rg < p.n_q + p.n_kv ? 1 : 2;
            const int rm = rg - (m == 0 ? 0 : m == 1 ? p.n_q : p.n_q + p.n_kv);
            const int head = rm / (int)rl.head_dim, j = rm % (int)rl.head_dim;
            float v = row_sum(part, i, kch);
            if (m < 2 && j < rl.n_rot) { /* rotate with the pair's other row, i ^ 1 (items hold whole pairs) */
                const float pv = row_sum(part, i ^ 1, kch), cs = io.cs[j / 2], sn = io.sn[j / 2];
                v = rope_rotate(v, pv, j, cs, sn);
            }
            if (m == 0)
                p.q[rm] = v;
            else
                ((E *)kv_row_at(rl, io.kv_off, head, m == 2))[j] = (E)v;
        }
    } else if (ph == PH_FFN) {
        const int n = I.rows / 2;
        for (int i = tid; i < n; i += CONSUMERS * 32) {
            const float g = row_sum(part, i, kch), u = row_sum(part, n + i, kch);
            p.h[I.row0 + i] = g / (1.0f + expf(-g)) * u;
        }
    } else { /* O, DOWN: x += W·in, from the x this block already holds */
        for (int i = tid; i < I.rows; i += CONSUMERS * 32)
            p.x[I.row0 + i] = io.x_s[I.row0 + i] + row_sum(part, i, kch);
    }
}

/* The consumers' side of a phase: the items the producer took, stage by
 * stage (each warp dots one 1024-element chunk of a row with act), then each
 * item's epilogue. */
template <typename E>
__device__ void consume_phase(const stack_params &p, int l, int ph, const ring &r, uint32_t &it, const phase_io &io) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const consumer_sync sync;
    int buf = 0;
    for (;;) {
        const int slot = (int)(it % (uint32_t)r.n);
        mbar_wait(&r.full[slot], (it / r.n) & 1);
        it++;
        const int j = r.item[slot], c0 = r.chunk0[slot];
        if (j < 0) {
            __syncwarp();
            if (lane == 0) mbar_arrive(&r.empty[slot]);
            return;
        }
        const item I = get_item(p, l, ph, j);
        const int kch = I.k / CHUNK, chunks = I.rows * kch, ci = c0 + warp;
        float *part = io.part + buf * p.part_floats;
        if (ci < chunks) {
            const uint4 *wp = (const uint4 *)(r.stage + (size_t)slot * STAGE_BYTES) + warp * (CHUNK / 8);
            const uint4 *ap = (const uint4 *)(io.act + (ci % kch) * CHUNK);
            float sum = 0.0f;
#pragma unroll
            for (int q = 0; q < CHUNK / 256; q++) {
                float wf[8], af[8];
                bf16x8(wp[q * 32 + lane], wf);
                bf16x8(ap[q * 32 + lane], af);
#pragma unroll
                for (int e = 0; e < 8; e++)
                    sum = fmaf(wf[e], af[e], sum);
            }
            for (int off = 16; off; off >>= 1)
                sum += __shfl_xor_sync(0xffffffffu, sum, off);
            if (lane == 0) part[ci] = sum; /* chunk ci is row ci / kch, chunk ci % kch */
        }
        __syncwarp();
        if (lane == 0) mbar_arrive(&r.empty[slot]);
        if (c0 + CONSUMERS >= chunks) { /* the item's last stage */
            sync();
            item_epilogue<E>(p, ph, I, part, io);
            buf ^= 1; /* the next item's sums go to the other buffer while this one is read */
        }
    }
}

/* x (n floats, written by other blocks) into x_s, and act = bf16((x * scale) * w)
 * as the rmsnorm kernel computes it and the GEMV rounds it */
__device__ __forceinline__ void norm_act(const float *x, int n, const float *w, float eps, float *x_s, bf16 *act) {
    const consumer_sync sync;
    for (int i = threadIdx.x; i < n / 4; i += CONSUMERS * 32)
        ((float4 *)x_s)[i] = __ldcg((const float4 *)x + i);
    sync();
    const float scale = rmsnorm_scale(x_s, n, eps, sync);
    for (int i = threadIdx.x; i < n; i += CONSUMERS * 32)
        act[i] = __float2bfloat16_rn((x_s[i] * scale) * __ldg(w + i));
}

/* act = bf16(src) for n floats other blocks wrote */
__device__ __forceinline__ void plain_act(const float *src, int n, bf16 *act) {
    for (int i = threadIdx.x; i < n; i += CONSUMERS * 32)
        act[i] = __float2bfloat16_rn(__ldcg(src + i));
}

template <typename E, int HD, int GM>
__global__ void __launch_bounds__(STACK_THREADS, 1) decode_stack_kernel(const __grid_constant__ stack_params p) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    extern __shared__ __align__(128) uint8_t sm[];
    /* ring | full, empty barriers | item, chunk0 | x_s | act, or attention's partials | part[2] */
    ring r;
    r.n = p.n_stages;
    r.stage = sm;
    r.full = (uint64_t *)(sm + (size_t)r.n * STAGE_BYTES);
    r.empty = r.full + r.n;
    r.item = (int *)(r.empty + r.n);
    r.chunk0 = r.item + r.n;
    float *x_s = (float *)(((uintptr_t)(r.chunk0 + r.n) + 15) & ~(uintptr_t)15);
    uint8_t *mid = (uint8_t *)(x_s + p.n_embd);
    const size_t act_bytes = (size_t)max(max(p.n_embd, p.n_ff), p.n_q) * 2,
                 attn_bytes = (size_t)(CONSUMERS * GM * HD + 2 * CONSUMERS * GM) * 4;
    bf16 *act = (bf16 *)mid;
    float(*s_acc)[GM][HD] = (float(*)[GM][HD])mid;
    float(*s_m)[GM] = (float(*)[GM])(mid + (size_t)CONSUMERS * GM * HD * 4);
    float(*s_l)[GM] = s_m + CONSUMERS;
    float *part = (float *)(mid + ((max(act_bytes, attn_bytes) + 15) & ~(size_t)15));
    float *cs_s = part + 2 * p.part_floats, *sn_s = cs_s + HD / 2;
    const int warp = threadIdx.x >> 5, tid = threadIdx.x;
    if (tid == 0) {
        for (int i = 0; i < r.n; i++)
            mbar_init(&r.full[i], 1), mbar_init(&r.empty[i], CONSUMERS);
        asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
    }
    __syncthreads();
    if (warp == CONSUMERS) { /* the weights are constant: no wait for the previous kernel */
        if ((tid & 31) == 0) produce(p, r);
        return;
    }
    RG_PDL_WAIT(); /* x from the previous kernel */
    const consumer_sync sync;
    uint32_t it = 0;
    const int S = (int)p.attn.n_split, n_head = (int)p.attn.n_head;
    const int32_t pos = p.rope.pos[0];
    for (int i = tid; i < (int)p.rope.n_rot / 2; i += CONSUMERS * 32)
        rope_cs(pos, i, p.rope.theta_scale, p.rope.freq_scale, p.rope.ff, cs_s[i], sn_s[i]);
    phase_io io{act, part, x_s, p.rope, cs_s, sn_s, kv_pos_offset(p.rope, 0, pos)};
    for (int l = 0; l < p.n_layer; l++) {
        const stack_layer &L = p.layer[l];
        io.rl = p.rope;
        io.rl.layer_base += (size_t)l * p.layer_bytes;
        attn_params a = p.attn;
        a.layer_base += (size_t)l * p.layer_bytes;

        /* QKV: q to scratch, k and v rotated into the cache */
        norm_act(p.x, p.n_embd, L.attn_norm, p.eps, x_s, act);
        sync();
        consume_phase<E>(p, l, PH_QKV, r, it, io);
        grid_barrier(p.bar);
        if (l == 0) RG_PDL_TRIGGER(); /* every block is resident: the next kernel may queue */

        /* attention: one (KV head, split) per block */
        for (int item = blockIdx.x; item < (int)a.n_head_kv * S; item += gridDim.x) {
            attn_decode_split<E, HD, GM, CONSUMERS, true>(a, item % S, item / S, 0, s_acc, s_m, s_l, sync);
            sync(); /* s_acc is the next item's */
        }
        grid_barrier(p.bar);
        /* merge a head's splits (attention.cu's merge, maxima in log2 units) */
        for (int hh = blockIdx.x; hh < n_head; hh += gridDim.x) {
            if (tid < HD) {
                const float2 *ml = a.ml + (size_t)hh * S;
                float mx = -FLT_MAX, total = 0.0f, o = 0.0f;
                for (int s = 0; s < S; s++) {
                    const float2 v = __ldcg(ml + s);
                    if (v.y > 0) mx = fmaxf(mx, v.x);
                }
                for (int s = 0; s < S; s++) {
                    const float2 v = __ldcg(ml + s);
                    const float w = v.y > 0 ? exp2f(v.x - mx) : 0.0f;
                    total += v.y * w;
                    if (w > 0) o = fmaf(w, __ldcg(a.o_part + ((size_t)hh * S + s) * HD + tid), o);
                }
                p.att[hh * HD + tid] = total > 0 ? o / total : 0.0f;
            }
        }
        grid_barrier(p.bar);

        /* O: x += Wo·att */
        plain_act(p.att, p.n_q, act);
        sync();
        consume_phase<E>(p, l, PH_O, r, it, io);
        grid_barrier(p.bar);

        /* FFN: h = silu(Wg·xn) * (Wu·xn) */
        norm_act(p.x, p.n_embd, L.ffn_norm, p.eps, x_s, act);
        sync();
        consume_phase<E>(p, l, PH_FFN, r, it, io);
        grid_barrier(p.bar);

        /* DOWN: x += Wd·h */
        plain_act(p.h, p.n_ff, act);
        sync();
        consume_phase<E>(p, l, PH_DOWN, r, it, io);
        grid_barrier(p.bar);
    }
    /* every claim of this launch is made: the counters start from zero next time */
    if (blockIdx.x == 0)
        for (int i = tid; i < p.n_layer * N_PH; i += CONSUMERS * 32)
            p.claims[i] = 0;
#endif
}

/* ---- host side */

typedef void (*stack_kernel)(const stack_params);

template <typename E, int HD> static stack_kernel by_group(int64_t group) {
    if (group <= 4) return decode_stack_kernel<E, HD, 4>;
    return decode_stack_kernel<E, HD, 8>;
}

static stack_kernel kernel_for(rg_dtype kv, int64_t head_dim, int64_t group) {
    if (group < 1 || group > 8 || (head_dim != 64 && head_dim != 128)) return NULL;
    if (kv == RG_BF16) return head_dim == 64 ? by_group<__nv_bfloat16, 64>(group) : by_group<__nv_bfloat16, 128>(group);
    if (kv == RG_F16) return head_dim == 64 ? by_group<__half, 64>(group) : by_group<__half, 128>(group);
    return NULL;
}

/* The shared memory a launch asks for, as the kernel lays it out: the ring, its
 * barriers and item marks, x_s, act | attention's partials, two sum buffers. */
static size_t stack_smem(int n_stages, int64_t n_embd, int64_t act_elems, int64_t head_dim, int64_t group,
                         int part_floats) {
    const int64_t gm = group <= 4 ? 4 : 8;
    size_t act = (size_t)act_elems * 2, attn = (size_t)(CONSUMERS * gm * head_dim + 2 * CONSUMERS * gm) * 4;
    size_t mid = ((act > attn ? act : attn) + 15) & ~(size_t)15;
    return (size_t)n_stages * (STAGE_BYTES + 24) + 16 + (size_t)n_embd * 4 + mid + (size_t)part_floats * 2 * 4 +
           (size_t)head_dim * 4; /* RoPE cos, sin: head_dim / 2 each */
}

/* Units per work item of a phase: as many as fill one stage, at least one.
 * unit_rows: the rows a unit has (RoPE pairs, gate + up rows: 2), k their width. */
static int item_units(int unit_rows, int64_t k) {
    int u = 1;
    while ((int64_t)(2 * u) * unit_rows * k * 2 <= STAGE_BYTES)
        u *= 2;
    return u;
}

/* Once, at reserve: every instance has its sm_90 body, may ask for the device's
 * opt-in shared memory less room for its static part (rmsnorm's partials), and
 * fits one block an SM at that size (so at any smaller one) — what the grid
 * barrier needs; else stack_ok stays false and the op declines. The launch
 * path then asks the driver nothing. */
bool rg_cuda_layer_stack_setup(cuda_backend *c) {
    c->stack_ok = false;
    if (!c->stack) return true;
    int optin = 0;
    if (cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, c->device) != cudaSuccess) {
        cudaGetLastError();
        return true;
    }
    c->stack_smem_max = optin - 1024;
    const rg_dtype kvs[2] = {RG_BF16, RG_F16};
    for (rg_dtype kv : kvs)
        for (int64_t hd : {64, 128})
            for (int64_t g : {4, 8}) {
                stack_kernel k = kernel_for(kv, hd, g);
                cudaFuncAttributes fa;
                int per_sm = 0;
                if (cudaFuncGetAttributes(&fa, k) != cudaSuccess || fa.binaryVersion < 90 ||
                    cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, c->stack_smem_max) !=
                        cudaSuccess ||
                    cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, k, STACK_THREADS, c->stack_smem_max) !=
                        cudaSuccess ||
                    per_sm < 1) {
                    cudaGetLastError();
                    return true;
                }
            }
    c->stack_ok = true;
    return true;
}

static bool dims_ok(const rg_weight *w, int64_t k, int64_t n_out) {
    return w->type == RG_BF16 && w->k == k && w->n_out == n_out && k % CHUNK == 0;
}

/* Where the op does not apply: false, and the per-op path runs; with
 * RIDGE_CUDA_STACK=require a one-token step it declines is a failure, so a
 * test can tell the kernel ran. */
static bool decline(cuda_backend *c, const char *why) {
    if (c->stack_require && c->n_tok == 1 && !c->status) rg_cuda_fail(c, "layer stack declined", why);
    return false;
}

bool rg_cuda_layer_stack(rg_backend *be, const rg_backend_stack *s) {
    cuda_backend *c = cuda_of(be);
    if (c->status || c->n_tok != 1) return false;
    if (!c->stack_ok) return decline(c, "off, or no sm_90 kernel in this binary");
    if (!s->rope || s->rope->neox || s->n_layer < 1) return decline(c, "needs adjacent-pair RoPE");
    const int64_t hd = s->head_dim, G = s->n_head / s->n_head_kv, bs = c->kvc.block_size;
    const rg_backend_layer *L0 = s->layers;
    const int64_t n_embd = L0->wq->k, n_ff = L0->w_gate->n_out, n_q = s->n_head * hd, n_kv = s->n_head_kv * hd;
    stack_kernel k = kernel_for(c->kvc.dtype, hd, G);
    if (!k || (bs & (bs - 1)) || hd != c->kvc.head_dim || s->n_head_kv != c->kvc.n_head_kv || s->n_head % s->n_head_kv)
        return decline(c, "needs f16/bf16 KV in power-of-two blocks, head_dim 64/128, groups up to 8");
    if (s->rope->n_rot > hd || n_q > c->stack_q_max || n_ff > c->stack_h_max) return decline(c, "shapes");
    for (int64_t l = 0; l < s->n_layer; l++) {
        const rg_backend_layer *L = &s->layers[l];
        if (L->bq || L->bk || L->bv || !dims_ok(L->wq, n_embd, n_q) || !dims_ok(L->wk, n_embd, n_kv) ||
            !dims_ok(L->wv, n_embd, n_kv) || !dims_ok(L->wo, n_q, n_embd) || !dims_ok(L->w_gate, n_embd, n_ff) ||
            !dims_ok(L->w_up, n_embd, n_ff) || !dims_ok(L->w_down, n_ff, n_embd))
            return decline(c, "needs bf16 matrices without biases, input widths multiples of 1024");
    }
    /* work items and the partial sums one leaves (rows times chunks of a row) */
    int unit[N_PH];
    unit[PH_QKV] = item_units(2, n_embd), unit[PH_O] = item_units(1, n_q);
    unit[PH_FFN] = item_units(2, n_embd), unit[PH_DOWN] = item_units(1, n_ff);
    while (n_q % (2 * unit[PH_QKV]) || n_kv % (2 * unit[PH_QKV]))
        unit[PH_QKV] /= 2; /* items within a matrix */
    while (n_ff % unit[PH_FFN])
        unit[PH_FFN] /= 2;
    while (n_embd % unit[PH_O])
        unit[PH_O] /= 2;
    while (n_embd % unit[PH_DOWN])
        unit[PH_DOWN] /= 2;
    int64_t part = 2 * unit[PH_QKV] * (n_embd / CHUNK);
    if (unit[PH_O] * (n_q / CHUNK) > part) part = unit[PH_O] * (n_q / CHUNK);
    if (2 * unit[PH_FFN] * (n_embd / CHUNK) > part) part = 2 * unit[PH_FFN] * (n_embd / CHUNK);
    if (unit[PH_DOWN] * (n_ff / CHUNK) > part) part = unit[PH_DOWN] * (n_ff / CHUNK);
    const int64_t act = n_ff > n_embd ? (n_ff > n_q ? n_ff : n_q) : (n_embd > n_q ? n_embd : n_q);
    int n_stages = MAX_STAGES;
    while (n_stages >= 4 && stack_smem(n_stages, n_embd, act, hd, G, (int)part) > (size_t)c->stack_smem_max)
        n_stages--;
    if (n_stages < 4) return decline(c, "too little shared memory for 4 stages");
    const size_t smem = stack_smem(n_stages, n_embd, act, hd, G, (int)part);
    /* attention splits: one per block */
    const int64_t nb = c->n_sm;
    int64_t positions;
    rg_cuda_attn_decode_kernel(c->kvc.dtype, hd, G, &positions);
    const int64_t n_split = rg_cuda_attn_splits(c, nb, 1, s->n_head, positions);

    rg_cuda_forget_prepared(c);
    stack_params p;
    memset(&p, 0, sizeof p);
    p.n_embd = (int)n_embd, p.n_ff = (int)n_ff, p.n_q = (int)n_q, p.n_kv = (int)n_kv;
    p.n_stages = n_stages, p.part_floats = (int)part, p.eps = s->eps;
    for (int i = 0; i < N_PH; i++)
        p.unit[i] = unit[i];
    p.x = s->x, p.q = c->stack_q, p.att = c->stack_att, p.h = c->stack_h, p.bar = c->stack_bar;
    p.claims = c->stack_claims;
    p.layer_bytes = c->kv_layer_bytes;
    for (int64_t l0 = 0; l0 < s->n_layer; l0 += STACK_MAX_LAYERS) {
        const int64_t nl = s->n_layer - l0 < STACK_MAX_LAYERS ? s->n_layer - l0 : STACK_MAX_LAYERS;
        p.n_layer = (int)nl;
        for (int64_t i = 0; i < nl; i++) {
            const rg_backend_layer *L = &s->layers[l0 + i];
            p.layer[i] = {L->attn_norm,
                          L->ffn_norm,
                          (const bf16 *)L->wq->data,
                          (const bf16 *)L->wk->data,
                          (const bf16 *)L->wv->data,
                          (const bf16 *)L->wo->data,
                          (const bf16 *)L->w_gate->data,
                          (const bf16 *)L->w_up->data,
                          (const bf16 *)L->w_down->data};
        }
        p.rope = rg_cuda_rope_layout(c, l0, hd, s->rope);
        p.attn = rg_cuda_attn_params(c, l0, s->n_head, s->scale);
        p.attn.q = c->stack_q, p.attn.n_split = n_split; /* no ALiBi; partials, merged in the kernel */
        rg_cuda_launch(c, k, dim3((unsigned)nb), dim3(STACK_THREADS), smem, p);
        if (!RG_CUDA_LAUNCHED(c, "layer stack")) return true; /* the failure is recorded; sync reports it */
    }
    return true;
}
