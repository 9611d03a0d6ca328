/* The orchestrator's projection of the swarms, built from swarm-controller
 * aggregates only (CONTRACT §7): a controller status-delta or status-full
 * registers its swarm and refreshes it; the worker list comes from the
 * latest controller status-full; outcomes are kept by correlationId for
 * the API. Never fed per-worker status.
 *
 * Time is passed in: health (no controller status for 20 s -> degraded,
 * 40 s -> failed), throttling and eviction are unit-testable on a
 * simulated clock, like the controller's rules. */
#ifndef PH_ORCH_REGISTRY_H
#define PH_ORCH_REGISTRY_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "ph/common.h"

#define REG_MAX_SWARMS 4096
#define REG_MAX_OUTCOMES 4096

enum reg_health { REG_HEALTHY, REG_DEGRADED, REG_FAILED };
const char *reg_health_name(enum reg_health h);

struct reg_swarm {
    char id[PH_ID_MAX];
    char controller[PH_ID_MAX]; /* the controller's instance (scope.instance) */
    uint64_t first_seen_ns;
    uint64_t last_status_ns;    /* any controller status: the heartbeat */
    uint64_t last_full_ns;      /* 0: no status-full yet */
    uint64_t full_requested_ns; /* when a status-request was last asked for it */
    json_t *delta;              /* latest controller data (delta or full), owned */
    json_t *full;               /* latest controller status-full data, owned, or NULL */
    char last_status_at[32];    /* RFC 3339 of the envelope's timestamp */
    char last_full_at[32];      /* the same for the latest status-full, or "" */
};

struct reg_outcome {
    char cid[256];
    char swarm[PH_ID_MAX];
    uint64_t at_ns;
    json_t *env; /* the outcome envelope, owned; NULL while only issued */
    bool issued; /* published by this orchestrator */
};

struct reg_cfg {
    uint64_t degraded_after_ns; /* default 20 s */
    uint64_t failed_after_ns;   /* default 40 s */
    uint64_t refetch_after_ns;  /* ask again for a missing full after this (default 10 s) */
};

struct registry {
    struct reg_cfg cfg;
    struct reg_swarm *s; /* array of n, sorted by id */
    uint32_t n, cap;
    struct reg_outcome *out; /* ring of REG_MAX_OUTCOMES */
    uint32_t out_next;
    uint64_t resets;
    uint64_t docs, ignored;
};

void reg_cfg_defaults(struct reg_cfg *c);
int reg_init(struct registry *r, const struct reg_cfg *cfg);
void reg_free(struct registry *r);

/* What feeding an envelope asks the caller to do. */
struct reg_effect {
    bool request_full;           /* ask the swarm's controller for a status-full */
    char swarm[PH_ID_MAX];
    char controller[PH_ID_MAX];
    bool removed;                /* the swarm left the registry */
};

/* One envelope from the broker, with its routing key. Controller status
 * (metric, role swarm-controller) and outcomes are taken; everything else
 * is ignored (false). */
bool reg_feed(struct registry *r, const char *rk, const json_t *env, uint64_t now_ns,
              struct reg_effect *eff);

/* Forgets every swarm (a reset): the registry is rebuilt from the
 * status-full replies that follow. */
void reg_reset(struct registry *r);

struct reg_swarm *reg_find(struct registry *r, const char *id);
enum reg_health reg_health(const struct registry *r, const struct reg_swarm *s, uint64_t now_ns);
/* Swarms known but without a status-full yet, or whose full is older than
 * refetch_after and whose request is older too: the caller asks again.
 * Fills up to max ids; returns how many. */
uint32_t reg_wanting_full(struct registry *r, uint64_t now_ns, char (*ids)[PH_ID_MAX],
                          char (*ctl)[PH_ID_MAX], uint32_t max);
void reg_full_requested(struct registry *r, const char *id, uint64_t now_ns);

/* The API's view of one swarm (a new object). */
json_t *reg_swarm_json(const struct registry *r, const struct reg_swarm *s, uint64_t now_ns,
                       uint64_t real_now_ns);

/* Outcomes: an id this orchestrator issued, and the lookup. */
void reg_issued(struct registry *r, const char *cid, const char *swarm, uint64_t now_ns);
/* The outcome record for cid, or NULL when unknown. */
const struct reg_outcome *reg_outcome(const struct registry *r, const char *cid);

#endif
