/* matmul_q.cu — decode GEMV of quantized weights (Q8_0, Q4_0, Q4_1, Q4_K, Q6_K) in
 * integer arithmetic, as the CPU's (and llama.cpp's) dot products compute it.
 *
 * x is first quantized to int8 in scratch, exactly as the CPU quantizes it:
 * Q8_0 per 32 for Q8_0/Q4_0/Q4_1 weights, Q8_K per 256 for the K-quants. Each
 * 32-element unit of a weight row then costs 8 __dp4a (four int8 products
 * summed into an int32, exact) per token against the unit's 32 int8
 * activations, and one float scaling per unit:
 *   Q8_0  d_w d_x sum(q_w q_x)
 *   Q4_0  d_w d_x (sum(q_w q_x) - 8 sum(q_x))           q_w the raw nibble 0..15
 *   Q4_1  d_w d_x sum(q_w q_x) + m_w d_x sum(q_x)
 *   Q4_K  d_x (d sc sum(q_w q_x) - dmin m sum(q_x))     per 32 (sc, m)
 *   Q6_K  d_x sum over the two 16s of d sc_j (sum(q_w q_x) - 32 sum_j(q_x))   q_w 0..63
 * so the per-unit activation sums sum(q_x) (per 16: Q6_K's sub-blocks) are
 * written next to d_x. The decoding left per weight is masking nibbles into
 * bytes: the resident nibble planes hold element 2i in the low nibble of byte
 * i, so a word's low nibbles are elements 0,2,4,6 and its high ones 1,3,5,7;
 * the activations of nibble types are stored permuted to match (per 8: the even
 * elements, then the odd ones).
 *
 * Launch structure as matmul.cu's gemv_kernel (a block of GEMV_THREADS over R
 * rows, 32-element units per thread and step as gemv_dp4a_kernel maps them, a
 * 16-byte weight load per row and unit, the gemv_common.cuh epilogue and fused
 * modes); the activation quantization is launched with PDL as the GEMV is. Scratch: c->xq holds
 * int8 q [n_tok][k] then act_meta [n_tok][k/32]: 1.25 bytes per element, within
 * its 16 * k_max floats for n_tok <= GEMV_MAX_TOK. */
#include <stdlib.h>

#include "backend/cuda/act_q8.cuh"
#include "backend/cuda/dequant.cuh"
#include "backend/cuda/gemv_common.cuh"
#include "backend/cuda/rmsnorm.cuh"

/* n is a multiple of 32, so warps are wholly in or out. */
template <bool PERM> __global__ void act_q8_0_int8_kernel(const float *x, int64_t n, int8_t *q, act_meta *meta) {
    RG_PDL_TRIGGER();
    RG_PDL_WAIT(); /* x is the previous kernel's output; q and meta, what the last GEMV read */
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    const int lane = threadIdx.x & 31;
    if (i - lane >= n) return;
    q8_0_unit<PERM>(x[i], lane, q + i - lane, meta + i / 32);
}

/* Q8_K per 256, one block of 256 / EPT threads a Q8_K block, thread j holding
 * elements j + e (256 / EPT) (v[e]): max = the first element of largest |v|,
 * iscale = -127/max, q = min(127, round-half-even(iscale * v)), d = 1/iscale (all
 * zero for an all-zero block); d repeated in each unit's act_meta. Ends with a
 * barrier: the shared arrays may be reused. */
template <bool PERM, int EPT>
__device__ __forceinline__ void q8_k_block(const float (&v)[EPT], int8_t *block_q, act_meta *block_meta) {
    constexpr int NT = 256 / EPT;
    __shared__ float s_abs[NT], s_v[256];
    __shared__ int s_idx[NT];
    const int j = threadIdx.x;
    float best = -1.0f;
    int bi = 0;
#pragma unroll
    for (int e = 0; e < EPT; e++) { /* e rising: the first of ties */
        s_v[j + e * NT] = v[e];
        if (fabsf(v[e]) > best) best = fabsf(v[e]), bi = j + e * NT;
    }
    s_abs[j] = best, s_idx[j] = bi;
    __syncthreads();
    for (int stride = NT / 2; stride; stride >>= 1) {
        if (j < stride) {
            float a = s_abs[j], b = s_abs[j + stride];
            int ia = s_idx[j], ib = s_idx[j + stride];
            if (b > a || (b == a && ib < ia)) s_abs[j] = b, s_idx[j] = ib;
        }
        __syncthreads();
    }
    float d = 0, iscale = 0;
    if (s_abs[0] != 0) iscale = -127.0f / s_v[s_idx[0]], d = 1.0f / iscale;
#pragma unroll
    for (int e = 0; e < EPT; e++) {
        const int qi = s_abs[0] != 0 ? (int)fminf(127.0f, nearbyintf(__fmul_rn(iscale, v[e]))) : 0;
        block_q[act_pos<PERM>(j + e * NT)] = (int8_t)qi;
        act_meta_store(qi, d, block_meta + (j + e * NT) / 32);
    }
    __syncthreads();
}

template <bool PERM> __global__ void act_q8_k_int8_kernel(const float *x, int8_t *q, act_meta *meta) {
    RG_PDL_TRIGGER();
    RG_PDL_WAIT(); /* as act_q8_0_int8_kernel */
    const int64_t b0 = (int64_t)blockIdx.x * 256;
    const float v[1] = {x[b0 + threadIdx.x]};
    q8_k_block<PERM, 1>(v, q + b0, meta + b0 / 32);
}

/* rmsnorm and the int8 activations in one kernel (rg_cuda_rmsnorm_prepare): a
 * grid of (k / 256 rounded up, n_tok) blocks of RMS_THREADS (256) threads, one
 * element a thread. Every block takes its row's scale as the rmsnorm kernel
 * does (rmsnorm.cuh: the same threads, the same order, so the same bits; the
 * row is 4 * k bytes from L2), then normalizes its 256 elements (written to
 * out, as rmsnorm writes them) and quantizes them as act_q8_0_int8_kernel /
 * act_q8_k_int8_kernel do: a warp per 32-element unit, or the block as one Q8_K
 * block. The layout is theirs: q [n_tok][k], then act_meta [n_tok][k / 32].
 * (A first version ran one block per row, its warps walking the units in turn:
 * 1B Q4_0 decode 16% slower than rmsnorm + quantization in two kernels.) */
template <int FMT>
__global__ void __launch_bounds__(RMS_THREADS) rmsnorm_int8_kernel(const float *x, const float *w, int64_t k, float eps,
                                                                   float *out, int8_t *q, act_meta *meta) {
    static_assert(RMS_THREADS == 256, "a block is one Q8_K block");
    RG_PDL_TRIGGER();
    RG_PDL_WAIT();
    constexpr bool PERM = FMT != ACT_Q8_0;
    const int64_t t = blockIdx.y, i = (int64_t)blockIdx.x * RMS_THREADS + threadIdx.x;
    const float *xr = x + t * k;
    const float scale = rmsnorm_scale(xr, k, eps);
    const int lane = threadIdx.x & 31;
    if (i - lane >= k) return; /* k is a multiple of 32: warps are wholly in or out (no barrier follows for Q8_0) */
    const float v = (xr[i] * scale) * w[i];
    out[t * k + i] = v;
    if constexpr (FMT != ACT_Q8_K_PERM) q8_0_unit<PERM>(v, lane, q + t * k + i - lane, meta + t * (k / 32) + i / 32);
    else q8_k_block<PERM, 1>({v}, q + t * k + i - threadIdx.x, meta + (t * k + i - threadIdx.x) / 32);
}

/* ---- weights: one row's 32-element unit as 8 words of 4 bytes (w[e] pairs
 * with activation word e) and two float factors */

struct wdec {
    int w[8];
    float a, b;
};

/* nibbles of word j -> w[2j] (elements 8j+0,2,4,6) and w[2j+1] (8j+1,3,5,7) */
__device__ __forceinline__ void split_nibbles(const uint4 &n, int (&w)[8]) {
#pragma unroll
    for (int j = 0; j < 4; j++) {
        uint32_t v = word_of(n, j);
        w[2 * j] = (int)(v & 0x0f0f0f0fu), w[2 * j + 1] = (int)((v >> 4) & 0x0f0f0f0fu);
    }
}

__device__ __forceinline__ int dot4(const int (&w)[8], const int (&x)[8], int from) {
    int s = 0;
#pragma unroll
    for (int e = from; e < from + 4; e++) s = __dp4a(w[e], x[e], s);
    return s;
}

/* decode: the raw unit (dequant.cuh's wu<T>) into a wdec; dot: its share of
 * the row's dot product against one token's unit (x words, d, sums). */
template <int T> struct wi {};
template <> struct wi<RG_Q8_0> {
    static constexpr bool perm = false;
    static __device__ __forceinline__ void decode(const wu<RG_Q8_0>::raw &r, wdec &o) {
        o.w[0] = (int)r.a.x, o.w[1] = (int)r.a.y, o.w[2] = (int)r.a.z, o.w[3] = (int)r.a.w;
        o.w[4] = (int)r.b.x, o.w[5] = (int)r.b.y, o.w[6] = (int)r.b.z, o.w[7] = (int)r.b.w;
        o.a = r.d, o.b = 0;
    }
    static __device__ __forceinline__ float dot(const wdec &w, const int (&x)[8], float xd, int, int) {
        return (float)(dot4(w.w, x, 0) + dot4(w.w, x, 4)) * (w.a * xd);
    }
};
template <> struct wi<RG_Q4_0> {
    static constexpr bool perm = true;
    static __device__ __forceinline__ void decode(const wu<RG_Q4_0>::raw &r, wdec &o) {
        split_nibbles(r.n, o.w);
        o.a = r.d, o.b = 0;
    }
    static __device__ __forceinline__ float dot(const wdec &w, const int (&x)[8], float xd, int s0, int s1) {
        return (float)(dot4(w.w, x, 0) + dot4(w.w, x, 4) - 8 * (s0 + s1)) * (w.a * xd);
    }
};
template <> struct wi<RG_Q4_K> {
    static constexpr bool perm = true;
    /* a = d * sc, b = -dmin * m */
    static __device__ __forceinline__ void decode(const wu<RG_Q4_K>::raw &r, wdec &o) {
        split_nibbles(r.n, o.w);
        o.a = r.s, o.b = r.o;
    }
    static __device__ __forceinline__ float dot(const wdec &w, const int (&x)[8], float xd, int s0, int s1) {
        return xd * fmaf(w.a, (float)(dot4(w.w, x, 0) + dot4(w.w, x, 4)), w.b * (float)(s0 + s1));
    }
};
/* Q4_1 units are Q4_K's shape (wu_nibbles_so: s = d, o = m): d_x (d Σ q_w q_x + m Σ q_x) */
template <> struct wi<RG_Q4_1> : wi<RG_Q4_K> {};
template <> struct wi<RG_Q6_K> {
    static constexpr bool perm = true;
    /* 6-bit values 0..63 (the -32 applied through the sums): the low nibbles as
     * Q4's, the high pairs moved to bits 4-5 of the same bytes. hi holds element e
     * of a 16 at bits 2e; per 16: a0/b0 collect elements 4b/4b+2 and a1/b1
     * elements 4b+1/4b+3 into byte b, and byte_perm interleaves them. a = d * sc0,
     * b = d * sc1 (the unit's two sub-blocks of 16). */
    static __device__ __forceinline__ void decode(const wu<RG_Q6_K>::raw &r, wdec &o) {
#pragma unroll
        for (int h = 0; h < 2; h++) {
            const uint32_t H = h ? r.hi.y : r.hi.x, m = 0x30303030u;
            const uint32_t a0 = (H << 4) & m, b0 = H & m, a1 = (H << 2) & m, b1 = (H >> 2) & m;
            const uint32_t v0 = word_of(r.lo, 2 * h), v1 = word_of(r.lo, 2 * h + 1);
            o.w[4 * h + 0] = (int)((v0 & 0x0f0f0f0fu) | __byte_perm(a0, b0, 0x5140));
            o.w[4 * h + 1] = (int)(((v0 >> 4) & 0x0f0f0f0fu) | __byte_perm(a1, b1, 0x5140));
            o.w[4 * h + 2] = (int)((v1 & 0x0f0f0f0fu) | __byte_perm(a0, b0, 0x7362));
            o.w[4 * h + 3] = (int)(((v1 >> 4) & 0x0f0f0f0fu) | __byte_perm(a1, b1, 0x7362));
        }
        o.a = r.s0, o.b = r.s1;
    }
    static __device__ __forceinline__ float dot(const wdec &w, const int (&x)[8], float xd, int s0, int s1) {
        return xd * fmaf(w.a, (float)(dot4(w.w, x, 0) - 32 * s0), w.b * (float)(dot4(w.w, x, 4) - 32 * s1));
    }
};

/* w's planes advanced to row r, so that the loads of the loop index by unit
 * alone (wu<T>::load with r = 0) and the row offsets are computed once. */
template <int T> __device__ __forceinline__ wplanes row_view(wplanes w, int64_t r) {
    const int64_t k = w.k;
    if (T == RG_Q8_0) w.p0 += r * k, w.p1 += r * (k / 32) * 2;
    else if (T == RG_Q4_0) w.p0 += r * (k / 2), w.p1 += r * (k / 32) * 2;
    else if (T == RG_Q4_1) w.p0 += r * (k / 2), w.p1 += r * (k / 32) * 4;
    else if (T == RG_Q4_K) w.p0 += r * (k / 2), w.p1 += r * (k / 256) * 4, w.p2 += r * (k / 32) * 2;
    else w.p0 += r * (k / 2), w.p1 += r * (k / 4), w.p2 += r * (k / 16), w.p3 += r * (k / 256) * 2;
    return w;
}

/* A block of GEMV_THREADS threads over R rows (2R in SWIGLU mode) and NT
 * tokens: per step each thread loads one unit of each of its rows (decoded
 * once), then per token that unit's 32 int8 activations (two 16-byte loads
 * from L1/L2) and its act_meta. Two mappings beyond the plain one (G = U = 1):
 *   G = 2 (short rows, units <= GEMV_THREADS / 2): the block's two thread
 *     halves split its RR rows, each half taking every unit of its RR/2 rows,
 *     where the plain mapping left half the threads idle (k = 2048: 64 units).
 *     A thread then holds half the rows: 1 token, Q4_0, 2 rows 48 -> 32
 *     registers (QKV 2048 -> 3072: 1536 blocks, one wave of 16 per SM on 132
 *     SMs where 10 per SM took two), SWIGLU 71 -> 48; every 1-token instance
 *     <= 64 (the plain R = 4 ones: 78..128).
 *   U = 2 (long rows, units >= 2 GEMV_THREADS): two units of each row per step,
 *     u and u + GEMV_THREADS, so twice the loads are in flight before the wait.
 *     It costs the registers of the second raw unit: launch_map uses it only
 *     where that stays within 64 without spilling (1 token, 2 rows, Q4_0: 48 ->
 *     64 registers, 8 blocks per SM, still one wave for the 8192 -> 2048 down
 *     projection on 132 SMs); the other types and shapes spilled or went to
 *     72..220 registers.
 * Either way a thread sums the same units of a row in the same order as the
 * plain mapping, and the rows it does not take stay 0 in the epilogue's
 * block-wide sum: the results are bit-identical (tests/gpu/test_cuda_ops.c
 * compares them with the plain mapping). Measured on the H100 (docs/BENCHMARKS.md):
 * G = 2 is the default (RIDGE_CUDA_GEMV_Q_SHORT=0: the plain mapping); U = 2
 * measured neutral to slower and is opt-in (RIDGE_CUDA_GEMV_Q_U2=1). */
template <int T, int NT, int R, int MODE, int G, int U>
__global__ void __launch_bounds__(GEMV_THREADS)
    gemv_dp4a_kernel(gemv_job job, const int8_t *__restrict__ xq, const act_meta *__restrict__ xm, int64_t n_tok) {
    constexpr int RR = MODE == GEMV_SWIGLU ? 2 * R : R, RG = RR / G, TG = GEMV_THREADS / G;
    static_assert(RR % G == 0 && (G == 1 || U == 1), "G splits the rows; U only with G = 1");
    RG_PDL_TRIGGER();
    const int tid = threadIdx.x, g = G == 1 ? 0 : tid / TG, lane = G == 1 ? tid : tid % TG;
    int64_t r0;
    const int m = gemv_block_matrix<MODE, R>(job, r0);
    const wplanes w0 = m == 0 ? job.w[0] : m == 1 ? job.w[1] : job.w[2], w1 = job.w[1];
    const int64_t k = w0.k, units = k / 32;
    float sum[RG][NT]; /* this thread's rows g * RG + j */
#pragma unroll
    for (int j = 0; j < RG; j++)
#pragma unroll
        for (int t = 0; t < NT; t++) sum[j][t] = 0;
    wplanes rows[RG];
#pragma unroll
    for (int j = 0; j < RG; j++) {
        const int i = g * RG + j;
        const wplanes &w = gemv_rows<MODE, R>(w0, w1, i);
        rows[j] = row_view<T>(w, r0 + i % R < w.n_out ? r0 + i % R : w.n_out - 1);
    }
    for (int64_t u0 = lane; u0 < units; u0 += U * TG) {
        typename wu<T>::raw raw[U][RG];
#pragma unroll
        for (int v = 0; v < U; v++)
            if (v == 0 || u0 + v * TG < units)
#pragma unroll
                for (int j = 0; j < RG; j++) wu<T>::load(rows[j], 0, u0 + v * TG, raw[v][j]);
        RG_PDL_WAIT(); /* the weights are constant; the activations are the previous kernel's */
#pragma unroll
        for (int v = 0; v < U; v++) {
            const int64_t u = u0 + v * TG;
            if (v > 0 && u >= units) break;
            wdec wd[RG];
#pragma unroll
            for (int j = 0; j < RG; j++) wi<T>::decode(raw[v][j], wd[j]);
#pragma unroll
            for (int t = 0; t < NT; t++) {
                if (t >= n_tok) break;
                const uint4 *xp = (const uint4 *)(xq + t * k + 32 * u);
                const uint4 a = __ldg(xp), b = __ldg(xp + 1);
                const int2 mt = __ldg((const int2 *)(xm + t * units + u));
                const int x[8] = {(int)a.x, (int)a.y, (int)a.z, (int)a.w, (int)b.x, (int)b.y, (int)b.z, (int)b.w};
                const float xd = __int_as_float(mt.x);
                const int s0 = (int16_t)(mt.y & 0xffff), s1 = mt.y >> 16; /* act_meta's int16 pair, sign-extended */
#pragma unroll
                for (int j = 0; j < RG; j++) sum[j][t] += wi<T>::dot(wd[j], x, xd, s0, s1);
            }
        }
    }
    RG_PDL_WAIT();
    float acc[RR][NT];
#pragma unroll
    for (int i = 0; i < RR; i++)
#pragma unroll
        for (int t = 0; t < NT; t++) acc[i][t] = i / RG == g ? sum[i % RG][t] : 0.0f;
    gemv_epilogue<MODE, R, NT, RR>(job, m, r0, n_tok, w0.n_out, acc);
}

/* One launch per tile of up to 8 tokens (U applies to one-token tiles only). */
template <int T, int R, int MODE, int G, int U>
static void launch_r(cuda_backend *c, gemv_job job, int n_mat, const int8_t *q, const act_meta *meta, int64_t n_tok) {
    const int64_t k = job.w[0].k;
    const unsigned blocks = gemv_grid<R, MODE>(job, n_mat);
    for (int64_t t0 = 0; t0 < n_tok; t0 += 8) {
        const int64_t nt = n_tok - t0 < 8 ? n_tok - t0 : 8;
        const int8_t *qt = q + t0 * k;
        const act_meta *mt = meta + t0 * (k / 32);
        gemv_job jt = job;
        jt.rope_tok0 = t0;
        for (int i = 0; i < n_mat; i++) jt.y[i] = job.y[i] + t0 * job.w[i].n_out;
        const dim3 grid(blocks), block(GEMV_THREADS);
        if (nt == 1) rg_cuda_launch(c, gemv_dp4a_kernel<T, 1, R, MODE, G, U>, grid, block, 0, jt, qt, mt, nt);
        else if (nt == 2) rg_cuda_launch(c, gemv_dp4a_kernel<T, 2, R, MODE, G, 1>, grid, block, 0, jt, qt, mt, nt);
        else if (nt <= 4) rg_cuda_launch(c, gemv_dp4a_kernel<T, 4, R, MODE, G, 1>, grid, block, 0, jt, qt, mt, nt);
        else rg_cuda_launch(c, gemv_dp4a_kernel<T, 8, R, MODE, G, 1>, grid, block, 0, jt, qt, mt, nt);
    }
}

/* The thread mapping by row length (gemv_dp4a_kernel): units = k / 32; G = 2 for
 * short rows unless RIDGE_CUDA_GEMV_Q_SHORT=0, U = 2 only with RIDGE_CUDA_GEMV_Q_U2=1. */
template <int T, int R, int MODE>
static void launch_map(cuda_backend *c, const gemv_job &job, int n_mat, const int8_t *q, const act_meta *meta,
                       int64_t n_tok) {
    const int64_t units = job.w[0].k / 32;
    constexpr bool u2 = T == RG_Q4_0 && R == 2 && MODE != GEMV_SWIGLU; /* where U = 2 fits (gemv_dp4a_kernel) */
    if (c->gemv_q_short && units <= GEMV_THREADS / 2) launch_r<T, R, MODE, 2, 1>(c, job, n_mat, q, meta, n_tok);
    else if (u2 && c->gemv_q_u2 && units >= 2 * GEMV_THREADS)
        launch_r<T, R, MODE, 1, u2 ? 2 : 1>(c, job, n_mat, q, meta, n_tok);
    else launch_r<T, R, MODE, 1, 1>(c, job, n_mat, q, meta, n_tok);
}

template <int T, int MODE>
static void launch_mode(cuda_backend *c, const gemv_job &job, int n_mat, const int8_t *q, const act_meta *meta,
                        int64_t n_tok) {
    if constexpr (MODE == GEMV_SWIGLU) launch_map<T, 2, MODE>(c, job, n_mat, q, meta, n_tok); /* always 2 rows */
    else if (gemv_rows_per_block(MODE, job, n_mat, c->n_sm) == 2) launch_map<T, 2, MODE>(c, job, n_mat, q, meta, n_tok);
    else launch_map<T, 4, MODE>(c, job, n_mat, q, meta, n_tok);
}

template <int T>
static void launch_type(cuda_backend *c, int mode, const gemv_job &job, int n_mat, const float *x, int64_t n_tok) {
    const int64_t k = job.w[0].k, n = n_tok * k;
    const bool prepared = rg_cuda_prepared_holds(&c->act8, x, rg_cuda_act_fmt((rg_dtype)T), n_tok, k);
    int8_t *q = (int8_t *)(prepared ? c->act8.buf : c->xq);
    act_meta *meta = (act_meta *)(q + n); /* n is a multiple of 32: aligned */
    c->act8.src = NULL; /* consumed, or overwritten below */
    if (!prepared) { /* else rg_cuda_rmsnorm_prepare wrote them with x */
        if (T == RG_Q8_0 || T == RG_Q4_0 || T == RG_Q4_1)
            rg_cuda_launch(c, act_q8_0_int8_kernel<wi<T>::perm>, dim3(rg_cuda_blocks(n, 256)), dim3(256), 0, x, n, q,
                           meta);
        else rg_cuda_launch(c, act_q8_k_int8_kernel<wi<T>::perm>, dim3((unsigned)(n / 256)), dim3(256), 0, x, q, meta);
        if (!RG_CUDA_LAUNCHED(c, "activation quantization (int8)")) return;
    }
    if (mode == GEMV_STORE) launch_mode<T, GEMV_STORE>(c, job, n_mat, q, meta, n_tok);
    else if (mode == GEMV_ADD) launch_mode<T, GEMV_ADD>(c, job, n_mat, q, meta, n_tok);
    else if (mode == GEMV_QKV_ROPE) launch_mode<T, GEMV_QKV_ROPE>(c, job, n_mat, q, meta, n_tok);
    else launch_mode<T, GEMV_SWIGLU>(c, job, n_mat, q, meta, n_tok);
    RG_CUDA_LAUNCHED(c, "gemv (dp4a)");
}

bool rg_cuda_gemv_dp4a(cuda_backend *c, int mode, const gemv_job &job, int n_mat, rg_dtype t, const float *x,
                       int64_t n_tok) {
    if (n_tok < 1 || n_tok > GEMV_MAX_TOK) return false;
    switch (t) {
    case RG_Q8_0: launch_type<RG_Q8_0>(c, mode, job, n_mat, x, n_tok); return true;
    case RG_Q4_0: launch_type<RG_Q4_0>(c, mode, job, n_mat, x, n_tok); return true;
    case RG_Q4_1: launch_type<RG_Q4_1>(c, mode, job, n_mat, x, n_tok); return true;
    case RG_Q4_K: launch_type<RG_Q4_K>(c, mode, job, n_mat, x, n_tok); return true;
    case RG_Q6_K: launch_type<RG_Q6_K>(c, mode, job, n_mat, x, n_tok); return true;
    default: return false;
    }
}

/* out = rmsnorm(x) and, for a quantized `next` of the integer GEMV, its int8
 * activations in the same kernel (rmsnorm_int8_kernel), kept for the next GEMV
 * on out (launch_type). RIDGE_CUDA_NORM_QUANT=0 turns it off. */
bool rg_cuda_rmsnorm_int8(cuda_backend *c, const float *x, const float *w, int64_t n, int64_t n_tok, float eps,
                          float *out, const rg_weight *next) {
    if (!c->norm_quant || !next || next->k != n || n_tok < 1 || n_tok > GEMV_MAX_TOK || c->status) return false;
    const int fmt = rg_cuda_act_fmt(next->type);
    if (!fmt || n % (fmt == ACT_Q8_K_PERM ? 256 : 32)) return false;
    int8_t *q = (int8_t *)c->xq;
    act_meta *meta = (act_meta *)(q + n_tok * n);
    const dim3 grid(rg_cuda_blocks(n, RMS_THREADS), (unsigned)n_tok), block(RMS_THREADS);
    if (fmt == ACT_Q8_0) rg_cuda_launch(c, rmsnorm_int8_kernel<ACT_Q8_0>, grid, block, 0, x, w, n, eps, out, q, meta);
    else if (fmt == ACT_Q8_0_PERM)
        rg_cuda_launch(c, rmsnorm_int8_kernel<ACT_Q8_0_PERM>, grid, block, 0, x, w, n, eps, out, q, meta);
    else rg_cuda_launch(c, rmsnorm_int8_kernel<ACT_Q8_K_PERM>, grid, block, 0, x, w, n, eps, out, q, meta);
    if (!RG_CUDA_LAUNCHED(c, "rmsnorm + int8 activations")) return true;
    rg_cuda_prepared_set(&c->act8, out, c->xq, fmt, n_tok, n);
    return true;
}
