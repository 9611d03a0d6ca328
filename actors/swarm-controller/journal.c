/* Run journal (journal.h). */
#include "journal.h"

#include <errno.h>
#include <stdint.h>
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

/* A rotation that failed (disk full, permissions) is tried again after this. */
#define JOURNAL_ROTATE_RETRY_NS (10ull * 1000000000ull)

/* A failed write is tried again after a pause that doubles from the first
 * to the last. */
#define JOURNAL_RETRY_FIRST_NS (10ull * 1000000ull)
#define JOURNAL_RETRY_MAX_NS (1000ull * 1000000ull)

/* While writes fail or entries are lost, a reminder is logged this often. */
#define JOURNAL_REPORT_NS (60ull * 1000000000ull)

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

/* Cuts off an incomplete last line (no newline): the previous writer died in
 * the middle of it. Only regular files; errors leave the file as it is. */
static void trim_torn_tail(int fd, const char *path)
{
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size == 0) return;
    char buf[4096];
    off_t end = st.st_size, keep = -1;
    while (end > 0 && keep < 0) {
        off_t from = end > (off_t)sizeof buf ? end - (off_t)sizeof buf : 0;
        ssize_t n = pread(fd, buf, (size_t)(end - from), from);
        if (n != end - from) return;
        if (end == st.st_size && buf[n - 1] == '\n') return; /* complete */
        for (ssize_t i = n - 1; i >= 0 && keep < 0; i--)
            if (buf[i] == '\n') keep = from + i + 1;
        end = from;
    }
    if (keep < 0) keep = 0;
    if (ftruncate(fd, keep) == 0)
        ph_warn("journal %s ended with an incomplete line (%lld bytes, the previous writer died "
                "while writing it): cut off",
                path, (long long)(st.st_size - keep));
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
    char tmp[sizeof j->path + 8];
    snprintf(tmp, sizeof tmp, "%s", path);
    if (mkdirs(tmp) != 0) {
        snprintf(err, errlen, "cannot create the folder of journal %s: %s", path, strerror(errno));
        return PH_ERR_SYS;
    }
    /* Read access too: the tail is checked for an incomplete line. */
    j->fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (j->fd < 0) j->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (j->fd < 0) {
        snprintf(err, errlen, "cannot open journal %s: %s", path, strerror(errno));
        return PH_ERR_SYS;
    }
    trim_torn_tail(j->fd, path);
    snprintf(tmp, sizeof tmp, "%s.new", path);
    if (unlink(tmp) == 0)
        ph_warn("journal %s: removed %s, left by a rotation that did not finish", path, tmp);
    struct stat st;
    if (fstat(j->fd, &st) == 0) j->file_bytes = (uint64_t)st.st_size;
    j->max_bytes = JOURNAL_DEFAULT_MAX_BYTES;
    j->max_pending = JOURNAL_MAX_PENDING;
    return PH_OK;
}

/* A checkpoint line ("ts" first, then the owner's state, "event":
 * "checkpoint"), newline-terminated and malloc'ed; NULL when there is none. */
static char *checkpoint_line(struct journal *j, size_t *len)
{
    json_t *cp = j->checkpoint ? j->checkpoint(j->checkpoint_ctx) : NULL;
    if (cp == NULL) return NULL;
    json_object_set_new(cp, "event", json_string("checkpoint"));
    char ts[32];
    ph_rfc3339_ms(ph_real_ns(), ts);
    json_t *line = json_pack("{s:s}", "ts", ts);
    json_object_update(line, cp);
    json_decref(cp);
    char *text = json_dumps(line, JOURNAL_DUMP_FLAGS);
    json_decref(line);
    if (text == NULL) return NULL;
    size_t n = strlen(text);
    char *b = realloc(text, n + 2);
    if (b == NULL) {
        free(text);
        return NULL;
    }
    b[n] = '\n';
    b[n + 1] = '\0';
    *len = n + 1;
    return b;
}

/* Appends `n` bytes of text and a newline to the collecting buffer. Beyond
 * `limit` pending bytes, or without memory, nothing is appended. */
static bool buffer_line(struct journal *j, const char *text, size_t n, size_t limit)
{
    if (j->len[0] + n + 1 > limit) return false;
    if (j->len[0] + n + 1 > j->cap[0]) {
        size_t cap = j->cap[0] ? j->cap[0] * 2 : 65536;
        while (cap < j->len[0] + n + 1)
            cap *= 2;
        char *b = realloc(j->buf[0], cap);
        if (b == NULL) return false;
        j->buf[0] = b;
        j->cap[0] = cap;
    }
    memcpy(j->buf[0] + j->len[0], text, n);
    j->buf[0][j->len[0] + n] = '\n';
    j->len[0] += n + 1;
    j->entries++;
    return true;
}

/* Entries up to `upto` are in the file; a lost one (not covered yet) stops
 * the marks short of it. */
static void advance_durable(struct journal *j, uint64_t upto)
{
    if (j->lost_from != 0 && upto >= j->lost_from) upto = j->lost_from - 1;
    if (upto > j->durable) j->durable = upto;
}

/* A checkpoint summing up entries 1..cover is in the file: the entries lost
 * among them are recorded by it. */
static void checkpoint_written(struct journal *j, uint64_t cover)
{
    if (j->lost_from == 0 || j->lost_from > cover) return;
    if (j->lost_last > cover) {
        j->lost_from = cover + 1; /* lost since: the next checkpoint covers them */
        return;
    }
    j->lost_from = 0;
    ph_info("journal %s: a checkpoint records the state the lost entries had changed (%llu "
            "entries lost in all); held signals and outcomes go on",
            j->path, (unsigned long long)j->dropped);
}

/* An entry (number `seq`) could not be buffered. */
static void entry_lost(struct journal *j, uint64_t seq, const char *why)
{
    const bool first = j->lost_from == 0;
    j->dropped++;
    if (first) j->lost_from = seq;
    j->lost_last = seq;
    const uint64_t now = ph_mono_ns();
    if (first || now >= j->report_ns) {
        j->report_ns = now + JOURNAL_REPORT_NS;
        ph_error("journal %s: entries are being lost (%s; %llu so far): signals stay "
                 "unacknowledged and outcomes wait until a checkpoint records the state",
                 j->path, why, (unsigned long long)j->dropped);
    }
}

/* Appends a checkpoint (summing up every entry added so far) to the
 * collecting buffer. It is not dropped for the pending cap: it is bounded
 * by the state it describes, and lost entries wait for it. */
static bool queue_checkpoint(struct journal *j)
{
    size_t n = 0;
    char *cp = checkpoint_line(j, &n);
    if (cp == NULL) return false;
    bool ok = buffer_line(j, cp, n - 1, SIZE_MAX);
    free(cp);
    if (ok) j->cover[0] = j->added;
    return ok;
}

/* Hands the collecting buffer over to be written, when the previous one is
 * written and there is something to write. */
static bool swap_buffers(struct journal *j)
{
    if (j->written < j->len[1] || j->len[0] == 0) return false;
    char *b = j->buf[1];
    size_t c = j->cap[1];
    j->buf[1] = j->buf[0];
    j->len[1] = j->len[0];
    j->cap[1] = j->cap[0];
    j->last[1] = j->last[0];
    j->cover[1] = j->cover[0];
    j->cover[0] = 0;
    j->buf[0] = b;
    j->cap[0] = c;
    j->len[0] = 0;
    j->written = 0;
    return true;
}

static bool write_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            if (n == 0) errno = EIO;
            return false;
        }
        data += n;
        len -= (size_t)n;
    }
    return true;
}

static void rotation_failed(struct journal *j, const char *what, const char *tmp)
{
    int e = errno;
    if (tmp != NULL) unlink(tmp);
    j->rotate_after_ns = ph_mono_ns() + JOURNAL_ROTATE_RETRY_NS;
    ph_error("journal %s: cannot rotate (%s: %s); writing on in the current file, trying again "
             "in %u s",
             j->path, what, strerror(e), (unsigned)(JOURNAL_ROTATE_RETRY_NS / 1000000000u));
}

/* Moves the full file aside and starts a new one with a checkpoint, in the
 * order journal.h gives. Called only between writes (nothing in flight,
 * buf[1] fully written). */
static void rotate(struct journal *j)
{
    /* 1. Everything added so far goes to the old file first: the checkpoint
     * sums up the entries added so far, and must not precede any of them. */
    for (;;) {
        if (j->written >= j->len[1] && !swap_buffers(j)) break;
        ssize_t n = write(j->fd, j->buf[1] + j->written, j->len[1] - j->written);
        journal_write_done(j, n < 0 ? -errno : (int)n);
        if (n <= 0) return; /* the rest is written (and rotated) later */
    }
    /* 2. The checkpoint, whole and on disk, under a name no reader reads. */
    size_t n = 0;
    char *cp = checkpoint_line(j, &n);
    if (cp == NULL && j->checkpoint != NULL) {
        errno = ENOMEM;
        rotation_failed(j, "building the checkpoint", NULL);
        return;
    }
    char tmp[sizeof j->path + 8], from[sizeof j->path + 8], to[sizeof j->path + 8];
    snprintf(tmp, sizeof tmp, "%s.new", j->path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) {
        free(cp);
        rotation_failed(j, "creating the new file", NULL);
        return;
    }
    if ((cp != NULL && !write_all(fd, cp, n)) || fdatasync(fd) != 0) {
        free(cp);
        close(fd);
        rotation_failed(j, "writing the checkpoint", tmp);
        return;
    }
    free(cp);
    /* 3. The older files move up; <path>.2 (the oldest kept) is replaced. */
    for (int k = JOURNAL_KEEP_ROTATED; k >= 2; k--) {
        snprintf(from, sizeof from, "%s.%d", j->path, k - 1);
        snprintf(to, sizeof to, "%s.%d", j->path, k);
        if (rename(from, to) != 0 && errno != ENOENT) {
            close(fd);
            rotation_failed(j, "renaming the older files", tmp);
            return;
        }
    }
    snprintf(to, sizeof to, "%s.1", j->path);
    if (rename(j->path, to) != 0) {
        close(fd);
        rotation_failed(j, "renaming the full file", tmp);
        return;
    }
    /* 4. The new file takes the name. */
    if (rename(tmp, j->path) != 0) {
        int e = errno;
        if (rename(to, j->path) != 0)
            ph_error("journal %s: cannot move %s back: %s", j->path, to, strerror(errno));
        close(fd);
        errno = e;
        rotation_failed(j, "renaming the new file", tmp);
        return;
    }
    snprintf(from, sizeof from, "%s", j->path);
    char *slash = strrchr(from, '/');
    if (slash != NULL) *slash = '\0';
    int dfd =
        open(slash != NULL ? (from[0] ? from : "/") : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        if (fsync(dfd) != 0)
            ph_warn("journal %s: cannot sync its folder: %s", j->path, strerror(errno));
        close(dfd);
    }
    close(j->fd);
    j->fd = fd;
    j->file_bytes = j->base_bytes = n;
    j->rotations++;
    if (n > 0) {
        j->entries++;
        /* It sums up every entry added, lost ones included, and it is in. */
        checkpoint_written(j, j->added);
        advance_durable(j, j->added);
    }
    ph_info("journal %s rotated (over %llu bytes); the previous file is %s", j->path,
            (unsigned long long)j->max_bytes, to);
}

/* Due once the file reached the cap, and holds at least as much after its
 * checkpoint as the checkpoint itself: a checkpoint larger than the cap does
 * not rotate the file on every write. */
static bool rotation_due(const struct journal *j)
{
    return j->max_bytes != 0 && j->file_bytes >= j->max_bytes &&
           j->file_bytes - j->base_bytes >= j->base_bytes &&
           (j->rotate_after_ns == 0 || ph_mono_ns() >= j->rotate_after_ns);
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
    /* Lost or not, the entry takes its place in the count: marks taken
     * after it must not pass it. */
    const uint64_t seq = ++j->added;
    const uint64_t queued = j->cover[0] > j->cover[1] ? j->cover[0] : j->cover[1];
    if (text == NULL)
        entry_lost(j, seq, "it cannot be encoded");
    else if (j->lost_from != 0 && j->lost_last > queued)
        /* No entry goes into the file between a lost one and the checkpoint
         * that records it: a reader would take it without what came before. */
        entry_lost(j, seq, "an earlier entry was lost");
    else if (buffer_line(j, text, strlen(text), j->max_pending))
        j->last[0] = seq;
    else
        entry_lost(j, seq,
                   j->len[0] + strlen(text) + 1 > j->max_pending
                       ? "the entries waiting to be written reached their cap"
                       : "no memory");
    free(text);
}

void journal_add_checkpoint(struct journal *j)
{
    /* Not a mark of its own: it restates what the entries before it say. */
    if (j->fd >= 0 && !queue_checkpoint(j))
        ph_error("journal %s: no memory for a checkpoint", j->path);
}

bool journal_next_write(struct journal *j, const char **data, size_t *len)
{
    if (j->fd < 0 || j->in_flight) return false;
    if (j->failing && ph_mono_ns() < j->retry_ns) return false;
    if (j->written >= j->len[1]) {
        if (rotation_due(j)) rotate(j);
        /* Lost entries: the buffer about to be written ends with a
         * checkpoint that records what they changed. */
        if (j->lost_from != 0 && j->written >= j->len[1] && j->cover[0] == 0 &&
            j->checkpoint != NULL)
            queue_checkpoint(j);
        /* Collect into the other buffer while this one is written. */
        if (j->written >= j->len[1] && !swap_buffers(j)) return false;
    }
    *data = j->buf[1] + j->written;
    *len = j->len[1] - j->written;
    j->in_flight = true;
    return true;
}

void journal_write_done(struct journal *j, int res)
{
    j->in_flight = false;
    const uint64_t now = ph_mono_ns();
    if (res <= 0) {
        /* The bytes stay; the write is tried again after a pause. */
        const char *why = res < 0 ? strerror(-res) : "nothing written";
        j->errors++;
        j->failed_writes++;
        j->backoff_ns = j->backoff_ns == 0 ? JOURNAL_RETRY_FIRST_NS : j->backoff_ns * 2;
        if (j->backoff_ns > JOURNAL_RETRY_MAX_NS) j->backoff_ns = JOURNAL_RETRY_MAX_NS;
        j->retry_ns = now + j->backoff_ns;
        if (!j->failing) {
            j->failing = true;
            j->failing_since_ns = now;
            j->report_ns = now + JOURNAL_REPORT_NS;
            ph_error("journal %s: cannot write (%s): signals stay unacknowledged and outcomes "
                     "wait until it can; trying again",
                     j->path, why);
        } else if (now >= j->report_ns) {
            j->report_ns = now + JOURNAL_REPORT_NS;
            ph_error("journal %s: still cannot write (%s): %llu attempts in %llu s, %zu bytes "
                     "waiting",
                     j->path, why, (unsigned long long)j->failed_writes,
                     (unsigned long long)((now - j->failing_since_ns) / 1000000000u),
                     j->len[1] - j->written + j->len[0]);
        }
        return;
    }
    if (j->failing)
        ph_info("journal %s: writing again after %llu failed attempts in %llu s", j->path,
                (unsigned long long)j->failed_writes,
                (unsigned long long)((now - j->failing_since_ns) / 1000000000u));
    j->failing = false;
    j->failed_writes = 0;
    j->backoff_ns = 0;
    j->written += (size_t)res;
    j->file_bytes += (uint64_t)res;
    /* Entries count once their whole buffer is in: a short write leaves the
     * last of them cut. */
    if (j->written >= j->len[1]) {
        if (j->cover[1] != 0) checkpoint_written(j, j->cover[1]);
        advance_durable(j, j->last[1] > j->cover[1] ? j->last[1] : j->cover[1]);
        j->cover[1] = 0;
    }
}

void journal_flush_sync(struct journal *j)
{
    const char *data;
    size_t len;
    j->retry_ns = 0;
    while (journal_next_write(j, &data, &len)) {
        ssize_t n = write(j->fd, data, len);
        journal_write_done(j, n < 0 ? -errno : (int)n);
        if (n <= 0) break;
    }
}
