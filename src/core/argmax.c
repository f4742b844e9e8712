/* argmax.c — see argmax.h for the rule (ties and NaN). */
#include "core/argmax.h"

int32_t rg_argmax(const float *logits, int32_t n, int32_t *second) {
    int32_t best = 0, runner = n > 1 ? 1 : 0;
    if (n > 1 && logits[1] > logits[0]) best = 1, runner = 0;
    for (int32_t i = 2; i < n; i++) {
        if (logits[i] > logits[best])
            runner = best, best = i;
        else if (logits[i] > logits[runner])
            runner = i;
    }
    if (second) *second = runner;
    return best;
}
