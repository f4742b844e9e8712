/* ref_forward.c — the plain reference forward pass (see ref_forward.h). */
#include "ref_forward.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/quant.h"

static double *deq(const rg_weight *w) {
    int64_t n = w->k * w->n_out;
    float *f = malloc((size_t)n * sizeof *f);
    double *d = malloc((size_t)n * sizeof *d);
    rg_dequantize_ref(w->type, w->data, f, n, NULL);
    for (int64_t i = 0; i < n; i++) d[i] = f[i];
    free(f);
    return d;
}

/* The activation x as a matmul with weights of type wtype sees it, when the
 * reference is asked to model that rounding: GGUF's quantized formats are meant
 * to be multiplied against 8-bit activations (Q8_0 blocks of 32 for the legacy
 * types, Q8_K blocks of 256 for the k-quants) and f16/bf16 weights against
 * activations rounded to the same type. Without it the reference is the exact
 * product of the dequantized weights. */
static void round_activation(rg_dtype wtype, bool model_rounding, const double *x, int64_t k, double *out) {
    rg_dtype act = RG_F32;
    if (model_rounding) switch (wtype) {
        case RG_F16: act = RG_F16; break;
        case RG_BF16: act = RG_BF16; break;
        case RG_Q4_0: case RG_Q4_1: case RG_Q5_0: case RG_Q5_1: case RG_Q8_0: act = RG_Q8_0; break;
        case RG_Q4_K: case RG_Q5_K: case RG_Q6_K: case RG_Q8_K: act = RG_Q8_K; break;
        default: break;
        }
    float *f = malloc((size_t)k * sizeof *f);
    for (int64_t i = 0; i < k; i++) f[i] = (float)x[i];
    if (act != RG_F32) {
        void *q = malloc(rg_dtype_row_bytes(act, k));
        rg_quantize_ref(act, f, q, k, NULL);
        rg_dequantize_ref(act, q, f, k, NULL);
        free(q);
    }
    for (int64_t i = 0; i < k; i++) out[i] = model_rounding ? f[i] : x[i];
    free(f);
}

/* y[r] = sum_k W[r][k] x[k], x rounded as the kernels for w's type round it */
static void mv_w(const double *w, const rg_weight *wt, bool model_rounding, int64_t k, int64_t n_out,
                 const double *x, double *y) {
    double *xr = malloc((size_t)k * sizeof *xr);
    round_activation(wt->type, model_rounding, x, k, xr);
    for (int64_t r = 0; r < n_out; r++) {
        double s = 0;
        for (int64_t i = 0; i < k; i++) s += w[r * k + i] * xr[i];
        y[r] = s;
    }
    free(xr);
}

static void rmsnorm(const double *x, const float *w, int64_t n, double eps, double *out) {
    double ss = 0;
    for (int64_t i = 0; i < n; i++) ss += x[i] * x[i];
    double scale = 1.0 / sqrt(ss / (double)n + eps);
    for (int64_t i = 0; i < n; i++) out[i] = x[i] * scale * w[i];
}

static void rope(double *x, int64_t n_head, int64_t hd, int64_t n_rot, int pos, double base, double freq_scale,
                 const float *factors, bool neox) {
    for (int64_t h = 0; h < n_head; h++) {
        double *v = x + h * hd;
        for (int64_t i = 0; i < n_rot / 2; i++) {
            double theta = freq_scale * pos * pow(base, -2.0 * (double)i / (double)n_rot);
            if (factors) theta /= factors[i];
            int64_t a = neox ? i : 2 * i, b = neox ? i + n_rot / 2 : 2 * i + 1;
            double c = cos(theta), s = sin(theta), x0 = v[a], x1 = v[b];
            v[a] = x0 * c - x1 * s;
            v[b] = x0 * s + x1 * c;
        }
    }
}

int rg_test_ref_forward(const rg_model *m, const int32_t *tokens, int64_t n, bool model_rounding, float *out) {
    const rg_hparams *hp = &m->hp;
    int64_t d = hp->n_embd, hd = hp->head_dim, nq = hp->n_head * hd, nkv = hp->n_head_kv * hd, ff = hp->n_ff;
    /* K/V for every layer and position: [n_layer][n][nkv]. */
    size_t kv_n = (size_t)(hp->n_layer * n * nkv);
    double *kc_all = calloc(kv_n, sizeof *kc_all), *vc_all = calloc(kv_n, sizeof *vc_all);
    double *x = malloc(d * sizeof *x), *xb = malloc((nq > d ? nq : d) * sizeof *xb), *q = malloc(nq * sizeof *q);
    double *att = malloc(nq * sizeof *att), *tmp = malloc((ff > d ? ff : d) * sizeof *tmp);
    double *g = malloc(ff * sizeof *g), *u = malloc(ff * sizeof *u), *sc = malloc(n * sizeof *sc);
    double *logit = malloc(hp->n_vocab * sizeof *logit);
    double *emb = deq(&m->tok_embd), *outw = deq(&m->output);
    double *pe = m->pos_encoding == RG_POS_LEARNED ? deq(&m->pos_embd) : NULL;
    double **W = malloc((size_t)hp->n_layer * 7 * sizeof *W);
    for (int64_t l = 0; l < hp->n_layer; l++) {
        const rg_layer *L = &m->layers[l];
        const rg_weight *ws[7] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
        for (int j = 0; j < 7; j++) W[l * 7 + j] = deq(ws[j]);
    }
    double slopes[256];
    int64_t n2 = 1;
    while (n2 * 2 <= hp->n_head) n2 *= 2;
    for (int64_t h = 0; h < hp->n_head && h < 256; h++)
        slopes[h] = h < n2 ? pow(2.0, -8.0 * (double)(h + 1) / (double)n2)
                           : pow(2.0, -4.0 * (double)(2 * (h - n2) + 1) / (double)n2);
    double freq_scale = hp->rope_scaling == RG_ROPE_SCALING_LINEAR ? 1.0 / hp->rope_scale_factor : 1.0;

    for (int64_t t = 0; t < n; t++) {
        for (int64_t i = 0; i < d; i++) x[i] = emb[(int64_t)tokens[t] * d + i];
        if (m->pos_encoding == RG_POS_SINUSOIDAL)
            for (int64_t i = 0; i < d / 2; i++) {
                double a = (double)t / pow(10000.0, 2.0 * (double)i / (double)d);
                x[2 * i] += sin(a), x[2 * i + 1] += cos(a);
            }
        if (pe)
            for (int64_t i = 0; i < d; i++) x[i] += pe[t * d + i];
        for (int64_t l = 0; l < hp->n_layer; l++) {
            const rg_layer *L = &m->layers[l];
            double **w = W + l * 7;
            double *kc = kc_all + l * n * nkv, *vc = vc_all + l * n * nkv;
            rmsnorm(x, L->attn_norm, d, hp->rms_eps, xb);
            mv_w(w[0], &L->wq, model_rounding, d, nq, xb, q);
            mv_w(w[1], &L->wk, model_rounding, d, nkv, xb, kc + t * nkv);
            mv_w(w[2], &L->wv, model_rounding, d, nkv, xb, vc + t * nkv);
            for (int64_t i = 0; L->bq && i < nq; i++) q[i] += L->bq[i];
            for (int64_t i = 0; L->bk && i < nkv; i++) kc[t * nkv + i] += L->bk[i];
            for (int64_t i = 0; L->bv && i < nkv; i++) vc[t * nkv + i] += L->bv[i];
            if (m->pos_encoding == RG_POS_ROPE) {
                rope(q, hp->n_head, hd, hp->n_rot, (int)t, hp->rope_freq_base, freq_scale, m->rope_freq_factors,
                     hp->rope_type == RG_ROPE_NEOX);
                rope(kc + t * nkv, hp->n_head_kv, hd, hp->n_rot, (int)t, hp->rope_freq_base, freq_scale,
                     m->rope_freq_factors, hp->rope_type == RG_ROPE_NEOX);
            }
            for (int64_t h = 0; h < hp->n_head; h++) {
                int64_t kvh = h / (hp->n_head / hp->n_head_kv);
                double mx = -INFINITY, sum = 0;
                for (int64_t j = 0; j <= t; j++) {
                    double s = 0;
                    for (int64_t i = 0; i < hd; i++) s += q[h * hd + i] * kc[j * nkv + kvh * hd + i];
                    s /= sqrt((double)hd);
                    if (m->pos_encoding == RG_POS_ALIBI) s += slopes[h] * (double)(j - t);
                    sc[j] = s;
                    if (s > mx) mx = s;
                }
                for (int64_t j = 0; j <= t; j++) sum += (sc[j] = exp(sc[j] - mx));
                for (int64_t i = 0; i < hd; i++) {
                    double a = 0;
                    for (int64_t j = 0; j <= t; j++) a += sc[j] / sum * vc[j * nkv + kvh * hd + i];
                    att[h * hd + i] = a;
                }
            }
            mv_w(w[3], &L->wo, model_rounding, nq, d, att, tmp);
            for (int64_t i = 0; i < d; i++) x[i] += tmp[i];
            rmsnorm(x, L->ffn_norm, d, hp->rms_eps, xb);
            mv_w(w[4], &L->w_gate, model_rounding, d, ff, xb, g);
            mv_w(w[5], &L->w_up, model_rounding, d, ff, xb, u);
            for (int64_t i = 0; i < ff; i++) g[i] = g[i] / (1.0 + exp(-g[i])) * u[i];
            mv_w(w[6], &L->w_down, model_rounding, ff, d, g, tmp);
            for (int64_t i = 0; i < d; i++) x[i] += tmp[i];
        }
        rmsnorm(x, m->output_norm, d, hp->rms_eps, xb);
        mv_w(outw, &m->output, model_rounding, d, hp->n_vocab, xb, logit);
        for (int64_t i = 0; i < hp->n_vocab; i++) out[t * hp->n_vocab + i] = (float)logit[i];
    }
    for (int64_t i = 0; i < hp->n_layer * 7; i++) free(W[i]);
    free(W), free(emb), free(outw), free(pe);
    free(kc_all), free(vc_all), free(x), free(xb), free(q), free(att), free(tmp), free(g), free(u), free(sc), free(logit);
    return 0;
}
