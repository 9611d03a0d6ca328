/* Encoders and validating decoders for the records of ph/record.h. */
#include "ph/record.h"

#include <stdio.h>
#include <string.h>

static const char *const in_names[] = {"unknown", "ok", "backpressure", "out-of-data",
                                       "upstream-error"};
static const char *const out_names[] = {"unknown", "ok", "throttled", "blocked",
                                        "downstream-error"};

const char *ph_io_in_name(int v)
{
    return v >= 0 && v <= PH_IN_MAX_ ? in_names[v] : "unknown";
}

const char *ph_io_out_name(int v)
{
    return v >= 0 && v <= PH_OUT_MAX_ ? out_names[v] : "unknown";
}

int ph_io_in_parse(const char *s)
{
    for (int i = 0; s != NULL && i <= PH_IN_MAX_; i++)
        if (strcmp(s, in_names[i]) == 0) return i;
    return -1;
}

int ph_io_out_parse(const char *s)
{
    for (int i = 0; s != NULL && i <= PH_OUT_MAX_; i++)
        if (strcmp(s, out_names[i]) == 0) return i;
    return -1;
}

_Static_assert(sizeof(struct ph_rec_status) == PH_REC_STATUS_SIZE, "status record layout");

int ph_rec_status_decode(const uint8_t *body, uint32_t len, struct ph_rec_status *out)
{
    if (len != PH_REC_STATUS_SIZE) return PH_ERR_CORRUPT;
    struct ph_rec_status s;
    memcpy(&s, body, sizeof s);
    if ((s.flags & ~PH_STATUS_ENABLED) != 0 || s.io_in > PH_IN_MAX_ || s.io_out > PH_OUT_MAX_ ||
        s.reserved != 0)
        return PH_ERR_CORRUPT;
    *out = s;
    return PH_OK;
}

static void pack_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

int ph_rec_alert_encode(msgpack_sbuffer *sb, const char *level, const char *code,
                        const char *message)
{
    if (level == NULL || code == NULL || message == NULL) return PH_ERR_INVAL;
    struct ph_rec_alert a;
    if (strlen(level) >= sizeof a.level || strlen(code) >= sizeof a.code || code[0] == '\0')
        return PH_ERR_INVAL;
    if (strcmp(level, "info") != 0 && strcmp(level, "warn") != 0 && strcmp(level, "error") != 0)
        return PH_ERR_INVAL;
    /* Messages longer than the record allows are cut, not refused: the alert
     * matters more than its tail. */
    char msg[sizeof a.message];
    snprintf(msg, sizeof msg, "%s", message);
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 3);
    pack_str(&pk, "level");
    pack_str(&pk, level);
    pack_str(&pk, "code");
    pack_str(&pk, code);
    pack_str(&pk, "message");
    pack_str(&pk, msg);
    return PH_OK;
}

int ph_rec_alert_decode(const uint8_t *body, uint32_t len, struct ph_rec_alert *out)
{
    char err[128];
    msgpack_zone zone;
    msgpack_zone_init(&zone, 1024);
    msgpack_object o;
    int rc = ph_mp_decode(body, len, true, &zone, &o, err, sizeof err);
    if (rc == PH_OK &&
        (!ph_mp_str(ph_mp_map_get(&o, "level"), out->level, sizeof out->level) ||
         !ph_mp_str(ph_mp_map_get(&o, "code"), out->code, sizeof out->code) ||
         !ph_mp_str(ph_mp_map_get(&o, "message"), out->message, sizeof out->message) ||
         out->code[0] == '\0' ||
         (strcmp(out->level, "info") != 0 && strcmp(out->level, "warn") != 0 &&
          strcmp(out->level, "error") != 0)))
        rc = PH_ERR_CORRUPT;
    msgpack_zone_destroy(&zone);
    return rc;
}

int ph_rec_ack_encode(msgpack_sbuffer *sb, uint64_t token, bool ok, const char *message)
{
    struct ph_rec_ack a;
    char msg[sizeof a.message];
    snprintf(msg, sizeof msg, "%s", message ? message : "");
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 3);
    pack_str(&pk, "token");
    msgpack_pack_uint64(&pk, token);
    pack_str(&pk, "ok");
    if (ok)
        msgpack_pack_true(&pk);
    else
        msgpack_pack_false(&pk);
    pack_str(&pk, "message");
    pack_str(&pk, msg);
    return PH_OK;
}

int ph_rec_ack_decode(const uint8_t *body, uint32_t len, struct ph_rec_ack *out)
{
    char err[128];
    msgpack_zone zone;
    msgpack_zone_init(&zone, 512);
    msgpack_object o;
    int rc = ph_mp_decode(body, len, true, &zone, &o, err, sizeof err);
    if (rc == PH_OK) {
        const msgpack_object *t = ph_mp_map_get(&o, "token");
        const msgpack_object *k = ph_mp_map_get(&o, "ok");
        const msgpack_object *m = ph_mp_map_get(&o, "message");
        if (t == NULL || t->type != MSGPACK_OBJECT_POSITIVE_INTEGER || k == NULL ||
            k->type != MSGPACK_OBJECT_BOOLEAN) {
            rc = PH_ERR_CORRUPT;
        } else {
            out->token = t->via.u64;
            out->ok = k->via.boolean;
            out->message[0] = '\0';
            if (m != NULL && !ph_mp_str(m, out->message, sizeof out->message))
                rc = PH_ERR_CORRUPT;
        }
    }
    msgpack_zone_destroy(&zone);
    return rc;
}

int ph_cmd_encode(msgpack_sbuffer *sb, uint64_t token, const uint8_t *patch, size_t patch_len)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, patch != NULL ? 2 : 1);
    pack_str(&pk, "token");
    msgpack_pack_uint64(&pk, token);
    if (patch != NULL) {
        pack_str(&pk, "patch");
        /* The patch is already packed msgpack: append its bytes verbatim. */
        msgpack_sbuffer_write(sb, (const char *)patch, patch_len);
    }
    return PH_OK;
}

bool ph_transport_ok(const char *t)
{
    return t != NULL && (strcmp(t, "shm") == 0 || strcmp(t, "relay") == 0 ||
                         strcmp(t, "amqp") == 0);
}

bool ph_location_ok(const char *s)
{
    if (s == NULL || s[0] == '\0') return false;
    size_t n = 0;
    for (const char *p = s; *p; p++, n++)
        if (n >= PH_LOCATION_MAX - 1 || *p <= ' ' || *p > '~') return false;
    return true;
}

int ph_rec_meta_encode(msgpack_sbuffer *sb, const char *location, const char *transport)
{
    if (!ph_location_ok(location) || !ph_transport_ok(transport)) return PH_ERR_INVAL;
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    pack_str(&pk, "location");
    pack_str(&pk, location);
    pack_str(&pk, "transport");
    pack_str(&pk, transport);
    return PH_OK;
}

int ph_rec_meta_decode(const uint8_t *body, uint32_t len, struct ph_rec_meta *out)
{
    char err[128];
    msgpack_zone zone;
    msgpack_zone_init(&zone, 256);
    msgpack_object o;
    int rc = ph_mp_decode(body, len, true, &zone, &o, err, sizeof err);
    if (rc == PH_OK &&
        (!ph_mp_str(ph_mp_map_get(&o, "location"), out->location, sizeof out->location) ||
         !ph_mp_str(ph_mp_map_get(&o, "transport"), out->transport, sizeof out->transport) ||
         !ph_location_ok(out->location) || !ph_transport_ok(out->transport)))
        rc = PH_ERR_CORRUPT;
    msgpack_zone_destroy(&zone);
    return rc;
}
