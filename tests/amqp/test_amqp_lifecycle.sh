#!/bin/sh
# A swarm's lifecycle driven by `phctl signal` over a real RabbitMQ broker,
# with ph-bridge --sink amqp, and a broker outage in the middle:
#   - swarm-start (Running; every worker enabled in shm-dump);
#   - config-update swarm-wide (--role ALL, ratePerSec) and to one instance
#     (gen-1 disabled; the others stay enabled);
#   - status-request (phctl prints the controller's status-full);
#   - outage: a config-update to a SIGSTOPped worker, the broker stopped,
#     the worker continued (its ack arrives, the outcome goes out while the
#     broker is down) and another worker killed -9 (worker.died alert while
#     the broker is down); after the restart the outcome, the alert and a
#     fresh controller status-full arrive;
#   - swarm-stop (Stopped; every worker disabled), swarm-remove (Removed;
#     workers exit 0);
#   - capture audit: a durable queue bound to signal.# and event.# records
#     the whole run; every captured envelope except the tagged probe the
#     test publishes itself passes tests/contract/validate.py, and every
#     phctl signal got exactly one answer echoing its ids (--signals).
# usage: test_amqp_lifecycle.sh BIN_DIR   (PH_TEST_KEEP=1 keeps the work folder)
# Ports: PH_TEST_AMQP_PORT (default 26672) and the eight after it, epmd on
# PH_TEST_EPMD_PORT (default 26369). Exits 77 (skipped) without rabbitmq-server.
set -eu

BIN=${1:?usage: test_amqp_lifecycle.sh BIN_DIR}
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
amqp_test_init life 26672 26369
WORKERS="generator:gen-1 generator:gen-2 processor:proc-1 processor:proc-2"
CAP_PID=
CTL_PID=
BR_PID=
WPIDS=

cleanup() {
    for p in $WPIDS; do kill -CONT "$p" 2>/dev/null || true; done
    for p in $BR_PID $WPIDS $CTL_PID $CAP_PID; do kill "$p" 2>/dev/null || true; done
    for p in $BR_PID $WPIDS $CTL_PID $CAP_PID; do wait "$p" 2>/dev/null || true; done
    "$RMQ" stop --dir "$RDIR" >/dev/null 2>&1 || true
    rm -f "/dev/shm/ph.$SWARM" "/dev/shm/ph.$SWARM.bridge"
    if [ -n "${PH_TEST_KEEP:-}" ]; then echo "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

phctl() { "$BIN/phctl" "$@"; }
# sig NAME TYPE ARGS...: phctl signal with --json; the envelope goes to
# $TMP/NAME.json, stderr to $TMP/NAME.err; sets RC.
sig() {
    name=$1
    shift
    RC=0
    phctl signal "$@" --swarm "$SWARM" --amqp-url-file "$URL" --json >"$TMP/$name.json" \
        2>"$TMP/$name.err" || RC=$?
}
field() { # field FILE PYEXPR(e)
    $PY -c 'import json,sys; e=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"
}
# shm_enabled: "instance=true|false ..." of the live workers, sorted
shm_enabled() {
    phctl shm-dump --swarm "$SWARM" --json | $PY -c 'import json,sys
d = json.load(sys.stdin)
ws = sorted("%s=%s" % (w["instance"], "true" if w["enabled"] else "false") for w in d["workers"] if w["alive"])
print(" ".join(ws))'
}
# full_workers N: the last controller status-full captured lists N workers
full_workers() {
    $PY - "$CAP" "$SWARM" "$1" <<'EOF'
import json, sys
n = -1
for l in open(sys.argv[1]):
    d = json.loads(l)
    if d["routingKey"].startswith("event.metric.status-full." + sys.argv[2] + ".swarm-controller."):
        n = len(d["envelope"]["data"]["context"].get("workers", []))
sys.exit(0 if n == int(sys.argv[3]) else 1)
EOF
}

echo "== private broker on 127.0.0.1:$PH_AMQP_PORT"
T0=$(date +%s)
"$RMQ" start --dir "$RDIR" >"$TMP/rabbitmq.log" 2>&1 || fail "deploy/rabbitmq start: $(cat "$TMP/rabbitmq.log")"
[ -s "$URL" ] || fail "no AMQP URL file"
PASS=$(sed -n 's/^password=//p' "$RDIR/credentials")
capture_start "$CAPQ"

echo "== phctl signal refuses a dead broker and bad credentials"
sed "s/:$PH_AMQP_PORT\//:$((PH_AMQP_PORT + 9))\//" "$URL" >"$TMP/dead-url"
RC=0
phctl signal status-request --swarm "$SWARM" --amqp-url-file "$TMP/dead-url" --timeout 2 \
    >/dev/null 2>"$TMP/dead.err" || RC=$?
[ "$RC" -ne 0 ] && [ "$RC" -ne 3 ] && has "$TMP/dead.err" "cannot reach the broker" ||
    fail "dead broker: exit $RC, $(cat "$TMP/dead.err")"
DEAD_RC=$RC
sed "s/:$PASS@/:wrong$PASS@/" "$URL" >"$TMP/bad-url"
RC=0
phctl signal status-request --swarm "$SWARM" --amqp-url-file "$TMP/bad-url" --timeout 2 \
    >/dev/null 2>"$TMP/badauth.err" || RC=$?
[ "$RC" -ne 0 ] && [ "$RC" -ne 3 ] && has "$TMP/badauth.err" "refused the login" ||
    fail "bad credentials: exit $RC, $(cat "$TMP/badauth.err")"
if grep -q "$PASS" "$TMP/dead.err" "$TMP/badauth.err"; then fail "phctl printed the password"; fi
ok "unreachable broker (exit $DEAD_RC) and bad credentials (exit $RC) refused clearly"

echo "== controller, four workers, bridge --sink amqp"
"$BIN/ph-swarm-controller" --command-timeout-s 60 --swarm "$SWARM" --instance "$CTL" --journal-dir "$TMP/journal" \
    >"$TMP/controller.log" 2>&1 &
CTL_PID=$!
for w in $WORKERS; do
    role=${w%%:*}
    inst=${w#*:}
    "$BIN/ph-worker" --swarm "$SWARM" --role "$role" --instance "$inst" --heartbeat-ms 500 \
        --config '{"ratePerSec": 20, "enabled": false}' >"$TMP/$inst.log" 2>&1 &
    eval "PID_$(echo "$inst" | tr - _)=$!"
    WPIDS="$WPIDS $!"
done
"$BIN/ph-bridge" --swarm "$SWARM" --controller-instance "$CTL" --sink amqp \
    --amqp-url-file "$URL" >"$TMP/bridge.log" 2>&1 &
BR_PID=$!
wait_until 20 "a controller status-full" captured 1 "event.metric.status-full.$SWARM.swarm-controller.$CTL"
# The bridge binds every live worker's keys from this list.
wait_until 20 "four live workers in the controller's status-full" full_workers 4
sleep 0.5 # the bridge binds the worker keys on its next tick
ok "swarm up: controller status-full with four workers"

echo "== swarm-start"
sig start swarm-start
[ "$RC" = 0 ] || fail "swarm-start: exit $RC: $(cat "$TMP/start.err")"
[ "$(field "$TMP/start.json" 'e["data"]["status"]')" = Running ] || fail "swarm-start: $(cat "$TMP/start.json")"
[ "$(shm_enabled)" = "gen-1=true gen-2=true proc-1=true proc-2=true" ] || fail "after swarm-start: $(shm_enabled)"
ok "swarm-start: Running, every worker enabled"

echo "== config-update swarm-wide"
sig cfgall config-update --role ALL --data '{"ratePerSec": 50}'
[ "$RC" = 0 ] || fail "config-update swarm-wide: exit $RC: $(cat "$TMP/cfgall.err") $(cat "$TMP/cfgall.json")"
[ "$(field "$TMP/cfgall.json" 'e["data"]["status"]')" = applied ] || fail "config-update swarm-wide: $(cat "$TMP/cfgall.json")"
ok "config-update swarm-wide: applied"

echo "== config-update to gen-1"
sig cfg1 config-update --role generator --instance gen-1 --data '{"enabled": false}'
[ "$RC" = 0 ] || fail "config-update gen-1: exit $RC: $(cat "$TMP/cfg1.err")"
[ "$(field "$TMP/cfg1.json" 'e["data"]["status"], e["data"].get("enabled"), e["scope"]["instance"]')" = "('applied', False, 'gen-1')" ] ||
    fail "config-update gen-1: $(cat "$TMP/cfg1.json")"
[ "$(shm_enabled)" = "gen-1=false gen-2=true proc-1=true proc-2=true" ] || fail "after config-update gen-1: $(shm_enabled)"
ok "config-update to gen-1: applied, enabled false; only gen-1 disabled"

echo "== status-request"
RC=0
phctl signal status-request --swarm "$SWARM" --amqp-url-file "$URL" >"$TMP/status.txt" 2>"$TMP/status.err" || RC=$?
[ "$RC" = 0 ] || fail "status-request: exit $RC: $(cat "$TMP/status.err")"
grep -q "^status-full RUNNING .*workers=4 scope=$SWARM.swarm-controller.$CTL correlationId=" "$TMP/status.txt" ||
    fail "status-request printed: $(cat "$TMP/status.txt")"
ok "status-request: $(cat "$TMP/status.txt")"

echo "== outage: outcome and alert produced while the broker is down"
FULLS=$(count "$CAP" "event.metric.status-full.$SWARM.swarm-controller")
kill -STOP "$PID_proc_1"
STOPPED_AT=$(date +%s)
sig outage config-update --role processor --instance proc-1 --data '{"ratePerSec": 30}' --timeout 1
[ "$RC" = 3 ] || fail "config-update to a stopped worker: expected exit 3 (timeout), got $RC: $(cat "$TMP/outage.err")"
OCID=$(sed -n 's/.*no outcome for correlationId \([0-9a-f-]*\) within 1 s.*/\1/p' "$TMP/outage.err")
[ -n "$OCID" ] || fail "no correlationId in: $(cat "$TMP/outage.err")"
"$RMQ" stop --dir "$RDIR" >>"$TMP/rabbitmq.log" 2>&1 &
RSTOP=$!
wait_until 15 "the bridge to notice" has "$TMP/bridge.log" 'AMQP connection to .* lost'
STOP_S=$(($(date +%s) - STOPPED_AT))
kill -CONT "$PID_proc_1"
kill -9 "$PID_proc_2"
wait "$PID_proc_2" 2>/dev/null || true
WPIDS=$(echo "$WPIDS" | sed "s/ $PID_proc_2\b//")
wait "$RSTOP" || fail "deploy/rabbitmq stop"
wait "$CAP_PID" 2>/dev/null || true
CAP_PID=
wait_until 10 "the outcome in the journal (emitted during the outage)" sh -c \
    "'$BIN/phctl' journal --swarm '$SWARM' --json | grep '\"outcome\"' | grep -q '$OCID'"
wait_until 10 "the worker.died alert in the journal" sh -c \
    "'$BIN/phctl' journal --swarm '$SWARM' --json | grep -q 'worker.died'"
has "$TMP/bridge.log" 'AMQP connected' && [ "$(count "$TMP/bridge.log" 'AMQP connected')" -eq 1 ] ||
    fail "the bridge reconnected before the broker was started again?"
ok "outcome $OCID and worker.died produced while the broker was down (worker stopped ${STOP_S}s)"
"$RMQ" start --dir "$RDIR" >>"$TMP/rabbitmq.log" 2>&1 || fail "restarting the broker"
capture_start "$CAPQ"
wait_until 45 "the bridge's reconnect" sh -c "[ \$(grep -c 'AMQP connected' '$TMP/bridge.log') -ge 2 ]"
wait_until 15 "the outage outcome after the reconnect" captured 1 '"kind":"outcome"' "\"$OCID\""
O_STATUS=$($PY -c 'import json,sys
for l in open(sys.argv[1]):
    d=json.loads(l); e=d.get("envelope") or {}
    if e.get("kind")=="outcome" and e.get("correlationId")==sys.argv[2]: print(e["data"]["status"]); break' "$CAP" "$OCID")
[ "$O_STATUS" = applied ] || fail "outage outcome status $O_STATUS"
wait_until 15 "the worker.died alert after the reconnect" captured 1 "event.alert.alert.$SWARM.processor.proc-2" '"worker.died"'
wait_until 15 "a fresh controller status-full after the reconnect" sh -c \
    "[ \$(grep -c 'event.metric.status-full.$SWARM.swarm-controller' '$CAP') -gt $FULLS ]"
ok "after the reconnect: outcome (applied), worker.died alert and a fresh status-full arrived"

echo "== audit probe: a tagged malformed message the audit must flag"
printf 'signal.status-request.%s.swarm-controller.%s\t{"probe":"ph-test-audit-probe"}\n' "$SWARM" "$CTL" |
    "$BIN/ph-test-amqp" pub "$URL" >>"$TMP/pub.log" 2>&1 || fail "publishing the probe"

echo "== swarm-stop"
sig stop swarm-stop
[ "$RC" = 0 ] || fail "swarm-stop: exit $RC: $(cat "$TMP/stop.err")"
[ "$(field "$TMP/stop.json" 'e["data"]["status"]')" = Stopped ] || fail "swarm-stop: $(cat "$TMP/stop.json")"
[ "$(shm_enabled)" = "gen-1=false gen-2=false proc-1=false" ] || fail "after swarm-stop: $(shm_enabled)"
ok "swarm-stop: Stopped, every worker disabled"

echo "== swarm-remove"
sig remove swarm-remove
[ "$RC" = 0 ] || fail "swarm-remove: exit $RC: $(cat "$TMP/remove.err")"
[ "$(field "$TMP/remove.json" 'e["data"]["status"]')" = Removed ] || fail "swarm-remove: $(cat "$TMP/remove.json")"
for p in $WPIDS; do
    wait_until 10 "worker $p to exit" sh -c "! kill -0 $p 2>/dev/null"
    if wait "$p"; then :; else fail "worker $p exited with $?"; fi
done
WPIDS=
ok "swarm-remove: Removed, the workers exited 0"

echo "== the removed swarm ends: controller and bridge exit 0 by themselves"
for p in $CTL_PID $BR_PID; do
    wait_until 30 "process $p to exit after the removal" sh -c "! kill -0 $p 2>/dev/null"
    if wait "$p"; then :; else fail "process $p exited with $? after the removal"; fi
done
CTL_PID=
BR_PID=
ok "after swarm-remove the controller and the bridge exited 0"

echo "== capture audit"
sleep 0.5
kill "$CAP_PID" && wait "$CAP_PID" || true
CAP_PID=
if grep -q "$PASS" "$TMP"/*.log "$TMP"/*.err "$TMP"/*.json 2>/dev/null; then fail "the broker password appears in a log"; fi
# The probe is the only message the test published itself; every other
# captured message was emitted by phctl, the bridge or the controller.
if ! $PY - "$CAP" "$TMP/audit.jsonl" "$TMP/signals.jsonl" "$TMP/all.jsonl" <<'EOF'
import json, sys
cap, audit, sigs, everything = sys.argv[1:5]
kept = probes = nsig = 0
with open(audit, "w") as a, open(sigs, "w") as s, open(everything, "w") as al:
    for l in open(cap):
        d = json.loads(l)
        e = d.get("envelope")
        al.write(json.dumps({"routingKey": d["routingKey"], "envelope": e if e is not None else d.get("raw")}) + "\n")
        if isinstance(e, dict) and e.get("probe") == "ph-test-audit-probe":
            probes += 1
            continue
        a.write(l)
        kept += 1
        if isinstance(e, dict) and e.get("kind") == "signal" and str(e.get("origin", "")).startswith("phctl-"):
            s.write(l)
            nsig += 1
print(f"audit: {kept} captured envelopes, {nsig} phctl signals, {probes} probe(s) left out")
sys.exit(0 if probes == 1 and nsig >= 7 else 1)
EOF
then fail "capture: expected one probe and at least 7 phctl signals"; fi
if $PY "$ROOT/tests/contract/validate.py" -q "$TMP/all.jsonl" >"$TMP/probe.out" 2>&1; then
    fail "validate.py accepted the capture including the malformed probe: the audit does not bite"
fi
ok "the audit flags the tagged probe"
if $PY "$ROOT/tests/contract/validate.py" "$TMP/audit.jsonl" --signals "$TMP/signals.jsonl" \
    >"$TMP/validate.out" 2>&1; then
    ok "capture audit: $(tail -n 1 "$TMP/validate.out")"
else
    cat "$TMP/validate.out" >&2
    fail "capture audit: violations above"
fi
echo "run time $(($(date +%s) - T0)) s"
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]
