/* The orchestrator's projection (registry.h). */
#include "registry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "contract.h"

#define NS_PER_S 1000000000ull

const char *reg_health_name(enum reg_health h)
{
    switch (h) {
    case REG_HEALTHY: return "healthy";
    case REG_DEGRADED: return "degraded";
    default: return "failed";
    }
}

void reg_cfg_defaults(struct reg_cfg *c)
{
    c->degraded_after_ns = 20 * NS_PER_S;
    c->failed_after_ns = 40 * NS_PER_S;
    c->refetch_after_ns = 10 * NS_PER_S;
}

int reg_init(struct registry *r, const struct reg_cfg *cfg)
{
    memset(r, 0, sizeof *r);
    r->cfg = *cfg;
    r->out = calloc(REG_MAX_OUTCOMES, sizeof *r->out);
    return r->out != NULL ? PH_OK : PH_ERR_SYS;
}

static void swarm_clear(struct reg_swarm *s)
{
    json_decref(s->delta);
    json_decref(s->full);
    s->delta = s->full = NULL;
}

void reg_reset(struct registry *r)
{
    for (uint32_t i = 0; i < r->n; i++) swarm_clear(&r->s[i]);
    r->n = 0;
    r->resets++;
}

void reg_free(struct registry *r)
{
    reg_reset(r);
    free(r->s);
    for (uint32_t i = 0; r->out != NULL && i < REG_MAX_OUTCOMES; i++) json_decref(r->out[i].env);
    free(r->out);
    memset(r, 0, sizeof *r);
}

/* Index of `id` in the sorted array, or where it would go (*found false). */
static uint32_t locate(const struct registry *r, const char *id, bool *found)
{
    uint32_t lo = 0, hi = r->n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        int c = strcmp(r->s[mid].id, id);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

struct reg_swarm *reg_find(struct registry *r, const char *id)
{
    bool found;
    uint32_t i = locate(r, id, &found);
    return found ? &r->s[i] : NULL;
}

static struct reg_swarm *insert(struct registry *r, const char *id, uint64_t now)
{
    bool found;
    uint32_t i = locate(r, id, &found);
    if (found) return &r->s[i];
    if (r->n == REG_MAX_SWARMS) return NULL;
    if (r->n == r->cap) {
        uint32_t cap = r->cap ? r->cap * 2 : 16;
        struct reg_swarm *s = realloc(r->s, cap * sizeof *s);
        if (s == NULL) return NULL;
        r->s = s;
        r->cap = cap;
    }
    memmove(&r->s[i + 1], &r->s[i], (r->n - i) * sizeof *r->s);
    r->n++;
    struct reg_swarm *s = &r->s[i];
    memset(s, 0, sizeof *s);
    snprintf(s->id, sizeof s->id, "%s", id);
    s->first_seen_ns = now;
    return s;
}

static void remove_at(struct registry *r, struct reg_swarm *s)
{
    uint32_t i = (uint32_t)(s - r->s);
    swarm_clear(s);
    memmove(&r->s[i], &r->s[i + 1], (r->n - i - 1) * sizeof *r->s);
    r->n--;
}

static struct reg_outcome *outcome_slot(struct registry *r, const char *cid)
{
    for (uint32_t i = 0; i < REG_MAX_OUTCOMES; i++)
        if (r->out[i].cid[0] != '\0' && strcmp(r->out[i].cid, cid) == 0) return &r->out[i];
    return NULL;
}

static struct reg_outcome *outcome_new(struct registry *r, const char *cid, const char *swarm,
                                       uint64_t now)
{
    /* The oldest entry makes room: the ring forgets in order. */
    struct reg_outcome *o = &r->out[r->out_next];
    r->out_next = (r->out_next + 1) % REG_MAX_OUTCOMES;
    json_decref(o->env);
    memset(o, 0, sizeof *o);
    snprintf(o->cid, sizeof o->cid, "%s", cid);
    snprintf(o->swarm, sizeof o->swarm, "%s", swarm ? swarm : "");
    o->at_ns = now;
    return o;
}

void reg_issued(struct registry *r, const char *cid, const char *swarm, uint64_t now)
{
    struct reg_outcome *o = outcome_slot(r, cid);
    if (o == NULL) o = outcome_new(r, cid, swarm, now);
    o->issued = true;
}

const struct reg_outcome *reg_outcome(const struct registry *r, const char *cid)
{
    return outcome_slot((struct registry *)r, cid);
}

static const char *str(const json_t *v, const char *key)
{
    return json_string_value(json_object_get(v, key));
}

bool reg_feed(struct registry *r, const char *rk, const json_t *env, uint64_t now,
              struct reg_effect *eff)
{
    memset(eff, 0, sizeof *eff);
    r->docs++;
    char why[256];
    /* The broker is shared: what arrives is checked like any input. */
    if (contract_check_envelope(env, why, sizeof why) != PH_OK) {
        r->ignored++;
        return false;
    }
    (void)rk;
    const char *kind = str(env, "kind"), *type = str(env, "type");
    const json_t *scope = json_object_get(env, "scope");
    const char *swarm = str(scope, "swarmId"), *role = str(scope, "role");
    const char *instance = str(scope, "instance");
    if (strcmp(kind, "outcome") == 0) {
        const char *cid = str(env, "correlationId");
        struct reg_outcome *o = outcome_slot(r, cid);
        if (o == NULL) o = outcome_new(r, cid, swarm, now);
        json_decref(o->env);
        o->env = json_incref((json_t *)env);
        o->at_ns = now;
        return true;
    }
    if (strcmp(kind, "metric") != 0 || swarm == NULL || role == NULL ||
        strcmp(role, CONTRACT_CONTROLLER_ROLE) != 0) {
        r->ignored++;
        return false;
    }
    const json_t *data = json_object_get(env, "data");
    const json_t *ctx = json_object_get(data, "context");
    const char *status = str(ctx, "swarmStatus");
    bool known = reg_find(r, swarm) != NULL;
    if (!known && status != NULL && strcmp(status, "REMOVED") == 0) return true; /* gone already */
    struct reg_swarm *s = insert(r, swarm, now);
    if (s == NULL) {
        r->ignored++;
        return false;
    }
    snprintf(s->controller, sizeof s->controller, "%s", instance ? instance : "");
    snprintf(s->last_status_at, sizeof s->last_status_at, "%s", str(env, "timestamp"));
    s->last_status_ns = now;
    json_decref(s->delta);
    s->delta = json_incref((json_t *)data);
    const bool full = strcmp(type, "status-full") == 0;
    if (full) {
        json_decref(s->full);
        s->full = json_incref((json_t *)data);
        s->last_full_ns = now;
        snprintf(s->last_full_at, sizeof s->last_full_at, "%s", str(env, "timestamp"));
    }
    if (status != NULL && strcmp(status, "REMOVED") == 0) {
        snprintf(eff->swarm, sizeof eff->swarm, "%s", swarm);
        remove_at(r, s);
        eff->removed = true;
        return true;
    }
    if (!known && !full) {
        /* First seen through a delta: its worker list comes from a full. */
        eff->request_full = true;
        snprintf(eff->swarm, sizeof eff->swarm, "%s", swarm);
        snprintf(eff->controller, sizeof eff->controller, "%s", s->controller);
        s->full_requested_ns = now;
    }
    return true;
}

enum reg_health reg_health(const struct registry *r, const struct reg_swarm *s, uint64_t now)
{
    const uint64_t age = now > s->last_status_ns ? now - s->last_status_ns : 0;
    if (age > r->cfg.failed_after_ns) return REG_FAILED;
    if (age > r->cfg.degraded_after_ns) return REG_DEGRADED;
    return REG_HEALTHY;
}

uint32_t reg_wanting_full(struct registry *r, uint64_t now, char (*ids)[PH_ID_MAX],
                          char (*ctl)[PH_ID_MAX], uint32_t max)
{
    uint32_t k = 0;
    for (uint32_t i = 0; i < r->n && k < max; i++) {
        struct reg_swarm *s = &r->s[i];
        if (s->full != NULL || now - s->full_requested_ns < r->cfg.refetch_after_ns) continue;
        snprintf(ids[k], PH_ID_MAX, "%s", s->id);
        snprintf(ctl[k], PH_ID_MAX, "%s", s->controller);
        k++;
    }
    return k;
}

void reg_full_requested(struct registry *r, const char *id, uint64_t now)
{
    struct reg_swarm *s = reg_find(r, id);
    if (s != NULL) s->full_requested_ns = now;
}

/* The pipeline from the workers' queues: one entry per role, its in/out
 * queue names, in the order roles first appear. */
static json_t *pipeline_of(const json_t *workers)
{
    json_t *roles = json_array();
    size_t i;
    const json_t *w;
    json_array_foreach(workers, i, w)
    {
        const char *role = str(w, "role");
        const json_t *q = json_object_get(w, "queues");
        if (role == NULL || !json_is_object(q)) continue;
        bool seen = false;
        for (size_t k = 0; k < json_array_size(roles) && !seen; k++)
            seen = strcmp(str(json_array_get(roles, k), "role"), role) == 0;
        if (seen) continue;
        json_t *in = json_object_get(q, "in"), *out = json_object_get(q, "out");
        json_array_append_new(roles, json_pack("{s:s, s:O, s:O}", "role", role, "in",
                                               json_is_array(in) ? in : json_array(), "out",
                                               json_is_array(out) ? out : json_array()));
    }
    return roles;
}

static json_t *get_or_null(const json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return v != NULL ? json_incref(v) : json_null();
}

json_t *reg_swarm_json(const struct registry *r, const struct reg_swarm *s, uint64_t now,
                       uint64_t real_now)
{
    (void)real_now;
    const json_t *d = s->delta;
    const json_t *ctx = json_object_get(d, "context");
    const json_t *fctx = json_object_get(s->full, "context");
    const json_t *workers = json_object_get(fctx, "workers");
    const double age = (double)((now > s->last_status_ns ? now - s->last_status_ns : 0) / 1000000) /
                       1000.0;
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(s->id));
    json_object_set_new(o, "controller", s->controller[0] ? json_string(s->controller) : json_null());
    json_object_set_new(o, "status", get_or_null(ctx, "swarmStatus"));
    json_object_set_new(o, "state", get_or_null(ctx, "state"));
    json_object_set_new(o, "health", json_string(reg_health_name(reg_health(r, s, now))));
    json_object_set_new(o, "heartbeatAgeSec", json_real(age));
    json_object_set_new(o, "lastStatusAt", json_string(s->last_status_at));
    json_object_set_new(o, "workEnabled", get_or_null(d, "enabled"));
    json_object_set_new(o, "tps", get_or_null(d, "tps"));
    json_object_set_new(o, "ioState", get_or_null(d, "ioState"));
    json_object_set_new(o, "totals", get_or_null(ctx, "totals"));
    json_object_set_new(o, "roles", get_or_null(ctx, "roles"));
    json_object_set_new(o, "watermark", get_or_null(ctx, "watermark"));
    json_object_set_new(o, "maxStalenessSec", get_or_null(ctx, "maxStalenessSec"));
    json_object_set_new(o, "scenario", get_or_null(ctx, "scenario"));
    json_object_set_new(o, "journal", get_or_null(ctx, "journal"));
    json_object_set_new(o, "complete", json_boolean(s->full != NULL));
    /* When the worker list was taken: a full is sent on start, on request
     * and when the worker set changes, so its per-worker tps and lastSeenAt
     * age between fulls (the UI says so, and can ask for a fresh one). */
    const uint64_t full_ms = (now > s->last_full_ns ? now - s->last_full_ns : 0) / 1000000;
    json_object_set_new(o, "fullAt", s->full != NULL ? json_string(s->last_full_at) : json_null());
    json_object_set_new(o, "fullAgeSec",
                        s->full != NULL ? json_real((double)full_ms / 1000.0) : json_null());
    json_object_set_new(o, "workers", json_is_array(workers) ? json_incref((json_t *)workers)
                                                             : json_array());
    json_object_set_new(o, "queues", pipeline_of(workers));
    return o;
}
