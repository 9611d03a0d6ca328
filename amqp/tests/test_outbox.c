/* The AMQP client's outbox (amqp/client.c) without a broker: the client
 * connects only from ph_amqp_flush(), which these tests never call, so
 * every reliable message stays in the outbox. A full outbox drops its
 * oldest message, but never one published with a cookie: the caller keeps
 * that message's source until the confirm and bounds them itself. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ph/amqp.h"
#include "ph/common.h"
#include "ph/log.h"

/* The client's limit, as ph_amqp_outbox_full() reports it. */
#define LIMIT 10000u

static struct ph_amqp *client(void)
{
    /* Port 1 on loopback: nothing is ever connected to. */
    setenv("PH_AMQP_URL", "amqp://guest:guest@127.0.0.1:1/", 1);
    struct ph_amqp_url url;
    char err[256];
    assert_int_equal(ph_amqp_url_load(&url, NULL, err, sizeof err), PH_OK);
    const struct ph_amqp_cfg cfg = {.name = "test"};
    struct ph_amqp *a = NULL;
    assert_int_equal(ph_amqp_open(&a, &url, &cfg, err, sizeof err), PH_OK);
    return a;
}

static void publish(struct ph_amqp *a, uint64_t cookie)
{
    static const char body[] = "{}";
    const int rc = cookie != 0 ? ph_amqp_publish_cookie(a, "event.x", body, 2, cookie)
                               : ph_amqp_publish(a, "event.x", body, 2, true);
    assert_int_equal(rc, PH_OK);
}

static void a_full_outbox_drops_the_oldest_without_a_cookie(void **state)
{
    (void)state;
    struct ph_amqp *a = client();
    for (unsigned i = 0; i < LIMIT; i++)
        publish(a, 0);
    assert_true(ph_amqp_outbox_full(a));
    assert_int_equal(ph_amqp_stats(a)->outbox_dropped, 0);
    publish(a, 0);
    publish(a, 0);
    assert_int_equal(ph_amqp_stats(a)->outbox_dropped, 2);
    assert_int_equal(ph_amqp_unconfirmed(a), LIMIT);
    assert_int_equal(ph_amqp_oldest_cookie(a), 0);
    ph_amqp_close(a, 0);
}

static void messages_with_a_cookie_are_never_dropped(void **state)
{
    (void)state;
    struct ph_amqp *a = client();
    for (unsigned i = 0; i < LIMIT; i++)
        publish(a, 100 + i);
    assert_true(ph_amqp_outbox_full(a));
    /* Beyond the limit (a caller finishing the document it had read). */
    publish(a, 100 + LIMIT);
    assert_int_equal(ph_amqp_stats(a)->outbox_dropped, 0);
    assert_int_equal(ph_amqp_unconfirmed(a), LIMIT + 1);
    assert_int_equal(ph_amqp_oldest_cookie(a), 100);
    /* Messages without a cookie still make room among themselves. */
    publish(a, 0);
    assert_int_equal(ph_amqp_stats(a)->outbox_dropped, 0);
    publish(a, 0);
    assert_int_equal(ph_amqp_stats(a)->outbox_dropped, 1);
    assert_int_equal(ph_amqp_unconfirmed(a), LIMIT + 2);
    assert_int_equal(ph_amqp_oldest_cookie(a), 100);
    /* Forgotten cookies are no longer reported; their messages are still
     * never dropped. */
    ph_amqp_forget_cookies(a);
    assert_int_equal(ph_amqp_oldest_cookie(a), 0);
    publish(a, 0);
    assert_int_equal(ph_amqp_stats(a)->outbox_dropped, 2);
    assert_int_equal(ph_amqp_unconfirmed(a), LIMIT + 2);
    ph_amqp_close(a, 0);
}

static void the_oldest_cookie_skips_messages_without_one(void **state)
{
    (void)state;
    struct ph_amqp *a = client();
    assert_false(ph_amqp_outbox_full(a));
    assert_int_equal(ph_amqp_oldest_cookie(a), 0);
    publish(a, 0);
    publish(a, 7);
    publish(a, 0);
    publish(a, 9);
    assert_int_equal(ph_amqp_oldest_cookie(a), 7);
    assert_false(ph_amqp_outbox_full(a));
    ph_amqp_close(a, 0);
}

int main(void)
{
    ph_log_init("test_amqp_outbox", "unit");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_full_outbox_drops_the_oldest_without_a_cookie),
        cmocka_unit_test(messages_with_a_cookie_are_never_dropped),
        cmocka_unit_test(the_oldest_cookie_skips_messages_without_one),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
