/* Checkpoints: bitwise round trips for every model variant, rejection of
 * malformed and hostile files with one clear error, per-tensor checksums that
 * catch damaged data, version-1 files (before checksums) still loading, FIFOs
 * refused without blocking, atomic writes that leave the previous checkpoint
 * intact on failure, and a mutation fuzz loop.
 * MF_TEST_VERBOSE=1 prints the message of every rejected file. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include <zlib.h>
#ifdef __linux__
#include <sys/mount.h>
#endif

#include "check.h"
#include "base/json.h"
#include "minformer.h"
#include "minformer/checkpoint.h"

static char tmpdir[64];
static int verbose;

/* ---- helpers ------------------------------------------------------------- */

static void path_in(char *out, size_t size, const char *name)
{
    snprintf(out, size, "%s/%s", tmpdir, name);
}

static int remove_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

static void remove_tree(const char *dir) { nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT); }

static unsigned char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc((size_t)n + 1);
    *len = fread(buf, 1, (size_t)n, f);
    fclose(f);
    return buf;
}

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(1);
    }
    fwrite(data, 1, len, f);
    fclose(f);
}

/* A safetensors file from a header text (its length prefixed) and data. */
static void write_checkpoint(const char *path, const char *header, size_t header_len,
                             const void *data, size_t data_len)
{
    unsigned char *buf = malloc(8 + header_len + data_len + 1);
    uint64_t n = header_len;
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)(n >> (8 * i));
    memcpy(buf + 8, header, header_len);
    if (data_len) memcpy(buf + 8 + header_len, data, data_len);
    write_file(path, buf, 8 + header_len + data_len);
    free(buf);
}

/* s with its first `find` replaced (NULL when absent). */
static char *replace(const char *s, const char *find, const char *with)
{
    const char *at = strstr(s, find);
    if (!at) return NULL;
    size_t a = (size_t)(at - s), fl = strlen(find), wl = strlen(with), sl = strlen(s);
    char *out = malloc(sl - fl + wl + 1);
    memcpy(out, s, a);
    memcpy(out + a, with, wl);
    memcpy(out + a + wl, at + fl, sl - a - fl + 1);
    return out;
}

/* The data offsets of tensor name in a header text (0 when absent). */
static int tensor_range(const char *header, const char *name, size_t *begin, size_t *end)
{
    char pat[256];
    snprintf(pat, sizeof pat, "\"%s\":{", name);
    const char *at = strstr(header, pat);
    const char *offs = at ? strstr(at, "\"data_offsets\":[") : NULL;
    unsigned long long b, e;
    if (!offs || sscanf(offs, "\"data_offsets\":[%llu,%llu]", &b, &e) != 2) return 0;
    *begin = (size_t)b;
    *end = (size_t)e;
    return 1;
}

/* Where the 8 hex digits of tensor name's checksum start in header, or NULL. */
static char *checksum_text(char *header, const char *name)
{
    char pat[256];
    snprintf(pat, sizeof pat, "\"crc32.%s\":\"", name);
    char *at = strstr(header, pat);
    return at ? at + strlen(pat) : NULL;
}

/* Rewrites every checksum in header (same length) to match data, so a test
 * can reach the checks behind the checksum with damaged values. */
static void resign(char *header, const unsigned char *data)
{
    for (char *at = header; (at = strstr(at, "\"crc32."));) {
        char name[200];
        const char *start = at + 7, *quote = strchr(start, '"');
        size_t len = (size_t)(quote - start), b, e;
        at = (char *)quote;
        if (len >= sizeof name) continue;
        memcpy(name, start, len);
        name[len] = '\0';
        char *hex = checksum_text(header, name);
        if (!hex || !tensor_range(header, name, &b, &e)) continue;
        char digits[9];
        snprintf(digits, sizeof digits, "%08lx", crc32(0, data + b, (uInt)(e - b)));
        memcpy(hex, digits, 8);
    }
}

/* header without its checksum entries, at format version 1 and padded again
 * to a multiple of 8: the file minformer wrote before checksums existed. */
static char *version1_header(const char *header)
{
    char *h = malloc(strlen(header) + 1);
    strcpy(h, header);
    for (char *at; (at = strstr(h, ",\"crc32."));) {
        char *value_end = strchr(strchr(strchr(at + 2, '"') + 1, '"') + 1, '"');
        memmove(at, value_end + 1, strlen(value_end + 1) + 1);
    }
    char *v = strstr(h, "\"version\":\"2\"");
    if (v) v[11] = '1';
    size_t n = strlen(h);
    while (n > 0 && h[n - 1] == ' ') h[--n] = '\0';
    char *padded = malloc(n + 8);
    memcpy(padded, h, n);
    while (n % 8) padded[n++] = ' ';
    padded[n] = '\0';
    free(h);
    return padded;
}

static int count_temp_files(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    if (!d) return -1;
    for (struct dirent *e; (e = readdir(d));)
        if (strstr(e->d_name, ".tmp-")) n++;
    closedir(d);
    return n;
}

static void small_config(mf_config *c)
{
    mf_config_default(c, 8, 1, 10);
    c->patch = 4;
    c->dim = 8;
    c->layers = 1;
    c->mlp_ratio = 2;
}

/* Random parameters and moments (v >= 0), so a round trip compares real bits. */
static void fill_model(mf_model *m, uint64_t seed)
{
    mf_rng rng;
    mf_rng_seed(&rng, seed);
    for (size_t i = 0; i < m->num_params; i++) {
        m->params[i] = mf_rng_normal(&rng);
        m->adam_m[i] = 1e-3f * mf_rng_normal(&rng);
        m->adam_v[i] = 1e-6f * mf_rng_uniform(&rng);
    }
}

static void odd_info(mf_checkpoint_info *info, int channels)
{
    mf_checkpoint_info_init(info);
    info->dataset = channels == 3 ? MF_CIFAR10 : MF_FASHION_MNIST;
    float mean[3] = {0.4913997f, 0.48215845f, 0.4465309f}, std[3] = {0.24703233f, 0.24348505f, 0.26158768f};
    memcpy(info->mean, mean, sizeof mean);
    memcpy(info->std, std, sizeof std);
    info->opts.epochs = 7;
    info->opts.batch = 33;
    info->opts.lr = 3.3e-4f;
    info->opts.warmup_epochs = 0.7f;
    info->opts.adamw.beta1 = 0.85f;
    info->opts.adamw.beta2 = 0.9995f;
    info->opts.adamw.eps = 1e-7f;
    info->opts.adamw.weight_decay = 0.123456789f;
    info->opts.seed = 18446744073709551557ULL;
    info->opts.augment = 0;
    info->opts.eval_batch = 77;
    info->state.epoch = 3;
    info->state.step = 1234567;
    info->state.batch_in_epoch = 17;
    info->state.loss_sum = 1.0 / 3.0 + 1e-13;
    info->state.correct = 555;
    info->state.seen = 999;
    info->state.train_seconds = 3.141592653589793;
    info->state.test_loss = 0.1f + 1e-9f;
    info->state.test_acc = 0.987654321f;
    info->limit_train = 5000;
    info->limit_test = 100;
}

static int same_bits(const void *a, const void *b, size_t n) { return memcmp(a, b, n) == 0; }

static int same_info(const mf_checkpoint_info *a, const mf_checkpoint_info *b, int channels)
{
    const mf_train_opts *x = &a->opts, *y = &b->opts;
    const mf_train_state *s = &a->state, *t = &b->state;
    return a->dataset == b->dataset &&
           same_bits(a->mean, b->mean, (size_t)channels * sizeof(float)) &&
           same_bits(a->std, b->std, (size_t)channels * sizeof(float)) &&
           x->epochs == y->epochs && x->batch == y->batch && same_bits(&x->lr, &y->lr, 4) &&
           same_bits(&x->warmup_epochs, &y->warmup_epochs, 4) &&
           same_bits(&x->adamw, &y->adamw, sizeof x->adamw) && x->seed == y->seed &&
           x->augment == y->augment && x->eval_batch == y->eval_batch &&
           a->limit_train == b->limit_train && a->limit_test == b->limit_test &&
           s->epoch == t->epoch && s->step == t->step && s->batch_in_epoch == t->batch_in_epoch &&
           same_bits(&s->loss_sum, &t->loss_sum, 8) && s->correct == t->correct &&
           s->seen == t->seen && same_bits(&s->train_seconds, &t->train_seconds, 8) &&
           same_bits(&s->test_loss, &t->test_loss, 4) && same_bits(&s->test_acc, &t->test_acc, 4);
}

static int same_config(const mf_config *a, const mf_config *b)
{
    return a->image_size == b->image_size && a->channels == b->channels &&
           a->classes == b->classes && a->patch == b->patch && a->dim == b->dim &&
           a->layers == b->layers && a->heads == b->heads && a->mlp_ratio == b->mlp_ratio &&
           a->qk == b->qk && a->vo == b->vo && a->pool == b->pool &&
           same_bits(&a->dropout, &b->dropout, 4);
}

/* ---- round trips ----------------------------------------------------------- */

static void round_trip(const mf_config *cfg, int with_optimizer, const char *label)
{
    char path[128];
    path_in(path, sizeof path, "roundtrip.safetensors");
    mf_model m, back;
    mf_error err;
    mf_checkpoint_info info, got;
    if (mf_model_create(&m, cfg, &err)) {
        CHECK(0, "%s: create: %s", label, err.message);
        return;
    }
    fill_model(&m, (uint64_t)cfg->qk * 131 + (uint64_t)cfg->vo * 17 + (uint64_t)cfg->heads);
    odd_info(&info, cfg->channels);
    mf_status st = mf_checkpoint_save(path, &m, &info, with_optimizer, &err);
    CHECK(st == MF_OK, "%s: save: %s", label, err.message);
    st = mf_checkpoint_load(path, &back, &got, &err);
    CHECK(st == MF_OK, "%s: load: %s", label, err.message);
    if (st == MF_OK) {
        size_t bytes = m.num_params * sizeof(float);
        CHECK(same_config(&m.cfg, &back.cfg), "%s: configuration differs", label);
        CHECK(back.num_params == m.num_params, "%s: %zu vs %zu parameters", label,
              back.num_params, m.num_params);
        CHECK(same_bits(m.params, back.params, bytes), "%s: parameters differ", label);
        CHECK(got.has_optimizer == with_optimizer, "%s: has_optimizer %d", label,
              got.has_optimizer);
        CHECK(got.has_train_state == 1, "%s: no train state", label);
        CHECK(got.version == MF_CHECKPOINT_VERSION, "%s: version %d", label, got.version);
        if (with_optimizer) {
            CHECK(same_bits(m.adam_m, back.adam_m, bytes), "%s: adam_m differs", label);
            CHECK(same_bits(m.adam_v, back.adam_v, bytes), "%s: adam_v differs", label);
        } else {
            int zero = 1;
            for (size_t i = 0; i < m.num_params; i++)
                zero = zero && back.adam_m[i] == 0 && back.adam_v[i] == 0;
            CHECK(zero, "%s: moments not zero without optimizer state", label);
        }
        CHECK(same_info(&info, &got, cfg->channels), "%s: info differs", label);
        for (int i = 0; i < m.num_tensors; i++)
            CHECK(!strcmp(m.tensors[i].name, back.tensors[i].name), "%s: tensor %d name", label, i);
        mf_model_free(&back);
    }
    mf_model_free(&m);
}

static void test_round_trip_every_variant(void)
{
    int variants = 0;
    for (int qk = 0; qk <= MF_QK_CHOLESKY; qk++)
        for (int vo = 0; vo <= MF_VO_NONE; vo++)
            for (int mlp = 0; mlp <= 4; mlp += 4)
                for (int heads = 1; heads <= 4; heads += 3)
                    for (int pool = 0; pool <= 1; pool++) {
                        mf_config c;
                        int channels = 1 + variants % 3;
                        mf_config_default(&c, 8, channels, 10);
                        c.patch = 4;
                        c.dim = 8;
                        c.layers = 2;
                        c.heads = heads;
                        c.mlp_ratio = mlp;
                        c.qk = (mf_qk_kind)qk;
                        c.vo = (mf_vo_kind)vo;
                        c.pool = (mf_pool_kind)pool;
                        c.dropout = variants % 2 ? 0.1f : 0.0f;
                        if (mf_config_validate(&c, NULL)) continue;
                        char label[96];
                        snprintf(label, sizeof label, "qk %s vo %s mlp %d heads %d pool %s",
                                 mf_qk_name(c.qk), mf_vo_name(c.vo), mlp, heads,
                                 mf_pool_name(c.pool));
                        round_trip(&c, 1, label);
                        round_trip(&c, 0, label);
                        variants++;
                    }
    CHECK(variants == 76, "%d variants, expected 76", variants);
}

/* Keys of the resume group may all be absent: the model still loads. */
static char *remove_meta(char *header, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, ",\"%s\":\"", key);
    char *at = strstr(header, pat);
    if (!at) return header;
    char *end = strchr(at + strlen(pat), '"');
    memmove(at, end + 1, strlen(end + 1) + 1);
    return header;
}

/* ---- malformed files --------------------------------------------------------- */

static char *base_header;     /* the JSON text of a valid checkpoint (with optimizer) */
static size_t base_header_len;
static unsigned char *base_data;
static size_t base_data_len;
static unsigned char *base_file;
static size_t base_file_len;
static int rejected_cases;

static void make_base(void)
{
    char path[128];
    path_in(path, sizeof path, "base.safetensors");
    mf_config c;
    small_config(&c);
    mf_model m;
    mf_error err;
    mf_checkpoint_info info;
    if (mf_model_create(&m, &c, &err)) exit(1);
    fill_model(&m, 7);
    odd_info(&info, 1);
    if (mf_checkpoint_save(path, &m, &info, 1, &err)) {
        fprintf(stderr, "base save failed: %s\n", err.message);
        exit(1);
    }
    mf_model_free(&m);
    base_file = read_file(path, &base_file_len);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | base_file[i];
    base_header_len = (size_t)n;
    base_header = malloc(base_header_len + 1);
    memcpy(base_header, base_file + 8, base_header_len);
    base_header[base_header_len] = '\0';
    base_data = base_file + 8 + base_header_len;
    base_data_len = base_file_len - 8 - base_header_len;
}

static void expect_status(const char *label, const char *path, mf_status want, const char *needle)
{
    mf_model m;
    mf_checkpoint_info info;
    mf_error err;
    mf_error_clear(&err);
    memset(&m, 0x5a, sizeof m);
    mf_status st = mf_checkpoint_load(path, &m, &info, &err);
    size_t pl = strlen(path);
    CHECK(st == want, "%s: status %d, expected %d (%s)", label, st, want, err.message);
    CHECK(!strncmp(err.message, path, pl) && err.message[pl] == ':',
          "%s: the message does not start with the file name: %s", label, err.message);
    if (needle)
        CHECK(strstr(err.message, needle) != NULL, "%s: message '%s' lacks '%s'", label,
              err.message, needle);
    CHECK(m.params == NULL && m.tensors == NULL && m.memory == NULL,
          "%s: model not left empty on failure", label);
    CHECK(strchr(err.message, '\n') == NULL, "%s: multi-line message", label);
    if (st == MF_OK) mf_model_free(&m);
    if (verbose) printf("  %-28s %s\n", label, err.message);
    rejected_cases++;
}

/* The base file with the header text changed (length updated). */
static void reject_header(const char *label, const char *header, const char *needle)
{
    char path[128];
    path_in(path, sizeof path, "bad.safetensors");
    if (!header) {
        CHECK(0, "%s: the base header lacks the text to replace", label);
        return;
    }
    write_checkpoint(path, header, strlen(header), base_data, base_data_len);
    expect_status(label, path, MF_ERR_FORMAT, needle);
}

static void reject_replace(const char *label, const char *find, const char *with,
                           const char *needle)
{
    char *h = replace(base_header, find, with);
    reject_header(label, h, needle);
    free(h);
}

static void reject_bytes(const char *label, const void *bytes, size_t n, const char *needle)
{
    char path[128];
    path_in(path, sizeof path, "bad.safetensors");
    write_file(path, bytes, n);
    expect_status(label, path, MF_ERR_FORMAT, needle);
}

/* An arbitrary header with the base data behind it. */
static void reject_raw_header(const char *label, const char *header, const char *needle)
{
    char path[128];
    path_in(path, sizeof path, "bad.safetensors");
    write_checkpoint(path, header, strlen(header), base_data, base_data_len);
    expect_status(label, path, MF_ERR_FORMAT, needle);
}

static void test_base_loads(void)
{
    char path[128];
    path_in(path, sizeof path, "base.safetensors");
    mf_model m;
    mf_error err;
    mf_checkpoint_info info;
    CHECK(mf_checkpoint_load(path, &m, &info, &err) == MF_OK, "%s", err.message);
    CHECK(info.has_optimizer && info.has_train_state, "flags %d %d", info.has_optimizer,
          info.has_train_state);
    mf_model_free(&m);
    CHECK(base_header_len % 8 == 0, "header length %zu not a multiple of 8", base_header_len);
    CHECK(strncmp(base_header, "{\"__metadata__\":{\"format\":\"minformer\"", 37) == 0,
          "unexpected header start: %.40s", base_header);

    /* The same file read through the safetensors layer. */
    mf_checkpoint_header h;
    CHECK(mf_checkpoint_read_header(path, &h, &err) == MF_OK, "%s", err.message);
    CHECK(h.num_tensors > 0 && h.tensors[0].begin == 0, "first tensor");
    CHECK(h.tensors[h.num_tensors - 1].end == h.data_size, "last tensor");
    const char *dim = mf_checkpoint_metadata(&h, "dim");
    CHECK(dim && !strcmp(dim, "8"), "metadata dim");
    const mf_checkpoint_tensor *t = mf_checkpoint_find(&h, "head.bias");
    CHECK(t && t->ndim == 1 && t->shape[0] == 10, "head.bias");
    float bias[10];
    CHECK(t && mf_checkpoint_read_f32(&h, t, bias, &err) == MF_OK, "read_f32");
    mf_checkpoint_header_free(&h);
}

static void test_without_train_state(void)
{
    char *h = malloc(base_header_len + 1);
    memcpy(h, base_header, base_header_len + 1);
    const char *keys[] = {"epochs", "batch", "lr", "warmup_epochs", "adamw_beta1", "adamw_beta2",
                          "adamw_eps", "weight_decay", "augment", "eval_batch", "limit_train",
                          "limit_test", "step", "batch_in_epoch", "loss_sum", "correct", "seen",
                          "train_seconds", "test_loss"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) remove_meta(h, keys[i]);
    char path[128];
    path_in(path, sizeof path, "export.safetensors");
    write_checkpoint(path, h, strlen(h), base_data, base_data_len);
    mf_model m;
    mf_error err;
    mf_checkpoint_info info;
    CHECK(mf_checkpoint_load(path, &m, &info, &err) == MF_OK, "%s", err.message);
    CHECK(info.has_train_state == 0, "has_train_state %d", info.has_train_state);
    CHECK(info.state.epoch == 3 && info.opts.seed == 18446744073709551557ULL,
          "epoch %d seed %llu", info.state.epoch, (unsigned long long)info.opts.seed);
    mf_model_free(&m);
    /* One key of the group alone is an error. */
    char *partial = replace(h, "\"epoch\":", "\"step\":\"5\",\"epoch\":");
    reject_header("resume group partial", partial, "missing");
    free(partial);
    free(h);
}

static void test_truncated_and_lengths(void)
{
    unsigned char buf[64];
    reject_bytes("empty file", "", 0, "too short");
    reject_bytes("truncated in length", base_file, 5, "too short");
    reject_bytes("truncated in header", base_file, 8 + base_header_len / 2, "runs past the end");
    reject_bytes("truncated after header", base_file, 8 + base_header_len, "past the data section");
    reject_bytes("truncated in data", base_file, base_file_len - 100, "past the data section");
    reject_bytes("missing last byte", base_file, base_file_len - 1, "past the data section");
    /* One byte too many: the data section has a tail no tensor owns. */
    unsigned char *longer = malloc(base_file_len + 1);
    memcpy(longer, base_file, base_file_len);
    longer[base_file_len] = 0;
    reject_bytes("trailing data byte", longer, base_file_len + 1, "belong to no tensor");
    free(longer);

    uint64_t lengths[] = {UINT64_MAX, (uint64_t)1 << 63, 200u << 20, (uint64_t)base_file_len,
                          (uint64_t)base_file_len - 7, 0, 1};
    const char *needles[] = {"exceeds the limit", "exceeds the limit", "exceeds the limit",
                             "runs past the end", "runs past the end", "too short", "too short"};
    for (size_t k = 0; k < sizeof lengths / sizeof lengths[0]; k++) {
        unsigned char *copy = malloc(base_file_len);
        memcpy(copy, base_file, base_file_len);
        for (int i = 0; i < 8; i++) copy[i] = (unsigned char)(lengths[k] >> (8 * i));
        char label[64];
        snprintf(label, sizeof label, "header length %llu", (unsigned long long)lengths[k]);
        reject_bytes(label, copy, base_file_len, needles[k]);
        free(copy);
    }
    /* A huge length in a file that is only the 8 length bytes. */
    for (int i = 0; i < 8; i++) buf[i] = 0xff;
    reject_bytes("only a huge length", buf, 8, "exceeds the limit");
}

static void test_bad_json(void)
{
    reject_raw_header("unterminated string", "{\"__metadata__\":{\"format\":\"minf", "unterminated string");
    reject_raw_header("unterminated object", "{\"__metadata__\":{\"format\":\"minformer\"}", "unexpected end");
    {
        char *h = malloc(base_header_len + 2);
        memcpy(h, base_header, base_header_len);
        memcpy(h + base_header_len, "x", 2);
        reject_header("trailing garbage", h, "unexpected text after");
        free(h);
    }
    reject_replace("bad escape", "\"format\":\"minformer\"", "\"format\":\"min\\qformer\"", "invalid escape");
    reject_replace("bad \\u escape", "\"format\":\"minformer\"", "\"format\":\"min\\u12G4\"", "\\u escape");
    reject_replace("lone high surrogate", "\"format\":\"minformer\"", "\"format\":\"\\ud800x\"", "surrogate");
    reject_replace("lone low surrogate", "\"format\":\"minformer\"", "\"format\":\"\\udc00\"", "surrogate");
    reject_replace("escaped NUL", "\"format\":\"minformer\"", "\"format\":\"a\\u0000b\"", "\\u0000");
    reject_replace("invalid UTF-8", "\"format\":\"minformer\"", "\"format\":\"mi\xc3\x28\"", "UTF-8");
    reject_replace("overlong UTF-8", "\"format\":\"minformer\"", "\"format\":\"\xc0\xaf\"", "UTF-8");
    reject_replace("control character", "\"format\":\"minformer\"", "\"format\":\"a\x01\"", "control character");
    reject_replace("trailing comma", "\"format\":\"minformer\",", "\"format\":\"minformer\",,", "expected a string key");
    reject_replace("single quotes", "\"format\":\"minformer\"", "'format':'minformer'", "expected a string key");
    reject_replace("NaN number", "\"shape\":[10]", "\"shape\":[NaN]", "unexpected character");
    reject_replace("leading zero", "\"shape\":[10]", "\"shape\":[010]", "expected ',' or ']'");
    reject_replace("number overflow", "\"shape\":[10]", "\"shape\":[1e999]", "out of range");
    reject_raw_header("not an object", "[1,2,3]   ", "not a JSON object");
    {
        /* 100 nested arrays: past the depth limit, never a stack overflow. */
        char deep[400] = "{\"x\":";
        for (int i = 0; i < 100; i++) strcat(deep, "[");
        for (int i = 0; i < 100; i++) strcat(deep, "]");
        strcat(deep, "}");
        reject_raw_header("deep nesting", deep, "nesting too deep");
    }
    reject_replace("duplicate metadata key", "\"heads\":\"1\"", "\"heads\":\"1\",\"heads\":\"1\"", "duplicate key");
    reject_replace("duplicate tensor", "\"head.bias\":", "\"head.bias\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"head.bias\":", "duplicate key");
}

static void test_bad_tensors(void)
{
    reject_replace("dtype F16", "\"head.bias\":{\"dtype\":\"F32\"", "\"head.bias\":{\"dtype\":\"F16\"", "F16");
    reject_replace("dtype I32", "\"head.bias\":{\"dtype\":\"F32\"", "\"head.bias\":{\"dtype\":\"I32\"", "dtype I32");
    reject_replace("unknown dtype", "\"head.bias\":{\"dtype\":\"F32\"", "\"head.bias\":{\"dtype\":\"Q4\"", "unknown dtype");
    reject_replace("dtype not a string", "\"head.bias\":{\"dtype\":\"F32\"", "\"head.bias\":{\"dtype\":4", "not a string");
    reject_replace("shape mismatch", "\"head.bias\":{\"dtype\":\"F32\",\"shape\":[10]", "\"head.bias\":{\"dtype\":\"F32\",\"shape\":[2,5]", "has shape [2, 5]");
    reject_replace("shape vs offsets", "\"head.bias\":{\"dtype\":\"F32\",\"shape\":[10]", "\"head.bias\":{\"dtype\":\"F32\",\"shape\":[11]", "needs 44");
    reject_replace("negative shape", "\"head.bias\":{\"dtype\":\"F32\",\"shape\":[10]", "\"head.bias\":{\"dtype\":\"F32\",\"shape\":[-10]", "non-negative");
    reject_replace("too many dims", "\"head.bias\":{\"dtype\":\"F32\",\"shape\":[10]", "\"head.bias\":{\"dtype\":\"F32\",\"shape\":[10,1,1,1,1,1,1,1,1]", "more than 8");
    reject_replace("huge shape", "\"head.bias\":{\"dtype\":\"F32\",\"shape\":[10]", "\"head.bias\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296]", "too large");
    reject_replace("unknown field", "\"head.bias\":{\"dtype\":\"F32\"", "\"head.bias\":{\"x\":1,\"dtype\":\"F32\"", "unknown field");
    reject_replace("missing dtype", "\"head.bias\":{\"dtype\":\"F32\",", "\"head.bias\":{", "missing field 'dtype'");
    reject_replace("entry not an object", "\"head.bias\":{", "\"head.bias\":7,\"x\":{", "not a JSON object");

    /* Offsets: find head.bias's range to manipulate it. */
    const char *at = strstr(base_header, "\"head.bias\":");
    unsigned long long b = 0, e = 0;
    const char *offs = at ? strstr(at, "\"data_offsets\":[") : NULL;
    CHECK(offs && sscanf(offs, "\"data_offsets\":[%llu,%llu]", &b, &e) == 2, "head.bias offsets");
    char find[96], with[96];
    snprintf(find, sizeof find, "\"data_offsets\":[%llu,%llu]", b, e);
    snprintf(with, sizeof with, "\"data_offsets\":[%llu,%llu]", b + base_data_len, e + base_data_len);
    reject_replace("offsets out of range", find, with, "past the data section");
    reject_replace("offsets overlap", find, "\"data_offsets\":[0,40]", "overlap");
    snprintf(with, sizeof with, "\"data_offsets\":[%llu,%llu]", e, b);
    reject_replace("end before begin", find, with, "end before they begin");
    reject_replace("fractional offset", find, "\"data_offsets\":[0.5,40.5]", "two non-negative integers");
    reject_replace("negative offset", find, "\"data_offsets\":[-4,36]", "two non-negative integers");
    reject_replace("three offsets", find, "\"data_offsets\":[0,40,80]", "two non-negative integers");
    snprintf(with, sizeof with, "\"data_offsets\":[%llu,%llu]", b + 4, e + 4);
    {
        /* Shift the last tensor of the data section by 4 bytes: a hole. */
        const char *last = strstr(base_header, "\"optimizer.adam_v.head.bias\":");
        unsigned long long lb = 0, le = 0;
        const char *lo = last ? strstr(last, "\"data_offsets\":[") : NULL;
        CHECK(lo && sscanf(lo, "\"data_offsets\":[%llu,%llu]", &lb, &le) == 2 && le == base_data_len,
              "adam_v head.bias is last");
        char f2[96], w2[96], path[128];
        snprintf(f2, sizeof f2, "\"optimizer.adam_v.head.bias\":{\"dtype\":\"F32\",\"shape\":[10],\"data_offsets\":[%llu,%llu]", lb, le);
        snprintf(w2, sizeof w2, "\"optimizer.adam_v.head.bias\":{\"dtype\":\"F32\",\"shape\":[10],\"data_offsets\":[%llu,%llu]", lb + 4, le + 4);
        char *h = replace(base_header, f2, w2);
        unsigned char *data = calloc(base_data_len + 4, 1);
        memcpy(data, base_data, base_data_len - 40);
        memcpy(data + base_data_len - 36, base_data + base_data_len - 40, 40);
        path_in(path, sizeof path, "bad.safetensors");
        CHECK(h != NULL, "hole: replace");
        if (h) {
            write_checkpoint(path, h, strlen(h), data, base_data_len + 4);
            expect_status("offsets with a hole", path, MF_ERR_FORMAT, "belong to no tensor");
        }
        free(h);
        free(data);

        /* An extra tensor with its own 4 bytes at the end. */
        char extra[200];
        static const unsigned char zeros[4];
        snprintf(extra, sizeof extra, "{\"extra.weight\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[%zu,%zu]},\"__metadata__\":{\"crc32.extra.weight\":\"%08lx\",", base_data_len, base_data_len + 4, crc32(0, zeros, 4));
        h = replace(base_header, "{\"__metadata__\":{", extra);
        data = calloc(base_data_len + 4, 1);
        memcpy(data, base_data, base_data_len);
        write_checkpoint(path, h, strlen(h), data, base_data_len + 4);
        expect_status("extra tensor", path, MF_ERR_FORMAT, "unknown tensor 'extra.weight'");
        free(h);
        free(data);
    }
    {
        /* Renamed with its checksum, so the loader's own check speaks. */
        char *h = replace(base_header, "\"crc32.head.bias\":", "\"crc32.head.bias_x\":");
        char *h2 = h ? replace(h, "\"head.bias\":", "\"head.bias_x\":") : NULL;
        reject_header("missing tensor", h2, "tensor 'head.bias' is missing");
        free(h);
        free(h2);
        h = replace(base_header, "\"crc32.optimizer.adam_v.head.bias\":", "\"crc32.optimizer.adam_x.head.bias\":");
        h2 = h ? replace(h, "\"optimizer.adam_v.head.bias\":", "\"optimizer.adam_x.head.bias\":") : NULL;
        reject_header("partial optimizer", h2, "optimizer state");
        free(h);
        free(h2);
    }
}

static void test_bad_metadata(void)
{
    reject_replace("missing metadata key", "\"heads\":\"1\",", "", "'heads' is missing");
    reject_replace("heads = 0", "\"heads\":\"1\"", "\"heads\":\"0\"", "'heads' = '0'");
    reject_replace("heads not dividing dim", "\"heads\":\"1\"", "\"heads\":\"3\"", "invalid model");
    reject_replace("qk = foo", "\"qk\":\"separate\"", "\"qk\":\"foo\"", "'qk' = 'foo'");
    reject_replace("vo unknown", "\"vo\":\"separate\"", "\"vo\":\"\"", "'vo'");
    reject_replace("pool unknown", "\"pool\":\"cls\"", "\"pool\":\"max\"", "'pool'");
    reject_replace("mean count", "\"mean\":\"", "\"mean\":\"0.5,", "'mean'");
    reject_replace("std zero", "\"std\":\"", "\"std\":\"0\",\"x\":\"", "'std'");
    reject_replace("non-string value", "\"heads\":\"1\"", "\"heads\":1", "not a string");
    reject_replace("no metadata", "\"__metadata__\":", "\"__other__\":", "unknown field");
    reject_replace("metadata not an object", "\"__metadata__\":{", "\"__metadata__\":[],\"m\":{", "__metadata__ is not a JSON object");
    reject_replace("wrong format", "\"format\":\"minformer\"", "\"format\":\"pytorch\"", "not a minformer checkpoint");
    reject_replace("future version", "\"version\":\"2\"", "\"version\":\"3\"", "versions 1 to 2");
    reject_replace("version 0", "\"version\":\"2\"", "\"version\":\"0\"", "versions 1 to 2");
    reject_replace("version with a leading zero", "\"version\":\"2\"", "\"version\":\"02\"", "'version' = '02'");
    reject_replace("unknown dataset", "\"dataset\":\"fashion-mnist\"", "\"dataset\":\"imagenet\"", "unknown dataset");
    reject_replace("integer junk", "\"dim\":\"8\"", "\"dim\":\"8x\"", "'dim' = '8x'");
    reject_replace("integer plus", "\"dim\":\"8\"", "\"dim\":\"+8\"", "'dim' = '+8'");
    reject_replace("integer space", "\"dim\":\"8\"", "\"dim\":\" 8\"", "'dim' = ' 8'");
    reject_replace("integer overflow", "\"step\":\"", "\"step\":\"99999999999999999999", "'step'");
    reject_replace("dim too large", "\"dim\":\"8\"", "\"dim\":\"100000\"", "'dim'");
    reject_replace("layers huge", "\"layers\":\"1\"", "\"layers\":\"4000\"", "fewer than");
    reject_replace("dropout 1.5", "\"dropout\":\"0\"", "\"dropout\":\"1.5\"", "'dropout'");
    reject_replace("dropout nan", "\"dropout\":\"0\"", "\"dropout\":\"nan\"", "'dropout'");
    reject_replace("batch 0", "\"batch\":\"33\"", "\"batch\":\"0\"", "'batch'");
    reject_replace("correct > seen", "\"correct\":\"555\"", "\"correct\":\"1000\"", "'correct'");
    reject_replace("missing resume key", ",\"loss_sum\":\"", ",\"loss_sumx\":\"", "'loss_sum' is missing");
    reject_replace("seed negative", "\"seed\":\"", "\"seed\":\"-", "'seed'");
}

static void test_bad_data(void)
{
    char path[128];
    path_in(path, sizeof path, "bad.safetensors");
    unsigned char *data = malloc(base_data_len);
    memcpy(data, base_data, base_data_len);
    char *header = malloc(base_header_len + 1);
    memcpy(header, base_header, base_header_len + 1);
    /* With checksums that match the damage, the value checks behind them speak. */
    float nan = NAN;
    memcpy(data + 8, &nan, 4);
    resign(header, data);
    write_checkpoint(path, header, base_header_len, data, base_data_len);
    expect_status("NaN parameter", path, MF_ERR_FORMAT, "non-finite");
    memcpy(data, base_data, base_data_len);
    float neg = -1.0f;
    memcpy(data + base_data_len - 4, &neg, 4);
    resign(header, data);
    write_checkpoint(path, header, base_header_len, data, base_data_len);
    expect_status("negative adam_v", path, MF_ERR_FORMAT, "negative second moment");
    free(header);
    free(data);
}

/* ---- checksums ---------------------------------------------------------------- */

/* The name of the tensor whose data holds byte `at` of the data section. */
static int tensor_at(size_t at, char *name, size_t size)
{
    mf_json root;
    char *copy = malloc(base_header_len + 1), msg[128];
    memcpy(copy, base_header, base_header_len + 1);
    int found = 0;
    if (mf_json_parse(copy, base_header_len, &root, msg, sizeof msg) == 0) {
        for (int i = 0; !found && i < root.count; i++) {
            const mf_json *v = &root.u.items[i];
            size_t b, e;
            if (strcmp(v->key, "__metadata__") && tensor_range(base_header, v->key, &b, &e) &&
                b <= at && at < e) {
                snprintf(name, size, "%s", v->key);
                found = 1;
            }
        }
        mf_json_free(&root);
    }
    free(copy);
    return found;
}

/* Every tensor's checksum as zlib computes it from the bytes in the file. */
static void test_checksums_written(void)
{
    mf_json root;
    char *copy = malloc(base_header_len + 1), msg[128];
    memcpy(copy, base_header, base_header_len + 1);
    CHECK(mf_json_parse(copy, base_header_len, &root, msg, sizeof msg) == 0, "%s", msg);
    const mf_json *meta = mf_json_get(&root, "__metadata__");
    const mf_json *version = meta ? mf_json_get(meta, "version") : NULL;
    CHECK(version && !strcmp(version->u.string, "2"), "version is not 2");
    int tensors = 0, entries = 0;
    for (int i = 0; meta && i < meta->count; i++)
        entries += !strncmp(meta->u.items[i].key, "crc32.", 6);
    for (int i = 0; meta && i < root.count; i++) {
        const mf_json *v = &root.u.items[i];
        if (!strcmp(v->key, "__metadata__")) continue;
        tensors++;
        char key[200], want[9];
        size_t b = 0, e = 0;
        snprintf(key, sizeof key, "crc32.%s", v->key);
        const mf_json *crc = mf_json_get(meta, key);
        CHECK(tensor_range(base_header, v->key, &b, &e), "%s: no offsets", v->key);
        snprintf(want, sizeof want, "%08lx", crc32(0, base_data + b, (uInt)(e - b)));
        CHECK(crc && crc->type == MF_JSON_STRING && !strcmp(crc->u.string, want),
              "%s: checksum %s, zlib computes %s", v->key, crc ? crc->u.string : "(none)", want);
    }
    CHECK(tensors > 0 && entries == tensors, "%d checksums for %d tensors", entries, tensors);
    mf_json_free(&root);
    free(copy);

    /* The safetensors layer reports them. */
    char path[128];
    path_in(path, sizeof path, "base.safetensors");
    mf_checkpoint_header h;
    mf_error err;
    CHECK(mf_checkpoint_read_header(path, &h, &err) == MF_OK, "%s", err.message);
    CHECK(h.has_checksums == 1, "has_checksums %d", h.has_checksums);
    for (int i = 0; i < h.num_tensors; i++)
        CHECK(h.tensors[i].has_crc32, "tensor %s without its checksum", h.tensors[i].name);
    mf_checkpoint_header_free(&h);
}

/* One byte of the data section changed: the first tensor, a parameter in the
 * middle, an AdamW moment, the last tensor, then bytes all over the section
 * (every bit position). Each is refused, by the loader and by the safetensors
 * layer, naming the tensor that holds the byte. The first four keep the
 * value finite, so only the checksum can tell. */
static void test_damaged_data_refused(void)
{
    char path[128], name[200], needle[300];
    path_in(path, sizeof path, "damaged.safetensors");
    size_t b, e, mb, me;
    CHECK(tensor_range(base_header, "optimizer.adam_m.head.weight", &mb, &me), "adam_m offsets");
    CHECK(tensor_range(base_header, "blocks.0.attn.q.weight", &b, &e), "q offsets");
    size_t named[4] = {0, b + 4 * 5, mb + 4 * ((me - mb) / 8), base_data_len - 4};
    unsigned char *data = malloc(base_data_len);
    int cases = 0;
    for (size_t k = 0;; k++) {
        size_t at;
        unsigned bit;
        if (k < 4) at = named[k], bit = 0;
        else if ((at = (k - 4) * 37) < base_data_len) bit = (unsigned)(k % 8);
        else break;
        memcpy(data, base_data, base_data_len);
        data[at] ^= (unsigned char)(1u << bit);
        write_checkpoint(path, base_header, base_header_len, data, base_data_len);
        if (!tensor_at(at, name, sizeof name)) {
            CHECK(0, "no tensor holds data byte %zu", at);
            break;
        }
        snprintf(needle, sizeof needle, "tensor '%s' fails its checksum (stored ", name);
        char label[64];
        snprintf(label, sizeof label, "data byte %zu bit %u", at, bit);
        expect_status(label, path, MF_ERR_FORMAT, needle);
        mf_checkpoint_header h;
        mf_error err;
        mf_error_clear(&err);
        CHECK(mf_checkpoint_read_header(path, &h, &err) == MF_ERR_FORMAT &&
                  strstr(err.message, needle) && strstr(err.message, ", computed "),
              "%s: read_header says '%s'", label, err.message);
        cases++;
    }
    CHECK(cases > 100, "only %d damaged bytes tried", cases);
    free(data);
}

/* The file changes between mf_checkpoint_read_header and mf_checkpoint_read_f32. */
static void test_read_f32_verifies(void)
{
    char path[128];
    path_in(path, sizeof path, "changing.safetensors");
    write_file(path, base_file, base_file_len);
    mf_checkpoint_header h;
    mf_error err;
    CHECK(mf_checkpoint_read_header(path, &h, &err) == MF_OK, "%s", err.message);
    const mf_checkpoint_tensor *t = mf_checkpoint_find(&h, "head.bias");
    float bias[10];
    CHECK(t && mf_checkpoint_read_f32(&h, t, bias, &err) == MF_OK, "read_f32: %s", err.message);
    if (t) {
        int fd = open(path, O_WRONLY);
        unsigned char byte = base_file[h.data_start + t->begin + 4] ^ 0x10;
        CHECK(fd >= 0 && pwrite(fd, &byte, 1, (off_t)(h.data_start + t->begin + 4)) == 1,
              "pwrite: %s", strerror(errno));
        if (fd >= 0) close(fd);
        mf_error_clear(&err);
        CHECK(mf_checkpoint_read_f32(&h, t, bias, &err) == MF_ERR_FORMAT &&
                  strstr(err.message, "tensor 'head.bias' fails its checksum"),
              "changed data read: %s", err.message);
    }
    mf_checkpoint_header_free(&h);
}

/* Checksum entries edited in the header. */
static void test_checksum_entries(void)
{
    char *h = malloc(base_header_len + 1);
    memcpy(h, base_header, base_header_len + 1);
    char *hex = checksum_text(h, "head.weight");
    CHECK(hex != NULL, "no checksum for head.weight");
    if (!hex) {
        free(h);
        return;
    }
    char saved = hex[3];
    hex[3] = hex[3] == '0' ? '1' : '0'; /* same length, another checksum */
    reject_header("checksum edited", h, "tensor 'head.weight' fails its checksum (stored ");
    hex[3] = 'G';
    reject_header("checksum not hex", h, "'crc32.head.weight' = ");
    hex[3] = saved;
    saved = hex[0];
    hex[0] = 'A';
    reject_header("checksum upper case", h, "8 lowercase hexadecimal digits");
    hex[0] = saved;
    free(h);

    reject_replace("checksum of no tensor", "\"format\":", "\"crc32.nope\":\"00000000\",\"format\":",
                   "'crc32.nope' is the checksum of a tensor the file does not hold");
    reject_replace("checksum 7 digits", "\"crc32.head.bias\":\"", "\"crc32.head.bias\":\"0\",\"x\":\"",
                   "'crc32.head.bias' = '0'");
    /* One entry gone, then all of them in a version-2 file. */
    h = malloc(base_header_len + 1);
    memcpy(h, base_header, base_header_len + 1);
    char *at = strstr(h, ",\"crc32.head.bias\":\"");
    CHECK(at != NULL, "no head.bias checksum");
    if (at) memmove(at, at + 29, strlen(at + 29) + 1);
    reject_header("a checksum missing", h, "tensor 'head.bias' has no checksum (metadata 'crc32.head.bias')");
    free(h);
    h = version1_header(base_header);
    char *v2 = replace(h, "\"version\":\"1\"", "\"version\":\"2\"");
    reject_header("version 2 without checksums", v2, "which format version 2 requires");
    free(v2);
    free(h);
}

/* Files written before checksums (version 1) still load, bit for bit; a
 * version-1 file that does carry checksums has them checked. */
static void test_version1_loads(void)
{
    char path[128], v1path[128];
    path_in(path, sizeof path, "base.safetensors");
    path_in(v1path, sizeof v1path, "v1.safetensors");
    char *h = version1_header(base_header);
    CHECK(strlen(h) % 8 == 0 && !strstr(h, "crc32.") && strstr(h, "\"version\":\"1\""),
          "not a version-1 header: %.80s", h);
    write_checkpoint(v1path, h, strlen(h), base_data, base_data_len);
    free(h);
    mf_model a, b;
    mf_checkpoint_info ia, ib;
    mf_error err;
    CHECK(mf_checkpoint_load(path, &a, &ia, &err) == MF_OK, "%s", err.message);
    mf_status st = mf_checkpoint_load(v1path, &b, &ib, &err);
    CHECK(st == MF_OK, "version 1: %s", err.message);
    if (st == MF_OK) {
        size_t bytes = a.num_params * sizeof(float);
        CHECK(ia.version == 2 && ib.version == 1, "versions %d %d", ia.version, ib.version);
        CHECK(b.num_params == a.num_params && same_bits(a.params, b.params, bytes) &&
                  same_bits(a.adam_m, b.adam_m, bytes) && same_bits(a.adam_v, b.adam_v, bytes),
              "version 1 loads other values");
        CHECK(ib.has_optimizer && ib.has_train_state && same_info(&ia, &ib, 1), "version 1 info");
        mf_model_free(&b);
    }
    mf_model_free(&a);
    mf_checkpoint_header hd;
    CHECK(mf_checkpoint_read_header(v1path, &hd, &err) == MF_OK && hd.has_checksums == 0,
          "version 1 header: %s", err.message);
    mf_checkpoint_header_free(&hd);

    h = replace(base_header, "\"version\":\"2\"", "\"version\":\"1\"");
    unsigned char *data = malloc(base_data_len);
    memcpy(data, base_data, base_data_len);
    data[0] ^= 1;
    path_in(path, sizeof path, "bad.safetensors");
    write_checkpoint(path, h, strlen(h), data, base_data_len);
    expect_status("version 1 with checksums", path, MF_ERR_FORMAT, "fails its checksum");
    free(data);
    free(h);
}

static void fifo_timeout(int sig)
{
    (void)sig;
    static const char msg[] = "FAIL test_fifo_refused: opening a FIFO blocked for 10 s\n";
    if (write(2, msg, sizeof msg - 1) < 0) _exit(1);
    _exit(1);
}

/* A FIFO with no writer: opening it for reading would block forever. */
static void test_fifo_refused(void)
{
    char path[128];
    path_in(path, sizeof path, "fifo.safetensors");
    if (mkfifo(path, 0600)) SKIP("mkfifo: %s", strerror(errno));
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = fifo_timeout;
    sigaction(SIGALRM, &sa, &old);
    alarm(10);
    double t0 = mf_now_seconds();
    expect_status("FIFO", path, MF_ERR_IO, "not a regular file");
    mf_checkpoint_header h;
    mf_error err;
    mf_error_clear(&err);
    CHECK(mf_checkpoint_read_header(path, &h, &err) == MF_ERR_IO &&
              !strncmp(err.message, path, strlen(path)),
          "read_header on a FIFO: %s", err.message);
    double seconds = mf_now_seconds() - t0;
    alarm(0);
    sigaction(SIGALRM, &old, NULL);
    CHECK(seconds < 2, "refusing a FIFO took %.1f s", seconds);
}

static void test_io_errors(void)
{
    char path[128];
    path_in(path, sizeof path, "does-not-exist.safetensors");
    expect_status("missing file", path, MF_ERR_IO, "cannot open");
    path_in(path, sizeof path, "a-directory");
    mkdir(path, 0755);
    expect_status("directory", path, MF_ERR_IO, "is a directory");
}

static void test_case_count(void)
{
    CHECK(rejected_cases >= 20, "only %d malformed cases", rejected_cases);
    printf("# %d malformed or unreadable checkpoints rejected\n", rejected_cases);
}

/* ---- atomic writes ------------------------------------------------------------ */

static mf_model make_model(int dim, int layers, uint64_t seed)
{
    mf_config c;
    small_config(&c);
    c.dim = dim;
    c.layers = layers;
    mf_model m;
    mf_error err;
    if (mf_model_create(&m, &c, &err)) exit(1);
    fill_model(&m, seed);
    return m;
}

/* needle (may be NULL): the system's reason the message must give. */
static void expect_save_fails(const char *label, const char *path, const mf_model *m,
                              const char *dir, const char *needle)
{
    mf_checkpoint_info info;
    mf_checkpoint_info_init(&info);
    mf_error err;
    mf_error_clear(&err);
    mf_status st = mf_checkpoint_save(path, m, &info, 1, &err);
    CHECK(st == MF_ERR_IO, "%s: status %d (%s)", label, st, err.message);
    CHECK(strstr(err.message, path) == err.message, "%s: message does not name the path: %s",
          label, err.message);
    CHECK(count_temp_files(dir) == 0, "%s: a temporary file was left in %s", label, dir);
    if (needle)
        CHECK(strstr(err.message, needle) != NULL, "%s: message '%s' lacks '%s'", label,
              err.message, needle);
    if (verbose) printf("  %-28s %s\n", label, err.message);
}

static void test_save_missing_directory(void)
{
    char path[160];
    path_in(path, sizeof path, "no/such/dir/x.safetensors");
    mf_model m = make_model(8, 1, 1);
    expect_save_fails("save into missing dir", path, &m, tmpdir, strerror(ENOENT));
    struct stat sb;
    char dir[128];
    path_in(dir, sizeof dir, "no");
    CHECK(stat(dir, &sb) != 0, "a directory was created");
    mf_model_free(&m);
}

static void test_save_onto_directory(void)
{
    char dir[128], path[160];
    path_in(dir, sizeof dir, "target");
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/ckpt", dir);
    mkdir(path, 0755); /* the target is a directory: the rename must fail */
    mf_model m = make_model(8, 1, 1);
    expect_save_fails("save onto a directory", path, &m, dir, "not a regular file");
    struct stat sb;
    CHECK(stat(path, &sb) == 0 && S_ISDIR(sb.st_mode), "the directory was replaced");
    mf_model_free(&m);
}

static void test_save_replaces(void)
{
    char dir[128], path[160];
    path_in(dir, sizeof dir, "replace");
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/ckpt.safetensors", dir);
    mf_model a = make_model(8, 1, 1), b = make_model(8, 1, 2), back;
    mf_checkpoint_info info;
    mf_checkpoint_info_init(&info);
    mf_error err;
    CHECK(mf_checkpoint_save(path, &a, &info, 0, &err) == MF_OK, "%s", err.message);
    CHECK(mf_checkpoint_save(path, &b, &info, 0, &err) == MF_OK, "%s", err.message);
    CHECK(mf_checkpoint_load(path, &back, NULL, &err) == MF_OK, "%s", err.message);
    CHECK(back.params && !memcmp(back.params, b.params, b.num_params * sizeof(float)),
          "the second save did not replace the first");
    CHECK(count_temp_files(dir) == 0, "temporary files left");
    mf_model_free(&a);
    mf_model_free(&b);
    mf_model_free(&back);
}

/* Saving over old_path while writes fail must keep the old bytes. */
static void check_old_survives(const char *label, const char *dir, const char *path,
                               const unsigned char *old, size_t old_len, const mf_model *big,
                               const char *needle)
{
    expect_save_fails(label, path, big, dir, needle);
    size_t now_len;
    unsigned char *now = read_file(path, &now_len);
    CHECK(now && now_len == old_len && !memcmp(now, old, old_len),
          "%s: the previous checkpoint changed", label);
    free(now);
    mf_model m;
    mf_error err;
    CHECK(mf_checkpoint_load(path, &m, NULL, &err) == MF_OK, "%s: old one unloadable: %s", label,
          err.message);
    mf_model_free(&m);
}

/* A write that fails part way (as on a full disk), simulated with a file
 * size limit: works as root, where permissions do not stop writes. */
static void test_save_write_failure(void)
{
    char dir[128], path[160];
    path_in(dir, sizeof dir, "fsize");
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/ckpt.safetensors", dir);
    mf_model small = make_model(8, 1, 3), big = make_model(32, 2, 4);
    mf_checkpoint_info info;
    mf_checkpoint_info_init(&info);
    mf_error err;
    CHECK(mf_checkpoint_save(path, &small, &info, 1, &err) == MF_OK, "%s", err.message);
    size_t old_len;
    unsigned char *old = read_file(path, &old_len);

    struct rlimit saved, lim;
    getrlimit(RLIMIT_FSIZE, &saved);
    lim = saved;
    lim.rlim_cur = 16384;
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    if (setrlimit(RLIMIT_FSIZE, &lim)) {
        signal(SIGXFSZ, prev);
        free(old);
        mf_model_free(&small);
        mf_model_free(&big);
        SKIP("setrlimit(RLIMIT_FSIZE) failed: %s", strerror(errno));
    }
    check_old_survives("write fails part way", dir, path, old, old_len, &big, strerror(EFBIG));
    setrlimit(RLIMIT_FSIZE, &saved);
    signal(SIGXFSZ, prev);
    free(old);
    mf_model_free(&small);
    mf_model_free(&big);
}

/* mf_file_replace, which every atomic write goes through: what is at PATH
 * when it is not a regular file. */
static void expect_not_replaced(const char *label, const char *path, const char *dir)
{
    mf_error err;
    mf_error_clear(&err);
    mf_status st = mf_file_replace(path, "new", 3, &err);
    char want[300];
    snprintf(want, sizeof want, "%s: not a regular file; not replaced", path);
    CHECK(st == MF_ERR_IO && !strcmp(err.message, want), "%s: status %d, message '%s'", label, st,
          err.message);
    CHECK(count_temp_files(dir) == 0, "%s: a temporary file was left", label);
    mf_file_replacement r;
    mf_error_clear(&err);
    CHECK(mf_file_replace_begin(&r, path, &err) == MF_ERR_IO && !strcmp(err.message, want),
          "%s: begin: %s", label, err.message);
    /* A checkpoint goes the same way. */
    mf_model m = make_model(8, 1, 1);
    mf_checkpoint_info info;
    mf_checkpoint_info_init(&info);
    mf_error_clear(&err);
    CHECK(mf_checkpoint_save(path, &m, &info, 1, &err) == MF_ERR_IO && !strcmp(err.message, want),
          "%s: save: %s", label, err.message);
    mf_model_free(&m);
    CHECK(count_temp_files(dir) == 0, "%s: a temporary file was left", label);
}

static void test_replace_refuses_non_regular(void)
{
    char dir[128], path[200];
    path_in(dir, sizeof dir, "nonregular");
    mkdir(dir, 0755);
    struct stat sb;
    snprintf(path, sizeof path, "%s/fifo", dir);
    CHECK(mkfifo(path, 0600) == 0, "mkfifo %s: %s", path, strerror(errno));
    expect_not_replaced("a FIFO", path, dir);
    CHECK(lstat(path, &sb) == 0 && S_ISFIFO(sb.st_mode), "the FIFO was replaced");
    snprintf(path, sizeof path, "%s/dir", dir);
    mkdir(path, 0755);
    expect_not_replaced("a directory", path, dir);
    CHECK(lstat(path, &sb) == 0 && S_ISDIR(sb.st_mode), "the directory was replaced");
    /* A device: /dev/null itself would be the real case as root; a node of
     * our own where mknod is allowed. */
    snprintf(path, sizeof path, "%s/null", dir);
    if (mknod(path, S_IFCHR | 0600, makedev(1, 3)) == 0) {
        expect_not_replaced("a device", path, dir);
        CHECK(lstat(path, &sb) == 0 && S_ISCHR(sb.st_mode), "the device was replaced");
    } else if (verbose) {
        printf("  (no device node: mknod: %s)\n", strerror(errno));
    }
}

/* A symbolic link is replaced itself; its target is left alone. */
static void test_replace_symlink(void)
{
    char dir[128], target[200], link[200];
    path_in(dir, sizeof dir, "symlink");
    mkdir(dir, 0755);
    snprintf(target, sizeof target, "%s/target", dir);
    snprintf(link, sizeof link, "%s/link", dir);
    write_file(target, "old", 3);
    CHECK(symlink("target", link) == 0, "symlink: %s", strerror(errno));
    mf_error err;
    CHECK(mf_file_replace(link, "new", 3, &err) == MF_OK, "%s", err.message);
    struct stat sb;
    CHECK(lstat(link, &sb) == 0 && S_ISREG(sb.st_mode), "the link is still a link");
    size_t n;
    unsigned char *t = read_file(target, &n), *l = read_file(link, &n);
    CHECK(t && !memcmp(t, "old", 3), "the link's target was changed");
    CHECK(l && n == 3 && !memcmp(l, "new", 3), "the new content is not at the link's path");
    free(t);
    free(l);
}

/* The streaming form: pieces, commit; abort leaves the old file; a failed
 * write is reported at commit and leaves the old file. */
static void test_replace_streaming(void)
{
    char dir[128], path[200];
    path_in(dir, sizeof dir, "stream");
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/file", dir);
    write_file(path, "old", 3);
    mf_file_replacement r;
    mf_error err;
    CHECK(mf_file_replace_begin(&r, path, &err) == MF_OK, "%s", err.message);
    CHECK(count_temp_files(dir) == 1, "no temporary file while writing");
    CHECK(mf_file_replace_write(&r, "ne", 2, &err) == MF_OK, "%s", err.message);
    mf_file_replace_abort(&r);
    size_t n;
    unsigned char *now = read_file(path, &n);
    CHECK(now && n == 3 && !memcmp(now, "old", 3), "abort changed the file");
    free(now);
    CHECK(count_temp_files(dir) == 0, "abort left its temporary file");

    CHECK(mf_file_replace_begin(&r, path, &err) == MF_OK, "%s", err.message);
    mf_file_replace_write(&r, "ne", 2, &err);
    mf_file_replace_write(&r, "w!", 2, &err);
    CHECK(mf_file_replace_commit(&r, &err) == MF_OK, "%s", err.message);
    now = read_file(path, &n);
    CHECK(now && n == 4 && !memcmp(now, "new!", 4), "commit did not replace the file");
    free(now);
    CHECK(count_temp_files(dir) == 0, "commit left its temporary file");

    struct rlimit saved, lim;
    getrlimit(RLIMIT_FSIZE, &saved);
    lim = saved;
    lim.rlim_cur = 4096;
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    if (setrlimit(RLIMIT_FSIZE, &lim)) {
        signal(SIGXFSZ, prev);
        SKIP("setrlimit(RLIMIT_FSIZE) failed: %s", strerror(errno));
    }
    static char big[8192];
    CHECK(mf_file_replace_begin(&r, path, &err) == MF_OK, "%s", err.message);
    mf_file_replace_write(&r, big, sizeof big, NULL);
    mf_file_replace_write(&r, big, 1, NULL); /* after a failure: nothing */
    mf_error_clear(&err);
    mf_status st = mf_file_replace_commit(&r, &err);
    setrlimit(RLIMIT_FSIZE, &saved);
    signal(SIGXFSZ, prev);
    CHECK(st == MF_ERR_IO && strstr(err.message, path) == err.message &&
              strstr(err.message, strerror(EFBIG)) && strstr(err.message, "not replaced"),
          "status %d: %s", st, err.message);
    now = read_file(path, &n);
    CHECK(now && n == 4 && !memcmp(now, "new!", 4), "a failed write changed the file");
    free(now);
    CHECK(count_temp_files(dir) == 0, "a failed write left its temporary file");
}

/* A real full disk: a 64 KiB tmpfs, where mounting is allowed. */
static void test_save_disk_full(void)
{
#ifdef __linux__
    char dir[128], path[160];
    path_in(dir, sizeof dir, "tiny");
    mkdir(dir, 0755);
    if (mount("tmpfs", dir, "tmpfs", 0, "size=64k"))
        SKIP("cannot mount a tmpfs here (%s); the file-size-limit test covers the path",
             strerror(errno));
    snprintf(path, sizeof path, "%s/ckpt.safetensors", dir);
    mf_model small = make_model(8, 1, 3), big = make_model(32, 2, 4);
    mf_checkpoint_info info;
    mf_checkpoint_info_init(&info);
    mf_error err;
    CHECK(mf_checkpoint_save(path, &small, &info, 1, &err) == MF_OK, "%s", err.message);
    size_t old_len;
    unsigned char *old = read_file(path, &old_len);
    check_old_survives("disk full", dir, path, old, old_len, &big, strerror(ENOSPC));
    free(old);
    mf_model_free(&small);
    mf_model_free(&big);
    umount2(dir, MNT_DETACH);
#else
    SKIP("tmpfs mounting is Linux only");
#endif
}

/* ---- fuzzing -------------------------------------------------------------------- */

/* Random damage to a valid checkpoint: loads must return OK or a format
 * error, never crash or read out of bounds (run under ASan). MF_FUZZ_ITERS
 * sets the number of files (3000). */
static void test_fuzz_header(void)
{
    char path[128];
    path_in(path, sizeof path, "fuzz.safetensors");
    mf_rng rng;
    mf_rng_seed(&rng, 2024);
    size_t cap = base_file_len + 64;
    unsigned char *buf = malloc(cap);
    static const char alphabet[] = "{}[]\":,0123456789-.eE\\u \x01\xc3\xff";
    int ok = 0, rejected = 0, iters = 3000;
    if (getenv("MF_FUZZ_ITERS")) iters = atoi(getenv("MF_FUZZ_ITERS"));
    for (int iter = 0; iter < iters; iter++) {
        memcpy(buf, base_file, base_file_len);
        size_t n = base_file_len;
        size_t hlen = base_header_len;
        int kind = (int)mf_rng_below(&rng, 6);
        int edits = 1 + (int)mf_rng_below(&rng, 4);
        for (int k = 0; k < edits; k++) {
            size_t at = 8 + mf_rng_below(&rng, (uint32_t)hlen);
            switch (kind) {
            case 0: buf[at] ^= (unsigned char)(1u << mf_rng_below(&rng, 8)); break;
            case 1: buf[at] = (unsigned char)alphabet[mf_rng_below(&rng, sizeof alphabet - 1)]; break;
            case 2: n = mf_rng_below(&rng, (uint32_t)base_file_len); break;
            case 3: buf[mf_rng_below(&rng, 8)] ^= (unsigned char)(1u << mf_rng_below(&rng, 8)); break;
            case 4: /* delete a header byte, length unchanged or fixed */
                memmove(buf + at, buf + at + 1, n - at - 1);
                n--;
                if (mf_rng_below(&rng, 2)) {
                    hlen--;
                    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
                }
                break;
            default: /* digit changes inside the header: plausible numbers */
                if (buf[at] >= '0' && buf[at] <= '9') buf[at] = (unsigned char)('0' + mf_rng_below(&rng, 10));
                else buf[at] ^= 1;
                break;
            }
        }
        write_file(path, buf, n);
        mf_model m;
        mf_error err;
        mf_error_clear(&err);
        mf_status st = mf_checkpoint_load(path, &m, NULL, &err);
        if (st == MF_OK) {
            ok++;
            mf_model_free(&m);
        } else {
            rejected++;
            CHECK(st == MF_ERR_FORMAT, "fuzz %d (kind %d): status %d: %s", iter, kind, st,
                  err.message);
            CHECK(!strncmp(err.message, path, strlen(path)), "fuzz %d: message %s", iter,
                  err.message);
            CHECK(m.params == NULL, "fuzz %d: model not empty", iter);
        }
    }
    printf("# fuzz: %d loaded, %d rejected\n", ok, rejected);
    CHECK(rejected > iters * 2 / 3, "only %d of %d damaged files rejected", rejected, iters);
    free(buf);
}

/* ---- the JSON reader on its own -------------------------------------------------------- */

static int json_ok(const char *text, mf_json *root)
{
    static char buf[512];
    char msg[128];
    snprintf(buf, sizeof buf, "%s", text);
    return mf_json_parse(buf, strlen(buf), root, msg, sizeof msg) == 0;
}

static void test_json_reader(void)
{
    mf_json root;
    CHECK(json_ok(" {\"a\" : [1, -2.5e3, true, false, null, \"x\\n\\u00e9\\ud83d\\ude00\"], \"b\":{}} ", &root),
          "valid document rejected");
    const mf_json *a = mf_json_get(&root, "a");
    CHECK(a && a->type == MF_JSON_ARRAY && a->count == 6, "array");
    if (a && a->count == 6) {
        uint64_t u;
        CHECK(mf_json_u64(&a->u.items[0], &u) && u == 1, "u64");
        CHECK(!mf_json_u64(&a->u.items[1], &u), "u64 of -2.5e3");
        CHECK(a->u.items[1].u.number.value == -2500.0, "number");
        CHECK(a->u.items[2].type == MF_JSON_TRUE && a->u.items[4].type == MF_JSON_NULL, "literals");
        CHECK(!strcmp(a->u.items[5].u.string, "x\n\xc3\xa9\xf0\x9f\x98\x80"), "string decoding");
    }
    mf_json_free(&root);
    CHECK(json_ok("18446744073709551615", &root), "max u64");
    uint64_t u = 0;
    CHECK(mf_json_u64(&root, &u) && u == UINT64_MAX, "u64 max");
    mf_json_free(&root);
    CHECK(json_ok("18446744073709551616", &root) && !mf_json_u64(&root, &u), "u64 overflow");
    mf_json_free(&root);
    const char *bad[] = {"", " ", "{", "}", "[1,]", "{\"a\"}", "{\"a\":}", "{a:1}", "01", "1.",
                         ".5", "-", "1e", "+1", "tru", "nul", "\"abc", "\"\\x\"", "[1 2]",
                         "{\"a\":1 \"b\":2}", "\"\t\"", "{\"a\":1,\"a\":2}", "1 2", "\"\\u00\""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK(!json_ok(bad[i], &root), "accepted invalid JSON '%s'", bad[i]);
    }
    mf_json_writer w = {0};
    mf_json_string(&w, "a\"b\\c\nd\x01");
    CHECK(w.data && !strcmp(w.data, "\"a\\\"b\\\\c\\u000ad\\u0001\""), "escaping: %s", w.data);
    mf_json_writer_free(&w);
}

int main(void)
{
    verbose = getenv("MF_TEST_VERBOSE") != NULL;
    /* Every save fsyncs: on a RAM-backed /dev/shm that costs nothing. */
    int made = 0;
    snprintf(tmpdir, sizeof tmpdir, "/dev/shm/mf_test_checkpoint_XXXXXX");
    made = mkdtemp(tmpdir) != NULL;
    if (!made) {
        snprintf(tmpdir, sizeof tmpdir, "/tmp/mf_test_checkpoint_XXXXXX");
        made = mkdtemp(tmpdir) != NULL;
    }
    if (!made) {
        perror("mkdtemp");
        return 1;
    }
    make_base();
    RUN(test_json_reader);
    RUN(test_round_trip_every_variant);
    RUN(test_base_loads);
    RUN(test_without_train_state);
    RUN(test_truncated_and_lengths);
    RUN(test_bad_json);
    RUN(test_bad_tensors);
    RUN(test_bad_metadata);
    RUN(test_bad_data);
    RUN(test_checksums_written);
    RUN(test_damaged_data_refused);
    RUN(test_read_f32_verifies);
    RUN(test_checksum_entries);
    RUN(test_version1_loads);
    RUN(test_fifo_refused);
    RUN(test_io_errors);
    RUN(test_case_count);
    RUN(test_save_missing_directory);
    RUN(test_save_onto_directory);
    RUN(test_save_replaces);
    RUN(test_save_write_failure);
    RUN(test_save_disk_full);
    RUN(test_replace_refuses_non_regular);
    RUN(test_replace_symlink);
    RUN(test_replace_streaming);
    RUN(test_fuzz_header);
    free(base_header);
    free(base_file);
    remove_tree(tmpdir);
    return check_report();
}
