/* The swarm-file parser (deploy/supervisor/swarmfile.c): instance ids must
 * be unique across the swarm and differ from the controller's, and a swarm
 * of the largest size a segment holds is read.
 *
 * The uniqueness check compared every pair of ids until the libFuzzer run
 * found a file of 65,536 default ids that took over 5 s to read; it now
 * sorts. Its speed is guarded by that file, replayed with libFuzzer's 5 s
 * limit (tests/fuzz/regress/swarmfile/), not here: no test here times
 * anything. The cases here pin which problem it reports (the first in file
 * order, a repeat naming the role of the earlier one) so that the sorted
 * check says what the pairwise one said. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "ph/shm.h"
#include "supervisor.h"

static char dir[64];
static char path[128];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/ph-test-swarmfile.XXXXXX");
    if (mkdtemp(dir) == NULL) return -1;
    snprintf(path, sizeof path, "%s/swarm.json", dir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    unlink(path);
    rmdir(dir);
    return 0;
}

/* Writes `text` as the swarm file and loads it; err gets the message. */
static int load(const char *text, struct sup_spec *spec, char *err, size_t errlen)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
    err[0] = '\0';
    return sup_spec_load(path, spec, err, errlen);
}

/* Loads `text` and expects it refused with a message containing `needle`. */
static void refused(const char *text, const char *needle)
{
    struct sup_spec spec;
    char err[1024];
    const int rc = load(text, &spec, err, sizeof err);
    if (rc != PH_ERR_INVAL || strstr(err, needle) == NULL)
        fail_msg("expected a refusal saying \"%s\", got rc %d: %s", needle, rc, err);
}

static void a_repeated_instance_is_reported_with_both_roles(void **state)
{
    (void)state;
    /* w-2 repeats in roles[2] (first seen in roles[0]); w-1 repeats later
     * in file order (roles[3]): the first repeat in file order is the one
     * reported. */
    refused("{\"swarmId\": \"s\", \"roles\": ["
            "{\"role\": \"a\", \"count\": 2, \"instances\": [\"w-1\", \"w-2\"]},"
            "{\"role\": \"b\", \"count\": 1, \"instances\": [\"w-3\"]},"
            "{\"role\": \"c\", \"count\": 1, \"instances\": [\"w-2\"]},"
            "{\"role\": \"d\", \"count\": 2, \"instances\": [\"w-4\", \"w-1\"]}]}",
            "roles[2]: instance id 'w-2' is used twice (also in roles[0])");
}

static void a_repeat_within_one_role_is_reported(void **state)
{
    (void)state;
    refused("{\"swarmId\": \"s\", \"roles\": ["
            "{\"role\": \"a\", \"count\": 3, \"instances\": [\"x\", \"y\", \"x\"]}]}",
            "roles[0]: instance id 'x' is used twice (also in roles[0])");
}

static void the_controllers_instance_is_refused_for_a_worker(void **state)
{
    (void)state;
    refused("{\"swarmId\": \"s\", \"roles\": ["
            "{\"role\": \"a\", \"count\": 1, \"instances\": [\"w\"]},"
            "{\"role\": \"b\", \"count\": 1, \"instances\": [\"s-controller\"]}]}",
            "roles[1]: instance id 's-controller' is the controller's");
}

static void the_first_problem_in_file_order_is_reported(void **state)
{
    (void)state;
    /* A repeat before the controller's name: the repeat. */
    refused("{\"swarmId\": \"s\", \"roles\": ["
            "{\"role\": \"a\", \"count\": 2, \"instances\": [\"x\", \"x\"]},"
            "{\"role\": \"b\", \"count\": 1, \"instances\": [\"s-controller\"]}]}",
            "roles[0]: instance id 'x' is used twice (also in roles[0])");
    /* The controller's name before a repeat: the controller's name. */
    refused("{\"swarmId\": \"s\", \"roles\": ["
            "{\"role\": \"a\", \"count\": 2, \"instances\": [\"s-controller\", \"y\"]},"
            "{\"role\": \"b\", \"count\": 1, \"instances\": [\"y\"]}]}",
            "roles[0]: instance id 's-controller' is the controller's");
    /* The controller's name twice: its first place, as the controller's. */
    refused("{\"swarmId\": \"s\", \"roles\": ["
            "{\"role\": \"a\", \"count\": 1, \"instances\": [\"w\"]},"
            "{\"role\": \"b\", \"count\": 1, \"instances\": [\"s-controller\"]},"
            "{\"role\": \"c\", \"count\": 1, \"instances\": [\"s-controller\"]}]}",
            "roles[1]: instance id 's-controller' is the controller's");
}

static void the_largest_swarm_loads_with_distinct_default_ids(void **state)
{
    (void)state;
    struct sup_spec spec;
    char err[1024];
    char text[256];
    snprintf(text, sizeof text,
             "{\"swarmId\": \"big\", \"roles\": [{\"role\": \"a\", \"count\": %u}]}", PH_MAX_SLOTS);
    int rc = load(text, &spec, err, sizeof err);
    assert_int_equal(rc, PH_OK);
    assert_int_equal(spec.total_workers, PH_MAX_SLOTS);
    assert_int_equal(spec.slots, PH_MAX_SLOTS);
    assert_string_equal(spec.roles[0].instances[0], "big-a-1");
    assert_string_equal(spec.roles[0].instances[PH_MAX_SLOTS - 1], "big-a-65536");
    sup_spec_free(&spec);
}

static void too_many_workers_are_refused_at_the_role_that_overflows(void **state)
{
    (void)state;
    /* The third role would take the total over PH_MAX_SLOTS: refused there,
     * without reading the fourth. */
    refused("{\"swarmId\": \"s\", \"roles\": ["
            "{\"role\": \"a\", \"count\": 30000},"
            "{\"role\": \"b\", \"count\": 30000},"
            "{\"role\": \"c\", \"count\": 30000},"
            "{\"role\": \"d\", \"count\": 30000}]}",
            "at least 90000 workers in total; at most 65536 fit a segment");
    refused("{\"swarmId\": \"s\", \"roles\": ["
            "{\"role\": \"a\", \"count\": 40000},"
            "{\"role\": \"b\", \"count\": 40000}]}",
            "roles: 80000 workers in total; at most 65536 fit a segment");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_repeated_instance_is_reported_with_both_roles),
        cmocka_unit_test(a_repeat_within_one_role_is_reported),
        cmocka_unit_test(the_controllers_instance_is_refused_for_a_worker),
        cmocka_unit_test(the_first_problem_in_file_order_is_reported),
        cmocka_unit_test(the_largest_swarm_loads_with_distinct_default_ids),
        cmocka_unit_test(too_many_workers_are_refused_at_the_role_that_overflows),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
