/* What the processor and the operating system let the kernels use. */
#ifndef MF_CPU_H
#define MF_CPU_H

/* 1 when the bf16 matrix multiply (mf_gemm_bf16) can run here: the CPU has
 * AMX (tiles and their bf16 products) and AVX-512 (F, BW, BF16), the operating
 * system saves their state, and it granted this process the tile data
 * (Linux's ARCH_REQ_XCOMP_PERM), and MINFORMER_NO_BF16 is unset (or 0).
 * The first call asks; later calls answer from memory. Thread-safe. */
int mf_bf16_available(void);

/* Why mf_bf16_available() said 0, as a sentence for an error message. */
const char *mf_bf16_unavailable_reason(void);

#endif
