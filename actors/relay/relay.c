/* A host's worker table in batches (relay.h). */
#include "relay.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ph/log.h"
#include "ph/mpjson.h"
#include "ph/record.h"

enum { D_STATUS = 1, D_CONFIG = 2, D_IO = 4, D_LISTED = 8 };

struct map {
    bool used;
    uint16_t type;         /* PH_CMD_* */
    uint64_t deadline_ns;  /* unanswered by then: acked failed, forgotten */
    uint32_t index;
    uint64_t word;
    uint64_t token;        /* ours, in the worker's command ring */
    uint64_t bridge_token; /* the bridge's, echoed in the ack */
};

struct relay {
    char swarm[PH_ID_MAX];
    char id[PH_ID_MAX];
    char host[PH_LOCATION_MAX];
    char up_key[3 * PH_ID_MAX];
    int (*publish)(void *ctx, const char *rk, const char *body, size_t len, bool reliable);
    void *publish_ctx;
    struct ctl *ctl;
    uint8_t *dirty;    /* per slot: D_* */
    uint32_t *list;    /* slots with D_LISTED, in the order they changed */
    uint32_t nlist;
    json_t *left, *acks, *alerts;
    struct map map[RELAY_MAX_MAP];
    bool full_due;
    uint64_t seq;
    uint64_t last_batch_ns;
    struct relay_stats st;
};

void relay_key(char *buf, size_t n, const char *swarm, const char *relay_id, const char *dir)
{
    snprintf(buf, n, "relay.%s.%s.%s", swarm, relay_id, dir);
}

static void mark(struct relay *r, uint32_t index, uint8_t what)
{
    if (index >= r->ctl->seg->slots) return;
    if (!(r->dirty[index] & D_LISTED)) {
        r->list[r->nlist++] = index;
        r->dirty[index] |= D_LISTED;
    }
    r->dirty[index] |= what;
}

static void on_joined(void *ctx, struct ctl *c, struct ctl_worker *w)
{
    (void)c;
    mark(ctx, w->index, D_STATUS | D_CONFIG | D_IO);
}

static void on_left(void *ctx, struct ctl *c, struct ctl_worker *w, bool dead)
{
    (void)c;
    struct relay *r = ctx;
    json_array_append_new(r->left, json_pack("{s:s, s:s, s:b}", "role", w->role, "instance",
                                             w->instance, "dead", dead));
    /* Its entry is cleared after this: nothing of it is listed any more. */
    r->dirty[w->index] &= D_LISTED;
    for (int i = 0; i < RELAY_MAX_MAP; i++)
        if (r->map[i].used && r->map[i].index == w->index && r->map[i].word == w->word) {
            /* Leaving answers a stop; any other command it left unanswered
             * failed. */
            const bool ok = !dead && r->map[i].type == PH_CMD_STOP;
            json_array_append_new(r->acks, json_pack("{s:s, s:s, s:I, s:b, s:s}", "role", w->role,
                                                     "instance", w->instance, "token",
                                                     (json_int_t)r->map[i].bridge_token, "ok",
                                                     ok, "message",
                                                     dead ? "the worker died" : "the worker left"));
            r->map[i].used = false;
        }
}

static void on_alert(void *ctx, struct ctl *c, struct ctl_worker *w, const struct ph_rec_alert *a)
{
    (void)c;
    struct relay *r = ctx;
    json_array_append_new(r->alerts,
                          json_pack("{s:s, s:s, s:s, s:s, s:s}", "role", w->role, "instance",
                                    w->instance, "level", a->level, "code", a->code, "message",
                                    a->message));
}

static void on_ack(void *ctx, struct ctl *c, struct ctl_worker *w, const struct ph_rec_ack *a)
{
    (void)c;
    struct relay *r = ctx;
    for (int i = 0; i < RELAY_MAX_MAP; i++) {
        struct map *m = &r->map[i];
        if (!m->used || m->token != a->token || m->index != w->index || m->word != w->word)
            continue;
        json_array_append_new(r->acks, json_pack("{s:s, s:s, s:I, s:b, s:s}", "role", w->role,
                                                 "instance", w->instance, "token",
                                                 (json_int_t)m->bridge_token, "ok", a->ok,
                                                 "message", a->message));
        m->used = false;
        r->st.acks++;
        return;
    }
}

static void on_record(void *ctx, struct ctl *c, struct ctl_worker *w, uint16_t type,
                      const uint8_t *body, uint32_t len)
{
    (void)c, (void)body, (void)len;
    uint8_t what = type == PH_REC_STATUS ? D_STATUS
                   : type == PH_REC_CONFIG ? D_CONFIG
                   : type == PH_REC_IO     ? D_IO
                                           : 0;
    if (what != 0) mark(ctx, w->index, what);
}

int relay_open(struct relay **out, const struct relay_cfg *cfg, struct ctl *ctl, char *err,
               size_t errlen)
{
    struct relay *r = calloc(1, sizeof *r);
    if (r == NULL) {
        snprintf(err, errlen, "out of memory");
        return PH_ERR_SYS;
    }
    snprintf(r->swarm, sizeof r->swarm, "%s", cfg->swarm);
    snprintf(r->id, sizeof r->id, "%s", cfg->relay_id);
    snprintf(r->host, sizeof r->host, "%s", cfg->host);
    relay_key(r->up_key, sizeof r->up_key, r->swarm, r->id, "up");
    r->publish = cfg->publish;
    r->publish_ctx = cfg->publish_ctx;
    r->ctl = ctl;
    r->dirty = calloc(ctl->seg->slots, 1);
    r->list = calloc(ctl->seg->slots, sizeof *r->list);
    r->left = json_array();
    r->acks = json_array();
    r->alerts = json_array();
    if (r->dirty == NULL || r->list == NULL || r->left == NULL || r->acks == NULL ||
        r->alerts == NULL) {
        relay_close(r);
        snprintf(err, errlen, "out of memory");
        return PH_ERR_SYS;
    }
    ctl->hooks = (struct ctl_hooks){.ctx = r,
                                    .joined = on_joined,
                                    .left = on_left,
                                    .alert = on_alert,
                                    .ack = on_ack,
                                    .record = on_record};
    r->full_due = true;
    *out = r;
    return PH_OK;
}

void relay_close(struct relay *r)
{
    if (r == NULL) return;
    if (r->ctl != NULL) r->ctl->hooks = (struct ctl_hooks){0};
    free(r->dirty);
    free(r->list);
    json_decref(r->left);
    json_decref(r->acks);
    json_decref(r->alerts);
    free(r);
}

const struct relay_stats *relay_stats(const struct relay *r)
{
    return &r->st;
}

void relay_want_full(struct relay *r)
{
    r->full_due = true;
}

static struct ctl_worker *find(struct relay *r, const char *role, const char *instance)
{
    struct ctl *c = r->ctl;
    for (uint32_t i = 0; role != NULL && instance != NULL && i < c->seg->slots; i++)
        if (c->w[i].tracked && strcmp(c->w[i].instance, instance) == 0 &&
            strcmp(c->w[i].role, role) == 0)
            return &c->w[i];
    return NULL;
}

static void refuse_cmd(struct relay *r, const char *role, const char *inst, uint64_t token,
                       const char *why)
{
    json_array_append_new(r->acks,
                          json_pack("{s:s, s:s, s:I, s:b, s:s}", "role", role ? role : "?",
                                    "instance", inst ? inst : "?", "token", (json_int_t)token,
                                    "ok", 0, "message", why));
}

static void command(struct relay *r, const json_t *cmd)
{
    const char *role = json_string_value(json_object_get(cmd, "role"));
    const char *inst = json_string_value(json_object_get(cmd, "instance"));
    const char *type = json_string_value(json_object_get(cmd, "type"));
    const json_t *tok = json_object_get(cmd, "token");
    if (!json_is_integer(tok) || json_integer_value(tok) <= 0 || type == NULL) {
        r->st.bad_down++;
        return;
    }
    const uint64_t token = (uint64_t)json_integer_value(tok);
    r->st.commands++;
    struct ctl_worker *w = find(r, role, inst);
    if (w == NULL) {
        refuse_cmd(r, role, inst, token, "no such worker on this relay");
        return;
    }
    uint16_t ct = strcmp(type, "config-update") == 0    ? PH_CMD_CONFIG_PATCH
                  : strcmp(type, "status-request") == 0 ? PH_CMD_STATUS_REQUEST
                  : strcmp(type, "stop") == 0           ? PH_CMD_STOP
                                                        : 0;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    const json_t *patch = json_object_get(cmd, "patch");
    if (ct == PH_CMD_CONFIG_PATCH) {
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        if (!json_is_object(patch) || ph_json_pack(&pk, patch, false) != 0) ct = 0;
    }
    int slot = -1;
    for (int i = 0; i < RELAY_MAX_MAP && slot < 0; i++)
        if (!r->map[i].used) slot = i;
    uint64_t ours = 0;
    if (ct != 0 && slot >= 0)
        ours = ctl_send_command(r->ctl, w->index, ct, ct == PH_CMD_CONFIG_PATCH ? (uint8_t *)sb.data : NULL,
                                ct == PH_CMD_CONFIG_PATCH ? sb.size : 0);
    msgpack_sbuffer_destroy(&sb);
    if (ours == 0) {
        refuse_cmd(r, role, inst, token,
                   ct == 0      ? "unknown command or patch not an object"
                   : slot < 0   ? "too many commands in flight through the relay"
                                : "the worker's command ring is full or unusable");
        return;
    }
    r->map[slot] = (struct map){.used = true,
                                .type = ct,
                                .deadline_ns = ph_mono_ns() + RELAY_CMD_TIMEOUT_NS,
                                .index = w->index,
                                .word = w->word,
                                .token = ours,
                                .bridge_token = token};
}

int relay_on_down(struct relay *r, const char *body, size_t len)
{
    json_error_t je;
    json_t *m = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    const json_t *cmds = json_object_get(m, "cmds");
    if (!json_is_object(m) || (cmds != NULL && !json_is_array(cmds))) {
        r->st.bad_down++;
        ph_warn("relay: refused a message from the bridge: %s",
                m == NULL ? je.text : "not {full, cmds: [...]}");
        json_decref(m);
        return -1;
    }
    if (json_is_true(json_object_get(m, "full"))) r->full_due = true;
    size_t i;
    const json_t *cmd;
    json_array_foreach(cmds, i, cmd) command(r, cmd);
    json_decref(m);
    return 0;
}

static json_t *blob_json(const struct ctl_blob *b)
{
    if (b->len == 0) return json_object();
    char err[128];
    msgpack_zone zone;
    msgpack_zone_init(&zone, 2048);
    msgpack_object o;
    json_t *v = ph_mp_decode(b->data, b->len, true, &zone, &o, err, sizeof err) == PH_OK
                    ? ph_mp_to_json(&o)
                    : NULL;
    msgpack_zone_destroy(&zone);
    return v != NULL ? v : json_object();
}

static json_t *worker_json(const struct ctl_worker *w, uint8_t what)
{
    json_t *e = json_pack("{s:s, s:s, s:b, s:s, s:s, s:I, s:I}", "role", w->role, "instance",
                          w->instance, "enabled",
                          w->have_status && (w->st.flags & PH_STATUS_ENABLED), "input",
                          ph_io_in_name(w->st.io_in), "output", ph_io_out_name(w->st.io_out),
                          "processed", (json_int_t)w->st.processed, "errors",
                          (json_int_t)w->st.errors);
    if (e != NULL && (what & D_CONFIG)) json_object_set_new(e, "config", blob_json(&w->config));
    if (e != NULL && (what & D_IO)) json_object_set_new(e, "io", blob_json(&w->io));
    return e;
}

/* Commands their worker never answered (it ignored one, or dropped its
 * ack): failed, and their entries free again. */
static void expire(struct relay *r, uint64_t now)
{
    for (int i = 0; i < RELAY_MAX_MAP; i++) {
        struct map *m = &r->map[i];
        if (!m->used || now < m->deadline_ns) continue;
        const struct ctl_worker *w = &r->ctl->w[m->index];
        refuse_cmd(r, w->role, w->instance, m->bridge_token,
                   "the worker did not answer the command in time");
        m->used = false;
    }
}

int relay_batch(struct relay *r, uint64_t now)
{
    expire(r, now);
    const bool full = r->full_due;
    const bool any = r->nlist > 0 || json_array_size(r->left) > 0 ||
                     json_array_size(r->acks) > 0 || json_array_size(r->alerts) > 0;
    if (!full && !any && now - r->last_batch_ns < RELAY_HEARTBEAT_NS) return 0;
    json_t *workers = json_array();
    struct ctl *c = r->ctl;
    if (full) {
        for (uint32_t i = 0; i < c->seg->slots; i++)
            if (c->w[i].tracked && c->w[i].have_status)
                json_array_append_new(workers, worker_json(&c->w[i], D_CONFIG | D_IO));
    } else {
        for (uint32_t k = 0; k < r->nlist; k++) {
            const struct ctl_worker *w = &c->w[r->list[k]];
            /* A worker listed before its first status waits for it. */
            if (w->tracked && w->have_status)
                json_array_append_new(workers, worker_json(w, r->dirty[r->list[k]]));
        }
    }
    /* What is not sent now (no status yet) stays listed for the next batch. */
    uint32_t keep = 0;
    for (uint32_t k = 0; k < r->nlist; k++) {
        const uint32_t i = r->list[k];
        const struct ctl_worker *w = &c->w[i];
        if (w->tracked && !w->have_status) {
            r->list[keep++] = i;
        } else {
            r->dirty[i] = 0;
        }
    }
    r->nlist = keep;
    r->seq++;
    const size_t nworkers = json_array_size(workers);
    json_t *msg = json_pack("{s:s, s:s, s:I, s:b, s:o, s:O, s:O, s:O}", "relay", r->id, "host",
                            r->host, "seq", (json_int_t)r->seq, "full", full, "workers", workers,
                            "left", r->left, "acks", r->acks, "alerts", r->alerts);
    char *text = msg != NULL ? json_dumps(msg, JSON_COMPACT) : NULL;
    json_decref(msg);
    if (text == NULL) {
        r->full_due = true;
        return -1;
    }
    /* Acks and departures must not be lost: reliable when it carries any. */
    const bool reliable = json_array_size(r->left) > 0 || json_array_size(r->acks) > 0;
    int rc = r->publish(r->publish_ctx, r->up_key, text, strlen(text), reliable);
    free(text);
    if (rc != 0) {
        /* What was marked is forgotten: the next batch lists everything. */
        r->full_due = true;
        return -1;
    }
    json_array_clear(r->left);
    json_array_clear(r->acks);
    json_array_clear(r->alerts);
    r->full_due = false;
    r->last_batch_ns = now;
    r->st.batches++;
    r->st.workers_sent += nworkers;
    return 1;
}
