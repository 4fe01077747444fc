/* Errors, the random number generator, clocks, threads and aligned memory. */
#define _POSIX_C_SOURCE 200809L
#include "minformer/core.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
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

mf_status mf_file_replace(const char *path, const void *data, size_t len, mf_error *err)
{
    if (!path || !path[0]) return mf_fail(err, MF_ERR_IO, "an empty file name");
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 32);
    if (!tmp) return mf_fail(err, MF_ERR_NOMEM, "%s: out of memory", path);
    snprintf(tmp, plen + 32, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0) {
        mf_fail(err, MF_ERR_IO, "%s: cannot write: %s", tmp, strerror(errno));
        free(tmp);
        return MF_ERR_IO;
    }
    const char *p = data;
    size_t left = len;
    int e = 0;
    while (left && !e) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) e = w < 0 ? errno : EIO;
        else p += w, left -= (size_t)w;
    }
    if (!e && fsync(fd)) e = errno;
    if (close(fd) && !e) e = errno;
    if (!e && rename(tmp, path)) e = errno;
    if (e) {
        unlink(tmp);
        free(tmp);
        return mf_fail(err, MF_ERR_IO, "%s: cannot write: %s", path, strerror(e));
    }
    free(tmp);
    /* The rename is durable once the directory is. */
    const char *slash = strrchr(path, '/');
    char dir[4096];
    if (!slash) snprintf(dir, sizeof dir, ".");
    else snprintf(dir, sizeof dir, "%.*s", slash == path ? 1 : (int)(slash - path), path);
    int dfd = open(dir, O_RDONLY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return MF_OK;
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
