/* fuzz_roofline_json.c — libFuzzer target for the saved roofline's loader
 * (perf/roofline_json.c): any bytes either parse into an rg_roofline whose
 * ceilings are positive, which then round-trips through rg_roofline_to_json and
 * feeds the planner's machine and the profile's roofs, or are rejected with a
 * message. ASan/UBSan turn any out-of-bounds access into a finding. */
#include <stdlib.h>
#include <string.h>

#include "perf/machine.h"
#include "perf/profile.h"
#include "perf/roofline.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = 0;
    rg_roofline r;
    rg_err err = {0};
    if (!rg_roofline_from_json(text, &r, &err)) {
        if (!(r.mem_gbs[RG_STREAM_READ][RG_ALL] > 0 && r.f32_gflops[RG_ALL] > 0)) abort();
        char *again = rg_roofline_to_json(&r);
        rg_roofline back;
        if (again && rg_roofline_from_json(again, &back, &err)) abort(); /* what we write, we read */
        free(again);
        rg_machine m;
        rg_machine_from_roofline(&r, true, &m);
        (void)rg_machine_ridge_point(&m);
        rg_roofs roofs = rg_roofs_from_roofline(&r, 1);
        (void)roofs;
    } else if (!err.msg[0]) {
        abort(); /* a rejection always says why */
    }
    free(text);
    return 0;
}
