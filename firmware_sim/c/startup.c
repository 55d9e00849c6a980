/* Minimal Cortex-M start-up for QEMU's MPS2 boards: a vector table (initial stack, reset),
   zero .bss, open the semihosting console (newlib rdimon), run main, exit through semihosting. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

extern uint32_t __bss_start__, __bss_end__, __stack_top;
extern int main(void);
extern void initialise_monitor_handles(void);

void Reset_Handler(void)
{
    memset(&__bss_start__, 0, (uint32_t)&__bss_end__ - (uint32_t)&__bss_start__);
    initialise_monitor_handles();
    exit(main());
}

void _init(void) {}
void _fini(void) {}

static void Fault_Handler(void)
{
    for (;;) {
    }
}

__attribute__((section(".vectors"), used)) const void *vectors[16] = {
    &__stack_top, (void *)Reset_Handler, (void *)Fault_Handler, (void *)Fault_Handler,
    (void *)Fault_Handler, (void *)Fault_Handler, (void *)Fault_Handler,
};
