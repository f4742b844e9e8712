/* quant.h — the quantized block formats GGUF files use, and their reference
 * (plain C, obviously-correct) dequantize and quantize routines.
 *
 * Layouts are bit-exact with the GGUF / llama.cpp definitions so files from the
 * ecosystem load as they are. Each block covers QK consecutive elements of a row:
 *   Q4_0  x = d * (q - 8)            q 4-bit,  32 per block, d f16
 *   Q4_1  x = d * q + m              q 4-bit,  32 per block, d,m f16
 *   Q5_0  x = d * (q - 16)           q 5-bit (low 4 in qs, high bit in qh)
 *   Q5_1  x = d * q + m              q 5-bit
 *   Q8_0  x = d * q                  q int8
 *   Q4_K  256 = 8 sub-blocks of 32; 6-bit sub-scales/mins packed in scales[12]:
 *         x = d*sc[j]*q - dmin*m[j]
 *   Q5_K  as Q4_K with a fifth bit per element in qh
 *   Q6_K  256 = 16 sub-blocks of 16; int8 scales; x = d*sc[j]*(q - 32), q 6-bit
 *   Q8_K  256 int8 with a float scale and per-16 sums (the activation format the
 *         K-quant dot products use)
 * The fast kernels (SIMD, CUDA) are tested against these. */
#ifndef RG_CORE_QUANT_H
#define RG_CORE_QUANT_H

#include <assert.h>
#include <stdint.h>

#include "core/dtype.h"
#include "core/error.h"

#define RG_QK 32   /* elements per block of the legacy formats */
#define RG_QK_K 256 /* elements per super-block of the K-quants */
#define RG_K_SCALE_SIZE 12

typedef struct { uint16_t d; uint8_t qs[RG_QK / 2]; } rg_block_q4_0;
typedef struct { uint16_t d, m; uint8_t qs[RG_QK / 2]; } rg_block_q4_1;
typedef struct { uint16_t d; uint8_t qh[4]; uint8_t qs[RG_QK / 2]; } rg_block_q5_0;
typedef struct { uint16_t d, m; uint8_t qh[4]; uint8_t qs[RG_QK / 2]; } rg_block_q5_1;
typedef struct { uint16_t d; int8_t qs[RG_QK]; } rg_block_q8_0;
typedef struct {
    uint16_t d, dmin;
    uint8_t scales[RG_K_SCALE_SIZE];
    uint8_t qs[RG_QK_K / 2];
} rg_block_q4_K;
typedef struct {
    uint16_t d, dmin;
    uint8_t scales[RG_K_SCALE_SIZE];
    uint8_t qh[RG_QK_K / 8];
    uint8_t qs[RG_QK_K / 2];
} rg_block_q5_K;
typedef struct {
    uint8_t ql[RG_QK_K / 2];
    uint8_t qh[RG_QK_K / 4];
    int8_t scales[RG_QK_K / 16];
    uint16_t d;
} rg_block_q6_K;
typedef struct {
    float d;
    int8_t qs[RG_QK_K];
    int16_t bsums[RG_QK_K / 16];
} rg_block_q8_K;

static_assert(sizeof(rg_block_q4_0) == 18, "q4_0 layout");
static_assert(sizeof(rg_block_q4_1) == 20, "q4_1 layout");
static_assert(sizeof(rg_block_q5_0) == 22, "q5_0 layout");
static_assert(sizeof(rg_block_q5_1) == 24, "q5_1 layout");
static_assert(sizeof(rg_block_q8_0) == 34, "q8_0 layout");
static_assert(sizeof(rg_block_q4_K) == 144, "q4_K layout");
static_assert(sizeof(rg_block_q5_K) == 176, "q5_K layout");
static_assert(sizeof(rg_block_q6_K) == 210, "q6_K layout");
static_assert(sizeof(rg_block_q8_K) == 292, "q8_K layout");

/* Dequantize n elements (a multiple of the type's block size) of `type` from src
 * into dst. Works for every type with rg_dtype_info.supported, F32/F16/BF16
 * included. Returns RG_E_INVALID for an unsupported type or a ragged n. */
rg_status rg_dequantize_ref(rg_dtype type, const void *src, float *dst, int64_t n, rg_err *err);

/* Quantize n elements (a multiple of the block size) of f32 into `type`'s blocks
 * in dst (rg_dtype_row_bytes(type, n) bytes). Round-to-nearest with the scale
 * choices of the reference implementation of each format; the K-quants search
 * their sub-block scales/mins to minimize squared error. */
rg_status rg_quantize_ref(rg_dtype type, const float *src, void *dst, int64_t n, rg_err *err);

/* The per-format halves of the two functions above, for callers that already
 * know the format (quant_legacy.c, quant_k.c). nb counts blocks. Block data may
 * sit at any byte alignment (a GGUF file may align tensors to 1; a Q8_K row may
 * start on a 2-byte boundary): blocks are copied through memcpy, never read in
 * place. The float arrays need only float alignment. */
void rg_dequantize_q4_0(const void *src, float *dst, int64_t nb);
void rg_dequantize_q4_1(const void *src, float *dst, int64_t nb);
void rg_dequantize_q5_0(const void *src, float *dst, int64_t nb);
void rg_dequantize_q5_1(const void *src, float *dst, int64_t nb);
void rg_dequantize_q8_0(const void *src, float *dst, int64_t nb);
void rg_dequantize_q4_K(const void *src, float *dst, int64_t nb);
void rg_dequantize_q5_K(const void *src, float *dst, int64_t nb);
void rg_dequantize_q6_K(const void *src, float *dst, int64_t nb);
void rg_dequantize_q8_K(const void *src, float *dst, int64_t nb);
void rg_quantize_q4_0(const float *src, void *dst, int64_t nb);
void rg_quantize_q4_1(const float *src, void *dst, int64_t nb);
void rg_quantize_q5_0(const float *src, void *dst, int64_t nb);
void rg_quantize_q5_1(const float *src, void *dst, int64_t nb);
void rg_quantize_q8_0(const float *src, void *dst, int64_t nb);
void rg_quantize_q4_K(const float *src, void *dst, int64_t nb);
void rg_quantize_q5_K(const float *src, void *dst, int64_t nb);
void rg_quantize_q6_K(const float *src, void *dst, int64_t nb);
void rg_quantize_q8_K(const float *src, void *dst, int64_t nb);

/* The element of largest magnitude with its sign (the first one on ties): the
 * reference value the symmetric formats map to their most negative code. */
float rg_quant_signed_absmax(const float *x, int n);

#endif
