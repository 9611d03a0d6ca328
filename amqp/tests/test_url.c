/* The broker URL list (amqp/url.c): one URL or several (a cluster's nodes)
 * from a file, one per line with blank lines and '#' comments, or from
 * PH_AMQP_URL separated by commas; a bad entry is refused with a message
 * that names its position and never its text (it may hold a password). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "ph/amqp.h"
#include "ph/common.h"

#define SECRET "s3cr3t-Pa55"

static char path[64];

static const char *write_file(const char *text)
{
    snprintf(path, sizeof path, "/tmp/ph-test-url.XXXXXX");
    const int fd = mkstemp(path);
    assert_true(fd >= 0);
    const size_t n = strlen(text);
    assert_int_equal(write(fd, text, n), (ssize_t)n);
    close(fd);
    return path;
}

static void a_single_url_as_before(void **state)
{
    (void)state;
    struct ph_amqp_url u;
    char err[256] = "";
    const char *f = write_file("amqp://ph:" SECRET "@127.0.0.1:5672/%2f\n");
    assert_int_equal(ph_amqp_url_load(&u, f, err, sizeof err), PH_OK);
    unlink(f);
    assert_int_equal(u.count, 1);
    assert_string_equal(u.where, "ph@127.0.0.1:5672 vhost '/'");
    assert_string_equal(u.ci.host, "127.0.0.1");
    assert_int_equal(u.ci.port, 5672);
    assert_string_equal(u.ci.password, SECRET);
    assert_string_equal(u.raw, "amqp://ph:" SECRET "@127.0.0.1:5672/%2f");
    ph_amqp_url_wipe(&u);
    assert_null(strstr(u.raw, SECRET));
    assert_null(strstr(u.list[0], SECRET));
}

static void several_lines_with_comments_and_blank_lines(void **state)
{
    (void)state;
    struct ph_amqp_url u;
    char err[256] = "";
    const char *f = write_file("# deploy/phive cluster up\n"
                               "\n"
                               "amqp://ph:" SECRET "@127.0.0.1:5672/%2f\r\n"
                               "   # node2\n"
                               "  amqp://ph:" SECRET "@127.0.0.1:5682/%2f  \n"
                               "\t\n"
                               "amqp://other:pw@broker3:5692/v");
    assert_int_equal(ph_amqp_url_load(&u, f, err, sizeof err), PH_OK);
    unlink(f);
    assert_int_equal(u.count, 3);
    assert_string_equal(u.list_where[0], "ph@127.0.0.1:5672 vhost '/'");
    assert_string_equal(u.list_where[1], "ph@127.0.0.1:5682 vhost '/'");
    assert_string_equal(u.list_where[2], "other@broker3:5692 vhost 'v'");
    assert_string_equal(u.list[1], "amqp://ph:" SECRET "@127.0.0.1:5682/%2f");
    /* The first broker in the single-URL fields. */
    assert_string_equal(u.where, u.list_where[0]);
    assert_int_equal(u.ci.port, 5672);
    ph_amqp_url_wipe(&u);
}

static void a_comma_list_in_the_environment(void **state)
{
    (void)state;
    struct ph_amqp_url u;
    char err[256] = "";
    setenv("PH_AMQP_URL",
           "amqp://ph:" SECRET "@127.0.0.1:5672/%2f, amqp://ph:" SECRET "@127.0.0.1:5682/%2f,,",
           1);
    assert_int_equal(ph_amqp_url_load(&u, NULL, err, sizeof err), PH_OK);
    assert_int_equal(u.count, 2);
    assert_string_equal(u.list_where[1], "ph@127.0.0.1:5682 vhost '/'");
    ph_amqp_url_wipe(&u);
    unsetenv("PH_AMQP_URL");
}

static void a_bad_entry_is_refused_without_showing_it(void **state)
{
    (void)state;
    struct ph_amqp_url u;
    char err[256] = "";
    const char *f = write_file("amqp://ph:" SECRET "@127.0.0.1:5672/%2f\n"
                               "# a comment\n"
                               "http://ph:" SECRET "@127.0.0.1:5682/\n");
    assert_int_equal(ph_amqp_url_load(&u, f, err, sizeof err), PH_ERR_INVAL);
    unlink(f);
    assert_non_null(strstr(err, "AMQP URL 2 of the file"));
    assert_non_null(strstr(err, "(line 3)"));
    assert_null(strstr(err, SECRET));
    assert_null(strstr(err, "http"));
    assert_int_equal(u.count, 0);
    assert_null(strstr(u.list[0], SECRET));

    setenv("PH_AMQP_URL", "amqp://ph:" SECRET "@h:1/,amqp://ph:" SECRET "@h:port/", 1);
    assert_int_equal(ph_amqp_url_load(&u, NULL, err, sizeof err), PH_ERR_INVAL);
    assert_non_null(strstr(err, "AMQP URL 2 of PH_AMQP_URL"));
    assert_null(strstr(err, SECRET));

    setenv("PH_AMQP_URL", "amqps://ph:" SECRET "@h:5671/", 1);
    assert_int_equal(ph_amqp_url_load(&u, NULL, err, sizeof err), PH_ERR_INVAL);
    assert_non_null(strstr(err, "amqps://"));
    assert_null(strstr(err, SECRET));
    unsetenv("PH_AMQP_URL");
}

static void empty_missing_and_too_many(void **state)
{
    (void)state;
    struct ph_amqp_url u;
    char err[256] = "";
    const char *f = write_file("# nothing but comments\n\n");
    assert_int_equal(ph_amqp_url_load(&u, f, err, sizeof err), PH_ERR_INVAL);
    assert_non_null(strstr(err, "holds no AMQP URL"));
    unlink(f);

    assert_int_equal(ph_amqp_url_load(&u, "/nonexistent/amqp-urls", err, sizeof err),
                     PH_ERR_SYS);
    assert_non_null(strstr(err, "/nonexistent/amqp-urls"));

    unsetenv("PH_AMQP_URL");
    assert_int_equal(ph_amqp_url_load(&u, NULL, err, sizeof err), PH_ERR_INVAL);
    assert_non_null(strstr(err, "PH_AMQP_URL"));

    char many[2048] = "";
    for (int i = 0; i <= PH_AMQP_URLS_MAX; i++)
        snprintf(many + strlen(many), sizeof many - strlen(many), "amqp://u:%s@h:%d/,", SECRET,
                 1000 + i);
    assert_int_equal(ph_amqp_url_parse(&u, many, "PH_AMQP_URL", err, sizeof err), PH_ERR_INVAL);
    assert_non_null(strstr(err, "more than"));
    assert_null(strstr(err, SECRET));
}

/* The client takes the whole list: it starts on the first broker, and the
 * queue type follows the list's length unless PH_QUEUE_TYPE says. */
static void the_client_takes_the_list(void **state)
{
    (void)state;
    struct ph_amqp_url u;
    char err[256] = "";
    struct ph_amqp *a = NULL;
    const struct ph_amqp_cfg cfg = {.name = "test", .queue = "q", .durable_queue = true};
    unsetenv("PH_QUEUE_TYPE");

    assert_int_equal(ph_amqp_url_parse(&u, "amqp://u:p@127.0.0.1:1/%2f,amqp://u:p@127.0.0.1:2/%2f",
                                       "PH_AMQP_URL", err, sizeof err),
                     PH_OK);
    assert_int_equal(ph_amqp_open(&a, &u, &cfg, err, sizeof err), PH_OK);
    size_t n = 0;
    assert_int_equal(ph_amqp_broker(a, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(ph_amqp_where(a), "u@127.0.0.1:1 vhost '/'");
    assert_true(ph_amqp_quorum(a));
    assert_int_equal(u.list[0][0], '\0'); /* wiped */
    ph_amqp_close(a, 0);

    assert_int_equal(ph_amqp_url_parse(&u, "amqp://u:p@127.0.0.1:1/", "PH_AMQP_URL", err,
                                       sizeof err),
                     PH_OK);
    assert_int_equal(ph_amqp_open(&a, &u, &cfg, err, sizeof err), PH_OK);
    assert_false(ph_amqp_quorum(a));
    ph_amqp_close(a, 0);

    setenv("PH_QUEUE_TYPE", "quorum", 1);
    assert_int_equal(ph_amqp_url_parse(&u, "amqp://u:p@127.0.0.1:1/", "PH_AMQP_URL", err,
                                       sizeof err),
                     PH_OK);
    assert_int_equal(ph_amqp_open(&a, &u, &cfg, err, sizeof err), PH_OK);
    assert_true(ph_amqp_quorum(a));
    ph_amqp_close(a, 0);

    setenv("PH_QUEUE_TYPE", "mirrored", 1);
    assert_int_equal(ph_amqp_url_parse(&u, "amqp://u:p@127.0.0.1:1/", "PH_AMQP_URL", err,
                                       sizeof err),
                     PH_OK);
    assert_int_equal(ph_amqp_open(&a, &u, &cfg, err, sizeof err), PH_ERR_INVAL);
    assert_non_null(strstr(err, "PH_QUEUE_TYPE"));
    assert_null(a);
    unsetenv("PH_QUEUE_TYPE");

    /* An exclusive queue is never a quorum queue. */
    const struct ph_amqp_cfg excl = {.name = "test", .queue = "q"};
    assert_int_equal(ph_amqp_url_parse(&u, "amqp://u:p@127.0.0.1:1/%2f,amqp://u:p@127.0.0.1:2/%2f",
                                       "PH_AMQP_URL", err, sizeof err),
                     PH_OK);
    assert_int_equal(ph_amqp_open(&a, &u, &excl, err, sizeof err), PH_OK);
    assert_false(ph_amqp_quorum(a));
    ph_amqp_close(a, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_single_url_as_before),
        cmocka_unit_test(several_lines_with_comments_and_blank_lines),
        cmocka_unit_test(a_comma_list_in_the_environment),
        cmocka_unit_test(a_bad_entry_is_refused_without_showing_it),
        cmocka_unit_test(empty_missing_and_too_many),
        cmocka_unit_test(the_client_takes_the_list),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
