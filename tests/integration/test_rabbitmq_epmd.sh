#!/usr/bin/env bash
# Integration test of the epmd that deploy/rabbitmq runs for a private node
# on a private port (issue item 22):
#
#   - the first start runs an epmd on the private port, and records it
#   - after the node crashes (kill -9 of the Erlang VM and of its server
#     script: epmd survives) and `start` runs again, twice, `stop` still
#     stops that epmd: nothing listens on the port afterwards
#   - an epmd the script did not start (one already on the port) is left
#     running by `stop`
#
# Usage: tests/integration/test_rabbitmq_epmd.sh [BIN_DIR]   (BIN_DIR unused)
# Ports: PH_TEST_AMQP_PORT (default 23672) and the eight after it (management,
# web-STOMP, distribution, rabbitmqctl), epmd on PH_TEST_EPMD_PORT (default 23369).
# Exits 77 (skipped) without rabbitmq-server. Whatever happens, the node and
# the epmd this test caused are stopped on exit.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
RMQ=$ROOT/deploy/rabbitmq
if [[ ! -x /usr/lib/rabbitmq/bin/rabbitmq-server ]]; then
    echo "SKIP: /usr/lib/rabbitmq/bin/rabbitmq-server is missing (Debian package rabbitmq-server)"
    echo "test_rabbitmq_epmd: 0 passed, 0 failed"
    exit 77
fi
command -v epmd >/dev/null || { echo "test_rabbitmq_epmd: epmd is not on PATH" >&2; exit 1; }

export PH_AMQP_PORT=${PH_TEST_AMQP_PORT:-23672}
export PH_MGMT_PORT=$((PH_AMQP_PORT + 1))
export PH_STOMP_PORT=$((PH_AMQP_PORT + 2))
export PH_DIST_PORT=$((PH_AMQP_PORT + 3))
export PH_CTL_DIST_PORT=$((PH_AMQP_PORT + 4))
export PH_RABBITMQ_STRICT_PORTS=1
export PH_EPMD_PORT=${PH_TEST_EPMD_PORT:-23369}
unset PH_AMQP_URL PH_RABBITMQ_DIR
EPMD_PORT=$PH_EPMD_PORT
TMP=$(mktemp -d /tmp/ph-test-rabbitmq-epmd.XXXXXX)
RDIR=$TMP/rabbitmq
LOG=$TMP/rabbitmq.log
CRASH_WAIT_S=60 # only to avoid a hang: a killed VM is reaped in seconds

epmd_is_ours=0 # set once this test caused the epmd on EPMD_PORT
killed=()      # pids this test killed -9, for the cleanup

. "$(dirname "${BASH_SOURCE[0]}")/../lib/itest.sh"

epmd_answers() { epmd -port "$EPMD_PORT" -names >/dev/null 2>&1; }

# The summary, last; after a failure what deploy/rabbitmq said comes first.
finish() {
    if ((failed > 0)) && [[ -f "$LOG" ]]; then
        echo "----- deploy/rabbitmq output (last 30 lines)"
        tail -n 30 "$LOG"
    fi
    echo "test_rabbitmq_epmd: $passed passed, $failed failed"
}

cleanup() {
    local p
    "$RMQ" stop --dir "$RDIR" >>"$LOG" 2>&1
    for p in $(cat "$RDIR/server.pid" "$RDIR/rabbitmq.pid" 2>/dev/null) "${killed[@]}"; do
        kill -9 "$p" 2>/dev/null
    done
    # Only an epmd this test caused, and only when no node uses it.
    if ((epmd_is_ours)) && epmd_answers &&
        ! epmd -port "$EPMD_PORT" -names 2>/dev/null | grep -q '^name '; then
        epmd -port "$EPMD_PORT" -kill >/dev/null 2>&1
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# rmq COMMAND: deploy/rabbitmq COMMAND on this test's folder, output in $LOG.
rmq() {
    echo "+ deploy/rabbitmq $1" >>"$LOG"
    "$RMQ" "$1" --dir "$RDIR" >>"$LOG" 2>&1
}

# crash: kill -9 the Erlang VM and its server script, as a crash would, and
# wait until both are gone. epmd is a daemon of its own and survives.
crash() {
    local vm srv deadline=$((SECONDS + CRASH_WAIT_S))
    vm=$(cat "$RDIR/rabbitmq.pid" 2>/dev/null || true)
    srv=$(cat "$RDIR/server.pid" 2>/dev/null || true)
    if [[ -z "$vm" || -z "$srv" ]]; then
        echo "no rabbitmq.pid or server.pid in $RDIR"
        return 1
    fi
    killed+=("$vm" "$srv")
    kill -9 "$vm" "$srv" || return 1
    while kill -0 "$vm" 2>/dev/null || kill -0 "$srv" 2>/dev/null; do
        ((SECONDS < deadline)) || {
            echo "VM $vm or server script $srv still there after ${CRASH_WAIT_S}s"
            return 1
        }
        sleep 0.2
    done
}

if epmd_answers; then
    fail "precondition" "an epmd already answers on port $EPMD_PORT; this test needs the port" \
        "free (set PH_TEST_EPMD_PORT to another one)"
    finish
    exit 1
fi

# ---- our epmd across crashes

name=first_start_runs_an_epmd_on_the_private_port
if ! rmq start; then
    fail "$name" "deploy/rabbitmq start failed"
    finish
    exit 1
fi
epmd_is_ours=1
if epmd_answers; then pass "$name"; else fail "$name" "nothing answers on port $EPMD_PORT"; fi

name=stop_after_two_crash_and_start_cycles_stops_our_epmd
ok=1
for cycle in 1 2; do
    if ! why=$(crash); then
        fail "$name" "crash $cycle: $why"
        ok=0
        break
    fi
    if ! epmd_answers; then
        fail "$name" "epmd died with the node in crash $cycle: the scenario is not reproduced"
        ok=0
        break
    fi
    if ! rmq start; then
        fail "$name" "deploy/rabbitmq start after crash $cycle failed"
        ok=0
        break
    fi
done
if ((ok)); then
    if ! rmq stop; then
        fail "$name" "deploy/rabbitmq stop failed"
    elif epmd_answers; then
        fail "$name" "an epmd still answers on port $EPMD_PORT after stop:" \
            "$(epmd -port "$EPMD_PORT" -names 2>&1 | tr '\n' ' ')"
    else
        pass "$name"
    fi
fi

# ---- an epmd that is not ours

name=stop_leaves_an_epmd_it_did_not_start
if epmd_answers; then
    fail "$name" "cannot run: an epmd still answers on port $EPMD_PORT"
else
    epmd -port "$EPMD_PORT" -address 127.0.0.1 -daemon
    for _ in $(seq 50); do epmd_answers && break; sleep 0.1; done
    if ! epmd_answers; then
        fail "$name" "could not start an epmd on port $EPMD_PORT for the test"
    elif ! rmq start; then
        fail "$name" "deploy/rabbitmq start failed"
    elif ! rmq stop; then
        fail "$name" "deploy/rabbitmq stop failed"
    elif ! epmd_answers; then
        fail "$name" "stop stopped the epmd that was on port $EPMD_PORT before start"
    else
        pass "$name"
    fi
fi

finish
((failed == 0))
