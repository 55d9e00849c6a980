/* Both device front ends on real audio, for firmware_sim.frontend_check: reads 400-sample int16
   frames from the host file frames.s16 (semihosting, in QEMU's working directory) and writes, per
   frame, frontend_frame_q15's and then frontend_frame_cmsis_q15's 40 Q16 values (int32) to
   features.s32. */
#include <stdio.h>

#include "kernels.h"

static int16_t samples[400], frame[512] __attribute__((aligned(4))), spectrum[1024] __attribute__((aligned(4)));
static uint32_t work[256];
static int32_t out[2][40];

int main(void)
{
    FILE *in = fopen("frames.s16", "rb"), *dst = fopen("features.s32", "wb");
    if (!in || !dst) {
        printf("frontend_dump: cannot open frames.s16 / features.s32\n");
        return 1;
    }
    long n = 0;
    while (fread(samples, sizeof samples, 1, in) == 1) {
        frontend_frame_q15(samples, work, out[0]);
        frontend_frame_cmsis_q15(samples, frame, spectrum, out[1]);
        fwrite(out, sizeof out, 1, dst);
        n++;
    }
    fclose(in);
    fclose(dst);
    printf("frontend_dump: %ld frames\n", n);
    return 0;
}
