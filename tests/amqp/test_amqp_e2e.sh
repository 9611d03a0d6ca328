#!/bin/sh
# ph-bridge on a real RabbitMQ broker, end to end:
#   - a private node (deploy/rabbitmq) on non-default ports in a temp folder;
#   - a capture queue bound to signal.# and event.# on ph.control records
#     every message of the run;
#   - a controller, two workers (two roles) and ph-bridge --sink amqp;
#   - swarm-start, config-update (to a role) and status-request signals are
#     answered (outcomes, a status-full with the request's correlationId);
#   - poison messages of several kinds are each rejected once without
#     requeue (control queue drained, no redelivery), exactly one
#     control.invalid-message alert appears, and the swarm keeps reporting;
#   - the broker restarts under the bridge: it reconnects, re-declares its
#     queue and sends a fresh status-full;
#   - every captured envelope passes tests/contract/validate.py;
#   - ph-loadgen runs in both modes against the same broker and reports
#     every figure.
# usage: test_amqp_e2e.sh BIN_DIR   (PH_TEST_KEEP=1 keeps the work folder)
# Ports: PH_TEST_AMQP_PORT (default 25672) and the eight after it, epmd on
# PH_TEST_EPMD_PORT (default 24369). Exits 77 (skipped) without rabbitmq-server.
set -eu

BIN=${1:?usage: test_amqp_e2e.sh BIN_DIR}
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
amqp_test_init amqp 25672 24369
MAX=4096
CTLQ=ph.control.$SWARM.swarm-controller.$CTL
CAP_PID=
CTL_PID=
W1_PID=
W2_PID=
BR_PID=

cleanup() {
    for p in $BR_PID $W1_PID $W2_PID $CTL_PID $CAP_PID; do kill "$p" 2>/dev/null || true; done
    for p in $BR_PID $W1_PID $W2_PID $CTL_PID $CAP_PID; do wait "$p" 2>/dev/null || true; done
    "$RMQ" stop --dir "$RDIR" >/dev/null 2>&1 || true
    rm -f "/dev/shm/ph.$SWARM" "/dev/shm/ph.$SWARM.bridge"
    if [ -n "${PH_TEST_KEEP:-}" ]; then echo "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT INT TERM


# Signals: "ROUTING_KEY<TAB>BODY" lines for ph-test-amqp pub, and the same
# signals as {routingKey, envelope} lines for validate.py --signals.
signals() { # signals good|bad PREFIX
    $PY - "$1" "$SWARM" "$CTL" "$2" "$MAX" <<'EOF'
import json, sys
what, swarm, ctl, prefix, max_bytes = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
def env(t, role, inst, cid, ikey=None, data=None):
    return {"timestamp": "2026-11-27T02:00:00.000Z", "version": "1", "kind": "signal", "type": t,
            "origin": "ph-amqp-test", "scope": {"swarmId": swarm, "role": role, "instance": inst},
            "correlationId": cid, "idempotencyKey": ikey, "data": data if data is not None else {}}
def rk(t, role, inst):
    return ".".join(["signal", t, swarm, role or "ALL", inst or "ALL"])
ctl_rk = rk("swarm-start", "swarm-controller", ctl)
out = []
if what == "good":
    for t, role, inst, data in [("swarm-start", "swarm-controller", ctl, {}),
                                ("config-update", "generator", None, {"enabled": True}),
                                ("status-request", "swarm-controller", ctl, {})]:
        e = env(t, role, inst, prefix + t, prefix + "ik-" + t, data)
        out.append((rk(t, role, inst), json.dumps(e)))
elif what == "good-json":
    pass
else:
    wrong_kind = env("swarm-start", "swarm-controller", ctl, "bad-kind"); wrong_kind["kind"] = "outcome"
    no_cid = env("swarm-start", "swarm-controller", ctl, None)
    extra = env("swarm-start", "swarm-controller", ctl, "bad-extra"); extra["extra"] = 1
    big = env("swarm-start", "swarm-controller", ctl, "bad-big", data={"pad": "x" * max_bytes})
    out = [
        (ctl_rk, "this is not json {"),
        (ctl_rk, "[1, 2, 3]"),
        (ctl_rk, json.dumps(wrong_kind)),
        (rk("swarm-explode", "swarm-controller", ctl), json.dumps(env("swarm-explode", "swarm-controller", ctl, "bad-type"))),
        (ctl_rk, json.dumps(env("swarm-start", "generator", None, "bad-scope"))),
        (ctl_rk, json.dumps(no_cid)),
        (ctl_rk, json.dumps(extra)),
        (ctl_rk, json.dumps(big)),
    ]
for k, b in out:
    print(k + "\t" + b)
EOF
}

echo "== private broker on 127.0.0.1:$PH_AMQP_PORT"
"$RMQ" start --dir "$RDIR" >"$TMP/rabbitmq.log" 2>&1 || fail "deploy/rabbitmq start: $(cat "$TMP/rabbitmq.log")"
[ -s "$URL" ] || fail "no AMQP URL file"
PASS=$(sed -n 's/^password=//p' "$RDIR/credentials")

"$BIN/ph-test-amqp" capture "$URL" "$CAPQ" "$CAP" >"$TMP/capture.out" 2>"$TMP/capture.log" &
CAP_PID=$!
wait_until 10 "the capture consumer" has "$TMP/capture.out" ready

echo "== controller, two workers, bridge --sink amqp"
"$BIN/ph-swarm-controller" --swarm "$SWARM" --instance "$CTL" --journal-dir "$TMP/journal" \
    >"$TMP/controller.log" 2>&1 &
CTL_PID=$!
"$BIN/ph-worker" --swarm "$SWARM" --role generator --instance gen-1 --heartbeat-ms 500 \
    --config '{"ratePerSec": 20, "enabled": false}' >"$TMP/gen-1.log" 2>&1 &
W1_PID=$!
"$BIN/ph-worker" --swarm "$SWARM" --role processor --instance proc-1 --heartbeat-ms 500 \
    --config '{"ratePerSec": 20, "enabled": false}' >"$TMP/proc-1.log" 2>&1 &
W2_PID=$!
"$BIN/ph-bridge" --swarm "$SWARM" --controller-instance "$CTL" --sink amqp \
    --amqp-url-file "$URL" --max-signal-bytes "$MAX" >"$TMP/bridge.log" 2>&1 &
BR_PID=$!
wait_until 20 "a controller status-full" captured 1 "event.metric.status-full.$SWARM.swarm-controller.$CTL"
wait_until 20 "generator status" captured 1 "event.metric.status-delta.$SWARM.generator.gen-1"
wait_until 20 "processor status" captured 1 "event.metric.status-delta.$SWARM.processor.proc-1"
if grep -q "$PASS" "$TMP/bridge.log"; then fail "the broker password appears in the bridge's log"; fi
sleep 0.5 # the bridge binds the role keys on its next tick

echo "== swarm-start, config-update (role), status-request"
signals good g- >"$TMP/good.tsv"
$PY -c 'import json,sys
for l in open(sys.argv[1]):
    k, b = l.rstrip("\n").split("\t", 1)
    print(json.dumps({"routingKey": k, "envelope": json.loads(b)}))' "$TMP/good.tsv" >"$TMP/good.jsonl"
pub <"$TMP/good.tsv"
wait_until 15 "the swarm-start outcome" captured 1 "event.outcome.swarm-start.$SWARM.swarm-controller.$CTL" '"g-swarm-start"'
wait_until 15 "the config-update outcome" captured 1 '"kind":"outcome"' '"g-config-update"'
wait_until 15 "the status-full answering status-request" captured 1 "event.metric.status-full.$SWARM.swarm-controller" '"g-status-request"'
wait_until 15 "a RUNNING controller status" captured 1 "$SWARM.swarm-controller" '"swarmStatus":"RUNNING"'

echo "== poison: each rejected once, no requeue, one alert"
signals bad x >"$TMP/bad.tsv"
NBAD=$(wc -l <"$TMP/bad.tsv")
DELTAS=$(count "$CAP" "event.metric.status-delta.$SWARM.swarm-controller")
pub <"$TMP/bad.tsv"
wait_until 15 "$NBAD rejections" sh -c "[ \$(grep -c 'rejected signal' '$TMP/bridge.log') -ge $NBAD ]"
sleep 1.5
[ "$(count "$TMP/bridge.log" 'rejected signal')" -eq "$NBAD" ] ||
    fail "expected $NBAD rejections, got $(count "$TMP/bridge.log" 'rejected signal') (redelivered?)"
DEPTH=$("$BIN/ph-test-amqp" depth "$URL" "$CTLQ")
[ "$DEPTH" = "0 1" ] || fail "control queue not drained: ready/consumers = $DEPTH"
[ "$(count "$CAP" '"code":"control.invalid-message"')" -eq 1 ] ||
    fail "expected exactly one control.invalid-message alert, got $(count "$CAP" '"code":"control.invalid-message"')"
if grep -q '"bad-' "$TMP/controller.log"; then fail "a poison message reached the controller"; fi
wait_until 15 "status after the poison" sh -c "[ \$(grep -c 'event.metric.status-delta.$SWARM.swarm-controller' '$CAP') -gt $DELTAS ]"

echo "== broker restart: the bridge reconnects and sends a fresh status-full"
kill "$CAP_PID" && wait "$CAP_PID" || true
CAP_PID=
FULLS=$(count "$CAP" "event.metric.status-full.$SWARM.swarm-controller")
"$RMQ" stop --dir "$RDIR" >>"$TMP/rabbitmq.log" 2>&1
wait_until 15 "the bridge to notice" has "$TMP/bridge.log" 'AMQP connection to .* lost'
sleep 1
"$RMQ" start --dir "$RDIR" >>"$TMP/rabbitmq.log" 2>&1 || fail "restarting the broker"
"$BIN/ph-test-amqp" capture "$URL" "$CAPQ" "$CAP" >"$TMP/capture2.out" 2>>"$TMP/capture.log" &
CAP_PID=$!
wait_until 10 "the capture consumer" has "$TMP/capture2.out" ready
wait_until 45 "the bridge's reconnect" sh -c "[ \$(grep -c 'AMQP connected' '$TMP/bridge.log') -ge 2 ]"
wait_until 15 "a status-full after the reconnect" sh -c "[ \$(grep -c 'event.metric.status-full.$SWARM.swarm-controller' '$CAP') -gt $FULLS ]"
signals good h- >"$TMP/good2.tsv"
$PY -c 'import json,sys
for l in open(sys.argv[1]):
    k, b = l.rstrip("\n").split("\t", 1)
    print(json.dumps({"routingKey": k, "envelope": json.loads(b)}))' "$TMP/good2.tsv" >>"$TMP/good.jsonl"
pub <"$TMP/good2.tsv"
wait_until 15 "the swarm-start outcome after the restart" captured 1 "event.outcome.swarm-start" '"h-swarm-start"'
wait_until 15 "the status-request answer after the restart" captured 1 "status-full" '"h-status-request"'

echo "== clean stop"
kill "$BR_PID"
if wait "$BR_PID"; then :; else fail "ph-bridge exited with $?"; fi
BR_PID=
sleep 0.3
kill "$CAP_PID" && wait "$CAP_PID" || true
CAP_PID=
if grep -q "$PASS" "$TMP/bridge.log"; then fail "the broker password appears in the bridge's log"; fi

echo "== every captured envelope against the contract"
# Poison (raw bodies, correlationIds bad-*, the envelope-less oversize) is
# test input, not something the swarm emitted.
$PY - "$CAP" "$TMP/audit.jsonl" <<'EOF'
import json, sys
out = open(sys.argv[2], "w")
kept = dropped = 0
for l in open(sys.argv[1]):
    d = json.loads(l)
    e = d.get("envelope")
    if not isinstance(e, dict) or str(e.get("correlationId") or "").startswith("bad-") \
            or e.get("correlationId") is None and e.get("kind") == "signal" \
            or e.get("type") == "swarm-explode":
        dropped += 1
        continue
    out.write(json.dumps(d) + "\n")
    kept += 1
print(f"audit: {kept} envelopes, {dropped} poison messages left out")
EOF
$PY "$ROOT/tests/contract/validate.py" "$TMP/audit.jsonl" --signals "$TMP/good.jsonl" \
    --expect-live-workers 2 >"$TMP/validate.out" 2>&1 || fail "validate.py: $(tail -n 30 "$TMP/validate.out")"
tail -n 5 "$TMP/validate.out"

echo "== ph-loadgen, both modes, a small run against this broker"
# Only that the load generator works end to end and reports every figure;
# its numbers are benchmarks (bench/README.md), not judged here.
for mode in shm amqp-per-worker; do
    "$BIN/ph-loadgen" --mode "$mode" --workers 40 --rate 5 --seconds 2 --warmup 1 \
        --amqp-url-file "$URL" --json >"$TMP/lg-$mode.json" 2>"$TMP/lg-$mode.err" ||
        fail "ph-loadgen --mode $mode: $(tail -c 400 "$TMP/lg-$mode.err")"
    $PY - "$TMP/lg-$mode.json" "$mode" >"$TMP/lg-$mode.check" 2>&1 <<'EOF' ||
import json, sys
d = json.load(open(sys.argv[1]))
need = ["mode", "workers", "offered_updates_per_s", "achieved_updates_per_s",
        "cpu_s_per_million_updates", "staleness_p50_ms", "staleness_p99_ms",
        "broker_msgs_per_s", "attach_s"]
missing = [k for k in need if k not in d]
assert not missing, "missing %s" % missing
assert d["error"] is None, d["error"]
assert d["mode"] == sys.argv[2] and d["workers"] == 40, d
assert d["achieved_updates_per_s"] > 0 and d["broker_msgs_per_s"] > 0, d
assert d["staleness_samples"] > 0 and d["cpu_s_per_million_updates"] > 0, d
assert sys.argv[2] != "shm" or d["worker_deltas"] is False, d
# The idle baseline of the same run, and the marginal cost beside the total.
assert d["idle_cpu_cores"] is not None and d["idle_cpu_cores"] >= 0, d
m = d["marginal_cpu_s_per_million_updates"]
assert m is not None and 0 <= m <= d["cpu_s_per_million_updates"], d
EOF
        fail "ph-loadgen --mode $mode --json: $(tail -n 3 "$TMP/lg-$mode.check")"
    ok "ph-loadgen --mode $mode: every figure reported"
done
echo "PASS"
