/* Many classes: folders of more than 10 and up to MF_FOLDER_MAX_CLASSES
 * classes (two-byte labels, the fingerprint rule, the decode cache of
 * version 2 and an old cache rebuilt), more class folders than a model takes
 * and unusable class names refused with the folder named, the model and
 * checkpoint limits (2..MF_MAX_CLASSES), and a folder model's class names
 * in its checkpoint: written, read back, absent in older files, and every
 * tampered form refused with one line. Folders of tiny PGM images are made
 * in a temporary directory. */
#define _GNU_SOURCE /* mkdtemp, nftw; child.h */
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "child.h" /* read_text, remove_tree */
#include "minformer.h"

static char root[64];

static void fresh_root(void)
{
    if (root[0]) remove_tree(root);
    snprintf(root, sizeof root, "/tmp/mf-test-classes-XXXXXX");
    if (!mkdtemp(root)) fprintf(stderr, "mkdtemp: %s\n", strerror(errno));
}

static void make_dir(const char *split, const char *cls)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", root, split);
    mkdir(p, 0777);
    if (!cls) return;
    snprintf(p, sizeof p, "%s/%s/%s", root, split, cls);
    mkdir(p, 0777);
}

/* A 4x4 grey PGM whose first pixel is label % 256, its second label / 256
 * and its third n: the pixels tell label and file apart. */
static void write_pgm(const char *split, const char *cls, int n, int label)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/%s/%s/%d.pgm", root, split, cls, n);
    FILE *f = fopen(p, "wb");
    if (!f) {
        fprintf(stderr, "cannot write %s\n", p);
        return;
    }
    unsigned char pix[16] = {(unsigned char)(label % 256), (unsigned char)(label / 256),
                             (unsigned char)n};
    fprintf(f, "P5\n4 4\n255\n");
    fwrite(pix, 1, sizeof pix, f);
    fclose(f);
}

/* classes "c000".. (K of them): train has 2 images a class, test 1. */
static void make_folder(int K)
{
    fresh_root();
    for (int k = 0; k < K; k++) {
        char cls[16];
        snprintf(cls, sizeof cls, "c%03d", k);
        make_dir("train", cls);
        make_dir("test", cls);
        write_pgm("train", cls, 0, k);
        write_pgm("train", cls, 1, k);
        write_pgm("test", cls, 0, k);
    }
}

static mf_status load(mf_dataset *ds, mf_folder_report *rep, mf_error *err)
{
    mf_error_clear(err);
    return mf_dataset_load_folder(ds, root, NULL, rep, err);
}

/* The fingerprint as data.h states it, computed here from the parts. */
static uint64_t expected_fingerprint(const mf_dataset *ds)
{
    const mf_split *s[2] = {&ds->train, &ds->test};
    uint64_t h = 0;
    int wide = ds->classes > 256;
    for (int i = 0; i < 2; i++) {
        size_t img = (size_t)s[i]->channels * s[i]->size * s[i]->size;
        h = mf_hash_bytes(h, s[i]->images, (size_t)s[i]->count * img);
        uint8_t *b = malloc((size_t)s[i]->count * 2 + 1);
        for (int j = 0; j < s[i]->count; j++) {
            if (wide) b[2 * j] = (uint8_t)s[i]->labels[j], b[2 * j + 1] = (uint8_t)(s[i]->labels[j] >> 8);
            else b[j] = (uint8_t)s[i]->labels[j];
        }
        h = mf_hash_bytes(h, b, (size_t)s[i]->count * (wide ? 2 : 1));
        free(b);
    }
    for (int k = 0; k < ds->classes; k++)
        h = mf_hash_bytes(h, ds->class_names[k], strlen(ds->class_names[k]) + 1);
    return h;
}

/* Every image's label agrees with its pixels and its class folder's name. */
static void check_labels(const mf_dataset *ds, int K)
{
    const mf_split *s[2] = {&ds->train, &ds->test};
    int bad = 0, max = 0;
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < s[i]->count; j++) {
            const uint8_t *p = s[i]->images + (size_t)j * 16;
            int label = s[i]->labels[j];
            bad += label != p[0] + 256 * p[1];
            max = label > max ? label : max;
        }
    CHECK(bad == 0 && max == K - 1, "%d labels disagree with their pixels; largest %d", bad, max);
    char want[16];
    snprintf(want, sizeof want, "c%03d", K - 1);
    CHECK(!strcmp(mf_dataset_label_name(ds, K - 1), want), "class %d is '%s'", K - 1,
          mf_dataset_label_name(ds, K - 1));
}

static void test_many_class_folders(void)
{
    static const int counts[] = {12, 300};
    for (int c = 0; c < 2; c++) {
        int K = counts[c];
        make_folder(K);
        mf_dataset ds, again;
        mf_folder_report rep;
        mf_error err;
        if (load(&ds, &rep, &err)) {
            CHECK(0, "%d classes: %s", K, err.message);
            continue;
        }
        CHECK(ds.classes == K && ds.train.count == 2 * K && ds.test.count == K &&
                  ds.train.classes == K && rep.cache_written,
              "%d classes: %d classes, %d + %d images", K, ds.classes, ds.train.count,
              ds.test.count);
        check_labels(&ds, K);
        CHECK(ds.fingerprint == expected_fingerprint(&ds), "%d classes: fingerprint", K);
        CHECK(load(&again, &rep, &err) == MF_OK, "%s", err.message);
        if (!err.status) {
            CHECK(rep.cache_used && again.fingerprint == ds.fingerprint &&
                      !memcmp(again.train.labels, ds.train.labels,
                              (size_t)ds.train.count * sizeof *ds.train.labels),
                  "%d classes: the cache gives back the labels (used %d)", K, rep.cache_used);
            mf_dataset_free(&again);
        }
        /* A model of K classes evaluates it. */
        mf_config cfg;
        mf_config_default(&cfg, 4, 1, K);
        cfg.patch = 2, cfg.dim = 8, cfg.layers = 1, cfg.mlp_ratio = 0;
        mf_model m;
        mf_status st = mf_model_create(&m, &cfg, &err);
        CHECK(st == MF_OK, "%d classes: %s", K, err.message);
        if (!st) {
            mf_model_init_weights(&m, 1);
            mf_eval_result r;
            CHECK(mf_evaluate(&m, &ds.test, ds.mean, ds.std, 64, &r, &err) == MF_OK &&
                      r.count == K && r.classes == K,
                  "%d classes: evaluate: %s", K, err.message);
            mf_model_free(&m);
        }
        mf_dataset_free(&ds);
    }
}

/* A cache of version 1 (byte labels) is never read as version 2. */
static void test_old_cache_rebuilt(void)
{
    make_folder(3);
    mf_dataset ds;
    mf_folder_report rep;
    mf_error err;
    CHECK(load(&ds, &rep, &err) == MF_OK, "%s", err.message);
    if (err.status) return;
    uint64_t fp = ds.fingerprint;
    mf_dataset_free(&ds);
    FILE *f = fopen(rep.cache_path, "r+b");
    CHECK(f != NULL, "%s", rep.cache_path);
    if (!f) return;
    fseek(f, 7, SEEK_SET);
    fputc('1', f); /* "MFFOLDC1": the old magic, the rest as it was */
    fclose(f);
    CHECK(load(&ds, &rep, &err) == MF_OK, "%s", err.message);
    if (err.status) return;
    CHECK(!rep.cache_used && rep.cache_written && strstr(rep.note, "not a minformer cache of this "
                                                          "version") && ds.fingerprint == fp,
          "used %d note '%s'", rep.cache_used, rep.note);
    mf_dataset_free(&ds);
}

static void expect_refused(const char *needle)
{
    mf_dataset ds;
    mf_error err;
    mf_status st = load(&ds, NULL, &err);
    CHECK(st == MF_ERR_FORMAT && strstr(err.message, needle) && !strchr(err.message, '\n'),
          "status %d, message '%s' lacks '%s'", st, err.message, needle);
    if (!st) mf_dataset_free(&ds);
}

static void test_class_limit_and_names(void)
{
    /* MF_FOLDER_MAX_CLASSES is accepted (one image a class). */
    make_folder(MF_FOLDER_MAX_CLASSES);
    mf_dataset ds;
    mf_error err;
    mf_status st = load(&ds, NULL, &err);
    CHECK(st == MF_OK, "%d classes: %s", MF_FOLDER_MAX_CLASSES, err.message);
    if (!st) {
        check_labels(&ds, MF_FOLDER_MAX_CLASSES);
        mf_dataset_free(&ds);
    }
    /* One more is refused, naming the first class folder beyond the limit. */
    make_dir("train", "zz-beyond");
    expect_refused("1001 class folders, more than the 1000 a model takes");
    expect_refused("'zz-beyond'");
    /* Names that cannot name a class. */
    make_folder(2);
    make_dir("train", "tab\there");
    make_dir("test", "tab\there");
    write_pgm("train", "tab\there", 0, 0);
    write_pgm("test", "tab\there", 0, 0);
    expect_refused("tab\\x09here: cannot name a class (a control character in it)");
    make_folder(2);
    make_dir("train", "caf\xe9");
    expect_refused("caf\\xe9: cannot name a class (not valid UTF-8)");
    make_folder(2);
    make_dir("train", "caf\xc3\xa9"); /* UTF-8 é: a name like any other */
    make_dir("test", "caf\xc3\xa9");
    write_pgm("train", "caf\xc3\xa9", 0, 0);
    write_pgm("test", "caf\xc3\xa9", 0, 0);
    st = load(&ds, NULL, &err);
    CHECK(st == MF_OK && ds.classes == 3, "UTF-8 name: %s", err.message);
    if (!st) mf_dataset_free(&ds);
    CHECK(mf_class_name_problem("n01440764") == NULL && mf_class_name_problem("") &&
              mf_class_name_problem("..") && mf_class_name_problem("a/b") &&
              mf_class_name_problem("\xc2\x85") && mf_class_name_problem("\x7f"),
          "mf_class_name_problem");
}

static void test_model_class_limits(void)
{
    mf_config c;
    mf_error err;
    mf_config_default(&c, 8, 1, MF_MAX_CLASSES);
    CHECK(mf_config_validate(&c, &err) == MF_OK, "%d classes: %s", MF_MAX_CLASSES, err.message);
    c.classes = MF_MAX_CLASSES + 1;
    CHECK(mf_config_validate(&c, &err) == MF_ERR_CONFIG && strstr(err.message, "2 to 1000"),
          "%d classes accepted: %s", c.classes, err.message);
    c.classes = 1;
    CHECK(mf_config_validate(&c, &err) == MF_ERR_CONFIG, "1 class accepted");
}

/* ---- class names in checkpoints ---------------------------------------------- */

enum { CK = 300 };
static char ck_path[4096], bad_path[4096];
static char *ck_header; /* the JSON header of the saved checkpoint */
static unsigned char *ck_data;
static size_t ck_data_len;
static char *ck_names[CK];

static mf_status save_folder_model(const char *path, mf_dataset_kind kind, char *const *names,
                                   mf_error *err)
{
    mf_config cfg;
    mf_config_default(&cfg, 4, 1, CK);
    cfg.patch = 2, cfg.dim = 8, cfg.layers = 1, cfg.mlp_ratio = 0;
    mf_model m;
    mf_status st = mf_model_create(&m, &cfg, err);
    if (st) return st;
    mf_model_init_weights(&m, 5);
    mf_checkpoint_info info;
    mf_checkpoint_info_init(&info);
    info.dataset = kind;
    info.class_names = names;
    info.folder_image_size = 4;
    info.folder_center_crop = 1;
    st = mf_checkpoint_save(path, &m, &info, 0, err);
    mf_model_free(&m);
    return st;
}

/* The header with its first `find` replaced by `with`, the base data after. */
static void write_tampered(const char *find, const char *with)
{
    const char *at = strstr(ck_header, find);
    CHECK(at != NULL, "the header lacks '%s'", find);
    if (!at) return;
    size_t a = (size_t)(at - ck_header), fl = strlen(find), wl = strlen(with);
    size_t hl = strlen(ck_header) - fl + wl;
    FILE *f = fopen(bad_path, "wb");
    unsigned char len[8];
    for (int i = 0; i < 8; i++) len[i] = (unsigned char)((uint64_t)hl >> (8 * i));
    fwrite(len, 1, 8, f);
    fwrite(ck_header, 1, a, f);
    fwrite(with, 1, wl, f);
    fwrite(at + fl, 1, strlen(at + fl), f);
    fwrite(ck_data, 1, ck_data_len, f);
    fclose(f);
}

static void expect_tampered_refused(const char *label, const char *find, const char *with,
                                    const char *needle)
{
    write_tampered(find, with);
    mf_model m;
    mf_checkpoint_info info;
    mf_error err;
    mf_error_clear(&err);
    mf_status st = mf_checkpoint_load(bad_path, &m, &info, &err);
    CHECK(st == MF_ERR_FORMAT && strstr(err.message, needle) && !strchr(err.message, '\n'),
          "%s: status %d, message '%s' lacks '%s'", label, st, err.message, needle);
    if (!st) mf_model_free(&m);
    char **names;
    int n;
    st = mf_checkpoint_read_classes(bad_path, &names, &n, &err);
    CHECK(st == MF_ERR_FORMAT && names == NULL && n == 0, "%s: read_classes gave %d", label, st);
    if (!st) mf_checkpoint_class_names_free(names, n);
}

static void test_checkpoint_class_names(void)
{
    fresh_root();
    snprintf(ck_path, sizeof ck_path, "%s/names.safetensors", root);
    snprintf(bad_path, sizeof bad_path, "%s/bad.safetensors", root);
    for (int k = 0; k < CK; k++) {
        ck_names[k] = malloc(16);
        snprintf(ck_names[k], 16, "c%03d", k);
    }
    mf_error err;
    CHECK(save_folder_model(ck_path, MF_FOLDER, ck_names, &err) == MF_OK, "%s", err.message);
    mf_model m;
    mf_checkpoint_info info;
    mf_status st = mf_checkpoint_load(ck_path, &m, &info, &err);
    CHECK(st == MF_OK, "%s", err.message);
    if (!st) {
        CHECK(m.cfg.classes == CK && info.dataset == MF_FOLDER && info.has_class_names &&
                  info.class_names == NULL && info.folder_image_size == 4 &&
                  info.folder_center_crop == 1,
              "loaded: %d classes, names %d, size %d, crop %d", m.cfg.classes,
              info.has_class_names, info.folder_image_size, info.folder_center_crop);
        mf_model_free(&m);
    }
    char **names = NULL;
    int n = 0;
    CHECK(mf_checkpoint_read_classes(ck_path, &names, &n, &err) == MF_OK && n == CK,
          "read_classes: %d (%s)", n, err.message);
    int same = 0;
    for (int k = 0; names && k < n; k++) same += !strcmp(names[k], ck_names[k]);
    CHECK(same == CK, "%d of %d names read back", same, CK);
    mf_checkpoint_class_names_free(names, n);

    /* A checkpoint without names (as before they were stored) still loads. */
    char plain[4096];
    snprintf(plain, sizeof plain, "%s/plain.safetensors", root);
    CHECK(save_folder_model(plain, MF_FOLDER, NULL, &err) == MF_OK, "%s", err.message);
    st = mf_checkpoint_load(plain, &m, &info, &err);
    CHECK(st == MF_OK && !info.has_class_names, "without names: %s", err.message);
    if (!st) mf_model_free(&m);
    CHECK(mf_checkpoint_read_classes(plain, &names, &n, &err) == MF_OK && !names && !n,
          "without names: %d", n);
    /* Names only for a folder model: save refuses them otherwise. */
    CHECK(save_folder_model(bad_path, MF_MNIST, ck_names, &err) == MF_ERR_CONFIG &&
              strstr(err.message, "not saved"),
          "names on an MNIST model: %s", err.message);

    size_t len;
    unsigned char *file = (unsigned char *)read_text(ck_path, &len);
    CHECK(file && len > 8, "cannot read %s", ck_path);
    if (!file || len <= 8) return;
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = hl << 8 | file[i];
    ck_header = malloc((size_t)hl + 1);
    memcpy(ck_header, file + 8, (size_t)hl);
    ck_header[hl] = '\0';
    ck_data = file + 8 + hl;
    ck_data_len = len - 8 - (size_t)hl;
    CHECK(strstr(ck_header, "\"class_names\":\"[\\\"c000\\\",\\\"c001\\\""),
          "class_names as stored: %.300s", strstr(ck_header, "class_names"));

    expect_tampered_refused("a name fewer", ",\\\"c299\\\"]", "]", "expected a JSON array of 300");
    expect_tampered_refused("a name more", "\\\"c299\\\"]", "\\\"c299\\\",\\\"c300\\\"]",
                            "expected a JSON array of 300");
    expect_tampered_refused("not an array", "\"class_names\":\"[", "\"class_names\":\"{\\\"a\\\":[",
                            "class_names");
    expect_tampered_refused("a number", "\\\"c007\\\"", "7", "name 7: not a string");
    expect_tampered_refused("duplicate", "\\\"c001\\\"", "\\\"c000\\\"", "name 1 ('c000') is not "
                            "after name 0");
    expect_tampered_refused("unsorted", "\\\"c010\\\"", "\\\"c999\\\"", "name 11 ('c011') is not "
                            "after name 10");
    expect_tampered_refused("control character", "\\\"c005\\\"", "\\\"c00\\\\u0001\\\"",
                            "name 5 ('c00?'): a control character in it");
    expect_tampered_refused("C1 control", "\\\"c005\\\"", "\\\"c00\\\\u0085\\\"",
                            "a control character in it");
    expect_tampered_refused("NUL", "\\\"c005\\\"", "\\\"c00\\\\u0000\\\"", "class_names");
    expect_tampered_refused("raw control", "\\\"c005\\\"", "\\\"c00\\u0001\\\"", "class_names");
    expect_tampered_refused("slash", "\\\"c005\\\"", "\\\"c0/5\\\"", "'/'");
    expect_tampered_refused("empty", "\\\"c000\\\"", "\\\"\\\"", "an empty name");
    char longer[400];
    snprintf(longer, sizeof longer, "\\\"c299%0300d\\\"", 0);
    expect_tampered_refused("too long", "\\\"c299\\\"", longer, "longer than 255 bytes");
    expect_tampered_refused("built-in dataset", "\"dataset\":\"folder\"", "\"dataset\":\"mnist\"",
                            "only a folder dataset's checkpoint");
    expect_tampered_refused("no settings", "\"folder_center_crop\":\"1\",", "",
                            "'folder_center_crop' is missing");
    expect_tampered_refused("crop 2", "\"folder_center_crop\":\"1\"",
                            "\"folder_center_crop\":\"2\"", "folder_center_crop");
    expect_tampered_refused("crop without size", "\"folder_image_size\":\"4\"",
                            "\"folder_image_size\":\"0\"", "a center crop needs");
    expect_tampered_refused("other size", "\"folder_image_size\":\"4\"",
                            "\"folder_image_size\":\"8\"", "another size than the model's");
    expect_tampered_refused("1001 classes", "\"classes\":\"300\"", "\"classes\":\"1001\"",
                            "expected an integer in [2, 1000]");
    free(file);
    free(ck_header);
    for (int k = 0; k < CK; k++) free(ck_names[k]);
}

int main(void)
{
    RUN(test_many_class_folders);
    RUN(test_old_cache_rebuilt);
    RUN(test_class_limit_and_names);
    RUN(test_model_class_limits);
    RUN(test_checkpoint_class_names);
    if (root[0]) remove_tree(root);
    return check_report();
}
