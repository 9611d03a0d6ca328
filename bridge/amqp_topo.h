/* Which signal routing keys the controller's control queue is bound to
 * (CONTRACT §1, issue "the bridge on RabbitMQ"), learned from the envelopes
 * the bridge publishes. Transport-free: sink_amqp.c applies the difference.
 *
 * Always bound, for swarm S and controller instance C:
 *   signal.*.S.swarm-controller.C     every command to the controller (an
 *   signal.*.S.swarm-controller.ALL   unknown type arrives and is rejected)
 * and, for T in {config-update, status-request}:
 *   signal.T.S.ALL.ALL, signal.T.ALL.swarm-controller.ALL,
 *   signal.T.S.<role>.ALL and signal.T.ALL.<role>.ALL for each role seen,
 *   signal.T.S.<role>.<instance> for each live worker.
 * Roles are learned from worker status and never forgotten (a role binding
 * is harmless); live workers come from worker status and are replaced by
 * the list in each controller status-full, so bindings follow workers as
 * they come and go. */
#ifndef PH_BRIDGE_AMQP_TOPO_H
#define PH_BRIDGE_AMQP_TOPO_H

#include <stdbool.h>

#include <jansson.h>

#include "contract.h"

struct amqp_topo {
    char swarm[PH_ID_MAX];
    char controller[PH_ID_MAX];
    json_t *roles; /* {role: true} */
    json_t *live;  /* {"role.instance": true} */
};

int amqp_topo_init(struct amqp_topo *t, const char *swarm, const char *controller);
void amqp_topo_free(struct amqp_topo *t);

/* Learns from one envelope about to be published under `rk`; true when
 * the set of binding keys changed. */
bool amqp_topo_observe(struct amqp_topo *t, const char *rk, const json_t *env);

/* Every binding key, as a new object {key: true}; NULL when out of memory. */
json_t *amqp_topo_keys(const struct amqp_topo *t);
/* The keys that name one worker (its role's and its own), as a new object;
 * NULL when out of memory. */
json_t *amqp_topo_worker_keys(const struct amqp_topo *t, const char *role, const char *instance);

#endif
