# Shared helpers of the bash integration tests (sourced). Each test counts
# its cases and ends with "<name>: N passed, M failed" (tests/run reads it).
#   pass NAME           a case that held
#   fail NAME [WHY]     a case that did not; the test goes on
#   die NAME [WHY]      a case that did not and that the rest depends on:
#                       prints the tail of the logs named by ITEST_LOGS (a
#                       glob), the summary, and exits 1
#   wait_until SECONDS WHAT COMMAND...   polls COMMAND every 0.1 s; dies on timeout
#   has FILE PATTERN / count FILE PATTERN
#   itest_summary NAME  the last line; returns non-zero when a case failed
# shellcheck shell=bash

passed=0
failed=0
ITEST_NAME=${ITEST_NAME:-$(basename "$0" .sh)}

pass() {
    echo "PASS: $1"
    passed=$((passed + 1))
}

fail() {
    echo "FAIL: $1${2:+: $2}" >&2
    failed=$((failed + 1))
}

itest_summary() {
    echo "${1:-$ITEST_NAME}: $passed passed, $failed failed"
    [ "$failed" = 0 ]
}

die() {
    fail "$@"
    local f
    for f in ${ITEST_LOGS:-}; do
        [ -f "$f" ] || continue
        echo "---- $f" >&2
        tail -n 15 "$f" >&2
    done
    itest_summary
    exit 1
}

wait_until() {
    local n=$(($1 * 10)) what=$2 i
    shift 2
    for ((i = 0; i < n; i++)); do "$@" && return 0; sleep 0.1; done
    die "timed out waiting for $what"
}

has() { grep -q -- "$2" "$1" 2>/dev/null; }
count() { grep -c -- "$2" "$1" 2>/dev/null || true; }

# The EXIT trap of a test that runs one swarm's processes: kills and reaps
# every pid in the array `pids`, removes the swarm's segment and channel
# (/dev/shm/ph.$SWARM and ph.$SWARM.bridge) and the folder $TMP.
#   trap itest_swarm_cleanup EXIT
itest_swarm_cleanup() {
    set +e
    local p
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
    rm -f "/dev/shm/ph.$SWARM" "/dev/shm/ph.$SWARM.bridge"
    rm -rf "$TMP"
}

# A case: every envelope in FILE (JSON lines, as the file sink writes them)
# passes tests/contract/validate.py; dies otherwise. Needs $ROOT and $TMP.
itest_all_valid() {
    if "${PY:-/usr/bin/python3}" "$ROOT/tests/contract/validate.py" "$1" >"$TMP/validate.out" 2>&1; then
        pass "every envelope is valid: $(tail -n 1 "$TMP/validate.out")"
    else
        cat "$TMP/validate.out" >&2
        die "validate.py"
    fi
}
