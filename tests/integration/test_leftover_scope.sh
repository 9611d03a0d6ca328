#!/usr/bin/env bash
# The leftover check of tests/run looks at the suite's own /dev/shm objects
# only (swarm ids "pht-..."), through the one filter in
# tests/lib/shm_leftovers.sh:
#
#   - a test object (ph.pht-...) and its bridge channel that appear after the
#     "before" snapshot are reported as left behind
#   - an object of a swarm someone runs beside the suite (ph.user-demo-...)
#     and its channel are not
#   - tests/run uses that filter for its check
#
# The objects made here are plain files with this shell's pid in their
# names, removed on exit (only the ones this script created).
#
# Usage: tests/integration/test_leftover_scope.sh [BIN_DIR]   (BIN_DIR unused)
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
LIB=$ROOT/tests/lib/shm_leftovers.sh

made=() # /dev/shm files this script created

. "$(dirname "${BASH_SOURCE[0]}")/../lib/itest.sh"

cleanup() {
    local f
    for f in "${made[@]}"; do rm -f "$f"; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [[ ! -f "$LIB" ]]; then
    fail "the_leftover_filter_exists" "$LIB is missing: tests/run has no filter of its own objects"
    echo "test_leftover_scope: $passed passed, $failed failed"
    exit 1
fi
# shellcheck source=SCRIPTDIR/../lib/shm_leftovers.sh
. "$LIB"

# make_object NAME: creates /dev/shm/NAME, which must not exist yet.
make_object() {
    if (set -o noclobber && : >"/dev/shm/$1") 2>/dev/null; then
        made+=("/dev/shm/$1")
    else
        fail "setup" "cannot create /dev/shm/$1 (it exists, or /dev/shm is not writable)"
        echo "test_leftover_scope: $passed passed, $failed failed"
        exit 1
    fi
}

ours=ph.pht-scope-$$
user=ph.user-demo-$$
before=$(ph_test_shm_objects)
make_object "$ours"
make_object "$ours.bridge"
make_object "$user"
make_object "$user.bridge"
left=$(ph_test_shm_leftovers "$before")

if grep -qxF "$ours" <<<"$left" && grep -qxF "$ours.bridge" <<<"$left"; then
    pass "a_test_segment_and_channel_left_behind_are_reported"
else
    fail "a_test_segment_and_channel_left_behind_are_reported" "reported: ${left:-nothing}"
fi

if grep -qF "$user" <<<"$left"; then
    fail "an_object_of_a_swarm_run_beside_the_suite_is_ignored" "reported: $left"
else
    pass "an_object_of_a_swarm_run_beside_the_suite_is_ignored"
fi

if grep -q 'shm_leftovers\.sh' "$ROOT/tests/run" && grep -q 'ph_test_shm_leftovers' "$ROOT/tests/run"; then
    pass "tests_run_checks_leftovers_with_this_filter"
else
    fail "tests_run_checks_leftovers_with_this_filter" "tests/run does not source $LIB or call ph_test_shm_leftovers"
fi

echo "test_leftover_scope: $passed passed, $failed failed"
((failed == 0))
