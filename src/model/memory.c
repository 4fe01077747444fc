/* Memory: what a model of a configuration needs, what the process can still
 * allocate (cgroup limits, MemAvailable, MINFORMER_MEMORY_LIMIT), and the
 * refusal, before allocating, of a model that would not fit. */
#define _POSIX_C_SOURCE 200809L /* open, read, close for the memory limits */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model/param_table.h"

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
                  chunks * ((4.0 + 2.0 * c->mlp_ratio) * N * N + (10.0 + c->mlp_ratio) * N + N * N + 16.0) +
                  chunks * (N * cpp + (T + 2.0) * N + (K + 4.0) * N + K + 16.0); /* gouter */
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
    mf_activations probe;
    memset(&probe, 0, sizeof probe);
    size_t act_floats = activations_carve(&probe, NULL, c, batch, activations_gpart_stride(c));
    uint64_t tensors = (uint64_t)num_tensors * sizeof(mf_tensor_info) +
                       2 * (uint64_t)c->layers * sizeof(mf_block_params);
    out->parameters = 16 * (uint64_t)np + tensors;
    /* Plus the batch of inputs the trainer and the evaluator fill: images,
     * labels and their indices. */
    out->activations = 4 * (uint64_t)act_floats + (uint64_t)(c->layers + 1) * sizeof(mf_layer_acts) +
                       sizeof(mf_activations) + (uint64_t)batch * (4 * (uint64_t)img + 3 * sizeof(int)) +
                       (uint64_t)backward_chunks_most(c, batch); /* kept: a byte per chunk */
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
mf_status memory_check(const mf_memory_estimate *need, uint64_t resident, int B,
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
