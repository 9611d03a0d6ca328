# Sourced by the bench scripts (bash): the broker a benchmark runs against.
# bench_broker NAME: sets url_file to $PH_AMQP_URL_FILE when set; otherwise
# starts a private RabbitMQ node in a new /tmp folder (PH_AMQP_PORT,
# default 29672, and the ports after it) and stops and removes it when the
# script exits or is interrupted. Needs `here` (the checkout).
# shellcheck shell=bash

bench_broker_dir=
bench_broker_stop() {
    if [[ -n "$bench_broker_dir" ]]; then
        "$here/deploy/rabbitmq" stop --dir "$bench_broker_dir" >/dev/null 2>&1 || true
        rm -rf "$bench_broker_dir"
        bench_broker_dir=
    fi
}

bench_broker() {
    trap bench_broker_stop EXIT
    trap 'bench_broker_stop; exit 130' INT
    trap 'bench_broker_stop; exit 143' TERM
    if [[ -n "${PH_AMQP_URL_FILE:-}" ]]; then
        url_file=$PH_AMQP_URL_FILE
        return
    fi
    bench_broker_dir=$(mktemp -d "/tmp/ph-bench-$1-broker-XXXXXX")
    export PH_AMQP_PORT=${PH_AMQP_PORT:-29672} PH_MGMT_PORT=${PH_MGMT_PORT:-29673}
    export PH_STOMP_PORT=${PH_STOMP_PORT:-29674} PH_DIST_PORT=${PH_DIST_PORT:-29675}
    export PH_EPMD_PORT=${PH_EPMD_PORT:-29676} PH_CTL_DIST_PORT=${PH_CTL_DIST_PORT:-29677}
    echo "== starting a private RabbitMQ node in $bench_broker_dir (AMQP port $PH_AMQP_PORT)" >&2
    "$here/deploy/rabbitmq" start --dir "$bench_broker_dir" >&2
    url_file=$bench_broker_dir/amqp-url
}
