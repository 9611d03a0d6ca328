#!/usr/bin/env bash
# The standard ph-loadgen sweep: W = 10, 100, 1,000, 10,000 simulated workers
# at R = 1 and 10 status updates per second each, and W = 1,000 at R = 100
# (where the per-worker stream saturates the broker), both modes (shm: the real
# pipeline; amqp-per-worker: every worker publishing its own status), on one
# private RabbitMQ node, one run after the other; then the machine's ceilings
# (a bare two-process status ring, a bare AMQP publish loop). Prints progress,
# then writes
#   bench/results/<UTC date>.md     the table, with the amqp-per-worker / shm
#                                   ratios of every (W, R) measured in this run,
#                                   and the ceilings
#   bench/results/<UTC date>.png    updates/s and CPU per update against W
#   bench/results/<UTC date>.jsonl  one ph-loadgen JSON object per run, one
#                                   per ceiling
#
#   bench/loadgen.sh                    the sweep (about 7.5 minutes here)
#   bench/loadgen.sh --quick            W = 10, 100 only, short windows (~1 min)
#   bench/loadgen.sh --seconds S        measured window per run (default 8)
#   bench/loadgen.sh --out DIR          results folder (default bench/results)
#
# Builds Release into build-bench/ first. Installs missing Debian packages
# (deploy/ensure-deps --bench: gnuplot-nox) as root, else prints the command.
# Environment: PH_AMQP_URL_FILE set: that broker (and its rabbitmq.pid beside
# it, if any, for the broker's CPU); otherwise a private node on
# PH_AMQP_PORT (default 29672) and the ports after it.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${PH_BENCH_BUILD:-$here/build-bench}
out=$here/bench/results
seconds=8
workers=(10 100 1000 10000)
rates=(1 10)
extra=("1000 100") # (W R) pairs after the grid
while [[ $# -gt 0 ]]; do
    case $1 in
        --quick) workers=(10 100); extra=(); seconds=3; shift ;;
        --seconds) seconds=${2:?--seconds needs a value}; shift 2 ;;
        --out) out=${2:?--out needs a folder}; shift 2 ;;
        -h | --help) sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "loadgen.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
done
[[ "$seconds" =~ ^[0-9]+(\.[0-9]+)?$ ]] || { echo "loadgen.sh: --seconds wants a number, not '$seconds'" >&2; exit 2; }

"$here/deploy/ensure-deps" --bench || exit 1
echo "== building Release into $build" >&2
cmake -S "$here" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j"$(nproc)" --target ph-loadgen ph-bridge ph-swarm-controller ph-bench-ring >/dev/null

# shellcheck source=bench/broker.sh
. "$here/bench/broker.sh"
bench_broker loadgen

mkdir -p "$out"
stamp=$(date -u +%Y-%m-%d)
jsonl=$out/$stamp.jsonl
: >"$jsonl"
pairs=()
for w in "${workers[@]}"; do
    for r in "${rates[@]}"; do pairs+=("$w $r"); done
done
pairs+=("${extra[@]}")
total=$((${#pairs[@]} * 2))
n=0
t_start=$SECONDS
for pair in "${pairs[@]}"; do
    read -r w r <<<"$pair"
    for mode in shm amqp-per-worker; do
        n=$((n + 1))
        printf '[%2d/%d] %-15s W=%-6s R=%-3s ... ' "$n" "$total" "$mode" "$w" "$r" >&2
        t0=$SECONDS
        if line=$("$build/bin/ph-loadgen" --mode "$mode" --workers "$w" --rate "$r" \
            --seconds "$seconds" --warmup 2 --amqp-url-file "$url_file" --json 2>"$out/.last.err"); then
            :
        fi
        if [[ -z "$line" ]]; then
            line=$(printf '{"mode":"%s","workers":%s,"rate":%s,"error":"no output: %s"}' \
                "$mode" "$w" "$r" "$(tail -n 1 "$out/.last.err" | tr -d '"\\')")
        fi
        printf '%s\n' "$line" >>"$jsonl"
        /usr/bin/python3 -c '
import json, sys
d = json.loads(sys.argv[1])
if d.get("error"):
    print("FAILED: %s" % d["error"], end="")
else:
    print("%.0f of %.0f updates/s%s, %.1f CPU-s per million (marginal %.2f)" % (
          d["achieved_updates_per_s"], d["offered_updates_per_s"],
          "" if d["keeping_up"] else " (NOT keeping up)", d["cpu_s_per_million_updates"],
          d.get("marginal_cpu_s_per_million_updates") or float("nan")), end="")' "$line" >&2
        echo " ($((SECONDS - t0)) s)" >&2
    done
done
# The ceilings each result is read against, on this machine, in this run:
# the bare two-process status ring (ph-bench-ring) and a bare AMQP publish
# loop (two processes publishing pre-built status-deltas to ph.control as
# fast as the broker takes them, one consumer: ph-loadgen offered far more
# than any broker here takes).
# ceiling LABEL PICK SHOW COMMAND...: runs COMMAND (one JSON object on
# stdout), appends what the Python expression PICK makes of it (d) to the
# runs file, and shows SHOW of that line.
ceiling() {
    local label=$1 pick=$2 show=$3 json
    shift 3
    printf '[ceiling] %s ... ' "$label" >&2
    if json=$("$@" 2>/dev/null) && [[ -n "$json" ]]; then
        /usr/bin/python3 -c "import json, sys; d = json.loads(sys.argv[1]); print(json.dumps($pick))" \
            "$json" >>"$jsonl"
        tail -n 1 "$jsonl" | /usr/bin/python3 -c "import json, sys; d = json.load(sys.stdin); print($show)" >&2
    else
        echo "failed" >&2
    fi
}
ceiling "bare two-process ring" \
    '{"ceiling": "ring", "records_per_s": d["records_per_s"], "records_per_s_batched": d["records_per_s_batched"], "write_ns_p50": d["write_ns_p50"]}' \
    '"%.1f M records/s" % (d["records_per_s"] / 1e6)' \
    "$build/bin/ph-bench-ring" --json
ceiling "bare AMQP publish loop" \
    '{"ceiling": "amqp", "msgs_per_s": d["achieved_updates_per_s"], "offered_per_s": d["offered_updates_per_s"], "cpu_s_per_million": d["cpu_s_per_million_updates"]}' \
    '"%.0f msgs/s" % d["msgs_per_s"]' \
    "$build/bin/ph-loadgen" --mode amqp-per-worker --workers 200 --rate 1000 --procs 2 \
    --changes-per-s 1 --seconds "$seconds" --warmup 1 --amqp-url-file "$url_file" --json
rm -f "$out/.last.err"
echo "== sweep done in $((SECONDS - t_start)) s; writing $out/$stamp.md and .png" >&2

/usr/bin/python3 "$here/bench/loadgen_report.py" "$jsonl" "$out/$stamp.md" "$out/$stamp.png" \
    "$(nproc)" "$seconds"
echo "$out/$stamp.md"
