/* A program that does not link ph_worker_remote has no remote mode: attach
 * says which target to link, and AUTO keeps the local error. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ph/worker.h"

static void remote_mode_is_refused_with_a_reason(void **state)
{
    (void)state;
    setenv("PH_AMQP_URL", "amqp://u:p@127.0.0.1:1/", 1);
    unsetenv("PH_WORKER_MODE");
    char err[256];
    struct ph_worker_opts o = {
        .swarm_id = "pht-wr-unlinked", .role = "r", .instance = "i1", .mode = PH_WORKER_REMOTE};
    assert_null(ph_worker_attach(&o, err, sizeof err));
    assert_non_null(strstr(err, "remote mode not linked into this program: link ph_amqp"));
    o.mode = PH_WORKER_AUTO;
    assert_null(ph_worker_attach(&o, err, sizeof err));
    assert_non_null(strstr(err, "does not exist"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(remote_mode_is_refused_with_a_reason),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
