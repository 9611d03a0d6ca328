/* Bounded line reader (line_reader.h). */
#include "line_reader.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void lr_init(struct line_reader *r, int fd, size_t max_line, uint64_t max_run)
{
    memset(r, 0, offsetof(struct line_reader, in));
    r->fd = fd;
    r->max_line = max_line;
    r->max_run = max_run;
    r->line_no = 1;
}

void lr_free(struct line_reader *r)
{
    free(r->buf);
    r->buf = NULL;
    r->cap = 0;
    r->len = 0;
}

/* Appends n bytes to the kept line; the caller checked len + n <= max_line.
 * The buffer doubles, so a journal of short lines never allocates much. */
static bool keep(struct line_reader *r, const char *p, size_t n)
{
    if (r->len + n + 1 > r->cap) {
        size_t cap = r->cap ? r->cap : 4096;
        while (cap < r->len + n + 1)
            cap *= 2;
        if (cap > r->max_line + 1) cap = r->max_line + 1;
        char *b = realloc(r->buf, cap);
        if (b == NULL) return false;
        r->buf = b;
        r->cap = cap;
    }
    memcpy(r->buf + r->len, p, n);
    r->len += n;
    return true;
}

enum lr_status lr_next(struct line_reader *r, const char **line, size_t *len)
{
    for (;;) {
        if (r->line_done) {
            r->line_done = false;
            r->skipping = false;
            r->len = 0;
            r->run = 0;
            r->line_no++;
        }
        if (r->in_pos == r->in_len) {
            ssize_t n = read(r->fd, r->in, sizeof r->in);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) return LR_ERROR;
            if (n == 0) return LR_EOF;
            r->in_pos = 0;
            r->in_len = (size_t)n;
        }
        const char *p = r->in + r->in_pos;
        size_t avail = r->in_len - r->in_pos;
        const char *nl = memchr(p, '\n', avail);
        size_t chunk = nl != NULL ? (size_t)(nl - p) : avail;
        r->in_pos += chunk + (nl != NULL);
        r->run += chunk;
        bool crossed = false;
        if (!r->skipping) {
            if (chunk > r->max_line - r->len) {
                /* Dropped at once: the line is never held past the limit. */
                r->skipping = true;
                r->len = 0;
                crossed = true;
            } else if (!keep(r, p, chunk)) {
                errno = ENOMEM;
                return LR_ERROR;
            }
        }
        if (nl != NULL) r->line_done = true;
        if (crossed) return LR_TOO_LONG;
        if (nl != NULL && !r->skipping) {
            if (r->buf == NULL && !keep(r, "", 0)) { /* an empty first line */
                errno = ENOMEM;
                return LR_ERROR;
            }
            r->buf[r->len] = '\0';
            *line = r->buf;
            *len = r->len;
            return LR_LINE;
        }
        if (nl == NULL && r->run > r->max_run) return LR_RUNAWAY;
    }
}

bool lr_partial(struct line_reader *r, const char **line, size_t *len)
{
    if (r->line_done || r->skipping || r->run == 0) return false;
    r->buf[r->len] = '\0';
    *line = r->buf;
    *len = r->len;
    return true;
}
