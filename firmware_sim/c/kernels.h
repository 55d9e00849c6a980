#ifndef KERNELS_H_
#define KERNELS_H_
#include <arm_acle.h>
#include <stdint.h>

struct add_params {
    int32_t a_offset, b_offset, out_offset, left_shift;
    int32_t a_multiplier, b_multiplier, out_multiplier;
    int a_shift, b_shift, out_shift;
};

struct lstm_params {
    int n_input, n_units;
    const int8_t *w_input;     /* [4 * n_units][n_input], gates i, f, g, o */
    const int8_t *w_recurrent; /* [4 * n_units][n_units] */
    const int32_t *bias;       /* [4 * n_units], input/hidden offsets folded in */
    int32_t gate_multiplier[4];
    int gate_shift[4];
    int32_t hidden_multiplier, hidden_offset;
    int hidden_shift;
};

void fc_s8(const int8_t *x, int n_in, const int8_t *w, const int32_t *bias, int n_out,
           int32_t multiplier, int shift, int32_t out_offset, int8_t *out);
void conv_gemm_s8(const int8_t *cols, int n_pix, int n_in, const int8_t *w, const int32_t *bias, int n_out,
                  const int32_t *multiplier, const int8_t *shift, int32_t out_offset, int8_t *out);
void dwconv3x3_s8(const int8_t *x, int h, int w, int c, const int8_t *filt, const int32_t *bias,
                  const int32_t *multiplier, const int8_t *shift, int32_t in_offset,
                  int32_t out_offset, int8_t *out);
void mul_s8(const int8_t *a, const int8_t *b, int n, int32_t a_offset, int32_t b_offset, int32_t multiplier,
            int shift, int32_t out_offset, int8_t *out);
void add_s8(const int8_t *a, const int8_t *b, int n, const struct add_params *p, int8_t *out);
void lstm_step_s8(const struct lstm_params *p, const int8_t *x, int8_t *h, int16_t *c, int16_t *scratch,
                  int32_t *acc);
/* PCEN (per-channel energy normalization) on the front end's Q16 ln(1 + energy) values;
   firmware_sim.kernels_ref.pcen_params() derives these from a FrontendConfig. */
struct pcen_params {
    int32_t smooth_q16;     /* s, the smoother's weight of the new frame */
    int32_t alpha_q30;      /* alpha, the gain normalization exponent */
    int32_t log2_scale_q16; /* log2 K: the front end's energy is K x edge_sed.frontend's mel energy */
    uint32_t eps_energy;    /* eps x K (>= 1) */
    uint32_t delta_q16;     /* delta */
    int32_t sqrt_delta_q16; /* delta^0.5 */
};

void frontend_frame_q15(const int16_t *samples, uint32_t *work, int32_t *log_mel);
/* The same frame on CMSIS-DSP's q15 FFT (frontend_cmsis.c): frame 512 and spectrum 1024 int16 of work. */
void frontend_frame_cmsis_q15(const int16_t *samples, int16_t *frame, int16_t *spectrum, int32_t *log_mel);
void pcen_frame_q16(const struct pcen_params *p, const int32_t *log_mel, uint64_t *m, int first, int32_t *out,
                    int n_bands);
#endif
