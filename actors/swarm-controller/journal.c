/* Run journal (journal.h). */
#include "journal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ph/common.h"
#include "ph/log.h"

/* Reals with 15 significant digits, as the bridge writes envelopes: a
 * value sent as 0.3 is journaled as 0.3, not 0.29999999999999999. */
#define JOURNAL_DUMP_FLAGS (JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15))

/* A journal is for people and audits; an unwritable disk must not grow the
 * controller without bound. */
#define JOURNAL_MAX_PENDING (16u << 20)

static int mkdirs(char *path)
{
    for (char *p = path + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        int rc = mkdir(path, 0700);
        *p = '/';
        if (rc != 0 && errno != EEXIST) return -1;
    }
    return 0;
}

int journal_open(struct journal *j, const char *path, char *err, size_t errlen)
{
    memset(j, 0, sizeof *j);
    j->fd = -1;
    if (strlen(path) >= sizeof j->path) {
        snprintf(err, errlen, "journal path too long");
        return PH_ERR_INVAL;
    }
    snprintf(j->path, sizeof j->path, "%s", path);
    char tmp[sizeof j->path];
    snprintf(tmp, sizeof tmp, "%s", path);
    if (mkdirs(tmp) != 0) {
        snprintf(err, errlen, "cannot create the folder of journal %s: %s", path, strerror(errno));
        return PH_ERR_SYS;
    }
    j->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (j->fd < 0) {
        snprintf(err, errlen, "cannot open journal %s: %s", path, strerror(errno));
        return PH_ERR_SYS;
    }
    struct stat st;
    if (fstat(j->fd, &st) == 0) j->file_bytes = (uint64_t)st.st_size;
    j->max_bytes = JOURNAL_DEFAULT_MAX_BYTES;
    return PH_OK;
}

/* Moves the full file aside and starts a new one with a checkpoint. Called
 * only between writes (nothing in flight, buf[1] fully written). */
static void rotate(struct journal *j)
{
    char from[sizeof j->path + 8], to[sizeof j->path + 8];
    for (int k = JOURNAL_KEEP_ROTATED; k >= 1; k--) {
        snprintf(to, sizeof to, "%s.%d", j->path, k);
        if (k == 1)
            snprintf(from, sizeof from, "%s", j->path);
        else
            snprintf(from, sizeof from, "%s.%d", j->path, k - 1);
        if (rename(from, to) != 0 && errno != ENOENT) {
            if (j->errors++ == 0)
                ph_error("journal %s: cannot rotate: %s", j->path, strerror(errno));
            return;
        }
    }
    int fd = open(j->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) {
        if (j->errors++ == 0)
            ph_error("journal %s: cannot reopen after rotation: %s", j->path, strerror(errno));
        return;
    }
    close(j->fd);
    j->fd = fd;
    j->file_bytes = 0;
    j->rotations++;
    ph_info("journal %s rotated (over %llu bytes); the previous file is %s.1", j->path,
            (unsigned long long)j->max_bytes, j->path);
    json_t *cp = j->checkpoint ? j->checkpoint(j->checkpoint_ctx) : NULL;
    if (cp == NULL) return;
    json_object_set_new(cp, "event", json_string("checkpoint"));
    char ts[32];
    ph_rfc3339_ms(ph_real_ns(), ts);
    json_t *line = json_pack("{s:s}", "ts", ts);
    json_object_update(line, cp);
    json_decref(cp);
    char *text = json_dumps(line, JOURNAL_DUMP_FLAGS);
    json_decref(line);
    size_t n = text != NULL ? strlen(text) : 0;
    /* The checkpoint goes first in the new file, before the entries still
     * collecting: a reader starts from it. */
    char *b = text != NULL ? malloc(n + 1 + j->len[0] + 1) : NULL;
    if (b == NULL) {
        free(text);
        ph_error("journal %s: no memory for the checkpoint of the new file", j->path);
        return;
    }
    memcpy(b, text, n);
    b[n] = '\n';
    if (j->len[0] > 0) memcpy(b + n + 1, j->buf[0], j->len[0]);
    free(text);
    free(j->buf[0]);
    j->buf[0] = b;
    j->len[0] += n + 1;
    j->cap[0] = j->len[0] + 1;
    /* No new mark: the checkpoint restates what the entries say. */
    j->entries++;
}

void journal_close(struct journal *j)
{
    if (j->fd >= 0) close(j->fd);
    free(j->buf[0]);
    free(j->buf[1]);
    memset(j, 0, sizeof *j);
    j->fd = -1;
}

void journal_add(struct journal *j, json_t *entry)
{
    if (j->fd < 0) return;
    char ts[32];
    ph_rfc3339_ms(ph_real_ns(), ts);
    /* "ts" first: the entry is rebuilt so the line starts with its time. */
    json_t *line = json_pack("{s:s}", "ts", ts);
    json_object_update(line, entry);
    char *text = json_dumps(line, JOURNAL_DUMP_FLAGS);
    json_decref(line);
    if (text == NULL) return;
    size_t n = strlen(text);
    if (j->len[0] + n + 1 > JOURNAL_MAX_PENDING) {
        j->dropped++;
        free(text);
        return;
    }
    if (j->len[0] + n + 1 > j->cap[0]) {
        size_t cap = j->cap[0] ? j->cap[0] * 2 : 65536;
        while (cap < j->len[0] + n + 1)
            cap *= 2;
        char *b = realloc(j->buf[0], cap);
        if (b == NULL) {
            j->dropped++;
            free(text);
            return;
        }
        j->buf[0] = b;
        j->cap[0] = cap;
    }
    memcpy(j->buf[0] + j->len[0], text, n);
    j->buf[0][j->len[0] + n] = '\n';
    j->len[0] += n + 1;
    j->last[0] = ++j->added;
    j->entries++;
    free(text);
}

bool journal_next_write(struct journal *j, const char **data, size_t *len)
{
    if (j->fd < 0 || j->in_flight) return false;
    if (j->written >= j->len[1]) {
        if (j->max_bytes != 0 && j->file_bytes >= j->max_bytes) rotate(j);
        if (j->len[0] == 0) return false;
        /* Swap: collect into the other buffer while this one is written. */
        char *b = j->buf[1];
        size_t c = j->cap[1];
        j->buf[1] = j->buf[0];
        j->len[1] = j->len[0];
        j->cap[1] = j->cap[0];
        j->last[1] = j->last[0];
        j->buf[0] = b;
        j->cap[0] = c;
        j->len[0] = 0;
        j->written = 0;
    }
    *data = j->buf[1] + j->written;
    *len = j->len[1] - j->written;
    j->in_flight = true;
    return true;
}

void journal_write_done(struct journal *j, int res)
{
    j->in_flight = false;
    if (res <= 0) {
        /* Keep the bytes and retry with the next write; say it once. */
        if (j->errors++ == 0)
            ph_error("journal %s: write failed: %s", j->path,
                     res < 0 ? strerror(-res) : "nothing written");
        j->failing = true;
        return;
    }
    if (j->failing) ph_info("journal %s: writing again", j->path);
    j->failing = false;
    j->written += (size_t)res;
    j->file_bytes += (uint64_t)res;
    /* Entries count once their whole buffer is in: a short write leaves the
     * last of them cut. */
    if (j->written >= j->len[1]) j->durable = j->last[1];
}

void journal_flush_sync(struct journal *j)
{
    const char *data;
    size_t len;
    while (journal_next_write(j, &data, &len)) {
        ssize_t n = write(j->fd, data, len);
        journal_write_done(j, n < 0 ? -errno : (int)n);
        if (n <= 0) break;
    }
}
