/* The run journal (journal.c): durability marks and rotation by size
 * (item 19 of the defects issue: the journal had no size cap), and the
 * review findings on rotation, marks and write failures. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "journal.h"

static int checkpoints;

static json_t *checkpoint(void *ctx)
{
    (void)ctx;
    checkpoints++;
    return json_pack("{s:i}", "n", checkpoints);
}

static long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

static void first_event(const char *path, char *out, size_t n)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[4096];
    assert_non_null(fgets(line, sizeof line, f));
    fclose(f);
    json_t *e = json_loads(line, 0, NULL);
    assert_non_null(e);
    snprintf(out, n, "%s", json_string_value(json_object_get(e, "event")));
    json_decref(e);
}

/* The whole file (NUL-terminated, malloc'ed), or NULL when there is none. */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) return NULL;
    size_t cap = 4096, len = 0, n;
    char *b = malloc(cap);
    assert_non_null(b);
    while ((n = fread(b + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (cap - len - 1 == 0) {
            cap *= 2;
            b = realloc(b, cap);
            assert_non_null(b);
        }
    }
    fclose(f);
    b[len] = '\0';
    return b;
}

/* Does the file at `path` or its rotated predecessor hold `text`? */
static bool journaled(const char *path, const char *text)
{
    char p1[600];
    snprintf(p1, sizeof p1, "%s.1", path);
    bool found = false;
    char *a = slurp(path), *b = slurp(p1);
    found = (a != NULL && strstr(a, text) != NULL) || (b != NULL && strstr(b, text) != NULL);
    free(a);
    free(b);
    return found;
}

static void add_event(struct journal *j, const char *event, const char *tag)
{
    json_t *e = json_pack("{s:s, s:s}", "event", event, "tag", tag);
    journal_add(j, e);
    json_decref(e);
}

/* Review finding: marks counted bytes, and the checkpoint that starts a
 * rotated file was counted with them, so after a rotation a mark was judged
 * durable while the end of its line was not yet written. Written in small
 * pieces, the line must be whole in a file before its mark is durable. */
static void a_mark_is_durable_only_once_its_line_is_whole_across_a_rotation(void **state)
{
    (void)state;
    char dir[] = "/tmp/ph-journal-test.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256], p1[300], p2[300];
    snprintf(path, sizeof path, "%s/run.jsonl", dir);
    snprintf(p1, sizeof p1, "%s.1", path);
    snprintf(p2, sizeof p2, "%s.2", path);
    struct journal j;
    char err[256];
    assert_int_equal(journal_open(&j, path, err, sizeof err), 0);
    j.checkpoint = checkpoint;
    add_event(&j, "alert", "first");
    journal_flush_sync(&j);
    j.max_bytes = 1; /* the next write rotates */
    add_event(&j, "signal", "second");
    const uint64_t mark = journal_mark(&j);
    assert_false(journal_durable(&j, mark));
    const char *data;
    size_t len;
    while (journal_next_write(&j, &data, &len)) {
        j.max_bytes = 0; /* one rotation */
        ssize_t n = write(j.fd, data, len < 7 ? len : 7);
        assert_true(n > 0);
        journal_write_done(&j, (int)n);
        if (journal_durable(&j, mark)) assert_true(journaled(path, "\"tag\":\"second\"}\n"));
    }
    assert_int_equal(j.rotations, 1);
    assert_true(journal_durable(&j, mark));
    assert_true(journaled(path, "\"tag\":\"second\"}\n"));
    journal_close(&j);
    unlink(path);
    unlink(p1);
    unlink(p2);
    rmdir(dir);
}

static void item19_journal_rotates_by_size_and_each_file_starts_with_a_checkpoint(void **state)
{
    (void)state;
    char dir[] = "/tmp/ph-journal-test.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256], p1[300], p2[300], p3[300];
    snprintf(path, sizeof path, "%s/run.jsonl", dir);
    snprintf(p1, sizeof p1, "%s.1", path);
    snprintf(p2, sizeof p2, "%s.2", path);
    snprintf(p3, sizeof p3, "%s.3", path);
    struct journal j;
    char err[256];
    assert_int_equal(journal_open(&j, path, err, sizeof err), 0);
    j.max_bytes = 32 * 1024;
    j.checkpoint = checkpoint;
    char pad[200];
    memset(pad, 'x', sizeof pad - 1);
    pad[sizeof pad - 1] = '\0';
    for (int i = 0; i < 3000; i++) {
        json_t *e = json_pack("{s:s, s:i, s:s}", "event", "alert", "i", i, "pad", pad);
        journal_add(&j, e);
        json_decref(e);
        if (i % 10 == 9) {
            uint64_t mark = journal_mark(&j);
            assert_false(journal_durable(&j, mark));
            journal_flush_sync(&j);
            assert_true(journal_durable(&j, mark));
        }
    }
    journal_flush_sync(&j);
    assert_true(j.rotations >= 10);
    assert_int_equal(checkpoints, (int)j.rotations);
    /* Two older files are kept, none beyond. */
    assert_true(file_size(p1) > 0);
    assert_true(file_size(p2) > 0);
    assert_int_equal(file_size(p3), -1);
    /* Each is cut near the cap: at most one flush (ten entries) beyond it. */
    assert_true(file_size(p1) <= 32 * 1024 + 10 * 300);
    assert_true(file_size(p2) <= 32 * 1024 + 10 * 300);
    assert_true(file_size(path) <= 32 * 1024 + 10 * 300);
    char ev[64];
    first_event(path, ev, sizeof ev);
    assert_string_equal(ev, "checkpoint");
    first_event(p1, ev, sizeof ev);
    assert_string_equal(ev, "checkpoint");
    journal_close(&j);
    unlink(path);
    unlink(p1);
    unlink(p2);
    rmdir(dir);
}

static void a_journal_that_cannot_write_does_not_hold_marks(void **state)
{
    (void)state;
    struct journal j;
    char err[256];
    assert_int_equal(journal_open(&j, "/dev/full", err, sizeof err), 0);
    j.max_bytes = 0; /* no rotation of a device */
    json_t *e = json_pack("{s:s}", "event", "signal");
    journal_add(&j, e);
    json_decref(e);
    uint64_t mark = journal_mark(&j);
    assert_false(journal_durable(&j, mark));
    journal_flush_sync(&j); /* ENOSPC */
    assert_true(j.failing);
    assert_true(journal_durable(&j, mark)); /* holding signals would stop the swarm */
    journal_close(&j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(item19_journal_rotates_by_size_and_each_file_starts_with_a_checkpoint),
        cmocka_unit_test(a_journal_that_cannot_write_does_not_hold_marks),
        cmocka_unit_test(a_mark_is_durable_only_once_its_line_is_whole_across_a_rotation),
    };
    return cmocka_run_group_tests_name("run journal", tests, NULL, NULL);
}
