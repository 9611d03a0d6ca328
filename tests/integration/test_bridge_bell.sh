#!/usr/bin/env bash
# The bridge's bell (ph/channel.h): an idle bridge sleeps instead of polling
# the channel, and the controller wakes it when it writes a document. Real
# controller, worker and bridge (file sink, no signal input), the bridge's
# idle tick set to a minute so that only the bell can wake it in time:
#   - with nothing to publish, the bridge sleeps (bridge_asleep 1 in the
#     channel header, its bell token published, the controller ringing);
#   - a worker that joins meanwhile is published within seconds: the
#     controller rang;
#   - asleep, it wakes a few times a second at most, not every 5 ms;
#   - the bridge goes back to sleep;
#   - a controller stopped and started again, then one killed (SIGKILL) and
#     started again: the sleeping bridge moves to each new channel at once
#     (the stopping controller, and the new one, ring the old channel's
#     bridge) and publishes the new controller's status-full;
#   - every envelope is valid.
# usage: test_bridge_bell.sh [BIN_DIR]
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN=${1:-${PH_BIN_DIR:-$ROOT/build/bin}}
PY=/usr/bin/python3
SWARM=pht-bell-$$
TMP=$(mktemp -d /tmp/ph-test-bell.XXXXXX)
ITEST_LOGS="$TMP/*.log"
OUT=$TMP/envelopes.jsonl
CHAN=/dev/shm/ph.$SWARM.bridge
pids=()

. "$(dirname "${BASH_SOURCE[0]}")/../lib/itest.sh"
trap itest_swarm_cleanup EXIT

# A field of the channel header (offsets pinned by include/ph/channel.h's
# static assertions): bell (u32 at 168), bridge_asleep (u32 at 272),
# bell_token (u64 at 280).
field() {
    "$PY" - "$CHAN" "$1" <<'PYEOF'
import struct, sys
at = {"bell": (168, "<I"), "bridge_asleep": (272, "<I"), "bell_token": (280, "<Q")}
off, fmt = at[sys.argv[2]]
with open(sys.argv[1], "rb") as f:
    head = f.read(512)
print(struct.unpack_from(fmt, head, off)[0])
PYEOF
}
asleep() { [ "$(field bridge_asleep 2>/dev/null)" = 1 ]; }
wakes() { awk '/^voluntary_ctxt_switches/ {print $2}' "/proc/$1/status"; }
fulls() { count "$OUT" "event.metric.status-full.$SWARM.swarm-controller"; }
more_fulls_than() { [ "$(fulls)" -gt "$1" ]; }
controller() {
    "$BIN/ph-swarm-controller" --swarm "$SWARM" --journal-dir "$TMP/journal" >>"$TMP/controller.log" 2>&1 &
    CTL=$!
    pids+=("$CTL")
}

controller
wait_until 10 "the channel" test -e "$CHAN"
"$BIN/ph-bridge" --swarm "$SWARM" --sink "file:$OUT" --idle-tick-ms 60000 >"$TMP/bridge.log" 2>&1 &
BR=$!
pids+=("$BR")
wait_until 15 "the controller's status-full" has "$OUT" "event.metric.status-full.$SWARM.swarm-controller"

wait_until 15 "the idle bridge asleep on its bell" asleep
[ "$(field bell)" = 1 ] || die "the controller does not say it rings"
[ "$(field bell_token)" != 0 ] || die "the bridge published no bell token"
pass "the idle bridge sleeps on its bell (token published, controller ringing)"

# Asleep with a minute's idle tick: woken only by the controller's rare
# documents. On its short tick (5 ms) it would wake about 400 times in 2 s.
w0=$(wakes "$BR")
sleep 2
w1=$(wakes "$BR")
[ $((w1 - w0)) -lt 60 ] || die "the sleeping bridge woke $((w1 - w0)) times in 2 s"
pass "asleep, the bridge woke $((w1 - w0)) times in 2 s"

# The bridge sleeps; only the bell can wake it before a minute is up.
"$BIN/ph-worker" --swarm "$SWARM" --role generator --instance gen-1 --heartbeat-ms 5000 \
    --config '{"ratePerSec": 0, "enabled": false}' >"$TMP/worker.log" 2>&1 &
pids+=($!)
wait_until 10 "the joining worker published by the sleeping bridge" \
    has "$OUT" "event.metric.status-full.$SWARM.generator.gen-1"
pass "a worker joining while the bridge slept is published at once: the controller rang"

wait_until 15 "the bridge asleep again" asleep
kill -0 "$BR" 2>/dev/null || die "the bridge exited"
pass "the bridge goes back to sleep"

# A new controller, after a clean stop and after a kill: the bridge, asleep
# for up to a minute, must publish the new one's status-full within seconds.
for how in TERM KILL; do
    n=$(fulls)
    kill -s "$how" "$CTL"
    wait "$CTL" 2>/dev/null || true
    controller
    wait_until 10 "the status-full of the controller started after SIG$how" more_fulls_than "$n"
    pass "after SIG$how and a new controller, the sleeping bridge moved to the new channel at once"
    wait_until 15 "the bridge asleep on the new channel" asleep
done
kill -0 "$BR" 2>/dev/null || die "the bridge exited"

itest_all_valid "$OUT"
itest_summary
