#!/usr/bin/env bash
# A 2,000-worker swarm split over two "hosts", three ways, in one run on one
# private RabbitMQ node (ph-loadgen --mode shm --split):
#   all-local     every worker on the controller's segment
#   local+relay   half on the controller's segment, half on a ph-relay's
#                 segment (another host's), forwarded in batches
#   local+remote  half local, half in the worker SDK's remote mode (each
#                 speaks the contract over AMQP itself)
# at R = 1 and 10 status updates per second per worker. The remote split
# runs with --remote-workers (default 1000: 500 remote workers in one
# process): 1,000 agents started in one process on a 2-core machine did not
# all connect within 260 s here (docs/MULTIHOST.md). Prints progress,
# then writes bench/results/<UTC date>-multihost.md (table and the ratios to
# all-local of the same run) and bench/results/<UTC date>-multihost.jsonl.
#
#   bench/multihost.sh                 the run (about 2 minutes here)
#   bench/multihost.sh --workers W     another swarm size (default 2000)
#   bench/multihost.sh --seconds S     measured window per run (default 8)
#   bench/multihost.sh --remote-workers W   swarm size of the remote split
#   bench/multihost.sh --out DIR       results folder (default bench/results)
#
# Builds Release into build-bench/ first. Environment: PH_AMQP_URL_FILE set:
# that broker; otherwise a private node on PH_AMQP_PORT (default 29672).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${PH_BENCH_BUILD:-$here/build-bench}
out=$here/bench/results
seconds=8
workers=2000
remote_workers=1000
rates=(1 10)
while [[ $# -gt 0 ]]; do
    case $1 in
        --workers) workers=${2:?--workers needs a value}; shift 2 ;;
        --seconds) seconds=${2:?--seconds needs a value}; shift 2 ;;
        --remote-workers) remote_workers=${2:?--remote-workers needs a value}; shift 2 ;;
        --out) out=${2:?--out needs a folder}; shift 2 ;;
        --rates) IFS=, read -r -a rates <<<"${2:?--rates needs a list}"; shift 2 ;;
        -h | --help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "multihost.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
done
[[ "$seconds" =~ ^[0-9]+(\.[0-9]+)?$ ]] || { echo "multihost.sh: --seconds wants a number" >&2; exit 2; }
[[ "$workers" =~ ^[0-9]+$ && "$workers" -ge 2 ]] || { echo "multihost.sh: --workers wants a number >= 2" >&2; exit 2; }

"$here/deploy/ensure-deps" --bench || exit 1
echo "== building Release into $build" >&2
cmake -S "$here" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j"$(nproc)" --target ph-loadgen ph-bridge ph-swarm-controller ph-relay >/dev/null

# shellcheck source=bench/broker.sh
. "$here/bench/broker.sh"
bench_broker multihost

mkdir -p "$out"
stamp=$(date -u +%Y-%m-%d)
jsonl=$out/$stamp-multihost.jsonl
: >"$jsonl"
n=0
total=$((${#rates[@]} * 3))
for r in "${rates[@]}"; do
    for split in local relay remote; do
        n=$((n + 1))
        w=$workers
        [[ $split != remote ]] || w=$remote_workers
        printf '[%d/%d] W=%s R=%s %-7s ... ' "$n" "$total" "$w" "$r" "$split" >&2
        t0=$SECONDS
        line=$("$build/bin/ph-loadgen" --mode shm --split "$split" --workers "$w" --rate "$r" \
            --seconds "$seconds" --warmup 2 --amqp-url-file "$url_file" --json 2>"$out/.last.err") || true
        [[ -n "$line" ]] || line=$(printf '{"split":"%s","rate":%s,"error":"no output: %s"}' \
            "$split" "$r" "$(tail -n 1 "$out/.last.err" | tr -d '"\\')")
        printf '%s\n' "$line" >>"$jsonl"
        /usr/bin/python3 -c '
import json, sys
d = json.loads(sys.argv[1])
print("FAILED: %s" % d["error"] if d.get("error") else
      "%.0f updates/s made, %.1f CPU-s per million, %.1f broker msgs/s" % (
      d["made_updates_per_s"], d["cpu_s"] / (d["made_updates_per_s"] * d["seconds"] / 1e6),
      d["broker_msgs_per_s"]), end="")' "$line" >&2
        echo " ($((SECONDS - t0)) s)" >&2
    done
done
rm -f "$out/.last.err"

/usr/bin/python3 - "$jsonl" "$out/$stamp-multihost.md" "$workers" "$seconds" <<'EOF'
import json, sys, os, datetime
src, dst, workers, seconds = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
runs = [json.loads(l) for l in open(src) if l.strip()]
def f(v, fmt="{:,.1f}"):
    return "–" if v is None or v != v else fmt.format(v)
out = ["# A swarm over two hosts: all-local, local + relay, local + remote workers, %s" %
       datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M UTC"), "",
       "Machine: %d CPUs; %s workers, half of them on the second \"host\" (a separate segment served by `ph-relay`, "
       "or the worker SDK's remote mode); window %s s after a 2 s warm-up; one private RabbitMQ node; "
       "every run in the same sweep. CPU counts every process involved (workers, controller, bridge, relay, "
       "observer, broker). Reproduce: `bench/multihost.sh`." % (os.cpu_count(), workers, seconds), "",
       "`made`: status updates the workers made (SDK calls); CPU per update is over those. Remote workers "
       "reach the controller as the contract's status messages (on change and as a heartbeat), so what the "
       "controller drains for them (`drained`) is their proxies' records, not one per update.", "",
       "| split | W | R | made updates/s | drained/s | CPU-s per M updates | marginal CPU-s per M | broker msgs/s | broker KiB/s | relay CPU-s | workers CPU-s | broker CPU-s |",
       "|---|---|---|---|---|---|---|---|---|---|---|---|"]
base = {}
for d in runs:
    if d.get("error"):
        out.append("| %s | %s | failed: %s |" % (d.get("split"), d.get("rate"), d["error"]))
        continue
    made = d["made_updates_per_s"]
    per_m = d["cpu_s"] / (made * d["seconds"] / 1e6) if made > 0 else float("nan")
    bp = d["cpu_s_by_process"]
    d["_per_m"] = per_m
    if d["split"] == "all-local":
        base[d["rate"]] = d
    out.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
        d["split"], f(d["workers"], "{:,}"), f(d["rate"], "{:g}"), f(made, "{:,.0f}"), f(d["achieved_updates_per_s"], "{:,.0f}"),
        f(per_m), f(d.get("marginal_cpu_s_per_million_updates"), "{:,.2f}"), f(d["broker_msgs_per_s"]),
        f(d["broker_bytes_per_s"] / 1024), f(bp.get("relay"), "{:.2f}"), f(bp.get("workers"), "{:.2f}"),
        f(bp.get("broker"), "{:.2f}")))
out += ["", "Against all-local of the same rate, same run (CPU per update and broker messages, above 1: costlier; "
        "the remote split has its own swarm size, see W):", "",
        "| split | R | CPU per update | broker msgs/s |", "|---|---|---|---|"]
for d in runs:
    b = base.get(d.get("rate"))
    if d.get("error") or b is None or d["split"] == "all-local":
        continue
    out.append("| %s | %g | %.2fx | %.1fx |" % (d["split"], d["rate"], d["_per_m"] / b["_per_m"],
                                               d["broker_msgs_per_s"] / b["broker_msgs_per_s"]))
open(dst, "w").write("\n".join(out) + "\n")
print("wrote " + dst)
EOF
