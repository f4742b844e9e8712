/* cache_info.c — the CPU's cache levels from Linux sysfs
 * (/sys/devices/system/cpu/cpu0/cache/indexN/{level,type,size,shared_cpu_list}),
 * so the probe can size a working set to sit in each level. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "perf/roofline.h"

static bool read_line(const char *dir, const char *file, char *buf, size_t n) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    FILE *f = fopen(path, "r");
    if (!f) return false;
    bool ok = fgets(buf, (int)n, f) != NULL;
    fclose(f);
    buf[strcspn(buf, "\n")] = 0;
    return ok;
}

/* "0-3,8-11" -> 8 */
static int count_cpus(const char *list) {
    int n = 0;
    const char *p = list;
    while (*p) {
        char *end;
        long a = strtol(p, &end, 10);
        if (end == p) break;
        long b = a;
        if (*end == '-') b = strtol(end + 1, &end, 10);
        n += b >= a ? (int)(b - a + 1) : 1;
        p = *end == ',' ? end + 1 : end;
        if (*end != ',') break;
    }
    return n > 0 ? n : 1;
}

int rg_detect_cache_levels(rg_cache_level *out, int max) {
    int n = 0;
    for (int idx = 0; idx < 16 && n < max; idx++) {
        char dir[128], type[32], level[16], size[32], shared[256];
        snprintf(dir, sizeof dir, "/sys/devices/system/cpu/cpu0/cache/index%d", idx);
        if (!read_line(dir, "type", type, sizeof type)) break;
        if (!strcmp(type, "Instruction")) continue;
        if (!read_line(dir, "level", level, sizeof level) || !read_line(dir, "size", size, sizeof size)) continue;
        char *end;
        long long bytes = strtoll(size, &end, 10);
        if (*end == 'K')
            bytes <<= 10;
        else if (*end == 'M')
            bytes <<= 20;
        else if (*end == 'G')
            bytes <<= 30;
        if (bytes <= 0) continue;
        rg_cache_level *L = &out[n++];
        memset(L, 0, sizeof *L);
        L->level = atoi(level);
        L->size_bytes = bytes;
        L->shared_by = read_line(dir, "shared_cpu_list", shared, sizeof shared) ? count_cpus(shared) : 1;
    }
    return n;
}
