/* The project's own int8 kernels whose instruction counts calibrate the MCU cost model.
   Integer arithmetic as TFLM's integer kernels define it (double-rounding requantization,
   per-channel multipliers); inner dot products in the CMSIS-NN style (SXTB16 + SMLAD: two
   int8 multiply-accumulates per instruction on Cortex-M4/M7/M33). firmware_sim/kernels_ref.py
   is the numpy reference every output is checked against (tests/test_mcu.py). */
#include "kernels.h"

#include "tables.h"
#include "mel_log.h"

/* ------------------------------------------------------------------ requantization */

/* TFLM MultiplyByQuantizedMultiplier: x * m * 2^shift, m a Q31 multiplier, rounding as gemmlowp.
   gemmlowp's SaturatingRoundingDoublingHighMul adds a nudge of 2^30 (1 - 2^30 when negative) and
   divides by 2^31 truncating toward zero; for every product that equals floor((ab + 2^30) / 2^31),
   one add and an arithmetic shift (bit-identical; the saturating case a = b = INT32_MIN cannot
   occur with a positive multiplier). */
static inline int32_t sat_rounding_doubling_high_mul(int32_t a, int32_t b)
{
    int64_t ab = (int64_t)a * b;
    return (int32_t)((ab + (1ll << 30)) >> 31);
}

static inline int32_t rounding_divide_by_pot(int32_t x, int exponent)
{
    int32_t mask = (int32_t)((1u << exponent) - 1u);
    int32_t remainder = x & mask;
    int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

static inline int32_t requantize(int32_t x, int32_t multiplier, int shift)
{
    int left = shift > 0 ? shift : 0;
    int right = shift > 0 ? 0 : -shift;
    return rounding_divide_by_pot(sat_rounding_doubling_high_mul(x * (1 << left), multiplier), right);
}

static inline int32_t clamp(int32_t x, int32_t lo, int32_t hi) { return x < lo ? lo : (x > hi ? hi : x); }

/* ------------------------------------------------------------------ int8 dot product */

static inline uint32_t ror32(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

/* Two dot products of one int8 vector x with the rows w0 and w1 (n values each), 4 at a time with
   SXTB16/SMLAD, each load of x serving both rows (CMSIS-NN's vec_mat_mult scheme); unaligned
   32-bit loads are fine on M4/M7/M33. */
static inline void dot2_s8(const int8_t *x, const int8_t *w0, const int8_t *w1, int n, int32_t *acc0, int32_t *acc1)
{
    int32_t a0 = *acc0, a1 = *acc1;
    int i = 0;
    for (; i + 4 <= n; i += 4) {
        uint32_t vx, v0, v1;
        __builtin_memcpy(&vx, x + i, 4);
        __builtin_memcpy(&v0, w0 + i, 4);
        __builtin_memcpy(&v1, w1 + i, 4);
        uint32_t x_even = __sxtb16(vx), x_odd = __sxtb16(ror32(vx, 8));
        a0 = __smlad(x_even, __sxtb16(v0), a0);
        a0 = __smlad(x_odd, __sxtb16(ror32(v0, 8)), a0);
        a1 = __smlad(x_even, __sxtb16(v1), a1);
        a1 = __smlad(x_odd, __sxtb16(ror32(v1, 8)), a1);
    }
    for (; i < n; i++) {
        a0 += (int32_t)x[i] * w0[i];
        a1 += (int32_t)x[i] * w1[i];
    }
    *acc0 = a0;
    *acc1 = a1;
}

/* acc[r] += w[r] . x for the rows r of an [n_rows][n] int8 matrix (n_rows even). */
static inline void mat_vec_s8(const int8_t *x, const int8_t *w, int n, int n_rows, int32_t *acc)
{
    for (int r = 0; r < n_rows; r += 2) {
        dot2_s8(x, w + r * n, w + (r + 1) * n, n, &acc[r], &acc[r + 1]);
    }
}

/* ------------------------------------------------------------------ fully connected */

void fc_s8(const int8_t *x, int n_in, const int8_t *w, const int32_t *bias, int n_out,
           int32_t multiplier, int shift, int32_t out_offset, int8_t *out)
{
    /* bias already holds bias + input_offset * sum(w row) (computed once at prepare time,
       as CMSIS-NN does), so the inner loop is a plain int8 dot product. n_out even. */
    for (int o = 0; o < n_out; o += 2) {
        int32_t acc[2] = {bias[o], bias[o + 1]};
        dot2_s8(x, w + o * n_in, w + (o + 1) * n_in, n_in, &acc[0], &acc[1]);
        for (int k = 0; k < 2; k++) {
            out[o + k] = (int8_t)clamp(requantize(acc[k], multiplier, shift) + out_offset, -128, 127);
        }
    }
}

/* ------------------------------------------------------------------ convolution (im2col GEMM) */

void conv_gemm_s8(const int8_t *cols, int n_pix, int n_in, const int8_t *w, const int32_t *bias, int n_out,
                  const int32_t *multiplier, const int8_t *shift, int32_t out_offset, int8_t *out)
{
    /* A convolution after im2col (a 1x1 convolution needs none): out[p][o] = w[o] . cols[p] for
       n_pix columns of n_in int8 values, per-channel requantization. Blocked 2 pixels x 2
       channels so that every 32-bit load feeds two SMLADs (CMSIS-NN's mat_mult kernel scheme);
       n_pix and n_out even. bias holds bias + input_offset * sum(w row). */
    for (int p = 0; p < n_pix; p += 2) {
        const int8_t *c0 = cols + p * n_in, *c1 = c0 + n_in;
        for (int o = 0; o < n_out; o += 2) {
            const int8_t *w0 = w + o * n_in, *w1 = w0 + n_in;
            int32_t a00 = bias[o], a01 = bias[o + 1], a10 = bias[o], a11 = bias[o + 1];
            int i = 0;
            for (; i + 4 <= n_in; i += 4) {
                uint32_t vc0, vc1, vw0, vw1;
                __builtin_memcpy(&vc0, c0 + i, 4);
                __builtin_memcpy(&vc1, c1 + i, 4);
                __builtin_memcpy(&vw0, w0 + i, 4);
                __builtin_memcpy(&vw1, w1 + i, 4);
                uint32_t w0e = __sxtb16(vw0), w0o = __sxtb16(ror32(vw0, 8));
                uint32_t w1e = __sxtb16(vw1), w1o = __sxtb16(ror32(vw1, 8));
                uint32_t c0e = __sxtb16(vc0), c0o = __sxtb16(ror32(vc0, 8));
                a00 = __smlad(c0e, w0e, a00); a00 = __smlad(c0o, w0o, a00);
                a01 = __smlad(c0e, w1e, a01); a01 = __smlad(c0o, w1o, a01);
                uint32_t c1e = __sxtb16(vc1), c1o = __sxtb16(ror32(vc1, 8));
                a10 = __smlad(c1e, w0e, a10); a10 = __smlad(c1o, w0o, a10);
                a11 = __smlad(c1e, w1e, a11); a11 = __smlad(c1o, w1o, a11);
            }
            for (; i < n_in; i++) {
                a00 += (int32_t)c0[i] * w0[i]; a01 += (int32_t)c0[i] * w1[i];
                a10 += (int32_t)c1[i] * w0[i]; a11 += (int32_t)c1[i] * w1[i];
            }
            out[p * n_out + o] = (int8_t)clamp(requantize(a00, multiplier[o], shift[o]) + out_offset, -128, 127);
            out[p * n_out + o + 1] = (int8_t)clamp(requantize(a01, multiplier[o + 1], shift[o + 1]) + out_offset, -128, 127);
            out[(p + 1) * n_out + o] = (int8_t)clamp(requantize(a10, multiplier[o], shift[o]) + out_offset, -128, 127);
            out[(p + 1) * n_out + o + 1] = (int8_t)clamp(requantize(a11, multiplier[o + 1], shift[o + 1]) + out_offset, -128, 127);
        }
    }
}

/* ------------------------------------------------------------------ depthwise 3x3 */

void dwconv3x3_s8(const int8_t *x, int h, int w, int c, const int8_t *filt, const int32_t *bias,
                  const int32_t *multiplier, const int8_t *shift, int32_t in_offset,
                  int32_t out_offset, int8_t *out)
{
    /* NHWC, stride 1, 'same' padding: a padded input counts as the zero point, i.e. 0 after
       the input offset. filt is [3][3][c], c a multiple of 4. Four channels at a time as in
       CMSIS-NN: SXTB16 splits them into two int16 pairs, SADD16 adds the input offset,
       SMLABB/SMLATT accumulate each channel; only the valid taps of each pixel are visited. */
    uint32_t offset2 = ((uint32_t)in_offset & 0xffffu) | ((uint32_t)in_offset << 16);
    for (int y = 0; y < h; y++) {
        int ky0 = y == 0 ? 1 : 0, ky1 = y == h - 1 ? 2 : 3;
        for (int x0 = 0; x0 < w; x0++) {
            int kx0 = x0 == 0 ? 1 : 0, kx1 = x0 == w - 1 ? 2 : 3;
            int8_t *o = out + (y * w + x0) * c;
            for (int ch = 0; ch < c; ch += 4) {
                int32_t a0 = bias[ch], a1 = bias[ch + 1], a2 = bias[ch + 2], a3 = bias[ch + 3];
                for (int ky = ky0; ky < ky1; ky++) {
                    const int8_t *row = x + ((y + ky - 1) * w + x0 - 1) * c + ch;
                    const int8_t *f = filt + ky * 3 * c + ch;
                    for (int kx = kx0; kx < kx1; kx++) {
                        uint32_t vin, vf;
                        __builtin_memcpy(&vin, row + kx * c, 4);
                        __builtin_memcpy(&vf, f + kx * c, 4);
                        uint32_t in_even = __sadd16(__sxtb16(vin), offset2);
                        uint32_t in_odd = __sadd16(__sxtb16(ror32(vin, 8)), offset2);
                        uint32_t f_even = __sxtb16(vf), f_odd = __sxtb16(ror32(vf, 8));
                        a0 = __smlabb(in_even, f_even, a0);
                        a2 = __smlatt(in_even, f_even, a2);
                        a1 = __smlabb(in_odd, f_odd, a1);
                        a3 = __smlatt(in_odd, f_odd, a3);
                    }
                }
                int32_t acc[4] = {a0, a1, a2, a3};
                for (int k = 0; k < 4; k++) {
                    o[ch + k] = (int8_t)clamp(requantize(acc[k], multiplier[ch + k], shift[ch + k]) + out_offset, -128, 127);
                }
            }
        }
    }
}

/* ------------------------------------------------------------------ elementwise add */

void add_s8(const int8_t *a, const int8_t *b, int n, const struct add_params *p, int8_t *out)
{
    /* TFLM integer ADD: both inputs rescaled to a common scale with 20 bits of headroom. */
    for (int i = 0; i < n; i++) {
        int32_t sa = requantize(((int32_t)a[i] + p->a_offset) * (1 << p->left_shift), p->a_multiplier, p->a_shift);
        int32_t sb = requantize(((int32_t)b[i] + p->b_offset) * (1 << p->left_shift), p->b_multiplier, p->b_shift);
        int32_t r = requantize(sa + sb, p->out_multiplier, p->out_shift) + p->out_offset;
        out[i] = (int8_t)clamp(r, -128, 127);
    }
}

void mul_s8(const int8_t *a, const int8_t *b, int n, int32_t a_offset, int32_t b_offset, int32_t multiplier,
            int shift, int32_t out_offset, int8_t *out)
{
    /* TFLM integer MUL: one requantization of the product of the offset inputs. */
    for (int i = 0; i < n; i++) {
        int32_t p = ((int32_t)a[i] + a_offset) * ((int32_t)b[i] + b_offset);
        out[i] = (int8_t)clamp(requantize(p, multiplier, shift) + out_offset, -128, 127);
    }
}

/* ------------------------------------------------------------------ int16 activations */

/* sigmoid / tanh of a Q3.12 int16 (range [-8, 8)) as Q0.15: a 257-entry table over the input
   range with linear interpolation (the CMSIS-NN int16 activation scheme). */
static inline int32_t lut_interp(const int16_t *lut, int32_t x)
{
    uint32_t u = (uint32_t)(x + 32768);
    int32_t idx = u >> 8, frac = u & 0xff;
    int32_t a = lut[idx], b = lut[idx + 1];
    return a + (((b - a) * frac) >> 8);
}

/* ------------------------------------------------------------------ LSTM step */

void lstm_step_s8(const struct lstm_params *p, const int8_t *x, int8_t *h, int16_t *c, int16_t *scratch,
                  int32_t *acc)
{
    /* One time step of an integer LSTM (gates i, f, g, o), TFLM's 8x8->16 scheme: int8 input
       and hidden state, int8 weights, int16 gates (Q3.12) and cell (Q3.12), int8 output. n_units even; acc holds 4 * n_units. */
    const int n = p->n_units, n_in = p->n_input;
    for (int r = 0; r < 4 * n; r++) acc[r] = p->bias[r];
    mat_vec_s8(x, p->w_input, n_in, 4 * n, acc);
    mat_vec_s8(h, p->w_recurrent, n, 4 * n, acc);
    for (int r = 0; r < 4 * n; r++) {
        scratch[r] = (int16_t)clamp(requantize(acc[r], p->gate_multiplier[r / n], p->gate_shift[r / n]), -32768, 32767);
    }
    for (int j = 0; j < n; j++) {
        int32_t i_gate = lut_interp(kSigmoidQ12, scratch[j]);
        int32_t f_gate = lut_interp(kSigmoidQ12, scratch[n + j]);
        int32_t g_gate = lut_interp(kTanhQ12, scratch[2 * n + j]);
        int32_t o_gate = lut_interp(kSigmoidQ12, scratch[3 * n + j]);
        int32_t cell = ((f_gate * c[j]) >> 15) + ((i_gate * g_gate) >> 18);
        cell = clamp(cell, -32768, 32767);
        c[j] = (int16_t)cell;
        int32_t hq = requantize(o_gate * lut_interp(kTanhQ12, cell), p->hidden_multiplier, p->hidden_shift);
        h[j] = (int8_t)clamp(hq + p->hidden_offset, -128, 127);
    }
}

/* ------------------------------------------------------------------ front-end frame */

/* In-place radix-2 decimation-in-time FFT of 256 complex Q15 values packed as (re | im << 16),
   halving at every stage (8 stages: output = DFT / 256). Twiddles: kTwiddle512[2k] =
   e^(-2 pi i k/256), read as one packed word. Per butterfly: SMUSD/SMUADX form the twiddled
   value, SHADD16/SHSUB16 the halved sum and difference - the same integer results as the
   scalar (a +- (b w >> 15)) >> 1, since every value stays within int16 (the input is halved). */
static void cfft256_q15(uint32_t *z)
{
    for (int i = 0; i < 256; i++) {
        int j = kBitrev256[i];
        if (j > i) {
            uint32_t t = z[i]; z[i] = z[j]; z[j] = t;
        }
    }
    for (int half = 1, step = 128; half < 256; half <<= 1, step >>= 1) {
        for (int k = 0; k < half; k++) {
            uint32_t w;
            __builtin_memcpy(&w, kTwiddle512[2 * k * step], 4);
            for (int a = k; a < 256; a += 2 * half) {
                uint32_t vb = z[a + half], va = z[a];
                int32_t tr = __smusd((int32_t)vb, (int32_t)w) >> 15;
                int32_t ti = __smuadx((int32_t)vb, (int32_t)w) >> 15;
                uint32_t t = ((uint32_t)tr & 0xffffu) | ((uint32_t)ti << 16);
                z[a] = __shadd16(va, t);
                z[a + half] = __shsub16(va, t);
            }
        }
    }
}

static inline int32_t re16(uint32_t v) { return (int16_t)(v & 0xffffu); }
static inline int32_t im16(uint32_t v) { return (int32_t)v >> 16; }


void frontend_frame_q15(const int16_t *samples, uint32_t *work, int32_t *log_mel)
{
    /* 400 samples (25 ms at 16 kHz) -> periodic Hann (Q15), halved for FFT headroom -> 512-point
       real FFT as a 256-point complex FFT of even/odd pairs plus a split step -> power of bins
       0..256 -> 40 triangular mel bands (Q15 weights, each bin feeds at most two bands) -> ln(1 + e)
       in Q16. The whole per-frame work of the device's front end. work: 256 packed complex. */
    for (int n = 0; n < 256; n++) {
        int i0 = 2 * n, i1 = 2 * n + 1;
        int32_t re = i0 < 400 ? ((int32_t)samples[i0] * kHannQ15[i0]) >> 16 : 0;
        int32_t im = i1 < 400 ? ((int32_t)samples[i1] * kHannQ15[i1]) >> 16 : 0;
        work[n] = ((uint32_t)re & 0xffffu) | ((uint32_t)im << 16);
    }
    cfft256_q15(work);
    uint64_t energy[40] = {0};
    for (int k = MEL_FIRST_BIN; k <= MEL_LAST_BIN; k++) { /* the bins no mel band weighs are skipped */
        uint32_t z = work[k & 255], zc = work[(256 - k) & 255];
        int32_t zr = re16(z), zi = im16(z), cr = re16(zc), ci = -im16(zc);
        int32_t er = (zr + cr) >> 1, ei = (zi + ci) >> 1;
        int32_t o_r = (zi - ci) >> 1, o_i = -((zr - cr) >> 1);
        int32_t wr = kTwiddle512[k][0], wi = kTwiddle512[k][1];
        int32_t tr = (o_r * wr - o_i * wi) >> 15, ti = (o_r * wi + o_i * wr) >> 15;
        int32_t xr = (er + tr) >> 1, xi = (ei + ti) >> 1;
        mel_add(energy, k, (uint32_t)(xr * xr) + (uint32_t)(xi * xi));
    }
    for (int b = 0; b < 40; b++) {
        log_mel[b] = log_q16(energy[b] + 1);
    }
}

/* ------------------------------------------------------------------ PCEN */

static inline uint64_t exp2_fixed(int32_t y, int frac_bits)
{
    /* 2^(y / 2^16) in Q(frac_bits), truncated: the integer part of y a shift, the fraction from a
       33-entry table of 2^(i/32) (Q29) with linear interpolation; 0 below the output's resolution. */
    int32_t f = y & 0xffff, idx = f >> 11, rem = f & 0x7ff;
    uint32_t a = (uint32_t)kExp2Q29[idx], b = (uint32_t)kExp2Q29[idx + 1];
    uint32_t mant = a + (uint32_t)(((uint64_t)(b - a) * rem) >> 11);
    int shift = (y >> 16) + frac_bits - 29;
    if (shift >= 0) return (uint64_t)mant << shift;
    return shift > -32 ? mant >> -shift : 0;
}

static inline uint32_t isqrt32(uint32_t x)
{
    /* floor(sqrt(x)), exactly: 2^(log2(x) / 2) from the log2 and exp2 tables (within ~1e-4 of
       the root), one Newton step (r + x / r) / 2, which lands on the floor or one above it,
       then the fix-up. About a third of a bit-by-bit root's instructions. */
    if (x == 0) return 0;
    uint32_t r = (uint32_t)exp2_fixed(log2_q16(x) >> 1, 0);
    if (r == 0) r = 1;
    r = (r + x / r) >> 1;
    while ((uint64_t)r * r > x) r--;
    while ((uint64_t)(r + 1) * (r + 1) <= x) r++;
    return r;
}

void pcen_frame_q16(const struct pcen_params *p, const int32_t *log_mel, uint64_t *m, int first, int32_t *out,
                    int n_bands)
{
    /* Per band, on frontend_frame_q15's output L = ln(1 + E) (Q16), E the integer mel energy:
       E back from L (exp2); the smoother M += s (E - M) in integers (M = E on the first frame
       of a stream); the gain in the log2 domain, in edge_sed.frontend's units (energy / K):
       g = log2 E - alpha log2(eps + M), clamped at 28; then (2^g + delta)^0.5 - delta^0.5 with
       an integer square root of the Q32 value, normalized to 32 bits. Output Q16. m: n_bands
       smoother states carried from frame to frame. */
    for (int b = 0; b < n_bands; b++) {
        int32_t y = (int32_t)(((int64_t)log_mel[b] * 94548) >> 16); /* log2(1 + E); 94548 = round(2^16 / ln 2) */
        uint64_t e = exp2_fixed(y, 0) - 1;
        uint64_t mb = first ? e : m[b] + (uint64_t)(((int64_t)(e - m[b]) * p->smooth_q16 + (1 << 15)) >> 16);
        m[b] = mb;
        int32_t lm = log2_q16(mb + p->eps_energy) - p->log2_scale_q16;
        int32_t g = y - p->log2_scale_q16 - (int32_t)(((int64_t)lm * p->alpha_q30) >> 30);
        if (g > 28 << 16) g = 28 << 16;
        uint64_t v = (exp2_fixed(g, 16) + p->delta_q16) << 16;
        int k = v >> 32 ? (33 - __builtin_clzll(v)) >> 1 : 0; /* v >> 2k fits 32 bits */
        out[b] = (int32_t)(isqrt32((uint32_t)(v >> 2 * k)) << k) - p->sqrt_delta_q16;
    }
}
