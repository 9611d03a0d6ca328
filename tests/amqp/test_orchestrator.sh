#!/bin/sh
# ph-orchestrator against a real broker and real swarms (issue 8 §3):
#   - two swarms (controllers, bridges, workers); the registry lists both,
#     with their workers from the controllers' status-full, healthy;
#   - GET /api/swarms and /api/swarms/{id} carry the documented fields;
#     /metrics is Prometheus text with swarm="<id>" on every swarm series;
#   - refresh: 202 with the contract's body, a second call within 2 s
#     throttled; start through the API: 202 with a correlationId, then
#     its outcome (Running) at /api/swarms/{id}/outcomes/{cid};
#   - health: a controller stopped (SIGSTOP) turns its swarm degraded, then
#     failed, and healthy again when it continues;
#   - reset with a worker killed: the registry is rebuilt from the fulls,
#     the dead worker shown as dead (or gone), the others listed;
#   - the orchestrator restarted while the swarms run: rebuilt;
#   - 404/400/405 cases, a burst of malformed requests: it keeps serving;
#   - an idle connection with half a request is closed after the connection
#     timeout (--http-timeout-s 2), and one answered and kept alive too;
#   - other sites' requests: a POST without Content-Type: application/json
#     (a form, a text/plain fetch) is refused 415 and sends nothing, a
#     Host that is not a loopback name (DNS rebinding) is refused 403;
#   - swarm-remove through the API: the swarm leaves the registry;
#   - the orchestrator's own status (hive/orchestrator) and every other
#     captured envelope pass tests/contract/validate.py;
#   - with the housekeeping tick at 10 s, a burst of 10000 deliveries is
#     read in well under the time 9 ticks take (the broker's socket is
#     polled again after every read, and frames rabbitmq-c has read already
#     are handled at once, not on the next tick).
# usage: test_orchestrator.sh BIN_DIR   (PH_TEST_KEEP=1 keeps the work folder)
# Ports: PH_TEST_AMQP_PORT (default 31672) and the eight after it, epmd on
# PH_TEST_EPMD_PORT (default 31369), HTTP on PH_TEST_HTTP_PORT (default 31088).
set -eu

BIN=${1:?usage: test_orchestrator.sh BIN_DIR}
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
amqp_test_init orch 31672 31369
HTTP=127.0.0.1:${PH_TEST_HTTP_PORT:-31088}
S1=$SWARM-a
S2=$SWARM-b
PIDS=
ORCH_PID=

cleanup() {
    for p in $PIDS; do kill -CONT "$p" 2>/dev/null || true; done
    for p in $ORCH_PID $PIDS $CAP_PID; do kill "$p" 2>/dev/null || true; done
    for p in $ORCH_PID $PIDS $CAP_PID; do wait "$p" 2>/dev/null || true; done
    "$RMQ" stop --dir "$RDIR" >/dev/null 2>&1 || true
    rm -f "/dev/shm/ph.$S1" "/dev/shm/ph.$S1.bridge" "/dev/shm/ph.$S2" "/dev/shm/ph.$S2.bridge"
    if [ -n "${PH_TEST_KEEP:-}" ]; then echo "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# req METHOD PATH [BODY]: sets ST (status; 000 when nothing answers) and
# writes the body to $TMP/body. A POST says Content-Type: application/json
# (http_req.py).
HDR=
req() {
    if $PY "$HERE/http_req.py" ${HDR:+-H} ${HDR:+"$HDR"} "$1" "http://$HTTP$2" ${3:+"$3"} \
        >"$TMP/resp" 2>>"$TMP/http.log"; then
        ST=$(head -n 1 "$TMP/resp")
        tail -n +2 "$TMP/resp" >"$TMP/body"
    else
        ST=000
        echo '{}' >"$TMP/body"
    fi
}
# req_h 'Name: value' METHOD PATH [BODY]: req with that header added or
# replacing the default ('Content-Type:' sends none)
req_h() {
    HDR=$1
    shift
    req "$@"
    HDR=
}
# js EXPR: evaluates EXPR on the last body (j) in python
js() { $PY -c 'import json,sys; j=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$TMP/body" "$1"; }
swarm_field() { # ID EXPR: EXPR on the swarm object s of GET /api/swarms/ID
    req GET "/api/swarms/$1"
    [ "$ST" = 200 ] || { echo "status $ST"; return; }
    $PY -c 'import json,sys; s=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$TMP/body" "$2"
}
listed() { req GET /api/swarms; [ "$ST" = 200 ] && [ "$(js "len([s for s in j if s['complete'] and len(s['workers']) == $1])")" = "$2" ]; }

swarm_up() { # ID WORKERS
    "$BIN/ph-swarm-controller" --swarm "$1" --journal-dir "$TMP/journal-$1" >"$TMP/ctl-$1.log" 2>&1 &
    PIDS="$PIDS $!"
    eval "CTL_$(echo "$1" | tr -c 'a-zA-Z0-9\n' _)=$!"
    i=1
    while [ "$i" -le "$2" ]; do
        "$BIN/ph-worker" --swarm "$1" --role generator --instance "$1-gen-$i" --heartbeat-ms 500 \
            --config '{"ratePerSec": 10}' >"$TMP/w-$1-$i.log" 2>&1 &
        PIDS="$PIDS $!"
        [ "$i" != 1 ] || FIRST_WORKER=$!
        i=$((i + 1))
    done
    "$BIN/ph-bridge" --swarm "$1" --controller-instance "$1-controller" --sink amqp \
        --amqp-url-file "$URL" >"$TMP/br-$1.log" 2>&1 &
    PIDS="$PIDS $!"
}
orchestrator() { # [OPTION...]
    "$BIN/ph-orchestrator" --http "$HTTP" --amqp-url-file "$URL" --degraded-after-s 2 \
        --failed-after-s 4 --http-timeout-s 2 "$@" >>"$TMP/orch.log" 2>&1 &
    ORCH_PID=$!
}

echo "== private broker, two swarms, the orchestrator"
T0=$(date +%s)
"$RMQ" start --dir "$RDIR" >"$TMP/rabbitmq.log" 2>&1 || fail "deploy/rabbitmq start: $(cat "$TMP/rabbitmq.log")"
capture_start "$CAPQ"
swarm_up "$S1" 3
KILL_ME=$FIRST_WORKER
swarm_up "$S2" 2
orchestrator
listed_both() { req GET /api/swarms; [ "$ST" = 200 ] && [ "$(js "sorted((s['id'], len(s['workers'])) for s in j if s['complete'])")" = "[('$S1', 3), ('$S2', 2)]" ]; }
wait_until 30 "both swarms listed with their workers" listed_both
ok "registry: $S1 with 3 workers, $S2 with 2, from the controllers' fulls"

echo "== the documented fields, /metrics"
req GET "/api/swarms/$S1"
[ "$ST" = 200 ] || fail "GET /api/swarms/$S1: $ST"
for k in id status health workEnabled totals workers tps ioState heartbeatAgeSec roles queues complete; do
    [ "$(js "'$k' in j")" = True ] || fail "GET /api/swarms/$S1 lacks $k"
done
[ "$(js "j['health']")" = healthy ] || fail "health $(js "j['health']")"
[ "$(js "j['workers'][0]['role']")" = generator ] || fail "workers: $(cat "$TMP/body")"
req GET /metrics
[ "$ST" = 200 ] || fail "/metrics: $ST"
grep -q "^ph_swarm_tps{swarm=\"$S1\"} [0-9]" "$TMP/body" || fail "/metrics lacks ph_swarm_tps of $S1"
grep -q "^ph_swarm_workers{swarm=\"$S2\",kind=\"healthy\"} 2$" "$TMP/body" || fail "/metrics lacks the healthy count of $S2"
if grep '^ph_swarm_' "$TMP/body" | grep -vq '{swarm="'; then fail "a swarm series without its swarm label"; fi
ok "the documented fields; /metrics with swarm labels"

echo "== refresh (throttled), start and its outcome"
req POST /api/control-plane/refresh
[ "$ST" = 202 ] || fail "refresh: $ST"
[ "$(js "(j['mode'], j['signalsPublished'], j['throttled'], bool(j['correlationId']), bool(j['idempotencyKey']), bool(j['issuedAt']))")" = "('refresh', 2, False, True, True, True)" ] ||
    fail "refresh body: $(cat "$TMP/body")"
req POST /api/control-plane/refresh
[ "$(js "(j['throttled'], j['signalsPublished'])")" = "(True, 0)" ] || fail "second refresh not throttled: $(cat "$TMP/body")"
req POST "/api/swarms/$S1/start"
[ "$ST" = 202 ] || fail "start: $ST $(cat "$TMP/body")"
CID=$(js "j['correlationId']")
outcome_in() { req GET "/api/swarms/$S1/outcomes/$CID"; [ "$ST" = 200 ]; }
wait_until 15 "the start outcome" outcome_in
[ "$(js "j['data']['status']")" = Running ] || fail "start outcome: $(cat "$TMP/body")"
running() { [ "$(swarm_field "$S1" "(s['status'], s['workEnabled'])")" = "('RUNNING', True)" ]; }
wait_until 10 "$S1 RUNNING in the registry" running
ok "refresh 202 then throttled; start answered Running through the API"

echo "== health from heartbeats"
eval "P=\$CTL_$(echo "$S2" | tr -c 'a-zA-Z0-9\n' _)"
kill -STOP "$P"
health_is() { [ "$(swarm_field "$S2" "s['health']")" = "$1" ]; }
wait_until 15 "$S2 degraded" health_is degraded
wait_until 15 "$S2 failed" health_is failed
kill -CONT "$P"
wait_until 15 "$S2 healthy again" health_is healthy
ok "a stopped controller: degraded, failed, healthy again"

echo "== reset with a worker killed: rebuilt from the fulls"
kill -9 "$KILL_ME"
req POST /api/control-plane/reset
[ "$ST" = 202 ] && [ "$(js "j['mode']")" = reset ] || fail "reset: $ST $(cat "$TMP/body")"
rebuilt() {
    [ "$(swarm_field "$S1" "(len([w for w in s['workers'] if not w.get('dead')]), s['complete'])")" = "(2, True)" ] &&
        [ "$(swarm_field "$S2" "s['complete']")" = True ]
}
wait_until 20 "the registry rebuilt with $S1's two live workers" rebuilt
DEAD=$(swarm_field "$S1" "[w['instance'] for w in s['workers'] if w.get('dead')]")
ok "reset: rebuilt from the fulls; $S1 lists 2 live workers (dead: $DEAD)"

echo "== the orchestrator restarted while the swarms run"
kill "$ORCH_PID"
wait "$ORCH_PID" || fail "the orchestrator did not stop cleanly"
orchestrator
both_back() { [ "$(swarm_field "$S1" "s['complete']")" = True ] && [ "$(swarm_field "$S2" "s['complete']")" = True ]; }
wait_until 20 "the registry rebuilt after the restart" both_back
ok "restarted: both swarms back with their workers"

echo "== errors, and a burst of malformed requests"
req GET /api/nothing
[ "$ST" = 404 ] && [ "$(js "'error' in j")" = True ] || fail "unknown route: $ST"
req GET /api/swarms/bad.id
[ "$ST" = 400 ] || fail "bad swarm id: $ST"
req GET /api/swarms/no-such-swarm
[ "$ST" = 404 ] || fail "unknown swarm: $ST"
req DELETE /api/swarms
[ "$ST" = 405 ] || fail "wrong method: $ST"
req POST "/api/swarms/$S1/stop" '{broken'
[ "$ST" = 400 ] || fail "bad body: $ST"
$PY - "$HTTP" <<'PYEOF' || fail "the burst"
import socket, sys, random
host, port = sys.argv[1].split(":")
random.seed(5)
junk = [b"GET /api/swarms/%ff%00 HTTP/1.1\r\nHost: x\r\n\r\n", b"\x00\x01\x02\r\n\r\n",
        b"POST /api/control-plane/refresh HTTP/1.1\r\nContent-Length: 99999999\r\n\r\nxx",
        b"GET " + b"/a" * 5000 + b" HTTP/1.1\r\n\r\n", b"BREW /metrics HTTP/1.1\r\n\r\n",
        b"GET /api/swarms HTTP/9.9\r\n\r\n", b"GET /../../etc/passwd HTTP/1.1\r\n\r\n"]
for i in range(200):
    s = socket.create_connection((host, int(port)), timeout=2)
    s.settimeout(0.05)
    s.sendall(random.choice(junk))
    try:
        s.recv(4096)
    except OSError:
        pass
    s.close()
PYEOF
req GET /api/swarms
[ "$ST" = 200 ] || fail "after the burst: $ST"
kill -0 "$ORCH_PID" || fail "the orchestrator died"
ok "404/400/405 as JSON; 200 malformed requests later it still serves"

echo "== idle connections: closed after --http-timeout-s"
$PY - "$HTTP" <<'PYEOF' || fail "idle connections"
import socket, sys, time
host, port = sys.argv[1].split(":")
def closed_by_server(s, what):
    # The server's close is a read of 0 bytes (or a reset); 60 s is only a
    # bound on a wait that would otherwise never end.
    s.settimeout(60)
    t0 = time.monotonic()
    got = b""
    try:
        while True:
            d = s.recv(65536)
            if not d:
                break
            got += d
    except ConnectionResetError:
        pass
    except socket.timeout:
        sys.exit(f"{what}: still open after 60 s (--http-timeout-s 2)")
    return time.monotonic() - t0, got
s = socket.create_connection((host, int(port)))
s.sendall(b"GET /api/swarms HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # headers never end
took, got = closed_by_server(s, "half a request")
if took < 1.5:  # load only makes the close later
    sys.exit(f"half a request: closed after {took:.1f} s, before the 2 s timeout")
if b" 200 " in got:
    sys.exit(f"half a request was answered: {got[:80]!r}")
s = socket.create_connection((host, int(port)))
s.sendall(b"GET /api/swarms HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
_, got = closed_by_server(s, "a kept-alive connection")
if not got.startswith(b"HTTP/1.1 200 "):
    sys.exit(f"a kept-alive connection: {got[:80]!r}")
PYEOF
ok "an idle connection (half a request, or answered and kept alive) closed by the 2 s timeout"

echo "== requests other sites can make a browser send"
req_h 'Content-Type: text/plain' POST "/api/swarms/$S1/stop" '{}'
[ "$ST" = 415 ] || fail "a text/plain stop: $ST $(cat "$TMP/body")"
js "j['error']" | grep -q 'Content-Type: application/json' || fail "415 without a clear error: $(cat "$TMP/body")"
req_h 'Content-Type: application/x-www-form-urlencoded' POST "/api/swarms/$S1/stop" 'a=b'
[ "$ST" = 415 ] || fail "a form stop: $ST"
req_h 'Content-Type:' POST "/api/swarms/$S1/stop"
[ "$ST" = 415 ] || fail "a stop without Content-Type: $ST"
req_h 'Content-Type:' POST /api/control-plane/reset
[ "$ST" = 415 ] || fail "a reset without Content-Type: $ST"
both_back || fail "a refused reset wiped the registry"
[ "$(swarm_field "$S1" "s['status']")" = RUNNING ] || fail "$S1 after the refused stops: not RUNNING"
for h in evil.example "evil.example:${HTTP#*:}" 127.0.0.1.evil.example localhost.evil.example; do
    for p in /api/swarms /api/ui-config /metrics /; do
        req_h "Host: $h" GET "$p"
        [ "$ST" = 403 ] || fail "GET $p with Host $h: $ST, not 403"
    done
done
js "j['error']" | grep -q 'Host' || fail "403 without a clear error: $(cat "$TMP/body")"
req_h "Host: evil.example" POST "/api/swarms/$S1/stop"
[ "$ST" = 403 ] || fail "POST with Host evil.example: $ST, not 403"
for h in "localhost:${HTTP#*:}" localhost "127.0.0.1:${HTTP#*:}" "[::1]:${HTTP#*:}"; do
    req_h "Host: $h" GET /api/swarms
    [ "$ST" = 200 ] || fail "GET /api/swarms with Host $h: $ST"
done
ok "a POST without Content-Type: application/json refused 415 (nothing sent); Host evil.example refused 403"

echo "== swarm-remove through the API"
req POST "/api/swarms/$S2/remove"
[ "$ST" = 202 ] || fail "remove: $ST"
gone() { req GET "/api/swarms/$S2"; [ "$ST" = 404 ]; }
wait_until 20 "$S2 to leave the registry" gone
ok "removed: $S2 left the registry"

echo "== clean stop, capture audit"
kill "$ORCH_PID"
wait "$ORCH_PID" || fail "ph-orchestrator exited with $?"
ORCH_PID=
sleep 0.5
kill "$CAP_PID" && wait "$CAP_PID" || true
CAP_PID=
captured 1 "event.metric.status-full.hive.orchestrator." || fail "no orchestrator status-full was captured"
if captured 1 "signal.swarm-stop.$S1."; then fail "a refused stop of $S1 was sent"; fi
if $PY "$ROOT/tests/contract/validate.py" "$CAP" >"$TMP/validate.out" 2>&1; then
    ok "capture audit: $(tail -n 1 "$TMP/validate.out")"
else
    cat "$TMP/validate.out" >&2
    fail "capture audit: violations above"
fi

echo "== a burst of deliveries, the housekeeping tick at 10 s"
# After the audit: the capture queue keeps the burst unread.
orchestrator --tick-ms 10000
s1_back() { [ "$(swarm_field "$S1" "s['complete']")" = True ]; }
wait_until 30 "$S1 back after the restart" s1_back
docs() { req GET /metrics && sed -n 's/^ph_orchestrator_documents_total //p' "$TMP/body"; }
D0=$(docs)
[ -n "$D0" ] || fail "/metrics lacks ph_orchestrator_documents_total"
# 10000 copies of the start outcome under correlation ids of their own. A
# reader paced by the tick takes about 1000 deliveries per tick (one
# service on the tick, one on the poll it arms then), 9 ticks or more
# (90 s) for these; one that reads again at once needs a few seconds.
$PY - "$CAP" "$CID" >"$TMP/burst.in" <<'PYEOF' || fail "no start outcome to copy"
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    e = r.get("envelope")
    if isinstance(e, dict) and e.get("kind") == "outcome" and e.get("correlationId") == sys.argv[2]:
        break
else:
    sys.exit(1)
for i in range(10000):
    e["correlationId"] = "burst-%d" % i
    print(r["routingKey"] + "\t" + json.dumps(e))
PYEOF
"$BIN/ph-test-amqp" pub "$URL" <"$TMP/burst.in" >>"$TMP/pub.log" 2>&1 || fail "publishing the burst failed"
read_all() { n=$(docs); [ "${n:-0}" -ge $((D0 + 10000)) ]; }
# A bound in seconds on the clock (wait_until counts polls, each slower
# than its 0.1 s sleep): half the time 9 ticks take.
T_B=$(date +%s)
T_END=$((T_B + 45))
until read_all; do
    [ "$(date +%s)" -lt "$T_END" ] || fail "the 10000 deliveries not read within 45 s (documents $n, from $D0)"
    sleep 0.2
done
req GET "/api/swarms/$S1/outcomes/burst-9999"
[ "$ST" = 200 ] || fail "the burst's last outcome: $ST"
kill "$ORCH_PID"
wait "$ORCH_PID" || fail "ph-orchestrator exited with $?"
ORCH_PID=
ok "10000 deliveries read in $(($(date +%s) - T_B)) s, without waiting for the 10 s tick"
echo "run time $(($(date +%s) - T0)) s"
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]
