#!/usr/bin/env bash
# Identifiers that cannot be routing-key segments (include/ph/common.h:
# 1..63 characters of [A-Za-z0-9_-], not "ALL") are refused at every entry
# point that takes one from a person or a file:
#
#   - the command-line options of ph-worker, ph-swarm-controller, ph-bridge,
#     ph-orchestrator, phctl (every subcommand), ph-supervisor and
#     deploy/phive
#   - the swarm file (swarm id, role names, instance names, controller
#     instance), read by ph-supervisor --check and by ph-swarm-controller
#
# Each bad id of the table goes to each entry point: the program must exit
# with a non-zero status of its own (not a signal, not a timeout) and say
# which rule the id breaks. Signals (bridge/sigcheck.c: routing key and
# envelope scope) and the orchestrator's REST API are checked by the cmocka
# tests bridge.test_sigcheck and orchestrator.test_orchestrator.
# Runs in about 30 s on a loaded 2-core machine (some 240 short-lived
# processes).
#
# Usage: tests/integration/test_identifiers.sh [BIN_DIR]
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN=${1:-${PH_BIN_DIR:-$ROOT/build/bin}}
[[ -d "$BIN" ]] || { echo "test_identifiers: no bin dir $BIN (build first)" >&2; exit 1; }
BIN=$(cd "$BIN" && pwd)
for b in ph-worker ph-swarm-controller ph-bridge ph-orchestrator phctl ph-supervisor; do
    [[ -x "$BIN/$b" ]] || { echo "test_identifiers: $BIN/$b is missing" >&2; exit 1; }
done
TMP=$(mktemp -d /tmp/ph-test-identifiers.XXXXXX)
cleanup() {
    # A program that accepted a bad id may have made an object under it;
    # only names this test can have made are removed.
    rm -f /dev/shm/ph.pht-idt-$$* 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
. "$(dirname "${BASH_SOURCE[0]}")/../lib/itest.sh"

LONG=$(printf 'x%.0s' $(seq 200))
BAD=("a.b" "a#" "*" "" "$LONG" "a b" "é" "../x" "ALL")
GOOD=pht-idt-$$
# What ph_ident_check says, and phive's own refusal.
RULE='is empty|is longer than|contains .* can be a routing-key segment|routing wildcard|is not (a swarm id|an identifier)'
# A broker that does not answer: an id must be refused before any connection.
export PH_AMQP_URL=amqp://u:p@127.0.0.1:1/
export PH_RUN_DIR=$TMP/run

# refused WHAT BAD COMMAND...: COMMAND exits non-zero by itself within 10 s
# and says why the id is refused.
refused() {
    local what=$1 bad=$2
    shift 2
    local out rc shown=${bad:0:12}
    [[ ${#bad} -gt 12 ]] && shown="$shown...(${#bad})"
    out=$(timeout -k 2 10 "$@" </dev/null 2>&1)
    rc=$?
    if [[ $rc -eq 0 || $rc -ge 124 ]]; then
        fail "$what '$shown'" "exit status $rc (accepted, timed out or crashed); output: ${out:0:400}"
    elif ! grep -Eq "$RULE" <<<"$out"; then
        fail "$what '$shown'" "exit status $rc but no identifier refusal; output: ${out:0:400}"
    else
        pass "$what '$shown'"
    fi
}

# Swarm files, all written by one python: good.json, valid, and for the
# i-th bad id bad-<i>-<key>.json with that key's value replaced.
python3 - "$TMP" "$GOOD" "${BAD[@]}" <<'EOF'
import json, sys
tmp, good, bads = sys.argv[1], sys.argv[2], sys.argv[3:]
def doc(key, value):
    d = {"swarmId": good,
         "roles": [{"role": "gen", "count": 1, "config": {"ratePerSec": 1}},
                   {"role": "proc", "count": 1, "instances": ["proc-a"]}],
         "controller": {"instance": good + "-ctl"}}
    if key == "swarmId": d["swarmId"] = value
    elif key == "role": d["roles"][0]["role"] = value
    elif key == "instance": d["roles"][1]["instances"] = [value]
    elif key == "controller.instance": d["controller"]["instance"] = value
    elif key == "runId": d["runId"] = value
    return d
json.dump(doc(None, None), open(f"{tmp}/good.json", "w"))
for i, bad in enumerate(bads, 1):
    for key in ("swarmId", "role", "instance", "controller.instance", "runId"):
        json.dump(doc(key, bad), open(f"{tmp}/bad-{i}-{key}.json", "w"), ensure_ascii=False)
EOF

# The valid file is accepted: the refusals below are the bad id's doing.
if out=$("$BIN/ph-supervisor" --check --swarm-file "$TMP/good.json" 2>&1); then
    pass "the valid swarm file is accepted"
else
    fail "the valid swarm file is accepted" "$out"
fi

i=0
for bad in "${BAD[@]}"; do
    i=$((i + 1))
    refused "ph-worker --swarm" "$bad" "$BIN/ph-worker" --swarm "$bad" --role gen --instance g-1 \
        --attach-timeout-ms 100
    refused "ph-worker --role" "$bad" "$BIN/ph-worker" --swarm "$GOOD" --role "$bad" \
        --instance g-1 --attach-timeout-ms 100
    refused "ph-worker --instance" "$bad" "$BIN/ph-worker" --swarm "$GOOD" --role gen \
        --instance "$bad" --attach-timeout-ms 100
    refused "ph-swarm-controller --swarm" "$bad" "$BIN/ph-swarm-controller" --swarm "$bad"
    refused "ph-swarm-controller --instance" "$bad" "$BIN/ph-swarm-controller" --swarm "$GOOD" \
        --instance "$bad" --journal-dir "$TMP/j"
    refused "ph-swarm-controller --run-id" "$bad" "$BIN/ph-swarm-controller" --swarm "$GOOD" \
        --run-id "$bad" --journal-dir "$TMP/j"
    refused "ph-bridge --swarm" "$bad" "$BIN/ph-bridge" --swarm "$bad" --sink "file:$TMP/b.jsonl" \
        --attach-timeout-s 1
    refused "ph-bridge --controller-instance" "$bad" "$BIN/ph-bridge" --swarm "$GOOD" \
        --controller-instance "$bad" --sink "file:$TMP/b.jsonl" --attach-timeout-s 1
    refused "ph-orchestrator --instance" "$bad" "$BIN/ph-orchestrator" --instance "$bad" \
        --http 127.0.0.1:1
    for sub in shm-dump shm-rm journal; do
        refused "phctl $sub --swarm" "$bad" "$BIN/phctl" "$sub" --swarm "$bad"
    done
    refused "phctl signal --swarm" "$bad" "$BIN/phctl" signal swarm-start --swarm "$bad" --timeout 1
    # ALL is the wildcard phctl signal documents for --role and --instance.
    [[ $bad == ALL ]] || refused "phctl signal --role" "$bad" "$BIN/phctl" signal config-update --swarm "$GOOD" \
        --role "$bad" --timeout 1
    [[ $bad == ALL ]] || refused "phctl signal --instance" "$bad" "$BIN/phctl" signal config-update --swarm "$GOOD" \
        --role gen --instance "$bad" --timeout 1
    refused "deploy/phive down" "$bad" env PH_BIN_DIR="$BIN" "$ROOT/deploy/phive" down "$bad"
    for key in swarmId role instance controller.instance runId; do
        f=$TMP/bad-$i-$key.json
        refused "swarm file $key (ph-supervisor --check)" "$bad" \
            "$BIN/ph-supervisor" --check --swarm-file "$f"
        # phive up hands the file to ph-supervisor --check: one key shows it.
        [[ $key != swarmId ]] || refused "swarm file $key (deploy/phive up)" "$bad" \
            env PH_BIN_DIR="$BIN" "$ROOT/deploy/phive" up "$f"
    done
    # The controller reads the same file for its own settings.
    for key in swarmId role controller.instance runId; do
        refused "swarm file $key (ph-swarm-controller --swarm-file)" "$bad" \
            "$BIN/ph-swarm-controller" --swarm "$GOOD" --swarm-file "$TMP/bad-$i-$key.json" \
            --journal-dir "$TMP/j"
    done
done
# The supervisor's own options that name nothing here are paths; its swarm
# id comes from the file only.

itest_summary
