/* A bounded set of correlation ids the controller has already taken in.
 *
 * Delivery is at least once: a broker redelivers a signal whose
 * acknowledgement it never saw (a crash, a reconnect), and a bridge
 * re-forwards what a restarted controller had not consumed. Each attempt
 * (correlationId) must get exactly one outcome, so a signal whose id is in
 * this set is a repeat of an attempt already taken in and is dropped.
 *
 * The set remembers the last `cap` ids (oldest forgotten first): a FIFO
 * ring of owned strings plus an open-addressing index (linear probing,
 * backward-shift deletion), so membership, insertion and eviction are O(1). */
#ifndef PH_CIDSET_H
#define PH_CIDSET_H

#include <stdbool.h>
#include <stdint.h>

struct cidset {
    uint32_t cap;     /* ids remembered */
    uint32_t n;       /* ids held */
    uint32_t next;    /* ring position of the next insertion */
    char **ring;      /* cap entries, NULL when empty */
    uint32_t *index;  /* mask+1 buckets: ring position + 1, 0 = empty */
    uint32_t mask;
};

/* 0 on success, -1 when out of memory. */
int cidset_init(struct cidset *s, uint32_t cap);
void cidset_free(struct cidset *s);
bool cidset_has(const struct cidset *s, const char *cid);
/* Adds `cid` (copied); forgets the oldest id when full. Adding an id already
 * present does nothing. Returns false only when out of memory. */
bool cidset_add(struct cidset *s, const char *cid);

#endif
