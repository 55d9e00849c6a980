/* The device front end's frame on CMSIS-DSP (issue 15): the same Hann window, 512-point real FFT,
   40 mel bands and ln(1 + energy) in Q16 as kernels.c frontend_frame_q15, with the window product
   and the FFT from CMSIS-DSP (arm_mult_q15, arm_rfft_q15: radix-4 q15 CFFT with the split step,
   DSP-extension intrinsics). Block floating point: the windowed frame is shifted left by s bits
   so that its peak fills the 16 bits (a quiet frame keeps its precision through the FFT's 9
   halvings), and the energy E' that comes out, 4^s times larger, is taken back in the log:
   ln(1 + E) = ln(E' / 4^s' + 1) = ln(E' + 4^s') - s' ln 4, with s' = s + 1 because the window
   is Q15 here where the project's halves it (firmware_sim.kernels_ref.ENERGY_SCALE is kept).
   Its outputs are compared with the float front end by firmware_sim.frontend_check, not
   bit-exactly with a numpy twin. */
#include <string.h>

#include "arm_const_structs.h"
#include "arm_math.h"
#include "kernels.h"
#include "mel_log.h"

static int32_t peak_q15(const int16_t *x)
{
    /* max |x| over the 400 samples, two at a time: SSUB16 sets the GE flags per half-word and
       SEL keeps the larger (the smaller) half. CMSIS-DSP's arm_absmax_no_idx_q15 costs 3.5 times
       as many instructions here. */
    uint32_t hi = 0x80008000u, lo = 0x7fff7fffu;
    for (int i = 0; i < 400; i += 2) {
        uint32_t v;
        __builtin_memcpy(&v, x + i, 4);
        __ssub16((int16x2_t)v, (int16x2_t)hi);
        hi = __sel(v, hi);
        __ssub16((int16x2_t)lo, (int16x2_t)v);
        lo = __sel(v, lo);
    }
    int32_t top = (int16_t)hi > (int16_t)(hi >> 16) ? (int16_t)hi : (int16_t)(hi >> 16);
    int32_t bottom = (int16_t)lo < (int16_t)(lo >> 16) ? (int16_t)lo : (int16_t)(lo >> 16);
    return top > -bottom ? top : -bottom; /* (|-32768| = 32768: s = 0 below) */
}

static void window_shifted(const int16_t *x, int16_t *out, int right)
{
    /* out = x * Hann (Q15) >> right, saturated; two samples per step (SMULBB/SMULTT). With
       right = 15 - s and s from the frame's peak, nothing saturates: |x w| < peak 2^15. */
    for (int i = 0; i < 400; i += 2) {
        uint32_t a, w;
        __builtin_memcpy(&a, x + i, 4);
        __builtin_memcpy(&w, kHannQ15 + i, 4);
        int32_t lo = __ssat(((int16_t)a * (int16_t)w) >> right, 16);
        int32_t hi = __ssat((((int32_t)a >> 16) * ((int32_t)w >> 16)) >> right, 16);
        uint32_t v = ((uint32_t)lo & 0xffffu) | ((uint32_t)hi << 16);
        __builtin_memcpy(out + i, &v, 4);
    }
}

void frontend_frame_cmsis_q15(const int16_t *samples, int16_t *frame, int16_t *spectrum, int32_t *log_mel)
{
    /* frame: 512 q15 (the windowed, zero-padded input; CMSIS overwrites it); spectrum: 1024 q15
       (interleaved re, im of bins 0..511). */
    /* what arm_rfft_init_512_q15 sets up, but with split coefficients for 512 points only
       (tables.h kRealCoefAQ15/BQ15, modifier 1) instead of CMSIS's 8192-point tables at stride 16:
       the same values (tests/test_mcu.py), 2 KB of flash instead of 32 KB */
    static const arm_rfft_instance_q15 rfft = {
        .fftLenReal = 512, .ifftFlagR = 0, .bitReverseFlagR = 1, .twidCoefRModifier = 1,
        .pTwiddleAReal = kRealCoefAQ15, .pTwiddleBReal = kRealCoefBQ15, .pCfft = &arm_cfft_sR_q15_len256};
    int32_t peak = peak_q15(samples);
    int s = peak > 0 ? __builtin_clz((uint32_t)peak) - 17 : 0; /* peak << s in [2^14, 2^15) */
    if (s < 0) s = 0;
    window_shifted(samples, frame, 15 - s);
    memset(frame + 400, 0, 112 * sizeof frame[0]);
    arm_rfft_q15(&rfft, frame, spectrum);
    uint64_t energy[40] = {0};
    for (int k = MEL_FIRST_BIN; k <= MEL_LAST_BIN; k++) {
        int32_t re = spectrum[2 * k], im = spectrum[2 * k + 1];
        mel_add(energy, k, (uint32_t)(re * re) + (uint32_t)(im * im));
    }
    for (int b = 0; b < 40; b++) {
        log_mel[b] = log_q16(energy[b] + (1ull << (2 * s + 2))) - (s + 1) * 2 * 45426;
    }
}
