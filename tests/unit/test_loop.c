/* The event loop (shm/loop.c): timeouts, polls, reads and writes, signals,
 * cancellation, and request ids that a late completion cannot confuse. */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "ph/loop.h"

struct seen {
    int n;
    uint64_t tags[16];
    int res[16];
};

static void record(void *ctx, uint64_t tag, int res)
{
    struct seen *s = ctx;
    assert_true(s->n < 16);
    s->tags[s->n] = tag;
    s->res[s->n] = res;
    s->n++;
}

static struct ph_loop *loop(void)
{
    char err[128];
    struct ph_loop *l = ph_loop_new(8, err, sizeof err);
    assert_non_null(l);
    return l;
}

static void run_until(struct ph_loop *l, struct seen *s, int n)
{
    for (int i = 0; i < 100 && s->n < n; i++) assert_true(ph_loop_once(l) >= 0);
    assert_int_equal(s->n, n);
}

static void timeouts_complete_in_time_order_with_their_tags(void **state)
{
    (void)state;
    struct ph_loop *l = loop();
    struct seen s = {0};
    assert_true(ph_loop_timeout(l, 30, record, &s, 3) != 0);
    assert_true(ph_loop_timeout(l, 1, record, &s, 1) != 0);
    assert_true(ph_loop_timeout(l, 15, record, &s, 2) != 0);
    run_until(l, &s, 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(s.tags[i], (uint64_t)i + 1);
        assert_int_equal(s.res[i], -ETIME);
    }
    assert_int_equal(ph_loop_pending(l), 0);
    ph_loop_free(l);
}

static void a_cancelled_request_completes_with_ecanceled(void **state)
{
    (void)state;
    struct ph_loop *l = loop();
    struct seen s = {0};
    uint64_t id = ph_loop_timeout(l, 60000, record, &s, 7);
    ph_loop_cancel(l, id);
    run_until(l, &s, 1);
    assert_int_equal(s.tags[0], 7);
    assert_int_equal(s.res[0], -ECANCELED);
    assert_int_equal(ph_loop_pending(l), 0);
    ph_loop_free(l);
}

static void cancelling_a_finished_request_does_not_touch_its_slot_successor(void **state)
{
    (void)state;
    struct ph_loop *l = loop();
    struct seen s = {0};
    uint64_t old = ph_loop_timeout(l, 1, record, &s, 1);
    run_until(l, &s, 1);
    /* The same slot, a new generation. */
    uint64_t fresh = ph_loop_timeout(l, 20, record, &s, 2);
    assert_int_equal(fresh & 0xffffffffu, old & 0xffffffffu);
    assert_true(fresh != old);
    ph_loop_cancel(l, old);
    run_until(l, &s, 2);
    assert_int_equal(s.tags[1], 2);
    assert_int_equal(s.res[1], -ETIME); /* not cancelled */
    ph_loop_free(l);
}

static void a_poll_fires_when_its_fd_is_ready_and_reads_and_writes_complete(void **state)
{
    (void)state;
    struct ph_loop *l = loop();
    struct seen s = {0};
    int p[2];
    assert_int_equal(pipe(p), 0);
    assert_true(ph_loop_poll(l, p[0], POLLIN, record, &s, 10) != 0);
    assert_true(ph_loop_timeout(l, 5, record, &s, 11) != 0);
    run_until(l, &s, 1);
    assert_int_equal(s.tags[0], 11); /* nothing to read yet */
    const char msg[] = "hello";
    assert_true(ph_loop_write(l, p[1], msg, sizeof msg, (uint64_t)-1, record, &s, 12) != 0);
    run_until(l, &s, 3);
    bool poll_seen = false, write_seen = false;
    for (int i = 1; i < 3; i++) {
        if (s.tags[i] == 10) poll_seen = (s.res[i] & POLLIN) != 0;
        if (s.tags[i] == 12) write_seen = s.res[i] == (int)sizeof msg;
    }
    assert_true(poll_seen && write_seen);
    char buf[16] = {0};
    assert_true(ph_loop_read(l, p[0], buf, sizeof buf, (uint64_t)-1, record, &s, 13) != 0);
    run_until(l, &s, 4);
    assert_int_equal(s.res[3], (int)sizeof msg);
    assert_string_equal(buf, "hello");
    close(p[0]);
    close(p[1]);
    ph_loop_free(l);
}

static void signals_arrive_as_events_and_stop_ends_the_run(void **state)
{
    (void)state;
    struct ph_loop *l = loop();
    struct seen s = {0};
    char err[128];
    const int sigs[] = {SIGUSR1};
    assert_int_equal(ph_loop_signals(l, sigs, 1, record, &s, err, sizeof err), 0);
    raise(SIGUSR1);
    run_until(l, &s, 1);
    assert_int_equal(s.res[0], SIGUSR1);
    raise(SIGUSR1);
    run_until(l, &s, 2);
    assert_int_equal(s.res[1], SIGUSR1);
    ph_loop_stop(l);
    assert_int_equal(ph_loop_run(l), 0);
    assert_true(ph_loop_stopped(l));
    ph_loop_free(l);
}

static void many_requests_in_flight_beyond_the_queue_size(void **state)
{
    (void)state;
    struct ph_loop *l = loop(); /* 8 entries */
    struct seen s = {0};
    for (int i = 0; i < 16; i++) assert_true(ph_loop_timeout(l, 1 + (uint32_t)i, record, &s, (uint64_t)i) != 0);
    run_until(l, &s, 16);
    assert_int_equal(ph_loop_pending(l), 0);
    ph_loop_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(timeouts_complete_in_time_order_with_their_tags),
        cmocka_unit_test(a_cancelled_request_completes_with_ecanceled),
        cmocka_unit_test(cancelling_a_finished_request_does_not_touch_its_slot_successor),
        cmocka_unit_test(a_poll_fires_when_its_fd_is_ready_and_reads_and_writes_complete),
        cmocka_unit_test(signals_arrive_as_events_and_stop_ends_the_run),
        cmocka_unit_test(many_requests_in_flight_beyond_the_queue_size),
    };
    return cmocka_run_group_tests_name("event loop", tests, NULL, NULL);
}
