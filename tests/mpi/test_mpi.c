/* Data-parallel training under mpirun (make MPI=1 test-mpi): the saved
 * tensors (parameters and both AdamW moments, the checkpoint's whole data
 * section) are byte-identical for 1, 2 and 3 ranks with 1 and 2 threads and
 * to those of a build without MPI ($MINFORMER_SERIAL), in fp32 and (where
 * the CPU has AMX) in bf16; a checkpoint saved under one rank count resumes
 * under another with the same bits; a killed rank ends the job in bounded
 * time with a non-zero exit and Open MPI's message naming the rank, and its
 * last epoch checkpoint resumes to the uninterrupted run's bits. Runs on small subsets of the real MNIST; SKIPs
 * without it. */
#define _GNU_SOURCE
#include <dirent.h>

#include "check.h"
#include "child.h"
#include "kernels/cpu.h"

#define TIMEOUT 300.0

static char root[PATH_MAX];
static char data_dir[PATH_MAX];
static char serial_bin[PATH_MAX]; /* minformer built without MPI */
static char mpirun[PATH_MAX];
static int have_mnist;

/* One model with an MLP and CLS pooling (separate q, k, v, proj), and one
 * that exercises the other reductions: Cholesky W (dL/dW summed before it is
 * mapped to qk_tril), mean pooling, dropout (masks by global position) and
 * a batch that splits unevenly across 3 ranks. */
#define WORK_MLP                                                                              \
    "train --dataset mnist --preset unchanged --dim 32 --layers 2 --limit-train 512 "         \
    "--limit-test 100 --batch 64 --epochs 2"
#define WORK_CHOLESKY                                                                         \
    "train --dataset mnist --preset minimal --qk cholesky --mlp 2 --pool mean --dropout 0.1 "  \
    "--dim 32 --layers 2 --limit-train 400 --limit-test 100 --batch 50 --epochs 2"

/* The MLP model in bf16, at patch 4 (T = 50: the attention products in bf16
 * too): bf16 has its own bits, the same for every rank and thread count. */
#define WORK_BF16 WORK_MLP " --patch 4 --precision bf16"

/* exe's absolute path from $PATH, or "" */
static void find_in_path(const char *exe, char *out)
{
    out[0] = '\0';
    const char *path = getenv("PATH");
    while (path && *path) {
        size_t len = strcspn(path, ":");
        char guess[PATH_MAX];
        text_printf(guess, sizeof guess, "%.*s/%s", (int)len, path, exe);
        if (len && !access(guess, X_OK) && realpath(guess, out)) return;
        path += len + (path[len] == ':');
    }
    out[0] = '\0';
}

/* Where a checkpoint's data section begins (8 + the header length), or -1. */
static long data_section(const char *bytes, size_t len)
{
    if (len < 8) return -1;
    unsigned long long n = 0;
    for (int i = 7; i >= 0; i--) n = n << 8 | (unsigned char)bytes[i];
    return n <= len - 8 ? (long)(8 + n) : -1;
}

/* 1 when the checkpoints' tensors (the whole data sections) are the same
 * bytes; else 0, saying where they first differ. */
static int same_tensors(const char *a, const char *b)
{
    size_t la = 0, lb = 0;
    char *x = read_text(a, &la), *y = read_text(b, &lb);
    long da = x ? data_section(x, la) : -1, db = y ? data_section(y, lb) : -1;
    int same = 0;
    if (da < 0 || db < 0) {
        fprintf(stderr, "cannot read the checkpoints %s, %s\n", a, b);
    } else if (la - (size_t)da != lb - (size_t)db) {
        fprintf(stderr, "%s, %s: data sections of %zu and %zu bytes\n", a, b, la - (size_t)da,
                lb - (size_t)db);
    } else {
        size_t n = la - (size_t)da, i = 0;
        while (i < n && x[da + (long)i] == y[db + (long)i]) i++;
        same = i == n;
        if (!same)
            fprintf(stderr, "%s, %s: tensors differ from data byte %zu of %zu\n", a, b, i, n);
    }
    free(x);
    free(y);
    return same;
}

/* work --threads threads --data DIR extra, appended to a */
static void add_work(child_args *a, const char *work, int threads, const char *extra)
{
    args_split(a, work);
    args_addf(a, "--threads");
    args_addf(a, "%d", threads);
    args_add(a, "--data", data_dir, NULL);
    args_split(a, extra);
}

/* mpirun -np ranks <MPI minformer> work ..., with root as the working
 * directory; returns the exit status, r filled. */
static int run_ranks(child_result *r, int ranks, int threads, const char *work, const char *extra)
{
    child_args a = {0};
    args_add(&a, "--allow-run-as-root", "--oversubscribe", "-np", NULL);
    args_addf(&a, "%d", ranks);
    args_add(&a, child_bin, NULL);
    add_work(&a, work, threads, extra);
    return child_run_exe(r, root, mpirun, TIMEOUT, &a);
}

/* The build without MPI, as one process. */
static int run_serial(child_result *r, int threads, const char *work, const char *extra)
{
    child_args a = {0};
    add_work(&a, work, threads, extra);
    return child_run_exe(r, root, serial_bin, TIMEOUT, &a);
}

/* The serial build's checkpoint of work at 1 thread, then every rank count
 * and thread count against it. */
static void identity_at_every_size(const char *work, const char *name, int max_threads)
{
    child_result r;
    char extra[256], ref[PATH_MAX + 64], path[PATH_MAX + 64];
    text_printf(extra, sizeof extra, "--save %s-serial.st", name);
    CHECK(run_serial(&r, 1, work, extra) == 0, "serial: exit %d: %s", r.status, r.err);
    child_result_free(&r);
    text_printf(ref, sizeof ref, "%s/%s-serial.st", root, name);
    for (int threads = 1; threads <= max_threads; threads++) {
        text_printf(extra, sizeof extra, "--save %s-serial-t%d.st", name, threads);
        if (threads > 1) {
            CHECK(run_serial(&r, threads, work, extra) == 0, "serial: exit %d: %s", r.status, r.err);
            child_result_free(&r);
            text_printf(path, sizeof path, "%s/%s-serial-t%d.st", root, name, threads);
            CHECK(same_tensors(ref, path), "serial build, %d threads", threads);
        }
        for (int ranks = 1; ranks <= 3; ranks++) {
            text_printf(extra, sizeof extra, "--save %s-r%d-t%d.st", name, ranks, threads);
            int rc = run_ranks(&r, ranks, threads, work, extra);
            CHECK(rc == 0, "%d ranks, %d threads: exit %d: %s", ranks, threads, rc, r.err);
            if (ranks > 1)
                CHECK(strstr(r.out, "ranks") != NULL, "no rank count in: %s", r.out);
            /* rank 0 alone prints: one line per epoch */
            CHECK(count_lines(r.out) == 3, "%d ranks: %d lines: %s", ranks, count_lines(r.out), r.out);
            child_result_free(&r);
            text_printf(path, sizeof path, "%s/%s-r%d-t%d.st", root, name, ranks, threads);
            CHECK(same_tensors(ref, path), "%s: %d ranks, %d threads against the serial build",
                  name, ranks, threads);
        }
    }
}

static void test_ranks_and_threads_give_the_serial_bits(void)
{
    if (!have_mnist) SKIP("no MNIST in %s", data_dir);
    identity_at_every_size(WORK_MLP, "mlp", 2);
}

static void test_other_reductions_give_the_serial_bits(void)
{
    if (!have_mnist) SKIP("no MNIST in %s", data_dir);
    identity_at_every_size(WORK_CHOLESKY, "cholesky", 1);
}

static void test_bf16_ranks_give_the_serial_bits(void)
{
    if (!have_mnist) SKIP("no MNIST in %s", data_dir);
    if (!mf_bf16_available()) SKIP("%s", mf_bf16_unavailable_reason());
    identity_at_every_size(WORK_BF16, "bf16", 2);
}

/* Epoch 1 saved under 2 ranks, then extended to 2 epochs (--epochs on
 * resume) under 3 ranks and under the serial build: the same bits as each
 * other and as the serial build doing both halves. */
static void test_a_checkpoint_resumes_under_any_rank_count(void)
{
    if (!have_mnist) SKIP("no MNIST in %s", data_dir);
    const char *work = "train --dataset mnist --preset unchanged --dim 32 --layers 2 "
                       "--limit-train 512 --limit-test 100 --batch 64 --epochs 1";
    child_result r;
    CHECK(run_ranks(&r, 2, 1, work, "--save half-r2.st") == 0, "exit %d: %s", r.status, r.err);
    child_result_free(&r);
    CHECK(run_serial(&r, 1, work, "--save half-serial.st") == 0, "exit %d: %s", r.status, r.err);
    child_result_free(&r);
    char half[PATH_MAX + 64], r3[PATH_MAX + 64], s1[PATH_MAX + 64], ss[PATH_MAX + 64];
    text_printf(half, sizeof half, "%s/half-r2.st", root);
    text_printf(ss, sizeof ss, "%s/half-serial.st", root);
    CHECK(same_tensors(half, ss), "epoch 1: 2 ranks against the serial build");
    text_printf(r3, sizeof r3, "%s/resumed-r3.st", root);
    text_printf(s1, sizeof s1, "%s/resumed-serial.st", root);
    CHECK(copy_file(half, r3, -1) == 0 && copy_file(half, s1, -1) == 0, "cannot copy %s", half);
    child_args a = {0};
    args_add(&a, "--allow-run-as-root", "--oversubscribe", "-np", "3", child_bin, "train",
             "--resume", r3, "--epochs", "2", "--threads", "1", "--data", data_dir, NULL);
    CHECK(child_run_exe(&r, root, mpirun, TIMEOUT, &a) == 0, "resume under 3 ranks: exit %d: %s",
          r.status, r.err);
    child_result_free(&r);
    child_args b = {0};
    args_add(&b, "train", "--resume", s1, "--epochs", "2", "--threads", "2", "--data", data_dir, NULL);
    CHECK(child_run_exe(&r, root, serial_bin, TIMEOUT, &b) == 0, "resume serially: exit %d: %s",
          r.status, r.err);
    child_result_free(&r);
    child_args c = {0};
    args_add(&c, "train", "--resume", ss, "--epochs", "2", "--threads", "1", "--data", data_dir, NULL);
    CHECK(child_run_exe(&r, root, serial_bin, TIMEOUT, &c) == 0, "resume serially: exit %d: %s",
          r.status, r.err);
    child_result_free(&r);
    CHECK(same_tensors(r3, s1), "2 ranks then 3 against 2 ranks then the serial build");
    CHECK(same_tensors(r3, ss), "2 ranks then 3 against the serial build twice");
}

/* The children of pid (Linux's /proc/PID/task/PID/children) whose
 * environment says they are rank `rank`; 0 when none. */
static pid_t rank_pid(pid_t launcher, int rank)
{
    char path[128], want[64];
    text_printf(path, sizeof path, "/proc/%d/task/%d/children", (int)launcher, (int)launcher);
    text_printf(want, sizeof want, "OMPI_COMM_WORLD_RANK=%d", rank);
    char *kids = read_text(path, NULL);
    pid_t found = 0;
    for (char *p = kids; p && *p && !found;) {
        long pid = strtol(p, &p, 10);
        if (pid <= 0) break;
        char envp[128];
        text_printf(envp, sizeof envp, "/proc/%ld/environ", pid);
        size_t len = 0;
        char *env = read_text(envp, &len);
        for (size_t i = 0; env && i < len; i += strlen(env + i) + 1)
            if (!strcmp(env + i, want)) found = (pid_t)pid;
        free(env);
    }
    free(kids);
    return found;
}

/* Rank 1 of 3 killed after the first epoch's checkpoint: mpirun ends the
 * job (non-zero, Open MPI's line naming the rank and the signal) within
 * seconds, before the run's end; the checkpoint left (the last epoch's, or
 * rank 0's save at a step if mpirun's SIGTERM reached it between steps)
 * resumes under 2 ranks to the uninterrupted serial run's bits: at most the
 * epoch in progress was lost. */
static void test_a_killed_rank_ends_the_job(void)
{
    if (!have_mnist) SKIP("no MNIST in %s", data_dir);
    const char *work = "train --dataset mnist --preset unchanged --dim 32 --layers 2 "
                       "--limit-train 8192 --limit-test 100 --batch 64 --epochs 3";
    child_result r;
    CHECK(run_serial(&r, 2, work, "--save kill-serial.st") == 0, "exit %d: %s", r.status, r.err);
    child_result_free(&r);
    char ckpt[PATH_MAX + 64];
    text_printf(ckpt, sizeof ckpt, "%s/kill.st", root);
    child_args a = {0};
    args_add(&a, "--allow-run-as-root", "--oversubscribe", "-np", "3", child_bin, NULL);
    args_split(&a, work);
    args_add(&a, "--threads", "1", "--data", data_dir, "--save", ckpt, NULL);
    child_proc p;
    CHECK(child_start_exe(&p, root, mpirun, &a) == 0, "cannot start mpirun");
    CHECK(child_wait_for_output(&p, "epoch 1/3", TIMEOUT), "no first epoch");
    /* the checkpoint appears whole (renamed into place) after the line */
    while (!file_exists(ckpt) && !child_ended(&p) && child_now() - p.started < TIMEOUT) child_sleep(0.01);
    pid_t victim = rank_pid(p.pid, 1);
    CHECK(victim > 0, "rank 1 not found among mpirun's children");
    double killed = child_now();
    if (victim > 0) kill(victim, SIGKILL);
    child_wait(&p, 60.0, &r);
    double took = child_now() - killed;
    CHECK(r.status > 0, "exit %d after a killed rank", r.status);
    CHECK(took < 30.0, "the job took %.1f s to end", took);
    CHECK(strstr(r.err, "exited on signal 9") != NULL, "no message naming the killed rank: %s", r.err);
    CHECK(!strstr(r.out, "epoch 3/3"), "the run finished before the kill: %s", r.out);
    fprintf(stderr, "killed rank 1 (pid %d); mpirun ended %.2f s later with %d:\n%s", (int)victim,
            took, r.status, r.err);
    child_result_free(&r);
    /* the rerun loses at most the epoch in progress */
    child_args b = {0};
    args_add(&b, "--allow-run-as-root", "--oversubscribe", "-np", "2", child_bin, "train",
             "--resume", ckpt, "--threads", "1", "--data", data_dir, NULL);
    CHECK(child_run_exe(&r, root, mpirun, TIMEOUT, &b) == 0, "resume: exit %d: %s", r.status, r.err);
    CHECK(strstr(r.out, "resuming") && !strstr(r.out, "at epoch 1,"), "not resumed after epoch 1: %s",
          r.out);
    child_result_free(&r);
    char ref[PATH_MAX + 64];
    text_printf(ref, sizeof ref, "%s/kill-serial.st", root);
    CHECK(same_tensors(ref, ckpt), "resumed after the kill against the uninterrupted serial run");
}

int main(int argc, char **argv)
{
    (void)argc;
    if (child_setup(root, sizeof root, "mpi", argv[0], data_dir)) return 1;
    char probe[PATH_MAX + 64];
    text_printf(probe, sizeof probe, "%s/mnist", data_dir);
    have_mnist = file_exists(probe);
    const char *serial = getenv("MINFORMER_SERIAL");
    find_in_path("mpirun", mpirun);
    if (!serial || !serial[0] || !realpath(serial, serial_bin) || access(serial_bin, X_OK)) {
        fprintf(stderr, "set MINFORMER_SERIAL to a minformer built without MPI (make MPI=1 "
                        "test-mpi does)\n");
        remove_tree(root);
        return 1;
    }
    if (!mpirun[0]) {
        fprintf(stderr, "no mpirun on PATH (Debian: apt-get install openmpi-bin)\n");
        remove_tree(root);
        return 1;
    }
    RUN(test_ranks_and_threads_give_the_serial_bits);
    RUN(test_other_reductions_give_the_serial_bits);
    RUN(test_bf16_ranks_give_the_serial_bits);
    RUN(test_a_checkpoint_resumes_under_any_rank_count);
    RUN(test_a_killed_rank_ends_the_job);
    remove_tree(root);
    return check_report();
}
