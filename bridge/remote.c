/* Remote workers stood in for in the segment (remote.h). */
#include "remote.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "contract.h"
#include "envelope.h"
#include "ph/log.h"
#include "ph/worker.h"

#define NS_PER_S 1000000000ull
/* A claim refused for another reason than a local duplicate (slots full,
 * no segment yet) is tried again after this long, not per message. */
#define REMOTE_RETRY_NS (5ull * NS_PER_S)
/* Status gaps longer than this add nothing to the processed count: the
 * worker's rate then is not known over the gap. */
#define REMOTE_MAX_GAP_NS (60ull * NS_PER_S)

struct pend {
    bool used;
    uint64_t token;
    enum ph_command_type type;
    char cid[CONTRACT_STR_MAX];
    uint64_t deadline_ns;
};

struct proxy {
    char key[2 * PH_ID_MAX + 2]; /* role.instance */
    char role[PH_ID_MAX];
    char instance[PH_ID_MAX];
    ph_worker *w;
    uint64_t last_msg_ns;
    uint64_t last_status_ns; /* 0: no status yet (no rate to integrate) */
    double carry;            /* items of the integrated rate not yet counted */
    bool leaving;            /* STOP acked: leave the slot at the end of the tick */
    char relay[PH_ID_MAX];   /* the relay it comes through; "" for a worker speaking AMQP */
    bool have_abs;           /* relayed: last_processed/last_errors hold the worker's counts */
    uint64_t last_processed, last_errors;
    struct pend pend[REMOTE_MAX_PENDING];
};

struct remote {
    char swarm[PH_ID_MAX];
    char controller[PH_ID_MAX];
    int (*publish)(void *ctx, const char *rk, const char *body, size_t len, bool reliable);
    void *publish_ctx;
    json_t *index;   /* key -> position in v */
    json_t *skip;    /* key -> until (ns): identities not to claim for now */
    json_t *relays;  /* relay id -> when a full table was last asked of it (ns) */
    uint64_t swept_ns; /* the skip map's last sweep */
    struct proxy **v;
    size_t n, cap;
    struct remote_stats st;
};

json_t *remote_keys(const char *swarm)
{
    json_t *keys = json_object();
    static const char *const kinds[] = {"event.metric.status-full", "event.metric.status-delta",
                                        "event.outcome.config-update"};
    for (size_t i = 0; keys != NULL && i < sizeof kinds / sizeof kinds[0]; i++) {
        char k[CONTRACT_RK_MAX];
        snprintf(k, sizeof k, "%s.%s.#", kinds[i], swarm);
        json_object_set_new(keys, k, json_true());
    }
    if (keys != NULL) {
        char k[CONTRACT_RK_MAX];
        snprintf(k, sizeof k, "relay.%s.*.up", swarm);
        json_object_set_new(keys, k, json_true());
    }
    return keys;
}

int remote_open(struct remote **out, const struct remote_cfg *cfg, char *err, size_t errlen)
{
    struct remote *r = calloc(1, sizeof *r);
    if (r == NULL || cfg->publish == NULL) {
        free(r);
        snprintf(err, errlen, cfg->publish == NULL ? "no publish function" : "out of memory");
        return PH_ERR_INVAL;
    }
    snprintf(r->swarm, sizeof r->swarm, "%s", cfg->swarm);
    snprintf(r->controller, sizeof r->controller, "%s", cfg->controller_instance);
    r->publish = cfg->publish;
    r->publish_ctx = cfg->publish_ctx;
    r->index = json_object();
    r->skip = json_object();
    r->relays = json_object();
    if (r->index == NULL || r->skip == NULL || r->relays == NULL) {
        remote_close(r);
        snprintf(err, errlen, "out of memory");
        return PH_ERR_SYS;
    }
    *out = r;
    return PH_OK;
}

static void proxy_free(struct proxy *p)
{
    if (p == NULL) return;
    ph_worker_detach(p->w);
    free(p);
}

void remote_close(struct remote *r)
{
    if (r == NULL) return;
    for (size_t i = 0; i < r->n; i++) proxy_free(r->v[i]);
    free(r->v);
    json_decref(r->index);
    json_decref(r->skip);
    json_decref(r->relays);
    free(r);
}

const struct remote_stats *remote_stats(const struct remote *r)
{
    return &r->st;
}

size_t remote_count(const struct remote *r)
{
    return r->n;
}

bool remote_idle(const struct remote *r)
{
    return r->n == 0 && json_object_size(r->relays) == 0;
}

static struct proxy *find(struct remote *r, const char *key)
{
    const json_t *i = json_object_get(r->index, key);
    return i != NULL ? r->v[json_integer_value(i)] : NULL;
}

static void drop(struct remote *r, const char *key)
{
    const json_t *i = json_object_get(r->index, key);
    if (i == NULL) return;
    size_t at = (size_t)json_integer_value(i);
    proxy_free(r->v[at]);
    json_object_del(r->index, key);
    r->v[at] = r->v[--r->n];
    if (at < r->n) json_object_set_new(r->index, r->v[at]->key, json_integer((json_int_t)at));
    r->st.left++;
}

static bool skipped(struct remote *r, const char *key, uint64_t now)
{
    const json_t *u = json_object_get(r->skip, key);
    if (u == NULL) return false;
    if ((uint64_t)json_integer_value(u) > now) return true;
    json_object_del(r->skip, key);
    return false;
}

static void skip_until(struct remote *r, const char *key, uint64_t until)
{
    json_object_set_new(r->skip, key, json_integer((json_int_t)until));
}

void remote_note_local(struct remote *r, const char *role, const char *instance, uint64_t now)
{
    char key[2 * PH_ID_MAX + 2];
    snprintf(key, sizeof key, "%s.%s", role, instance);
    if (find(r, key) == NULL) skip_until(r, key, now + REMOTE_LOCAL_RECHECK_NS);
}

/* Logs the first few of a kind of trouble, then one in a hundred. */
static bool say(uint64_t n)
{
    return n <= 5 || n % 100 == 0;
}

static struct proxy *join(struct remote *r, const char *key, const char *role,
                          const char *instance, const char *loc, const char *relay, uint64_t now)
{
    if (loc == NULL || !ph_location_ok(loc)) loc = "remote";
    char err[256];
    const struct ph_worker_opts o = {.swarm_id = r->swarm,
                                     .role = role,
                                     .instance = instance,
                                     /* No heartbeat of its own: only the
                                      * worker's messages refresh it. */
                                     .heartbeat_ms = UINT32_MAX,
                                     /* a proxy lives in this host's segment, whatever
                                      * PH_WORKER_MODE the bridge was started with */
                                     .mode = PH_WORKER_LOCAL,
                                     .location = loc,
                                     .transport = relay != NULL ? "relay" : "amqp"};
    ph_worker *w = ph_worker_attach(&o, err, sizeof err);
    if (w == NULL) {
        if (strstr(err, "already attached") != NULL || strstr(err, "being attached") != NULL) {
            /* A local worker: its status came back from our own publish. */
            skip_until(r, key, now + REMOTE_LOCAL_RECHECK_NS);
            r->st.local_skipped++;
        } else {
            skip_until(r, key, now + REMOTE_RETRY_NS);
            if (say(++r->st.refused))
                ph_warn("remote worker %s (%s) not merged: %s", instance, role, err);
        }
        return NULL;
    }
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 16;
        struct proxy **v = realloc(r->v, cap * sizeof *v);
        if (v == NULL) {
            ph_worker_detach(w);
            return NULL;
        }
        r->v = v;
        r->cap = cap;
    }
    struct proxy *p = calloc(1, sizeof *p);
    if (p == NULL) {
        ph_worker_detach(w);
        return NULL;
    }
    snprintf(p->key, sizeof p->key, "%s", key);
    snprintf(p->role, sizeof p->role, "%s", role);
    snprintf(p->instance, sizeof p->instance, "%s", instance);
    p->w = w;
    if (relay != NULL) snprintf(p->relay, sizeof p->relay, "%s", relay);
    json_object_set_new(r->index, key, json_integer((json_int_t)r->n));
    r->v[r->n++] = p;
    r->st.joined++;
    ph_info("%s worker %s (%s) at %s%s%s joins the swarm's table (slot %u)",
            relay != NULL ? "relayed" : "remote", instance, role, loc,
            relay != NULL ? " through relay " : "", relay != NULL ? relay : "", ph_worker_slot(w));
    return p;
}

static struct pend *pend_take(struct proxy *p, const char *cid, enum ph_command_type type)
{
    for (int i = 0; cid != NULL && i < REMOTE_MAX_PENDING; i++)
        if (p->pend[i].used && p->pend[i].type == type && strcmp(p->pend[i].cid, cid) == 0) {
            p->pend[i].used = false;
            return &p->pend[i];
        }
    return NULL;
}

static void apply_status(struct remote *r, struct proxy *p, const char *type, const json_t *env,
                         uint64_t now)
{
    const json_t *data = json_object_get(env, "data");
    const json_t *work = json_object_get(json_object_get(data, "ioState"), "work");
    int in = ph_io_in_parse(json_string_value(json_object_get(work, "input")));
    int out = ph_io_out_parse(json_string_value(json_object_get(work, "output")));
    /* A nonsense rate must not wrap the proxy's count (the controller would
     * quarantine the slot for a counter going backwards): clamped. */
    json_int_t tps = json_integer_value(json_object_get(data, "tps"));
    if (tps > REMOTE_MAX_TPS) tps = REMOTE_MAX_TPS;
    /* The controller's tps comes from a cumulative count: integrate the
     * reported rate over the time between statuses. */
    if (p->last_status_ns != 0 && now > p->last_status_ns && tps > 0) {
        uint64_t gap = now - p->last_status_ns;
        if (gap <= REMOTE_MAX_GAP_NS) {
            p->carry += (double)tps * (double)gap / (double)NS_PER_S;
            uint64_t whole = (uint64_t)p->carry;
            ph_worker_count(p->w, whole);
            p->carry -= (double)whole;
        }
    }
    p->last_status_ns = now;
    if (strcmp(type, "status-full") == 0) {
        const json_t *cfg = json_object_get(data, "config");
        const json_t *io = json_object_get(data, "io");
        if (json_is_object(cfg)) ph_worker_publish_config(p->w, cfg);
        if (json_is_object(io)) ph_worker_publish_io(p->w, io);
    }
    ph_worker_set_enabled(p->w, json_is_true(json_object_get(data, "enabled")));
    ph_worker_set_io_state(p->w, in < 0 ? PH_IN_UNKNOWN : (enum ph_io_in)in,
                           out < 0 ? PH_OUT_UNKNOWN : (enum ph_io_out)out);
    ph_worker_publish_status(p->w);
    r->st.statuses++;
    if (strcmp(type, "status-full") == 0) {
        struct pend *q = pend_take(p, json_string_value(json_object_get(env, "correlationId")),
                                   PH_COMMAND_STATUS_REQUEST);
        if (q != NULL) {
            ph_worker_ack(p->w, q->token, true, "the remote worker sent its status");
            r->st.acks++;
        }
    }
}

static void apply_outcome(struct remote *r, struct proxy *p, const json_t *env)
{
    struct pend *q = pend_take(p, json_string_value(json_object_get(env, "correlationId")),
                               PH_COMMAND_CONFIG_PATCH);
    if (q == NULL) {
        r->st.ignored++;
        return;
    }
    const json_t *data = json_object_get(env, "data");
    const char *status = json_string_value(json_object_get(data, "status"));
    const char *msg = json_string_value(json_object_get(json_object_get(data, "context"), "message"));
    const bool ok = status != NULL && strcmp(status, "failed") != 0;
    char text[200];
    snprintf(text, sizeof text, "%s%s%.150s", status != NULL ? status : "?", msg ? ": " : "",
             msg ? msg : "");
    ph_worker_ack(p->w, q->token, ok, text);
    r->st.acks++;
}


/* ---- relays ------------------------------------------------------------ */

static int send_down(struct remote *r, const char *relay, json_t *msg)
{
    char rk[CONTRACT_RK_MAX];
    snprintf(rk, sizeof rk, "relay.%s.%s.down", r->swarm, relay);
    char *text = msg != NULL ? json_dumps(msg, JSON_COMPACT) : NULL;
    json_decref(msg);
    int rc = text != NULL ? r->publish(r->publish_ctx, rk, text, strlen(text), true) : -1;
    free(text);
    return rc;
}

/* A relay whose table the bridge does not hold whole (first seen after a
 * bridge restart): asked for a full one, at most every REMOTE_RETRY_NS. */
static void ask_full(struct remote *r, const char *relay, uint64_t now)
{
    const json_t *t = json_object_get(r->relays, relay);
    if (t != NULL && now - (uint64_t)json_integer_value(t) < REMOTE_RETRY_NS) return;
    json_object_set_new(r->relays, relay, json_integer((json_int_t)now));
    send_down(r, relay, json_pack("{s:b}", "full", 1));
}

static uint64_t u64_of(const json_t *v)
{
    return json_is_integer(v) && json_integer_value(v) > 0 ? (uint64_t)json_integer_value(v) : 0;
}

static void apply_relayed(struct proxy *p, const json_t *e)
{
    const uint64_t processed = u64_of(json_object_get(e, "processed"));
    const uint64_t errors = u64_of(json_object_get(e, "errors"));
    /* The worker's counts are absolute; the proxy's start at its claim:
     * only the growth is added (a smaller count is a restarted worker). */
    /* Growth beyond what a second of REMOTE_MAX_TPS gives is a broken
     * count, not work: not added (it would wrap the proxy's count). */
    if (p->have_abs && processed >= p->last_processed &&
        processed - p->last_processed <= REMOTE_MAX_TPS * 60)
        ph_worker_count(p->w, processed - p->last_processed);
    if (p->have_abs && errors >= p->last_errors && errors - p->last_errors <= REMOTE_MAX_TPS * 60)
        ph_worker_count_errors(p->w, errors - p->last_errors);
    p->have_abs = true;
    p->last_processed = processed;
    p->last_errors = errors;
    const json_t *cfg = json_object_get(e, "config");
    const json_t *io = json_object_get(e, "io");
    if (json_is_object(cfg)) ph_worker_publish_config(p->w, cfg);
    if (json_is_object(io)) ph_worker_publish_io(p->w, io);
    int in = ph_io_in_parse(json_string_value(json_object_get(e, "input")));
    int out = ph_io_out_parse(json_string_value(json_object_get(e, "output")));
    ph_worker_set_enabled(p->w, json_is_true(json_object_get(e, "enabled")));
    ph_worker_set_io_state(p->w, in < 0 ? PH_IN_UNKNOWN : (enum ph_io_in)in,
                           out < 0 ? PH_OUT_UNKNOWN : (enum ph_io_out)out);
    ph_worker_publish_status(p->w);
}

/* The proxy of (role, instance) when it comes through `relay`. */
static struct proxy *relayed(struct remote *r, const json_t *e, const char *relay, char *key,
                             size_t keylen)
{
    key[0] = '\0';
    const char *role = json_string_value(json_object_get(e, "role"));
    const char *inst = json_string_value(json_object_get(e, "instance"));
    char why[128];
    if (role == NULL || inst == NULL || ph_ident_check("role", role, why, sizeof why) != PH_OK ||
        ph_ident_check("instance", inst, why, sizeof why) != PH_OK)
        return NULL;
    snprintf(key, keylen, "%s.%s", role, inst);
    struct proxy *p = find(r, key);
    return p != NULL && strcmp(p->relay, relay) == 0 ? p : NULL;
}

static int on_relay(struct remote *r, const char *rk, const char *body, size_t len, uint64_t now)
{
    /* relay.<swarm>.<relay>.up */
    char swarm[PH_ID_MAX], relay[PH_ID_MAX], dir[8], why[160];
    if (sscanf(rk, "relay.%63[^.].%63[^.].%7s", swarm, relay, dir) != 3 ||
        strcmp(swarm, r->swarm) != 0 || strcmp(dir, "up") != 0) {
        r->st.ignored++;
        return 0;
    }
    json_error_t je;
    json_t *m = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    const char *host = json_string_value(json_object_get(m, "host"));
    const json_t *workers = json_object_get(m, "workers");
    const json_t *left = json_object_get(m, "left");
    const json_t *acks = json_object_get(m, "acks");
    const json_t *alerts = json_object_get(m, "alerts");
    if (m == NULL || ph_ident_check("relay id", relay, why, sizeof why) != PH_OK ||
        json_string_value(json_object_get(m, "relay")) == NULL ||
        strcmp(json_string_value(json_object_get(m, "relay")), relay) != 0 || host == NULL ||
        !ph_location_ok(host) || !json_is_array(workers) || !json_is_array(left) ||
        !json_is_array(acks) || !json_is_array(alerts)) {
        if (say(++r->st.refused))
            ph_warn("relay message on %s refused: %s", rk,
                    m == NULL ? je.text : "not {relay, host, workers, left, acks, alerts}");
        json_decref(m);
        return -1;
    }
    const bool full = json_is_true(json_object_get(m, "full"));
    if (full)
        json_object_set_new(r->relays, relay, json_integer(0));
    else if (json_object_get(r->relays, relay) == NULL)
        ask_full(r, relay, now);
    char key[2 * PH_ID_MAX + 2];
    json_t *listed = full ? json_object() : NULL;
    size_t i;
    const json_t *e;
    json_array_foreach(workers, i, e)
    {
        struct proxy *p = relayed(r, e, relay, key, sizeof key);
        if (p == NULL && key[0] != '\0' && find(r, key) == NULL && !skipped(r, key, now))
            p = join(r, key, json_string_value(json_object_get(e, "role")),
                     json_string_value(json_object_get(e, "instance")), host, relay, now);
        if (p == NULL) continue;
        p->last_msg_ns = now;
        apply_relayed(p, e);
        r->st.statuses++;
        if (listed != NULL) json_object_set_new(listed, key, json_true());
    }
    json_array_foreach(acks, i, e)
    {
        struct proxy *p = relayed(r, e, relay, key, sizeof key);
        const uint64_t token = u64_of(json_object_get(e, "token"));
        for (int j = 0; p != NULL && j < REMOTE_MAX_PENDING; j++) {
            struct pend *q = &p->pend[j];
            if (!q->used || q->token != token) continue;
            q->used = false;
            const char *msg = json_string_value(json_object_get(e, "message"));
            ph_worker_ack(p->w, token, json_is_true(json_object_get(e, "ok")), msg ? msg : "");
            r->st.acks++;
        }
    }
    json_array_foreach(alerts, i, e)
    {
        struct proxy *p = relayed(r, e, relay, key, sizeof key);
        const char *level = json_string_value(json_object_get(e, "level"));
        const char *code = json_string_value(json_object_get(e, "code"));
        const char *msg = json_string_value(json_object_get(e, "message"));
        if (p != NULL && level != NULL && code != NULL && msg != NULL)
            ph_worker_alert(p->w, level, code, msg);
    }
    json_array_foreach(left, i, e)
    {
        if (relayed(r, e, relay, key, sizeof key) != NULL) drop(r, key);
    }
    /* A full table: whoever of this relay is not in it has gone. */
    for (size_t k = 0; listed != NULL && k < r->n;) {
        if (strcmp(r->v[k]->relay, relay) == 0 && json_object_get(listed, r->v[k]->key) == NULL) {
            snprintf(key, sizeof key, "%s", r->v[k]->key);
            drop(r, key);
            continue;
        }
        k++;
    }
    json_decref(listed);
    json_decref(m);
    return 0;
}

int remote_on_message(struct remote *r, const char *rk, size_t rklen, const char *body,
                      size_t len, uint64_t now)
{
    char rkz[CONTRACT_RK_MAX], why[256];
    struct contract_rk k;
    if (rklen >= sizeof rkz) return -1;
    memcpy(rkz, rk, rklen);
    rkz[rklen] = '\0';
    if (strncmp(rkz, "relay.", 6) == 0) return on_relay(r, rkz, body, len, now);
    if (contract_rk_parse(rkz, &k, why, sizeof why) != PH_OK) {
        if (say(++r->st.refused)) ph_warn("remote worker message refused: %s", why);
        return -1;
    }
    const bool status = k.kind == CK_METRIC &&
                        (strcmp(k.type, "status-full") == 0 || strcmp(k.type, "status-delta") == 0);
    const bool outcome = k.kind == CK_OUTCOME && strcmp(k.type, "config-update") == 0;
    /* Not a worker's status or answer for this swarm: not ours to judge. */
    if ((!status && !outcome) || strcmp(k.swarm, r->swarm) != 0 || k.role[0] == '\0' ||
        k.instance[0] == '\0' || strcmp(k.role, CONTRACT_CONTROLLER_ROLE) == 0) {
        r->st.ignored++;
        return 0;
    }
    char key[2 * PH_ID_MAX + 2];
    snprintf(key, sizeof key, "%s.%s", k.role, k.instance);
    struct proxy *p = find(r, key);
    if ((p == NULL && (outcome || skipped(r, key, now))) || (p != NULL && p->relay[0] != '\0')) {
        /* Not a remote worker's: a local worker's status or a relayed one's,
         * published by the controller (remote_note_local), or an answer
         * nobody here waits for. Not even parsed. */
        r->st.ignored++;
        return 0;
    }
    json_error_t je;
    json_t *env = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    int rc = 0;
    if (env == NULL) {
        snprintf(why, sizeof why, "not JSON: %s", je.text);
        rc = -1;
    } else if (contract_check_envelope(env, why, sizeof why) != PH_OK) {
        rc = -1;
    } else {
        const json_t *scope = json_object_get(env, "scope");
        const char *role = json_string_value(json_object_get(scope, "role"));
        const char *inst = json_string_value(json_object_get(scope, "instance"));
        if (role == NULL || inst == NULL || strcmp(role, k.role) != 0 ||
            strcmp(inst, k.instance) != 0) {
            snprintf(why, sizeof why, "scope does not match the routing key");
            rc = -1;
        }
    }
    if (rc != 0) {
        if (say(++r->st.refused))
            ph_warn("remote worker message on %s refused: %s", rkz, why);
        json_decref(env);
        return -1;
    }
    if (p == NULL)
        p = join(r, key, k.role, k.instance,
                 json_string_value(json_object_get(
                     json_object_get(json_object_get(env, "data"), "context"), "location")),
                 NULL, now);
    if (p != NULL) {
        p->last_msg_ns = now;
        if (status)
            apply_status(r, p, k.type, env, now);
        else
            apply_outcome(r, p, env);
    }
    json_decref(env);
    return 0;
}

/* Sends one contract signal to the worker `p` stands for, from the
 * controller. `data` is stolen. */
static int send_signal(struct remote *r, struct proxy *p, const char *type, const char *cid,
                       json_t *data)
{
    char why[256], rk[CONTRACT_RK_MAX];
    struct envelope e = {0};
    e.env = envelope_new(ph_real_ns(), CK_SIGNAL, type, r->controller, r->swarm, p->role,
                         p->instance, cid, cid, data);
    if (e.env == NULL) return -1;
    int rc = envelope_finish(&e, why, sizeof why);
    if (rc == PH_OK) {
        snprintf(rk, sizeof rk, "%s", e.rk);
        char *text = json_dumps(e.env, JSON_COMPACT);
        rc = text != NULL ? r->publish(r->publish_ctx, rk, text, strlen(text), true) : -1;
        free(text);
    } else {
        ph_warn("signal %s for remote worker %s not sent: %s", type, p->instance, why);
    }
    envelope_clear(&e);
    return rc;
}

static struct pend *pend_add(struct proxy *p)
{
    for (int i = 0; i < REMOTE_MAX_PENDING; i++)
        if (!p->pend[i].used) return &p->pend[i];
    return NULL;
}

static void forward(struct remote *r, struct proxy *p, const struct ph_command *cmd, uint64_t now)
{
    r->st.commands++;
    char cid[CONTRACT_STR_MAX];
    snprintf(cid, sizeof cid, "%s.cmd.%" PRIu64, r->controller, cmd->token);
    if (p->relay[0] != '\0') {
        /* Through the relay, with the controller's token: its ack comes back
         * in a batch. */
        struct pend *q = pend_add(p);
        const char *type = cmd->type == PH_COMMAND_CONFIG_PATCH    ? "config-update"
                           : cmd->type == PH_COMMAND_STATUS_REQUEST ? "status-request"
                                                                    : "stop";
        json_t *c = json_pack("{s:s, s:s, s:I, s:s}", "role", p->role, "instance", p->instance,
                              "token", (json_int_t)cmd->token, "type", type);
        if (c != NULL && cmd->patch != NULL)
            json_object_set_new(c, "patch", json_deep_copy(cmd->patch));
        if (q == NULL || c == NULL ||
            send_down(r, p->relay, json_pack("{s:[o]}", "cmds", c)) != 0) {
            if (q == NULL) json_decref(c);
            ph_worker_ack(p->w, cmd->token, false, "could not send the command to the relay");
            return;
        }
        *q = (struct pend){.used = true,
                           .token = cmd->token,
                           .type = cmd->type,
                           .deadline_ns = now + REMOTE_CMD_TIMEOUT_NS};
        return;
    }
    if (cmd->type == PH_COMMAND_STOP) {
        /* The contract has no stop for a worker: its workload is disabled
         * and it leaves the swarm's table. */
        send_signal(r, p, "config-update", cid, json_pack("{s:b}", "enabled", 0));
        ph_worker_ack(p->w, cmd->token, true, "remote worker disabled; it leaves the swarm");
        p->leaving = true;
        return;
    }
    struct pend *q = pend_add(p);
    if (q == NULL) {
        ph_worker_ack(p->w, cmd->token, false, "too many commands in flight to this remote worker");
        return;
    }
    int rc = cmd->type == PH_COMMAND_CONFIG_PATCH
                 ? send_signal(r, p, "config-update", cid, json_deep_copy(cmd->patch))
                 : send_signal(r, p, "status-request", cid, json_object());
    if (rc != 0) {
        ph_worker_ack(p->w, cmd->token, false, "could not send the signal to the remote worker");
        return;
    }
    *q = (struct pend){.used = true,
                       .token = cmd->token,
                       .type = cmd->type,
                       .deadline_ns = now + REMOTE_CMD_TIMEOUT_NS};
    snprintf(q->cid, sizeof q->cid, "%s", cid);
}

void remote_forget_relays(struct remote *r)
{
    json_object_clear(r->relays);
}

/* Expired entries of the skip map go, once a second: names of local
 * workers long gone must not pile up. */
static void sweep_skip(struct remote *r, uint64_t now)
{
    if (now - r->swept_ns < NS_PER_S) return;
    r->swept_ns = now;
    const char *key;
    json_t *v, *tmp;
    json_object_foreach_safe(r->skip, tmp, key, v)
    {
        if ((uint64_t)json_integer_value(v) <= now) json_object_del(r->skip, key);
    }
}

void remote_tick(struct remote *r, uint64_t now)
{
    sweep_skip(r, now);
    for (size_t i = 0; i < r->n;) {
        struct proxy *p = r->v[i];
        ph_worker_tick(p->w);
        struct ph_command cmd;
        while (!p->leaving && ph_worker_poll_command(p->w, &cmd) > 0) forward(r, p, &cmd, now);
        for (int j = 0; j < REMOTE_MAX_PENDING; j++) {
            struct pend *q = &p->pend[j];
            if (!q->used || now < q->deadline_ns) continue;
            q->used = false;
            ph_worker_ack(p->w, q->token, false, "the remote worker did not answer in time");
            r->st.timeouts++;
        }
        if (p->leaving || now - p->last_msg_ns > REMOTE_FORGET_NS) {
            if (p->leaving) skip_until(r, p->key, now + REMOTE_FORGET_NS);
            ph_info("remote worker %s (%s) leaves the swarm's table (%s)", p->instance, p->role,
                    p->leaving ? "stopped" : "silent");
            char key[sizeof p->key];
            snprintf(key, sizeof key, "%s", p->key);
            drop(r, key);
            continue; /* the last proxy moved into position i */
        }
        i++;
    }
}
