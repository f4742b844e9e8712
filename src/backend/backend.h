/* backend.h — the table of ops the forward pass calls (shared/DESIGN.md,
 * "Backends behind one table of ops"). model/forward.c is written once against
 * this table; backend/cpu/backend_cpu.c implements it with the CPU kernels and
 * backend/cuda/ with CUDA kernels.
 *
 * Memory: every buffer an op reads or writes is backend memory (from alloc);
 * for the CPU backend that is host memory, for CUDA device memory. Host data
 * crosses only through upload/download, get_rows' ids and begin_step.
 *
 * Errors: ops return nothing. A backend whose op fails (a CUDA call returned an
 * error) keeps the first failure and reports it from sync(); rg_forward calls
 * sync() once per step. The CPU backend never fails inside an op.
 *
 * Activations are f32 rows [n_tok][n]; weights are rg_weight matrices made
 * resident by load_weight (the backend may change their layout and, for types
 * it keeps in no quantized form, their dtype — see each backend's header). */
#ifndef RG_BACKEND_BACKEND_H
#define RG_BACKEND_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend/cpu/attention.h"
#include "backend/cpu/ops.h"
#include "core/error.h"
#include "core/threadpool.h"
#include "kv/kv_pool.h"
#include "model/model.h"

typedef enum rg_backend_kind { RG_BACKEND_CPU = 0, RG_BACKEND_CUDA = 1 } rg_backend_kind;

/* Sizes the step buffers and scratch are reserved for, so that no op allocates. */
typedef struct rg_backend_limits {
    int64_t max_tokens;     /* tokens per step */
    int64_t k_max;          /* widest matmul input */
    int64_t n_out_max;      /* widest matmul output */
    int64_t n_head, n_head_kv, head_dim;
    int64_t max_ctx;        /* longest sequence */
} rg_backend_limits;

/* One step's tokens as the host knows them; valid until the next begin_step.
 * Token t is at position pos[t] of the sequence whose block table is tables[t]
 * and attends to positions [0, n_ctx[t]). */
typedef struct rg_step {
    int64_t n_tok;
    const int32_t *pos;
    const int32_t *const *tables;
    const int32_t *n_ctx;
    int64_t ctx_max;
} rg_step;

/* Attention of the current step's tokens over layer `layer` of the attached pool. */
typedef struct rg_backend_attn {
    int64_t layer, n_head;
    const float *q;               /* [n_tok][n_head][head_dim], RoPE applied */
    float *out;                   /* [n_tok][n_head][head_dim] */
    float scale;
    rg_attn_kind kind;            /* backends without a naive kernel run their only one */
    const float *alibi_slopes;    /* backend memory, per query head, or NULL */
    /* Optional (NULL: none): the weight of the matmul that reads out next, so
     * that the backend may write that matmul's input form alongside out (as
     * rmsnorm_prepare does); out is written either way. */
    const rg_weight *next;
} rg_backend_attn;

/* One layer's weights as the layer_stack op reads them (backend memory). */
typedef struct rg_backend_layer {
    const float *attn_norm, *ffn_norm, *bq, *bk, *bv;
    const rg_weight *wq, *wk, *wv, *wo, *w_gate, *w_up, *w_down;
} rg_backend_layer;

/* The layer stack of model/forward.c's run_layers for a one-token step: x (the
 * residual stream, n_embd floats) in and out. */
typedef struct rg_backend_stack {
    int64_t n_layer, n_head, n_head_kv, head_dim;
    float eps, scale;                /* rmsnorm epsilon; attention's score scale */
    const rg_rope_params *rope;      /* NULL: no RoPE (the backend then declines) */
    const rg_backend_layer *layers;  /* n_layer */
    float *x;
} rg_backend_stack;

typedef struct rg_backend rg_backend;
struct rg_backend {
    const char *name;
    void (*destroy)(rg_backend *be);

    /* buffers */
    void *(*alloc)(rg_backend *be, size_t bytes); /* NULL on failure; never zeroed */
    void (*free)(rg_backend *be, void *p);
    void (*upload)(rg_backend *be, void *dst, const void *src, size_t bytes);
    void (*download)(rg_backend *be, void *dst, const void *src, size_t bytes); /* waits for the data */
    /* Optional (NULL: malloc/free): host memory that download fills fastest (CUDA:
     * pinned, so a download lands in one DMA with no staging copy). */
    void *(*host_alloc)(rg_backend *be, size_t bytes);
    void (*host_free)(rg_backend *be, void *p);
    void (*copy)(rg_backend *be, void *dst, const void *src, size_t bytes);     /* within backend memory */
    /* Wait for queued work; the first failure so far (RG_OK if none). err may be NULL. */
    rg_status (*sync)(rg_backend *be, rg_err *err);

    /* Make a weight resident: *dev describes the backend's copy (its data may be
     * host->data itself on the CPU). unload_weight releases it. */
    rg_status (*load_weight)(rg_backend *be, const rg_weight *host, rg_weight *dev, rg_err *err);
    void (*unload_weight)(rg_backend *be, rg_weight *dev);

    /* Step buffers and scratch for these limits, and the KV storage of `pool`
     * (the host pool keeps the bookkeeping: block ids, tables, refcounts). */
    rg_status (*reserve)(rg_backend *be, const rg_backend_limits *lim, rg_kv_pool *pool, rg_err *err);
    /* The current step's positions and block tables (uploaded once, used by every layer). */
    void (*begin_step)(rg_backend *be, const rg_step *s);
    /* Copy every layer of KV block src into block dst (copy-on-write). */
    void (*kv_copy_block)(rg_backend *be, int32_t dst, int32_t src);

    /* Optional (NULL: none): CUDA-graph style capture of a decode step's layer ops.
     * graph_replay runs what was recorded under key (true) or returns false; then
     * the caller brackets the ops with graph_record_begin/_end, which records them
     * (without running them) and then runs the recording. Ops between begin and end
     * must not read host memory (their arguments are frozen in the recording). */
    bool (*graph_replay)(rg_backend *be, int64_t key);
    void (*graph_record_begin)(rg_backend *be, int64_t key);
    void (*graph_record_end)(rg_backend *be, int64_t key);

    /* ops */
    void (*get_rows)(rg_backend *be, const rg_weight *w, const int32_t *ids, int64_t n, float *out);
    void (*matmul)(rg_backend *be, const rg_weight *w, const float *bias, const float *x, int64_t n_tok, float *y);
    void (*rmsnorm)(rg_backend *be, const float *x, const float *weight, int64_t n, int64_t n_tok, float eps,
                    float *out);
    void (*rope)(rg_backend *be, float *x, int64_t n_head, int64_t head_dim, const rg_rope_params *p);
    void (*kv_store)(rg_backend *be, int64_t layer, const float *k, const float *v);
    void (*attention)(rg_backend *be, const rg_backend_attn *a);
    void (*swiglu)(rg_backend *be, const float *gate, const float *up, int64_t n, float *out);
    void (*add)(rg_backend *be, float *y, const float *x, int64_t n);
    /* x[t] += sinusoidal encoding of the step's pos[t] (rows of d). */
    void (*add_sinusoidal)(rg_backend *be, float *x, int64_t d);

    /* Optional (NULL: none): greedy sampling where the logits are. ids_host[r] =
     * rg_argmax(logits + r * n_vocab, n_vocab) (core/argmax.h: ties to the lowest
     * id, NaN as it decides) for n_rows (<= the reserved max_tokens) rows of
     * backend-memory logits; waits for the ids like download, so only n_rows ids
     * cross to the host instead of n_rows * n_vocab floats. */
    void (*argmax_rows)(rg_backend *be, const float *logits, int64_t n_rows, int64_t n_vocab, int32_t *ids_host);

    /* Optional fused ops. Each computes exactly what the ops it replaces compute
     * (same roundings), in fewer passes over memory and fewer launches; it returns
     * false (having queued nothing) where it does not handle the case, and forward.c
     * then runs the unfused ops. NULL: never handled. */
    /* y[i] = W[i]·x (+ bias[i]) for n (<= 3) matrices of one input width (QKV). */
    bool (*matmul_multi)(rg_backend *be, int n, const rg_weight *const *w, const float *const *bias, const float *x,
                         int64_t n_tok, float *const *y);
    /* y += W·x (+ bias): a matmul with the residual add in its epilogue. */
    bool (*matmul_add)(rg_backend *be, const rg_weight *w, const float *bias, const float *x, int64_t n_tok, float *y);
    /* out = silu(Wg·x) * (Wu·x): gate and up products with SwiGLU in the epilogue;
     * next (may be NULL): the weight that reads out next, whose input form the
     * backend may prepare in the same pass (as rmsnorm_prepare does). Given next,
     * a backend may instead write only that form, leaving out unwritten (as
     * swiglu_into: only next's product may read out), and may keep gate and up in
     * that form's 16-bit type on the way — the one exception to "same roundings"
     * (CUDA prefill with bf16 weights, as a bf16 PyTorch forward computes it;
     * RIDGE_CUDA_PREFILL_GU16=0 turns it off). */
    bool (*matmul_swiglu)(rg_backend *be, const rg_weight *gate, const rg_weight *up, const float *x, int64_t n_tok,
                          float *out, const rg_weight *next);
    /* out = rmsnorm(x, w, eps) as rmsnorm computes it, and, where the backend can,
     * next's input form prepared from it in the same pass (CUDA: the int8
     * activations of a quantized GEMV), used by the next matmul-family op on out
     * if nothing writes out in between. next: the weight that reads out next. */
    bool (*rmsnorm_prepare)(rg_backend *be, const float *x, const float *w, int64_t n, int64_t n_tok, float eps,
                            float *out, const rg_weight *next);
    /* swiglu(gate, up, n, out) written straight in the input form of the next
     * matmul-family op on out, whose weight is next (CUDA: the 16-bit cuBLAS
     * input of a prefill product), in place of out's floats: out is left
     * unwritten, so only that op may read it. */
    bool (*swiglu_into)(rg_backend *be, const float *gate, const float *up, int64_t n, float *out,
                        const rg_weight *next);
    /* Optional (NULL: never): whether the backend holds w's input form of the
     * n_tok rows at x, written by the op that produced x for the next matmul on it
     * (rmsnorm_prepare, swiglu_into, matmul_swiglu or attention given a next) —
     * what that matmul will read instead of converting x. For tests: a fused
     * path's checks can then tell it was taken. */
    bool (*holds_input_form)(rg_backend *be, const float *x, const rg_weight *w, int64_t n_tok);
    /* rope(q), rope(k), then kv_store(layer, k, v) in one pass (k is rotated in place too). */
    bool (*rope_kv_store)(rg_backend *be, int64_t layer, float *q, float *k, const float *v, int64_t n_head,
                          int64_t n_head_kv, int64_t head_dim, const rg_rope_params *p);
    /* matmul_multi of q, k, v (w[0..2]; bias NULL or per matrix, entries may be
     * NULL) into y[0..2], then rope_kv_store(layer, y[0], y[1], y[2], ...): the
     * rotation and the store done by the matmul's epilogue (one launch, not two). */
    bool (*qkv_rope_kv_store)(rg_backend *be, int64_t layer, const rg_weight *const *w, const float *const *bias,
                              const float *x, int64_t n_tok, float *const *y, int64_t n_head, int64_t n_head_kv,
                              int64_t head_dim, const rg_rope_params *p);
    /* The whole layer stack of a step of one token (run_layers with its fused
     * ops: the same roundings — bf16 products round their input to bf16, K/V
     * round to the cache type — in another summation order) as one pass, so
     * that weights stream across the layers' phase boundaries (CUDA: one
     * persistent kernel, decode_stack.cu). */
    bool (*layer_stack)(rg_backend *be, const rg_backend_stack *s);
};

/* The CPU backend on `pool` (borrowed; NULL: the calling thread). */
rg_status rg_backend_cpu_create(rg_threadpool *pool, rg_backend **out, rg_err *err);

/* The CUDA backend on device `device`; RG_E_UNSUPPORTED when ridge was built
 * without CUDA (RIDGE_CUDA=OFF) or no device is usable. */
rg_status rg_backend_cuda_create(int device, rg_backend **out, rg_err *err);

/* The GPU's device-to-device copy rate in bytes/s, counting bytes read plus
 * bytes written (best of reps copies of `bytes`): the ceiling decode is measured
 * against. 0 without CUDA or on failure. */
double rg_backend_cuda_copy_bandwidth(int device, size_t bytes, int reps);

/* The rate (bytes read per second, best of 5) at which one block per SM
 * streams 1 GiB from HBM into shared memory: mode 0, a ring of `stages` bulk
 * copies (TMA) of stage_bytes each (in `copies` pieces), a fixed contiguous
 * share per block; mode 1, the same with stage-sized items taken from a
 * counter; mode 2, plain 16-byte loads (the other arguments unused); modes 3
 * and 4, mode 0 with 16 KB stages whose consumers dot their chunks as the
 * layer-stack kernel does, with (3) and without (4) the warp reduction. 0
 * without CUDA, off sm_90 for modes 0-1, or on failure. */
double rg_backend_cuda_stream_probe(int device, int mode, int stage_bytes, int stages, int copies);

/* cuBLAS's bf16 (or f16) GEMM rate in TFLOP/s on n^3 random data, best of 5
 * after a warm-up: the ceiling prefill is measured against. 0 without CUDA or
 * on failure. */
double rg_backend_cuda_gemm_tflops(int device, bool bf16, int n);

#endif
