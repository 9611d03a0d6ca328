/* The contract's rules (contract.h), checked on jansson values.
 *
 * The checks are written to be read next to CONTRACT.md: one function per
 * section, each violation reported as a sentence naming the field and the
 * rule, because a refused document is only useful if the person reading the
 * log can find the bug in the emitter from it. The first violation wins;
 * later ones are not searched for. */
#include "contract.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "ph/record.h"
#include "text.h"

const char *const contract_envelope_keys[CONTRACT_ENVELOPE_KEYS] = {
    "timestamp", "version",       "kind",           "type", "origin",
    "scope",     "correlationId", "idempotencyKey", "data"};

const char *const contract_signal_types[CONTRACT_SIGNAL_TYPES] = {
    "swarm-template", "swarm-plan",    "swarm-start",   "swarm-stop",
    "swarm-remove",   "config-update", "status-request"};

static const char *const kind_names[] = {"signal", "outcome", "metric", "event"};

static const char *const swarm_statuses[] = {"NEW",      "READY",   "STARTING", "RUNNING",
                                             "STOPPING", "STOPPED", "REMOVED",  "FAILED"};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* A key or value quoted in a reason: short, one line, valid UTF-8. */
struct shown {
    char s[64];
};
static struct shown show(const char *s)
{
    struct shown r = {{0}}; /* text_prefix fills it; zeroed for analysers */
    bool all = text_prefix(s, strlen(s), 48, r.s);
    if (!all) strcat(r.s, "...");
    return r;
}

static bool in_list(const char *s, const char *const *list, size_t n)
{
    for (size_t i = 0; s != NULL && i < n; i++)
        if (strcmp(s, list[i]) == 0) return true;
    return false;
}

int contract_kind_parse(const char *s)
{
    for (size_t i = 0; s != NULL && i < COUNT(kind_names); i++)
        if (strcmp(s, kind_names[i]) == 0) return (int)i;
    return -1;
}

const char *contract_kind_name(enum contract_kind k)
{
    return (unsigned)k < COUNT(kind_names) ? kind_names[k] : "?";
}

bool contract_signal_type_known(const char *s)
{
    return in_list(s, contract_signal_types, CONTRACT_SIGNAL_TYPES);
}

/* Which types a kind may carry (CONTRACT §2). Outcomes answer signals, so
 * their types are the signal types. */
static int check_type(enum contract_kind kind, const char *type, char *why, size_t n)
{
    switch (kind) {
    case CK_SIGNAL:
    case CK_OUTCOME:
        if (contract_signal_type_known(type)) return PH_OK;
        return text_reason(why, n, "%s type '%s' is not one of the seven signal types",
                           contract_kind_name(kind), show(type).s);
    case CK_METRIC:
        if (strcmp(type, "status-full") == 0 || strcmp(type, "status-delta") == 0) return PH_OK;
        return text_reason(why, n, "metric type '%s' is neither status-full nor status-delta",
                           show(type).s);
    case CK_EVENT:
        if (strcmp(type, "alert") == 0) return PH_OK;
        return text_reason(why, n, "event type '%s' is not 'alert'", show(type).s);
    }
    return text_reason(why, n, "unknown kind");
}

int contract_rk_build(char *buf, size_t n, enum contract_kind kind, const char *type,
                      const char *swarm, const char *role, const char *instance, char *why,
                      size_t whylen)
{
    if (type == NULL) return text_reason(why, whylen, "no type");
    int rc = check_type(kind, type, why, whylen);
    if (rc != PH_OK) return rc;
    const char *seg[3] = {swarm, role, instance};
    static const char *const what[3] = {"scope swarmId", "scope role", "scope instance"};
    for (int i = 0; i < 3; i++) {
        if (seg[i] == NULL) {
            seg[i] = CONTRACT_ALL;
            continue;
        }
        rc = ph_ident_check(what[i], seg[i], why, whylen);
        if (rc != PH_OK) return rc;
    }
    static const char *const family[] = {"signal", "event.outcome", "event.metric", "event.alert"};
    int w = snprintf(buf, n, "%s.%s.%s.%s.%s", family[kind], type, seg[0], seg[1], seg[2]);
    if (w < 0 || (size_t)w >= n)
        return text_reason(why, whylen, "routing key longer than %zu bytes", n);
    return PH_OK;
}

/* A routing segment: ALL, or an identifier (ph_ident_check's rules). */
static int rk_segment(const char *what, const char *seg, char *dst, size_t dstlen, char *why,
                      size_t whylen)
{
    if (strcmp(seg, CONTRACT_ALL) == 0) {
        dst[0] = '\0';
        return PH_OK;
    }
    int rc = ph_ident_check(what, seg, why, whylen);
    if (rc == PH_OK) snprintf(dst, dstlen, "%s", seg);
    return rc;
}

int contract_rk_parse(const char *rk, struct contract_rk *out, char *why, size_t whylen)
{
    char buf[CONTRACT_RK_MAX];
    size_t len = rk != NULL ? strnlen(rk, sizeof buf) : 0;
    if (len == 0) return text_reason(why, whylen, "routing key is empty");
    if (len >= sizeof buf)
        return text_reason(why, whylen, "routing key is longer than %d bytes", CONTRACT_RK_MAX - 1);
    memcpy(buf, rk, len + 1);
    char *seg[7];
    int nseg = 0;
    for (char *p = buf;;) {
        if (nseg == 7) return text_reason(why, whylen, "routing key has more than 6 segments");
        seg[nseg++] = p;
        char *dot = strchr(p, '.');
        if (dot == NULL) break;
        *dot = '\0';
        p = dot + 1;
    }
    memset(out, 0, sizeof *out);
    int first; /* index of the type segment */
    if (strcmp(seg[0], "signal") == 0) {
        if (nseg != 5)
            return text_reason(why, whylen,
                               "signal routing key has %d segments, expected "
                               "signal.<type>.<swarmId>.<role>.<instance>",
                               nseg);
        out->kind = CK_SIGNAL;
        first = 1;
    } else if (strcmp(seg[0], "event") == 0) {
        if (nseg != 6)
            return text_reason(why, whylen,
                               "event routing key has %d segments, expected "
                               "event.<category>.<type>.<swarmId>.<role>.<instance>",
                               nseg);
        if (strcmp(seg[1], "metric") == 0)
            out->kind = CK_METRIC;
        else if (strcmp(seg[1], "outcome") == 0)
            out->kind = CK_OUTCOME;
        else if (strcmp(seg[1], "alert") == 0)
            out->kind = CK_EVENT;
        else
            return text_reason(why, whylen, "unknown event category '%s'", show(seg[1]).s);
        first = 2;
    } else {
        return text_reason(why, whylen, "routing key starts with '%s', not 'signal' or 'event'",
                           show(seg[0]).s);
    }
    /* The type segment follows the identifier rules too (kebab-case names);
     * whether the contract knows it is the caller's question. */
    int rc = ph_ident_check("routing key type", seg[first], why, whylen);
    if (rc != PH_OK) return rc;
    if (strlen(seg[first]) >= sizeof out->type)
        return text_reason(why, whylen, "routing key type is longer than %zu bytes",
                           sizeof out->type - 1);
    snprintf(out->type, sizeof out->type, "%s", seg[first]);
    if ((rc = rk_segment("routing key swarm", seg[first + 1], out->swarm, sizeof out->swarm, why,
                         whylen)) != PH_OK ||
        (rc = rk_segment("routing key role", seg[first + 2], out->role, sizeof out->role, why,
                         whylen)) != PH_OK ||
        (rc = rk_segment("routing key instance", seg[first + 3], out->instance,
                         sizeof out->instance, why, whylen)) != PH_OK)
        return rc;
    return PH_OK;
}

/* Reads exactly n ASCII digits; the caller's && chain never reads past a NUL
 * because a NUL is not a digit. */
static bool digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i])) return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

static int days_in(int y, int m)
{
    static const int d[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)) return 29;
    return d[m - 1];
}

bool contract_rfc3339_valid(const char *s)
{
    int y, mo, d, h, mi, se;
    if (s == NULL) return false;
    if (!(digits(s, 4, &y) && s[4] == '-' && digits(s + 5, 2, &mo) && s[7] == '-' &&
          digits(s + 8, 2, &d) && (s[10] == 'T' || s[10] == 't') && digits(s + 11, 2, &h) &&
          s[13] == ':' && digits(s + 14, 2, &mi) && s[16] == ':' && digits(s + 17, 2, &se)))
        return false;
    if (mo < 1 || mo > 12 || d < 1 || d > days_in(y, mo) || h > 23 || mi > 59 || se > 60)
        return false;
    const char *p = s + 19;
    if (*p == '.') {
        p++;
        if (!isdigit((unsigned char)*p)) return false;
        while (isdigit((unsigned char)*p))
            p++;
    }
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int oh, om;
        if (!(digits(p + 1, 2, &oh) && p[3] == ':' && digits(p + 4, 2, &om)) || oh > 23 || om > 59)
            return false;
        p += 6;
    } else {
        return false;
    }
    return *p == '\0';
}

size_t contract_drop_secrets(json_t *v)
{
    size_t n = 0;
    if (json_is_object(v)) {
        void *it = json_object_iter(v);
        while (it != NULL) {
            const char *k = json_object_iter_key(it);
            size_t klen = json_object_iter_key_len(it);
            json_t *x = json_object_iter_value(it);
            void *next = json_object_iter_next(v, it);
            /* A key with an embedded NUL is judged by its visible part and
             * deleted by its full length, so it cannot smuggle a secret. */
            if (ph_key_is_secret(k)) {
                json_object_deln(v, k, klen);
                n++;
            } else {
                n += contract_drop_secrets(x);
            }
            it = next;
        }
    } else if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++)
            n += contract_drop_secrets(json_array_get(v, i));
    }
    return n;
}

/* ---- small value checks ---------------------------------------------- */

static bool is_nonempty_string(const json_t *v)
{
    return json_is_string(v) && json_string_length(v) > 0;
}

static bool is_count(const json_t *v)
{
    return json_is_integer(v) && json_integer_value(v) >= 0;
}

/* Every key of object `o` must be in `allowed`; names the first that is not. */
static int check_closed(const json_t *o, const char *where, const char *const *allowed, size_t n,
                        char *why, size_t whylen)
{
    const char *k;
    json_t *x;
    json_object_foreach((json_t *)o, k, x)
    {
        (void)x;
        if (!in_list(k, allowed, n))
            return text_reason(why, whylen,
                               "%s has key '%s', which the contract does not allow there", where,
                               show(k).s);
    }
    return PH_OK;
}

static int check_required(const json_t *o, const char *where, const char *const *req, size_t n,
                          char *why, size_t whylen)
{
    for (size_t i = 0; i < n; i++)
        if (json_object_get(o, req[i]) == NULL)
            return text_reason(why, whylen, "%s lacks the required '%s'", where, req[i]);
    return PH_OK;
}

/* Optional member of a given JSON type. */
static int check_opt(const json_t *o, const char *key, json_type t, const char *where,
                     const char *tname, char *why, size_t whylen)
{
    const json_t *v = json_object_get(o, key);
    if (v == NULL || json_typeof(v) == t) return PH_OK;
    if (t == JSON_TRUE && json_is_boolean(v)) return PH_OK;
    return text_reason(why, whylen, "%s.%s must be %s", where, key, tname);
}

static int check_bool(const json_t *o, const char *key, const char *where, char *why, size_t whylen)
{
    return check_opt(o, key, JSON_TRUE, where, "a boolean", why, whylen);
}

static int check_object(const json_t *o, const char *key, const char *where, char *why,
                        size_t whylen)
{
    return check_opt(o, key, JSON_OBJECT, where, "an object", why, whylen);
}

static int check_count(const json_t *o, const char *key, const char *where, char *why,
                       size_t whylen)
{
    const json_t *v = json_object_get(o, key);
    if (v == NULL || is_count(v)) return PH_OK;
    return text_reason(why, whylen, "%s.%s must be an integer >= 0 (got %s)", where, key,
                       json_is_real(v)      ? "a fraction"
                       : json_is_integer(v) ? "a negative number"
                                            : "no number");
}

static int check_time(const json_t *o, const char *key, const char *where, bool nullable, char *why,
                      size_t whylen)
{
    const json_t *v = json_object_get(o, key);
    if (v == NULL || (nullable && json_is_null(v))) return PH_OK;
    if (json_is_string(v) && contract_rfc3339_valid(json_string_value(v))) return PH_OK;
    return text_reason(why, whylen, "%s.%s must be an RFC 3339 date-time", where, key);
}

/* Finds the first member named one of `keys` anywhere under v and writes its
 * path (".context.workers") into path. Depth is bounded by the decoders. */
static bool find_key(const json_t *v, const char *const *keys, size_t nk, char *path, size_t cap,
                     size_t len)
{
    if (json_is_object(v)) {
        const char *k;
        json_t *x;
        json_object_foreach((json_t *)v, k, x)
        {
            int w = snprintf(path + len, cap - len, ".%s", k);
            size_t l2 = w < 0 ? len : (len + (size_t)w < cap ? len + (size_t)w : cap - 1);
            if (in_list(k, keys, nk) || find_key(x, keys, nk, path, cap, l2)) return true;
        }
    } else if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++) {
            int w = snprintf(path + len, cap - len, "[%zu]", i);
            size_t l2 = w < 0 ? len : (len + (size_t)w < cap ? len + (size_t)w : cap - 1);
            if (find_key(json_array_get(v, i), keys, nk, path, cap, l2)) return true;
        }
    }
    path[len] = '\0';
    return false;
}

/* ---- envelope parts ---------------------------------------------------- */

int contract_check_scope(const json_t *scope, char *why, size_t whylen)
{
    static const char *const keys[] = {"swarmId", "role", "instance"};
    if (!json_is_object(scope))
        return text_reason(why, whylen, "scope must be an object {swarmId, role, instance}");
    int rc = check_closed(scope, "scope", keys, COUNT(keys), why, whylen);
    if (rc == PH_OK) rc = check_required(scope, "scope", keys, COUNT(keys), why, whylen);
    for (size_t i = 0; rc == PH_OK && i < COUNT(keys); i++) {
        const json_t *v = json_object_get(scope, keys[i]);
        if (json_is_null(v)) continue;
        if (!json_is_string(v))
            return text_reason(why, whylen, "scope.%s must be a string or null", keys[i]);
        char what[32];
        snprintf(what, sizeof what, "scope.%s", keys[i]);
        /* A value with an embedded NUL would be judged by its visible part. */
        if (strlen(json_string_value(v)) != json_string_length(v))
            return text_reason(why, whylen, "scope.%s contains a NUL character", keys[i]);
        rc = ph_ident_check(what, json_string_value(v), why, whylen);
    }
    return rc;
}

int contract_check_id(const char *name, const json_t *v, bool required, char *why, size_t whylen)
{
    if (json_is_null(v) || v == NULL) {
        if (!required) return PH_OK;
        return text_reason(why, whylen, "%s is required (non-empty) on this kind of message", name);
    }
    if (!json_is_string(v)) return text_reason(why, whylen, "%s must be a string or null", name);
    if (json_string_length(v) == 0)
        return text_reason(why, whylen, "%s is an empty string (write null when there is none)",
                           name);
    if (json_string_length(v) >= CONTRACT_STR_MAX)
        return text_reason(why, whylen, "%s is longer than %d bytes", name, CONTRACT_STR_MAX - 1);
    return PH_OK;
}

static int check_envelope_keys(const json_t *env, char *why, size_t whylen)
{
    for (size_t i = 0; i < CONTRACT_ENVELOPE_KEYS; i++)
        if (json_object_get(env, contract_envelope_keys[i]) == NULL)
            return text_reason(why, whylen, "envelope lacks '%s'", contract_envelope_keys[i]);
    int rc =
        check_closed(env, "envelope", contract_envelope_keys, CONTRACT_ENVELOPE_KEYS, why, whylen);
    if (rc != PH_OK) return rc;
    /* jansson keeps insertion (and parse) order, which is the wire order. */
    size_t i = 0;
    for (void *it = json_object_iter((json_t *)env); it != NULL;
         it = json_object_iter_next((json_t *)env, it), i++)
        if (strcmp(json_object_iter_key(it), contract_envelope_keys[i]) != 0)
            return text_reason(why, whylen,
                               "envelope key #%zu is '%s', the contract orders '%s' there", i + 1,
                               json_object_iter_key(it), contract_envelope_keys[i]);
    return PH_OK;
}

/* ioState = {work: {input, output, context?}, control?: {input, output}} */
static int check_iostate(const json_t *st, const char *where, char *why, size_t whylen)
{
    static const char *const top[] = {"work", "control"};
    static const char *const work_keys[] = {"input", "output", "context"};
    static const char *const io_keys[] = {"input", "output"};
    if (!json_is_object(st)) return text_reason(why, whylen, "%s must be an object", where);
    int rc = check_closed(st, where, top, COUNT(top), why, whylen);
    if (rc != PH_OK) return rc;
    if (json_object_get(st, "work") == NULL)
        return text_reason(why, whylen, "%s lacks the required 'work'", where);
    for (size_t i = 0; i < COUNT(top); i++) {
        const json_t *p = json_object_get(st, top[i]);
        if (p == NULL) continue;
        char w[64];
        snprintf(w, sizeof w, "%s.%s", where, top[i]);
        if (!json_is_object(p)) return text_reason(why, whylen, "%s must be an object", w);
        rc = i == 0 ? check_closed(p, w, work_keys, COUNT(work_keys), why, whylen)
                    : check_closed(p, w, io_keys, COUNT(io_keys), why, whylen);
        if (rc == PH_OK) rc = check_required(p, w, io_keys, COUNT(io_keys), why, whylen);
        if (rc == PH_OK) rc = check_object(p, "context", w, why, whylen);
        if (rc != PH_OK) return rc;
        const json_t *in = json_object_get(p, "input");
        const json_t *out = json_object_get(p, "output");
        if (!json_is_string(in) || ph_io_in_parse(json_string_value(in)) < 0)
            return text_reason(why, whylen,
                               "%s.input must be ok, out-of-data, backpressure, upstream-error or "
                               "unknown",
                               w);
        if (!json_is_string(out) || ph_io_out_parse(json_string_value(out)) < 0)
            return text_reason(
                why, whylen,
                "%s.output must be ok, blocked, throttled, downstream-error or unknown", w);
    }
    return PH_OK;
}

static int check_string_array(const json_t *o, const char *key, const char *where, char *why,
                              size_t whylen)
{
    const json_t *a = json_object_get(o, key);
    if (a == NULL) return PH_OK;
    bool ok = json_is_array(a);
    for (size_t i = 0; ok && i < json_array_size(a); i++)
        ok = json_is_string(json_array_get(a, i));
    return ok ? PH_OK : text_reason(why, whylen, "%s.%s must be an array of strings", where, key);
}

static int check_queues(const json_t *q, const char *where, char *why, size_t whylen)
{
    static const char *const keys[] = {"in", "out", "routes"};
    if (!json_is_object(q)) return text_reason(why, whylen, "%s must be an object", where);
    int rc = check_closed(q, where, keys, COUNT(keys), why, whylen);
    for (size_t i = 0; rc == PH_OK && i < COUNT(keys); i++)
        rc = check_string_array(q, keys[i], where, why, whylen);
    return rc;
}

/* io = {work?: {queues?, queueStats?: {<q>: {depth, consumers, oldestAgeSec?}}},
 *       control?: {queues?}} with every object closed. */
static int check_io(const json_t *io, char *why, size_t whylen)
{
    static const char *const top[] = {"work", "control"};
    static const char *const work_keys[] = {"queues", "queueStats"};
    static const char *const ctl_keys[] = {"queues"};
    static const char *const stat_keys[] = {"depth", "consumers", "oldestAgeSec"};
    static const char *const stat_req[] = {"depth", "consumers"};
    if (!json_is_object(io)) return text_reason(why, whylen, "data.io must be an object");
    int rc = check_closed(io, "data.io", top, COUNT(top), why, whylen);
    if (rc != PH_OK) return rc;
    const json_t *work = json_object_get(io, "work");
    const json_t *control = json_object_get(io, "control");
    if (work != NULL) {
        if (!json_is_object(work))
            return text_reason(why, whylen, "data.io.work must be an object");
        rc = check_closed(work, "data.io.work", work_keys, COUNT(work_keys), why, whylen);
        const json_t *q = json_object_get(work, "queues");
        if (rc == PH_OK && q != NULL) rc = check_queues(q, "data.io.work.queues", why, whylen);
        const json_t *qs = json_object_get(work, "queueStats");
        if (rc == PH_OK && qs != NULL) {
            if (!json_is_object(qs))
                return text_reason(why, whylen, "data.io.work.queueStats must be an object");
            const char *name;
            json_t *st;
            json_object_foreach((json_t *)qs, name, st)
            {
                const char *w = "data.io.work.queueStats entry";
                if (!json_is_object(st))
                    return text_reason(why, whylen, "%s '%s' must be an object", w, show(name).s);
                rc = check_closed(st, w, stat_keys, COUNT(stat_keys), why, whylen);
                if (rc == PH_OK) rc = check_required(st, w, stat_req, COUNT(stat_req), why, whylen);
                if (rc == PH_OK) rc = check_count(st, "depth", w, why, whylen);
                if (rc == PH_OK) rc = check_count(st, "consumers", w, why, whylen);
                const json_t *age = json_object_get(st, "oldestAgeSec");
                if (rc == PH_OK && age != NULL &&
                    !(json_is_number(age) && json_number_value(age) >= 0))
                    rc = text_reason(why, whylen, "%s.oldestAgeSec must be a number >= 0", w);
                if (rc != PH_OK) return rc;
            }
        }
        if (rc != PH_OK) return rc;
    }
    if (control != NULL) {
        if (!json_is_object(control))
            return text_reason(why, whylen, "data.io.control must be an object");
        rc = check_closed(control, "data.io.control", ctl_keys, COUNT(ctl_keys), why, whylen);
        const json_t *q = json_object_get(control, "queues");
        if (rc == PH_OK && q != NULL) rc = check_queues(q, "data.io.control.queues", why, whylen);
    }
    return rc;
}

/* One entry of the controller's data.context.workers (CONTRACT §3). */
static int check_worker_entry(const json_t *w, size_t i, char *why, size_t whylen)
{
    static const char *const req[] = {"role",    "instance",   "enabled", "tps",
                                      "ioState", "lastSeenAt", "stale"};
    char where[64];
    snprintf(where, sizeof where, "data.context.workers[%zu]", i);
    if (!json_is_object(w)) return text_reason(why, whylen, "%s must be an object", where);
    int rc = check_required(w, where, req, COUNT(req), why, whylen);
    for (int k = 0; rc == PH_OK && k < 2; k++) {
        const char *key = k == 0 ? "role" : "instance";
        const json_t *v = json_object_get(w, key);
        if (!json_is_string(v))
            return text_reason(why, whylen, "%s.%s must be a string", where, key);
        char what[96];
        snprintf(what, sizeof what, "%s.%s", where, key);
        rc = ph_ident_check(what, json_string_value(v), why, whylen);
    }
    if (rc == PH_OK) rc = check_bool(w, "enabled", where, why, whylen);
    if (rc == PH_OK) rc = check_bool(w, "stale", where, why, whylen);
    if (rc == PH_OK) rc = check_count(w, "tps", where, why, whylen);
    if (rc == PH_OK) rc = check_time(w, "lastSeenAt", where, false, why, whylen);
    if (rc == PH_OK) {
        char st[80];
        snprintf(st, sizeof st, "%s.ioState", where);
        rc = check_iostate(json_object_get(w, "ioState"), st, why, whylen);
    }
    return rc;
}

/* data.context of the swarm-controller's status: the swarm aggregate. */
static int check_controller_context(const json_t *data, bool full, char *why, size_t whylen)
{
    static const char *const req[] = {"swarmStatus", "state", "totals"};
    static const char *const totals_req[] = {"desired", "healthy", "running", "enabled"};
    const json_t *ctx = json_object_get(data, "context");
    if (!json_is_object(ctx))
        return text_reason(why, whylen,
                           "the swarm-controller's status must carry the swarm aggregate in "
                           "data.context");
    int rc = check_required(ctx, "data.context", req, COUNT(req), why, whylen);
    if (rc != PH_OK) return rc;
    const char *st = json_string_value(json_object_get(ctx, "swarmStatus"));
    if (!in_list(st, swarm_statuses, COUNT(swarm_statuses)))
        return text_reason(
            why, whylen,
            "data.context.swarmStatus must be NEW, READY, STARTING, RUNNING, STOPPING, "
            "STOPPED, REMOVED or FAILED");
    const char *state = json_string_value(json_object_get(ctx, "state"));
    if (!(in_list(state, swarm_statuses, COUNT(swarm_statuses)) ||
          (state != NULL && (strcmp(state, "Unknown") == 0 || strcmp(state, "Degraded") == 0))))
        return text_reason(why, whylen,
                           "data.context.state must be Unknown, Degraded or a swarmStatus");
    const json_t *totals = json_object_get(ctx, "totals");
    if (!json_is_object(totals))
        return text_reason(why, whylen, "data.context.totals must be an object");
    rc = check_required(totals, "data.context.totals", totals_req, COUNT(totals_req), why, whylen);
    for (size_t i = 0; rc == PH_OK && i < COUNT(totals_req); i++)
        rc = check_count(totals, totals_req[i], "data.context.totals", why, whylen);
    if (rc == PH_OK) rc = check_time(ctx, "watermark", "data.context", true, why, whylen);
    const json_t *stale = json_object_get(ctx, "maxStalenessSec");
    if (rc == PH_OK && stale != NULL && !(json_is_number(stale) && json_number_value(stale) >= 0))
        rc = text_reason(why, whylen, "data.context.maxStalenessSec must be a number >= 0");
    if (rc == PH_OK) rc = check_object(ctx, "scenario", "data.context", why, whylen);
    if (rc == PH_OK) rc = check_object(ctx, "journal", "data.context", why, whylen);
    if (rc != PH_OK || !full) return rc;

    const json_t *workers = json_object_get(ctx, "workers");
    if (!json_is_array(workers))
        return text_reason(why, whylen,
                           "the swarm-controller's status-full must list its workers in "
                           "data.context.workers (an array)");
    const char *prev_role = NULL, *prev_inst = NULL;
    for (size_t i = 0; i < json_array_size(workers); i++) {
        const json_t *w = json_array_get(workers, i);
        rc = check_worker_entry(w, i, why, whylen);
        if (rc != PH_OK) return rc;
        const char *role = json_string_value(json_object_get(w, "role"));
        const char *inst = json_string_value(json_object_get(w, "instance"));
        if (prev_role != NULL) {
            int c = strcmp(prev_role, role);
            if (c == 0) c = strcmp(prev_inst, inst);
            if (c >= 0)
                return text_reason(why, whylen,
                                   "data.context.workers is not sorted by role then instance (or "
                                   "lists a worker twice) at entry %zu (%s/%s)",
                                   i, role, inst);
        }
        prev_role = role;
        prev_inst = inst;
    }
    return PH_OK;
}

/* CONTRACT §3: closed status data. */
static int check_metric(const json_t *data, bool full, bool controller, char *why, size_t whylen)
{
    static const char *const allowed[] = {"enabled", "tps",       "ioState", "config",
                                          "io",      "startedAt", "context"};
    static const char *const req_full[] = {"enabled", "tps", "ioState",
                                           "config",  "io",  "startedAt"};
    static const char *const heavy[] = {"config", "io", "startedAt", "workers"};
    static const char *const workers_key[] = {"workers"};
    const char *where = full ? "status-full data" : "status-delta data";
    char path[128] = "data";
    int rc;

    /* The guards come first: their reasons name the rule that matters. */
    if (!full && find_key(data, heavy, COUNT(heavy), path, sizeof path, strlen(path)))
        return text_reason(
            why, whylen,
            "a status-delta must not carry config, io, startedAt or workers (found %s)", path);
    if (!controller &&
        find_key(data, workers_key, COUNT(workers_key), path, sizeof path, strlen(path)))
        return text_reason(why, whylen,
                           "a worker's status must not carry a workers list (found %s)", path);
    rc = check_closed(data, where, allowed, COUNT(allowed), why, whylen);
    if (rc == PH_OK)
        rc = check_required(data, where, req_full, full ? COUNT(req_full) : 3, why, whylen);
    if (rc == PH_OK && !json_is_boolean(json_object_get(data, "enabled")))
        rc = text_reason(why, whylen, "data.enabled must be a boolean");
    if (rc == PH_OK) rc = check_count(data, "tps", "data", why, whylen);
    if (rc == PH_OK)
        rc = check_iostate(json_object_get(data, "ioState"), "data.ioState", why, whylen);
    if (rc == PH_OK) rc = check_object(data, "config", "data", why, whylen);
    if (rc == PH_OK && full) rc = check_io(json_object_get(data, "io"), why, whylen);
    if (rc == PH_OK) rc = check_time(data, "startedAt", "data", false, why, whylen);
    if (rc == PH_OK) rc = check_object(data, "context", "data", why, whylen);
    if (rc == PH_OK && controller) rc = check_controller_context(data, full, why, whylen);
    return rc;
}

/* CONTRACT §4 */
static int check_outcome(const json_t *data, char *why, size_t whylen)
{
    if (!is_nonempty_string(json_object_get(data, "status")))
        return text_reason(why, whylen, "an outcome's data.status must be a non-empty string");
    int rc = check_bool(data, "retryable", "data", why, whylen);
    if (rc == PH_OK) rc = check_bool(data, "enabled", "data", why, whylen);
    if (rc == PH_OK) rc = check_object(data, "context", "data", why, whylen);
    return rc;
}

/* CONTRACT §5 */
static int check_alert(const json_t *data, char *why, size_t whylen)
{
    static const char *const allowed[] = {"level",       "code",   "message", "errorType",
                                          "errorDetail", "logRef", "context"};
    static const char *const levels[] = {"info", "warn", "error"};
    static const char *const nullable[] = {"errorType", "errorDetail", "logRef"};
    int rc = check_closed(data, "alert data", allowed, COUNT(allowed), why, whylen);
    if (rc != PH_OK) return rc;
    if (!in_list(json_string_value(json_object_get(data, "level")), levels, COUNT(levels)))
        return text_reason(why, whylen, "alert data.level must be info, warn or error");
    if (!is_nonempty_string(json_object_get(data, "code")))
        return text_reason(why, whylen, "alert data.code must be a non-empty string");
    if (!is_nonempty_string(json_object_get(data, "message")))
        return text_reason(why, whylen, "alert data.message must be a non-empty string");
    for (size_t i = 0; i < COUNT(nullable); i++) {
        const json_t *v = json_object_get(data, nullable[i]);
        if (v != NULL && !json_is_null(v) && !is_nonempty_string(v))
            return text_reason(why, whylen, "alert data.%s must be a non-empty string or null",
                               nullable[i]);
    }
    return check_object(data, "context", "data", why, whylen);
}

int contract_check_envelope(const json_t *env, char *why, size_t whylen)
{
    if (!json_is_object(env)) return text_reason(why, whylen, "envelope is not a JSON object");
    int rc = check_envelope_keys(env, why, whylen);
    if (rc != PH_OK) return rc;
    const json_t *ts = json_object_get(env, "timestamp");
    if (!json_is_string(ts) || !contract_rfc3339_valid(json_string_value(ts)))
        return text_reason(why, whylen, "timestamp must be an RFC 3339 date-time");
    const json_t *ver = json_object_get(env, "version");
    if (!json_is_string(ver) || strcmp(json_string_value(ver), CONTRACT_VERSION) != 0)
        return text_reason(why, whylen, "version must be \"%s\"", CONTRACT_VERSION);
    const char *kind_s = json_string_value(json_object_get(env, "kind"));
    int kind = contract_kind_parse(kind_s);
    if (kind < 0)
        return text_reason(why, whylen, "kind '%s' is not signal, outcome, metric or event",
                           kind_s != NULL ? show(kind_s).s : "(not a string)");
    const char *type = json_string_value(json_object_get(env, "type"));
    if (type == NULL) return text_reason(why, whylen, "type must be a string");
    rc = check_type((enum contract_kind)kind, type, why, whylen);
    if (rc != PH_OK) return rc;
    const json_t *origin = json_object_get(env, "origin");
    if (!is_nonempty_string(origin))
        return text_reason(why, whylen, "origin must be a non-empty string");
    if (json_string_length(origin) >= CONTRACT_STR_MAX)
        return text_reason(why, whylen, "origin is longer than %d bytes", CONTRACT_STR_MAX - 1);
    const json_t *scope = json_object_get(env, "scope");
    rc = contract_check_scope(scope, why, whylen);
    if (rc != PH_OK) return rc;
    const bool need_cid = kind == CK_SIGNAL || kind == CK_OUTCOME;
    rc = contract_check_id("correlationId", json_object_get(env, "correlationId"), need_cid, why,
                           whylen);
    if (rc == PH_OK)
        rc = contract_check_id("idempotencyKey", json_object_get(env, "idempotencyKey"), false, why,
                               whylen);
    if (rc != PH_OK) return rc;
    const json_t *data = json_object_get(env, "data");
    if (!json_is_object(data)) return text_reason(why, whylen, "data must be an object");
    switch ((enum contract_kind)kind) {
    case CK_SIGNAL:
        return PH_OK;
    case CK_OUTCOME:
        return check_outcome(data, why, whylen);
    case CK_EVENT:
        return check_alert(data, why, whylen);
    case CK_METRIC: {
        const char *role = json_string_value(json_object_get(scope, "role"));
        const bool controller = role != NULL && strcmp(role, CONTRACT_CONTROLLER_ROLE) == 0;
        return check_metric(data, strcmp(type, "status-full") == 0, controller, why, whylen);
    }
    }
    return PH_OK;
}
