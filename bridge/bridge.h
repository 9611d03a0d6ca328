/* The bridge's core, independent of transport and event loop:
 *   - finds the controller's channel (/dev/shm/ph.<swarm>.bridge), registers
 *     as its bridge, beats the heartbeat, and follows the controller when it
 *     restarts and re-creates the channel;
 *   - drains the "out" ring: each document becomes a checked envelope handed
 *     to the sink, or is refused and counted (docs_refused). The ring's
 *     space is handed back only up to the first document the sink has not
 *     delivered (AMQP: confirmed by the broker), so a bridge killed before
 *     a confirm leaves the document in the ring and the next bridge
 *     publishes it again (at least once); status does not hold anything
 *     back. While the sink is full the bridge reads no further: the ring is
 *     the backpressure, and the sink never drops a document of the ring;
 *   - takes signals from any transport (bridge_signal_line for the file
 *     reader, bridge_signal_message for AMQP), forwards valid ones into the
 *     "in" ring in order (never dropping one when the ring is full), and
 *     answers invalid ones with a count, a log line and one rate-limited
 *     control.invalid-message alert, plus a failed outcome when the signal
 *     still says whom to answer;
 *   - keeps every forwarded signal until the controller has consumed it
 *     (the in ring's head passed it: the controller journals before it
 *     hands space back), and only then settles its delivery with the
 *     transport (AMQP: basic.ack); signals the controller had not consumed
 *     when it re-created the channel are forwarded again into the new one;
 *   - when the channel fails validation, asks the controller to re-create
 *     it (reset_request) instead of going silent;
 *   - when the controller closes a removed swarm (ph/channel.h, closing),
 *     publishes its last documents with confirms, acknowledges the close
 *     mark once they are confirmed, and reports itself finished when the
 *     controller is gone and nothing is left: the process then exits 0.
 * The event loop (loop.c) only decides when to call bridge_tick(). */
#ifndef PH_BRIDGE_BRIDGE_H
#define PH_BRIDGE_BRIDGE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "ph/channel.h"
#include "ph/cidset.h"
#include "ratelimit.h"
#include "sigcheck.h"
#include "sink.h"

#define BRIDGE_ALERT_CODE_INVALID "control.invalid-message"

struct bridge_cfg {
    const char *swarm;
    const char *controller_instance; /* origin and scope of the bridge's own alerts */
    size_t max_signal_bytes;         /* 0: SIGCHECK_DEFAULT_MAX_BYTES */
    uint64_t check_interval_ns;      /* how often to look for a re-created channel (0: 200 ms) */
    uint64_t alert_interval_ns;      /* at most one alert per code per this (0: 1 s) */
};

struct bridge_stats {
    uint64_t published;       /* controller documents written to the sink */
    uint64_t refused;         /* controller documents refused */
    uint64_t forwarded;       /* signals written into the in ring */
    uint64_t rejected;        /* signals refused */
    uint64_t alerts;          /* the bridge's own alerts */
    uint64_t secrets_dropped; /* secret-named keys removed from configs */
    uint64_t attaches;        /* channel registrations (1 + controller restarts) */
    uint64_t settled;         /* signals consumed by the controller and settled */
    uint64_t reforwarded;     /* signals forwarded again into a re-created channel */
    uint64_t answered;        /* failed outcomes for refused but identifiable signals */
    uint64_t resets;          /* channel re-creations asked of the controller */
    uint64_t republished;     /* documents an earlier bridge had read, published again */
    uint64_t status_skipped;  /* status an earlier bridge had read, not published again */
    uint64_t outcomes_repeated; /* outcomes sent again by a restarted controller, published
                                 * by this bridge before: dropped */
};

/* Correlation ids of the outcomes this bridge has delivered (the broker
 * confirmed them; the file sink wrote them), remembered so that the ones a
 * restarted controller sends again (its journal could not show them
 * delivered) are not published twice. One published and not yet confirmed
 * is published again: dropping it would leave its only copy in this
 * process's memory while the ring moved past it. */
#define BRIDGE_DELIVERED_CIDS 16384

/* An outcome handed to the sink from the current ring, waiting for its
 * delivery: at ring position `start`. */
struct bridge_inflight {
    uint64_t start;
    char *cid;
};

/* A valid signal: waiting for room in the in ring, or written there and
 * waiting for the controller to consume it. */
struct bridge_pending {
    struct bridge_pending *next;
    uint64_t delivery; /* transport handle to settle (0: none) */
    uint64_t end;      /* in-ring position just past it, once written */
    uint64_t line_end; /* signal-file position just past its line (0: not from a file) */
    uint32_t len;
    char type[CONTRACT_TYPE_MAX];
    char cid[CONTRACT_STR_MAX];
    uint8_t body[];
};

/* Log lines of one kind per second; the rest are counted and summarised. */
struct bridge_logwin {
    uint64_t start_ns;
    uint32_t n;
    uint64_t dropped;
};

struct bridge {
    struct bridge_cfg cfg;
    uint64_t own_forwards; /* the controller's own commands to remote workers, seen again */
    struct sink *sink;
    struct sigcheck_cfg sc;
    struct sigcheck_result res; /* reused for every signal */
    struct ratelimit alerts;
    struct bridge_logwin log_refused, log_rejected;

    int32_t pid;
    uint64_t start_time;

    bool attached;
    bool ever_attached;
    bool quarantined; /* the out ring failed validation: not read again */
    struct ph_channel ch;
    dev_t dev;
    ino_t ino;
    ph_ring_consumer out;
    ph_ring_producer in;
    uint64_t doc_start;   /* out-ring position where the document being read starts */
    uint64_t replayed_to; /* out-ring position an earlier bridge had read up to */
    bool drain_bounded;   /* the drain under way stops once the sink is full */
    bool commit_refused;  /* a hold outside what was read was reported (logged once) */
    uint8_t *scratch;
    size_t scratch_cap;
    uint64_t next_check_ns;
    char wait_reason[256]; /* last reason the channel could not be used */

    struct bridge_pending *head, *tail; /* not yet written into the in ring */
    size_t npending;
    struct bridge_pending *sent, *sent_tail; /* written, not yet consumed */
    size_t nsent;
    /* Signal-file position just past the last line whose signal the
     * controller consumed: how far a restarted bridge may skip. */
    uint64_t line_settled;
    uint64_t session;     /* transport session the deliveries were checked against */
    uint64_t close_acked; /* close mark of this channel acknowledged (0: none) */
    struct ph_cidset delivered_cids;   /* outcomes delivered (BRIDGE_DELIVERED_CIDS) */
    struct bridge_inflight *inflight;  /* published from this ring, in ring order */
    size_t inflight_head, ninflight, inflight_cap;

    /* The bell (ph/channel.h): our datagram socket (-1: none, the bridge
     * never sleeps long) and the token it is bound to. */
    int bell_fd;
    uint64_t bell_token;

    struct bridge_stats st;
};

int bridge_init(struct bridge *b, const struct bridge_cfg *cfg, struct sink *sink, char *err,
                size_t errlen);
void bridge_destroy(struct bridge *b);

/* Attaches, or notices a re-created channel and moves to it; cheap when
 * nothing changed (at most one stat(2) per check interval). */
void bridge_poll_channel(struct bridge *b, uint64_t now_ns);
/* One loop iteration: channel, heartbeat, out ring, pending signals, sink. */
void bridge_tick(struct bridge *b, uint64_t now_ns);
/* The sink's socket is readable: reads what arrived (signals, confirms) and
 * hands back the out-ring space of what is now delivered. */
void bridge_service(struct bridge *b);
/* Asks the controller for a fresh status-full (after a transport
 * reconnect): registers again, which bumps bridge_generation. */
void bridge_request_full(struct bridge *b);
/* Clean stop: drains the out ring once more, offers pending signals once,
 * flushes the sink, waits a moment for it to deliver what it holds, hands
 * the ring back as far as it did, and unregisters. */
void bridge_stop(struct bridge *b);

/* Signals from a transport (a signal file's line carries the file position
 * just past it, reported back through line_settled). The verdict tells the transport what to do
 * with the message (AMQP: ack on SIG_OK, reject without requeue otherwise);
 * a valid signal is queued in order and written into the in ring as soon as
 * there is room. */
enum sigcheck_verdict bridge_signal_line(struct bridge *b, const char *line, size_t len,
                                         size_t full_len, uint64_t line_end);
enum sigcheck_verdict bridge_signal_message(struct bridge *b, const char *rk, size_t rklen,
                                            const char *body, size_t len, uint64_t delivery);
/* Valid signals still waiting for room (or for a channel). */
static inline size_t bridge_signals_pending(const struct bridge *b)
{
    return b->npending;
}
/* Signals written into the in ring that the controller has not consumed. */
static inline size_t bridge_signals_unconsumed(const struct bridge *b)
{
    return b->nsent;
}
/* Settles the signals the controller has consumed (in-ring head). */
void bridge_settle_consumed(struct bridge *b);

/* Nothing to do until a document, a signal or a confirm arrives: attached
 * to a controller that rings the bell and could ring ours (bell_refused),
 * out ring empty, no signal waiting or
 * unconsumed, not closing, the sink quiet. bridge_sleep() then arms the
 * bell and returns true (the caller may wait long; the controller rings
 * when it writes), or false, disarmed, when a document came meanwhile.
 * bridge_wake() after any wake-up. */
bool bridge_quiet(struct bridge *b);
bool bridge_sleep(struct bridge *b);
void bridge_wake(struct bridge *b);
/* The bell rang: the channel is checked at the next tick (a controller that
 * replaced it rings the bridge of the old one). */
void bridge_rung(struct bridge *b);

/* True once the controller closed a removed swarm, stopped (its pid in
 * the channel is 0), every document up to its close mark is published and
 * confirmed, and the out ring is empty: nothing is left to do. */
bool bridge_finished(struct bridge *b);

/* Drains the out ring into the sink now, unless the sink is full, and hands
 * back what is delivered; the number of documents read. */
int bridge_drain(struct bridge *b);
/* Writes pending signals into the in ring; true when none is left. */
bool bridge_flush_signals(struct bridge *b);

#endif
