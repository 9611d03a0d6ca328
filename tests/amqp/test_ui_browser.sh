#!/usr/bin/env bash
# The orchestrator's web UI in a real browser (issue 8, Tests, "Browser"),
# on a swarm started the way an operator starts one: `deploy/phive up`
# (private RabbitMQ node with web-STOMP and ph-observer, controller, bridge,
# 50 ph-worker processes in four roles, ph-orchestrator with the observer
# credentials), then:
#   - phive prints the UI's URL and `phive status` shows the orchestrator;
#   - as ph-observer over AMQP: publishing a signal is refused, and so is a
#     binding to event.metric.# (the aggregate pattern is allowed);
#   - three UI instances (pages of Debian's chromium, headless, driven by
#     playwright-core: tests/browser/ui_test.mjs): each shows every worker
#     and is live over web-STOMP; through the management API each UI
#     connection's bindings are exactly the three aggregate patterns; stop
#     and start clicked in one page show their outcome there and, over STOMP,
#     in the others, and every page's status follows; no page loads anything
#     from off this machine;
#   - `phive down` stops the swarm, the orchestrator and the node.
# Screenshots: $TMP/screenshots while it runs, copied to
# <bin>/../test-output/test_ui_browser/ at the end (the path is printed).
#
# usage: test_ui_browser.sh BIN_DIR   (PH_TEST_KEEP=1 keeps the work folder)
# Ports: PH_TEST_AMQP_PORT (default 30672) and the eight after it, HTTP on the
# ninth after it, epmd on PH_TEST_EPMD_PORT (default 30369). Exits 77
# (skipped) without rabbitmq-server, chromium (PH_CHROMIUM, default
# /usr/bin/chromium), node >= 18 or npm; `deploy/ensure-deps --tests` installs
# them. Builds the UI (npm ci + esbuild) into the work folder and installs
# playwright-core in tests/browser (npm ci, from the lock files).
set -eu -o pipefail

BIN=$(cd "${1:?usage: test_ui_browser.sh BIN_DIR}" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
WORKERS=50
CHROMIUM=${PH_CHROMIUM:-/usr/bin/chromium}

skip() {
    echo "SKIP: $*"
    echo "test_ui_browser: 0 passed, 0 failed"
    exit 77
}
[ -x "$CHROMIUM" ] || skip "$CHROMIUM is missing (Debian package chromium; deploy/ensure-deps --tests installs it)"
command -v node >/dev/null 2>&1 || skip "node is not installed (Debian: nodejs; deploy/ensure-deps --tests)"
command -v npm >/dev/null 2>&1 || skip "npm is not installed (Debian: npm; deploy/ensure-deps --tests)"
[ "$(node -p 'process.versions.node.split(".")[0] >= 18')" = true ] || skip "node $(node --version) is older than 18"

. "$HERE/lib.sh"
amqp_test_init ui 30672 30369
BROWSER_DIR=$ROOT/tests/browser
RUN=$TMP/run
RDIR=$RUN/rabbitmq
SHOTS=$TMP/screenshots
OUT_DIR=$(cd "$BIN/.." && pwd)/test-output/test_ui_browser
OBS_URL=$TMP/observer-url
export PH_RUN_DIR=$RUN PH_BIN_DIR=$BIN PH_WEB_DIR=$TMP/web PH_SINK=amqp
export PH_HTTP_ADDR=127.0.0.1:$((PH_AMQP_PORT + 9))
HTTP=http://$PH_HTTP_ADDR
unset PH_AMQP_URL_FILE PH_OBSERVER_CREDENTIALS PH_STOMP_URL
NODE_PID=

cleanup() {
    set +e
    trap '' PIPE # a closed stdout (| head) must not cut the clean-up short
    [ -z "$NODE_PID" ] || kill "$NODE_PID" 2>/dev/null
    [ -z "$NODE_PID" ] || wait "$NODE_PID" 2>/dev/null
    "$ROOT/deploy/phive" down --all >>"$TMP/phive-down.log" 2>&1
    # Whatever phive could not stop: by the pids it recorded.
    local f p
    for f in "$RUN/$SWARM/supervisor.pid" "$RUN/orchestrator/orchestrator.pid"; do
        [ -f "$f" ] || continue
        p=$(tr -dc '0-9' <"$f")
        case $(cat "/proc/$p/comm" 2>/dev/null) in
        ph-supervisor | ph-orchestrator) kill "$p" 2>/dev/null ;;
        esac
    done
    "$RMQ" stop --dir "$RDIR" >/dev/null 2>&1
    rm -f "/dev/shm/ph.$SWARM" "/dev/shm/ph.$SWARM.bridge"
    if [ -d "$SHOTS" ] && ls "$SHOTS"/*.png >/dev/null 2>&1; then
        rm -rf "$OUT_DIR" && mkdir -p "$OUT_DIR" && cp "$SHOTS"/*.png "$OUT_DIR"/ &&
            echo "screenshots: $OUT_DIR/"
    fi
    if [ -n "${PH_TEST_KEEP:-}" ]; then echo "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# npm ci in $1 unless its node_modules matches its lock file (one at a time).
npm_ci_if_stale() {
    local dir=$1 stamp=$1/node_modules/.package-lock.json
    if [ -f "$stamp" ] && [ ! "$dir/package-lock.json" -nt "$stamp" ] && [ ! "$dir/package.json" -nt "$stamp" ]; then
        return 0
    fi
    (
        cd "$dir"
        exec 9>"${TMPDIR:-/tmp}/ph-npm-$(printf '%s' "$dir" | cksum | cut -d' ' -f1).lock"
        flock 9
        npm ci --prefer-offline --ignore-scripts --no-audit --no-fund --loglevel=error
    )
}

# api PATH: GET of the orchestrator's API, the body on stdout.
api() { $PY -c 'import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())' "$HTTP$1"; }

# all_workers: the orchestrator holds the swarm's full with every worker.
all_workers() {
    api "/api/swarms/$SWARM" 2>/dev/null | $PY -c 'import json, sys
s = json.load(sys.stdin)
sys.exit(0 if s.get("complete") and len(s.get("workers", [])) == int(sys.argv[1]) else 1)' "$WORKERS"
}

echo "== build the UI and the browser test's packages"
T0=$(date +%s)
"$ROOT/actors/orchestrator/web/build.sh" "$TMP/web" >"$TMP/web-build.log" 2>&1 ||
    fail "the web UI did not build: $(tail -n 5 "$TMP/web-build.log")"
npm_ci_if_stale "$BROWSER_DIR" >"$TMP/npm-browser.log" 2>&1 ||
    fail "npm ci in tests/browser failed: $(tail -n 5 "$TMP/npm-browser.log")"
ok "UI built into $TMP/web; playwright-core installed ($(($(date +%s) - T0)) s)"

echo "== phive up: broker, orchestrator, swarm $SWARM of $WORKERS workers"
$PY - "$SWARM" >"$TMP/swarm.json" <<'PYEOF'
import json, sys
roles = [("generator", 20, {"outQueue": "q-generated"}),
         ("moderator", 10, {"inQueue": "q-generated", "outQueue": "q-moderated"}),
         ("processor", 10, {"inQueue": "q-moderated", "outQueue": "q-processed"}),
         ("postprocessor", 10, {"inQueue": "q-processed"})]
json.dump({"swarmId": sys.argv[1], "description": "browser test: 50 workers at low rates",
           "roles": [{"role": r, "count": n, "config": dict(enabled=True, ratePerSec=2, **q)}
                     for r, n, q in roles],
           "autoStart": True}, sys.stdout)
PYEOF
T0=$(date +%s)
# A reverse proxy's name, passed by phive to the orchestrator (--allowed-host).
export PH_HTTP_ALLOWED_HOSTS="ui.proxy.test"
"$ROOT/deploy/phive" up "$TMP/swarm.json" >"$TMP/phive-up.log" 2>&1 || fail "phive up failed: $(tail -n 15 "$TMP/phive-up.log")"
grep -qF "UI:        $HTTP/" "$TMP/phive-up.log" || fail "phive up does not print the UI's URL $HTTP/: $(tail -n 12 "$TMP/phive-up.log")"
"$ROOT/deploy/phive" status >"$TMP/phive-status.log" 2>&1 || true
grep -qE "^orchestrator +running +pid [0-9]+ +$HTTP/ +UI built" "$TMP/phive-status.log" ||
    fail "phive status does not show the orchestrator running with its UI: $(cat "$TMP/phive-status.log")"
ok "phive up printed $HTTP/ and phive status shows the orchestrator ($(($(date +%s) - T0)) s)"
wait_until 40 "the orchestrator's projection of all $WORKERS workers" all_workers
ok "GET /api/swarms/$SWARM: complete, $WORKERS workers"
$PY "$ROOT/tests/amqp/http_req.py" -H "Host: ui.proxy.test" GET "$HTTP/api/swarms" >"$TMP/host-ok.out" 2>&1
$PY "$ROOT/tests/amqp/http_req.py" -H "Host: evil.example" GET "$HTTP/api/swarms" >"$TMP/host-bad.out" 2>&1
[ "$(head -n1 "$TMP/host-ok.out")" = 200 ] && [ "$(head -n1 "$TMP/host-bad.out")" = 403 ] ||
    fail "PH_HTTP_ALLOWED_HOSTS: Host ui.proxy.test got $(head -n1 "$TMP/host-ok.out"), evil.example got $(head -n1 "$TMP/host-bad.out") (want 200, 403)"
ok "phive passes PH_HTTP_ALLOWED_HOSTS: Host ui.proxy.test answered, evil.example refused 403"

echo "== ph-observer over AMQP"
(
    umask 077
    pass=$(sed -n 's/^password=//p' "$RDIR/observer-credentials")
    printf 'amqp://ph-observer:%s@127.0.0.1:%s/%%2f\n' "$pass" "$PH_AMQP_PORT" >"$OBS_URL"
)
printf 'signal.swarm-stop.%s.swarm-controller.%s\t{}\n' "$SWARM" "$CTL" >"$TMP/signal.in"
if "$BIN/ph-test-amqp" pub "$OBS_URL" <"$TMP/signal.in" >"$TMP/obs-pub.out" 2>&1; then
    fail "ph-observer published a signal"
fi
has "$TMP/obs-pub.out" 'basic.publish: 403 ACCESS_REFUSED' || fail "publishing failed, but not with a refusal: $(cat "$TMP/obs-pub.out")"
ok "ph-observer cannot publish a signal (403 ACCESS_REFUSED)"
if "$BIN/ph-test-amqp" bind "$OBS_URL" 'event.metric.#' >"$TMP/obs-bind.out" 2>&1; then
    fail "ph-observer bound a queue to event.metric.#"
fi
has "$TMP/obs-bind.out" 'queue.bind: 403 ACCESS_REFUSED' || fail "binding failed, but not with a refusal: $(cat "$TMP/obs-bind.out")"
"$BIN/ph-test-amqp" bind "$OBS_URL" "event.metric.status-delta.$SWARM.swarm-controller.*" >"$TMP/obs-bind-ok.out" 2>&1 ||
    fail "ph-observer cannot bind the aggregate pattern: $(cat "$TMP/obs-bind-ok.out")"
ok "ph-observer is refused a binding to event.metric.# (403), the swarm's aggregate is allowed"

echo "== three UI instances in chromium"
T0=$(date +%s)
# In the background, so that a signal to this script is handled at once.
(cd "$BROWSER_DIR" && exec node ui_test.mjs --base "$HTTP/" --swarm "$SWARM" --workers "$WORKERS" \
    --out "$SHOTS" --mgmt-port "$PH_MGMT_PORT" --mgmt-credentials "$RDIR/credentials" --pages 3) \
    >"$TMP/ui_test.log" 2>&1 &
NODE_PID=$!
rc=0
wait "$NODE_PID" || rc=$?
NODE_PID=
cat "$TMP/ui_test.log"
np=$(grep -c '^PASS:' "$TMP/ui_test.log" || true)
nf=$(grep -c '^FAIL:' "$TMP/ui_test.log" || true)
PASSED=$((PASSED + np))
if [ "$rc" -ne 0 ] || [ "$nf" -ne 0 ]; then
    FAILED=$((FAILED + nf - 1)) # fail() adds the last one
    [ "$nf" -gt 0 ] || FAILED=$((FAILED + 1))
    fail "the browser checks failed (ui_test.mjs exit $rc): see above; orchestrator log: $(tail -n 5 "$RUN/orchestrator/orchestrator.log")"
fi
echo "browser checks: $np passed in $(($(date +%s) - T0)) s"

echo "== phive down"
"$ROOT/deploy/phive" down "$SWARM" >"$TMP/phive-down.log" 2>&1 || fail "phive down failed: $(cat "$TMP/phive-down.log")"
has "$TMP/phive-down.log" 'stopping the orchestrator' || fail "phive down did not stop the orchestrator: $(cat "$TMP/phive-down.log")"
[ ! -e "$RUN/orchestrator/orchestrator.pid" ] ||
    fail "the orchestrator's pid file is still there (pid $(tr -dc '0-9' <"$RUN/orchestrator/orchestrator.pid"))"
if "$RMQ" status --dir "$RDIR" >/dev/null 2>&1; then fail "the private node still runs after phive down"; fi
ok "phive down stopped the swarm, then the orchestrator, then the node"

echo "test_ui_browser: $PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
