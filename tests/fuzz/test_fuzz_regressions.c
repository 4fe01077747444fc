/* Replays the fuzz corpora through the fuzz targets' own entry points
 * (fuzz/targets.c): every seed in fuzz/corpus/TARGET/ and every input that
 * once crashed or broke a guarantee in fuzz/regressions/TARGET/ must be
 * handled without a crash, a sanitizer report or a broken guarantee. What the
 * targets print is silenced; MF_TEST_VERBOSE=1 names each file before its
 * replay (to find the one behind a crash) and what the library said of it.
 *
 * `test_fuzz_regressions TARGET FILE...` replays just those files, loudly. */
#include "../../fuzz/targets.c"
#include "../../app/cli/cmd_params.c"
#include "../../app/cli/options.c"

#include <dirent.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "check.h"

/* Sanitizer reports go to this descriptor even while stderr is silenced;
 * present only in a sanitized build. */
extern void __sanitizer_set_report_fd(void *fd) __attribute__((weak));

static int saved_stdout = -1, saved_stderr = -1, dev_null = -1, verbose;
static char fuzz_dir[1024];

static void quiet_begin(void)
{
    if (dev_null < 0) return;
    fflush(stdout);
    fflush(stderr);
    dup2(dev_null, STDOUT_FILENO);
    dup2(dev_null, STDERR_FILENO);
}

static void quiet_end(void)
{
    if (dev_null < 0) return;
    fflush(stdout);
    fflush(stderr);
    dup2(saved_stdout, STDOUT_FILENO);
    dup2(saved_stderr, STDERR_FILENO);
}

/* The whole file in a malloc'd buffer (never NULL on success, even when
 * empty), or NULL. */
static uint8_t *read_input(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0;
    uint8_t *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap || cap >= (size_t)64 << 20) break;
        uint8_t *bigger = realloc(buf, cap * 2);
        if (!bigger) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = bigger;
        cap *= 2;
    }
    int failed = ferror(f);
    fclose(f);
    if (failed) {
        free(buf);
        return NULL;
    }
    *size = n;
    return buf;
}

/* The process's peak resident memory in MiB. */
static double peak_rss_mib(void)
{
    struct rusage ru;
    return getrusage(RUSAGE_SELF, &ru) == 0 ? (double)ru.ru_maxrss / 1024.0 : 0.0;
}

/* One input through one target: 0 when it behaved. Besides the checks of
 * the target, an input may take neither more than the fuzzers' timeout nor
 * 1 GiB of memory: a tiny file that costs that much is a finding too. */
static int replay_file(const fuzz_target *t, const char *path, int quiet)
{
    size_t size = 0;
    uint8_t *data = read_input(path, &size);
    CHECK(data != NULL, "cannot read %s", path);
    if (!data) return 1;
    if (verbose) fprintf(stderr, "replaying %s\n", path);
    fuzz_last_problem[0] = '\0';
    double rss = peak_rss_mib(), start = mf_now_seconds();
    if (quiet && !verbose) quiet_begin();
    int bad = t->run(data, size);
    if (quiet && !verbose) quiet_end();
    double seconds = mf_now_seconds() - start, grown = peak_rss_mib() - rss;
    CHECK(bad == 0, "%s: %s", path, fuzz_last_problem);
    CHECK(seconds < 10.0, "%s took %.1f s, more than the fuzzers' timeout of 10 s", path, seconds);
    CHECK(grown < 1024.0, "%s raised peak memory by %.0f MiB", path, grown);
    bad |= seconds >= 10.0 || grown >= 1024.0;
    free(data);
    return bad;
}

/* Every regular file in fuzz/KIND/TARGET (dot files aside), in name order;
 * -1 when the directory cannot be read. */
static int replay_dir(const fuzz_target *t, const char *kind)
{
    char dir[1200];
    snprintf(dir, sizeof dir, "%s/%s/%s", fuzz_dir, kind, t->name);
    struct dirent **names;
    int n = scandir(dir, &names, NULL, alphasort);
    if (n < 0) return -1;
    int files = 0;
    for (int i = 0; i < n; i++) {
        char path[1500];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, names[i]->d_name);
        if (names[i]->d_name[0] != '.' && stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
            replay_file(t, path, 1);
            files++;
        }
        free(names[i]);
    }
    free(names);
    return files;
}

static const fuzz_target *find_target(const char *name)
{
    for (int i = 0; i < fuzz_target_count; i++)
        if (!strcmp(fuzz_targets[i].name, name)) return &fuzz_targets[i];
    return NULL;
}

/* Seeds must exist, or the replay would pass without testing anything;
 * regressions/TARGET appears with the first finding. */
static void replay_target(const char *name)
{
    const fuzz_target *t = find_target(name);
    CHECK(t != NULL, "no fuzz target named %s", name);
    if (!t) return;
    int seeds = replay_dir(t, "corpus");
    CHECK(seeds > 0, "no seed inputs in %s/corpus/%s", fuzz_dir, name);
    replay_dir(t, "regressions");
}

static void test_replay_idx(void) { replay_target("idx"); }
static void test_replay_cifar(void) { replay_target("cifar"); }
static void test_replay_image(void) { replay_target("image"); }
static void test_replay_checkpoint(void) { replay_target("checkpoint"); }
static void test_replay_cli(void) { replay_target("cli"); }
static void test_replay_run_identity(void) { replay_target("run_identity"); }
static void test_replay_result(void) { replay_target("result"); }
static void test_replay_lr(void) { replay_target("lr"); }
static void test_replay_grid(void) { replay_target("grid"); }

/* A directory of inputs without a target of that name would never run. */
static void test_every_directory_has_a_target(void)
{
    static const char *const kinds[] = {"corpus", "regressions"};
    for (int k = 0; k < 2; k++) {
        char dir[1200];
        snprintf(dir, sizeof dir, "%s/%s", fuzz_dir, kinds[k]);
        DIR *d = opendir(dir);
        if (!d) {
            CHECK(k == 1, "cannot open %s", dir);
            continue;
        }
        struct dirent *e;
        while ((e = readdir(d)))
            if (e->d_name[0] != '.')
                CHECK(find_target(e->d_name) != NULL, "%s/%s has no fuzz target", dir, e->d_name);
        closedir(d);
    }
}

int main(int argc, char **argv)
{
    /* The repository's fuzz/, two levels above this file (tests/fuzz/). */
    const char *slash = strrchr(__FILE__, '/');
    if (slash)
        snprintf(fuzz_dir, sizeof fuzz_dir, "%.*s/../../fuzz", (int)(slash - __FILE__), __FILE__);
    else
        snprintf(fuzz_dir, sizeof fuzz_dir, "../../fuzz");
    const char *v = getenv("MF_TEST_VERBOSE");
    verbose = v && *v && strcmp(v, "0");
    fuzz_verbose = verbose || argc >= 2;

    if (argc >= 2) {
        const fuzz_target *t = find_target(argv[1]);
        if (!t || argc < 3) {
            fprintf(stderr, "usage: %s idx|cifar|image|checkpoint|cli FILE...\n", argv[0]);
            return 2;
        }
        int failed = 0;
        for (int i = 2; i < argc; i++) {
            int bad = replay_file(t, argv[i], 0);
            printf("%s %s\n", bad ? "FAIL" : "ok", argv[i]);
            failed += bad;
        }
        return failed ? 1 : 0;
    }

    saved_stdout = dup(STDOUT_FILENO);
    saved_stderr = dup(STDERR_FILENO);
    if (saved_stdout >= 0 && saved_stderr >= 0) dev_null = open("/dev/null", O_WRONLY);
    if (dev_null >= 0 && __sanitizer_set_report_fd)
        __sanitizer_set_report_fd((void *)(intptr_t)saved_stderr);

    RUN(test_replay_idx);
    RUN(test_replay_cifar);
    RUN(test_replay_image);
    RUN(test_replay_checkpoint);
    RUN(test_replay_cli);
    RUN(test_replay_run_identity);
    RUN(test_replay_result);
    RUN(test_replay_lr);
    RUN(test_replay_grid);
    RUN(test_every_directory_has_a_target);
    return check_report();
}
