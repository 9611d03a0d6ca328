/* The event loop (ph/loop.h) on liburing. */
#include "ph/loop.h"

#include <errno.h>
#include <liburing.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#define BATCH 64

/* One request in flight; ids are (slot + 1) | generation << 32. */
struct req {
    ph_loop_fn fn;
    void *ctx;
    uint64_t tag;
    uint32_t gen;
    bool used;
    struct __kernel_timespec ts; /* a timeout's duration, read at submission */
    uint32_t next_free;          /* free list link (slot + 1; 0 = end) */
};

struct ph_loop {
    struct io_uring ring;
    struct req *reqs;
    uint32_t nreqs, cap;
    uint32_t free_head; /* slot + 1 of the first free request, 0 = none */
    size_t pending;
    bool stop;
    /* signals */
    int sigfd;
    struct signalfd_siginfo si;
    ph_loop_fn sig_fn;
    void *sig_ctx;
};

#define SIG_TAG UINT64_MAX

struct ph_loop *ph_loop_new(unsigned entries, char *err, size_t errlen)
{
    struct ph_loop *l = calloc(1, sizeof *l);
    if (l == NULL) {
        snprintf(err, errlen, "out of memory for the event loop");
        return NULL;
    }
    l->sigfd = -1;
    int rc = io_uring_queue_init(entries ? entries : 64, &l->ring, 0);
    if (rc < 0) {
        snprintf(err, errlen, "cannot set up io_uring: %s", strerror(-rc));
        free(l);
        return NULL;
    }
    return l;
}

void ph_loop_free(struct ph_loop *l)
{
    if (l == NULL) return;
    /* Requests still in flight reference caller buffers: the ring goes
     * first, which cancels them. */
    io_uring_queue_exit(&l->ring);
    if (l->sigfd >= 0) close(l->sigfd);
    free(l->reqs);
    free(l);
}

static uint64_t req_new(struct ph_loop *l, ph_loop_fn fn, void *ctx, uint64_t tag)
{
    uint32_t slot;
    if (l->free_head != 0) {
        slot = l->free_head - 1;
        l->free_head = l->reqs[slot].next_free;
    } else {
        if (l->nreqs == l->cap) {
            uint32_t cap = l->cap ? l->cap * 2 : 64;
            struct req *r = realloc(l->reqs, cap * sizeof *r);
            if (r == NULL) return 0;
            l->reqs = r;
            l->cap = cap;
        }
        slot = l->nreqs++;
        l->reqs[slot].gen = 0;
    }
    struct req *r = &l->reqs[slot];
    r->fn = fn;
    r->ctx = ctx;
    r->tag = tag;
    r->gen++;
    r->used = true;
    r->next_free = 0;
    l->pending++;
    return (uint64_t)(slot + 1) | ((uint64_t)r->gen << 32);
}

/* The request an id names, or NULL when it is not (any longer) in flight. */
static struct req *req_of(struct ph_loop *l, uint64_t id)
{
    uint32_t slot = (uint32_t)(id & 0xffffffffu);
    if (slot == 0 || slot > l->nreqs) return NULL;
    struct req *r = &l->reqs[slot - 1];
    return r->used && r->gen == (uint32_t)(id >> 32) ? r : NULL;
}

static void req_free(struct ph_loop *l, uint64_t id)
{
    uint32_t slot = (uint32_t)(id & 0xffffffffu);
    struct req *r = &l->reqs[slot - 1];
    r->used = false;
    r->next_free = l->free_head;
    l->free_head = slot;
    l->pending--;
}

static struct io_uring_sqe *sqe_get(struct ph_loop *l)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&l->ring);
    if (sqe == NULL) {
        /* Full submission queue: hand it to the kernel and take a fresh one. */
        io_uring_submit(&l->ring);
        sqe = io_uring_get_sqe(&l->ring);
    }
    return sqe;
}

/* A new request with its SQE, or 0 (out of memory: nothing submitted). */
static uint64_t start(struct ph_loop *l, ph_loop_fn fn, void *ctx, uint64_t tag,
                      struct io_uring_sqe **sqe)
{
    uint64_t id = req_new(l, fn, ctx, tag);
    if (id == 0) return 0;
    *sqe = sqe_get(l);
    if (*sqe == NULL) {
        req_free(l, id);
        return 0;
    }
    io_uring_sqe_set_data64(*sqe, id);
    return id;
}

uint64_t ph_loop_timeout(struct ph_loop *l, uint32_t ms, ph_loop_fn fn, void *ctx, uint64_t tag)
{
    struct io_uring_sqe *sqe;
    uint64_t id = start(l, fn, ctx, tag, &sqe);
    if (id == 0) return 0;
    struct req *r = req_of(l, id);
    r->ts.tv_sec = ms / 1000;
    r->ts.tv_nsec = (long long)(ms % 1000) * 1000000ll;
    io_uring_prep_timeout(sqe, &r->ts, 0, 0);
    io_uring_sqe_set_data64(sqe, id);
    /* The timespec is read when the request is submitted; the request table
     * may grow (move) before that, so submit now. */
    io_uring_submit(&l->ring);
    return id;
}

uint64_t ph_loop_poll(struct ph_loop *l, int fd, unsigned events, ph_loop_fn fn, void *ctx,
                      uint64_t tag)
{
    struct io_uring_sqe *sqe;
    uint64_t id = start(l, fn, ctx, tag, &sqe);
    if (id == 0) return 0;
    io_uring_prep_poll_add(sqe, fd, events);
    io_uring_sqe_set_data64(sqe, id);
    return id;
}

uint64_t ph_loop_read(struct ph_loop *l, int fd, void *buf, unsigned len, uint64_t offset,
                      ph_loop_fn fn, void *ctx, uint64_t tag)
{
    struct io_uring_sqe *sqe;
    uint64_t id = start(l, fn, ctx, tag, &sqe);
    if (id == 0) return 0;
    io_uring_prep_read(sqe, fd, buf, len, offset);
    io_uring_sqe_set_data64(sqe, id);
    return id;
}

uint64_t ph_loop_write(struct ph_loop *l, int fd, const void *buf, unsigned len, uint64_t offset,
                       ph_loop_fn fn, void *ctx, uint64_t tag)
{
    struct io_uring_sqe *sqe;
    uint64_t id = start(l, fn, ctx, tag, &sqe);
    if (id == 0) return 0;
    io_uring_prep_write(sqe, fd, buf, len, offset);
    io_uring_sqe_set_data64(sqe, id);
    return id;
}

void ph_loop_cancel(struct ph_loop *l, uint64_t id)
{
    if (req_of(l, id) == NULL) return;
    struct io_uring_sqe *sqe = sqe_get(l);
    if (sqe == NULL) return;
    io_uring_prep_cancel64(sqe, id, 0);
    io_uring_sqe_set_data64(sqe, 0); /* its own completion is ignored */
}

static void sig_arm(struct ph_loop *l);

static void on_sig(void *ctx, uint64_t tag, int res)
{
    (void)tag;
    struct ph_loop *l = ctx;
    if (res == (int)sizeof l->si) l->sig_fn(l->sig_ctx, 0, (int)l->si.ssi_signo);
    if (!l->stop) sig_arm(l);
}

static void sig_arm(struct ph_loop *l)
{
    ph_loop_read(l, l->sigfd, &l->si, sizeof l->si, 0, on_sig, l, SIG_TAG);
}

int ph_loop_signals(struct ph_loop *l, const int *signos, int n, ph_loop_fn fn, void *ctx,
                    char *err, size_t errlen)
{
    sigset_t mask;
    sigemptyset(&mask);
    for (int i = 0; i < n; i++) sigaddset(&mask, signos[i]);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    l->sigfd = signalfd(-1, &mask, SFD_CLOEXEC);
    if (l->sigfd < 0) {
        snprintf(err, errlen, "cannot open a signalfd: %s", strerror(errno));
        return -1;
    }
    l->sig_fn = fn;
    l->sig_ctx = ctx;
    sig_arm(l);
    return 0;
}

int ph_loop_once(struct ph_loop *l)
{
    int rc = io_uring_submit_and_wait(&l->ring, 1);
    if (rc < 0 && rc != -EINTR) return rc;
    /* Copy the batch out first: callbacks submit new requests. */
    struct {
        uint64_t id;
        int res;
    } got[BATCH];
    unsigned n = 0, head;
    struct io_uring_cqe *cqe;
    io_uring_for_each_cqe(&l->ring, head, cqe)
    {
        if (n == BATCH) break;
        got[n].id = io_uring_cqe_get_data64(cqe);
        got[n].res = cqe->res;
        n++;
    }
    io_uring_cq_advance(&l->ring, n);
    int dispatched = 0;
    for (unsigned i = 0; i < n; i++) {
        struct req *r = req_of(l, got[i].id);
        if (r == NULL) continue; /* a cancel's own completion */
        ph_loop_fn fn = r->fn;
        void *ctx = r->ctx;
        uint64_t tag = r->tag;
        req_free(l, got[i].id);
        fn(ctx, tag, got[i].res);
        dispatched++;
    }
    return dispatched;
}

int ph_loop_run(struct ph_loop *l)
{
    while (!l->stop) {
        int rc = ph_loop_once(l);
        if (rc < 0) return rc;
    }
    return 0;
}

void ph_loop_stop(struct ph_loop *l)
{
    l->stop = true;
}

bool ph_loop_stopped(const struct ph_loop *l)
{
    return l->stop;
}

size_t ph_loop_pending(const struct ph_loop *l)
{
    return l->pending;
}
