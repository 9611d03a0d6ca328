/* The run journal (journal.c): durability marks and rotation by size
 * (item 19 of the defects issue: the journal had no size cap). */
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
    };
    return cmocka_run_group_tests_name("run journal", tests, NULL, NULL);
}
