#!/usr/bin/env bash
# Item 14 of the defects issue: truncating the segment used to kill the
# controller with SIGBUS, and its restarts crash-looped on the short
# segment, with a hint (phctl shm-rm without --force) that did not work.
# Real controller and worker:
#   - the segment cut to 5,000 bytes, then to 0: the controller survives,
#     restores the size (and the header), says what happened and what to do;
#     phctl shm-dump reads the segment again;
#   - the channel cut short: the controller re-creates it;
#   - a controller started on a truncated segment left by a dead one
#     adopts it (size restored) instead of exiting;
#   - the hint's command works.
# usage: test_segment_truncation.sh [BIN_DIR]
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN=${1:-${PH_BIN_DIR:-$ROOT/build/bin}}
PY=/usr/bin/python3
SWARM=pht-trunc-$$
TMP=$(mktemp -d /tmp/ph-test-trunc.XXXXXX)
ITEST_LOGS="$TMP/*.log"
pids=()
. "$(dirname "${BASH_SOURCE[0]}")/../lib/itest.sh"

cleanup() {
    set +e
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
    rm -f "/dev/shm/ph.$SWARM" "/dev/shm/ph.$SWARM.bridge"
    rm -rf "$TMP"
}
trap cleanup EXIT

controller() {
    "$BIN/ph-swarm-controller" --swarm "$SWARM" --journal-dir "$TMP/journal" >>"$TMP/controller.log" 2>&1 &
    CTL=$!
    pids+=("$CTL")
}
cut() { "$PY" -c 'import os,sys; os.truncate(sys.argv[1], int(sys.argv[2]))' "$1" "$2"; }
size_of() { stat -c %s "$1"; }
dump_ok() { "$BIN/phctl" shm-dump --swarm "$SWARM" --json >"$TMP/dump.json" 2>"$TMP/dump.err"; }
restored() { [ "$(size_of "/dev/shm/ph.$SWARM")" = "$FULL" ]; }

controller
wait_until 10 "the segment" test -e "/dev/shm/ph.$SWARM"
"$BIN/ph-worker" --swarm "$SWARM" --role generator --instance gen-1 --config '{"ratePerSec": 10}' \
    >"$TMP/worker.log" 2>&1 &
pids+=($!)
wait_until 10 "a readable segment" dump_ok
FULL=$(size_of "/dev/shm/ph.$SWARM")
pass "controller and worker up (segment of $FULL bytes)"

echo "cutting the segment to 5000 bytes (the worker, whose slot is cut, dies of SIGBUS: expected)"
cut "/dev/shm/ph.$SWARM" 5000
wait_until 10 "the size restored" restored
sleep 0.3
kill -0 "$CTL" 2>/dev/null || die "the controller died after the segment was cut to 5000 bytes"
has "$TMP/controller.log" "was truncated to 5000 bytes" || die "the controller did not say what happened"
has "$TMP/controller.log" "phctl shm-rm --swarm $SWARM --force" || die "the controller's hint lacks a working command"
wait_until 10 "a readable segment again" dump_ok
pass "cut to 5000 bytes: the controller survives, restores the size and says what to do"

cut "/dev/shm/ph.$SWARM" 0
wait_until 10 "the size restored" restored
sleep 0.3
kill -0 "$CTL" 2>/dev/null || die "the controller died after the segment was cut to 0"
wait_until 10 "a readable segment (header written again)" dump_ok
pass "cut to 0: header and size restored, shm-dump reads it"

CH=/dev/shm/ph.$SWARM.bridge
INO=$(stat -c %i "$CH")
cut "$CH" 100
new_channel() { [ -e "$CH" ] && [ "$(stat -c %i "$CH")" != "$INO" ]; }
wait_until 10 "a new channel" new_channel
kill -0 "$CTL" 2>/dev/null || die "the controller died after the channel was cut"
pass "the channel cut short: re-created"

kill -9 "$CTL"
wait "$CTL" 2>/dev/null || true
cut "/dev/shm/ph.$SWARM" 5000
controller
wait_until 10 "the new controller to adopt the segment" has "$TMP/controller.log" "adopted segment"
sleep 1
kill -0 "$CTL" 2>/dev/null || die "a controller started on a truncated segment exited: $(tail -n 3 "$TMP/controller.log")"
restored || die "the adopting controller did not restore the size"
pass "a controller started on a truncated segment adopts it"

kill "$CTL"
wait "$CTL" 2>/dev/null || true
"$BIN/phctl" shm-rm --swarm "$SWARM" --force >"$TMP/rm.log" 2>&1 || die "the hinted phctl shm-rm --force failed: $(cat "$TMP/rm.log")"
[ ! -e "/dev/shm/ph.$SWARM" ] || die "the segment is still there"
pass "the hint's command removes the segment"
itest_summary
