/* argmax.h — the greedy choice over a row of logits, the one definition every
 * path that picks a greedy token agrees with (the sampler, the backends'
 * argmax_rows, the tools).
 *
 * Rule: a left-to-right scan that moves to an entry only when it is strictly
 * greater than the best so far. So ties go to the lowest id, a NaN is never
 * chosen unless it is entry 0 (which is then the answer: nothing compares
 * greater than NaN), and a row of -inf gives 0. */
#ifndef RG_CORE_ARGMAX_H
#define RG_CORE_ARGMAX_H

#include <stdint.h>

/* Index of the largest of logits[0..n) (the rule above), and the runner-up
 * (second may be NULL). n >= 1. */
int32_t rg_argmax(const float *logits, int32_t n, int32_t *second);

#endif
