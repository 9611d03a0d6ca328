# shellcheck shell=bash
# Which /dev/shm objects belong to the test suite, for the leftover check of
# tests/run (and its own test, tests/integration/test_leftover_scope.sh).
#
# Every swarm id a test creates starts with "pht-" (segments
# /dev/shm/ph.pht-<...>, bridge channels /dev/shm/ph.pht-<...>.bridge), so the
# check looks at those only: a swarm someone runs beside the suite
# (/dev/shm/ph.demo) is not the suite's to report. Sourced, not run.

PH_TEST_SHM_PREFIX=ph.pht-

# Prints the suite's objects now in /dev/shm, one name per line, sorted.
ph_test_shm_objects() {
    local f
    for f in /dev/shm/"$PH_TEST_SHM_PREFIX"*; do
        if [ -e "$f" ]; then printf '%s\n' "${f##*/}"; fi
    done | sort
}

# ph_test_shm_leftovers BEFORE: the suite's objects now in /dev/shm that are
# not in BEFORE (an earlier output of ph_test_shm_objects), one per line.
ph_test_shm_leftovers() {
    comm -13 <(printf '%s\n' "$1") <(ph_test_shm_objects)
}
