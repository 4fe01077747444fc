/* The end-to-end tests' side of the command line: runs the minformer binary
 * as a child process (fork/execv) with stdout and stderr captured in files,
 * waits for it with a timeout, and offers small helpers for files, temporary
 * directories and the JSON line a command prints last. Include after
 * check.h, with _GNU_SOURCE defined before any system header. */
#ifndef MF_TEST_CHILD_H
#define MF_TEST_CHILD_H

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/json.h"

/* snprintf for paths and messages: cuts what does not fit (the callers size
 * their buffers generously). */
static inline void text_printf(char *out, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static inline void text_printf(char *out, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out, size, fmt, ap);
    va_end(ap);
}

/* ---- the binary and a scratch directory ------------------------------------ */

static char child_bin[PATH_MAX];  /* absolute path of the minformer binary */
static char child_tmp[PATH_MAX];  /* scratch directory for captured output */
static int child_serial;

/* The binary is $MINFORMER_BIN, else BUILD/minformer beside BUILD/tests/argv0.
 * 0, or -1 with a message when it is missing. */
static inline int child_init(const char *argv0, const char *scratch)
{
    char guess[PATH_MAX];
    const char *env = getenv("MINFORMER_BIN");
    if (env && env[0]) {
        snprintf(guess, sizeof guess, "%s", env);
    } else {
        snprintf(guess, sizeof guess, "%s", argv0);
        for (int up = 0; up < 2; up++) {
            char *slash = strrchr(guess, '/');
            if (slash) *slash = '\0';
            else snprintf(guess, sizeof guess, "%s", up ? ".." : ".");
        }
        size_t len = strlen(guess);
        snprintf(guess + len, sizeof guess - len, "/minformer");
    }
    if (!realpath(guess, child_bin) || access(child_bin, X_OK)) {
        fprintf(stderr, "cannot find the minformer binary at %s (set MINFORMER_BIN)\n", guess);
        return -1;
    }
    snprintf(child_tmp, sizeof child_tmp, "%s", scratch);
    return 0;
}

static inline double child_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static inline void child_sleep(double seconds)
{
    struct timespec ts = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
    while (nanosleep(&ts, &ts) && errno == EINTR) {
    }
}

/* ---- argument lists ------------------------------------------------------------ */

typedef struct {
    const char *v[128];
    int n;
    char pool[8192]; /* storage for formatted arguments */
    size_t used;
} child_args;

/* Appends the NULL-terminated list of arguments (kept by pointer). */
static inline void args_add(child_args *a, ...)
{
    va_list ap;
    va_start(ap, a);
    for (const char *s; (s = va_arg(ap, const char *));)
        if (a->n < 127) a->v[a->n++] = s;
    va_end(ap);
    a->v[a->n] = NULL;
}

/* Appends one formatted argument, copied into the list's own storage. */
static inline void args_addf(child_args *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static inline void args_addf(child_args *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *dst = a->pool + a->used;
    int len = vsnprintf(dst, sizeof a->pool - a->used, fmt, ap);
    va_end(ap);
    if (len < 0 || (size_t)len + 1 > sizeof a->pool - a->used || a->n >= 127) return;
    a->used += (size_t)len + 1;
    a->v[a->n++] = dst;
    a->v[a->n] = NULL;
}

/* Appends the space-separated words of line (no quoting). */
static inline void args_split(child_args *a, const char *line)
{
    while (*line) {
        while (*line == ' ') line++;
        size_t len = strcspn(line, " ");
        if (len) args_addf(a, "%.*s", (int)len, line);
        line += len;
    }
}

/* The arguments as one string, for messages (static buffer). */
static inline const char *args_text(const child_args *a)
{
    static char text[2048];
    size_t len = 0;
    text[0] = '\0';
    for (int i = 0; i < a->n && len < sizeof text; i++)
        len += (size_t)snprintf(text + len, sizeof text - len, "%s%s", i ? " " : "", a->v[i]);
    return text;
}

/* ---- processes ------------------------------------------------------------------- */

typedef struct {
    pid_t pid;
    char out_path[PATH_MAX], err_path[PATH_MAX];
    double started;
    char cmd[512];
} child_proc;

typedef struct {
    int status;      /* exit code; 128 + N when signal N ended it; -1 timeout or no start */
    int signal;      /* the signal that ended it, else 0 */
    char *out, *err; /* captured output, NUL-terminated, never NULL after a wait */
    double seconds;
} child_result;

static inline char *read_text(const char *path, size_t *len_out)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t len = 0, cap = 4096;
    char *buf = malloc(cap);
    if (buf) {
        size_t got;
        while ((got = fread(buf + len, 1, cap - len - 1, f)) > 0) {
            len += got;
            if (cap - len < 2) {
                char *bigger = realloc(buf, cap * 2);
                if (!bigger) break;
                buf = bigger;
                cap *= 2;
            }
        }
    }
    fclose(f);
    if (!buf) return NULL;
    buf[len] = '\0';
    if (len_out) *len_out = len;
    return buf;
}

/* Starts program exe (an absolute path) with arguments a in directory cwd
 * (NULL: the current one). */
static inline int child_start_exe(child_proc *p, const char *cwd, const char *exe,
                                  const child_args *a)
{
    memset(p, 0, sizeof *p);
    int id = child_serial++;
    text_printf(p->out_path, sizeof p->out_path, "%s/child-%d.out", child_tmp, id);
    text_printf(p->err_path, sizeof p->err_path, "%s/child-%d.err", child_tmp, id);
    const char *base = strrchr(exe, '/');
    text_printf(p->cmd, sizeof p->cmd, "%s %s", base ? base + 1 : exe, args_text(a));
    const char *argv[130];
    argv[0] = exe;
    for (int i = 0; i <= a->n; i++) argv[i + 1] = a->v[i];
    fflush(stdout);
    fflush(stderr);
    p->started = child_now();
    p->pid = fork();
    if (p->pid < 0) return -1;
    if (p->pid == 0) {
        int out = open(p->out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int err = open(p->err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (out < 0 || err < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0) _exit(126);
        close(out);
        close(err);
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0) dup2(devnull, 0);
        if (cwd && chdir(cwd)) _exit(126);
        execv(exe, (char *const *)argv);
        _exit(127);
    }
    return 0;
}

/* Starts the minformer binary. */
static inline int child_start(child_proc *p, const char *cwd, const child_args *a)
{
    return child_start_exe(p, cwd, child_bin, a);
}

/* Non-blocking: 1 and *status when the child ended, 0 while it runs. */
static inline int child_poll(child_proc *p, int *status, int *sig)
{
    int ws;
    pid_t r = waitpid(p->pid, &ws, WNOHANG);
    if (r != p->pid) return 0;
    *status = WIFEXITED(ws) ? WEXITSTATUS(ws) : WIFSIGNALED(ws) ? 128 + WTERMSIG(ws) : -1;
    *sig = WIFSIGNALED(ws) ? WTERMSIG(ws) : 0;
    return 1;
}

/* 1 once the child has ended, without reaping it (child_wait still can). */
static inline int child_ended(const child_proc *p)
{
    siginfo_t info;
    memset(&info, 0, sizeof info);
    return waitid(P_PID, (id_t)p->pid, &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
           info.si_pid == p->pid;
}

/* Waits until the child's stdout holds needle, it ends, or timeout seconds
 * pass since it started: 1 when the text appeared. */
static inline int child_wait_for_output(child_proc *p, const char *needle, double timeout)
{
    while (!child_ended(p) && child_now() - p->started < timeout) {
        char *t = read_text(p->out_path, NULL);
        int seen = t && strstr(t, needle);
        free(t);
        if (seen) return 1;
        child_sleep(0.005);
    }
    return 0;
}

/* The data directory the end-to-end tests use, made absolute: $MINFORMER_DATA,
 * else ./data (out holds PATH_MAX bytes). */
static inline void child_data_dir(char *out)
{
    const char *data = getenv("MINFORMER_DATA");
    if (!realpath(data && data[0] ? data : "data", out)) snprintf(out, PATH_MAX, "data");
}

/* Waits up to timeout seconds (then kills it: status -1) and collects its output. */
static inline void child_wait(child_proc *p, double timeout, child_result *r)
{
    memset(r, 0, sizeof *r);
    int status = -1, sig = 0, done = 0;
    while (!(done = child_poll(p, &status, &sig)) && child_now() - p->started < timeout)
        child_sleep(0.002);
    if (!done) {
        kill(p->pid, SIGKILL);
        waitpid(p->pid, NULL, 0);
        fprintf(stderr, "timeout: '%s' ran longer than %.0f s; killed\n", p->cmd, timeout);
        status = -1;
    }
    r->status = status;
    r->signal = sig;
    r->seconds = child_now() - p->started;
    r->out = read_text(p->out_path, NULL);
    r->err = read_text(p->err_path, NULL);
    if (!r->out) r->out = calloc(1, 1);
    if (!r->err) r->err = calloc(1, 1);
    unlink(p->out_path);
    unlink(p->err_path);
}

static inline void child_result_free(child_result *r)
{
    free(r->out);
    free(r->err);
    memset(r, 0, sizeof *r);
}

/* Runs exe to completion (or timeout). Returns the status. */
static inline int child_run_exe(child_result *r, const char *cwd, const char *exe,
                                double timeout, const child_args *a)
{
    child_proc p;
    if (child_start_exe(&p, cwd, exe, a)) {
        memset(r, 0, sizeof *r);
        r->status = -1;
        r->out = calloc(1, 1);
        r->err = calloc(1, 1);
        return -1;
    }
    child_wait(&p, timeout, r);
    return r->status;
}

/* Runs the minformer binary to completion (or timeout). Returns the status. */
static inline int child_run(child_result *r, const char *cwd, double timeout, const child_args *a)
{
    return child_run_exe(r, cwd, child_bin, timeout, a);
}

/* Runs `minformer LINE` in cwd: LINE is fmt's text, split into words at
 * spaces (no quoting), with --data data_dir appended unless data_dir is NULL.
 * Returns the status. */
static inline int child_run_linef(child_result *r, const char *cwd, double timeout,
                                  const char *data_dir, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static inline int child_run_linef(child_result *r, const char *cwd, double timeout,
                                  const char *data_dir, const char *fmt, ...)
{
    char line[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    child_args a = {0};
    args_split(&a, line);
    if (data_dir) args_add(&a, "--data", data_dir, NULL);
    return child_run(r, cwd, timeout, &a);
}

/* The same, checking (CHECK, from check.h) that it exited with `want`; the
 * message names the command line and shows what it printed. */
static inline int child_expect_linef(child_result *r, const char *cwd, double timeout,
                                     const char *data_dir, int want, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
static inline int child_expect_linef(child_result *r, const char *cwd, double timeout,
                                     const char *data_dir, int want, const char *fmt, ...)
{
    char line[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    child_run_linef(r, cwd, timeout, data_dir, "%s", line);
    CHECK(r->status == want, "'minformer %s' exited with %d, expected %d\n  stdout: %.2000s\n"
          "  stderr: %.2000s", line, r->status, want, r->out, r->err);
    return r->status == want;
}

/* The number of lines of s. */
static inline int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

/* ---- files ------------------------------------------------------------------------- */

static inline int write_bytes(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t put = fwrite(data, 1, len, f);
    return (fclose(f) || put != len) ? -1 : 0;
}

/* 1 when both files exist and hold the same bytes. */
static inline int same_file(const char *a, const char *b)
{
    size_t la = 0, lb = 0;
    char *x = read_text(a, &la), *y = read_text(b, &lb);
    int same = x && y && la == lb && !memcmp(x, y, la);
    free(x);
    free(y);
    return same;
}

static inline int file_exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

static inline int copy_file(const char *from, const char *to, long limit)
{
    size_t len;
    char *data = read_text(from, &len);
    if (!data) return -1;
    if (limit >= 0 && (size_t)limit < len) len = (size_t)limit;
    int rc = write_bytes(to, data, len);
    free(data);
    return rc;
}

static inline int remove_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

static inline void remove_tree(const char *dir)
{
    nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

/* ---- the JSON object a command prints last -------------------------------------- */

typedef struct {
    char *text; /* the line, parsed in place */
    mf_json root;
    int ok;
} json_line;

/* Parses the last non-empty line of out as strict JSON. */
static inline int json_last_line(const char *out, json_line *j)
{
    memset(j, 0, sizeof *j);
    size_t len = strlen(out);
    while (len && out[len - 1] == '\n') len--;
    size_t start = len;
    while (start && out[start - 1] != '\n') start--;
    j->text = malloc(len - start + 1);
    if (!j->text) return 0;
    memcpy(j->text, out + start, len - start);
    j->text[len - start] = '\0';
    char msg[200];
    j->ok = mf_json_parse(j->text, len - start, &j->root, msg, sizeof msg) == 0 &&
            j->root.type == MF_JSON_OBJECT;
    if (!j->ok) fprintf(stderr, "not a JSON object: %s\n", msg);
    return j->ok;
}

static inline void json_line_free(json_line *j)
{
    if (j->ok) mf_json_free(&j->root);
    free(j->text);
    memset(j, 0, sizeof *j);
}

/* The number under key, or NaN when absent or not a number. */
static inline double json_number(const json_line *j, const char *key)
{
    const mf_json *v = j->ok ? mf_json_get(&j->root, key) : NULL;
    return v && v->type == MF_JSON_NUMBER ? v->u.number.value : NAN;
}

/* What an end-to-end test's main sets up first: a new scratch directory
 * root (/tmp/mf_test_NAME_XXXXXX), the child harness on it, the passive wait
 * policy for the children, and the data directory. 0, or 1 after saying why. */
static inline int child_setup(char *root, size_t size, const char *name, const char *argv0,
                              char *data_dir)
{
    snprintf(root, size, "/tmp/mf_test_%s_XXXXXX", name);
    if (!mkdtemp(root)) {
        perror("mkdtemp");
        return 1;
    }
    if (child_init(argv0, root)) {
        remove_tree(root);
        return 1;
    }
    setenv("OMP_WAIT_POLICY", "passive", 0);
    child_data_dir(data_dir);
    return 0;
}

#endif
