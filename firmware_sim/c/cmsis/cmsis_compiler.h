/* The few CMSIS-Core definitions CMSIS-DSP's fixed-point transforms use, on arm-none-eabi-gcc:
   the DSP-extension intrinsics mapped to GCC's ACLE built-ins (arm_acle.h), the rest as in
   CMSIS-Core's cmsis_gcc.h. CMSIS-DSP's own sources are not in this repository: scripts/setup.sh
   unpacks them from the cmsisdsp source distribution on PyPI (see firmware_sim/c/Makefile). */
#ifndef EDGE_SED_CMSIS_COMPILER_H_
#define EDGE_SED_CMSIS_COMPILER_H_
#include <arm_acle.h>
#include <stdint.h>

#define __ASM __asm
#define __INLINE inline
#define __STATIC_INLINE static inline
#define __STATIC_FORCEINLINE __attribute__((always_inline)) static inline
#define __WEAK __attribute__((weak))
#define __ALIGNED(x) __attribute__((aligned(x)))
#define __RESTRICT __restrict

#define __SSAT(x, n) __ssat((x), (n))
#define __USAT(x, n) __usat((x), (n))
#define __QADD(a, b) __qadd((a), (b))
#define __QSUB(a, b) __qsub((a), (b))
#define __QADD8(a, b) ((uint32_t)__qadd8((int8x4_t)(a), (int8x4_t)(b)))
#define __QSUB8(a, b) ((uint32_t)__qsub8((int8x4_t)(a), (int8x4_t)(b)))
#define __QADD16(a, b) ((uint32_t)__qadd16((int16x2_t)(a), (int16x2_t)(b)))
#define __QSUB16(a, b) ((uint32_t)__qsub16((int16x2_t)(a), (int16x2_t)(b)))
#define __SHADD16(a, b) ((uint32_t)__shadd16((int16x2_t)(a), (int16x2_t)(b)))
#define __SHSUB16(a, b) ((uint32_t)__shsub16((int16x2_t)(a), (int16x2_t)(b)))
#define __QASX(a, b) ((uint32_t)__qasx((int16x2_t)(a), (int16x2_t)(b)))
#define __QSAX(a, b) ((uint32_t)__qsax((int16x2_t)(a), (int16x2_t)(b)))
#define __SHASX(a, b) ((uint32_t)__shasx((int16x2_t)(a), (int16x2_t)(b)))
#define __SHSAX(a, b) ((uint32_t)__shsax((int16x2_t)(a), (int16x2_t)(b)))
#define __SMUAD(a, b) ((uint32_t)__smuad((int16x2_t)(a), (int16x2_t)(b)))
#define __SMUADX(a, b) ((uint32_t)__smuadx((int16x2_t)(a), (int16x2_t)(b)))
#define __SMUSD(a, b) ((uint32_t)__smusd((int16x2_t)(a), (int16x2_t)(b)))
#define __SMUSDX(a, b) ((uint32_t)__smusdx((int16x2_t)(a), (int16x2_t)(b)))
#define __SMLAD(a, b, c) ((uint32_t)__smlad((int16x2_t)(a), (int16x2_t)(b), (int32_t)(c)))
#define __SMLADX(a, b, c) ((uint32_t)__smladx((int16x2_t)(a), (int16x2_t)(b), (int32_t)(c)))
#define __SMLSDX(a, b, c) ((uint32_t)__smlsdx((int16x2_t)(a), (int16x2_t)(b), (int32_t)(c)))
#define __SMLALD(a, b, c) ((uint64_t)__smlald((int16x2_t)(a), (int16x2_t)(b), (int64_t)(c)))
#define __SMLALDX(a, b, c) ((uint64_t)__smlaldx((int16x2_t)(a), (int16x2_t)(b), (int64_t)(c)))
#define __SXTB16(x) ((uint32_t)__sxtb16((int8x4_t)(x)))
#define __PKHBT(a, b, s) ((((uint32_t)(a)) & 0x0000FFFFu) | ((((uint32_t)(b)) << (s)) & 0xFFFF0000u))
#define __PKHTB(a, b, s) ((((uint32_t)(a)) & 0xFFFF0000u) | ((((uint32_t)(b)) >> (s)) & 0x0000FFFFu))

__STATIC_FORCEINLINE uint8_t __CLZ(uint32_t x) { return x ? (uint8_t)__builtin_clz(x) : 32u; }
__STATIC_FORCEINLINE uint32_t __ROR(uint32_t x, uint32_t n)
{
    n %= 32u;
    return n ? (x >> n) | (x << (32u - n)) : x;
}
__STATIC_FORCEINLINE int32_t __SMMLA(int32_t a, int32_t b, int32_t c)
{
    return c + (int32_t)(((int64_t)a * b) >> 32);
}
#endif
