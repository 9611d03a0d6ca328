/* Bounded set of correlation ids (ph/cidset.h). */
#include "ph/cidset.h"

#include <stdlib.h>
#include <string.h>

static uint32_t hash(const char *s)
{
    /* FNV-1a: ids are short strings chosen by senders; the index only needs
     * a spread, and a pathological sender costs itself probe length, not
     * correctness. */
    uint32_t h = 2166136261u;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

int ph_cidset_init(struct ph_cidset *s, uint32_t cap)
{
    memset(s, 0, sizeof *s);
    uint32_t buckets = 16;
    while (buckets < 2 * cap) buckets *= 2;
    s->cap = cap;
    s->mask = buckets - 1;
    s->ring = calloc(cap, sizeof *s->ring);
    s->index = calloc(buckets, sizeof *s->index);
    if (s->ring == NULL || s->index == NULL) {
        ph_cidset_free(s);
        return -1;
    }
    return 0;
}

void ph_cidset_free(struct ph_cidset *s)
{
    for (uint32_t i = 0; s->ring != NULL && i < s->cap; i++) free(s->ring[i]);
    free(s->ring);
    free(s->index);
    memset(s, 0, sizeof *s);
}

/* Bucket holding `cid`, or the empty bucket where it would go. */
static uint32_t find(const struct ph_cidset *s, const char *cid)
{
    uint32_t b = hash(cid) & s->mask;
    while (s->index[b] != 0 && strcmp(s->ring[s->index[b] - 1], cid) != 0) b = (b + 1) & s->mask;
    return b;
}

bool ph_cidset_has(const struct ph_cidset *s, const char *cid)
{
    return s->cap != 0 && s->index[find(s, cid)] != 0;
}

/* Removes bucket b and shifts later members of its probe run back, so that
 * every remaining id is still reachable from its home bucket. */
static void unindex(struct ph_cidset *s, uint32_t b)
{
    s->index[b] = 0;
    for (uint32_t i = (b + 1) & s->mask; s->index[i] != 0; i = (i + 1) & s->mask) {
        uint32_t home = hash(s->ring[s->index[i] - 1]) & s->mask;
        /* Move the entry at i into the hole at b when b lies on its probe
         * path (between home and i, cyclically). */
        bool movable = b <= i ? (home <= b || home > i) : (home <= b && home > i);
        if (movable) {
            s->index[b] = s->index[i];
            s->index[i] = 0;
            b = i;
        }
    }
}

bool ph_cidset_add(struct ph_cidset *s, const char *cid)
{
    if (s->cap == 0) return false;
    uint32_t b = find(s, cid);
    if (s->index[b] != 0) return true;
    char *copy = strdup(cid);
    if (copy == NULL) return false;
    if (s->ring[s->next] != NULL) {
        /* Full: forget the oldest id, which sits where the new one goes. */
        unindex(s, find(s, s->ring[s->next]));
        free(s->ring[s->next]);
        s->ring[s->next] = NULL;
        s->n--;
        b = find(s, cid); /* the shift may have moved the insertion point */
    }
    s->ring[s->next] = copy;
    s->index[b] = s->next + 1;
    s->next = (s->next + 1) % s->cap;
    s->n++;
    return true;
}
