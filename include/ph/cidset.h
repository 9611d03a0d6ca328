/* A bounded set of correlation ids: the last `cap` ids added, oldest
 * forgotten first.
 *
 * Delivery is at least once, and each attempt (correlationId) must get
 * exactly one outcome. Two processes keep one:
 *   - the controller, of the signals it has taken in: a broker redelivers a
 *     signal whose acknowledgement it never saw, and a bridge re-forwards
 *     what a restarted controller had not consumed; a repeat is dropped;
 *   - the bridge, of the outcomes it has handed to its sink: a restarted
 *     controller sends again the outcomes its journal cannot show delivered,
 *     and the bridge drops those it already published.
 *
 * A FIFO ring of owned strings plus an open-addressing index (linear
 * probing, backward-shift deletion): membership, insertion and eviction are
 * O(1). */
#ifndef PH_CIDSET_H
#define PH_CIDSET_H

#include <stdbool.h>
#include <stdint.h>

struct ph_cidset {
    uint32_t cap;    /* ids remembered */
    uint32_t n;      /* ids held */
    uint32_t next;   /* ring position of the next insertion */
    char **ring;     /* cap entries, NULL when empty */
    uint32_t *index; /* mask+1 buckets: ring position + 1, 0 = empty */
    uint32_t mask;
};

/* 0 on success, -1 when out of memory. */
int ph_cidset_init(struct ph_cidset *s, uint32_t cap);
void ph_cidset_free(struct ph_cidset *s);
bool ph_cidset_has(const struct ph_cidset *s, const char *cid);
/* Adds `cid` (copied); forgets the oldest id when full. Adding an id already
 * present does nothing. Returns false only when out of memory. */
bool ph_cidset_add(struct ph_cidset *s, const char *cid);

#endif
