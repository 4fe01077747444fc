/* The ranks of a data-parallel job (dist.h): MPI with -DMF_MPI, otherwise
 * one rank. */
#include "train/dist.h"

#include <limits.h>
#include <stdlib.h>

#ifdef MF_MPI
#include <mpi.h>
#endif

/* The job size a launcher announced in the environment; 1 when none. */
static int launched_size(void)
{
    static const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *v = getenv(vars[i]);
        if (v && *v) {
            char *end;
            long n = strtol(v, &end, 10);
            if (!*end && n > 0 && n <= INT_MAX) return (int)n;
        }
    }
    return 1;
}

int mf_dist_launched(void) { return launched_size() > 1; }

#ifdef MF_MPI

static int joined, rank, size = 1, local_size = 1;

/* MPI counts are ints: longer buffers go in pieces of at most this many floats. */
#define PIECE (1 << 28)

mf_status mf_dist_init(int *argc, char ***argv, mf_error *err)
{
    if (joined || !mf_dist_launched()) return MF_OK;
    int provided = 0;
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
        return mf_fail(err, MF_ERR_IO, "MPI_Init failed");
    /* The default for MPI_COMM_WORLD already, made explicit: a failed call
     * (a peer gone, a broken link) aborts the job rather than returning
     * to a rank whose partners are waiting for it. */
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_ARE_FATAL);
    if (provided < MPI_THREAD_FUNNELED) {
        MPI_Finalize();
        return mf_fail(err, MF_ERR_CONFIG, "this MPI library does not support threads "
                       "(MPI_THREAD_FUNNELED); minformer calls MPI from its main thread only");
    }
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    MPI_Comm local;
    if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &local) ==
        MPI_SUCCESS) {
        MPI_Comm_size(local, &local_size);
        MPI_Comm_free(&local);
    }
    joined = 1;
    return MF_OK;
}

int mf_dist_rank(void) { return rank; }
int mf_dist_size(void) { return size; }
int mf_dist_local_size(void) { return local_size; }

void mf_dist_recv_prev(float *buf, size_t n)
{
    for (size_t at = 0; at < n; at += PIECE) {
        int len = (int)(n - at < PIECE ? n - at : PIECE);
        MPI_Recv(buf + at, len, MPI_FLOAT, rank - 1, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    }
}

void mf_dist_send_next(const float *buf, size_t n)
{
    for (size_t at = 0; at < n; at += PIECE) {
        int len = (int)(n - at < PIECE ? n - at : PIECE);
        MPI_Send(buf + at, len, MPI_FLOAT, rank + 1, 0, MPI_COMM_WORLD);
    }
}

void mf_dist_broadcast(float *buf, size_t n, int root)
{
    if (size == 1) return;
    for (size_t at = 0; at < n; at += PIECE) {
        int len = (int)(n - at < PIECE ? n - at : PIECE);
        MPI_Bcast(buf + at, len, MPI_FLOAT, root, MPI_COMM_WORLD);
    }
}

void mf_dist_allgather(float *buf, const int *counts, const int *displs)
{
    if (size == 1) return;
    MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf, counts, displs, MPI_FLOAT,
                   MPI_COMM_WORLD);
}

int mf_dist_any(int flag)
{
    if (size == 1) return flag != 0;
    int in = flag != 0, out = 0;
    MPI_Allreduce(&in, &out, 1, MPI_INT, MPI_LOR, MPI_COMM_WORLD);
    return out;
}

void mf_dist_abort(int code)
{
    if (joined) MPI_Abort(MPI_COMM_WORLD, code);
}

void mf_dist_finalize(void)
{
    if (!joined) return;
    MPI_Finalize();
    joined = 0;
    rank = 0;
    size = local_size = 1;
}

#else /* one rank */

mf_status mf_dist_init(int *argc, char ***argv, mf_error *err)
{
    (void)argc;
    (void)argv;
    if (mf_dist_launched())
        return mf_fail(err, MF_ERR_CONFIG, "started as one of %d ranks, but this minformer was "
                       "built without MPI: each rank would train the whole run alone; build "
                       "with make MPI=1 to train across ranks", launched_size());
    return MF_OK;
}

int mf_dist_rank(void) { return 0; }
int mf_dist_size(void) { return 1; }
int mf_dist_local_size(void) { return 1; }
void mf_dist_recv_prev(float *buf, size_t n) { (void)buf, (void)n; }
void mf_dist_send_next(const float *buf, size_t n) { (void)buf, (void)n; }
void mf_dist_broadcast(float *buf, size_t n, int root) { (void)buf, (void)n, (void)root; }
void mf_dist_allgather(float *buf, const int *counts, const int *displs)
{
    (void)buf, (void)counts, (void)displs;
}
int mf_dist_any(int flag) { return flag != 0; }
void mf_dist_abort(int code) { (void)code; }
void mf_dist_finalize(void) {}

#endif
