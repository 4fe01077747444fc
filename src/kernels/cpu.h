/* What the processor and the operating system let the kernels use. */
#ifndef MF_CPU_H
#define MF_CPU_H

/* 1 when the bf16 matrix multiply (mf_gemm_bf16) can run here: the CPU has
 * AVX-512 (F, BW) and AVX512_BF16, the operating system saves their state,
 * and MINFORMER_NO_BF16 is unset (or 0). The first call asks; later calls
 * answer from memory. Thread-safe. */
int mf_bf16_available(void);

/* 1 when it runs on AMX tiles (the CPU has AMX-TILE and AMX-BF16, the system
 * saves the tile state and granted this process the tile data: Linux's
 * ARCH_REQ_XCOMP_PERM), 0 when on VDPBF16PS. The two give different bits
 * (each the same for every thread count). MINFORMER_BF16_KERNEL=dpbf16 at
 * start, or mf_bf16_prefer_dpbf16(1), takes VDPBF16PS where AMX is there
 * too (tests, measurements); call that only between products. */
int mf_bf16_uses_amx(void);
void mf_bf16_prefer_dpbf16(int on);

/* Why mf_bf16_available() said 0, as a sentence for an error message. */
const char *mf_bf16_unavailable_reason(void);

#endif
