/* Conversion between JSON (jansson) and msgpack, for configs, io topology
 * and command patches. Conversions are bounded: depth and sizes follow
 * ph_mp_default_limits. */
#ifndef PH_MPJSON_H
#define PH_MPJSON_H

#include <jansson.h>
#include <msgpack.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Packs a JSON value; keys naming secrets are dropped when `drop_secrets`.
 * Returns 0, or -1 when the value is too deep. */
int ph_json_pack(msgpack_packer *pk, const json_t *v, bool drop_secrets);
/* Builds a JSON value from a decoded msgpack object (map keys must be
 * strings; binary and extension values become null). New reference or NULL. */
json_t *ph_mp_to_json(const msgpack_object *o);

#ifdef __cplusplus
}
#endif
#endif
