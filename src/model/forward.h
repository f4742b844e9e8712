/* forward.h — the forward pass over a flat batch of tokens from many sequences.
 *
 * A batch is n tokens, each with its id, its position and the sequence it belongs
 * to; a prefill chunk of one request and the decode tokens of others run in one
 * call. K/V are written to the paged pool through each sequence's block table
 * before attention reads them, so a token attends to every earlier position of
 * its sequence whether it was computed in this call or an earlier one. Logits are
 * computed only for the tokens that ask for them. */
#ifndef RG_MODEL_FORWARD_H
#define RG_MODEL_FORWARD_H

#include <stdbool.h>
#include <stdint.h>

#include "backend/backend.h"
#include "backend/cpu/attention.h"
#include "kv/kv_pool.h"
#include "model/model.h"
#include "perf/op_event.h"

typedef struct rg_batch {
    int64_t n_tokens;
    const int32_t *token;
    const int32_t *pos;
    const int32_t *seq;         /* index into the seqs array given to rg_forward */
    const bool *want_logits;    /* NULL: only the batch's last token */
    /* NULL: none. Else one id per token with want_logits, in batch order: the
     * greedy choice rg_argmax (core/argmax.h) of its logits row, taken where the
     * logits are (the backend's argmax_rows), so that only ids cross to the host. */
    int32_t *argmax_out;
} rg_batch;

typedef struct rg_ctx_params {
    int n_threads;              /* <= 0: all cores */
    int64_t n_ctx;              /* longest sequence (positions), 0 = n_ctx_train */
    int64_t n_seq_max;          /* sequences sharing the pool (sizes it), 0 = 1 */
    int64_t max_batch_tokens;   /* tokens per internal step (bigger batches are chunked), 0 = 512 */
    int64_t kv_blocks;          /* pool size in blocks, 0 = enough for n_seq_max * n_ctx */
    rg_dtype kv_type;           /* RG_F32 (default when 0), RG_F16, RG_BF16 */
    rg_attn_kind attn;          /* flash (default) or naive */
    rg_backend_kind backend;    /* RG_BACKEND_CPU (default) or RG_BACKEND_CUDA */
    int device;                 /* CUDA device ordinal */
    bool no_graphs;             /* CUDA: launch every op of a decode step instead of replaying a graph */
    bool no_fusion;             /* run the unfused op sequence even where the backend fuses ops */
} rg_ctx_params;

typedef struct rg_ctx rg_ctx;

/* Create a run context: thread pool, backend (with the model's weights resident
 * in it), KV pool and every buffer a step needs (no allocation happens in
 * rg_forward). RG_E_UNSUPPORTED for the CUDA backend in a build without it. Ownership: the caller's; free with
 * rg_ctx_free; the model must outlive it. */
rg_status rg_ctx_create(const rg_model *m, const rg_ctx_params *p, rg_ctx **out, rg_err *err);
void rg_ctx_free(rg_ctx *c);
rg_kv_pool *rg_ctx_kv(rg_ctx *c);
const rg_model *rg_ctx_model(const rg_ctx *c);
int64_t rg_ctx_n_ctx(const rg_ctx *c);
rg_threadpool *rg_ctx_cpu_pool(rg_ctx *c);

/* Host memory for n_rows logits rows, to pass to rg_forward as `logits`: from the
 * backend's host_alloc where it has one (pinned on CUDA: the rows arrive in one
 * DMA, no staging copy), else malloc. NULL when out of memory. Free it with
 * rg_ctx_free_logits before c is freed. */
float *rg_ctx_alloc_logits(rg_ctx *c, int64_t n_rows);
void rg_ctx_free_logits(rg_ctx *c, float *logits);
rg_backend_kind rg_ctx_backend(const rg_ctx *c);

/* Report every op rg_forward runs to fn (NULL: stop), on the calling thread after
 * the op; with timing, events carry start/end times (two clock reads per op). */
void rg_ctx_set_op_observer(rg_ctx *c, rg_op_observer fn, void *user, bool timing);

/* Run the batch. Each sequence's tokens in the batch must continue it: their
 * positions are seq->n_tokens, +1, ... in batch order (rewind with
 * rg_kv_seq_truncate first). Reserves KV blocks as needed (RG_E_NOMEM if the pool
 * is full, with no sequence changed). logits receives n_vocab floats per token
 * with want_logits, in batch order; it may be NULL (then only b->argmax_out is
 * filled, or, with neither, no output head runs). */
rg_status rg_forward(rg_ctx *c, const rg_batch *b, rg_kv_seq *const *seqs, int64_t n_seqs, float *logits,
                     rg_err *err);

#endif
