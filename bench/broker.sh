# Sourced by the bench scripts (bash): the broker a benchmark runs against.
# bench_broker NAME [BASE]: sets url_file to $PH_AMQP_URL_FILE when set;
# otherwise starts a private RabbitMQ node in a new /tmp folder and stops and
# removes it when the script exits or is interrupted. Its ports (each
# PH_*_PORT that is set wins): AMQP BASE (default 29672), management BASE+1,
# web-STOMP BASE+2, distribution BASE+3, epmd BASE+4, rabbitmqctl BASE+5 to
# BASE+9; all below the kernel's ephemeral range. Needs `here` (the checkout).
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
    local base=${2:-29672}
    export PH_AMQP_PORT=${PH_AMQP_PORT:-$base} PH_MGMT_PORT=${PH_MGMT_PORT:-$((base + 1))}
    export PH_STOMP_PORT=${PH_STOMP_PORT:-$((base + 2))} PH_DIST_PORT=${PH_DIST_PORT:-$((base + 3))}
    export PH_EPMD_PORT=${PH_EPMD_PORT:-$((base + 4))}
    export PH_CTL_DIST_PORT=${PH_CTL_DIST_PORT:-$((base + 5))}
    echo "== starting a private RabbitMQ node in $bench_broker_dir (AMQP port $PH_AMQP_PORT)" >&2
    "$here/deploy/rabbitmq" start --dir "$bench_broker_dir" >&2
    url_file=$bench_broker_dir/amqp-url
}
