/* Splitting a byte stream into lines with a bounded buffer: the signal
 * reader must not grow without limit when a sender never writes a newline.
 * A line longer than the limit is reported once, with its first bytes (for
 * the log and the alert) and its full length, and the rest of it skipped. */
#ifndef PH_BRIDGE_LINES_H
#define PH_BRIDGE_LINES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct lines {
    char *buf;
    size_t max;      /* longest line kept whole */
    size_t len;      /* bytes of the current line kept in buf */
    size_t full_len; /* bytes of the current line seen so far */
    /* Stream position just past the last complete line (its "\n"
     * included), whether it was handed out or skipped as blank. The owner
     * sets it when it starts reading mid-stream. */
    uint64_t pos;
};

/* A complete line without its "\n" (and "\r"): `len` bytes at `line`, and its
 * real length `full_len` (> len only for an oversize line). While fn runs,
 * `pos` is already past the line. */
typedef void (*lines_fn)(void *ctx, const char *line, size_t len, size_t full_len);

int lines_init(struct lines *l, size_t max_line);
void lines_free(struct lines *l);
/* Feeds bytes; calls fn for every line they complete. Blank lines are
 * skipped: they carry no message. */
void lines_feed(struct lines *l, const char *data, size_t n, lines_fn fn, void *ctx);
/* End of input: an unterminated last line still counts. */
void lines_finish(struct lines *l, lines_fn fn, void *ctx);

#endif
