/* SPSC byte ring in shared memory; the protocol is described in ph/ring.h.
 *
 * Memory-order summary:
 *   producer: record bytes (plain stores) -> tail (release)
 *   consumer: tail (acquire) -> record bytes (plain loads) -> head (release)
 *   producer: head (acquire) before reusing space
 * The release/acquire pair on `tail` makes the record bytes visible before the
 * consumer may look at them; the pair on `head` makes sure the consumer has
 * finished copying a record out before the producer overwrites its space. */
#include "ph/ring.h"

#include <string.h>

static inline uint64_t align_up(uint64_t v)
{
    return (v + (PH_RING_ALIGN - 1)) & ~(uint64_t)(PH_RING_ALIGN - 1);
}

bool ph_ring_capacity_valid(uint64_t capacity)
{
    return capacity >= PH_RING_MIN_CAPACITY && capacity <= PH_RING_MAX_CAPACITY &&
           (capacity & (capacity - 1)) == 0;
}

void ph_ring_reset(struct ph_ring_desc *d)
{
    /* Only called on a ring no process is using (a slot being claimed); the
     * release store that publishes the slot orders these. */
    atomic_store_explicit(&d->tail, 0, memory_order_relaxed);
    atomic_store_explicit(&d->published, 0, memory_order_relaxed);
    atomic_store_explicit(&d->overflows, 0, memory_order_relaxed);
    atomic_store_explicit(&d->head, 0, memory_order_relaxed);
    atomic_store_explicit(&d->consumed, 0, memory_order_relaxed);
}

int ph_ring_producer_init(ph_ring_producer *p, struct ph_ring_desc *desc, void *data,
                          uint32_t capacity)
{
    p->desc = desc;
    p->data = data;
    p->capacity = capacity;
    p->max_record = capacity / 2;
    /* The producer is the only writer of tail/published/overflows: relaxed
     * loads read back its own (or its predecessor's, ordered by the slot
     * claim) values. head needs acquire: see ph_ring_claim(). */
    p->tail = atomic_load_explicit(&desc->tail, memory_order_relaxed);
    p->published = atomic_load_explicit(&desc->published, memory_order_relaxed);
    p->overflows = atomic_load_explicit(&desc->overflows, memory_order_relaxed);
    p->head_cache = atomic_load_explicit(&desc->head, memory_order_acquire);
    /* The same checks as the consumer's: an unaligned tail would put a
     * padding record across the end of the data area, and a tail more than
     * a ring ahead of head (or behind it) is no state this protocol makes.
     * Unsigned subtraction folds "head beyond tail" into "> capacity". */
    if ((p->tail & (PH_RING_ALIGN - 1)) != 0 || p->tail - p->head_cache > capacity) {
        p->max_record = 0; /* refuse everything: see ph_ring_claim() */
        p->head_cache = p->tail;
        return PH_ERR_CORRUPT;
    }
    return PH_OK;
}

static inline void count_overflow(ph_ring_producer *p)
{
    /* Single writer: a plain increment of the local copy and a relaxed store
     * (statistics; nobody orders other data by it). */
    p->overflows++;
    atomic_store_explicit(&p->desc->overflows, p->overflows, memory_order_relaxed);
}

/* Ring bytes a record of `len` (header included) takes at the current
 * tail: a record never straddles the end of the data area, so when it does
 * not fit before the end a padding record fills the rest and it goes at 0. */
static uint64_t span_at_tail(const ph_ring_producer *p, uint32_t len)
{
    const uint64_t need = align_up(len);
    const uint32_t to_end = p->capacity - (uint32_t)(p->tail & (p->capacity - 1));
    return need <= to_end ? need : need + to_end;
}

void *ph_ring_claim(ph_ring_producer *p, uint16_t type, uint32_t body_len)
{
    /* 64-bit sum: max_record is 0 for a producer whose init failed. */
    if (type == PH_RING_PAD || (uint64_t)body_len + PH_RING_HDR > p->max_record) {
        count_overflow(p);
        return NULL;
    }
    const uint32_t len = PH_RING_HDR + body_len;
    const uint64_t need = align_up(len);
    const uint32_t offset = (uint32_t)(p->tail & (p->capacity - 1));
    const uint32_t to_end = p->capacity - offset;
    const uint64_t total = span_at_tail(p, len);

    /* P1_reserve (model labels: tests/model/README.md) */
    if (p->capacity - (p->tail - p->head_cache) < total) {
        /* P1_load_head. acquire: pairs with the consumer's release of head, so the space it
         * returns is no longer being read when we overwrite it. */
        p->head_cache = atomic_load_explicit(&p->desc->head, memory_order_acquire);
        uint64_t used = p->tail - p->head_cache;
        /* A head beyond our tail is nonsense (nobody but a broken consumer
         * writes it); treat the ring as full rather than trust it. */
        if (used > p->capacity || p->capacity - used < total) {
            if (used > p->capacity) p->head_cache = p->tail - p->capacity; /* stay full */
            count_overflow(p);
            return NULL;
        }
    }
    if (need > to_end) {
        struct ph_ring_rec pad = {.len = to_end, .type = PH_RING_PAD, .flags = 0};
        memcpy(p->data + offset, &pad, sizeof pad); /* P2_write_pad */
        p->tail += to_end;
    }
    uint8_t *rec = p->data + (p->tail & (p->capacity - 1));
    struct ph_ring_rec h = {.len = len, .type = type, .flags = 0};
    memcpy(rec, &h, sizeof h); /* P2_write_header */
    p->tail += need;
    p->published++;
    return rec + PH_RING_HDR;
}

bool ph_ring_fits(ph_ring_producer *p, uint32_t body_len)
{
    if ((uint64_t)body_len + PH_RING_HDR > p->max_record) return false;
    const uint64_t total = span_at_tail(p, PH_RING_HDR + body_len);
    /* acquire: as in ph_ring_claim(), the space must really be free. */
    p->head_cache = atomic_load_explicit(&p->desc->head, memory_order_acquire);
    const uint64_t used = p->tail - p->head_cache;
    if (used > p->capacity) {
        p->head_cache = p->tail - p->capacity; /* nonsense head: stay full */
        return false;
    }
    return p->capacity - used >= total;
}

int ph_ring_producer_check(ph_ring_producer *p)
{
    /* acquire: as in ph_ring_claim(); here to judge the position. */
    const uint64_t head = atomic_load_explicit(&p->desc->head, memory_order_acquire);
    if ((head & (PH_RING_ALIGN - 1)) != 0 || head > p->tail || p->tail - head > p->capacity)
        return PH_ERR_CORRUPT;
    return PH_OK;
}

void ph_ring_publish(ph_ring_producer *p)
{
    /* P4_publish_tail. release: every record byte written before this
     * store is visible to a consumer that acquires the new tail. */
    atomic_store_explicit(&p->desc->tail, p->tail, memory_order_release);
    /* Statistics only: relaxed. */
    atomic_store_explicit(&p->desc->published, p->published, memory_order_relaxed);
}

bool ph_ring_write(ph_ring_producer *p, uint16_t type, const void *body, uint32_t body_len)
{
    void *dst = ph_ring_claim(p, type, body_len);
    if (dst == NULL) return false;
    if (body_len != 0) memcpy(dst, body, body_len); /* P3_write_body */
    ph_ring_publish(p);
    return true;
}

uint64_t ph_ring_producer_used(const ph_ring_producer *p)
{
    /* acquire: same reason as in ph_ring_claim(); a fresh view for callers. */
    uint64_t head = atomic_load_explicit(&p->desc->head, memory_order_acquire);
    uint64_t used = p->tail - head;
    return used > p->capacity ? p->capacity : used;
}

int ph_ring_consumer_init(ph_ring_consumer *c, struct ph_ring_desc *desc, const void *data,
                          uint32_t capacity)
{
    c->desc = desc;
    c->data = data;
    c->capacity = capacity;
    c->max_record = capacity / 2;
    /* C0_attach. relaxed: head is ours (or a predecessor consumer's,
     * ordered by the segment adoption); the check against tail happens in
     * drain. */
    c->head = atomic_load_explicit(&desc->head, memory_order_relaxed);
    c->committed = c->head;
    c->consumed = atomic_load_explicit(&desc->consumed, memory_order_relaxed);
    if ((c->head & (PH_RING_ALIGN - 1)) != 0) return PH_ERR_CORRUPT;
    uint64_t tail = atomic_load_explicit(&desc->tail, memory_order_acquire);
    if (tail - c->head > capacity) return PH_ERR_CORRUPT;
    return PH_OK;
}

bool ph_ring_pending(const ph_ring_consumer *c)
{
    /* acquire: a caller that sees pending data goes on to read it. */
    return atomic_load_explicit(&c->desc->tail, memory_order_acquire) != c->head;
}

static int drain(ph_ring_consumer *c, ph_ring_handler fn, void *ctx, uint8_t *scratch,
                 uint32_t max_records, bool commit)
{
    /* C1_load_tail. acquire: pairs with the producer's release in
     * ph_ring_publish(); the bytes of every record before `tail` are
     * visible after this load. */
    const uint64_t tail = atomic_load_explicit(&c->desc->tail, memory_order_acquire);
    const uint64_t avail = tail - c->head;
    if (avail == 0) return 0;
    /* An untrusted producer could publish any value: positions must be
     * aligned and no further ahead than the ring holds. */
    if (avail > c->capacity || (tail & (PH_RING_ALIGN - 1)) != 0) return PH_ERR_CORRUPT;

    int count = 0;
    int rc = 0;
    const uint64_t start = c->head;
    uint64_t head = c->head;
    while (head != tail && (max_records == 0 || (uint32_t)count < max_records)) {
        const uint32_t offset = (uint32_t)(head & (c->capacity - 1));
        const uint32_t to_end = c->capacity - offset;
        struct ph_ring_rec h;
        /* Copy the header once; every later decision uses this copy, so a
         * producer rewriting it concurrently cannot change them. */
        memcpy(&h, c->data + offset, sizeof h); /* C2_read_header */
        const uint64_t adv = align_up(h.len);
        /* C3_check_bounds */
        if (h.len < PH_RING_HDR || adv > tail - head || adv > to_end) {
            rc = PH_ERR_CORRUPT;
            break;
        }
        if (h.type == PH_RING_PAD) {
            /* Padding only ever fills the rest of the data area. */
            if (h.len != to_end) {
                rc = PH_ERR_CORRUPT;
                break;
            }
            head += adv;
            c->head = head;
            continue;
        }
        if (h.len > c->max_record) {
            rc = PH_ERR_CORRUPT;
            break;
        }
        const uint32_t body_len = h.len - PH_RING_HDR;
        memcpy(scratch, c->data + offset + PH_RING_HDR, body_len); /* C4_read_body */
        head += adv;
        /* Past the record before the handler runs: it may note the
         * position (see ph_ring_handler). */
        c->head = head;
        c->consumed++;
        count++;
        rc = fn(ctx, h.type, scratch, body_len);
        if (rc != 0) break;
    }
    if (commit && c->head != start) ph_ring_commit(c);
    return rc != 0 ? rc : count;
}

int ph_ring_drain(ph_ring_consumer *c, ph_ring_handler fn, void *ctx, uint8_t *scratch,
                  uint32_t max_records)
{
    return drain(c, fn, ctx, scratch, max_records, true);
}

int ph_ring_drain_held(ph_ring_consumer *c, ph_ring_handler fn, void *ctx, uint8_t *scratch,
                       uint32_t max_records)
{
    return drain(c, fn, ctx, scratch, max_records, false);
}

static void store_head(ph_ring_consumer *c, uint64_t pos)
{
    c->committed = pos;
    /* C5_store_head. release: our copies of the records are complete (and,
     * for a held drain, recorded wherever the caller needed) before the
     * producer can observe the space as free (it acquires head). */
    atomic_store_explicit(&c->desc->head, pos, memory_order_release);
    /* Statistics only: relaxed. */
    atomic_store_explicit(&c->desc->consumed, c->consumed, memory_order_relaxed);
}

void ph_ring_commit(ph_ring_consumer *c)
{
    store_head(c, c->head);
}

int ph_ring_commit_to(ph_ring_consumer *c, uint64_t pos)
{
    /* Both bounds are our own copies, never re-read from shared memory. */
    if ((pos & (PH_RING_ALIGN - 1)) != 0 || pos < c->committed || pos > c->head)
        return PH_ERR_INVAL;
    if (pos != c->committed) store_head(c, pos);
    return PH_OK;
}

uint64_t ph_ring_used(const struct ph_ring_desc *desc, uint32_t capacity)
{
    /* Tools read both positions relaxed: a momentary figure, not a basis for
     * reading data. Bounded because the segment is untrusted. */
    uint64_t head = atomic_load_explicit(&desc->head, memory_order_relaxed);
    uint64_t tail = atomic_load_explicit(&desc->tail, memory_order_relaxed);
    uint64_t used = tail - head;
    return used > capacity ? capacity : used;
}
