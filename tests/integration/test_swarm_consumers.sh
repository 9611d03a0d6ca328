#!/usr/bin/env bash
# What consumers (orchestrator, UIs) need from a running swarm, with the real
# supervisor (phive up), controller, bridge (file sink, no broker) and workers:
#
#   - default instance ids carry the swarm id (<swarmId>-<role>-<n>), so two
#     swarms started from one swarm file share none; the running workers,
#     procs.json, the segment and the envelopes all use them
#   - a swarm file may name a role's instances ("instances"): used as given
#   - the default pipeline: every worker's status-full reports its
#     work-plane queues (io.work.queues), chained through the roles in file
#     order: ph.work.<swarmId>.<role> is what <role> consumes
#   - swarm-remove ends the swarm: the final REMOVED status-delta and
#     status-full are the last envelopes, controller and bridge exit 0 by
#     themselves, the supervisor releases the swarm (segment and channel
#     removed, `phive status` says removed) and exits 0; every envelope
#     validates against the contract
#
# Usage: tests/integration/test_swarm_consumers.sh [BIN_DIR]; exits 77 (skip)
# without ph-bridge.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN=${1:-${PH_BIN_DIR:-$ROOT/build/bin}}
PH_BIN_DIR=$(cd "$BIN" && pwd)
[[ -x "$PH_BIN_DIR/ph-bridge" ]] || { echo "test_swarm_consumers: no ph-bridge in $PH_BIN_DIR: skipped"; exit 77; }
PH_RUN_DIR=$(mktemp -d /tmp/ph-test-consumers.XXXXXX)
export PH_BIN_DIR PH_RUN_DIR
unset PH_AMQP_URL PH_AMQP_URL_FILE
PY=/usr/bin/python3
SWARM=pht-cons-$$
CTL=$SWARM-controller
RUN=$PH_RUN_DIR/$SWARM
OUT=$RUN/envelopes.jsonl
SWARM_FILE=$PH_RUN_DIR/swarm.json
ITEST_LOGS="$RUN/logs/*.log"
export PH_SINK=file:$OUT
# Explicit ids of the generators; the other roles take the default ones.
GEN_A=pht-cons-$$-gen-a
GEN_B=pht-cons-$$-gen-b

cleanup() {
    set +e
    "$ROOT/deploy/phive" down "$SWARM" >/dev/null 2>&1
    rm -f "/dev/shm/ph.$SWARM" "/dev/shm/ph.$SWARM.bridge"
    rm -rf "$PH_RUN_DIR"
}
trap cleanup EXIT

. "$(dirname "${BASH_SOURCE[0]}")/../lib/itest.sh"

"$PY" - "$SWARM_FILE" "$SWARM" "$GEN_A" "$GEN_B" <<'EOF'
import json, sys
path, swarm, a, b = sys.argv[1:5]
json.dump({"swarmId": swarm,
           "roles": [{"role": "generator", "count": 2, "instances": [a, b],
                      "config": {"ratePerSec": 20}},
                     {"role": "processor", "count": 2, "config": {"ratePerSec": 20}},
                     {"role": "postprocessor", "count": 1, "config": {"ratePerSec": 20}}],
           "autoStart": True}, open(path, "w"))
EOF

# ---- instance ids -----------------------------------------------------------

# The same file under two swarm ids: no default instance id in common.
"$PY" - "$SWARM_FILE" "$PH_RUN_DIR/other.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
d["swarmId"] = "pht-cons-other"
for r in d["roles"]:
    r.pop("instances", None)
json.dump(d, open(sys.argv[2], "w"))
EOF
ids_of() { "$PH_BIN_DIR/ph-supervisor" --check --swarm-file "$1" | sed -n 's/^    //p' | sort; }
mine=$(ids_of "$SWARM_FILE")
other=$(ids_of "$PH_RUN_DIR/other.json")
common=$(comm -12 <(echo "$mine") <(echo "$other"))
if [[ -z "$common" && "$other" == *"pht-cons-other-generator-1"* && "$mine" == *"$SWARM-processor-2"* ]]; then
    pass "default_instance_ids_carry_the_swarm_id_and_differ_across_swarms"
else
    fail "default_instance_ids_carry_the_swarm_id_and_differ_across_swarms" "mine: $mine; other: $other; common: $common"
fi

up_out=$("$ROOT/deploy/phive" up "$SWARM_FILE" 2>&1) || die "phive up" "$up_out"

want="$GEN_A $GEN_B $SWARM-postprocessor-1 $SWARM-processor-1 $SWARM-processor-2"
procs=$("$PY" -c 'import json,sys; print(" ".join(sorted(p["instance"] for p in json.load(open(sys.argv[1])) if p["role"] not in ("swarm-controller", "bridge"))))' "$RUN/procs.json")
segment=$("$PH_BIN_DIR/phctl" shm-dump --swarm "$SWARM" --json | "$PY" -c 'import json,sys; print(" ".join(sorted(w["instance"] for w in json.load(sys.stdin)["workers"] if w["alive"])))')
if [[ "$procs" == "$want" && "$segment" == "$want" && -f "$RUN/logs/$GEN_A.log" &&
    -f "$RUN/logs/$SWARM-processor-2.log" ]]; then
    pass "workers_run_under_the_explicit_and_the_default_instance_ids"
else
    fail "workers_run_under_the_explicit_and_the_default_instance_ids" "want '$want'; procs.json '$procs'; segment '$segment'"
fi

# ---- the pipeline -----------------------------------------------------------

# Each worker's status-full: scope.instance and io.work.queues.
worker_fulls() {
    "$PY" - "$OUT" <<'EOF'
import json, sys
seen = {}
for line in open(sys.argv[1]):
    e = json.loads(line)["envelope"]
    if e["kind"] == "metric" and e["type"] == "status-full" and e["scope"]["role"] != "swarm-controller":
        q = e["data"]["io"].get("work", {}).get("queues", {})
        seen[e["scope"]["instance"]] = "%s<%s>%s" % (e["scope"]["role"], ",".join(q.get("in", [])),
                                                    ",".join(q.get("out", [])))
print(" ".join("%s=%s" % kv for kv in sorted(seen.items())))
EOF
}
all_fulls() { [[ "$(worker_fulls | wc -w)" == 5 ]]; }
wait_until 20 "a status-full of every worker" all_fulls
Q=ph.work.$SWARM
want="$GEN_A=generator<>$Q.processor $GEN_B=generator<>$Q.processor"
want+=" $SWARM-postprocessor-1=postprocessor<$Q.postprocessor>"
want+=" $SWARM-processor-1=processor<$Q.processor>$Q.postprocessor"
want+=" $SWARM-processor-2=processor<$Q.processor>$Q.postprocessor"
got=$(worker_fulls)
if [[ "$got" == "$want" ]]; then
    pass "worker_status_full_reports_the_default_pipeline_queues"
else
    fail "worker_status_full_reports_the_default_pipeline_queues" "want '$want', got '$got'"
fi

# ---- removal ends -------------------------------------------------------------

sup_pid=$(head -n1 "$RUN/supervisor.pid" | tr -dc '0-9')
"$PY" - "$SWARM" "$CTL" >>"$RUN/signals.jsonl" <<'EOF'
import json, sys
swarm, ctl = sys.argv[1:3]
env = {"timestamp": "2026-12-01T12:00:00.000Z", "version": "1", "kind": "signal",
       "type": "swarm-remove", "origin": "test",
       "scope": {"swarmId": swarm, "role": "swarm-controller", "instance": ctl},
       "correlationId": "rm-1", "idempotencyKey": "ik-rm-1", "data": {}}
print(json.dumps({"routingKey": "signal.swarm-remove.%s.swarm-controller.%s" % (swarm, ctl),
                  "envelope": env}))
EOF
supervisor_gone() { ! kill -0 "$sup_pid" 2>/dev/null; }
wait_until 30 "the supervisor to release the removed swarm and exit" supervisor_gone

log=$RUN/logs/supervisor.log
ctl_pid=$("$PY" -c 'import json,sys; print(next(p["pid"] for p in json.load(open(sys.argv[1])) if p["name"] == "controller"))' "$RUN/procs.json")
br_pid=$("$PY" -c 'import json,sys; print(next(p["pid"] for p in json.load(open(sys.argv[1])) if p["name"] == "bridge"))' "$RUN/procs.json")
# The bridge may be reaped first ("exited normally"): it exits once the
# controller stored pid 0 in the channel, a moment before the controller's
# own exit is seen. Either way its status is 0, and nobody signalled it.
if ! has "$log" "the controller pid $ctl_pid exited 0 after ending the swarm (swarm-remove)"; then
    fail "removal_ends_with_controller_and_bridge_exit_0_and_the_swarm_released" "no controller exit 0 in $log"
elif ! { has "$log" "bridge pid $br_pid exited with status 0" ||
    has "$log" "bridge pid $br_pid exited normally"; } || has "$log" "stopping the bridge"; then
    fail "removal_ends_with_controller_and_bridge_exit_0_and_the_swarm_released" "the bridge did not exit 0 by itself: $(tail -n 5 "$log")"
elif ! has "$log" "stopped (exit 0)"; then
    fail "removal_ends_with_controller_and_bridge_exit_0_and_the_swarm_released" "supervisor: $(tail -n 3 "$log")"
elif [[ -e "/dev/shm/ph.$SWARM" || -e "/dev/shm/ph.$SWARM.bridge" ]]; then
    fail "removal_ends_with_controller_and_bridge_exit_0_and_the_swarm_released" "segment or channel left in /dev/shm"
elif [[ -e "$RUN/supervisor.pid" || -e "$RUN/ready" || ! -e "$RUN/removed" ]]; then
    fail "removal_ends_with_controller_and_bridge_exit_0_and_the_swarm_released" "run folder: $(ls "$RUN")"
elif [[ "$("$ROOT/deploy/phive" status 2>&1 | grep "^$SWARM ")" != *" removed "* ]]; then
    fail "removal_ends_with_controller_and_bridge_exit_0_and_the_swarm_released" "phive status: $("$ROOT/deploy/phive" status 2>&1)"
else
    pass "removal_ends_with_controller_and_bridge_exit_0_and_the_swarm_released"
fi

# The last envelopes: the outcome, then the final REMOVED delta and full, and
# nothing of the controller after them.
tail_check=$("$PY" - "$OUT" <<'EOF'
import json, sys
envs = [json.loads(l)["envelope"] for l in open(sys.argv[1]) if l.strip()]
ctl = [e for e in envs if e["scope"]["role"] == "swarm-controller"]
out = [i for i, e in enumerate(ctl) if e["kind"] == "outcome" and e["type"] == "swarm-remove"]
if len(out) != 1 or ctl[out[0]]["data"]["status"] != "Removed":
    print("no single Removed outcome"); sys.exit()
last = ctl[-2:]
kinds = [(e["type"], e["data"]["context"]["swarmStatus"]) for e in last]
if kinds != [("status-delta", "REMOVED"), ("status-full", "REMOVED")]:
    print("the controller's last two envelopes are %s" % kinds); sys.exit()
if last[1]["data"]["context"]["workers"]:
    print("the final full lists workers: %s" % last[1]["data"]["context"]["workers"]); sys.exit()
if len(ctl) - out[0] != 3:
    print("%d controller envelopes after the outcome, expected the final two" % (len(ctl) - out[0] - 1)); sys.exit()
print("ok")
EOF
)
if [[ "$tail_check" == ok ]]; then
    pass "the_final_removed_delta_and_full_are_the_controllers_last_envelopes"
else
    fail "the_final_removed_delta_and_full_are_the_controllers_last_envelopes" "$tail_check"
fi

if v=$("$PY" "$ROOT/tests/contract/validate.py" --signals "$RUN/signals.jsonl" "$OUT" 2>&1); then
    pass "every_envelope_validates_against_the_contract"
else
    fail "every_envelope_validates_against_the_contract" "$(tail -n 8 <<<"$v")"
fi

itest_summary
