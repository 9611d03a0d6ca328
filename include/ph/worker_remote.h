/* The worker SDK's remote mode (ph/worker.h, PH_WORKER_REMOTE), internal
 * interface.
 *
 * A remote worker has no swarm segment: ph_worker_attach() builds a private
 * one-slot segment in process memory (ph_segment_private) and hands it to
 * an agent thread, which plays the swarm controller and the bridge for that
 * one worker. The agent drains the slot's status ring, keeps the worker's
 * state, speaks the wire contract (docs: /work/shared/CONTRACT.md §1-§4)
 * on RabbitMQ through its own struct ph_amqp, and writes config patches and
 * status requests into the slot's command ring. The worker's own code paths
 * are the local ones: nothing on its per-item path touches the network.
 *
 * The agent lives in amqp/worker_remote.c (CMake object library
 * ph_worker_remote, which links ph_amqp); libph reaches it through the weak
 * symbols ph_worker_remote_start/stop, so a program that does not link it
 * gets a clear error from ph_worker_attach() in remote mode, and libph does
 * not depend on ph_amqp.
 *
 * The envelope builders and the signal parser are exposed for the unit
 * tests (amqp/tests/test_worker_remote.c). */
#ifndef PH_WORKER_REMOTE_H
#define PH_WORKER_REMOTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "ph/record.h"
#include "ph/shm.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Status ring of the private slot: larger than a shared segment's (it
 * holds configs and io documents between two drains of the agent, 20 ms
 * apart), and a command ring that takes patches of a few KiB. */
#define PH_WR_STATUS_RING 65536u
#define PH_WR_COMMAND_RING 16384u
/* The agent's loop: poll timeout, tps window, change-delta spacing, how
 * long a config-update waits for the worker's ack. */
#define PH_WR_POLL_MS 20
#define PH_WR_TPS_WINDOW_NS 5000000000ull
#define PH_WR_DELTA_MIN_NS 200000000ull
#define PH_WR_ACK_TIMEOUT_NS 5000000000ull
#define PH_WR_DEFAULT_HEARTBEAT_MS 5000u
/* Identifier and id buffers. */
#define PH_WR_STR_MAX 256

/* Who the agent speaks for. All strings are the agent's own copies. */
struct ph_wr_ident {
    char swarm[PH_ID_MAX];
    char role[PH_ID_MAX];
    char instance[PH_ID_MAX];
    char controller[PH_WR_STR_MAX]; /* origin whose config-updates are applied */
    char location[PH_LOCATION_MAX];
    uint32_t heartbeat_ms; /* status-delta heartbeat */
};

/* What ph_worker_attach() hands the agent. The segment and slot belong to
 * the worker; the agent uses the slot's consumer end of the status ring and
 * producer end of the command ring, and beats the segment's controller
 * heartbeat while the broker is connected. */
struct ph_worker_remote_args {
    const struct ph_wr_ident *ident;
    struct ph_segment *seg;
    struct ph_slot *slot;
    uint64_t started_real_ns; /* attach time, for startedAt */
    const char *url_file;     /* PH_AMQP_URL_FILE, or NULL: PH_AMQP_URL */
};

struct ph_worker_agent;

/* Loads the broker URL, opens the client (no connection yet) and starts
 * the agent thread. Never waits for the broker. NULL with a message in err
 * on failure. */
struct ph_worker_agent *ph_worker_remote_start(const struct ph_worker_remote_args *args, char *err,
                                               size_t errlen);
/* Drains what the worker wrote last, publishes it, stops and joins the
 * thread, closes the client (waiting at most a second for confirms) and
 * frees the agent. NULL-safe. */
void ph_worker_remote_stop(struct ph_worker_agent *agent);

/* ---- envelopes (CONTRACT §2, §3) --------------------------------------- */

/* What a status message says about the worker. */
struct ph_wr_view {
    bool enabled;
    uint64_t tps;
    uint8_t io_in;        /* enum ph_io_in */
    uint8_t io_out;       /* enum ph_io_out */
    const json_t *config; /* NULL: {} */
    const json_t *io;     /* NULL: {} */
    uint64_t started_real_ns;
};

/* An envelope with the contract's keys in the contract's order; NULL scope
 * parts and ids are written as null. `data` is stolen. NULL when out of
 * memory. */
json_t *ph_wr_envelope(uint64_t real_ns, const char *kind, const char *type, const char *origin,
                       const char *swarm, const char *role, const char *instance, const char *cid,
                       const char *ikey, json_t *data);
/* The data of a status-full (full) or status-delta (!full). */
json_t *ph_wr_status_data(const struct ph_wr_ident *id, const struct ph_wr_view *v, bool full);
/* "<family>.<swarm>.<role>.<instance>" of the agent's worker into buf, e.g.
 * family "event.metric.status-full". false when it does not fit. */
bool ph_wr_routing_key(char *buf, size_t n, const char *family, const struct ph_wr_ident *id);
/* A whole status message: envelope and routing key (buf of at least 256
 * bytes). `cid` NULL unless it answers a status-request. */
json_t *ph_wr_status_envelope(uint64_t real_ns, const struct ph_wr_ident *id,
                              const struct ph_wr_view *v, bool full, const char *cid, char *rk,
                              size_t rklen);
/* A config-update outcome: data {status, enabled, retryable[, context:
 * {message}]} (the message only when it failed). */
json_t *ph_wr_outcome_envelope(uint64_t real_ns, const struct ph_wr_ident *id, bool applied,
                               bool enabled, bool retryable, const char *message, const char *cid,
                               const char *ikey, char *rk, size_t rklen);
/* An alert event: data {level, code, message}. */
json_t *ph_wr_alert_envelope(uint64_t real_ns, const struct ph_wr_ident *id, const char *level,
                             const char *code, const char *message, char *rk, size_t rklen);

/* ---- signals (CONTRACT §1, §2, §4) ------------------------------------- */

enum ph_wr_sig {
    PH_WR_SIG_REJECT = -1,        /* not a valid signal envelope: reject, no requeue */
    PH_WR_SIG_IGNORE = 0,         /* valid, but not for this agent to act on: settle */
    PH_WR_SIG_STATUS_REQUEST = 1, /* answer with a status-full carrying cid */
    PH_WR_SIG_CONFIG_UPDATE = 2,  /* from the controller: patch is the patch */
    PH_WR_SIG_CONFIG_INVALID = 3, /* from the controller, but the patch is refused (why) */
};

struct ph_wr_signal {
    char type[32];
    char origin[PH_WR_STR_MAX];
    char cid[PH_WR_STR_MAX];
    char ikey[PH_WR_STR_MAX];
    bool has_ikey;
    json_t *patch; /* CONFIG_UPDATE: the patch, `enabled` normalised to a bool; owned */
    char why[200]; /* REJECT, IGNORE, CONFIG_INVALID: the reason */
};

/* Checks a delivery (routing key and body) as a signal addressed to the
 * agent's worker and classifies it. Fills *out (release with
 * ph_wr_signal_clear) in every case. */
enum ph_wr_sig ph_wr_signal_parse(const struct ph_wr_ident *id, const char *rk, size_t rklen,
                                  const char *body, size_t len, struct ph_wr_signal *out);
void ph_wr_signal_clear(struct ph_wr_signal *s);

/* A printable prefix of a rejected message for logs: at most `cap - 1`
 * bytes, cut after the first word that names a secret and after the first
 * "://" (a value after them is never quoted). */
void ph_wr_log_prefix(const char *body, size_t len, char *out, size_t cap);

#ifdef __cplusplus
}
#endif
#endif
