/* Remote workers: workers that speak the contract over AMQP themselves
 * (another host's worker SDK in remote mode, or any program that publishes
 * contract status), merged into the controller's table.
 *
 * The bridge stands in for each such worker in the swarm's segment: it
 * claims a slot through the worker SDK with transport "amqp" and the
 * worker's location (a proxy), and writes the worker's state into it from
 * every status-full and status-delta the worker publishes. The controller
 * then counts, lists, ages and commands it like any other worker, and
 * never publishes status on its behalf (it speaks for itself). Silence is
 * death by the usual rule: no status, no record, stale after the TTL.
 *
 * Commands the controller writes into a proxy's command ring go to the
 * worker as contract signals, from the controller (origin its instance):
 *   CONFIG_PATCH   -> signal.config-update.<swarm>.<role>.<instance>, data the
 *                     patch; the worker's outcome (same correlationId) acks it;
 *   STATUS_REQUEST -> signal.status-request...; its status-full with that
 *                     correlationId acks it;
 *   STOP           -> config-update {enabled: false}, acked at once; the
 *                     proxy then leaves the slot (the worker is no longer
 *                     part of the swarm's table; a later status joins it
 *                     again).
 * A command not answered within REMOTE_CMD_TIMEOUT_NS is acked failed.
 *
 * A status from a worker that is attached locally (the controller's own
 * per-worker status of a local worker, seen again on the way back) fails
 * the claim as a duplicate; that identity is then left alone for
 * REMOTE_LOCAL_RECHECK_NS without parsing its messages.
 *
 * Transport-free: the caller feeds deliveries (remote_on_message) and
 * ticks (remote_tick), and gives a publish function; sink_amqp.c wires it
 * to its own AMQP connection. */
#ifndef PH_BRIDGE_REMOTE_H
#define PH_BRIDGE_REMOTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define REMOTE_CMD_TIMEOUT_NS (5ull * 1000000000ull)
#define REMOTE_LOCAL_RECHECK_NS (30ull * 1000000000ull)
/* A proxy whose worker has been silent this long leaves its slot (the
 * controller has long listed it stale; it then goes dead and its entry ages
 * out like any other). */
#define REMOTE_FORGET_NS (60ull * 1000000000ull)
#define REMOTE_MAX_PENDING 16
/* A reported tps above this is taken as this (it is integrated into a
 * count that must not wrap). */
#define REMOTE_MAX_TPS 1000000000ll

struct remote_cfg {
    const char *swarm;
    const char *controller_instance;
    /* Publishes one envelope (text, routing key); `reliable`: a signal that
     * must not be lost. 0 on success. */
    int (*publish)(void *ctx, const char *rk, const char *body, size_t len, bool reliable);
    void *publish_ctx;
};

struct remote_stats {
    uint64_t statuses, joined, left, refused, local_skipped, commands, acks, timeouts, ignored;
};

struct remote;

int remote_open(struct remote **out, const struct remote_cfg *cfg, char *err, size_t errlen);
void remote_close(struct remote *r);

/* One delivery from the worker-status queue. Returns 0 when taken in (or
 * deliberately ignored), -1 when the message is refused as invalid (the
 * transport rejects it without requeue). */
int remote_on_message(struct remote *r, const char *rk, size_t rklen, const char *body,
                      size_t len, uint64_t now_ns);
/* The bridge publishes status for (role, instance) on the controller's
 * behalf (a local or relayed worker): its echo on the worker-status queue is
 * ignored, unread, for REMOTE_LOCAL_RECHECK_NS. */
void remote_note_local(struct remote *r, const char *role, const char *instance,
                       uint64_t now_ns);
/* Forwards waiting commands, times out unanswered ones, lets go of workers
 * silent for REMOTE_FORGET_NS. */
void remote_tick(struct remote *r, uint64_t now_ns);

/* The worker-status connection is new: what a relay sent meanwhile is
 * lost (the queue is not durable), so each relay is asked for its full
 * table again when next heard. */
void remote_forget_relays(struct remote *r);

/* The binding keys of the worker-status queue ({key: true}, new). */
json_t *remote_keys(const char *swarm);

const struct remote_stats *remote_stats(const struct remote *r);
/* Workers currently stood in for. */
size_t remote_count(const struct remote *r);
/* No worker stood in for and no relay heard: nothing for remote_tick() to
 * time out or forward. */
bool remote_idle(const struct remote *r);

#endif
