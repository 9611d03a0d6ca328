/* Unit tests of the record codecs (shm/record.c), the msgpack structural
 * check (shm/mpcheck.c), JSON <-> msgpack (shm/mpjson.c), identifier rules
 * and secret-key detection (shm/common.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ph/common.h"
#include "ph/mpjson.h"
#include "ph/record.h"
#include "through_msgpack.h"

/* ---- status record ---------------------------------------------------- */

static void status_bytes(uint8_t out[PH_REC_STATUS_SIZE], const struct ph_rec_status *s)
{
    memcpy(out, s, PH_REC_STATUS_SIZE);
}

static const struct ph_rec_status good_status = {
    .mono_ns = 123456789ull,
    .processed = 1ull << 40,
    .errors = 17,
    .seq = 99,
    .flags = PH_STATUS_ENABLED,
    .io_in = PH_IN_UPSTREAM_ERROR,
    .io_out = PH_OUT_DOWNSTREAM_ERROR,
    .reserved = 0,
};

static void status_decode_accepts_valid_record(void **state)
{
    (void)state;
    uint8_t b[PH_REC_STATUS_SIZE];
    status_bytes(b, &good_status);
    struct ph_rec_status out;
    memset(&out, 0xee, sizeof out);
    assert_int_equal(ph_rec_status_decode(b, sizeof b, &out), PH_OK);
    assert_int_equal(out.mono_ns, good_status.mono_ns);
    assert_int_equal(out.processed, good_status.processed);
    assert_int_equal(out.errors, good_status.errors);
    assert_int_equal(out.seq, 99);
    assert_int_equal(out.flags, PH_STATUS_ENABLED);
    assert_int_equal(out.io_in, PH_IN_UPSTREAM_ERROR);
    assert_int_equal(out.io_out, PH_OUT_DOWNSTREAM_ERROR);
    /* Disabled with unknown states is valid too. */
    struct ph_rec_status s = good_status;
    s.flags = 0;
    s.io_in = PH_IN_UNKNOWN;
    s.io_out = PH_OUT_UNKNOWN;
    status_bytes(b, &s);
    assert_int_equal(ph_rec_status_decode(b, sizeof b, &out), PH_OK);
    assert_int_equal(out.flags, 0);
}

static void expect_status_refused(const struct ph_rec_status *s)
{
    uint8_t b[PH_REC_STATUS_SIZE];
    status_bytes(b, s);
    struct ph_rec_status out;
    memset(&out, 0xee, sizeof out);
    assert_int_equal(ph_rec_status_decode(b, sizeof b, &out), PH_ERR_CORRUPT);
    /* Nothing of a refused record reaches the caller. */
    assert_int_equal(out.processed, 0xeeeeeeeeeeeeeeeeull);
}

static void status_decode_rejects_wrong_size(void **state)
{
    (void)state;
    uint8_t b[PH_REC_STATUS_SIZE + 8];
    memset(b, 0, sizeof b);
    status_bytes(b, &good_status);
    struct ph_rec_status out;
    assert_int_equal(ph_rec_status_decode(b, 0, &out), PH_ERR_CORRUPT);
    assert_int_equal(ph_rec_status_decode(b, PH_REC_STATUS_SIZE - 1, &out), PH_ERR_CORRUPT);
    assert_int_equal(ph_rec_status_decode(b, PH_REC_STATUS_SIZE + 1, &out), PH_ERR_CORRUPT);
    assert_int_equal(ph_rec_status_decode(b, PH_REC_STATUS_SIZE + 8, &out), PH_ERR_CORRUPT);
}

static void status_decode_rejects_unknown_flag_bits(void **state)
{
    (void)state;
    for (unsigned bit = 1; bit < 8; bit++) {
        struct ph_rec_status s = good_status;
        s.flags = (uint8_t)(PH_STATUS_ENABLED | (1u << bit));
        expect_status_refused(&s);
    }
}

static void status_decode_rejects_out_of_range_io_values(void **state)
{
    (void)state;
    struct ph_rec_status s = good_status;
    s.io_in = PH_IN_MAX_ + 1;
    expect_status_refused(&s);
    s.io_in = 0xff;
    expect_status_refused(&s);
    s = good_status;
    s.io_out = PH_OUT_MAX_ + 1;
    expect_status_refused(&s);
    s.io_out = 0x80;
    expect_status_refused(&s);
}

static void status_decode_rejects_nonzero_reserved(void **state)
{
    (void)state;
    struct ph_rec_status s = good_status;
    s.reserved = 1;
    expect_status_refused(&s);
}

/* ---- ioState names and priority -------------------------------------- */

static void io_names_parse_and_print_round_trip(void **state)
{
    (void)state;
    static const char *const in[] = {"unknown", "ok", "backpressure", "out-of-data",
                                     "upstream-error"};
    static const char *const out[] = {"unknown", "ok", "throttled", "blocked", "downstream-error"};
    for (int i = 0; i <= PH_IN_MAX_; i++) {
        assert_string_equal(ph_io_in_name(i), in[i]);
        assert_int_equal(ph_io_in_parse(in[i]), i);
    }
    for (int i = 0; i <= PH_OUT_MAX_; i++) {
        assert_string_equal(ph_io_out_name(i), out[i]);
        assert_int_equal(ph_io_out_parse(out[i]), i);
    }
    assert_string_equal(ph_io_in_name(-1), "unknown");
    assert_string_equal(ph_io_in_name(PH_IN_MAX_ + 1), "unknown");
    assert_string_equal(ph_io_out_name(-1), "unknown");
    assert_string_equal(ph_io_out_name(PH_OUT_MAX_ + 1), "unknown");
    assert_int_equal(ph_io_in_parse("bogus"), -1);
    assert_int_equal(ph_io_in_parse("OK"), -1);
    assert_int_equal(ph_io_in_parse(""), -1);
    assert_int_equal(ph_io_in_parse(NULL), -1);
    assert_int_equal(ph_io_out_parse("throttle"), -1);
    assert_int_equal(ph_io_out_parse(NULL), -1);
    /* A name of one direction is not a value of the other. */
    assert_int_equal(ph_io_in_parse("throttled"), -1);
    assert_int_equal(ph_io_out_parse("backpressure"), -1);
}

static void io_enum_order_is_contract_priority(void **state)
{
    (void)state;
    /* input: upstream-error > out-of-data > backpressure > ok > unknown */
    const char *in_prio[] = {"upstream-error", "out-of-data", "backpressure", "ok", "unknown"};
    for (int i = 0; i + 1 < 5; i++)
        assert_true(ph_io_in_parse(in_prio[i]) > ph_io_in_parse(in_prio[i + 1]));
    /* output: downstream-error > blocked > throttled > ok > unknown */
    const char *out_prio[] = {"downstream-error", "blocked", "throttled", "ok", "unknown"};
    for (int i = 0; i + 1 < 5; i++)
        assert_true(ph_io_out_parse(out_prio[i]) > ph_io_out_parse(out_prio[i + 1]));
    assert_int_equal(PH_IN_UNKNOWN, 0);
    assert_int_equal(PH_OUT_UNKNOWN, 0);
}

/* ---- alert and ack ----------------------------------------------------- */

static void alert_encode_decode_round_trip(void **state)
{
    (void)state;
    const char *levels[] = {"info", "warn", "error"};
    for (int i = 0; i < 3; i++) {
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        assert_int_equal(ph_rec_alert_encode(&sb, levels[i], "io.out-of-data",
                                             "dataset 'users' exhausted after 1000 rows"),
                         PH_OK);
        struct ph_rec_alert a;
        assert_int_equal(ph_rec_alert_decode((const uint8_t *)sb.data, (uint32_t)sb.size, &a),
                         PH_OK);
        assert_string_equal(a.level, levels[i]);
        assert_string_equal(a.code, "io.out-of-data");
        assert_string_equal(a.message, "dataset 'users' exhausted after 1000 rows");
        msgpack_sbuffer_destroy(&sb);
    }
}

static void alert_long_message_is_cut_not_refused(void **state)
{
    (void)state;
    char msg[1000];
    memset(msg, 'm', sizeof msg - 1);
    msg[sizeof msg - 1] = '\0';
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    assert_int_equal(ph_rec_alert_encode(&sb, "warn", "x", msg), PH_OK);
    struct ph_rec_alert a;
    assert_int_equal(ph_rec_alert_decode((const uint8_t *)sb.data, (uint32_t)sb.size, &a), PH_OK);
    assert_int_equal(strlen(a.message), sizeof a.message - 1);
    assert_memory_equal(a.message, msg, sizeof a.message - 1);
    msgpack_sbuffer_destroy(&sb);
}

static void alert_encode_refuses_bad_level_or_code(void **state)
{
    (void)state;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    assert_int_equal(ph_rec_alert_encode(&sb, "fatal", "c", "m"), PH_ERR_INVAL);
    assert_int_equal(ph_rec_alert_encode(&sb, "INFO", "c", "m"), PH_ERR_INVAL);
    assert_int_equal(ph_rec_alert_encode(&sb, "", "c", "m"), PH_ERR_INVAL);
    assert_int_equal(ph_rec_alert_encode(&sb, "informational", "c", "m"), PH_ERR_INVAL);
    assert_int_equal(ph_rec_alert_encode(&sb, NULL, "c", "m"), PH_ERR_INVAL);
    assert_int_equal(ph_rec_alert_encode(&sb, "info", "", "m"), PH_ERR_INVAL);
    assert_int_equal(ph_rec_alert_encode(&sb, "info", NULL, "m"), PH_ERR_INVAL);
    assert_int_equal(ph_rec_alert_encode(&sb, "info", "c", NULL), PH_ERR_INVAL);
    char longcode[100];
    memset(longcode, 'c', sizeof longcode - 1);
    longcode[sizeof longcode - 1] = '\0';
    assert_int_equal(ph_rec_alert_encode(&sb, "info", longcode, "m"), PH_ERR_INVAL);
    /* Nothing was written by the refused calls. */
    assert_int_equal(sb.size, 0);
    msgpack_sbuffer_destroy(&sb);
}

/* Packs {level, code, message} with arbitrary values, as a hostile worker could. */
static void pack_alert_raw(msgpack_sbuffer *sb, const char *level, const char *code,
                           const char *message)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 3);
    msgpack_pack_str_with_body(&pk, "level", 5);
    msgpack_pack_str_with_body(&pk, level, strlen(level));
    msgpack_pack_str_with_body(&pk, "code", 4);
    msgpack_pack_str_with_body(&pk, code, strlen(code));
    msgpack_pack_str_with_body(&pk, "message", 7);
    msgpack_pack_str_with_body(&pk, message, strlen(message));
}

static void alert_decode_refuses_bad_level_empty_code_and_overlong_fields(void **state)
{
    (void)state;
    struct {
        const char *level, *code, *message;
    } bad[] = {{"fatal", "c", "m"}, {"info", "", "m"}, {"info", "c", NULL}};
    char longmsg[300];
    memset(longmsg, 'x', sizeof longmsg - 1);
    longmsg[sizeof longmsg - 1] = '\0';
    bad[2].message = longmsg;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        pack_alert_raw(&sb, bad[i].level, bad[i].code, bad[i].message);
        struct ph_rec_alert a;
        assert_int_equal(ph_rec_alert_decode((const uint8_t *)sb.data, (uint32_t)sb.size, &a),
                         PH_ERR_CORRUPT);
        msgpack_sbuffer_destroy(&sb);
    }
    /* Not a map at all, and a map missing "message". */
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 0);
    struct ph_rec_alert a;
    assert_int_equal(ph_rec_alert_decode((const uint8_t *)sb.data, (uint32_t)sb.size, &a),
                     PH_ERR_CORRUPT);
    msgpack_sbuffer_clear(&sb);
    msgpack_pack_map(&pk, 2);
    msgpack_pack_str_with_body(&pk, "level", 5);
    msgpack_pack_str_with_body(&pk, "info", 4);
    msgpack_pack_str_with_body(&pk, "code", 4);
    msgpack_pack_str_with_body(&pk, "c", 1);
    assert_int_equal(ph_rec_alert_decode((const uint8_t *)sb.data, (uint32_t)sb.size, &a),
                     PH_ERR_CORRUPT);
    /* A message with an embedded NUL would be cut silently in logs: refused. */
    msgpack_sbuffer_clear(&sb);
    msgpack_pack_map(&pk, 3);
    msgpack_pack_str_with_body(&pk, "level", 5);
    msgpack_pack_str_with_body(&pk, "info", 4);
    msgpack_pack_str_with_body(&pk, "code", 4);
    msgpack_pack_str_with_body(&pk, "c", 1);
    msgpack_pack_str_with_body(&pk, "message", 7);
    msgpack_pack_str_with_body(&pk, "a\0b", 3);
    assert_int_equal(ph_rec_alert_decode((const uint8_t *)sb.data, (uint32_t)sb.size, &a),
                     PH_ERR_CORRUPT);
    msgpack_sbuffer_destroy(&sb);
}

static void ack_encode_decode_round_trip(void **state)
{
    (void)state;
    const uint64_t tokens[] = {0, 1, 127, 128, 65536, UINT64_MAX};
    for (size_t i = 0; i < sizeof tokens / sizeof tokens[0]; i++) {
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        bool ok = i % 2 == 0;
        assert_int_equal(ph_rec_ack_encode(&sb, tokens[i], ok, ok ? "applied" : "bad patch"),
                         PH_OK);
        struct ph_rec_ack a;
        memset(&a, 0x5a, sizeof a);
        assert_int_equal(ph_rec_ack_decode((const uint8_t *)sb.data, (uint32_t)sb.size, &a), PH_OK);
        assert_int_equal(a.token, tokens[i]);
        assert_int_equal(a.ok, ok);
        assert_string_equal(a.message, ok ? "applied" : "bad patch");
        msgpack_sbuffer_destroy(&sb);
    }
    /* NULL message encodes as empty. */
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    assert_int_equal(ph_rec_ack_encode(&sb, 5, true, NULL), PH_OK);
    struct ph_rec_ack a;
    assert_int_equal(ph_rec_ack_decode((const uint8_t *)sb.data, (uint32_t)sb.size, &a), PH_OK);
    assert_string_equal(a.message, "");
    msgpack_sbuffer_destroy(&sb);
}

static void ack_decode_rejects_missing_or_mistyped_fields(void **state)
{
    (void)state;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    struct ph_rec_ack a;
    /* token negative */
    msgpack_pack_map(&pk, 2);
    msgpack_pack_str_with_body(&pk, "token", 5);
    msgpack_pack_int64(&pk, -1);
    msgpack_pack_str_with_body(&pk, "ok", 2);
    msgpack_pack_true(&pk);
    assert_int_equal(ph_rec_ack_decode((const uint8_t *)sb.data, (uint32_t)sb.size, &a),
                     PH_ERR_CORRUPT);
    /* ok not a boolean */
    msgpack_sbuffer_clear(&sb);
    msgpack_pack_map(&pk, 2);
    msgpack_pack_str_with_body(&pk, "token", 5);
    msgpack_pack_uint64(&pk, 1);
    msgpack_pack_str_with_body(&pk, "ok", 2);
    msgpack_pack_uint64(&pk, 1);
    assert_int_equal(ph_rec_ack_decode((const uint8_t *)sb.data, (uint32_t)sb.size, &a),
                     PH_ERR_CORRUPT);
    /* message not a string */
    msgpack_sbuffer_clear(&sb);
    msgpack_pack_map(&pk, 3);
    msgpack_pack_str_with_body(&pk, "token", 5);
    msgpack_pack_uint64(&pk, 1);
    msgpack_pack_str_with_body(&pk, "ok", 2);
    msgpack_pack_true(&pk);
    msgpack_pack_str_with_body(&pk, "message", 7);
    msgpack_pack_nil(&pk);
    assert_int_equal(ph_rec_ack_decode((const uint8_t *)sb.data, (uint32_t)sb.size, &a),
                     PH_ERR_CORRUPT);
    /* truncated body */
    msgpack_sbuffer_clear(&sb);
    assert_int_equal(ph_rec_ack_encode(&sb, 9, true, "m"), PH_OK);
    assert_int_equal(ph_rec_ack_decode((const uint8_t *)sb.data, (uint32_t)sb.size - 1, &a),
                     PH_ERR_CORRUPT);
    msgpack_sbuffer_destroy(&sb);
}

static void cmd_encode_carries_token_and_patch_map(void **state)
{
    (void)state;
    /* patch = {"ratePerSec": 5} */
    msgpack_sbuffer patch;
    msgpack_sbuffer_init(&patch);
    msgpack_packer pp;
    msgpack_packer_init(&pp, &patch, msgpack_sbuffer_write);
    msgpack_pack_map(&pp, 1);
    msgpack_pack_str_with_body(&pp, "ratePerSec", 10);
    msgpack_pack_uint64(&pp, 5);

    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    assert_int_equal(ph_cmd_encode(&sb, 4242, (const uint8_t *)patch.data, patch.size), PH_OK);
    char err[128];
    msgpack_zone zone;
    msgpack_zone_init(&zone, 256);
    msgpack_object o;
    assert_int_equal(
        ph_mp_decode((const uint8_t *)sb.data, sb.size, true, &zone, &o, err, sizeof err), PH_OK);
    const msgpack_object *t = ph_mp_map_get(&o, "token");
    assert_non_null(t);
    assert_int_equal(t->type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    assert_int_equal(t->via.u64, 4242);
    const msgpack_object *p = ph_mp_map_get(&o, "patch");
    assert_non_null(p);
    assert_int_equal(p->type, MSGPACK_OBJECT_MAP);
    const msgpack_object *r = ph_mp_map_get(p, "ratePerSec");
    assert_non_null(r);
    assert_int_equal(r->via.u64, 5);
    msgpack_zone_destroy(&zone);

    /* Without a patch: {token} only. */
    msgpack_sbuffer_clear(&sb);
    assert_int_equal(ph_cmd_encode(&sb, 7, NULL, 0), PH_OK);
    msgpack_zone_init(&zone, 256);
    assert_int_equal(
        ph_mp_decode((const uint8_t *)sb.data, sb.size, true, &zone, &o, err, sizeof err), PH_OK);
    assert_int_equal(o.via.map.size, 1);
    assert_null(ph_mp_map_get(&o, "patch"));
    msgpack_zone_destroy(&zone);
    msgpack_sbuffer_destroy(&sb);
    msgpack_sbuffer_destroy(&patch);
}

/* ---- ph_mp_check: rejection ------------------------------------------- */

static int check(const void *buf, size_t len)
{
    char err[160] = "";
    int rc = ph_mp_check(buf, len, NULL, err, sizeof err);
    /* A refusal always explains itself. */
    if (rc != PH_OK) assert_true(strlen(err) > 0);
    return rc;
}

static int check_lim(const void *buf, size_t len, const struct ph_mp_limits *lim)
{
    char err[160] = "";
    int rc = ph_mp_check(buf, len, lim, err, sizeof err);
    if (rc != PH_OK) assert_true(strlen(err) > 0);
    return rc;
}

static void mp_check_rejects_truncated_input(void **state)
{
    (void)state;
    const uint8_t map[] = {0x81, 0xa1, 'a', 0x01}; /* {"a": 1} */
    assert_int_equal(check(map, sizeof map), PH_OK);
    for (size_t n = 0; n < sizeof map; n++)
        assert_int_equal(check(map, n), PH_ERR_CORRUPT);
    const uint8_t str8[] = {0xd9, 10, 'a', 'b', 'c'};
    assert_int_equal(check(str8, sizeof str8), PH_ERR_CORRUPT);
    const uint8_t u32[] = {0xce, 0, 1};
    assert_int_equal(check(u32, sizeof u32), PH_ERR_CORRUPT);
    const uint8_t str16_hdr[] = {0xda, 0};
    assert_int_equal(check(str16_hdr, sizeof str16_hdr), PH_ERR_CORRUPT);
    const uint8_t ext8[] = {0xc7, 4, 1, 'a', 'b', 'c', 'd'}; /* type byte counted */
    assert_int_equal(check(ext8, sizeof ext8), PH_OK);
    assert_int_equal(check(ext8, sizeof ext8 - 1), PH_ERR_CORRUPT);
    const uint8_t arr[] = {0x93, 0x01, 0x02};
    assert_int_equal(check(arr, sizeof arr), PH_ERR_CORRUPT);
}

static void mp_check_rejects_trailing_bytes(void **state)
{
    (void)state;
    const uint8_t two[] = {0x01, 0x02};
    assert_int_equal(check(two, 1), PH_OK);
    assert_int_equal(check(two, 2), PH_ERR_CORRUPT);
    const uint8_t map[] = {0x81, 0xa1, 'a', 0x01, 0xc0};
    assert_int_equal(check(map, sizeof map), PH_ERR_CORRUPT);
}

static void mp_check_rejects_never_used_byte_0xc1(void **state)
{
    (void)state;
    const uint8_t alone[] = {0xc1};
    assert_int_equal(check(alone, 1), PH_ERR_CORRUPT);
    const uint8_t inside[] = {0x92, 0x01, 0xc1};
    assert_int_equal(check(inside, sizeof inside), PH_ERR_CORRUPT);
}

static void mp_check_rejects_container_counts_not_backed_by_bytes(void **state)
{
    (void)state;
    const uint8_t arr32[] = {0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0, 0xc0, 0xc0};
    assert_int_equal(check(arr32, sizeof arr32), PH_ERR_CORRUPT);
    const uint8_t map32[] = {0xdf, 0x7f, 0xff, 0xff, 0xff, 0xc0, 0xc0};
    assert_int_equal(check(map32, sizeof map32), PH_ERR_CORRUPT);
    const uint8_t arr16[] = {0xdc, 0x00, 0x05, 0xc0, 0xc0};
    assert_int_equal(check(arr16, sizeof arr16), PH_ERR_CORRUPT);
    /* Nested: the inner count is checked against what is left, too. */
    const uint8_t nested[] = {0x92, 0xdd, 0x00, 0x01, 0x00, 0x00, 0xc0, 0xc0};
    assert_int_equal(check(nested, sizeof nested), PH_ERR_CORRUPT);
    /* msgpack-c must never see these: ph_mp_decode refuses before unpacking. */
    msgpack_zone zone;
    msgpack_zone_init(&zone, 64);
    msgpack_object o;
    char err[128];
    assert_int_equal(ph_mp_decode(arr32, sizeof arr32, false, &zone, &o, err, sizeof err),
                     PH_ERR_CORRUPT);
    msgpack_zone_destroy(&zone);
}

static size_t nested_arrays(uint8_t *buf, unsigned depth)
{
    for (unsigned i = 0; i < depth; i++)
        buf[i] = 0x91;
    buf[depth] = 0xc0;
    return depth + 1;
}

static void mp_check_rejects_nesting_deeper_than_limit(void **state)
{
    (void)state;
    uint8_t buf[128];
    const unsigned lim = ph_mp_default_limits.max_depth;
    assert_int_equal(check(buf, nested_arrays(buf, lim)), PH_OK);
    assert_int_equal(check(buf, nested_arrays(buf, lim + 1)), PH_ERR_CORRUPT);
    assert_int_equal(check(buf, nested_arrays(buf, 100)), PH_ERR_CORRUPT);
    /* Maps nest the same way. */
    for (unsigned i = 0; i <= lim; i++) {
        buf[3 * i] = 0x81;
        buf[3 * i + 1] = 0xa1;
        buf[3 * i + 2] = 'k';
    }
    buf[3 * (lim + 1)] = 0xc0;
    assert_int_equal(check(buf, 3 * (lim + 1) + 1), PH_ERR_CORRUPT);
    assert_int_equal(check(buf + 3, 3 * lim + 1), PH_OK);
    /* A custom limit is honoured. */
    struct ph_mp_limits l = ph_mp_default_limits;
    l.max_depth = 2;
    assert_int_equal(check_lim(buf, nested_arrays(buf, 2), &l), PH_OK);
    assert_int_equal(check_lim(buf, nested_arrays(buf, 3), &l), PH_ERR_CORRUPT);
    /* Empty containers do not open a level. */
    const uint8_t empties[] = {0x91, 0x91, 0x90};
    assert_int_equal(check_lim(empties, sizeof empties, &l), PH_OK);
}

static void mp_check_rejects_too_many_objects(void **state)
{
    (void)state;
    struct ph_mp_limits l = ph_mp_default_limits;
    l.max_objects = 10;
    uint8_t buf[32];
    buf[0] = 0x99; /* array of 9: 10 objects */
    memset(buf + 1, 0xc0, 9);
    assert_int_equal(check_lim(buf, 10, &l), PH_OK);
    buf[0] = 0x9a; /* array of 10: 11 objects */
    memset(buf + 1, 0xc0, 10);
    assert_int_equal(check_lim(buf, 11, &l), PH_ERR_CORRUPT);
    /* The default limit applies when none is given. */
    size_t n = ph_mp_default_limits.max_objects; /* array of n: n + 1 objects */
    uint8_t *big = malloc(n + 5);
    assert_non_null(big);
    big[0] = 0xdd;
    big[1] = (uint8_t)(n >> 24);
    big[2] = (uint8_t)(n >> 16);
    big[3] = (uint8_t)(n >> 8);
    big[4] = (uint8_t)n;
    memset(big + 5, 0xc0, n);
    assert_int_equal(check(big, n + 5), PH_ERR_CORRUPT);
    n -= 1;
    big[3] = (uint8_t)(n >> 8);
    big[4] = (uint8_t)n;
    assert_int_equal(check(big, n + 5), PH_OK);
    free(big);
}

static void mp_check_rejects_string_over_max_str(void **state)
{
    (void)state;
    const size_t max = ph_mp_default_limits.max_str;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    char *s = malloc(max + 1);
    assert_non_null(s);
    memset(s, 's', max + 1);
    msgpack_pack_str_with_body(&pk, s, max);
    assert_int_equal(check(sb.data, sb.size), PH_OK);
    msgpack_sbuffer_clear(&sb);
    msgpack_pack_str_with_body(&pk, s, max + 1);
    assert_int_equal(check(sb.data, sb.size), PH_ERR_CORRUPT);
    msgpack_sbuffer_clear(&sb);
    msgpack_pack_bin_with_body(&pk, s, max + 1);
    assert_int_equal(check(sb.data, sb.size), PH_ERR_CORRUPT);
    msgpack_sbuffer_clear(&sb);
    msgpack_pack_ext_with_body(&pk, s, max + 1, 3);
    assert_int_equal(check(sb.data, sb.size), PH_ERR_CORRUPT);
    msgpack_sbuffer_clear(&sb);
    msgpack_pack_ext_with_body(&pk, s, max, 3);
    assert_int_equal(check(sb.data, sb.size), PH_OK);
    /* A header claiming a huge string is refused before the bytes are looked at. */
    const uint8_t str32[] = {0xdb, 0xff, 0xff, 0xff, 0xff, 'a'};
    assert_int_equal(check(str32, sizeof str32), PH_ERR_CORRUPT);
    free(s);
    msgpack_sbuffer_destroy(&sb);
}

/* ---- ph_mp_check: acceptance of every type family ---------------------- */

struct family {
    const char *name;
    uint8_t tag; /* expected first byte */
    void (*pack)(msgpack_packer *pk);
};

static char big[70000];

static void f_pfixint(msgpack_packer *pk)
{
    msgpack_pack_uint8(pk, 5);
}
static void f_nfixint(msgpack_packer *pk)
{
    msgpack_pack_int8(pk, -3);
}
static void f_nil(msgpack_packer *pk)
{
    msgpack_pack_nil(pk);
}
static void f_false(msgpack_packer *pk)
{
    msgpack_pack_false(pk);
}
static void f_true(msgpack_packer *pk)
{
    msgpack_pack_true(pk);
}
static void f_u8(msgpack_packer *pk)
{
    msgpack_pack_fix_uint8(pk, 200);
}
static void f_u16(msgpack_packer *pk)
{
    msgpack_pack_fix_uint16(pk, 60000);
}
static void f_u32(msgpack_packer *pk)
{
    msgpack_pack_fix_uint32(pk, 4000000000u);
}
static void f_u64(msgpack_packer *pk)
{
    msgpack_pack_fix_uint64(pk, UINT64_MAX);
}
static void f_i8(msgpack_packer *pk)
{
    msgpack_pack_fix_int8(pk, -100);
}
static void f_i16(msgpack_packer *pk)
{
    msgpack_pack_fix_int16(pk, -30000);
}
static void f_i32(msgpack_packer *pk)
{
    msgpack_pack_fix_int32(pk, -2000000000);
}
static void f_i64(msgpack_packer *pk)
{
    msgpack_pack_fix_int64(pk, INT64_MIN);
}
static void f_f32(msgpack_packer *pk)
{
    msgpack_pack_float(pk, 1.5f);
}
static void f_f64(msgpack_packer *pk)
{
    msgpack_pack_double(pk, -2.25);
}
static void f_fixstr(msgpack_packer *pk)
{
    msgpack_pack_str_with_body(pk, "abc", 3);
}
static void f_empty_str(msgpack_packer *pk)
{
    msgpack_pack_str_with_body(pk, "", 0);
}
static void f_str8(msgpack_packer *pk)
{
    msgpack_pack_str_with_body(pk, big, 40);
}
static void f_str16(msgpack_packer *pk)
{
    msgpack_pack_str_with_body(pk, big, 300);
}
static void f_str32(msgpack_packer *pk)
{
    msgpack_pack_str_with_body(pk, big, 70000);
}
static void f_bin8(msgpack_packer *pk)
{
    msgpack_pack_bin_with_body(pk, big, 10);
}
static void f_bin16(msgpack_packer *pk)
{
    msgpack_pack_bin_with_body(pk, big, 300);
}
static void f_bin32(msgpack_packer *pk)
{
    msgpack_pack_bin_with_body(pk, big, 70000);
}
static void f_fixarray(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 3);
    msgpack_pack_uint8(pk, 1);
    msgpack_pack_str_with_body(pk, "x", 1);
    msgpack_pack_nil(pk);
}
static void f_empty_array(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 0);
}
static void pack_n_ints(msgpack_packer *pk, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        msgpack_pack_uint32(pk, i);
}
static void f_array16(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 20);
    pack_n_ints(pk, 20);
}
static void f_array32(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 70000);
    pack_n_ints(pk, 70000);
}
static void f_fixmap(msgpack_packer *pk)
{
    msgpack_pack_map(pk, 2);
    msgpack_pack_str_with_body(pk, "a", 1);
    msgpack_pack_array(pk, 1);
    msgpack_pack_true(pk);
    msgpack_pack_str_with_body(pk, "b", 1);
    msgpack_pack_map(pk, 0);
}
static void f_empty_map(msgpack_packer *pk)
{
    msgpack_pack_map(pk, 0);
}
static void f_map16(msgpack_packer *pk)
{
    msgpack_pack_map(pk, 20);
    pack_n_ints(pk, 40);
}
static void f_map32(msgpack_packer *pk)
{
    msgpack_pack_map(pk, 70000);
    pack_n_ints(pk, 140000);
}
static void f_fixext1(msgpack_packer *pk)
{
    msgpack_pack_ext_with_body(pk, big, 1, 1);
}
static void f_fixext2(msgpack_packer *pk)
{
    msgpack_pack_ext_with_body(pk, big, 2, 1);
}
static void f_fixext4(msgpack_packer *pk)
{
    msgpack_pack_ext_with_body(pk, big, 4, -1);
}
static void f_fixext8(msgpack_packer *pk)
{
    msgpack_pack_ext_with_body(pk, big, 8, 2);
}
static void f_fixext16(msgpack_packer *pk)
{
    msgpack_pack_ext_with_body(pk, big, 16, 2);
}
static void f_ext8(msgpack_packer *pk)
{
    msgpack_pack_ext_with_body(pk, big, 3, 4);
}
static void f_ext16(msgpack_packer *pk)
{
    msgpack_pack_ext_with_body(pk, big, 300, 4);
}
static void f_ext32(msgpack_packer *pk)
{
    msgpack_pack_ext_with_body(pk, big, 70000, 4);
}

static const struct family families[] = {
    {"positive fixint", 0x05, f_pfixint},
    {"negative fixint", 0xfd, f_nfixint},
    {"nil", 0xc0, f_nil},
    {"false", 0xc2, f_false},
    {"true", 0xc3, f_true},
    {"uint8", 0xcc, f_u8},
    {"uint16", 0xcd, f_u16},
    {"uint32", 0xce, f_u32},
    {"uint64", 0xcf, f_u64},
    {"int8", 0xd0, f_i8},
    {"int16", 0xd1, f_i16},
    {"int32", 0xd2, f_i32},
    {"int64", 0xd3, f_i64},
    {"float32", 0xca, f_f32},
    {"float64", 0xcb, f_f64},
    {"fixstr", 0xa3, f_fixstr},
    {"empty fixstr", 0xa0, f_empty_str},
    {"str8", 0xd9, f_str8},
    {"str16", 0xda, f_str16},
    {"str32", 0xdb, f_str32},
    {"bin8", 0xc4, f_bin8},
    {"bin16", 0xc5, f_bin16},
    {"bin32", 0xc6, f_bin32},
    {"fixarray", 0x93, f_fixarray},
    {"empty fixarray", 0x90, f_empty_array},
    {"array16", 0xdc, f_array16},
    {"array32", 0xdd, f_array32},
    {"fixmap", 0x82, f_fixmap},
    {"empty fixmap", 0x80, f_empty_map},
    {"map16", 0xde, f_map16},
    {"map32", 0xdf, f_map32},
    {"fixext1", 0xd4, f_fixext1},
    {"fixext2", 0xd5, f_fixext2},
    {"fixext4", 0xd6, f_fixext4},
    {"fixext8", 0xd7, f_fixext8},
    {"fixext16", 0xd8, f_fixext16},
    {"ext8", 0xc7, f_ext8},
    {"ext16", 0xc8, f_ext16},
    {"ext32", 0xc9, f_ext32},
};

static const struct ph_mp_limits roomy = {
    .max_depth = 16, .max_objects = 400000, .max_str = 1u << 20};

static void mp_check_accepts_every_msgpack_type_family(void **state)
{
    (void)state;
    memset(big, 'b', sizeof big);
    msgpack_sbuffer all;
    msgpack_sbuffer_init(&all);
    msgpack_packer pall;
    msgpack_packer_init(&pall, &all, msgpack_sbuffer_write);
    const size_t nf = sizeof families / sizeof families[0];
    msgpack_pack_array(&pall, nf);
    for (size_t i = 0; i < nf; i++) {
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        families[i].pack(&pk);
        families[i].pack(&pall);
        const uint8_t *b = (const uint8_t *)sb.data;
        if (b[0] != families[i].tag) fail_msg("%s packed as 0x%02x", families[i].name, b[0]);
        /* msgpack-c itself reads it back: the buffer is genuine msgpack. */
        msgpack_zone zone;
        msgpack_zone_init(&zone, 1024);
        msgpack_object o;
        size_t off = 0;
        assert_int_equal(msgpack_unpack(sb.data, sb.size, &off, &zone, &o), MSGPACK_UNPACK_SUCCESS);
        assert_int_equal(off, sb.size);
        msgpack_zone_destroy(&zone);
        if (check_lim(b, sb.size, &roomy) != PH_OK) fail_msg("%s refused", families[i].name);
        /* Every family detects its own truncation. */
        size_t cuts[] = {0, 1, sb.size / 2, sb.size - 1};
        for (size_t k = 0; k < 4; k++)
            if (cuts[k] < sb.size && check_lim(b, cuts[k], &roomy) != PH_ERR_CORRUPT)
                fail_msg("%s cut to %zu bytes accepted", families[i].name, cuts[k]);
        msgpack_sbuffer_destroy(&sb);
    }
    /* All of them in one array, as well. */
    assert_int_equal(check_lim(all.data, all.size, &roomy), PH_OK);
    msgpack_sbuffer_destroy(&all);
}

static void mp_decode_checks_want_map(void **state)
{
    (void)state;
    const uint8_t map[] = {0x81, 0xa1, 'k', 0x2a};
    const uint8_t arr[] = {0x91, 0x2a};
    char err[128];
    msgpack_zone zone;
    msgpack_zone_init(&zone, 256);
    msgpack_object o;
    assert_int_equal(ph_mp_decode(map, sizeof map, true, &zone, &o, err, sizeof err), PH_OK);
    assert_int_equal(o.type, MSGPACK_OBJECT_MAP);
    const msgpack_object *k = ph_mp_map_get(&o, "k");
    assert_non_null(k);
    assert_int_equal(k->via.u64, 42);
    assert_null(ph_mp_map_get(&o, "missing"));
    assert_int_equal(ph_mp_decode(arr, sizeof arr, true, &zone, &o, err, sizeof err),
                     PH_ERR_CORRUPT);
    assert_non_null(strstr(err, "map"));
    assert_int_equal(ph_mp_decode(arr, sizeof arr, false, &zone, &o, err, sizeof err), PH_OK);
    assert_int_equal(o.type, MSGPACK_OBJECT_ARRAY);
    assert_null(ph_mp_map_get(&o, "k")); /* not a map */
    msgpack_zone_destroy(&zone);
}

static void mp_str_copies_only_clean_strings_that_fit(void **state)
{
    (void)state;
    msgpack_object o = {.type = MSGPACK_OBJECT_STR};
    o.via.str.ptr = "hello";
    o.via.str.size = 5;
    char buf[8];
    assert_true(ph_mp_str(&o, buf, sizeof buf));
    assert_string_equal(buf, "hello");
    assert_false(ph_mp_str(&o, buf, 5)); /* no room for the NUL */
    o.via.str.ptr = "a\0b";
    o.via.str.size = 3;
    assert_false(ph_mp_str(&o, buf, sizeof buf));
    msgpack_object n = {.type = MSGPACK_OBJECT_POSITIVE_INTEGER};
    assert_false(ph_mp_str(&n, buf, sizeof buf));
    assert_false(ph_mp_str(NULL, buf, sizeof buf));
}

/* ---- JSON <-> msgpack ------------------------------------------------- */

static void mpjson_round_trip_preserves_every_json_type(void **state)
{
    (void)state;
    const char *doc =
        "{\"ratePerSec\": 100, \"neg\": -42, \"zero\": 0, \"big\": 9007199254740993,"
        " \"min\": -9223372036854775808, \"ratio\": 0.25, \"name\": \"gen \\u00e9\","
        " \"on\": true, \"off\": false, \"none\": null, \"empty\": {}, \"list\": [], \"\": \"\","
        " \"nested\": {\"a\": [1, \"two\", 3.5, [false, null], {\"b\": {\"c\": \"d\"}}]}}";
    json_error_t je;
    json_t *in = json_loads(doc, 0, &je);
    assert_non_null(in);
    json_t *out = through_msgpack(in, false);
    if (!json_equal(in, out)) {
        char *s = json_dumps(out, JSON_SORT_KEYS);
        fail_msg("round trip changed the document: %s", s);
    }
    json_decref(out);
    /* Scalars at top level too. */
    json_t *scalars[] = {json_integer(-1), json_real(1e300), json_string(""), json_true(),
                         json_null()};
    for (size_t i = 0; i < 5; i++) {
        json_t *o = through_msgpack(scalars[i], true);
        assert_true(json_equal(scalars[i], o));
        json_decref(o);
        json_decref(scalars[i]);
    }
    json_decref(in);
}

static void mpjson_drops_secret_keys_at_every_depth(void **state)
{
    (void)state;
    const char *doc =
        "{\"password\": \"p\", \"apiKey\": \"k\", \"API_TOKEN\": \"t\", \"host\": \"db\","
        " \"db\": {\"user\": \"u\", \"password\": \"p2\", \"clientSecret\": \"s\"},"
        " \"list\": [{\"private_key\": \"x\", \"keep\": 1}, \"password\"],"
        " \"ratePerSec\": 5}";
    json_error_t je;
    json_t *in = json_loads(doc, 0, &je);
    assert_non_null(in);
    json_t *out = through_msgpack(in, true);
    json_t *want = json_loads("{\"host\": \"db\", \"db\": {\"user\": \"u\"},"
                              " \"list\": [{\"keep\": 1}, \"password\"], \"ratePerSec\": 5}",
                              0, &je);
    assert_non_null(want);
    if (!json_equal(out, want)) {
        char *s = json_dumps(out, JSON_SORT_KEYS);
        fail_msg("secrets not dropped as expected: %s", s);
    }
    /* Without drop_secrets everything stays. */
    json_t *all = through_msgpack(in, false);
    assert_true(json_equal(all, in));
    json_decref(all);
    json_decref(want);
    json_decref(out);
    json_decref(in);
}

static void mpjson_refuses_json_deeper_than_limit(void **state)
{
    (void)state;
    json_t *v = json_integer(1);
    for (unsigned i = 0; i < ph_mp_default_limits.max_depth + 2; i++) {
        json_t *a = json_array();
        json_array_append_new(a, v);
        v = a;
    }
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    assert_int_equal(ph_json_pack(&pk, v, false), -1);
    msgpack_sbuffer_destroy(&sb);
    json_decref(v);
}

static void mp_to_json_refuses_non_string_keys_and_nulls_binary(void **state)
{
    (void)state;
    const uint8_t intkey[] = {0x81, 0x01, 0x02}; /* {1: 2} */
    char err[128];
    msgpack_zone zone;
    msgpack_zone_init(&zone, 256);
    msgpack_object o;
    assert_int_equal(ph_mp_decode(intkey, sizeof intkey, true, &zone, &o, err, sizeof err), PH_OK);
    assert_null(ph_mp_to_json(&o));
    const uint8_t bin[] = {0x81, 0xa1, 'b', 0xc4, 0x02, 0x00, 0x01}; /* {"b": bin(2)} */
    assert_int_equal(ph_mp_decode(bin, sizeof bin, true, &zone, &o, err, sizeof err), PH_OK);
    json_t *j = ph_mp_to_json(&o);
    assert_non_null(j);
    assert_true(json_is_null(json_object_get(j, "b")));
    json_decref(j);
    msgpack_zone_destroy(&zone);
}

/* Configs hold empty strings ({"prefix": ""}) and could hold an empty key:
 * msgpack-c hands those over with a NULL pointer and size 0. */
static void mp_to_json_converts_empty_strings_and_empty_keys(void **state)
{
    (void)state;
    const uint8_t top[] = {0xa0};                  /* "" */
    const uint8_t first[] = {0x81, 0xa0, 0xa0};    /* {"": ""} */
    const uint8_t val[] = {0x81, 0xa1, 'k', 0xa0}; /* {"k": ""} */
    const uint8_t *bufs[] = {top, first, val};
    const size_t lens[] = {sizeof top, sizeof first, sizeof val};
    const char *want[] = {"\"\"", "{\"\": \"\"}", "{\"k\": \"\"}"};
    for (int i = 0; i < 3; i++) {
        char err[128];
        msgpack_zone zone;
        msgpack_zone_init(&zone, 256);
        msgpack_object o;
        assert_int_equal(ph_mp_decode(bufs[i], lens[i], false, &zone, &o, err, sizeof err), PH_OK);
        json_t *j = ph_mp_to_json(&o);
        if (j == NULL) fail_msg("case %d (%s) not converted", i, want[i]);
        json_error_t je;
        json_t *w = json_loads(want[i], JSON_DECODE_ANY, &je);
        assert_true(json_equal(j, w));
        json_decref(w);
        json_decref(j);
        msgpack_zone_destroy(&zone);
    }
}

/* ---- identifiers and secrets -------------------------------------------- */

static void key_is_secret_matches_secret_words_in_any_spelling(void **state)
{
    (void)state;
    const char *yes[] = {"password",    "PASSWORD",     "dbPassword",    "passwd",
                         "apiKey",      "api_key",      "API-KEY",       "API_TOKEN",
                         "accessToken", "clientSecret", "credentials",   "privateKey",
                         "private.key", "passphrase",   "Authorization", "cookie"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
        if (!ph_key_is_secret(yes[i])) fail_msg("'%s' not detected as a secret", yes[i]);
    /* "key" and "pass" alone are secrets since item 20; test_secrets.c has
     * the full positive and negative lists. */
    const char *no[] = {"host", "ratePerSec", "user", "username", "keyspace", "monkey",
                        "api",  "queue",      "",     "routingKey"};
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
        if (ph_key_is_secret(no[i])) fail_msg("'%s' taken for a secret", no[i]);
    assert_false(ph_key_is_secret(NULL));
}

static void ident_check_accepts_routing_key_safe_identifiers(void **state)
{
    (void)state;
    char err[256];
    char max[PH_ID_MAX];
    memset(max, 'a', PH_ID_MAX - 1);
    max[PH_ID_MAX - 1] = '\0';
    const char *ok[] = {"gen-1", "a_b", "a", "Z9", "all", "processor-12_x", max};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (ph_ident_check("id", ok[i], err, sizeof err) != PH_OK)
            fail_msg("'%s' refused: %s", ok[i], err);
}

static void ident_check_refuses_unsafe_identifiers_with_a_message(void **state)
{
    (void)state;
    char err[256];
    char toolong[PH_ID_MAX + 1];
    memset(toolong, 'a', PH_ID_MAX);
    toolong[PH_ID_MAX] = '\0';
    const char *bad[] = {"",      "a.b",         "a*",  "a#",   "a b", "ALL",
                         toolong, "caf\xc3\xa9", "a/b", "a\tb", "\x7f"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        if (ph_ident_check("role", bad[i], err, sizeof err) != PH_ERR_INVAL)
            fail_msg("'%s' accepted", bad[i]);
        assert_non_null(strstr(err, "role"));
    }
    err[0] = '\0';
    assert_int_equal(ph_ident_check("swarm id", NULL, err, sizeof err), PH_ERR_INVAL);
    assert_non_null(strstr(err, "swarm id"));
}

/* RFC 3339 with milliseconds, as gmtime and strftime write it: the same
 * second twice (the second from the per-thread cache), the next second, a
 * step back in time, and the edges of a second. */
static void rfc3339_ms_writes_each_instant_as_gmtime_does(void **state)
{
    (void)state;
    static const struct {
        uint64_t ns;
        const char *want;
    } cases[] = {
        {1764618737123456789ull, "2025-12-01T19:52:17.123Z"},
        {1764618737999999999ull, "2025-12-01T19:52:17.999Z"},
        {1764618738000000000ull, "2025-12-01T19:52:18.000Z"},
        {1764618737005000000ull, "2025-12-01T19:52:17.005Z"},
        {0ull, "1970-01-01T00:00:00.000Z"},
        {951782400042000000ull, "2000-02-29T00:00:00.042Z"},
        {1764618737123456789ull, "2025-12-01T19:52:17.123Z"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char buf[32];
        memset(buf, 'x', sizeof buf);
        ph_rfc3339_ms(cases[i].ns, buf);
        assert_string_equal(buf, cases[i].want);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(rfc3339_ms_writes_each_instant_as_gmtime_does),
        cmocka_unit_test(status_decode_accepts_valid_record),
        cmocka_unit_test(status_decode_rejects_wrong_size),
        cmocka_unit_test(status_decode_rejects_unknown_flag_bits),
        cmocka_unit_test(status_decode_rejects_out_of_range_io_values),
        cmocka_unit_test(status_decode_rejects_nonzero_reserved),
        cmocka_unit_test(io_names_parse_and_print_round_trip),
        cmocka_unit_test(io_enum_order_is_contract_priority),
        cmocka_unit_test(alert_encode_decode_round_trip),
        cmocka_unit_test(alert_long_message_is_cut_not_refused),
        cmocka_unit_test(alert_encode_refuses_bad_level_or_code),
        cmocka_unit_test(alert_decode_refuses_bad_level_empty_code_and_overlong_fields),
        cmocka_unit_test(ack_encode_decode_round_trip),
        cmocka_unit_test(ack_decode_rejects_missing_or_mistyped_fields),
        cmocka_unit_test(cmd_encode_carries_token_and_patch_map),
        cmocka_unit_test(mp_check_rejects_truncated_input),
        cmocka_unit_test(mp_check_rejects_trailing_bytes),
        cmocka_unit_test(mp_check_rejects_never_used_byte_0xc1),
        cmocka_unit_test(mp_check_rejects_container_counts_not_backed_by_bytes),
        cmocka_unit_test(mp_check_rejects_nesting_deeper_than_limit),
        cmocka_unit_test(mp_check_rejects_too_many_objects),
        cmocka_unit_test(mp_check_rejects_string_over_max_str),
        cmocka_unit_test(mp_check_accepts_every_msgpack_type_family),
        cmocka_unit_test(mp_decode_checks_want_map),
        cmocka_unit_test(mp_str_copies_only_clean_strings_that_fit),
        cmocka_unit_test(mpjson_round_trip_preserves_every_json_type),
        cmocka_unit_test(mpjson_drops_secret_keys_at_every_depth),
        cmocka_unit_test(mpjson_refuses_json_deeper_than_limit),
        cmocka_unit_test(mp_to_json_refuses_non_string_keys_and_nulls_binary),
        cmocka_unit_test(mp_to_json_converts_empty_strings_and_empty_keys),
        cmocka_unit_test(key_is_secret_matches_secret_words_in_any_spelling),
        cmocka_unit_test(ident_check_accepts_routing_key_safe_identifiers),
        cmocka_unit_test(ident_check_refuses_unsafe_identifiers_with_a_message),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
