/* The per-op wall-time profile; see profile.h. */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, CLOCK_THREAD_CPUTIME_ID */
#include "base/profile.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "minformer/core.h"
#ifdef _OPENMP
#include <omp.h>
#endif

int mf_profile_state = -1;
static double seconds[MF_PROF_OP_COUNT][3];
static long calls[MF_PROF_OP_COUNT][3];
static double inside; /* thread 0's probed time in the current parallel region */

/* Inside a parallel region (active or not), and whether this is thread 0. */
static int in_region(void)
{
#ifdef _OPENMP
    return omp_get_level() > 0;
#else
    return 0;
#endif
}

static int recording_thread(void)
{
#ifdef _OPENMP
    return omp_get_thread_num() == 0;
#else
    return 1;
#endif
}

int mf_profile_enabled_slow(void)
{
    const char *v = getenv("MINFORMER_PROFILE");
    mf_profile_state = !v || !*v ? 0 : !strcmp(v, "cpu") ? 2 : atoi(v) != 0;
    return mf_profile_state;
}

void mf_profile_enable(int mode) { mf_profile_state = mode == 2 ? 2 : mode != 0; }

/* Wall clock, or in mode 2 the CPU time of the calling thread: on a busy
 * machine that leaves out the time spent waiting for a core. */
static double profile_clock(void)
{
    if (mf_profile_state != 2) return mf_now_seconds();
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double mf_prof_begin_slow(void)
{
    if (!mf_profile_enabled() || !recording_thread()) return 0.0;
    return profile_clock();
}

void mf_prof_end_slow(mf_prof_op op, mf_prof_dir dir, double t0)
{
    if (!mf_profile_enabled() || !recording_thread()) return;
    double dt = profile_clock() - t0;
    if (in_region()) inside += dt;
    seconds[op][dir] += dt;
    calls[op][dir]++;
}

void mf_prof_region(double t0)
{
    if (!mf_profile_enabled()) return;
    double rest = profile_clock() - t0 - inside;
    inside = 0.0;
    seconds[MF_PROF_THREADS][MF_PROF_OTHER] += rest > 0.0 ? rest : 0.0;
    calls[MF_PROF_THREADS][MF_PROF_OTHER]++;
}

void mf_profile_reset(void)
{
    for (int i = 0; i < MF_PROF_OP_COUNT; i++)
        for (int d = 0; d < 3; d++) seconds[i][d] = 0.0, calls[i][d] = 0;
}

double mf_profile_seconds(mf_prof_op op, mf_prof_dir dir) { return seconds[op][dir]; }
long mf_profile_calls(mf_prof_op op, mf_prof_dir dir) { return calls[op][dir]; }

const char *mf_profile_op_name(mf_prof_op op)
{
    static const char *const names[MF_PROF_OP_COUNT] = {
        "patch embed", "linears", "layernorm (+residual)", "attn W from qk_tril",
        "attn scores+softmax", "attn mixing", "gelu", "residual/dropout", "pooling+loss",
        "zero grad", "batch fill", "finite check", "adamw", "threads: fork/join/wait"};
    return op >= 0 && op < MF_PROF_OP_COUNT ? names[op] : "?";
}
