#!/usr/bin/env bash
# Integration test of `phctl journal --file` on inputs that are not a
# well-formed journal (issue item 21): every case runs under a virtual
# memory limit (ulimit -v, 200 MB) and a timeout, so a reader that grows
# without bound or hangs fails here instead of eating the machine.
#
#   - /dev/zero, a directory and a FIFO without a writer are refused at
#     once with a message naming what they are, exit 1
#   - a regular (sparse) file of 100 MiB of zero bytes without a newline
#     stops with "without a newline", exit 1, the long line reported once
#   - a 2 MiB line between two good lines: both good lines are printed, the
#     long one is reported once ("line 2 is longer than 1 MiB: skipped")
#   - a line of exactly 1 MiB is still printed whole
#   - a last line without a newline is printed, with a warning that the
#     journal ends with an incomplete line
#   - --all prints the rotated file PATH.1 first; --follow goes on with the
#     new file after a rotation, having read the old one to its end
#   - --follow waits for the rest of a partial line and prints it once; a
#     line that grows past 1 MiB while followed is reported and skipped, the
#     next line printed; SIGINT ends it with exit 0
#
# Usage: tests/integration/test_phctl_journal.sh [BIN_DIR]
#   BIN_DIR (or $PH_BIN_DIR): where phctl is; default <checkout>/build/bin.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN=${1:-${PH_BIN_DIR:-$ROOT/build/bin}}
[[ -d "$BIN" ]] || { echo "test_phctl_journal: no bin dir $BIN (build first)" >&2; exit 1; }
BIN=$(cd "$BIN" && pwd)
PHCTL=$BIN/phctl
[[ -x "$PHCTL" ]] || { echo "test_phctl_journal: $PHCTL is missing" >&2; exit 1; }
TMP=$(mktemp -d /tmp/ph-test-journal.XXXXXX)
MEM_KB=200000  # ulimit -v for phctl: far below what an unbounded reader reaches
LIMIT_S=30     # only to turn a hang into a failure; a good run takes well under 1 s

FOLLOW_PID=

. "$(dirname "${BASH_SOURCE[0]}")/../lib/itest.sh"

cleanup() {
    if [[ -n "$FOLLOW_PID" ]]; then
        pkill -9 -P "$FOLLOW_PID" 2>/dev/null # phctl, under timeout
        kill -9 "$FOLLOW_PID" 2>/dev/null
        wait "$FOLLOW_PID" 2>/dev/null
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# limited ARGS...: phctl journal ARGS with bounded memory and time; stdout
# to $TMP/out, stderr to $TMP/err; sets rc.
limited() {
    (
        ulimit -v "$MEM_KB"
        exec timeout -s KILL "$LIMIT_S" "$PHCTL" journal "$@"
    ) >"$TMP/out" 2>"$TMP/err"
    rc=$?
}

# describe: what the last run did, for a failure message.
describe() {
    local how="exit $rc"
    ((rc == 137)) && how="killed after ${LIMIT_S}s (hang) or by the memory limit"
    echo "$how; stdout $(wc -c <"$TMP/out") bytes: $(head -c 200 "$TMP/out" | tr '\0' '@');" \
        "stderr: $(head -c 400 "$TMP/err")"
}

# check NAME WANT_RC STDERR_FRAGMENT [EXPECTED_STDOUT_FILE]
check() {
    local name=$1 want=$2 frag=$3 want_out=${4:-}
    if ((rc != want)); then
        fail "$name" "expected exit $want; $(describe)"
    elif [[ -n "$frag" ]] && ! grep -qF -- "$frag" "$TMP/err"; then
        fail "$name" "stderr lacks '$frag'; $(describe)"
    elif [[ -n "$want_out" ]] && ! cmp -s "$want_out" "$TMP/out"; then
        fail "$name" "stdout is not $(head -c 200 "$want_out"); $(describe)"
    else
        pass "$name"
    fi
}

# times FRAGMENT FILE: how many lines of FILE contain FRAGMENT.
times() { grep -cF -- "$1" "$2"; }

GOOD1='{"ts":"2024-05-01T10:00:00.000Z","event":"signal","type":"swarm-start","n":1}'
GOOD3='{"ts":"2024-05-01T10:00:02.000Z","event":"outcome","status":"Running","n":3}'
printf '%s\n' "$GOOD1" "$GOOD3" >"$TMP/good.expected"

# ------------------------------------------------- not a journal at all

limited --file /dev/zero --json
check "journal_of_dev_zero_is_refused_at_once" 1 "/dev/zero is a character device, not a regular file"

mkdir "$TMP/dir.jsonl"
limited --file "$TMP/dir.jsonl"
check "journal_of_a_directory_is_refused" 1 "$TMP/dir.jsonl is a directory, not a regular file"

mkfifo "$TMP/fifo.jsonl"
limited --file "$TMP/fifo.jsonl" --follow
check "journal_of_a_fifo_without_writer_is_refused_without_hanging" 1 \
    "$TMP/fifo.jsonl is a FIFO, not a regular file"

# Sparse: 100 MiB of zero bytes that take no disk.
truncate -s 100M "$TMP/zeros.jsonl"
limited --file "$TMP/zeros.jsonl" --json
check "journal_of_100_MiB_without_newline_stops_with_an_error" 1 "without a newline"
if ((rc == 1)) && (($(times "is longer than 1 MiB" "$TMP/err") != 1)); then
    fail "journal_of_100_MiB_without_newline_reports_the_long_line_once" "stderr: $(head -c 400 "$TMP/err")"
elif ((rc == 1)); then
    pass "journal_of_100_MiB_without_newline_reports_the_long_line_once"
fi

# ------------------------------------------------- over-long lines

{
    printf '%s\n' "$GOOD1"
    head -c $((2 << 20)) /dev/zero | tr '\0' x
    printf '\n%s\n' "$GOOD3"
} >"$TMP/long.jsonl"
limited --file "$TMP/long.jsonl" --json
check "journal_skips_a_2_MiB_line_and_prints_the_good_lines_around_it" 0 \
    "line 2 is longer than 1 MiB: skipped" "$TMP/good.expected"
if (($(times "longer than 1 MiB" "$TMP/err") != 1)); then
    fail "journal_reports_a_2_MiB_line_once" "stderr: $(head -c 400 "$TMP/err")"
else
    pass "journal_reports_a_2_MiB_line_once"
fi

limited --file "$TMP/long.jsonl"
if ((rc == 0)) && (($(wc -l <"$TMP/out") == 2)) && grep -q 'n=1' "$TMP/out" &&
    grep -q 'n=3' "$TMP/out" && grep -qF "line 2 is longer than 1 MiB: skipped" "$TMP/err"; then
    pass "journal_in_human_form_skips_the_2_MiB_line_too"
else
    fail "journal_in_human_form_skips_the_2_MiB_line_too" "$(describe)"
fi

{
    head -c $((1 << 20)) /dev/zero | tr '\0' y
    printf '\n'
} >"$TMP/exact.jsonl"
limited --file "$TMP/exact.jsonl" --json
if ((rc == 0)) && cmp -s "$TMP/exact.jsonl" "$TMP/out" && [[ ! -s "$TMP/err" ]]; then
    pass "journal_prints_a_line_of_exactly_1_MiB_whole"
else
    fail "journal_prints_a_line_of_exactly_1_MiB_whole" "$(describe)"
fi

# ------------------------------------------------- incomplete last line

PARTIAL='{"ts":"2024-05-01T10:00:01.000Z","event":"alert","code":"worker.died","n":2}'
printf '%s\n%s' "$GOOD1" "$PARTIAL" >"$TMP/partial.jsonl"
printf '%s\n%s\n' "$GOOD1" "$PARTIAL" >"$TMP/partial.expected"
limited --file "$TMP/partial.jsonl" --json
check "journal_prints_a_last_line_without_newline_and_warns" 0 \
    "ends with an incomplete line" "$TMP/partial.expected"

limited --file "$TMP/partial.jsonl"
if ((rc == 0)) && grep -q 'alert .*code=worker.died' "$TMP/out" &&
    grep -qF "ends with an incomplete line" "$TMP/err"; then
    pass "journal_in_human_form_prints_the_incomplete_last_line_too"
else
    fail "journal_in_human_form_prints_the_incomplete_last_line_too" "$(describe)"
fi

# ------------------------------------------------- --follow

# wait_for SECONDS WHAT COMMAND...: polls COMMAND; false after SECONDS.
wait_for() {
    local deadline=$((SECONDS + $1))
    shift
    until "$@"; do
        ((SECONDS < deadline)) || return 1
        sleep 0.1
    done
}

F=$TMP/follow.jsonl
printf '%s\n%s' "$GOOD1" "${PARTIAL:0:40}" >"$F"
(
    ulimit -v "$MEM_KB"
    exec timeout -s KILL 120 "$PHCTL" journal --file "$F" --follow --json
) >"$TMP/fout" 2>"$TMP/ferr" &
FOLLOW_PID=$!
name=journal_follow_waits_for_the_rest_of_a_line_and_bounds_it
if ! wait_for 10 grep -qxF "$GOOD1" "$TMP/fout"; then
    fail "$name" "the first line was not printed within 10 s: $(head -c 300 "$TMP/ferr")"
elif (($(wc -l <"$TMP/fout") != 1)); then
    fail "$name" "the partial line was printed before its newline: $(cat "$TMP/fout")"
else
    printf '%s\n' "${PARTIAL:40}" >>"$F"
    if ! wait_for 10 grep -qxF "$PARTIAL" "$TMP/fout"; then
        fail "$name" "the completed line was not printed within 10 s: $(head -c 300 "$TMP/fout")"
    else
        head -c $((2 << 20)) /dev/zero | tr '\0' z >>"$F"
        if ! wait_for 10 grep -qF "line 3 is longer than 1 MiB: skipped" "$TMP/ferr"; then
            fail "$name" "a line growing past 1 MiB was not reported within 10 s: $(head -c 300 "$TMP/ferr")"
        else
            printf '\n%s\n' "$GOOD3" >>"$F"
            if ! wait_for 10 grep -qxF "$GOOD3" "$TMP/fout"; then
                fail "$name" "the line after the long one was not printed within 10 s: $(head -c 300 "$TMP/ferr")"
            else
                kill -INT "$FOLLOW_PID"
                wait "$FOLLOW_PID"
                rc=$?
                FOLLOW_PID=
                printf '%s\n' "$GOOD1" "$PARTIAL" "$GOOD3" >"$TMP/follow.expected"
                if ((rc != 0)); then
                    fail "$name" "exit $rc after SIGINT: $(head -c 300 "$TMP/ferr")"
                elif ! cmp -s "$TMP/follow.expected" "$TMP/fout"; then
                    fail "$name" "printed $(wc -c <"$TMP/fout") bytes, expected the three good lines"
                elif (($(times "longer than 1 MiB" "$TMP/ferr") != 1)); then
                    fail "$name" "the long line was not reported exactly once: $(head -c 300 "$TMP/ferr")"
                else
                    pass "$name"
                fi
            fi
        fi
    fi
fi

# ------------------------------------------------- rotation

# --all: the rotated file first, then the current one; without it only the
# current one; without a rotated file --all prints the current one alone.
R=$TMP/rot.jsonl
printf '%s\n' "$GOOD1" >"$R.1"
printf '%s\n' "$GOOD3" >"$R"
printf '%s\n' "$GOOD1" "$GOOD3" >"$TMP/rot.expected"
limited --file "$R" --all --json
check "journal_all_prints_the_rotated_file_first" 0 "" "$TMP/rot.expected"
printf '%s\n' "$GOOD3" >"$TMP/rot.current"
limited --file "$R" --json
check "journal_without_all_prints_the_current_file_only" 0 "" "$TMP/rot.current"
rm -f "$R.1"
limited --file "$R" --all --json
check "journal_all_without_a_rotated_file_prints_the_current_one" 0 "" "$TMP/rot.current"

# --follow goes on with the new file after a rotation done as the controller
# does it: the old file written out, renamed to .1, a new file renamed in.
# A follower the case above left running (it failed) goes first.
if [[ -n "$FOLLOW_PID" ]]; then
    { pkill -9 -P "$FOLLOW_PID"; kill -9 "$FOLLOW_PID"; wait "$FOLLOW_PID"; } 2>/dev/null
    FOLLOW_PID=
fi
F2=$TMP/frot.jsonl
printf '%s\n' "$GOOD1" >"$F2"
(
    ulimit -v "$MEM_KB"
    exec timeout -s KILL 120 "$PHCTL" journal --file "$F2" --follow --json
) >"$TMP/f2out" 2>"$TMP/f2err" &
FOLLOW_PID=$!
name=journal_follow_goes_on_with_the_new_file_after_a_rotation
if ! wait_for 10 grep -qxF "$GOOD1" "$TMP/f2out"; then
    fail "$name" "the first line was not printed within 10 s: $(head -c 300 "$TMP/f2err")"
else
    printf '%s\n' "$PARTIAL" >>"$F2" # written just before the rotation
    printf '%s\n' "$GOOD3" >"$F2.new"
    mv "$F2" "$F2.1"
    mv "$F2.new" "$F2"
    if ! wait_for 10 grep -qxF "$GOOD3" "$TMP/f2out"; then
        fail "$name" "the new file's line was not printed within 10 s: $(head -c 300 "$TMP/f2err")"
    else
        printf '%s\n' "$GOOD1" >>"$F2"
        wait_for 10 test "$(wc -l <"$TMP/f2out")" -ge 4
        kill -INT "$FOLLOW_PID"
        wait "$FOLLOW_PID"
        rc=$?
        FOLLOW_PID=
        printf '%s\n' "$GOOD1" "$PARTIAL" "$GOOD3" "$GOOD1" >"$TMP/f2.expected"
        if ((rc != 0)); then
            fail "$name" "exit $rc after SIGINT: $(head -c 300 "$TMP/f2err")"
        elif ! cmp -s "$TMP/f2.expected" "$TMP/f2out"; then
            fail "$name" "printed $(head -c 600 "$TMP/f2out"), expected the old file's two lines then the new file's two"
        elif ! grep -qF "was rotated: following the new file" "$TMP/f2err"; then
            fail "$name" "no rotation notice on stderr: $(head -c 300 "$TMP/f2err")"
        else
            pass "$name"
        fi
    fi
fi

echo "test_phctl_journal: $passed passed, $failed failed"
((failed == 0))
