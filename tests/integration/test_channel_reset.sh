#!/usr/bin/env bash
# Item 15 of the defects issue: a corrupt position in the controller-bridge
# channel must not silence the swarm. Real controller, worker and bridge
# (file sink, signal file):
#   - the out ring's tail is moved to an unaligned spot: the bridge asks for
#     a new channel, the controller re-creates it and raises
#     control.channel-reset, and status flows again;
#   - the in ring's head is set beyond anything written: the bridge asks
#     again, and a signal sent afterwards is answered;
#   - the out ring's head is set beyond anything written: the controller,
#     unable to write, finds it out and re-creates the channel;
#   - both processes keep running; every envelope passes validate.py.
# usage: test_channel_reset.sh [BIN_DIR]
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN=${1:-${PH_BIN_DIR:-$ROOT/build/bin}}
PY=/usr/bin/python3
SWARM=pht-chreset-$$
CTL=$SWARM-controller
TMP=$(mktemp -d /tmp/ph-test-chreset.XXXXXX)
ITEST_LOGS="$TMP/*.log"
OUT=$TMP/envelopes.jsonl
SIG=$TMP/signals.jsonl
pids=()

. "$(dirname "${BASH_SOURCE[0]}")/../lib/itest.sh"
trap itest_swarm_cleanup EXIT
more_than() { [ "$(count "$1" "$2")" -gt "$3" ]; }
signal() { # TYPE CID
    "$PY" - "$SWARM" "$CTL" "$1" "$2" >>"$SIG" <<'PYEOF'
import json, sys
swarm, ctl, t, cid = sys.argv[1:5]
env = {"timestamp": "2026-12-01T12:00:00.000Z", "version": "1", "kind": "signal", "type": t,
       "origin": "test", "scope": {"swarmId": swarm, "role": "swarm-controller", "instance": ctl},
       "correlationId": cid, "idempotencyKey": None, "data": {}}
print(json.dumps({"routingKey": "signal.%s.%s.swarm-controller.%s" % (t, swarm, ctl), "envelope": env}))
PYEOF
}

: >"$SIG"
"$BIN/ph-swarm-controller" --swarm "$SWARM" --journal-dir "$TMP/journal" >"$TMP/controller.log" 2>&1 &
pids+=($!)
CTL_PID=$!
"$BIN/ph-worker" --swarm "$SWARM" --role generator --instance gen-1 --heartbeat-ms 200 \
    --config '{"ratePerSec": 50, "enabled": true}' >"$TMP/worker.log" 2>&1 &
pids+=($!)
"$BIN/ph-bridge" --swarm "$SWARM" --controller-instance "$CTL" --sink "file:$OUT" --signals "$SIG" \
    >"$TMP/bridge.log" 2>&1 &
pids+=($!)
BR_PID=$!
wait_until 15 "the controller's status-full" has "$OUT" "event.metric.status-full.$SWARM.swarm-controller"
wait_until 15 "a worker status-full" has "$OUT" "event.metric.status-full.$SWARM.generator.gen-1"
pass "swarm up"

echo "== the out ring's tail moved to an unaligned spot"
"$BIN/ph-test-shm" chan-out-tail "$SWARM" 13
wait_until 10 "the bridge to ask for a new channel" has "$TMP/bridge.log" "asking the controller to re-create"
wait_until 10 "the controller to re-create the channel" has "$TMP/controller.log" "re-creating it"
wait_until 10 "the control.channel-reset alert" has "$OUT" '"code":"control.channel-reset"'
FULLS=$(count "$OUT" "event.metric.status-full.$SWARM.swarm-controller")
DELTAS=$(count "$OUT" "event.metric.status-delta.$SWARM.swarm-controller")
signal status-request after-out-reset
wait_until 10 "the answer to a status-request after the reset" has "$OUT" '"correlationId":"after-out-reset"'
wait_until 15 "status-deltas flowing again" more_than "$OUT" "event.metric.status-delta.$SWARM.swarm-controller" "$DELTAS"
pass "out ring corrupted: channel re-created, alert raised, status and answers flow again"

echo "== the in ring's head set beyond anything written"
"$BIN/ph-test-shm" chan-in-head "$SWARM" 0x10000000000
signal status-request after-in-reset
wait_until 10 "the bridge to ask for a new channel" sh -c "[ \$(grep -c 'asking the controller to re-create' '$TMP/bridge.log') -ge 2 ]"
wait_until 10 "the answer to a signal sent after the corruption" has "$OUT" '"correlationId":"after-in-reset"'
[ "$(count "$TMP/controller.log" "re-creating it")" -ge 2 ] || die "the controller did not re-create the channel twice"
pass "in ring corrupted: channel re-created, the waiting signal answered"

echo "== the document ring's consumer position set beyond anything written"
RESETS=$(count "$TMP/controller.log" "re-creating it")
"$BIN/ph-test-shm" chan-out-head "$SWARM" 0x10000000000
signal status-request after-out-head
wait_until 15 "the controller to re-create the channel" more_than "$TMP/controller.log" "re-creating it" "$RESETS"
wait_until 10 "the answer to a signal sent after the corruption" has "$OUT" '"correlationId":"after-out-head"'
DELTAS=$(count "$OUT" "event.metric.status-delta.$SWARM.swarm-controller")
wait_until 15 "status-deltas flowing again" more_than "$OUT" "event.metric.status-delta.$SWARM.swarm-controller" "$DELTAS"
pass "document ring head corrupted: channel re-created, status and answers flow again"

kill -0 "$CTL_PID" && kill -0 "$BR_PID" || die "the controller or the bridge died"
pass "controller and bridge still running"
itest_all_valid "$OUT"
itest_summary
