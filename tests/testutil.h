/* testutil.h — helpers shared by the unit tests: data paths, random inputs. */
#ifndef RG_TESTUTIL_H
#define RG_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>

/* Path of a file under tests/data (static buffer, valid until the next call). */
const char *rg_test_path(const char *rel);

/* Read a whole file into a malloc'd, NUL-terminated buffer; NULL on failure. */
char *rg_test_read_file(const char *path, size_t *size_out);

/* Small deterministic PRNG so failures reproduce; seeded from the clock unless
 * RIDGE_TEST_SEED is set (the seed is printed, so any failure can be replayed). */
uint64_t rg_test_seed(void);
uint64_t rg_test_rand_u64(uint64_t *state);
float rg_test_rand_uniform(uint64_t *state);  /* [0, 1) */
float rg_test_rand_normal(uint64_t *state);   /* N(0, 1) */

#endif
