#!/usr/bin/env bash
# The fault matrix's short profile (tests/faults/run, see its README): a
# private RabbitMQ node, a controller, a bridge and 20 workers, one fault
# per case, and the checks after recovery. About 4 minutes on 2 cores.
# usage: test_faults.sh [BIN_DIR]   Exits 77 (skipped) without rabbitmq-server.
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN=${1:-${PH_BIN_DIR:-$ROOT/build/bin}}
exec "$ROOT/tests/faults/run" --bin "$BIN"
