/* testutil.c — helpers shared by the unit tests. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

const char *rg_test_path(const char *rel) {
    static char buf[4096];
    snprintf(buf, sizeof buf, "%s/%s", RIDGE_TEST_DATA, rel);
    return buf;
}

char *rg_test_read_file(const char *path, size_t *size_out) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    if (fseek(f, 0, SEEK_END) != 0) { fclose(f); return NULL; }
    long size = ftell(f);
    if (size < 0 || fseek(f, 0, SEEK_SET) != 0) { fclose(f); return NULL; }
    char *buf = malloc((size_t)size + 1);
    if (buf && fread(buf, 1, (size_t)size, f) != (size_t)size) { free(buf); buf = NULL; }
    fclose(f);
    if (!buf) return NULL;
    buf[size] = 0;
    if (size_out) *size_out = (size_t)size;
    return buf;
}

uint64_t rg_test_seed(void) {
    const char *env = getenv("RIDGE_TEST_SEED");
    uint64_t seed = env ? strtoull(env, NULL, 0) : (uint64_t)time(NULL) ^ ((uint64_t)clock() << 32);
    fprintf(stderr, "[seed] RIDGE_TEST_SEED=%llu\n", (unsigned long long)seed);
    return seed ? seed : 1;
}

uint64_t rg_test_rand_u64(uint64_t *s) { /* xorshift64* */
    uint64_t x = *s;
    x ^= x >> 12, x ^= x << 25, x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

float rg_test_rand_uniform(uint64_t *s) { return (float)(rg_test_rand_u64(s) >> 40) / 16777216.0f; }

float rg_test_rand_normal(uint64_t *s) {
    float u1 = rg_test_rand_uniform(s), u2 = rg_test_rand_uniform(s);
    if (u1 < 1e-7f) u1 = 1e-7f;
    return sqrtf(-2.0f * logf(u1)) * cosf(6.2831853f * u2);
}
