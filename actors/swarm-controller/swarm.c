/* Swarm lifecycle, commands and the emission schedule (see swarm.h). */
#include "swarm.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "docpack.h"
#include "ph/log.h"
#include "ph/mpjson.h"

#define NS_PER_MS 1000000ull
#define NS_PER_S 1000000000ull

void swarm_cfg_defaults(struct swarm_cfg *c)
{
    memset(c, 0, sizeof *c);
    if (gethostname(c->host, sizeof c->host - 1) != 0 || !ph_location_ok(c->host))
        snprintf(c->host, sizeof c->host, "localhost");
    c->ttl_ns = 15 * NS_PER_S;
    c->watermark_ns = 5 * NS_PER_S;
    c->coalesce_ns = 20 * NS_PER_MS;
    c->worker_delta_ns = 5 * NS_PER_S;
    c->worker_heartbeat_ns = 5 * NS_PER_S;
    c->member_full_ns = 1 * NS_PER_S;
    c->dead_grace_ns = 30 * NS_PER_S;
    c->cmd_timeout_ns = 5 * NS_PER_S;
    c->worker_deltas = true;
}

const char *swarm_worker_location(const struct swarm *s, const struct ctl_worker *w)
{
    return w->location[0] != '\0' ? w->location : s->cfg.host;
}

const char *swarm_worker_transport(const struct ctl_worker *w)
{
    return w->transport[0] != '\0' ? w->transport : "shm";
}

bool swarm_worker_speaks_for_itself(const struct ctl_worker *w)
{
    return strcmp(w->transport, "amqp") == 0;
}

/* ---- journal ---------------------------------------------------------- */

/* Copy of a JSON value without the values of secret-named keys, and with
 * the credentials of URL-shaped strings stripped ("amqp://u:***@h"). */
static json_t *redacted(const json_t *v)
{
    if (json_is_object(v)) {
        json_t *o = json_object();
        const char *k;
        json_t *x;
        json_object_foreach((json_t *)v, k, x)
        {
            if (!ph_key_is_secret(k)) json_object_set_new(o, k, redacted(x));
        }
        return o;
    }
    if (json_is_array(v)) {
        json_t *a = json_array();
        for (size_t i = 0; i < json_array_size(v); i++)
            json_array_append_new(a, redacted(json_array_get(v, i)));
        return a;
    }
    json_t *c = v != NULL ? json_deep_copy(v) : json_null();
    ph_json_strip_url_credentials(c);
    return c;
}

static void journal(struct swarm *s, json_t *entry)
{
    if (entry == NULL) return;
    if (s->cfg.run_id[0] != '\0') json_object_set_new(entry, "runId", json_string(s->cfg.run_id));
    if (s->out.journal) s->out.journal(s->out.ctx, entry);
    json_decref(entry);
}

static json_t *jstr_or_null(const char *s)
{
    return s != NULL && s[0] != '\0' ? json_string(s) : json_null();
}

/* A signal's data as journaled: whole when small, else its size and a hash.
 * The journal is an audit trail, not a store: one large config-update must
 * not cost it megabytes (the limit is JOURNAL_DATA_MAX). *complete says
 * whether the data could be applied again from the journal. */
#define JOURNAL_DATA_MAX 4096u
static json_t *journal_data(const json_t *data, bool *complete)
{
    json_t *jd = redacted(data);
    char *text = json_dumps(jd, JSON_COMPACT | JSON_SORT_KEYS);
    size_t n = text != NULL ? strlen(text) : 0;
    /* Redaction removes secrets: such data cannot be applied again as sent. */
    *complete = text != NULL && n <= JOURNAL_DATA_MAX && json_equal(jd, data);
    if (text != NULL && n > JOURNAL_DATA_MAX) {
        uint64_t h = 14695981039346656037ull; /* FNV-1a 64 */
        for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)text[i]) * 1099511628211ull;
        char hex[17];
        snprintf(hex, sizeof hex, "%016llx", (unsigned long long)h);
        json_decref(jd);
        jd = json_pack("{s:b, s:I, s:s}", "truncated", 1, "bytes", (json_int_t)n, "fnv1a64", hex);
    }
    free(text);
    return jd;
}

static void state_changed(struct swarm *s)
{
    s->state_seq++;
}

static void controller_alert(struct swarm *s, const char *level, const char *code,
                             const char *message);

/* Records a patch in the desired config, for workers that join later. A
 * full table (or no memory) is said aloud: the workers running now got the
 * patch, a worker that rejoins would not. */
static void remember(struct swarm *s, const char *role, const char *instance, const json_t *patch)
{
    if (desired_apply(&s->desired, role, instance, patch)) return;
    char msg[256];
    snprintf(msg, sizeof msg,
             "config patch for %s%s%s is applied but not remembered (%u scopes in force, out "
             "of room): a worker of that scope that rejoins will not get it",
             role[0] ? role : "the swarm", instance[0] ? "/" : "", instance,
             (unsigned)s->desired.n);
    ph_warn("%s", msg);
    controller_alert(s, "warn", "config.not-remembered", msg);
}

/* Every worker's workload on or off (swarm-start/stop, a controller-scope
 * config-update, auto-start), remembered for workers that join later. */
static void want_enabled(struct swarm *s, bool on)
{
    json_t *patch = json_pack("{s:b}", "enabled", on);
    remember(s, "", "", patch);
    json_decref(patch);
    state_changed(s);
}

/* ---- alerts and outcomes ---------------------------------------------- */

/* The alert document; `reliable` ones go through the outbox (after the
 * journal holds what came before them) and are journaled themselves. */
static void pack_alert(struct swarm *s, const char *role, const char *instance, const char *origin,
                       const char *level, const char *code, const char *message,
                       const json_t *context, bool reliable)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    dp_head(&pk, "event", "alert", s->cfg.swarm_id, role, instance, origin, NULL, NULL);
    dp_map(&pk, context != NULL ? 4 : 3);
    dp_kv_str(&pk, "level", level);
    dp_kv_str(&pk, "code", code);
    dp_kv_str(&pk, "message", message[0] ? message : code);
    if (context != NULL) {
        dp_str(&pk, "context");
        ph_json_pack(&pk, context, true);
    }
    s->out.emit(s->out.ctx, sb.data, sb.size, reliable, 0);
    msgpack_sbuffer_destroy(&sb);
    s->alerts++;
}

static void emit_alert(struct swarm *s, const char *role, const char *instance, const char *origin,
                       const char *level, const char *code, const char *message,
                       const json_t *context)
{
    pack_alert(s, role, instance, origin, level, code, message, context, true);
    journal(s, json_pack("{s:s, s:s, s:o, s:o, s:s, s:s, s:s}", "event", "alert", "level", level,
                         "role", jstr_or_null(role), "instance", jstr_or_null(instance), "code",
                         code, "message", message, "origin", origin));
}

static void controller_alert(struct swarm *s, const char *level, const char *code,
                             const char *message)
{
    emit_alert(s, "swarm-controller", s->cfg.instance, s->cfg.instance, level, code, message,
               NULL);
}

void swarm_controller_alert(struct swarm *s, const char *level, const char *code,
                            const char *message)
{
    controller_alert(s, level, code, message);
}

void swarm_set_journal_failing(struct swarm *s, bool failing)
{
    if (failing == s->journal_failing) return;
    s->journal_failing = failing;
    if (failing) {
        /* Not through the outbox: what goes there waits for the journal,
         * the very thing that fails. Sent once, at most (like a status). */
        pack_alert(s, "swarm-controller", s->cfg.instance, s->cfg.instance, "error",
                   "journal.failing",
                   "the journal cannot take entries (disk full or write errors): signals are "
                   "held and outcomes wait until it can",
                   NULL, false);
    } else {
        controller_alert(s, "info", "journal.recovered",
                         "the journal takes entries again: held signals and outcomes go on");
    }
}

struct outcome {
    const char *type;
    const char *role;     /* scope; NULL = ALL */
    const char *instance; /* scope; NULL = ALL */
    const char *cid;
    const char *ikey;
    const char *status;
    int enabled;   /* -1: absent */
    int retryable; /* -1: absent */
    const char *message;
    bool replay; /* answers a replayed idempotencyKey: the cache already holds it */
    uint64_t ts_ms; /* when it was first made (ph/doc.h "ts"); 0: not known */
};

static void idem_store(struct swarm *s, const struct outcome *o, uint64_t now)
{
    /* A failure the sender may retry must not be replayed to that retry:
     * the retry carries the same key and has to be applied for real. */
    if (o->ikey == NULL || o->ikey[0] == '\0' || o->retryable > 0) return;
    struct swarm_idem *slot = &s->idem[0];
    for (uint32_t i = 0; i < SWARM_IDEM_CACHE; i++) {
        struct swarm_idem *e = &s->idem[i];
        if (e->used && strcmp(e->ikey, o->ikey) == 0 && strcmp(e->type, o->type) == 0) {
            slot = e;
            break;
        }
        /* Otherwise reuse a free entry, or the oldest one. */
        if (!e->used || (slot->used && e->at_ns < slot->at_ns)) slot = e;
    }
    slot->used = true;
    snprintf(slot->ikey, sizeof slot->ikey, "%s", o->ikey);
    snprintf(slot->type, sizeof slot->type, "%s", o->type);
    snprintf(slot->status, sizeof slot->status, "%s", o->status);
    slot->enabled_known = o->enabled >= 0;
    slot->enabled = o->enabled > 0;
    slot->retryable = o->retryable > 0;
    slot->at_ns = now;
}

/* The outcome document, with `swarm_status` as context.swarmStatus. */
static void pack_outcome(struct swarm *s, const struct outcome *o, const char *swarm_status,
                         msgpack_sbuffer *sb)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    dp_head_at(&pk, o->ts_ms, "outcome", o->type, s->cfg.swarm_id, o->role, o->instance,
               s->cfg.instance, o->cid, o->ikey);
    dp_map(&pk, 2 + (o->enabled >= 0) + (o->retryable >= 0));
    dp_kv_str(&pk, "status", o->status);
    if (o->enabled >= 0) dp_kv_bool(&pk, "enabled", o->enabled > 0);
    if (o->retryable >= 0) dp_kv_bool(&pk, "retryable", o->retryable > 0);
    dp_str(&pk, "context");
    dp_map(&pk, o->message != NULL ? 2 : 1);
    dp_kv_str(&pk, "swarmStatus", swarm_status);
    if (o->message != NULL) dp_kv_str(&pk, "message", o->message);
}

/* Keeps an outcome's journal entry (a reference) until it is known
 * delivered; the oldest goes when the ring is full. */
static void undelivered_push(struct swarm *s, json_t *entry)
{
    if (s->undelivered == NULL) {
        json_decref(entry);
        return;
    }
    if (s->undel_n == SWARM_UNDELIVERED_MAX) {
        /* Beyond this many unconfirmed (a broker away for long), the oldest
         * is no longer carried by checkpoints: said, once per thousand. */
        if (s->undel_forgotten++ % 1000 == 0)
            ph_warn("%u outcomes wait for the broker's confirms: the oldest are no longer kept "
                    "for a restart (%" PRIu64 " so far)",
                    SWARM_UNDELIVERED_MAX, s->undel_forgotten);
        json_decref(s->undelivered[s->undel_head]);
        s->undel_head = (s->undel_head + 1) % SWARM_UNDELIVERED_MAX;
        s->undel_n--;
    }
    s->undelivered[(s->undel_head + s->undel_n) % SWARM_UNDELIVERED_MAX] = entry;
    s->undel_n++;
}

uint64_t swarm_entry_u64(const json_t *e, const char *key)
{
    const json_t *v = json_object_get(e, key);
    return json_is_integer(v) && json_integer_value(v) > 0 ? (uint64_t)json_integer_value(v) : 0;
}

void swarm_outcomes_delivered(struct swarm *s, uint64_t seq)
{
    if (seq <= s->delivered_seq) return;
    s->delivered_seq = seq;
    while (s->undel_n > 0 && swarm_entry_u64(s->undelivered[s->undel_head], "seq") <= seq) {
        json_decref(s->undelivered[s->undel_head]);
        s->undel_head = (s->undel_head + 1) % SWARM_UNDELIVERED_MAX;
        s->undel_n--;
    }
}

static void emit_outcome(struct swarm *s, const struct outcome *o, uint64_t now)
{
    if (o->cid == NULL || o->cid[0] == '\0') return; /* internal command: nobody to answer */
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    const char *swarm_status = swarm_status_name(s->status);
    /* Stamped here, and the stamp journaled: sent again after a restart,
     * it is the same message (ph/doc.h "ts"). */
    struct outcome stamped = *o;
    stamped.ts_ms = ph_real_ns() / 1000000u;
    pack_outcome(s, &stamped, swarm_status, &sb);
    const uint64_t seq = ++s->out_seq;
    /* Journaled before it is handed out: the emitter publishes an outcome
     * only once the journal holds it, so a restarted controller never takes
     * up again a signal whose answer went out. The entry holds the whole
     * document (and its sequence number): a restarted controller sends it
     * again unless a "delivered" entry covers it. */
    json_t *e = json_pack("{s:s, s:s, s:o, s:o, s:s, s:o, s:s, s:I, s:s}", "event", "outcome",
                          "type", o->type, "role", jstr_or_null(o->role), "instance",
                          jstr_or_null(o->instance), "correlationId", o->cid, "idempotencyKey",
                          jstr_or_null(o->ikey), "status", o->status, "seq", (json_int_t)seq,
                          "swarmStatus", swarm_status);
    /* Not "ts": the journal's own key for the line's time (journal.c). */
    if (e != NULL) json_object_set_new(e, "madeMs", json_integer((json_int_t)stamped.ts_ms));
    if (e != NULL && o->enabled >= 0) json_object_set_new(e, "enabled", json_boolean(o->enabled));
    if (e != NULL && o->retryable >= 0)
        json_object_set_new(e, "retryable", json_boolean(o->retryable));
    if (e != NULL && o->message != NULL)
        json_object_set_new(e, "message", json_string(o->message));
    if (e != NULL) undelivered_push(s, json_incref(e));
    journal(s, e);
    s->out.emit(s->out.ctx, sb.data, sb.size, true, seq);
    msgpack_sbuffer_destroy(&sb);
    s->outcomes++;
    /* A replay answers from the cache entry itself: storing it again would
     * copy the entry onto itself. */
    if (!o->replay) idem_store(s, o, now);
}

void swarm_resend_outcome(struct swarm *s, const json_t *e)
{
    const uint64_t seq = swarm_entry_u64(e, "seq");
    const char *type = json_string_value(json_object_get(e, "type"));
    const char *cid = json_string_value(json_object_get(e, "correlationId"));
    const char *status = json_string_value(json_object_get(e, "status"));
    const char *sw = json_string_value(json_object_get(e, "swarmStatus"));
    if (seq == 0 || type == NULL || cid == NULL || cid[0] == '\0' || status == NULL) return;
    const json_t *en = json_object_get(e, "enabled");
    const json_t *rt = json_object_get(e, "retryable");
    /* 0 from a journal written before outcomes were stamped, or a value no
     * document could carry: then the bridge stamps it. */
    const uint64_t made = swarm_entry_u64(e, "madeMs");
    const struct outcome o = {
        .type = type,
        .role = json_string_value(json_object_get(e, "role")),
        .instance = json_string_value(json_object_get(e, "instance")),
        .cid = cid,
        .ikey = json_string_value(json_object_get(e, "idempotencyKey")),
        .status = status,
        .enabled = json_is_boolean(en) ? json_is_true(en) : -1,
        .retryable = json_is_boolean(rt) ? json_is_true(rt) : -1,
        .message = json_string_value(json_object_get(e, "message")),
        .ts_ms = made <= PH_DOC_TS_MAX ? made : 0};
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    pack_outcome(s, &o, sw != NULL ? sw : swarm_status_name(s->status), &sb);
    if (seq > s->out_seq) s->out_seq = seq;
    undelivered_push(s, json_deep_copy(e));
    s->out.emit(s->out.ctx, sb.data, sb.size, true, seq);
    msgpack_sbuffer_destroy(&sb);
    s->outcomes_resent++;
}

/* ---- set-up ----------------------------------------------------------- */

/* A duration in seconds as JSON: an integer when whole (15, not 15.0),
 * else milliseconds / 1000, which the bridge renders without binary noise
 * (0.25, not 0.25000000000000001; envelope.h, ENVELOPE_DUMP_FLAGS). */
static json_t *json_secs(uint64_t ns)
{
    if (ns % NS_PER_S == 0) return json_integer((json_int_t)(ns / NS_PER_S));
    return json_real((double)(ns / NS_PER_MS) / 1000.0);
}

static void refresh_controller_config(struct swarm *s)
{
    json_t *c = s->controller_config;
    json_object_set_new(c, "swarmId", json_string(s->cfg.swarm_id));
    json_object_set_new(c, "instance", json_string(s->cfg.instance));
    json_object_set_new(c, "statusTtlSec", json_secs(s->cfg.ttl_ns));
    json_object_set_new(c, "watermarkSec", json_secs(s->cfg.watermark_ns));
    json_object_set_new(c, "deltaCoalesceMs", json_integer((json_int_t)(s->cfg.coalesce_ns / NS_PER_MS)));
    json_object_set_new(c, "workerDeltas", json_boolean(s->cfg.worker_deltas));
    json_object_set_new(c, "workerHeartbeatSec", json_secs(s->cfg.worker_heartbeat_ns));
    json_object_set_new(c, "workloadsEnabled", json_boolean(s->workloads_enabled));
    json_t *roles = json_array();
    for (uint32_t i = 0; i < s->nroles; i++)
        json_array_append_new(roles, json_pack("{s:s, s:I}", "role", s->roles[i].role, "count",
                                               (json_int_t)s->roles[i].count));
    json_object_set_new(c, "roles", roles);
}

int swarm_init(struct swarm *s, struct ctl *ctl, const struct swarm_cfg *cfg,
               const struct swarm_emitter *out, uint64_t now)
{
    memset(s, 0, sizeof *s);
    s->cfg = *cfg;
    s->ctl = ctl;
    s->out = *out;
    s->ws = calloc(ctl->seg->slots, sizeof *s->ws);
    s->acc = calloc(ctl->seg->slots, sizeof *s->acc);
    s->seen_ns = calloc(ctl->seg->slots, sizeof *s->seen_ns);
    s->controller_config = json_object();
    if (s->ws == NULL || s->acc == NULL || s->seen_ns == NULL || s->controller_config == NULL)
        return PH_ERR_SYS;
    for (uint32_t i = 0; i < ctl->seg->slots; i++) s->acc[i].role = -1;
    for (uint32_t b = 0; b < SWARM_WHEEL; b++) s->wheel[b] = SWARM_NO_LINK;
    s->wheel_next = now >> SWARM_WHEEL_SHIFT;
    /* Whatever the table already holds is visited by the first tick. */
    for (uint32_t i = 0; i < ctl->seg->slots; i++)
        if (ctl->w[i].tracked) ctl_mark_dirty(ctl, i);
    s->status = SW_NEW;
    s->started_real_ns = ph_real_ns();
    s->started_mono_ns = now;
    s->full_due = true; /* status-full on startup */
    s->delta_due = true;
    desired_init(&s->desired);
    if (ph_cidset_init(&s->seen, SWARM_SEEN_CIDS) != 0) return PH_ERR_SYS;
    s->undelivered = calloc(SWARM_UNDELIVERED_MAX, sizeof *s->undelivered);
    if (s->undelivered == NULL) return PH_ERR_SYS;
    refresh_controller_config(s);
    return PH_OK;
}

static void pending_release(struct swarm_pending *p)
{
    free(p->targets);
    for (uint32_t i = 0; i < p->nextra; i++) free(p->extra[i]);
    free(p->extra);
    json_decref(p->signal);
    memset(p, 0, sizeof *p);
}

void swarm_destroy(struct swarm *s)
{
    for (uint32_t i = 0; i < SWARM_MAX_PENDING; i++) pending_release(&s->pending[i]);
    for (uint32_t i = 0; i < s->plan.nsteps; i++) json_decref(s->plan.steps[i].patch);
    json_decref(s->controller_config);
    desired_clear(&s->desired);
    ph_cidset_free(&s->seen);
    for (uint32_t i = 0; s->undelivered != NULL && i < s->undel_n; i++)
        json_decref(s->undelivered[(s->undel_head + i) % SWARM_UNDELIVERED_MAX]);
    free(s->undelivered);
    s->undelivered = NULL;
    s->undel_n = 0;
    free(s->ws);
    free(s->acc);
    free(s->seen_ns);
    s->ws = NULL;
    s->acc = NULL;
    s->seen_ns = NULL;
}

void swarm_set_roles(struct swarm *s, const struct swarm_role *roles, uint32_t n)
{
    s->nroles = n < SWARM_MAX_ROLES ? n : SWARM_MAX_ROLES;
    if (s->nroles > 0) memcpy(s->roles, roles, s->nroles * sizeof *roles);
    refresh_controller_config(s);
    state_changed(s);
}

void swarm_on_bridge(struct swarm *s)
{
    s->full_due = true;
    if (s->finished) {
        /* The previous bridge may have read the final documents and died
         * before publishing them: the new one gets them again. */
        s->finished = false;
        s->final_stage = 0;
    }
}

/* ---- commands to workers ---------------------------------------------- */

enum target_kind { T_NOT_US, T_CONTROLLER, T_SWARM, T_ROLE, T_INSTANCE };

static bool worker_matches(const struct ctl_worker *w, enum target_kind tk, const char *role,
                           const char *instance)
{
    if (!w->tracked || w->quarantine != PH_Q_NONE) return false;
    switch (tk) {
    case T_CONTROLLER:
    case T_SWARM: return true;
    case T_ROLE: return strcmp(w->role, role) == 0;
    case T_INSTANCE:
        return strcmp(w->instance, instance) == 0 && (role[0] == '\0' || strcmp(w->role, role) == 0);
    default: return false;
    }
}

static struct swarm_pending *pending_alloc(struct swarm *s)
{
    for (uint32_t i = 0; i < SWARM_MAX_PENDING; i++)
        if (!s->pending[i].used) return &s->pending[i];
    return NULL;
}

static const char *success_status(const struct swarm_pending *p)
{
    if (strcmp(p->type, "swarm-start") == 0) return "Running";
    if (strcmp(p->type, "swarm-stop") == 0) return "Stopped";
    if (strcmp(p->type, "swarm-remove") == 0) return "Removed";
    return "applied";
}

static void finish_pending(struct swarm *s, struct swarm_pending *p, uint64_t now)
{
    uint32_t failed = 0;
    for (uint32_t i = 0; i < p->ntargets; i++) failed += !p->targets[i].ok;
    const bool ok = failed == 0 && p->failure[0] == '\0';
    char msg[320];
    if (ok) {
        if (p->lifecycle) s->status = p->on_success;
        if (p->full_after) s->full_due = true;
        snprintf(msg, sizeof msg, "applied to %u worker(s)", p->ntargets);
    } else {
        if (p->lifecycle) s->status = SW_FAILED;
        if (p->ntargets == 0)
            snprintf(msg, sizeof msg, "%s", p->failure);
        else
            snprintf(msg, sizeof msg, "%s%s%u of %u worker(s) did not apply it", p->failure,
                     p->failure[0] ? "; " : "", failed, p->ntargets);
        char amsg[400];
        if (p->join_sync)
            snprintf(amsg, sizeof amsg, "a joining worker did not take the swarm's configuration: "
                     "%s", msg);
        else
            snprintf(amsg, sizeof amsg, "%s failed: %s", p->type, msg);
        controller_alert(s, "error", "command.failed", amsg);
    }
    if (p->lifecycle) state_changed(s);
    /* Timeouts may pass; a refusal by the worker will not. */
    bool retryable = !ok && strstr(p->failure, "timed out") != NULL;
    struct outcome o = {.type = p->type,
                        .role = p->scope_role,
                        .instance = p->scope_instance,
                        .cid = p->cid,
                        .ikey = p->ikey,
                        .status = ok ? success_status(p) : "failed",
                        .enabled = p->enabled_known ? p->enabled : -1,
                        .retryable = ok ? -1 : retryable,
                        .message = msg};
    emit_outcome(s, &o, now);
    /* Each further attempt answers from what the first stored. */
    o.replay = true;
    for (uint32_t i = 0; i < p->nextra; i++) {
        o.cid = p->extra[i];
        emit_outcome(s, &o, now);
    }
    pending_release(p);
}

/* Sends `cmd` (with an optional JSON patch) to every matching worker and
 * records a pending command whose outcome goes out once all have acked. */
static void start_command(struct swarm *s, struct swarm_pending *proto, enum target_kind tk,
                          const char *role, const char *instance, uint16_t cmd,
                          const json_t *patch, uint64_t now)
{
    struct swarm_pending *p = pending_alloc(s);
    if (p == NULL) {
        struct outcome o = {proto->type, proto->scope_role, proto->scope_instance, proto->cid,
                            proto->ikey, "failed", -1, 1, "controller busy: too many commands "
                                                          "in flight", false, 0};
        emit_outcome(s, &o, now);
        return;
    }
    *p = *proto;
    p->used = true;
    json_incref(p->signal); /* borrowed in proto, owned by the pending command */
    p->deadline_ns = now + s->cfg.cmd_timeout_ns;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    if (patch != NULL) {
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        ph_json_pack(&pk, patch, false);
    }
    struct ctl *c = s->ctl;
    const uint32_t room = c->seg->command_ring / 2 - PH_RING_HDR - 64; /* token and framing */
    if (patch != NULL && sb.size > room) {
        /* It could never reach a worker: say so rather than time out. */
        snprintf(p->failure, sizeof p->failure, "the patch packs to %zu bytes; the workers' "
                 "command rings take at most %u (controller --command-ring)", sb.size, room);
        msgpack_sbuffer_destroy(&sb);
        finish_pending(s, p, now);
        return;
    }
    p->targets = calloc(c->live + 1, sizeof *p->targets);
    for (uint32_t i = 0; p->targets != NULL && i < c->seg->slots && p->ntargets < c->live; i++) {
        struct ctl_worker *w = &c->w[i];
        if (!worker_matches(w, tk, role, instance)) continue;
        struct swarm_target *t = &p->targets[p->ntargets++];
        t->slot = i;
        t->word = w->word;
        t->token = ctl_send_command(c, i, cmd, patch ? (const uint8_t *)sb.data : NULL,
                                    patch ? sb.size : 0);
        if (t->token == 0) t->done = true; /* command ring full: counts as not applied */
    }
    msgpack_sbuffer_destroy(&sb);
    if (p->targets == NULL) snprintf(p->failure, sizeof p->failure, "out of memory");
    bool all_done = true;
    for (uint32_t i = 0; i < p->ntargets; i++) all_done &= p->targets[i].done;
    if (all_done) finish_pending(s, p, now);
}

void swarm_on_ack(struct swarm *s, struct ctl_worker *w, const struct ph_rec_ack *a, uint64_t now)
{
    for (uint32_t i = 0; i < SWARM_MAX_PENDING; i++) {
        struct swarm_pending *p = &s->pending[i];
        if (!p->used) continue;
        bool all_done = true, hit = false;
        for (uint32_t k = 0; k < p->ntargets; k++) {
            struct swarm_target *t = &p->targets[k];
            if (!t->done && t->slot == w->index && t->word == w->word && t->token == a->token) {
                t->done = true;
                t->ok = a->ok;
                hit = true;
                if (!a->ok)
                    snprintf(p->failure, sizeof p->failure, "%.63s refused: %.180s",
                             w->instance, a->message);
                /* A config-update applied to a worker is followed by its
                 * status-full (CONTRACT.md §3). */
                if (a->ok && strcmp(p->type, "config-update") == 0)
                    swarm_emit_worker_full(s, w, NULL, now);
            }
            all_done &= t->done;
        }
        if (hit) {
            if (all_done) finish_pending(s, p, now);
            return;
        }
    }
}

/* ---- worker lifecycle hooks ------------------------------------------ */

/* Sends a joining worker the configuration the swarm asked of its scope
 * (enabled flag and patches in force), as an internal config-update: no
 * outcome, an alert when the worker refuses it, its status-full after. */
static void join_sync(struct swarm *s, struct ctl_worker *w, uint64_t now)
{
    json_t *patch = desired_for(&s->desired, w->role, w->instance);
    if (patch == NULL) return;
    struct swarm_pending proto = {0};
    snprintf(proto.type, sizeof proto.type, "config-update");
    proto.join_sync = true;
    start_command(s, &proto, T_INSTANCE, w->role, w->instance, PH_CMD_CONFIG_PATCH, patch, now);
    s->join_syncs++;
    ph_info("worker %s/%s joined: sent the swarm's configuration (%zu key(s))", w->role,
            w->instance, json_object_size(patch));
    journal(s, json_pack("{s:s, s:s, s:s, s:o}", "event", "resync", "role", w->role,
                         "instance", w->instance, "patch", redacted(patch)));
    json_decref(patch);
}

void swarm_on_joined(struct swarm *s, struct ctl_worker *w, bool sync, uint64_t now)
{
    for (uint32_t i = 0; i < SWARM_MAX_GHOSTS; i++) {
        struct swarm_ghost *g = &s->ghosts[i];
        if (g->used && strcmp(g->role, w->role) == 0 && strcmp(g->instance, w->instance) == 0)
            g->used = false; /* the same worker is back */
    }
    memset(&s->ws[w->index], 0, sizeof s->ws[w->index]);
    s->ws[w->index].word = w->word;
    journal(s, json_pack("{s:s, s:s, s:s, s:s, s:i, s:i}", "event", "health", "change", "joined",
                         "role", w->role, "instance", w->instance, "pid", (int)w->pid, "slot",
                         (int)w->index));
    if (sync && w->quarantine == PH_Q_NONE) join_sync(s, w, now);
    if (!sync) {
        s->ws[w->index].sync_check = true;
        s->ws[w->index].sync_check_since = now;
    }
}

/* Does the worker's reported config hold every value the swarm wants of it? */
static bool config_matches(const struct ctl_worker *w, const json_t *want)
{
    if (w->config.len == 0) return false;
    msgpack_zone zone;
    msgpack_zone_init(&zone, 2048);
    msgpack_object o;
    char err[128];
    json_t *have = NULL;
    if (ph_mp_decode(w->config.data, w->config.len, true, &zone, &o, err, sizeof err) == PH_OK)
        have = ph_mp_to_json(&o);
    msgpack_zone_destroy(&zone);
    bool same = have != NULL;
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)want, k, v)
    {
        if (!same) break;
        /* Secrets never appear in a reported config: they cannot be compared. */
        if (ph_key_is_secret(k)) continue;
        same = json_equal(json_object_get(have, k), v);
    }
    json_decref(have);
    return same;
}

/* An inherited worker whose config has arrived (or did not in time): sent
 * the swarm's config only when it differs from what the worker reports. */
static void sync_check(struct swarm *s, struct ctl_worker *w, uint64_t now)
{
    struct swarm_wstate *ws = &s->ws[w->index];
    /* The join hook may stamp a moment later than the tick's clock. */
    if (w->config.len == 0 &&
        (now < ws->sync_check_since || now - ws->sync_check_since < SWARM_SYNC_CHECK_NS))
        return;
    ws->sync_check = false;
    json_t *want = desired_for(&s->desired, w->role, w->instance);
    if (want == NULL) return;
    const bool same = config_matches(w, want);
    json_decref(want);
    if (!same && w->quarantine == PH_Q_NONE) join_sync(s, w, now);
}

void swarm_on_left(struct swarm *s, struct ctl_worker *w, bool dead, uint64_t now)
{
    /* Commands waiting for this worker: a clean exit after a stop counts as
     * done, anything else as not applied. */
    for (uint32_t i = 0; i < SWARM_MAX_PENDING; i++) {
        struct swarm_pending *p = &s->pending[i];
        if (!p->used) continue;
        bool all_done = true;
        for (uint32_t k = 0; k < p->ntargets; k++) {
            struct swarm_target *t = &p->targets[k];
            if (!t->done && t->slot == w->index && t->word == w->word) {
                t->done = true;
                t->ok = !dead && strcmp(p->type, "swarm-remove") == 0;
                if (!t->ok)
                    snprintf(p->failure, sizeof p->failure, "%s exited before applying it",
                             w->instance);
            }
            all_done &= t->done;
        }
        if (all_done && p->ntargets > 0) finish_pending(s, p, now);
    }
    if (dead) {
        struct swarm_ghost *slot = NULL;
        for (uint32_t i = 0; i < SWARM_MAX_GHOSTS; i++) {
            struct swarm_ghost *g = &s->ghosts[i];
            if (g->used && strcmp(g->role, w->role) == 0 && strcmp(g->instance, w->instance) == 0) {
                slot = g;
                break;
            }
            if (!g->used && slot == NULL) slot = g;
        }
        if (slot != NULL) {
            *slot = (struct swarm_ghost){.used = true,
                                         .pid = w->pid,
                                         .enabled = w->have_status &&
                                                    (w->st.flags & PH_STATUS_ENABLED),
                                         .io_in = w->st.io_in,
                                         .io_out = w->st.io_out,
                                         .last_seen_ns = w->last_seen_ns ? w->last_seen_ns
                                                                         : w->tracked_mono_ns,
                                         .died_ns = now};
            memcpy(slot->role, w->role, sizeof slot->role);
            memcpy(slot->instance, w->instance, sizeof slot->instance);
            memcpy(slot->location, w->location, sizeof slot->location);
            memcpy(slot->transport, w->transport, sizeof slot->transport);
        }
        char msg[256];
        snprintf(msg, sizeof msg, "worker %s (role %s, pid %d) exited unexpectedly", w->instance,
                 w->role, (int)w->pid);
        emit_alert(s, w->role, w->instance, s->cfg.instance, "warn", "worker.died", msg, NULL);
    }
    journal(s, json_pack("{s:s, s:s, s:s, s:s, s:i}", "event", "health", "change",
                         dead ? "died" : "left", "role", w->role, "instance", w->instance, "pid",
                         (int)w->pid));
    memset(&s->ws[w->index], 0, sizeof s->ws[w->index]);
    s->members_changed = true;
}

void swarm_on_alert(struct swarm *s, struct ctl_worker *w, const struct ph_rec_alert *a)
{
    /* A worker repeating one code within 5 s is flooding, not informing. */
    struct swarm_wstate *ws = &s->ws[w->index];
    const uint64_t now = ph_mono_ns();
    if (strcmp(ws->last_alert_code, a->code) == 0 && now - ws->last_alert_ns < 5 * NS_PER_S) {
        ws->alerts_suppressed++;
        return;
    }
    snprintf(ws->last_alert_code, sizeof ws->last_alert_code, "%s", a->code);
    ws->last_alert_ns = now;
    json_t *ctx = json_pack("{s:s, s:s}", "role", w->role, "instance", w->instance);
    if (ws->alerts_suppressed > 0) {
        json_object_set_new(ctx, "suppressed", json_integer(ws->alerts_suppressed));
        ws->alerts_suppressed = 0;
    }
    emit_alert(s, w->role, w->instance, w->instance, a->level, a->code, a->message, ctx);
    json_decref(ctx);
}

/* ---- signals ---------------------------------------------------------- */

struct sig {
    char type[32];
    char swarm[PH_ID_MAX];
    char role[PH_ID_MAX];
    char instance[PH_ID_MAX];
    char origin[PH_ID_MAX * 2];
    char cid[256];
    char ikey[256];
    json_t *data;
    const json_t *entry; /* the journal form (borrowed), kept by a pending command */
};

static bool opt_str(const msgpack_object *map, const char *k, char *buf, size_t n)
{
    const msgpack_object *o = ph_mp_map_get(map, k);
    if (o == NULL || o->type == MSGPACK_OBJECT_NIL) {
        buf[0] = '\0';
        return true;
    }
    return ph_mp_str(o, buf, n);
}

static bool parse_signal(const uint8_t *doc, size_t len, struct sig *g, char *err, size_t n)
{
    memset(g, 0, sizeof *g);
    msgpack_zone zone;
    msgpack_zone_init(&zone, 4096);
    msgpack_object o;
    bool ok = ph_mp_decode(doc, len, true, &zone, &o, err, n) == PH_OK &&
              ph_mp_str(ph_mp_map_get(&o, PH_DOC_TYPE), g->type, sizeof g->type) &&
              opt_str(&o, PH_DOC_SWARM, g->swarm, sizeof g->swarm) &&
              opt_str(&o, PH_DOC_ROLE, g->role, sizeof g->role) &&
              opt_str(&o, PH_DOC_INSTANCE, g->instance, sizeof g->instance) &&
              opt_str(&o, PH_DOC_ORIGIN, g->origin, sizeof g->origin) &&
              ph_mp_str(ph_mp_map_get(&o, PH_DOC_CID), g->cid, sizeof g->cid) && g->cid[0] &&
              opt_str(&o, PH_DOC_IKEY, g->ikey, sizeof g->ikey);
    const msgpack_object *data = ph_mp_map_get(&o, PH_DOC_DATA);
    if (ok && data != NULL && data->type == MSGPACK_OBJECT_MAP) g->data = ph_mp_to_json(data);
    if (ok && g->data == NULL) g->data = json_object();
    if (!ok && err[0] == '\0') snprintf(err, n, "signal document lacks type or correlationId");
    msgpack_zone_destroy(&zone);
    return ok;
}

static enum target_kind classify(const struct swarm *s, const struct sig *g)
{
    if (g->swarm[0] != '\0' && strcmp(g->swarm, s->cfg.swarm_id) != 0) return T_NOT_US;
    if (strcmp(g->role, "swarm-controller") == 0)
        return g->instance[0] == '\0' || strcmp(g->instance, s->cfg.instance) == 0 ? T_CONTROLLER
                                                                                  : T_NOT_US;
    if (g->swarm[0] == '\0' && g->role[0] == '\0') return T_NOT_US; /* fleet-wide workers: not ours to answer */
    if (g->role[0] == '\0' && g->instance[0] == '\0') return T_SWARM;
    if (g->instance[0] == '\0') return T_ROLE;
    return T_INSTANCE;
}

/* `enabled` of a config-update: data.enabled or data.data.enabled, a bool or
 * the strings "true"/"false". Returns -1 when absent, -2 when malformed. */
static int enabled_flag(const json_t *data)
{
    const json_t *v = json_object_get(data, "enabled");
    const json_t *inner = json_object_get(data, "data");
    if (v == NULL && json_is_object(inner)) v = json_object_get(inner, "enabled");
    if (v == NULL) return -1;
    if (json_is_boolean(v)) return json_is_true(v);
    const char *str = json_string_value(v);
    if (str != NULL && strcmp(str, "true") == 0) return 1;
    if (str != NULL && strcmp(str, "false") == 0) return 0;
    return -2;
}

/* The patch of a config-update: data.data when it is an object (upstream
 * nests it), else data itself; `enabled` normalised to a boolean. */
static json_t *config_patch(const json_t *data, int enabled)
{
    const json_t *inner = json_object_get(data, "data");
    json_t *patch = json_deep_copy(json_is_object(inner) ? inner : data);
    if (enabled >= 0) json_object_set_new(patch, "enabled", json_boolean(enabled));
    return patch;
}

static bool idem_replay(struct swarm *s, const struct sig *g, const char *role,
                        const char *instance, uint64_t now)
{
    if (g->ikey[0] == '\0') return false;
    for (uint32_t i = 0; i < SWARM_MAX_PENDING; i++) {
        struct swarm_pending *p = &s->pending[i];
        if (p->used && strcmp(p->ikey, g->ikey) == 0 && strcmp(p->type, g->type) == 0) {
            /* Same action still in flight: answer this attempt when it ends,
             * with the outcome the first attempt gets. */
            char *cid = NULL;
            if (p->nextra == p->extra_cap && p->extra_cap < SWARM_MAX_EXTRA) {
                uint32_t cap = p->extra_cap ? p->extra_cap * 2 : 8;
                char **n = realloc(p->extra, cap * sizeof *n);
                if (n != NULL) {
                    p->extra = n;
                    p->extra_cap = cap;
                }
            }
            if (p->nextra < p->extra_cap) cid = strdup(g->cid);
            if (cid != NULL) {
                p->extra[p->nextra++] = cid;
            } else {
                /* Too many attempts waiting on one action: this one is
                 * answered now, so that no attempt is left without one. */
                struct outcome o = {g->type, role, instance, g->cid, g->ikey, "failed", -1, 1,
                                    "too many attempts of this idempotencyKey in flight; retry "
                                    "once the first completes", true, 0};
                emit_outcome(s, &o, now);
            }
            return true;
        }
    }
    for (uint32_t i = 0; i < SWARM_IDEM_CACHE; i++) {
        struct swarm_idem *e = &s->idem[i];
        if (!e->used || strcmp(e->ikey, g->ikey) != 0 || strcmp(e->type, g->type) != 0) continue;
        struct outcome o = {g->type, role, instance, g->cid, g->ikey, e->status,
                            e->enabled_known ? e->enabled : -1,
                            strcmp(e->status, "failed") == 0 ? e->retryable : -1,
                            "replayed idempotencyKey: already applied, not applied again", true, 0};
        journal(s, json_pack("{s:s, s:s, s:s, s:s}", "event", "replay", "type", g->type,
                             "idempotencyKey", g->ikey, "correlationId", g->cid));
        emit_outcome(s, &o, now);
        return true;
    }
    return false;
}

static void fail_signal(struct swarm *s, const struct sig *g, const char *role,
                        const char *instance, const char *why, uint64_t now)
{
    struct outcome o = {g->type, role, instance, g->cid, g->ikey, "failed", -1, 0, why, false, 0};
    emit_outcome(s, &o, now);
    char msg[400];
    snprintf(msg, sizeof msg, "%s refused: %s", g->type, why);
    controller_alert(s, "warn", "command.failed", msg);
}

static void do_status_request(struct swarm *s, const struct sig *g, enum target_kind tk,
                              uint64_t now)
{
    if (tk == T_CONTROLLER || tk == T_SWARM) {
        /* Each request gets its own status-full carrying its id; when more
         * arrive than can wait, the oldest waiting one is answered
         * without its id rather than the newest being ignored. */
        if (s->nfull_cids == SWARM_MAX_FULL_CIDS) {
            memmove(s->full_cids[0], s->full_cids[1],
                    (SWARM_MAX_FULL_CIDS - 1) * sizeof s->full_cids[0]);
            s->nfull_cids--;
            s->full_due = true;
        }
        snprintf(s->full_cids[s->nfull_cids++], sizeof s->full_cids[0], "%s", g->cid);
    }
    if (tk == T_CONTROLLER) return;
    struct ctl *c = s->ctl;
    for (uint32_t i = 0; i < c->seg->slots; i++)
        if (worker_matches(&c->w[i], tk, g->role, g->instance))
            swarm_emit_worker_full(s, &c->w[i], g->cid, now);
}

static bool parse_roles(const json_t *arr, struct swarm_role *roles, uint32_t *n, char *err,
                        size_t errlen)
{
    *n = 0;
    size_t i;
    const json_t *r;
    json_array_foreach(arr, i, r)
    {
        const char *role = json_string_value(json_object_get(r, "role"));
        const json_t *cnt = json_object_get(r, "count");
        if (role == NULL || ph_ident_check("role", role, err, errlen) != PH_OK) {
            if (role == NULL) snprintf(err, errlen, "roles[%zu].role missing", i);
            return false;
        }
        if (cnt != NULL && (!json_is_integer(cnt) || json_integer_value(cnt) < 0 ||
                            json_integer_value(cnt) > 100000)) {
            snprintf(err, errlen, "roles[%zu].count must be an integer in 0..100000", i);
            return false;
        }
        if (*n == SWARM_MAX_ROLES) {
            snprintf(err, errlen, "more than %d roles", SWARM_MAX_ROLES);
            return false;
        }
        snprintf(roles[*n].role, sizeof roles[*n].role, "%s", role);
        roles[*n].count = cnt ? (uint32_t)json_integer_value(cnt) : 1;
        (*n)++;
    }
    return true;
}

static bool parse_plan(struct swarm *s, const json_t *data, char *err, size_t errlen)
{
    const json_t *steps = json_object_get(data, "steps");
    if (!json_is_array(steps) || json_array_size(steps) == 0 ||
        json_array_size(steps) > SWARM_MAX_PLAN_STEPS) {
        snprintf(err, errlen, "data.steps must be an array of 1..%d steps", SWARM_MAX_PLAN_STEPS);
        return false;
    }
    struct swarm_plan next = {0};
    size_t i;
    const json_t *st;
    json_array_foreach(steps, i, st)
    {
        struct swarm_plan_step *p = &next.steps[next.nsteps];
        const char *id = json_string_value(json_object_get(st, "id"));
        const json_t *at = json_object_get(st, "atMs");
        if (at == NULL) at = json_object_get(st, "offsetMs");
        const char *type = json_string_value(json_object_get(st, "type"));
        const json_t *patch = json_object_get(st, "data");
        if (patch == NULL) patch = json_object_get(st, "patch");
        const char *role = json_string_value(json_object_get(st, "role"));
        const char *inst = json_string_value(json_object_get(st, "instance"));
        if (id == NULL || strlen(id) >= sizeof p->id || !json_is_number(at) ||
            json_number_value(at) < 0 || json_number_value(at) > 7 * 86400e3 ||
            (type != NULL && strcmp(type, "config-update") != 0) || !json_is_object(patch) ||
            (role && ph_ident_check("role", role, err, errlen) != PH_OK) ||
            (inst && ph_ident_check("instance", inst, err, errlen) != PH_OK)) {
            snprintf(err, errlen, "steps[%zu] needs id, atMs >= 0, data (an object) and "
                     "optionally type config-update, role, instance", i);
            for (uint32_t k = 0; k < next.nsteps; k++) json_decref(next.steps[k].patch);
            return false;
        }
        snprintf(p->id, sizeof p->id, "%s", id);
        p->offset_ns = (uint64_t)(json_number_value(at) * 1e6);
        snprintf(p->role, sizeof p->role, "%s", role ? role : "");
        snprintf(p->instance, sizeof p->instance, "%s", inst ? inst : "");
        p->patch = json_deep_copy(patch);
        next.nsteps++;
    }
    const json_t *runs = json_object_get(data, "runs");
    next.total_runs = json_is_integer(runs) && json_integer_value(runs) > 0
                          ? (uint32_t)json_integer_value(runs)
                          : 1;
    for (uint32_t k = 0; k < s->plan.nsteps; k++) json_decref(s->plan.steps[k].patch);
    s->plan = next;
    return true;
}

/* Outcome scope: the controller for lifecycle and controller-addressed
 * signals, else the workers the signal addressed. */
static void outcome_scope(const struct swarm *s, const struct sig *g, enum target_kind tk,
                          const char **role, const char **instance)
{
    const bool ctl_scope = tk == T_CONTROLLER || strncmp(g->type, "swarm-", 6) == 0;
    *role = ctl_scope ? "swarm-controller" : g->role;
    *instance = ctl_scope ? s->cfg.instance : g->instance;
}

/* The journal form of a signal: its ids, scope and data (bounded, secrets
 * removed), and whether that data is complete enough to apply it again. */
static json_t *signal_entry(const struct sig *g)
{
    bool complete = false;
    json_t *jd = journal_data(g->data, &complete);
    return json_pack("{s:s, s:s, s:o, s:o, s:o, s:s, s:o, s:s, s:o, s:b}", "event", "signal",
                     "type", g->type, "swarm", jstr_or_null(g->swarm), "role", jstr_or_null(g->role),
                     "instance", jstr_or_null(g->instance), "correlationId", g->cid,
                     "idempotencyKey", jstr_or_null(g->ikey), "origin", g->origin, "data", jd,
                     "dataComplete", complete);
}

/* Applies a signal taken in (a new attempt: its correlationId was not seen
 * before, or it is being applied again after a controller restart). */
static void apply_signal(struct swarm *s, const struct sig *g, uint64_t now)
{
    char err[256] = "";
    enum target_kind tk = classify(s, g);
    if (tk == T_NOT_US) {
        /* Not ours to answer (another controller's, or fleet-wide to workers):
         * recorded as settled so a restart does not take it up again. */
        journal(s, json_pack("{s:s, s:s}", "event", "ignored", "correlationId", g->cid));
        return;
    }
    const char *orole, *oinst;
    outcome_scope(s, g, tk, &orole, &oinst);

    if (strcmp(g->type, "status-request") == 0) {
        do_status_request(s, g, tk, now);
        return;
    }
    if (idem_replay(s, g, orole, oinst, now)) {
        return;
    }
    struct swarm_pending proto = {0};
    snprintf(proto.type, sizeof proto.type, "%s", g->type);
    snprintf(proto.cid, sizeof proto.cid, "%s", g->cid);
    snprintf(proto.ikey, sizeof proto.ikey, "%s", g->ikey);
    snprintf(proto.scope_role, sizeof proto.scope_role, "%s", orole ? orole : "");
    snprintf(proto.scope_instance, sizeof proto.scope_instance, "%s", oinst ? oinst : "");
    proto.signal = (json_t *)g->entry;

    if (strcmp(g->type, "config-update") == 0) {
        int en = enabled_flag(g->data);
        if (en == -2) {
            fail_signal(s, g, orole, oinst, "enabled must be true or false", now);
        } else {
            json_t *patch = config_patch(g->data, en);
            proto.enabled_known = en >= 0;
            proto.enabled = en > 0;
            if (tk == T_CONTROLLER) {
                /* Controller scope toggles the whole swarm's workloads; other
                 * keys are controller settings kept in its config. */
                if (en >= 0) {
                    s->workloads_enabled = en;
                    want_enabled(s, en);
                    if (s->status == SW_READY || s->status == SW_RUNNING ||
                        s->status == SW_STOPPED) {
                        proto.lifecycle = true;
                        proto.on_success = en ? SW_RUNNING : SW_STOPPED;
                    }
                }
                json_t *rest = json_deep_copy(patch);
                json_object_del(rest, "enabled");
                json_object_update(s->controller_config, rest);
                json_decref(rest);
                refresh_controller_config(s);
                if (en >= 0) {
                    json_t *toggle = json_pack("{s:b}", "enabled", en);
                    start_command(s, &proto, T_SWARM, "", "", PH_CMD_CONFIG_PATCH, toggle, now);
                    json_decref(toggle);
                } else {
                    /* Controller settings only: nothing for the workers. */
                    struct outcome o = {g->type, orole, oinst, g->cid, g->ikey, "applied", -1, -1,
                                        "controller settings updated", false, 0};
                    emit_outcome(s, &o, now);
                }
            } else {
                bool any = false;
                for (uint32_t i = 0; i < s->ctl->seg->slots && !any; i++)
                    any = worker_matches(&s->ctl->w[i], tk, g->role, g->instance);
                if (!any)
                    fail_signal(s, g, orole, oinst, "no live worker matches the scope", now);
                else {
                    /* In force for workers of this scope that join later. */
                    remember(s, tk == T_SWARM ? "" : g->role, tk == T_INSTANCE ? g->instance : "",
                             patch);
                    state_changed(s);
                    start_command(s, &proto, tk, g->role, g->instance, PH_CMD_CONFIG_PATCH, patch,
                                  now);
                }
            }
            json_decref(patch);
        }
    } else if (strcmp(g->type, "swarm-start") == 0 || strcmp(g->type, "swarm-stop") == 0) {
        const bool start = g->type[6] == 's' && g->type[7] == 't' && g->type[8] == 'a';
        if (s->status == SW_REMOVED) {
            fail_signal(s, g, orole, oinst, "the swarm was removed", now);
        } else {
            s->workloads_enabled = start;
            want_enabled(s, start);
            s->status = start ? SW_STARTING : SW_STOPPING;
            proto.lifecycle = true;
            proto.on_success = start ? SW_RUNNING : SW_STOPPED;
            proto.full_after = start;
            proto.enabled_known = true;
            proto.enabled = start;
            json_t *patch = json_pack("{s:b}", "enabled", start);
            start_command(s, &proto, T_SWARM, "", "", PH_CMD_CONFIG_PATCH, patch, now);
            json_decref(patch);
            refresh_controller_config(s);
        }
    } else if (strcmp(g->type, "swarm-remove") == 0) {
        s->workloads_enabled = false;
        want_enabled(s, false);
        s->status = SW_STOPPING;
        proto.lifecycle = true;
        proto.on_success = SW_REMOVED;
        /* Nothing is desired of a removed swarm, and its plan stops. */
        swarm_set_roles(s, NULL, 0);
        s->plan.active = false;
        start_command(s, &proto, T_SWARM, "", "", PH_CMD_STOP, NULL, now);
    } else if (strcmp(g->type, "swarm-template") == 0) {
        struct swarm_role roles[SWARM_MAX_ROLES];
        uint32_t n = 0;
        const json_t *arr = json_object_get(g->data, "roles");
        if (!json_is_array(arr)) arr = json_object_get(g->data, "bees");
        if (s->status == SW_REMOVED) {
            /* Removal ends the swarm (its controller stops): a new template
             * is a new swarm, started from a swarm file. */
            fail_signal(s, g, orole, oinst, "the swarm was removed; start a new one", now);
        } else if (!json_is_array(arr) || !parse_roles(arr, roles, &n, err, sizeof err)) {
            fail_signal(s, g, orole, oinst, err[0] ? err : "data.roles must be an array", now);
        } else {
            swarm_set_roles(s, roles, n);
            if (s->status == SW_NEW) s->status = SW_READY;
            state_changed(s);
            struct outcome o = {g->type, orole, oinst, g->cid, g->ikey, "Ready", -1, -1, NULL, false, 0};
            emit_outcome(s, &o, now);
        }
    } else if (strcmp(g->type, "swarm-plan") == 0) {
        if (!parse_plan(s, g->data, err, sizeof err)) {
            fail_signal(s, g, orole, oinst, err, now);
        } else {
            s->plan.active = true;
            s->plan.started_ns = now;
            s->plan_gen++; /* observers learn of the new plan in the next delta */
            struct outcome o = {g->type, orole, oinst, g->cid, g->ikey, "applied", -1, -1, NULL, false, 0};
            emit_outcome(s, &o, now);
        }
    } else {
        fail_signal(s, g, orole, oinst, "unknown signal type", now);
    }
}


void swarm_on_signal(struct swarm *s, const uint8_t *doc, size_t len, uint64_t now)
{
    struct sig g;
    char err[256] = "";
    if (s->finished) {
        /* The final documents went out: nothing may follow them, not even
         * an answer. The daemon stops taking signals by then; this guards
         * other callers. */
        ph_warn("signal refused: the swarm was removed and its controller is stopping");
        return;
    }
    if (!parse_signal(doc, len, &g, err, sizeof err)) {
        ph_warn("signal document refused: %s", err);
        json_decref(g.data);
        return;
    }
    /* Delivery is at least once (broker redelivery, a bridge re-forwarding
     * after a restart): a repeat of an attempt already taken in gets no
     * second answer and is not applied again. */
    if (ph_cidset_has(&s->seen, g.cid)) {
        s->duplicates++;
        ph_info("signal %s (correlationId %s) delivered again: already taken in, ignored", g.type,
                g.cid);
        journal(s, json_pack("{s:s, s:s, s:s}", "event", "duplicate", "type", g.type,
                             "correlationId", g.cid));
        json_decref(g.data);
        return;
    }
    ph_cidset_add(&s->seen, g.cid);
    json_t *entry = signal_entry(&g);
    journal(s, json_incref(entry));
    g.entry = entry;
    apply_signal(s, &g, now);
    json_decref(entry);
    json_decref(g.data);
}

/* ---- the tick --------------------------------------------------------- */

static void plan_tick(struct swarm *s, uint64_t now)
{
    struct swarm_plan *p = &s->plan;
    if (!p->active) return;
    const uint64_t elapsed = now - p->started_ns;
    uint32_t fired = 0;
    for (uint32_t i = 0; i < p->nsteps; i++) {
        struct swarm_plan_step *st = &p->steps[i];
        if (!st->fired && st->offset_ns <= elapsed) {
            st->fired = true;
            snprintf(p->last_step, sizeof p->last_step, "%s", st->id);
            enum target_kind tk = st->instance[0] ? T_INSTANCE : st->role[0] ? T_ROLE : T_SWARM;
            remember(s, st->role, st->instance, st->patch);
            state_changed(s);
            struct swarm_pending proto = {0};
            snprintf(proto.type, sizeof proto.type, "config-update");
            start_command(s, &proto, tk, st->role, st->instance, PH_CMD_CONFIG_PATCH, st->patch,
                          now);
            journal(s, json_pack("{s:s, s:s, s:I}", "event", "plan-step", "stepId", st->id,
                                 "elapsedMillis", (json_int_t)(elapsed / NS_PER_MS)));
        }
        fired += st->fired;
    }
    if (fired == p->nsteps) {
        p->runs_done++;
        if (p->runs_done < p->total_runs) {
            for (uint32_t i = 0; i < p->nsteps; i++) p->steps[i].fired = false;
            p->started_ns = now;
        } else {
            p->active = false;
        }
    }
}

/* ---- the tick's visits: incremental aggregate and timer wheel ---------- */

/* Index of `role` in the roles of the counted workers, adding it (or
 * reusing an entry no worker counts in any more); -1 when full. */
static int irole_slot(struct swarm *s, const char *role, uint64_t hash)
{
    int free_at = -1;
    for (uint32_t k = 0; k < s->niroles; k++) {
        struct swarm_role_sum *r = &s->iroles[k];
        if (r->hash == hash && strcmp(r->role, role) == 0) return (int)k;
        if (r->count == 0 && free_at < 0) free_at = (int)k;
    }
    if (free_at < 0) {
        if (s->niroles >= SWARM_MAX_ROLES) return -1;
        free_at = (int)s->niroles++;
    }
    struct swarm_role_sum *r = &s->iroles[free_at];
    memset(r, 0, sizeof *r);
    snprintf(r->role, sizeof r->role, "%s", role);
    r->hash = hash;
    return free_at;
}

static void acc_remove(struct swarm *s, struct swarm_acc *ac)
{
    if (!ac->counted) return;
    ac->counted = false;
    s->live--;
    if (ac->enabled) s->enabled--;
    if (ac->role < 0) s->unroled--;
    if (ac->role >= 0) {
        struct swarm_role_sum *r = &s->iroles[ac->role];
        r->count--;
        if (ac->enabled) r->enabled--;
        if (ac->healthy) r->tps -= ac->tps;
    }
    if (ac->healthy) {
        s->healthy--;
        if (ac->enabled) s->running--;
        s->in_hist[ac->io_in]--;
        s->out_hist[ac->io_out]--;
        s->tps -= ac->tps;
    }
}

/* The same sums swarm_aggregate makes for one worker. */
static void acc_add(struct swarm *s, struct swarm_acc *ac, const struct ctl_worker *w,
                    uint64_t now)
{
    struct swarm_wstate *ws = &s->ws[w->index];
    if (ws->role_word != w->word || ws->role_hash == 0) {
        ws->role_hash = swarm_role_hash(w->role);
        ws->role_word = w->word;
        ws->role_hint = -1;
    }
    ac->counted = true;
    ac->enabled = w->have_status && (w->st.flags & PH_STATUS_ENABLED);
    ac->healthy = swarm_worker_healthy(s, w, now);
    ac->io_in = w->st.io_in;
    ac->io_out = w->st.io_out;
    ac->tps = w->tps;
    /* The entry it counted in last time is nearly always still its role's:
     * the 64-bit hash confirms it without a string compare per visit. */
    if (ac->role < 0 || (uint32_t)ac->role >= s->niroles ||
        s->iroles[ac->role].hash != ws->role_hash)
        ac->role = (int16_t)irole_slot(s, w->role, ws->role_hash);
    s->live++;
    if (ac->enabled) s->enabled++;
    if (ac->role < 0) s->unroled++;
    if (ac->role >= 0) {
        struct swarm_role_sum *r = &s->iroles[ac->role];
        r->count++;
        if (ac->enabled) r->enabled++;
        if (ac->healthy) r->tps += ac->tps;
    }
    if (ac->healthy) {
        s->healthy++;
        if (ac->enabled) s->running++;
        s->in_hist[ac->io_in]++;
        s->out_hist[ac->io_out]++;
        s->tps += ac->tps;
    }
    s->seen_ns[w->index] = ac->healthy ? w->last_seen_ns : 0;
}

static void timer_unlink(struct swarm *s, uint32_t i)
{
    struct swarm_acc *ac = &s->acc[i];
    if (!ac->queued) return;
    if (ac->prev != SWARM_NO_LINK)
        s->acc[ac->prev].next = ac->next;
    else
        s->wheel[(ac->due_ns >> SWARM_WHEEL_SHIFT) % SWARM_WHEEL] = ac->next;
    if (ac->next != SWARM_NO_LINK) s->acc[ac->next].prev = ac->prev;
    ac->queued = false;
}

/* A deadline already past goes into the bucket the next tick starts with. */
static void timer_set(struct swarm *s, uint32_t i, uint64_t due)
{
    struct swarm_acc *ac = &s->acc[i];
    uint64_t abs = due >> SWARM_WHEEL_SHIFT;
    if (abs < s->wheel_next) {
        abs = s->wheel_next;
        due = abs << SWARM_WHEEL_SHIFT; /* its bucket stays the one unlink finds */
    }
    const uint32_t b = (uint32_t)(abs % SWARM_WHEEL);
    ac->due_ns = due;
    ac->prev = SWARM_NO_LINK;
    ac->next = s->wheel[b];
    if (ac->next != SWARM_NO_LINK) s->acc[ac->next].prev = i;
    s->wheel[b] = i;
    ac->queued = true;
}

/* Marks (in ctl's dirty bits) every worker whose deadline is at or before
 * `now`, walking only the buckets the clock passed since the last tick. */
static void timers_expire(struct swarm *s, uint64_t now)
{
    const uint64_t cur = now >> SWARM_WHEEL_SHIFT;
    uint64_t from = s->wheel_next <= cur ? s->wheel_next : cur;
    uint64_t n = cur - from + 1;
    if (n > SWARM_WHEEL) n = SWARM_WHEEL;
    for (uint64_t b = from; b < from + n; b++) {
        uint32_t i = s->wheel[b % SWARM_WHEEL];
        while (i != SWARM_NO_LINK) {
            const uint32_t next = s->acc[i].next;
            if (s->acc[i].due_ns <= now) {
                timer_unlink(s, i);
                ctl_mark_dirty(s->ctl, i);
            }
            i = next;
        }
    }
    /* The current bucket again next time: it may hold later deadlines of
     * this bucket's span. */
    s->wheel_next = cur;
}

/* When this worker next needs a visit although nothing arrives from it:
 * the first instant at which a rule below would decide differently. */
static uint64_t next_due(const struct swarm *s, const struct ctl_worker *w,
                         const struct swarm_wstate *ws, const struct swarm_acc *ac, uint64_t now)
{
    uint64_t due = UINT64_MAX;
#define DUE_AT(t)                                                                                \
    do {                                                                                         \
        const uint64_t t_ = (t);                                                                 \
        if (t_ < due) due = t_;                                                                  \
    } while (0)
    if (ac->healthy)
        DUE_AT(w->last_seen_ns + s->cfg.ttl_ns + 1); /* goes stale */
    else if (!ws->stale)
        DUE_AT(w->tracked_mono_ns + s->cfg.ttl_ns + 1); /* never reported: stale then */
    if (ws->stale && !ws->stale_requested) DUE_AT(now); /* the request found no room */
    if (w->tps != 0 && w->win_len > 0)
        DUE_AT(w->win[w->win_len - 1].t_ns + s->ctl->tps_window_ns + 1); /* rate falls to 0 */
    if (ws->sync_check) DUE_AT(ws->sync_check_since + SWARM_SYNC_CHECK_NS);
    if (!ws->full_sent && w->have_status)
        DUE_AT(w->io.len > 0 ? now : w->tracked_mono_ns + 250 * NS_PER_MS);
    if (ws->full_sent && s->cfg.worker_deltas) {
        if (ws->delta_due) DUE_AT(ws->last_delta_ns + s->cfg.worker_delta_ns);
        DUE_AT(ws->last_delta_ns + s->cfg.worker_heartbeat_ns);
    }
#undef DUE_AT
    return due;
}

/* One worker's per-tick rules. */
static void worker_rules(struct swarm *s, struct ctl_worker *w, struct swarm_wstate *ws,
                         uint64_t now)
{
    struct ctl *c = s->ctl;
    const uint32_t i = w->index;
    if (ws->sync_check) sync_check(s, w, now);
    /* tps is recomputed against now, so a worker that stops reporting
     * falls to 0 after the window instead of keeping its last rate; the
     * slot shows the same figure to tools (phctl shm-dump). */
    const uint64_t tps = ctl_worker_tps(w, now, c->tps_window_ns);
    if (tps != w->tps) {
        w->tps = tps;
        /* relaxed: a figure for tools, self-contained. */
        atomic_store_explicit(&ph_segment_slot(c->seg, i)->c_tps, tps, memory_order_relaxed);
    }
    const bool stale = !swarm_worker_healthy(s, w, now) && now - w->tracked_mono_ns > s->cfg.ttl_ns;
    if (stale != ws->stale) {
        ws->stale = stale;
        ws->delta_due = true;
        journal(s, json_pack("{s:s, s:s, s:s, s:s}", "event", "health", "change",
                             stale ? "stale" : "recovered", "role", w->role, "instance",
                             w->instance));
        if (!stale) ws->stale_requested = false;
    }
    if (stale && !ws->stale_requested) {
        /* A real status-request: the worker republishes everything. A
         * command ring that failed validation is never written: nothing
         * to retry on every tick. */
        ws->stale_requested =
            !w->command_ok || ctl_send_command(c, i, PH_CMD_STATUS_REQUEST, NULL, 0) != 0;
    }
    /* The join status-full waits for the first status (and a moment for
     * the io record that follows it). */
    if (!ws->full_sent && w->have_status &&
        (w->io.len > 0 || now - w->tracked_mono_ns >= 250 * NS_PER_MS)) {
        if (swarm_emit_worker_full(s, w, NULL, now)) {
            ws->full_sent = true;
            /* It joined, with its first status: the controller's full
             * lists it with real figures from now on. */
            s->members_changed = true;
            ws->sent_flags = w->st.flags;
            ws->sent_in = w->st.io_in;
            ws->sent_out = w->st.io_out;
            ws->last_delta_ns = now;
        }
        return;
    }
    if (!ws->full_sent || !s->cfg.worker_deltas) return;
    if (w->st.flags != ws->sent_flags || w->st.io_in != ws->sent_in ||
        w->st.io_out != ws->sent_out)
        ws->delta_due = true;
    const uint64_t since = now - ws->last_delta_ns;
    if ((ws->delta_due && since >= s->cfg.worker_delta_ns) ||
        since >= s->cfg.worker_heartbeat_ns) {
        if (swarm_emit_worker_delta(s, w, now)) {
            ws->delta_due = false;
            ws->sent_flags = w->st.flags;
            ws->sent_in = w->st.io_in;
            ws->sent_out = w->st.io_out;
            ws->last_delta_ns = now;
        }
    }
}

static void visit(struct swarm *s, uint32_t i, uint64_t now)
{
    struct swarm_acc *ac = &s->acc[i];
    struct ctl_worker *w = &s->ctl->w[i];
    s->visits++;
    acc_remove(s, ac);
    timer_unlink(s, i);
    if (!w->tracked) {
        s->seen_ns[i] = 0;
        return;
    }
    struct swarm_wstate *ws = &s->ws[i];
    if (ws->word != w->word) {
        memset(ws, 0, sizeof *ws);
        ws->word = w->word;
    }
    worker_rules(s, w, ws, now);
    acc_add(s, ac, w, now);
    const uint64_t due = next_due(s, w, ws, ac, now);
    if (due != UINT64_MAX) timer_set(s, i, due);
}

/* Visits, in slot order, every worker whose entry changed or whose next
 * deadline came; the bits are cleared as they are taken. */
static void workers_tick(struct swarm *s, uint64_t now)
{
    struct ctl *c = s->ctl;
    timers_expire(s, now);
    for (uint32_t wd = 0; wd < c->dirty_words; wd++) {
        uint64_t bits = c->dirty[wd];
        if (bits == 0) continue;
        c->dirty[wd] = 0;
        while (bits != 0) {
            const uint32_t i = wd * 64 + (uint32_t)__builtin_ctzll(bits);
            bits &= bits - 1;
            if (i < c->seg->slots) visit(s, i, now);
        }
    }
}

static void housekeeping(struct swarm *s, uint64_t now)
{
    for (uint32_t i = 0; i < SWARM_MAX_GHOSTS; i++) {
        struct swarm_ghost *g = &s->ghosts[i];
        if (g->used && now - g->died_ns >= s->cfg.dead_grace_ns) {
            g->used = false;
            s->members_changed = true; /* its dead entry leaves the list */
        }
    }
    for (uint32_t i = 0; i < SWARM_MAX_PENDING; i++) {
        struct swarm_pending *p = &s->pending[i];
        if (p->used && now >= p->deadline_ns) {
            snprintf(p->failure, sizeof p->failure, "timed out waiting for worker acks");
            finish_pending(s, p, now);
        }
    }
}

static bool any_pending(const struct swarm *s)
{
    for (uint32_t i = 0; i < SWARM_MAX_PENDING; i++)
        if (s->pending[i].used) return true;
    return false;
}

/* Removal ends the swarm. Once swarm-remove has completed (every worker
 * acknowledged its stop), no other command waits for an outcome and the
 * workers have left (they exit right after their ack; one that hangs is
 * waited for cmd_timeout_ns, then listed as it is), the final REMOVED
 * status-delta and status-full go out, the full last: a consumer keeping the
 * latest full ends on REMOVED with the final worker list. Nothing follows
 * them, so observers see no endless heartbeats of a swarm that is gone.
 * Status-requests still waiting are answered first, with their ids. A
 * document that finds no room in the channel is retried on the next tick. */
static void finish_removal(struct swarm *s, const struct swarm_agg *a, uint64_t now)
{
    if (s->final_stage == 0) {
        if (s->out.closing) s->out.closing(s->out.ctx);
        journal(s, json_pack("{s:s, s:s}", "event", "lifecycle", "change", "final-status"));
        s->final_stage = 1;
    }
    while (s->nfull_cids > 0 && swarm_emit_controller_full(s, a, s->full_cids[0], now)) {
        memmove(s->full_cids[0], s->full_cids[1], (s->nfull_cids - 1) * sizeof s->full_cids[0]);
        s->nfull_cids--;
    }
    if (s->nfull_cids > 0) return;
    if (s->final_stage == 1) {
        if (!swarm_emit_controller_delta(s, a, now)) return;
        s->last_sent = *a;
        s->have_sent = true;
        s->last_delta_ns = now;
        s->final_stage = 2;
    }
    if (!swarm_emit_controller_full(s, a, NULL, now)) return;
    s->full_due = false;
    s->delta_due = false;
    s->finished = true;
    ph_info("swarm removed: final status sent; the controller has nothing more to say");
}

/* A gap between two ticks far beyond any tick period means the controller
 * itself did not run (stopped, paused, starved): the workers' acks may be
 * waiting in rings it has not read yet, so a command's wait counts only the
 * time the controller was there to hear them. */
#define SWARM_STALL_NS (2 * NS_PER_S)

static void forgive_stall(struct swarm *s, uint64_t now)
{
    const uint64_t prev = s->last_tick_ns;
    s->last_tick_ns = now;
    if (prev == 0 || now <= prev || now - prev <= SWARM_STALL_NS) return;
    const uint64_t gap = now - prev;
    uint32_t n = 0;
    for (uint32_t i = 0; i < SWARM_MAX_PENDING; i++)
        if (s->pending[i].used) {
            s->pending[i].deadline_ns += gap;
            n++;
        }
    if (n > 0)
        ph_warn("the controller did not run for %.1f s: %u command(s) wait that much longer "
                "for their acks",
                (double)gap / 1e9, n);
}

void swarm_tick(struct swarm *s, uint64_t now)
{
    if (s->delivered_seq > s->delivered_journaled) {
        /* At most one entry a tick: a restarted controller sends again the
         * outcomes after it, which the bridge drops if it published them. */
        journal(s, json_pack("{s:s, s:I}", "event", "delivered", "seq",
                             (json_int_t)s->delivered_seq));
        s->delivered_journaled = s->delivered_seq;
    }
    if (s->finished) return; /* removed: the final documents were the last */
    forgive_stall(s, now);
    workers_tick(s, now);
    housekeeping(s, now);
    plan_tick(s, now);

    struct swarm_agg a;
    swarm_agg_build(s, now, &a);
    if (s->status == SW_NEW && a.live >= a.desired) {
        s->status = SW_READY;
        state_changed(s);
        swarm_agg_build(s, now, &a);
    }
    if (s->cfg.auto_start && !s->auto_started && s->status == SW_READY && a.live >= a.desired) {
        /* Internal swarm-start: same path as the signal, without an outcome. */
        s->auto_started = true;
        struct swarm_pending proto = {0};
        snprintf(proto.type, sizeof proto.type, "swarm-start");
        proto.lifecycle = true;
        proto.on_success = SW_RUNNING;
        proto.full_after = true;
        s->workloads_enabled = true;
        want_enabled(s, true);
        s->status = SW_STARTING;
        json_t *patch = json_pack("{s:b}", "enabled", 1);
        start_command(s, &proto, T_SWARM, "", "", PH_CMD_CONFIG_PATCH, patch, now);
        json_decref(patch);
        journal(s, json_pack("{s:s, s:s}", "event", "lifecycle", "change", "auto-start"));
        swarm_agg_build(s, now, &a);
    }
    if (s->last_health == NULL || strcmp(s->last_health, a.state) != 0) {
        journal(s, json_pack("{s:s, s:s, s:o, s:i, s:i}", "event", "health", "state", a.state,
                             "previous", jstr_or_null(s->last_health), "healthy",
                             (int)a.healthy, "desired", (int)a.desired));
        s->last_health = a.state;
    }
    if (s->state_seq != s->state_journaled) {
        /* What a restarted controller resumes from (swarm_recover). */
        json_t *e = swarm_state_json(s);
        json_object_set_new(e, "event", json_string("state"));
        journal(s, e);
        s->state_journaled = s->state_seq;
    }

    if (s->status == SW_REMOVED && !s->removed_seen) {
        s->removed_seen = true;
        s->removed_ns = now;
    }
    if (s->status == SW_REMOVED && !any_pending(s) &&
        (a.live == 0 || now - s->removed_ns >= s->cfg.cmd_timeout_ns)) {
        finish_removal(s, &a, now);
        return;
    }
    /* The worker set changed: a fresh list for consumers that keep the
     * latest full, at most one per member_full_ns however many join or
     * leave (a swarm of 1,000 starting up costs a handful, not 1,000). */
    if (s->members_changed && (!s->have_full || now - s->last_full_ns >= s->cfg.member_full_ns))
        s->full_due = true;
    while (s->nfull_cids > 0 && swarm_emit_controller_full(s, &a, s->full_cids[0], now)) {
        s->full_due = false; /* an answered request covers a pending plain full */
        memmove(s->full_cids[0], s->full_cids[1], (s->nfull_cids - 1) * sizeof s->full_cids[0]);
        s->nfull_cids--;
    }
    if (s->full_due && swarm_emit_controller_full(s, &a, NULL, now)) s->full_due = false;
    if (!s->have_sent || swarm_agg_changed(&a, &s->last_sent)) s->delta_due = true;
    const uint64_t since = now - s->last_delta_ns;
    /* Pacing (SWARM_DELTA_BURST): the credit starts full. */
    const uint64_t cap = SWARM_DELTA_BURST * s->cfg.coalesce_ns;
    if (s->credit_at_ns == 0 || now - s->credit_at_ns >= cap)
        s->delta_credit_ns = cap;
    else
        s->delta_credit_ns += now - s->credit_at_ns;
    if (s->delta_credit_ns > cap) s->delta_credit_ns = cap;
    s->credit_at_ns = now;
    if ((s->delta_due && (s->delta_credit_ns >= s->cfg.coalesce_ns || !s->have_sent)) ||
        since >= s->cfg.watermark_ns) {
        if (swarm_emit_controller_delta(s, &a, now)) {
            s->last_sent = a;
            s->have_sent = true;
            s->delta_due = false;
            s->last_delta_ns = now;
            s->delta_credit_ns = s->delta_credit_ns >= s->cfg.coalesce_ns
                                     ? s->delta_credit_ns - s->cfg.coalesce_ns
                                     : 0;
        }
    }
}

/* ---- journal forms and recovery --------------------------------------- */

/* The desired config as journaled. The journal is on disk: secrets stay in
 * memory. A value that redaction would change (under a secret-named key, or
 * holding a URL with credentials) is left out whole, its key listed under
 * "withheld": a masked value must never come back from the journal to be
 * sent to a worker in place of the real one. */
static json_t *desired_journal_form(const struct desired *d)
{
    json_t *list = desired_to_json(d);
    size_t i;
    json_t *o;
    json_array_foreach(list, i, o)
    {
        const json_t *patch = json_object_get(o, "patch");
        json_t *kept = json_object(), *withheld = json_array();
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)patch, k, v)
        {
            json_t *r = ph_key_is_secret(k) ? NULL : redacted(v);
            if (r != NULL && json_equal(r, v)) {
                json_object_set_new(kept, k, r);
            } else {
                json_decref(r);
                json_array_append_new(withheld, json_string(k));
            }
        }
        json_object_set_new(o, "patch", kept);
        if (json_array_size(withheld) > 0)
            json_object_set_new(o, "withheld", withheld);
        else
            json_decref(withheld);
    }
    return list;
}

json_t *swarm_state_json(const struct swarm *s)
{
    json_t *roles = json_array();
    for (uint32_t i = 0; i < s->nroles; i++)
        json_array_append_new(roles, json_pack("{s:s, s:I}", "role", s->roles[i].role, "count",
                                               (json_int_t)s->roles[i].count));
    return json_pack("{s:I, s:s, s:b, s:o, s:o}", "stateSeq", (json_int_t)s->state_seq, "status",
                     swarm_status_name(s->status), "workloadsEnabled", s->workloads_enabled,
                     "roles", roles, "desired", desired_journal_form(&s->desired));
}

/* Says which desired values a recovered config lacks (desired_journal_form). */
static void report_withheld(const json_t *desired)
{
    char keys[256] = "";
    size_t len = 0, n = 0, i, k;
    const json_t *o, *name;
    json_array_foreach(desired, i, o)
    {
        json_array_foreach(json_object_get(o, "withheld"), k, name)
        {
            const char *key = json_string_value(name);
            if (key == NULL) continue;
            n++;
            if (len < sizeof keys - 1)
                len +=
                    (size_t)snprintf(keys + len, sizeof keys - len, "%s%s", len ? ", " : "", key);
        }
    }
    if (n > 0)
        ph_warn("the recovered desired config lacks %zu value(s) that were not journaled "
                "(secrets, URLs with credentials: %s): workers that join from now on keep their "
                "own values for them",
                n, keys);
}

void swarm_state_restore(struct swarm *s, const json_t *st)
{
    const char *status = json_string_value(json_object_get(st, "status"));
    for (int k = SW_NEW; status != NULL && k <= SW_FAILED; k++)
        if (strcmp(status, swarm_status_name((enum swarm_status)k)) == 0)
            s->status = (enum swarm_status)k;
    const json_t *we = json_object_get(st, "workloadsEnabled");
    if (json_is_boolean(we)) s->workloads_enabled = json_is_true(we);
    const json_t *roles = json_object_get(st, "roles");
    struct swarm_role r[SWARM_MAX_ROLES];
    uint32_t n = 0;
    char err[160];
    if (json_is_array(roles) && parse_roles(roles, r, &n, err, sizeof err)) swarm_set_roles(s, r, n);
    const json_t *d = json_object_get(st, "desired");
    if (json_is_array(d)) {
        desired_from_json(&s->desired, d);
        report_withheld(d);
    }
    const json_t *seq = json_object_get(st, "stateSeq");
    if (json_is_integer(seq) && json_integer_value(seq) >= 0)
        s->state_seq = (uint64_t)json_integer_value(seq);
    /* Journal the restored state again, in this controller's journal. */
    s->state_seq++;
    refresh_controller_config(s);
}

json_t *swarm_checkpoint_json(const struct swarm *s)
{
    json_t *cp = swarm_state_json(s);
    json_t *idem = json_array();
    for (uint32_t i = 0; i < SWARM_IDEM_CACHE; i++) {
        const struct swarm_idem *e = &s->idem[i];
        if (!e->used) continue;
        json_t *o = json_pack("{s:s, s:s, s:s, s:b}", "idempotencyKey", e->ikey, "type", e->type,
                              "status", e->status, "retryable", e->retryable);
        if (e->enabled_known) json_object_set_new(o, "enabled", json_boolean(e->enabled));
        json_array_append_new(idem, o);
    }
    json_t *seen = json_array();
    for (uint32_t k = 0; k < s->seen.cap; k++) {
        /* Oldest first, so a replay of the checkpoint keeps the order. */
        const char *cid = s->seen.ring[(s->seen.next + k) % s->seen.cap];
        if (cid != NULL) json_array_append_new(seen, json_string(cid));
    }
    json_t *open = json_array();
    for (uint32_t i = 0; i < SWARM_MAX_PENDING; i++) {
        const struct swarm_pending *p = &s->pending[i];
        if (!p->used || p->signal == NULL) continue;
        json_array_append(open, p->signal);
        for (uint32_t k = 0; k < p->nextra; k++) {
            json_t *x = json_deep_copy(p->signal);
            json_object_set_new(x, "correlationId", json_string(p->extra[k]));
            json_array_append_new(open, x);
        }
    }
    json_t *undelivered = json_array();
    for (uint32_t i = 0; i < s->undel_n; i++)
        json_array_append(undelivered, s->undelivered[(s->undel_head + i) % SWARM_UNDELIVERED_MAX]);
    json_object_set_new(cp, "idem", idem);
    json_object_set_new(cp, "seen", seen);
    json_object_set_new(cp, "unanswered", open);
    json_object_set_new(cp, "outSeq", json_integer((json_int_t)s->out_seq));
    json_object_set_new(cp, "deliveredSeq", json_integer((json_int_t)s->delivered_seq));
    json_object_set_new(cp, "undelivered", undelivered);
    return cp;
}

void swarm_idem_restore(struct swarm *s, const json_t *e, uint64_t now)
{
    const char *type = json_string_value(json_object_get(e, "type"));
    const char *ikey = json_string_value(json_object_get(e, "idempotencyKey"));
    const char *status = json_string_value(json_object_get(e, "status"));
    if (type == NULL || ikey == NULL || status == NULL || strlen(type) >= 32 ||
        strlen(ikey) >= 256 || strlen(status) >= 32)
        return;
    const json_t *en = json_object_get(e, "enabled");
    const json_t *rt = json_object_get(e, "retryable");
    struct outcome o = {.type = type,
                        .ikey = ikey,
                        .status = status,
                        .enabled = json_is_boolean(en) ? json_is_true(en) : -1,
                        .retryable = json_is_boolean(rt) ? json_is_true(rt) : -1};
    idem_store(s, &o, now);
}

static bool entry_str(const json_t *e, const char *k, char *buf, size_t n, bool required)
{
    const json_t *v = json_object_get(e, k);
    buf[0] = '\0';
    if (v == NULL || json_is_null(v)) return !required;
    if (!json_is_string(v) || json_string_length(v) >= n) return false;
    memcpy(buf, json_string_value(v), json_string_length(v) + 1);
    return !required || buf[0] != '\0';
}

void swarm_apply_recovered(struct swarm *s, const json_t *e, uint64_t now)
{
    struct sig g;
    memset(&g, 0, sizeof g);
    if (!entry_str(e, "type", g.type, sizeof g.type, true) ||
        !entry_str(e, "correlationId", g.cid, sizeof g.cid, true) ||
        !entry_str(e, "swarm", g.swarm, sizeof g.swarm, false) ||
        !entry_str(e, "role", g.role, sizeof g.role, false) ||
        !entry_str(e, "instance", g.instance, sizeof g.instance, false) ||
        !entry_str(e, "origin", g.origin, sizeof g.origin, false) ||
        !entry_str(e, "idempotencyKey", g.ikey, sizeof g.ikey, false)) {
        ph_warn("journal: a signal entry without usable ids was skipped");
        return;
    }
    if (ph_cidset_has(&s->seen, g.cid)) return;
    ph_cidset_add(&s->seen, g.cid);
    const json_t *data = json_object_get(e, "data");
    g.data = json_is_object(data) ? json_deep_copy(data) : json_object();
    json_t *entry = json_deep_copy(e);
    json_object_set_new(entry, "recovered", json_true());
    journal(s, json_incref(entry));
    g.entry = entry;
    ph_info("taking up signal %s (correlationId %s) again: the previous controller had not "
            "answered it",
            g.type, g.cid);
    if (json_is_true(json_object_get(e, "dataComplete"))) {
        apply_signal(s, &g, now);
    } else {
        enum target_kind tk = classify(s, &g);
        if (tk != T_NOT_US && strcmp(g.type, "status-request") != 0) {
            const char *orole, *oinst;
            outcome_scope(s, &g, tk, &orole, &oinst);
            /* Not journaled whole: too large (kept as its size and hash), or
             * holding secrets (journaled without them). */
            const char *why =
                json_is_true(json_object_get(json_object_get(e, "data"), "truncated"))
                    ? "the controller restarted while applying it and its data was too large "
                      "to keep; send it again"
                    : "the controller restarted while applying it and its data held secrets, "
                      "which are not kept; send it again";
            struct outcome o = {g.type, orole, oinst, g.cid, g.ikey, "failed", -1, 1, why, false, 0};
            emit_outcome(s, &o, now);
        }
    }
    json_decref(entry);
    json_decref(g.data);
}
