/* Errors, the random number generator, clocks, threads and aligned memory. */
#define _POSIX_C_SOURCE 200809L
#include "minformer/core.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

mf_status mf_fail(mf_error *err, mf_status status, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
        err->status = status;
    }
    return status;
}

void mf_error_clear(mf_error *err)
{
    if (err) {
        err->status = MF_OK;
        err->message[0] = '\0';
    }
}

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void mf_rng_seed(mf_rng *rng, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) rng->s[i] = splitmix64(&x);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t mf_rng_next(mf_rng *rng)
{
    uint64_t *s = rng->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

float mf_rng_uniform(mf_rng *rng) { return (float)(mf_rng_next(rng) >> 40) * (1.0f / 16777216.0f); }

float mf_rng_normal(mf_rng *rng)
{
    /* Box-Muller in double; u1 in (0, 1] so log never sees 0. */
    double u1 = ((double)(mf_rng_next(rng) >> 11) + 1.0) * (1.0 / 9007199254740992.0);
    double u2 = (double)(mf_rng_next(rng) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

uint32_t mf_rng_below(mf_rng *rng, uint32_t n)
{
    /* Lemire's multiply-shift with rejection. */
    uint64_t m = (mf_rng_next(rng) >> 32) * (uint64_t)n;
    uint32_t low = (uint32_t)m;
    if (low < n) {
        uint32_t threshold = (uint32_t)(-n) % n;
        while (low < threshold) {
            m = (mf_rng_next(rng) >> 32) * (uint64_t)n;
            low = (uint32_t)m;
        }
    }
    return (uint32_t)(m >> 32);
}

uint64_t mf_hash2(uint64_t a, uint64_t b)
{
    uint64_t x = a ^ (b * 0xd1342543de82ef95ULL + 0x2545f4914f6cdd1dULL);
    uint64_t h = splitmix64(&x);
    return h ^ splitmix64(&x);
}

uint64_t mf_hash_bytes(uint64_t h, const void *data, size_t n)
{
    const unsigned char *p = data;
    uint64_t acc = h ^ (0x9e3779b97f4a7c15ULL * (n + 1));
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        acc = (acc ^ w) * 0xff51afd7ed558ccdULL;
        acc ^= acc >> 29;
    }
    uint64_t tail = 0;
    for (size_t k = 0; i + k < n; k++) tail |= (uint64_t)p[i + k] << (8 * k);
    acc = (acc ^ tail) * 0xc4ceb9fe1a85ec53ULL;
    return acc ^ (acc >> 32);
}

double mf_now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void mf_set_threads(int threads)
{
#ifdef _OPENMP
    if (threads <= 0) threads = omp_get_num_procs();
    omp_set_num_threads(threads);
#else
    (void)threads;
#endif
}

int mf_get_threads(void)
{
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

int mf_open_regular(const char *path, uint64_t max_bytes, uint64_t *size, mf_error *err)
{
    if (!path || !path[0]) {
        mf_fail(err, MF_ERR_IO, "an empty file name");
        return -1;
    }
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        mf_fail(err, MF_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    struct stat sb;
    const char *why = NULL;
    if (fstat(fd, &sb)) why = strerror(errno);
    else if (S_ISDIR(sb.st_mode)) why = "is a directory";
    else if (!S_ISREG(sb.st_mode)) why = "not a regular file (a FIFO, socket or device)";
    else if (max_bytes && (uint64_t)sb.st_size > max_bytes) why = "larger than the limit for such a file";
    if (!why) {
        int flags = fcntl(fd, F_GETFL);
        if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK)) why = strerror(errno);
    }
    if (why) {
        if (max_bytes && S_ISREG(sb.st_mode) && (uint64_t)sb.st_size > max_bytes)
            mf_fail(err, MF_ERR_IO, "%s: %llu bytes, more than the %llu accepted for such a file",
                    path, (unsigned long long)sb.st_size, (unsigned long long)max_bytes);
        else
            mf_fail(err, MF_ERR_IO, "%s: %s", path, why);
        close(fd);
        return -1;
    }
    if (size) *size = (uint64_t)sb.st_size;
    return fd;
}

mf_status mf_file_read(const char *path, uint64_t max_bytes, char **text, size_t *len,
                       mf_error *err)
{
    *text = NULL;
    if (len) *len = 0;
    uint64_t size;
    int fd = mf_open_regular(path, max_bytes, &size, err);
    if (fd < 0) return MF_ERR_IO;
    /* The size may change while reading: read until end of file, within the cap. */
    size_t cap = (size_t)size + 1, n = 0;
    char *buf = malloc(cap);
    mf_status st = MF_OK;
    for (;;) {
        if (!buf) {
            st = mf_fail(err, MF_ERR_NOMEM, "%s: out of memory", path);
            break;
        }
        if (n + 1 >= cap) {
            if (max_bytes && n >= max_bytes) {
                st = mf_fail(err, MF_ERR_IO, "%s: more than the %llu bytes accepted for such a file",
                             path, (unsigned long long)max_bytes);
                break;
            }
            char *nb = realloc(buf, cap *= 2);
            if (!nb) free(buf);
            buf = nb;
            continue;
        }
        ssize_t got = read(fd, buf + n, cap - n - 1);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) {
            st = mf_fail(err, MF_ERR_IO, "%s: cannot read: %s", path, strerror(errno));
            break;
        }
        if (got == 0) break;
        n += (size_t)got;
    }
    close(fd);
    if (st) {
        free(buf);
        return st;
    }
    buf[n] = '\0';
    *text = buf;
    if (len) *len = n;
    return MF_OK;
}

/* The refusal of mf_file_replace_begin, checked again just before the rename
 * (a FIFO made meanwhile must not be removed either). ENOENT: nothing there
 * yet, which is fine. */
static int refuse_non_regular(const char *path, mf_error *err)
{
    struct stat sb;
    if (lstat(path, &sb) == 0 && !S_ISREG(sb.st_mode) && !S_ISLNK(sb.st_mode)) {
        mf_fail(err, MF_ERR_IO, "%s: not a regular file; not replaced", path);
        return 1;
    }
    return 0;
}

mf_status mf_file_replace_begin(mf_file_replacement *r, const char *path, mf_error *err)
{
    /* O_EXCL with a name unique to this process and call: never another
     * writer's temporary file, nor an attacker's link. */
    static atomic_uint counter;
    memset(r, 0, sizeof *r);
    r->fd = -1;
    if (!path || !path[0]) return mf_fail(err, MF_ERR_IO, "an empty file name");
    if (refuse_non_regular(path, err)) return MF_ERR_IO;
    size_t plen = strlen(path), tmp_size = plen + 48;
    r->path = malloc(plen + 1);
    r->tmp = malloc(tmp_size);
    if (!r->path || !r->tmp) {
        mf_file_replace_abort(r);
        return mf_fail(err, MF_ERR_NOMEM, "%s: out of memory", path);
    }
    memcpy(r->path, path, plen + 1);
    for (int attempt = 0;; attempt++) {
        snprintf(r->tmp, tmp_size, "%s.tmp-%ld-%u", path, (long)getpid(),
                 atomic_fetch_add(&counter, 1u));
        r->fd = open(r->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (r->fd >= 0 || errno != EEXIST || attempt == 100) break;
    }
    if (r->fd < 0) {
        mf_fail(err, MF_ERR_IO, "%s: cannot create the temporary file %s: %s; not replaced", path,
                r->tmp, strerror(errno));
        free(r->tmp); /* never created: nothing to unlink */
        r->tmp = NULL;
        mf_file_replace_abort(r);
        return MF_ERR_IO;
    }
    return MF_OK;
}

mf_status mf_file_replace_write(mf_file_replacement *r, const void *data, size_t len,
                                mf_error *err)
{
    const char *p = data;
    while (len && !r->error) {
        /* Linux writes at most about 2 GiB at once. */
        size_t chunk = len < ((size_t)1 << 30) ? len : (size_t)1 << 30;
        ssize_t w = write(r->fd, p, chunk);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) r->error = w < 0 ? errno : EIO;
        else p += w, len -= (size_t)w;
    }
    if (r->error)
        return mf_fail(err, MF_ERR_IO, "%s: cannot write: %s; not replaced", r->path,
                       strerror(r->error));
    return MF_OK;
}

mf_status mf_file_replace_commit(mf_file_replacement *r, mf_error *err)
{
    const char *failed = r->error ? "cannot write" : NULL;
    int e = r->error;
    if (!failed && fsync(r->fd)) failed = "cannot sync the new file", e = errno;
    if (close(r->fd) && !failed) failed = "cannot close the new file", e = errno;
    r->fd = -1;
    mf_status st = MF_OK;
    if (failed) st = mf_fail(err, MF_ERR_IO, "%s: %s: %s; not replaced", r->path, failed, strerror(e));
    else if (refuse_non_regular(r->path, err)) st = MF_ERR_IO;
    else if (rename(r->tmp, r->path))
        st = mf_fail(err, MF_ERR_IO, "%s: cannot move the new file into place: %s; not replaced",
                     r->path, strerror(errno));
    if (st) {
        mf_file_replace_abort(r);
        return st;
    }
    /* The rename is durable once the directory is. Filesystems that cannot
     * sync a directory say EINVAL; that is not a failure of the write. */
    const char *slash = strrchr(r->path, '/');
    size_t dlen = !slash ? 1 : slash == r->path ? 1 : (size_t)(slash - r->path);
    memcpy(r->tmp, slash ? r->path : ".", dlen); /* the temporary name is spent: reuse it */
    r->tmp[dlen] = '\0';
    int dfd = open(r->tmp, O_RDONLY | O_CLOEXEC);
    if (dfd >= 0) {
        if (fsync(dfd) && errno != EINVAL && errno != ENOTSUP)
            st = mf_fail(err, MF_ERR_IO, "%s: replaced, but syncing its directory failed: %s",
                         r->path, strerror(errno));
        close(dfd);
    }
    free(r->tmp);
    r->tmp = NULL; /* renamed: abort must not unlink it */
    mf_file_replace_abort(r);
    return st;
}

void mf_file_replace_abort(mf_file_replacement *r)
{
    if (r->fd >= 0) close(r->fd);
    if (r->tmp) unlink(r->tmp);
    free(r->tmp);
    free(r->path);
    r->fd = -1;
    r->tmp = r->path = NULL;
}

mf_status mf_file_replace(const char *path, const void *data, size_t len, mf_error *err)
{
    mf_file_replacement r;
    mf_status st = mf_file_replace_begin(&r, path, err);
    if (st) return st;
    mf_file_replace_write(&r, data, len, NULL); /* reported by commit */
    return mf_file_replace_commit(&r, err);
}

void *mf_alloc(size_t bytes)
{
    if (bytes == 0) bytes = 64;
    size_t rounded = (bytes + 63) & ~(size_t)63;
    if (rounded < bytes) return NULL;
    void *p = aligned_alloc(64, rounded);
    if (p) memset(p, 0, rounded);
    return p;
}

void mf_free(void *p) { free(p); }
