/* Single-producer single-consumer byte ring living in shared memory.
 *
 * Layout: a descriptor (two cache lines: producer-written, consumer-written)
 * and a data area of `capacity` bytes, a power of two. The producer appends
 * 8-byte-aligned records, each with an 8-byte header, then publishes them by
 * a release store of `tail`; the consumer acquires `tail`, reads, and
 * returns the space with a release store of `head`. Positions are 64-bit
 * byte counters that never wrap in practice.
 *
 * Because a record becomes visible only when `tail` moves past it, a
 * producer killed in the middle of a write leaves nothing half-visible: the
 * consumer never waits on it and never sees a torn record.
 *
 * The consumer treats the whole ring as untrusted input: `tail`, every
 * header and every length are checked against the bounds before use, and
 * record bodies are copied out before they are handed on, so a producer that
 * scribbles over published records cannot make the consumer read out of
 * bounds. A failed check returns PH_ERR_CORRUPT; the caller quarantines the
 * ring and never reads it again.
 *
 * A record that does not fit is dropped and counted in `overflows`; records
 * carry absolute state, so the next record repairs the loss. */
#ifndef PH_RING_H
#define PH_RING_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "ph/common.h"

#ifdef __cplusplus
extern "C" {
#endif

#define PH_RING_ALIGN 8u
#define PH_RING_HDR 8u
#define PH_RING_MIN_CAPACITY 256u
#define PH_RING_MAX_CAPACITY (1u << 24)
/* Record type 0 is padding that fills the end of the data area when the next
 * record would not fit before the wrap. */
#define PH_RING_PAD 0u

/* Shared descriptor. Field owners are fixed: a process writes only the line
 * it owns, so the two sides never write the same cache line. */
struct ph_ring_desc {
    /* producer line */
    alignas(64) _Atomic uint64_t tail; /* bytes published */
    _Atomic uint64_t published;        /* records published (statistics) */
    _Atomic uint64_t overflows;        /* records dropped for lack of space */
    /* consumer line */
    alignas(64) _Atomic uint64_t head; /* bytes consumed */
    _Atomic uint64_t consumed;         /* records consumed (statistics) */
};

/* Record header as stored in the data area (little-endian host order). */
struct ph_ring_rec {
    uint32_t len;  /* header + body, unaligned */
    uint16_t type; /* PH_RING_PAD or a record type of the layer above */
    uint16_t flags;
};

/* Producer handle: process-local, owned by the producing process. */
typedef struct ph_ring_producer {
    struct ph_ring_desc *desc;
    uint8_t *data;
    uint32_t capacity;
    uint32_t max_record; /* largest header+body accepted: capacity / 2; 0 when broken */
    uint64_t tail;       /* next write position, published or not; never re-read */
    uint64_t head_cache; /* last head seen; refreshed only when short of space */
    uint64_t published;
    uint64_t overflows;
} ph_ring_producer;

/* Consumer handle: process-local. `head` (how far it has read) and
 * `committed` (how far it has handed space back) are the consumer's own,
 * trusted copies; committed <= head. */
typedef struct ph_ring_consumer {
    struct ph_ring_desc *desc;
    const uint8_t *data;
    uint32_t capacity;
    uint32_t max_record;
    uint64_t head;
    uint64_t committed;
    uint64_t consumed; /* records read */
} ph_ring_consumer;

/* Zeroes a descriptor; only for a ring no process uses yet. */
void ph_ring_reset(struct ph_ring_desc *desc);
bool ph_ring_capacity_valid(uint64_t capacity);

/* Attaches a producer to a ring, resuming at its current tail. The
 * positions come from shared memory, which the consumer side (any process
 * mapping it read-write) can scribble on, so they are validated as
 * ph_ring_consumer_init() validates its side: PH_ERR_CORRUPT when tail is
 * not 8-aligned, head is beyond tail, or tail is more than a ring ahead of
 * head. A producer whose init failed refuses every record (each refusal is
 * counted); the caller must treat the ring as broken. After a successful
 * init the producer's tail is its own trusted copy: the shared tail is
 * never read again, only written. */
int ph_ring_producer_init(ph_ring_producer *p, struct ph_ring_desc *desc, void *data,
                          uint32_t capacity);
/* Reserves room for one record of `body_len` bytes and returns where its body
 * goes (8-byte aligned), or NULL when the ring is full (the drop is counted).
 * Nothing is visible to the consumer until ph_ring_publish(). */
void *ph_ring_claim(ph_ring_producer *p, uint16_t type, uint32_t body_len);
/* True when a record of `body_len` bytes would fit now; counts nothing.
 * For retrying records that wait for room without inflating overflows. */
bool ph_ring_fits(ph_ring_producer *p, uint32_t body_len);
/* Checks the consumer's position as the producer sees it: PH_ERR_CORRUPT
 * when no consumer could have written it (misaligned, ahead of what was
 * written, further behind than the ring holds). A producer finding its ring
 * full asks this before waiting: a corrupt position would leave it waiting
 * for ever. */
int ph_ring_producer_check(ph_ring_producer *p);
/* Makes every claimed record visible to the consumer. */
void ph_ring_publish(ph_ring_producer *p);
/* claim + copy + publish; false when dropped. */
bool ph_ring_write(ph_ring_producer *p, uint16_t type, const void *body, uint32_t body_len);
/* Bytes published but not yet consumed, as seen by the producer. */
uint64_t ph_ring_producer_used(const ph_ring_producer *p);

/* Attaches a consumer, resuming at the ring's current head. Returns
 * PH_ERR_CORRUPT when head and tail are inconsistent. */
int ph_ring_consumer_init(ph_ring_consumer *c, struct ph_ring_desc *desc, const void *data,
                          uint32_t capacity);

/* Handler for one record; `body` is a private copy valid during the call.
 * A non-zero return stops the drain and is returned by ph_ring_drain().
 * While it runs, the consumer's `head` is the position just past its record
 * (a record boundary): a consumer that hands space back record by record
 * (ph_ring_commit_to) notes it there. */
typedef int (*ph_ring_handler)(void *ctx, uint16_t type, const uint8_t *body, uint32_t len);

/* Consumes up to `max_records` records (0: all available), calling `fn` for
 * each non-padding record. `scratch` must hold c->max_record bytes. Returns
 * the number of records consumed, PH_ERR_CORRUPT on a validation failure
 * (the ring must then be abandoned), or a handler's non-zero result. */
int ph_ring_drain(ph_ring_consumer *c, ph_ring_handler fn, void *ctx, uint8_t *scratch,
                  uint32_t max_records);
/* As ph_ring_drain(), but the space read is not handed back to the
 * producer (nor the records counted as consumed by it) until
 * ph_ring_commit(). A consumer that must record what it read before the
 * producer may treat it as delivered (the controller journals signals
 * before the bridge acknowledges them to the broker) holds the commit
 * until then. A later drain continues after the records already read. */
int ph_ring_drain_held(ph_ring_consumer *c, ph_ring_handler fn, void *ctx, uint8_t *scratch,
                       uint32_t max_records);
/* Hands everything read so far back to the producer. */
void ph_ring_commit(ph_ring_consumer *c);
/* Hands back only the space before `pos`: a consumer that may still need
 * the records after it (the bridge keeps a document in the ring until its
 * sink has it confirmed) keeps them, and a consumer attaching later starts
 * reading there. `pos` must be a record boundary this consumer has seen (a
 * value its `head` had) between what it handed back and what it read:
 * PH_ERR_INVAL, and nothing changes, when it is not 8-aligned or outside
 * [committed, head]. The shared `consumed` statistic counts the records
 * read, held ones included. */
int ph_ring_commit_to(ph_ring_consumer *c, uint64_t pos);
/* True when records are waiting (one acquire load). */
bool ph_ring_pending(const ph_ring_consumer *c);

/* Non-consuming snapshot for tools: bytes in use as head/tail say, bounded. */
uint64_t ph_ring_used(const struct ph_ring_desc *desc, uint32_t capacity);

#ifdef __cplusplus
}
#endif
#endif
