/* ph-bridge's io_uring loop (loop.h).
 *
 * Three kinds of completion wake the process:
 *   TAG_TICK    the tick timeout: channel check, heartbeat, out-ring drain,
 *               pending signals, sink flush; re-armed every time;
 *   TAG_SIGNAL  a signalfd read: SIGTERM or SIGINT, a clean stop;
 *   TAG_INPUT   a read of the signal input;
 *   TAG_SOCK    the sink's socket became readable (AMQP): signals and
 *               publisher confirms are read at once, not at the next tick.
 *               The poll is tagged with the connection it was armed on and
 *               removed when the sink reconnects.
 * A pipe or terminal on stdin is read with one read always in flight (the
 * kernel completes it when data arrives); a regular file is followed like
 * `tail -f` by one read per tick at the current offset, since a regular
 * file never blocks and has no readiness to wait for. No read is issued
 * while valid signals wait for room in the in ring: the input itself is the
 * backpressure, and nothing is dropped. */
#include "loop.h"

#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lines.h"
#include "ph/log.h"

enum { TAG_NONE = 0, TAG_TICK = 1, TAG_SIGNAL = 2, TAG_INPUT = 3, TAG_SOCK = 4 };

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
    struct io_uring ring;
    struct bridge *b;
    struct input in;
    int sigfd;
    struct signalfd_siginfo si;
    struct __kernel_timespec tick;
    bool stop;
    bool sock_armed;
    uint64_t sock_gen; /* connection the armed poll belongs to */
};

static struct io_uring_sqe *sqe_get(struct app *a)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&a->ring);
    if (sqe == NULL) {
        /* The queue is sized for every request we ever have in flight;
         * submitting frees entries if that ever changes. */
        io_uring_submit(&a->ring);
        sqe = io_uring_get_sqe(&a->ring);
    }
    return sqe;
}

static void arm_tick(struct app *a)
{
    struct io_uring_sqe *sqe = sqe_get(a);
    io_uring_prep_timeout(sqe, &a->tick, 0, 0);
    io_uring_sqe_set_data64(sqe, TAG_TICK);
}

static void arm_signal(struct app *a)
{
    struct io_uring_sqe *sqe = sqe_get(a);
    io_uring_prep_read(sqe, a->sigfd, &a->si, sizeof a->si, 0);
    io_uring_sqe_set_data64(sqe, TAG_SIGNAL);
}

static void arm_input(struct app *a)
{
    struct input *in = &a->in;
    if (!in->on || in->eof || in->inflight || bridge_signals_pending(a->b) > 0) return;
    struct io_uring_sqe *sqe = sqe_get(a);
    /* -1: the fd's own position (pipes have none); a followed file is read
     * at an explicit offset so that truncation can be handled. */
    io_uring_prep_read(sqe, in->fd, in->buf, INPUT_CHUNK, in->follow ? in->offset : (uint64_t)-1);
    io_uring_sqe_set_data64(sqe, TAG_INPUT);
    in->inflight = true;
}

static uint64_t sock_tag(uint64_t gen)
{
    return TAG_SOCK | (gen << 8);
}

/* Keeps one poll armed on the sink's current socket, none when it has none. */
static void sync_sock(struct app *a)
{
    uint64_t gen = 0;
    int fd = sink_poll_fd(a->b->sink, &gen);
    if (a->sock_armed && (fd < 0 || gen != a->sock_gen)) {
        struct io_uring_sqe *sqe = sqe_get(a);
        io_uring_prep_poll_remove(sqe, sock_tag(a->sock_gen));
        io_uring_sqe_set_data64(sqe, TAG_NONE);
        a->sock_armed = false;
    }
    if (!a->sock_armed && fd >= 0) {
        struct io_uring_sqe *sqe = sqe_get(a);
        io_uring_prep_poll_add(sqe, fd, POLLIN);
        io_uring_sqe_set_data64(sqe, sock_tag(gen));
        a->sock_armed = true;
        a->sock_gen = gen;
    }
}

static void on_line(void *ctx, const char *line, size_t len, size_t full_len)
{
    bridge_signal_line(ctx, line, len, full_len);
}

static void on_input(struct app *a, int res)
{
    struct input *in = &a->in;
    in->inflight = false;
    if (res > 0) {
        in->offset += (uint64_t)res;
        lines_feed(&in->lines, in->buf, (size_t)res, on_line, a->b);
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
        }
        return;
    }
    if (res == 0) {
        lines_finish(&in->lines, on_line, a->b);
        ph_info("signal input %s ended; no more signals will be read from it", in->name);
    } else {
        ph_error("reading signal input %s failed: %s; no more signals will be read from it",
                 in->name, strerror(-res));
    }
    in->eof = true;
}

/* Records how far complete lines of a followed file have been forwarded.
 * Only when nothing waits in the bridge: a line still queued for the
 * controller must be read again after a crash. */
static void save_position(struct input *in, size_t pending)
{
    if (!in->follow || pending > 0) return;
    const uint64_t done = in->offset - in->lines.full_len;
    if (done == in->saved) return;
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
    return 0;
}

static void close_input(struct input *in)
{
    if (in->fd > STDIN_FILENO) close(in->fd);
    free(in->buf);
    lines_free(&in->lines);
}

int loop_run(struct bridge *b, const struct loop_cfg *cfg)
{
    struct app a;
    memset(&a, 0, sizeof a);
    a.b = b;
    a.tick.tv_sec = cfg->tick_ms / 1000;
    a.tick.tv_nsec = (long long)(cfg->tick_ms % 1000) * 1000000ll;
    if (open_input(&a.in, cfg->signals, cfg->max_line) != 0) {
        close_input(&a.in);
        return 1;
    }
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    signal(SIGPIPE, SIG_IGN);
    a.sigfd = signalfd(-1, &mask, SFD_CLOEXEC);
    int rc = a.sigfd < 0 ? -errno : io_uring_queue_init(16, &a.ring, 0);
    if (rc < 0) {
        ph_error("cannot set up the event loop (%s): %s", a.sigfd < 0 ? "signalfd" : "io_uring",
                 strerror(-rc));
        if (a.sigfd >= 0) close(a.sigfd);
        close_input(&a.in);
        return 1;
    }

    const uint64_t started = ph_mono_ns();
    int exit_code = 0;
    bridge_tick(b, started);
    arm_tick(&a);
    arm_signal(&a);
    arm_input(&a);
    sync_sock(&a);
    while (!a.stop) {
        rc = io_uring_submit_and_wait(&a.ring, 1);
        if (rc < 0 && rc != -EINTR) {
            ph_error("io_uring wait failed: %s", strerror(-rc));
            exit_code = 1;
            break;
        }
        bool ticked = false;
        unsigned head, seen = 0;
        struct io_uring_cqe *cqe;
        io_uring_for_each_cqe(&a.ring, head, cqe)
        {
            seen++;
            const uint64_t tag = io_uring_cqe_get_data64(cqe);
            if ((tag & 0xff) == TAG_SOCK) {
                /* A stale poll (older connection) or a cancelled one is
                 * only accounted for. */
                if (a.sock_armed && tag == sock_tag(a.sock_gen)) {
                    a.sock_armed = false;
                    sink_service(b->sink);
                }
                continue;
            }
            switch (tag) {
            case TAG_TICK:
                ticked = true;
                break;
            case TAG_SIGNAL:
                if (cqe->res == (int)sizeof a.si) {
                    ph_info("signal %u received: stopping", a.si.ssi_signo);
                    a.stop = true;
                } else {
                    arm_signal(&a);
                }
                break;
            case TAG_INPUT:
                on_input(&a, cqe->res);
                break;
            }
        }
        io_uring_cq_advance(&a.ring, seen);
        if (a.stop) break;
        if (ticked) {
            const uint64_t now = ph_mono_ns();
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
            arm_tick(&a);
            save_position(&a.in, bridge_signals_pending(b));
        }
        sync_sock(&a);
        /* stdin: keep one read in flight; a followed file: one per tick. */
        if (ticked) a.in.defer = false;
        if ((!a.in.follow && !a.in.defer) || ticked) arm_input(&a);
    }
    /* Requests still in flight reference `a`: the ring goes first. */
    io_uring_queue_exit(&a.ring);
    close(a.sigfd);
    if (exit_code == 0) bridge_stop(b);
    save_position(&a.in, bridge_signals_pending(b));
    close_input(&a.in);
    return exit_code;
}
