/* Unit tests of the SPSC ring (shm/ring.c) on a ring in plain process memory.
 *
 * The producer side is exercised through the public API; the consumer's
 * validation is exercised by writing hostile headers and positions straight
 * into the data area and the descriptor, as a broken or malicious producer
 * could. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ph/ring.h"

#define CAP 256u

struct ring {
    struct ph_ring_desc desc;
    alignas(64) uint8_t data[1u << 12];
    uint32_t cap;
    ph_ring_producer p;
    ph_ring_consumer c;
    uint8_t scratch[1u << 12];
};

/* What a drain handed to the handler. */
#define LOG_MAX 4096
struct log {
    int n;
    int fail_at; /* handler returns fail_rc for the record with this index (-1: never) */
    int fail_rc;
    uint16_t type[LOG_MAX];
    uint32_t len[LOG_MAX];
    uint8_t first[LOG_MAX]; /* first body byte (0 when empty) */
    uint8_t body[LOG_MAX][64];
};

static int log_handler(void *ctx, uint16_t type, const uint8_t *body, uint32_t len)
{
    struct log *l = ctx;
    assert_true(l->n < LOG_MAX);
    l->type[l->n] = type;
    l->len[l->n] = len;
    l->first[l->n] = len ? body[0] : 0;
    memcpy(l->body[l->n], body, len < 64 ? len : 64);
    int idx = l->n++;
    return idx == l->fail_at ? l->fail_rc : 0;
}

static struct log *log_new(void)
{
    struct log *l = calloc(1, sizeof *l);
    assert_non_null(l);
    l->fail_at = -1;
    return l;
}

static struct ring *ring_new(uint32_t cap)
{
    struct ring *r = aligned_alloc(64, sizeof(struct ring));
    assert_non_null(r);
    memset(r, 0, sizeof *r);
    /* Fill the data area with a pattern so stale bytes are never zeros. */
    memset(r->data, 0xa5, sizeof r->data);
    r->cap = cap;
    ph_ring_reset(&r->desc);
    assert_int_equal(ph_ring_producer_init(&r->p, &r->desc, r->data, cap), PH_OK);
    assert_int_equal(ph_ring_consumer_init(&r->c, &r->desc, r->data, cap), PH_OK);
    return r;
}

static int drain(struct ring *r, struct log *l, uint32_t max)
{
    return ph_ring_drain(&r->c, log_handler, l, r->scratch, max);
}

static uint64_t load(_Atomic uint64_t *a)
{
    return atomic_load(a);
}

/* Writes a raw record header at data offset `off`. */
static void put_hdr(struct ring *r, uint32_t off, uint32_t len, uint16_t type)
{
    struct ph_ring_rec h = {.len = len, .type = type, .flags = 0};
    memcpy(r->data + off, &h, sizeof h);
}

static void ring_round_trip_delivers_type_length_and_bytes(void **state)
{
    (void)state;
    struct ring *r = ring_new(CAP);
    struct log *l = log_new();
    const char a[] = "hello";
    uint8_t b[40];
    for (unsigned i = 0; i < sizeof b; i++)
        b[i] = (uint8_t)(i * 7 + 1);

    assert_true(ph_ring_write(&r->p, 3, a, sizeof a));
    assert_true(ph_ring_write(&r->p, 9, b, sizeof b));
    assert_true(ph_ring_write(&r->p, 4, NULL, 0));
    assert_true(ph_ring_pending(&r->c));
    /* 8+6 -> 16, 8+40 -> 48, 8+0 -> 8 */
    assert_int_equal(load(&r->desc.tail), 16 + 48 + 8);
    assert_int_equal(load(&r->desc.published), 3);

    assert_int_equal(drain(r, l, 0), 3);
    assert_int_equal(l->n, 3);
    assert_int_equal(l->type[0], 3);
    assert_int_equal(l->len[0], sizeof a);
    assert_memory_equal(l->body[0], a, sizeof a);
    assert_int_equal(l->type[1], 9);
    assert_int_equal(l->len[1], sizeof b);
    assert_memory_equal(l->body[1], b, sizeof b);
    assert_int_equal(l->type[2], 4);
    assert_int_equal(l->len[2], 0);

    assert_false(ph_ring_pending(&r->c));
    assert_int_equal(load(&r->desc.head), load(&r->desc.tail));
    assert_int_equal(load(&r->desc.consumed), 3);
    assert_int_equal(r->c.consumed, 3);
    assert_int_equal(drain(r, l, 0), 0);
    assert_int_equal(l->n, 3);
    free(l);
    free(r);
}

static void ring_claimed_records_are_invisible_until_publish(void **state)
{
    (void)state;
    struct ring *r = ring_new(CAP);
    struct log *l = log_new();
    uint8_t *x = ph_ring_claim(&r->p, 1, 8);
    uint8_t *y = ph_ring_claim(&r->p, 2, 3);
    assert_non_null(x);
    assert_non_null(y);
    assert_int_equal((uintptr_t)x % PH_RING_ALIGN, 0);
    assert_int_equal((uintptr_t)y % PH_RING_ALIGN, 0);
    memset(x, 0x11, 8);
    memset(y, 0x22, 3);
    assert_false(ph_ring_pending(&r->c));
    assert_int_equal(load(&r->desc.tail), 0);
    assert_int_equal(drain(r, l, 0), 0);
    assert_int_equal(l->n, 0);

    ph_ring_publish(&r->p);
    assert_true(ph_ring_pending(&r->c));
    assert_int_equal(drain(r, l, 0), 2);
    assert_int_equal(l->type[0], 1);
    assert_int_equal(l->first[0], 0x11);
    assert_int_equal(l->type[1], 2);
    assert_int_equal(l->len[1], 3);
    assert_int_equal(l->first[1], 0x22);
    free(l);
    free(r);
}

/* Deterministic wrap: the next record does not fit before the end, so a
 * padding record fills the rest of the area and the record goes at 0. */
static void ring_wraps_with_padding_record(void **state)
{
    (void)state;
    struct ring *r = ring_new(CAP);
    struct log *l = log_new();
    uint8_t big[100];
    memset(big, 0x5a, sizeof big);
    assert_true(ph_ring_write(&r->p, 1, big, sizeof big)); /* 112 bytes */
    assert_true(ph_ring_write(&r->p, 1, big, sizeof big)); /* 112 bytes -> tail 224 */
    assert_int_equal(drain(r, l, 0), 2);
    assert_int_equal(load(&r->desc.tail), 224);

    uint8_t small[40];
    for (unsigned i = 0; i < sizeof small; i++)
        small[i] = (uint8_t)(200 + i);
    assert_true(ph_ring_write(&r->p, 7, small, sizeof small)); /* 48 bytes, 32 left before end */
    assert_int_equal(load(&r->desc.tail), 224 + 32 + 48);
    struct ph_ring_rec pad;
    memcpy(&pad, r->data + 224, sizeof pad);
    assert_int_equal(pad.type, PH_RING_PAD);
    assert_int_equal(pad.len, 32);
    struct ph_ring_rec rec;
    memcpy(&rec, r->data, sizeof rec);
    assert_int_equal(rec.type, 7);
    assert_int_equal(rec.len, 48);

    /* The padding record is skipped, not delivered, and not counted. */
    assert_int_equal(drain(r, l, 0), 1);
    assert_int_equal(l->n, 3);
    assert_int_equal(l->type[2], 7);
    assert_int_equal(l->len[2], sizeof small);
    assert_memory_equal(l->body[2], small, sizeof small);
    assert_int_equal(load(&r->desc.head), 224 + 32 + 48);
    assert_int_equal(load(&r->desc.consumed), 3);
    free(l);
    free(r);
}

static uint32_t lap_len(uint32_t i)
{
    return (i * 37u + (i >> 3)) % 101u; /* 0..100 bytes */
}

static uint8_t lap_byte(uint32_t i, uint32_t k)
{
    return (uint8_t)(i * 131u + k * 7u + 3u);
}

struct lap_ctx {
    uint32_t next; /* record index expected next */
    uint32_t bad;
};

static int lap_handler(void *ctx, uint16_t type, const uint8_t *body, uint32_t len)
{
    struct lap_ctx *c = ctx;
    uint32_t i = c->next++;
    if (type != 1 + i % 5 || len != lap_len(i) + 4) {
        c->bad++;
        return 0;
    }
    uint32_t idx;
    memcpy(&idx, body, 4);
    if (idx != i) c->bad++;
    for (uint32_t k = 0; k < lap_len(i); k++)
        if (body[4 + k] != lap_byte(i, k)) {
            c->bad++;
            break;
        }
    return 0;
}

/* Many laps of records of varying sizes; the consumer lags by a varying
 * number of records so the ring runs at every fill level and every offset. */
static void ring_wraps_many_laps_with_varying_sizes_and_exact_contents(void **state)
{
    (void)state;
    struct ring *r = ring_new(CAP);
    struct lap_ctx ctx = {0, 0};
    uint8_t body[128];
    const uint32_t n = 20000;
    uint64_t bytes_of_records = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t len = lap_len(i);
        memcpy(body, &i, 4);
        for (uint32_t k = 0; k < len; k++)
            body[4 + k] = lap_byte(i, k);
        if (!ph_ring_write(&r->p, (uint16_t)(1 + i % 5), body, len + 4)) {
            /* Full: drain everything and retry once; it must fit then. */
            int got = ph_ring_drain(&r->c, lap_handler, &ctx, r->scratch, 0);
            assert_true(got > 0);
            assert_true(ph_ring_write(&r->p, (uint16_t)(1 + i % 5), body, len + 4));
        }
        bytes_of_records += (8u + len + 4u + 7u) & ~7u;
        if (i % 7 == 3) assert_true(ph_ring_drain(&r->c, lap_handler, &ctx, r->scratch, 2) >= 0);
    }
    assert_true(ph_ring_drain(&r->c, lap_handler, &ctx, r->scratch, 0) >= 0);
    assert_int_equal(ctx.bad, 0);
    assert_int_equal(ctx.next, n);
    assert_int_equal(load(&r->desc.consumed), n);
    assert_int_equal(load(&r->desc.head), load(&r->desc.tail));
    /* Many laps, and padding was really used: positions moved further than
     * the records alone account for. */
    assert_true(load(&r->desc.tail) > 100ull * CAP);
    assert_true(load(&r->desc.tail) > bytes_of_records);
    free(r);
}

static void ring_full_returns_null_and_counts_overflows_exactly(void **state)
{
    (void)state;
    struct ring *r = ring_new(CAP);
    uint8_t body[24] = {0};
    /* 32 bytes per record: exactly 8 fit in 256. */
    for (int i = 0; i < 8; i++)
        assert_true(ph_ring_write(&r->p, 1, body, sizeof body));
    assert_int_equal(ph_ring_producer_used(&r->p), CAP);
    for (int i = 0; i < 5; i++) {
        assert_null(ph_ring_claim(&r->p, 1, sizeof body));
        assert_int_equal(r->p.overflows, (uint64_t)i + 1);
        assert_int_equal(load(&r->desc.overflows), (uint64_t)i + 1);
    }
    assert_false(ph_ring_write(&r->p, 1, body, sizeof body));
    /* Even a zero-length record needs 8 bytes. */
    assert_null(ph_ring_claim(&r->p, 1, 0));
    assert_int_equal(load(&r->desc.overflows), 7);
    assert_int_equal(load(&r->desc.published), 8);
    assert_int_equal(load(&r->desc.tail), CAP);
    free(r);
}

static void ring_space_returns_after_drain(void **state)
{
    (void)state;
    struct ring *r = ring_new(CAP);
    struct log *l = log_new();
    uint8_t body[24];
    for (int i = 0; i < 8; i++) {
        body[0] = (uint8_t)i;
        assert_true(ph_ring_write(&r->p, 1, body, sizeof body));
    }
    assert_false(ph_ring_write(&r->p, 1, body, sizeof body));
    assert_int_equal(drain(r, l, 3), 3);
    assert_int_equal(ph_ring_producer_used(&r->p), CAP - 3 * 32);
    for (int i = 8; i < 11; i++) {
        body[0] = (uint8_t)i;
        assert_true(ph_ring_write(&r->p, 1, body, sizeof body));
    }
    assert_false(ph_ring_write(&r->p, 1, body, sizeof body));
    assert_int_equal(load(&r->desc.overflows), 2);
    assert_int_equal(drain(r, l, 0), 8);
    for (int i = 0; i < 11; i++)
        assert_int_equal(l->first[i], i);
    free(l);
    free(r);
}

static void ring_refuses_record_larger_than_half_capacity(void **state)
{
    (void)state;
    struct ring *r = ring_new(CAP);
    struct log *l = log_new();
    assert_int_equal(r->p.max_record, CAP / 2);
    static uint8_t body[CAP];
    memset(body, 0x33, sizeof body);
    assert_null(ph_ring_claim(&r->p, 1, CAP / 2 - PH_RING_HDR + 1));
    assert_int_equal(load(&r->desc.overflows), 1);
    assert_false(ph_ring_write(&r->p, 1, body, CAP));
    assert_null(ph_ring_claim(&r->p, 1, UINT32_MAX));
    assert_int_equal(load(&r->desc.overflows), 3);
    assert_int_equal(load(&r->desc.tail), 0);
    /* The largest record allowed fits, even at the worst offset. */
    assert_true(ph_ring_write(&r->p, 1, body, 8)); /* 16 bytes: offset 16 */
    assert_int_equal(drain(r, l, 0), 1);
    for (int i = 0; i < 3; i++) {
        assert_true(ph_ring_write(&r->p, 2, body, CAP / 2 - PH_RING_HDR));
        assert_int_equal(drain(r, l, 0), 1);
    }
    assert_int_equal(l->len[3], CAP / 2 - PH_RING_HDR);
    assert_int_equal(load(&r->desc.overflows), 3);
    free(l);
    free(r);
}

static void ring_refuses_padding_type_from_producer(void **state)
{
    (void)state;
    struct ring *r = ring_new(CAP);
    assert_null(ph_ring_claim(&r->p, PH_RING_PAD, 8));
    assert_int_equal(load(&r->desc.overflows), 1);
    assert_int_equal(load(&r->desc.tail), 0);
    free(r);
}

static void ring_drain_honours_max_records(void **state)
{
    (void)state;
    struct ring *r = ring_new(CAP);
    struct log *l = log_new();
    for (uint8_t i = 0; i < 10; i++)
        assert_true(ph_ring_write(&r->p, 1, &i, 1));
    assert_int_equal(drain(r, l, 3), 3);
    assert_int_equal(l->n, 3);
    assert_int_equal(load(&r->desc.head), 3 * 16);
    assert_int_equal(drain(r, l, 1), 1);
    assert_int_equal(l->first[3], 3);
    assert_int_equal(drain(r, l, 100), 6);
    for (int i = 0; i < 10; i++)
        assert_int_equal(l->first[i], i);
    free(l);
    free(r);
}

/* Validation failures: PH_ERR_CORRUPT, no handler call for the bad record,
 * head (shared and local) left at the bad record. */
static void expect_corrupt_at(struct ring *r, uint64_t head_before)
{
    struct log *l = log_new();
    assert_int_equal(drain(r, l, 0), PH_ERR_CORRUPT);
    assert_int_equal(l->n, 0);
    assert_int_equal(r->c.head, head_before);
    assert_int_equal(load(&r->desc.head), head_before);
    /* A second attempt fails the same way: nothing was skipped over. */
    assert_int_equal(drain(r, l, 0), PH_ERR_CORRUPT);
    assert_int_equal(l->n, 0);
    free(l);
}

static void ring_consumer_rejects_tail_beyond_capacity(void **state)
{
    (void)state;
    struct ring *r = ring_new(CAP);
    put_hdr(r, 0, 16, 1);
    atomic_store(&r->desc.tail, CAP + 8);
    expect_corrupt_at(r, 0);
    /* A tail behind head is as bad (it is "far ahead" modulo 2^64). */
    atomic_store(&r->desc.tail, (uint64_t)0 - 8);
    expect_corrupt_at(r, 0);
    free(r);
}

static void ring_consumer_rejects_unaligned_tail(void **state)
{
    (void)state;
    struct ring *r = ring_new(CAP);
    put_hdr(r, 0, 12, 1);
    atomic_store(&r->desc.tail, 12);
    expect_corrupt_at(r, 0);
    free(r);
}

static void ring_consumer_rejects_header_len_below_header_size(void **state)
{
    (void)state;
    for (uint32_t len = 0; len < PH_RING_HDR; len++) {
        struct ring *r = ring_new(CAP);
        put_hdr(r, 0, len, 1);
        atomic_store(&r->desc.tail, 16);
        expect_corrupt_at(r, 0);
        free(r);
    }
}

static void ring_consumer_rejects_len_running_past_tail(void **state)
{
    (void)state;
    struct ring *r = ring_new(CAP);
    put_hdr(r, 0, 64, 1);
    atomic_store(&r->desc.tail, 16);
    expect_corrupt_at(r, 0);
    /* One byte too long also counts (aligned up it passes the tail). */
    put_hdr(r, 0, 17, 1);
    expect_corrupt_at(r, 0);
    /* A huge length that would overflow 32-bit arithmetic. */
    put_hdr(r, 0, UINT32_MAX, 1);
    expect_corrupt_at(r, 0);
    free(r);
}

static void ring_consumer_rejects_padding_not_filling_rest_of_area(void **state)
{
    (void)state;
    struct ring *r = ring_new(CAP);
    put_hdr(r, 0, 16, PH_RING_PAD);
    put_hdr(r, 16, 16, 1);
    atomic_store(&r->desc.tail, 32);
    expect_corrupt_at(r, 0);
    free(r);
}

static void ring_consumer_rejects_record_longer_than_max_record(void **state)
{
    (void)state;
    struct ring *r = ring_new(CAP);
    /* 136 bytes: within tail and before the end, but over capacity/2. */
    put_hdr(r, 0, CAP / 2 + 8, 1);
    atomic_store(&r->desc.tail, CAP / 2 + 8);
    expect_corrupt_at(r, 0);
    free(r);
}

static void ring_consumer_rejects_record_straddling_end_of_area(void **state)
{
    (void)state;
    struct ring *r = ring_new(CAP);
    /* Move both positions to 224 (32 bytes before the end), as after a lap. */
    atomic_store(&r->desc.head, 224);
    atomic_store(&r->desc.tail, 224);
    assert_int_equal(ph_ring_consumer_init(&r->c, &r->desc, r->data, CAP), PH_OK);
    put_hdr(r, 224, 48, 1);
    atomic_store(&r->desc.tail, 224 + 48);
    expect_corrupt_at(r, 224);
    free(r);
}

static void ring_corrupt_record_after_good_ones_consumes_only_the_good(void **state)
{
    (void)state;
    struct ring *r = ring_new(CAP);
    struct log *l = log_new();
    uint8_t v = 42;
    assert_true(ph_ring_write(&r->p, 5, &v, 1));
    assert_true(ph_ring_write(&r->p, 5, &v, 1));
    put_hdr(r, 32, 3, 5); /* bad: len < 8 */
    atomic_store(&r->desc.tail, 48);
    assert_int_equal(drain(r, l, 0), PH_ERR_CORRUPT);
    assert_int_equal(l->n, 2);
    assert_int_equal(l->first[1], 42);
    assert_int_equal(load(&r->desc.head), 32);
    assert_int_equal(load(&r->desc.consumed), 2);
    expect_corrupt_at(r, 32);
    free(l);
    free(r);
}

static void ring_handler_error_stops_drain(void **state)
{
    (void)state;
    struct ring *r = ring_new(CAP);
    struct log *l = log_new();
    for (uint8_t i = 0; i < 4; i++)
        assert_true(ph_ring_write(&r->p, 1, &i, 1));
    l->fail_at = 1;
    l->fail_rc = 77;
    assert_int_equal(drain(r, l, 0), 77);
    assert_int_equal(l->n, 2);
    /* The record the handler failed on is consumed; the rest wait. */
    assert_int_equal(load(&r->desc.head), 32);
    assert_int_equal(load(&r->desc.consumed), 2);
    l->fail_at = -1;
    assert_int_equal(drain(r, l, 0), 2);
    assert_int_equal(l->first[2], 2);
    assert_int_equal(l->first[3], 3);
    /* A negative handler result is passed through as well. */
    assert_true(ph_ring_write(&r->p, 1, "x", 1));
    l->fail_at = 4;
    l->fail_rc = -5;
    assert_int_equal(drain(r, l, 0), -5);
    free(l);
    free(r);
}

static void ring_consumer_init_rejects_inconsistent_head_and_tail(void **state)
{
    (void)state;
    struct ring *r = ring_new(CAP);
    ph_ring_consumer c;
    /* tail behind head */
    atomic_store(&r->desc.head, 64);
    atomic_store(&r->desc.tail, 32);
    assert_int_equal(ph_ring_consumer_init(&c, &r->desc, r->data, CAP), PH_ERR_CORRUPT);
    /* tail more than a capacity ahead */
    atomic_store(&r->desc.head, 0);
    atomic_store(&r->desc.tail, CAP + 8);
    assert_int_equal(ph_ring_consumer_init(&c, &r->desc, r->data, CAP), PH_ERR_CORRUPT);
    /* unaligned head */
    atomic_store(&r->desc.head, 4);
    atomic_store(&r->desc.tail, 8);
    assert_int_equal(ph_ring_consumer_init(&c, &r->desc, r->data, CAP), PH_ERR_CORRUPT);
    /* exactly full is consistent */
    atomic_store(&r->desc.head, 8);
    atomic_store(&r->desc.tail, CAP + 8);
    assert_int_equal(ph_ring_consumer_init(&c, &r->desc, r->data, CAP), PH_OK);
    free(r);
}

static void ring_consumer_init_resumes_at_shared_head(void **state)
{
    (void)state;
    struct ring *r = ring_new(CAP);
    struct log *l = log_new();
    for (uint8_t i = 0; i < 5; i++)
        assert_true(ph_ring_write(&r->p, 1, &i, 1));
    assert_int_equal(drain(r, l, 2), 2);
    /* A new consumer (a restarted controller) continues where the old stopped. */
    ph_ring_consumer c2;
    assert_int_equal(ph_ring_consumer_init(&c2, &r->desc, r->data, CAP), PH_OK);
    assert_int_equal(c2.head, 32);
    assert_int_equal(c2.consumed, 2);
    assert_int_equal(ph_ring_drain(&c2, log_handler, l, r->scratch, 0), 3);
    for (int i = 0; i < 5; i++)
        assert_int_equal(l->first[i], i);
    assert_int_equal(load(&r->desc.consumed), 5);
    free(l);
    free(r);
}

/* Where the consumer stood while each record was handled. */
struct seen_pos {
    const ph_ring_consumer *c;
    int n;
    uint64_t pos[16];
};

static int note_pos(void *ctx, uint16_t type, const uint8_t *body, uint32_t len)
{
    (void)type, (void)body, (void)len;
    struct seen_pos *s = ctx;
    assert_true(s->n < 16);
    s->pos[s->n++] = s->c->head;
    return 0;
}

static void ring_handler_sees_the_position_just_past_its_record(void **state)
{
    (void)state;
    struct ring *r = ring_new(CAP);
    uint8_t big[100] = {0};
    assert_true(ph_ring_write(&r->p, 1, big, sizeof big)); /* 112 bytes */
    assert_true(ph_ring_write(&r->p, 1, big, 10));         /* 24 bytes */
    struct seen_pos s = {.c = &r->c};
    assert_int_equal(ph_ring_drain_held(&r->c, note_pos, &s, r->scratch, 0), 2);
    assert_int_equal(s.n, 2);
    assert_int_equal(s.pos[0], 112);
    assert_int_equal(s.pos[1], 136);
    ph_ring_commit(&r->c);
    /* Across the wrap: the padding before a record is passed with it. */
    assert_true(ph_ring_write(&r->p, 1, big, sizeof big)); /* 112 bytes: up to 248 */
    assert_true(ph_ring_write(&r->p, 1, big, 40));         /* 8 bytes of padding, 48 at 0 */
    assert_int_equal(ph_ring_drain_held(&r->c, note_pos, &s, r->scratch, 0), 2);
    assert_int_equal(s.pos[2], 248);
    assert_int_equal(s.pos[3], 256 + 48);
    free(r);
}

static void ring_commit_to_hands_back_only_the_space_before_the_position(void **state)
{
    (void)state;
    struct ring *r = ring_new(CAP);
    for (uint8_t i = 0; i < 4; i++)
        assert_true(ph_ring_write(&r->p, 1, &i, 1)); /* 16 bytes each */
    struct seen_pos s = {.c = &r->c};
    assert_int_equal(ph_ring_drain_held(&r->c, note_pos, &s, r->scratch, 0), 4);
    assert_int_equal(r->c.head, 64);
    assert_int_equal(load(&r->desc.head), 0); /* held: nothing handed back yet */

    /* Up to the end of the first record only. */
    assert_int_equal(ph_ring_commit_to(&r->c, s.pos[0]), PH_OK);
    assert_int_equal(load(&r->desc.head), 16);
    assert_int_equal(r->c.committed, 16);
    assert_int_equal(ph_ring_producer_used(&r->p), 48);
    /* The same position again changes nothing. */
    assert_int_equal(ph_ring_commit_to(&r->c, 16), PH_OK);
    assert_int_equal(load(&r->desc.head), 16);

    /* Refused, and nothing moves: behind what was handed back, beyond what
     * was read, not on the 8-byte grid. */
    assert_int_equal(ph_ring_commit_to(&r->c, 0), PH_ERR_INVAL);
    assert_int_equal(ph_ring_commit_to(&r->c, 72), PH_ERR_INVAL);
    assert_int_equal(ph_ring_commit_to(&r->c, 1ull << 40), PH_ERR_INVAL);
    assert_int_equal(ph_ring_commit_to(&r->c, 20), PH_ERR_INVAL);
    assert_int_equal(load(&r->desc.head), 16);
    assert_int_equal(r->c.committed, 16);

    /* A consumer attaching now (a restarted bridge) reads the three held
     * records again. */
    ph_ring_consumer c2;
    assert_int_equal(ph_ring_consumer_init(&c2, &r->desc, r->data, CAP), PH_OK);
    assert_int_equal(c2.head, 16);
    assert_int_equal(c2.committed, 16);
    struct log *l = log_new();
    assert_int_equal(ph_ring_drain_held(&c2, log_handler, l, r->scratch, 0), 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(l->first[i], i + 1);
    /* A record not yet written is no position to commit to. */
    assert_int_equal(ph_ring_commit_to(&c2, 80), PH_ERR_INVAL);

    /* Everything read, as ph_ring_commit() would. */
    assert_int_equal(ph_ring_commit_to(&r->c, 64), PH_OK);
    assert_int_equal(load(&r->desc.head), 64);
    assert_int_equal(ph_ring_producer_used(&r->p), 0);
    free(l);
    free(r);
}

static void ring_producer_init_resumes_at_shared_tail(void **state)
{
    (void)state;
    struct ring *r = ring_new(CAP);
    struct log *l = log_new();
    uint8_t v = 1;
    assert_true(ph_ring_write(&r->p, 1, &v, 1));
    assert_null(ph_ring_claim(&r->p, 1, CAP)); /* one overflow */
    ph_ring_producer p2;
    assert_int_equal(ph_ring_producer_init(&p2, &r->desc, r->data, CAP), PH_OK);
    assert_int_equal(p2.tail, 16);
    assert_int_equal(p2.published, 1);
    assert_int_equal(p2.overflows, 1);
    v = 2;
    assert_true(ph_ring_write(&p2, 1, &v, 1));
    assert_int_equal(drain(r, l, 0), 2);
    assert_int_equal(l->first[0], 1);
    assert_int_equal(l->first[1], 2);
    assert_int_equal(load(&r->desc.published), 2);
    free(l);
    free(r);
}

/* A head beyond the producer's tail can only come from a broken consumer;
 * the producer must treat the ring as full, now and on later claims, and
 * never write over data it cannot account for. */
static void ring_producer_treats_head_beyond_tail_as_full(void **state)
{
    (void)state;
    struct ring *r = ring_new(CAP);
    uint8_t body[24] = {0};
    for (int i = 0; i < 8; i++)
        assert_true(ph_ring_write(&r->p, 1, body, sizeof body));
    atomic_store(&r->desc.head, CAP + 64); /* beyond tail (256) */
    assert_null(ph_ring_claim(&r->p, 1, sizeof body));
    assert_int_equal(load(&r->desc.overflows), 1);
    assert_null(ph_ring_claim(&r->p, 1, sizeof body));
    assert_null(ph_ring_claim(&r->p, 1, 0));
    assert_int_equal(load(&r->desc.overflows), 3);
    assert_int_equal(load(&r->desc.tail), CAP);
    assert_int_equal(ph_ring_producer_used(&r->p), CAP);
    /* Once the consumer is sane again, space comes back. */
    atomic_store(&r->desc.head, CAP);
    assert_true(ph_ring_write(&r->p, 1, body, sizeof body));
    free(r);
}

/* Item 8: the producer's positions live in shared memory that the other
 * side can write. A tail that is unaligned, more than a ring ahead of head,
 * or behind head is refused at init, and the refused producer writes
 * nothing, least of all past the end of its data area (an unaligned tail
 * near the end used to put a padding record across it). */
static void item08_producer_init_refuses_corrupt_positions(void **state)
{
    (void)state;
    static const struct {
        const char *what;
        uint64_t tail, head;
    } bad[] = {
        {"unaligned tail near the end", CAP - 4, CAP - 4},
        {"unaligned tail", 12, 0},
        {"tail more than a ring ahead of head", 2 * CAP, CAP - 8},
        {"head beyond tail", 64, 128},
    };
    uint8_t body[16] = {1, 2, 3};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct ring *r = ring_new(CAP);
        atomic_store(&r->desc.tail, bad[i].tail);
        atomic_store(&r->desc.head, bad[i].head);
        ph_ring_producer p;
        int rc = ph_ring_producer_init(&p, &r->desc, r->data, CAP);
        /* Whatever the caller then does with it, nothing is written. */
        bool wrote = ph_ring_write(&p, 1, body, sizeof body);
        for (uint32_t k = 0; k < sizeof r->data; k++)
            if (r->data[k] != 0xa5)
                fail_msg("%s: byte %u of the data area written (capacity %u)", bad[i].what, k, CAP);
        if (wrote) fail_msg("%s: a record was accepted", bad[i].what);
        if (rc != PH_ERR_CORRUPT) fail_msg("%s: init returned %d", bad[i].what, rc);
        assert_false(ph_ring_fits(&p, 0));
        free(r);
    }
    /* Aligned and within a ring: accepted, and writing works. */
    struct ring *r = ring_new(CAP);
    atomic_store(&r->desc.tail, 3 * CAP - 8);
    atomic_store(&r->desc.head, 3 * CAP - 8);
    ph_ring_producer p;
    assert_int_equal(ph_ring_producer_init(&p, &r->desc, r->data, CAP), PH_OK);
    assert_true(ph_ring_write(&p, 1, body, sizeof body));
    for (uint32_t k = CAP; k < sizeof r->data; k++) assert_int_equal(r->data[k], 0xa5);
    free(r);
}

/* Item 8, second half: after init the producer trusts only its own tail. A
 * consumer that scribbles on the shared tail cannot move where the producer
 * writes. */
static void item08_producer_never_rereads_the_shared_tail(void **state)
{
    (void)state;
    struct ring *r = ring_new(CAP);
    uint8_t body[16] = {0};
    assert_true(ph_ring_write(&r->p, 1, body, sizeof body)); /* tail 24 */
    atomic_store(&r->desc.tail, CAP - 4); /* hostile, unaligned */
    atomic_store(&r->desc.head, 24);
    for (int i = 0; i < 64; i++) {
        ph_ring_write(&r->p, 1, body, sizeof body);
        atomic_store(&r->desc.head, r->p.tail); /* consumer keeps up */
    }
    assert_int_equal(r->p.tail & 7u, 0);
    for (uint32_t k = CAP; k < sizeof r->data; k++) assert_int_equal(r->data[k], 0xa5);
    free(r);
}

static void ring_used_clamps_to_capacity(void **state)
{
    (void)state;
    struct ring *r = ring_new(CAP);
    assert_int_equal(ph_ring_used(&r->desc, CAP), 0);
    atomic_store(&r->desc.tail, 100);
    assert_int_equal(ph_ring_used(&r->desc, CAP), 100);
    atomic_store(&r->desc.tail, 10ull * CAP);
    assert_int_equal(ph_ring_used(&r->desc, CAP), CAP);
    atomic_store(&r->desc.head, 20ull * CAP); /* head past tail: bounded too */
    assert_true(ph_ring_used(&r->desc, CAP) <= CAP);
    atomic_store(&r->desc.head, 10ull * CAP - 40);
    assert_int_equal(ph_ring_used(&r->desc, CAP), 40);
    free(r);
}

static void ring_capacity_valid_accepts_only_powers_of_two_in_range(void **state)
{
    (void)state;
    assert_true(ph_ring_capacity_valid(PH_RING_MIN_CAPACITY));
    assert_true(ph_ring_capacity_valid(4096));
    assert_true(ph_ring_capacity_valid(PH_RING_MAX_CAPACITY));
    assert_false(ph_ring_capacity_valid(0));
    assert_false(ph_ring_capacity_valid(PH_RING_MIN_CAPACITY / 2));
    assert_false(ph_ring_capacity_valid(PH_RING_MAX_CAPACITY * 2ull));
    assert_false(ph_ring_capacity_valid(384));
    assert_false(ph_ring_capacity_valid(4097));
    assert_false(ph_ring_capacity_valid(1ull << 40));
}

static void ring_reset_zeroes_positions_and_counters(void **state)
{
    (void)state;
    struct ring *r = ring_new(CAP);
    struct log *l = log_new();
    assert_true(ph_ring_write(&r->p, 1, "ab", 2));
    assert_null(ph_ring_claim(&r->p, 1, CAP));
    assert_int_equal(drain(r, l, 0), 1);
    ph_ring_reset(&r->desc);
    assert_int_equal(load(&r->desc.tail), 0);
    assert_int_equal(load(&r->desc.head), 0);
    assert_int_equal(load(&r->desc.published), 0);
    assert_int_equal(load(&r->desc.consumed), 0);
    assert_int_equal(load(&r->desc.overflows), 0);
    free(l);
    free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ring_round_trip_delivers_type_length_and_bytes),
        cmocka_unit_test(ring_claimed_records_are_invisible_until_publish),
        cmocka_unit_test(ring_wraps_with_padding_record),
        cmocka_unit_test(ring_wraps_many_laps_with_varying_sizes_and_exact_contents),
        cmocka_unit_test(ring_full_returns_null_and_counts_overflows_exactly),
        cmocka_unit_test(ring_space_returns_after_drain),
        cmocka_unit_test(ring_refuses_record_larger_than_half_capacity),
        cmocka_unit_test(ring_refuses_padding_type_from_producer),
        cmocka_unit_test(ring_drain_honours_max_records),
        cmocka_unit_test(ring_consumer_rejects_tail_beyond_capacity),
        cmocka_unit_test(ring_consumer_rejects_unaligned_tail),
        cmocka_unit_test(ring_consumer_rejects_header_len_below_header_size),
        cmocka_unit_test(ring_consumer_rejects_len_running_past_tail),
        cmocka_unit_test(ring_consumer_rejects_padding_not_filling_rest_of_area),
        cmocka_unit_test(ring_consumer_rejects_record_longer_than_max_record),
        cmocka_unit_test(ring_consumer_rejects_record_straddling_end_of_area),
        cmocka_unit_test(ring_corrupt_record_after_good_ones_consumes_only_the_good),
        cmocka_unit_test(ring_handler_error_stops_drain),
        cmocka_unit_test(ring_consumer_init_rejects_inconsistent_head_and_tail),
        cmocka_unit_test(ring_consumer_init_resumes_at_shared_head),
        cmocka_unit_test(ring_handler_sees_the_position_just_past_its_record),
        cmocka_unit_test(ring_commit_to_hands_back_only_the_space_before_the_position),
        cmocka_unit_test(ring_producer_init_resumes_at_shared_tail),
        cmocka_unit_test(ring_producer_treats_head_beyond_tail_as_full),
        cmocka_unit_test(item08_producer_init_refuses_corrupt_positions),
        cmocka_unit_test(item08_producer_never_rereads_the_shared_tail),
        cmocka_unit_test(ring_used_clamps_to_capacity),
        cmocka_unit_test(ring_capacity_valid_accepts_only_powers_of_two_in_range),
        cmocka_unit_test(ring_reset_zeroes_positions_and_counters),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
