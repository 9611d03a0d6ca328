#!/bin/bash
# Builds ph-bench-amqp (Release), starts a private RabbitMQ node with
# deploy/rabbitmq in a fresh folder, runs the benchmark, stops the node and
# removes the folder (also on Ctrl-C). About 2 min plus the build.
#
#   bench/amqp/run.sh                 tables
#   bench/amqp/run.sh --json          one JSON object (also appended to BUILD/bench-amqp.jsonl)
#   bench/amqp/run.sh -- --only latency --changes 300    options after -- go to ph-bench-amqp
#   bench/amqp/run.sh --fanout        ph-bench-fanout instead: what one UI costs, subscribed
#                                     to the aggregate vs to every worker (1,000 workers)
#
# Environment: PH_BENCH_BUILD (build tree, default build-bench/);
# PH_AMQP_PORT / PH_MGMT_PORT / PH_STOMP_PORT / PH_DIST_PORT / PH_EPMD_PORT /
# PH_CTL_DIST_PORT (defaults 28672 and the ports after it, bench/broker.sh,
# away from a developer's broker); PH_AMQP_URL_FILE set: use that broker,
# start none.
set -eu

here=$(cd "$(dirname "$0")/../.." && pwd)
build=${PH_BENCH_BUILD:-$here/build-bench}
json=
prog=ph-bench-amqp
while [ $# -gt 0 ]; do
    case $1 in
        --json) json=--json; shift ;;
        --fanout) prog=ph-bench-fanout; shift ;;
        --table) shift ;;
        --) shift; break ;;
        -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "run.sh: unknown option '$1' (--json, --table, --fanout, -- ARGS)" >&2; exit 2 ;;
    esac
done

echo "== building Release into $build" >&2
cmake -S "$here" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j"$(nproc)" --target "$prog" ph-bridge ph-swarm-controller >/dev/null

if [ -z "${PH_AMQP_URL_FILE:-}" ] && ! command -v rabbitmq-server >/dev/null 2>&1 &&
    [ ! -x /usr/lib/rabbitmq/bin/rabbitmq-server ]; then
    echo "run.sh: rabbitmq-server is not installed (deploy/ensure-deps)" >&2
    exit 77
fi
# shellcheck source=bench/broker.sh
. "$here/bench/broker.sh"
bench_broker amqp 28672

echo "== $prog" >&2
if [ -n "$json" ]; then
    out=$("$build/bin/$prog" --amqp-url-file "$url_file" --json "$@")
    printf '%s\n' "$out"
    printf '{"when":"%s","bench":"%s","result":%s}\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$prog" "$out" >>"$build/bench-amqp.jsonl"
else
    "$build/bin/$prog" --amqp-url-file "$url_file" "$@"
fi
