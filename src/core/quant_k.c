/* quant_k.c — the 256-element super-block formats Q4_K, Q5_K, Q6_K, Q8_K.
 *
 * Q4_K, Q5_K: 8 sub-blocks of 32, each with a 6-bit scale sc[j] and 6-bit min
 *   m[j] under f16 super-scales: x = (d*sc[j])*q - dmin*m[j], q in [0, 15]
 *   (Q5_K: [0, 31], bit j of qh[l] is the fifth bit of element 32j + l).
 *   Sub-blocks 2p and 2p+1 share qs[32p .. 32p+31]: low nibbles, then high.
 *   scales[12] packs the 16 six-bit numbers: for j < 4, sc[j] and m[j] are the
 *   low 6 bits of bytes j and j+4; for j >= 4, byte j+4 holds the low 4 bits of
 *   sc[j] (low nibble) and m[j] (high nibble), and their top 2 bits sit in the
 *   top 2 bits of bytes j-4 (sc) and j (m).
 * Q6_K: 16 sub-blocks of 16 with int8 scales: x = (d*sc[j])*(q - 32), q 6-bit.
 *   Each 128-element half owns 64 bytes of ql and 32 of qh: element l + 32k
 *   (l < 32, k < 4) has its low 4 bits in nibble k/2 of ql[l + 32*(k%2)] and
 *   its top 2 bits at bits 2k, 2k+1 of qh[l].
 * Q8_K: x = d*q with a float d, plus bsums, the sums of each 16 q's, which
 *   the K-quant dot products use to apply the mins.
 *
 * Quantizing fits each sub-block's scale (and min) for least weighted squared
 * error: starting from the max-based scale it tries a sweep of nearby inverse
 * scales, re-rounds the codes for each, and refits scale (and min) to those
 * codes by least squares, keeping the best (ggml's make_qkx2_quants and
 * make_qx_quants scheme, whose choices are followed so the bytes match
 * llama-quantize's). The sub-block scales are then quantized against one f16
 * super-scale and the codes re-rounded against the scales actually stored. */
#include <math.h>
#include <string.h>

#include "core/fp16.h"
#include "core/quant.h"

/* Every product and sum rounds on its own, as in the build of llama-quantize
 * that made tests/data/refdata: in GNU C mode GCC would fuse the sums of the
 * scale fits into fmas, and 1.5% of its Q6_K blocks then came out different. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

/* v rounded half to even (ggml's nearest_int), clamped to [lo, hi]; clamping
 * first keeps huge and NaN inputs defined. */
static int nearest(float v, int lo, int hi) { return (int)lrintf(fminf(fmaxf(v, (float)lo), (float)hi)); }

/* ---- the 6-bit scale/min packing of Q4_K and Q5_K ---- */

static void unpack_scale_min(const uint8_t s[12], int j, int *sc, int *m) {
    int i = j & 3; /* bytes i, 4 + i, 8 + i serve sub-blocks i and 4 + i */
    if (j < 4) {
        *sc = s[i] & 63;
        *m = s[4 + i] & 63;
    } else {
        *sc = (s[8 + i] & 15) | (s[i] >> 6) << 4;
        *m = (s[8 + i] >> 4) | (s[4 + i] >> 6) << 4;
    }
}

/* s must start zeroed: sub-blocks i and 4 + i share bytes. */
static void pack_scale_min(uint8_t s[12], int j, int sc, int m) {
    int i = j & 3;
    if (j < 4) {
        s[i] |= (uint8_t)sc;
        s[4 + i] |= (uint8_t)m;
    } else {
        s[8 + i] |= (uint8_t)((sc & 15) | (m & 15) << 4);
        s[i] |= (uint8_t)((sc >> 4) << 6);
        s[4 + i] |= (uint8_t)((m >> 4) << 6);
    }
}

/* Fit the 32 elements of a sub-block as x[i] ≈ scale*L[i] - mn, L in
 * [0, nmax], mn >= 0, minimizing sum w[i]*err^2. The inverse scales tried are
 * (nmax + rmin + 0.1*k)/(max - min) for k = 0..nstep (rmin and nstep are
 * ggml's tuned values per format); for each rounding, scale and min are the
 * weighted least squares solution, the min pinned to 0 when it would come out
 * positive so that zero stays representable. Returns scale; mn in *mn. */
static float fit_scale_min(const float *x, const float *w, int nmax, float rmin, int nstep, uint8_t L[32], float *mn) {
    enum { n = 32 };
    float min = x[0], max = x[0], sum_w = 0, sum_x = 0;
    for (int i = 0; i < n; i++) {
        min = fminf(min, x[i]), max = fmaxf(max, x[i]);
        sum_w += w[i];
        sum_x += w[i] * x[i];
    }
    if (min > 0) min = 0;
    if (max == min) {
        memset(L, 0, n);
        *mn = -min;
        return 0;
    }
    float iscale = (float)nmax / (max - min), scale = 1 / iscale, best = 0;
    for (int i = 0; i < n; i++) {
        L[i] = (uint8_t)nearest(iscale * (x[i] - min), 0, nmax);
        float diff = scale * L[i] + min - x[i];
        best += w[i] * (diff * diff);
    }
    for (int k = 0; k <= nstep; k++) {
        uint8_t La[n];
        iscale = (rmin + 0.1f * (float)k + (float)nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; i++) {
            La[i] = (uint8_t)nearest(iscale * (x[i] - min), 0, nmax);
            sum_l += w[i] * La[i];
            sum_l2 += w[i] * La[i] * La[i];
            sum_xl += w[i] * La[i] * x[i];
        }
        float det = sum_w * sum_l2 - sum_l * sum_l;
        if (!(det > 0)) continue;
        float s = (sum_w * sum_xl - sum_x * sum_l) / det, m = (sum_l2 * sum_x - sum_l * sum_xl) / det;
        if (m > 0) m = 0, s = sum_xl / sum_l2;
        float err = 0;
        for (int i = 0; i < n; i++) {
            float diff = s * La[i] + m - x[i];
            err += w[i] * (diff * diff);
        }
        if (err < best) {
            memcpy(L, La, n);
            best = err, scale = s, min = m;
        }
    }
    *mn = -min;
    return scale;
}

/* Codes round(iscale*x) in [-nmax, nmax - 1], stored offset by nmax in L when L
 * is not NULL; returns the sums sum(w*x*l) and sum(w*l*l) with w = x^2. */
static void round_symmetric(const float *x, int n, int nmax, float iscale, uint8_t *L, float *sum_xl, float *sum_l2) {
    *sum_xl = *sum_l2 = 0;
    for (int i = 0; i < n; i++) {
        int l = nearest(iscale * x[i], -nmax, nmax - 1);
        float w = x[i] * x[i];
        *sum_xl += w * x[i] * l;
        *sum_l2 += w * l * l;
        if (L) L[i] = (uint8_t)(l + nmax);
    }
}

/* Fit x[i] ≈ scale*(L[i] - nmax) minimizing sum x[i]^2 * err^2 (the large
 * elements matter most). For a fixed rounding the best scale is sum(w*x*l) /
 * sum(w*l*l), which leaves the error sum(w*x^2) - sum(w*x*l)^2 / sum(w*l*l), so
 * the rounding that maximizes sum(w*x*l)^2 / sum(w*l*l) wins. Tried: inverse
 * scales -(nmax + 0.1*k)/max for k = -9..9, the plain one (k = 0) first. */
static float fit_scale(const float *x, int n, int nmax, uint8_t *L) {
    float max = rg_quant_signed_absmax(x, n), sum_xl, sum_l2;
    if (fabsf(max) < 1e-15f) {
        memset(L, 0, (size_t)n);
        return 0;
    }
    round_symmetric(x, n, nmax, -(float)nmax / max, L, &sum_xl, &sum_l2);
    float scale = sum_l2 > 0 ? sum_xl / sum_l2 : 0, best = scale * sum_xl;
    for (int k = -9; k <= 9; k++) {
        if (k == 0) continue;
        float iscale = -((float)nmax + 0.1f * (float)k) / max;
        round_symmetric(x, n, nmax, iscale, NULL, &sum_xl, &sum_l2);
        if (sum_l2 > 0 && sum_xl * sum_xl > best * sum_l2) {
            round_symmetric(x, n, nmax, iscale, L, &sum_xl, &sum_l2);
            scale = sum_xl / sum_l2, best = scale * sum_xl;
        }
    }
    return scale;
}

/* ---- Q4_K and Q5_K ---- */

/* The shared half of Q4_K and Q5_K quantization: fit the 8 sub-blocks, store
 * their scales and mins as 6-bit fractions of the f16 super-scales d and dmin
 * (d = largest scale / 63), then re-round every element against the stored
 * values. Codes in [0, nmax] go to L. */
static void quantize_scale_min_block(const float *x, int nmax, float rmin, int nstep, uint16_t *d, uint16_t *dmin,
                                     uint8_t scales[12], uint8_t L[256]) {
    float sc[8], mn[8], max_sc = 0, max_mn = 0;
    for (int j = 0; j < 8; j++) {
        const float *xs = x + 32 * j;
        /* Large elements weigh more (they dominate dot products), with the
         * sub-block's RMS as a floor so the small ones still count. */
        float sum_x2 = 0, w[32];
        for (int i = 0; i < 32; i++)
            sum_x2 += xs[i] * xs[i];
        float rms = sqrtf(sum_x2 / 32);
        for (int i = 0; i < 32; i++)
            w[i] = rms + fabsf(xs[i]);
        sc[j] = fit_scale_min(xs, w, nmax, rmin, nstep, L + 32 * j, &mn[j]);
        if (sc[j] > max_sc) max_sc = sc[j];
        if (mn[j] > max_mn) max_mn = mn[j];
    }
    float inv_sc = max_sc > 0 ? 63 / max_sc : 0, inv_mn = max_mn > 0 ? 63 / max_mn : 0;
    memset(scales, 0, 12);
    for (int j = 0; j < 8; j++)
        pack_scale_min(scales, j, nearest(inv_sc * sc[j], 0, 63), nearest(inv_mn * mn[j], 0, 63));
    *d = rg_f32_to_f16(max_sc / 63);
    *dmin = rg_f32_to_f16(max_mn / 63);
    for (int j = 0; j < 8; j++) {
        int isc, imn;
        unpack_scale_min(scales, j, &isc, &imn);
        float ds = rg_f16_to_f32(*d) * (float)isc, ms = rg_f16_to_f32(*dmin) * (float)imn;
        /* With a zero scale the codes are irrelevant; the fit's stay, as in
         * ggml, so files match byte for byte. */
        if (ds == 0) continue;
        for (int i = 0; i < 32; i++)
            L[32 * j + i] = (uint8_t)nearest((x[32 * j + i] + ms) / ds, 0, nmax);
    }
}

/* Element e's low 4 bits: sub-block pairs share 32 bytes, low nibble first. */
static int nibble_k(const uint8_t qs[128], int e) { return qs[32 * (e / 64) + e % 32] >> (4 * (e / 32 % 2)) & 15; }

static void pack_nibbles_k(const uint8_t L[256], uint8_t qs[128]) {
    for (int p = 0; p < 4; p++)
        for (int l = 0; l < 32; l++)
            qs[32 * p + l] = (uint8_t)((L[64 * p + l] & 15) | (L[64 * p + 32 + l] & 15) << 4);
}

void rg_dequantize_q4_K(const void *src, float *dst, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, dst += 256) {
        rg_block_q4_K b;
        memcpy(&b, (const char *)src + i * sizeof b, sizeof b);
        float d = rg_f16_to_f32(b.d), dmin = rg_f16_to_f32(b.dmin);
        for (int j = 0; j < 8; j++) {
            int sc, m;
            unpack_scale_min(b.scales, j, &sc, &m);
            float ds = d * (float)sc, ms = dmin * (float)m;
            for (int e = 32 * j; e < 32 * j + 32; e++)
                dst[e] = ds * (float)nibble_k(b.qs, e) - ms;
        }
    }
}

void rg_quantize_q4_K(const float *src, void *dst, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, src += 256) {
        rg_block_q4_K b;
        uint8_t L[256];
        quantize_scale_min_block(src, 15, -1.0f, 20, &b.d, &b.dmin, b.scales, L);
        pack_nibbles_k(L, b.qs);
        memcpy((char *)dst + i * sizeof b, &b, sizeof b);
    }
}

void rg_dequantize_q5_K(const void *src, float *dst, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, dst += 256) {
        rg_block_q5_K b;
        memcpy(&b, (const char *)src + i * sizeof b, sizeof b);
        float d = rg_f16_to_f32(b.d), dmin = rg_f16_to_f32(b.dmin);
        for (int j = 0; j < 8; j++) {
            int sc, m;
            unpack_scale_min(b.scales, j, &sc, &m);
            float ds = d * (float)sc, ms = dmin * (float)m;
            for (int e = 32 * j; e < 32 * j + 32; e++) {
                int q = nibble_k(b.qs, e) | (b.qh[e % 32] >> j & 1) << 4;
                dst[e] = ds * (float)q - ms;
            }
        }
    }
}

void rg_quantize_q5_K(const float *src, void *dst, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, src += 256) {
        rg_block_q5_K b;
        uint8_t L[256];
        quantize_scale_min_block(src, 31, -0.5f, 15, &b.d, &b.dmin, b.scales, L);
        pack_nibbles_k(L, b.qs);
        memset(b.qh, 0, sizeof b.qh);
        for (int e = 0; e < 256; e++)
            b.qh[e % 32] |= (uint8_t)((L[e] >> 4) << (e / 32));
        memcpy((char *)dst + i * sizeof b, &b, sizeof b);
    }
}

/* ---- Q6_K ---- */

/* Element e's 6-bit code (see the layout at the top). */
static int code_q6(const rg_block_q6_K *b, int e) {
    int h = e / 128, k = e % 128 / 32, l = e % 32;
    int lo = b->ql[64 * h + 32 * (k % 2) + l] >> (4 * (k / 2)) & 15;
    int hi = b->qh[32 * h + l] >> (2 * k) & 3;
    return lo | hi << 4;
}

void rg_dequantize_q6_K(const void *src, float *dst, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, dst += 256) {
        rg_block_q6_K b;
        memcpy(&b, (const char *)src + i * sizeof b, sizeof b);
        float d = rg_f16_to_f32(b.d);
        for (int e = 0; e < 256; e++)
            dst[e] = d * (float)b.scales[e / 16] * (float)(code_q6(&b, e) - 32);
    }
}

void rg_quantize_q6_K(const float *src, void *dst, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, src += 256) {
        rg_block_q6_K b;
        uint8_t L[256];
        float sc[16], max_sc = 0;
        for (int j = 0; j < 16; j++) {
            sc[j] = fit_scale(src + 16 * j, 16, 32, L + 16 * j);
            if (fabsf(sc[j]) > fabsf(max_sc)) max_sc = sc[j];
        }
        memset(&b, 0, sizeof b);
        if (fabsf(max_sc) >= 1e-15f) {
            /* As with the elements, the signed largest scale maps to -128. */
            float iscale = -128 / max_sc;
            b.d = rg_f32_to_f16(1 / iscale);
            for (int j = 0; j < 16; j++)
                b.scales[j] = (int8_t)nearest(iscale * sc[j], -128, 127);
            for (int j = 0; j < 16; j++) {
                float ds = rg_f16_to_f32(b.d) * (float)b.scales[j];
                if (ds == 0) continue; /* codes irrelevant; keep the fit's, as ggml */
                for (int e = 16 * j; e < 16 * j + 16; e++)
                    L[e] = (uint8_t)(32 + nearest(src[e] / ds, -32, 31));
            }
            for (int e = 0; e < 256; e++) {
                int h = e / 128, k = e % 128 / 32, l = e % 32;
                b.ql[64 * h + 32 * (k % 2) + l] |= (uint8_t)((L[e] & 15) << (4 * (k / 2)));
                b.qh[32 * h + l] |= (uint8_t)((L[e] >> 4) << (2 * k));
            }
        }
        memcpy((char *)dst + i * sizeof b, &b, sizeof b);
    }
}

/* ---- Q8_K ---- */

void rg_dequantize_q8_K(const void *src, float *dst, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, dst += 256) {
        rg_block_q8_K b;
        memcpy(&b, (const char *)src + i * sizeof b, sizeof b);
        for (int e = 0; e < 256; e++)
            dst[e] = b.d * (float)b.qs[e];
    }
}

/* Unlike Q8_0 the scale stays a float and codes round half to even: this is
 * the activation side of the K-quant dot products, so it must match ggml's
 * quantize_row_q8_K (and backend/cpu/quantize_act.c) exactly. */
void rg_quantize_q8_K(const float *src, void *dst, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, src += 256) {
        rg_block_q8_K b;
        float max = rg_quant_signed_absmax(src, 256);
        if (max == 0) {
            b.d = 0;
            memset(b.qs, 0, sizeof b.qs);
        } else {
            float iscale = -127 / max;
            for (int e = 0; e < 256; e++)
                b.qs[e] = (int8_t)nearest(iscale * src[e], -128, 127);
            b.d = 1 / iscale;
        }
        for (int j = 0; j < 16; j++) {
            int sum = 0;
            for (int e = 16 * j; e < 16 * j + 16; e++)
                sum += b.qs[e];
            b.bsums[j] = (int16_t)sum;
        }
        memcpy((char *)dst + i * sizeof b, &b, sizeof b);
    }
}
