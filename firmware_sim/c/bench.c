/* Runs every kernel configuration: once on deterministic inputs (an LCG the numpy reference
   repeats) to print a checksum of the outputs, then `reps` times between two SysTick reads to
   count instructions. One line per configuration:
   RESULT {"kernel": ..., "params": {...}, "reps": R, "insns": total over R calls, "fnv": checksum} */
#include <stdio.h>
#include <string.h>

#include "counter.h"
#include "kernels.h"

static uint32_t lcg_state;
static uint32_t lcg(void) { return lcg_state = lcg_state * 1664525u + 1013904223u; }
static void fill_s8(int8_t *p, int n) { for (int i = 0; i < n; i++) p[i] = (int8_t)(lcg() >> 24); }
static void fill_bias(int32_t *p, int n) { for (int i = 0; i < n; i++) p[i] = (int32_t)(lcg() >> 16) - 32768; }

static uint32_t fnv(const void *data, int n_bytes, uint32_t h)
{
    const uint8_t *p = data;
    for (int i = 0; i < n_bytes; i++) h = (h ^ p[i]) * 16777619u;
    return h;
}
#define FNV_START 2166136261u

static void result(const char *kernel, const char *params, int reps, uint32_t ticks, uint32_t checksum)
{
    printf("RESULT {\"kernel\": \"%s\", \"params\": {%s}, \"reps\": %d, \"insns\": %lu, \"fnv\": \"%08lx\"}\n",
           kernel, params, reps, (unsigned long)ticks * INSNS_PER_TICK, (unsigned long)checksum);
}

static int8_t buf_a[16384], buf_b[16384], buf_w[32768], out8[16384];
static int32_t bias[1024], mult[256];
static int8_t shift8[256];

static void bench_fc(int n_in, int n_out, int reps)
{
    lcg_state = 1000u + n_in * 7u + n_out;
    fill_s8(buf_a, n_in);
    fill_s8(buf_w, n_in * n_out);
    fill_bias(bias, n_out);
    int32_t multiplier = 1518500250; /* 0.707 in Q31 */
    int shift = -9;
    fc_s8(buf_a, n_in, buf_w, bias, n_out, multiplier, shift, 3, out8);
    uint32_t h = fnv(out8, n_out, FNV_START);
    counter_start();
    uint32_t t0 = counter_ticks();
    for (int r = 0; r < reps; r++) fc_s8(buf_a, n_in, buf_w, bias, n_out, multiplier, shift, 3, out8);
    uint32_t t1 = counter_ticks();
    char params[64];
    snprintf(params, sizeof params, "\"n_in\": %d, \"n_out\": %d", n_in, n_out);
    result("fc_s8", params, reps, t1 - t0, h);
}

static void bench_conv(int n_pix, int n_in, int n_out, int reps)
{
    lcg_state = 6000u + n_pix * 31u + n_in * 7u + n_out;
    fill_s8(buf_a, n_pix * n_in);
    fill_s8(buf_w, n_in * n_out);
    fill_bias(bias, n_out);
    for (int i = 0; i < n_out; i++) {
        mult[i] = 1073741824 + (int32_t)(lcg() >> 2);
        shift8[i] = (int8_t)(-7 - (int)(lcg() >> 30));
    }
    conv_gemm_s8(buf_a, n_pix, n_in, buf_w, bias, n_out, mult, shift8, -4, out8);
    uint32_t h = fnv(out8, n_pix * n_out, FNV_START);
    counter_start();
    uint32_t t0 = counter_ticks();
    for (int r = 0; r < reps; r++) conv_gemm_s8(buf_a, n_pix, n_in, buf_w, bias, n_out, mult, shift8, -4, out8);
    uint32_t t1 = counter_ticks();
    char params[64];
    snprintf(params, sizeof params, "\"n_pix\": %d, \"n_in\": %d, \"n_out\": %d", n_pix, n_in, n_out);
    result("conv_gemm_s8", params, reps, t1 - t0, h);
}

static void bench_dw(int hh, int ww, int c, int reps)
{
    lcg_state = 2000u + hh * 131u + ww * 17u + c;
    fill_s8(buf_a, hh * ww * c);
    fill_s8(buf_w, 9 * c);
    fill_bias(bias, c);
    for (int i = 0; i < c; i++) {
        mult[i] = 1073741824 + (int32_t)(lcg() >> 2); /* [0.5, 0.75) in Q31 */
        shift8[i] = (int8_t)(-6 - (int)(lcg() >> 30));
    }
    dwconv3x3_s8(buf_a, hh, ww, c, buf_w, bias, mult, shift8, 5, -2, out8);
    uint32_t h = fnv(out8, hh * ww * c, FNV_START);
    counter_start();
    uint32_t t0 = counter_ticks();
    for (int r = 0; r < reps; r++) dwconv3x3_s8(buf_a, hh, ww, c, buf_w, bias, mult, shift8, 5, -2, out8);
    uint32_t t1 = counter_ticks();
    char params[64];
    snprintf(params, sizeof params, "\"h\": %d, \"w\": %d, \"c\": %d", hh, ww, c);
    result("dwconv3x3_s8", params, reps, t1 - t0, h);
}

static void bench_add(int n, int reps)
{
    lcg_state = 3000u + n;
    fill_s8(buf_a, n);
    fill_s8(buf_b, n);
    struct add_params p = {.a_offset = 7, .b_offset = -3, .out_offset = 1, .left_shift = 20,
                           .a_multiplier = 1395864371, .b_multiplier = 1717986918, .out_multiplier = 1288490189,
                           .a_shift = -1, .b_shift = -2, .out_shift = -19};
    add_s8(buf_a, buf_b, n, &p, out8);
    uint32_t h = fnv(out8, n, FNV_START);
    counter_start();
    uint32_t t0 = counter_ticks();
    for (int r = 0; r < reps; r++) add_s8(buf_a, buf_b, n, &p, out8);
    uint32_t t1 = counter_ticks();
    char params[32];
    snprintf(params, sizeof params, "\"n\": %d", n);
    result("add_s8", params, reps, t1 - t0, h);
}

static void bench_mul(int n, int reps)
{
    lcg_state = 7000u + n;
    fill_s8(buf_a, n);
    fill_s8(buf_b, n);
    mul_s8(buf_a, buf_b, n, 3, -5, 1518500250, -7, 2, out8);
    uint32_t h = fnv(out8, n, FNV_START);
    counter_start();
    uint32_t t0 = counter_ticks();
    for (int r = 0; r < reps; r++) mul_s8(buf_a, buf_b, n, 3, -5, 1518500250, -7, 2, out8);
    uint32_t t1 = counter_ticks();
    char params[32];
    snprintf(params, sizeof params, "\"n\": %d", n);
    result("mul_s8", params, reps, t1 - t0, h);
}

static int16_t cell[256], scratch[1024];
static int32_t gate_acc[1024];

static void bench_lstm(int n_in, int n_units, int reps)
{
    lcg_state = 4000u + n_in * 19u + n_units;
    struct lstm_params p = {.n_input = n_in, .n_units = n_units, .w_input = buf_w,
                            .w_recurrent = buf_w + 4 * n_units * n_in, .bias = bias,
                            .gate_multiplier = {1288490189, 1395864371, 1503238554, 1610612736},
                            .gate_shift = {-6, -6, -5, -6},
                            .hidden_multiplier = 1073741824, .hidden_offset = -1, .hidden_shift = -22};
    fill_s8(buf_w, 4 * n_units * (n_in + n_units));
    fill_bias(bias, 4 * n_units);
    fill_s8(buf_a, n_in);  /* x */
    fill_s8(buf_b, n_units);  /* h */
    for (int j = 0; j < n_units; j++) cell[j] = (int16_t)((int32_t)(lcg() >> 17) - 16384);
    lstm_step_s8(&p, buf_a, buf_b, cell, scratch, gate_acc);
    uint32_t h = fnv(cell, 2 * n_units, fnv(buf_b, n_units, FNV_START));
    counter_start();
    uint32_t t0 = counter_ticks();
    for (int r = 0; r < reps; r++) lstm_step_s8(&p, buf_a, buf_b, cell, scratch, gate_acc);
    uint32_t t1 = counter_ticks();
    char params[64];
    snprintf(params, sizeof params, "\"n_input\": %d, \"n_units\": %d", n_in, n_units);
    result("lstm_step_s8", params, reps, t1 - t0, h);
}

static int16_t samples[400];
static uint32_t work[256];
static int32_t log_mel[40];

static void bench_frontend(int reps)
{
    lcg_state = 5000u;
    for (int i = 0; i < 400; i++) samples[i] = (int16_t)(((int32_t)(lcg() >> 16) - 32768) >> 2); /* noise, -12 dBFS */
    frontend_frame_q15(samples, work, log_mel);
    uint32_t h = fnv(log_mel, sizeof log_mel, FNV_START);
    counter_start();
    uint32_t t0 = counter_ticks();
    for (int r = 0; r < reps; r++) frontend_frame_q15(samples, work, log_mel);
    uint32_t t1 = counter_ticks();
    result("frontend_frame_q15", "\"n_fft\": 512, \"n_mels\": 40", reps, t1 - t0, h);
}

#define CMSIS_BSS __attribute__((section(".bss.cmsis"), aligned(4)))
static int16_t cmsis_frame[512] CMSIS_BSS, cmsis_spectrum[1024] CMSIS_BSS;

static void bench_frontend_cmsis(int reps)
{
    /* the same frame as bench_frontend; its 40 outputs are printed, for a tolerance check */
    lcg_state = 5000u;
    for (int i = 0; i < 400; i++) samples[i] = (int16_t)(((int32_t)(lcg() >> 16) - 32768) >> 2);
    frontend_frame_cmsis_q15(samples, cmsis_frame, cmsis_spectrum, log_mel);
    uint32_t h = fnv(log_mel, sizeof log_mel, FNV_START);
    printf("VALUES {\"kernel\": \"frontend_frame_cmsis_q15\", \"out\": [");
    for (int b = 0; b < 40; b++) printf(b ? ", %ld" : "%ld", (long)log_mel[b]);
    printf("]}\n");
    counter_start();
    uint32_t t0 = counter_ticks();
    for (int r = 0; r < reps; r++) frontend_frame_cmsis_q15(samples, cmsis_frame, cmsis_spectrum, log_mel);
    uint32_t t1 = counter_ticks();
    result("frontend_frame_cmsis_q15", "\"n_fft\": 512, \"n_mels\": 40", reps, t1 - t0, h);
}

/* in a section of their own, so that the other benches' buffers keep their addressing (GCC's
   section anchors) and code, and their counts */
#define PCEN_BSS __attribute__((section(".bss.pcen")))
static int32_t pcen_in[8 * 64] PCEN_BSS, pcen_out[64] PCEN_BSS;
static uint64_t pcen_m[64] PCEN_BSS;

static void bench_pcen(int n_bands, int reps)
{
    /* 8 frames of log-mel values as frontend_frame_q15 gives them (Q16 nats): per band a level
       of 8..24, 0..4 of frame-to-frame variation. The checksum covers the 8 frames from the
       start of a stream and the smoother state after them; the timed calls cycle through them. */
    struct pcen_params p = {.smooth_q16 = 1638, .alpha_q30 = 1052266988, .log2_scale_q16 = 1638391,
                            .eps_energy = 34, .delta_q16 = 131072, .sqrt_delta_q16 = 92682}; /* kernels_ref.pcen_params() */
    lcg_state = 8000u + n_bands;
    for (int b = 0; b < n_bands; b++) {
        int32_t level = (8 << 16) + (int32_t)(lcg() >> 12);
        for (int f = 0; f < 8; f++) pcen_in[f * n_bands + b] = level + (int32_t)(lcg() >> 14);
    }
    uint32_t h = FNV_START;
    for (int f = 0; f < 8; f++) {
        pcen_frame_q16(&p, pcen_in + f * n_bands, pcen_m, f == 0, pcen_out, n_bands);
        h = fnv(pcen_out, 4 * n_bands, h);
    }
    h = fnv(pcen_m, 8 * n_bands, h);
    counter_start();
    uint32_t t0 = counter_ticks();
    for (int r = 0; r < reps; r++) pcen_frame_q16(&p, pcen_in + (r & 7) * n_bands, pcen_m, 0, pcen_out, n_bands);
    uint32_t t1 = counter_ticks();
    char params[32];
    snprintf(params, sizeof params, "\"n_bands\": %d", n_bands);
    result("pcen_frame_q16", params, reps, t1 - t0, h);
}

/* A loop of exactly 3 instructions per iteration (SUBS, NOP, BNE): checks the tick rate. */
static void counter_check(int n)
{
    counter_start();
    uint32_t t0 = counter_ticks();
    __asm volatile("mov r0, %0\n1: subs r0, r0, #1\n nop\n bne 1b" : : "r"(n) : "r0", "cc");
    uint32_t t1 = counter_ticks();
    char params[32];
    snprintf(params, sizeof params, "\"n\": %d", n);
    result("counter_check", params, 1, t1 - t0, 0);
}

int main(void)
{
    counter_check(100000);
    bench_fc(64, 16, 200);
    bench_fc(256, 16, 100);
    bench_fc(64, 64, 100);
    bench_fc(128, 32, 100);
    bench_fc(40, 64, 100);
    bench_conv(16, 64, 64, 20);
    bench_conv(16, 256, 32, 20);
    bench_conv(64, 64, 16, 20);
    bench_conv(32, 40, 64, 20);
    bench_dw(8, 8, 16, 50);
    bench_dw(25, 5, 64, 20);
    bench_dw(16, 8, 32, 20);
    bench_add(256, 200);
    bench_add(1024, 50);
    bench_mul(256, 200);
    bench_mul(1024, 50);
    bench_lstm(40, 16, 100);
    bench_lstm(40, 32, 50);
    bench_lstm(40, 64, 20);
    bench_lstm(16, 64, 20);
    bench_frontend(50);
    bench_frontend_cmsis(50);
    bench_pcen(16, 200);
    bench_pcen(40, 100);
    bench_pcen(64, 50);
    return 0;
}
