/* The swarm aggregate and the status documents built from it: controller
 * status-delta (small aggregate), controller status-full (aggregate plus the
 * sorted worker list), and per-worker status-full / status-delta. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "docpack.h"
#include "ph/mpjson.h"
#include "swarm.h"

const char *swarm_status_name(enum swarm_status s)
{
    static const char *const names[] = {"NEW",      "READY",   "STARTING", "RUNNING",
                                        "STOPPING", "STOPPED", "REMOVED",  "FAILED"};
    return (unsigned)s <= SW_FAILED ? names[s] : "FAILED";
}

uint8_t swarm_combine_in(uint8_t a, uint8_t b)
{
    /* enum ph_io_in is numbered in priority order. */
    return a > b ? a : b;
}

uint8_t swarm_combine_out(uint8_t a, uint8_t b)
{
    return a > b ? a : b;
}

bool swarm_worker_healthy(const struct swarm *s, const struct ctl_worker *w, uint64_t now)
{
    return w->tracked && w->quarantine == PH_Q_NONE && w->have_status &&
           (now <= w->last_seen_ns || now - w->last_seen_ns <= s->cfg.ttl_ns);
}

uint64_t swarm_role_hash(const char *role)
{
    uint64_t h = 14695981039346656037ull; /* FNV-1a 64 */
    for (; *role; role++) h = (h ^ (uint8_t)*role) * 1099511628211ull;
    return h;
}

/* Index of `role` in the aggregate's role summaries, adding it when there
 * is room; -1 when the table is full. */
static int role_slot(struct swarm_agg *a, const char *role)
{
    for (uint32_t k = 0; k < a->nroles; k++)
        if (strcmp(a->roles[k].role, role) == 0) return (int)k;
    if (a->nroles == SWARM_MAX_ROLES) return -1;
    struct swarm_role_sum *r = &a->roles[a->nroles];
    memset(r, 0, sizeof *r);
    snprintf(r->role, sizeof r->role, "%s", role);
    r->hash = swarm_role_hash(r->role);
    return (int)a->nroles++;
}

/* The parts of the aggregate that do not come from the workers: the
 * header cleared (role entries are initialised as added), the desired
 * counts first ... */
static void agg_begin(const struct swarm *s, struct swarm_agg *a)
{
    memset(a, 0, offsetof(struct swarm_agg, nroles) + sizeof a->nroles);
    a->nroles = 0;
    memset((char *)a + offsetof(struct swarm_agg, nroles) + sizeof a->nroles, 0,
           sizeof *a - offsetof(struct swarm_agg, nroles) - sizeof a->nroles);
    for (uint32_t i = 0; i < s->nroles; i++) {
        a->desired += s->roles[i].count;
        int k = role_slot(a, s->roles[i].role);
        if (k >= 0) a->roles[k].desired += s->roles[i].count;
    }
}

/* ... and, once the workers are counted, the status and the state. */
static void agg_finish(const struct swarm *s, struct swarm_agg *a)
{
    a->status = s->status;
    if (a->desired > 0 && a->healthy == 0)
        a->state = "Unknown";
    else if (a->healthy < a->desired)
        a->state = "Degraded";
    else
        a->state = swarm_status_name(s->status);
    for (uint32_t i = 0; i < s->plan.nsteps; i++) a->plan_fired += s->plan.steps[i].fired;
    a->plan_gen = s->plan_gen;
    a->journal_failing = s->journal_failing;
}

void swarm_aggregate(const struct swarm *s, uint64_t now, struct swarm_agg *a)
{
    agg_begin(s, a);
    const struct ctl *c = s->ctl;
    for (uint32_t i = 0; i < c->seg->slots; i++) {
        const struct ctl_worker *w = &c->w[i];
        if (!w->tracked) continue;
        a->live++;
        /* The role table keeps its order from tick to tick, so the index found
         * last time is nearly always right: comparing the role's hash (taken
         * once per claim) with the entry's confirms it without a string
         * compare per worker per tick. Two of at most SWARM_MAX_ROLES role
         * names would have to share a 64-bit hash to be mixed up. */
        struct swarm_wstate *ws = &s->ws[i];
        if (ws->role_word != w->word || ws->role_hash == 0) {
            ws->role_hash = swarm_role_hash(w->role);
            ws->role_word = w->word;
            ws->role_hint = -1;
        }
        int k = ws->role_hint;
        if (k < 0 || (uint32_t)k >= a->nroles || a->roles[k].hash != ws->role_hash) {
            k = role_slot(a, w->role);
            ws->role_hint = (int16_t)k;
        }
        bool enabled = w->have_status && (w->st.flags & PH_STATUS_ENABLED);
        if (k >= 0) a->roles[k].count++;
        if (enabled) {
            a->enabled++;
            if (k >= 0) a->roles[k].enabled++;
        }
        if (!swarm_worker_healthy(s, w, now)) continue;
        a->healthy++;
        if (enabled) a->running++;
        a->io_in = swarm_combine_in(a->io_in, w->st.io_in);
        a->io_out = swarm_combine_out(a->io_out, w->st.io_out);
        a->tps += w->tps;
        if (k >= 0) a->roles[k].tps += w->tps;
        if (a->oldest_seen_ns == 0 || w->last_seen_ns < a->oldest_seen_ns)
            a->oldest_seen_ns = w->last_seen_ns;
    }
    agg_finish(s, a);
}

void swarm_agg_build(const struct swarm *s, uint64_t now, struct swarm_agg *a)
{
    /* More roles than the summary holds (desired and in use together, or a
     * worker whose role found no room): which ones a full pass keeps
     * depends on the slots' order, so take the full pass. Rare: it takes
     * over 64 distinct roles. */
    uint32_t in_use = 0;
    for (uint32_t i = 0; i < s->niroles; i++) in_use += s->iroles[i].count > 0;
    if (s->unroled > 0 || in_use + s->nroles > SWARM_MAX_ROLES) {
        swarm_aggregate(s, now, a);
        return;
    }
    agg_begin(s, a);
    for (uint32_t i = 0; i < s->niroles; i++) {
        const struct swarm_role_sum *r = &s->iroles[i];
        if (r->count == 0) continue;
        int k = role_slot(a, r->role);
        if (k < 0) continue;
        a->roles[k].count += r->count;
        a->roles[k].enabled += r->enabled;
        a->roles[k].tps += r->tps;
    }
    a->live = s->live;
    a->enabled = s->enabled;
    a->healthy = s->healthy;
    a->running = s->running;
    a->tps = s->tps;
    /* ioStates are numbered in priority order: the highest one present. */
    for (uint32_t v = 256; v-- > 0;)
        if (s->in_hist[v] > 0) {
            a->io_in = (uint8_t)v;
            break;
        }
    for (uint32_t v = 256; v-- > 0;)
        if (s->out_hist[v] > 0) {
            a->io_out = (uint8_t)v;
            break;
        }
    a->oldest_seen_ns = SWARM_OLDEST_LAZY;
    agg_finish(s, a);
}

uint64_t swarm_oldest_seen(const struct swarm *s)
{
    /* A compact array: a few microseconds for 10,000 slots, paid per
     * document, not per tick. */
    uint64_t oldest = UINT64_MAX;
    /* relaxed: a bound only; a slot above it holds no worker the table
     * tracks (seen_ns is 0 there anyway). */
    uint32_t hw = atomic_load_explicit(&s->ctl->seg->hdr->slot_high_water, memory_order_relaxed);
    if (hw > s->ctl->seg->slots) hw = s->ctl->seg->slots;
    for (uint32_t i = 0; i < hw; i++)
        if (s->seen_ns[i] != 0 && s->seen_ns[i] < oldest) oldest = s->seen_ns[i];
    return oldest == UINT64_MAX ? 0 : oldest;
}

bool swarm_agg_changed(const struct swarm_agg *a, const struct swarm_agg *b)
{
    if (a->desired != b->desired || a->healthy != b->healthy || a->running != b->running ||
        a->enabled != b->enabled || a->live != b->live || a->io_in != b->io_in ||
        a->io_out != b->io_out || a->status != b->status || strcmp(a->state, b->state) != 0 ||
        a->plan_fired != b->plan_fired || a->plan_gen != b->plan_gen ||
        a->journal_failing != b->journal_failing)
        return true;
    /* Rates wander all the time; only a move of a fifth of the figure last
     * sent (`b`), or to/from zero, is news. The watermark delta carries the
     * current figure anyway. */
    if ((a->tps == 0) != (b->tps == 0)) return true;
    const uint64_t diff = a->tps > b->tps ? a->tps - b->tps : b->tps - a->tps;
    return diff > 0 && diff * 5 >= b->tps;
}

/* CLOCK_MONOTONIC instant -> RFC 3339 wall-clock text. */
static void mono_to_rfc3339(uint64_t mono, uint64_t now_mono, char buf[32])
{
    uint64_t real = ph_real_ns();
    uint64_t age = now_mono > mono ? now_mono - mono : 0;
    ph_rfc3339_ms(real > age ? real - age : real, buf);
}

static void pack_iostate(msgpack_packer *pk, uint8_t in, uint8_t out)
{
    dp_map(pk, 1);
    dp_str(pk, "work");
    dp_map(pk, 2);
    dp_kv_str(pk, "input", ph_io_in_name(in));
    dp_kv_str(pk, "output", ph_io_out_name(out));
}

static void pack_scenario(const struct swarm *s, msgpack_packer *pk, uint64_t now)
{
    const struct swarm_plan *p = &s->plan;
    if (p->nsteps == 0) {
        dp_map(pk, 0);
        return;
    }
    const struct swarm_plan_step *next = NULL;
    uint32_t fired = 0;
    for (uint32_t i = 0; i < p->nsteps; i++) {
        if (p->steps[i].fired)
            fired++;
        else if (next == NULL || p->steps[i].offset_ns < next->offset_ns)
            next = &p->steps[i];
    }
    const uint64_t elapsed = p->active && now > p->started_ns ? now - p->started_ns : 0;
    dp_map(pk, 7);
    dp_str(pk, "lastStepId");
    dp_str_or_nil(pk, p->last_step);
    dp_str(pk, "nextStepId");
    dp_str_or_nil(pk, p->active && next ? next->id : NULL);
    dp_str(pk, "nextDueMillis");
    if (p->active && next)
        msgpack_pack_uint64(pk, next->offset_ns > elapsed ? (next->offset_ns - elapsed) / 1000000
                                                          : 0);
    else
        msgpack_pack_nil(pk);
    dp_kv_u64(pk, "elapsedMillis", elapsed / 1000000);
    dp_str(pk, "firedStepIds");
    msgpack_pack_array(pk, fired);
    for (uint32_t i = 0; i < p->nsteps; i++)
        if (p->steps[i].fired) dp_str(pk, p->steps[i].id);
    dp_kv_u64(pk, "totalRuns", p->total_runs);
    dp_kv_u64(pk, "runsRemaining", p->total_runs > p->runs_done ? p->total_runs - p->runs_done : 0);
}

/* Per-role summary, from the aggregate: count, enabled and tps of the live
 * workers, plus the desired count; desired but absent roles show zeros. */
static void pack_roles(msgpack_packer *pk, const struct swarm_agg *a)
{
    dp_map(pk, a->nroles);
    for (uint32_t k = 0; k < a->nroles; k++) {
        const struct swarm_role_sum *r = &a->roles[k];
        dp_str(pk, r->role);
        dp_map(pk, 4);
        dp_kv_u64(pk, "count", r->count);
        dp_kv_u64(pk, "desired", r->desired);
        dp_kv_u64(pk, "enabled", r->enabled);
        dp_kv_u64(pk, "tps", r->tps);
    }
}

/* The aggregate part of data.context, shared by delta and full; `extra`
 * more keys follow (the full's worker list). */
static void pack_context(const struct swarm *s, msgpack_packer *pk, const struct swarm_agg *a,
                         uint64_t now, uint32_t extra)
{
    const bool journal = s->cfg.run_id[0] != '\0';
    dp_map(pk, 8 + (journal ? 1 : 0) + extra);
    /* The cadence: the next controller delta comes within this. */
    dp_kv_secs(pk, "intervalSeconds", s->cfg.watermark_ns);
    dp_kv_str(pk, "swarmStatus", swarm_status_name(a->status));
    dp_kv_str(pk, "state", a->state);
    dp_str(pk, "totals");
    dp_map(pk, 4);
    dp_kv_u64(pk, "desired", a->desired);
    dp_kv_u64(pk, "healthy", a->healthy);
    dp_kv_u64(pk, "running", a->running);
    dp_kv_u64(pk, "enabled", a->enabled);
    char ts[32];
    const uint64_t oldest =
        a->oldest_seen_ns == SWARM_OLDEST_LAZY ? swarm_oldest_seen(s) : a->oldest_seen_ns;
    mono_to_rfc3339(oldest ? oldest : now, now, ts);
    dp_kv_str(pk, "watermark", ts);
    dp_str(pk, "maxStalenessSec");
    msgpack_pack_double(pk, oldest && now > oldest ? (double)((now - oldest) / 1000000) / 1000.0
                                                   : 0.0);
    dp_str(pk, "scenario");
    pack_scenario(s, pk, now);
    dp_str(pk, "roles");
    pack_roles(pk, a);
    if (journal) {
        dp_str(pk, "journal");
        dp_map(pk, 2);
        dp_kv_str(pk, "runId", s->cfg.run_id);
        dp_kv_bool(pk, "failing", a->journal_failing);
    }
}

/* A removed swarm's final documents (and the answers just before them) are
 * reliable: they go through the emitter's ordered outbox like outcomes, so
 * none overtakes the Removed outcome, and none is lost. */
static bool final_docs(const struct swarm *s)
{
    return s->final_stage != 0;
}

static void pack_controller_head(const struct swarm *s, msgpack_packer *pk, const char *type,
                                 const char *cid)
{
    dp_head(pk, "metric", type, s->cfg.swarm_id, "swarm-controller", s->cfg.instance,
            s->cfg.instance, cid, NULL);
}

bool swarm_emit_controller_delta(struct swarm *s, const struct swarm_agg *a, uint64_t now)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    pack_controller_head(s, &pk, "status-delta", NULL);
    dp_map(&pk, 4);
    dp_kv_bool(&pk, "enabled", s->workloads_enabled);
    dp_kv_u64(&pk, "tps", a->tps);
    dp_str(&pk, "ioState");
    pack_iostate(&pk, a->io_in, a->io_out);
    dp_str(&pk, "context");
    pack_context(s, &pk, a, now, 0);
    bool ok = s->out.emit(s->out.ctx, sb.data, sb.size, final_docs(s), 0);
    msgpack_sbuffer_destroy(&sb);
    if (ok) s->deltas++;
    return ok;
}

static const struct ctl_worker *const *sorted_workers(const struct swarm *s, uint32_t *n)
{
    const struct ctl *c = s->ctl;
    const struct ctl_worker **v = malloc(sizeof *v * (c->live + 1));
    *n = 0;
    if (v == NULL) return NULL;
    for (uint32_t i = 0; i < c->seg->slots && *n < c->live; i++)
        if (c->w[i].tracked) v[(*n)++] = &c->w[i];
    return v;
}

/* One entry of data.context.workers, from a live worker or a ghost. */
struct wentry {
    const char *role, *instance;
    bool enabled, stale, dead;
    uint8_t in, out;
    uint64_t tps, last_seen;
    int32_t pid;
    int64_t slot; /* -1 for ghosts */
    const struct ctl_blob *queues; /* packed {in, out}, or NULL */
    const char *location, *transport;
};

static int wentry_cmp(const void *x, const void *y)
{
    const struct wentry *a = x, *b = y;
    int r = strcmp(a->role, b->role);
    return r != 0 ? r : strcmp(a->instance, b->instance);
}

static void pack_workers(const struct swarm *s, msgpack_packer *pk, uint64_t now)
{
    uint32_t nlive = 0;
    const struct ctl_worker *const *live = sorted_workers(s, &nlive);
    uint32_t nghost = 0;
    for (uint32_t i = 0; i < SWARM_MAX_GHOSTS; i++) nghost += s->ghosts[i].used;
    struct wentry *e = malloc(sizeof *e * (nlive + nghost + 1));
    uint32_t n = 0;
    for (uint32_t i = 0; e != NULL && live != NULL && i < nlive; i++) {
        const struct ctl_worker *w = live[i];
        e[n++] = (struct wentry){w->role,
                                 w->instance,
                                 w->have_status && (w->st.flags & PH_STATUS_ENABLED),
                                 !swarm_worker_healthy(s, w, now),
                                 false,
                                 w->st.io_in,
                                 w->st.io_out,
                                 w->tps,
                                 w->last_seen_ns ? w->last_seen_ns : w->tracked_mono_ns,
                                 w->pid,
                                 w->index,
                                 w->queues.len > 0 ? &w->queues : NULL,
                                 swarm_worker_location(s, w),
                                 swarm_worker_transport(w)};
    }
    for (uint32_t i = 0; e != NULL && i < SWARM_MAX_GHOSTS; i++) {
        const struct swarm_ghost *g = &s->ghosts[i];
        if (!g->used) continue;
        e[n++] = (struct wentry){g->role,
                                 g->instance,
                                 g->enabled,
                                 true,
                                 true,
                                 g->io_in,
                                 g->io_out,
                                 0,
                                 g->last_seen_ns,
                                 g->pid,
                                 -1,
                                 NULL,
                                 g->location[0] != '\0' ? g->location : s->cfg.host,
                                 g->transport[0] != '\0' ? g->transport : "shm"};
    }
    if (e != NULL) qsort(e, n, sizeof *e, wentry_cmp);
    msgpack_pack_array(pk, n);
    for (uint32_t i = 0; i < n; i++) {
        char ts[32];
        mono_to_rfc3339(e[i].last_seen, now, ts);
        dp_map(pk, 11 + (e[i].dead ? 1 : 0) + (e[i].queues != NULL ? 1 : 0));
        dp_kv_str(pk, "role", e[i].role);
        dp_kv_str(pk, "instance", e[i].instance);
        dp_kv_bool(pk, "enabled", e[i].enabled);
        dp_kv_u64(pk, "tps", e[i].tps);
        dp_str(pk, "ioState");
        pack_iostate(pk, e[i].in, e[i].out);
        dp_kv_str(pk, "lastSeenAt", ts);
        dp_kv_bool(pk, "stale", e[i].stale);
        dp_kv_u64(pk, "pid", (uint64_t)e[i].pid);
        dp_str(pk, "slot");
        if (e[i].slot >= 0)
            msgpack_pack_uint64(pk, (uint64_t)e[i].slot);
        else
            msgpack_pack_nil(pk);
        dp_kv_str(pk, "location", e[i].location);
        dp_kv_str(pk, "transport", e[i].transport);
        if (e[i].dead) dp_kv_bool(pk, "dead", true);
        if (e[i].queues != NULL) {
            /* The work-plane queues, as the worker reported them (ctl.c kept
             * them packed): consumers draw the pipeline from them. */
            dp_str(pk, "queues");
            pk->callback(pk->data, (const char *)e[i].queues->data, e[i].queues->len);
        }
    }
    free(e);
    free((void *)live);
}

bool swarm_emit_controller_full(struct swarm *s, const struct swarm_agg *a, const char *cid,
                                uint64_t now)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    /* Room for the last full's size and an eighth more: a large worker
     * list then packs without the buffer's doublings and their copies.
     * (Without the memory the buffer grows as usual.) */
    if (s->full_bytes > 0 && (sb.data = malloc(s->full_bytes + s->full_bytes / 8)) != NULL)
        sb.alloc = s->full_bytes + s->full_bytes / 8;
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    pack_controller_head(s, &pk, "status-full", cid);
    dp_map(&pk, 7);
    dp_kv_bool(&pk, "enabled", s->workloads_enabled);
    dp_kv_u64(&pk, "tps", a->tps);
    dp_str(&pk, "ioState");
    pack_iostate(&pk, a->io_in, a->io_out);
    dp_str(&pk, "config");
    ph_json_pack(&pk, s->controller_config, true);
    dp_str(&pk, "io");
    /* The controller's own control queue is its only io. */
    char q[3 * PH_ID_MAX + 32];
    snprintf(q, sizeof q, "ph.control.%s.swarm-controller.%s", s->cfg.swarm_id, s->cfg.instance);
    dp_map(&pk, 1);
    dp_str(&pk, "control");
    dp_map(&pk, 1);
    dp_str(&pk, "queues");
    dp_map(&pk, 1);
    dp_str(&pk, "in");
    msgpack_pack_array(&pk, 1);
    dp_str(&pk, q);
    char ts[32];
    ph_rfc3339_ms(s->started_real_ns, ts);
    dp_kv_str(&pk, "startedAt", ts);
    dp_str(&pk, "context");
    pack_context(s, &pk, a, now, 1);
    dp_str(&pk, "workers");
    pack_workers(s, &pk, now);
    s->full_bytes = sb.size;
    bool ok = s->out.emit(s->out.ctx, sb.data, sb.size, final_docs(s), 0);
    msgpack_sbuffer_destroy(&sb);
    if (ok) {
        s->fulls++;
        /* It lists the current worker set, whatever asked for it. */
        s->members_changed = false;
        s->have_full = true;
        s->last_full_ns = now;
    }
    return ok;
}

static void pack_blob_or_empty(msgpack_packer *pk, msgpack_sbuffer *sb, const struct ctl_blob *b)
{
    if (b->len > 0)
        msgpack_sbuffer_write(sb, (const char *)b->data, b->len);
    else
        dp_map(pk, 0);
}

bool swarm_emit_worker_full(struct swarm *s, const struct ctl_worker *w, const char *cid,
                            uint64_t now)
{
    /* A contract-speaking remote worker sends its own (the bridge forwards a
     * status-request to it instead). */
    if (swarm_worker_speaks_for_itself(w)) return true;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    dp_head(&pk, "metric", "status-full", s->cfg.swarm_id, w->role, w->instance, w->instance, cid,
            NULL);
    dp_map(&pk, 7);
    dp_kv_bool(&pk, "enabled", w->have_status && (w->st.flags & PH_STATUS_ENABLED));
    dp_kv_u64(&pk, "tps", w->tps);
    dp_str(&pk, "ioState");
    pack_iostate(&pk, w->st.io_in, w->st.io_out);
    dp_str(&pk, "config");
    pack_blob_or_empty(&pk, &sb, &w->config);
    dp_str(&pk, "io");
    pack_blob_or_empty(&pk, &sb, &w->io);
    char ts[32];
    ph_rfc3339_ms(w->attached_real_ns, ts);
    dp_kv_str(&pk, "startedAt", ts);
    dp_str(&pk, "context");
    dp_map(&pk, 8 + (s->cfg.worker_deltas ? 1 : 0));
    dp_kv_str(&pk, "location", swarm_worker_location(s, w));
    dp_kv_str(&pk, "transport", swarm_worker_transport(w));
    /* The cadence of this worker's documents: its heartbeat deltas. An
     * aggregate-only swarm (workerDeltas false) has none to announce. */
    if (s->cfg.worker_deltas) dp_kv_secs(&pk, "intervalSeconds", s->cfg.worker_heartbeat_ns);
    mono_to_rfc3339(w->last_seen_ns ? w->last_seen_ns : now, now, ts);
    dp_kv_str(&pk, "lastSeenAt", ts);
    dp_kv_bool(&pk, "stale", !swarm_worker_healthy(s, w, now));
    dp_kv_u64(&pk, "slot", w->index);
    dp_kv_u64(&pk, "pid", (uint64_t)w->pid);
    dp_kv_u64(&pk, "processed", w->st.processed);
    dp_kv_u64(&pk, "errors", w->st.errors);
    bool ok = s->out.emit(s->out.ctx, sb.data, sb.size, false, 0);
    msgpack_sbuffer_destroy(&sb);
    if (ok) s->worker_fulls++;
    return ok;
}

bool swarm_emit_worker_delta(struct swarm *s, const struct ctl_worker *w, uint64_t now)
{
    if (swarm_worker_speaks_for_itself(w)) return true;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    dp_head(&pk, "metric", "status-delta", s->cfg.swarm_id, w->role, w->instance, w->instance,
            NULL, NULL);
    dp_map(&pk, 4);
    dp_kv_bool(&pk, "enabled", w->have_status && (w->st.flags & PH_STATUS_ENABLED));
    dp_kv_u64(&pk, "tps", w->tps);
    dp_str(&pk, "ioState");
    pack_iostate(&pk, w->st.io_in, w->st.io_out);
    dp_str(&pk, "context");
    dp_map(&pk, 2);
    dp_kv_secs(&pk, "intervalSeconds", s->cfg.worker_heartbeat_ns);
    dp_kv_bool(&pk, "stale", !swarm_worker_healthy(s, w, now));
    bool ok = s->out.emit(s->out.ctx, sb.data, sb.size, false, 0);
    msgpack_sbuffer_destroy(&sb);
    if (ok) s->worker_deltas++;
    return ok;
}
