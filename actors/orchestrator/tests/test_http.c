/* The orchestrator's HTTP server (http.c) on a real socket, driven by the
 * loop alone (ph/loop.h, no tick): work that libmicrohttpd has pending with
 * no socket event (a pipelined request, a connection timeout) is done because
 * the server arms a timer from MHD_get_timeout; and the request guards
 * (guard.h) answer 403 and 415 over the wire. A watchdog ends a wait that
 * would otherwise last forever; it is a failure bound, never a measure. */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "api.h"
#include "http.h"
#include "ph/common.h"
#include "registry.h"

#define WATCHDOG_MS 30000u

struct fixture {
    struct registry reg;
    struct api api;
    struct ph_loop *loop;
    struct http *http;
    int published;
};

static int count_publish(void *ctx, const char *type, const char *swarm, const char *role,
                         const char *instance, const char *cid, const char *ikey, json_t *data)
{
    (void)type, (void)swarm, (void)role, (void)instance, (void)cid, (void)ikey;
    json_decref(data);
    ((struct fixture *)ctx)->published++;
    return 0;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    struct reg_cfg cfg;
    reg_cfg_defaults(&cfg);
    assert_int_equal(reg_init(&f->reg, &cfg), PH_OK);
    api_init(&f->api, &f->reg, count_publish, f);
    char err[256];
    f->loop = ph_loop_new(64, err, sizeof err);
    assert_non_null(f->loop);
    const struct http_cfg hc = {.addr = "127.0.0.1:0", .timeout_s = 1};
    if (http_start(&f->http, &hc, &f->api, f->loop, err, sizeof err) != PH_OK)
        fail_msg("http_start: %s", err);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    ph_loop_free(f->loop);
    http_stop(f->http);
    reg_free(&f->reg);
    free(f);
    return 0;
}

/* ---- a client on the same loop ------------------------------------------ */

struct client {
    int fd;
    char buf[65536];
    size_t len;
    bool eof; /* the server closed the connection */
};

static void on_readable(void *ctx, uint64_t tag, int res);

static void client_arm(struct ph_loop *l, struct client *c)
{
    assert_true(ph_loop_poll(l, c->fd, POLLIN, on_readable, c, (uint64_t)(uintptr_t)l) != 0);
}

static void on_readable(void *ctx, uint64_t tag, int res)
{
    (void)res;
    struct client *c = ctx;
    for (;;) {
        ssize_t n = recv(c->fd, c->buf + c->len, sizeof c->buf - 1 - c->len, MSG_DONTWAIT);
        if (n > 0) {
            c->len += (size_t)n;
            c->buf[c->len] = '\0';
            continue;
        }
        if (n == 0 || (errno != EAGAIN && errno != EINTR)) c->eof = true;
        break;
    }
    if (!c->eof) client_arm((struct ph_loop *)(uintptr_t)tag, c);
}

static void client_open(struct fixture *f, struct client *c)
{
    memset(c, 0, sizeof *c);
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(c->fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(http_port(f->http))};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(c->fd, (struct sockaddr *)&sa, sizeof sa), 0);
    client_arm(f->loop, c);
}

static void client_send(struct client *c, const char *text)
{
    size_t len = strlen(text);
    assert_int_equal(send(c->fd, text, len, MSG_NOSIGNAL), (ssize_t)len);
}

static int responses(const struct client *c, const char *status_line)
{
    int n = 0;
    for (const char *p = strstr(c->buf, status_line); p; p = strstr(p + 1, status_line))
        n++;
    return n;
}

/* ---- running the loop until something holds ------------------------------ */

static uint64_t watchdog_gen;
static bool watchdog_fired;

static void on_watchdog(void *ctx, uint64_t tag, int res)
{
    (void)ctx;
    if (tag == watchdog_gen && res == -ETIME) watchdog_fired = true;
}

typedef bool (*until_fn)(const struct client *c, const void *arg);

/* Runs the loop until fn holds; false when the watchdog ends the wait. */
static bool run_until(struct fixture *f, const struct client *c, until_fn fn, const void *arg)
{
    watchdog_fired = false;
    uint64_t id = ph_loop_timeout(f->loop, WATCHDOG_MS, on_watchdog, NULL, ++watchdog_gen);
    assert_true(id != 0);
    while (!fn(c, arg) && !watchdog_fired)
        assert_true(ph_loop_once(f->loop) >= 0);
    ph_loop_cancel(f->loop, id);
    return fn(c, arg);
}

static bool has_responses(const struct client *c, const void *arg)
{
    const int *want = arg;
    return responses(c, "HTTP/1.1 200 ") >= *want;
}

static bool closed(const struct client *c, const void *arg)
{
    (void)arg;
    return c->eof;
}

/* ---- tests ---------------------------------------------------------------- */

static void a_pipelined_request_is_answered_without_any_new_socket_event(void **state)
{
    struct fixture *f = *state;
    struct client c;
    client_open(f, &c);
    /* Both requests arrive in one segment: after the first answer the second
     * waits in the connection's buffer, which epoll reports no more. */
    client_send(&c, "GET /api/swarms HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
                    "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    const int two = 2;
    if (!run_until(f, &c, has_responses, &two))
        fail_msg("the second pipelined request was not answered: %s", c.buf);
    assert_non_null(strstr(c.buf, "ph_swarms 0"));
    close(c.fd);
}

static void an_idle_half_open_connection_is_closed_after_the_connection_timeout(void **state)
{
    struct fixture *f = *state;
    struct client c;
    client_open(f, &c);
    /* Headers that never end, then silence. */
    client_send(&c, "GET /api/swarms HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    const uint64_t sent = ph_mono_ns();
    if (!run_until(f, &c, closed, NULL))
        fail_msg("the idle connection was still open after %u ms (timeout 1 s)", WATCHDOG_MS);
    /* Closed by the timeout, not sooner: load only makes it later. */
    assert_true(ph_mono_ns() - sent >= 900000000ull);
    assert_null(strstr(c.buf, "HTTP/1.1 200"));
    close(c.fd);
}

static void an_answered_connection_left_open_is_closed_after_the_connection_timeout(void **state)
{
    struct fixture *f = *state;
    struct client c;
    client_open(f, &c);
    client_send(&c, "GET /api/swarms HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    const int one = 1;
    assert_true(run_until(f, &c, has_responses, &one));
    if (!run_until(f, &c, closed, NULL))
        fail_msg("the kept-alive connection was still open after %u ms", WATCHDOG_MS);
    close(c.fd);
}

/* One request with Connection: close; the whole answer in c. */
static void exchange(struct fixture *f, struct client *c, const char *request)
{
    client_open(f, c);
    client_send(c, request);
    if (!run_until(f, c, closed, NULL)) fail_msg("no complete answer to %s", request);
    close(c->fd);
}

static void the_guards_answer_over_the_wire(void **state)
{
    struct fixture *f = *state;
    struct client c;
    exchange(f, &c, "GET /api/swarms HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n");
    assert_int_equal(responses(&c, "HTTP/1.1 403 "), 1);
    assert_non_null(strstr(c.buf, "\"error\""));
    exchange(f, &c, "GET / HTTP/1.1\r\nHost: evil.example:8088\r\nConnection: close\r\n\r\n");
    assert_int_equal(responses(&c, "HTTP/1.1 403 "), 1);
    exchange(f, &c,
             "POST /api/control-plane/reset HTTP/1.1\r\nHost: evil.example\r\nContent-Type: "
             "application/json\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    assert_int_equal(responses(&c, "HTTP/1.1 403 "), 1);
    exchange(f, &c,
             "POST /api/control-plane/refresh HTTP/1.1\r\nHost: localhost\r\nContent-Type: "
             "text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}");
    assert_int_equal(responses(&c, "HTTP/1.1 415 "), 1);
    exchange(f, &c,
             "POST /api/control-plane/refresh HTTP/1.1\r\nHost: 127.0.0.1\r\n"
             "Content-Length: 0\r\nConnection: close\r\n\r\n");
    assert_int_equal(responses(&c, "HTTP/1.1 415 "), 1);
    assert_int_equal(f->published, 0);
    exchange(f, &c,
             "POST /api/control-plane/refresh HTTP/1.1\r\nHost: [::1]:8088\r\nContent-Type: "
             "application/json; charset=utf-8\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    assert_int_equal(responses(&c, "HTTP/1.1 202 "), 1);
    assert_int_equal(f->published, 1);
    /* HTTP/1.0 without a Host: not a browser. */
    exchange(f, &c, "GET /api/swarms HTTP/1.0\r\n\r\n");
    assert_int_equal(responses(&c, "HTTP/1.0 200 ") + responses(&c, "HTTP/1.1 200 "), 1);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(a_pipelined_request_is_answered_without_any_new_socket_event),
        T(an_idle_half_open_connection_is_closed_after_the_connection_timeout),
        T(an_answered_connection_left_open_is_closed_after_the_connection_timeout),
        T(the_guards_answer_over_the_wire),
    };
    return cmocka_run_group_tests_name("orchestrator HTTP server on the loop", tests, NULL, NULL);
}
