#!/bin/sh
# Builds a Release tree in build-bench/ and runs every benchmark, printing the
# readable tables and then one JSON line per benchmark (also appended to
# build-bench/bench.jsonl with a timestamp).
#
#   bench/run.sh            tables, then JSON lines (about 70 s after the build)
#   bench/run.sh --table    tables only
#   bench/run.sh --json     JSON lines only
#
# Environment: PH_BENCH_BUILD moves the build tree; PH_BENCH_ARGS_RING,
# PH_BENCH_ARGS_CONTROLLER, PH_BENCH_ARGS_SEGSIZE add options to one program.
# Benchmarks print figures; nothing here fails on a figure.
set -eu

here=$(cd "$(dirname "$0")/.." && pwd)
build=${PH_BENCH_BUILD:-$here/build-bench}
mode=both
case "${1:-}" in
    "") ;;
    --table) mode=table ;;
    --json) mode=json ;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown option '$1' (--table, --json)" >&2; exit 2 ;;
esac

echo "== building Release into $build" >&2
cmake -S "$here" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j"$(nproc)" \
    --target ph-bench-ring ph-bench-controller ph-bench-segsize ph-swarm-controller >/dev/null
bin=$build/bin

run_tables() {
    echo "== ph-bench-ring"
    # shellcheck disable=SC2086
    "$bin/ph-bench-ring" ${PH_BENCH_ARGS_RING:-}
    echo
    echo "== ph-bench-controller"
    # shellcheck disable=SC2086
    "$bin/ph-bench-controller" ${PH_BENCH_ARGS_CONTROLLER:-}
    echo
    echo "== ph-bench-segsize"
    # shellcheck disable=SC2086
    "$bin/ph-bench-segsize" ${PH_BENCH_ARGS_SEGSIZE:-}
}

run_json() {
    stamp=$(date -u +%Y-%m-%dT%H:%M:%SZ)
    for prog in ph-bench-ring ph-bench-controller ph-bench-segsize; do
        case $prog in
            ph-bench-ring) extra=${PH_BENCH_ARGS_RING:-} ;;
            ph-bench-controller) extra=${PH_BENCH_ARGS_CONTROLLER:-} ;;
            *) extra=${PH_BENCH_ARGS_SEGSIZE:-} ;;
        esac
        # shellcheck disable=SC2086
        line=$("$bin/$prog" --json $extra)
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
