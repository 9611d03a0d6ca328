/* Small msgpack packing helpers for the controller's documents (ph/doc.h). */
#ifndef PH_DOCPACK_H
#define PH_DOCPACK_H

#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "ph/doc.h"

static inline void dp_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

/* NULL or "" packs as nil: an absent scope segment or id. */
static inline void dp_str_or_nil(msgpack_packer *pk, const char *s)
{
    if (s == NULL || s[0] == '\0')
        msgpack_pack_nil(pk);
    else
        dp_str(pk, s);
}

static inline void dp_map(msgpack_packer *pk, uint32_t n)
{
    msgpack_pack_map(pk, n);
}

static inline void dp_kv_str(msgpack_packer *pk, const char *k, const char *v)
{
    dp_str(pk, k);
    dp_str(pk, v);
}

static inline void dp_kv_u64(msgpack_packer *pk, const char *k, uint64_t v)
{
    dp_str(pk, k);
    msgpack_pack_uint64(pk, v);
}

static inline void dp_kv_bool(msgpack_packer *pk, const char *k, bool v)
{
    dp_str(pk, k);
    if (v)
        msgpack_pack_true(pk);
    else
        msgpack_pack_false(pk);
}

/* A duration in seconds: an integer when whole, else a double of
 * millisecond precision (ms / 1000, the closest double to that decimal, so
 * the bridge renders it as written: 0.25, not 0.25000000000000001). */
static inline void dp_kv_secs(msgpack_packer *pk, const char *k, uint64_t ns)
{
    dp_str(pk, k);
    if (ns % 1000000000ull == 0)
        msgpack_pack_uint64(pk, ns / 1000000000ull);
    else
        msgpack_pack_double(pk, (double)(ns / 1000000ull) / 1000.0);
}

/* Opens a document: a map whose last key, "data", the caller packs. With
 * ts_ms (not 0) the document carries the time it was made (ph/doc.h "ts"):
 * 10 keys, else 9. */
static inline void dp_head_at(msgpack_packer *pk, uint64_t ts_ms, const char *kind,
                              const char *type, const char *swarm, const char *role,
                              const char *instance, const char *origin, const char *cid,
                              const char *ikey)
{
    dp_map(pk, ts_ms != 0 ? 10 : 9);
    if (ts_ms != 0) {
        dp_str(pk, PH_DOC_TS);
        msgpack_pack_uint64(pk, ts_ms);
    }
    dp_kv_str(pk, PH_DOC_KIND, kind);
    dp_kv_str(pk, PH_DOC_TYPE, type);
    dp_str(pk, PH_DOC_SWARM);
    dp_str_or_nil(pk, swarm);
    dp_str(pk, PH_DOC_ROLE);
    dp_str_or_nil(pk, role);
    dp_str(pk, PH_DOC_INSTANCE);
    dp_str_or_nil(pk, instance);
    dp_kv_str(pk, PH_DOC_ORIGIN, origin);
    dp_str(pk, PH_DOC_CID);
    dp_str_or_nil(pk, cid);
    dp_str(pk, PH_DOC_IKEY);
    dp_str_or_nil(pk, ikey);
    dp_str(pk, PH_DOC_DATA);
}

/* A document stamped by the bridge when it reads it (status, alerts). */
static inline void dp_head(msgpack_packer *pk, const char *kind, const char *type,
                           const char *swarm, const char *role, const char *instance,
                           const char *origin, const char *cid, const char *ikey)
{
    dp_head_at(pk, 0, kind, type, swarm, role, instance, origin, cid, ikey);
}

#endif
