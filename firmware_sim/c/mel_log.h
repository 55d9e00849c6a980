/* What both front ends (kernels.c frontend_frame_q15, the project's FFT; frontend_cmsis.c, CMSIS-DSP's)
   do after their FFT: power into 40 triangular mel bands (Q15 weights, each bin feeds at most two
   bands; only bins MEL_FIRST_BIN..MEL_LAST_BIN carry weight), then ln(1 + energy) in Q16. */
#ifndef MEL_LOG_H_
#define MEL_LOG_H_
#include <stdint.h>

#include "tables.h"

static inline void mel_add(uint64_t *energy, int k, uint32_t power)
{
    int band = kMelBand[k];
    energy[band] += (uint64_t)power * kMelWeightQ15[k][0];
    if (band + 1 < 40) energy[band + 1] += (uint64_t)power * kMelWeightQ15[k][1];
}

static inline int32_t log2_q16(uint64_t v)
{
    /* log2 of v >= 1 in Q16: the leading bit and a 33-entry table of log2(1 + i/32) with
       linear interpolation. */
    int msb = 63 - __builtin_clzll(v);
    uint32_t m = msb >= 30 ? (uint32_t)(v >> (msb - 30)) : (uint32_t)(v << (30 - msb));
    uint32_t frac = m - (1u << 30);
    int32_t idx = frac >> 25, rem = (frac >> 9) & 0xffff;
    int32_t a = kLog2Q16[idx], b = kLog2Q16[idx + 1];
    return (msb << 16) + a + (int32_t)(((int64_t)(b - a) * rem) >> 16);
}

/* natural log of v >= 1 in Q16: log2 times ln 2 (45426 = round(ln 2 * 2^16)). */
static inline int32_t log_q16(uint64_t v) { return (int32_t)(((int64_t)log2_q16(v) * 45426) >> 16); }
#endif
