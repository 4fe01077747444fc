/* The shared library's ABI: only mf_ functions leave libminformer.so (the
 * kernels and internal helpers are hidden), it has the SONAME
 * libminformer.so.0 behind the libminformer.so link, a program built against
 * -lminformer with the public headers links and runs (tests/unit/abi_client.c),
 * and one naming an internal function does not link. Uses nm, readelf and the
 * C compiler ($CC, else cc) where present; $BUILD names the build directory. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"

static char build[PATH_MAX], lib[PATH_MAX + 32], tmpdir[64];
static const char *cc;

/* The extra flags a sanitized build's programs need to load its library. */
#if defined(__SANITIZE_ADDRESS__)
#define CLIENT_FLAGS "-fsanitize=address,undefined"
#else
#define CLIENT_FLAGS ""
#endif

static int have_tool(const char *name)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", name);
    return system(cmd) == 0;
}

/* Runs cmd through the shell; its stdout and stderr in *out (malloc'd), its
 * exit status returned (-1 if it could not run). */
static int run(const char *cmd, char **out)
{
    char full[8192];
    snprintf(full, sizeof full, "%s 2>&1", cmd);
    FILE *p = popen(full, "r");
    *out = NULL;
    if (!p) return -1;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    for (size_t got; buf && (got = fread(buf + n, 1, cap - n - 1, p)) > 0;) {
        n += got;
        if (n + 1 == cap) {
            char *nb = realloc(buf, cap *= 2);
            if (!nb) free(buf);
            buf = nb;
        }
    }
    if (buf) buf[n] = '\0';
    *out = buf;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_only_mf_symbols_exported(void)
{
    if (!have_tool("nm")) SKIP("no nm");
    char cmd[PATH_MAX + 64], *out;
    snprintf(cmd, sizeof cmd, "nm -D --defined-only '%s'", lib);
    int st = run(cmd, &out);
    CHECK(st == 0 && out, "%s: status %d: %s", cmd, st, out ? out : "");
    if (st || !out) {
        free(out);
        return;
    }
    int total = 0, foreign = 0;
    const char *seen[3] = {0};
    static const char *const wanted[] = {"mf_model_create", "mf_checkpoint_save",
                                         "mf_evaluate_confusion", "mf_file_replace_begin"};
    int found[4] = {0};
    for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
        /* "ADDRESS TYPE NAME", NAME possibly with @VERSION */
        char *name = strrchr(line, ' ');
        name = name ? name + 1 : line;
        total++;
        if (strncmp(name, "mf_", 3)) {
            if (foreign < 3) seen[foreign] = name;
            foreign++;
        }
        for (int i = 0; i < 4; i++) found[i] |= !strcmp(name, wanted[i]);
        CHECK(strcmp(name, "mf_gemm") && strcmp(name, "mf_json_parse") &&
                  strcmp(name, "mf_profile_enable"),
              "the internal %s is exported", name);
    }
    CHECK(foreign == 0, "%d of %d exported symbols lack the mf_ prefix, e.g. %s %s %s", foreign,
          total, seen[0] ? seen[0] : "", seen[1] ? seen[1] : "", seen[2] ? seen[2] : "");
    for (int i = 0; i < 4; i++) CHECK(found[i], "the public %s is not exported", wanted[i]);
    free(out);
}

static void test_soname(void)
{
    char link[PATH_MAX];
    ssize_t n = readlink(lib, link, sizeof link - 1);
    CHECK(n > 0, "%s is not a symbolic link: %s", lib, strerror(errno));
    if (n > 0) {
        link[n] = '\0';
        CHECK(!strcmp(link, "libminformer.so.0"), "%s points to %s, not libminformer.so.0", lib,
              link);
    }
    if (!have_tool("readelf")) SKIP("no readelf");
    char cmd[PATH_MAX + 64], *out;
    snprintf(cmd, sizeof cmd, "readelf -d '%s'", lib);
    int st = run(cmd, &out);
    CHECK(st == 0 && out && strstr(out, "(SONAME)") && strstr(out, "[libminformer.so.0]"),
          "no SONAME libminformer.so.0 in %s: %s", lib, out ? out : "");
    free(out);
}

/* Builds src against -lminformer from the build directory: the linker's
 * status and messages. */
static int build_client(const char *src, const char *exe, char **out)
{
    char cmd[4 * PATH_MAX];
    snprintf(cmd, sizeof cmd, "%s -std=c11 %s -Iinclude '%s' -o '%s' -L'%s' -Wl,-rpath,'%s' "
             "-lminformer -lm", cc, CLIENT_FLAGS, src, exe, build, build);
    return run(cmd, out);
}

static void test_public_api_links_from_the_library(void)
{
    if (!have_tool(cc)) SKIP("no C compiler (%s)", cc);
    char exe[128], *out;
    snprintf(exe, sizeof exe, "%s/client", tmpdir);
    int st = build_client("tests/unit/abi_client.c", exe, &out);
    CHECK(st == 0, "building abi_client.c against -lminformer: status %d: %s", st, out ? out : "");
    free(out);
    if (st) return;
    if (have_tool("readelf")) {
        char cmd[256];
        snprintf(cmd, sizeof cmd, "readelf -d '%s'", exe);
        st = run(cmd, &out);
        CHECK(out && strstr(out, "[libminformer.so.0]"),
              "the client does not record libminformer.so.0: %s", out ? out : "");
        free(out);
    }
    st = run(exe, &out);
    CHECK(st == 0 && out && strstr(out, "ok"), "abi_client: status %d: %s", st, out ? out : "");
    free(out);
}

/* The same program that links with a public function fails to link with an
 * internal one, and says which: not an unrelated failure. */
static void test_internal_symbols_do_not_link(void)
{
    if (!have_tool(cc)) SKIP("no C compiler (%s)", cc);
    static const char *const internal[] = {"linear_forward", "layernorm_forward", "mf_gemm",
                                           "mf_json_parse", "mf_rng_seed"};
    for (int i = 0; i < 5; i++) {
        const char *name = internal[i];
        int public = !strcmp(name, "mf_rng_seed"); /* the control */
        char src[128], exe[128], *out;
        snprintf(src, sizeof src, "%s/uses_%s.c", tmpdir, name);
        snprintf(exe, sizeof exe, "%s/uses_%s", tmpdir, name);
        FILE *f = fopen(src, "w");
        CHECK(f, "cannot write %s", src);
        if (!f) return;
        fprintf(f, "void %s(void);\nint main(int argc, char **argv)\n{\n    (void)argv;\n"
                   "    if (argc > 99) %s();\n    return 0;\n}\n", name, name);
        fclose(f);
        int st = build_client(src, exe, &out);
        if (public)
            CHECK(st == 0, "the control %s does not link: %s", name, out ? out : "");
        else
            CHECK(st != 0 && out && strstr(out, name),
                  "%s links from libminformer.so (status %d): %s", name, st, out ? out : "");
        free(out);
    }
}

static int remove_dir(const char *dir)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd);
}

int main(void)
{
    const char *b = getenv("BUILD");
    snprintf(build, sizeof build, "%s", b && b[0] ? b : "build");
    if (build[0] != '/') {
        /* The rpath must not depend on where the client runs from. */
        char cwd[PATH_MAX - 8];
        if (getcwd(cwd, sizeof cwd)) {
            char rel[PATH_MAX];
            snprintf(rel, sizeof rel, "%s", build);
            snprintf(build, sizeof build, "%s/%.*s", cwd, (int)(sizeof build - strlen(cwd) - 2), rel);
        }
    }
    snprintf(lib, sizeof lib, "%s/libminformer.so", build);
    cc = getenv("CC") && getenv("CC")[0] ? getenv("CC") : "cc";
    snprintf(tmpdir, sizeof tmpdir, "/tmp/mf_abi_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        fprintf(stderr, "mkdtemp: %s\n", strerror(errno));
        return 1;
    }
    if (access(lib, F_OK)) {
        fprintf(stderr, "FAIL %s is missing (make all builds it)\n", lib);
        check_failed++;
    } else {
        RUN(test_only_mf_symbols_exported);
        RUN(test_soname);
        RUN(test_public_api_links_from_the_library);
        RUN(test_internal_symbols_do_not_link);
    }
    remove_dir(tmpdir);
    return check_report();
}
