#!/usr/bin/env bash
# End-to-end status semantics: a real controller, real workers and the bridge
# with its file sink; see e2e_status.py.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
exec /usr/bin/python3 "$here/e2e_status.py" "${1:-${PH_BIN_DIR:-$here/../../build/bin}}"
