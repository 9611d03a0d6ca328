/* The swarm's desired worker configuration: every config patch in force,
 * with the scope it was addressed to, in the order it was accepted.
 *
 * A worker that (re)joins must be brought to the swarm's current state: a
 * worker restarted by the supervisor starts from its swarm-file config,
 * disabled, and would otherwise stay so while the swarm is RUNNING. The
 * controller records here what lifecycle signals (swarm-start/stop: the
 * `enabled` flag for every worker) and config-updates asked for, and sends
 * a joining worker the fold of the entries whose scope covers it.
 *
 * Entries are kept minimal: when a patch is accepted, its keys are removed
 * from earlier entries whose scope it covers (a swarm-wide patch covers all,
 * a role patch covers that role and its instances, an instance patch covers
 * that instance), and entries left empty are dropped. So the list holds at
 * most one value per key and scope, and folding it in order gives the value
 * the latest applicable patch set. */
#ifndef PH_DESIRED_H
#define PH_DESIRED_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "ph/common.h"

#define DESIRED_MAX_ENTRIES 512

struct desired_entry {
    char role[PH_ID_MAX];     /* "" = every role */
    char instance[PH_ID_MAX]; /* "" = every instance (of `role` when set) */
    json_t *patch;            /* a JSON object, owned */
};

struct desired {
    struct desired_entry e[DESIRED_MAX_ENTRIES];
    uint32_t n;
};

void desired_init(struct desired *d);
void desired_clear(struct desired *d);
/* Records `patch` (an object, copied) for the scope (role, instance), each
 * "" or NULL for any. Returns false when the table is full (the patch is
 * then not recorded). */
bool desired_apply(struct desired *d, const char *role, const char *instance, const json_t *patch);
/* The configuration a worker of (role, instance) should have: a new object,
 * or NULL when nothing was ever asked of it. */
json_t *desired_for(const struct desired *d, const char *role, const char *instance);
/* [{role?, instance?, patch}] for the journal, and back. desired_from_json
 * skips malformed entries and returns how many it took. */
json_t *desired_to_json(const struct desired *d);
uint32_t desired_from_json(struct desired *d, const json_t *list);

#endif
