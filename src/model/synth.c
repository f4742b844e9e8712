/* synth.c — writing random-weight models with the GGUF writer. */
#include "model/synth.h"

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/quant.h"
#include "core/threadpool.h"
#include "formats/gguf.h"

static const rg_synth_shape shapes[] = {
    /* name            layers  embd  heads kv   ff     vocab   ctx    rope base */
    {"tiny", 2, 64, 4, 2, 128, 512, 256, 10000},
    {"smollm2-135m", 30, 576, 9, 3, 1536, 49152, 8192, 100000},
    {"llama3.2-1b", 16, 2048, 32, 8, 8192, 128256, 131072, 500000},
    {"bench-1b", 16, 2048, 32, 8, 8192, 32000, 4096, 10000},
    {"llama3-8b", 32, 4096, 32, 8, 14336, 128256, 8192, 500000},
    {"llama2-7b", 32, 4096, 32, 32, 11008, 32000, 4096, 10000},
    {"llama2-70b", 80, 8192, 64, 8, 28672, 32000, 4096, 10000},
};

bool rg_synth_shape_named(const char *name, rg_synth_shape *out) {
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++)
        if (!strcmp(shapes[i].name, name)) return *out = shapes[i], true;
    return false;
}

const char *rg_synth_shape_names(void) {
    return "tiny, smollm2-135m, llama3.2-1b, bench-1b, llama3-8b, llama2-7b, llama2-70b";
}

static uint64_t next_u64(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static float normal(uint64_t *s) {
    double u1 = ((double)(next_u64(s) >> 11) + 0.5) / 9007199254740992.0;
    double u2 = (double)(next_u64(s) >> 11) / 9007199254740992.0;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

/* Rows of one tensor filled and quantized in parallel: row r draws from its own
 * stream (seeded from the tensor's seed and r), so the values do not depend on
 * the number of threads. Multi-gigabyte shapes are made on the host that
 * benchmarks them, so this runs on all its cores. */
typedef struct fill_job {
    float *x;
    uint8_t *q;
    rg_dtype type;
    int64_t k, rows, row_bytes;
    float mean, std;
    uint64_t seed;
    atomic_int status; /* the first failure's rg_status */
} fill_job;

static void fill_rows(void *arg, int ith, int nth) {
    fill_job *j = arg;
    int64_t lo, hi;
    rg_split_range(j->rows, ith, nth, &lo, &hi);
    rg_err err = {0};
    for (int64_t r = lo; r < hi; r++) {
        uint64_t rng = j->seed ^ ((uint64_t)r * 0xD1B54A32D192ED03ULL);
        float *x = j->x + r * j->k;
        for (int64_t i = 0; i < j->k; i++) x[i] = j->mean + j->std * normal(&rng);
        if (rg_quantize_ref(j->type, x, j->q + r * j->row_bytes, j->k, &err)) {
            atomic_store(&j->status, err.status ? (int)err.status : (int)RG_E_INVALID);
            return;
        }
    }
}

/* Add a [rows][k] tensor of N(mean, std^2) values, quantized to type. */
static rg_status add_random(rg_gguf_writer *w, rg_threadpool *pool, const char *name, rg_dtype type, int64_t k,
                            int64_t rows, float mean, float std, uint64_t *rng, rg_err *err) {
    int64_t n = k * rows;
    int64_t bytes = rg_dtype_row_bytes(type, k);
    if (bytes < 0)
        return rg_fail(err, RG_E_INVALID, "%s: row of %lld is not whole blocks of %s", name, (long long)k,
                       rg_dtype_name(type));
    float *x = malloc((size_t)n * sizeof *x);
    void *q = malloc((size_t)(bytes * rows));
    rg_status s = RG_OK;
    if (!x || !q) s = rg_fail(err, RG_E_NOMEM, "out of memory for %s", name);
    if (!s) {
        fill_job j = {x, q, type, k, rows, bytes, mean, std, next_u64(rng), RG_OK};
        rg_threadpool_run(pool, fill_rows, &j);
        if (atomic_load(&j.status)) s = rg_fail(err, (rg_status)atomic_load(&j.status), "%s: cannot quantize to %s", name, rg_dtype_name(type));
    }
    int64_t ne[2] = {k, rows};
    if (!s) s = rg_gguf_add_tensor(w, name, type, rows > 1 ? 2 : 1, ne, q, err);
    free(x), free(q);
    return s;
}

static rg_status add_vocab(rg_gguf_writer *w, int64_t n_vocab, rg_err *err) {
    if (n_vocab < 259 + 1) return rg_fail(err, RG_E_INVALID, "vocabulary of %lld is below 260", (long long)n_vocab);
    char **texts = calloc((size_t)n_vocab, sizeof *texts);
    float *scores = malloc((size_t)n_vocab * sizeof *scores);
    int32_t *types = malloc((size_t)n_vocab * sizeof *types);
    rg_status s = (!texts || !scores || !types) ? RG_E_NOMEM : RG_OK;
    for (int64_t i = 0; !s && i < n_vocab; i++) {
        char buf[32];
        if (i == 0) snprintf(buf, sizeof buf, "<unk>"), types[i] = 2;
        else if (i == 1) snprintf(buf, sizeof buf, "<s>"), types[i] = 3;
        else if (i == 2) snprintf(buf, sizeof buf, "</s>"), types[i] = 3;
        else if (i < 259) snprintf(buf, sizeof buf, "<0x%02X>", (unsigned)(i - 3)), types[i] = 6;
        else snprintf(buf, sizeof buf, "\xe2\x96\x81tok%lld", (long long)i), types[i] = 1;
        scores[i] = i < 259 ? 0.0f : -(float)i;
        if (!(texts[i] = strdup(buf))) s = RG_E_NOMEM;
    }
    if (!s) s = rg_gguf_set_str(w, "tokenizer.ggml.model", "llama");
    if (!s) s = rg_gguf_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)texts, (uint64_t)n_vocab);
    if (!s) s = rg_gguf_set_arr(w, "tokenizer.ggml.scores", RG_GGUF_F32, scores, (uint64_t)n_vocab);
    if (!s) s = rg_gguf_set_arr(w, "tokenizer.ggml.token_type", RG_GGUF_I32, types, (uint64_t)n_vocab);
    if (!s) s = rg_gguf_set_u32(w, "tokenizer.ggml.bos_token_id", 1);
    if (!s) s = rg_gguf_set_u32(w, "tokenizer.ggml.eos_token_id", 2);
    if (!s) s = rg_gguf_set_u32(w, "tokenizer.ggml.unknown_token_id", 0);
    for (int64_t i = 0; texts && i < n_vocab; i++) free(texts[i]);
    free(texts), free(scores), free(types);
    return s ? rg_fail(err, s, "out of memory writing the vocabulary") : RG_OK;
}

rg_status rg_synth_write(const rg_synth_params *p, const char *path, rg_err *err) {
    const rg_synth_shape *sh = &p->shape;
    if (sh->n_layer < 1 || sh->n_embd < 1 || sh->n_head < 1 || sh->n_head_kv < 1 || sh->n_ff < 1 ||
        sh->n_embd % sh->n_head || sh->n_head % sh->n_head_kv)
        return rg_fail(err, RG_E_INVALID, "inconsistent shape (heads must divide n_embd, kv heads divide heads)");
    const char *arch = p->qkv_bias ? "qwen2" : "llama";
    rg_gguf_writer *w = rg_gguf_writer_new();
    if (!w) return rg_fail(err, RG_E_NOMEM, "out of memory");
    char key[96];
#define KEY(k) (snprintf(key, sizeof key, "%s.%s", arch, k), key)
    rg_status s = rg_gguf_set_str(w, "general.architecture", arch);
    if (!s) s = rg_gguf_set_str(w, "general.name", sh->name[0] ? sh->name : "synthetic");
    if (!s) s = rg_gguf_set_u32(w, KEY("block_count"), (uint32_t)sh->n_layer);
    if (!s) s = rg_gguf_set_u32(w, KEY("context_length"), (uint32_t)sh->n_ctx);
    if (!s) s = rg_gguf_set_u32(w, KEY("embedding_length"), (uint32_t)sh->n_embd);
    if (!s) s = rg_gguf_set_u32(w, KEY("feed_forward_length"), (uint32_t)sh->n_ff);
    if (!s) s = rg_gguf_set_u32(w, KEY("attention.head_count"), (uint32_t)sh->n_head);
    if (!s) s = rg_gguf_set_u32(w, KEY("attention.head_count_kv"), (uint32_t)sh->n_head_kv);
    if (!s) s = rg_gguf_set_f32(w, KEY("rope.freq_base"), (float)sh->rope_freq_base);
    if (!s) s = rg_gguf_set_f32(w, KEY("attention.layer_norm_rms_epsilon"), 1e-5f);
    if (!s && p->pos_encoding && strcmp(p->pos_encoding, "rope"))
        s = rg_gguf_set_str(w, "ridge.pos_encoding", p->pos_encoding);
#undef KEY
    if (s) s = rg_fail(err, s, "out of memory");
    if (!s) s = add_vocab(w, sh->n_vocab, err);
    rg_threadpool *pool = s ? NULL : rg_threadpool_create(0);
    if (!s && !pool) s = rg_fail(err, RG_E_NOMEM, "cannot start threads");

    uint64_t rng = p->seed * 0x2545F4914F6CDD1DULL + 1;
    int64_t d = sh->n_embd, hd = d / sh->n_head, n_kv = hd * sh->n_head_kv;
    rg_dtype t = p->type, te = p->embd_type ? p->embd_type : p->type;
    float sd = 1.0f / sqrtf((float)d), sff = 1.0f / sqrtf((float)sh->n_ff);
    if (!s) s = add_random(w, pool, "token_embd.weight", te, d, sh->n_vocab, 0, 1.0f, &rng, err);
    if (!s && !p->tied_output) s = add_random(w, pool, "output.weight", te, d, sh->n_vocab, 0, sd, &rng, err);
    if (!s) s = add_random(w, pool, "output_norm.weight", RG_F32, d, 1, 1, 0.1f, &rng, err);
    if (!s && p->pos_encoding && !strcmp(p->pos_encoding, "learned"))
        s = add_random(w, pool, "position_embd.weight", RG_F32, d, sh->n_ctx, 0, 0.1f, &rng, err);
    for (int64_t l = 0; !s && l < sh->n_layer; l++) {
        char name[96];
#define NAME(x) (snprintf(name, sizeof name, "blk.%lld." x, (long long)l), name)
        if ((s = add_random(w, pool, NAME("attn_norm.weight"), RG_F32, d, 1, 1, 0.1f, &rng, err)) ||
            (s = add_random(w, pool, NAME("ffn_norm.weight"), RG_F32, d, 1, 1, 0.1f, &rng, err)) ||
            (s = add_random(w, pool, NAME("attn_q.weight"), t, d, d, 0, sd, &rng, err)) ||
            (s = add_random(w, pool, NAME("attn_k.weight"), t, d, n_kv, 0, sd, &rng, err)) ||
            (s = add_random(w, pool, NAME("attn_v.weight"), t, d, n_kv, 0, sd, &rng, err)) ||
            (s = add_random(w, pool, NAME("attn_output.weight"), t, d, d, 0, sd, &rng, err)) ||
            (s = add_random(w, pool, NAME("ffn_gate.weight"), t, d, sh->n_ff, 0, sd, &rng, err)) ||
            (s = add_random(w, pool, NAME("ffn_up.weight"), t, d, sh->n_ff, 0, sd, &rng, err)) ||
            (s = add_random(w, pool, NAME("ffn_down.weight"), t, sh->n_ff, d, 0, sff, &rng, err)))
            break;
        if (p->qkv_bias && ((s = add_random(w, pool, NAME("attn_q.bias"), RG_F32, d, 1, 0, 0.1f, &rng, err)) ||
                            (s = add_random(w, pool, NAME("attn_k.bias"), RG_F32, n_kv, 1, 0, 0.1f, &rng, err)) ||
                            (s = add_random(w, pool, NAME("attn_v.bias"), RG_F32, n_kv, 1, 0, 0.1f, &rng, err))))
            break;
#undef NAME
        if (p->progress) p->progress((double)(l + 1) / (double)sh->n_layer, p->user);
    }
    if (pool) rg_threadpool_free(pool);
    if (!s) s = rg_gguf_write(w, path, 0, err);
    rg_gguf_writer_free(w);
    return s;
}
