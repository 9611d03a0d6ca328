#!/usr/bin/env bash
# Smoke test of the benchmarks in bench/: each one runs with the smallest
# sizes it accepts and must exit 0 and print one JSON object that parses and
# carries its main figures; a bad option gets a usage error (exit 2); and no
# run leaves a folder in /tmp, a segment in /dev/shm or a process behind.
# The figures themselves are not judged here (machines are noisy; bench/
# prints them): this only keeps the benchmark programs working.
#
# The AMQP benchmarks (ph-bench-amqp, ph-bench-fanout, ph-loadgen) need a
# broker and are run by bench/amqp/run.sh and bench/loadgen.sh (ph-loadgen
# also by tests/amqp/test_amqp_e2e.sh); here their command-line handling is
# checked, and the envelope ph-loadgen's per-worker mode sends.
#
# Usage: tests/integration/test_bench_smoke.sh [BIN_DIR]
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN=${1:-${PH_BIN_DIR:-$ROOT/build/bin}}
BIN=$(cd "$BIN" && pwd) || exit 1
PY=/usr/bin/python3
TMP=$(mktemp -d /tmp/ph-test-bench.XXXXXX)
trap 'rm -rf "$TMP"' EXIT

. "$ROOT/tests/lib/itest.sh"

tmp_folders() { find /tmp -maxdepth 1 -name 'ph-bench-*' 2>/dev/null | sort; }
before=$(tmp_folders)

# run NAME KEYS ARGS...: runs ph-bench-NAME ARGS --json (60 s at most) and
# checks that the output is one JSON object holding every key of KEYS
# (comma-separated; a.b looks into nested objects).
run() {
    local name=$1 keys=$2
    shift 2
    local out=$TMP/$name.json err=$TMP/$name.err
    timeout -s KILL 60 "$BIN/ph-bench-$name" "$@" --json >"$out" 2>"$err"
    local rc=$?
    if ((rc != 0)); then
        fail "bench_${name}_runs" "exit $rc: $(tail -c 400 "$err")"
        return
    fi
    local why
    why=$("$PY" - "$out" "$keys" <<'EOF'
import json, sys
try:
    doc = json.load(open(sys.argv[1]))
except ValueError as e:
    print("not one JSON object: %s" % e)
    sys.exit(0)
if not isinstance(doc, dict):
    print("not a JSON object")
    sys.exit(0)
for key in sys.argv[2].split(","):
    d = doc
    for part in key.split("."):
        if not isinstance(d, dict) or part not in d:
            print("no '%s' in %s" % (key, sorted(doc)))
            sys.exit(0)
        d = d[part]
if doc.get("error") is not None:
    print("error: %s" % doc["error"])
EOF
)
    if [[ -n "$why" ]]; then
        fail "bench_${name}_runs" "$why"
    else
        pass "bench_${name}_runs"
    fi
}

run ring records_per_s,write_ns_p50,tick_ns_p50 \
    --seconds 0.05 --repeat 1 --write-batches 100 --single-calls 1000 --tick-batches 100 --no-pin
run segsize size_bytes,claim_all_ms --workers 10
run status full_total_ms,delta_total_us --workers 100 --repeat 1 --iterations 50
run controller drain_records_per_s,idle_cpu_pct --slots 50 --seconds 0.1 --repeat 1 --cold-sweeps 5 --idle-seconds 1 \
    --settle-seconds 0.2 --no-pin
run latency p50_ms,p99_ms,matched --changes 20 --spacing-ms 20
run ctlcpu controller_cpu_pct,bridge_cpu_pct --workers 20 --slots 32 --seconds 1 --settle-seconds 0.5 --bridge on

# Usage errors: a clear line, exit 2, for every benchmark.
for b in ring controller segsize status latency ctlcpu amqp fanout; do
    [[ -x "$BIN/ph-bench-$b" ]] || { fail "bench_${b}_usage" "$BIN/ph-bench-$b is missing"; continue; }
    "$BIN/ph-bench-$b" --no-such-option >"$TMP/u.out" 2>"$TMP/u.err"
    rc=$?
    if ((rc == 2)) && grep -qxF "ph-bench-$b: unknown option '--no-such-option' (see --help)" "$TMP/u.err" &&
        (($(wc -l <"$TMP/u.err") == 1)); then
        pass "bench_${b}_refuses_an_unknown_option"
    else
        fail "bench_${b}_refuses_an_unknown_option" "exit $rc: $(head -c 300 "$TMP/u.err")"
    fi
done

# ph-loadgen: needs a broker to run (tests/amqp/test_amqp_e2e.sh runs it);
# here its usage errors, and the envelope its amqp-per-worker mode sends
# checked against the contract.
"$BIN/ph-loadgen" --workers 10 >"$TMP/u.out" 2>"$TMP/u.err"
rc=$?
if ((rc == 2)) && grep -qF "ph-loadgen: --mode shm or --mode amqp-per-worker is required" "$TMP/u.err"; then
    pass "loadgen_wants_a_mode"
else
    fail "loadgen_wants_a_mode" "exit $rc: $(head -c 300 "$TMP/u.err")"
fi
"$BIN/ph-loadgen" --mode tcp >"$TMP/u.out" 2>"$TMP/u.err"
rc=$?
if ((rc == 2)) && grep -qxF "ph-loadgen: invalid value 'tcp' for --mode (see --help)" "$TMP/u.err"; then
    pass "loadgen_refuses_an_unknown_mode"
else
    fail "loadgen_refuses_an_unknown_mode" "exit $rc: $(head -c 300 "$TMP/u.err")"
fi
if "$BIN/ph-loadgen" --print-envelope >"$TMP/env.jsonl" 2>"$TMP/env.err" &&
    "$PY" "$ROOT/tests/contract/validate.py" "$TMP/env.jsonl" >"$TMP/validate.out" 2>&1; then
    pass "loadgen_per_worker_envelope_meets_the_contract"
else
    fail "loadgen_per_worker_envelope_meets_the_contract" "$(tail -n 5 "$TMP/validate.out" "$TMP/env.err" 2>/dev/null)"
fi

# Nothing left behind.
after=$(tmp_folders)
if [[ "$before" == "$after" ]]; then
    pass "bench_runs_leave_no_folder_in_tmp"
else
    fail "bench_runs_leave_no_folder_in_tmp" "$(comm -13 <(echo "$before") <(echo "$after") | tr '\n' ' ')"
fi
left=$(find /dev/shm -maxdepth 1 -name 'ph.bench-*' 2>/dev/null | tr '\n' ' ')
if [[ -z "$left" ]]; then pass "bench_runs_leave_no_segment"; else fail "bench_runs_leave_no_segment" "$left"; fi

itest_summary test_bench_smoke
