/* Data-parallel training across processes: the ranks of an MPI job and the
 * few collective operations the trainer needs. Built with -DMF_MPI (make
 * MPI=1) these call MPI; otherwise this is one rank and every call is
 * trivial, so the trainer has one code path.
 *
 * Every call below is made by the main thread outside OpenMP parallel
 * regions (MPI_THREAD_FUNNELED). Errors are fatal (MPI_ERRORS_ARE_FATAL):
 * a rank that dies or a link that breaks ends the whole job instead of
 * leaving the others waiting. Internal to the library (hidden in
 * libminformer.so); the command line links the static library. */
#ifndef MF_DIST_H
#define MF_DIST_H

#include <stddef.h>

#include "minformer/core.h"

/* Whether this process was started by a launcher as one of several ranks
 * (Open MPI's OMPI_COMM_WORLD_SIZE, or PMI_SIZE, above 1). Reads only the
 * environment: a plain run never initializes MPI. */
int mf_dist_launched(void);

/* Joins the job when mf_dist_launched() (MPI_Init_thread, errors fatal);
 * otherwise, and in a build without MPI started as one process, stays a
 * single rank. A build without MPI started as several ranks is refused:
 * each would train the whole run alone and write the same files. */
mf_status mf_dist_init(int *argc, char ***argv, mf_error *err);

int mf_dist_rank(void);       /* 0 .. mf_dist_size() - 1; 0 when not joined */
int mf_dist_size(void);       /* 1 when not joined */
int mf_dist_local_size(void); /* ranks on this machine (sharing its memory); 1 when not joined */

/* The chain that continues a left fold across ranks: n floats from rank
 * r - 1, or to rank r + 1. */
void mf_dist_recv_prev(float *buf, size_t n);
void mf_dist_send_next(const float *buf, size_t n);

/* n floats of root's buf to every rank. */
void mf_dist_broadcast(float *buf, size_t n, int root);

/* Each rank's floats [displs[r], displs[r] + counts[r]) of buf to every
 * rank (counts and displs: mf_dist_size() entries, the same on all). */
void mf_dist_allgather(float *buf, const int *counts, const int *displs);

/* Whether flag is non-zero on any rank (a logical or over the job). */
int mf_dist_any(int flag);

/* Ends every rank of the job at once with exit status code (MPI_Abort,
 * which does not return) when joined; otherwise returns. For a failure only
 * this rank knows, where the others would wait for it. */
void mf_dist_abort(int code);

/* Leaves the job (MPI_Finalize) once every rank has finished; no-op when
 * not joined. */
void mf_dist_finalize(void);

#endif
