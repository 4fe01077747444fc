/* The encoder: parameter layout, initialization, forward and backward. The
 * attention variants live in attention_qk.c and attention_vo.c, the
 * row-wise operations in ops.c. */
#define _POSIX_C_SOURCE 200809L /* open, read, close for the memory limits */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kernels/gemm.h"
#include "model/param_table.h"
#include "kernels/ops.h"
#include "base/profile.h"
#ifdef _OPENMP
#include <omp.h>
#endif

const mf_tensor_info *mf_model_find_tensor(const mf_model *m, const char *name)
{
    for (int i = 0; i < m->num_tensors; i++)
        if (!strcmp(m->tensors[i].name, name)) return &m->tensors[i];
    return NULL;
}

static mf_status memory_check(const mf_memory_estimate *need, uint64_t resident, int B,
                              mf_error *err);

mf_status mf_model_create(mf_model *m, const mf_config *cfg, mf_error *err)
{
    memset(m, 0, sizeof *m);
    mf_status st = mf_config_validate(cfg, err);
    if (st) return st;
    /* Before allocating: the allocation below zero-fills at once, and a
     * model too large for the machine would be killed by the kernel with no
     * message. Any use of a model needs activations for at least one image. */
    mf_memory_estimate need;
    if ((st = mf_model_memory_estimate(cfg, 1, &need, err))) return st;
    if ((st = memory_check(&need, 0, 1, err))) return st;
    m->cfg = *cfg;
    m->num_params = param_layout(cfg, NULL, &m->num_tensors);
    m->tensors = mf_alloc((size_t)m->num_tensors * sizeof *m->tensors);
    m->block_views = mf_alloc(2 * (size_t)cfg->layers * sizeof *m->block_views);
    m->memory = mf_alloc(4 * m->num_params * sizeof(float));
    if (!m->tensors || !m->block_views || !m->memory) {
        mf_model_free(m);
        return mf_fail(err, MF_ERR_NOMEM, "out of memory for a model of %zu parameters",
                       m->num_params);
    }
    param_layout(cfg, m->tensors, NULL);
    m->params = m->memory;
    m->grads = m->params + m->num_params;
    m->adam_m = m->grads + m->num_params;
    m->adam_v = m->adam_m + m->num_params;
    param_bind_views(cfg, m->params, &m->p, m->block_views);
    param_bind_views(cfg, m->grads, &m->g, m->block_views + cfg->layers);
    return MF_OK;
}

static void free_activations(mf_activations *a)
{
    if (!a) return;
    mf_free(a->memory);
    mf_free(a->layers);
    mf_free(a->labels);
    mf_free(a);
}

void mf_model_free(mf_model *m)
{
    if (!m) return;
    mf_free(m->tensors);
    mf_free(m->block_views);
    mf_free(m->memory);
    free_activations(m->acts);
    memset(m, 0, sizeof *m);
}

/* ---- activations ------------------------------------------------------- */

typedef struct {
    float *base;
    size_t used;
} arena;

static float *take(arena *a, size_t n)
{
    n = (n + 15) & ~(size_t)15; /* keep every buffer 64-byte aligned */
    float *p = a->base ? a->base + a->used : NULL;
    a->used += n;
    return p;
}

/* Carves every activation buffer for B images out of one block; with
 * a->base == NULL it only measures (and acts->layers may be NULL). */
static int backward_chunks(const mf_config *c, int B);

static void carve(mf_activations *acts, arena *ar, const mf_config *c, int B, size_t gpart_stride)
{
    size_t T = (size_t)mf_config_tokens(c), P = (size_t)mf_config_patches(c), N = (size_t)c->dim;
    size_t H = (size_t)c->heads, F = (size_t)c->mlp_ratio * N, K = (size_t)c->classes;
    size_t M = (size_t)B * T, cpp = (size_t)c->channels * c->patch * c->patch;
    unsigned need = qk_variant((int)c->qk)->acts | vo_variant((int)c->vo)->acts;
    acts->patches = take(ar, (size_t)B * P * cpp);
    acts->tokens = take(ar, (size_t)B * P * N);
    for (int l = 0; l <= c->layers; l++) {
        mf_layer_acts scratch, *la = acts->layers ? &acts->layers[l] : &scratch;
        memset(la, 0, sizeof *la);
        la->x = take(ar, M * N);
        if (l == c->layers) break;
        la->ln1 = take(ar, M * N);
        la->ln1_mean = take(ar, M);
        la->ln1_rstd = take(ar, M);
        la->q = take(ar, M * N);
        if (need & ACTS_KEYS) la->k = take(ar, M * N);
        if (need & ACTS_FULL_WEIGHT) la->w_full = take(ar, N * N);
        la->att = take(ar, (size_t)B * H * T * T);
        if (need & ACTS_VALUES) la->v = take(ar, M * N);
        la->mix = take(ar, M * N);
        if (F) {
            la->x_mid = take(ar, M * N);
            la->ln2 = take(ar, M * N);
            la->ln2_mean = take(ar, M);
            la->ln2_rstd = take(ar, M);
            la->gelu_slope = take(ar, M * F);
            la->gelu = take(ar, M * F);
        }
    }
    acts->branch = take(ar, M * N);
    acts->final_in = take(ar, (size_t)B * N);
    acts->final_out = take(ar, M * N);
    acts->final_mean = take(ar, M);
    acts->final_rstd = take(ar, M);
    acts->pooled = take(ar, (size_t)B * N);
    acts->logits = take(ar, (size_t)B * K);
    acts->probs = take(ar, (size_t)B * K);
    mf_grad_scratch *g = &acts->g;
    g->dh = take(ar, M * N);
    g->dq = take(ar, M * N);
    g->dk = take(ar, M * N);
    g->dv = take(ar, M * N);
    g->dmix = take(ar, M * N);
    g->datt = take(ar, (size_t)B * H * T * T);
    g->dw_full = take(ar, N * N);
    g->dln2 = F ? take(ar, M * N) : NULL;
    g->dfc1 = F ? take(ar, M * F) : NULL;
    acts->dx = take(ar, M * N);
    acts->dattn = take(ar, M * N);
    acts->dmask_mlp = c->dropout > 0.0f ? take(ar, M * N) : NULL;
    acts->dmask_attn = c->dropout > 0.0f ? take(ar, M * N) : NULL;
    acts->dfinal = take(ar, M * N);
    acts->dpooled = take(ar, (size_t)B * N);
    acts->dlogits = take(ar, (size_t)B * K);
    acts->gpart_stride = gpart_stride;
    acts->gpart = take(ar, (size_t)backward_chunks(c, B) * gpart_stride);
}

/* What one chunk's slice of gpart holds: the block's gradients (numel
 * floats), then dL/dW (N,N) for the symmetric and Cholesky forms. */
static size_t block_grad_floats(const mf_config *c, size_t numel)
{
    unsigned need = qk_variant((int)c->qk)->acts | vo_variant((int)c->vo)->acts;
    return numel + (need & ACTS_FULL_WEIGHT ? (size_t)c->dim * c->dim : 0);
}

mf_status mf_model_reserve(mf_model *m, int B, mf_error *err)
{
    if (B <= 0) return mf_fail(err, MF_ERR_CONFIG, "batch size must be positive");
    if (m->acts && m->acts->capacity >= B) return MF_OK;
    free_activations(m->acts);
    m->acts = NULL;
    m->batch_capacity = 0;
    mf_memory_estimate need;
    mf_status st = mf_model_memory_estimate(&m->cfg, B, &need, err);
    if (!st) st = memory_check(&need, need.parameters, B, err); /* the parameters are in memory */
    if (st) return st;
    mf_activations *a = mf_alloc(sizeof *a);
    if (!a) return mf_fail(err, MF_ERR_NOMEM, "out of memory for activations");
    a->layers = mf_alloc((size_t)(m->cfg.layers + 1) * sizeof *a->layers);
    a->labels = mf_alloc((size_t)B * sizeof(int));
    arena ar = {NULL, 0};
    size_t numel = param_block_floats(&m->cfg);
    size_t stride = (block_grad_floats(&m->cfg, numel) + 15) & ~(size_t)15; /* 64-byte slices */
    if (a->layers) carve(a, &ar, &m->cfg, B, stride);
    a->memory = a->layers ? mf_alloc(ar.used * sizeof(float)) : NULL;
    if (!a->memory || !a->labels) {
        free_activations(a);
        return mf_fail(err, MF_ERR_NOMEM, "out of memory for activations of batch %d (%zu MiB)", B,
                       ar.used * sizeof(float) >> 20);
    }
    ar.base = a->memory;
    ar.used = 0;
    carve(a, &ar, &m->cfg, B, stride);
    a->block_numel = numel;
    a->block0 = param_block0(&m->cfg);
    a->capacity = B;
    m->acts = a;
    m->batch_capacity = B;
    return MF_OK;
}

/* ---- memory --------------------------------------------------------------- */

/* Beyond this many floats (2^56 bytes / 4: far past any machine) the estimate
 * is not computed exactly, so no size computation can overflow. */
#define HUGE_FLOATS 72057594037927936.0 /* 2^56 */

mf_status mf_model_memory_estimate(const mf_config *cfg, int batch, mf_memory_estimate *out,
                                   mf_error *err)
{
    memset(out, 0, sizeof *out);
    mf_status st = mf_config_validate(cfg, err);
    if (st) return st;
    if (batch <= 0) return mf_fail(err, MF_ERR_CONFIG, "batch size must be positive");
    const mf_config *c = cfg;
    /* A bound in floating point first: within it every size below is exact. */
    double T = mf_config_tokens(c), P = mf_config_patches(c), N = c->dim, H = c->heads;
    double F = (double)c->mlp_ratio * N, K = c->classes, B = batch, M = B * T;
    double cpp = (double)c->channels * c->patch * c->patch, L = c->layers;
    double params = L * ((4.0 + 2.0 * c->mlp_ratio) * N * N + (10.0 + c->mlp_ratio) * N) +
                    N * cpp + (T + 2.0) * N + (K + 4.0) * N + K;
    double chunks = B < 2 ? 2.0 : B + 1.0; /* at most B chunks, plus evening */
    double acts = (L + 2.0) * 32.0 * (M * N + M * F + B * H * T * T + N * N + B * P * cpp + B * K + M) +
                  chunks * ((4.0 + 2.0 * c->mlp_ratio) * N * N + (10.0 + c->mlp_ratio) * N + N * N + 16.0);
    double img = (double)c->channels * c->image_size * c->image_size;
    if (params > HUGE_FLOATS || acts > HUGE_FLOATS) {
        out->parameters = params > HUGE_FLOATS ? UINT64_MAX / 4 : (uint64_t)(16.0 * params);
        out->activations = acts > HUGE_FLOATS ? UINT64_MAX / 4 : (uint64_t)(4.0 * acts);
        out->total = out->parameters + out->activations;
        return MF_OK;
    }
    /* Exactly what mf_model_create and mf_model_reserve allocate. */
    int num_tensors;
    size_t np = param_layout(c, NULL, &num_tensors);
    size_t numel = param_block_floats(c);
    size_t stride = (block_grad_floats(c, numel) + 15) & ~(size_t)15;
    mf_activations probe;
    memset(&probe, 0, sizeof probe);
    arena ar = {NULL, 0};
    carve(&probe, &ar, c, batch, stride);
    uint64_t tensors = (uint64_t)num_tensors * sizeof(mf_tensor_info) +
                       2 * (uint64_t)c->layers * sizeof(mf_block_params);
    out->parameters = 16 * (uint64_t)np + tensors;
    /* Plus the batch of inputs the trainer and the evaluator fill: images,
     * labels and their indices. */
    out->activations = 4 * (uint64_t)ar.used + (uint64_t)(c->layers + 1) * sizeof(mf_layer_acts) +
                       sizeof(mf_activations) + (uint64_t)batch * (4 * (uint64_t)img + 3 * sizeof(int));
    out->total = out->parameters + out->activations;
    return MF_OK;
}

/* Reads at most cap - 1 bytes of a small system file (/proc, /sys) into buf,
 * NUL-terminated; -1 when it cannot be read. Never blocks: opened as a
 * regular file only, without waiting. */
static long read_system_file(const char *path, char *buf, size_t cap)
{
    int fd = mf_open_regular(path, 0, NULL, NULL);
    if (fd < 0) return -1;
    size_t len = 0;
    while (len + 1 < cap) {
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n <= 0) break;
        len += (size_t)n;
    }
    close(fd);
    buf[len] = '\0';
    return (long)len;
}

/* The number after "key " at the start of a line of text; 0 if absent. */
static int text_value(const char *text, const char *key, uint64_t *out)
{
    size_t n = strlen(key);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, key, n) || (p[n] != ' ' && p[n] != '\t' && p[n] != ':')) continue;
        p += n + 1;
        while (*p == ' ' || *p == '\t' || *p == ':') p++;
        if (*p < '0' || *p > '9') return 0;
        uint64_t v = 0;
        for (; *p >= '0' && *p <= '9'; p++) v = v > UINT64_MAX / 10 - 1 ? UINT64_MAX : v * 10 + (uint64_t)(*p - '0');
        *out = v;
        return 1;
    }
    return 0;
}

/* A file holding one number (or "max": *out = UINT64_MAX); 0 if unreadable. */
static int file_number(const char *path, uint64_t *out)
{
    char buf[64];
    if (read_system_file(path, buf, sizeof buf) <= 0) return 0;
    if (!strncmp(buf, "max", 3)) {
        *out = UINT64_MAX;
        return 1;
    }
    char line[80];
    snprintf(line, sizeof line, "v %s", buf);
    return text_value(line, "v", out);
}

/* Bytes in use that the kernel would rather drop than fail an allocation:
 * the file cache, which a cgroup's usage counts. */
static uint64_t cgroup_cache(const char *dir, const char *prefix, char *buf, size_t cap)
{
    char path[4200], key[64];
    snprintf(path, sizeof path, "%s/memory.stat", dir);
    if (read_system_file(path, buf, cap) < 0) {
        buf[0] = '\0';
        return 0;
    }
    uint64_t inactive = 0, active = 0;
    snprintf(key, sizeof key, "%sinactive_file", prefix);
    text_value(buf, key, &inactive);
    snprintf(key, sizeof key, "%sactive_file", prefix);
    text_value(buf, key, &active);
    return inactive + active;
}

/* The limit of dir less what is used there, or UINT64_MAX for no limit. */
static uint64_t cgroup_room(uint64_t limit, uint64_t usage, uint64_t cache)
{
    if (limit >= ((uint64_t)1 << 60)) return UINT64_MAX; /* "max", or v1's huge "unlimited" */
    uint64_t used = usage > cache ? usage - cache : 0;
    return limit > used ? limit - used : 0;
}

/* What the memory cgroup of this process (and those above it, which limit
 * it as well) leaves: UINT64_MAX when there is no limit or no cgroup. */
static uint64_t cgroup_available(void)
{
    enum { CAP = 1 << 16 };
    char *buf = malloc(CAP);
    if (!buf) return UINT64_MAX;
    uint64_t best = UINT64_MAX;
    char own[4096] = "", dir[4200];
    int v2 = 0;
    if (read_system_file("/proc/self/cgroup", buf, CAP) > 0) {
        /* Lines "ID:CONTROLLERS:PATH": v2's is "0::PATH", v1's memory
         * controller "ID:memory:PATH" (or among others, comma-separated). */
        for (char *line = buf; line && *line;) {
            char *next = strchr(line, '\n');
            if (next) *next++ = '\0';
            char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
            if (c2) {
                *c2 = '\0';
                const char *ctl = c1 + 1, *path = c2 + 1;
                int is_v2 = !strcmp(line, "0") && !ctl[0];
                int is_mem = 0;
                for (const char *t = ctl; *t;) {
                    size_t n = strcspn(t, ",");
                    if (n == 6 && !strncmp(t, "memory", 6)) is_mem = 1;
                    t += n + (t[n] == ',');
                }
                if (is_mem || (is_v2 && !own[0])) {
                    snprintf(own, sizeof own, "%s", path);
                    v2 = !is_mem;
                    if (is_mem) break; /* v1's memory controller is the one that limits */
                }
            }
            line = next;
        }
    }
    const char *root = v2 ? "/sys/fs/cgroup" : "/sys/fs/cgroup/memory";
    /* The path is relative to the hierarchy's root; inside a container whose
     * cgroup is mounted as the root, it may not exist: then the root is ours. */
    snprintf(dir, sizeof dir, "%s%s", root, own);
    char probe[4300];
    snprintf(probe, sizeof probe, "%s/%s", dir, v2 ? "memory.current" : "memory.usage_in_bytes");
    if (access(probe, R_OK)) snprintf(dir, sizeof dir, "%s", root);
    if (v2) {
        for (;;) { /* up to the root, each level's limit applies */
            char path[4300];
            uint64_t limit, usage;
            snprintf(path, sizeof path, "%s/memory.max", dir);
            int has_limit = file_number(path, &limit);
            snprintf(path, sizeof path, "%s/memory.current", dir);
            if (has_limit && limit != UINT64_MAX && file_number(path, &usage)) {
                uint64_t room = cgroup_room(limit, usage, cgroup_cache(dir, "", buf, CAP));
                if (room < best) best = room;
            }
            char *slash = strrchr(dir, '/');
            if (strlen(dir) <= strlen(root) || !slash) break;
            *slash = '\0';
        }
    } else {
        char path[4300];
        uint64_t limit = UINT64_MAX, hier = UINT64_MAX, usage;
        snprintf(path, sizeof path, "%s/memory.limit_in_bytes", dir);
        file_number(path, &limit);
        uint64_t cache = cgroup_cache(dir, "total_", buf, CAP);
        if (text_value(buf, "hierarchical_memory_limit", &hier) && hier < limit) limit = hier;
        snprintf(path, sizeof path, "%s/memory.usage_in_bytes", dir);
        if (file_number(path, &usage)) best = cgroup_room(limit, usage, cache);
    }
    free(buf);
    return best;
}

mf_status mf_memory_available(uint64_t *bytes, const char **source, mf_error *err)
{
    *bytes = UINT64_MAX;
    if (source) *source = "unknown";
    const char *env = getenv("MINFORMER_MEMORY_LIMIT");
    if (env && env[0]) {
        uint64_t v = 0;
        const char *p = env;
        for (; *p >= '0' && *p <= '9' && v <= UINT64_MAX / 10 - 1; p++) v = v * 10 + (uint64_t)(*p - '0');
        if (*p)
            return mf_fail(err, MF_ERR_CONFIG, "MINFORMER_MEMORY_LIMIT='%.40s': expected a number "
                           "of bytes", env);
        *bytes = v;
        if (source) *source = "MINFORMER_MEMORY_LIMIT";
        return MF_OK;
    }
    uint64_t cg = cgroup_available();
    char buf[8192];
    uint64_t kb;
    uint64_t avail = UINT64_MAX;
    if (read_system_file("/proc/meminfo", buf, sizeof buf) > 0 && text_value(buf, "MemAvailable", &kb))
        avail = kb > UINT64_MAX / 1024 ? UINT64_MAX : kb * 1024;
    if (cg < avail) {
        *bytes = cg;
        if (source) *source = "cgroup limit";
    } else if (avail != UINT64_MAX) {
        *bytes = avail;
        if (source) *source = "MemAvailable";
    }
    return MF_OK;
}

static unsigned long long mib_up(uint64_t b) { return (unsigned long long)(b / 1048576 + (b % 1048576 != 0)); }

/* Refuses when need does not fit: resident bytes of it (the parameters, when
 * activations are added to a model) are in memory already, so counted by the
 * system as used; MINFORMER_MEMORY_LIMIT is a budget for the whole model. */
static mf_status memory_check(const mf_memory_estimate *need, uint64_t resident, int B,
                              mf_error *err)
{
    uint64_t avail;
    const char *source;
    mf_status st = mf_memory_available(&avail, &source, err);
    if (st || avail == UINT64_MAX) return st;
    if (strcmp(source, "MINFORMER_MEMORY_LIMIT"))
        avail = avail > UINT64_MAX - resident ? UINT64_MAX : avail + resident;
    if (need->total <= avail) return MF_OK;
    return mf_fail(err, MF_ERR_NOMEM, "the model needs about %llu MiB (parameters %llu MiB with "
                   "their gradients and AdamW moments, activations %llu MiB for a batch of %d), "
                   "only %llu MiB available (%s)", mib_up(need->total), mib_up(need->parameters),
                   mib_up(need->activations), B, (unsigned long long)(avail >> 20), source);
}

void mf_model_zero_grad(mf_model *m)
{
    double t0 = mf_prof_begin();
    memset(m->grads, 0, m->num_params * sizeof(float));
    mf_prof_end(MF_PROF_ZERO_GRAD, MF_PROF_OTHER, t0);
}

const float *mf_model_logits(const mf_model *m) { return m->acts ? m->acts->logits : NULL; }

/* ---- threads and slices of the batch ------------------------------------ */

/* The forward pass and the input-gradient half of the backward pass touch
 * only the rows of their own images, so each thread runs its share of the
 * images through whole blocks with no barrier between ops: one parallel
 * region for the forward pass, one per block for the backward pass (whose
 * parameter gradients are summed per fixed chunk of images, then over the
 * chunks in order: backward_chunks). Every element is computed by the same
 * operations in the same order whatever the share (mf_gemm's contract: an
 * element depends only on its row, its column and K), so results do not
 * depend on the thread count.
 * A share goes through in chunks of about CHUNK_ROWS token rows: the chunk's
 * activations stay in cache from one op to the next, and the products stay
 * tall enough for the GEMM (measured on MNIST and CIFAR-10, one thread: 768
 * rows took 8-10% less CPU time per step than 256 and 128, as much as 1024). */
#ifndef CHUNK_ROWS
#define CHUNK_ROWS 768
#endif

static int thread_id(void)
{
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

static int thread_count(void)
{
#ifdef _OPENMP
    return omp_get_num_threads();
#else
    return 1;
#endif
}

/* This thread's images [*b0, *b1) of B. */
static void my_images(int B, int *b0, int *b1)
{
    int t = thread_id(), n = thread_count();
    *b0 = (int)((long)B * t / n);
    *b1 = (int)((long)B * (t + 1) / n);
}

static int chunk_images(const mf_config *c)
{
    int per = CHUNK_ROWS / mf_config_tokens(c);
    return per > 0 ? per : 1;
}

/* Backward cuts the batch into chunks that do not depend on the thread
 * count: each chunk's parameter gradients are summed on their own and the
 * chunks' sums added in order, so every thread count gives the same bits.
 * An even count, so two threads get the same number of images. Chunk i
 * holds images [i B / n, (i + 1) B / n). */
static int backward_chunks(const mf_config *c, int B)
{
    int per = chunk_images(c), n = (B + per - 1) / per;
    if (n > 1 && n % 2) n++;
    return n < B ? n : B;
}

/* The activations of images b0.. of one layer: every row or tile pointer
 * moved to image b0; w_full (one matrix for all images) unchanged. */
static mf_layer_acts layer_slice(const mf_layer_acts *a, const mf_config *c, int b0)
{
    size_t T = (size_t)mf_config_tokens(c), N = (size_t)c->dim, F = (size_t)c->mlp_ratio * N;
    size_t r = (size_t)b0 * T, tiles = (size_t)b0 * c->heads * T * T;
    mf_layer_acts v = *a;
#define SHIFT(field, by) v.field = v.field ? v.field + (by) : NULL
    SHIFT(x, r * N);
    SHIFT(ln1, r * N);
    SHIFT(ln1_mean, r);
    SHIFT(ln1_rstd, r);
    SHIFT(q, r * N);
    SHIFT(k, r * N);
    SHIFT(att, tiles);
    SHIFT(v, r * N);
    SHIFT(mix, r * N);
    SHIFT(x_mid, r * N);
    SHIFT(ln2, r * N);
    SHIFT(ln2_mean, r);
    SHIFT(ln2_rstd, r);
    SHIFT(gelu_slope, r * F);
    SHIFT(gelu, r * F);
    return v;
}

static mf_grad_scratch scratch_slice(const mf_grad_scratch *s, const mf_config *c, int b0)
{
    size_t T = (size_t)mf_config_tokens(c), N = (size_t)c->dim, F = (size_t)c->mlp_ratio * N;
    size_t r = (size_t)b0 * T, tiles = (size_t)b0 * c->heads * T * T;
    mf_grad_scratch v = *s;
    SHIFT(dh, r * N);
    SHIFT(dq, r * N);
    SHIFT(dk, r * N);
    SHIFT(dv, r * N);
    SHIFT(dmix, r * N);
    SHIFT(datt, tiles);
    SHIFT(dln2, r * N);
    SHIFT(dfc1, r * F);
#undef SHIFT
    return v;
}

/* ---- forward ------------------------------------------------------------- */

/* Cuts images (B,C,S,S) into patches (B*P, C*p*p), row-major over the patch
 * grid, each flattened channel-major (c, y, x). */
static void patchify(float *patches, const float *images, const mf_config *c, int B)
{
    int S = c->image_size, p = c->patch, g = S / p, C = c->channels, cpp = C * p * p;
    for (int b = 0; b < B; b++)
        for (int gy = 0; gy < g; gy++)
            for (int gx = 0; gx < g; gx++) {
                float *dst = patches + ((size_t)b * g * g + (size_t)gy * g + gx) * cpp;
                for (int ch = 0; ch < C; ch++)
                    for (int y = 0; y < p; y++) {
                        const float *src = images + (((size_t)b * C + ch) * S + (size_t)gy * p + y) * S + (size_t)gx * p;
                        memcpy(dst + ((size_t)ch * p + y) * p, src, (size_t)p * sizeof(float));
                    }
            }
}

static uint64_t dropout_site_seed(const mf_model *m, int site)
{
    return mf_hash2(m->dropout_seed, (uint64_t)site);
}

static int dropout_on(const mf_model *m) { return m->training && m->cfg.dropout > 0.0f; }

/* W from qk_tril, once per forward pass, before the threads split the images. */
static void attention_prepare(mf_layer_acts *a, const mf_block_params *p, const mf_config *c,
                              const mf_attn_dims *d)
{
    const mf_qk_variant *qk = qk_variant((int)c->qk);
    if (qk->prepare) MF_PROF(MF_PROF_ATTN_LINEAR, MF_PROF_FORWARD, qk->prepare(a, p, d));
}

/* The two attention calls of a block, chosen by the configuration. */
static void attention_forward(float *out, mf_layer_acts *a, const mf_block_params *p,
                              const mf_config *c, const mf_attn_dims *d)
{
    qk_variant((int)c->qk)->forward(a, p, d);
    vo_variant((int)c->vo)->forward(out, a, p, d);
}

/* Where the LayerNorm that follows a residual add writes: LN2 of the same
 * block, LN1 of the next, the final norm (mean pooling), or nowhere. */
typedef struct {
    float *y, *mean, *rstd;
    const float *w, *b;
} norm_target;

/* x_out = x + drop(branch + bias), then the LayerNorm that follows, in one
 * pass over the rows. bias may be NULL. With dropout the bias is added and
 * the mask applied to branch first, in separate passes. `first` is the index
 * of the slice's first element in the (M,N) tensor, for the dropout mask. */
static void residual_forward(const mf_model *m, float *x_out, const float *x, float *branch,
                             const float *bias, int site, const norm_target *nt, int rows,
                             size_t first)
{
    int N = m->cfg.dim;
    double t0 = mf_prof_begin();
    if (dropout_on(m)) {
        if (bias) bias_add_forward(branch, bias, rows, N);
        dropout_apply_at(branch, first, (size_t)rows * N, m->cfg.dropout, dropout_site_seed(m, site));
        bias = NULL;
    }
    residual_layernorm_forward(x_out, nt->y, nt->mean, nt->rstd, x, branch, bias, nt->w, nt->b, rows, N);
    mf_prof_end(nt->y ? MF_PROF_LAYERNORM : MF_PROF_RESIDUAL, MF_PROF_FORWARD, t0);
}

/* With CLS pooling the head reads only the CLS rows of the last block's
 * output, so that block's MLP branch (with the residual adds and LayerNorm
 * around it) runs on those rows alone: the same values on those rows, 1/T
 * of the work. Its activations (x_mid, ln2, gelu_slope, gelu) are compact,
 * row b for image b, and only the CLS rows of the final residual stream
 * exist. */
static int cls_only_mlp(const mf_config *c, int l)
{
    return c->pool == MF_POOL_CLS && c->mlp_ratio > 0 && l == c->layers - 1;
}

/* Likewise the last block's attention needs queries, scores, mixing and the
 * output matrix for the CLS row only (keys and values for every row);
 * full_attention keeps every row for attention maps. Returns the query rows
 * per image (mf_attn_dims.Q). */
static int attention_query_rows(const mf_model *m, int l)
{
    const mf_config *c = &m->cfg;
    int last_cls = c->pool == MF_POOL_CLS && l == c->layers - 1 && !m->full_attention;
    return last_cls ? 1 : mf_config_tokens(c);
}

/* Without an MLP: the last block's residual add on the CLS rows, which are
 * all the head reads (and, with Q = 1, all the attention wrote). */
static void cls_residual_forward(mf_model *m, int l, int b0, int nb, float *branch)
{
    const mf_config *c = &m->cfg;
    mf_activations *A = m->acts;
    int N = c->dim, T = mf_config_tokens(c);
    norm_target none = {NULL, NULL, NULL, NULL, NULL};
    for (int i = 0; i < nb; i++) {
        size_t at = (size_t)(b0 + i) * T * N;
        residual_forward(m, A->layers[l + 1].x + at, A->layers[l].x + at, branch + (size_t)i * T * N,
                         NULL, 1 + 2 * l, &none, 1, at);
    }
}

/* The last block's MLP branch for the CLS rows of images b0 .. b0+nb-1;
 * branch holds the attention branch of those images (all rows), and its
 * first nb rows are reused for the MLP's output. */
static void cls_mlp_forward(mf_model *m, int l, int b0, int nb, float *branch)
{
    const mf_config *c = &m->cfg;
    mf_activations *A = m->acts;
    int N = c->dim, T = mf_config_tokens(c), F = c->mlp_ratio * N;
    const mf_block_params *p = &m->p.blocks[l];
    mf_layer_acts *a = &A->layers[l];
    size_t row = (size_t)b0 * N, rowF = (size_t)b0 * F;
    float *x_mid = a->x_mid + row, *ln2 = a->ln2 + row, *slope = a->gelu_slope + rowF;
    float *gel = a->gelu + rowF;
    norm_target none = {NULL, NULL, NULL, NULL, NULL};
    /* x_mid = x + drop(attn) and LN2, on each CLS row (dropout by its place in (M,N)) */
    for (int i = 0; i < nb; i++) {
        size_t at = (size_t)(b0 + i) * T * N;
        norm_target ln = {ln2 + (size_t)i * N, a->ln2_mean + b0 + i, a->ln2_rstd + b0 + i,
                          p->norm2_w, p->norm2_b};
        residual_forward(m, x_mid + (size_t)i * N, a->x + at, branch + (size_t)i * T * N, NULL,
                         1 + 2 * l, &ln, 1, at);
    }
    MF_PROF(MF_PROF_MLP_LINEAR, MF_PROF_FORWARD, linear_forward(slope, ln2, p->fc1_w, NULL, nb, N, F));
    MF_PROF(MF_PROF_GELU, MF_PROF_FORWARD,
            bias_gelu_forward(gel, m->forward_only ? NULL : slope, slope, p->fc1_b, nb, F));
    MF_PROF(MF_PROF_MLP_LINEAR, MF_PROF_FORWARD, linear_forward(branch, gel, p->fc2_w, NULL, nb, F, N));
    /* the CLS rows of the final residual stream */
    for (int i = 0; i < nb; i++) {
        size_t at = (size_t)(b0 + i) * T * N;
        residual_forward(m, A->layers[l + 1].x + at, x_mid + (size_t)i * N, branch + (size_t)i * N,
                         p->fc2_b, 2 + 2 * l, &none, 1, at);
    }
}

/* Images b0 .. b0+nb-1 through the whole network up to the logits. */
static void forward_chunk(mf_model *m, const float *images, int b0, int nb)
{
    const mf_config *c = &m->cfg;
    mf_activations *A = m->acts;
    int N = c->dim, P = mf_config_patches(c), T = mf_config_tokens(c), F = c->mlp_ratio * N;
    int K = c->classes, cls = c->pool == MF_POOL_CLS, cpp = c->channels * c->patch * c->patch;
    int L = c->layers, rows = nb * T, S = c->image_size;
    size_t r0 = (size_t)b0 * T, first = r0 * N;
    mf_attn_dims d = {nb, T, N, c->heads, T};

    /* Embedding: tokens = patches W^T + b, then the CLS token and positions. */
    double t0 = mf_prof_begin();
    float *patches = A->patches + (size_t)b0 * P * cpp, *tokens = A->tokens + (size_t)b0 * P * N;
    patchify(patches, images + (size_t)b0 * c->channels * S * S, c, nb);
    linear_forward(tokens, patches, m->p.patch_w, m->p.patch_b, nb * P, cpp, N);
    float *x = A->layers[0].x + first;
    for (int b = 0; b < nb; b++) {
        for (int t = 0; t < T; t++) {
            float *row = x + ((size_t)b * T + t) * N;
            const float *pos = m->p.pos_embed + (size_t)t * N;
            const float *src = cls ? (t == 0 ? m->p.cls_token : tokens + ((size_t)b * P + t - 1) * N)
                                   : tokens + ((size_t)b * P + t) * N;
            for (int i = 0; i < N; i++) row[i] = src[i] + pos[i];
        }
    }
    mf_prof_end(MF_PROF_PATCH_EMBED, MF_PROF_FORWARD, t0);
    if (dropout_on(m))
        MF_PROF(MF_PROF_RESIDUAL, MF_PROF_FORWARD,
                dropout_apply_at(x, first, (size_t)rows * N, c->dropout, dropout_site_seed(m, 0)));

    /* Block 0's LN1 here; every later LayerNorm rides on the residual add before it. */
    mf_layer_acts a0 = layer_slice(&A->layers[0], c, b0);
    MF_PROF(MF_PROF_LAYERNORM, MF_PROF_FORWARD,
            layernorm_forward(a0.ln1, a0.ln1_mean, a0.ln1_rstd, x, m->p.blocks[0].norm1_w,
                              m->p.blocks[0].norm1_b, rows, N));
    float *branch = A->branch + first;
    for (int l = 0; l < L; l++) {
        mf_layer_acts a = layer_slice(&A->layers[l], c, b0);
        const mf_block_params *p = &m->p.blocks[l];
        float *next = A->layers[l + 1].x + first;
        norm_target after = {NULL, NULL, NULL, NULL, NULL}; /* the norm after this block */
        if (l + 1 < L) {
            mf_layer_acts an = layer_slice(&A->layers[l + 1], c, b0);
            after = (norm_target){an.ln1, an.ln1_mean, an.ln1_rstd, m->p.blocks[l + 1].norm1_w,
                                  m->p.blocks[l + 1].norm1_b};
        } else if (!cls) {
            after = (norm_target){A->final_out + first, A->final_mean + r0, A->final_rstd + r0,
                                  m->p.norm_w, m->p.norm_b};
        }
        d.Q = attention_query_rows(m, l);
        attention_forward(branch, &a, p, c, &d);
        if (cls_only_mlp(c, l)) {
            cls_mlp_forward(m, l, b0, nb, branch);
            continue;
        }
        if (!F && cls && l == L - 1) {
            cls_residual_forward(m, l, b0, nb, branch);
            continue;
        }
        if (!F) {
            residual_forward(m, next, a.x, branch, NULL, 1 + 2 * l, &after, rows, first);
            continue;
        }
        norm_target ln2 = {a.ln2, a.ln2_mean, a.ln2_rstd, p->norm2_w, p->norm2_b};
        residual_forward(m, a.x_mid, a.x, branch, NULL, 1 + 2 * l, &ln2, rows, first);
        /* fc1's and fc2's biases are added by the passes after their products. */
        MF_PROF(MF_PROF_MLP_LINEAR, MF_PROF_FORWARD,
                linear_forward(a.gelu_slope, a.ln2, p->fc1_w, NULL, rows, N, F));
        MF_PROF(MF_PROF_GELU, MF_PROF_FORWARD,
                bias_gelu_forward(a.gelu, m->forward_only ? NULL : a.gelu_slope, a.gelu_slope,
                                  p->fc1_b, rows, F));
        MF_PROF(MF_PROF_MLP_LINEAR, MF_PROF_FORWARD, linear_forward(branch, a.gelu, p->fc2_w, NULL, rows, F, N));
        residual_forward(m, next, a.x_mid, branch, p->fc2_b, 2 + 2 * l, &after, rows, first);
    }

    /* Final LayerNorm, pooling, head. With CLS pooling only the CLS rows are
     * normalized (here); with mean pooling every token was, after the last block. */
    const float *xf = A->layers[L].x + first;
    float *pooled = A->pooled + (size_t)b0 * N;
    t0 = mf_prof_begin();
    if (cls) {
        float *fin = A->final_in + (size_t)b0 * N;
        for (int b = 0; b < nb; b++)
            memcpy(fin + (size_t)b * N, xf + (size_t)b * T * N, (size_t)N * sizeof(float));
        layernorm_forward(pooled, A->final_mean + b0, A->final_rstd + b0, fin, m->p.norm_w,
                          m->p.norm_b, nb, N);
    } else {
        for (int b = 0; b < nb; b++) {
            float *pool = pooled + (size_t)b * N;
            for (int i = 0; i < N; i++) pool[i] = 0.0f;
            for (int t = 0; t < T; t++) {
                const float *row = A->final_out + first + ((size_t)b * T + t) * N;
                for (int i = 0; i < N; i++) pool[i] += row[i];
            }
            for (int i = 0; i < N; i++) pool[i] /= (float)T;
        }
    }
    mf_prof_end(MF_PROF_LAYERNORM, MF_PROF_FORWARD, t0);
    MF_PROF(MF_PROF_HEAD, MF_PROF_FORWARD,
            linear_forward(A->logits + (size_t)b0 * K, pooled, m->p.head_w, m->p.head_b, nb, N, K));
}

float mf_model_forward(mf_model *m, const float *images, const int *labels, int B)
{
    const mf_config *c = &m->cfg;
    mf_activations *A = m->acts;
    int K = c->classes, T = mf_config_tokens(c);
    mf_attn_dims d = {B, T, c->dim, c->heads, T};
    A->batch = B;
    for (int l = 0; l < c->layers; l++) attention_prepare(&A->layers[l], &m->p.blocks[l], c, &d);
    double t0 = mf_prof_begin();
#pragma omp parallel if (B > 1)
    {
        int b0, b1, step = chunk_images(c);
        my_images(B, &b0, &b1);
        for (int b = b0; b < b1; b += step) forward_chunk(m, images, b, b1 - b < step ? b1 - b : step);
    }
    mf_prof_region(t0);
    A->loss = 0.0f;
    if (labels) {
        memcpy(A->labels, labels, (size_t)B * sizeof(int));
        /* The loss reads the logit of each label: one that is not a class of
         * the model would be read past its row. mf_train and mf_evaluate
         * refuse such data up front; here it makes the loss NaN. */
        int bad = 0;
        for (int b = 0; b < B; b++) bad |= labels[b] < 0 || labels[b] >= K;
        if (bad) A->loss = NAN;
        else
            MF_PROF(MF_PROF_HEAD, MF_PROF_FORWARD,
                    A->loss = cross_entropy_forward(A->probs, A->logits, labels, B, K));
    }
    return A->loss;
}

/* ---- backward ------------------------------------------------------------ */

/* The input-gradient calls of a block's attention (images of d only). */
static void attention_backward(mf_grad_scratch *s, const float *dout, const mf_layer_acts *a,
                               const mf_block_params *p, const mf_config *c, const mf_attn_dims *d)
{
    vo_variant((int)c->vo)->backward(s, dout, a, p, d);
    qk_variant((int)c->qk)->backward(s, a, p, d);
}

/* The attention's parameter gradients over the images of d, added into g. */
static void attention_backward_params(mf_block_params *g, const mf_grad_scratch *s,
                                      const float *dout, const mf_layer_acts *a,
                                      const mf_config *c, const mf_attn_dims *d)
{
    const mf_vo_variant *vo = vo_variant((int)c->vo);
    if (vo->backward_params) vo->backward_params(g, s, dout, a, d);
    qk_variant((int)c->qk)->backward_params(g, s, a, d);
}

/* The gradients around block l in backward: of its output (in), of the
 * residual stream between its attention and MLP branches (mid), of its input
 * (out), and those reaching its two branches. Without dropout a
 * branch's gradient is the residual stream's (in for the MLP, mid for the
 * attention); with dropout, a masked copy. in, mid and out rotate through
 * three (M,N) arrays, so none is copied. */
typedef struct {
    float *in, *mid, *out;
    float *mlp_branch, *attn_branch;
} block_grads;

/* keep = drop(dx) over a slice starting at element `first`. */
static void branch_dropout(const mf_model *m, float *keep, const float *dx, int site, size_t first,
                           size_t n)
{
    double t0 = mf_prof_begin();
    memcpy(keep, dx, n * sizeof(float));
    dropout_apply_at(keep, first, n, m->cfg.dropout, dropout_site_seed(m, site));
    mf_prof_end(MF_PROF_RESIDUAL, MF_PROF_BACKWARD, t0);
}

/* Views of block l's gradients moved into one chunk's slice of gpart. */
static mf_block_params partial_views(const mf_model *m, float *slice)
{
    mf_block_params v;
    param_bind_block(&m->cfg, slice, &v);
    return v;
}

/* cls_mlp_forward's backward for images b0 .. b0+nb-1: in and mid are their
 * rows of the gradients of the block's output and of x_mid (all rows; in is
 * zero but on the CLS rows); parameter gradients go to g. s.dh (free until
 * the attention's backward) holds the compact branch gradient. */
static void cls_mlp_backward(mf_model *m, int l, int b0, int nb, const float *in, float *mid,
                             const mf_block_params *g, const mf_grad_scratch *s)
{
    const mf_config *c = &m->cfg;
    mf_activations *A = m->acts;
    int N = c->dim, T = mf_config_tokens(c), F = c->mlp_ratio * N;
    const mf_block_params *p = &m->p.blocks[l];
    const mf_layer_acts *a = &A->layers[l];
    size_t row = (size_t)b0 * N, rowF = (size_t)b0 * F;
    const float *x_mid = a->x_mid + row, *mean = a->ln2_mean + b0, *rstd = a->ln2_rstd + b0;
    float *dbranch = s->dh;
    for (int i = 0; i < nb; i++) {
        size_t at = (size_t)(b0 + i) * T * N;
        memcpy(dbranch + (size_t)i * N, in + (size_t)i * T * N, (size_t)N * sizeof(float));
        if (dropout_on(m))
            dropout_apply_at(dbranch + (size_t)i * N, at, (size_t)N, c->dropout,
                             dropout_site_seed(m, 2 + 2 * l));
    }
    MF_PROF(MF_PROF_MLP_LINEAR, MF_PROF_BACKWARD,
            linear_backward_input(s->dfc1, dbranch, p->fc2_w, nb, F, N, 0);
            linear_backward_params(g->fc2_w, g->fc2_b, dbranch, a->gelu + rowF, nb, F, N));
    MF_PROF(MF_PROF_GELU, MF_PROF_BACKWARD, gelu_backward(s->dfc1, a->gelu_slope + rowF, (size_t)nb * F));
    MF_PROF(MF_PROF_MLP_LINEAR, MF_PROF_BACKWARD,
            linear_backward_input(s->dln2, s->dfc1, p->fc1_w, nb, N, F, 0);
            linear_backward_params(g->fc1_w, g->fc1_b, s->dfc1, a->ln2 + row, nb, N, F));
    double t0 = mf_prof_begin();
    /* mid = in, plus LN2's gradient on the CLS rows */
    memcpy(mid, in, (size_t)nb * T * N * sizeof(float));
    for (int i = 0; i < nb; i++)
        layernorm_backward_input(mid + (size_t)i * T * N, in + (size_t)i * T * N, s->dln2 + (size_t)i * N,
                                 x_mid + (size_t)i * N, mean + i, rstd + i, p->norm2_w, 1, N);
    layernorm_backward_params(g->norm2_w, g->norm2_b, s->dln2, x_mid, mean, rstd, nb, N);
    mf_prof_end(MF_PROF_LAYERNORM, MF_PROF_BACKWARD, t0);
}

/* Block l backward for images b0 .. b0+nb-1: the input gradients, and the
 * parameter gradients of these images alone into slice (zeroed here), each
 * right after the input gradients they need, while those are in cache. */
static void block_backward_chunk(mf_model *m, int l, const block_grads *bg, int b0, int nb,
                                 float *slice)
{
    const mf_config *c = &m->cfg;
    mf_activations *A = m->acts;
    int N = c->dim, T = mf_config_tokens(c), F = c->mlp_ratio * N, rows = nb * T;
    size_t first = (size_t)b0 * T * N, n = (size_t)rows * N;
    mf_attn_dims d = {nb, T, N, c->heads, attention_query_rows(m, l)};
    mf_layer_acts a = layer_slice(&A->layers[l], c, b0);
    mf_grad_scratch s = scratch_slice(&A->g, c, b0);
    const mf_block_params *p = &m->p.blocks[l];
    memset(slice, 0, A->gpart_stride * sizeof(float));
    mf_block_params g = partial_views(m, slice);
    s.dw_full = slice + A->block_numel; /* symmetric and Cholesky only */
    float *in = bg->in + first, *mid = bg->mid + first, *out = bg->out + first;
    if (cls_only_mlp(c, l)) {
        cls_mlp_backward(m, l, b0, nb, in, mid, &g, &s);
    } else if (F) {
        /* next = mid + drop(fc2(gelu(fc1(LN2(mid))))): the gradient flows to mid
         * unchanged, plus the MLP branch's. */
        float *dbranch = bg->mlp_branch + first;
        if (dropout_on(m)) branch_dropout(m, dbranch, in, 2 + 2 * l, first, n);
        /* dgelu = dbranch fc2_w lands in dfc1, then goes through GELU in place. */
        MF_PROF(MF_PROF_MLP_LINEAR, MF_PROF_BACKWARD,
                linear_backward_input(s.dfc1, dbranch, p->fc2_w, rows, F, N, 0);
                linear_backward_params(g.fc2_w, g.fc2_b, dbranch, a.gelu, rows, F, N));
        MF_PROF(MF_PROF_GELU, MF_PROF_BACKWARD, gelu_backward(s.dfc1, a.gelu_slope, (size_t)rows * F));
        MF_PROF(MF_PROF_MLP_LINEAR, MF_PROF_BACKWARD,
                linear_backward_input(s.dln2, s.dfc1, p->fc1_w, rows, N, F, 0);
                linear_backward_params(g.fc1_w, g.fc1_b, s.dfc1, a.ln2, rows, N, F));
        MF_PROF(MF_PROF_LAYERNORM, MF_PROF_BACKWARD,
                layernorm_backward_input(mid, in, s.dln2, a.x_mid, a.ln2_mean, a.ln2_rstd,
                                         p->norm2_w, rows, N);
                layernorm_backward_params(g.norm2_w, g.norm2_b, s.dln2, a.x_mid, a.ln2_mean,
                                          a.ln2_rstd, rows, N));
    }
    /* mid = x + drop(attn(LN1(x))) */
    float *dbranch = bg->attn_branch + first;
    if (dropout_on(m)) branch_dropout(m, dbranch, mid, 1 + 2 * l, first, n);
    MF_PROF(MF_PROF_RESIDUAL, MF_PROF_BACKWARD, memset(s.dh, 0, n * sizeof(float)));
    attention_backward(&s, dbranch, &a, p, c, &d);
    attention_backward_params(&g, &s, dbranch, &a, c, &d);
    MF_PROF(MF_PROF_LAYERNORM, MF_PROF_BACKWARD,
            layernorm_backward_input(out, mid, s.dh, a.x, a.ln1_mean, a.ln1_rstd, p->norm1_w, rows, N);
            layernorm_backward_params(g.norm1_w, g.norm1_b, s.dh, a.x, a.ln1_mean, a.ln1_rstd,
                                      rows, N));
}

/* Share `part` of `parts` of block l's parameter gradients (and of dL/dW):
 * the chunks' slices added in chunk order, then added to the gradients. */
static void block_params_reduce(mf_model *m, int l, int chunks, int part, int parts)
{
    mf_activations *A = m->acts;
    size_t numel = A->block_numel, stride = A->gpart_stride;
    size_t total = block_grad_floats(&m->cfg, numel);
    size_t units = (total + 15) / 16, j0 = units * part / parts * 16, j1 = units * (part + 1) / parts * 16;
    if (j1 > total) j1 = total;
    float *g = m->grads + A->block0 + (size_t)l * numel;
    double t0 = mf_prof_begin();
    for (size_t j = j0; j < j1; j++) {
        float sum = A->gpart[j];
        for (int ci = 1; ci < chunks; ci++) sum += A->gpart[(size_t)ci * stride + j];
        if (j < numel) g[j] += sum;
        else A->g.dw_full[j - numel] = sum;
    }
    mf_prof_end(MF_PROF_THREADS, MF_PROF_BACKWARD, t0);
}

/* dL/dW -> dL/dqk_tril, once the whole dw_full is summed. */
static void attention_params_finish(mf_model *m, int l)
{
    const mf_config *c = &m->cfg;
    mf_attn_dims d = {m->acts->batch, mf_config_tokens(c), c->dim, c->heads, mf_config_tokens(c)};
    const mf_qk_variant *qk = qk_variant((int)c->qk);
    if (!qk->params_finish) return;
    double t0 = mf_prof_begin();
    qk->params_finish(&m->g.blocks[l], &m->acts->g, &m->p.blocks[l], &d);
    mf_prof_end(MF_PROF_ATTN_LINEAR, MF_PROF_BACKWARD, t0);
}

/* The embedding's gradients from dx, the gradient of block 0's input: the
 * input half per image, then (after the barrier) shares of the parameters. */
static void embedding_backward(mf_model *m, float *dx)
{
    const mf_config *c = &m->cfg;
    mf_activations *A = m->acts;
    int B = A->batch, N = c->dim, P = mf_config_patches(c), T = mf_config_tokens(c);
    int cls = c->pool == MF_POOL_CLS, cpp = c->channels * c->patch * c->patch;
    float *dtok = A->tokens; /* reuse: (B*P, N) gradient of the patch embeddings */
#pragma omp parallel if (B > 1)
    {
        int b0, b1, part = thread_id(), parts = thread_count();
        my_images(B, &b0, &b1);
        double t0 = mf_prof_begin();
        size_t first = (size_t)b0 * T * N, n = (size_t)(b1 - b0) * T * N;
        if (dropout_on(m)) dropout_apply_at(dx + first, first, n, c->dropout, dropout_site_seed(m, 0));
        for (int b = b0; b < b1; b++)
            memcpy(dtok + (size_t)b * P * N, dx + ((size_t)b * T + cls) * N, (size_t)P * N * sizeof(float));
        mf_prof_end(MF_PROF_PATCH_EMBED, MF_PROF_BACKWARD, t0);
#pragma omp barrier
        t0 = mf_prof_begin();
        /* Position and CLS gradients sum over the batch in image order. */
        int t0_, t1_, i0, i1;
        mf_share(T, 1, part, parts, &t0_, &t1_);
        for (int b = 0; b < B; b++)
            for (int t = t0_; t < t1_; t++) {
                const float *row = dx + ((size_t)b * T + t) * N;
                float *dpos = m->g.pos_embed + (size_t)t * N;
                for (int i = 0; i < N; i++) dpos[i] += row[i];
            }
        mf_share(N, 16, part, parts, &i0, &i1);
        if (cls)
            for (int b = 0; b < B; b++) {
                const float *row = dx + (size_t)b * T * N;
                for (int i = i0; i < i1; i++) m->g.cls_token[i] += row[i];
            }
        linear_backward_params_part(m->g.patch_w, m->g.patch_b, dtok, A->patches, B * P, cpp, N,
                                    part, parts);
        mf_prof_end(MF_PROF_PATCH_EMBED, MF_PROF_BACKWARD, t0);
    }
}

void mf_model_backward(mf_model *m)
{
    const mf_config *c = &m->cfg;
    mf_activations *A = m->acts;
    int B = A->batch, N = c->dim, T = mf_config_tokens(c), F = c->mlp_ratio * N;
    int K = c->classes, cls = c->pool == MF_POOL_CLS;
    size_t M = (size_t)B * T;

    double t0 = mf_prof_begin();
    cross_entropy_backward(A->dlogits, A->probs, A->labels, B, K);
    memset(A->dpooled, 0, (size_t)B * N * sizeof(float));
    linear_backward(A->dpooled, m->g.head_w, m->g.head_b, A->dlogits, A->pooled, m->p.head_w, B,
                    N, K, 1);
    mf_prof_end(MF_PROF_HEAD, MF_PROF_BACKWARD, t0);
    t0 = mf_prof_begin();
    float *dx = A->dx;
    memset(dx, 0, M * N * sizeof(float));
    const float *xf = A->layers[c->layers].x;
    if (cls) {
        /* dfinal holds the (B,N) gradient of the CLS rows' LayerNorm input. */
        memset(A->dfinal, 0, (size_t)B * N * sizeof(float));
        layernorm_backward(A->dfinal, m->g.norm_w, m->g.norm_b, A->dpooled, A->final_in,
                           A->final_mean, A->final_rstd, m->p.norm_w, B, N);
        for (int b = 0; b < B; b++)
            memcpy(dx + (size_t)b * T * N, A->dfinal + (size_t)b * N, (size_t)N * sizeof(float));
    } else {
        float inv = 1.0f / (float)T;
        for (int b = 0; b < B; b++)
            for (int t = 0; t < T; t++) {
                float *row = A->dfinal + ((size_t)b * T + t) * N;
                const float *dp = A->dpooled + (size_t)b * N;
                for (int i = 0; i < N; i++) row[i] = dp[i] * inv;
            }
        layernorm_backward(dx, m->g.norm_w, m->g.norm_b, A->dfinal, xf, A->final_mean,
                           A->final_rstd, m->p.norm_w, (int)M, N);
    }
    mf_prof_end(MF_PROF_LAYERNORM, MF_PROF_BACKWARD, t0);

    float *rotation[3] = {A->dx, A->branch, A->dattn};
    int cur = 0; /* rotation[cur]: the gradient of the current block's output */
    for (int l = c->layers - 1; l >= 0; l--) {
        block_grads bg;
        bg.in = rotation[cur];
        bg.mid = F ? rotation[(cur + 1) % 3] : bg.in;
        cur = (cur + (F ? 2 : 1)) % 3;
        bg.out = rotation[cur];
        bg.mlp_branch = dropout_on(m) ? A->dmask_mlp : bg.in;
        bg.attn_branch = dropout_on(m) ? A->dmask_attn : bg.mid;
        t0 = mf_prof_begin();
        int chunks = backward_chunks(c, B);
#pragma omp parallel if (B > 1)
        {
            int c0, c1;
            mf_share(chunks, 1, thread_id(), thread_count(), &c0, &c1);
            for (int ci = c0; ci < c1; ci++) {
                int b0 = (int)((long)B * ci / chunks), b1 = (int)((long)B * (ci + 1) / chunks);
                block_backward_chunk(m, l, &bg, b0, b1 - b0, A->gpart + (size_t)ci * A->gpart_stride);
            }
#pragma omp barrier
            block_params_reduce(m, l, chunks, thread_id(), thread_count());
        }
        mf_prof_region(t0);
        attention_params_finish(m, l);
    }
    t0 = mf_prof_begin();
    embedding_backward(m, rotation[cur]);
    mf_prof_region(t0);
}

void mf_model_attention_maps(const mf_model *m, int b, float *out)
{
    const mf_config *c = &m->cfg;
    int T = mf_config_tokens(c), H = c->heads;
    for (int l = 0; l < c->layers; l++) {
        const float *att = m->acts->layers[l].att + (size_t)b * H * T * T;
        float *o = out + (size_t)l * T * T;
        for (int i = 0; i < T * T; i++) {
            float sum = 0.0f;
            for (int h = 0; h < H; h++) sum += att[(size_t)h * T * T + i];
            o[i] = sum / (float)H;
        }
    }
}
