/* Fuzz target: the record bodies a worker writes into its status ring and
 * the controller writes into its command ring (ph/record.h), as the
 * controller (swarm-controller/ctl.c) and the worker SDK (shm/worker.c)
 * decode them.
 *
 * Every input is one record body, given to every decoder:
 *   - ph_mp_check, with the default limits and with tight ones;
 *   - ph_mp_decode (any top-level object, then a map) and ph_mp_to_json,
 *     the msgpack -> JSON conversion applied to config, io and signal data
 *     and to command patches; the JSON packs back within the limits;
 *   - ph_rec_status_decode (the whole input, and its first 32 bytes);
 *   - ph_rec_alert_decode and ph_rec_ack_decode: what decodes encodes again
 *     and decodes to the same fields;
 *   - a command of each kind, decoded as ph_worker_poll_command does
 *     (token, and a map patch turned into JSON for a config patch).
 * The checker and msgpack-c must agree: a body ph_mp_check accepts must
 * unpack, whole. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <jansson.h>
#include <msgpack.h>

#include "fuzz_check.h"
#include "ph/mpjson.h"
#include "ph/record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_json_packs(const json_t *j)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    if (ph_json_pack(&pk, j, false) == 0) {
        char err[160];
        FUZZ_CHECK(ph_mp_check((const uint8_t *)sb.data, sb.size, NULL, err, sizeof err) == PH_OK);
    }
    char *text = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
    free(text);
    msgpack_sbuffer_destroy(&sb);
}

static void generic(const uint8_t *data, size_t size)
{
    char err[160];
    static const struct ph_mp_limits tight = {.max_depth = 3, .max_objects = 16, .max_str = 8};
    (void)ph_mp_check(data, size, &tight, err, sizeof err);
    FUZZ_CHECK_TERMINATED(err);

    const bool checked = ph_mp_check(data, size, NULL, err, sizeof err) == PH_OK;
    msgpack_zone zone;
    msgpack_zone_init(&zone, 2048);
    msgpack_object o;
    int rc = ph_mp_decode(data, size, false, &zone, &o, err, sizeof err);
    FUZZ_CHECK(rc == PH_OK || !checked); /* what the checker takes, msgpack-c unpacks */
    if (rc == PH_OK) {
        json_t *j = ph_mp_to_json(&o);
        if (j != NULL) check_json_packs(j);
        json_decref(j);
    }
    msgpack_zone_destroy(&zone);
}

static void status(const uint8_t *data, size_t size)
{
    struct ph_rec_status st;
    (void)ph_rec_status_decode(data, (uint32_t)size, &st);
    if (size >= PH_REC_STATUS_SIZE &&
        ph_rec_status_decode(data, PH_REC_STATUS_SIZE, &st) == PH_OK) {
        FUZZ_CHECK(st.io_in <= PH_IN_MAX_ && st.io_out <= PH_OUT_MAX_ && st.reserved == 0);
        FUZZ_CHECK((st.flags & ~PH_STATUS_ENABLED) == 0);
    }
}

static void alert(const uint8_t *data, size_t size)
{
    struct ph_rec_alert a, b;
    if (ph_rec_alert_decode(data, (uint32_t)size, &a) != PH_OK) return;
    FUZZ_CHECK_TERMINATED(a.level);
    FUZZ_CHECK_TERMINATED(a.code);
    FUZZ_CHECK_TERMINATED(a.message);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    FUZZ_CHECK(ph_rec_alert_encode(&sb, a.level, a.code, a.message) == PH_OK);
    FUZZ_CHECK(ph_rec_alert_decode((const uint8_t *)sb.data, (uint32_t)sb.size, &b) == PH_OK);
    FUZZ_CHECK(strcmp(a.level, b.level) == 0 && strcmp(a.code, b.code) == 0 &&
               strcmp(a.message, b.message) == 0);
    msgpack_sbuffer_destroy(&sb);
}

static void ack(const uint8_t *data, size_t size)
{
    struct ph_rec_ack a, b;
    if (ph_rec_ack_decode(data, (uint32_t)size, &a) != PH_OK) return;
    FUZZ_CHECK_TERMINATED(a.message);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    FUZZ_CHECK(ph_rec_ack_encode(&sb, a.token, a.ok, a.message) == PH_OK);
    FUZZ_CHECK(ph_rec_ack_decode((const uint8_t *)sb.data, (uint32_t)sb.size, &b) == PH_OK);
    FUZZ_CHECK(a.token == b.token && a.ok == b.ok && strcmp(a.message, b.message) == 0);
    msgpack_sbuffer_destroy(&sb);
}

/* The worker's reading of one command (shm/worker.c, on_command). */
static void command(uint16_t type, const uint8_t *data, size_t size)
{
    char err[128];
    msgpack_zone zone;
    msgpack_zone_init(&zone, 1024);
    msgpack_object o;
    if (ph_mp_decode(data, size, true, &zone, &o, err, sizeof err) == PH_OK) {
        const msgpack_object *tok = ph_mp_map_get(&o, "token");
        const msgpack_object *patch = ph_mp_map_get(&o, "patch");
        if (tok != NULL && tok->type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
            type == PH_CMD_CONFIG_PATCH && patch != NULL && patch->type == MSGPACK_OBJECT_MAP) {
            json_t *j = ph_mp_to_json(patch);
            FUZZ_CHECK(j == NULL || json_is_object(j));
            json_decref(j);
        }
    }
    msgpack_zone_destroy(&zone);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > UINT32_MAX) return 0; /* a ring record's length is 32 bits */
    generic(data, size);
    status(data, size);
    alert(data, size);
    ack(data, size);
    command(PH_CMD_CONFIG_PATCH, data, size);
    command(PH_CMD_STATUS_REQUEST, data, size);
    return 0;
}
