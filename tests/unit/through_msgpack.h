/* Test helper shared by the unit tests of the JSON <-> msgpack codec: a
 * JSON value packed as the controller packs config (ph_json_pack) and read
 * back as the bridge reads it (ph_mp_decode + ph_mp_to_json). Include after
 * <cmocka.h>. */
#ifndef PH_TEST_THROUGH_MSGPACK_H
#define PH_TEST_THROUGH_MSGPACK_H

#include <jansson.h>
#include <msgpack.h>

#include "ph/mpjson.h"

static inline json_t *through_msgpack(const json_t *in, bool drop_secrets)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    assert_int_equal(ph_json_pack(&pk, in, drop_secrets), 0);
    char err[128];
    msgpack_zone zone;
    msgpack_zone_init(&zone, 1024);
    msgpack_object o;
    assert_int_equal(
        ph_mp_decode((const uint8_t *)sb.data, sb.size, false, &zone, &o, err, sizeof err), PH_OK);
    json_t *out = ph_mp_to_json(&o);
    assert_non_null(out);
    msgpack_zone_destroy(&zone);
    msgpack_sbuffer_destroy(&sb);
    return out;
}

#endif
