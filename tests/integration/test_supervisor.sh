#!/usr/bin/env bash
# Integration test of deploy/phive and ph-supervisor with the real
# controller, workers and phctl:
#
#   - ph-supervisor refuses bad swarm files with a message naming the problem
#     (the supervisor's keys and the controller's: autoStart, runId...)
#   - `phive up` starts every worker of the swarm file, each alive in the
#     segment with its role and the pid the supervisor started, and says
#     where the envelopes and the journal go
#   - the controller runs as instance <swarmId>-controller; the bridge runs
#     (when ph-bridge is built; otherwise the supervisor runs without it
#     and says so)
#   - a worker killed with SIGKILL is restarted (new pid, alive) within 10 s
#   - a controller killed with SIGKILL is restarted and the workers keep
#     running under the same pids; so is a killed bridge
#   - a worker that exits with status 0 (ph-worker does on SIGTERM, as on
#     the stop command of swarm-remove) is not restarted
#   - `phive down` leaves no process of the run, neither /dev/shm/ph.<id>
#     nor /dev/shm/ph.<id>.bridge, and the run's journal recorded the
#     controller's start
#   - with PH_SINK unset (sink amqp) and PH_AMQP_URL pointing at a port where
#     no broker listens, `phive up` starts no private node, the bridge keeps
#     running, logs its reconnect attempts with backoff and does not spin;
#     the password appears in no log, argv or run.json
#
# Usage: tests/integration/test_supervisor.sh [BIN_DIR]
#   BIN_DIR (or $PH_BIN_DIR): where ph-supervisor, ph-swarm-controller,
#   ph-worker, phctl and (optionally) ph-bridge are; default
#   <checkout>/build/bin.
#   PH_SINK is file:<run folder>/envelopes.jsonl for the test: no broker is
#   needed (phive's default is amqp; the AMQP path is tested elsewhere).
#
# The swarm is deploy/swarms/test-small.json under a swarm id unique to this
# run (pht-small-<pid>): segments are machine-wide, and two test runs (or a
# developer's own t-small) must not see each other's.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN=${1:-${PH_BIN_DIR:-$ROOT/build/bin}}
[[ -d "$BIN" ]] || { echo "test_supervisor: no bin dir $BIN (build first)" >&2; exit 1; }
PH_BIN_DIR=$(cd "$BIN" && pwd)
PH_RUN_DIR=$(mktemp -d /tmp/ph-test-supervisor.XXXXXX)
export PH_BIN_DIR PH_RUN_DIR
unset PH_AMQP_URL PH_AMQP_URL_FILE
PHIVE=$ROOT/deploy/phive
PHCTL=$PH_BIN_DIR/phctl
SUP=$PH_BIN_DIR/ph-supervisor
PY=/usr/bin/python3
SWARM=pht-small-$$
RUN=$PH_RUN_DIR/$SWARM
export PH_SINK=file:$RUN/envelopes.jsonl
SWARM_FILE=$PH_RUN_DIR/test-small.json
TIMEOUT_S=10
HAVE_BRIDGE=0
[[ -x "$PH_BIN_DIR/ph-bridge" ]] && HAVE_BRIDGE=1

passed=0
failed=0
all_pids=() # every pid the supervisor reported, for the final check

for b in ph-supervisor ph-swarm-controller ph-worker phctl; do
    [[ -x "$PH_BIN_DIR/$b" ]] || { echo "test_supervisor: $PH_BIN_DIR/$b is missing" >&2; exit 1; }
done

pass() {
    echo "PASS: $1"
    passed=$((passed + 1))
}

skip() {
    echo "SKIP: $1: $2"
}

fail() {
    echo "FAIL: $1: $2" >&2
    failed=$((failed + 1))
}

# On any exit: stop what this test started, whatever state it is in.
cleanup() {
    local rc=$? pid
    set +e
    pid=$(head -n1 "$RUN/supervisor.pid" 2>/dev/null | tr -dc '0-9')
    if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid"
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null
    fi
    # Only processes of this run: their command line names our unique swarm
    # id (a recycled pid may belong to someone else's swarm by now).
    for pid in "${all_pids[@]}" $(procs_pids 2>/dev/null); do
        tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -qw -- "$SWARM" && kill -KILL "$pid" 2>/dev/null
    done
    rm -f "/dev/shm/ph.$SWARM" "/dev/shm/ph.$SWARM.bridge"
    if ((failed > 0 || rc != 0)) && [[ -d "$RUN/logs" ]]; then
        for f in "$RUN"/logs/*.log; do
            echo "----- $f (last 15 lines)" >&2
            tail -n 15 "$f" >&2
        done
    fi
    rm -rf "$PH_RUN_DIR"
}
trap cleanup EXIT

# Pids listed in procs.json.
procs_pids() {
    "$PY" -c 'import json,sys; print(" ".join(str(p["pid"]) for p in json.load(open(sys.argv[1])) if p.get("pid")))' \
        "$RUN/procs.json"
}

# Pid of process NAME in procs.json.
proc_pid() {
    proc_field "$1" pid
}

# Field FIELD of process NAME in procs.json.
proc_field() {
    "$PY" -c 'import json,sys; print(next(p[sys.argv[3]] for p in json.load(open(sys.argv[1])) if p["name"] == sys.argv[2]))' \
        "$RUN/procs.json" "$1" "$2"
}

# (name, pid) of every worker of procs.json that runs, sorted.
running_workers() {
    "$PY" -c 'import json,sys; print(sorted((p["name"], p["pid"]) for p in json.load(open(sys.argv[1])) if p["role"] not in ("swarm-controller", "bridge") and p["state"] == "running"))' \
        "$RUN/procs.json"
}

# Checks the segment against procs.json: every worker of procs.json (but
# those stopped on purpose) is in `phctl shm-dump --json`, alive, with its
# role and current pid. With a
# second argument, the controller pid in the header must be that. Prints
# what is wrong and fails, or prints nothing and succeeds.
check_segment() {
    local dump
    dump=$("$PHCTL" shm-dump --swarm "$SWARM" --json 2>&1) || { echo "phctl: $dump"; return 1; }
    "$PY" - "$RUN/procs.json" "${1:-}" 3<<<"$dump" <<'EOF'
import json, os, sys
procs = json.load(open(sys.argv[1]))
want_controller = sys.argv[2]
try:
    dump = json.load(os.fdopen(3))
except ValueError as e:
    print(f"phctl --json output is not JSON: {e}")
    sys.exit(1)
problems = []
for key in ("header", "workers"):
    if key not in dump:
        problems.append(f"no '{key}' key in the dump")
if problems:
    print("; ".join(problems)); sys.exit(1)
header = dump["header"]
for key in ("layoutVersion", "generation", "controllerPid", "controllerHeartbeatAgeMs",
            "slotCapacity", "slotsUsed"):
    if key not in header:
        problems.append(f"header lacks '{key}'")
if want_controller and str(header.get("controllerPid")) != want_controller:
    problems.append(f"header.controllerPid is {header.get('controllerPid')}, expected {want_controller}")
rows = {w.get("instance"): w for w in dump["workers"]}
for p in procs:
    if p["role"] in ("swarm-controller", "bridge") or p.get("state") == "stopped":
        continue
    w = rows.get(p["instance"])
    if w is None:
        problems.append(f"{p['instance']} is not in the segment")
        continue
    if w.get("role") != p["role"]:
        problems.append(f"{p['instance']} has role {w.get('role')!r}, expected {p['role']!r}")
    if w.get("alive") is not True:
        problems.append(f"{p['instance']} is not alive (alive={w.get('alive')!r})")
    if w.get("pid") != p["pid"]:
        problems.append(f"{p['instance']} has pid {w.get('pid')} in the segment, the supervisor started {p['pid']}")
if problems:
    print("; ".join(problems)); sys.exit(1)
EOF
}

# Retries check_segment for up to TIMEOUT_S; the last problem goes to $why.
wait_segment() {
    local deadline=$((SECONDS + TIMEOUT_S))
    why=""
    while true; do
        if why=$(check_segment "$@"); then return 0; fi
        ((SECONDS < deadline)) || return 1
        sleep 0.2
    done
}

# Waits until procs.json shows NAME running with a pid other than OLD.
wait_restarted() {
    local name=$1 old=$2 deadline=$((SECONDS + TIMEOUT_S)) pid state
    while ((SECONDS < deadline)); do
        pid=$(proc_pid "$name" 2>/dev/null || true)
        state=$(proc_field "$name" state 2>/dev/null || true)
        if [[ -n "$pid" && "$pid" != "$old" && "$state" == running ]]; then
            echo "$pid"
            return 0
        fi
        sleep 0.2
    done
    return 1
}

remember_pids() {
    local p
    for p in $(procs_pids); do all_pids+=("$p"); done
}

# ---- bad swarm files --------------------------------------------------------

# expect_rejected NAME JSON FRAGMENT: ph-supervisor exits non-zero and its
# message contains FRAGMENT; nothing is started.
expect_rejected() {
    local name=$1 json=$2 fragment=$3 f=$PH_RUN_DIR/bad-$1.json out rc=0
    printf '%s\n' "$json" >"$f"
    out=$("$SUP" --swarm-file "$f" --run-dir "$PH_RUN_DIR/bad-run" 2>&1) || rc=$?
    if ((rc == 0)); then
        fail "supervisor_rejects_$name" "exit status 0 for $json"
    elif [[ "$out" != *"$fragment"* ]]; then
        fail "supervisor_rejects_$name" "message lacks '$fragment': $out"
    elif [[ -e "$PH_RUN_DIR/bad-run/supervisor.pid" ]]; then
        fail "supervisor_rejects_$name" "left a supervisor.pid behind"
    else
        pass "supervisor_rejects_$name"
    fi
}

expect_rejected missing_swarm_id '{"roles": [{"role": "generator", "count": 1}]}' "swarmId: missing"
expect_rejected role_with_dot '{"swarmId": "bad", "roles": [{"role": "a.b", "count": 1}]}' \
    "roles[0].role: role 'a.b' contains '.'"
expect_rejected negative_count '{"swarmId": "bad", "roles": [{"role": "g", "count": -1}]}' \
    "roles[0].count: must be between 0"
expect_rejected invalid_json '{"swarmId": "bad", "roles": [' "invalid JSON"
expect_rejected auto_start_not_bool '{"swarmId": "bad", "roles": [{"role": "g", "count": 1}], "autoStart": "yes"}' \
    "autoStart: must be true or false, not a string"
expect_rejected run_id_with_dot '{"swarmId": "bad", "roles": [{"role": "g", "count": 1}], "runId": "r.1"}' \
    "runId: run id 'r.1' contains '.'"
expect_rejected negative_coalesce '{"swarmId": "bad", "roles": [{"role": "g", "count": 1}], "deltaCoalesceMs": -1}' \
    "deltaCoalesceMs: must be an integer number of milliseconds"
expect_rejected worker_deltas_not_bool '{"swarmId": "bad", "roles": [{"role": "g", "count": 1}], "workerDeltas": 1}' \
    "workerDeltas: must be true or false, not an integer"
expect_rejected negative_dead_grace '{"swarmId": "bad", "roles": [{"role": "g", "count": 1}], "deadGraceSec": -5}' \
    "deadGraceSec: must be a number of seconds in [0, 86400] (got -5)"

expect_rejected worker_heartbeat_zero '{"swarmId": "bad", "roles": [{"role": "g", "count": 1}], "workerHeartbeatSec": 0}' \
    "workerHeartbeatSec: must be a number of seconds in (0, 3600] (got 0)"
expect_rejected instances_fewer_than_count '{"swarmId": "bad", "roles": [{"role": "g", "count": 2, "instances": ["g-a"]}]}' \
    "roles[0].instances: lists 1 instance id(s) but count is 2"
expect_rejected instance_with_dot '{"swarmId": "bad", "roles": [{"role": "g", "count": 1, "instances": ["g.a"]}]}' \
    "roles[0].instances[0]: instance id 'g.a' contains '.'"
expect_rejected instance_used_twice '{"swarmId": "bad", "roles": [{"role": "g", "count": 1, "instances": ["w-1"]}, {"role": "p", "count": 1, "instances": ["w-1"]}]}' \
    "instance id 'w-1' is used twice"
expect_rejected instance_named_like_the_controller '{"swarmId": "bad", "roles": [{"role": "g", "count": 1, "instances": ["bad-controller"]}]}' \
    "instance id 'bad-controller' is the controller's"
expect_rejected default_instance_too_long "{\"swarmId\": \"$(printf 's%.0s' {1..60})\", \"roles\": [{\"role\": \"generator\", \"count\": 1}]}" \
    "name the instances with \"instances\""
expect_rejected queue_not_a_string '{"swarmId": "bad", "roles": [{"role": "g", "count": 1, "config": {"inQueue": 5}}]}' \
    "roles[0].config.inQueue: must be a non-empty queue name, not an integer"

# Placement: "local", "remote" or "relay" (anything else is refused, naming
# the role and the allowed values); "location" only with remote or relay; one
# location for all relay roles.
expect_rejected unknown_placement '{"swarmId": "bad", "roles": [{"role": "g", "count": 1, "placement": "cloud"}]}' \
    "roles[0].placement: role 'g': unknown placement 'cloud' (allowed: local, remote, relay)"
expect_rejected placement_not_a_string '{"swarmId": "bad", "roles": [{"role": "g", "count": 1, "placement": true}]}' \
    "roles[0].placement: role 'g': placement must be a string (local, remote or relay), not a boolean"
expect_rejected location_of_a_local_role '{"swarmId": "bad", "roles": [{"role": "g", "count": 1, "location": "host-a"}]}' \
    "roles[0].location: role 'g': location applies to placement remote or relay only"
expect_rejected location_with_a_space '{"swarmId": "bad", "roles": [{"role": "g", "count": 1, "placement": "remote", "location": "host a"}]}' \
    "roles[0].location: role 'g': location must be a host name"
expect_rejected two_relay_locations '{"swarmId": "bad", "roles": [{"role": "g", "count": 1, "placement": "relay", "location": "a"}, {"role": "p", "count": 1, "placement": "relay", "location": "b"}]}' \
    "roles[1].location: role 'p': location 'b' differs from 'a' of role 'g'"
# Valid placements pass --check, which shows them; without a broker (this
# test's file sink) remote and relay roles are refused at start, by name.
f=$PH_RUN_DIR/placements.json
printf '%s\n' '{"swarmId": "placements", "roles": [{"role": "g", "count": 1, "placement": "local"},
 {"role": "p", "count": 1, "placement": "remote", "location": "host-b"},
 {"role": "q", "count": 1, "placement": "relay"}]}' >"$f"
if out=$("$SUP" --check --swarm-file "$f" 2>&1) && [[ "$out" == *"placement remote at host-b"* &&
    "$out" == *"placement relay at relay-"* ]] && ! grep -q '^  g .*  placement [a-z]* at ' <<<"$out"; then
    pass "supervisor_accepts_local_remote_and_relay_placements"
else
    fail "supervisor_accepts_local_remote_and_relay_placements" "$out"
fi
expect_rejected remote_without_a_broker '{"swarmId": "bad", "roles": [{"role": "g", "count": 1}, {"role": "p", "count": 1, "placement": "remote"}]}' \
    "roles[1]: role 'p' has placement remote, whose workers report over AMQP, but there is no broker"
expect_rejected relay_without_a_broker '{"swarmId": "bad", "roles": [{"role": "q", "count": 2, "placement": "relay"}]}' \
    "roles[0]: role 'q' has placement relay, whose workers report over AMQP, but there is no broker"

# Every key of the controller's settings is accepted with a valid value.
f=$PH_RUN_DIR/all-keys.json
printf '%s\n' '{"swarmId": "all-keys", "description": "d", "roles": [{"role": "g", "count": 1}],
 "statusTtlSec": 15, "watermarkSec": 5, "deltaCoalesceMs": 0, "workerDeltas": false,
 "workerHeartbeatSec": 5, "deadGraceSec": 0, "autoStart": true, "runId": "run-1"}' >"$f"
if out=$("$SUP" --check --swarm-file "$f" 2>&1) && [[ "$out" == *"controller instance all-keys-controller"* ]]; then
    pass "supervisor_accepts_the_controller_settings"
else
    fail "supervisor_accepts_the_controller_settings" "$out"
fi

rc=0
out=$("$PHIVE" up "$PH_RUN_DIR/bad-role_with_dot.json" 2>&1) || rc=$?
if ((rc != 0)) && [[ "$out" == *"'a.b'"* ]]; then
    pass "phive_up_refuses_an_invalid_swarm_file"
else
    fail "phive_up_refuses_an_invalid_swarm_file" "exit $rc, output: $out"
fi

# ---- a running swarm --------------------------------------------------------

"$PY" - "$ROOT/deploy/swarms/test-small.json" "$SWARM" "$SWARM_FILE" <<'EOF'
import json, sys
doc = json.load(open(sys.argv[1]))
doc["swarmId"] = sys.argv[2]
json.dump(doc, open(sys.argv[3], "w"), indent=2)
EOF

if ! up_out=$("$PHIVE" up "$SWARM_FILE" 2>&1); then
    fail "phive_up_returns_once_every_process_runs" "$up_out"
    echo "test_supervisor: $passed passed, $failed failed"
    exit 1
fi
remember_pids
if [[ -e "$RUN/ready" && -e "$RUN/supervisor.pid" && -e "/dev/shm/ph.$SWARM" ]]; then
    pass "phive_up_returns_once_every_process_runs"
else
    fail "phive_up_returns_once_every_process_runs" "ready, supervisor.pid or /dev/shm/ph.$SWARM missing"
fi

# Where the envelopes and the journal go.
if ((HAVE_BRIDGE)); then
    want_sink="Envelopes: file:$RUN/envelopes.jsonl"
else
    want_sink="Envelopes: none"
fi
if [[ "$up_out" == *"$want_sink"* && "$up_out" == *"Journal:   $RUN/journal/"*".jsonl"* ]]; then
    pass "phive_up_says_where_envelopes_and_journal_go"
else
    fail "phive_up_says_where_envelopes_and_journal_go" "expected '$want_sink' and 'Journal:   $RUN/journal/...': $up_out"
fi
status_out=$("$PHIVE" status 2>&1 || true)
if [[ "$status_out" == *"$SWARM "*"ready=yes"* && "$status_out" == *"journal $RUN/journal/"* ]]; then
    pass "phive_status_shows_the_swarm_and_its_journal"
else
    fail "phive_status_shows_the_swarm_and_its_journal" "$status_out"
fi

mode=$(stat -c %a "$RUN/signals.jsonl" 2>/dev/null || echo none)
if [[ "$mode" == 600 && ! -s "$RUN/signals.jsonl" ]]; then
    pass "signals_file_exists_empty_and_private"
else
    fail "signals_file_exists_empty_and_private" "mode $mode, size $(stat -c %s "$RUN/signals.jsonl" 2>/dev/null)"
fi

inst=$(proc_field controller instance 2>/dev/null || true)
cmdline=$(tr '\0' ' ' <"/proc/$(proc_pid controller)/cmdline" 2>/dev/null || true)
if [[ "$inst" == "$SWARM-controller" && "$cmdline" == *"--instance $SWARM-controller "* &&
    "$cmdline" == *"--journal-dir $RUN/journal "* ]]; then
    pass "controller_runs_as_swarm_controller_instance_with_the_run_journal"
else
    fail "controller_runs_as_swarm_controller_instance_with_the_run_journal" "instance '$inst', cmdline: $cmdline"
fi

if ((HAVE_BRIDGE)); then
    state=$(proc_field bridge state 2>/dev/null || echo missing)
    role=$(proc_field bridge role 2>/dev/null || echo missing)
    bpid=$(proc_pid bridge 2>/dev/null || echo 0)
    cmdline=$(tr '\0' ' ' <"/proc/$bpid/cmdline" 2>/dev/null || true)
    if [[ "$state" == running && "$role" == bridge &&
        "$cmdline" == *"--swarm $SWARM --controller-instance $SWARM-controller --sink file:$RUN/envelopes.jsonl --signals $RUN/signals.jsonl"* ]]; then
        pass "bridge_runs_for_the_controller_with_the_file_sink"
    else
        fail "bridge_runs_for_the_controller_with_the_file_sink" "state $state, role $role, cmdline: $cmdline"
    fi
else
    if grep -q "no ph-bridge in" "$RUN/logs/supervisor.log" && ! grep -q '"bridge"' "$RUN/procs.json"; then
        pass "supervisor_runs_without_a_bridge_and_says_so"
    else
        fail "supervisor_runs_without_a_bridge_and_says_so" "no warning in supervisor.log or a bridge in procs.json"
    fi
    skip "bridge_runs_for_the_controller_with_the_file_sink" "no ph-bridge in $PH_BIN_DIR"
fi

n_workers=$("$PY" -c 'import json,sys; print(sum(r["count"] for r in json.load(open(sys.argv[1]))["roles"]))' "$SWARM_FILE")
n_listed=$("$PY" -c 'import json,sys; print(sum(1 for p in json.load(open(sys.argv[1])) if p["role"] not in ("swarm-controller", "bridge")))' "$RUN/procs.json")
if [[ "$n_workers" == "$n_listed" ]]; then
    pass "procs_json_lists_every_worker_of_the_swarm_file"
else
    fail "procs_json_lists_every_worker_of_the_swarm_file" "$n_listed listed, $n_workers expected"
fi

controller_pid=$(proc_pid controller)
if wait_segment "$controller_pid"; then
    pass "shm_dump_shows_every_worker_alive_with_its_role"
else
    fail "shm_dump_shows_every_worker_alive_with_its_role" "$why"
fi

# Worker configs carry no secrets in argv: they are files only we can read.
mode=$(stat -c %a "$RUN/config/$SWARM-generator-1.json" 2>/dev/null || echo none)
if [[ "$mode" == 600 ]] && ! tr '\0' ' ' <"/proc/$(proc_pid $SWARM-generator-1)/cmdline" | grep -q ratePerSec; then
    pass "worker_config_is_passed_in_a_0600_file_not_argv"
else
    fail "worker_config_is_passed_in_a_0600_file_not_argv" "mode $mode, cmdline: $(tr '\0' ' ' <"/proc/$(proc_pid $SWARM-generator-1)/cmdline" 2>/dev/null)"
fi

# ---- restarts ---------------------------------------------------------------

old=$(proc_pid $SWARM-generator-1)
kill -KILL "$old"
if new=$(wait_restarted $SWARM-generator-1 "$old"); then
    remember_pids
    if wait_segment; then
        pass "a_killed_worker_is_restarted_with_a_new_pid"
    else
        fail "a_killed_worker_is_restarted_with_a_new_pid" "restarted as pid $new but: $why"
    fi
else
    fail "a_killed_worker_is_restarted_with_a_new_pid" "$SWARM-generator-1 (pid $old) not running again after ${TIMEOUT_S} s"
fi

workers_before=$(running_workers)
old=$(proc_pid controller)
kill -KILL "$old"
if new=$(wait_restarted controller "$old"); then
    remember_pids
    workers_after=$(running_workers)
    if ! wait_segment "$new"; then
        fail "a_killed_controller_is_restarted_and_workers_keep_running" "controller pid $new: $why"
    elif [[ "$workers_before" != "$workers_after" ]]; then
        fail "a_killed_controller_is_restarted_and_workers_keep_running" "worker pids changed: $workers_before -> $workers_after"
    else
        pass "a_killed_controller_is_restarted_and_workers_keep_running"
    fi
else
    fail "a_killed_controller_is_restarted_and_workers_keep_running" "controller (pid $old) not running again after ${TIMEOUT_S} s"
fi

if ((HAVE_BRIDGE)); then
    old=$(proc_pid bridge)
    kill -KILL "$old"
    if new=$(wait_restarted bridge "$old"); then
        remember_pids
        pass "a_killed_bridge_is_restarted"
    else
        fail "a_killed_bridge_is_restarted" "bridge (pid $old) not running again after ${TIMEOUT_S} s"
    fi
else
    skip "a_killed_bridge_is_restarted" "no ph-bridge in $PH_BIN_DIR"
fi

# A worker that exits with status 0 was told to stop (the controller's stop
# command after swarm-remove; here SIGTERM, on which ph-worker exits 0): it
# stays stopped, longer than the first backoff (0.5 s) and then some.
old=$(proc_pid $SWARM-processor-1)
kill -TERM "$old"
deadline=$((SECONDS + TIMEOUT_S))
state=""
while ((SECONDS < deadline)); do
    state=$(proc_field $SWARM-processor-1 state 2>/dev/null || true)
    [[ "$state" == stopped ]] && break
    sleep 0.1
done
if [[ "$state" != stopped ]]; then
    fail "a_worker_that_exits_0_is_not_restarted" "$SWARM-processor-1 (pid $old) state '$state' after SIGTERM"
else
    sleep 2
    state=$(proc_field $SWARM-processor-1 state 2>/dev/null || true)
    pid=$(proc_pid $SWARM-processor-1 2>/dev/null || true)
    if [[ "$state" != stopped || "$pid" != "$old" ]]; then
        fail "a_worker_that_exits_0_is_not_restarted" "$SWARM-processor-1 is $state with pid $pid (was $old)"
    elif ! grep -q "$SWARM-processor-1 pid $old exited normally; not restarted" "$RUN/logs/supervisor.log"; then
        fail "a_worker_that_exits_0_is_not_restarted" "no 'exited normally; not restarted' line in supervisor.log"
    elif ! wait_segment; then
        fail "a_worker_that_exits_0_is_not_restarted" "the other workers: $why"
    else
        pass "a_worker_that_exits_0_is_not_restarted"
    fi
fi

# ---- down ---------------------------------------------------------------------

remember_pids
sup_pid=$(head -n1 "$RUN/supervisor.pid" | tr -dc '0-9')
if out=$("$PHIVE" down "$SWARM" 2>&1); then
    left=()
    for p in "${all_pids[@]}" "$sup_pid"; do
        # A zombie has exited; its new parent (init) may not have reaped it yet.
        stat=$(cat "/proc/$p/stat" 2>/dev/null) || continue
        stat=${stat##*) }
        if [[ "${stat:0:1}" != Z && "$(cat "/proc/$p/comm" 2>/dev/null)" == ph-* ]]; then
            left+=("$p($(cat "/proc/$p/comm" 2>/dev/null))")
        fi
    done
    if ((${#left[@]} > 0)); then
        fail "phive_down_leaves_no_process_and_no_segment" "still running: ${left[*]}"
    elif [[ -e "/dev/shm/ph.$SWARM" ]]; then
        fail "phive_down_leaves_no_process_and_no_segment" "/dev/shm/ph.$SWARM still exists"
    elif [[ -e "/dev/shm/ph.$SWARM.bridge" ]]; then
        fail "phive_down_leaves_no_process_and_no_segment" "/dev/shm/ph.$SWARM.bridge still exists"
    elif [[ -e "$RUN/supervisor.pid" || -e "$RUN/ready" ]]; then
        fail "phive_down_leaves_no_process_and_no_segment" "supervisor.pid or ready left behind"
    else
        pass "phive_down_leaves_no_process_and_no_segment"
    fi
else
    fail "phive_down_leaves_no_process_and_no_segment" "phive down failed: $out"
fi

# One journal per controller run (the controller was restarted above, so two
# files unless the swarm file fixes the runId); the first records the start.
journals=("$RUN"/journal/*.jsonl)
if [[ ! -e "${journals[0]}" ]]; then
    fail "the_run_journal_records_the_controller_start" "no $RUN/journal/*.jsonl"
elif ! grep -q '"controller-started"' "${journals[@]}"; then
    fail "the_run_journal_records_the_controller_start" "no \"controller-started\" in ${journals[*]}"
else
    pass "the_run_journal_records_the_controller_start"
fi

rc=0
out=$("$PHIVE" down "$SWARM" 2>&1) || rc=$?
if ((rc != 0)) && [[ "$out" == *"not running"* ]]; then
    pass "phive_down_says_when_the_swarm_is_not_running"
else
    fail "phive_down_says_when_the_swarm_is_not_running" "exit $rc, output: $out"
fi

# ---- sink amqp, broker unreachable ------------------------------------------

# CPU time (utime + stime, clock ticks) of pid $1.
cpu_ticks() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
    stat=${stat##*) }
    read -r -a f <<<"$stat"
    echo $((f[11] + f[12]))
}

if ((HAVE_BRIDGE)); then
    # A port nobody listens on: taken from the kernel, then released.
    port=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    secret=pw-$$-secret
    rc=0
    out=$(env -u PH_SINK PH_AMQP_URL="amqp://ph:$secret@127.0.0.1:$port/%2f" "$PHIVE" up "$SWARM_FILE" 2>&1) || rc=$?
    if ((rc != 0)); then
        fail "bridge_without_broker_keeps_running_and_retries" "phive up failed: $out"
    else
        remember_pids
        bpid=$(proc_pid bridge)
        deadline=$((SECONDS + TIMEOUT_S))
        while (($(grep -c 'retrying in' "$RUN/logs/bridge.log" 2>/dev/null || true) < 3)) && ((SECONDS < deadline)); do
            sleep 0.2
        done
        t0=$(cpu_ticks "$bpid")
        sleep 2
        t1=$(cpu_ticks "$bpid")
        hz=$(getconf CLK_TCK)
        if [[ "$out" != *"Broker:    amqp://ph:***@127.0.0.1:$port/"* ]]; then
            fail "bridge_without_broker_keeps_running_and_retries" "phive up does not show the masked broker URL: $out"
        elif [[ -e "$PH_RUN_DIR/rabbitmq" ]]; then
            fail "bridge_without_broker_keeps_running_and_retries" "a private node was set up although PH_AMQP_URL is set"
        elif [[ "$(proc_field bridge state)" != running ]] || ! kill -0 "$bpid" 2>/dev/null ||
            [[ "$(proc_field bridge restarts)" != 0 ]]; then
            fail "bridge_without_broker_keeps_running_and_retries" "the bridge did not keep running: $(tail -n 5 "$RUN/logs/bridge.log")"
        elif (($(grep -c 'retrying in' "$RUN/logs/bridge.log") < 3)); then
            fail "bridge_without_broker_keeps_running_and_retries" "fewer than 3 reconnect attempts logged: $(tail -n 5 "$RUN/logs/bridge.log")"
        elif ((t1 - t0 > hz / 5)); then
            fail "bridge_without_broker_keeps_running_and_retries" "the bridge used $((t1 - t0)) ticks of CPU in 2 s while disconnected"
        elif grep -rqF "$secret" "$RUN/logs" "$RUN/run.json" ||
            tr '\0' ' ' <"/proc/$bpid/cmdline" | grep -qF "$secret"; then
            fail "bridge_without_broker_keeps_running_and_retries" "the password shows in a log, run.json or the bridge's argv"
        else
            pass "bridge_without_broker_keeps_running_and_retries"
        fi
        "$PHIVE" down "$SWARM" >/dev/null 2>&1 || fail "bridge_without_broker_keeps_running_and_retries" "phive down failed"
    fi
else
    skip "bridge_without_broker_keeps_running_and_retries" "no ph-bridge in $PH_BIN_DIR"
fi

echo "test_supervisor: $passed passed, $failed failed"
((failed == 0))
