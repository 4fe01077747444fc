#!/bin/sh
# Builds the libFuzzer targets in fuzz/ and runs each for a bounded time:
#   make fuzz                                  # every target, 60 s each
#   FUZZ_SECONDS=600 FUZZ_TARGETS="idx image" sh scripts/fuzz.sh
#
# The library, the application (app/experiment, app/figures), app/cli/options.c,
# app/cli/cmd_params.c and fuzz/targets.c are compiled
# with -fsanitize=fuzzer-no-link,address,undefined (UB is fatal), each
# fuzz/fuzz_TARGET.c is linked with -fsanitize=fuzzer. A target starts from its
# seeds (fuzz/corpus/TARGET) and past findings (fuzz/regressions/TARGET),
# copied into BUILD/corpus/TARGET, which keeps what the fuzzer discovers so
# the next run goes on from there without growing the repository. Findings
# land in BUILD/artifacts/TARGET/; once fixed, copy each into
# fuzz/regressions/TARGET/ so `make test` replays it.
#
# Settings: FUZZ_SECONDS (60), FUZZ_TARGETS (all), FUZZ_CC (clang),
# FUZZ_BUILD (build/fuzz), FUZZ_ARGS (extra libFuzzer options, e.g. -jobs=2).
# Exit status 1 when a target found something or failed to build.
set -u
cd "$(dirname "$0")/.." || exit 1

CC=${FUZZ_CC:-clang}
SECONDS_EACH=${FUZZ_SECONDS:-60}
TARGETS=${FUZZ_TARGETS:-"idx cifar image checkpoint cli run_identity result lr grid"}
BUILD=${FUZZ_BUILD:-build/fuzz}
SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined"
# The figures (app/figures, linked through the experiment runner) draw with Cairo.
CAIRO_CFLAGS=$(pkg-config --cflags cairo fontconfig 2>/dev/null)
CAIRO_LIBS=$(pkg-config --libs cairo fontconfig 2>/dev/null)
CFLAGS="-std=c11 -g -O1 -fno-omit-frame-pointer -Iinclude -Isrc -Iapp $CAIRO_CFLAGS"
WARN="-Wall -Wextra" # on fuzz/ only: `make` already holds the library to its warnings

if ! echo 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { (void)d; return (int)n * 0; }' |
    $CC -fsanitize=fuzzer -x c - -o /dev/null 2>/dev/null; then
    echo "fuzz: $CC cannot build libFuzzer targets; install clang and its runtime" \
         "(Debian: apt-get install clang libclang-rt-dev, or clang-14 libclang-rt-14-dev)" >&2
    exit 1
fi

# Objects are rebuilt when their source or any header is newer. A library
# file that does not compile is left out with a warning: the link then says
# whether the targets needed it.
mkdir -p "$BUILD/obj"
headers=$(ls include/*.h include/minformer/*.h src/*/*.h app/*/*.h fuzz/*.h)
objects=""
# The built-in grids (grids/*.json) as the C source make generates too.
sh scripts/embed_grids.sh grids/*.json > "$BUILD/grids.c.tmp" || exit 1
cmp -s "$BUILD/grids.c.tmp" "$BUILD/grids.c" || mv "$BUILD/grids.c.tmp" "$BUILD/grids.c"
rm -f "$BUILD/grids.c.tmp"
for src in src/*/*.c app/experiment/*.c app/figures/*.c app/cli/options.c app/cli/cmd_params.c fuzz/targets.c "$BUILD/grids.c"; do
    obj="$BUILD/obj/$(echo "$src" | tr / _ | sed 's/\.c$/.o/')"
    # shellcheck disable=SC2086
    if [ ! -f "$obj" ] || [ -n "$(find "$src" $headers -newer "$obj" 2>/dev/null | head -n 1)" ]; then
        echo "fuzz: compiling $src"
        case $src in fuzz/*) warn=$WARN ;; *) warn="" ;; esac
        # shellcheck disable=SC2086
        if ! $CC $CFLAGS $warn -fsanitize=fuzzer-no-link $SAN -c "$src" -o "$obj"; then
            rm -f "$obj"
            case $src in src/*) echo "fuzz: warning: left out $src, which $CC cannot compile" >&2 ;;
                *) exit 1 ;; esac
            continue
        fi
    fi
    objects="$objects $obj"
done

# The scratch files the targets write go to memory where possible.
if [ -z "${TMPDIR:-}" ] && [ -d /dev/shm ] && [ -w /dev/shm ]; then
    TMPDIR=/dev/shm
    export TMPDIR
fi

status=0
summary=""
for t in $TARGETS; do
    if [ ! -f "fuzz/fuzz_$t.c" ]; then
        echo "fuzz: no target fuzz/fuzz_$t.c" >&2
        status=1
        continue
    fi
    bin="$BUILD/fuzz_$t"
    # shellcheck disable=SC2086
    $CC $CFLAGS $WARN -fsanitize=fuzzer $SAN "fuzz/fuzz_$t.c" $objects $CAIRO_LIBS -lpng -ljpeg -lz -lm -o "$bin" || {
        status=1
        summary="$summary$t: did not build
"
        continue
    }
    corpus="$BUILD/corpus/$t"
    artifacts="$BUILD/artifacts/$t"
    mkdir -p "$corpus" "$artifacts"
    for dir in "fuzz/corpus/$t" "fuzz/regressions/$t"; do
        [ -d "$dir" ] && cp "$dir"/* "$corpus"/ 2>/dev/null
    done
    # Inputs large enough for a few records or tensors; the command line
    # prints on every run, so its stdout and stderr are closed (libFuzzer
    # keeps its own and the sanitizers' reports).
    case $t in
        cifar) opts="-max_len=10000" ;;
        image) opts="-max_len=8192" ;;
        checkpoint) opts="-max_len=16384" ;;
        cli) opts="-max_len=512 -close_fd_mask=3" ;;
        *) opts="-max_len=4096" ;;
    esac
    # The run directory's three JSON files share one dictionary.
    case $t in run_identity|result|lr) dict=fuzz/run.dict ;; *) dict=fuzz/$t.dict ;; esac
    [ -f "$dict" ] && opts="$opts -dict=$dict"
    log="$BUILD/fuzz_$t.log"
    echo "fuzz: running $t for ${SECONDS_EACH}s (log: $log)"
    # shellcheck disable=SC2086
    "$bin" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$artifacts/" $opts ${FUZZ_ARGS:-} "$corpus" >"$log" 2>&1
    rc=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
    inputs=$(find "$corpus" -type f | wc -l)
    if [ $rc -eq 0 ]; then
        line="$t: ${runs:-?} executions (${rate:-?}/s), corpus $inputs inputs, nothing found"
    else
        status=1
        found=$(ls -t "$artifacts" 2>/dev/null | head -n 1)
        line="$t: FOUND something after ${runs:-?} executions (status $rc): $artifacts/$found"
        grep -m 3 -E '^(==[0-9]+==ERROR|SUMMARY|fuzz [a-z]+:)|runtime error' "$log" | sed 's/^/    /'
    fi
    echo "fuzz: $line"
    summary="$summary$line
"
done
printf '\nfuzz summary (%ss per target):\n%s' "$SECONDS_EACH" "$summary"
exit $status
