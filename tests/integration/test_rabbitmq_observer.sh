#!/usr/bin/env bash
# Integration test of the read-only broker user ph-observer that
# deploy/rabbitmq creates for web UIs (issue 8 §5):
#
#   - observer-credentials: mode 0600, "user=ph-observer" and "password=..."
#     lines; the password is in no output and no broker log
#   - the ph user, its credentials and amqp-url work as before
#   - as ph-observer over AMQP: publishing to ph.control is refused; binding
#     a queue of its own to ph.control is allowed for the three aggregate
#     patterns only (and the aggregate arrives, a worker's status does not);
#     the control queues cannot be consumed, read, purged, deleted or
#     declared; no dead-lettering into ph.control; no management API
#   - a queue it declares durable falls under the operator policy that
#     deletes it once unused
#   - the same over web-STOMP (tests/integration/stomp_probe.py): the
#     aggregate subscription is accepted and delivers, per-worker ones and
#     SEND are refused
#   - `start` while the node runs, a restart on the same folder, and a lost
#     observer-credentials file: the password is kept (a new one is made and
#     applied when the file is gone), the permissions stay
#
# Usage: tests/integration/test_rabbitmq_observer.sh [BIN_DIR]  (default build/bin)
# Ports: PH_TEST_AMQP_PORT (default 21672) and the eight after it (management,
# web-STOMP, distribution, rabbitmqctl), epmd on PH_TEST_EPMD_PORT (default 21369).
# Exits 77 (skipped) without rabbitmq-server. Whatever happens, the node (and
# the epmd deploy/rabbitmq started for it) is stopped on exit.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE=$ROOT/tests/integration
RMQ=$ROOT/deploy/rabbitmq
BIN=${1:-$ROOT/build/bin}
TOOL=$BIN/ph-test-amqp
PY=/usr/bin/python3
if [[ ! -x /usr/lib/rabbitmq/bin/rabbitmq-server ]]; then
    echo "SKIP: /usr/lib/rabbitmq/bin/rabbitmq-server is missing (Debian package rabbitmq-server)"
    echo "test_rabbitmq_observer: 0 passed, 0 failed"
    exit 77
fi
if [[ ! -x $TOOL ]]; then
    echo "test_rabbitmq_observer: $TOOL is missing (build first: cmake --build build)" >&2
    exit 1
fi

export PH_AMQP_PORT=${PH_TEST_AMQP_PORT:-21672}
export PH_MGMT_PORT=$((PH_AMQP_PORT + 1))
export PH_STOMP_PORT=$((PH_AMQP_PORT + 2))
export PH_DIST_PORT=$((PH_AMQP_PORT + 3))
export PH_CTL_DIST_PORT=$((PH_AMQP_PORT + 4))
export PH_RABBITMQ_STRICT_PORTS=1
export PH_EPMD_PORT=${PH_TEST_EPMD_PORT:-21369}
unset PH_AMQP_URL PH_RABBITMQ_DIR
TMP=$(mktemp -d /tmp/ph-test-rabbitmq-observer.XXXXXX)
RDIR=$TMP/rabbitmq
LOG=$TMP/rabbitmq.log # what deploy/rabbitmq printed
OBS_CRED=$RDIR/observer-credentials
OBS_URL=$TMP/observer-url
PH_URL=$RDIR/amqp-url
SWARM=s1
CTL_KEY=event.metric.status-delta.$SWARM.swarm-controller.$SWARM-controller
GEN_KEY=event.metric.status-delta.$SWARM.generator.$SWARM-generator-1
CTL_QUEUE=ph.control.$SWARM.swarm-controller.$SWARM-controller
bg_pids=()

# shellcheck source=tests/lib/itest.sh
. "$HERE/../lib/itest.sh"
ITEST_LOGS="$LOG $TMP/*.out"

cleanup() {
    local p
    for p in "${bg_pids[@]}"; do kill "$p" 2>/dev/null; done
    "$RMQ" stop --dir "$RDIR" >>"$LOG" 2>&1
    for p in $(cat "$RDIR/server.pid" "$RDIR/rabbitmq.pid" 2>/dev/null); do
        kill -9 "$p" 2>/dev/null
    done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# rmq COMMAND: deploy/rabbitmq COMMAND on this test's folder, output in $LOG.
rmq() {
    echo "+ deploy/rabbitmq $1" >>"$LOG"
    "$RMQ" "$1" --dir "$RDIR" >>"$LOG" 2>&1
}

# The observer's AMQP URL, built here (printf is a builtin: no command line
# shows the password).
write_observer_url() {
    local pass
    pass=$(sed -n 's/^password=//p' "$OBS_CRED")
    (
        umask 077
        printf 'amqp://ph-observer:%s@127.0.0.1:%s/%%2f\n' "$pass" "$PH_AMQP_PORT" >"$OBS_URL"
    )
}

# out NAME: the file that holds the output of case NAME (names hold keys).
out() { echo "$TMP/${1//[^A-Za-z0-9_.-]/_}.out"; }
why() { tr '\n' ' ' <"$(out "$1")" | cut -c1-300; }

# tool NAME ARGS...: ph-test-amqp ARGS, output in $(out NAME); its status.
tool() {
    local name=$1
    shift
    "$TOOL" "$@" >"$(out "$name")" 2>&1
}

# refused NAME OPERATION: the broker refused OPERATION (403) in NAME's output.
refused() { grep -q "ph-test-amqp: $2: 403 ACCESS_REFUSED" "$(out "$1")"; }

# expect_refused NAME OPERATION ARGS...: the tool fails with a 403 on OPERATION.
expect_refused() {
    local name=$1 op=$2
    shift 2
    if tool "$name" "$@"; then
        fail "$name" "the broker allowed it: $(why "$name")"
    elif ! refused "$name" "$op"; then
        fail "$name" "failed, but not with a refusal of $op: $(why "$name")"
    else
        pass "$name"
    fi
}

node_log() { echo "$RDIR/log/$(sed -n 's/^NODE=//p' "$RDIR/node.env").log"; }

# ---- start, files

if ! rmq start; then
    die start "deploy/rabbitmq start failed"
fi
pass start

name=observer_credentials_file
if [[ ! -f $OBS_CRED ]]; then
    die "$name" "$OBS_CRED is missing"
fi
mode=$(stat -c %a "$OBS_CRED")
obs_pass=$(sed -n 's/^password=//p' "$OBS_CRED")
if [[ $mode != 600 ]]; then
    fail "$name" "mode $mode, not 600"
elif [[ $(sed -n '1p' "$OBS_CRED") != user=ph-observer || $(wc -l <"$OBS_CRED") != 2 ]]; then
    fail "$name" "not the two lines user=ph-observer and password=..."
elif [[ ! $obs_pass =~ ^[0-9a-f]{32}$ ]]; then
    fail "$name" "the password line does not hold a 32-digit random hex password"
else
    pass "$name"
fi

name=observer_password_not_printed_or_logged
if grep -rqF -- "$obs_pass" "$LOG" "$RDIR/log"; then
    fail "$name" "the password appears in deploy/rabbitmq's output or the broker's logs"
else
    pass "$name"
fi

name=ph_user_unchanged
ph_pass=$(sed -n 's/^password=//p' "$RDIR/credentials")
if [[ $(stat -c %a "$RDIR/credentials") != 600 || $(stat -c %a "$PH_URL") != 600 ]]; then
    fail "$name" "credentials or amqp-url is not mode 600"
elif [[ $(sed -n '1p' "$RDIR/credentials") != user=ph || -z $ph_pass ]] ||
    ! grep -qxF "amqp://ph:$ph_pass@127.0.0.1:$PH_AMQP_PORT/%2f" "$PH_URL"; then
    fail "$name" "credentials or amqp-url do not hold the ph user as before"
elif ! tool ph_declare declare "$PH_URL" "$CTL_QUEUE"; then
    fail "$name" "ph could not declare $CTL_QUEUE: $(why ph_declare)"
elif ! printf '%s\t{}\n' "$CTL_KEY" | tool ph_pub pub "$PH_URL"; then
    fail "$name" "ph could not publish: $(why ph_pub)"
else
    pass "$name"
fi
write_observer_url

# ---- AMQP as ph-observer

name=observer_cannot_publish_a_signal
printf 'signal.swarm-stop.%s.swarm-controller.%s-controller\t{}\n' "$SWARM" "$SWARM" >"$TMP/signal.in"
if tool "$name" pub "$OBS_URL" <"$TMP/signal.in"; then
    fail "$name" "published: $(why "$name")"
elif ! refused "$name" basic.publish; then
    fail "$name" "failed, but not with a refusal: $(why "$name")"
else
    pass "$name"
fi
name=observer_cannot_publish_an_event
if printf '%s\t{}\n' "$CTL_KEY" | tool "$name" pub "$OBS_URL"; then
    fail "$name" "published: $(why "$name")"
elif ! refused "$name" basic.publish; then
    fail "$name" "failed, but not with a refusal: $(why "$name")"
else
    pass "$name"
fi

for key in "event.metric.status-delta.$SWARM.swarm-controller.*" 'event.alert.alert.#' 'event.outcome.#'; do
    name="observer_binds_$key"
    if tool bind_ok bind "$OBS_URL" "$key" && grep -qxF "bound $key" "$(out bind_ok)"; then
        pass "$name"
    else
        fail "$name" "$(why bind_ok)"
    fi
done

# Per-worker and signal subscriptions, every swarm's deltas at once, the
# controller's fulls, a binding without the trailing wildcard.
for key in 'event.metric.#' '#' "event.metric.status-delta.$SWARM.generator.*" 'signal.#' \
    "event.metric.status-delta.*.swarm-controller.*" "event.metric.status-full.$SWARM.swarm-controller.*" \
    "event.metric.status-delta.$SWARM.swarm-controller.$SWARM-controller"; do
    expect_refused "observer_cannot_bind_$key" queue.bind bind "$OBS_URL" "$key"
done

name=observer_gets_the_aggregate_not_a_worker_status
"$TOOL" bind "$OBS_URL" "event.metric.status-delta.$SWARM.swarm-controller.*" 20 >"$(out "$name")" 2>&1 &
bg_pids+=($!)
wait_until 15 "the observer's binding" has "$(out "$name")" '^bound '
# A worker's status first: were it routed to the observer, it would come first.
if ! printf '%s\t{}\n%s\t{}\n' "$GEN_KEY" "$CTL_KEY" | tool pub_statuses pub "$PH_URL"; then
    fail "$name" "ph could not publish: $(why pub_statuses)"
elif ! wait "${bg_pids[-1]}"; then
    fail "$name" "$(why "$name")"
elif ! grep -qxF "got $CTL_KEY" "$(out "$name")"; then
    fail "$name" "the first message was not the controller's delta: $(why "$name")"
else
    pass "$name"
fi

for op in consume get purge delete; do
    case $op in
    consume) what=basic.consume ;;
    get) what=basic.get ;;
    purge) what=queue.purge ;;
    delete) what=queue.delete ;;
    esac
    expect_refused "observer_cannot_${op}_the_control_queue" "$what" "$op" "$OBS_URL" "$CTL_QUEUE"
done
name=control_queue_still_there
if tool "$name" depth "$PH_URL" "$CTL_QUEUE"; then pass "$name"; else fail "$name" "$(why "$name")"; fi
expect_refused observer_cannot_declare_a_control_queue queue.declare \
    declare "$OBS_URL" "ph.control.$SWARM.generator.$SWARM-generator-1"
expect_refused observer_cannot_dead_letter_into_ph.control queue.declare \
    declare "$OBS_URL" "" ph.control

# mgmt CREDENTIALS_FILE PATH: GET of the management API; prints the status,
# then the body. The credentials are read from the file.
mgmt() {
    "$PY" - "$PH_MGMT_PORT" "$1" "$2" <<'PYEOF'
import base64, sys, urllib.error, urllib.request
port, cred_file, path = sys.argv[1:4]
c = dict(l.rstrip("\n").split("=", 1) for l in open(cred_file) if "=" in l)
req = urllib.request.Request("http://127.0.0.1:%s%s" % (port, path), headers={
    "Authorization": "Basic " + base64.b64encode(("%s:%s" % (c["user"], c["password"])).encode()).decode()})
try:
    with urllib.request.urlopen(req, timeout=10) as r:
        print(r.status); print(r.read().decode())
except urllib.error.HTTPError as e:
    print(e.code)
PYEOF
}

name=observer_has_no_management_access
status=$(mgmt "$OBS_CRED" /api/whoami | head -n 1)
if [[ $status == 401 ]]; then pass "$name"; else fail "$name" "GET /api/whoami answered $status, not 401"; fi

# queue_expires_by_policy QUEUE: the management API shows QUEUE under the
# operator policy ph-observer-queues (expires 60000). Its view of a queue's
# policy comes with the queue's statistics, every few seconds.
queue_expires_by_policy() {
    mgmt "$RDIR/credentials" "/api/queues/%2F/$1" >"$TMP/queue.json"
    "$PY" -c 'import json, sys
status, body = open(sys.argv[1]).read().split("\n", 1)
q = json.loads(body) if status == "200" else {}
sys.exit(0 if q.get("operator_policy") == "ph-observer-queues" and
         (q.get("effective_policy_definition") or {}).get("expires") == 60000 else 1)' "$TMP/queue.json"
}

name=observer_durable_queue_expires_when_unused
if ! tool "$name" declare "$OBS_URL" ""; then
    fail "$name" "could not declare a server-named durable queue: $(why "$name")"
else
    q=$(sed -n 's/^declared //p' "$(out "$name")")
    for ((i = 0; i < 30; i++)); do
        queue_expires_by_policy "$q" && break
        sleep 0.5
    done
    if ((i < 30)); then
        pass "$name"
    else
        fail "$name" "queue $q is not under the operator policy ph-observer-queues (expires 60000): $(cut -c1-300 "$TMP/queue.json")"
    fi
fi

# ---- web-STOMP as ph-observer

# stomp NAME ARGS...: stomp_probe.py PORT OBSERVER_CREDENTIALS ARGS, output
# in $(out NAME); its status.
stomp() {
    local name=$1
    shift
    timeout 60 "$PY" "$HERE/stomp_probe.py" "$PH_STOMP_PORT" "$OBS_CRED" "$@" >"$(out "$name")" 2>&1
}

# stomp_refused NAME LOG_TEXT ARGS...: the broker refuses: an ERROR frame, or
# (RabbitMQ 3.10, see stomp_probe.py) the socket closed before the receipt
# and LOG_TEXT in a new line of the broker's log.
stomp_refused() {
    local name=$1 text=$2 rc=0 lines
    shift 2
    lines=$(wc -l <"$(node_log)")
    stomp "$name" "$@" || rc=$?
    case $rc in
    3) pass "$name" ;;
    4)
        local i
        for ((i = 0; i < 50; i++)); do
            tail -n +"$((lines + 1))" "$(node_log)" | grep -qF -- "$text" && break
            sleep 0.1
        done
        if ((i < 50)); then
            pass "$name"
        else
            fail "$name" "the broker closed the connection, but its log does not say: $text"
        fi
        ;;
    0) fail "$name" "the broker accepted it" ;;
    *) fail "$name" "$(why "$name")" ;;
    esac
}

if [[ ! -x $PY ]]; then
    echo "note: $PY is missing: web-STOMP checks skipped"
else
    name=stomp_aggregate_subscription_delivers
    timeout 60 "$PY" "$HERE/stomp_probe.py" "$PH_STOMP_PORT" "$OBS_CRED" subscribe \
        "/exchange/ph.control/event.metric.status-delta.$SWARM.swarm-controller.*" 20 >"$(out "$name")" 2>&1 &
    bg_pids+=($!)
    wait_until 15 "the STOMP subscription" has "$(out "$name")" '^accepted'
    if ! printf '%s\t{}\n%s\t{}\n' "$GEN_KEY" "$CTL_KEY" | tool pub_statuses2 pub "$PH_URL"; then
        fail "$name" "ph could not publish: $(why pub_statuses2)"
    elif ! wait "${bg_pids[-1]}"; then
        fail "$name" "$(why "$name")"
    elif ! grep -qxF "message /exchange/ph.control/$CTL_KEY" "$(out "$name")"; then
        fail "$name" "the first message was not the controller's delta: $(why "$name")"
    else
        pass "$name"
    fi
    for key in 'event.alert.alert.#' 'event.outcome.#'; do
        name="stomp_subscribes_$key"
        if stomp "$name" subscribe "/exchange/ph.control/$key"; then pass "$name"; else fail "$name" "$(why "$name")"; fi
    done
    for key in 'event.metric.#' "event.metric.status-delta.$SWARM.generator.*" '#'; do
        stomp_refused "stomp_cannot_subscribe_$key" \
            "access to topic '$key' in exchange 'ph.control' in vhost '/' refused for user 'ph-observer'" \
            subscribe "/exchange/ph.control/$key"
    done
    stomp_refused stomp_control_queue_refused \
        "access to queue '$CTL_QUEUE' in vhost '/' refused for user 'ph-observer'" \
        subscribe "/amq/queue/$CTL_QUEUE"
    stomp_refused stomp_send_refused \
        "operation basic.publish caused a channel exception access_refused: access to exchange 'ph.control' in vhost '/' refused for user 'ph-observer'" \
        send "/exchange/ph.control/signal.swarm-stop.$SWARM.swarm-controller.$SWARM-controller"
fi

# ---- start again, restart, lost file

cp -p "$OBS_CRED" "$TMP/observer-credentials.before"
cp -p "$RDIR/credentials" "$TMP/credentials.before"

# still_in_force NAME: the observer logs in with the file's password, binds an
# aggregate and is refused a per-worker binding.
still_in_force() {
    write_observer_url
    if ! tool "$1_ok" bind "$OBS_URL" 'event.outcome.#'; then
        fail "$1" "the observer cannot bind an aggregate: $(why "$1_ok")"
    elif tool "$1_refused" bind "$OBS_URL" 'event.metric.#' || ! refused "$1_refused" queue.bind; then
        fail "$1" "a per-worker binding was not refused: $(why "$1_refused")"
    else
        pass "$1"
    fi
}

name=start_while_running_keeps_everything
if ! rmq start; then
    fail "$name" "deploy/rabbitmq start failed"
elif ! cmp -s "$OBS_CRED" "$TMP/observer-credentials.before"; then
    fail "$name" "observer-credentials changed"
else
    pass "$name"
fi

name=restart_keeps_the_observer_password
if ! rmq stop || ! rmq start; then
    die "$name" "deploy/rabbitmq stop/start failed"
elif ! cmp -s "$OBS_CRED" "$TMP/observer-credentials.before"; then
    fail "$name" "observer-credentials changed"
elif [[ $(stat -c %a "$OBS_CRED") != 600 ]]; then
    fail "$name" "observer-credentials is no longer mode 600"
elif ! cmp -s "$RDIR/credentials" "$TMP/credentials.before"; then
    fail "$name" "the ph credentials changed"
elif ! tool ph_depth_after depth "$PH_URL" "$CTL_QUEUE"; then
    fail "$name" "the ph user cannot use the broker after the restart: $(why ph_depth_after)"
else
    pass "$name"
fi
still_in_force permissions_after_restart

name=lost_credentials_file_gets_a_new_password
rm -f "$OBS_CRED"
if ! rmq start; then
    fail "$name" "deploy/rabbitmq start failed"
elif [[ ! -s $OBS_CRED ]] || [[ $(stat -c %a "$OBS_CRED") != 600 ]]; then
    fail "$name" "no new observer-credentials (mode 600)"
elif cmp -s "$OBS_CRED" "$TMP/observer-credentials.before"; then
    fail "$name" "the same password again"
else
    pass "$name"
fi
still_in_force permissions_with_the_new_password
name=old_observer_password_no_longer_works
cp "$TMP/observer-credentials.before" "$TMP/old-cred"
OBS_CRED_SAVED=$OBS_CRED
OBS_CRED=$TMP/old-cred
write_observer_url
OBS_CRED=$OBS_CRED_SAVED
if tool "$name" bind "$OBS_URL" 'event.outcome.#'; then
    fail "$name" "the old password still logs in"
elif ! grep -q 'ACCESS_REFUSED\|login' "$(out "$name")"; then
    fail "$name" "failed, but not at login: $(why "$name")"
else
    pass "$name"
fi

if ((failed > 0)); then
    echo "----- deploy/rabbitmq output (last 30 lines)"
    tail -n 30 "$LOG"
fi
itest_summary test_rabbitmq_observer
