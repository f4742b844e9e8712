/* cuda_internal.h — state and helpers shared by the CUDA backend's .cu files
 * (C++; not for use outside src/backend/cuda).
 *
 * Weights in GPU memory ("resident layouts"), each row-major over n_out rows:
 *   F32, F16, BF16  as stored in the file
 *   Q8_0  qs int8 [n_out][k] | scale f16 [n_out][k/32]
 *   Q4_0  nibbles [n_out][k/2] (element 2i in the low nibble of byte i) | scale f16 [n_out][k/32]
 *   Q4_1  nibbles as Q4_0 | (d, m) f16x2 [n_out][k/32]
 *   Q4_K  nibbles [n_out][k/2] | (d, dmin) f16x2 [n_out][k/256] | (sc, m) u8x2 [n_out][k/32]
 *   Q6_K  low 4 bits [n_out][k/2] | high 2 bits [n_out][k/4] (element 4i+j in bits 2j of byte i)
 *         | scale int8 [n_out][k/16] | d f16 [n_out][k/256]
 * i.e. the same quantized values and scales as the GGUF blocks (Q4_K's 6-bit
 * sub-scales widened to bytes: 20 instead of 16 bytes of scales per 256), split
 * into planes so that 8 consecutive elements sit in one aligned 4- or 8-byte
 * word. Every other type is dequantized to F16 at load. */
#ifndef RG_BACKEND_CUDA_INTERNAL_H
#define RG_BACKEND_CUDA_INTERNAL_H

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>

extern "C" {
#include "backend/backend.h"
}

/* Attention works on tiles of this many positions (one lane each in the softmax). */
#define RG_CUDA_ATTN_TILE 32
/* Batch sizes (tokens per step) whose decode step is captured as a CUDA graph. */
#define RG_CUDA_GRAPHS 16

/* An input form of a matmul's activations, written ahead of it by the op that
 * produced them (cuda_backend's act8, act16): made from the n_tok rows of k
 * floats at src, in form fmt (int8: ACT_*; 16-bit: RG_BF16 / RG_F16), at buf.
 * src NULL: none. */
typedef struct prepared_form {
    const float *src;
    void *buf;
    int fmt;
    int64_t n_tok, k;
} prepared_form;

typedef struct cuda_backend {
    rg_backend be;
    int device, n_sm;
    bool pdl;                     /* launch decode kernels with programmatic dependent launch */
    bool gemv_q_short, gemv_q_u2; /* matmul_q.cu's mappings for short and long rows (RIDGE_CUDA_GEMV_Q_SHORT, _U2) */
    bool gemv_mma;                /* 2..16-token GEMV of 16-bit weights on tensor cores (RIDGE_CUDA_GEMV_MMA=0: off) */
    bool norm_quant;              /* rmsnorm_prepare writes int8 activations (RIDGE_CUDA_NORM_QUANT=0: off) */
    bool pf_mt2;                  /* mma.sync prefill attention with 32 query rows a warp (RIDGE_CUDA_PF_MT2=1) */
    bool pf_wgmma;                /* prefill attention on wgmma (sm_90a; RIDGE_CUDA_PF_WGMMA=0: mma.sync) */
    bool prefill_inputs;          /* producers write the cuBLAS input form (act16; RIDGE_CUDA_PREFILL_INPUTS=0: off) */
    bool prefill_gu16;            /* prefill gate/up products in bf16 (RIDGE_CUDA_PREFILL_GU16=0: f32) */
    bool stack, stack_ok;         /* layer_stack (opt-in: RIDGE_CUDA_STACK=1); stack_ok: its sm_90 kernels are here */
    bool stack_require;           /* RIDGE_CUDA_STACK=require: on, and a one-token step it declines fails (tests) */
    /* Input forms of the next matmul on some activations, written by the op that
     * produced them: the int8 activations of the integer GEMV (act8, in xq:
     * rmsnorm_prepare) and the 16-bit cuBLAS input (act16, in x16: rmsnorm_prepare,
     * swiglu_into, matmul_swiglu at prefill, prefill attention). */
    prepared_form act8, act16;
    cudaStream_t stream;
    cublasHandle_t cublas;
    rg_status status;             /* first failure (sticky) */
    char msg[400];
    /* KV storage: the host pool's layout, in GPU memory */
    rg_kv_pool *kv;
    rg_kv_config kvc;
    uint8_t *kv_data;
    size_t kv_unit_bytes, kv_head_bytes, kv_kv_bytes, kv_layer_bytes;
    /* step state: device copies of positions, n_ctx, token -> table row, tables */
    int64_t max_tokens, max_table_blocks, n_tok, ctx_max;
    int32_t *d_pos, *d_n_ctx, *d_row, *d_tables, *d_ids;
    int32_t *h_stage;             /* pinned: pos | n_ctx | row | tables | ids */
    void *h_out;                  /* pinned landing buffer for downloads (NULL: direct) */
    size_t h_out_bytes;
    const int32_t **row_src;      /* host: the block table behind each table row */
    int64_t *row_ctx;             /* host: the longest n_ctx of each table row's tokens */
    size_t stage_ints;
    int ids_used;                 /* id slots used this step (of 2) */
    int32_t *d_argmax;            /* argmax_rows' ids: max_tokens */
    /* scratch */
    void *x16;                    /* activations converted for cuBLAS: max_tokens * k_max 16-bit */
    int64_t k_max;                /* the widest matmul input reserved (x16 holds max_tokens rows of it, xq 16) */
    void *w16;                    /* a dequantized tile of weight rows, w16_bytes */
    float *xq;                    /* quantized activations (GEMV path): 16 * k_max (matmul_q.cu: int8 + scales) */
    size_t w16_bytes;
    float *attn_o;                /* split partials: attn_entries * head_dim */
    float2 *attn_ml;              /* split (max, sum): attn_entries */
    int64_t attn_entries;
    int attn_blocks_per_sm;
    /* layer_stack's scratch (decode_stack.cu): q, attention output (stack_q_max
     * floats each), SwiGLU output (stack_h_max), the grid barrier's two words,
     * the work-item counters (RG_CUDA_STACK_CLAIMS) */
    float *stack_q, *stack_att, *stack_h;
    unsigned *stack_bar;
    int *stack_claims;            /* work items taken per (layer, phase) of a launch; zero between launches */
    int64_t stack_q_max, stack_h_max;
    int stack_smem_max;           /* the dynamic shared memory its kernel may ask for (setup) */       /* attention split blocks resident per SM (the split count fills one wave) */
    /* decode-step graphs by batch size (1..RG_CUDA_GRAPHS) */
    cudaGraphExec_t graphs[RG_CUDA_GRAPHS + 1];
} cuda_backend;

static inline cuda_backend *cuda_of(rg_backend *be) { return (cuda_backend *)be; }

/* Prepared input forms are dropped by anything that may write their source: a
 * plain op's output, an upload, a copy, a new step. */
static inline void rg_cuda_forget_prepared(cuda_backend *c) { c->act8.src = NULL, c->act16.src = NULL; }

static inline void rg_cuda_prepared_set(prepared_form *p, const float *src, void *buf, int fmt, int64_t n_tok,
                                        int64_t k) {
    p->src = src, p->buf = buf, p->fmt = fmt, p->n_tok = n_tok, p->k = k;
}

/* Whether p holds the form fmt of the n_tok rows of k at x. */
static inline bool rg_cuda_prepared_holds(const prepared_form *p, const float *x, int fmt, int64_t n_tok, int64_t k) {
    return p->src && p->src == x && p->fmt == fmt && p->n_tok == n_tok && p->k == k;
}

/* The 16-bit form cuBLAS reads next to w (matmul.cu): f16 for f16 weights, bf16
 * for the rest (quantized weights are dequantized to bf16); RG_F32: none (sgemm). */
static inline rg_dtype rg_cuda_x16_type(const rg_weight *w) {
    return w->type == RG_F32 ? RG_F32 : w->type == RG_F16 ? RG_F16 : RG_BF16;
}

/* Element i of a 16-bit activation buffer from a float, rounded to nearest: O16
 * RG_BF16 or RG_F16 (RG_F32: nothing stored). Every kernel that writes the cuBLAS
 * input form (matmul.cu's conversion, the producers of act16) stores through
 * these, so the forms agree bit for bit. */
template <int O16> __device__ __forceinline__ void store16(void *out16, int64_t i, float v) {
    if constexpr (O16 == RG_BF16) ((__nv_bfloat16 *)out16)[i] = __float2bfloat16_rn(v);
    else if constexpr (O16 == RG_F16) ((__half *)out16)[i] = __float2half_rn(v);
}

/* 4 consecutive values at element i (a multiple of 4): one 8-byte store */
template <int O16> __device__ __forceinline__ void store16x4(void *out16, int64_t i, float4 v) {
    if constexpr (O16 == RG_BF16) {
        __nv_bfloat162 p[2] = {__floats2bfloat162_rn(v.x, v.y), __floats2bfloat162_rn(v.z, v.w)};
        *(uint2 *)((__nv_bfloat16 *)out16 + i) = *(const uint2 *)p;
    } else if constexpr (O16 == RG_F16) {
        __half2 p[2] = {__floats2half2_rn(v.x, v.y), __floats2half2_rn(v.z, v.w)};
        *(uint2 *)((__half *)out16 + i) = *(const uint2 *)p;
    }
}

/* Record the first failure; later ones are dropped (the first is the cause). */
void rg_cuda_fail(cuda_backend *c, const char *what, const char *detail);
/* true if ok; records the failure otherwise */
bool rg_cuda_check(cuda_backend *c, cudaError_t e, const char *what);
/* After a kernel launch: the launch error, if any. */
#define RG_CUDA_LAUNCHED(c, name) rg_cuda_check((c), cudaGetLastError(), (name))

/* The byte offsets of a resident weight's planes. */
typedef struct wplanes {
    int64_t k, n_out;
    const uint8_t *p0, *p1, *p2, *p3;
} wplanes;
wplanes rg_cuda_planes(const rg_weight *w);
size_t rg_cuda_resident_bytes(rg_dtype t, int64_t k, int64_t n_out);
bool rg_cuda_kept_type(rg_dtype t);

/* ops (defined in the .cu files, wired into the table in cuda_backend.cu) */
void rg_cuda_get_rows(rg_backend *be, const rg_weight *w, const int32_t *ids, int64_t n, float *out);
void rg_cuda_matmul(rg_backend *be, const rg_weight *w, const float *bias, const float *x, int64_t n_tok, float *y);
void rg_cuda_rmsnorm(rg_backend *be, const float *x, const float *weight, int64_t n, int64_t n_tok, float eps,
                     float *out);
void rg_cuda_rope(rg_backend *be, float *x, int64_t n_head, int64_t head_dim, const rg_rope_params *p);
void rg_cuda_kv_store(rg_backend *be, int64_t layer, const float *k, const float *v);
void rg_cuda_attention(rg_backend *be, const rg_backend_attn *a);
void rg_cuda_swiglu(rg_backend *be, const float *gate, const float *up, int64_t n, float *out);
void rg_cuda_add(rg_backend *be, float *y, const float *x, int64_t n);
void rg_cuda_add_sinusoidal(rg_backend *be, float *x, int64_t d);
/* greedy ids of logits rows (sample.cu) */
void rg_cuda_argmax_rows(rg_backend *be, const float *logits, int64_t n_rows, int64_t n_vocab, int32_t *ids_host);
/* fused ops (backend.h) */
bool rg_cuda_matmul_multi(rg_backend *be, int n, const rg_weight *const *w, const float *const *bias, const float *x,
                          int64_t n_tok, float *const *y);
bool rg_cuda_matmul_add(rg_backend *be, const rg_weight *w, const float *bias, const float *x, int64_t n_tok,
                        float *y);
bool rg_cuda_matmul_swiglu(rg_backend *be, const rg_weight *gate, const rg_weight *up, const float *x, int64_t n_tok,
                           float *out, const rg_weight *next);
bool rg_cuda_holds_input_form(rg_backend *be, const float *x, const rg_weight *w, int64_t n_tok);
bool rg_cuda_rope_kv_store(rg_backend *be, int64_t layer, float *q, float *k, const float *v, int64_t n_head,
                           int64_t n_head_kv, int64_t head_dim, const rg_rope_params *p);
bool rg_cuda_rmsnorm_prepare(rg_backend *be, const float *x, const float *w, int64_t n, int64_t n_tok, float eps,
                             float *out, const rg_weight *next);
/* rmsnorm_prepare's int8 case (matmul_q.cu): out and next's int8 activations */
bool rg_cuda_rmsnorm_int8(cuda_backend *c, const float *x, const float *w, int64_t n, int64_t n_tok, float eps,
                          float *out, const rg_weight *next);
/* SwiGLU of n_tok x n bf16 gate/up into the bf16 cuBLAS input (x16), held as the
 * form of out (matmul.cu's prefill_swiglu16). */
void rg_cuda_swiglu_bf16(cuda_backend *c, const __nv_bfloat16 *g, const __nv_bfloat16 *u, int64_t n_tok, int64_t n,
                         const float *out);
bool rg_cuda_swiglu_into(rg_backend *be, const float *gate, const float *up, int64_t n, float *out,
                         const rg_weight *next);
bool rg_cuda_qkv_rope_kv_store(rg_backend *be, int64_t layer, const rg_weight *const *w, const float *const *bias,
                               const float *x, int64_t n_tok, float *const *y, int64_t n_head, int64_t n_head_kv,
                               int64_t head_dim, const rg_rope_params *p);
/* Prefill attention on tensor cores (attention_prefill.cu): false, launching
 * nothing, where it does not apply (f32 KV, ALiBi, head_dim other than 64/128,
 * steps of <= RG_CUDA_GRAPHS tokens or mostly one-token runs); the caller then
 * runs rg_cuda_attention. rg_cuda_attention_op is the table's op: both in turn. */
bool rg_cuda_attention_prefill(rg_backend *be, const rg_backend_attn *a);
void rg_cuda_attention_op(rg_backend *be, const rg_backend_attn *a);
bool rg_cuda_attention_prefill_setup(cuda_backend *c);
/* Allow the attention kernel the shared memory of this head layout (once, at reserve). */
bool rg_cuda_attention_setup(cuda_backend *c, int64_t n_head, int64_t n_head_kv, int64_t head_dim);
/* Work-item counters of the layer-stack kernel: layers a launch takes x phases. */
#define RG_CUDA_STACK_CLAIMS (40 * 4)
/* The layer stack as one persistent kernel (decode_stack.cu); setup once at
 * reserve (its shared memory, whether the binary has the sm_90 kernel). */
bool rg_cuda_layer_stack(rg_backend *be, const rg_backend_stack *s);
bool rg_cuda_layer_stack_setup(cuda_backend *c);
/* Upload n host ids to a device slot for this step (NULL on failure). */
const int32_t *rg_cuda_stage_ids(cuda_backend *c, const int32_t *ids, int64_t n);

/* The sync of a block whose threads all take part (device helpers that a
 * kernel with a producer warp calls with a named barrier instead). */
struct block_sync {
    __device__ __forceinline__ void operator()() const { __syncthreads(); }
};

static inline unsigned rg_cuda_blocks(int64_t n, int per) { return (unsigned)((n + per - 1) / per); }

/* Programmatic dependent launch (Hopper): a kernel launched with rg_cuda_launch
 * may be scheduled while the kernel before it in the stream is still running, so
 * its launch latency and its independent prologue (a GEMV's weight loads) overlap
 * the predecessor's tail. Every such kernel must execute RG_PDL_WAIT() before it
 * reads what an earlier kernel wrote or writes what an earlier kernel reads: the
 * wait returns once all prerequisite grids have completed and their memory is
 * visible. RG_PDL_TRIGGER() lets the next kernel be scheduled early (it then
 * waits for this one in its own RG_PDL_WAIT). Both are no-ops without the launch
 * attribute and before sm_90. RIDGE_CUDA_PDL=0 turns the attribute off. */
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
#define RG_PDL_WAIT() asm volatile("griddepcontrol.wait;" ::: "memory")
#define RG_PDL_TRIGGER() asm volatile("griddepcontrol.launch_dependents;" ::: "memory")
#else
#define RG_PDL_WAIT() ((void)0)
#define RG_PDL_TRIGGER() ((void)0)
#endif

template <typename... KArgs, typename... Args>
static inline void rg_cuda_launch(cuda_backend *c, void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t smem,
                                  Args... args) {
    cudaLaunchAttribute attr;
    attr.id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr.val.programmaticStreamSerializationAllowed = 1;
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = grid, cfg.blockDim = block, cfg.dynamicSmemBytes = smem, cfg.stream = c->stream;
    cfg.attrs = &attr, cfg.numAttrs = c->pdl ? 1 : 0;
    cudaLaunchKernelEx(&cfg, kernel, static_cast<KArgs>(args)...);
}

#endif
