/* Worker SDK: how any C program becomes a bee of a swarm.
 *
 *   ph_worker *w = ph_worker_attach(&(struct ph_worker_opts){
 *       .swarm_id = "demo", .role = "generator", .instance = "generator-1",
 *       .config_json = "{\"ratePerSec\": 100}"}, err, sizeof err);
 *   for (;;) {
 *       ... do one item ...
 *       ph_worker_count(w, 1);           // no syscall, lock or allocation
 *       ph_worker_tick(w);               // publishes status when due
 *       struct ph_command cmd;
 *       while (ph_worker_poll_command(w, &cmd) > 0) { ... ph_worker_ack(...); }
 *   }
 *   ph_worker_detach(w);
 *
 * Status goes into the worker's slot of the swarm's shared-memory segment;
 * nothing here ever blocks on the controller. A full ring drops the record
 * and counts it; the SDK republishes the latest config/io state until it
 * gets through, and the next status record restores the counters.
 *
 * A ph_worker is not thread-safe: use it from one thread. */
#ifndef PH_WORKER_H
#define PH_WORKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "ph/record.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ph_worker ph_worker;

struct ph_worker_opts {
    const char *swarm_id;
    const char *role;
    const char *instance;
    const char *config_json;     /* initial effective config (JSON object) or NULL */
    uint32_t heartbeat_ms;       /* status record at least this often; 0: 1000 */
    uint32_t attach_timeout_ms;  /* wait for the segment to appear; 0: do not wait */
    /* Where the worker runs and how its status reaches the controller,
     * reported in the controller's worker list as `location` and
     * `transport`. Both NULL for a plain local worker (the controller's
     * host, "shm"). A process that attaches on behalf of workers elsewhere
     * (the bridge for remote workers, a relay's controller side) sets them:
     * transport "relay" or "amqp", location their host. Such a proxy
     * answers no STATUS_REQUEST itself: ph_worker_poll_command() returns it
     * un-acked, for the caller to forward and ack. */
    const char *location;
    const char *transport;
};

/* Attaches to the swarm's segment and claims a slot. NULL with a message in
 * err on failure (no such swarm, invalid identifier, slot table full,
 * instance already attached...). */
ph_worker *ph_worker_attach(const struct ph_worker_opts *opts, char *err, size_t errlen);

/* Publishes a final status, releases the slot and unmaps. NULL-safe. */
void ph_worker_detach(ph_worker *w);

/* Hot path: counts processed (and failed) items. Plain local additions. */
void ph_worker_count(ph_worker *w, uint64_t processed);
void ph_worker_count_errors(ph_worker *w, uint64_t errors);

/* State changes; published with the next status record (marked due now). */
void ph_worker_set_enabled(ph_worker *w, bool enabled);
void ph_worker_set_io_state(ph_worker *w, enum ph_io_in in, enum ph_io_out out);
bool ph_worker_enabled(const ph_worker *w);

/* Publishes a status record now. false when the ring was full (counted);
 * the status then waits and ph_worker_tick() writes it once it fits. */
bool ph_worker_publish_status(ph_worker *w);
/* Publishes status if a state changed or the heartbeat is due, and retries
 * records waiting for room (status, config, io, acks). Cheap enough to call
 * per item: one coarse clock read and a compare. Waiting records are looked
 * after at most once per coarse-clock tick (a few ms), and a waiting status
 * is not counted again: one overflow per change that found the ring full,
 * however often this is called. */
void ph_worker_tick(ph_worker *w);

/* Publishes the effective configuration (a JSON object). Keys naming
 * secrets are dropped. Retried by ph_worker_tick() until it fits. */
int ph_worker_publish_config(ph_worker *w, const json_t *config);
/* Publishes the io topology (a JSON object, e.g. {"work": {"queues": {...}}}). */
int ph_worker_publish_io(ph_worker *w, const json_t *io);
/* Raises an alert: level "info" | "warn" | "error", a code ("io.out-of-data"),
 * a one-line message (no stack traces). false when dropped (counted). */
bool ph_worker_alert(ph_worker *w, const char *level, const char *code, const char *message);

enum ph_command_type {
    PH_COMMAND_CONFIG_PATCH = PH_CMD_CONFIG_PATCH,
    PH_COMMAND_STATUS_REQUEST = PH_CMD_STATUS_REQUEST,
    PH_COMMAND_STOP = PH_CMD_STOP,
};
struct ph_command {
    enum ph_command_type type;
    uint64_t token; /* echo in ph_worker_ack() */
    json_t *patch;  /* CONFIG_PATCH: a JSON object, owned by the SDK until the next poll */
};
/* Returns 1 and fills *cmd when a command is waiting, 0 when none, or a
 * negative ph_err when the command ring is corrupt (it is then ignored).
 * STATUS_REQUEST is answered by the SDK itself (status, config and io are
 * republished and the request acked) and also returned for information. */
int ph_worker_poll_command(ph_worker *w, struct ph_command *cmd);
/* Answers a command. */
bool ph_worker_ack(ph_worker *w, uint64_t token, bool ok, const char *message);

/* Facts for the program and tools. */
uint32_t ph_worker_slot(const ph_worker *w);
uint64_t ph_worker_processed(const ph_worker *w);
uint64_t ph_worker_overflows(const ph_worker *w);
/* True while the segment's controller heartbeat is younger than max_age_ms. */
bool ph_worker_controller_alive(const ph_worker *w, uint32_t max_age_ms);

#ifdef __cplusplus
}
#endif
#endif
