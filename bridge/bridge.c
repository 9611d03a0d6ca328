/* The bridge's core (bridge.h). */
#include "bridge.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "envelope.h"
#include "ph/log.h"
#include "ph/shm.h"

#define NS_PER_MS 1000000ull
#define NS_PER_S 1000000000ull
#define LOG_LINES_PER_S 20u
/* A clean stop waits this long for the sink to deliver what it holds, so
 * that the next bridge need not publish it again. */
#define STOP_DELIVERY_WAIT_NS (2 * NS_PER_S)
/* handle_doc(): the sink is full; the rest stays in the ring for now. */
#define DRAIN_STOP 1

static int receive_signal(void *ctx, const char *rk, size_t rklen, const char *body, size_t len,
                          uint64_t delivery)
{
    return (int)bridge_signal_message(ctx, rk, rklen, body, len, delivery);
}

static void free_list(struct bridge_pending *p)
{
    while (p != NULL) {
        struct bridge_pending *n = p->next;
        free(p);
        p = n;
    }
}

static void inflight_forget(struct bridge *b);
static void wait_confirms(struct bridge *b);
static void flush_sink(struct bridge *b);

int bridge_init(struct bridge *b, const struct bridge_cfg *cfg, struct sink *sink, char *err,
                size_t errlen)
{
    memset(b, 0, sizeof *b);
    b->cfg = *cfg;
    if (b->cfg.check_interval_ns == 0) b->cfg.check_interval_ns = 200 * NS_PER_MS;
    if (b->cfg.alert_interval_ns == 0) b->cfg.alert_interval_ns = NS_PER_S;
    b->sink = sink;
    sink->receive = receive_signal;
    sink->receive_ctx = b;
    b->sc.swarm = cfg->swarm;
    b->sc.max_bytes = cfg->max_signal_bytes;
    sigcheck_result_init(&b->res);
    ratelimit_init(&b->alerts, b->cfg.alert_interval_ns);
    b->ch.fd = -1;
    b->bell_fd = -1;
    b->pid = (int32_t)getpid();
    int rc = ph_proc_start_time(b->pid, &b->start_time);
    if (rc != PH_OK) {
        snprintf(err, errlen, "cannot read this process's start time from /proc (%s)",
                 ph_err_name(rc));
        return rc;
    }
    if (ph_cidset_init(&b->delivered_cids, BRIDGE_DELIVERED_CIDS) != 0) {
        snprintf(err, errlen, "out of memory for the published outcomes' ids");
        return PH_ERR_SYS;
    }
    char why[256];
    b->bell_fd = ph_channel_bell_open(cfg->swarm, &b->bell_token, why, sizeof why);
    if (b->bell_fd < 0)
        ph_warn("%s: polling the controller's channel every tick instead of sleeping", why);
    return PH_OK;
}

void bridge_destroy(struct bridge *b)
{
    if (b->attached) {
        ph_channel_unregister_bridge(&b->ch, b->pid);
        ph_channel_close(&b->ch);
        b->attached = false;
    }
    /* Deliveries not settled stay unacknowledged: the broker delivers them
     * again to the next bridge. */
    free_list(b->head);
    free_list(b->sent);
    inflight_forget(b);
    free(b->inflight);
    ph_cidset_free(&b->delivered_cids);
    if (b->bell_fd >= 0) close(b->bell_fd);
    b->bell_fd = -1;
    b->head = b->tail = b->sent = b->sent_tail = NULL;
    b->npending = b->nsent = 0;
    free(b->scratch);
    b->scratch = NULL;
    sigcheck_result_free(&b->res);
}

/* True when a line of this kind may be logged now; a summary of what was
 * held back goes out with the first line of the next window. */
static bool log_allowed(struct bridge_logwin *w, uint64_t now_ns, const char *what)
{
    if (now_ns - w->start_ns >= NS_PER_S) {
        if (w->dropped > 0)
            ph_warn("%" PRIu64 " more %s in the last second were not logged", w->dropped, what);
        w->start_ns = now_ns;
        w->n = 0;
        w->dropped = 0;
    }
    if (w->n < LOG_LINES_PER_S) {
        w->n++;
        return true;
    }
    w->dropped++;
    return false;
}

/* ---- channel ------------------------------------------------------------ */

static int drain_out(struct bridge *b, bool bounded);

static void set_wait_reason(struct bridge *b, const char *reason)
{
    /* Say it once per distinct reason: the attach is retried every check. */
    if (strcmp(b->wait_reason, reason) != 0) {
        ph_info("waiting for the controller's channel: %s", reason);
        snprintf(b->wait_reason, sizeof b->wait_reason, "%s", reason);
    }
}

/* Asks the controller to re-create the channel: the bridge cannot repair
 * a ring the other side writes, and going silent would cut the swarm off. */
static void request_reset(struct bridge *b, uint32_t why)
{
    if (!b->attached) return;
    b->st.resets++;
    /* release: pairs with the controller's acquire; nothing else is
     * published by it, but a request must not be seen before it is made. */
    atomic_store_explicit(&b->ch.hdr->reset_request, why, memory_order_release);
}

/* Signals written into a channel the controller abandoned are forwarded
 * again, ahead of those still waiting: the controller of the new channel
 * never saw them (a repeat of one it did see is recognised by its id). */
static void requeue_unconsumed(struct bridge *b)
{
    if (b->sent == NULL) return;
    b->sent_tail->next = b->head;
    if (b->head == NULL) b->tail = b->sent_tail;
    b->head = b->sent;
    b->npending += b->nsent;
    b->st.reforwarded += b->nsent;
    ph_info("%zu signal(s) the controller had not consumed will be forwarded again", b->nsent);
    for (struct bridge_pending *p = b->sent; p != NULL; p = p->next)
        p->end = 0;
    b->sent = b->sent_tail = NULL;
    b->nsent = 0;
}

static void detach(struct bridge *b)
{
    if (!b->attached) return;
    ph_channel_unregister_bridge(&b->ch, b->pid);
    ph_channel_close(&b->ch);
    b->attached = false;
    b->quarantined = false;
}

/* Where this bridge starts reading: at the ring's head, which a bridge
 * before it on this channel left at the first document its sink had not
 * delivered. Documents up to where that bridge had read (out_read) were
 * handled once already: the reliable ones are published again (nothing
 * says they reached the broker), status is not (stale by now, and the
 * controller sends a fresh status-full for this registration). */
static void note_replay(struct bridge *b, uint32_t out_cap)
{
    const uint64_t head = b->out.head;
    /* acquire: as in a drain, a figure taken to decide what to read. */
    const uint64_t tail = atomic_load_explicit(&b->ch.hdr->out.tail, memory_order_acquire);
    /* relaxed: a hint from the previous bridge; a stale (smaller) value
     * only means some status is published again. Checked like any other
     * position from shared memory: a nonsense value is ignored. */
    const uint64_t read = atomic_load_explicit(&b->ch.hdr->out_read, memory_order_relaxed);
    b->replayed_to = head;
    if ((read & (PH_RING_ALIGN - 1)) == 0 && read >= head && read <= tail && read - head <= out_cap)
        b->replayed_to = read;
    if (b->replayed_to != head)
        ph_info("resuming in the document ring at %" PRIu64 ": %" PRIu64
                " byte(s) an earlier bridge read without their confirms; its outcomes and "
                "alerts there are published again",
                head, b->replayed_to - head);
}

static int attach(struct bridge *b)
{
    char err[256];
    struct ph_channel ch;
    int rc = ph_channel_open(&ch, b->cfg.swarm, true, err, sizeof err);
    if (rc != PH_OK) {
        set_wait_reason(b, err);
        return rc;
    }
    struct stat st;
    if (fstat(ch.fd, &st) != 0) {
        snprintf(err, sizeof err, "cannot stat /dev/shm%s: %s", ch.name, strerror(errno));
        set_wait_reason(b, err);
        ph_channel_close(&ch);
        return PH_ERR_SYS;
    }
    const uint32_t out_cap = ch.out_ring;
    if (b->scratch_cap < out_cap / 2) {
        uint8_t *s = realloc(b->scratch, out_cap / 2);
        if (s == NULL) {
            set_wait_reason(b, "out of memory for the document buffer");
            ph_channel_close(&ch);
            return PH_ERR_SYS;
        }
        b->scratch = s;
        b->scratch_cap = out_cap / 2;
    }
    rc = ph_channel_register_bridge(&ch, b->pid, b->start_time, err, sizeof err);
    if (rc != PH_OK) {
        set_wait_reason(b, err);
        ph_channel_close(&ch);
        return rc;
    }
    /* The out ring's positions come from the controller side and are
     * validated here and on every drain. */
    const bool out_ok = ph_ring_consumer_init(&b->out, &ch.hdr->out, ch.out_data, out_cap) == PH_OK;
    const bool in_ok = ph_ring_producer_init(&b->in, &ch.hdr->in, ch.in_data, ch.in_ring) == PH_OK;
    b->ch = ch;
    b->close_acked = 0; /* marks are positions in this channel's ring */
    /* Holds are positions in the ring just left: they must not hold this
     * one back (what they stand for is still delivered). */
    inflight_forget(b);
    sink_release_holds(b->sink);
    b->commit_refused = false;
    b->replayed_to = 0;
    if (out_ok) note_replay(b, out_cap);
    requeue_unconsumed(b);
    b->dev = st.st_dev;
    b->ino = st.st_ino;
    b->attached = true;
    b->ever_attached = true;
    b->wait_reason[0] = '\0';
    b->st.attaches++;
    b->quarantined = false;
    if (!out_ok || !in_ok) {
        ph_error("channel /dev/shm%s: the %s ring's positions are inconsistent; asking the "
                 "controller to re-create the channel",
                 ch.name, out_ok ? "signal" : "document");
        b->quarantined = true;
        request_reset(b, out_ok ? PH_CHAN_RESET_IN_CORRUPT : PH_CHAN_RESET_OUT_CORRUPT);
    }
    ph_info("attached to /dev/shm%s (controller pid %" PRId32 ", bridge generation %" PRIu64
            ", %zu signal(s) pending)",
            ch.name, atomic_load_explicit(&ch.hdr->controller_pid, memory_order_relaxed),
            atomic_load_explicit(&ch.hdr->bridge_generation, memory_order_relaxed), b->npending);
    return PH_OK;
}

void bridge_poll_channel(struct bridge *b, uint64_t now_ns)
{
    if (now_ns < b->next_check_ns) return;
    b->next_check_ns = now_ns + b->cfg.check_interval_ns;
    if (!b->attached) {
        attach(b);
        return;
    }
    /* A restarted controller unlinks the old object and creates a new one
     * (ph_channel_create): same name, new inode. While the name is absent
     * the controller is gone or starting; the old mapping stays until a new
     * channel exists, then whatever is left in the old out ring is drained
     * before moving over. */
    char path[PH_ID_MAX + 32];
    snprintf(path, sizeof path, "/dev/shm%s", b->ch.name);
    struct stat st;
    if (stat(path, &st) != 0) {
        if (errno == ENOENT) set_wait_reason(b, "the channel was removed (controller stopped?)");
        return;
    }
    if (st.st_ino != b->ino || st.st_dev != b->dev) {
        ph_info("the controller re-created /dev/shm%s: moving to the new channel", b->ch.name);
        /* All of it, full sink or not: nobody reads the old ring later.
         * Then a moment for the confirms (bounded), so that the outcomes the
         * new controller sends again are known delivered and dropped rather
         * than published twice. */
        drain_out(b, false);
        flush_sink(b);
        wait_confirms(b);
        detach(b);
        attach(b);
        return;
    }
    /* Still ours? A controller that reset the registration gets us back; a
     * different live bridge means two bridges for one swarm: step aside. */
    int32_t holder = atomic_load_explicit(&b->ch.hdr->bridge_pid, memory_order_acquire);
    if (holder == b->pid) return;
    char err[256];
    if (ph_channel_register_bridge(&b->ch, b->pid, b->start_time, err, sizeof err) == PH_OK) {
        ph_warn("bridge registration on /dev/shm%s was lost; registered again", b->ch.name);
        b->st.attaches++;
    } else {
        ph_error("%s; detaching from the channel", err);
        ph_channel_close(&b->ch);
        b->attached = false;
    }
}

/* ---- outcomes on their way (bridge.h, BRIDGE_DELIVERED_CIDS) ------------ */

static void inflight_push(struct bridge *b, uint64_t start, const char *cid)
{
    if (b->ninflight == b->inflight_cap) {
        if (b->inflight_head > 0) { /* reuse the settled front */
            memmove(b->inflight, b->inflight + b->inflight_head,
                    (b->ninflight - b->inflight_head) * sizeof *b->inflight);
            b->ninflight -= b->inflight_head;
            b->inflight_head = 0;
        }
        if (b->ninflight == b->inflight_cap) {
            size_t cap = b->inflight_cap ? b->inflight_cap * 2 : 256;
            struct bridge_inflight *n = realloc(b->inflight, cap * sizeof *n);
            if (n == NULL) return; /* not remembered: a repeat is published again */
            b->inflight = n;
            b->inflight_cap = cap;
        }
    }
    char *copy = strdup(cid);
    if (copy == NULL) return;
    b->inflight[b->ninflight++] = (struct bridge_inflight){start, copy};
}

/* Outcomes before ring position `to` are delivered: remembered as such. */
static void inflight_settle(struct bridge *b, uint64_t to)
{
    while (b->inflight_head < b->ninflight && b->inflight[b->inflight_head].start < to) {
        struct bridge_inflight *f = &b->inflight[b->inflight_head++];
        ph_cidset_add(&b->delivered_cids, f->cid);
        free(f->cid);
    }
    if (b->inflight_head == b->ninflight) b->inflight_head = b->ninflight = 0;
}

/* Leaving the ring: what was not confirmed is not known delivered (a repeat
 * of it is published again: at least once). */
static void inflight_forget(struct bridge *b)
{
    for (size_t i = b->inflight_head; i < b->ninflight; i++) free(b->inflight[i].cid);
    b->inflight_head = b->ninflight = 0;
}

/* ---- out ring: documents -> envelopes ------------------------------------ */

static void count(_Atomic uint64_t *c)
{
    /* Statistics for tools (phctl shm-dump); nothing is ordered by them. */
    atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

static void refuse(struct bridge *b, const char *why)
{
    b->st.refused++;
    if (b->attached) count(&b->ch.hdr->docs_refused);
    if (log_allowed(&b->log_refused, ph_mono_ns(), "refused documents"))
        ph_warn("refused document (not published): %s", why);
}

/* `hold`: for a document of the out ring, its position + 1 (see
 * commit_delivered()); 0 for the bridge's own envelopes. */
static bool publish(struct bridge *b, struct envelope *e, bool from_controller, uint64_t hold)
{
    char err[256];
    int rc = sink_publish(b->sink, e->rk, e->env, e->text, e->kind, hold, err, sizeof err);
    if (rc != PH_OK) {
        ph_error("%s", err);
        return false;
    }
    if (from_controller) {
        b->st.published++;
        if (b->attached) count(&b->ch.hdr->docs_published);
    }
    return true;
}

/* The controller stores `closing` before it writes the final documents of
 * a removed swarm; from the first document read after it, everything is
 * published with confirms (sink confirm_all). */
static void check_closing(struct bridge *b)
{
    if (b->sink->confirm_all) return;
    /* acquire: the ring's tail (acquired by the drain before this document
     * was read) was published after closing was stored, so for this
     * document the load is never stale. */
    if (atomic_load_explicit(&b->ch.hdr->closing, memory_order_acquire) == 0) return;
    b->sink->confirm_all = true;
    ph_info("the controller is closing the removed swarm: publishing its last documents with "
            "broker confirms");
}

/* What a drain stops at: DRAIN_STOP once the sink is full (only when the
 * drain is bounded), 0 to go on. */
static int next_doc(struct bridge *b)
{
    return b->drain_bounded && sink_full(b->sink) ? DRAIN_STOP : 0;
}

static int handle_doc(void *ctx, uint16_t type, const uint8_t *body, uint32_t len)
{
    struct bridge *b = ctx;
    /* The drain has moved past this record (ph_ring_handler): it starts
     * where the previous one ended (or at padding just before it). */
    const uint64_t start = b->doc_start;
    b->doc_start = b->out.head;
    check_closing(b);
    if (type != PH_DOC_RECORD) {
        char why[96];
        snprintf(why, sizeof why, "ring record of type %u, expected a document (%u)", type,
                 PH_DOC_RECORD);
        refuse(b, why);
        return next_doc(b);
    }
    struct envelope e;
    char why[512];
    if (envelope_from_doc(body, len, ph_real_ns(), &e, why, sizeof why) != PH_OK) {
        refuse(b, why);
        return next_doc(b);
    }
    if (e.kind == CK_METRIC && !b->sink->confirm_all && start < b->replayed_to) {
        /* Read by an earlier bridge (note_replay): superseded status. */
        b->st.status_skipped++;
        envelope_clear(&e);
        return next_doc(b);
    }
    if (e.secrets_dropped > 0) {
        b->st.secrets_dropped += e.secrets_dropped;
        if (log_allowed(&b->log_refused, ph_mono_ns(), "refused documents"))
            ph_warn("removed %zu secret-named key(s) from data.config before publishing %s",
                    e.secrets_dropped, e.rk);
    }
    /* One answer per attempt: an outcome this bridge already delivered came
     * again from a restarted controller whose journal could not show it
     * delivered. */
    const char *cid = e.kind == CK_OUTCOME
                          ? json_string_value(json_object_get(e.env, "correlationId"))
                          : NULL;
    if (cid != NULL && ph_cidset_has(&b->delivered_cids, cid)) {
        b->st.outcomes_repeated++;
        if (log_allowed(&b->log_refused, ph_mono_ns(), "refused documents"))
            ph_info("outcome for correlationId %s sent again by the controller: already "
                    "published, dropped",
                    cid);
        envelope_clear(&e);
        return next_doc(b);
    }
    if (start < b->replayed_to) b->st.republished++;
    if (publish(b, &e, true, start + 1) && cid != NULL) inflight_push(b, start, cid);
    envelope_clear(&e);
    return next_doc(b);
}

/* Hands the out ring back up to the first document the sink has not yet
 * delivered, or everything read when there is none. The controller reuses
 * that space, and a bridge that starts after this one (this one killed)
 * begins there: a document is never gone from the ring before the broker
 * has confirmed it (at least once; its copy published before is
 * recognised by its correlationId). */
static void commit_delivered(struct bridge *b)
{
    if (!b->attached) return;
    const uint64_t held = sink_held(b->sink);
    const uint64_t to = held != 0 ? held - 1 : b->out.head;
    inflight_settle(b, to);
    if (to == b->out.committed) return;
    if (ph_ring_commit_to(&b->out, to) == PH_OK || b->commit_refused) return;
    /* Never past a hold: the ring fills and the controller waits. */
    b->commit_refused = true;
    ph_error("channel /dev/shm%s: the sink holds document-ring position %" PRIu64
             ", outside what this bridge has read (%" PRIu64 "..%" PRIu64
             "); the ring is not handed back past it",
             b->ch.name, to, b->out.committed, b->out.head);
}

/* Reads the out ring into the sink. `bounded`: stops while the sink is
 * full (the documents wait in the ring); a bridge leaving the channel
 * reads all of it. */
static int drain_out(struct bridge *b, bool bounded)
{
    if (!b->attached || b->quarantined) return 0;
    if (bounded && sink_full(b->sink)) return 0;
    const uint64_t before = b->out.consumed;
    const uint64_t from = b->out.head;
    b->drain_bounded = bounded;
    b->doc_start = from;
    /* Held: the space goes back in commit_delivered(), document by document. */
    int rc = ph_ring_drain_held(&b->out, handle_doc, b, b->scratch, 0);
    if (b->out.head != from)
        /* relaxed: a hint for the next bridge on this channel (note_replay);
         * nothing is read on its strength but status it may skip. */
        atomic_store_explicit(&b->ch.hdr->out_read, b->out.head, memory_order_relaxed);
    if (rc == PH_ERR_CORRUPT) {
        ph_error("channel /dev/shm%s: the out ring failed validation (corrupt record or "
                 "position); asking the controller to re-create the channel",
                 b->ch.name);
        b->quarantined = true;
        request_reset(b, PH_CHAN_RESET_OUT_CORRUPT);
    }
    commit_delivered(b);
    return (int)(b->out.consumed - before);
}

int bridge_drain(struct bridge *b)
{
    return drain_out(b, true);
}

/* ---- signals ------------------------------------------------------------- */

static void alert_invalid(struct bridge *b, const struct sigcheck_result *r)
{
    uint64_t suppressed = 0;
    if (!ratelimit_allow(&b->alerts, BRIDGE_ALERT_CODE_INVALID, ph_mono_ns(), &suppressed)) return;
    json_t *ctx = json_object();
    json_object_set_new(ctx, "routingKey", r->rk[0] ? json_string(r->rk) : json_null());
    json_object_set_new(ctx, "bodyPrefix", json_string(r->prefix));
    json_object_set_new(ctx, "rejection", json_string(sigcheck_verdict_name(r->verdict)));
    json_object_set_new(ctx, "suppressed", json_integer((json_int_t)suppressed));
    json_t *data = json_object();
    json_object_set_new(data, "level", json_string("warn"));
    json_object_set_new(data, "code", json_string(BRIDGE_ALERT_CODE_INVALID));
    json_object_set_new(data, "message", json_string(r->reason));
    json_object_set_new(data, "context", ctx);
    struct envelope e = {0};
    e.env = envelope_new(ph_real_ns(), CK_EVENT, "alert", b->cfg.controller_instance, b->cfg.swarm,
                         CONTRACT_CONTROLLER_ROLE, b->cfg.controller_instance, NULL, NULL, data);
    char why[256] = "out of memory";
    if (e.env == NULL || envelope_finish(&e, why, sizeof why) != PH_OK) {
        ph_error("cannot build the control.invalid-message alert: %s", why);
    } else {
        publish(b, &e, false, 0);
        b->st.alerts++;
    }
    envelope_clear(&e);
}

/* A refused signal that still says whom to answer gets a failed outcome
 * with the reason: its sender is waiting for one. The outcome speaks for
 * the controller (origin), with the scope the controller would answer
 * with: its own for lifecycle and controller-addressed signals, else the
 * signal's. */
static void answer_refused(struct bridge *b, const struct sigcheck_result *r)
{
    if (!r->answer.ok) return;
    const bool ctl_scope = strcmp(r->answer.role, CONTRACT_CONTROLLER_ROLE) == 0 ||
                           strncmp(r->answer.type, "swarm-", 6) == 0;
    const char *role = ctl_scope ? CONTRACT_CONTROLLER_ROLE : r->answer.role;
    const char *inst = ctl_scope ? b->cfg.controller_instance : r->answer.instance;
    json_t *data =
        json_pack("{s:s, s:b, s:{s:s, s:s}}", "status", "failed", "retryable", 0, "context",
                  "message", r->reason, "rejection", sigcheck_verdict_name(r->verdict));
    struct envelope e = {0};
    e.env = envelope_new(ph_real_ns(), CK_OUTCOME, r->answer.type, b->cfg.controller_instance,
                         b->cfg.swarm, role[0] ? role : NULL, inst[0] ? inst : NULL, r->answer.cid,
                         r->answer.ikey[0] ? r->answer.ikey : NULL, data);
    char why[256] = "out of memory";
    if (e.env == NULL || envelope_finish(&e, why, sizeof why) != PH_OK) {
        ph_error("cannot answer refused signal %s (correlationId %.64s): %s", r->answer.type,
                 r->answer.cid, why);
    } else {
        publish(b, &e, false, 0);
        b->st.answered++;
    }
    envelope_clear(&e);
}

static void reject(struct bridge *b, const struct sigcheck_result *r)
{
    b->st.rejected++;
    if (b->attached) count(&b->ch.hdr->signals_rejected);
    if (log_allowed(&b->log_rejected, ph_mono_ns(), "rejected signals"))
        ph_warn("rejected signal (%s): %s; routing key '%s'; body '%s'",
                sigcheck_verdict_name(r->verdict), r->reason, r->rk, r->prefix);
    alert_invalid(b, r);
    answer_refused(b, r);
}

static void enqueue(struct bridge *b, const struct sigcheck_result *r, uint64_t delivery,
                    uint64_t line_end)
{
    struct bridge_pending *p = malloc(sizeof *p + r->doc.size);
    if (p == NULL) {
        /* Not lost: unsettled, the broker delivers it again. */
        ph_error("out of memory queueing signal %s (correlationId %s)", r->type, r->cid);
        return;
    }
    p->next = NULL;
    p->delivery = delivery;
    p->end = 0;
    p->line_end = line_end;
    p->len = (uint32_t)r->doc.size;
    memcpy(p->body, r->doc.data, r->doc.size);
    snprintf(p->type, sizeof p->type, "%s", r->type);
    snprintf(p->cid, sizeof p->cid, "%s", r->cid);
    if (b->tail != NULL)
        b->tail->next = p;
    else
        b->head = p;
    b->tail = p;
    b->npending++;
}

/* A signal the controller itself sent to a remote worker (remote.c:
 * correlationId "<controller>.cmd.<token>"): the controller's queue is bound
 * to the worker's keys too, and taking its own command in again would
 * forward it again, without end. */
static bool own_forward(const struct bridge *b, const char *cid)
{
    const size_t n = strlen(b->cfg.controller_instance);
    return strncmp(cid, b->cfg.controller_instance, n) == 0 && strncmp(cid + n, ".cmd.", 5) == 0;
}

static enum sigcheck_verdict on_verdict(struct bridge *b, uint64_t delivery, uint64_t line_end)
{
    enum sigcheck_verdict v = b->res.verdict;
    if (v == SIG_OK && own_forward(b, b->res.cid)) {
        sink_settle(b->sink, delivery); /* taken, and nothing more to do */
        b->own_forwards++;
    } else if (v == SIG_OK) {
        enqueue(b, &b->res, delivery, line_end);
        bridge_flush_signals(b);
    } else {
        reject(b, &b->res);
    }
    sigcheck_result_free(&b->res);
    return v;
}

enum sigcheck_verdict bridge_signal_line(struct bridge *b, const char *line, size_t len,
                                         size_t full_len, uint64_t line_end)
{
    sigcheck_line(&b->sc, line, len, full_len, &b->res);
    return on_verdict(b, 0, line_end);
}

enum sigcheck_verdict bridge_signal_message(struct bridge *b, const char *rk, size_t rklen,
                                            const char *body, size_t len, uint64_t delivery)
{
    sigcheck_message(&b->sc, rk, rklen, body, len, &b->res);
    return on_verdict(b, delivery, 0);
}

/* The in ring's consumer position, checked: the controller writes it, and
 * a nonsense value must not leave signals waiting forever. */
static bool in_ring_sane(struct bridge *b, uint64_t head)
{
    if ((head & (PH_RING_ALIGN - 1)) == 0 && head <= b->in.tail &&
        b->in.tail - head <= b->in.capacity)
        return true;
    if (!b->quarantined)
        ph_error("channel /dev/shm%s: the signal ring's consumer position is corrupt; asking the "
                 "controller to re-create the channel",
                 b->ch.name);
    b->quarantined = true;
    request_reset(b, PH_CHAN_RESET_IN_CORRUPT);
    return false;
}

void bridge_settle_consumed(struct bridge *b)
{
    /* A quarantined channel settles nothing: what it holds goes again into
     * the next one. */
    if (!b->attached || b->sent == NULL || b->quarantined) return;
    /* acquire: pairs with the controller's release of head (ph_ring_commit),
     * which it makes once the signals before it are in its journal. */
    const uint64_t head = atomic_load_explicit(&b->ch.hdr->in.head, memory_order_acquire);
    /* A head no controller could have written (misaligned, ahead of what was
     * written, or further behind than the ring holds) settles nothing: an
     * acknowledgement on its word would lose the signals. */
    if (!in_ring_sane(b, head)) return;
    while (b->sent != NULL && b->sent->end <= head) {
        struct bridge_pending *p = b->sent;
        b->sent = p->next;
        if (b->sent == NULL) b->sent_tail = NULL;
        b->nsent--;
        if (p->line_end > b->line_settled) b->line_settled = p->line_end;
        sink_settle(b->sink, p->delivery);
        b->st.settled++;
        free(p);
    }
}

/* After a reconnect the transport delivers again what was not settled:
 * copies of the old session that are still waiting here are dropped (the
 * new deliveries replace them), and those already written have nothing
 * left to settle. */
static void check_session(struct bridge *b)
{
    const uint64_t session = sink_session(b->sink);
    if (session == b->session) return;
    b->session = session;
    size_t dropped = 0;
    struct bridge_pending **pp = &b->head;
    b->tail = NULL;
    while (*pp != NULL) {
        struct bridge_pending *p = *pp;
        if (p->delivery != 0 && sink_delivery_session(p->delivery) != session) {
            *pp = p->next;
            free(p);
            b->npending--;
            dropped++;
            continue;
        }
        b->tail = p;
        pp = &p->next;
    }
    for (struct bridge_pending *p = b->sent; p != NULL; p = p->next)
        if (p->delivery != 0 && sink_delivery_session(p->delivery) != session) p->delivery = 0;
    if (dropped > 0)
        ph_info("%zu waiting signal(s) of the previous connection dropped: the broker delivers "
                "them again",
                dropped);
}

bool bridge_flush_signals(struct bridge *b)
{
    /* A quarantined channel is being replaced: signals wait for the new one. */
    if (!b->attached || b->quarantined) return b->head == NULL;
    /* acquire: as in ph_ring_claim(); here to validate the position. */
    if (b->head != NULL &&
        !in_ring_sane(b, atomic_load_explicit(&b->ch.hdr->in.head, memory_order_acquire)))
        return false;
    bool wrote = false;
    while (b->head != NULL) {
        struct bridge_pending *p = b->head;
        if (PH_RING_HDR + (uint64_t)p->len > b->in.max_record) {
            /* Can never fit this channel: waiting would block every later
             * signal. Rejected like any other bad message. */
            struct sigcheck_result r;
            sigcheck_result_init(&r);
            r.verdict = SIG_OVERSIZE;
            snprintf(r.reason, sizeof r.reason,
                     "signal %s (correlationId %.64s) packs to %" PRIu32
                     " bytes, more than the channel's in ring takes (%" PRIu32 ")",
                     p->type, p->cid, p->len, b->in.max_record - PH_RING_HDR);
            reject(b, &r);
            sigcheck_result_free(&r);
            sink_settle(b->sink, p->delivery); /* handled: not to be delivered again */
            b->head = p->next;
            if (b->head == NULL) b->tail = NULL;
            b->npending--;
            free(p);
            continue;
        } else if (ph_ring_fits(&b->in, p->len)) {
            void *dst = ph_ring_claim(&b->in, PH_DOC_RECORD, p->len);
            if (dst == NULL) break; /* raced with nothing (single producer); be safe */
            memcpy(dst, p->body, p->len);
            wrote = true;
            b->st.forwarded++;
            ph_info("forwarded signal %s (correlationId %s)", p->type, p->cid);
        } else {
            break; /* full: keep it and everything after it for the next tick */
        }
        /* Kept until the controller has consumed it. */
        b->head = p->next;
        if (b->head == NULL) b->tail = NULL;
        b->npending--;
        p->next = NULL;
        p->end = b->in.tail;
        if (b->sent_tail != NULL)
            b->sent_tail->next = p;
        else
            b->sent = p;
        b->sent_tail = p;
        b->nsent++;
    }
    /* One release store publishes every record claimed above. */
    if (wrote) ph_ring_publish(&b->in);
    return b->head == NULL;
}

/* ---- loop hooks -------------------------------------------------------- */

static void flush_sink(struct bridge *b)
{
    char err[256];
    if (sink_flush(b->sink, err, sizeof err) != PH_OK &&
        log_allowed(&b->log_refused, ph_mono_ns(), "sink errors"))
        ph_error("%s", err);
}

void bridge_request_full(struct bridge *b)
{
    if (!b->attached) return; /* attaching registers, which asks for one anyway */
    /* Registering again (same pid) bumps bridge_generation: the controller
     * treats it like a new bridge and sends a fresh status-full. */
    char err[256];
    if (ph_channel_register_bridge(&b->ch, b->pid, b->start_time, err, sizeof err) == PH_OK) {
        b->st.attaches++;
        ph_info("asked the controller for a fresh status-full (bridge generation %" PRIu64 ")",
                atomic_load_explicit(&b->ch.hdr->bridge_generation, memory_order_relaxed));
    } else {
        ph_error("cannot ask the controller for a status-full: %s", err);
    }
}

/* Acknowledges the controller's close mark once everything up to it is
 * read, published and confirmed: the controller stops on that. */
static void ack_close(struct bridge *b)
{
    if (!b->attached || b->quarantined) return;
    /* acquire: pairs with the controller's release of the mark, stored once
     * the ring held everything up to it. */
    const uint64_t mark = atomic_load_explicit(&b->ch.hdr->close_mark, memory_order_acquire);
    if (mark == 0 || mark == b->close_acked || b->out.head < mark) return;
    check_closing(b); /* set before the mark: a close with no document left to read */
    if (sink_unconfirmed(b->sink) > 0) return;
    /* release: the controller that sees the ack may stop; nothing of ours
     * depends on it, but the ack must not be seen before it is true. */
    atomic_store_explicit(&b->ch.hdr->close_ack, mark, memory_order_release);
    b->close_acked = mark;
    ph_info("the removed swarm's last documents are published and confirmed");
}

bool bridge_finished(struct bridge *b)
{
    if (!b->attached || b->close_acked == 0 || ph_ring_pending(&b->out) ||
        sink_unconfirmed(b->sink) > 0)
        return false;
    /* acquire: pairs with the controller's release store of 0 at exit,
     * made after its last write into the ring. */
    if (atomic_load_explicit(&b->ch.hdr->controller_pid, memory_order_acquire) != 0) return false;
    /* A mark moved after our ack (the final documents re-sent) is not done. */
    return atomic_load_explicit(&b->ch.hdr->close_mark, memory_order_acquire) == b->close_acked;
}

/* The channel's bell token is ours whenever we hold the channel: set after
 * every registration (attach, re-registration, a request for a full). */
static void publish_bell(struct bridge *b)
{
    if (b->bell_fd < 0) return;
    /* relaxed: a name the controller sends to; a late one costs a ring. */
    if (atomic_load_explicit(&b->ch.hdr->bell_token, memory_order_relaxed) != b->bell_token)
        atomic_store_explicit(&b->ch.hdr->bell_token, b->bell_token, memory_order_relaxed);
}

bool bridge_quiet(struct bridge *b)
{
    if (!b->attached || b->quarantined || b->bell_fd < 0 || b->npending > 0 || b->nsent > 0)
        return false;
    const struct ph_chan_header *h = b->ch.hdr;
    /* relaxed: each is re-read at every wake-up; a stale "quiet" costs at
     * most one slow tick, and the ring itself is checked again, fenced, by
     * ph_channel_bell_arm(). */
    if (atomic_load_explicit(&h->bell, memory_order_relaxed) != 1 ||
        atomic_load_explicit(&h->bell_token, memory_order_relaxed) != b->bell_token ||
        atomic_load_explicit(&h->bell_refused, memory_order_relaxed) == b->bell_token ||
        atomic_load_explicit(&h->bridge_pid, memory_order_relaxed) != b->pid ||
        atomic_load_explicit(&h->closing, memory_order_relaxed) != 0 ||
        atomic_load_explicit(&h->close_mark, memory_order_relaxed) != b->close_acked ||
        atomic_load_explicit(&h->reset_request, memory_order_relaxed) != 0)
        return false;
    return !ph_ring_pending(&b->out) && sink_quiet(b->sink);
}

bool bridge_sleep(struct bridge *b)
{
    if (!bridge_quiet(b)) {
        bridge_wake(b);
        return false;
    }
    return ph_channel_bell_arm(&b->ch, &b->out);
}

void bridge_wake(struct bridge *b)
{
    if (b->attached) ph_channel_bell_disarm(&b->ch);
}

void bridge_rung(struct bridge *b)
{
    /* A controller that replaced the channel rings the old one's bridge:
     * look for the new one now, not at the next check. */
    b->next_check_ns = 0;
}

void bridge_tick(struct bridge *b, uint64_t now_ns)
{
    bridge_poll_channel(b, now_ns);
    if (b->attached) {
        atomic_store_explicit(&b->ch.hdr->bridge_heartbeat_ns, now_ns, memory_order_relaxed);
        publish_bell(b);
    }
    bridge_drain(b);
    check_session(b);
    bridge_settle_consumed(b);
    bridge_flush_signals(b);
    flush_sink(b);
    commit_delivered(b);
    ack_close(b);
    if (sink_take_resync(b->sink)) bridge_request_full(b);
}

void bridge_service(struct bridge *b)
{
    sink_service(b->sink);
    commit_delivered(b);
}

/* Gives the sink a moment to have what it holds delivered (AMQP: the
 * broker's confirms), then hands the ring back as far as it did: what is
 * still held is published again by the next bridge. */
/* Reads the broker's confirms for what this ring holds, for up to
 * STOP_DELIVERY_WAIT_NS, and hands the ring back as far as they go. */
static void wait_confirms(struct bridge *b)
{
    const uint64_t until = ph_mono_ns() + STOP_DELIVERY_WAIT_NS;
    while (b->attached && sink_held(b->sink) != 0 && ph_mono_ns() < until) {
        uint64_t gen;
        const int fd = sink_poll_fd(b->sink, &gen);
        if (fd < 0) break; /* nothing to wait on: disconnected, or delivered on flush */
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 20) < 0 && errno != EINTR) break;
        flush_sink(b); /* reads the confirms, sends what waits */
    }
    commit_delivered(b);
}

static void await_delivery(struct bridge *b)
{
    wait_confirms(b);
    const uint64_t held = sink_held(b->sink);
    if (b->attached && held != 0)
        ph_warn("documents from document-ring position %" PRIu64
                " on are not yet confirmed: left in the ring, the next bridge publishes them "
                "again",
                held - 1);
}

void bridge_stop(struct bridge *b)
{
    bridge_drain(b);
    bridge_settle_consumed(b);
    if (!bridge_flush_signals(b) || b->nsent > 0)
        ph_warn("%zu valid signal(s) not yet taken in by the controller at exit: left "
                "unacknowledged, so the broker delivers them again",
                b->npending + b->nsent);
    flush_sink(b);
    await_delivery(b);
    detach(b);
    ph_info(
        "stopped: %" PRIu64 " documents published, %" PRIu64 " refused, %" PRIu64
        " signals forwarded, %" PRIu64 " rejected, %" PRIu64 " alerts, %" PRIu64
        " secret keys removed, %" PRIu64 " channel registrations, %" PRIu64
        " signals settled, %" PRIu64 " forwarded again, %" PRIu64 " refused ones answered, %" PRIu64
        " documents published again after a restart, %" PRIu64
        " replayed status documents skipped, %" PRIu64 " repeated outcomes dropped",
        b->st.published, b->st.refused, b->st.forwarded, b->st.rejected, b->st.alerts,
        b->st.secrets_dropped, b->st.attaches, b->st.settled, b->st.reforwarded, b->st.answered,
        b->st.republished, b->st.status_skipped, b->st.outcomes_repeated);
}
