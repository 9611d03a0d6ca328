/* The orchestrator's HTTP API (api.h). */
#include "api.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "contract.h"
#include "guard.h"

#define JSON_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(6))

void api_init(struct api *a, struct registry *reg, api_publish_fn publish, void *ctx)
{
    memset(a, 0, sizeof *a);
    a->reg = reg;
    a->publish = publish;
    a->publish_ctx = ctx;
}

void api_resp_free(struct api_resp *r)
{
    free(r->body);
    r->body = NULL;
}

void api_new_id(char *buf, size_t n, const char *prefix)
{
    uint8_t b[16];
    if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b) {
        /* Never expected; a clock-based id is still unique enough here. */
        uint64_t t = ph_real_ns();
        memcpy(b, &t, sizeof t);
        memcpy(b + 8, &t, sizeof t);
    }
    size_t k = (size_t)snprintf(buf, n, "%s", prefix);
    for (size_t i = 0; i < sizeof b && k + 2 < n; i++) k += (size_t)snprintf(buf + k, n - k, "%02x", b[i]);
}

static void reply_json(struct api_resp *out, int status, json_t *body)
{
    out->status = status;
    out->content_type = "application/json";
    out->body = body != NULL ? json_dumps(body, JSON_FLAGS) : NULL;
    json_decref(body);
    if (out->body == NULL) {
        out->status = 500;
        out->body = strdup("{\"error\":\"out of memory\"}");
    }
    out->len = out->body != NULL ? strlen(out->body) : 0;
}

static void reply_error(struct api_resp *out, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void reply_error(struct api_resp *out, int status, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    reply_json(out, status, json_pack("{s:s, s:i}", "error", msg, "status", status));
}

/* ---- broadcasts ---------------------------------------------------------- */

json_t *api_broadcast(struct api *a, bool reset, bool throttled, uint64_t now, uint64_t real_ns)
{
    struct api_broadcast own = {0};
    /* The orchestrator's own rebuilds neither wait for nor count against
     * the callers' throttle. */
    struct api_broadcast *b = !throttled ? &own : reset ? &a->reset : &a->refresh;
    const char *mode = reset ? "reset" : "refresh";
    if (throttled && b->at_ns != 0 && now - b->at_ns < API_THROTTLE_NS)
        return json_pack("{s:s, s:s, s:s, s:i, s:b, s:s}", "mode", mode, "correlationId", b->cid,
                         "idempotencyKey", b->ikey, "signalsPublished", 0, "throttled", 1,
                         "issuedAt", b->issued_at);
    if (reset) reg_reset(a->reg);
    b->at_ns = now;
    api_new_id(b->cid, sizeof b->cid, "orch-");
    api_new_id(b->ikey, sizeof b->ikey, "orch-ik-");
    ph_rfc3339_ms(real_ns, b->issued_at);
    int published = 0;
    if (a->reg->n == 0) {
        /* Nobody known: every controller is asked. */
        if (a->publish(a->publish_ctx, "status-request", NULL, CONTRACT_CONTROLLER_ROLE, NULL,
                       b->cid, b->ikey, json_object()) == 0)
            published++;
    }
    for (uint32_t i = 0; i < a->reg->n; i++) {
        struct reg_swarm *s = &a->reg->s[i];
        if (a->publish(a->publish_ctx, "status-request", s->id, NULL, NULL, b->cid, b->ikey,
                       json_object()) == 0) {
            published++;
            reg_full_requested(a->reg, s->id, now);
        }
    }
    return json_pack("{s:s, s:s, s:s, s:i, s:b, s:s}", "mode", mode, "correlationId", b->cid,
                     "idempotencyKey", b->ikey, "signalsPublished", published, "throttled", 0,
                     "issuedAt", b->issued_at);
}

/* ---- routes -------------------------------------------------------------- */

/* Splits "/a/b/c" into at most `max` segments (in place, in buf). */
static int segments(char *buf, char **seg, int max)
{
    int n = 0;
    char *save = NULL;
    for (char *p = strtok_r(buf, "/", &save); p != NULL; p = strtok_r(NULL, "/", &save)) {
        if (n == max) return -1;
        seg[n++] = p;
    }
    return n;
}

static void list_swarms(struct api *a, uint64_t now, uint64_t real_ns, struct api_resp *out)
{
    json_t *arr = json_array();
    for (uint32_t i = 0; i < a->reg->n; i++)
        json_array_append_new(arr, reg_swarm_json(a->reg, &a->reg->s[i], now, real_ns));
    reply_json(out, 200, arr);
}

static bool is_command(const char *s)
{
    return strcmp(s, "start") == 0 || strcmp(s, "stop") == 0 || strcmp(s, "remove") == 0 ||
           strcmp(s, "status-request") == 0;
}

/* The optional body of a command: {"idempotencyKey": "..."} to retry an
 * action, nothing else. */
static bool command_body(const char *body, size_t len, char *ikey, size_t n, struct api_resp *out)
{
    ikey[0] = '\0';
    if (len == 0) return true;
    json_error_t je;
    json_t *b = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    if (!json_is_object(b)) {
        reply_error(out, 400, "the body must be a JSON object (%s)", b ? "another JSON type" : je.text);
        json_decref(b);
        return false;
    }
    const char *k;
    json_t *v;
    json_object_foreach(b, k, v)
    {
        if (strcmp(k, "idempotencyKey") != 0) {
            reply_error(out, 400, "unknown key '%.64s' in the body (only idempotencyKey)", k);
            json_decref(b);
            return false;
        }
    }
    const json_t *ik = json_object_get(b, "idempotencyKey");
    if (ik != NULL) {
        char why[160];
        if (contract_check_id("idempotencyKey", ik, true, why, sizeof why) != PH_OK ||
            json_string_length(ik) >= n) {
            reply_error(out, 400, "%s", why);
            json_decref(b);
            return false;
        }
        snprintf(ikey, n, "%s", json_string_value(ik));
    }
    json_decref(b);
    return true;
}

static void command(struct api *a, const char *id, const char *cmd, const char *body, size_t len,
                    uint64_t now, uint64_t real_ns, struct api_resp *out)
{
    struct reg_swarm *s = reg_find(a->reg, id);
    if (s == NULL) {
        reply_error(out, 404, "no swarm '%s' is known (GET /api/swarms lists them)", id);
        return;
    }
    char ikey[256], cid[64];
    if (!command_body(body, len, ikey, sizeof ikey, out)) return;
    if (ikey[0] == '\0') api_new_id(ikey, sizeof ikey, "orch-ik-");
    api_new_id(cid, sizeof cid, "orch-");
    char type[32];
    snprintf(type, sizeof type, "%s%s", strcmp(cmd, "status-request") == 0 ? "" : "swarm-", cmd);
    if (a->publish(a->publish_ctx, type, s->id, CONTRACT_CONTROLLER_ROLE,
                   s->controller[0] ? s->controller : NULL, cid, ikey, json_object()) != 0) {
        reply_error(out, 503, "the broker is not reachable: %s not sent", type);
        return;
    }
    reg_issued(a->reg, cid, s->id, now);
    char ts[32];
    ph_rfc3339_ms(real_ns, ts);
    reply_json(out, 202, json_pack("{s:s, s:s, s:s, s:s, s:s}", "swarmId", s->id, "signal", type,
                                   "correlationId", cid, "idempotencyKey", ikey, "issuedAt", ts));
}

static void outcome(struct api *a, const char *id, const char *cid, struct api_resp *out)
{
    const struct reg_outcome *o = reg_outcome(a->reg, cid);
    if (o == NULL || (o->swarm[0] != '\0' && strcmp(o->swarm, id) != 0)) {
        reply_error(out, 404, "no outcome known for correlationId '%.128s' of swarm '%s'", cid, id);
        return;
    }
    if (o->env == NULL) {
        reply_json(out, 202, json_pack("{s:s, s:s}", "correlationId", cid, "status", "pending"));
        return;
    }
    reply_json(out, 200, json_incref(o->env));
}

/* Whether a request to a POST route may go on: POST, with a JSON body type
 * (guard.h: a page of another site cannot send that without a preflight);
 * else the 405 or 415 is in *out. */
static bool takes_post(const char *method, const char *path, const char *content_type,
                       struct api_resp *out)
{
    if (strcmp(method, "POST") != 0) {
        reply_error(out, 405, "%.200s takes POST", path);
        return false;
    }
    if (!guard_json_type(content_type)) {
        reply_error(out, 415,
                    "POST %.200s needs the header Content-Type: application/json, also without "
                    "a body (%s)",
                    path, content_type != NULL ? "another type was given" : "none was given");
        return false;
    }
    return true;
}

void api_handle(struct api *a, const char *method, const char *path, const char *content_type,
                const char *body, size_t body_len, uint64_t now, uint64_t real_ns,
                struct api_resp *out)
{
    memset(out, 0, sizeof *out);
    a->requests++;
    char buf[512];
    char *seg[8];
    int n = -1;
    if (strlen(path) < sizeof buf) {
        snprintf(buf, sizeof buf, "%s", path);
        char *q = strchr(buf, '?');
        if (q != NULL) *q = '\0';
        n = segments(buf, seg, 8);
    }
    const bool get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    char why[160];
    if (n < 0) {
        reply_error(out, 404, "no such route");
    } else if (body_len > API_MAX_BODY) {
        reply_error(out, 413, "the body is larger than %d bytes", API_MAX_BODY);
    } else if (n == 1 && strcmp(seg[0], "metrics") == 0) {
        if (!get) {
            reply_error(out, 405, "/metrics takes GET");
        } else {
            out->status = 200;
            out->content_type = "text/plain; version=0.0.4; charset=utf-8";
            out->body = api_metrics(a, now);
            out->len = out->body ? strlen(out->body) : 0;
        }
    } else if (n < 2 || strcmp(seg[0], "api") != 0) {
        reply_error(out, 404, "no such route: %.200s", path);
    } else if (n == 2 && strcmp(seg[1], "swarms") == 0) {
        if (get) list_swarms(a, now, real_ns, out);
        else reply_error(out, 405, "/api/swarms takes GET");
    } else if (n == 2 && strcmp(seg[1], "ui-config") == 0) {
        if (!get) reply_error(out, 405, "/api/ui-config takes GET");
        else if (a->ui_config == NULL) reply_error(out, 404, "no UI configuration: the orchestrator runs without observer credentials");
        else reply_json(out, 200, json_incref(a->ui_config));
    } else if (n == 3 && strcmp(seg[1], "control-plane") == 0 &&
               (strcmp(seg[2], "refresh") == 0 || strcmp(seg[2], "reset") == 0)) {
        if (takes_post(method, path, content_type, out))
            reply_json(out, 202,
                       api_broadcast(a, strcmp(seg[2], "reset") == 0, true, now, real_ns));
    } else if (strcmp(seg[1], "swarms") == 0 &&
               ph_ident_check("swarm id", seg[2], why, sizeof why) != PH_OK) {
        reply_error(out, 400, "%s", why);
    } else if (n == 3 && strcmp(seg[1], "swarms") == 0) {
        struct reg_swarm *s = get ? reg_find(a->reg, seg[2]) : NULL;
        if (!get) reply_error(out, 405, "%.200s takes GET", path);
        else if (s == NULL) reply_error(out, 404, "no swarm '%s' is known (GET /api/swarms lists them)", seg[2]);
        else reply_json(out, 200, reg_swarm_json(a->reg, s, now, real_ns));
    } else if (n == 4 && strcmp(seg[1], "swarms") == 0 && is_command(seg[3])) {
        if (takes_post(method, path, content_type, out))
            command(a, seg[2], seg[3], body, body_len, now, real_ns, out);
    } else if (n == 5 && strcmp(seg[1], "swarms") == 0 && strcmp(seg[3], "outcomes") == 0) {
        if (!get) reply_error(out, 405, "%.200s takes GET", path);
        else outcome(a, seg[2], seg[4], out);
    } else {
        reply_error(out, 404, "no such route: %.200s", path);
    }
    if (out->status >= 400) a->errors++;
}

/* ---- metrics ---------------------------------------------------------------- */

struct text {
    char *buf;
    size_t len, cap;
    bool oom;
};

static void put(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct text *t, const char *fmt, ...)
{
    if (t->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        /* No buffer yet: only measure (a null pointer takes no offset). */
        int n = t->buf != NULL ? vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap)
                               : vsnprintf(NULL, 0, fmt, ap);
        va_end(ap);
        if (n < 0) return;
        if ((size_t)n < t->cap - t->len) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = t->cap ? t->cap * 2 : 4096;
        while (cap < t->len + (size_t)n + 1) cap *= 2;
        char *b = realloc(t->buf, cap);
        if (b == NULL) {
            t->oom = true;
            return;
        }
        t->buf = b;
        t->cap = cap;
    }
}

/* Label values are identifiers or enum names here; anything else is
 * escaped as the exposition format wants (backslash, quote, newline). */
static const char *label(const char *s, char *buf, size_t n)
{
    size_t k = 0;
    for (; s != NULL && *s && k + 3 < n; s++) {
        if (*s == '\\' || *s == '"') buf[k++] = '\\';
        if (*s == '\n') {
            buf[k++] = '\\';
            buf[k++] = 'n';
            continue;
        }
        buf[k++] = *s;
    }
    buf[k] = '\0';
    return buf;
}

static long long num(const json_t *o, const char *k)
{
    const json_t *v = json_object_get(o, k);
    return json_is_integer(v) ? (long long)json_integer_value(v) : 0;
}

char *api_metrics(const struct api *a, uint64_t now)
{
    struct text t = {0};
    const struct registry *r = a->reg;
    put(&t, "# HELP ph_swarms Swarms the orchestrator knows.\n# TYPE ph_swarms gauge\n");
    put(&t, "ph_swarms %u\n", r->n);
    static const char *const gauges[][2] = {
        {"ph_swarm_tps", "Transactions per second of the swarm (sum of its workers)."},
        {"ph_swarm_work_enabled", "1 when the swarm's workloads are enabled."},
        {"ph_swarm_heartbeat_age_seconds", "Seconds since the controller's last status."},
        {"ph_swarm_workers", "Workers by kind (desired, healthy, running, enabled)."},
        {"ph_swarm_info", "Status, state, health and ioState of the swarm, as labels; always 1."},
    };
    for (size_t g = 0; g < sizeof gauges / sizeof gauges[0]; g++) {
        put(&t, "# HELP %s %s\n# TYPE %s gauge\n", gauges[g][0], gauges[g][1], gauges[g][0]);
        for (uint32_t i = 0; i < r->n; i++) {
            const struct reg_swarm *s = &r->s[i];
            const json_t *d = s->delta, *ctx = json_object_get(d, "context");
            char id[2 * PH_ID_MAX];
            label(s->id, id, sizeof id);
            switch (g) {
            case 0: put(&t, "ph_swarm_tps{swarm=\"%s\"} %lld\n", id, num(d, "tps")); break;
            case 1:
                put(&t, "ph_swarm_work_enabled{swarm=\"%s\"} %d\n", id,
                    json_is_true(json_object_get(d, "enabled")));
                break;
            case 2:
                put(&t, "ph_swarm_heartbeat_age_seconds{swarm=\"%s\"} %.3f\n", id,
                    (double)(now > s->last_status_ns ? now - s->last_status_ns : 0) / 1e9);
                break;
            case 3: {
                const json_t *tot = json_object_get(ctx, "totals");
                static const char *const kinds[] = {"desired", "healthy", "running", "enabled"};
                for (int k = 0; k < 4; k++)
                    put(&t, "ph_swarm_workers{swarm=\"%s\",kind=\"%s\"} %lld\n", id, kinds[k],
                        num(tot, kinds[k]));
                break;
            }
            default: {
                const json_t *work = json_object_get(json_object_get(d, "ioState"), "work");
                char st[64], state[64], in[64], outb[64];
                put(&t,
                    "ph_swarm_info{swarm=\"%s\",status=\"%s\",state=\"%s\",health=\"%s\","
                    "io_input=\"%s\",io_output=\"%s\"} 1\n",
                    id, label(json_string_value(json_object_get(ctx, "swarmStatus")), st, sizeof st),
                    label(json_string_value(json_object_get(ctx, "state")), state, sizeof state),
                    reg_health_name(reg_health(r, s, now)),
                    label(json_string_value(json_object_get(work, "input")), in, sizeof in),
                    label(json_string_value(json_object_get(work, "output")), outb, sizeof outb));
            }
            }
        }
    }
    put(&t, "# HELP ph_orchestrator_http_requests_total HTTP requests served.\n"
            "# TYPE ph_orchestrator_http_requests_total counter\n"
            "ph_orchestrator_http_requests_total %llu\n",
        (unsigned long long)a->requests);
    put(&t, "# HELP ph_orchestrator_documents_total Controller documents and outcomes read.\n"
            "# TYPE ph_orchestrator_documents_total counter\n"
            "ph_orchestrator_documents_total %llu\n",
        (unsigned long long)r->docs);
    if (t.oom) {
        free(t.buf);
        return strdup("# out of memory\n");
    }
    return t.buf != NULL ? t.buf : strdup("");
}
