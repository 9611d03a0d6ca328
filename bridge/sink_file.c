/* File sink: one JSON object per line, {"routingKey": ..., "envelope": ...},
 * appended to PATH. Lines are serialised into a buffer as they come and
 * written with write(2) once per tick, so a burst of envelopes costs one
 * system call, and O_APPEND keeps every batch whole at the end of the file
 * even when several writers share it. A document is delivered once written:
 * until then its hold is reported, and past half the buffer limit the sink
 * is full, so the bridge leaves further documents in the ring. No fsync:
 * the file is a test and tool transport, and losing the tail in a machine
 * crash is acceptable there. */
#include "sink.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "envelope.h"

/* A sink that cannot write (disk full) keeps at most this much, then drops
 * the batch with an error instead of growing without bound. */
#define FILE_SINK_MAX_BUFFER (64u << 20)

struct file_sink {
    struct sink base;
    int fd;
    char *buf;
    size_t len, cap;
    bool oom;
    uint64_t hold; /* the oldest hold among the buffered lines (0: none) */
};

static int buf_append(const char *data, size_t n, void *ctx)
{
    struct file_sink *f = ctx;
    if (f->len + n > f->cap) {
        size_t cap = f->cap ? f->cap : 64 * 1024;
        while (cap < f->len + n)
            cap *= 2;
        char *b = realloc(f->buf, cap);
        if (b == NULL) {
            f->oom = true;
            return -1;
        }
        f->buf = b;
        f->cap = cap;
    }
    memcpy(f->buf + f->len, data, n);
    f->len += n;
    return 0;
}

static int file_publish(struct sink *s, const char *rk, const json_t *env, const char *text,
                        enum contract_kind kind, uint64_t hold, char *err, size_t errlen)
{
    (void)kind;
    struct file_sink *f = (struct file_sink *)s;
    if (f->len > FILE_SINK_MAX_BUFFER) {
        snprintf(err, errlen, "sink %s: %zu bytes not yet written, dropping this envelope", s->spec,
                 f->len);
        return PH_ERR_FULL;
    }
    const size_t mark = f->len;
    f->oom = false;
    int rc = envelope_write_line(rk, env, text, buf_append, f);
    if (rc == 0) rc = buf_append("\n", 1, f);
    if (rc != 0) {
        f->len = mark; /* never leave half a line in the batch */
        snprintf(err, errlen, "sink %s: cannot serialise the envelope%s", s->spec,
                 f->oom ? " (out of memory)" : "");
        return PH_ERR_SYS;
    }
    if (f->hold == 0) f->hold = hold;
    return PH_OK;
}

static int file_flush(struct sink *s, char *err, size_t errlen)
{
    struct file_sink *f = (struct file_sink *)s;
    size_t off = 0;
    int rc = PH_OK;
    while (off < f->len) {
        ssize_t w = write(f->fd, f->buf + off, f->len - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            snprintf(err, errlen, "sink %s: write failed: %s", s->spec,
                     w < 0 ? strerror(errno) : "wrote nothing");
            rc = PH_ERR_SYS;
            break;
        }
        off += (size_t)w;
    }
    /* Keep what was not written for the next tick (a short write leaves a
     * partial line in the file; the rest follows it, so lines stay whole). */
    memmove(f->buf, f->buf + off, f->len - off);
    f->len -= off;
    if (rc != PH_OK && f->len > FILE_SINK_MAX_BUFFER) {
        snprintf(err + strlen(err), errlen - strlen(err), "; dropped %zu buffered bytes", f->len);
        f->len = 0;
    }
    /* A partial write keeps the oldest hold: a later document of the
     * buffer may still be unwritten. */
    if (f->len == 0) f->hold = 0;
    return rc;
}

static uint64_t file_held(struct sink *s)
{
    return ((struct file_sink *)s)->hold;
}

static void file_release_holds(struct sink *s)
{
    ((struct file_sink *)s)->hold = 0;
}

static bool file_full(struct sink *s)
{
    return ((struct file_sink *)s)->len >= FILE_SINK_MAX_BUFFER / 2;
}

/* Bytes still buffered: written means confirmed for a file. */
static size_t file_unconfirmed(struct sink *s)
{
    return ((struct file_sink *)s)->len;
}

/* Nothing buffered: nothing for a tick to write. */
static bool file_quiet(struct sink *s)
{
    return file_unconfirmed(s) == 0;
}

static void file_close(struct sink *s)
{
    struct file_sink *f = (struct file_sink *)s;
    close(f->fd);
    free(f->buf);
    free(f);
}

static const struct sink_ops file_ops = {
    .publish = file_publish,
    .flush = file_flush,
    .close = file_close,
    .unconfirmed = file_unconfirmed,
    .quiet = file_quiet,
    .held = file_held,
    .release_holds = file_release_holds,
    .full = file_full,
};

int sink_file_open(const char *path, struct sink **out, char *err, size_t errlen)
{
    struct file_sink *f = calloc(1, sizeof *f);
    if (f == NULL) {
        snprintf(err, errlen, "out of memory");
        return PH_ERR_SYS;
    }
    f->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (f->fd < 0) {
        snprintf(err, errlen, "cannot open sink file %s: %s", path, strerror(errno));
        free(f);
        return PH_ERR_SYS;
    }
    f->base.ops = &file_ops;
    snprintf(f->base.spec, sizeof f->base.spec, "file:%s", path);
    *out = &f->base;
    return PH_OK;
}
