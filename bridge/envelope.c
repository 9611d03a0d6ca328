/* Documents -> envelopes (envelope.h).
 *
 * A document comes from shared memory, so it is untrusted: it is walked by
 * ph_mp_check with explicit limits before msgpack-c allocates, every header
 * field is type- and length-checked, and the data is converted by value
 * (ph_mp_to_json) and compared back against the msgpack map so that duplicate
 * keys or NUL bytes in keys cannot slip through a conversion that would
 * silently merge or cut them. */
#include "envelope.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "mprender.h"
#include "ph/doc.h"
#include "ph/mpjson.h"
#include "text.h"

const struct ph_mp_limits envelope_doc_limits = {
    .max_depth = 32,
    .max_objects = 1u << 21,
    .max_str = 1u << 20,
};

static int fail(int rc, char *why, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(int rc, char *why, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, n, fmt, ap);
    va_end(ap);
    return rc;
}

static bool put(json_t *o, const char *k, json_t *v)
{
    return v != NULL && json_object_set_new(o, k, v) == 0;
}

static json_t *str_or_null(const char *s)
{
    return s != NULL ? json_string(s) : json_null();
}

json_t *envelope_new(uint64_t real_ns, enum contract_kind kind, const char *type,
                     const char *origin, const char *swarm, const char *role, const char *instance,
                     const char *cid, const char *ikey, json_t *data)
{
    char ts[32];
    ph_rfc3339_ms(real_ns, ts);
    json_t *env = json_object();
    json_t *scope = json_object();
    /* Insertion order is the wire order (jansson keeps it); CONTRACT §2. */
    bool ok = env != NULL && scope != NULL && data != NULL && type != NULL && origin != NULL &&
              put(env, "timestamp", json_string(ts)) &&
              put(env, "version", json_string(CONTRACT_VERSION)) &&
              put(env, "kind", json_string(contract_kind_name(kind))) &&
              put(env, "type", json_string(type)) && put(env, "origin", json_string(origin)) &&
              put(scope, "swarmId", str_or_null(swarm)) && put(scope, "role", str_or_null(role)) &&
              put(scope, "instance", str_or_null(instance));
    if (ok) {
        ok = json_object_set(env, "scope", scope) == 0 &&
             put(env, "correlationId", str_or_null(cid)) &&
             put(env, "idempotencyKey", str_or_null(ikey));
    }
    json_decref(scope);
    if (!ok) {
        json_decref(env);
        json_decref(data);
        return NULL;
    }
    /* json_object_set_new releases `data` even when it fails. */
    if (json_object_set_new(env, "data", data) != 0) {
        json_decref(env);
        return NULL;
    }
    return env;
}

int envelope_finish(struct envelope *e, char *why, size_t whylen)
{
    int rc = contract_check_envelope(e->env, why, whylen);
    if (rc != PH_OK) return rc;
    const json_t *scope = json_object_get(e->env, "scope");
    e->kind =
        (enum contract_kind)contract_kind_parse(json_string_value(json_object_get(e->env, "kind")));
    return contract_rk_build(e->rk, sizeof e->rk, e->kind,
                             json_string_value(json_object_get(e->env, "type")),
                             json_string_value(json_object_get(scope, "swarmId")),
                             json_string_value(json_object_get(scope, "role")),
                             json_string_value(json_object_get(scope, "instance")), why, whylen);
}

void envelope_clear(struct envelope *e)
{
    json_decref(e->env);
    e->env = NULL;
    free(e->text);
    e->text = NULL;
    e->text_len = 0;
}

int envelope_write_line(const char *rk, const json_t *env, const char *text,
                        json_dump_callback_t out, void *ctx)
{
    json_t *key = json_string(rk);
    int rc =
        key != NULL && out("{\"routingKey\":", 14, ctx) == 0 &&
                json_dump_callback(key, out, ctx, ENVELOPE_DUMP_FLAGS | JSON_ENCODE_ANY) == 0 &&
                out(",\"envelope\":", 12, ctx) == 0 &&
                (text != NULL ? out(text, strlen(text), ctx)
                              : json_dump_callback(env, out, ctx, ENVELOPE_DUMP_FLAGS)) == 0 &&
                out("}", 1, ctx) == 0
            ? 0
            : -1;
    json_decref(key);
    return rc;
}

/* ---- document decoding ---------------------------------------------- */

enum {
    F_KIND,
    F_TYPE,
    F_SWARM,
    F_ROLE,
    F_INSTANCE,
    F_ORIGIN,
    F_CID,
    F_IKEY,
    F_DATA,
    F_TS,
    F_COUNT
};
static const char *const field_names[F_COUNT] = {
    PH_DOC_KIND,   PH_DOC_TYPE, PH_DOC_SWARM, PH_DOC_ROLE, PH_DOC_INSTANCE,
    PH_DOC_ORIGIN, PH_DOC_CID,  PH_DOC_IKEY,  PH_DOC_DATA, PH_DOC_TS};

struct doc {
    const msgpack_object *f[F_COUNT];
    char kind[16];
    char type[CONTRACT_TYPE_MAX];
    char swarm[PH_ID_MAX], role[PH_ID_MAX], instance[PH_ID_MAX];
    char origin[CONTRACT_STR_MAX], cid[CONTRACT_STR_MAX], ikey[CONTRACT_STR_MAX];
    bool has_swarm, has_role, has_instance, has_cid, has_ikey;
    uint64_t ts_ms; /* 0: not given */
};

static bool key_is(const msgpack_object *k, const char *name)
{
    size_t n = strlen(name);
    return k->type == MSGPACK_OBJECT_STR && k->via.str.size == n &&
           memcmp(k->via.str.ptr, name, n) == 0;
}

/* A str field into buf; nil (when allowed) leaves *has false. */
static int doc_str(const struct doc *d, int f, bool nullable, char *buf, size_t n, bool *has,
                   char *why, size_t whylen)
{
    const msgpack_object *o = d->f[f];
    if (has != NULL) *has = false;
    if (o == NULL || o->type == MSGPACK_OBJECT_NIL) {
        if (nullable) return PH_OK;
        return fail(PH_ERR_INVAL, why, whylen, "document lacks '%s'", field_names[f]);
    }
    if (o->type != MSGPACK_OBJECT_STR)
        return fail(PH_ERR_INVAL, why, whylen, "document '%s' is not a string%s", field_names[f],
                    nullable ? " or nil" : "");
    if (o->via.str.size >= n)
        return fail(PH_ERR_INVAL, why, whylen, "document '%s' is longer than %zu bytes",
                    field_names[f], n - 1);
    if (!ph_mp_str(o, buf, n))
        return fail(PH_ERR_INVAL, why, whylen, "document '%s' contains a NUL byte", field_names[f]);
    if (has != NULL) *has = true;
    return PH_OK;
}

static int doc_read(const msgpack_object *map, struct doc *d, char *why, size_t whylen)
{
    memset(d, 0, sizeof *d);
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object *k = &map->via.map.ptr[i].key;
        int f = 0;
        while (f < F_COUNT && !key_is(k, field_names[f]))
            f++;
        if (f == F_COUNT) {
            char shown[64] = "(not a string)";
            if (k->type == MSGPACK_OBJECT_STR)
                text_prefix(k->via.str.ptr, k->via.str.size, 40, shown);
            return fail(PH_ERR_INVAL, why, whylen, "document has unknown key '%s' (ph/doc.h)",
                        shown);
        }
        if (d->f[f] != NULL)
            return fail(PH_ERR_INVAL, why, whylen, "document has key '%s' twice", field_names[f]);
        d->f[f] = &map->via.map.ptr[i].val;
    }
    int rc;
    if ((rc = doc_str(d, F_KIND, false, d->kind, sizeof d->kind, NULL, why, whylen)) != PH_OK ||
        (rc = doc_str(d, F_TYPE, false, d->type, sizeof d->type, NULL, why, whylen)) != PH_OK ||
        (rc = doc_str(d, F_SWARM, true, d->swarm, sizeof d->swarm, &d->has_swarm, why, whylen)) !=
            PH_OK ||
        (rc = doc_str(d, F_ROLE, true, d->role, sizeof d->role, &d->has_role, why, whylen)) !=
            PH_OK ||
        (rc = doc_str(d, F_INSTANCE, true, d->instance, sizeof d->instance, &d->has_instance, why,
                      whylen)) != PH_OK ||
        (rc = doc_str(d, F_ORIGIN, false, d->origin, sizeof d->origin, NULL, why, whylen)) !=
            PH_OK ||
        (rc = doc_str(d, F_CID, true, d->cid, sizeof d->cid, &d->has_cid, why, whylen)) != PH_OK ||
        (rc = doc_str(d, F_IKEY, true, d->ikey, sizeof d->ikey, &d->has_ikey, why, whylen)) !=
            PH_OK)
        return rc;
    const msgpack_object *ts = d->f[F_TS];
    if (ts != NULL) {
        if (ts->type != MSGPACK_OBJECT_POSITIVE_INTEGER || ts->via.u64 == 0 ||
            ts->via.u64 > PH_DOC_TS_MAX)
            return fail(PH_ERR_INVAL, why, whylen,
                        "document 'ts' is not a time in milliseconds since the epoch (1 to %llu)",
                        (unsigned long long)PH_DOC_TS_MAX);
        d->ts_ms = ts->via.u64;
    }
    if (d->f[F_DATA] == NULL) return fail(PH_ERR_INVAL, why, whylen, "document lacks 'data'");
    if (d->f[F_DATA]->type != MSGPACK_OBJECT_MAP)
        return fail(PH_ERR_INVAL, why, whylen, "document 'data' is not a map");
    return PH_OK;
}

/* True when the JSON value has exactly the members of the msgpack value:
 * the conversion merges duplicate keys and keys with NUL bytes would be
 * judged by a prefix, both of which must refuse the document instead. */
static bool same_shape(const msgpack_object *o, const json_t *j)
{
    if (o->type == MSGPACK_OBJECT_MAP) {
        if (!json_is_object(j) || json_object_size(j) != o->via.map.size) return false;
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            const msgpack_object *k = &o->via.map.ptr[i].key;
            if (k->type != MSGPACK_OBJECT_STR || memchr(k->via.str.ptr, 0, k->via.str.size))
                return false;
            const json_t *x = json_object_getn(j, k->via.str.ptr, k->via.str.size);
            if (x == NULL || !same_shape(&o->via.map.ptr[i].val, x)) return false;
        }
    } else if (o->type == MSGPACK_OBJECT_ARRAY) {
        if (!json_is_array(j) || json_array_size(j) != o->via.array.size) return false;
        for (uint32_t i = 0; i < o->via.array.size; i++)
            if (!same_shape(&o->via.array.ptr[i], json_array_get(j, i))) return false;
    }
    return true;
}

/* "metric status-delta for demo.generator.gen-1 from demo-controller" */
static void doc_name(const struct doc *d, char *buf, size_t n)
{
    char k[24], t[48], s[80], r[80], i[80], o[80];
    text_prefix(d->kind, strlen(d->kind), sizeof k - 1, k);
    text_prefix(d->type, strlen(d->type), sizeof t - 1, t);
    text_prefix(d->has_swarm ? d->swarm : "ALL", strlen(d->has_swarm ? d->swarm : "ALL"),
                sizeof s - 1, s);
    text_prefix(d->has_role ? d->role : "ALL", strlen(d->has_role ? d->role : "ALL"), sizeof r - 1,
                r);
    text_prefix(d->has_instance ? d->instance : "ALL",
                strlen(d->has_instance ? d->instance : "ALL"), sizeof i - 1, i);
    text_prefix(d->origin, strlen(d->origin), sizeof o - 1, o);
    snprintf(buf, n, "%s %s for %s.%s.%s from %s", k, t, s, r, i, o);
}

static int build_tree(const struct doc *d, int kind, uint64_t real_ns, struct envelope *out,
                      char *why, size_t whylen);

/* data.context.workers of a controller status-full long enough for the
 * one-pass path, or NULL. The object lives in the decoder's zone. */
static msgpack_object *fast_workers(const struct doc *d, int kind)
{
    if (kind != CK_METRIC || strcmp(d->type, "status-full") != 0 || !d->has_role ||
        strcmp(d->role, CONTRACT_CONTROLLER_ROLE) != 0)
        return NULL;
    const msgpack_object *data = d->f[F_DATA], *ctx = NULL, *w = NULL;
    for (uint32_t i = 0; ctx == NULL && i < data->via.map.size; i++)
        if (key_is(&data->via.map.ptr[i].key, "context")) ctx = &data->via.map.ptr[i].val;
    if (ctx == NULL || ctx->type != MSGPACK_OBJECT_MAP) return NULL;
    for (uint32_t i = 0; w == NULL && i < ctx->via.map.size; i++)
        if (key_is(&ctx->via.map.ptr[i].key, "workers")) w = &ctx->via.map.ptr[i].val;
    if (w == NULL || w->type != MSGPACK_OBJECT_ARRAY || w->via.array.size < ENVELOPE_FAST_WORKERS)
        return NULL;
    return (msgpack_object *)w; /* the zone's memory, decoded for this call alone */
}

/* The place of the worker list in the dumped envelope: a string no
 * document holds (a control character and a per-process random part). */
static const char *splice_mark(void)
{
    static char mark[48];
    if (mark[0] == '\0') {
        unsigned long long r = 0;
        if (getrandom(&r, sizeof r, 0) != (ssize_t)sizeof r)
            r = (unsigned long long)time(NULL) * 2654435761u ^ (unsigned long long)getpid();
        snprintf(mark, sizeof mark, "\x01ph-workers-%016llx", r);
    }
    return mark;
}

/* env (data.context.workers set to the mark) dumped, with the mark's
 * quoted form replaced by the rendered list. */
static int splice(struct envelope *out, json_t *ctx, const struct jbuf *list, char *why,
                  size_t whylen)
{
    const char *mark = splice_mark();
    json_object_set_new(ctx, "workers", json_string(mark));
    char *head = json_dumps(out->env, ENVELOPE_DUMP_FLAGS);
    char quoted[64];
    /* As jansson writes it: the control character escaped. */
    snprintf(quoted, sizeof quoted, "\"\\u0001%s\"", mark + 1);
    char *at = head != NULL ? strstr(head, quoted) : NULL;
    if (at == NULL) {
        free(head);
        return fail(PH_ERR_SYS, why, whylen, "out of memory writing the envelope");
    }
    const size_t before = (size_t)(at - head), ql = strlen(quoted), hl = strlen(head);
    const size_t n = hl - ql + list->len;
    char *text = malloc(n + 1);
    if (text == NULL) {
        free(head);
        return fail(PH_ERR_SYS, why, whylen, "out of memory writing the envelope");
    }
    memcpy(text, head, before);
    memcpy(text + before, list->p, list->len);
    memcpy(text + before + list->len, at + ql, hl - before - ql + 1);
    free(head);
    out->text = text;
    out->text_len = n;
    return PH_OK;
}

static int build(const struct doc *d, uint64_t real_ns, struct envelope *out, char *why,
                 size_t whylen)
{
    int kind = contract_kind_parse(d->kind);
    if (d->ts_ms != 0) real_ns = d->ts_ms * 1000000ull; /* the document's own time */
    if (kind < 0)
        return fail(PH_ERR_INVAL, why, whylen, "kind is not signal, outcome, metric or event");
    /* A long worker list is checked and written apart (mprender.h): the
     * rest of the document sees an empty one. */
    msgpack_object *workers = fast_workers(d, kind);
    const uint32_t nworkers = workers != NULL ? workers->via.array.size : 0;
    if (workers != NULL) workers->via.array.size = 0;
    int rc = build_tree(d, kind, real_ns, out, why, whylen);
    if (workers == NULL) return rc;
    workers->via.array.size = nworkers;
    if (rc != PH_OK) return rc;
    /* Sized like the last list per worker: a long list is then written
     * without the buffer's doublings (per thread: the bridge renders on
     * one, tests on several). */
    static _Thread_local size_t bytes_per_worker = 256;
    struct jbuf list = {0};
    jbuf_reserve(&list, (size_t)nworkers * bytes_per_worker + 4096);
    json_t *ids = NULL;
    rc = mp_workers_render(workers, &list, &ids, why, whylen);
    /* Capped: a few huge entries must not make the next long list ask
     * for gigabytes up front. */
    if (rc == PH_OK && nworkers > 0) {
        bytes_per_worker = list.len / nworkers + 16;
        if (bytes_per_worker > 2048) bytes_per_worker = 2048;
    }
    if (rc == PH_ERR_SYS) fail(rc, why, whylen, "out of memory writing the worker list");
    json_t *ctx = json_object_get(json_object_get(out->env, "data"), "context");
    if (rc == PH_OK) rc = splice(out, ctx, &list, why, whylen);
    jbuf_free(&list);
    /* What stays in env: who the workers are (the AMQP sink binds by it). */
    if (rc == PH_OK)
        json_object_set_new(ctx, "workers", ids);
    else
        json_decref(ids);
    return rc;
}

static int build_tree(const struct doc *d, int kind, uint64_t real_ns, struct envelope *out,
                      char *why, size_t whylen)
{
    json_t *data = ph_mp_to_json(d->f[F_DATA]);
    if (data == NULL)
        return fail(PH_ERR_INVAL, why, whylen,
                    "data holds a value JSON cannot carry (a string that is not UTF-8, a "
                    "non-string map key, NaN or infinity)");
    if (!same_shape(d->f[F_DATA], data)) {
        json_decref(data);
        return fail(PH_ERR_INVAL, why, whylen,
                    "data has a map with a duplicate key or a key containing a NUL byte");
    }
    /* Last line of defence: the controller removes secrets from configs,
     * but a value under a secret-named key, or a URL's credentials under any
     * key, must never reach the wire. */
    if (kind == CK_METRIC) {
        json_t *config = json_object_get(data, "config");
        out->secrets_dropped = contract_drop_secrets(config);
        out->credentials_stripped = ph_json_strip_url_credentials(config);
    }
    out->env = envelope_new(real_ns, (enum contract_kind)kind, d->type, d->origin,
                            d->has_swarm ? d->swarm : NULL, d->has_role ? d->role : NULL,
                            d->has_instance ? d->instance : NULL, d->has_cid ? d->cid : NULL,
                            d->has_ikey ? d->ikey : NULL, data);
    if (out->env == NULL)
        return fail(PH_ERR_INVAL, why, whylen,
                    "a header string is not valid UTF-8 (or memory ran out)");
    return envelope_finish(out, why, whylen);
}

int envelope_from_doc(const uint8_t *doc, size_t len, uint64_t real_ns, struct envelope *out,
                      char *why, size_t whylen)
{
    memset(out, 0, sizeof *out);
    char err[384];
    if (ph_mp_check(doc, len, &envelope_doc_limits, err, sizeof err) != PH_OK)
        return fail(PH_ERR_CORRUPT, why, whylen, "document is not well-formed: %s", err);
    msgpack_zone zone;
    if (!msgpack_zone_init(&zone, 4096))
        return fail(PH_ERR_SYS, why, whylen, "out of memory decoding a document");
    msgpack_object o;
    size_t off = 0;
    int rc;
    struct doc d;
    msgpack_unpack_return ur = msgpack_unpack((const char *)doc, len, &off, &zone, &o);
    if (ur != MSGPACK_UNPACK_SUCCESS || off != len) {
        rc = fail(PH_ERR_CORRUPT, why, whylen, "document: the msgpack decoder refused it (%d)",
                  (int)ur);
    } else if (o.type != MSGPACK_OBJECT_MAP) {
        rc = fail(PH_ERR_INVAL, why, whylen, "document is not a msgpack map");
    } else if ((rc = doc_read(&o, &d, why, whylen)) == PH_OK) {
        rc = build(&d, real_ns, out, err, sizeof err);
        if (rc != PH_OK) {
            char name[512];
            doc_name(&d, name, sizeof name);
            snprintf(why, whylen, "%s: %s", name, err);
            envelope_clear(out);
        }
    }
    msgpack_zone_destroy(&zone);
    return rc;
}
