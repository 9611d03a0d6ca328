/* JSON <-> msgpack for configs, io topology and command patches, and the
 * removal of secrets (secret-named keys, URL credentials) on the way. */
#include "ph/mpjson.h"

#include <stdlib.h>
#include <string.h>

#include "ph/common.h"
#include "ph/record.h"

static void pack_str_n(msgpack_packer *pk, const char *s, size_t n)
{
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

static int pack_value(msgpack_packer *pk, const json_t *v, bool drop_secrets, unsigned depth)
{
    if (depth > ph_mp_default_limits.max_depth) return -1;
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        size_t n = 0;
        const char *k;
        const json_t *x;
        json_object_foreach((json_t *)v, k, x) if (!(drop_secrets && ph_key_is_secret(k))) n++;
        msgpack_pack_map(pk, n);
        json_object_foreach((json_t *)v, k, x)
        {
            if (drop_secrets && ph_key_is_secret(k)) continue;
            pack_str_n(pk, k, strlen(k));
            if (pack_value(pk, x, drop_secrets, depth + 1) != 0) return -1;
        }
        return 0;
    }
    case JSON_ARRAY: {
        size_t n = json_array_size(v);
        msgpack_pack_array(pk, n);
        for (size_t i = 0; i < n; i++)
            if (pack_value(pk, json_array_get(v, i), drop_secrets, depth + 1) != 0) return -1;
        return 0;
    }
    case JSON_STRING: {
        const char *s = json_string_value(v);
        size_t len = json_string_length(v), stripped = 0;
        /* A value under an innocent key can still hold a credential:
         * "url": "amqp://user:password@host/". */
        size_t n = drop_secrets ? ph_url_strip_credentials(s, len, NULL, 0, &stripped) : len;
        if (stripped == 0) {
            pack_str_n(pk, s, len);
            return 0;
        }
        char *buf = malloc(n);
        if (buf == NULL) {
            pack_str_n(pk, "***", 3); /* out of memory: hide it all rather than keep it */
            return 0;
        }
        ph_url_strip_credentials(s, len, buf, n, NULL);
        pack_str_n(pk, buf, n);
        free(buf);
        return 0;
    }
    case JSON_INTEGER: {
        json_int_t i = json_integer_value(v);
        if (i >= 0)
            msgpack_pack_uint64(pk, (uint64_t)i);
        else
            msgpack_pack_int64(pk, i);
        return 0;
    }
    case JSON_REAL: msgpack_pack_double(pk, json_real_value(v)); return 0;
    case JSON_TRUE: msgpack_pack_true(pk); return 0;
    case JSON_FALSE: msgpack_pack_false(pk); return 0;
    case JSON_NULL:
    default: msgpack_pack_nil(pk); return 0;
    }
}

int ph_json_pack(msgpack_packer *pk, const json_t *v, bool drop_secrets)
{
    return pack_value(pk, v, drop_secrets, 0);
}

size_t ph_json_strip_url_credentials(json_t *v)
{
    size_t count = 0;
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        size_t len = json_string_length(v);
        size_t n = ph_url_strip_credentials(s, len, NULL, 0, &count);
        if (count == 0) return 0;
        char *buf = malloc(n);
        if (buf != NULL) ph_url_strip_credentials(s, len, buf, n, NULL);
        /* Out of memory: hide the whole value rather than keep it. */
        if (buf == NULL || json_string_setn(v, buf, n) != 0) json_string_set(v, "***");
        free(buf);
    } else if (json_is_object(v)) {
        const char *k;
        json_t *x;
        json_object_foreach(v, k, x) count += ph_json_strip_url_credentials(x);
    } else if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++)
            count += ph_json_strip_url_credentials(json_array_get(v, i));
    }
    return count;
}

json_t *ph_mp_to_json(const msgpack_object *o)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL: return json_null();
    case MSGPACK_OBJECT_BOOLEAN: return json_boolean(o->via.boolean);
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        /* JSON integers here are signed 64-bit; clamp the rare larger value. */
        return json_integer(o->via.u64 > (uint64_t)INT64_MAX ? INT64_MAX : (json_int_t)o->via.u64);
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: return json_integer(o->via.i64);
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: return json_real(o->via.f64);
    case MSGPACK_OBJECT_STR:
        /* msgpack-c may hand an empty str over with a NULL pointer: jansson refuses NULL. */
        return json_stringn(o->via.str.size ? o->via.str.ptr : "", o->via.str.size);
    case MSGPACK_OBJECT_ARRAY: {
        json_t *a = json_array();
        for (uint32_t i = 0; a != NULL && i < o->via.array.size; i++) {
            json_t *x = ph_mp_to_json(&o->via.array.ptr[i]);
            if (x == NULL || json_array_append_new(a, x) != 0) {
                json_decref(a);
                return NULL;
            }
        }
        return a;
    }
    case MSGPACK_OBJECT_MAP: {
        json_t *m = json_object();
        for (uint32_t i = 0; m != NULL && i < o->via.map.size; i++) {
            const msgpack_object *k = &o->via.map.ptr[i].key;
            if (k->type != MSGPACK_OBJECT_STR) {
                json_decref(m);
                return NULL;
            }
            json_t *x = ph_mp_to_json(&o->via.map.ptr[i].val);
            const char *kp = k->via.str.size ? k->via.str.ptr : ""; /* NULL when empty */
            if (x == NULL || json_object_setn_new(m, kp, k->via.str.size, x) != 0) {
                json_decref(m);
                return NULL;
            }
        }
        return m;
    }
    default: return json_null(); /* bin and ext have no JSON form */
    }
}
