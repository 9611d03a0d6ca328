#!/bin/sh
# Broker credentials and configured secrets never leak. A private RabbitMQ
# node whose user `ph` has a distinctive password (Zx9-secret!Qw; its URL
# form Zx9-secret%21Qw), a swarm (controller with a journal, two workers,
# bridge --sink amqp from the URL file), ph-orchestrator given the URL
# through PH_AMQP_URL, and phctl signal likewise. One worker's config
# carries a password-bearing key ("dbPassword") and a URL with credentials;
# a config-update sent through the broker carries another secret. Then the
# passwords (each form) must appear in none of:
#   - any process's argv (/proc/*/cmdline, while everything runs)
#   - the envelopes published on ph.control (capture queue bound to
#     signal.# and event.#: status, outcomes, alerts)
#   - phctl shm-dump --json, phctl journal, the journal file
#   - the orchestrator's REST replies (/api/swarms, /api/swarms/<id>) and
#     /metrics
#   - every log file of the run (the broker's own included)
# The files that hold the password on purpose (the node's credentials,
# rabbitmq.conf, amqp-url, the worker's config file) are the exceptions.
# The test first checks that the things searched do carry the worker's
# config (a visible marker key), so an empty search cannot pass.
# usage: test_amqp_credentials.sh BIN_DIR   (PH_TEST_KEEP=1 keeps the work folder)
# Ports: PH_TEST_AMQP_PORT (default 32672) and the eight after it, epmd on
# PH_TEST_EPMD_PORT (default 32369), HTTP on PH_TEST_HTTP_PORT (default
# 32088). Exits 77 (skipped) without rabbitmq-server. About 40 s.
set -eu

BIN=${1:?usage: test_amqp_credentials.sh BIN_DIR}
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
amqp_test_init cred 32672 32369
HTTP=127.0.0.1:${PH_TEST_HTTP_PORT:-32088}
PASSWORD='Zx9-secret!Qw'
PASSWORD_URL='Zx9-secret%21Qw'
DB_SECRET='Db-Pw-77-Kq'
PATCH_SECRET='Patch-Tok-31-Vm'
MARKER=pht-visible-marker-$$
# grep -E pattern of every secret in every form
SECRETS='Zx9-secret|secret!Qw|secret%21Qw|Db-Pw-77-Kq|Patch-Tok-31-Vm'
PIDS=
CTL_PID=
ORCH_PID=
CAP_PID=

cleanup() {
    for p in $ORCH_PID $PIDS $CTL_PID $CAP_PID; do kill "$p" 2>/dev/null || true; done
    for p in $ORCH_PID $PIDS $CTL_PID $CAP_PID; do wait "$p" 2>/dev/null || true; done
    "$RMQ" stop --dir "$RDIR" >/dev/null 2>&1 || true
    rm -f "/dev/shm/ph.$SWARM" "/dev/shm/ph.$SWARM.bridge"
    if [ -n "${PH_TEST_KEEP:-}" ]; then echo "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# no_secret WHAT FILE...: none of the secrets is in FILE(s)
no_secret() {
    what=$1
    shift
    if hits=$(grep -EHn -a -- "$SECRETS" "$@" 2>/dev/null); then
        fail "$what carries a secret: $(printf '%s\n' "$hits" | head -n 3 | cut -c1-300)"
    fi
    ok "$what: no secret"
}

echo "== private broker on 127.0.0.1:$PH_AMQP_PORT, user ph with the test's password"
mkdir -p "$RDIR"
chmod 0700 "$RDIR"
# deploy/rabbitmq keeps the password of an existing credentials file.
printf 'user=ph\npassword=%s\n' "$PASSWORD" >"$RDIR/credentials"
chmod 0600 "$RDIR/credentials"
"$RMQ" start --dir "$RDIR" >"$TMP/rabbitmq.log" 2>&1 || fail "deploy/rabbitmq start: $(cat "$TMP/rabbitmq.log")"
# The URL file in percent-encoded form, as an operator would write it.
printf 'amqp://ph:%s@127.0.0.1:%s/%%2f\n' "$PASSWORD_URL" "$PH_AMQP_PORT" >"$URL"
chmod 0600 "$URL"
capture_start "$CAPQ"
ok "broker up; the capture consumer logged in with the percent-encoded password"

echo "== swarm: controller, two workers (one with secrets in its config), bridge"
"$BIN/ph-swarm-controller" --swarm "$SWARM" --instance "$CTL" --journal-dir "$TMP/journal" \
    >"$TMP/controller.log" 2>&1 &
CTL_PID=$!
umask 077
cat >"$TMP/gen-1.config.json" <<EOF
{"ratePerSec": 20, "marker": "$MARKER", "dbPassword": "$DB_SECRET",
 "upstream": "amqp://ph:$PASSWORD_URL@127.0.0.1:$PH_AMQP_PORT/%2f"}
EOF
umask 022
"$BIN/ph-worker" --swarm "$SWARM" --role generator --instance gen-1 --heartbeat-ms 500 \
    --config-file "$TMP/gen-1.config.json" >"$TMP/gen-1.log" 2>&1 &
PIDS="$PIDS $!"
"$BIN/ph-worker" --swarm "$SWARM" --role processor --instance proc-1 --heartbeat-ms 500 \
    --config '{"ratePerSec": 20}' >"$TMP/proc-1.log" 2>&1 &
PIDS="$PIDS $!"
"$BIN/ph-bridge" --swarm "$SWARM" --controller-instance "$CTL" --sink amqp \
    --amqp-url-file "$URL" >"$TMP/bridge.log" 2>&1 &
PIDS="$PIDS $!"
PH_AMQP_URL=$(cat "$URL") "$BIN/ph-orchestrator" --http "$HTTP" >"$TMP/orchestrator.log" 2>&1 &
ORCH_PID=$!
wait_until 30 "a controller status-full" captured 1 "event.metric.status-full.$SWARM.swarm-controller.$CTL"

echo "== signals through the broker, the URL from PH_AMQP_URL"
export PH_AMQP_URL
PH_AMQP_URL=$(cat "$URL")
"$BIN/phctl" signal swarm-start --swarm "$SWARM" --json >"$TMP/start.json" 2>"$TMP/start.err" ||
    fail "swarm-start: $(cat "$TMP/start.err")"
# A config-update whose patch holds a secret, published by the test's own
# client (phctl would carry it in its argv, which the test also searches).
printf 'signal.config-update.%s.generator.gen-1\t{"kind": "signal", "type": "config-update", "origin": "pht-test", "timestamp": "2026-01-01T00:00:00.000Z", "version": "1", "scope": {"swarmId": "%s", "role": "generator", "instance": "gen-1"}, "correlationId": "pht-cred-cfg-1", "idempotencyKey": "pht-cred-cfg-1", "data": {"apiToken": "%s", "marker2": "%s"}}\n' \
    "$SWARM" "$SWARM" "$PATCH_SECRET" "$MARKER" >"$TMP/patch.tsv"
"$BIN/ph-test-amqp" pub "$URL" <"$TMP/patch.tsv" >>"$TMP/pub.log" 2>&1 || fail "publishing the config-update"
wait_until 20 "the config-update's outcome" captured 1 outcome pht-cred-cfg-1
"$BIN/phctl" signal status-request --swarm "$SWARM" --json >"$TMP/status.json" 2>"$TMP/status.err" ||
    fail "status-request: $(cat "$TMP/status.err")"
wait_until 20 "the worker's config in a captured status" captured 1 "$MARKER" "gen-1"
ok "the swarm ran; the worker's config is published (marker seen)"

echo "== while everything runs: argv of every process"
: >"$TMP/cmdlines.txt"
for f in /proc/[0-9]*/cmdline; do
    tr '\0' ' ' <"$f" 2>/dev/null >>"$TMP/cmdlines.txt" || true
    echo >>"$TMP/cmdlines.txt"
done
grep -q "ph-bridge --swarm $SWARM" "$TMP/cmdlines.txt" || fail "the argv scan did not see the bridge"
no_secret "argv of every process" "$TMP/cmdlines.txt"

echo "== what the operator tools and the orchestrator show"
"$BIN/phctl" shm-dump --swarm "$SWARM" --json >"$TMP/shm-dump.json" 2>&1 || fail "shm-dump"
no_secret "phctl shm-dump --json" "$TMP/shm-dump.json"
# The orchestrator's registry fills from the controller's aggregates.
req() { $PY "$HERE/http_req.py" GET "http://$HTTP$1" >"$2" 2>>"$TMP/http.log"; }
wait_until 20 "the swarm in the orchestrator" sh -c \
    "$PY '$HERE/http_req.py' GET 'http://$HTTP/api/swarms' 2>/dev/null | grep -q '$SWARM'"
req /api/swarms "$TMP/rest-swarms.json" || fail "GET /api/swarms"
req "/api/swarms/$SWARM" "$TMP/rest-swarm.json" || fail "GET /api/swarms/$SWARM"
req "/api/swarms/$SWARM/outcomes/pht-cred-cfg-1" "$TMP/rest-outcome.json" || true
req /metrics "$TMP/metrics.txt" || fail "GET /metrics"
grep -q "$SWARM" "$TMP/metrics.txt" || fail "/metrics does not name the swarm"
no_secret "the orchestrator's REST replies and /metrics" "$TMP"/rest-*.json "$TMP/metrics.txt"

echo "== stop; then the captured envelopes, the journal and every log"
for p in $PIDS; do kill "$p" 2>/dev/null || true; done
for p in $PIDS; do wait "$p" 2>/dev/null || true; done
PIDS=
kill "$ORCH_PID" 2>/dev/null || true
wait "$ORCH_PID" 2>/dev/null || true
ORCH_PID=
sleep 0.5
"$BIN/phctl" journal --swarm "$SWARM" >"$TMP/journal.txt" 2>&1 ||
    "$BIN/phctl" journal --file "$(ls "$TMP"/journal/*.jsonl | head -n 1)" >"$TMP/journal.txt" 2>&1 ||
    fail "phctl journal: $(cat "$TMP/journal.txt")"
grep -q "pht-cred-cfg-1" "$TMP/journal.txt" || fail "the journal lacks the config-update"
kill "$CTL_PID" 2>/dev/null || true
wait "$CTL_PID" 2>/dev/null || true
CTL_PID=
kill "$CAP_PID" 2>/dev/null || true
wait "$CAP_PID" 2>/dev/null || true
CAP_PID=
grep -q "$MARKER" "$CAP" || fail "no captured envelope carries the config marker"
grep -q 'amqp://ph:\*\*\*@127.0.0.1' "$CAP" || fail "the worker's upstream URL is not in a status, masked"
# The capture holds the signal this test published itself (with its
# secret): that one is the test's input, not the system's output.
grep -v '"origin":"pht-test"' "$CAP" >"$TMP/captured-output.jsonl"
no_secret "captured envelopes (status, outcomes, alerts)" "$TMP/captured-output.jsonl"
no_secret "the journal (file and phctl journal)" "$TMP"/journal/* "$TMP/journal.txt"
no_secret "signal answers printed by phctl" "$TMP/start.json" "$TMP/status.json" \
    "$TMP/start.err" "$TMP/status.err"
# Every log of the run, the broker's own included; the files that hold the
# password on purpose are left out by name.
"$RMQ" stop --dir "$RDIR" >/dev/null 2>&1 || true
find "$TMP" -type f \( -name '*.log' -o -name '*.log.*' -o -name '*.out' \) >"$TMP/logfiles"
[ -s "$TMP/logfiles" ] || fail "no log file found"
# shellcheck disable=SC2046
no_secret "every log file ($(wc -l <"$TMP/logfiles") files)" $(cat "$TMP/logfiles")

echo "$PASSED passed, $FAILED failed"
