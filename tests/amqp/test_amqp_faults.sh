#!/bin/sh
# Faults on the signal path, against a real RabbitMQ broker (private node):
#   - item 3: the controller killed -9 while signals arrive, then restarted:
#     every signal gets exactly one outcome (nothing acknowledged to the
#     broker before the controller journaled it; the restarted controller
#     takes up what its predecessor had taken in);
#   - item 3: the controller killed (by a test hook) with an outcome in its
#     journal but not yet in the bridge's ring: the next one sends it again,
#     every signal answered exactly once;
#   - items 3 and 18: the controller stalled (SIGSTOP) while 400 signals of
#     ~180 KB arrive, and the bridge restarted meanwhile: the bridge's memory
#     stays bounded (prefetch flow control) and, once the controller
#     continues, every signal gets exactly one outcome;
#   - item 4: a signal refused by the bridge after parsing (a 120,000
#     character string in its data) gets a failed outcome saying why;
#   - outcomes the bridge published while the broker was down (kept for
#     its confirms), the bridge then killed -9: the next bridge publishes
#     them again from the controller's document ring, and every one
#     arrives (at least once);
#   - every captured envelope passes tests/contract/validate.py.
# usage: test_amqp_faults.sh BIN_DIR   (PH_TEST_KEEP=1 keeps the work folder)
# Ports: PH_TEST_AMQP_PORT (default 27672) and the eight after it, epmd on
# PH_TEST_EPMD_PORT (default 27369). Exits 77 (skipped) without rabbitmq-server.
set -eu

BIN=${1:?usage: test_amqp_faults.sh BIN_DIR}
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
amqp_test_init faults 27672 27369
CAP_PID=
CTL_PID=
BR_PID=
WPIDS=

cleanup() {
    [ -z "$CTL_PID" ] || kill -CONT "$CTL_PID" 2>/dev/null || true
    for p in $BR_PID $WPIDS $CTL_PID $CAP_PID; do kill "$p" 2>/dev/null || true; done
    for p in $BR_PID $WPIDS $CTL_PID $CAP_PID; do wait "$p" 2>/dev/null || true; done
    "$RMQ" stop --dir "$RDIR" >/dev/null 2>&1 || true
    rm -f "/dev/shm/ph.$SWARM" "/dev/shm/ph.$SWARM.bridge"
    if [ -n "${PH_TEST_KEEP:-}" ]; then echo "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

controller() {
    "$BIN/ph-swarm-controller" --swarm "$SWARM" --instance "$CTL" --journal-dir "$TMP/journal" \
        --run-id faults >>"$TMP/controller.log" 2>&1 &
    CTL_PID=$!
}
bridge() { # [more ph-bridge options]
    "$BIN/ph-bridge" --swarm "$SWARM" --controller-instance "$CTL" --sink amqp \
        --amqp-url-file "$URL" "$@" >>"$TMP/bridge.log" 2>&1 &
    BR_PID=$!
}
# signals PREFIX N KIND: N signal lines "rk<TAB>body" with ids PREFIX-<i>;
# KIND small: config-update of the whole swarm; big: ~180 KB of data for
# one worker (answered failed: too large for its command ring).
signals() {
    $PY - "$SWARM" "$CTL" "$1" "$2" "$3" "$TMP/$1.cids" <<'PYEOF'
import json, sys
swarm, ctl, prefix, n, kind, cids = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5], sys.argv[6]
out = open(cids, "w")
for i in range(n):
    cid = "%s-%d" % (prefix, i)
    out.write(cid + "\n")
    if kind == "small":
        role, inst, data = None, None, {"ratePerSec": 10 + i % 7}
    else:
        role, inst = "processor", "proc-1"
        data = {"blob": [chr(97 + k) * 15000 for k in range(12)]}
    env = {"timestamp": "2026-12-01T12:00:00.000Z", "version": "1", "kind": "signal",
           "type": "config-update", "origin": "faults-test",
           "scope": {"swarmId": swarm, "role": role, "instance": inst},
           "correlationId": cid, "idempotencyKey": "ik-" + cid, "data": data}
    rk = "signal.config-update.%s.%s.%s" % (swarm, role or "ALL", inst or "ALL")
    sys.stdout.write(rk + "\t" + json.dumps(env, separators=(",", ":")) + "\n")
PYEOF
}

# Under AddressSanitizer freed memory sits in a quarantine (256 MB by
# default) that would count as the bridge's: keep it small for this test.
[ -z "${ASAN_OPTIONS:-}" ] || export ASAN_OPTIONS="$ASAN_OPTIONS:quarantine_size_mb=8"
rss_kb() { sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$1/status" 2>/dev/null || echo 0; }

echo "== private broker on 127.0.0.1:$PH_AMQP_PORT"
T0=$(date +%s)
"$RMQ" start --dir "$RDIR" >"$TMP/rabbitmq.log" 2>&1 || fail "deploy/rabbitmq start: $(cat "$TMP/rabbitmq.log")"
capture_start "$CAPQ"

echo "== controller, two workers, bridge --sink amqp"
controller
for w in generator:gen-1 processor:proc-1; do
    "$BIN/ph-worker" --swarm "$SWARM" --role "${w%%:*}" --instance "${w#*:}" --heartbeat-ms 500 \
        --config '{"ratePerSec": 20}' >"$TMP/${w#*:}.log" 2>&1 &
    WPIDS="$WPIDS $!"
done
bridge
wait_until 30 "a controller status-full" captured 1 "event.metric.status-full.$SWARM.swarm-controller.$CTL"
ok "swarm up"

echo "== item 3: controller kill -9 while 300 signals arrive"
# The workers stop acknowledging first: commands the controller takes in
# wait for them (up to 64 at once; the rest are answered "busy"), and die
# with it.
for p in $WPIDS; do kill -STOP "$p"; done
signals kill 300 small >"$TMP/kill.lines"
pub <"$TMP/kill.lines"
journal_signals() { [ "$(count "$TMP/journal/faults.jsonl" '"event":"signal"')" -ge "$1" ]; }
wait_until 30 "the controller to take in 100 signals" journal_signals 100
kill -9 "$CTL_PID"
wait "$CTL_PID" 2>/dev/null || true
BEFORE=$(outcomes_per_cid "$TMP/kill.cids" | cut -d' ' -f1)
controller
for p in $WPIDS; do kill -CONT "$p"; done
wait_until 90 "an outcome for each of the 300 signals" all_answered "$TMP/kill.cids"
sleep 1 # room for a duplicate to show up
set -- $(outcomes_per_cid "$TMP/kill.cids")
[ "$2" = 0 ] && [ "$3" = 0 ] || fail "after the kill: $1 answered, $2 missing, $3 answered twice"
TAKEN=$(count "$TMP/controller.log" 'taking up signal')
[ "$TAKEN" -gt 0 ] || fail "the restarted controller took up nothing its predecessor had taken in"
ok "controller killed after $BEFORE of 300 outcomes with $TAKEN taken in but unanswered; after its restart all 300 answered exactly once"

echo "== item 3: the controller dies with an outcome journaled but not handed to the bridge"
# PH_TEST_DIE_BEFORE_OUTCOME=5: the controller kills itself (SIGKILL) when
# its 5th outcome is in the journal and about to go into the document ring,
# the window a kill -9 otherwise hits only by chance. The next controller
# must send that outcome (and any its journal cannot show delivered) again;
# the bridge drops the ones it had published.
kill "$CTL_PID"
wait "$CTL_PID" 2>/dev/null || true
export PH_TEST_DIE_BEFORE_OUTCOME=5
controller
unset PH_TEST_DIE_BEFORE_OUTCOME
signals die 20 small >"$TMP/die.lines"
pub <"$TMP/die.lines"
dead() { [ ! -d "/proc/$CTL_PID" ] || grep -q '^State:.*Z' "/proc/$CTL_PID/status" 2>/dev/null; }
wait_until 30 "the controller to kill itself at its 5th outcome" dead
wait "$CTL_PID" 2>/dev/null || true
grep -q 'PH_TEST_DIE_BEFORE_OUTCOME: killing' "$TMP/controller.log" ||
    fail "the controller stopped, but not by the test hook"
controller
wait_until 60 "an outcome for each of the 20 signals" all_answered "$TMP/die.cids"
sleep 1 # room for a duplicate to show up
set -- $(outcomes_per_cid "$TMP/die.cids")
[ "$2" = 0 ] && [ "$3" = 0 ] || fail "after the kill: $1 answered, $2 missing, $3 answered twice"
RESENT=$(sed -n 's/.*taken up again, \([0-9]*\) outcome(s) not shown delivered sent again.*/\1/p' "$TMP/controller.log" | tail -1)
[ "${RESENT:-0}" -gt 0 ] || fail "the restarted controller sent no outcome again"
ok "controller killed between journal and bridge at its 5th outcome; $RESENT outcome(s) sent again, all 20 answered exactly once"

echo "== items 3 and 18: 400 signals of ~180 KB to a stalled controller, bridge restarted"
signals big 400 big >"$TMP/big.lines"
kill -STOP "$CTL_PID"
BASE_KB=$(rss_kb "$BR_PID")
pub <"$TMP/big.lines"
sleep 2
PEAK1_KB=$(rss_kb "$BR_PID")
kill "$BR_PID"
wait "$BR_PID" || fail "the bridge did not stop cleanly"
bridge
sleep 3
PEAK2_KB=$(rss_kb "$BR_PID")
kill -CONT "$CTL_PID"
wait_until 120 "an outcome for each of the 400 large signals" all_answered "$TMP/big.cids"
sleep 1
PEAK3_KB=$(rss_kb "$BR_PID")
set -- $(outcomes_per_cid "$TMP/big.cids")
[ "$2" = 0 ] && [ "$3" = 0 ] || fail "large signals: $1 answered, $2 missing, $3 answered twice"
# The bound is the growth over the bridge's own start (sanitizer builds start
# higher): at most 48 MiB for 72 MB offered; unbounded, it grew by 129 MB.
for kb in "$PEAK1_KB" "$PEAK2_KB" "$PEAK3_KB"; do
    [ $((kb - BASE_KB)) -lt 49152 ] ||
        fail "bridge memory grew to $kb kB from $BASE_KB kB (limit +48 MiB; 400 x 180 KB offered)"
done
ok "400 large signals (72 MB) answered exactly once; bridge peak RSS ${PEAK1_KB}/${PEAK2_KB}/${PEAK3_KB} kB (started at ${BASE_KB} kB)"

echo "== item 4: a signal refused after parsing is answered"
$PY - "$SWARM" >"$TMP/refused.lines" <<'PYEOF'
import json, sys
swarm = sys.argv[1]
env = {"timestamp": "2026-12-01T12:00:00.000Z", "version": "1", "kind": "signal",
       "type": "config-update", "origin": "faults-test",
       "scope": {"swarmId": swarm, "role": "generator", "instance": None},
       "correlationId": "refused-1", "idempotencyKey": None, "data": {"note": "x" * 120000}}
print("signal.config-update.%s.generator.ALL\t%s" % (swarm, json.dumps(env)))
PYEOF
pub <"$TMP/refused.lines"
wait_until 15 "a failed outcome for the refused signal" captured 1 '"kind":"outcome"' '"correlationId":"refused-1"' '"status":"failed"'
captured 1 '"correlationId":"refused-1"' 'exceeds' || fail "the refusal's outcome does not say why"
ok "refused signal answered: failed, with the reason"

echo "== outcomes not confirmed when the bridge is killed -9 are published by the next one"
# Signals come from a file here: the broker is down while they are answered.
kill "$BR_PID"
wait "$BR_PID" || fail "the bridge did not stop cleanly"
SIGF=$TMP/lost-signals.jsonl
: >"$SIGF"
CONNECTED=$(count "$TMP/bridge.log" 'AMQP connected')
LOST=$(count "$TMP/bridge.log" 'AMQP connection to .* lost')
bridge --signals "$SIGF"
wait_until 30 "the bridge's connection" sh -c "[ \$(grep -c 'AMQP connected' '$TMP/bridge.log') -gt $CONNECTED ]"
"$RMQ" stop --dir "$RDIR" >>"$TMP/rabbitmq.log" 2>&1 || fail "deploy/rabbitmq stop"
wait "$CAP_PID" 2>/dev/null || true
CAP_PID=
wait_until 30 "the bridge to notice the broker is gone" sh -c \
    "[ \$(grep -c 'AMQP connection to .* lost' '$TMP/bridge.log') -gt $LOST ]"
$PY - "$SWARM" "$SIGF" "$TMP/lost.cids" <<'PYEOF'
import json, sys
swarm, path, cids = sys.argv[1], sys.argv[2], sys.argv[3]
with open(path, "a") as out, open(cids, "w") as ids:
    for i in range(20):
        cid = "lost-%d" % i
        ids.write(cid + "\n")
        env = {"timestamp": "2026-12-01T12:00:00.000Z", "version": "1", "kind": "signal",
               "type": "config-update", "origin": "faults-test",
               "scope": {"swarmId": swarm, "role": None, "instance": None},
               "correlationId": cid, "idempotencyKey": "ik-" + cid, "data": {"ratePerSec": 40 + i}}
        out.write(json.dumps({"routingKey": "signal.config-update.%s.ALL.ALL" % swarm,
                              "envelope": env}) + "\n")
PYEOF
journal_outcomes() {
    $PY - "$TMP/journal/faults.jsonl" "$TMP/lost.cids" <<'PYEOF'
import json, sys
want = {l.strip() for l in open(sys.argv[2]) if l.strip()}
seen = set()
for l in open(sys.argv[1]):
    try:
        e = json.loads(l)
    except ValueError:
        continue
    if e.get("event") == "outcome" and e.get("correlationId") in want:
        seen.add(e["correlationId"])
sys.exit(0 if seen == want else 1)
PYEOF
}
wait_until 60 "the 20 outcomes in the controller's journal" journal_outcomes
# The bridge reads the document ring every tick (5 ms): a second is plenty
# for it to have taken all 20 into its outbox, where the broker being down
# keeps them unconfirmed.
sleep 1
kill -9 "$BR_PID"
wait "$BR_PID" 2>/dev/null || true
BR_PID=
"$RMQ" start --dir "$RDIR" >>"$TMP/rabbitmq.log" 2>&1 || fail "restarting the broker"
capture_start "$CAPQ"
bridge --signals "$SIGF"
wait_until 60 "an outcome for each of the 20 signals" all_answered "$TMP/lost.cids"
has "$TMP/bridge.log" 'resuming in the document ring' ||
    fail "the restarted bridge did not say it resumes where its predecessor's confirms stopped"
set -- $(outcomes_per_cid "$TMP/lost.cids")
ok "20 outcomes unconfirmed when the bridge was killed -9 all published by the next bridge ($3 of them twice)"

echo "== clean stop, capture audit"
kill "$BR_PID"
wait "$BR_PID" || fail "ph-bridge exited with $?"
BR_PID=
kill "$CTL_PID" && wait "$CTL_PID" || true
CTL_PID=
sleep 0.5
kill "$CAP_PID" && wait "$CAP_PID" || true
CAP_PID=
if $PY "$ROOT/tests/contract/validate.py" "$CAP" >"$TMP/validate.out" 2>&1; then
    ok "capture audit: $(tail -n 1 "$TMP/validate.out")"
else
    cat "$TMP/validate.out" >&2
    fail "capture audit: violations above"
fi
echo "run time $(($(date +%s) - T0)) s"
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]
