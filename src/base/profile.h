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
    MF_PROF_PATCH_EMBED = 0, /* patchify, the CLS token and positions (not the Linear) */
    MF_PROF_LINEAR,          /* every Linear's product and bias pass (ops.c): q/k/v/proj, qk,
                              * vo, fc1, fc2, the patch embedding and the head */
    MF_PROF_LAYERNORM,       /* LN1, LN2 and the final norm, with the residual add they ride on */
    MF_PROF_ATTN_WEIGHT,     /* W from qk_tril, and dL/dW back to it (symmetric, cholesky) */
    MF_PROF_ATTN_SCORES,     /* S = q k^T and softmax (and their backward) */
    MF_PROF_ATTN_MIX,        /* A v or A h (and dA, dv) */
    MF_PROF_GELU,
    MF_PROF_RESIDUAL,        /* dropout, and the copies of the residual stream's gradient */
    MF_PROF_HEAD,            /* pooling and the cross-entropy */
    MF_PROF_ZERO_GRAD,
    MF_PROF_BATCH_FILL,      /* decoding, normalizing and augmenting a batch */
    MF_PROF_FINITE_CHECK,    /* the non-finite gradient check */
    MF_PROF_OPTIMIZER,       /* AdamW */
    MF_PROF_THREADS,         /* in the model's parallel regions beyond thread 0's ops: fork,
                              * join, waiting for the other threads, the chunks' gradient
                              * sums, unprobed loop overhead */
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
/* A probe, inside the op it times (each op function of src/kernels/ops.c,
 * and the model's own ops: patchify, attention scores and mixing, pooling):
 *     double t0 = mf_prof_begin();  ...the op...  mf_prof_end(op, dir, t0);
 * Probes do not nest: an op that calls another probed op does not probe
 * itself. When profiling is off each costs one branch. */
double mf_prof_begin_slow(void);
void mf_prof_end_slow(mf_prof_op op, mf_prof_dir dir, double t0);
static inline double mf_prof_begin(void) { return mf_profile_state == 0 ? 0.0 : mf_prof_begin_slow(); }
static inline void mf_prof_end(mf_prof_op op, mf_prof_dir dir, double t0)
{
    if (mf_profile_state != 0) mf_prof_end_slow(op, dir, t0);
}
/* After a parallel region that began (in serial code) at t0 = mf_prof_begin(). */
void mf_prof_region(double t0);
void mf_profile_reset(void);
/* Accumulated seconds and calls of (op, dir) since the last reset. */
double mf_profile_seconds(mf_prof_op op, mf_prof_dir dir);
long mf_profile_calls(mf_prof_op op, mf_prof_dir dir);
const char *mf_profile_op_name(mf_prof_op op);

#endif
