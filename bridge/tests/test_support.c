/* The bridge's small helpers: the bounded line splitter (lines.c), printable
 * prefixes of untrusted bytes (text.c) and the alert rate limit
 * (ratelimit.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lines.h"
#include "ratelimit.h"
#include "text.h"

struct seen {
    int n;
    char line[8][64];
    size_t len[8], full[8];
};

static void collect(void *ctx, const char *line, size_t len, size_t full_len)
{
    struct seen *s = ctx;
    assert_true(s->n < 8);
    memcpy(s->line[s->n], line, len < 63 ? len : 63);
    s->line[s->n][len < 63 ? len : 63] = '\0';
    s->len[s->n] = len;
    s->full[s->n] = full_len;
    s->n++;
}

static void test_lines_are_split_across_arbitrary_chunks(void **state)
{
    (void)state;
    struct lines l;
    struct seen s = {0};
    assert_int_equal(lines_init(&l, 32), 0);
    const char *in = "one\ntwo\r\n\n  \nthr";
    /* byte by byte: the worst chunking a pipe can produce */
    for (size_t i = 0; i < strlen(in); i++)
        lines_feed(&l, in + i, 1, collect, &s);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.line[0], "one");
    assert_string_equal(s.line[1], "two"); /* CR removed */
    lines_feed(&l, "ee\n", 3, collect, &s);
    assert_int_equal(s.n, 3);
    assert_string_equal(s.line[2], "three");
    assert_int_equal(s.full[2], 5);
    lines_free(&l);
}

static void test_oversize_line_is_reported_once_with_its_prefix_and_length(void **state)
{
    (void)state;
    struct lines l;
    struct seen s = {0};
    assert_int_equal(lines_init(&l, 8), 0);
    lines_feed(&l, "0123456789abcdef", 16, collect, &s);
    assert_int_equal(s.n, 0); /* still waiting for the newline */
    lines_feed(&l, "ghij\nok\n", 8, collect, &s);
    assert_int_equal(s.n, 2);
    assert_int_equal(s.len[0], 9); /* the limit + 1: provably too long */
    assert_int_equal(s.full[0], 20);
    assert_string_equal(s.line[0], "012345678");
    assert_string_equal(s.line[1], "ok");
    /* exactly at the limit is fine */
    lines_feed(&l, "12345678\n", 9, collect, &s);
    assert_int_equal(s.n, 3);
    assert_int_equal(s.len[2], 8);
    assert_int_equal(s.full[2], 8);
    lines_free(&l);
}

static void test_unterminated_last_line_counts_at_end_of_input(void **state)
{
    (void)state;
    struct lines l;
    struct seen s = {0};
    assert_int_equal(lines_init(&l, 32), 0);
    lines_feed(&l, "a\nlast", 6, collect, &s);
    assert_int_equal(s.n, 1);
    lines_finish(&l, collect, &s);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.line[1], "last");
    lines_finish(&l, collect, &s);
    assert_int_equal(s.n, 2);
    lines_free(&l);
}

/* Where each line ends in the stream, so a reader can resume after the
 * last one it handed on (blank lines and CRs included in the count). */
struct ends {
    struct lines *l;
    int n;
    uint64_t end[8];
};

static void note_end(void *ctx, const char *line, size_t len, size_t full_len)
{
    (void)line, (void)len, (void)full_len;
    struct ends *e = ctx;
    assert_true(e->n < 8);
    e->end[e->n++] = e->l->pos;
}

static void test_line_positions_count_every_byte_of_the_stream(void **state)
{
    (void)state;
    struct lines l;
    assert_int_equal(lines_init(&l, 4), 0);
    l.pos = 1000; /* resumed mid-file */
    struct ends e = {.l = &l};
    const char *in = "ab\n\r\n  \ncd\r\n0123456789\nlast";
    for (size_t i = 0; i < strlen(in); i++)
        lines_feed(&l, in + i, 1, note_end, &e);
    assert_int_equal(e.n, 3);
    assert_int_equal(e.end[0], 1003); /* "ab\n" */
    assert_int_equal(e.end[1], 1012); /* "\r\n", "  \n" skipped, then "cd\r\n" */
    assert_int_equal(e.end[2], 1023); /* the oversize line, all of it */
    assert_int_equal(l.pos, 1023);    /* "last" is not complete yet */
    lines_finish(&l, note_end, &e);
    assert_int_equal(e.n, 4);
    assert_int_equal(e.end[3], 1027);
    lines_free(&l);
}

static void test_prefix_keeps_utf8_and_escapes_the_rest(void **state)
{
    (void)state;
    char out[64];
    assert_true(text_prefix("h\xc3\xa9llo", 6, 20, out));
    assert_string_equal(out, "h\xc3\xa9llo");
    assert_true(text_prefix("a\nb\\", 4, 20, out));
    assert_string_equal(out, "a\\x0ab\\x5c");
    /* invalid: lone continuation, overlong, surrogate, truncated sequence */
    assert_true(text_prefix("\x80\xc0\xaf\xed\xa0\x80\xe2\x82", 8, 63, out));
    assert_null(strchr(out, 0x80));
    assert_string_equal(out, "\\x80\\xc0\\xaf\\xed\\xa0\\x80\\xe2\\x82");
    /* a multibyte character is never cut in half */
    assert_false(text_prefix("ab\xe2\x82\xac", 5, 4, out));
    assert_string_equal(out, "ab");
    assert_false(text_prefix("abcdef", 6, 3, out));
    assert_string_equal(out, "abc");
}

static void test_rate_limit_allows_one_alert_per_code_per_interval(void **state)
{
    (void)state;
    struct ratelimit rl;
    ratelimit_init(&rl, 1000);
    uint64_t sup = 99;
    assert_true(ratelimit_allow(&rl, "a", 5000, &sup));
    assert_int_equal(sup, 0);
    assert_false(ratelimit_allow(&rl, "a", 5001, &sup));
    assert_false(ratelimit_allow(&rl, "a", 5999, &sup));
    assert_true(ratelimit_allow(&rl, "b", 5999, &sup)); /* codes are independent */
    assert_int_equal(sup, 0);
    assert_true(ratelimit_allow(&rl, "a", 6000, &sup));
    assert_int_equal(sup, 2); /* the two held back are reported with this one */
    assert_false(ratelimit_allow(&rl, "a", 6001, &sup));
    assert_true(ratelimit_allow(&rl, "a", 9000, &sup));
    assert_int_equal(sup, 1);
}

static void test_rate_limit_table_overflow_shares_the_last_entry(void **state)
{
    (void)state;
    struct ratelimit rl;
    ratelimit_init(&rl, 1000);
    uint64_t sup;
    char code[16];
    for (int i = 0; i < RATELIMIT_CODES + 4; i++) {
        snprintf(code, sizeof code, "c%d", i);
        bool ok = ratelimit_allow(&rl, code, 100, &sup);
        /* Codes past the table share its last entry: fewer alerts, never more. */
        assert_true(ok == (i < RATELIMIT_CODES));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lines_are_split_across_arbitrary_chunks),
        cmocka_unit_test(test_oversize_line_is_reported_once_with_its_prefix_and_length),
        cmocka_unit_test(test_unterminated_last_line_counts_at_end_of_input),
        cmocka_unit_test(test_line_positions_count_every_byte_of_the_stream),
        cmocka_unit_test(test_prefix_keeps_utf8_and_escapes_the_rest),
        cmocka_unit_test(test_rate_limit_allows_one_alert_per_code_per_interval),
        cmocka_unit_test(test_rate_limit_table_overflow_shares_the_last_entry),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
