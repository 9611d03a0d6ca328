/* The run journal (journal.c): durability marks and rotation by size
 * (item 19 of the defects issue: the journal had no size cap), rotation
 * crash safety, and write failures. */
#include <errno.h>
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

/* A fresh folder with the journal's file names in it, removed with every
 * file a test left there. */
struct jfiles {
    char dir[32];
    char path[64], p1[72], p2[72], p3[72], tmp[72];
};

static void jfiles_make(struct jfiles *t)
{
    snprintf(t->dir, sizeof t->dir, "/tmp/ph-journal-test.XXXXXX");
    assert_non_null(mkdtemp(t->dir));
    snprintf(t->path, sizeof t->path, "%s/run.jsonl", t->dir);
    snprintf(t->p1, sizeof t->p1, "%s.1", t->path);
    snprintf(t->p2, sizeof t->p2, "%s.2", t->path);
    snprintf(t->p3, sizeof t->p3, "%s.3", t->path);
    snprintf(t->tmp, sizeof t->tmp, "%s.new", t->path);
}

static void jfiles_remove(const struct jfiles *t)
{
    const char *const files[] = {t->path, t->p1, t->p2, t->p3, t->tmp};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) unlink(files[i]);
    rmdir(t->dir);
}

/* Formerly marks counted bytes, and the checkpoint that starts a
 * rotated file was counted with them, so after a rotation a mark was judged
 * durable while the end of its line was not yet written. Written in small
 * pieces, the line must be whole in a file before its mark is durable. */
static void a_mark_is_durable_only_once_its_line_is_whole_across_a_rotation(void **state)
{
    (void)state;
    struct jfiles t;
    jfiles_make(&t);
    const char *path = t.path;
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
    jfiles_remove(&t);
}

/* One buffer's write, as the event loop makes it (none when nothing waits). */
static void write_once(struct journal *j)
{
    const char *data;
    size_t len;
    if (!journal_next_write(j, &data, &len)) return;
    ssize_t n = write(j->fd, data, len);
    journal_write_done(j, n < 0 ? -1 : (int)n);
}

static int count_lines(const char *text)
{
    int n = 0;
    for (const char *p = text; *p; p++)
        n += *p == '\n';
    return n;
}

struct probe {
    struct journal *j;
    int calls;
    bool all_written; /* at the last call, every entry added was in the file */
};

static json_t *probing_checkpoint(void *ctx)
{
    struct probe *p = ctx;
    p->calls++;
    p->all_written = p->j->durable == p->j->added && p->j->len[0] == 0;
    return json_pack("{s:i}", "n", p->calls);
}

/* Formerly the checkpoint that starts a rotated file sums up every
 * entry added before it, but the entries still pending went into the new
 * file after it, and the old file was renamed before the new one held the
 * checkpoint. Now the old file is written out first and keeps all of them;
 * the new file holds just the checkpoint, whole; no temporary file stays. */
static void rotation_writes_the_old_file_out_before_the_new_one_takes_the_name(void **state)
{
    (void)state;
    struct jfiles t;
    jfiles_make(&t);
    const char *path = t.path, *p1 = t.p1, *tmp = t.tmp;
    struct journal j;
    char err[256];
    assert_int_equal(journal_open(&j, path, err, sizeof err), 0);
    struct probe probe = {.j = &j};
    j.checkpoint = probing_checkpoint;
    j.checkpoint_ctx = &probe;
    add_event(&j, "alert", "a");
    journal_flush_sync(&j);
    j.max_bytes = 1;
    add_event(&j, "signal", "b");
    add_event(&j, "outcome", "c");
    const uint64_t mark = journal_mark(&j);
    write_once(&j); /* rotates */
    j.max_bytes = 0;
    journal_flush_sync(&j);
    assert_int_equal(j.rotations, 1);
    assert_int_equal(probe.calls, 1);
    assert_true(probe.all_written);
    assert_true(journal_durable(&j, mark));
    char *old = slurp(p1), *cur = slurp(path);
    assert_non_null(old);
    assert_non_null(cur);
    assert_non_null(strstr(old, "\"tag\":\"a\"}\n"));
    assert_non_null(strstr(old, "\"tag\":\"b\"}\n"));
    assert_non_null(strstr(old, "\"tag\":\"c\"}\n"));
    assert_int_equal(count_lines(cur), 1);
    json_error_t je;
    json_t *cp = json_loads(cur, 0, &je);
    assert_non_null(cp);
    assert_string_equal(json_string_value(json_object_get(cp, "event")), "checkpoint");
    json_decref(cp);
    assert_int_equal(access(tmp, F_OK), -1);
    free(old);
    free(cur);
    journal_close(&j);
    jfiles_remove(&t);
}

/* A controller that died in the middle of a write left a last line without
 * its newline: the next one cuts it off instead of running its first line
 * into it; a temporary file of a rotation that did not finish goes too. */
static void an_incomplete_last_line_is_cut_off_when_the_journal_is_opened(void **state)
{
    (void)state;
    struct jfiles t;
    jfiles_make(&t);
    const char *path = t.path, *tmp = t.tmp;
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("{\"event\":\"alert\",\"tag\":\"whole\"}\n{\"event\":\"signal\",\"tag\":\"cut", f);
    fclose(f);
    f = fopen(tmp, "w");
    assert_non_null(f);
    fputs("{\"event\":\"checkp", f);
    fclose(f);
    struct journal j;
    char err[256];
    assert_int_equal(journal_open(&j, path, err, sizeof err), 0);
    assert_int_equal(access(tmp, F_OK), -1);
    add_event(&j, "lifecycle", "next");
    journal_flush_sync(&j);
    journal_close(&j);
    char *text = slurp(path);
    assert_non_null(text);
    assert_int_equal(count_lines(text), 2);
    assert_null(strstr(text, "cut"));
    char *second = strchr(text, '\n') + 1;
    json_t *e = json_loads(second, JSON_DISABLE_EOF_CHECK, NULL);
    assert_non_null(e);
    assert_string_equal(json_string_value(json_object_get(e, "tag")), "next");
    json_decref(e);
    free(text);
    jfiles_remove(&t);
}

static json_t *large_checkpoint(void *ctx)
{
    (void)ctx;
    char pad[1001];
    memset(pad, 'c', 1000);
    pad[1000] = '\0';
    return json_pack("{s:s}", "pad", pad);
}

/* A checkpoint larger than the cap does not rotate the file again at every
 * write: the entries after it have to reach its size first. */
static void a_checkpoint_larger_than_the_cap_does_not_rotate_every_write(void **state)
{
    (void)state;
    struct jfiles t;
    jfiles_make(&t);
    const char *path = t.path;
    struct journal j;
    char err[256];
    assert_int_equal(journal_open(&j, path, err, sizeof err), 0);
    j.checkpoint = large_checkpoint;
    j.max_bytes = 100;
    for (int i = 0; i < 20; i++) {
        add_event(&j, "alert", "some entry of sixty-odd bytes");
        write_once(&j);
    }
    assert_true(j.rotations >= 1);
    assert_true(j.rotations <= 3);
    journal_close(&j);
    jfiles_remove(&t);
}

static void item19_journal_rotates_by_size_and_each_file_starts_with_a_checkpoint(void **state)
{
    (void)state;
    struct jfiles t;
    jfiles_make(&t);
    const char *path = t.path, *p1 = t.p1, *p2 = t.p2, *p3 = t.p3;
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
    jfiles_remove(&t);
}

/* Formerly a journal whose writes failed reported every mark as
 * durable, so the controller acknowledged signals it had not journaled. A
 * failing journal holds its marks and says it is failing. */
static void a_journal_that_cannot_write_holds_its_marks(void **state)
{
    (void)state;
    struct journal j;
    char err[256];
    assert_int_equal(journal_open(&j, "/dev/full", err, sizeof err), 0);
    j.max_bytes = 0; /* no rotation of a device */
    add_event(&j, "signal", "held");
    uint64_t mark = journal_mark(&j);
    assert_false(journal_durable(&j, mark));
    journal_flush_sync(&j); /* ENOSPC */
    assert_true(j.failing);
    assert_true(journal_failing(&j));
    assert_false(journal_durable(&j, mark));
    journal_flush_sync(&j); /* still ENOSPC */
    assert_false(journal_durable(&j, mark));
    assert_true(j.errors >= 2);
    journal_close(&j);
}

/* The failed bytes stay and go out with the next attempt that works. */
static void a_failed_write_is_tried_again_and_then_releases_its_marks(void **state)
{
    (void)state;
    struct jfiles t;
    jfiles_make(&t);
    const char *path = t.path;
    struct journal j;
    char err[256];
    assert_int_equal(journal_open(&j, path, err, sizeof err), 0);
    add_event(&j, "signal", "retried");
    const uint64_t mark = journal_mark(&j);
    const char *data;
    size_t len;
    assert_true(journal_next_write(&j, &data, &len));
    journal_write_done(&j, -ENOSPC);
    assert_true(journal_failing(&j));
    assert_false(journal_durable(&j, mark));
    journal_flush_sync(&j); /* the disk has room again */
    assert_false(journal_failing(&j));
    assert_true(journal_durable(&j, mark));
    assert_true(journaled(path, "\"tag\":\"retried\"}\n"));
    journal_close(&j);
    jfiles_remove(&t);
}

/* Formerly an entry that did not fit the pending cap was dropped
 * silently, and a mark taken after it was judged durable once the others
 * were written. Now the entry keeps its place in the count: marks after it
 * wait until a checkpoint (which sums up what it changed) is in the file. */
static void a_lost_entry_holds_later_marks_until_a_checkpoint_is_written(void **state)
{
    (void)state;
    struct jfiles t;
    jfiles_make(&t);
    const char *path = t.path;
    struct journal j;
    char err[256];
    assert_int_equal(journal_open(&j, path, err, sizeof err), 0);
    add_event(&j, "signal", "kept");
    const uint64_t before = journal_mark(&j);
    /* The disk is slow: 16 MiB wait, the next entry does not fit. */
    const size_t big = 1u << 20;
    char *pad = malloc(big + 1);
    assert_non_null(pad);
    memset(pad, 'p', big);
    pad[big] = '\0';
    for (int i = 0; i < 17 && j.dropped == 0; i++) {
        json_t *e = json_pack("{s:s, s:s}", "event", "alert", "pad", pad);
        journal_add(&j, e);
        json_decref(e);
    }
    free(pad);
    assert_int_equal(j.dropped, 1);
    add_event(&j, "signal", "after");
    const uint64_t after = journal_mark(&j);
    assert_true(journal_failing(&j));
    /* No checkpoint to be had: what was written counts, nothing after the
     * lost entry does. */
    journal_flush_sync(&j);
    assert_true(journal_durable(&j, before));
    assert_false(journal_durable(&j, after));
    assert_true(journal_failing(&j));
    /* With one, the next write ends with it, and the marks go on. */
    checkpoints = 0;
    j.checkpoint = checkpoint;
    journal_flush_sync(&j);
    assert_int_equal(checkpoints, 1);
    assert_true(journal_durable(&j, after));
    assert_false(journal_failing(&j));
    char *text = slurp(path);
    assert_non_null(text);
    char *lastline = strrchr(text, '{');
    assert_non_null(strstr(lastline, "\"event\":\"checkpoint\""));
    /* Nothing after the lost entry went into the file before the checkpoint
     * (the entry after it was lost too); what follows it is written again. */
    assert_null(strstr(text, "\"tag\":\"after\""));
    free(text);
    add_event(&j, "signal", "later");
    const uint64_t later = journal_mark(&j);
    journal_flush_sync(&j);
    assert_true(journal_durable(&j, later));
    assert_true(journaled(path, "\"tag\":\"later\"}\n"));
    assert_int_equal(j.dropped, 2);
    journal_close(&j);
    jfiles_remove(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(item19_journal_rotates_by_size_and_each_file_starts_with_a_checkpoint),
        cmocka_unit_test(a_journal_that_cannot_write_holds_its_marks),
        cmocka_unit_test(a_failed_write_is_tried_again_and_then_releases_its_marks),
        cmocka_unit_test(a_lost_entry_holds_later_marks_until_a_checkpoint_is_written),
        cmocka_unit_test(a_mark_is_durable_only_once_its_line_is_whole_across_a_rotation),
        cmocka_unit_test(rotation_writes_the_old_file_out_before_the_new_one_takes_the_name),
        cmocka_unit_test(an_incomplete_last_line_is_cut_off_when_the_journal_is_opened),
        cmocka_unit_test(a_checkpoint_larger_than_the_cap_does_not_rotate_every_write),
    };
    return cmocka_run_group_tests_name("run journal", tests, NULL, NULL);
}
