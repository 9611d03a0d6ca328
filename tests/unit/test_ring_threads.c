/* Producer threads, each with its own ring, and one consumer thread draining
 * all the rings in turn (as the controller drains its workers' status
 * rings): millions of records of varying sizes, every byte verified.
 *
 * This is the test that runs under ThreadSanitizer to check the ring's memory
 * orders: the record bytes are plain stores and loads, ordered only by the
 * release/acquire pairs on `tail` and `head`. A missing or too-weak ordering
 * shows up as a TSan data race report (or, on weaker hardware, as a record
 * that fails its checksum).
 *
 * Accounting checked at the end, per ring: every sequence number was either
 * consumed exactly once or dropped (ring full) exactly once, never both;
 * consumed + overflows == written; the shared counters agree.
 *
 *   test_ring_threads [--records N] [--capacity BYTES] [--seed S] [--producers P]
 *   (N records in all, shared out among the P producers)
 */
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ph/ring.h"

#define MAX_PRODUCERS 16

static uint64_t n_records = 20000000;
static uint32_t capacity = 4096;
static uint64_t seed = 1;
static unsigned n_producers = 1;

/* One ring and its producer's and consumer's bookkeeping. */
struct lane {
    struct ph_ring_desc desc;
    uint8_t *data;
    ph_ring_producer prod;
    ph_ring_consumer cons;
    _Atomic int producer_done;
    uint64_t n_records;
    uint64_t seed;
    uint8_t *dropped;  /* bitmap, producer only */
    uint8_t *consumed; /* bitmap, consumer only */
    uint64_t n_dropped;
    uint64_t n_consumed;
    int64_t last_seq; /* consumer only */
};
static struct lane lanes[MAX_PRODUCERS];

static uint64_t n_bad; /* consumer only */
static uint64_t n_empty_polls;
static char first_error[256];

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

/* Body length of record `seq`: mostly small, sometimes large, always >= 12. */
static uint32_t body_len(uint64_t seq, uint64_t lane_seed)
{
    uint64_t h = mix(seq ^ lane_seed);
    if (h % 997 == 0) return 12 + (uint32_t)(h >> 20) % (capacity / 2 - 8 - 12 + 1);
    return 12 + (uint32_t)(h >> 16) % 181;
}

static uint16_t rec_type(uint64_t seq)
{
    return (uint16_t)(1 + seq % 4093);
}

static uint32_t fnv(const uint8_t *p, uint32_t n)
{
    uint32_t h = 2166136261u;
    for (uint32_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 16777619u;
    return h;
}

/* Layout: seq (8 bytes) | pattern | fnv of everything before (4 bytes). */
static void fill(uint8_t *b, uint64_t seq, uint32_t len)
{
    memcpy(b, &seq, 8);
    uint64_t x = mix(seq + 0x9e3779b97f4a7c15ull);
    for (uint32_t k = 8; k < len - 4; k++)
        b[k] = (uint8_t)(x >> ((k & 7) * 8)) ^ (uint8_t)k;
    uint32_t h = fnv(b, len - 4);
    memcpy(b + len - 4, &h, 4);
}

static void bit_set(uint8_t *bm, uint64_t i)
{
    bm[i >> 3] |= (uint8_t)(1u << (i & 7));
}

static int bit_get(const uint8_t *bm, uint64_t i)
{
    return (bm[i >> 3] >> (i & 7)) & 1;
}

static void *producer(void *arg)
{
    struct lane *l = arg;
    ph_ring_producer *prod = &l->prod;
    uint64_t rng = l->seed * 7919 + 1;
    uint64_t seq = 0;
    uint64_t drops_in_row = 0;
    while (seq < l->n_records) {
        rng = mix(rng + 1);
        /* Batches of 1..8 claims published together, or single writes. */
        unsigned batch = 1 + (unsigned)(rng % 8);
        if (rng % 5 == 0) {
            uint8_t tmp[PH_RING_MAX_CAPACITY / 1024];
            uint32_t len = body_len(seq, l->seed);
            if (len <= sizeof tmp) {
                fill(tmp, seq, len);
                if (ph_ring_write(prod, rec_type(seq), tmp, len)) {
                    drops_in_row = 0;
                } else {
                    bit_set(l->dropped, seq);
                    l->n_dropped++;
                    drops_in_row++;
                }
                seq++;
                continue;
            }
        }
        unsigned claimed = 0;
        for (unsigned b = 0; b < batch && seq < l->n_records; b++, seq++) {
            uint32_t len = body_len(seq, l->seed);
            uint8_t *dst = ph_ring_claim(prod, rec_type(seq), len);
            if (dst == NULL) {
                bit_set(l->dropped, seq);
                l->n_dropped++;
                drops_in_row++;
                continue;
            }
            fill(dst, seq, len);
            claimed++;
            drops_in_row = 0;
        }
        if (claimed) ph_ring_publish(prod);
        /* A producer that never lets up would turn the test into an
         * overflow counter; yielding now and then keeps both paths busy. */
        if (drops_in_row > 16) {
            sched_yield();
            drops_in_row = 0;
        }
    }
    /* release: the consumer, seeing done, has every published record. */
    atomic_store_explicit(&l->producer_done, 1, memory_order_release);
    return NULL;
}

/* Counts a bad record and keeps the first description. */
#define BAD(...)                                                                                   \
    do {                                                                                           \
        if (n_bad++ == 0) snprintf(first_error, sizeof first_error, __VA_ARGS__);                  \
    } while (0)

static int check_record(void *ctx, uint16_t type, const uint8_t *body, uint32_t len)
{
    struct lane *c = ctx;
    if (len < 12) {
        BAD("record of %" PRIu32 " bytes (min 12) after seq %" PRId64, len, c->last_seq);
        return 0;
    }
    uint64_t seq;
    memcpy(&seq, body, 8);
    if (seq >= c->n_records || (int64_t)seq <= c->last_seq) {
        BAD("seq %" PRIu64 " after %" PRId64 " (not increasing or out of range)", seq, c->last_seq);
        return 0;
    }
    c->last_seq = (int64_t)seq;
    if (type != rec_type(seq)) BAD("seq %" PRIu64 ": wrong type %u", seq, (unsigned)type);
    if (len != body_len(seq, c->seed)) BAD("seq %" PRIu64 ": wrong length %" PRIu32, seq, len);
    uint32_t h;
    memcpy(&h, body + len - 4, 4);
    if (h != fnv(body, len - 4))
        BAD("seq %" PRIu64 ": checksum mismatch (len %" PRIu32 ")", seq, len);
    uint8_t expect[PH_RING_MAX_CAPACITY / 1024];
    if (len <= sizeof expect) {
        fill(expect, seq, len);
        if (memcmp(expect, body, len) != 0)
            BAD("seq %" PRIu64 ": body differs (len %" PRIu32 ")", seq, len);
    }
    bit_set(c->consumed, seq);
    c->n_consumed++;
    return 0;
}

static void *consumer(void *arg)
{
    (void)arg;
    uint8_t *scratch = malloc(capacity / 2);
    uint64_t rng = seed * 104729 + 3;
    bool finished[MAX_PRODUCERS] = {false};
    unsigned n_finished = 0;
    if (scratch == NULL) {
        BAD("out of memory");
        return NULL;
    }
    /* The rings in turn, as the controller's scan drains its slots. */
    for (unsigned i = 0; n_finished < n_producers; i = (i + 1) % n_producers) {
        if (finished[i]) continue;
        struct lane *l = &lanes[i];
        /* acquire: pairs with the producer's release of `producer_done`. */
        int done = atomic_load_explicit(&l->producer_done, memory_order_acquire);
        rng = mix(rng + 1);
        uint32_t max = rng % 3 == 0 ? 0 : 1 + (uint32_t)(rng % 16);
        int n = ph_ring_drain(&l->cons, check_record, l, scratch, max);
        if (n < 0) {
            BAD("ring %u: drain returned %d at head %" PRIu64, i, n, l->cons.head);
            break;
        }
        if (n == 0) {
            if (done && !ph_ring_pending(&l->cons)) {
                finished[i] = true;
                n_finished++;
                continue;
            }
            n_empty_polls++;
            if (n_empty_polls % 64 == 0) sched_yield();
        }
    }
    free(scratch);
    return NULL;
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--records") == 0 && i + 1 < argc)
            n_records = strtoull(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--capacity") == 0 && i + 1 < argc)
            capacity = (uint32_t)strtoul(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc)
            seed = strtoull(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--producers") == 0 && i + 1 < argc)
            n_producers = (unsigned)strtoul(argv[++i], NULL, 10);
        else {
            fprintf(stderr,
                    "usage: %s [--records N] [--capacity BYTES] [--seed S] [--producers 1..%d]\n",
                    argv[0], MAX_PRODUCERS);
            return 2;
        }
    }
    if (!ph_ring_capacity_valid(capacity) || capacity > PH_RING_MAX_CAPACITY / 512 ||
        n_producers == 0 || n_producers > MAX_PRODUCERS || n_records < n_producers) {
        fprintf(stderr,
                "capacity must be a power of two in %u..%u, producers in 1..%d, and records at "
                "least one per producer\n",
                PH_RING_MIN_CAPACITY, PH_RING_MAX_CAPACITY / 512, MAX_PRODUCERS);
        return 2;
    }
    for (unsigned i = 0; i < n_producers; i++) {
        struct lane *l = &lanes[i];
        l->n_records = n_records / n_producers + (i < n_records % n_producers ? 1 : 0);
        l->seed = seed + 7919ull * i;
        l->last_seq = -1;
        l->data = aligned_alloc(64, capacity);
        l->dropped = calloc(l->n_records / 8 + 1, 1);
        l->consumed = calloc(l->n_records / 8 + 1, 1);
        if (l->data == NULL || l->dropped == NULL || l->consumed == NULL) {
            fprintf(stderr, "out of memory\n");
            return 2;
        }
        memset(l->data, 0xee, capacity);
        ph_ring_reset(&l->desc);
        if (ph_ring_producer_init(&l->prod, &l->desc, l->data, capacity) != PH_OK) {
            fprintf(stderr, "FAIL: producer init on a fresh ring\n");
            return 1;
        }
        if (ph_ring_consumer_init(&l->cons, &l->desc, l->data, capacity) != PH_OK) {
            fprintf(stderr, "FAIL: consumer init on a fresh ring\n");
            return 1;
        }
    }

    uint64_t t0 = ph_mono_ns();
    pthread_t tp[MAX_PRODUCERS], tc;
    pthread_create(&tc, NULL, consumer, NULL);
    for (unsigned i = 0; i < n_producers; i++)
        pthread_create(&tp[i], NULL, producer, &lanes[i]);
    for (unsigned i = 0; i < n_producers; i++)
        pthread_join(tp[i], NULL);
    pthread_join(tc, NULL);
    double secs = (double)(ph_mono_ns() - t0) / 1e9;

    int fail = 0;
#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "FAIL: " __VA_ARGS__);                                                 \
            fputc('\n', stderr);                                                                   \
            fail = 1;                                                                              \
        }                                                                                          \
    } while (0)
    CHECK(n_bad == 0, "%" PRIu64 " bad records; first: %s", n_bad, first_error);
    uint64_t all_consumed = 0, all_dropped = 0;
    for (unsigned i = 0; i < n_producers; i++) {
        struct lane *l = &lanes[i];
        all_consumed += l->n_consumed;
        all_dropped += l->n_dropped;
        CHECK(l->n_consumed + l->n_dropped == l->n_records,
              "ring %u: consumed %" PRIu64 " + dropped %" PRIu64 " != written %" PRIu64, i,
              l->n_consumed, l->n_dropped, l->n_records);
        CHECK(atomic_load(&l->desc.overflows) == l->n_dropped && l->prod.overflows == l->n_dropped,
              "ring %u: overflow counters %" PRIu64 "/%" PRIu64 ", producer saw %" PRIu64 " drops",
              i, atomic_load(&l->desc.overflows), l->prod.overflows, l->n_dropped);
        CHECK(atomic_load(&l->desc.published) == l->n_records - l->n_dropped,
              "ring %u: published counter %" PRIu64 ", expected %" PRIu64, i,
              atomic_load(&l->desc.published), l->n_records - l->n_dropped);
        CHECK(atomic_load(&l->desc.consumed) == l->n_consumed,
              "ring %u: consumed counter %" PRIu64 ", consumer counted %" PRIu64, i,
              atomic_load(&l->desc.consumed), l->n_consumed);
        CHECK(atomic_load(&l->desc.head) == atomic_load(&l->desc.tail),
              "ring %u: not empty at the end", i);
        uint64_t both = 0, neither = 0;
        for (uint64_t s = 0; s < l->n_records; s++) {
            int d = bit_get(l->dropped, s), c = bit_get(l->consumed, s);
            if (d && c) both++;
            if (!d && !c) neither++;
        }
        CHECK(both == 0 && neither == 0,
              "ring %u: %" PRIu64 " records both dropped and consumed, %" PRIu64 " neither", i,
              both, neither);
        /* The consumer really freed space many times over: the producer
         * can only publish 16 capacities' worth through a ring the
         * consumer drains. (No share of records consumed is required: that
         * would depend on how the scheduler treats the threads on a busy
         * machine.) */
        CHECK(atomic_load(&l->desc.tail) > 16ull * capacity, "ring %u did not wrap", i);
    }

    printf("%s: %" PRIu64 " records from %u producers in %.2f s (%.1f M/s): %" PRIu64
           " consumed, %" PRIu64 " dropped (ring full), %u-byte rings\n",
           fail ? "FAIL" : "ok", n_records, n_producers, secs, (double)n_records / secs / 1e6,
           all_consumed, all_dropped, capacity);
    for (unsigned i = 0; i < n_producers; i++) {
        free(lanes[i].data);
        free(lanes[i].dropped);
        free(lanes[i].consumed);
    }
    return fail;
}
