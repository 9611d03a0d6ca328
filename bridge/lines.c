/* Bounded line splitter (lines.h). */
#include "lines.h"

#include <stdlib.h>
#include <string.h>

#include "ph/common.h"

int lines_init(struct lines *l, size_t max_line)
{
    memset(l, 0, sizeof *l);
    /* One byte more than the limit: an oversize line is then told apart from
     * one that is exactly at the limit. */
    l->buf = malloc(max_line + 1);
    if (l->buf == NULL) return PH_ERR_SYS;
    l->max = max_line;
    return PH_OK;
}

void lines_free(struct lines *l)
{
    free(l->buf);
    l->buf = NULL;
}

static bool blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r') return false;
    return true;
}

static void emit(struct lines *l, lines_fn fn, void *ctx)
{
    size_t len = l->len;
    size_t full = l->full_len;
    if (full == len && len > 0 && l->buf[len - 1] == '\r') len--, full--;
    if (full > 0 && !(full == len && blank(l->buf, len))) fn(ctx, l->buf, len, full);
    l->len = 0;
    l->full_len = 0;
}

void lines_feed(struct lines *l, const char *data, size_t n, lines_fn fn, void *ctx)
{
    while (n > 0) {
        const char *nl = memchr(data, '\n', n);
        size_t chunk = nl != NULL ? (size_t)(nl - data) : n;
        size_t room = l->max + 1 - l->len;
        size_t keep = chunk < room ? chunk : room;
        memcpy(l->buf + l->len, data, keep);
        l->len += keep;
        l->full_len += chunk;
        if (nl == NULL) return;
        l->pos += l->full_len + 1;
        emit(l, fn, ctx);
        data += chunk + 1;
        n -= chunk + 1;
    }
}

void lines_finish(struct lines *l, lines_fn fn, void *ctx)
{
    if (l->full_len > 0) {
        l->pos += l->full_len;
        emit(l, fn, ctx);
    }
}
