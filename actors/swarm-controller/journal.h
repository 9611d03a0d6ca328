/* The run journal: an append-only JSON-lines file of every signal, outcome,
 * alert and health transition of a run. Entries are buffered in memory and
 * written by io_uring (one write in flight at a time, so lines stay in
 * order); the event loop owns the ring and asks for the next buffer. */
#ifndef PH_JOURNAL_H
#define PH_JOURNAL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct journal {
    int fd;
    char path[512];
    char *buf[2]; /* [0] collecting, [1] being written */
    size_t len[2];
    size_t cap[2];
    size_t written; /* bytes of buf[1] already written */
    bool in_flight;
    uint64_t entries;
    uint64_t dropped; /* entries lost to write errors or the size cap */
    uint64_t errors;
};

/* Opens (creating, 0600, parents 0700) the journal file for appending. */
int journal_open(struct journal *j, const char *path, char *err, size_t errlen);
void journal_close(struct journal *j);
/* Appends one entry (a JSON object, borrowed) with a "ts" field added. */
void journal_add(struct journal *j, json_t *entry);
/* Next bytes to write, or false when nothing is pending or a write is in
 * flight. The loop submits a write of (*data, *len) and reports it back. */
bool journal_next_write(struct journal *j, const char **data, size_t *len);
/* Result of the write submitted after journal_next_write (bytes or -errno). */
void journal_write_done(struct journal *j, int res);
/* Writes everything pending synchronously (at exit). */
void journal_flush_sync(struct journal *j);

#endif
