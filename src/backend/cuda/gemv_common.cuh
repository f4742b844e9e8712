/* gemv_common.cuh — what the two GEMV kernel families share (matmul.cu: float
 * activations; matmul_q.cu: int8 activations with dp4a): the job a launch
 * computes, how blocks map to rows, and the epilogue that reduces a block's
 * partial sums and applies the fused mode. A block of GEMV_THREADS threads
 * computes R rows (2R in SWIGLU mode) over up to 8 tokens. */
#ifndef RG_BACKEND_CUDA_GEMV_COMMON_CUH
#define RG_BACKEND_CUDA_GEMV_COMMON_CUH

#include "backend/cuda/cuda_internal.h"
#include "backend/cuda/rope.cuh"

#define GEMV_MAX_TOK 16
#define GEMV_THREADS 128

/* What a GEMV launch computes. One launch serves up to three matrices of the
 * same input width and type (QKV): blocks [blk_end[m-1], blk_end[m]) work on
 * matrix m. The mode says what the epilogue does with a row's dot product v:
 *   GEMV_STORE   y = v + bias
 *   GEMV_ADD     y += v + bias          (the residual add, as x += W·in)
 *   GEMV_SWIGLU  each block takes the same R rows of w[0] (gate) and w[1] (up):
 *                y[0] = silu(g) * u, as swiglu_kernel computes it.
 *   GEMV_QKV_ROPE  STORE of q, k, v (w[0..2]), then what rope_kv_store does
 *                (elementwise.cu): q and k rotated, k and v stored in the KV
 *                cache at the token's position. Only adjacent-pair RoPE: a
 *                pair's two rows fall in one block (R even, blocks start at
 *                multiples of R), so the epilogue rotates from the block's own
 *                sums and the rope_kv_store launch disappears. */
enum { GEMV_STORE, GEMV_ADD, GEMV_SWIGLU, GEMV_QKV_ROPE };

struct gemv_job {
    wplanes w[3];
    const float *bias[3];
    float *y[3];
    unsigned blk_end[3];
    rope_kv_layout rope; /* GEMV_QKV_ROPE only: the step and the KV pool */
    int64_t rope_tok0;   /* the launch's first token within the step (launches cover 8 tokens) */
};


/* This block's matrix (by blk_end) and first row. */
template <int MODE, int R>
__device__ __forceinline__ int gemv_block_matrix(const gemv_job &job, int64_t &r0) {
    unsigned b = blockIdx.x;
    int m = 0;
    if (MODE != GEMV_SWIGLU) {
        if (b >= job.blk_end[0]) m = b >= job.blk_end[1] ? 2 : 1;
        if (m) b -= job.blk_end[m - 1];
    }
    r0 = (int64_t)b * R;
    return m;
}

/* Row i of the block's RR rows: in SWIGLU mode rows R.. are the up matrix's. */
template <int MODE, int R>
__device__ __forceinline__ const wplanes &gemv_rows(const wplanes &w0, const wplanes &w1, int i) {
    return MODE == GEMV_SWIGLU && i >= R ? w1 : w0;
}

/* The epilogue from the block's partial sums: red[w][i * NT + t] for NW partial
 * sums w of row i (of RR: SWIGLU's up rows from R on) and token t; a thread per
 * (row, token) adds them up and applies the mode. */
template <int MODE, int R, int NT, int RR, int NW>
__device__ __forceinline__ void gemv_apply(const gemv_job &job, int m, int64_t r0, int64_t n_tok, int64_t n_out,
                                           const float (*red)[RR * NT]) {
    const float *bias = m == 0 ? job.bias[0] : m == 1 ? job.bias[1] : job.bias[2];
    float *y = m == 0 ? job.y[0] : m == 1 ? job.y[1] : job.y[2];
    for (int idx = threadIdx.x; idx < R * NT; idx += blockDim.x) {
        const int i = idx / NT, t = idx % NT;
        if (t >= n_tok || r0 + i >= n_out) continue;
        float v = 0;
#pragma unroll
        for (int k = 0; k < NW; k++) v += red[k][idx];
        float *dst = y + t * n_out + r0 + i;
        if (MODE == GEMV_SWIGLU) {
            float u = 0;
#pragma unroll
            for (int k = 0; k < NW; k++) u += red[k][R * NT + idx];
            *dst = v / (1.0f + expf(-v)) * u;
        } else if (MODE == GEMV_QKV_ROPE) {
            v += bias ? bias[r0 + i] : 0.0f;
            const rope_kv_layout &rp = job.rope;
            const int64_t r = r0 + i, head = r / rp.head_dim, j = r % rp.head_dim, tg = job.rope_tok0 + t;
            const int32_t pos = rp.pos[tg];
            if (m < 2 && j < rp.n_rot) { /* rotate with the pair's other row (i ^ 1, in this block) */
                const int ip = i ^ 1;
                float pv = 0;
#pragma unroll
                for (int k = 0; k < NW; k++) pv += red[k][ip * NT + t];
                pv += bias ? bias[r0 + ip] : 0.0f;
                float cs, sn;
                rope_cs(pos, j / 2, rp.theta_scale, rp.freq_scale, rp.ff, cs, sn);
                v = rope_rotate(v, pv, j, cs, sn);
            }
            *dst = v;
            if (m > 0) { /* k or v into the cache */
                uint8_t *kr = kv_row(rp, tg, pos, head, m == 2);
                if (rp.kv_type == RG_F32) ((float *)kr)[j] = v;
                else if (rp.kv_type == RG_F16) ((__half *)kr)[j] = __float2half_rn(v);
                else ((__nv_bfloat16 *)kr)[j] = __float2bfloat16_rn(v);
            }
        } else {
            v += bias ? bias[r0 + i] : 0.0f;
            if (MODE == GEMV_ADD) *dst += v;
            else *dst = v;
        }
    }
}

/* The partial sums of the block's GEMV_THREADS threads (acc [RR][NT] each) meet
 * through shuffles and shared memory, then gemv_apply. */
template <int MODE, int R, int NT, int RR>
__device__ __forceinline__ void gemv_epilogue(const gemv_job &job, int m, int64_t r0, int64_t n_tok, int64_t n_out,
                                              float (&acc)[RR][NT]) {
    const int tid = threadIdx.x, lane = tid & 31, warp = tid / 32;
    __shared__ float red[GEMV_THREADS / 32][RR * NT];
#pragma unroll
    for (int i = 0; i < RR; i++)
#pragma unroll
        for (int t = 0; t < NT; t++) {
            float v = acc[i][t];
            for (int off = 16; off; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
            if (lane == 0) red[warp][i * NT + t] = v;
        }
    __syncthreads();
    gemv_apply<MODE, R, NT, RR, GEMV_THREADS / 32>(job, m, r0, n_tok, n_out, red);
}

/* Fill job.blk_end for blocks of R rows over the first n_mat matrices; the grid size. */
template <int R, int MODE> static inline unsigned gemv_grid(gemv_job &job, int n_mat) {
    unsigned blocks = 0;
    for (int i = 0; i < 3; i++) {
        if (i < n_mat) blocks += rg_cuda_blocks(job.w[i].n_out, R);
        job.blk_end[i] = blocks;
    }
    if (MODE == GEMV_SWIGLU) blocks = rg_cuda_blocks(job.w[0].n_out, R);
    return blocks;
}

/* Rows per block: 2 while that leaves fewer than ~8 blocks per SM, else 4
 * (SWIGLU: always 2, i.e. 4 rows with the up matrix's). */
static inline int gemv_rows_per_block(int mode, const gemv_job &job, int n_mat, int n_sm) {
    int64_t rows = 0;
    for (int i = 0; i < n_mat; i++) rows += job.w[i].n_out;
    return mode == GEMV_SWIGLU || rows < 8 * 4 * (int64_t)n_sm ? 2 : 4;
}

/* The integer-dot GEMV (matmul_q.cu) for Q8_0, Q4_0, Q4_1, Q4_K and Q6_K weights:
 * quantizes x (n_tok <= GEMV_MAX_TOK rows of job.w[0].k) into c->xq and runs
 * the job in mode (GEMV_*). Returns false, launching nothing, for other types. */
bool rg_cuda_gemv_dp4a(cuda_backend *c, int mode, const gemv_job &job, int n_mat, rg_dtype t, const float *x,
                       int64_t n_tok);

#endif
