#!/usr/bin/env bash
# Item 6 of the defects issue: a worker restarted by the supervisor resumes
# the swarm's state. `phive up` (file sink, no broker) on a swarm whose
# workers start disabled; swarm-start, then a config-update for one role;
# the processor is killed with SIGKILL; the supervisor restarts it from its
# swarm-file config (disabled, the file's rate), and the controller brings
# it back: enabled, with the patch in force, shown by shm-dump and by the
# worker's status-full; the journal records the resync.
# usage: test_worker_resume.sh [BIN_DIR]
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN=${1:-${PH_BIN_DIR:-$ROOT/build/bin}}
PH_BIN_DIR=$(cd "$BIN" && pwd)
PH_RUN_DIR=$(mktemp -d /tmp/ph-test-resume.XXXXXX)
export PH_BIN_DIR PH_RUN_DIR
unset PH_AMQP_URL PH_AMQP_URL_FILE
PY=/usr/bin/python3
SWARM=pht-resume-$$
CTL=$SWARM-controller
RUN=$PH_RUN_DIR/$SWARM
OUT=$RUN/envelopes.jsonl
ITEST_LOGS="$RUN/logs/*.log"
export PH_SINK=file:$OUT

cleanup() {
    set +e
    "$ROOT/deploy/phive" down "$SWARM" >/dev/null 2>&1
    rm -f "/dev/shm/ph.$SWARM" "/dev/shm/ph.$SWARM.bridge"
    rm -rf "$PH_RUN_DIR"
}
trap cleanup EXIT

. "$(dirname "${BASH_SOURCE[0]}")/../lib/itest.sh"
signal() { # TYPE ROLE INSTANCE CID DATA
    "$PY" - "$SWARM" "$@" >>"$RUN/signals.jsonl" <<'PYEOF'
import json, sys
swarm, t, role, inst, cid, data = sys.argv[1:7]
env = {"timestamp": "2026-12-01T12:00:00.000Z", "version": "1", "kind": "signal", "type": t,
       "origin": "test", "scope": {"swarmId": swarm, "role": role or None, "instance": inst or None},
       "correlationId": cid, "idempotencyKey": "ik-" + cid, "data": json.loads(data)}
rk = "signal.%s.%s.%s.%s" % (t, swarm, role or "ALL", inst or "ALL")
print(json.dumps({"routingKey": rk, "envelope": env}))
PYEOF
}
outcome_status() { # CID
    "$PY" - "$OUT" "$1" <<'PYEOF'
import json, sys
for l in open(sys.argv[1]):
    e = json.loads(l)["envelope"]
    if e["kind"] == "outcome" and e["correlationId"] == sys.argv[2]:
        print(e["data"]["status"])
PYEOF
}
answered() { [ -n "$(outcome_status "$1")" ]; }
# worker ROLE: "pid enabled" of the live worker of ROLE in shm-dump
worker() {
    "$BIN/phctl" shm-dump --swarm "$SWARM" --json | "$PY" -c 'import json,sys
d = json.load(sys.stdin)
for w in d["workers"]:
    if w["role"] == sys.argv[1] and w["alive"]: print(w["pid"], str(w["enabled"]).lower())' "$1"
}
# last_full_rate INSTANCE_PREFIX: ratePerSec in the worker's last status-full
last_full_rate() {
    "$PY" - "$OUT" "$SWARM" <<'PYEOF'
import json, sys
r = None
for l in open(sys.argv[1]):
    d = json.loads(l)
    if d["routingKey"].startswith("event.metric.status-full.%s.processor." % sys.argv[2]):
        r = d["envelope"]["data"]["config"].get("ratePerSec"), d["envelope"]["data"]["enabled"]
print(r)
PYEOF
}

cat >"$PH_RUN_DIR/resume.json" <<EOF2
{"swarmId": "$SWARM",
 "roles": [{"role": "generator", "count": 1, "config": {"enabled": false, "ratePerSec": 20}},
           {"role": "processor", "count": 1, "config": {"enabled": false, "ratePerSec": 20}}]}
EOF2
"$ROOT/deploy/phive" up "$PH_RUN_DIR/resume.json" >"$PH_RUN_DIR/up.log" 2>&1 || {
    cat "$PH_RUN_DIR/up.log" >&2
    die "phive up"
}
wait_until 20 "the controller's status-full" has "$OUT" "event.metric.status-full.$SWARM.swarm-controller"
processor_up() { [ -n "$(worker processor 2>/dev/null)" ]; }
wait_until 20 "the processor in the segment" processor_up
pass "swarm up, workers disabled"

signal swarm-start swarm-controller "$CTL" start-1 '{}'
wait_until 20 "the swarm-start outcome" answered start-1
[ "$(outcome_status start-1)" = Running ] || die "swarm-start: $(outcome_status start-1)"
signal config-update processor "" rate-1 '{"ratePerSec": 33}'
wait_until 20 "the config-update outcome" answered rate-1
[ "$(outcome_status rate-1)" = applied ] || die "config-update: $(outcome_status rate-1)"
read -r OLD_PID OLD_EN <<<"$(worker processor)"
[ "$OLD_EN" = true ] || die "the processor is not enabled after swarm-start"
pass "swarm started; processor patched to ratePerSec 33"

kill -KILL "$OLD_PID"
new_worker() { read -r NEW_PID NEW_EN <<<"$(worker processor)"; [ -n "${NEW_PID:-}" ] && [ "$NEW_PID" != "$OLD_PID" ]; }
wait_until 20 "the supervisor to restart the processor" new_worker
new_enabled() { [ "$(worker processor)" = "$NEW_PID true" ]; }
wait_until 10 "the restarted processor to be enabled" new_enabled
pass "restarted processor (pid $NEW_PID) is enabled again"
patched_full() { [ "$(last_full_rate)" = "(33, True)" ]; }
wait_until 10 "its status-full with the patch in force" patched_full
pass "its status-full shows ratePerSec 33, enabled"
"$BIN/phctl" journal --swarm "$SWARM" --json | grep '"event":"resync"' | grep -q '"processor"' ||
    die "the journal has no resync entry for the processor"
pass "the journal records the resync"
itest_summary
