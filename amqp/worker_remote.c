/* The remote worker's agent (ph/worker_remote.h): controller and bridge for
 * one worker, in a thread of the worker's process.
 *
 * Threads: the worker's thread writes the status ring and reads the command
 * ring of the private slot (ph_worker's usual code); the agent's thread
 * reads the status ring, writes the command ring and owns everything else
 * here, the AMQP client included. The rings are single-producer
 * single-consumer and carry their own ordering (ph/ring.h); the only other
 * shared word is the stop flag.
 *
 * The agent's loop, every PH_WR_POLL_MS at most:
 *   - the client connects when due, reads deliveries (signals) and
 *     confirms, sends what waits (ph_amqp_flush);
 *   - the status ring is drained: status records update enabled, ioState
 *     and the tps window; config and io documents replace the last ones;
 *     alerts are published; an ack answers a pending config-update with
 *     its outcome;
 *   - status goes out: a status-full once a status record has arrived and
 *     on every new connection (the start, and the broker's view after an
 *     outage), after each config-update; a status-delta on a change of
 *     enabled or ioState (at most one per PH_WR_DELTA_MIN_NS) and as the
 *     heartbeat;
 *   - a config-update whose ack did not come within PH_WR_ACK_TIMEOUT_NS
 *     gets a failed, retryable outcome. */
#include "ph/worker_remote.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ph/amqp.h"
#include "ph/log.h"
#include "ph/mpjson.h"

#define TPS_SAMPLES 64
#define PENDING_UPDATES 16
#define DUMP_FLAGS (JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15))
#define RK_LEN 256
#define LOG_PREFIX_MAX 100
#define CLOSE_WAIT_NS 1000000000ull

/* ---- envelopes ---------------------------------------------------------- */

static json_t *str_or_null(const char *s)
{
    return s != NULL ? json_string(s) : json_null();
}

json_t *ph_wr_envelope(uint64_t real_ns, const char *kind, const char *type, const char *origin,
                       const char *swarm, const char *role, const char *instance, const char *cid,
                       const char *ikey, json_t *data)
{
    char ts[32];
    ph_rfc3339_ms(real_ns, ts);
    json_t *scope = json_object();
    json_t *env = json_object();
    if (scope == NULL || env == NULL || data == NULL) {
        json_decref(scope);
        json_decref(env);
        json_decref(data);
        return NULL;
    }
    json_object_set_new(scope, "swarmId", str_or_null(swarm));
    json_object_set_new(scope, "role", str_or_null(role));
    json_object_set_new(scope, "instance", str_or_null(instance));
    /* The contract's order: jansson keeps insertion order. */
    json_object_set_new(env, "timestamp", json_string(ts));
    json_object_set_new(env, "version", json_string("1"));
    json_object_set_new(env, "kind", json_string(kind));
    json_object_set_new(env, "type", json_string(type));
    json_object_set_new(env, "origin", json_string(origin));
    json_object_set_new(env, "scope", scope);
    json_object_set_new(env, "correlationId", str_or_null(cid));
    json_object_set_new(env, "idempotencyKey", str_or_null(ikey));
    json_object_set_new(env, "data", data);
    if (json_object_size(env) != 9 || json_object_size(scope) != 3) {
        json_decref(env); /* a string was not UTF-8, or memory ran out */
        return NULL;
    }
    return env;
}

bool ph_wr_routing_key(char *buf, size_t n, const char *family, const struct ph_wr_ident *id)
{
    int len = snprintf(buf, n, "%s.%s.%s.%s", family, id->swarm, id->role, id->instance);
    return len > 0 && (size_t)len < n;
}

static json_t *io_state(uint8_t in, uint8_t out)
{
    return json_pack("{s:{s:s,s:s}}", "work", "input", ph_io_in_name(in), "output",
                     ph_io_out_name(out));
}

json_t *ph_wr_status_data(const struct ph_wr_ident *id, const struct ph_wr_view *v, bool full)
{
    json_t *d = json_object();
    if (d == NULL) return NULL;
    json_object_set_new(d, "enabled", json_boolean(v->enabled));
    json_object_set_new(d, "tps",
                        json_integer((json_int_t)(v->tps > INT64_MAX ? INT64_MAX : v->tps)));
    json_object_set_new(d, "ioState", io_state(v->io_in, v->io_out));
    json_t *ctx = json_pack("{s:s,s:s}", "location", id->location, "transport", "amqp");
    if (full) {
        char ts[32];
        ph_rfc3339_ms(v->started_real_ns, ts);
        json_object_set_new(d, "config",
                            json_is_object(v->config) ? json_deep_copy(v->config) : json_object());
        json_object_set_new(d, "io", json_is_object(v->io) ? json_deep_copy(v->io) : json_object());
        json_object_set_new(d, "startedAt", json_string(ts));
        const uint32_t hb = id->heartbeat_ms;
        json_object_set_new(ctx, "intervalSeconds",
                            hb % 1000 == 0 ? json_integer(hb / 1000) : json_real(hb / 1000.0));
    }
    json_object_set_new(d, "context", ctx);
    if (json_object_size(d) != (full ? 7u : 4u)) {
        json_decref(d);
        return NULL;
    }
    return d;
}

json_t *ph_wr_status_envelope(uint64_t real_ns, const struct ph_wr_ident *id,
                              const struct ph_wr_view *v, bool full, const char *cid, char *rk,
                              size_t rklen)
{
    const char *type = full ? "status-full" : "status-delta";
    char family[64];
    snprintf(family, sizeof family, "event.metric.%s", type);
    if (!ph_wr_routing_key(rk, rklen, family, id)) return NULL;
    return ph_wr_envelope(real_ns, "metric", type, id->instance, id->swarm, id->role, id->instance,
                          cid, NULL, ph_wr_status_data(id, v, full));
}

json_t *ph_wr_outcome_envelope(uint64_t real_ns, const struct ph_wr_ident *id, bool applied,
                               bool enabled, bool retryable, const char *message, const char *cid,
                               const char *ikey, char *rk, size_t rklen)
{
    if (!ph_wr_routing_key(rk, rklen, "event.outcome.config-update", id)) return NULL;
    json_t *d = json_pack("{s:s,s:b,s:b}", "status", applied ? "applied" : "failed", "enabled",
                          enabled, "retryable", retryable);
    if (d != NULL && !applied)
        json_object_set_new(d, "context",
                            json_pack("{s:s}", "message", message != NULL ? message : "failed"));
    return ph_wr_envelope(real_ns, "outcome", "config-update", id->instance, id->swarm, id->role,
                          id->instance, cid, ikey, d);
}

json_t *ph_wr_alert_envelope(uint64_t real_ns, const struct ph_wr_ident *id, const char *level,
                             const char *code, const char *message, char *rk, size_t rklen)
{
    if (!ph_wr_routing_key(rk, rklen, "event.alert.alert", id)) return NULL;
    return ph_wr_envelope(
        real_ns, "event", "alert", id->instance, id->swarm, id->role, id->instance, NULL, NULL,
        json_pack("{s:s,s:s,s:s}", "level", level, "code", code, "message", message));
}

/* ---- signals ------------------------------------------------------------ */

static const char *const signal_types[] = {"swarm-template", "swarm-plan",   "swarm-start",
                                           "swarm-stop",     "swarm-remove", "config-update",
                                           "status-request"};
static const char *const envelope_keys[] = {"timestamp",     "version",        "kind",
                                            "type",          "origin",         "scope",
                                            "correlationId", "idempotencyKey", "data"};

void ph_wr_signal_clear(struct ph_wr_signal *s)
{
    json_decref(s->patch);
    s->patch = NULL;
}

static enum ph_wr_sig why(struct ph_wr_signal *s, enum ph_wr_sig v, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static enum ph_wr_sig why(struct ph_wr_signal *s, enum ph_wr_sig v, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->why, sizeof s->why, fmt, ap);
    va_end(ap);
    return v;
}

/* A non-empty string member that fits `n` bytes, copied into out. */
static bool str_member(const json_t *o, const char *k, char *out, size_t n)
{
    const json_t *v = json_object_get(o, k);
    if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) >= n)
        return false;
    memcpy(out, json_string_value(v), json_string_length(v) + 1);
    return memchr(out, '\0', json_string_length(v)) == NULL;
}

/* Scope value vs routing key segment: null <=> ALL, else equal. */
static bool scope_matches(const json_t *v, const char *seg)
{
    if (json_is_null(v)) return strcmp(seg, "ALL") == 0;
    return json_is_string(v) && strcmp(seg, "ALL") != 0 && strcmp(json_string_value(v), seg) == 0;
}

/* A plausible RFC 3339 time: "YYYY-MM-DDTHH:MM:SS" then anything up to a
 * zone. */
static bool looks_rfc3339(const char *s)
{
    static const char pat[] = "dddd-dd-ddTdd:dd:dd";
    for (size_t i = 0; pat[i] != '\0'; i++) {
        if (pat[i] == 'd' ? !isdigit((unsigned char)s[i]) : s[i] != pat[i]) return false;
    }
    return true;
}

/* `enabled` of a patch as a bool: a bool, or "true" / "false". */
static bool normalise_enabled(json_t *patch, char *err, size_t n)
{
    json_t *e = json_object_get(patch, "enabled");
    if (e == NULL || json_is_boolean(e)) return true;
    if (json_is_string(e) &&
        (strcmp(json_string_value(e), "true") == 0 || strcmp(json_string_value(e), "false") == 0)) {
        json_object_set_new(patch, "enabled",
                            json_boolean(strcmp(json_string_value(e), "true") == 0));
        return true;
    }
    snprintf(err, n, "data.enabled must be a boolean or \"true\"/\"false\"");
    return false;
}

enum ph_wr_sig ph_wr_signal_parse(const struct ph_wr_ident *id, const char *rk, size_t rklen,
                                  const char *body, size_t len, struct ph_wr_signal *out)
{
    memset(out, 0, sizeof *out);
    /* The routing key: signal.<type>.<swarm>.<role>.<instance>. */
    char key[RK_LEN];
    if (rklen == 0 || rklen >= sizeof key)
        return why(out, PH_WR_SIG_REJECT, "routing key missing or too long");
    memcpy(key, rk, rklen);
    key[rklen] = '\0';
    char *seg[6];
    int nseg = 0;
    for (char *p = key, *save = NULL, *t; nseg < 6 && (t = strtok_r(p, ".", &save)) != NULL;
         p = NULL)
        seg[nseg++] = t;
    if (nseg != 5 || strcmp(seg[0], "signal") != 0 || memchr(rk, '\0', rklen) != NULL ||
        memmem(rk, rklen, "..", 2) != NULL || rk[rklen - 1] == '.')
        return why(out, PH_WR_SIG_REJECT,
                   "routing key is not signal.<type>.<swarm>.<role>.<instance>");

    json_error_t je;
    json_t *env = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    if (env == NULL) {
        /* jansson quotes the token near the error: part of a secret maybe. */
        char *near = strstr(je.text, " near ");
        if (near != NULL) *near = '\0';
        return why(out, PH_WR_SIG_REJECT, "not a JSON object: %s", je.text);
    }
    enum ph_wr_sig v = PH_WR_SIG_REJECT;
    if (!json_is_object(env)) {
        why(out, v, "not a JSON object");
        goto done;
    }
    for (size_t i = 0; i < sizeof envelope_keys / sizeof *envelope_keys; i++)
        if (json_object_get(env, envelope_keys[i]) == NULL) {
            why(out, v, "envelope has no %s", envelope_keys[i]);
            goto done;
        }
    if (json_object_size(env) != sizeof envelope_keys / sizeof *envelope_keys) {
        why(out, v, "envelope has keys beyond the contract's nine");
        goto done;
    }
    const json_t *ts = json_object_get(env, "timestamp");
    if (!json_is_string(ts) || !looks_rfc3339(json_string_value(ts))) {
        why(out, v, "timestamp is not an RFC 3339 time");
        goto done;
    }
    if (!json_is_string(json_object_get(env, "version")) ||
        strcmp(json_string_value(json_object_get(env, "version")), "1") != 0) {
        why(out, v, "version is not \"1\"");
        goto done;
    }
    if (!json_is_string(json_object_get(env, "kind")) ||
        strcmp(json_string_value(json_object_get(env, "kind")), "signal") != 0) {
        why(out, v, "kind is not \"signal\"");
        goto done;
    }
    if (!str_member(env, "type", out->type, sizeof out->type)) {
        why(out, v, "type is not a signal type");
        goto done;
    }
    bool known = false;
    for (size_t i = 0; i < sizeof signal_types / sizeof *signal_types; i++)
        known = known || strcmp(out->type, signal_types[i]) == 0;
    if (!known || strcmp(out->type, seg[1]) != 0) {
        why(out, v, "type '%.31s' is unknown or differs from the routing key's", out->type);
        goto done;
    }
    if (!str_member(env, "origin", out->origin, sizeof out->origin)) {
        why(out, v, "origin is missing, empty or too long");
        goto done;
    }
    if (!str_member(env, "correlationId", out->cid, sizeof out->cid)) {
        why(out, v, "correlationId is missing, empty or too long");
        goto done;
    }
    const json_t *ik = json_object_get(env, "idempotencyKey");
    if (!json_is_null(ik)) {
        if (!str_member(env, "idempotencyKey", out->ikey, sizeof out->ikey)) {
            why(out, v, "idempotencyKey is neither null nor a non-empty string");
            goto done;
        }
        out->has_ikey = true;
    }
    const json_t *scope = json_object_get(env, "scope");
    const json_t *ss = json_object_get(scope, "swarmId"), *sr = json_object_get(scope, "role"),
                 *si = json_object_get(scope, "instance");
    if (!json_is_object(scope) || json_object_size(scope) != 3 || ss == NULL || sr == NULL ||
        si == NULL) {
        why(out, v, "scope is not {swarmId, role, instance}");
        goto done;
    }
    if (!scope_matches(ss, seg[2]) || !scope_matches(sr, seg[3]) || !scope_matches(si, seg[4])) {
        why(out, v, "scope disagrees with the routing key");
        goto done;
    }
    json_t *data = json_object_get(env, "data");
    if (!json_is_object(data)) {
        why(out, v, "data is not an object");
        goto done;
    }
    /* A valid signal from here on. Is it addressed to this worker? */
    const bool to_us = strcmp(seg[2], id->swarm) == 0 &&
                       (strcmp(seg[3], "ALL") == 0 || strcmp(seg[3], id->role) == 0) &&
                       (strcmp(seg[4], "ALL") == 0 || strcmp(seg[4], id->instance) == 0);
    if (!to_us) {
        v = why(out, PH_WR_SIG_IGNORE, "addressed to %s.%s.%s, not this worker", seg[2], seg[3],
                seg[4]);
        goto done;
    }
    if (strcmp(out->type, "status-request") == 0) {
        v = PH_WR_SIG_STATUS_REQUEST;
        goto done;
    }
    if (strcmp(out->type, "config-update") != 0) {
        v = why(out, PH_WR_SIG_IGNORE, "%s is not a worker's signal", out->type);
        goto done;
    }
    if (strcmp(out->origin, id->controller) != 0) {
        /* The swarm controller answers those and forwards them. */
        v = why(out, PH_WR_SIG_IGNORE, "config-update from %.64s, not the controller %.64s",
                out->origin, id->controller);
        goto done;
    }
    /* Upstream nests the patch as data.data. */
    json_t *inner = json_object_get(data, "data");
    json_t *patch = json_is_object(inner) ? inner : data;
    out->patch = json_deep_copy(patch);
    if (out->patch == NULL) {
        v = why(out, PH_WR_SIG_CONFIG_INVALID, "out of memory");
        goto done;
    }
    if (!normalise_enabled(out->patch, out->why, sizeof out->why)) {
        ph_wr_signal_clear(out);
        v = PH_WR_SIG_CONFIG_INVALID;
        goto done;
    }
    v = PH_WR_SIG_CONFIG_UPDATE;
done:
    json_decref(env);
    return v;
}

/* Whether the text up to `l` ends in a word naming a secret. */
static bool secret_upto(char *s, size_t l)
{
    const char save = s[l];
    s[l] = '\0';
    const bool secret = ph_key_is_secret(s);
    s[l] = save;
    return secret;
}

void ph_wr_log_prefix(const char *body, size_t len, char *out, size_t cap)
{
    if (cap == 0) return;
    size_t n = 0;
    for (size_t i = 0; i < len && n + 1 < cap; i++) {
        const unsigned char c = (unsigned char)body[i];
        out[n++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
    }
    out[n] = '\0';
    char *url = strstr(out, "://");
    if (url != NULL) url[3] = '\0';
    n = strlen(out);
    for (size_t l = 1; l <= n; l++) {
        const bool word_end =
            l == n || (isalpha((unsigned char)out[l - 1]) && !isalpha((unsigned char)out[l]));
        if (word_end && secret_upto(out, l)) {
            out[l] = '\0';
            return;
        }
    }
}

/* ---- the agent ---------------------------------------------------------- */

struct pending_update {
    bool used;
    uint64_t token;
    uint64_t delivery;
    uint64_t deadline_ns;
    char cid[PH_WR_STR_MAX];
    char ikey[PH_WR_STR_MAX];
    bool has_ikey;
};

struct ph_worker_agent {
    pthread_t thread;
    /* Set by ph_worker_remote_stop() from the worker's thread. */
    _Atomic bool stop;
    struct ph_wr_ident id;
    struct ph_segment *seg;
    struct ph_slot *slot;
    ph_ring_consumer status;
    ph_ring_producer cmd;
    bool status_broken;
    uint8_t *scratch;
    struct ph_amqp *amqp;

    /* The worker as its records say. */
    bool have_status;
    bool enabled;
    uint8_t io_in, io_out;
    json_t *config, *io;
    uint64_t started_real_ns;
    struct {
        uint64_t ns, processed;
    } tps_s[TPS_SAMPLES];
    unsigned tps_first, tps_n;

    /* What went out. */
    uint64_t session_seen;
    bool full_due;
    bool sent_valid;
    bool sent_enabled;
    uint8_t sent_in, sent_out;
    uint64_t last_delta_ns, last_change_ns;

    uint64_t next_token;
    struct pending_update pending[PENDING_UPDATES];
    uint64_t *settle; /* deliveries to settle after the client's callback returns */
    size_t nsettle, capsettle;
    uint64_t rejected, ignored;
    uint64_t invalid_alert_ns; /* the last control.invalid-message alert (0: none yet) */
};

static uint64_t tps_now(const struct ph_worker_agent *a)
{
    if (a->tps_n < 2) return 0;
    const unsigned last = (a->tps_first + a->tps_n - 1) % TPS_SAMPLES;
    const uint64_t dt = a->tps_s[last].ns - a->tps_s[a->tps_first].ns;
    const uint64_t dp = a->tps_s[last].processed - a->tps_s[a->tps_first].processed;
    if (dt == 0 || a->tps_s[last].processed < a->tps_s[a->tps_first].processed) return 0;
    return (uint64_t)((double)dp * 1e9 / (double)dt + 0.5);
}

static void tps_add(struct ph_worker_agent *a, uint64_t ns, uint64_t processed)
{
    if (a->tps_n == TPS_SAMPLES) {
        a->tps_first = (a->tps_first + 1) % TPS_SAMPLES;
        a->tps_n--;
    }
    const unsigned at = (a->tps_first + a->tps_n) % TPS_SAMPLES;
    a->tps_s[at].ns = ns;
    a->tps_s[at].processed = processed;
    a->tps_n++;
    /* Keep one sample at or beyond the window's start, none older. */
    while (a->tps_n > 2) {
        const unsigned second = (a->tps_first + 1) % TPS_SAMPLES;
        if (ns - a->tps_s[second].ns < PH_WR_TPS_WINDOW_NS) break;
        a->tps_first = second;
        a->tps_n--;
    }
}

static struct ph_wr_view view_of(const struct ph_worker_agent *a)
{
    return (struct ph_wr_view){.enabled = a->enabled,
                               .tps = tps_now(a),
                               .io_in = a->io_in,
                               .io_out = a->io_out,
                               .config = a->config,
                               .io = a->io,
                               .started_real_ns = a->started_real_ns};
}

static void publish_env(struct ph_worker_agent *a, const char *rk, json_t *env, bool reliable)
{
    if (env == NULL) {
        ph_error("remote agent: cannot build the message for %s", rk);
        return;
    }
    char *text = json_dumps(env, DUMP_FLAGS);
    json_decref(env);
    if (text == NULL) return;
    ph_amqp_publish(a->amqp, rk, text, strlen(text), reliable);
    free(text);
}

static void publish_status(struct ph_worker_agent *a, bool full, const char *cid)
{
    if (!a->have_status) return;
    char rk[RK_LEN];
    const struct ph_wr_view v = view_of(a);
    publish_env(a, rk, ph_wr_status_envelope(ph_real_ns(), &a->id, &v, full, cid, rk, sizeof rk),
                false);
    ph_debug("remote agent: %s (enabled %d, io %u/%u, was %d %u/%u%s)", rk, a->enabled, a->io_in,
             a->io_out, a->sent_enabled, a->sent_in, a->sent_out,
             ph_amqp_up(a->amqp) ? "" : ", down");
    a->sent_valid = true;
    a->sent_enabled = a->enabled;
    a->sent_in = a->io_in;
    a->sent_out = a->io_out;
    /* Any status message counts as the heartbeat. */
    a->last_delta_ns = ph_mono_ns();
}

static void publish_outcome(struct ph_worker_agent *a, const struct pending_update *p, bool applied,
                            bool retryable, const char *message)
{
    char rk[RK_LEN];
    publish_env(a, rk,
                ph_wr_outcome_envelope(ph_real_ns(), &a->id, applied, a->enabled, retryable,
                                       message, p->cid, p->has_ikey ? p->ikey : NULL, rk,
                                       sizeof rk),
                true);
}

static void settle_later(struct ph_worker_agent *a, uint64_t delivery)
{
    if (a->nsettle == a->capsettle) {
        size_t cap = a->capsettle ? a->capsettle * 2 : 16;
        uint64_t *n = realloc(a->settle, cap * sizeof *n);
        if (n == NULL) return; /* left unsettled: the broker delivers it again later */
        a->settle = n;
        a->capsettle = cap;
    }
    a->settle[a->nsettle++] = delivery;
}

/* Writes a command into the worker's command ring: 0, or 1 when the ring
 * is full (worth a retry), -1 when the command can never fit. */
static int write_command(struct ph_worker_agent *a, uint16_t type, uint64_t token,
                         const json_t *patch)
{
    msgpack_sbuffer pb, cb;
    msgpack_sbuffer_init(&pb);
    msgpack_sbuffer_init(&cb);
    bool ok = true;
    if (patch != NULL) {
        msgpack_packer pk;
        msgpack_packer_init(&pk, &pb, msgpack_sbuffer_write);
        /* The worker needs its secrets: a patch keeps every key. */
        ok = ph_json_pack(&pk, patch, false) == 0;
    }
    ok = ok && ph_cmd_encode(&cb, token, patch != NULL ? (const uint8_t *)pb.data : NULL,
                             patch != NULL ? pb.size : 0) == PH_OK;
    int rc = -1;
    if (ok && cb.size + PH_RING_HDR <= a->cmd.max_record)
        rc = ph_ring_write(&a->cmd, type, cb.data, (uint32_t)cb.size) ? 0 : 1;
    msgpack_sbuffer_destroy(&pb);
    msgpack_sbuffer_destroy(&cb);
    return rc;
}

/* Bad control input is reported (CONTRACT.md §6) as one alert, then at most
 * one a minute while more keeps coming; never with the message's body. */
#define INVALID_ALERT_EVERY_NS (60ull * 1000000000ull)

static void log_rejected(struct ph_worker_agent *a, const char *body, size_t len,
                         const char *reason)
{
    a->rejected++;
    const uint64_t now = ph_mono_ns();
    if (a->invalid_alert_ns == 0 || now - a->invalid_alert_ns >= INVALID_ALERT_EVERY_NS) {
        a->invalid_alert_ns = now;
        char msg[256], rk[RK_LEN];
        snprintf(msg, sizeof msg, "rejected %" PRIu64 " control message(s) without requeue; last: %.180s",
                 a->rejected, reason);
        publish_env(a, rk,
                    ph_wr_alert_envelope(ph_real_ns(), &a->id, "warn", "control.invalid-message",
                                         msg, rk, sizeof rk),
                    true);
    }
    if (a->rejected > 10 && a->rejected % 1000 != 0) return;
    char prefix[LOG_PREFIX_MAX + 1];
    ph_wr_log_prefix(body, len, prefix, sizeof prefix);
    ph_warn("remote agent: rejected a control message (%s; %" PRIu64 " so far): %s", reason,
            a->rejected, prefix);
}

static int on_delivery(void *ctx, const char *rk, size_t rklen, const char *body, size_t len,
                       uint64_t delivery)
{
    struct ph_worker_agent *a = ctx;
    struct ph_wr_signal s;
    const enum ph_wr_sig v = ph_wr_signal_parse(&a->id, rk, rklen, body, len, &s);
    switch (v) {
    case PH_WR_SIG_REJECT:
        log_rejected(a, body, len, s.why);
        ph_wr_signal_clear(&s);
        return 1;
    case PH_WR_SIG_IGNORE:
        if (a->ignored++ == 0)
            ph_info("remote agent: ignoring a signal: %s", s.why);
        else
            ph_debug("remote agent: ignoring a signal: %s", s.why);
        break;
    case PH_WR_SIG_STATUS_REQUEST:
        publish_status(a, true, s.cid);
        /* As the controller would: the worker republishes what it has. */
        write_command(a, PH_CMD_STATUS_REQUEST, a->next_token++, NULL);
        break;
    case PH_WR_SIG_CONFIG_INVALID: {
        struct pending_update p = {.has_ikey = s.has_ikey};
        snprintf(p.cid, sizeof p.cid, "%s", s.cid);
        snprintf(p.ikey, sizeof p.ikey, "%s", s.ikey);
        publish_outcome(a, &p, false, false, s.why);
        ph_warn("remote agent: config-update %s refused: %s", s.cid, s.why);
        break;
    }
    case PH_WR_SIG_CONFIG_UPDATE: {
        struct pending_update *p = NULL;
        for (int i = 0; i < PENDING_UPDATES && p == NULL; i++)
            if (!a->pending[i].used) p = &a->pending[i];
        struct pending_update tmp = {0};
        struct pending_update *q = p != NULL ? p : &tmp;
        memset(q, 0, sizeof *q);
        q->has_ikey = s.has_ikey;
        snprintf(q->cid, sizeof q->cid, "%s", s.cid);
        snprintf(q->ikey, sizeof q->ikey, "%s", s.ikey);
        q->token = a->next_token++;
        const int wr = p != NULL ? write_command(a, PH_CMD_CONFIG_PATCH, q->token, s.patch) : 1;
        if (wr != 0) {
            publish_outcome(a, q, false, wr > 0,
                            p == NULL ? "too many config-updates waiting for the worker"
                            : wr > 0  ? "the worker's command ring is full"
                                      : "the patch is too large for the worker's command ring");
            ph_warn("remote agent: config-update %s not delivered to the worker", s.cid);
            break;
        }
        p->used = true;
        p->delivery = delivery;
        p->deadline_ns = ph_mono_ns() + PH_WR_ACK_TIMEOUT_NS;
        ph_wr_signal_clear(&s);
        return 0; /* settled once its outcome is published */
    }
    }
    ph_wr_signal_clear(&s);
    settle_later(a, delivery);
    return 0;
}

static json_t *doc_json(const uint8_t *body, uint32_t len)
{
    char err[128];
    msgpack_zone zone;
    msgpack_zone_init(&zone, 1024);
    msgpack_object o;
    json_t *j = NULL;
    if (ph_mp_decode(body, len, true, &zone, &o, err, sizeof err) == PH_OK) j = ph_mp_to_json(&o);
    msgpack_zone_destroy(&zone);
    return j;
}

static void on_ack(struct ph_worker_agent *a, const struct ph_rec_ack *ack)
{
    for (int i = 0; i < PENDING_UPDATES; i++) {
        struct pending_update *p = &a->pending[i];
        if (!p->used || p->token != ack->token) continue;
        publish_outcome(a, p, ack->ok, false, ack->message[0] ? ack->message : "refused");
        ph_amqp_settle(a->amqp, p->delivery);
        p->used = false;
        /* The state this patch left: the records before its ack (config,
         * io, status) are drained already. */
        publish_status(a, true, NULL);
        return;
    }
    /* A status request's ack, or one past its deadline: nothing waits. */
}

static int on_record(void *ctx, uint16_t type, const uint8_t *body, uint32_t len)
{
    struct ph_worker_agent *a = ctx;
    switch (type) {
    case PH_REC_STATUS: {
        struct ph_rec_status st;
        if (ph_rec_status_decode(body, len, &st) != PH_OK) break;
        a->enabled = (st.flags & PH_STATUS_ENABLED) != 0;
        a->io_in = st.io_in;
        a->io_out = st.io_out;
        tps_add(a, st.mono_ns, st.processed);
        if (!a->have_status) a->full_due = true; /* the start */
        a->have_status = true;
        break;
    }
    case PH_REC_CONFIG:
    case PH_REC_IO: {
        json_t *j = doc_json(body, len);
        if (j == NULL) break;
        json_t **slot = type == PH_REC_CONFIG ? &a->config : &a->io;
        json_decref(*slot);
        *slot = j;
        break;
    }
    case PH_REC_ALERT: {
        struct ph_rec_alert al;
        if (ph_rec_alert_decode(body, len, &al) != PH_OK) break;
        char rk[RK_LEN];
        publish_env(a, rk,
                    ph_wr_alert_envelope(ph_real_ns(), &a->id, al.level, al.code, al.message, rk,
                                         sizeof rk),
                    true);
        break;
    }
    case PH_REC_ACK: {
        struct ph_rec_ack ack;
        if (ph_rec_ack_decode(body, len, &ack) == PH_OK) on_ack(a, &ack);
        break;
    }
    default:
        break; /* META and newer records: nothing to relay */
    }
    return 0;
}

static void drain(struct ph_worker_agent *a)
{
    if (a->status_broken) return;
    if (ph_ring_drain(&a->status, on_record, a, a->scratch, 0) < 0) {
        a->status_broken = true;
        ph_error("remote agent: the worker's status ring is corrupt; its status is no longer "
                 "relayed");
    }
}

static void emit(struct ph_worker_agent *a)
{
    uint64_t now = ph_mono_ns();
    const uint64_t session = ph_amqp_session(a->amqp);
    if (ph_amqp_up(a->amqp)) {
        /* The worker's controller_alive(): the broker is reachable. relaxed:
         * a free-standing timestamp. */
        atomic_store_explicit(&a->seg->hdr->controller_heartbeat_ns, now, memory_order_relaxed);
        if (session != a->session_seen) {
            /* A new connection: the broker's subscribers get the whole state. */
            a->session_seen = session;
            a->full_due = true;
        }
    }
    if (!a->have_status) return;
    if (a->full_due) {
        publish_status(a, true, NULL);
        a->full_due = false;
    }
    /* Not before publish_status() read the clock for last_delta_ns. */
    now = ph_mono_ns();
    const bool changed = a->sent_valid && (a->sent_enabled != a->enabled ||
                                           a->sent_in != a->io_in || a->sent_out != a->io_out);
    if ((changed && now - a->last_change_ns >= PH_WR_DELTA_MIN_NS) ||
        now - a->last_delta_ns >= (uint64_t)a->id.heartbeat_ms * 1000000ull) {
        if (changed) a->last_change_ns = now;
        publish_status(a, false, NULL);
    }
}

static void expire(struct ph_worker_agent *a)
{
    const uint64_t now = ph_mono_ns();
    for (int i = 0; i < PENDING_UPDATES; i++) {
        struct pending_update *p = &a->pending[i];
        if (!p->used || now < p->deadline_ns) continue;
        publish_outcome(a, p, false, true, "the worker did not acknowledge the patch in time");
        ph_amqp_settle(a->amqp, p->delivery);
        p->used = false;
        ph_warn("remote agent: config-update %s timed out", p->cid);
    }
}

static void wait_io(struct ph_worker_agent *a)
{
    uint64_t session;
    const int fd = ph_amqp_fd(a->amqp, &session);
    if (fd >= 0 && ph_amqp_buffered(a->amqp)) return;
    if (fd < 0) {
        struct timespec ts = {0, PH_WR_POLL_MS * 1000000L};
        nanosleep(&ts, NULL);
        return;
    }
    struct pollfd p = {.fd = fd, .events = POLLIN};
    poll(&p, 1, PH_WR_POLL_MS);
}

static void step(struct ph_worker_agent *a)
{
    ph_amqp_flush(a->amqp);
    for (size_t i = 0; i < a->nsettle; i++)
        ph_amqp_settle(a->amqp, a->settle[i]);
    a->nsettle = 0;
    drain(a);
    emit(a);
    expire(a);
}

static void *agent_main(void *arg)
{
    struct ph_worker_agent *a = arg;
    /* relaxed: the flag carries no data; the worker's final records are
     * ordered by the ring (its release of tail, our acquire), and the join
     * orders everything else. */
    while (!atomic_load_explicit(&a->stop, memory_order_relaxed)) {
        wait_io(a);
        step(a);
    }
    /* The worker's last records (its detach wrote them before stopping
     * us): published with a final delta while connected. */
    drain(a);
    if (ph_amqp_up(a->amqp)) {
        ph_amqp_flush(a->amqp);
        if (a->full_due) publish_status(a, true, NULL);
        publish_status(a, false, NULL);
    }
    return NULL;
}

static void agent_free(struct ph_worker_agent *a)
{
    if (a->amqp != NULL) ph_amqp_close(a->amqp, ph_amqp_up(a->amqp) ? CLOSE_WAIT_NS : 0);
    json_decref(a->config);
    json_decref(a->io);
    free(a->settle);
    free(a->scratch);
    free(a);
}

struct ph_worker_agent *ph_worker_remote_start(const struct ph_worker_remote_args *args, char *err,
                                               size_t errlen)
{
    struct ph_worker_agent *a = calloc(1, sizeof *a);
    if (a == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    a->id = *args->ident;
    a->seg = args->seg;
    a->slot = args->slot;
    a->started_real_ns = args->started_real_ns;
    a->next_token = 1;
    atomic_init(&a->stop, false);
    if (ph_ring_consumer_init(&a->status, &a->slot->status, ph_slot_status_data(a->seg, a->slot),
                              a->seg->status_ring) != PH_OK ||
        ph_ring_producer_init(&a->cmd, &a->slot->command, ph_slot_command_data(a->seg, a->slot),
                              a->seg->command_ring) != PH_OK) {
        snprintf(err, errlen, "the private slot's rings are inconsistent");
        agent_free(a);
        return NULL;
    }
    a->scratch = malloc(a->status.max_record);
    if (a->scratch == NULL) {
        snprintf(err, errlen, "out of memory");
        agent_free(a);
        return NULL;
    }
    struct ph_amqp_url url;
    if (ph_amqp_url_load(&url, args->url_file, err, errlen) != PH_OK) {
        agent_free(a);
        return NULL;
    }
    char queue[RK_LEN];
    snprintf(queue, sizeof queue, "ph.control.%s.%s.%s", a->id.swarm, a->id.role, a->id.instance);
    const struct ph_amqp_cfg cfg = {.name = "worker",
                                    .queue = queue,
                                    .durable_queue = true,
                                    .prefetch = 20,
                                    .deliver = on_delivery,
                                    .deliver_ctx = a};
    if (ph_amqp_open(&a->amqp, &url, &cfg, err, errlen) != PH_OK) {
        agent_free(a);
        return NULL;
    }
    json_t *keys = json_object();
    static const char *const types[] = {"config-update", "status-request"};
    for (int t = 0; t < 2; t++) {
        char k[RK_LEN];
        snprintf(k, sizeof k, "signal.%s.%s.%s.%s", types[t], a->id.swarm, a->id.role,
                 a->id.instance);
        json_object_set_new(keys, k, json_true());
        snprintf(k, sizeof k, "signal.%s.%s.%s.ALL", types[t], a->id.swarm, a->id.role);
        json_object_set_new(keys, k, json_true());
        snprintf(k, sizeof k, "signal.%s.%s.ALL.ALL", types[t], a->id.swarm);
        json_object_set_new(keys, k, json_true());
    }
    ph_amqp_bind(a->amqp, keys);
    const int rc = pthread_create(&a->thread, NULL, agent_main, a);
    if (rc != 0) {
        snprintf(err, errlen, "cannot start the remote agent thread: %s", strerror(rc));
        agent_free(a);
        return NULL;
    }
    ph_info("remote mode: %s/%s of swarm %s reports over AMQP to %s (controller %s)", a->id.role,
            a->id.instance, a->id.swarm, ph_amqp_where(a->amqp), a->id.controller);
    return a;
}

void ph_worker_remote_stop(struct ph_worker_agent *a)
{
    if (a == NULL) return;
    /* relaxed: see agent_main(); pthread_join orders the rest. */
    atomic_store_explicit(&a->stop, true, memory_order_relaxed);
    pthread_join(a->thread, NULL);
    agent_free(a);
}
