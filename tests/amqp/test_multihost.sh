#!/bin/sh
# One swarm over several "hosts", on a real RabbitMQ node:
#   - a controller with one local worker (shared memory) and ph-bridge;
#   - ph-relay standing in for another host (its own segment, another name
#     on this machine) with two workers attached to it;
#   - rw-1: ph-worker in the SDK's remote mode (no segment, PH_AMQP_URL_FILE),
#     and ext-1: a "third-party" worker that is only a stream of contract
#     envelopes published by this script;
#   - the controller's status-full lists all five with location and
#     transport (shm / relay / amqp) and counts them in its totals; the
#     controller publishes no per-worker status for the remote ones (they
#     speak for themselves), and the local worker's own status, which comes
#     back on the bridge's remote-worker queue, is not taken for a remote
#     worker;
#   - a config-update addressed to rw-1, and one to a relayed worker, are
#     each answered once, by the controller, after the worker applied it;
#     a malformed signal to rw-1 is rejected without requeue and alerted;
#   - killing rw-1, silencing ext-1 and killing the relay makes their
#     workers stale within the TTL, while the local worker stays healthy;
#   - every captured envelope passes tests/contract/validate.py.
# usage: test_multihost.sh BIN_DIR   (PH_TEST_KEEP=1 keeps the work folder)
# Ports: PH_TEST_AMQP_PORT (default 19672) and the eight after it, epmd on
# PH_TEST_EPMD_PORT (default 19369). Exits 77 (skipped) without rabbitmq-server.
set -eu

BIN=${1:?usage: test_multihost.sh BIN_DIR}
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
amqp_test_init remote 19672 19369
CAP_PID=
CTL_PID=
W1_PID=
RW_PID=
EXT_PID=
BR_PID=
RL_PID=
R1_PID=
R2_PID=
SEGB=$SWARM-hostb

cleanup() {
    ALL="$EXT_PID $RW_PID $R1_PID $R2_PID $RL_PID $BR_PID $W1_PID $CTL_PID $CAP_PID"
    for p in $ALL; do kill "$p" 2>/dev/null || true; done
    for p in $ALL; do wait "$p" 2>/dev/null || true; done
    "$RMQ" stop --dir "$RDIR" >/dev/null 2>&1 || true
    rm -f "/dev/shm/ph.$SWARM" "/dev/shm/ph.$SWARM.bridge" "/dev/shm/ph.$SEGB"
    if [ -n "${PH_TEST_KEEP:-}" ]; then echo "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT INT TERM

# signal TYPE ROLE INSTANCE CID DATA_JSON: one "ROUTING_KEY<TAB>BODY" line,
# also appended to signals.jsonl for validate.py --signals.
signal() {
    $PY - "$SWARM" "$@" "$TMP/signals.jsonl" <<'EOF'
import json, sys
swarm, t, role, inst, cid, data, log = sys.argv[1:8]
e = {"timestamp": "2026-12-01T10:00:00.000Z", "version": "1", "kind": "signal", "type": t,
     "origin": "ph-amqp-test", "scope": {"swarmId": swarm, "role": role, "instance": inst},
     "correlationId": cid, "idempotencyKey": cid, "data": json.loads(data)}
rk = ".".join(["signal", t, swarm, role, inst])
open(log, "a").write(json.dumps({"routingKey": rk, "envelope": e}) + "\n")
print(rk + "\t" + json.dumps(e))
EOF
}

# ext_worker: the third-party worker, a status-full then a delta every
# 0.5 s, printed as publish lines until killed.
ext_worker() {
    $PY -u - "$SWARM" <<'EOF'
import json, sys, time, datetime
swarm = sys.argv[1]
def env(t, data):
    ts = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    e = {"timestamp": ts, "version": "1", "kind": "metric", "type": t, "origin": "ext-1",
         "scope": {"swarmId": swarm, "role": "processor", "instance": "ext-1"},
         "correlationId": None, "idempotencyKey": None, "data": data}
    return "event.metric.%s.%s.processor.ext-1\t%s" % (t, swarm, json.dumps(e))
state = {"enabled": True, "tps": 25, "ioState": {"work": {"input": "ok", "output": "ok"}}}
print(env("status-full", dict(state, config={"ratePerSec": 25}, io={},
                              startedAt="2026-12-01T10:00:00.000Z",
                              context={"location": "host-c"})))
try:
    while True:
        time.sleep(0.5)
        print(env("status-delta", dict(state, context={"location": "host-c"})))
except (BrokenPipeError, KeyboardInterrupt):
    pass
EOF
}

# full_check CID PYTHON_EXPR: the controller's status-full answering CID
# satisfies the expression over `w` (instance -> entry) and `t` (totals).
full_check() {
    $PY - "$CAP" "$SWARM" "$1" "$2" <<'EOF'
import json, sys
cap, swarm, cid, expr = sys.argv[1:5]
full = None
for l in open(cap):
    d = json.loads(l)
    e = d.get("envelope") or {}
    if d["routingKey"].startswith("event.metric.status-full.%s.swarm-controller." % swarm) \
            and e.get("correlationId") == cid:
        full = e
if full is None:
    sys.exit(1)
ctx = full["data"]["context"]
w = {x["instance"]: x for x in ctx["workers"]}
t = ctx["totals"]
ok = eval(" ".join(expr.split()))
if not ok:
    print("status-full %s: workers %s totals %s" % (cid, json.dumps(ctx["workers"]), t), file=sys.stderr)
sys.exit(0 if ok else 1)
EOF
}

request_full() { # CID
    signal status-request swarm-controller "$CTL" "$1" '{}' | pub
}

cat >"$TMP/swarm.json" <<EOF
{"swarmId": "$SWARM",
 "roles": [{"role": "generator", "count": 1, "config": {"ratePerSec": 20}},
           {"role": "processor", "count": 2, "config": {"ratePerSec": 10}},
           {"role": "moderator", "count": 2, "config": {"ratePerSec": 10}}],
 "statusTtlSec": 3, "autoStart": true, "workerDeltas": true, "workerHeartbeatSec": 1}
EOF

echo "== private broker on 127.0.0.1:$PH_AMQP_PORT"
"$RMQ" start --dir "$RDIR" >"$TMP/rabbitmq.log" 2>&1 || fail "deploy/rabbitmq start: $(cat "$TMP/rabbitmq.log")"
capture_start "$CAPQ"

echo "== controller, a local worker, bridge; a relay with rl-1, rl-2; rw-1 (SDK remote mode) and ext-1 (envelopes only)"
"$BIN/ph-swarm-controller" --swarm "$SWARM" --instance "$CTL" --swarm-file "$TMP/swarm.json" \
    --journal-dir "$TMP/journal" >"$TMP/controller.log" 2>&1 &
CTL_PID=$!
"$BIN/ph-worker" --swarm "$SWARM" --role generator --instance gen-1 --heartbeat-ms 500 \
    >"$TMP/gen-1.log" 2>&1 &
W1_PID=$!
"$BIN/ph-bridge" --swarm "$SWARM" --controller-instance "$CTL" --sink amqp \
    --amqp-url-file "$URL" >"$TMP/bridge.log" 2>&1 &
BR_PID=$!
wait_until 20 "the bridge's remote-worker queue" has "$TMP/bridge.log" 'AMQP (remote workers) connected'
"$BIN/ph-relay" --swarm "$SWARM" --segment "$SEGB" --relay-id hostb --location host-r \
    --amqp-url-file "$URL" >"$TMP/relay.log" 2>&1 &
RL_PID=$!
wait_until 10 "the relay's segment" test -e "/dev/shm/ph.$SEGB"
for i in 1 2; do
    "$BIN/ph-worker" --swarm "$SEGB" --role moderator --instance "rl-$i" --heartbeat-ms 500 \
        >"$TMP/rl-$i.log" 2>&1 &
    eval "R${i}_PID=\$!"
done
PH_AMQP_URL_FILE=$URL "$BIN/ph-worker" --swarm "$SWARM" --role processor --instance rw-1 \
    --remote --location host-b --controller "$CTL" --heartbeat-ms 1000 \
    --config '{"ratePerSec": 10}' >"$TMP/rw-1.log" 2>&1 &
RW_PID=$!
ext_worker | "$BIN/ph-test-amqp" pub "$URL" >"$TMP/ext.log" 2>&1 &
EXT_PID=$!
wait_until 20 "rw-1 in the swarm's table" has "$TMP/bridge.log" 'remote worker rw-1 (processor) at host-b joins'
wait_until 20 "ext-1 in the swarm's table" has "$TMP/bridge.log" 'remote worker ext-1 (processor) at host-c joins'
wait_until 20 "rl-2 in the swarm's table" has "$TMP/bridge.log" 'relayed worker rl-2 (moderator) at host-r through relay hostb joins'
sleep 1.5
HOST=$(hostname)
n=0
until request_full "full-1-$n" && sleep 0.7 && full_check "full-1-$n" "
    w['gen-1']['transport'] == 'shm' and w['gen-1']['location'] == '$HOST' and
    w['rw-1']['transport'] == 'amqp' and w['rw-1']['location'] == 'host-b' and
    w['ext-1']['transport'] == 'amqp' and w['ext-1']['location'] == 'host-c' and
    w['rl-1']['transport'] == 'relay' and w['rl-2']['location'] == 'host-r' and
    not any(x['stale'] for x in w.values()) and w['ext-1']['tps'] > 0 and
    w['rl-1']['tps'] > 0 and t['healthy'] == 5 and t['desired'] == 5" 2>/dev/null; do
    n=$((n + 1))
    [ $n -lt 10 ] || fail "the controller's status-full does not list the three workers as expected"
done
ok "status-full lists gen-1 (shm, $HOST), rl-1/rl-2 (relay, host-r), rw-1 (amqp, host-b), ext-1 (amqp, host-c); 5 healthy"

# The controller never speaks for a remote worker; the local worker's own
# status coming back on the remote queue was recognised as local.
$PY - "$CAP" "$SWARM" <<'EOF' || fail "a remote worker's status was published by someone else"
import json, sys
bad = 0
for l in open(sys.argv[1]):
    d = json.loads(l)
    e = d.get("envelope") or {}
    for inst in ("rw-1", "ext-1"):
        if d["routingKey"].startswith("event.metric.status-") and d["routingKey"].endswith("." + inst) \
                and e.get("origin") != inst:
            bad += 1
sys.exit(1 if bad else 0)
EOF
if grep -q 'remote worker gen-1' "$TMP/bridge.log"; then fail "the local worker was taken for a remote one"; fi
captured 1 "event.metric.status-delta.$SWARM.generator.gen-1" || fail "no per-worker status of gen-1 (workerDeltas)"
ok "remote workers speak for themselves; the local worker's echo is left alone"

echo "== config-update addressed to rw-1"
signal config-update processor rw-1 cu-1 '{"ratePerSec": 9}' | pub
wait_until 15 "the controller's outcome for cu-1" captured 1 '"kind":"outcome"' '"correlationId":"cu-1"'
captured 1 '"correlationId":"cu-1"' '"status":"applied"' || fail "cu-1 not applied: $(grep '"cu-1"' "$CAP" | tail -n 2)"
[ "$(grep '"kind":"outcome"' "$CAP" | grep -c '"correlationId":"cu-1"')" -eq 1 ] ||
    fail "cu-1 answered more than once: $(grep '"kind":"outcome"' "$CAP" | grep '"cu-1"')"
captured 1 "signal.config-update.$SWARM.processor.rw-1" "\"origin\":\"$CTL\"" ||
    fail "the controller's command did not reach rw-1 as a signal"
wait_until 10 "rw-1's status-full with the patch" captured 1 \
    "event.metric.status-full.$SWARM.processor.rw-1" '"ratePerSec":9'
fwd() { grep -c "\"routingKey\":\"signal.config-update.$SWARM.processor.rw-1\".*\"origin\":\"$CTL\"" "$CAP" || true; }
F1=$(fwd)
sleep 2
F2=$(fwd)
[ "$F1" = "$F2" ] && [ "$F1" -le 3 ] ||
    fail "the controller's forwarded config-updates to rw-1 keep coming ($F1, then $F2): it takes its own signal in again"
ok "cu-1: forwarded to rw-1 by the controller ($F1 forwarded signal(s) in all), applied, answered once"

echo "== bad input on rw-1's control queue: rejected, one alert"
printf 'signal.config-update.%s.processor.rw-1\tthis is not json {\n' "$SWARM" | pub
wait_until 10 "rw-1's control.invalid-message alert" captured 1 "event.alert.alert.$SWARM.processor.rw-1" \
    '"code":"control.invalid-message"'
DEPTH=$("$BIN/ph-test-amqp" depth "$URL" "ph.control.$SWARM.processor.rw-1")
[ "$DEPTH" = "0 1" ] || fail "rw-1's control queue not drained after the bad message: ready/consumers = $DEPTH"
ok "a malformed signal to rw-1: rejected without requeue, alerted once"

echo "== config-update addressed to rl-1 (through the relay)"
signal config-update moderator rl-1 cu-2 '{"ratePerSec": 8}' | pub
wait_until 15 "the controller's outcome for cu-2" captured 1 '"kind":"outcome"' '"correlationId":"cu-2"'
captured 1 '"correlationId":"cu-2"' '"status":"applied"' || fail "cu-2 not applied: $(grep '"cu-2"' "$CAP" | tail -n 2)"
[ "$(grep '"kind":"outcome"' "$CAP" | grep -c '"correlationId":"cu-2"')" -eq 1 ] || fail "cu-2 answered more than once"
has "$TMP/rl-1.log" 'ratePerSec=8' || fail "rl-1 did not apply the patch: $(tail -n 3 "$TMP/rl-1.log")"
# The relayed worker's status goes out from the controller, like a local one's.
wait_until 10 "rl-1's status-full with the patch" captured 1 \
    "event.metric.status-full.$SWARM.moderator.rl-1" '"ratePerSec":8' "\"origin\":\"rl-1\""
ok "cu-2: through the relay to rl-1, applied, answered once; rl-1's status-full from the controller"

echo "== rw-1 killed, ext-1 silent, the relay killed: stale within the TTL (3 s)"
kill -9 "$RL_PID"
wait "$RL_PID" 2>/dev/null || true
RL_PID=
kill -9 "$RW_PID"
wait "$RW_PID" 2>/dev/null || true
RW_PID=
kill "$EXT_PID" 2>/dev/null || true
wait "$EXT_PID" 2>/dev/null || true
EXT_PID=
pkill -f "ph-test-amqp pub $URL" 2>/dev/null || true
# The TTL is 3 s; a full is asked for every 0.8 s for up to 12 s.
n=0
until request_full "full-2-$n" && sleep 0.8 && full_check "full-2-$n" "
    w['rw-1']['stale'] and w['ext-1']['stale'] and w['rl-1']['stale'] and w['rl-2']['stale'] and
    not w['gen-1']['stale'] and t['healthy'] == 1" 2>/dev/null; do
    n=$((n + 1))
    [ $n -lt 15 ] || fail "rw-1, ext-1, rl-1 and rl-2 not stale 12 s after they went silent"
done
ok "rw-1, ext-1 and the relay's rl-1, rl-2 stale; gen-1 healthy"

echo "== clean stop, then every captured envelope against the contract"
kill "$BR_PID"
if wait "$BR_PID"; then :; else fail "ph-bridge exited with $?"; fi
BR_PID=
sleep 0.3
kill "$CAP_PID" && wait "$CAP_PID" || true
CAP_PID=
# The malformed signal sent on purpose is test input, not the swarm's.
$PY -c 'import json, sys
for l in open(sys.argv[1]):
    if isinstance(json.loads(l).get("envelope"), dict): sys.stdout.write(l)' "$CAP" >"$TMP/audit.jsonl"
$PY "$ROOT/tests/contract/validate.py" "$TMP/audit.jsonl" --signals "$TMP/signals.jsonl" \
    >"$TMP/validate.out" 2>&1 || fail "validate.py: $(tail -n 30 "$TMP/validate.out")"
tail -n 2 "$TMP/validate.out"
ok "the capture passes the contract audit"

echo "$PASSED passed, $FAILED failed"
