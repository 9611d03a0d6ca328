/* ph-relay's logic: a host's worker table, forwarded to the swarm
 * controller's bridge in batches over AMQP (docs/MULTIHOST.md).
 *
 * The relay owns the swarm's segment on a host that is not the
 * controller's (same layout, same worker SDK: workers cannot tell) and
 * drains it with the controller's own table code (ctl.h). What changed
 * since the last batch goes out as ONE message per batch period, however
 * many workers there are:
 *
 *   relay.<swarm>.<relayId>.up   (relay -> bridge, on ph.control)
 *   {"relay", "host", "seq", "full",
 *    "workers": [{"role", "instance", "enabled", "input", "output",
 *                 "processed", "errors"[, "config"][, "io"]}],
 *    "left":    [{"role", "instance", "dead"}],
 *    "acks":    [{"role", "instance", "token", "ok", "message"}],
 *    "alerts":  [{"role", "instance", "level", "code", "message"}]}
 *
 * A worker is listed when a record of it arrived since the last batch
 * (its heartbeat included), with config and io only when those changed;
 * "full" lists every worker with config and io (after a (re)connect and
 * when the bridge asks). Commands come back on
 *
 *   relay.<swarm>.<relayId>.down (bridge -> relay)
 *   {"full": true} and/or {"cmds": [{"role", "instance", "token",
 *                                    "type": "config-update" | "status-request" | "stop",
 *                                    "patch": {...}}]}
 *
 * and go into the worker's command ring; its ack returns in "acks" with
 * the bridge's token. These keys are the project's internal traffic: the
 * contract's families (signal., event.) never carry them.
 *
 * Transport-free: publish is a callback, down messages are fed in. */
#ifndef PH_RELAY_H
#define PH_RELAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "ctl.h"

#define RELAY_MAX_MAP 4096 /* commands in flight through the relay */
#define RELAY_HEARTBEAT_NS (2ull * 1000000000ull) /* an empty batch at least this often */
/* A command its worker has not answered after this long is acked failed
 * (longer than the bridge's own wait, which answers the controller first). */
#define RELAY_CMD_TIMEOUT_NS (30ull * 1000000000ull)

struct relay_cfg {
    const char *swarm;    /* the swarm the workers belong to */
    const char *relay_id; /* this relay (routing key segment) */
    const char *host;     /* location reported for its workers */
    /* Publishes one message; 0 on success. */
    int (*publish)(void *ctx, const char *rk, const char *body, size_t len, bool reliable);
    void *publish_ctx;
};

struct relay_stats {
    uint64_t batches, workers_sent, commands, acks, bad_down;
};

struct relay;

/* ctl must outlive the relay; relay_open installs its hooks into ctl. */
int relay_open(struct relay **out, const struct relay_cfg *cfg, struct ctl *ctl, char *err,
               size_t errlen);
void relay_close(struct relay *r);
/* The next batch lists every worker, with config and io. */
void relay_want_full(struct relay *r);
/* A message from relay.<swarm>.<relay>.down. 0, or -1 when refused. */
int relay_on_down(struct relay *r, const char *body, size_t len);
/* Publishes the batch (if anything changed, or the heartbeat is due).
 * Returns 1 when a message went out, 0 when none was due, -1 on error. */
int relay_batch(struct relay *r, uint64_t now_ns);
/* The routing keys ("relay.<swarm>.<id>.up"/".down"). */
void relay_key(char *buf, size_t n, const char *swarm, const char *relay_id, const char *dir);
const struct relay_stats *relay_stats(const struct relay *r);

#endif
