/* ops_ref.c — the reference ops: one element at a time, double accumulators.
 * Layouts as in backend/cpu/ops.h: activations [n_tok][n] f32, weights
 * [n_out][k] in their GGUF dtype. Speed is not a goal; readability is. */
#include "backend/ref/ops_ref.h"

#include <math.h>
#include <stdlib.h>

#include "core/quant.h"

bool rg_ref_act_dtype(rg_dtype wtype, rg_dtype *act) {
    switch (wtype) {
    case RG_F32: *act = RG_F32; return true;
    case RG_F16: *act = RG_F16; return true;
    case RG_BF16: *act = RG_BF16; return true;
    case RG_Q4_0:
    case RG_Q4_1:
    case RG_Q5_0:
    case RG_Q5_1:
    case RG_Q8_0: *act = RG_Q8_0; return true;
    case RG_Q4_K:
    case RG_Q5_K:
    case RG_Q6_K: *act = RG_Q8_K; return true;
    default: return false;
    }
}

rg_status rg_ref_matmul(rg_dtype wtype, const void *w, int64_t k, int64_t n_out, const float *x, int64_t n_tok,
                        float *y, rg_err *err) {
    rg_dtype atype;
    if (!rg_ref_act_dtype(wtype, &atype))
        return rg_fail(err, RG_E_UNSUPPORTED, "matmul: no kernel for %s", rg_dtype_name(wtype));
    int64_t w_row = rg_dtype_row_bytes(wtype, k), a_row = rg_dtype_row_bytes(atype, k);
    if (w_row < 0 || a_row < 0)
        return rg_fail(err, RG_E_INVALID, "matmul: k=%lld is not a multiple of the %s block", (long long)k,
                       rg_dtype_name(wtype));
    float *wf = malloc((size_t)k * sizeof *wf), *af = malloc((size_t)k * sizeof *af);
    void *aq = malloc((size_t)a_row);
    rg_status s = (wf && af && aq) ? RG_OK : rg_fail(err, RG_E_NOMEM, "out of memory");
    for (int64_t t = 0; t < n_tok && !s; t++) {
        /* the activation row as the kernel sees it: quantized, then exact again */
        s = rg_quantize_ref(atype, x + t * k, aq, k, err);
        if (!s) s = rg_dequantize_ref(atype, aq, af, k, err);
        for (int64_t r = 0; r < n_out && !s; r++) {
            s = rg_dequantize_ref(wtype, (const char *)w + r * w_row, wf, k, err);
            double acc = 0;
            for (int64_t i = 0; i < k; i++)
                acc += (double)wf[i] * (double)af[i];
            y[t * n_out + r] = (float)acc;
        }
    }
    free(wf), free(af), free(aq);
    return s;
}

rg_status rg_ref_get_rows(rg_dtype wtype, const void *w, int64_t k, const int32_t *ids, int64_t n, float *out,
                          rg_err *err) {
    int64_t row = rg_dtype_row_bytes(wtype, k);
    if (row < 0) return rg_fail(err, RG_E_INVALID, "get_rows: bad row of %lld %s", (long long)k, rg_dtype_name(wtype));
    for (int64_t i = 0; i < n; i++) {
        rg_status s = rg_dequantize_ref(wtype, (const char *)w + ids[i] * row, out + i * k, k, err);
        if (s) return s;
    }
    return RG_OK;
}

void rg_ref_rmsnorm(const float *x, const float *weight, int64_t n, int64_t n_tok, float eps, float *out) {
    for (int64_t t = 0; t < n_tok; t++) {
        const float *xt = x + t * n;
        double ss = 0;
        for (int64_t i = 0; i < n; i++)
            ss += (double)xt[i] * xt[i];
        double scale = 1.0 / sqrt(ss / (double)n + eps);
        for (int64_t i = 0; i < n; i++)
            out[t * n + i] = (float)(xt[i] * scale * weight[i]);
    }
}

void rg_ref_rope(float *x, const int32_t *pos, int64_t n_tok, int64_t n_head, int64_t head_dim,
                 const rg_rope_params *p) {
    int64_t half = p->n_rot / 2;
    for (int64_t t = 0; t < n_tok; t++)
        for (int64_t h = 0; h < n_head; h++) {
            float *v = x + (t * n_head + h) * head_dim;
            for (int64_t i = 0; i < half; i++) {
                double theta = p->freq_scale * pos[t] * pow(p->freq_base, -2.0 * (double)i / (double)p->n_rot);
                if (p->freq_factors) theta /= p->freq_factors[i];
                int64_t a = p->neox ? i : 2 * i, b = p->neox ? i + half : 2 * i + 1;
                double c = cos(theta), s = sin(theta), x0 = v[a], x1 = v[b];
                v[a] = (float)(x0 * c - x1 * s);
                v[b] = (float)(x0 * s + x1 * c);
            }
        }
}

void rg_ref_swiglu(const float *gate, const float *up, int64_t n, float *out) {
    for (int64_t i = 0; i < n; i++) {
        double g = gate[i];
        out[i] = (float)(g / (1.0 + exp(-g)) * up[i]);
    }
}

void rg_ref_add(float *y, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        y[i] += x[i];
}

void rg_ref_softmax(float *x, int64_t n, int64_t n_rows) {
    for (int64_t r = 0; r < n_rows; r++) {
        float *v = x + r * n;
        double mx = -INFINITY, sum = 0;
        for (int64_t i = 0; i < n; i++)
            mx = v[i] > mx ? v[i] : mx;
        for (int64_t i = 0; i < n; i++)
            sum += exp((double)v[i] - mx);
        for (int64_t i = 0; i < n; i++)
            v[i] = (float)(exp((double)v[i] - mx) / sum);
    }
}
