/* The run journal: an append-only JSON-lines file of every signal, outcome,
 * alert and health transition of a run. Entries are buffered in memory and
 * written by io_uring (one write in flight at a time, so lines stay in
 * order); the event loop owns the ring and asks for the next buffer.
 *
 * Durability marks: journal_mark() names the entries added so far (a count
 * of entries, not a file offset, so that a checkpoint written at rotation
 * moves no mark) and journal_durable() says when they are in the file, so
 * the controller can hold the acknowledgement of a signal until the journal
 * records it. A buffer counts once all of it is written: a mark is never
 * judged durable while part of its line is missing.
 *
 * Failures never make a mark durable: nothing is acknowledged or answered
 * that the journal does not hold.
 *   - A write that fails (ENOSPC, EIO) keeps its bytes; it is tried again
 *     after a pause (10 ms, doubling up to 1 s), from the event loop's next
 *     call. Marks wait meanwhile: the controller holds its signals and its
 *     outcomes.
 *   - An entry that cannot be buffered (more than max_pending bytes wait,
 *     or no memory) is lost, but it still takes its place in the count:
 *     marks at or after it wait until a checkpoint (from the callback; it
 *     sums up every entry added before it, the lost ones included) is in
 *     the file. One is appended when the collecting buffer is next handed
 *     over to be written; a rotation's checkpoint does as well. Entries
 *     added until then are lost too, so that the file never holds an entry
 *     after a lost one without that checkpoint in between.
 * journal_failing() says either is the case. Errors are logged when they
 * start and end, and at most once a minute in between.
 *
 * Size cap: once the file reaches max_bytes it is rotated, and the new file
 * starts with a checkpoint entry from the owner's callback (the state that
 * everything journaled so far adds up to), so that the newest file alone
 * describes the run's state. The order makes a crash at any step harmless
 * to a reader of <path>.1 then <path> (swarm_recover):
 *   1. whatever is pending is written to the old file, so that the old file
 *      holds every entry the checkpoint sums up;
 *   2. the checkpoint goes into <path>.new, which is fdatasync'ed;
 *   3. <path>.1 -> <path>.2 (the older .2 goes), <path> -> <path>.1;
 *   4. <path>.new -> <path>, and the folder is fsync'ed.
 * Until 4 the old file is whole under <path> or <path>.1 and <path> is it
 * or missing; after 4, <path> starts with a complete checkpoint. A failure
 * at 1 or 2 leaves everything as it was (tried again later).
 *
 * A previous controller that died in the middle of a write left its last
 * line incomplete: journal_open() cuts it off (it was not durable, nothing
 * depended on it), so that the next line does not run into it. */
#ifndef PH_JOURNAL_H
#define PH_JOURNAL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Builds a checkpoint (a JSON object, new reference) of the state that the
 * entries added so far add up to, or NULL. */
typedef json_t *(*journal_checkpoint_fn)(void *ctx);

#define JOURNAL_DEFAULT_MAX_BYTES (64ull << 20)
#define JOURNAL_KEEP_ROTATED 2

struct journal {
    int fd;
    char path[512];
    uint64_t max_bytes;       /* rotate beyond this (0: never) */
    uint64_t file_bytes;      /* bytes in the current file */
    uint64_t base_bytes;      /* of them, the checkpoint it starts with */
    uint64_t rotate_after_ns; /* a failed rotation is tried again after this */
    size_t max_pending;       /* collecting buffer cap (JOURNAL_MAX_PENDING) */
    uint64_t added;           /* entries ever added (lost ones too): the marks */
    uint64_t durable;         /* entries 1..durable are in the file */
    uint64_t lost_from;       /* first lost entry no checkpoint covers yet (0: none) */
    uint64_t lost_last;       /* the latest lost entry */
    bool failing;             /* the last write failed */
    uint64_t retry_ns;        /* a failed write is tried again from this time */
    uint64_t backoff_ns;
    uint64_t failing_since_ns; /* start of this spell of failed writes */
    uint64_t failed_writes;    /* in this spell */
    uint64_t report_ns;        /* next "still failing / losing" log line */
    uint64_t rotations;
    journal_checkpoint_fn checkpoint;
    void *checkpoint_ctx;
    char *buf[2]; /* [0] collecting, [1] being written */
    size_t len[2];
    size_t cap[2];
    uint64_t last[2];  /* `added` at the last entry of each buffer */
    uint64_t cover[2]; /* `added` that a checkpoint in the buffer sums up (0: none) */
    size_t written;    /* bytes of buf[1] already written */
    bool in_flight;
    uint64_t entries;
    uint64_t dropped; /* entries lost (pending cap, no memory) */
    uint64_t errors;  /* failed writes */
};

/* Opens (creating, 0600, parents 0700) the journal file for appending. An
 * incomplete last line is cut off; a <path>.new left by a rotation that did
 * not finish is removed. */
int journal_open(struct journal *j, const char *path, char *err, size_t errlen);
void journal_close(struct journal *j);
/* Appends one entry (a JSON object, borrowed) with a "ts" field added. */
void journal_add(struct journal *j, json_t *entry);
/* A mark covering every entry added so far. */
static inline uint64_t journal_mark(const struct journal *j)
{
    return j->added;
}
/* True once the entries up to `mark` are in the file (or, for a lost one,
 * a checkpoint after it). A journal that is not open holds nothing back. */
static inline bool journal_durable(const struct journal *j, uint64_t mark)
{
    return j->fd < 0 || j->durable >= mark;
}
/* Writes are failing, or entries were lost that no checkpoint covers yet. */
static inline bool journal_failing(const struct journal *j)
{
    return j->failing || j->lost_from != 0;
}
/* Next bytes to write, or false when nothing is pending or a write is in
 * flight. The loop submits a write of (*data, *len) and reports it back. */
bool journal_next_write(struct journal *j, const char **data, size_t *len);
/* Result of the write submitted after journal_next_write (bytes or -errno). */
void journal_write_done(struct journal *j, int res);
/* Writes everything pending synchronously (at exit), trying a failing
 * write again at once. */
void journal_flush_sync(struct journal *j);
/* Appends a checkpoint entry (from the callback) after the entries added so
 * far: a restarted controller writes one once it has recovered, so that its
 * journal describes the state it took up whatever older files are gone. */
void journal_add_checkpoint(struct journal *j);

#endif
