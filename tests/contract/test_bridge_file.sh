#!/bin/sh
# ph-bridge end to end with the file sink, against a stand-in controller
# (ph-test-fake-controller), proving:
#   - every kind of valid document is published as an envelope that passes
#     the project's and the upstream schema and the semantic guards;
#   - every invalid document is refused and counted in docs_refused;
#   - good signals reach the controller, which answers them; bad signal lines
#     do not, are counted in signals_rejected, and raise exactly one
#     control.invalid-message alert (rate limit);
#   - a controller restart (a re-created channel) is followed;
#   - SIGTERM stops the bridge cleanly (exit 0, unregistered), and no shared
#     memory is left behind.
# usage: test_bridge_file.sh BIN_DIR   (PH_TEST_KEEP=1 keeps the work folder)
set -eu

BIN=${1:?usage: test_bridge_file.sh BIN_DIR}
HERE=$(cd "$(dirname "$0")" && pwd)
PY=/usr/bin/python3
SWARM=pht-brfile-$$
CTL=$SWARM-controller
MAX=4096
TMP=$(mktemp -d "${TMPDIR:-/tmp}/ph-bridge-test.XXXXXX")
OUT=$TMP/out.jsonl
SIG=$TMP/signals.jsonl
FC_PID=
BR_PID=

cleanup() {
    for p in $BR_PID $FC_PID; do kill "$p" 2>/dev/null || true; done
    for p in $BR_PID $FC_PID; do wait "$p" 2>/dev/null || true; done
    rm -f "/dev/shm/ph.$SWARM.bridge"
    if [ -n "${PH_TEST_KEEP:-}" ]; then echo "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT INT TERM

fail() {
    echo "FAIL: $*" >&2
    for f in "$TMP"/*.log "$TMP"/*.out; do
        [ -f "$f" ] || continue
        echo "---- $f" >&2
        tail -n 40 "$f" >&2
    done
    exit 1
}

# wait_until SECONDS DESCRIPTION COMMAND...: polls COMMAND every 50 ms.
wait_until() {
    limit=$(($1 * 20))
    what=$2
    shift 2
    i=0
    until "$@"; do
        i=$((i + 1))
        [ "$i" -lt "$limit" ] || fail "timed out waiting for $what"
        sleep 0.05
    done
}

lines() { [ -f "$1" ] && wc -l <"$1" || echo 0; }
count() { grep -c -- "$2" "$1" 2>/dev/null || true; }
at_least() { [ "$(lines "$1")" -ge "$2" ]; }
has() { grep -q -- "$2" "$1" 2>/dev/null; }
stat_of() { # stat_of FILE KEY: a number from the fake controller's stats line
    $PY -c 'import json,sys
for l in open(sys.argv[1]):
    d = json.loads(l)
    if d.get("event") == "stats": print(d[sys.argv[2]])' "$1" "$2"
}

: >"$SIG"
$PY "$HERE/make_signals.py" good "$SWARM" "$CTL" a- >"$TMP/good.jsonl"
$PY "$HERE/make_signals.py" bad "$SWARM" "$CTL" "$MAX" >"$TMP/bad.jsonl"
NGOOD=$(lines "$TMP/good.jsonl")
NBAD=$(lines "$TMP/bad.jsonl")

echo "== controller A writes valid and invalid documents; the bridge starts after it"
"$BIN/ph-test-fake-controller" --swarm "$SWARM" --instance "$CTL" --tag A --invalid \
    >"$TMP/fcA.out" 2>"$TMP/fcA.log" &
FC_PID=$!
wait_until 5 "controller A" has "$TMP/fcA.out" '"event":"ready"'
VALID=$($PY -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["valid"])' "$TMP/fcA.out")
INVALID=$($PY -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["invalid"])' "$TMP/fcA.out")

"$BIN/ph-bridge" --swarm "$SWARM" --controller-instance "$CTL" --sink "file:$OUT" \
    --signals "$SIG" --max-signal-bytes "$MAX" >"$TMP/bridge.out" 2>"$TMP/bridge.log" &
BR_PID=$!
wait_until 10 "$VALID envelopes" at_least "$OUT" "$VALID"
sleep 0.2
[ "$(lines "$OUT")" -eq "$VALID" ] || fail "expected $VALID envelopes, got $(lines "$OUT")"
[ "$(count "$TMP/bridge.log" 'refused document')" -eq "$INVALID" ] ||
    fail "expected $INVALID refusals in the log"
if grep -q 'hunter2\|Bearer abc' "$OUT" "$TMP/bridge.log"; then fail "a secret reached the sink or the log"; fi

echo "== good and bad signals"
# One write each: the bad lines arrive within one rate-limit interval.
cat "$TMP/good.jsonl" >>"$SIG"
cat "$TMP/bad.jsonl" >>"$SIG"
wait_until 10 "$NGOOD signals at the controller" \
    sh -c "[ \$(grep -c '\"event\":\"signal\"' '$TMP/fcA.out') -ge $NGOOD ]"
# answers: one outcome per command, a status-full for the status-request, one
# alert, and a failed outcome for each refused signal that says whom to answer
# (a correlationId, a known type, this swarm): wrong kind, scope, data.
ANSWERED="bad-kind bad-scope bad-data"
EXPECT=$((VALID + NGOOD + 1 + 3))
wait_until 10 "answers and the alert" at_least "$OUT" "$EXPECT"
sleep 0.3
[ "$(lines "$OUT")" -eq "$EXPECT" ] || fail "expected $EXPECT envelopes, got $(lines "$OUT")"
[ "$(count "$TMP/fcA.out" '"event":"signal"')" -eq "$NGOOD" ] || fail "wrong number of signals at the controller"
if grep -q '"cid":"bad-' "$TMP/fcA.out"; then fail "a bad signal reached the controller"; fi
[ "$(count "$OUT" '"code":"control.invalid-message"')" -eq 1 ] ||
    fail "expected exactly one control.invalid-message alert"
[ "$(count "$TMP/bridge.log" 'rejected signal')" -eq "$NBAD" ] || fail "expected $NBAD rejections in the log"
for cid in $ANSWERED; do
    [ "$(grep '"kind":"outcome"' "$OUT" | grep -c "\"correlationId\":\"$cid\"")" -eq 1 ] ||
        fail "refused signal $cid: expected exactly one outcome"
    grep '"kind":"outcome"' "$OUT" | grep "\"correlationId\":\"$cid\"" | grep -q '"status":"failed"' ||
        fail "refused signal $cid: its outcome is not failed"
done
for cid in bad-type bad-swarm bad-size; do
    if grep -q "\"correlationId\":\"$cid\"" "$OUT"; then fail "$cid cannot be answered, yet was"; fi
done
if grep -q 'not-for-logs' "$TMP/bridge.log" "$OUT"; then fail "a signal's secret was logged"; fi

echo "== the controller restarts: the bridge follows the new channel"
kill "$FC_PID"
wait "$FC_PID" || fail "controller A failed"
FC_PID=
[ "$(stat_of "$TMP/fcA.out" docs_published)" -eq $((VALID + NGOOD)) ] || fail "docs_published"
[ "$(stat_of "$TMP/fcA.out" docs_refused)" -eq "$INVALID" ] || fail "docs_refused"
[ "$(stat_of "$TMP/fcA.out" signals_rejected)" -eq "$NBAD" ] || fail "signals_rejected"
[ "$(stat_of "$TMP/fcA.out" bridge_generation)" -eq 1 ] || fail "bridge_generation"

"$BIN/ph-test-fake-controller" --swarm "$SWARM" --instance "$CTL" --tag B \
    >"$TMP/fcB.out" 2>"$TMP/fcB.log" &
FC_PID=$!
wait_until 10 "controller B's status-full" has "$OUT" '"fakeTag":"B"'
$PY "$HERE/make_signals.py" good "$SWARM" "$CTL" b- >"$TMP/goodB.jsonl"
cat "$TMP/goodB.jsonl" >>"$SIG"
wait_until 10 "signals at controller B" \
    sh -c "[ \$(grep -c '\"event\":\"signal\"' '$TMP/fcB.out') -ge $NGOOD ]"
EXPECT=$((EXPECT + VALID + NGOOD))
wait_until 10 "controller B's answers" at_least "$OUT" "$EXPECT"

echo "== SIGTERM: clean stop"
sleep 0.1
kill "$BR_PID"
if wait "$BR_PID"; then :; else fail "ph-bridge exited with $?"; fi
BR_PID=
kill "$FC_PID"
wait "$FC_PID" || fail "controller B failed"
FC_PID=
[ "$(stat_of "$TMP/fcB.out" bridge_pid)" -eq 0 ] || fail "the bridge did not unregister"
[ "$(stat_of "$TMP/fcB.out" signals_rejected)" -eq 0 ] || fail "controller B saw rejections"
[ "$(lines "$OUT")" -eq "$EXPECT" ] || fail "expected $EXPECT envelopes in the end, got $(lines "$OUT")"
[ ! -e "/dev/shm/ph.$SWARM.bridge" ] || fail "the channel was left in /dev/shm"

echo "== every envelope against the contract"
cat "$TMP/good.jsonl" "$TMP/goodB.jsonl" >"$TMP/all-good.jsonl"
$PY "$HERE/validate.py" "$OUT" --signals "$TMP/all-good.jsonl" --expect-live-workers 3 \
    >"$TMP/validate.out" 2>&1 || fail "validate.py: $(cat "$TMP/validate.out")"
cat "$TMP/validate.out"
echo "PASS"
