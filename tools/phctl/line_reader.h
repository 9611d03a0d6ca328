/* Bounded line reading from a file descriptor, for `phctl journal`.
 *
 * A journal is one JSON object per line, but the file phctl is handed may be
 * anything: a damaged journal, a huge file of zero bytes. The reader holds at
 * most one line of max_line bytes (plus a fixed read buffer), whatever the
 * input: a longer line is reported once and skipped up to its newline, and
 * input that runs max_run bytes without any newline makes it stop, because
 * that is not a journal and reading on would only spin.
 *
 * bridge/lines.c splits the signals file the same way for the bridge; this
 * one also numbers lines, tells an unterminated last line apart and lets a
 * follower wait at the end of the file with a partial line kept. */
#ifndef PHCTL_LINE_READER_H
#define PHCTL_LINE_READER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct line_reader {
    int fd;           /* borrowed: the caller opens and closes it */
    size_t max_line;  /* longest line delivered, in bytes, without its "\n" */
    uint64_t max_run; /* bytes without a newline after which lr_next gives up */
    char *buf;        /* the current line, up to max_line + 1 bytes with its NUL */
    size_t len;       /* bytes of the current line kept in buf */
    size_t cap;       /* bytes allocated at buf */
    uint64_t run;     /* bytes of the current line read so far, kept or not */
    uint64_t line_no; /* 1-based number of the current line */
    bool skipping;    /* the current line is longer than max_line: dropped */
    bool line_done;   /* the current line ended; the next call starts a new one */
    size_t in_pos;    /* next unread byte of in[] */
    size_t in_len;    /* bytes in in[] */
    char in[64 * 1024];
};

enum lr_status {
    LR_LINE,     /* a complete line: *line (NUL-terminated) and *len, without "\n" */
    LR_TOO_LONG, /* line r->line_no just grew past max_line: report it; it is skipped */
    LR_EOF,      /* no more bytes for now; lr_partial() tells whether a line is pending */
    LR_RUNAWAY,  /* line r->line_no ran past max_run bytes without a newline */
    LR_ERROR,    /* read() or malloc() failed; errno says why */
};

void lr_init(struct line_reader *r, int fd, size_t max_line, uint64_t max_run);
void lr_free(struct line_reader *r);

/* Reads until a line is complete or another status is due. *line stays
 * valid until the next call. After LR_EOF a later call goes on where the
 * input stopped (for --follow: the file may grow). */
enum lr_status lr_next(struct line_reader *r, const char **line, size_t *len);

/* The bytes of an unterminated line read so far, when there are any and the
 * line is not being skipped (at the end of the input: the last line had no
 * newline). */
bool lr_partial(struct line_reader *r, const char **line, size_t *len);

#endif
