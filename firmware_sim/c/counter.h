/* Instruction counting on QEMU. Run with `-icount shift=0,sleep=off`: the virtual clock then
   advances exactly 1 ns per executed instruction. SysTick, clocked from the board's system clock
   (25 MHz on mps2-an386/an500, 20 MHz on mps2-an505), is read before and after the measured
   code: 1 tick = INSNS_PER_TICK instructions (40 or 50, set by the Makefile). A measurement
   repeats the code enough times that this granularity is < 0.1 %; bench.c's counter_check
   verifies the rate on a loop of known length. */
#ifndef COUNTER_H_
#define COUNTER_H_
#include <stdint.h>

#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)
#ifndef INSNS_PER_TICK
#define INSNS_PER_TICK 40u /* 1 ns per instruction (icount shift=0) / 25 MHz SysTick */
#endif

static inline void counter_start(void)
{
    SYST_RVR = 0x00FFFFFFu;
    SYST_CVR = 0;
    SYST_CSR = 5u; /* enable, processor clock, no interrupt */
    while (SYST_CVR == 0) { /* the first tick loads RVR */
    }
}

/* SysTick counts down from 0xFFFFFF: elapsed ticks since counter_start (< 2^24 ticks). */
static inline uint32_t counter_ticks(void) { return 0x00FFFFFFu - SYST_CVR; }

#endif
