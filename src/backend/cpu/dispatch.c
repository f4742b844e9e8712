/* dispatch.c — picks the kernel table once per process: AVX2+FMA+F16C when the
 * CPU has them (checked at run time, so one binary runs anywhere), else the
 * portable scalar kernels. Tests force either to check both. */
#include <pthread.h>
#include <stdatomic.h>

#include "backend/cpu/kernels.h"

#if RG_X86_SIMD
#include <cpuid.h>
#endif

static rg_cpu_kernels tables[2];
static bool have_avx2;
static _Atomic int active_isa = RG_ISA_SCALAR;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void init_tables(void) {
    rg_cpu_fill_scalar(&tables[RG_ISA_SCALAR]);
#if RG_X86_SIMD
    __builtin_cpu_init();
    /* the builtin checks the OS saves the ymm state too; F16C (cpuid 1, ecx bit
     * 29) is asked of cpuid directly, as clang 14's builtin does not know it */
    unsigned eax, ebx, ecx = 0, edx;
    bool f16c = __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & (1u << 29));
    have_avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && f16c;
    if (have_avx2) {
        tables[RG_ISA_AVX2] = tables[RG_ISA_SCALAR]; /* anything AVX2 leaves out stays scalar */
        rg_cpu_fill_avx2(&tables[RG_ISA_AVX2]);
        atomic_store(&active_isa, RG_ISA_AVX2);
    }
#endif
}

const rg_cpu_kernels *rg_cpu_kernels_get(void) {
    pthread_once(&once, init_tables);
    return &tables[atomic_load_explicit(&active_isa, memory_order_relaxed)];
}

rg_cpu_isa rg_cpu_isa_active(void) {
    pthread_once(&once, init_tables);
    return (rg_cpu_isa)atomic_load(&active_isa);
}

bool rg_cpu_isa_force(rg_cpu_isa isa) {
    pthread_once(&once, init_tables);
    if (isa == RG_ISA_AVX2 && !have_avx2) return false;
    atomic_store(&active_isa, isa);
    return true;
}

rg_act_fmt rg_cpu_act_fmt(rg_dtype wtype) {
    if ((unsigned)wtype >= RG_DTYPE_COUNT) return RG_ACT_NONE;
    const rg_cpu_kernels *t = rg_cpu_kernels_get();
    return t->dot[wtype] ? t->fmt[wtype] : RG_ACT_NONE;
}

size_t rg_cpu_act_row_bytes(rg_act_fmt fmt, int64_t k) {
    size_t n = (size_t)k, bytes;
    switch (fmt) {
    case RG_ACT_Q8:
    case RG_ACT_Q8P: bytes = n + n / 32 * (sizeof(float) + sizeof(int32_t)); break;
    case RG_ACT_Q8K: bytes = n + n / 256 * sizeof(float) + n / 16 * sizeof(int16_t); break;
    default: bytes = n * sizeof(float); break;
    }
    return (bytes + 63) & ~(size_t)63;
}
