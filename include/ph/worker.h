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

/* How the worker's status reaches its swarm controller.
 *
 * LOCAL: through its slot of the swarm's shared-memory segment
 * (/dev/shm/ph.<swarm>), which the controller on this host created.
 *
 * REMOTE: for a worker on a host without that segment. ph_worker_attach()
 * builds a private one-slot status plane in process memory (no /dev/shm
 * object) and starts an agent thread that speaks the wire contract over
 * AMQP itself: status-full / status-delta / alerts on ph.control, and the
 * worker's control queue ph.control.<swarm>.<role>.<instance> for
 * config-update and status-request signals. Every function below behaves
 * as in local mode; the per-item path never touches the network. A
 * config-update is applied only when it comes from the controller instance
 * (`controller`); it reaches the program through ph_worker_poll_command()
 * and its ph_worker_ack() becomes the signal's outcome (failed, retryable,
 * after 5 s without an ack). The broker URL comes from the file named by
 * PH_AMQP_URL_FILE or from PH_AMQP_URL, never from arguments, and attach
 * does not wait for the broker: the agent connects and reconnects in the
 * background while the worker runs. The agent is linked only into programs
 * that link the CMake target ph_worker_remote (ph-worker does); elsewhere
 * remote mode fails with a message saying so.
 *
 * AUTO (0): LOCAL when the segment exists (waiting attach_timeout_ms for
 * it, as always); when it still does not and PH_AMQP_URL_FILE or
 * PH_AMQP_URL is set, REMOTE; otherwise attach fails as in local mode.
 * With opts.mode AUTO, the environment variable PH_WORKER_MODE
 * (local | remote | auto) chooses instead. */
enum ph_worker_mode {
    PH_WORKER_AUTO = 0,
    PH_WORKER_LOCAL = 1,
    PH_WORKER_REMOTE = 2,
};

struct ph_worker_opts {
    const char *swarm_id;
    const char *role;
    const char *instance;
    const char *config_json;     /* initial effective config (JSON object) or NULL */
    /* Local: a status record at least this often (0: 1000). Remote: a
     * status-delta heartbeat at least this often (0: 5000); the private
     * ring still gets a record at least every second (the tps window). */
    uint32_t heartbeat_ms;
    uint32_t attach_timeout_ms;  /* wait for the segment to appear; 0: do not wait */
    /* Where the worker runs and how its status reaches the controller,
     * reported in the controller's worker list as `location` and
     * `transport`. Both NULL for a plain local worker (the controller's
     * host, "shm"). A process that attaches on behalf of workers elsewhere
     * (the bridge for remote workers, a relay's controller side) sets them:
     * transport "relay" or "amqp", location their host. Such a proxy
     * answers no STATUS_REQUEST itself: ph_worker_poll_command() returns it
     * un-acked, for the caller to forward and ack. In remote mode
     * (below) the worker is no proxy: transport is "amqp", location
     * defaults to gethostname() and is reported in every status message's
     * data.context, and STATUS_REQUEST is answered as in local mode. */
    const char *location;
    const char *transport;
    enum ph_worker_mode mode;
    /* Remote mode: the swarm controller's instance id, the only origin
     * whose config-updates the worker applies. NULL: the environment
     * variable PH_CONTROLLER_INSTANCE, else "<swarm_id>-controller". */
    const char *controller;
};

/* Attaches to the swarm's segment and claims a slot (local), or builds the
 * private status plane and starts the AMQP agent (remote; see enum
 * ph_worker_mode). NULL with a message in err on failure (no such swarm,
 * invalid identifier, slot table full, instance already attached, no or
 * invalid broker URL, remote mode not linked...). */
ph_worker *ph_worker_attach(const struct ph_worker_opts *opts, char *err, size_t errlen);

/* Publishes a final status, releases the slot and unmaps; in remote mode
 * also lets the agent publish what it drains last, then stops it (waiting
 * at most about a second for the broker's confirms) and frees the private
 * plane. NULL-safe. */
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
 * negative ph_err: PH_ERR_CORRUPT when the command ring is corrupt (it is
 * then ignored), PH_ERR_SYS when there is no memory to read the first
 * command into (it waits for the next call).
 * STATUS_REQUEST is answered by the SDK itself (status, config and io are
 * republished and the request acked) and also returned for information. */
int ph_worker_poll_command(ph_worker *w, struct ph_command *cmd);
/* Answers a command. */
bool ph_worker_ack(ph_worker *w, uint64_t token, bool ok, const char *message);

/* Facts for the program and tools. */
/* True when the worker runs in remote mode. */
bool ph_worker_remote(const ph_worker *w);
uint32_t ph_worker_slot(const ph_worker *w);
uint64_t ph_worker_processed(const ph_worker *w);
uint64_t ph_worker_overflows(const ph_worker *w);
/* True while the segment's controller heartbeat is younger than max_age_ms.
 * Remote mode: while the agent is connected to the broker. */
bool ph_worker_controller_alive(const ph_worker *w, uint32_t max_age_ms);

#ifdef __cplusplus
}
#endif
#endif
