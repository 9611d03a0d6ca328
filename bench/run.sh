#!/bin/sh
# Builds a Release tree in build-bench/ and runs every benchmark, printing the
# readable tables and then one JSON line per benchmark (also appended to
# build-bench/bench.jsonl with a timestamp).
#
#   bench/run.sh            tables, then JSON lines (about 6 min after the build)
#   bench/run.sh --table    tables only (about 3 min)
#   bench/run.sh --json     JSON lines only (about 3 min)
#
# Environment: PH_BENCH_BUILD moves the build tree; PH_BENCH_ONLY="status
# latency" runs only those programs (ring controller segsize status latency
# ctlcpu); PH_BENCH_ARGS_RING, PH_BENCH_ARGS_CONTROLLER, PH_BENCH_ARGS_SEGSIZE,
# PH_BENCH_ARGS_STATUS, PH_BENCH_ARGS_LATENCY, PH_BENCH_ARGS_CTLCPU add options
# to one program. Benchmarks print figures; nothing here fails on a figure.
set -eu

here=$(cd "$(dirname "$0")/.." && pwd)
build=${PH_BENCH_BUILD:-$here/build-bench}
mode=both
case "${1:-}" in
    "") ;;
    --table) mode=table ;;
    --json) mode=json ;;
    -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown option '$1' (--table, --json)" >&2; exit 2 ;;
esac

all="ring controller segsize status latency ctlcpu"
only=${PH_BENCH_ONLY:-$all}
for p in $only; do
    case " $all " in
        *" $p "*) ;;
        *) echo "run.sh: PH_BENCH_ONLY: unknown program '$p' ($all)" >&2; exit 2 ;;
    esac
done

echo "== building Release into $build" >&2
cmake -S "$here" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j"$(nproc)" \
    --target ph-bench-ring ph-bench-controller ph-bench-segsize ph-bench-status \
    ph-bench-latency ph-bench-ctlcpu ph-swarm-controller ph-bridge >/dev/null
bin=$build/bin

# prog NAME: the executable; args NAME: its extra options from the environment.
prog() {
    case $1 in
        segsize) echo ph-bench-segsize ;;
        *) echo "ph-bench-$1" ;;
    esac
}
args() {
    case $1 in
        ring) echo "${PH_BENCH_ARGS_RING:-}" ;;
        controller) echo "${PH_BENCH_ARGS_CONTROLLER:-}" ;;
        segsize) echo "${PH_BENCH_ARGS_SEGSIZE:-}" ;;
        status) echo "${PH_BENCH_ARGS_STATUS:-}" ;;
        latency) echo "${PH_BENCH_ARGS_LATENCY:-}" ;;
        ctlcpu) echo "${PH_BENCH_ARGS_CTLCPU:-}" ;;
    esac
}

run_tables() {
    first=1
    for p in $only; do
        [ "$first" = 1 ] || echo
        first=0
        echo "== $(prog "$p")"
        # shellcheck disable=SC2046
        "$bin/$(prog "$p")" $(args "$p")
    done
}

run_json() {
    stamp=$(date -u +%Y-%m-%dT%H:%M:%SZ)
    for p in $only; do
        # shellcheck disable=SC2046
        line=$("$bin/$(prog "$p")" --json $(args "$p"))
        echo "$line"
        printf '{"at":"%s","result":%s}\n' "$stamp" "$line" >>"$build/bench.jsonl"
    done
}

echo "== $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2
case $mode in
    table) run_tables ;;
    json) run_json ;;
    both) run_tables; echo; echo "== JSON"; run_json ;;
esac
