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

/* Packs a JSON value. With `drop_secrets`, members whose key names a secret
 * (ph_key_is_secret) are dropped and every string, in objects and arrays
 * alike, has its URL credentials stripped (ph_url_strip_credentials).
 * Returns 0, or -1 when the value is too deep. */
int ph_json_pack(msgpack_packer *pk, const json_t *v, bool drop_secrets);
/* Strips URL credentials, in place, from every string in `v` (v itself,
 * object values and array items at any depth; keys are left alone).
 * Returns how many userinfos were replaced. Should memory run out, a string
 * that held credentials becomes "***". */
size_t ph_json_strip_url_credentials(json_t *v);
/* Builds a JSON value from a decoded msgpack object (map keys must be
 * strings; binary and extension values become null). New reference or NULL. */
json_t *ph_mp_to_json(const msgpack_object *o);

#ifdef __cplusplus
}
#endif
#endif
