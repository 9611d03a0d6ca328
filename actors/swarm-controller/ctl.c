/* Controller slot table: follows claims, drains rings, keeps per-worker
 * state, frees the slots of departed owners. See ctl.h. */
#include "ctl.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "ph/log.h"

int ctl_init(struct ctl *c, struct ph_segment *seg, const struct ctl_hooks *hooks)
{
    memset(c, 0, sizeof *c);
    for (uint32_t i = 0; i < CTL_PIDFD_CACHE; i++) c->pidfds[i].fd = -1;
    c->seg = seg;
    /* Entries start on a cache line (ctl_worker is aligned): the scan's
     * fields then share one line. */
    c->w = aligned_alloc(alignof(struct ctl_worker), (size_t)seg->slots * sizeof *c->w);
    if (c->w != NULL) memset(c->w, 0, (size_t)seg->slots * sizeof *c->w);
    c->claims = calloc(seg->slots, sizeof *c->claims);
    c->scratch = malloc(seg->status_ring / 2);
    c->dirty_words = (seg->slots + 63) / 64;
    c->dirty = calloc(c->dirty_words ? c->dirty_words : 1, sizeof *c->dirty);
    c->to_arm = calloc(c->dirty_words ? c->dirty_words : 1, sizeof *c->to_arm);
    if (c->w == NULL || c->claims == NULL || c->scratch == NULL || c->dirty == NULL ||
        c->to_arm == NULL) {
        free(c->w);
        free(c->claims);
        free(c->scratch);
        free(c->dirty);
        free(c->to_arm);
        c->w = NULL;
        c->claims = NULL;
        c->scratch = NULL;
        c->dirty = c->to_arm = NULL;
        return PH_ERR_SYS;
    }
    for (uint32_t i = 0; i < seg->slots; i++) {
        c->w[i].index = i;
        c->w[i].pidfd = -1;
    }
    if (hooks != NULL) c->hooks = *hooks;
    c->started_mono_ns = ph_mono_ns();
    c->tps_window_ns = 5ull * 1000000000ull;
    c->use_pidfd = true;
    /* Tokens are seeded with the segment's generation (+1 on every
     * adoption), so an ack still in a worker's ring for a command of the
     * previous controller cannot complete one of ours: each controller has
     * its own range of 2^32 tokens. relaxed: this process bumped (or set)
     * the generation itself in ph_segment_create(). */
    const uint64_t gen = atomic_load_explicit(&seg->hdr->generation, memory_order_relaxed);
    c->next_token = (gen << 32) | 1u;
    return PH_OK;
}

static void blob_free(struct ctl_blob *b)
{
    free(b->data);
    memset(b, 0, sizeof *b);
}

static void untrack(struct ctl *c, struct ctl_worker *w)
{
    if (w->pidfd_armed && w->pidfd_poll != 0) {
        /* Still polled (its process lives: a death clears the poll first). */
        if (c->nstale_polls < CTL_STALE_POLLS)
            c->stale_polls[c->nstale_polls++] = w->pidfd_poll;
        else
            c->stale_polls_dropped++;
    }
    if (w->pidfd >= 0) close(w->pidfd);
    blob_free(&w->config);
    blob_free(&w->io);
    blob_free(&w->queues);
    uint32_t index = w->index;
    memset(w, 0, sizeof *w);
    w->index = index;
    w->pidfd = -1;
    c->live--;
}

uint32_t ctl_take_stale_polls(struct ctl *c, uint64_t *ids, uint32_t max)
{
    const uint32_t n = c->nstale_polls < max ? c->nstale_polls : max;
    memcpy(ids, c->stale_polls, n * sizeof *ids);
    memmove(c->stale_polls, c->stale_polls + n, (c->nstale_polls - n) * sizeof *ids);
    c->nstale_polls -= n;
    return n;
}

void ctl_destroy(struct ctl *c)
{
    for (uint32_t i = 0; c->w != NULL && i < c->seg->slots; i++)
        if (c->w[i].tracked) untrack(c, &c->w[i]);
    free(c->w);
    free(c->claims);
    free(c->scratch);
    free(c->dirty);
    free(c->to_arm);
    c->to_arm = NULL;
    for (uint32_t i = 0; i < CTL_PIDFD_CACHE; i++) {
        if (c->pidfds[i].fd >= 0) close(c->pidfds[i].fd);
        c->pidfds[i].fd = -1;
    }
    c->w = NULL;
    c->claims = NULL;
    c->scratch = NULL;
    c->dirty = NULL;
}

void ctl_mark_dirty(struct ctl *c, uint32_t index)
{
    if (index < c->seg->slots) c->dirty[index / 64] |= 1ull << (index % 64);
}

static void quarantine(struct ctl *c, struct ctl_worker *w, uint32_t reason, const char *why)
{
    if (w->quarantine != PH_Q_NONE) return;
    w->quarantine = reason;
    c->quarantined++;
    ctl_mark_dirty(c, w->index);
    struct ph_slot *s = ph_segment_slot(c->seg, w->index);
    /* relaxed: tool-facing flags; nothing is ordered by them. */
    atomic_store_explicit(&s->c_quarantine, reason, memory_order_relaxed);
    atomic_fetch_add_explicit(&c->seg->hdr->quarantined_total, 1, memory_order_relaxed);
    ph_warn("slot %u (%s/%s pid %d) quarantined: %s", w->index, w->role, w->instance, w->pid, why);
    if (c->hooks.quarantined) c->hooks.quarantined(c->hooks.ctx, c, w, why);
}

/* The rate over the last `window_ns` of samples (not of time: the newest
 * sample's age is ctl_worker_tps's business). */
static uint64_t samples_rate(const struct ctl_worker *w, uint64_t window_ns)
{
    if (w->win_len < 2) return 0;
    const struct ctl_sample *newest = &w->win[w->win_len - 1];
    const struct ctl_sample *oldest = &w->win[0];
    for (uint32_t i = w->win_len - 1; i-- > 0;) {
        oldest = &w->win[i];
        if (newest->t_ns - w->win[i].t_ns >= window_ns) break;
    }
    if (newest->t_ns <= oldest->t_ns || newest->processed < oldest->processed) return 0;
    const uint64_t dp = newest->processed - oldest->processed;
    const uint64_t dt = newest->t_ns - oldest->t_ns;
    /* 128-bit product: dp * 1e9 overflows 64 bits past 1.8e10 items. */
    const unsigned __int128 r = (unsigned __int128)dp * 1000000000u / dt;
    return r > UINT64_MAX ? UINT64_MAX : (uint64_t)r;
}

uint64_t ctl_worker_tps(const struct ctl_worker *w, uint64_t now_ns, uint64_t window_ns)
{
    if (w->win_len < 2) return 0;
    const struct ctl_sample *newest = &w->win[w->win_len - 1];
    /* A worker that stopped reporting has no current rate. */
    if (now_ns > newest->t_ns && now_ns - newest->t_ns > window_ns) return 0;
    return window_ns == w->tps_window ? w->tps_rate : samples_rate(w, window_ns);
}

static void add_sample(struct ctl *c, struct ctl_worker *w, uint64_t t, uint64_t processed)
{
    /* Samples are spaced by a sixteenth of the window, so 32 of them span two
     * windows; in between, the newest sample is refreshed in place. */
    const uint64_t spacing = c->tps_window_ns / 16;
    if (w->win_len >= 2 && t >= w->win[w->win_len - 2].t_ns &&
        t - w->win[w->win_len - 2].t_ns < spacing) {
        w->win[w->win_len - 1] = (struct ctl_sample){t, processed};
    } else {
        if (w->win_len == CTL_TPS_SAMPLES) {
            memmove(&w->win[0], &w->win[1], (CTL_TPS_SAMPLES - 1) * sizeof w->win[0]);
            w->win_len--;
        }
        w->win[w->win_len++] = (struct ctl_sample){t, processed};
    }
    w->tps_rate = samples_rate(w, c->tps_window_ns);
    w->tps_window = c->tps_window_ns;
}

static int blob_set(struct ctl_blob *b, const uint8_t *body, uint32_t len)
{
    if (len > b->cap) {
        uint8_t *n = realloc(b->data, len);
        if (n == NULL) return PH_ERR_SYS;
        b->data = n;
        b->cap = len;
    }
    memcpy(b->data, body, len);
    b->len = len;
    return PH_OK;
}

/* The worker's work-plane queues ({in, out} name lists of io.work.queues),
 * kept packed for the controller's status-full so that consumers can draw
 * the pipeline. Only lists of short strings are kept: the record comes from
 * the worker, the full goes to every consumer. */
static void keep_queues(struct ctl_worker *w, const msgpack_object *io)
{
    w->queues.len = 0;
    const msgpack_object *q = ph_mp_map_get(ph_mp_map_get(io, "work"), "queues");
    if (q == NULL || q->type != MSGPACK_OBJECT_MAP) return;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    static const char *const keys[2] = {"in", "out"};
    const msgpack_object *lists[2];
    uint32_t n = 0;
    for (int k = 0; k < 2; k++) {
        lists[k] = ph_mp_map_get(q, keys[k]);
        bool ok = lists[k] != NULL && lists[k]->type == MSGPACK_OBJECT_ARRAY &&
                  lists[k]->via.array.size <= 16;
        for (uint32_t i = 0; ok && i < lists[k]->via.array.size; i++)
            ok = lists[k]->via.array.ptr[i].type == MSGPACK_OBJECT_STR &&
                 lists[k]->via.array.ptr[i].via.str.size <= 255;
        if (!ok) lists[k] = NULL;
        n += lists[k] != NULL;
    }
    if (n > 0) {
        msgpack_pack_map(&pk, n);
        for (int k = 0; k < 2; k++) {
            if (lists[k] == NULL) continue;
            msgpack_pack_str(&pk, strlen(keys[k]));
            msgpack_pack_str_body(&pk, keys[k], strlen(keys[k]));
            msgpack_pack_object(&pk, *lists[k]);
        }
        blob_set(&w->queues, (const uint8_t *)sb.data, (uint32_t)sb.size);
    }
    msgpack_sbuffer_destroy(&sb);
}

struct drain_ctx {
    struct ctl *c;
    struct ctl_worker *w;
    uint64_t now;
};

static int on_record(void *ctx, uint16_t type, const uint8_t *body, uint32_t len)
{
    struct drain_ctx *d = ctx;
    struct ctl_worker *w = d->w;
    char err[160];
    switch (type) {
    case PH_REC_STATUS: {
        struct ph_rec_status st;
        if (ph_rec_status_decode(body, len, &st) != PH_OK) {
            quarantine(d->c, w, PH_Q_RECORD, "malformed status record");
            return PH_ERR_CORRUPT;
        }
        /* Counters are cumulative: one going backwards is a broken producer. */
        if (w->have_status && (st.processed < w->st.processed || st.errors < w->st.errors)) {
            quarantine(d->c, w, PH_Q_RECORD, "cumulative counter went backwards");
            return PH_ERR_CORRUPT;
        }
        w->st = st;
        w->have_status = true;
        add_sample(d->c, w, st.mono_ns, st.processed);
        break;
    }
    case PH_REC_CONFIG:
    case PH_REC_IO: {
        msgpack_zone zone;
        msgpack_zone_init(&zone, 2048);
        msgpack_object o;
        int rc = ph_mp_decode(body, len, true, &zone, &o, err, sizeof err);
        if (rc == PH_OK && type == PH_REC_IO) keep_queues(w, &o);
        msgpack_zone_destroy(&zone);
        if (rc != PH_OK) {
            quarantine(d->c, w, PH_Q_RECORD, err);
            return PH_ERR_CORRUPT;
        }
        blob_set(type == PH_REC_CONFIG ? &w->config : &w->io, body, len);
        break;
    }
    case PH_REC_ALERT: {
        struct ph_rec_alert a;
        if (ph_rec_alert_decode(body, len, &a) != PH_OK) {
            quarantine(d->c, w, PH_Q_RECORD, "malformed alert record");
            return PH_ERR_CORRUPT;
        }
        w->alerts++;
        if (d->c->hooks.alert) d->c->hooks.alert(d->c->hooks.ctx, d->c, w, &a);
        break;
    }
    case PH_REC_META: {
        struct ph_rec_meta m;
        if (ph_rec_meta_decode(body, len, &m) != PH_OK) {
            quarantine(d->c, w, PH_Q_RECORD, "malformed meta record");
            return PH_ERR_CORRUPT;
        }
        memcpy(w->location, m.location, sizeof w->location);
        memcpy(w->transport, m.transport, sizeof w->transport);
        break;
    }
    case PH_REC_ACK: {
        struct ph_rec_ack a;
        if (ph_rec_ack_decode(body, len, &a) != PH_OK) {
            quarantine(d->c, w, PH_Q_RECORD, "malformed ack record");
            return PH_ERR_CORRUPT;
        }
        if (d->c->hooks.ack) d->c->hooks.ack(d->c->hooks.ctx, d->c, w, &a);
        break;
    }
    default:
        /* A newer SDK may send kinds this controller does not know: skip. */
        w->bad_records++;
        return 0;
    }
    w->records++;
    /* Liveness comes from the worker's own state: an ack or an alert may be
     * written for it by a proxy (an ack that a command timed out), and
     * must not make a silent remote worker look alive. */
    if (type == PH_REC_STATUS || type == PH_REC_CONFIG || type == PH_REC_IO)
        w->last_seen_ns = d->now;
    if (d->c->hooks.record) d->c->hooks.record(d->c->hooks.ctx, d->c, w, type, body, len);
    return 0;
}

static uint64_t drain(struct ctl *c, struct ctl_worker *w, uint64_t now, uint32_t budget)
{
    if (w->quarantine != PH_Q_NONE) return 0;
    struct drain_ctx d = {c, w, now};
    /* K3_drain */
    int n = ph_ring_drain(&w->status, on_record, &d, c->scratch, budget);
    if (n < 0) {
        /* A record handler may already have quarantined it (malformed body);
         * otherwise the ring itself failed its bounds checks. */
        quarantine(c, w, PH_Q_RING, "status ring positions or a record header out of bounds");
        return 0;
    }
    if (n > 0) {
        ctl_mark_dirty(c, w->index);
        struct ph_slot *s = ph_segment_slot(c->seg, w->index);
        w->tps = ctl_worker_tps(w, ph_mono_coarse_ns(), c->tps_window_ns);
        /* relaxed: figures for tools, each self-contained. */
        atomic_store_explicit(&s->c_tps, w->tps, memory_order_relaxed);
        atomic_store_explicit(&s->c_last_seen_ns, now, memory_order_relaxed);
        atomic_store_explicit(&s->c_records, w->records, memory_order_relaxed);
        c->records += (uint64_t)n;
    }
    return (uint64_t)n;
}

/* A pidfd for the process (pid, start_time), or -1: a duplicate of one
 * checked before (ctl.h, pidfds), else a new one, checked and kept. */
static int pidfd_for(struct ctl *c, int32_t pid, uint64_t start_time)
{
    for (uint32_t i = 0; i < CTL_PIDFD_CACHE; i++) {
        const struct ctl_pidfd_cache *e = &c->pidfds[i];
        /* The kept pidfd is that process's for good, alive or dead (a dead
         * one's poll fires at once, and its workers depart). */
        if (e->fd >= 0 && e->pid == pid && e->start_time == start_time)
            return fcntl(e->fd, F_DUPFD_CLOEXEC, 0);
    }
    int fd = (int)syscall(SYS_pidfd_open, (pid_t)pid, 0);
    if (fd < 0) return -1; /* the periodic check covers this owner */
    /* The pid may have been reused between the claim and pidfd_open: the
     * pidfd only counts if the process behind it has the claimed start time. */
    if (!ph_proc_alive(pid, start_time)) {
        close(fd);
        return -1;
    }
    struct ctl_pidfd_cache *e = &c->pidfds[c->pidfds_next++ % CTL_PIDFD_CACHE];
    if (e->fd >= 0) close(e->fd);
    *e = (struct ctl_pidfd_cache){pid, start_time, fcntl(fd, F_DUPFD_CLOEXEC, 0)};
    return fd;
}

static void open_pidfd(struct ctl *c, struct ctl_worker *w)
{
    if (!c->use_pidfd) return;
    const int fd = pidfd_for(c, w->pid, w->start_time);
    if (fd < 0) return; /* the periodic check covers this owner */
    w->pidfd = fd;
    c->pidfds_to_arm++;
    c->to_arm[w->index / 64] |= 1ull << (w->index % 64);
}

static void track(struct ctl *c, struct ctl_worker *w, struct ph_slot *s, uint64_t word,
                  uint64_t now)
{
    /* K2_track */
    struct ph_slot_identity id;
    if (!ph_slot_identity_read(s, &id) || id.state != word) return; /* changed: next scan */
    const uint32_t index = w->index;
    memset(w, 0, sizeof *w);
    w->index = index;
    w->pidfd = -1;
    w->tracked = true;
    w->word = word;
    w->pid = id.pid;
    w->start_time = id.start_time;
    w->attached_real_ns = id.attached_real_ns;
    memcpy(w->role, id.role, sizeof w->role);
    memcpy(w->instance, id.instance, sizeof w->instance);
    w->tracked_mono_ns = now;
    c->live++;
    ctl_mark_dirty(c, index);
    char err[160];
    if (ph_ident_check("role", w->role, err, sizeof err) != PH_OK ||
        ph_ident_check("instance", w->instance, err, sizeof err) != PH_OK) {
        quarantine(c, w, PH_Q_IDENTITY, err);
    } else if (ph_ring_consumer_init(&w->status, &s->status, ph_slot_status_data(c->seg, s),
                                     c->seg->status_ring) != PH_OK) {
        quarantine(c, w, PH_Q_RING, "status ring head/tail inconsistent");
    }
    /* We produce into the command ring, but its positions live in a slot
     * the worker can write: a bad tail would make us write past the ring
     * into the next slot. Validated once here; afterwards the producer keeps
     * its own tail and never re-reads the shared one. */
    w->command_ok = ph_ring_producer_init(&w->command, &s->command,
                                          ph_slot_command_data(c->seg, s),
                                          c->seg->command_ring) == PH_OK;
    if (!w->command_ok)
        quarantine(c, w, PH_Q_RING, "command ring head/tail inconsistent; never written");
    /* Cumulative counts start at zero when the slot is claimed: that is the
     * first sample, so the first report's items count towards tps. */
    /* relaxed: written before the claim was published (acquired above). */
    add_sample(c, w, atomic_load_explicit(&s->claimed_mono_ns, memory_order_relaxed), 0);
    if (w->pid != ph_slot_pid_of(word)) quarantine(c, w, PH_Q_IDENTITY, "owner pid mismatch");
    open_pidfd(c, w);
    ph_info("worker joined: %s/%s pid %d slot %u", w->role, w->instance, w->pid, w->index);
    if (c->hooks.joined) c->hooks.joined(c->hooks.ctx, c, w);
}

static void depart(struct ctl *c, struct ctl_worker *w, bool dead)
{
    /* Whatever the owner managed to publish before leaving still counts. */
    drain(c, w, ph_mono_ns(), 0);
    if (dead)
        ph_warn("worker died: %s/%s pid %d slot %u", w->role, w->instance, w->pid, w->index);
    else
        ph_info("worker left: %s/%s pid %d slot %u", w->role, w->instance, w->pid, w->index);
    if (c->hooks.left) c->hooks.left(c->hooks.ctx, c, w, dead);
    uint64_t word = ph_slot_state_of(w->word) == PH_SLOT_ACTIVE && !dead
                        ? ph_slot_word(PH_SLOT_DETACHED, ph_slot_seq_of(w->word),
                                       ph_slot_pid_of(w->word))
                        : w->word;
    uint32_t index = w->index;
    untrack(c, w);
    ctl_mark_dirty(c, index);
    /* K5_depart_free */
    if (dead) {
        /* The owner may have reached DETACHED before dying: free either. */
        uint64_t detached = ph_slot_word(PH_SLOT_DETACHED, ph_slot_seq_of(word),
                                         ph_slot_pid_of(word));
        if (ph_slot_free(c->seg, index, word) || ph_slot_free(c->seg, index, detached)) {
            c->reclaimed++;
            atomic_fetch_add_explicit(&c->seg->hdr->reclaimed_total, 1, memory_order_relaxed);
        }
    } else {
        ph_slot_free(c->seg, index, word);
    }
}

/* The start time of a JOINING claimer, from the identity it published;
 * false when the slot changed under the read or names another pid. */
static bool published_start(const struct ph_slot *s, uint64_t word, uint64_t *start)
{
    struct ph_slot_identity id;
    if (!ph_slot_identity_read(s, &id) || id.state != word || id.pid != ph_slot_pid_of(word))
        return false;
    *start = id.start_time;
    return true;
}

/* A slot in CLAIMING or JOINING: its claimer is between its claim CAS and
 * publishing the slot ACTIVE. Its age proves nothing (a stopped or
 * descheduled claimer may not even have stamped claimed_mono_ns), and
 * freeing it under a live claimer lets a second worker take the slot, which
 * the first, resumed, then overwrites. So a claim is freed only when its
 * process is gone: dead, a zombie, or its pid now another process. "Its
 * process" is the pid with the start time read when the claim was first
 * seen, or, once JOINING, the start time the claimer published (which also
 * catches a pid reused before we first looked). */
static void watch_claim(struct ctl *c, uint32_t i, uint64_t word, uint64_t now)
{
    struct ctl_claim *k = &c->claims[i];
    const int32_t pid = ph_slot_pid_of(word);
    /* The same claim keeps its pid and counter from CLAIMING to JOINING. */
    const bool same = k->word != 0 && ph_slot_seq_of(k->word) == ph_slot_seq_of(word) &&
                      ph_slot_pid_of(k->word) == pid;
    if (!same) {
        *k = (struct ctl_claim){.word = word, .first_seen_ns = now};
        k->known = ph_proc_start_time(pid, &k->start_time) == PH_OK;
    }
    k->word = word;
    uint64_t st;
    if (ph_slot_state_of(word) == PH_SLOT_JOINING && !k->published &&
        published_start(ph_segment_slot(c->seg, i), word, &st)) {
        k->start_time = st;
        k->known = k->published = true;
    }
    /* K4_expire_claim: by process identity, never by age */
    if (!k->known || !ph_proc_alive(pid, k->start_time)) {
        if (ph_slot_free(c->seg, i, word)) {
            c->reclaimed++;
            /* relaxed: a statistics counter for tools. */
            atomic_fetch_add_explicit(&c->seg->hdr->reclaimed_total, 1, memory_order_relaxed);
            ph_warn("slot %u: claim by pid %d abandoned (the process is gone), freed", i, pid);
        }
        k->word = 0;
        return;
    }
    if (!k->warned && now > k->first_seen_ns && now - k->first_seen_ns > CTL_CLAIM_TIMEOUT_NS) {
        k->warned = true;
        c->slow_claims++;
        ph_warn("slot %u: claim by pid %d in progress for over %llu s; its process is alive, so "
                "the slot stays claimed", i, pid,
                (unsigned long long)(CTL_CLAIM_TIMEOUT_NS / 1000000000ull));
    }
}

/* How many slots ahead the scan asks for the lines it will read. */
#define CTL_SCAN_AHEAD 8u

uint64_t ctl_scan(struct ctl *c, uint64_t now)
{
    struct ph_shm_header *h = c->seg->hdr;
    /* acquire: pairs with claimers raising the bound before publishing. */
    uint32_t hw = atomic_load_explicit(&h->slot_high_water, memory_order_acquire);
    if (hw > c->seg->slots) hw = c->seg->slots;
    uint64_t total = 0;
    for (uint32_t i = 0; i < hw; i++) {
        struct ph_slot *s = ph_segment_slot(c->seg, i);
        struct ctl_worker *w = &c->w[i];
        if (i + CTL_SCAN_AHEAD < hw) {
            /* Slots are a status and a command ring apart (13 KiB by
             * default): each state word and ring position is a cache and
             * TLB miss, which a sweep of 10,000 slots would otherwise wait
             * out one at a time. Prefetches order nothing. */
            const struct ph_slot *ahead = ph_segment_slot(c->seg, i + CTL_SCAN_AHEAD);
            __builtin_prefetch(&ahead->state, 0, 1);
            __builtin_prefetch(&ahead->status.tail, 0, 1);
            __builtin_prefetch(&c->w[i + CTL_SCAN_AHEAD], 0, 1);
        }
        /* K1_scan_load (model labels: tests/model/README.md). acquire: a
         * new ACTIVE word publishes the claimer's identity and ring reset;
         * DETACHED publishes the owner's final records. */
        uint64_t word = atomic_load_explicit(&s->state, memory_order_acquire);
        if (w->tracked && word == w->word) {
            /* The claim we follow, still ACTIVE (only ACTIVE words are
             * tracked; its claim bookkeeping was cleared when it was): the
             * steady case, which touches nothing but the drain's lines. */
            total += drain(c, w, now, CTL_DRAIN_BUDGET);
            continue;
        }
        unsigned st = ph_slot_state_of(word);
        if (st != PH_SLOT_CLAIMING && st != PH_SLOT_JOINING)
            c->claims[i].word = 0; /* no claim in progress */
        if (w->tracked && word != w->word) {
            bool detached = st == PH_SLOT_DETACHED &&
                            ph_slot_seq_of(word) == ph_slot_seq_of(w->word) &&
                            ph_slot_pid_of(word) == ph_slot_pid_of(w->word);
            /* Any other change means the claim we followed is over. */
            depart(c, w, !detached);
            continue;
        }
        switch (st) {
        case PH_SLOT_ACTIVE:
            if (!w->tracked) track(c, w, s, word, now);
            if (w->tracked) total += drain(c, w, now, CTL_DRAIN_BUDGET);
            break;
        case PH_SLOT_CLAIMING:
        case PH_SLOT_JOINING: /* not tracked until ACTIVE; same liveness rule */
            watch_claim(c, i, word, now);
            break;
        case PH_SLOT_DETACHED:
            /* K6_free_detached: detached before we ever tracked it
             * (controller restart). */
            ph_slot_free(c->seg, i, word);
            break;
        default: break;
        }
    }
    return total;
}

void ctl_owner_died(struct ctl *c, uint32_t index, uint64_t word)
{
    if (index >= c->seg->slots) return;
    struct ctl_worker *w = &c->w[index];
    if (!w->tracked || w->word != word) return;
    depart(c, w, true);
}

void ctl_check_liveness(struct ctl *c, bool all)
{
    for (uint32_t i = 0; i < c->seg->slots; i++) {
        struct ctl_worker *w = &c->w[i];
        if (!w->tracked || (!all && w->pidfd >= 0)) continue;
        if (!ph_proc_alive(w->pid, w->start_time)) depart(c, w, true);
    }
}

uint64_t ctl_send_command(struct ctl *c, uint32_t index, uint16_t type, const uint8_t *patch,
                          size_t patch_len)
{
    if (index >= c->seg->slots || !c->w[index].tracked || !c->w[index].command_ok) return 0;
    struct ctl_worker *w = &c->w[index];
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    uint64_t token = c->next_token++;
    ph_cmd_encode(&sb, token, patch, patch_len);
    bool ok = sb.size <= w->command.max_record - PH_RING_HDR &&
              ph_ring_write(&w->command, type, sb.data, (uint32_t)sb.size);
    msgpack_sbuffer_destroy(&sb);
    return ok ? token : 0;
}
