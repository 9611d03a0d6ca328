# Shared helpers of the AMQP tests (sourced after BIN and HERE are set).
# amqp_test_init sets ROOT, PY, RMQ, SWARM, CTL, TMP, RDIR, URL, CAP, CAPQ
# and the private node's ports; the tests count with PASSED/FAILED.
# shellcheck shell=sh

# amqp_test_init NAME AMQP_PORT EPMD_PORT: the test's names and folders, and
# the broker's ports (PH_TEST_AMQP_PORT and PH_TEST_EPMD_PORT override the
# defaults; the management, web-STOMP and distribution ports and the 5 of
# rabbitmqctl follow the AMQP one). Every port must lie below the kernel's
# ephemeral range: deploy/rabbitmq refuses others here, since any outgoing
# connection of a test running alongside could hold one.
# Exits 77 (skipped) when rabbitmq-server is not installed.
amqp_test_init() {
    ROOT=$(cd "$HERE/../.." && pwd)
    PY=/usr/bin/python3
    RMQ=$ROOT/deploy/rabbitmq
    if [ ! -x /usr/lib/rabbitmq/bin/rabbitmq-server ]; then
        echo "SKIP: rabbitmq-server is not installed"
        exit 77
    fi
    SWARM=pht-$1-$$
    CTL=$SWARM-controller
    TMP=$(mktemp -d "${TMPDIR:-/tmp}/ph-amqp-$1.XXXXXX")
    RDIR=$TMP/rabbitmq
    URL=$RDIR/amqp-url
    CAP=$TMP/capture.jsonl
    CAPQ=ph.test.capture.$1.$$
    export PH_AMQP_PORT=${PH_TEST_AMQP_PORT:-$2}
    export PH_MGMT_PORT=$((PH_AMQP_PORT + 1))
    export PH_STOMP_PORT=$((PH_AMQP_PORT + 2))
    export PH_DIST_PORT=$((PH_AMQP_PORT + 3))
    export PH_CTL_DIST_PORT=$((PH_AMQP_PORT + 4))
    export PH_EPMD_PORT=${PH_TEST_EPMD_PORT:-$3}
    export PH_RABBITMQ_STRICT_PORTS=1
    unset PH_AMQP_URL
    PASSED=0
    FAILED=0
}

ok() {
    PASSED=$((PASSED + 1))
    echo "ok: $*"
}

fail() {
    FAILED=$((FAILED + 1))
    echo "FAIL: $*" >&2
    for f in "$TMP"/*.log; do
        [ -f "$f" ] || continue
        echo "---- $f" >&2
        tail -n 20 "$f" >&2
    done
    echo "$PASSED passed, $FAILED failed"
    exit 1
}

# wait_until SECONDS WHAT COMMAND...: polls every 0.1 s; fails on timeout.
wait_until() {
    limit=$(($1 * 10))
    what=$2
    shift 2
    i=0
    until "$@"; do
        i=$((i + 1))
        [ "$i" -lt "$limit" ] || fail "timed out waiting for $what"
        sleep 0.1
    done
}

has() { grep -q -- "$2" "$1" 2>/dev/null; }
count() { grep -c -- "$2" "$1" 2>/dev/null || true; }

# captured COUNT PATTERN...: at least COUNT captured lines contain every pattern
captured() {
    n=$1
    shift
    $PY - "$CAP" "$n" "$@" <<'PYEOF'
import sys
path, n, pats = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
c = sum(1 for l in open(path) if all(p in l for p in pats))
sys.exit(0 if c >= n else 1)
PYEOF
}

pub() { "$BIN/ph-test-amqp" pub "$URL" >>"$TMP/pub.log" 2>&1 || fail "publishing failed"; }

# capture_start QUEUE: a durable capture queue bound to signal.# and event.#
capture_start() {
    "$BIN/ph-test-amqp" capture "$URL" "$1" "$CAP" >"$TMP/capture.out" 2>>"$TMP/capture.log" &
    CAP_PID=$!
    wait_until 10 "the capture consumer" has "$TMP/capture.out" ready
}

# outcomes_per_cid CIDS_FILE: prints "<answered> <missing> <duplicated>" for
# the correlation ids listed one per line, counting captured outcomes.
outcomes_per_cid() {
    $PY - "$CAP" "$1" <<'PYEOF'
import json, sys
want = [l.strip() for l in open(sys.argv[2]) if l.strip()]
n = {c: 0 for c in want}
for l in open(sys.argv[1]):
    e = json.loads(l).get("envelope")
    if isinstance(e, dict) and e.get("kind") == "outcome" and e.get("correlationId") in n:
        n[e["correlationId"]] += 1
print(sum(1 for v in n.values() if v >= 1), sum(1 for v in n.values() if v == 0),
      sum(1 for v in n.values() if v > 1))
PYEOF
}

# all_answered CIDS_FILE: every id has at least one outcome
all_answered() { [ "$(outcomes_per_cid "$1" | cut -d' ' -f2)" = 0 ]; }
