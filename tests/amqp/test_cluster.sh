#!/bin/sh
# A private RabbitMQ cluster (deploy/phive cluster) and broker failover:
#   - `phive cluster up --nodes 3` starts three nodes on this machine; each
#     lists the others as running members, and DIR/amqp-urls (0600) holds
#     one URL per node. Three nodes, not two: a quorum queue needs a
#     majority of its nodes, so on two it stops while either is down;
#   - a controller, a worker and ph-bridge --amqp-url-file DIR/amqp-urls:
#     the bridge declares its control queue as a quorum queue (several
#     brokers) on node1, the first of the list;
#   - a relay (its own segment, one worker) and a remote worker (the SDK's
#     remote mode) on node2 (their URL lists start with it);
#   - node2, the node the controller is not attached to, is stopped: the
#     relay and the remote worker move to another node, their workers stay
#     healthy in the controller's status-full, and config-updates sent to
#     each after the failover are answered (no outcome lost);
#   - node2 comes back; node1 is stopped: the bridge moves to node2 (the
#     next URL), status keeps coming (new controller status-deltas) and a
#     signal sent after the failover (swarm-stop) is answered (its outcome
#     captured), as the one sent before it (swarm-start);
#   - `phive cluster down` leaves no node and no epmd running.
# The capture consumer and the publisher use node3's URL: they must
# survive the other nodes' loss themselves.
# usage: test_cluster.sh BIN_DIR   (PH_TEST_KEEP=1 keeps the work folder)
# Ports: PH_TEST_AMQP_PORT (default 18672) and the eight after it for node1,
# + 10 and + 20 for node2 and node3; epmd on PH_TEST_EPMD_PORT (default
# 18369). Exits 77 (skipped) without rabbitmq-server or curl.
set -eu

BIN=${1:?usage: test_cluster.sh BIN_DIR}
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
amqp_test_init cluster 18672 18369
command -v curl >/dev/null 2>&1 || {
    echo "SKIP: curl is not installed"
    exit 77
}
PHIVE=$ROOT/deploy/phive
CDIR=$TMP/cluster
URLS=$CDIR/amqp-urls
URL=$CDIR/node3/amqp-url # capture and publish on the node that survives
CTLQ=ph.control.$SWARM.swarm-controller.$CTL
CAP_PID=
CTL_PID=
W_PID=
BR_PID=
RL_PID=
RW_PID=
R1_PID=
SEGB=$SWARM-hb

cleanup() {
    ALL="$RW_PID $R1_PID $RL_PID $BR_PID $W_PID $CTL_PID $CAP_PID"
    for p in $ALL; do kill "$p" 2>/dev/null || true; done
    for p in $ALL; do wait "$p" 2>/dev/null || true; done
    "$PHIVE" cluster down --dir "$CDIR" >/dev/null 2>&1 || true
    rm -f "/dev/shm/ph.$SWARM" "/dev/shm/ph.$SWARM.bridge" "/dev/shm/ph.$SEGB"
    if [ -n "${PH_TEST_KEEP:-}" ]; then echo "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT INT TERM

# mgmt NODE PATH: GET from NODE's management API (the password on stdin).
mgmt() {
    port=$(sed -n 's/^MGMT_PORT=//p' "$CDIR/$1/node.env")
    pass=$(sed -n 's/^password=//p' "$CDIR/$1/credentials")
    printf 'user = "ph:%s"\n' "$pass" | curl -s -f -m 10 -K - "http://127.0.0.1:$port/api/$2"
}

# signal TYPE CID [ROLE INSTANCE DATA]: a signal (answered with an
# outcome), to the controller unless a worker is named.
signal() {
    $PY - "$SWARM" "$CTL" "$1" "$2" "${3:-swarm-controller}" "${4:-$CTL}" "${5:-{\}}" <<'PYEOF' | "$BIN/ph-test-amqp" pub "$URL" >>"$TMP/pub.log" 2>&1
import json, sys
swarm, ctl, t, cid, role, inst, data = sys.argv[1:8]
e = {"timestamp": "2026-11-27T02:00:00.000Z", "version": "1", "kind": "signal",
     "type": t, "origin": "ph-amqp-test",
     "scope": {"swarmId": swarm, "role": role, "instance": inst},
     "correlationId": cid, "idempotencyKey": "ik-" + cid, "data": json.loads(data)}
print("signal.%s.%s.%s.%s\t%s" % (t, swarm, role, inst, json.dumps(e)))
PYEOF
}

# full_lists CID INSTANCE...: the controller's status-full answering CID
# lists every INSTANCE, none stale.
full_lists() {
    $PY - "$CAP" "$SWARM" "$@" <<'PYEOF'
import json, sys
cap, swarm, cid, want = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
for l in open(cap):
    d = json.loads(l)
    e = d.get("envelope") or {}
    if d["routingKey"].startswith("event.metric.status-full.%s.swarm-controller." % swarm) \
            and e.get("correlationId") == cid:
        w = {x["instance"]: x for x in e["data"]["context"]["workers"]}
        sys.exit(0 if all(i in w and not w[i]["stale"] for i in want) else 1)
sys.exit(1)
PYEOF
}

deltas() { count "$CAP" "event.metric.status-delta.$SWARM.swarm-controller.$CTL"; }

echo "== phive cluster up --nodes 3 (127.0.0.1:$PH_AMQP_PORT, +10, +20)"
T0=$(date +%s)
"$PHIVE" cluster up --dir "$CDIR" --nodes 3 >"$TMP/cluster.log" 2>&1 ||
    fail "phive cluster up: $(cat "$TMP/cluster.log")"
echo "   up in $(($(date +%s) - T0)) s"
[ "$(stat -c %a "$URLS")" = 600 ] || fail "amqp-urls is not mode 0600"
[ "$(grep -c '^amqp://' "$URLS")" = 3 ] || fail "amqp-urls does not list three URLs"
PASS=$(sed -n 's/^password=//p' "$CDIR/node1/credentials")
if grep -q "$PASS" "$TMP/cluster.log"; then fail "the password appears in phive's output"; fi
"$PHIVE" cluster status --dir "$CDIR" >"$TMP/status.out" 2>&1 || fail "phive cluster status failed"
if grep -q "$PASS" "$TMP/status.out"; then fail "the password appears in cluster status"; fi
for i in 1 2 3; do
    name=$("$RMQ" node --dir "$CDIR/node$i")
    members=$(mgmt "node$i" nodes | $PY -c 'import json,sys; print(" ".join(n["name"] for n in json.load(sys.stdin) if n.get("running")))') ||
        fail "node$i's management API does not answer"
    for j in 1 2 3; do
        other=$("$RMQ" node --dir "$CDIR/node$j")
        case " $members " in *" $other "*) ;; *) fail "node$i ($name) does not list node$j as a running member" ;; esac
    done
done
ok "three nodes, each a running member for all three; amqp-urls 0600 with three URLs"

"$BIN/ph-test-amqp" capture "$URL" "$CAPQ" "$CAP" >"$TMP/capture.out" 2>"$TMP/capture.log" &
CAP_PID=$!
wait_until 20 "the capture consumer" has "$TMP/capture.out" ready

echo "== controller, worker, bridge --amqp-url-file amqp-urls"
"$BIN/ph-swarm-controller" --swarm "$SWARM" --instance "$CTL" --journal-dir "$TMP/journal" \
    >"$TMP/controller.log" 2>&1 &
CTL_PID=$!
"$BIN/ph-worker" --swarm "$SWARM" --role generator --instance gen-1 --heartbeat-ms 500 \
    --config '{"ratePerSec": 20, "enabled": false}' >"$TMP/gen-1.log" 2>&1 &
W_PID=$!
"$BIN/ph-bridge" --swarm "$SWARM" --controller-instance "$CTL" --sink amqp \
    --amqp-url-file "$URLS" >"$TMP/bridge.log" 2>&1 &
BR_PID=$!
wait_until 30 "a controller status-full" captured 1 "event.metric.status-full.$SWARM.swarm-controller.$CTL"
wait_until 20 "a controller status-delta" captured 1 "event.metric.status-delta.$SWARM.swarm-controller.$CTL"
has "$TMP/bridge.log" "127.0.0.1:$PH_AMQP_PORT vhost" || fail "the bridge does not say it is on node1"
if grep -q "$PASS" "$TMP/bridge.log"; then fail "the broker password appears in the bridge's log"; fi
TYPE=$(mgmt node2 "queues/%2f/$CTLQ" | $PY -c 'import json,sys; print(json.load(sys.stdin).get("type"))') ||
    fail "the control queue $CTLQ is not there"
[ "$TYPE" = quorum ] || fail "the control queue is a $TYPE queue, not a quorum queue"
ok "the bridge is on node1; its control queue is a quorum queue"

signal swarm-start before-failover
wait_until 20 "the outcome of the signal sent before the failover" captured 1 '"kind":"outcome"' '"before-failover"'
ok "a signal before the failover is answered"

echo "== a relay and a remote worker on node2"
# Their URL lists start with node2: node2, node3, node1.
grep '^amqp://' "$URLS" >"$TMP/urls-all"
{ sed -n 2p "$TMP/urls-all"; sed -n 3p "$TMP/urls-all"; sed -n 1p "$TMP/urls-all"; } >"$TMP/urls-node2"
rm -f "$TMP/urls-all"
chmod 600 "$TMP/urls-node2"
"$BIN/ph-relay" --swarm "$SWARM" --segment "$SEGB" --relay-id hb --location host-b \
    --amqp-url-file "$TMP/urls-node2" >"$TMP/relay.log" 2>&1 &
RL_PID=$!
wait_until 10 "the relay's segment" test -e "/dev/shm/ph.$SEGB"
"$BIN/ph-worker" --swarm "$SEGB" --role moderator --instance rl-1 --heartbeat-ms 500 \
    --local >"$TMP/rl-1.log" 2>&1 &
R1_PID=$!
PH_AMQP_URL_FILE=$TMP/urls-node2 "$BIN/ph-worker" --swarm "$SWARM" --role processor \
    --instance rw-1 --remote --location host-c --controller "$CTL" --heartbeat-ms 1000 \
    >"$TMP/rw-1.log" 2>&1 &
RW_PID=$!
N2=$((PH_AMQP_PORT + 10))
wait_until 30 "the relay on node2" has "$TMP/relay.log" "connected to ph@127.0.0.1:$N2 vhost"
wait_until 30 "the remote worker on node2" has "$TMP/rw-1.log" "connected to ph@127.0.0.1:$N2 vhost"
wait_until 30 "rl-1 in the swarm's table" has "$TMP/bridge.log" 'relayed worker rl-1'
wait_until 30 "rw-1 in the swarm's table" has "$TMP/bridge.log" 'remote worker rw-1'
ok "the relay and the remote worker are on node2, their workers in the controller's table"

echo "== node2 (not the controller's) stops"
"$RMQ" stop --dir "$CDIR/node2" >>"$TMP/cluster.log" 2>&1 || fail "stopping node2"
wait_until 30 "the relay on another node" sh -c "[ \$(grep -c 'connected to ph@' '$TMP/relay.log') -ge 2 ]"
wait_until 30 "the remote worker on another node" sh -c "[ \$(grep -c 'connected to ph@' '$TMP/rw-1.log') -ge 2 ]"
if grep -q "lost" "$TMP/bridge.log"; then fail "the bridge lost a connection although node1 still runs"; fi
n=0
until signal status-request "full-a-$n" && sleep 1 && full_lists "full-a-$n" gen-1 rl-1 rw-1; do
    n=$((n + 1))
    [ $n -lt 15 ] || fail "the controller's status-full does not list gen-1, rl-1 and rw-1 healthy after node2 stopped"
done
signal config-update cu-rl moderator rl-1 '{"ratePerSec": 7}'
signal config-update cu-rw processor rw-1 '{"ratePerSec": 6}'
wait_until 30 "the outcome for the relayed worker" captured 1 '"kind":"outcome"' '"cu-rl"' '"status":"applied"'
wait_until 30 "the outcome for the remote worker" captured 1 '"kind":"outcome"' '"cu-rw"' '"status":"applied"'
ok "node2 stopped: the relay and the remote worker failed over, their workers stay healthy, config-updates to each are answered"
for p in $RW_PID $R1_PID $RL_PID; do kill "$p" 2>/dev/null || true; done
for p in $RW_PID $R1_PID $RL_PID; do wait "$p" 2>/dev/null || true; done
RW_PID= R1_PID= RL_PID=

echo "== node2 back"
PH_AMQP_PORT=$((PH_AMQP_PORT + 10)) PH_MGMT_PORT=$((PH_MGMT_PORT + 10)) \
    PH_STOMP_PORT=$((PH_STOMP_PORT + 10)) PH_DIST_PORT=$((PH_DIST_PORT + 10)) \
    PH_CTL_DIST_PORT=$((PH_CTL_DIST_PORT + 10)) \
    "$RMQ" start --dir "$CDIR/node2" --join "$CDIR/node1" >>"$TMP/cluster.log" 2>&1 ||
    fail "restarting node2: $(tail -n 5 "$TMP/cluster.log")"

echo "== node1 stops"
"$RMQ" stop --dir "$CDIR/node1" >>"$TMP/cluster.log" 2>&1 || fail "stopping node1"
N0=$(deltas)
wait_until 30 "the bridge on node2" has "$TMP/bridge.log" "connected to ph@127.0.0.1:$((PH_AMQP_PORT + 10)) vhost"
has "$TMP/bridge.log" "broker 2 of 3" || fail "the bridge does not say which broker of the list it is on"
wait_until 30 "new controller status-deltas after the failover" sh -c "[ \$(grep -c 'event.metric.status-delta.$SWARM.swarm-controller.$CTL' '$CAP') -ge $((N0 + 2)) ]"
ok "the bridge failed over to node2 and status continues ($N0 deltas before, more after)"

signal swarm-stop after-failover
wait_until 30 "the outcome of the signal sent after the failover" captured 1 '"kind":"outcome"' '"after-failover"'
ok "a signal after the failover is answered"
if grep -q "$PASS" "$TMP/bridge.log"; then fail "the broker password appears in the bridge's log"; fi

echo "== clean stop, phive cluster down"
for p in $BR_PID $W_PID $CTL_PID $CAP_PID; do kill "$p" 2>/dev/null || true; done
for p in $BR_PID $W_PID $CTL_PID $CAP_PID; do wait "$p" 2>/dev/null || true; done
BR_PID= W_PID= CTL_PID= CAP_PID=
"$PHIVE" cluster down --dir "$CDIR" >>"$TMP/cluster.log" 2>&1 || fail "phive cluster down failed"
for i in 1 2 3; do
    if pgrep -f -- "-home $CDIR/node$i " >/dev/null 2>&1; then fail "node$i still runs after cluster down"; fi
done
if epmd -port "$PH_EPMD_PORT" -names >/dev/null 2>&1; then fail "an epmd still answers on $PH_EPMD_PORT"; fi
ok "cluster down: no node, no epmd left"

echo "$PASSED passed, $FAILED failed"
