/* Allocation-free structural check of msgpack bytes from shared memory.
 *
 * msgpack-c sizes its allocations from the counts it reads (an array header
 * claiming 4 billion elements would be believed), so bodies from the
 * segment are walked here first: each container's count must be backed by
 * at least one byte per element, nesting and object totals are capped, and
 * the buffer must hold exactly one object. */
#include "ph/record.h"

#include <stdio.h>
#include <string.h>

const struct ph_mp_limits ph_mp_default_limits = {
    .max_depth = 16,
    .max_objects = 8192,
    .max_str = 16384,
};

#define MP_MAX_DEPTH 64

static uint64_t be(const uint8_t *p, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++) v = (v << 8) | p[i];
    return v;
}

/* Describes the object whose first byte is at buf[pos]: how many header
 * bytes it has, how many payload bytes follow, and how many child objects
 * it contains. Returns false on an invalid or truncated header. */
static bool mp_head(const uint8_t *buf, size_t len, size_t pos, size_t *hdr, uint64_t *payload,
                    uint64_t *children, uint64_t *slen)
{
    const uint8_t b = buf[pos];
    const size_t left = len - pos;
    *hdr = 1;
    *payload = 0;
    *children = 0;
    *slen = 0;
    unsigned lenbytes = 0; /* bytes of big-endian length after the tag */
    if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) return true;
    if ((b & 0xf0) == 0x80) {
        *children = 2u * (b & 0x0fu);
        return true;
    }
    if ((b & 0xf0) == 0x90) {
        *children = b & 0x0fu;
        return true;
    }
    if ((b & 0xe0) == 0xa0) {
        *payload = *slen = b & 0x1fu;
        return true;
    }
    switch (b) {
    case 0xcc: case 0xd0: *payload = 1; return true;
    case 0xcd: case 0xd1: *payload = 2; return true;
    case 0xca: case 0xce: case 0xd2: *payload = 4; return true;
    case 0xcb: case 0xcf: case 0xd3: *payload = 8; return true;
    case 0xd4: *payload = 2; return true; /* fixext 1: type + 1 */
    case 0xd5: *payload = 3; return true;
    case 0xd6: *payload = 5; return true;
    case 0xd7: *payload = 9; return true;
    case 0xd8: *payload = 17; return true;
    case 0xc4: case 0xd9: lenbytes = 1; break;
    case 0xc5: case 0xda: lenbytes = 2; break;
    case 0xc6: case 0xdb: lenbytes = 4; break;
    case 0xc7: lenbytes = 1; break; /* ext 8/16/32: length, then a type byte */
    case 0xc8: lenbytes = 2; break;
    case 0xc9: lenbytes = 4; break;
    case 0xdc: case 0xde: lenbytes = 2; break;
    case 0xdd: case 0xdf: lenbytes = 4; break;
    default: return false; /* 0xc1 is never used */
    }
    if (left < 1u + lenbytes) return false;
    const uint64_t n = be(buf + pos + 1, lenbytes);
    *hdr = 1u + lenbytes;
    if (b == 0xdc || b == 0xdd) {
        *children = n;
    } else if (b == 0xde || b == 0xdf) {
        *children = 2u * n;
    } else if (b >= 0xc7 && b <= 0xc9) {
        *payload = n + 1u;
        *slen = n;
    } else {
        *payload = *slen = n;
    }
    return true;
}

int ph_mp_check(const uint8_t *buf, size_t len, const struct ph_mp_limits *lim, char *err,
                size_t errlen)
{
    if (lim == NULL) lim = &ph_mp_default_limits;
    const uint32_t max_depth = lim->max_depth < MP_MAX_DEPTH ? lim->max_depth : MP_MAX_DEPTH;
    uint64_t stack[MP_MAX_DEPTH + 1];
    uint32_t depth = 0;
    uint64_t pending = 1; /* objects still to read at the current depth */
    uint64_t objects = 0;
    size_t pos = 0;

    for (;;) {
        while (pending == 0 && depth > 0) pending = stack[--depth];
        if (pending == 0) break;
        if (pos >= len) {
            snprintf(err, errlen, "msgpack truncated at byte %zu", pos);
            return PH_ERR_CORRUPT;
        }
        size_t hdr;
        uint64_t payload, children;
        uint64_t slen;
        if (!mp_head(buf, len, pos, &hdr, &payload, &children, &slen)) {
            snprintf(err, errlen, "msgpack: invalid or truncated object at byte %zu (0x%02x)",
                     pos, buf[pos]);
            return PH_ERR_CORRUPT;
        }
        pending--;
        if (++objects > lim->max_objects) {
            snprintf(err, errlen, "msgpack: more than %u objects", lim->max_objects);
            return PH_ERR_CORRUPT;
        }
        if (slen > lim->max_str) {
            snprintf(err, errlen, "msgpack: %llu-byte string over the %u-byte limit",
                     (unsigned long long)slen, lim->max_str);
            return PH_ERR_CORRUPT;
        }
        const size_t left = len - pos;
        if (hdr > left || payload > left - hdr) {
            snprintf(err, errlen, "msgpack: object at byte %zu runs past the end", pos);
            return PH_ERR_CORRUPT;
        }
        pos += hdr + (size_t)payload;
        if (children > 0) {
            /* Every element takes at least one byte: a count larger than what
             * is left can only be a lie. */
            if (children > len - pos) {
                snprintf(err, errlen, "msgpack: container at byte %zu claims %llu elements",
                         pos - hdr, (unsigned long long)children);
                return PH_ERR_CORRUPT;
            }
            if (depth >= max_depth) {
                snprintf(err, errlen, "msgpack: nested deeper than %u", max_depth);
                return PH_ERR_CORRUPT;
            }
            stack[depth++] = pending;
            pending = children;
        }
    }
    if (pos != len) {
        snprintf(err, errlen, "msgpack: %zu trailing bytes", len - pos);
        return PH_ERR_CORRUPT;
    }
    return PH_OK;
}

int ph_mp_decode(const uint8_t *buf, size_t len, bool want_map, msgpack_zone *zone,
                 msgpack_object *out, char *err, size_t errlen)
{
    int rc = ph_mp_check(buf, len, NULL, err, errlen);
    if (rc != PH_OK) return rc;
    size_t off = 0;
    msgpack_unpack_return ur = msgpack_unpack((const char *)buf, len, &off, zone, out);
    if (ur != MSGPACK_UNPACK_SUCCESS || off != len) {
        snprintf(err, errlen, "msgpack: decoder refused the body (%d)", (int)ur);
        return PH_ERR_CORRUPT;
    }
    if (want_map && out->type != MSGPACK_OBJECT_MAP) {
        snprintf(err, errlen, "msgpack: expected a map at top level");
        return PH_ERR_CORRUPT;
    }
    return PH_OK;
}

const msgpack_object *ph_mp_map_get(const msgpack_object *map, const char *k)
{
    if (map == NULL || map->type != MSGPACK_OBJECT_MAP) return NULL;
    const size_t klen = strlen(k);
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object *key = &map->via.map.ptr[i].key;
        if (key->type == MSGPACK_OBJECT_STR && key->via.str.size == klen &&
            memcmp(key->via.str.ptr, k, klen) == 0)
            return &map->via.map.ptr[i].val;
    }
    return NULL;
}

bool ph_mp_str(const msgpack_object *o, char *buf, size_t n)
{
    if (o == NULL || o->type != MSGPACK_OBJECT_STR || o->via.str.size >= n) return false;
    memcpy(buf, o->via.str.ptr, o->via.str.size);
    buf[o->via.str.size] = '\0';
    /* Strings end up in logs and JSON: refuse embedded NULs. */
    return memchr(buf, '\0', o->via.str.size) == NULL;
}
