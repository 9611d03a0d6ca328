/* Signal intake checks and the signal document (sigcheck.h).
 *
 * Order of the checks: framing first (size, JSON, shape), then the routing
 * key, then the envelope from its outline (keys, kind, type) to its details,
 * so that the reason reported is the most basic thing wrong with a message.
 * The envelope's key order is not enforced on intake: JSON objects are
 * unordered and a sender's serializer may not keep it; the key set is. */
#include "sigcheck.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ph/doc.h"
#include "ph/mpjson.h"
#include "ph/record.h"
#include "text.h"

static const char *const verdict_names[SIG_VERDICT_COUNT_] = {
    [SIG_OK] = "ok",
    [SIG_OVERSIZE] = "oversize",
    [SIG_NOT_JSON] = "not-json",
    [SIG_NOT_OBJECT] = "not-an-object",
    [SIG_BAD_LINE] = "bad-line",
    [SIG_BAD_ROUTING_KEY] = "bad-routing-key",
    [SIG_NOT_ENVELOPE] = "not-an-envelope",
    [SIG_WRONG_KIND] = "wrong-kind",
    [SIG_UNKNOWN_TYPE] = "unknown-type",
    [SIG_TYPE_MISMATCH] = "type-mismatch",
    [SIG_BAD_SCOPE] = "bad-scope",
    [SIG_SCOPE_MISMATCH] = "scope-mismatch",
    [SIG_OTHER_SWARM] = "other-swarm",
    [SIG_NO_CORRELATION_ID] = "no-correlation-id",
    [SIG_BAD_IDEMPOTENCY_KEY] = "bad-idempotency-key",
    [SIG_BAD_DATA] = "bad-data",
    [SIG_TOO_COMPLEX] = "too-complex",
};

const char *sigcheck_verdict_name(enum sigcheck_verdict v)
{
    return (unsigned)v < SIG_VERDICT_COUNT_ ? verdict_names[v] : "?";
}

void sigcheck_result_init(struct sigcheck_result *r)
{
    memset(r, 0, sizeof *r);
    msgpack_sbuffer_init(&r->doc);
}

void sigcheck_result_free(struct sigcheck_result *r)
{
    msgpack_sbuffer_destroy(&r->doc);
    msgpack_sbuffer_init(&r->doc);
}

static enum sigcheck_verdict verdict(struct sigcheck_result *r, enum sigcheck_verdict v,
                                     const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static enum sigcheck_verdict verdict(struct sigcheck_result *r, enum sigcheck_verdict v,
                                     const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->reason, sizeof r->reason, fmt, ap);
    va_end(ap);
    r->verdict = v;
    return v;
}

/* ---- prefixes of rejected messages -------------------------------------- */

static void redact(json_t *v)
{
    if (json_is_object(v)) {
        for (void *it = json_object_iter(v); it != NULL; it = json_object_iter_next(v, it)) {
            if (ph_key_is_secret(json_object_iter_key(it)))
                json_object_iter_set_new(v, it, json_string("***"));
            else
                redact(json_object_iter_value(it));
        }
    } else if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++)
            redact(json_array_get(v, i));
    } else {
        ph_json_strip_url_credentials(v); /* "amqp://u:p@h" under any key */
    }
}

/* Raw bytes: printable prefix, cut right after the first word that names a
 * secret, so a value written after it cannot be quoted, and right after the
 * first "://": the prefix may end inside a URL's userinfo, where stripping
 * could not tell a password from a host. */
static bool secret_prefix(char *out, size_t l)
{
    char save = out[l];
    out[l] = '\0';
    bool secret = ph_key_is_secret(out);
    out[l] = save;
    return secret;
}

static void raw_prefix(const char *s, size_t len, char *out)
{
    text_prefix(s, len, SIGCHECK_PREFIX_MAX, out);
    char *url = strstr(out, "://");
    if (url != NULL) url[3] = '\0';
    size_t n = strlen(out);
    /* ph_key_is_secret splits the whole text into words on every call, so
     * it is asked at the end of each word only (a value cannot start before
     * its key's last letter), then, once, at each length inside the word
     * that made it answer yes: the cut falls where a byte-by-byte scan would
     * put it. */
    for (size_t l = 1; l <= n; l++) {
        bool word_end =
            l == n || (isalpha((unsigned char)out[l - 1]) && !isalpha((unsigned char)out[l]));
        if (!word_end || !secret_prefix(out, l)) continue;
        size_t b = l;
        while (b > 0 && isalpha((unsigned char)out[b - 1]))
            b--;
        for (size_t c = b + 1; c < l; c++)
            if (secret_prefix(out, c)) {
                l = c;
                break;
            }
        out[l] = '\0';
        return;
    }
}

/* Parsed JSON: serialised again with secret values replaced. */
static void json_prefix(const json_t *v, char *out)
{
    json_t *copy = json_deep_copy(v);
    char *s = NULL;
    if (copy != NULL) {
        redact(copy);
        s = json_dumps(copy, JSON_COMPACT | JSON_ENCODE_ANY);
    }
    if (s != NULL)
        text_prefix(s, strlen(s), SIGCHECK_PREFIX_MAX, out);
    else
        snprintf(out, SIGCHECK_PREFIX_MAX + 1, "(unprintable)");
    free(s);
    json_decref(copy);
}

/* ---- the checks --------------------------------------------------------- */

static enum sigcheck_verdict parse(const char *s, size_t len, json_t **out,
                                   struct sigcheck_result *r)
{
    json_error_t je;
    *out = json_loadb(s, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
    if (*out != NULL) return SIG_OK;
    /* jansson quotes the offending token ("... near 'hunter2'"): it could be
     * part of a secret, so only the description and the position are kept. */
    char *near = strstr(je.text, " near ");
    if (near != NULL) *near = '\0';
    return verdict(r, SIG_NOT_JSON, "not JSON: %s at byte %d", je.text, je.position);
}

/* Scope value vs routing key segment: null <=> ALL (""), else equal. */
static bool segment_matches(const json_t *v, const char *seg)
{
    if (json_is_null(v)) return seg[0] == '\0';
    return seg[0] != '\0' && strcmp(json_string_value(v), seg) == 0;
}

static void pack_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

static void pack_str_or_nil(msgpack_packer *pk, const json_t *v)
{
    if (json_is_string(v)) {
        msgpack_pack_str(pk, json_string_length(v));
        msgpack_pack_str_body(pk, json_string_value(v), json_string_length(v));
    } else {
        msgpack_pack_nil(pk);
    }
}

/* The signal document of ph/doc.h. */
static enum sigcheck_verdict pack(const char *rk, const json_t *env, struct sigcheck_result *r)
{
    const json_t *scope = json_object_get(env, "scope");
    msgpack_packer pk;
    msgpack_packer_init(&pk, &r->doc, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 9);
    pack_str(&pk, PH_DOC_TYPE);
    pack_str_or_nil(&pk, json_object_get(env, "type"));
    pack_str(&pk, PH_DOC_SWARM);
    pack_str_or_nil(&pk, json_object_get(scope, "swarmId"));
    pack_str(&pk, PH_DOC_ROLE);
    pack_str_or_nil(&pk, json_object_get(scope, "role"));
    pack_str(&pk, PH_DOC_INSTANCE);
    pack_str_or_nil(&pk, json_object_get(scope, "instance"));
    pack_str(&pk, PH_DOC_ORIGIN);
    pack_str_or_nil(&pk, json_object_get(env, "origin"));
    pack_str(&pk, PH_DOC_CID);
    pack_str_or_nil(&pk, json_object_get(env, "correlationId"));
    pack_str(&pk, PH_DOC_IKEY);
    pack_str_or_nil(&pk, json_object_get(env, "idempotencyKey"));
    pack_str(&pk, PH_DOC_DATA);
    /* Secrets stay: a config-update may legitimately carry one for a worker;
     * it goes to the controller through owner-only shared memory and is
     * never logged here. */
    if (ph_json_pack(&pk, json_object_get(env, "data"), false) != 0)
        return verdict(r, SIG_TOO_COMPLEX, "data is nested deeper than %u levels",
                       ph_mp_default_limits.max_depth);
    pack_str(&pk, PH_DOC_RK);
    pack_str(&pk, rk);
    /* The controller decodes with ph_mp_default_limits: refuse here what it
     * would refuse there, where nobody could raise the alert. */
    char err[160];
    if (ph_mp_check((const uint8_t *)r->doc.data, r->doc.size, NULL, err, sizeof err) != PH_OK)
        return verdict(r, SIG_TOO_COMPLEX, "data exceeds what the controller accepts (%s)", err);
    return SIG_OK;
}

static enum sigcheck_verdict check_envelope(const struct sigcheck_cfg *cfg, const char *rk,
                                            const json_t *env, struct sigcheck_result *r)
{
    char why[256];
    struct contract_rk k;
    if (contract_rk_parse(rk, &k, why, sizeof why) != PH_OK)
        return verdict(r, SIG_BAD_ROUTING_KEY, "bad routing key: %s", why);
    if (k.kind != CK_SIGNAL)
        return verdict(
            r, SIG_BAD_ROUTING_KEY,
            "routing key is not a signal key (signal.<type>.<swarmId>.<role>.<instance>)");
    for (size_t i = 0; i < CONTRACT_ENVELOPE_KEYS; i++)
        if (json_object_get(env, contract_envelope_keys[i]) == NULL)
            return verdict(r, SIG_NOT_ENVELOPE, "not an envelope: '%s' is missing",
                           contract_envelope_keys[i]);
    if (json_object_size(env) != CONTRACT_ENVELOPE_KEYS)
        return verdict(r, SIG_NOT_ENVELOPE,
                       "not an envelope: it has keys beyond the contract's nine");

    const json_t *kind = json_object_get(env, "kind");
    if (!json_is_string(kind) || strcmp(json_string_value(kind), "signal") != 0) {
        char shown[40] = "(not a string)";
        if (json_is_string(kind))
            text_prefix(json_string_value(kind), json_string_length(kind), 32, shown);
        return verdict(r, SIG_WRONG_KIND, "kind is '%s', a control message must be 'signal'",
                       shown);
    }
    const json_t *type = json_object_get(env, "type");
    if (!json_is_string(type) || !contract_signal_type_known(json_string_value(type))) {
        char shown[40] = "(not a string)";
        if (json_is_string(type))
            text_prefix(json_string_value(type), json_string_length(type), 32, shown);
        return verdict(r, SIG_UNKNOWN_TYPE, "unknown signal type '%s'", shown);
    }
    if (strcmp(k.type, json_string_value(type)) != 0)
        return verdict(r, SIG_TYPE_MISMATCH,
                       "routing key says type '%s' but the envelope says '%s'", k.type,
                       json_string_value(type));
    const json_t *ts = json_object_get(env, "timestamp");
    if (!json_is_string(ts) || !contract_rfc3339_valid(json_string_value(ts)))
        return verdict(r, SIG_NOT_ENVELOPE, "not an envelope: timestamp is not RFC 3339");
    const json_t *ver = json_object_get(env, "version");
    if (!json_is_string(ver) || strcmp(json_string_value(ver), CONTRACT_VERSION) != 0)
        return verdict(r, SIG_NOT_ENVELOPE, "not an envelope: version is not \"%s\"",
                       CONTRACT_VERSION);
    const json_t *origin = json_object_get(env, "origin");
    if (!json_is_string(origin) || json_string_length(origin) == 0 ||
        json_string_length(origin) >= CONTRACT_STR_MAX)
        return verdict(r, SIG_NOT_ENVELOPE,
                       "not an envelope: origin must be a non-empty string of at most %d bytes",
                       CONTRACT_STR_MAX - 1);

    const json_t *scope = json_object_get(env, "scope");
    if (contract_check_scope(scope, why, sizeof why) != PH_OK)
        return verdict(r, SIG_BAD_SCOPE, "bad scope: %s", why);
    static const char *const skeys[] = {"swarmId", "role", "instance"};
    const char *segs[] = {k.swarm, k.role, k.instance};
    for (int i = 0; i < 3; i++) {
        const json_t *v = json_object_get(scope, skeys[i]);
        if (!segment_matches(v, segs[i]))
            return verdict(r, SIG_SCOPE_MISMATCH, "scope.%s is %s%s%s but the routing key says %s",
                           skeys[i], json_is_null(v) ? "" : "'",
                           json_is_null(v) ? "null" : json_string_value(v),
                           json_is_null(v) ? "" : "'", segs[i][0] ? segs[i] : "ALL");
    }
    if (k.swarm[0] != '\0' && strcmp(k.swarm, cfg->swarm) != 0)
        return verdict(r, SIG_OTHER_SWARM, "addressed to swarm '%s', this bridge serves '%s'",
                       k.swarm, cfg->swarm);
    if (contract_check_id("correlationId", json_object_get(env, "correlationId"), true, why,
                          sizeof why) != PH_OK)
        return verdict(r, SIG_NO_CORRELATION_ID, "%s", why);
    if (contract_check_id("idempotencyKey", json_object_get(env, "idempotencyKey"), false, why,
                          sizeof why) != PH_OK)
        return verdict(r, SIG_BAD_IDEMPOTENCY_KEY, "%s", why);
    if (!json_is_object(json_object_get(env, "data")))
        return verdict(r, SIG_BAD_DATA, "data must be an object (the command's arguments)");

    enum sigcheck_verdict v = pack(rk, env, r);
    if (v != SIG_OK) return v;
    snprintf(r->type, sizeof r->type, "%s", json_string_value(type));
    /* Checked above: a string shorter than CONTRACT_STR_MAX without NUL
     * surprises is all the log needs (printable copy). */
    const json_t *cid = json_object_get(env, "correlationId");
    text_prefix(json_string_value(cid), json_string_length(cid), sizeof r->cid - 1, r->cid);
    r->verdict = SIG_OK;
    r->reason[0] = '\0';
    return SIG_OK;
}

/* Who a rejected signal can be answered to (see sigcheck_result.answer).
 * Independent of the order of the checks: any rejection qualifies as long
 * as these facts hold. */
static void identify(const struct sigcheck_cfg *cfg, const char *rk, const json_t *env,
                     struct sigcheck_result *r)
{
    char why[128];
    struct contract_rk k;
    if (!json_is_object(env) || contract_rk_parse(rk, &k, why, sizeof why) != PH_OK ||
        k.kind != CK_SIGNAL || strcmp(k.swarm, cfg->swarm) != 0)
        return;
    const json_t *type = json_object_get(env, "type");
    const json_t *cid = json_object_get(env, "correlationId");
    if (!json_is_string(type) || !contract_signal_type_known(json_string_value(type)) ||
        strcmp(json_string_value(type), k.type) != 0 ||
        contract_check_id("correlationId", cid, true, why, sizeof why) != PH_OK ||
        strlen(json_string_value(cid)) != json_string_length(cid))
        return;
    const json_t *ikey = json_object_get(env, "idempotencyKey");
    bool ikey_ok = contract_check_id("idempotencyKey", ikey, false, why, sizeof why) == PH_OK &&
                   json_is_string(ikey) &&
                   strlen(json_string_value(ikey)) == json_string_length(ikey);
    snprintf(r->answer.type, sizeof r->answer.type, "%s", k.type);
    snprintf(r->answer.cid, sizeof r->answer.cid, "%s", json_string_value(cid));
    snprintf(r->answer.ikey, sizeof r->answer.ikey, "%s", ikey_ok ? json_string_value(ikey) : "");
    snprintf(r->answer.role, sizeof r->answer.role, "%s", k.role);
    snprintf(r->answer.instance, sizeof r->answer.instance, "%s", k.instance);
    r->answer.ok = true;
}

static size_t max_bytes(const struct sigcheck_cfg *cfg)
{
    return cfg->max_bytes != 0 ? cfg->max_bytes : SIGCHECK_DEFAULT_MAX_BYTES;
}

/* Fills the prefix of a rejected message and drops what was parsed. */
static enum sigcheck_verdict finish(struct sigcheck_result *r, const char *raw, size_t len,
                                    json_t *parsed)
{
    if (r->verdict != SIG_OK) {
        if (parsed != NULL)
            json_prefix(parsed, r->prefix);
        else
            raw_prefix(raw, len, r->prefix);
        sigcheck_result_free(r);
    }
    json_decref(parsed);
    return r->verdict;
}

enum sigcheck_verdict sigcheck_message(const struct sigcheck_cfg *cfg, const char *rk, size_t rklen,
                                       const char *body, size_t len, struct sigcheck_result *r)
{
    sigcheck_result_free(r);
    r->verdict = SIG_OK;
    r->reason[0] = r->prefix[0] = r->type[0] = r->cid[0] = '\0';
    r->answer.ok = false;
    text_prefix(rk, rklen, sizeof r->rk - 1, r->rk);
    json_t *env = NULL;
    char key[CONTRACT_RK_MAX];
    const bool key_ok = rklen < sizeof key && memchr(rk, '\0', rklen) == NULL;
    if (key_ok) {
        memcpy(key, rk, rklen);
        key[rklen] = '\0';
    }
    if (len > max_bytes(cfg)) {
        verdict(r, SIG_OVERSIZE, "message of %zu bytes is over the %zu-byte limit", len,
                max_bytes(cfg));
        /* Read it anyway, within a bound, to learn whom to answer. */
        json_error_t je;
        if (key_ok && len <= max_bytes(cfg) * SIGCHECK_IDENTIFY_FACTOR) {
            env = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
            identify(cfg, key, env, r);
        }
    } else if (parse(body, len, &env, r) == SIG_OK) {
        if (!json_is_object(env))
            verdict(r, SIG_NOT_OBJECT, "the message is JSON but not an object");
        else if (!key_ok)
            verdict(r, SIG_BAD_ROUTING_KEY, "bad routing key: too long or contains NUL");
        else if (check_envelope(cfg, key, env, r) != SIG_OK)
            identify(cfg, key, env, r);
    }
    return finish(r, body, len, env);
}

enum sigcheck_verdict sigcheck_line(const struct sigcheck_cfg *cfg, const char *line, size_t len,
                                    size_t full_len, struct sigcheck_result *r)
{
    sigcheck_result_free(r);
    r->verdict = SIG_OK;
    r->reason[0] = r->prefix[0] = r->type[0] = r->cid[0] = r->rk[0] = '\0';
    r->answer.ok = false;
    json_t *top = NULL;
    if (full_len > max_bytes(cfg) || len > max_bytes(cfg)) {
        verdict(r, SIG_OVERSIZE, "line of %zu bytes is over the %zu-byte limit",
                full_len > len ? full_len : len, max_bytes(cfg));
    } else if (parse(line, len, &top, r) == SIG_OK) {
        const json_t *rk = json_object_get(top, "routingKey");
        const json_t *env = json_object_get(top, "envelope");
        if (!json_is_object(top)) {
            verdict(r, SIG_NOT_OBJECT, "the line is JSON but not an object");
        } else if (!json_is_string(rk) || env == NULL || json_object_size(top) != 2) {
            verdict(r, SIG_BAD_LINE,
                    "a signal line is {\"routingKey\": string, \"envelope\": object} and "
                    "nothing else");
        } else {
            text_prefix(json_string_value(rk), json_string_length(rk), sizeof r->rk - 1, r->rk);
            if (!json_is_object(env))
                verdict(r, SIG_NOT_OBJECT, "the envelope is not a JSON object");
            else if (json_string_length(rk) >= CONTRACT_RK_MAX ||
                     strlen(json_string_value(rk)) != json_string_length(rk))
                verdict(r, SIG_BAD_ROUTING_KEY, "bad routing key: too long or contains NUL");
            else if (check_envelope(cfg, json_string_value(rk), env, r) != SIG_OK)
                identify(cfg, json_string_value(rk), env, r);
        }
    }
    return finish(r, line, len, top);
}
