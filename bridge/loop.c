/* ph-bridge's event loop (loop.h), on ph/loop.h.
 *
 * What wakes the process:
 *   the tick     a timeout: channel check, heartbeat, out-ring drain,
 *                pending signals, sink flush; every --tick-ms while there
 *                is work, every --idle-tick-ms once bridge_sleep() armed
 *                the bell (a long timeout still pending is cancelled as
 *                soon as work appears);
 *   the bell     a datagram from the controller: documents were written
 *                while the bridge slept (ph/channel.h); a tick at once;
 *   a signal     SIGTERM or SIGINT: a clean stop;
 *   the input    a read of the signal input completed;
 *   the socket   the sink's socket became readable (AMQP): signals and
 *                publisher confirms are read at once, not at the next tick.
 *                The poll is tagged with the connection it was armed on and
 *                cancelled when the sink reconnects.
 * A pipe or terminal on stdin is read with one read always in flight (the
 * kernel completes it when data arrives); a regular file is followed like
 * `tail -f` by one read per tick at the current offset, since a regular
 * file never blocks and has no readiness to wait for. No read is issued
 * while valid signals wait for room in the in ring: the input itself is the
 * backpressure, and nothing is dropped. */
#include "loop.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lines.h"
#include "ph/log.h"
#include "ph/loop.h"

#define INPUT_CHUNK (64u * 1024u)

struct input {
    bool on;
    int fd;
    bool follow;   /* regular file: one read per tick at `offset` */
    bool eof;      /* stdin/pipe ended: stop reading, keep running */
    bool inflight; /* a read owns `buf` */
    bool defer;    /* EAGAIN (a non-blocking stdin): retry at the next tick, not at once */
    uint64_t offset;
    /* A followed file's read position survives a bridge restart in
     * <file>.pos ("<inode> <offset>"), so signals already forwarded are not
     * sent to the controller again. */
    char pos_path[4096];
    uint64_t ino;
    uint64_t saved;
    const char *name;
    struct lines lines;
    char *buf;
};

struct app {
    struct ph_loop *loop;
    struct bridge *b;
    struct input in;
    uint32_t tick_ms, idle_tick_ms;
    bool ticked;
    uint64_t timer_id;  /* the pending tick timeout, 0: none */
    uint64_t timer_tag; /* its tag: a cancelled one's completion is ignored */
    uint32_t timer_ms;  /* its length */
    bool bell_armed;    /* a read of the bell in flight */
    bool rung;
    char bell_buf[16];
    bool sock_armed;
    uint64_t sock_gen; /* connection the armed poll belongs to */
    uint64_t sock_id;  /* the poll request */
};

static void on_input(void *ctx, uint64_t tag, int res);

static void arm_input(struct app *a)
{
    struct input *in = &a->in;
    if (!in->on || in->eof || in->inflight || bridge_signals_pending(a->b) > 0) return;
    /* -1: the fd's own position (pipes have none); a followed file is read
     * at an explicit offset so that truncation can be handled. */
    in->inflight = ph_loop_read(a->loop, in->fd, in->buf, INPUT_CHUNK,
                                in->follow ? in->offset : (uint64_t)-1, on_input, a, 0) != 0;
}

static void on_sock(void *ctx, uint64_t gen, int res)
{
    (void)res;
    struct app *a = ctx;
    /* A stale poll (older connection) or a cancelled one is only accounted for. */
    if (!a->sock_armed || gen != a->sock_gen) return;
    a->sock_armed = false;
    bridge_service(a->b);
}

/* Keeps one poll armed on the sink's current socket, none when it has none. */
static void sync_sock(struct app *a)
{
    uint64_t gen = 0;
    int fd = sink_poll_fd(a->b->sink, &gen);
    if (a->sock_armed && (fd < 0 || gen != a->sock_gen)) {
        ph_loop_cancel(a->loop, a->sock_id);
        a->sock_armed = false;
    }
    if (!a->sock_armed && fd >= 0) {
        a->sock_id = ph_loop_poll(a->loop, fd, POLLIN, on_sock, a, gen);
        a->sock_armed = a->sock_id != 0;
        a->sock_gen = gen;
    }
}

static bool sink_socket(struct bridge *b)
{
    uint64_t gen;
    return sink_poll_fd(b->sink, &gen) >= 0;
}

static void on_line(void *ctx, const char *line, size_t len, size_t full_len)
{
    struct app *a = ctx;
    bridge_signal_line(a->b, line, len, full_len, a->in.lines.pos);
}

static void on_input(void *ctx, uint64_t tag, int res)
{
    (void)tag;
    struct app *a = ctx;
    struct input *in = &a->in;
    in->inflight = false;
    if (res > 0) {
        in->offset += (uint64_t)res;
        lines_feed(&in->lines, in->buf, (size_t)res, on_line, a);
        return;
    }
    if (res == -EINTR) return; /* re-armed by the caller */
    if (res == -EAGAIN) {
        /* stdin inherited with O_NONBLOCK: no data now. Retrying at once
         * would spin; the next tick is soon enough. */
        in->defer = true;
        return;
    }
    if (res == 0 && in->follow) {
        /* Nothing new. A file that shrank was truncated (or rewritten):
         * start again from its beginning, like tail -f. */
        struct stat st;
        if (fstat(in->fd, &st) == 0 && (uint64_t)st.st_size < in->offset) {
            ph_warn("signal file %s was truncated; reading it from the start", in->name);
            in->offset = 0;
            in->lines.len = in->lines.full_len = 0;
            in->lines.pos = 0;
            a->b->line_settled = 0;
            /* The saved position belongs to the old content. */
            in->saved = 0;
            unlink(in->pos_path);
        }
        return;
    }
    if (res == 0) {
        lines_finish(&in->lines, on_line, a);
        ph_info("signal input %s ended; no more signals will be read from it", in->name);
    } else {
        ph_error("reading signal input %s failed: %s; no more signals will be read from it",
                 in->name, strerror(-res));
    }
    in->eof = true;
}

/* Records how far a followed file has been taken: a line whose signal the
 * controller has not consumed (still queued in the bridge, or in the ring)
 * must be read again after a crash. With nothing outstanding that is every
 * complete line read (refused and blank ones too); else the end of the last
 * line the controller consumed. */
static void save_position(struct input *in, const struct bridge *b)
{
    if (!in->follow) return;
    const bool idle = bridge_signals_pending(b) + bridge_signals_unconsumed(b) == 0;
    const uint64_t done = idle ? in->lines.pos : b->line_settled;
    if (done <= in->saved) return;
    char tmp[sizeof in->pos_path + 8];
    snprintf(tmp, sizeof tmp, "%s.tmp", in->pos_path);
    FILE *f = fopen(tmp, "w");
    if (f == NULL) return; /* best effort: a read-only folder only loses resumption */
    fprintf(f, "%llu %llu\n", (unsigned long long)in->ino, (unsigned long long)done);
    if (fclose(f) == 0 && rename(tmp, in->pos_path) == 0) in->saved = done;
}

static int open_input(struct input *in, const char *spec, size_t max_line)
{
    memset(in, 0, sizeof *in);
    in->fd = -1;
    if (spec == NULL) return 0;
    in->on = true;
    if (strcmp(spec, "-") == 0) {
        in->fd = STDIN_FILENO;
        in->name = "stdin";
    } else {
        in->name = spec;
        in->fd = open(spec, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
        struct stat st;
        if (in->fd < 0 || fstat(in->fd, &st) != 0) {
            ph_error("cannot open signal file %s: %s", spec, strerror(errno));
            return -1;
        }
        if (!S_ISREG(st.st_mode)) {
            ph_error("signal file %s is not a regular file (use --signals - to read a pipe "
                     "on stdin)",
                     spec);
            return -1;
        }
        in->follow = true;
        in->ino = (uint64_t)st.st_ino;
        snprintf(in->pos_path, sizeof in->pos_path, "%s.pos", spec);
        FILE *f = fopen(in->pos_path, "r");
        unsigned long long ino = 0, off = 0;
        if (f != NULL && fscanf(f, "%llu %llu", &ino, &off) == 2 && ino == in->ino &&
            off <= (unsigned long long)st.st_size) {
            in->offset = in->saved = off;
            ph_info("signal file %s: resuming after byte %llu (already forwarded)", spec, off);
        }
        if (f != NULL) fclose(f);
    }
    in->buf = malloc(INPUT_CHUNK);
    if (in->buf == NULL || lines_init(&in->lines, max_line) != 0) {
        ph_error("out of memory for the signal input buffers");
        return -1;
    }
    in->lines.pos = in->offset;
    return 0;
}

static void close_input(struct input *in)
{
    if (in->fd > STDIN_FILENO) close(in->fd);
    free(in->buf);
    lines_free(&in->lines);
}

static void on_tick(void *ctx, uint64_t tag, int res)
{
    (void)res;
    struct app *a = ctx;
    if (tag != a->timer_tag) return; /* cancelled: a shorter one replaced it */
    a->timer_id = 0;
    a->ticked = true;
}

/* The next tick: long while the bridge sleeps on its bell, short otherwise.
 * A long timeout already pending is cut short when there is work again. */
static void arm_tick(struct app *a, bool asleep)
{
    const uint32_t ms = asleep ? a->idle_tick_ms : a->tick_ms;
    if (a->timer_id != 0) {
        if (a->timer_ms <= ms) return;
        ph_loop_cancel(a->loop, a->timer_id);
        a->timer_id = 0;
    }
    a->timer_tag++;
    a->timer_ms = ms;
    a->timer_id = ph_loop_timeout(a->loop, ms, on_tick, a, a->timer_tag);
}

static void on_bell(void *ctx, uint64_t tag, int res)
{
    (void)tag;
    struct app *a = ctx;
    a->bell_armed = false;
    if (res >= 0) {
        a->rung = true;
        return;
    }
    if (res == -EINTR || res == -ECANCELED) return; /* read again */
    /* Not a wake-up source any more: the bridge keeps its short tick. */
    ph_warn("reading the bell failed: %s; polling the channel every tick from now on",
            strerror(-res));
    close(a->b->bell_fd);
    a->b->bell_fd = -1;
}

static void arm_bell(struct app *a)
{
    if (a->bell_armed || a->b->bell_fd < 0) return;
    a->bell_armed = ph_loop_read(a->loop, a->b->bell_fd, a->bell_buf, sizeof a->bell_buf,
                                 (uint64_t)-1, on_bell, a, 0) != 0;
}

static void on_stop_signal(void *ctx, uint64_t tag, int signo)
{
    (void)tag;
    struct app *a = ctx;
    ph_info("signal %d received: stopping", signo);
    ph_loop_stop(a->loop);
}

int loop_run(struct bridge *b, const struct loop_cfg *cfg)
{
    struct app a;
    memset(&a, 0, sizeof a);
    a.b = b;
    a.tick_ms = cfg->tick_ms;
    a.idle_tick_ms = cfg->idle_tick_ms > cfg->tick_ms ? cfg->idle_tick_ms : cfg->tick_ms;
    if (open_input(&a.in, cfg->signals, cfg->max_line) != 0) {
        close_input(&a.in);
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    char err[256];
    static const int stop_signals[] = {SIGTERM, SIGINT};
    a.loop = ph_loop_new(16, err, sizeof err);
    if (a.loop == NULL ||
        ph_loop_signals(a.loop, stop_signals, 2, on_stop_signal, &a, err, sizeof err) != 0) {
        ph_error("cannot set up the event loop: %s", err);
        ph_loop_free(a.loop);
        close_input(&a.in);
        return 1;
    }

    const uint64_t started = ph_mono_ns();
    int exit_code = 0;
    bridge_tick(b, started);
    arm_tick(&a, false);
    arm_input(&a);
    arm_bell(&a);
    sync_sock(&a);
    while (!ph_loop_stopped(a.loop)) {
        int rc = ph_loop_once(a.loop);
        if (rc < 0 && rc != -EINTR) {
            ph_error("event loop wait failed: %s", strerror(-rc));
            exit_code = 1;
            break;
        }
        if (ph_loop_stopped(a.loop)) break;
        const bool ticked = a.ticked || a.rung;
        if (a.rung) bridge_rung(b);
        a.ticked = a.rung = false;
        if (ticked) {
            const uint64_t now = ph_mono_ns();
            bridge_wake(b);
            bridge_tick(b, now);
            if (!b->ever_attached && now - started >= cfg->attach_timeout_ns) {
                ph_error("no usable bridge channel for swarm '%s' after %llu s: %s", b->cfg.swarm,
                         (unsigned long long)(cfg->attach_timeout_ns / 1000000000ull),
                         b->wait_reason[0] ? b->wait_reason : "(no reason recorded)");
                exit_code = 1;
                break;
            }
            if (bridge_finished(b)) {
                ph_info("the swarm was removed and its last documents are confirmed: exiting");
                break;
            }
            save_position(&a.in, b);
        }
        sync_sock(&a);
        /* stdin: keep one read in flight; a followed file: one per tick. */
        if (ticked) a.in.defer = false;
        if ((!a.in.follow && !a.in.defer) || ticked) arm_input(&a);
        arm_bell(&a);
        /* A followed file is read once per tick, and a non-blocking stdin
         * that had nothing retried at the next: both keep the short one, as
         * do a bell with no read in flight (nobody would hear it) and a
         * sink socket with no poll armed (nobody would see its data). */
        arm_tick(&a, a.bell_armed && (a.sock_armed || !sink_socket(b)) && !a.in.follow &&
                         !a.in.defer && bridge_sleep(b));
    }
    /* Requests still in flight reference `a`: the loop goes first. */
    ph_loop_free(a.loop);
    if (exit_code == 0) bridge_stop(b);
    save_position(&a.in, b);
    close_input(&a.in);
    return exit_code;
}
