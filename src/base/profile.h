/* Optional per-op wall-time profile of training and evaluation (internal to
 * the library; tools/bench.c prints it). Off unless the environment variable
 * MINFORMER_PROFILE is set to a non-zero value or mf_profile_enable(1) is
 * called; when off, each probe costs one predictable branch and no clock read.
 * MINFORMER_PROFILE=cpu (mf_profile_enable(2)) measures the recording thread's CPU
 * time instead of wall time: with one thread on a busy machine, that leaves
 * out the time spent waiting for a core.
 *
 * Probes in serial code time whole ops, fork and join included. Inside the
 * model's parallel regions (where each thread runs its own images through
 * many ops) only thread 0 records, and mf_prof_region, called after the
 * region, books the rest of the region's time (fork, join, waiting for the
 * other threads) as MF_PROF_THREADS: the profile adds up to the wall time. */
#ifndef MF_PROFILE_H
#define MF_PROFILE_H

typedef enum {
    MF_PROF_PATCH_EMBED = 0, /* patchify, patch Linear, CLS and positions */
    MF_PROF_LAYERNORM,       /* LN1, LN2 and the final norm */
    MF_PROF_ATTN_LINEAR,     /* q/k/v/proj, qk, vo Linears; W from qk_tril */
    MF_PROF_ATTN_SCORES,     /* S = q k^T and softmax (and their backward) */
    MF_PROF_ATTN_MIX,        /* A v or A h (and dA, dv) */
    MF_PROF_MLP_LINEAR,      /* fc1, fc2 */
    MF_PROF_GELU,
    MF_PROF_RESIDUAL,        /* residual copies and adds, dropout */
    MF_PROF_HEAD,            /* pooling, head Linear, cross-entropy */
    MF_PROF_ZERO_GRAD,
    MF_PROF_BATCH_FILL,      /* decoding, normalizing and augmenting a batch */
    MF_PROF_FINITE_CHECK,    /* the non-finite gradient check */
    MF_PROF_OPTIMIZER,       /* AdamW */
    MF_PROF_THREADS,         /* in the model's parallel regions beyond thread 0's ops: fork,
                              * join, waiting for the other threads, unprobed loop overhead */
    MF_PROF_OP_COUNT
} mf_prof_op;

typedef enum { MF_PROF_FORWARD = 0, MF_PROF_BACKWARD = 1, MF_PROF_OTHER = 2 } mf_prof_dir;

extern int mf_profile_state; /* -1: not yet read from the environment, 0 off, 1 wall, 2 CPU */

int mf_profile_enabled_slow(void);
static inline int mf_profile_enabled(void)
{
    return mf_profile_state >= 0 ? mf_profile_state : mf_profile_enabled_slow();
}
void mf_profile_enable(int mode); /* 0 off, 1 wall time, 2 CPU time */
/* A probe: t = mf_prof_begin(); ...; mf_prof_end(op, dir, t). */
double mf_prof_begin(void);
void mf_prof_end(mf_prof_op op, mf_prof_dir dir, double t0);
/* Runs the statements (a call, or a block) under a probe of (op, dir). */
#define MF_PROF(op, dir, ...)                                                                      \
    do {                                                                                           \
        double mf_prof_t0_ = mf_prof_begin();                                                     \
        __VA_ARGS__;                                                                               \
        mf_prof_end(op, dir, mf_prof_t0_);                                                         \
    } while (0)
/* After a parallel region that began (in serial code) at t0 = mf_prof_begin(). */
void mf_prof_region(double t0);
void mf_profile_reset(void);
/* Accumulated seconds and calls of (op, dir) since the last reset. */
double mf_profile_seconds(mf_prof_op op, mf_prof_dir dir);
long mf_profile_calls(mf_prof_op op, mf_prof_dir dir);
const char *mf_profile_op_name(mf_prof_op op);

#endif
