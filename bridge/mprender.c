/* A status-full's worker list from msgpack to JSON text (mprender.h). */
#include "mprender.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "contract.h"
#include "ph/common.h"
#include "ph/mpjson.h"
#include "ph/record.h"
#include "text.h"

/* ---- the buffer --------------------------------------------------------- */

static bool jbuf_room(struct jbuf *b, size_t n)
{
    if (b->oom) return false;
    if (b->len + n <= b->cap) return true;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + n)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (p == NULL) {
        b->oom = true;
        return false;
    }
    b->p = p;
    b->cap = cap;
    return true;
}

bool jbuf_reserve(struct jbuf *b, size_t n)
{
    if (b->oom || b->len + n <= b->cap) return !b->oom;
    char *p = realloc(b->p, b->len + n);
    if (p == NULL) return false; /* only a hint: writing grows the buffer as needed */
    b->p = p;
    b->cap = b->len + n;
    return true;
}

void jbuf_put(struct jbuf *b, const char *s, size_t n)
{
    if (!jbuf_room(b, n)) return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

static void jbuf_c(struct jbuf *b, char c)
{
    if (!jbuf_room(b, 1)) return;
    b->p[b->len++] = c;
}

void jbuf_free(struct jbuf *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

/* ---- JSON values, as jansson writes them ------------------------------- */

/* Whether all 8 bytes of x are written as they are: printable ASCII other
 * than '"' and '\\'. Bytes below 0x80 first; for those, (v - 0x01..) & ~v
 * & 0x80.. is non-zero exactly when some byte of v is zero, and (x -
 * 0x20..) & ~x & 0x80.. when some byte of x is below 0x20. */
static bool plain8(uint64_t x)
{
    const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
    if (x & high) return false;
    const uint64_t q = x ^ (ones * '"'), bs = x ^ (ones * '\\');
    const uint64_t ctl = (x - ones * 0x20) & ~x;
    return (((q - ones) & ~q) | ((bs - ones) & ~bs) | ctl) & high ? false : true;
}

/* A JSON string: UTF-8 checked; '"', '\\' and control characters escaped
 * as jansson does (the short forms where JSON has them, else \u00XX).
 * Room for the worst case is taken first (every byte six), so the loop
 * writes without checks; plain text goes eight bytes at a time. */
static int put_string(struct jbuf *b, const char *p, size_t n)
{
    if (n > (SIZE_MAX - 2) / 6) {
        b->oom = true;
        return PH_OK; /* as any failed allocation: the caller sees oom */
    }
    if (!jbuf_room(b, n * 6 + 2)) return PH_OK;
    const unsigned char *s = (const unsigned char *)p; /* NULL when n is 0 */
    char *o = b->p + b->len;
    *o++ = '"';
    size_t i = 0;
    while (i < n) {
        uint64_t x;
        while (n - i >= 8 && (memcpy(&x, s + i, 8), plain8(x))) {
            memcpy(o, s + i, 8);
            o += 8;
            i += 8;
        }
        if (i >= n) break;
        const unsigned char c = s[i];
        if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
            *o++ = (char)c;
            i++;
            continue;
        }
        if (c >= 0x80) {
            const size_t len = text_utf8_seq(s + i, n - i); /* jansson's rules */
            if (len == 0) return PH_ERR_INVAL;
            memcpy(o, s + i, len);
            o += len;
            i += len;
            continue;
        }
        /* JSON's short escapes where it has one (c < 0x20, '"' or '\\'). */
        static const char short_esc[0x60] = {
            ['"'] = '"',  ['\\'] = '\\', ['\b'] = 'b', ['\f'] = 'f',
            ['\n'] = 'n', ['\r'] = 'r',  ['\t'] = 't'};
        static const char hex[] = "0123456789ABCDEF";
        *o++ = '\\';
        if (short_esc[c] != 0) {
            *o++ = short_esc[c];
        } else {
            memcpy(o, "u00", 3);
            o[3] = hex[c >> 4];
            o[4] = hex[c & 15];
            o += 5;
        }
        i++;
    }
    *o++ = '"';
    b->len = (size_t)(o - b->p);
    return PH_OK;
}

/* A real, as jansson's dump writes it at 15 digits: "%.15g", a ".0" when
 * that reads as an integer, and the exponent without '+' or leading
 * zeros. */
static int put_real(struct jbuf *b, double v)
{
    if (!isfinite(v)) return PH_ERR_INVAL;
    char s[40];
    int n = snprintf(s, sizeof s, "%.15g", v);
    if (n <= 0 || (size_t)n >= sizeof s - 3) return PH_ERR_INVAL;
    if (strchr(s, '.') == NULL && strchr(s, 'e') == NULL) {
        s[n++] = '.';
        s[n++] = '0';
        s[n] = '\0';
    }
    char *e = strchr(s, 'e');
    if (e != NULL) {
        char *start = e + 1, *end = e + 2;
        if (*start == '-') start++;
        while (*end == '0')
            end++;
        if (end != start) {
            memmove(start, end, (size_t)(s + n - end) + 1);
            n -= (int)(end - start);
        }
    }
    jbuf_put(b, s, (size_t)n);
    return PH_OK;
}

static bool key_has_nul(const msgpack_object *k)
{
    return k->via.str.size > 0 && memchr(k->via.str.ptr, 0, k->via.str.size) != NULL;
}

static int cmp_key(const void *a, const void *b)
{
    const msgpack_object *x = *(const msgpack_object *const *)a;
    const msgpack_object *y = *(const msgpack_object *const *)b;
    const size_t n = x->via.str.size < y->via.str.size ? x->via.str.size : y->via.str.size;
    int c = n ? memcmp(x->via.str.ptr, y->via.str.ptr, n) : 0;
    if (c != 0) return c;
    return x->via.str.size < y->via.str.size ? -1 : x->via.str.size > y->via.str.size;
}

static bool same_key(const msgpack_object *x, const msgpack_object *y)
{
    return x->via.str.size == y->via.str.size &&
           (x->via.str.size == 0 || memcmp(x->via.str.ptr, y->via.str.ptr, x->via.str.size) == 0);
}

/* Every key a string without NUL, none twice (jansson would keep the last
 * of two: the document is refused instead, as envelope.c's shape check
 * does). */
static int check_keys(const msgpack_object *m)
{
    const uint32_t n = m->via.map.size;
    for (uint32_t i = 0; i < n; i++) {
        const msgpack_object *k = &m->via.map.ptr[i].key;
        if (k->type != MSGPACK_OBJECT_STR || key_has_nul(k)) return PH_ERR_INVAL;
    }
    if (n <= 16) {
        for (uint32_t i = 1; i < n; i++)
            for (uint32_t j = 0; j < i; j++)
                if (same_key(&m->via.map.ptr[i].key, &m->via.map.ptr[j].key)) return PH_ERR_INVAL;
        return PH_OK;
    }
    const msgpack_object **keys = malloc(n * sizeof *keys);
    if (keys == NULL) return PH_ERR_SYS;
    for (uint32_t i = 0; i < n; i++)
        keys[i] = &m->via.map.ptr[i].key;
    qsort(keys, n, sizeof *keys, cmp_key);
    int rc = PH_OK;
    for (uint32_t i = 1; i < n && rc == PH_OK; i++)
        if (same_key(keys[i - 1], keys[i])) rc = PH_ERR_INVAL;
    free(keys);
    return rc;
}

/* A signed 64-bit integer in decimal, as "%" PRId64 writes it: the
 * commonest value of a worker list, written without printf. */
static void put_i64(struct jbuf *b, int64_t v)
{
    char s[24];
    char *p = s + sizeof s;
    /* The magnitude as unsigned: INT64_MIN has no positive int64_t. */
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (v < 0) *--p = '-';
    jbuf_put(b, p, (size_t)(s + sizeof s - p));
}

int mp_write_json(const msgpack_object *o, struct jbuf *b)
{
    int rc = PH_OK;
    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
        jbuf_put(b, "null", 4);
        break;
    case MSGPACK_OBJECT_BOOLEAN:
        if (o->via.boolean)
            jbuf_put(b, "true", 4);
        else
            jbuf_put(b, "false", 5);
        break;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        /* As ph_mp_to_json: JSON integers here are signed 64-bit. */
        put_i64(b, o->via.u64 > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)o->via.u64);
        break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        put_i64(b, o->via.i64);
        break;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        rc = put_real(b, o->via.f64);
        break;
    case MSGPACK_OBJECT_STR:
        rc = put_string(b, o->via.str.ptr, o->via.str.size);
        break;
    case MSGPACK_OBJECT_ARRAY:
        jbuf_c(b, '[');
        for (uint32_t i = 0; rc == PH_OK && i < o->via.array.size; i++) {
            if (i > 0) jbuf_c(b, ',');
            rc = mp_write_json(&o->via.array.ptr[i], b);
        }
        jbuf_c(b, ']');
        break;
    case MSGPACK_OBJECT_MAP:
        rc = check_keys(o);
        jbuf_c(b, '{');
        for (uint32_t i = 0; rc == PH_OK && i < o->via.map.size; i++) {
            if (i > 0) jbuf_c(b, ',');
            const msgpack_object *k = &o->via.map.ptr[i].key;
            rc = put_string(b, k->via.str.ptr, k->via.str.size);
            jbuf_c(b, ':');
            if (rc == PH_OK) rc = mp_write_json(&o->via.map.ptr[i].val, b);
        }
        jbuf_c(b, '}');
        break;
    default:
        jbuf_put(b, "null", 4); /* bin and ext have no JSON form */
    }
    if (rc == PH_OK && b->oom) rc = PH_ERR_SYS;
    return rc;
}

/* ---- the contract of one worker entry (contract.c, check_worker_entry) -- */

/* A msgpack str as the C string contract.c judges (json_string_value: up
 * to a NUL byte, if any). False when it is not a str or that part does not
 * fit in n bytes. */
static bool cstr(const msgpack_object *o, char *buf, size_t n)
{
    if (o == NULL || o->type != MSGPACK_OBJECT_STR) return false;
    const char *nul = o->via.str.size ? memchr(o->via.str.ptr, 0, o->via.str.size) : NULL;
    const size_t len = nul != NULL ? (size_t)(nul - o->via.str.ptr) : o->via.str.size;
    if (len >= n) return false;
    if (len > 0) memcpy(buf, o->via.str.ptr, len);
    buf[len] = '\0';
    return true;
}

/* Whether every key of `m` is in `allowed`; the first that is not goes to
 * `bad`, shortened for a reason. */
static bool closed(const msgpack_object *m, const char *const *allowed, size_t n, char *bad,
                   size_t badlen)
{
    for (uint32_t i = 0; i < m->via.map.size; i++) {
        const msgpack_object *k = &m->via.map.ptr[i].key;
        if (k->type != MSGPACK_OBJECT_STR) {
            snprintf(bad, badlen, "(not a string)");
            return false;
        }
        bool ok = false;
        for (size_t j = 0; !ok && j < n; j++)
            ok = k->via.str.size == strlen(allowed[j]) &&
                 memcmp(k->via.str.ptr, allowed[j], k->via.str.size) == 0;
        if (!ok) {
            /* As contract.c shows a key: 48 bytes at most, "..." when cut. */
            char shown[64] = "";
            if (!text_prefix(k->via.str.ptr, k->via.str.size, 48, shown)) strcat(shown, "...");
            snprintf(bad, badlen, "%s", shown);
            return false;
        }
    }
    return true;
}

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static int check_iostate(const msgpack_object *st, size_t idx, char *why, size_t whylen)
{
    static const char *const top[] = {"work", "control"};
    static const char *const work_keys[] = {"input", "output", "context"};
    static const char *const io_keys[] = {"input", "output"};
    char bad[64];
    if (st->type != MSGPACK_OBJECT_MAP)
        return text_reason(why, whylen, "data.context.workers[%zu].ioState must be an object", idx);
    if (!closed(st, top, COUNT(top), bad, sizeof bad))
        return text_reason(
            why, whylen,
            "data.context.workers[%zu].ioState has key '%s', which the contract does not "
            "allow there",
            idx, bad);
    if (ph_mp_map_get(st, "work") == NULL)
        return text_reason(why, whylen,
                           "data.context.workers[%zu].ioState lacks the required 'work'", idx);
    for (size_t i = 0; i < COUNT(top); i++) {
        const msgpack_object *p = ph_mp_map_get(st, top[i]);
        if (p == NULL) continue;
        const char *w = top[i];
        if (p->type != MSGPACK_OBJECT_MAP)
            return text_reason(why, whylen,
                               "data.context.workers[%zu].ioState.%s must be an object", idx, w);
        if (!(i == 0 ? closed(p, work_keys, COUNT(work_keys), bad, sizeof bad)
                     : closed(p, io_keys, COUNT(io_keys), bad, sizeof bad)))
            return text_reason(
                why, whylen,
                "data.context.workers[%zu].ioState.%s has key '%s', which the contract "
                "does not allow there",
                idx, w, bad);
        for (size_t k = 0; k < COUNT(io_keys); k++)
            if (ph_mp_map_get(p, io_keys[k]) == NULL)
                return text_reason(why, whylen,
                                   "data.context.workers[%zu].ioState.%s lacks the required '%s'",
                                   idx, w, io_keys[k]);
        const msgpack_object *ctx = ph_mp_map_get(p, "context");
        if (ctx != NULL && ctx->type != MSGPACK_OBJECT_MAP)
            return text_reason(why, whylen,
                               "data.context.workers[%zu].ioState.%s.context must be an object",
                               idx, w);
        char v[32];
        if (!cstr(ph_mp_map_get(p, "input"), v, sizeof v) || ph_io_in_parse(v) < 0)
            return text_reason(
                why, whylen,
                "data.context.workers[%zu].ioState.%s.input must be ok, out-of-data, "
                "backpressure, upstream-error or unknown",
                idx, w);
        if (!cstr(ph_mp_map_get(p, "output"), v, sizeof v) || ph_io_out_parse(v) < 0)
            return text_reason(why, whylen,
                               "data.context.workers[%zu].ioState.%s.output must be ok, blocked, "
                               "throttled, downstream-error or unknown",
                               idx, w);
    }
    return PH_OK;
}

/* One entry: the rules of contract.c's check_worker_entry. role and
 * instance come back in role/inst. */
static int check_entry(const msgpack_object *w, size_t idx, char *role, char *inst, char *why,
                       size_t whylen)
{
    /* The required keys, in the order of f[] below. */
    enum { R_ROLE, R_INSTANCE, R_ENABLED, R_TPS, R_IOSTATE, R_LASTSEEN, R_STALE, R_N };
    static const char *const req[R_N] = {"role",    "instance",   "enabled", "tps",
                                         "ioState", "lastSeenAt", "stale"};
    static const uint32_t req_len[R_N] = {4, 8, 7, 3, 7, 10, 5};
    if (w->type != MSGPACK_OBJECT_MAP)
        return text_reason(why, whylen, "data.context.workers[%zu] must be an object", idx);
    /* Keys first: a key that is not a string has no name to look up. */
    if (check_keys(w) != PH_OK)
        return text_reason(
            why, whylen,
            "data.context.workers[%zu] holds a value JSON cannot carry (a string that "
            "is not UTF-8, a duplicate or NUL map key, NaN or infinity)",
            idx);
    /* One pass over the entry's keys (all strings, none twice: checked
     * above) finds each required one. */
    const msgpack_object *f[R_N] = {NULL};
    for (uint32_t k = 0; k < w->via.map.size; k++) {
        const msgpack_object *key = &w->via.map.ptr[k].key;
        for (size_t r = 0; r < R_N; r++)
            if (key->via.str.size == req_len[r] &&
                memcmp(key->via.str.ptr, req[r], req_len[r]) == 0) {
                f[r] = &w->via.map.ptr[k].val;
                break;
            }
    }
    for (size_t i = 0; i < R_N; i++)
        if (f[i] == NULL)
            return text_reason(why, whylen, "data.context.workers[%zu] lacks the required '%s'",
                               idx, req[i]);
    for (int k = 0; k < 2; k++) {
        const char *key = k == 0 ? "role" : "instance";
        char *dst = k == 0 ? role : inst;
        const msgpack_object *v = f[k == 0 ? R_ROLE : R_INSTANCE];
        if (v->type != MSGPACK_OBJECT_STR)
            return text_reason(why, whylen, "data.context.workers[%zu].%s must be a string", idx,
                               key);
        /* The name for a reason is written only when there is one to give:
         * a valid identifier leaves ph_ident_check's message untouched. */
        char what[96], unused[1];
        if (cstr(v, dst, PH_ID_MAX) && ph_ident_check(key, dst, unused, sizeof unused) == PH_OK)
            continue;
        snprintf(what, sizeof what, "data.context.workers[%zu].%s", idx, key);
        if (!cstr(v, dst, PH_ID_MAX))
            return text_reason(why, whylen, "%s is longer than %d characters", what, PH_ID_MAX - 1);
        if (ph_ident_check(what, dst, why, whylen) != PH_OK) return PH_ERR_INVAL;
    }
    static const int bools[] = {R_ENABLED, R_STALE};
    for (size_t i = 0; i < COUNT(bools); i++)
        if (f[bools[i]]->type != MSGPACK_OBJECT_BOOLEAN)
            return text_reason(why, whylen, "data.context.workers[%zu].%s must be a boolean", idx,
                               req[bools[i]]);
    const msgpack_object *tps = f[R_TPS];
    if (tps->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return text_reason(
            why, whylen, "data.context.workers[%zu].tps must be an integer >= 0 (got %s)", idx,
            tps->type == MSGPACK_OBJECT_FLOAT32 || tps->type == MSGPACK_OBJECT_FLOAT64
                ? "a fraction"
            : tps->type == MSGPACK_OBJECT_NEGATIVE_INTEGER ? "a negative number"
                                                           : "no number");
    /* Any length, as contract.c takes it (a long fraction is valid). */
    const msgpack_object *seen = f[R_LASTSEEN];
    char ts_small[64], *ts = ts_small;
    const size_t tlen = seen->type == MSGPACK_OBJECT_STR ? seen->via.str.size : 0;
    if (tlen >= sizeof ts_small && (ts = malloc(tlen + 1)) == NULL) return PH_ERR_SYS;
    const bool ts_ok = cstr(seen, ts, tlen >= sizeof ts_small ? tlen + 1 : sizeof ts_small) &&
                       contract_rfc3339_valid(ts);
    if (ts != ts_small) free(ts);
    if (!ts_ok)
        return text_reason(
            why, whylen, "data.context.workers[%zu].lastSeenAt must be an RFC 3339 date-time", idx);
    return check_iostate(f[R_IOSTATE], idx, why, whylen);
}

int mp_workers_render(const msgpack_object *arr, struct jbuf *b, json_t **ids, char *why,
                      size_t whylen)
{
    *ids = NULL;
    if (arr->type != MSGPACK_OBJECT_ARRAY)
        return text_reason(why, whylen,
                           "the swarm-controller's status-full must list its workers in "
                           "data.context.workers (an array)");
    json_t *list = json_array();
    if (list == NULL) return PH_ERR_SYS;
    char prev_role[PH_ID_MAX] = "", prev_inst[PH_ID_MAX] = "";
    int rc = PH_OK;
    jbuf_c(b, '[');
    for (uint32_t i = 0; rc == PH_OK && i < arr->via.array.size; i++) {
        const msgpack_object *w = &arr->via.array.ptr[i];
        char role[PH_ID_MAX], inst[PH_ID_MAX];
        rc = check_entry(w, i, role, inst, why, whylen);
        if (rc != PH_OK) break;
        if (i > 0) {
            int c = strcmp(prev_role, role);
            if (c == 0) c = strcmp(prev_inst, inst);
            if (c >= 0) {
                rc = text_reason(
                    why, whylen,
                    "data.context.workers is not sorted by role then instance (or lists a "
                    "worker twice) at entry %" PRIu32 " (%s/%s)",
                    i, role, inst);
                break;
            }
            jbuf_c(b, ',');
        }
        memcpy(prev_role, role, sizeof role);
        memcpy(prev_inst, inst, sizeof inst);
        rc = mp_write_json(w, b);
        if (rc == PH_ERR_INVAL)
            text_reason(why, whylen,
                        "data.context.workers[%" PRIu32
                        "] holds a value JSON cannot carry (a string "
                        "that is not UTF-8, a duplicate or NUL map key, NaN or infinity)",
                        i);
        /* role and instance passed ph_ident_check (ASCII): no UTF-8 check
         * needed, and no format to parse. */
        if (rc != PH_OK) break;
        json_t *id = json_object();
        if (id == NULL ||
            json_object_set_new_nocheck(id, "role", json_stringn_nocheck(role, strlen(role))) ||
            json_object_set_new_nocheck(id, "instance", json_stringn_nocheck(inst, strlen(inst)))) {
            json_decref(id); /* the set calls took their values even on failure */
            rc = PH_ERR_SYS;
        } else if (json_array_append_new(list, id) != 0) { /* which took id */
            rc = PH_ERR_SYS;
        }
    }
    jbuf_c(b, ']');
    if (rc == PH_OK && b->oom) rc = PH_ERR_SYS;
    if (rc != PH_OK) {
        json_decref(list);
        return rc;
    }
    *ids = list;
    return PH_OK;
}
