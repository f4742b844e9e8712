/* profile_svg.c — the roofline plot, hand-written SVG (no dependencies; opens
 * in any browser). Log-log: x = arithmetic intensity (FLOP/byte), y = GFLOP/s.
 * Ceilings: min(f32 peak, memory bandwidth × x) solid, the int8 peak, and each
 * cache level's bandwidth as a dashed slope; one point per op kind and phase of
 * each series (circle = decode, square = prefill), labelled with the kind. Ops
 * without FLOPs (embedding lookup, KV store) have no place on a FLOP axis and
 * are listed under the plot instead. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "perf/profile.h"

enum { W = 1000, H = 680, ML = 80, MR = 250, MT = 56, MB = 96 };

typedef struct axes {
    double lx0, lx1, ly0, ly1; /* log10 ranges */
} axes;

static double px(const axes *a, double x) { return ML + (log10(x) - a->lx0) / (a->lx1 - a->lx0) * (W - ML - MR); }
static double py(const axes *a, double y) { return H - MB - (log10(y) - a->ly0) / (a->ly1 - a->ly0) * (H - MT - MB); }

static void put_text(FILE *f, const char *s) {
    for (; *s; s++) {
        if (*s == '<')
            fputs("&lt;", f);
        else if (*s == '>')
            fputs("&gt;", f);
        else if (*s == '&')
            fputs("&amp;", f);
        else if (*s == '"')
            fputs("&quot;", f);
        else
            fputc(*s, f);
    }
}

static void grow(double v, double *lo, double *hi) {
    if (!(v > 0) || !isfinite(v)) return;
    if (v < *lo) *lo = v;
    if (v > *hi) *hi = v;
}

/* The segment y = bw * x clipped to the plot box and to y <= cap. */
static void slope(FILE *f, const axes *a, double bw, double cap, const char *style) {
    double x0 = pow(10, a->lx0), x1 = fmin(pow(10, a->lx1), cap / bw);
    double ymin = pow(10, a->ly0);
    if (bw * x0 < ymin) x0 = ymin / bw;
    if (x1 <= x0) return;
    fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" %s/>\n", px(a, x0), py(a, bw * x0), px(a, x1),
            py(a, bw * x1), style);
}

/* Greedy label placement: the first vertical offset whose box overlaps no
 * label placed before (boxes estimated at 6.5 px per character). */
typedef struct box {
    double x0, y0, x1, y1;
} box;
enum { MAX_BOXES = 256 };

static double place_label(box *boxes, int *n, double x, double y, size_t len) {
    static const double offsets[] = {0, 12, -12, 24, -24, 36, -36, 48};
    double w = 6.5 * (double)len;
    for (size_t o = 0; o < sizeof offsets / sizeof *offsets; o++) {
        box b = {x, y + offsets[o] - 10, x + w, y + offsets[o] + 2};
        bool clash = false;
        for (int i = 0; i < *n && !clash; i++)
            clash = b.x0 < boxes[i].x1 && boxes[i].x0 < b.x1 && b.y0 < boxes[i].y1 && boxes[i].y0 < b.y1;
        if (!clash || o + 1 == sizeof offsets / sizeof *offsets) {
            if (*n < MAX_BOXES) boxes[(*n)++] = b;
            return y + offsets[o];
        }
    }
    return y;
}

static const char *palette[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"};

rg_status rg_profile_write_svg(const rg_profile *const *profiles, const char *const *labels, int n,
                               const rg_roofline *roof, int n_threads, const char *title, const char *path,
                               rg_err *err) {
    rg_roofs roofs = rg_roofs_from_roofline(roof, n_threads);
    int tier = roofs.tier;
    double f32 = roof->f32_gflops[tier], int8 = roof->int8_gops[tier], bw = roofs.mem_gbs;
    double top = fmax(f32, int8);
    /* ranges: every point and every ceiling's ridge, padded to whole decades */
    double xlo = 1e30, xhi = 0, ylo = 1e30, yhi = 0;
    grow(f32 / bw, &xlo, &xhi);
    grow(top, &ylo, &yhi);
    for (int c = 0; c < roof->n_cache; c++)
        grow(f32 / roof->cache[c].read_gbs[tier], &xlo, &xhi);
    for (int i = 0; i < n; i++)
        for (int ph = 0; ph < RG_PHASE_COUNT; ph++)
            for (int k = 0; k < RG_OP_COUNT; k++) {
                const rg_profile_stat *s = &profiles[i]->by_kind[ph][k];
                if (!s->calls || s->cost.flops <= 0) continue;
                rg_roof_eval v = rg_profile_evaluate(s, &roofs);
                grow(v.intensity, &xlo, &xhi);
                grow(v.gflops, &ylo, &yhi);
            }
    axes a = {floor(log10(xlo)) - (log10(xlo) - floor(log10(xlo)) < 0.3), ceil(log10(xhi * 3)),
              floor(log10(ylo)) - (log10(ylo) - floor(log10(ylo)) < 0.3), ceil(log10(yhi * 2))};
    if (a.lx1 - a.lx0 < 2) a.lx1 = a.lx0 + 2;
    if (a.ly1 - a.ly0 < 2) a.ly0 = a.ly1 - 2;
    /* low enough that every bandwidth slope enters at the left edge, where its label goes */
    double y_left = floor(log10(bw * pow(10, a.lx0)));
    if (y_left < a.ly0) a.ly0 = y_left;

    FILE *f = fopen(path, "w");
    if (!f) return rg_fail(err, RG_E_IO, "cannot write %s", path);
    fprintf(f,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
            "font-family=\"Helvetica, Arial, sans-serif\" font-size=\"12\">\n"
            "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
            W, H, W, H);
    fprintf(f, "<text x=\"%d\" y=\"26\" font-size=\"16\" font-weight=\"bold\">", ML);
    put_text(f, title);
    fprintf(f, "</text>\n<text x=\"%d\" y=\"44\" fill=\"#555\">", ML);
    fprintf(f, "%s, %d thread%s; ceilings measured by ridge roofline %s", roof->cpu, n_threads,
            n_threads == 1 ? "" : "s", roof->measured_at);
    fprintf(f, "</text>\n");
    /* grid and decade ticks */
    fprintf(f, "<g id=\"axes\" stroke=\"#ddd\">\n");
    for (int d = (int)a.lx0; d <= (int)a.lx1; d++)
        fprintf(f, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\"/>\n", px(&a, pow(10, d)), MT, px(&a, pow(10, d)),
                H - MB);
    for (int d = (int)a.ly0; d <= (int)a.ly1; d++)
        fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\"/>\n", ML, py(&a, pow(10, d)), W - MR,
                py(&a, pow(10, d)));
    fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#444\"/>\n</g>\n", ML, MT,
            W - ML - MR, H - MT - MB);
    for (int d = (int)a.lx0; d <= (int)a.lx1; d++)
        fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%g</text>\n", px(&a, pow(10, d)), H - MB + 16,
                pow(10, d));
    for (int d = (int)a.ly0; d <= (int)a.ly1; d++)
        fprintf(f, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n", ML - 6, py(&a, pow(10, d)) + 4,
                pow(10, d));
    fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">arithmetic intensity (FLOP/byte)</text>\n",
            (ML + W - MR) / 2, H - MB + 36);
    fprintf(f, "<text x=\"18\" y=\"%d\" text-anchor=\"middle\" transform=\"rotate(-90 18 %d)\">GFLOP/s</text>\n",
            (MT + H - MB) / 2, (MT + H - MB) / 2);

    /* ceilings; their labels' boxes are kept so point labels avoid them */
    box boxes[MAX_BOXES];
    int n_boxes = 0;
    fprintf(f, "<g id=\"ceilings\" fill=\"none\">\n");
    for (int c = 0; c < roof->n_cache; c++) {
        double cb = roof->cache[c].read_gbs[tier];
        if (cb <= 0) continue;
        slope(f, &a, cb, f32, "stroke=\"#999\" stroke-dasharray=\"5,4\"");
        /* at the left end of the line, where the slopes are furthest apart */
        double xl = pow(10, a.lx0) * 1.15;
        if (cb * xl < pow(10, a.ly0)) xl = pow(10, a.ly0) / cb * 1.15;
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" fill=\"#777\" stroke=\"none\">L%d %.0f GB/s</text>\n", px(&a, xl) + 2,
                py(&a, cb * xl) - 5, roof->cache[c].level, cb);
    }
    slope(f, &a, bw, f32, "stroke=\"black\" stroke-width=\"2.5\"");
    double xm = pow(10, a.lx0) * 1.5;
    if (bw * xm < pow(10, a.ly0)) xm = pow(10, a.ly0) / bw * 1.5;
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" stroke=\"none\" fill=\"black\">memory %.1f GB/s</text>\n", px(&a, xm) + 4,
            py(&a, bw * xm) + 14, bw);
    fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"black\" stroke-width=\"2.5\"/>\n",
            px(&a, f32 / bw), py(&a, f32), W - MR, py(&a, f32));
    fprintf(f,
            "<text x=\"%d\" y=\"%.1f\" stroke=\"none\" fill=\"black\" text-anchor=\"end\">f32 FMA %.0f GFLOP/s "
            "(ridge %.1f FLOP/B)</text>\n",
            W - MR - 4, py(&a, f32) - 5, f32, f32 / bw);
    boxes[n_boxes++] = (box){W - MR - 250, py(&a, f32) - 17, W - MR, py(&a, f32) - 3};
    if (int8 > 0) {
        fprintf(f,
                "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#555\" stroke-width=\"1.5\" "
                "stroke-dasharray=\"10,3\"/>\n",
                px(&a, fmin(int8, f32) / bw), py(&a, int8), W - MR, py(&a, int8));
        fprintf(f,
                "<text x=\"%d\" y=\"%.1f\" stroke=\"none\" fill=\"#555\" text-anchor=\"end\">int8 dot %.0f GOP/s "
                "(quantized matmuls)</text>\n",
                W - MR - 4, py(&a, int8) + (int8 > f32 ? -5 : 14), int8);
        boxes[n_boxes++] =
            (box){W - MR - 260, py(&a, int8) + (int8 > f32 ? -17 : 2), W - MR, py(&a, int8) + (int8 > f32 ? -3 : 16)};
    }
    fprintf(f, "</g>\n");

    /* points, one group per series */
    int n_listed = 0;
    char listed[512] = "";
    for (int i = 0; i < n; i++) {
        const char *color = palette[i % 6];
        fprintf(f, "<g class=\"series\" data-label=\"");
        put_text(f, labels[i]);
        fprintf(f, "\" fill=\"%s\" stroke=\"%s\">\n", color, color);
        for (int ph = 0; ph < RG_PHASE_COUNT; ph++)
            for (int k = 0; k < RG_OP_COUNT; k++) {
                const rg_profile_stat *s = &profiles[i]->by_kind[ph][k];
                if (!s->calls) continue;
                if (s->cost.flops <= 0 || s->seconds <= 0) {
                    if (i == 0 && ph == 0 && n_listed++ < 6 && !strstr(listed, s->key)) {
                        strncat(listed, n_listed > 1 ? ", " : "", sizeof listed - strlen(listed) - 1);
                        strncat(listed, s->key, sizeof listed - strlen(listed) - 1);
                    }
                    continue;
                }
                rg_roof_eval v = rg_profile_evaluate(s, &roofs);
                double x = px(&a, v.intensity), y = py(&a, v.gflops);
                fprintf(f, "<g class=\"point\" data-op=\"%s\" data-phase=\"%s\">", s->key, rg_phase_name((rg_phase)ph));
                if (ph == RG_PHASE_DECODE)
                    fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"5\"/>", x, y);
                else
                    fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"9\" height=\"9\" fill-opacity=\"0.35\"/>", x - 4.5,
                            y - 4.5);
                double ly = place_label(boxes, &n_boxes, x + 8, y + 4, strlen(s->key));
                if (ly != y + 4) /* moved off its point: a leader line back to it */
                    fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke-width=\"0.6\"/>", x + 4, y,
                            x + 8, ly - 4);
                fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" stroke=\"none\" font-size=\"11\">%s</text>", x + 8, ly, s->key);
                fprintf(f, "<title>%s %s (", s->key, rg_phase_name((rg_phase)ph));
                put_text(f, labels[i]);
                fprintf(f, "): %.3g FLOP/B, %.3g GFLOP/s, %.3g GB/s, %s-bound, %.0f%% of roof</title></g>\n",
                        v.intensity, v.gflops, v.gbs, rg_bound_name(v.bound), 100 * v.efficiency);
            }
        fprintf(f, "</g>\n");
    }
    /* legend */
    int lx = W - MR + 16, ly = MT + 10;
    fprintf(f, "<g id=\"legend\">\n");
    for (int i = 0; i < n; i++, ly += 20) {
        fprintf(f, "<circle cx=\"%d\" cy=\"%d\" r=\"5\" fill=\"%s\"/><text x=\"%d\" y=\"%d\">", lx, ly, palette[i % 6],
                lx + 12, ly + 4);
        put_text(f, labels[i]);
        fprintf(f, "</text>\n");
    }
    ly += 10;
    fprintf(f, "<circle cx=\"%d\" cy=\"%d\" r=\"5\" fill=\"#666\"/><text x=\"%d\" y=\"%d\">decode</text>\n", lx, ly,
            lx + 12, ly + 4);
    ly += 20;
    fprintf(f,
            "<rect x=\"%.1f\" y=\"%.1f\" width=\"9\" height=\"9\" fill=\"#666\" fill-opacity=\"0.35\" "
            "stroke=\"#666\"/><text x=\"%d\" y=\"%d\">prefill</text>\n",
            lx - 4.5, ly - 4.5, lx + 12, ly + 4);
    fprintf(f, "</g>\n");
    if (listed[0])
        fprintf(f, "<text x=\"%d\" y=\"%d\" fill=\"#555\">not plotted (no FLOPs, pure data movement): %s</text>\n", ML,
                H - MB + 60, listed);
    fprintf(f,
            "<text x=\"%d\" y=\"%d\" fill=\"#555\">points: achieved GFLOP/s of each op kind over its FLOPs/bytes "
            "from perf/op_cost (one formula table); hover for details</text>\n",
            ML, H - MB + 78);
    fprintf(f, "</svg>\n");
    if (fclose(f)) return rg_fail(err, RG_E_IO, "cannot write %s", path);
    return RG_OK;
}
