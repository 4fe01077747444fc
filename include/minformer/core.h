/* minformer core: status codes, error reporting, seeded random numbers. */
#ifndef MINFORMER_CORE_H
#define MINFORMER_CORE_H

#include <stddef.h>
#include <stdint.h>

#define MF_VERSION "0.1.0"

/* The library is compiled with -fvisibility=hidden: only what a public header
 * declares between MF_BEGIN_API and MF_END_API leaves libminformer.so, so the
 * kernels and helpers (linear_forward, mf_gemm, the JSON reader...) stay
 * internal and can change without breaking programs linked against it. */
#if defined(__GNUC__)
#define MF_BEGIN_API _Pragma("GCC visibility push(default)")
#define MF_END_API _Pragma("GCC visibility pop")
#else
#define MF_BEGIN_API
#define MF_END_API
#endif

MF_BEGIN_API

/* Every library function that can fail returns an mf_status and fills an
 * mf_error; the library never prints and never exits. The CLI turns an error
 * into one line on stderr. */
typedef enum {
    MF_OK = 0,
    MF_ERR_IO,          /* a file is missing, unreadable or unwritable */
    MF_ERR_FORMAT,      /* a file's content is invalid */
    MF_ERR_CONFIG,      /* an invalid model or training configuration */
    MF_ERR_NOMEM,       /* an allocation failed */
    MF_ERR_NUMERIC,     /* a non-finite loss or gradient */
    MF_ERR_INTERRUPTED  /* a signal asked training to stop */
} mf_status;

typedef struct {
    mf_status status;
    char message[512];
} mf_error;

/* Records status and a printf-style message in err (which may be NULL);
 * returns status so callers can write `return mf_fail(err, ...)`. */
mf_status mf_fail(mf_error *err, mf_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void mf_error_clear(mf_error *err);

/* xoshiro256** seeded through splitmix64. The project never uses rand(). */
typedef struct {
    uint64_t s[4];
} mf_rng;

void mf_rng_seed(mf_rng *rng, uint64_t seed);
uint64_t mf_rng_next(mf_rng *rng);
/* Uniform in [0, 1) with 24 random bits. */
float mf_rng_uniform(mf_rng *rng);
/* Standard normal (Box-Muller, one value per call). */
float mf_rng_normal(mf_rng *rng);
/* Uniform integer in [0, n), n > 0, without modulo bias. */
uint32_t mf_rng_below(mf_rng *rng, uint32_t n);
/* Mixes two words into one: derives independent seeds for streams such as
 * (seed, epoch) or (step, sample) so results never depend on thread count. */
uint64_t mf_hash2(uint64_t a, uint64_t b);

/* A 64-bit hash of n bytes continuing from h (start with 0): a cheap
 * fingerprint to notice that data files changed, not a cryptographic hash. */
uint64_t mf_hash_bytes(uint64_t h, const void *data, size_t n);

/* Wall-clock seconds from a monotonic clock (never clock(), which is CPU time). */
double mf_now_seconds(void);

/* Threads used by parallel kernels; 0 or negative means all cores. */
void mf_set_threads(int threads);
int mf_get_threads(void);

/* Opens path for reading, only if it is a regular file of at most max_bytes
 * (0: no cap). It never blocks: a FIFO or a device is refused before anything
 * waits on it (the open itself uses O_NONBLOCK, then the type is checked on
 * the open descriptor, so a swapped file cannot slip in between). Returns the
 * descriptor, blocking again and close-on-exec, with *size set (may be NULL);
 * or -1 with MF_ERR_IO "PATH: reason" (missing, not a regular file, larger
 * than the cap, or the system's reason). */
int mf_open_regular(const char *path, uint64_t max_bytes, uint64_t *size, mf_error *err);

/* The whole of a regular file (mf_open_regular's checks, at most max_bytes)
 * as a NUL-terminated malloc'd string in *text, its length in *len. MF_ERR_IO
 * "PATH: reason", or MF_ERR_NOMEM. */
mf_status mf_file_read(const char *path, uint64_t max_bytes, char **text, size_t *len,
                       mf_error *err);

/* Replaces path with len bytes atomically: written to a temporary file in the
 * same directory, PATH.tmp-PID-N (created with O_EXCL, mode 0666 less the
 * umask; the process id and a per-process counter, so concurrent writers
 * never share one), fsync'd, renamed over path, and the directory fsync'd. A
 * crash leaves the old file or the new one, never a torn one; at worst a
 * stray temporary file.
 *
 * Only a regular file is replaced: a directory, device, FIFO or socket at
 * path is refused before anything is written ("PATH: not a regular file; not
 * replaced"), since the rename would remove it (--out /dev/null run as root).
 * A symbolic link at path is itself replaced by the new file; its target is
 * left alone, so writing never reaches outside path's directory.
 * Errors are MF_ERR_IO "PATH: reason; not replaced" (the old file is intact,
 * the temporary file removed), or MF_ERR_IO "PATH: replaced, but syncing its
 * directory failed: reason". */
mf_status mf_file_replace(const char *path, const void *data, size_t len, mf_error *err);

/* The same replacement written in pieces, for files too big to build in
 * memory (checkpoints): begin, any number of writes, then commit, or abort to
 * leave path as it was. A failed write is remembered: later writes do
 * nothing and commit reports it (after removing the temporary file), so a
 * caller may write everything and check once at commit. After begin fails
 * there is nothing to abort. */
typedef struct {
    char *path;  /* the file being replaced (a copy) */
    char *tmp;   /* the temporary file, renamed over path at commit */
    int fd;      /* the temporary file's descriptor, -1 when closed */
    int error;   /* errno of the first failed write, 0 while none failed */
} mf_file_replacement;

mf_status mf_file_replace_begin(mf_file_replacement *r, const char *path, mf_error *err);
mf_status mf_file_replace_write(mf_file_replacement *r, const void *data, size_t len,
                                mf_error *err);
mf_status mf_file_replace_commit(mf_file_replacement *r, mf_error *err);
void mf_file_replace_abort(mf_file_replacement *r);

/* Allocation aligned to 64 bytes, zero-filled; NULL on failure. */
void *mf_alloc(size_t bytes);
void mf_free(void *p);

MF_END_API

#endif
