#!/bin/sh
# Runs each test program given as an argument. Each prints lines of its own and
# a last line "TESTS <passed> <failed> <skipped>"; this sums them and prints the
# closing line "N passed, M failed, K skipped". Exit status 1 if anything failed.
# libgomp spin-waits at barriers by default; on a busy machine that starves
# the thread doing the work. Tests do not measure speed, so wait passively.
: "${OMP_WAIT_POLICY:=passive}"
export OMP_WAIT_POLICY
passed=0; failed=0; skipped=0; broken=""
for t in "$@"; do
    name=$(basename "$t")
    out=$("$t" 2>&1); rc=$?
    printf '%s\n' "$out" | grep -v '^TESTS ' | sed "s/^/[$name] /"
    line=$(printf '%s\n' "$out" | grep '^TESTS ' | tail -n 1)
    if [ -z "$line" ]; then
        echo "[$name] crashed or exited early (status $rc) before reporting"
        failed=$((failed + 1)); broken="$broken $name"; continue
    fi
    set -- $line; shift
    passed=$((passed + $1)); failed=$((failed + $2)); skipped=$((skipped + $3))
    if [ "$2" -ne 0 ] || [ $rc -ne 0 ]; then
        broken="$broken $name"
        [ "$2" -eq 0 ] && failed=$((failed + 1))
    fi
done
[ -n "$broken" ] && echo "failing:$broken"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
