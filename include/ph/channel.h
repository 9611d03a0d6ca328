/* The controller <-> bridge channel: /dev/shm/ph.<swarmId>.bridge.
 *
 * Two SPSC rings (ph/ring.h) in one shared-memory object created by the
 * controller:
 *   out: controller -> bridge, documents to publish (status, outcomes, alerts)
 *   in:  bridge -> controller, signals received from the control plane
 * Each record is one msgpack document (PH_DOC_RECORD); see ph/doc.h for
 * its keys. The rings are large (documents such as a status-full of
 * thousands of workers are big) and mapped lazily, so untouched pages cost
 * nothing.
 *
 * One bridge at a time: it registers by a compare-and-swap of bridge_pid
 * (from 0 or from a dead bridge) and bumps bridge_generation, which tells
 * the controller to send a fresh status-full to the new bridge.
 *
 * Delivery of documents: the out ring's head is where a bridge starts
 * reading, so the bridge moves it (ph_ring_commit_to) only up to the first
 * document its sink has not delivered (AMQP: confirmed by the broker; file:
 * written). Status, which the AMQP sink does not keep, holds nothing back.
 * A bridge killed with documents published but not confirmed leaves them
 * in the ring, and the next bridge publishes them again: outcomes, alerts
 * and events reach the broker at least once, and a repeat carries the same
 * correlationId and idempotencyKey. out_read, written by the bridge only,
 * is how far it has read: the next bridge does not publish again the
 * status before it (stale; the controller sends a fresh status-full for
 * every registration). While the bridge's sink is full (unconfirmed
 * documents at its limit) the bridge reads no further: the ring fills, and
 * the controller keeps outcomes and alerts in its own outbox meanwhile. The
 * controller, for its part, keeps every outcome and alert it wrote until
 * the head has passed it.
 *
 * Recovery: a side that finds the channel corrupt does not go silent. The
 * bridge stores a reason in reset_request; the controller (which also
 * checks its own side) then re-creates the channel under the same name,
 * writes into it again every outcome and alert the old ring's head had not
 * passed (a bridge that had published one, or still reads it from the old
 * ring before it moves, publishes it twice: at least once), and raises an
 * alert. The bridge moves to the new object (new inode), where the holds of
 * the old ring no longer count, and forwards again the signals the
 * controller had not consumed.
 *
 * Closing (a removed swarm): the controller ends a swarm after swarm-remove
 * with a final REMOVED status-delta and status-full, and nothing may be lost
 * between its last document and both processes exiting. Three fields carry
 * the handshake; each is written by one side only:
 *   closing     controller: 1 before it writes its final documents (release).
 *               The bridge loads it after the tail that made a document
 *               visible (so it is never stale for that document) and from
 *               then on publishes every document, status included, with
 *               broker confirms.
 *   close_mark  controller: the out-ring position just past its last
 *               document, stored (release) once every document is in the
 *               ring; 0 until then. It only grows: when a new bridge
 *               registers while closing, the controller writes the final
 *               documents again (the old bridge may have read them without
 *               publishing them) and moves the mark.
 *   close_ack   bridge: the highest close_mark it has read up to, published,
 *               and had confirmed by its sink (release).
 * The controller stops once close_ack >= close_mark (or after its
 * --close-timeout-s), storing controller_pid 0 as it always does; it reads
 * no signal after closing, so none can need an answer after the mark. The
 * bridge stops (exit 0) once closing is set, the controller is gone
 * (controller_pid 0), the out ring is empty and its sink holds nothing
 * unconfirmed. Added within layout version 2: a zeroed field means "not
 * closing", which is what an older controller leaves (and a zeroed out_read
 * means nothing is known to have been read).
 *
 * The bell: an idle bridge sleeps instead of polling the out ring every
 * tick. The bridge binds a datagram socket in the abstract namespace,
 * "\0ph.bell.<swarmId>.<token>" (ph_channel_bell_open), and publishes the
 * token in bell_token; a controller that rings sets bell to 1 when it
 * takes up the channel. Before a long sleep the bridge arms the bell
 * (ph_channel_bell_arm: bridge_asleep 1, then one more look at the out
 * ring); after writing documents the controller asks ph_channel_bell_due()
 * and, when the bridge sleeps, sends it one byte (ph_channel_bell_ring).
 * The two seq_cst fences make the pair safe: the bridge sees the documents
 * or the controller sees it asleep, never neither. A lost ring costs
 * latency, never a document: the sleeping bridge still ticks, slowly
 * (ph-bridge --idle-tick-ms). A controller that replaces the channel (a
 * restart, a re-creation) rings the bridge of the old one, and a rung
 * bridge looks for a new channel at once. Anyone who can write the header
 * can make the
 * controller send a byte to another name under the same prefix, nothing
 * more. Added within layout version 2: a zeroed bell (older controller)
 * keeps the bridge on its short tick, a zeroed token (older bridge) is
 * never rung. */
#ifndef PH_CHANNEL_H
#define PH_CHANNEL_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ph/common.h"
#include "ph/ring.h"

#ifdef __cplusplus
extern "C" {
#endif

#define PH_CHAN_MAGIC 0x31304e4148435050ull /* "PPCHAN01" little-endian */
#define PH_CHAN_LAYOUT_VERSION 2u
#define PH_CHAN_HEADER_SIZE 4096u
#define PH_CHAN_DEFAULT_OUT_RING (8u << 20) /* 8 MiB: documents up to 4 MiB */
#define PH_CHAN_DEFAULT_IN_RING (1u << 20)  /* 1 MiB: signals up to 512 KiB */
#define PH_DOC_RECORD 32u                   /* ring record type of a document */

struct ph_chan_header {
    _Atomic uint64_t magic; /* stored last with release: publishes the rest */
    uint32_t layout_version;
    uint32_t header_size;
    uint64_t size;
    uint32_t out_ring;
    uint32_t in_ring;
    char swarm_id[PH_ID_MAX];

    alignas(64) _Atomic int32_t controller_pid;
    _Atomic uint64_t controller_start_time;
    _Atomic uint64_t controller_heartbeat_ns; /* CLOCK_MONOTONIC */
    _Atomic uint32_t closing;                 /* 1: removed; the final documents follow */
    _Atomic uint64_t close_mark;              /* out-ring position past the last document */
    _Atomic uint32_t bell;                    /* 1: this controller rings the bridge's bell */
    _Atomic uint64_t bell_refused;            /* a bell_token the controller could not ring */

    alignas(64) _Atomic int32_t bridge_pid;
    _Atomic uint64_t bridge_start_time;
    _Atomic uint64_t bridge_heartbeat_ns;
    _Atomic uint64_t bridge_generation; /* +1 per bridge registration */
    _Atomic uint64_t docs_published;    /* bridge statistics */
    _Atomic uint64_t docs_refused;      /* documents that violated the contract */
    _Atomic uint64_t signals_rejected;  /* signals refused before reaching the controller */
    _Atomic uint32_t reset_request;     /* enum ph_chan_reset: the bridge asks for a new channel */
    _Atomic uint64_t close_ack;         /* close_mark published and confirmed by the bridge */
    _Atomic uint64_t out_read;          /* out-ring position the bridge has read up to */
    _Atomic uint32_t bridge_asleep;     /* 1: the bridge waits for the bell */
    _Atomic uint64_t bell_token;        /* the bridge's bell address; 0: none */

    struct ph_ring_desc out;
    struct ph_ring_desc in;
};
_Static_assert(sizeof(struct ph_chan_header) <= PH_CHAN_HEADER_SIZE, "channel header grew");
/* Fields added within layout version 2 fit in the blocks' padding: what
 * an older process of the same version reads stays where it was. */
_Static_assert(offsetof(struct ph_chan_header, bridge_pid) == 192, "channel layout 2 moved");
_Static_assert(offsetof(struct ph_chan_header, out) == 320, "channel layout 2 moved");
_Static_assert(offsetof(struct ph_chan_header, in) == 448, "channel layout 2 moved");
/* tests/integration/test_bridge_bell.sh reads the bell's fields here. */
_Static_assert(offsetof(struct ph_chan_header, bell) == 168, "channel layout 2 moved");
_Static_assert(offsetof(struct ph_chan_header, bell_refused) == 176, "channel layout 2 moved");
_Static_assert(offsetof(struct ph_chan_header, bridge_asleep) == 272, "channel layout 2 moved");
_Static_assert(offsetof(struct ph_chan_header, bell_token) == 280, "channel layout 2 moved");

enum ph_chan_reset {
    PH_CHAN_RESET_NONE = 0,
    PH_CHAN_RESET_OUT_CORRUPT = 1, /* the out ring failed the bridge's checks */
    PH_CHAN_RESET_IN_CORRUPT = 2,  /* the in ring's positions failed the bridge's checks */
};

struct ph_channel {
    int fd;
    void *base;
    size_t size;
    struct ph_chan_header *hdr;
    uint8_t *out_data;
    uint8_t *in_data;
    /* Ring capacities as validated when the channel was opened (or chosen
     * when created): use these, not the header's, which any process that
     * maps the channel writable could change. */
    uint32_t out_ring;
    uint32_t in_ring;
    char name[PH_ID_MAX + 16];
};

/* Controller: creates (or re-creates) the channel. Stale channels from a dead
 * controller are replaced: the bridge re-registers after a restart. */
int ph_channel_create(struct ph_channel *ch, const char *swarm_id, uint32_t out_ring,
                      uint32_t in_ring, char *err, size_t errlen);
/* As ph_channel_create(), made mode 0660 for group `gid` (the controller's
 * --shm-group) when set_group; mode 0600 otherwise. */
int ph_channel_create_group(struct ph_channel *ch, const char *swarm_id, uint32_t out_ring,
                            uint32_t in_ring, bool set_group, uint32_t gid, char *err,
                            size_t errlen);
/* Bridge or tools: opens and validates an existing channel; an owner the
 * process's policy refuses (ph/owner.h) is PH_ERR_ACCES. */
int ph_channel_open(struct ph_channel *ch, const char *swarm_id, bool writable, char *err,
                    size_t errlen);
void ph_channel_close(struct ph_channel *ch);
int ph_channel_unlink(const char *swarm_id, char *err, size_t errlen);

/* Bridge: registers this process as the channel's only bridge. PH_ERR_BUSY
 * when another live bridge holds it. */
int ph_channel_register_bridge(struct ph_channel *ch, int32_t pid, uint64_t start_time, char *err,
                               size_t errlen);
void ph_channel_unregister_bridge(struct ph_channel *ch, int32_t pid);

/* ---- the bell (see above) ---- */

/* Bridge: a datagram socket (blocking: read through an event loop) bound
 * to a fresh random token of its own (the fd, or a PH_ERR_* below 0 with a message). The caller
 * stores the token in bell_token once registered. */
int ph_channel_bell_open(const char *swarm_id, uint64_t *token, char *err, size_t errlen);
/* Bridge: before a long sleep. True when it may sleep (bridge_asleep is 1
 * and the out ring was still empty after it); false with bridge_asleep 0
 * when a document arrived meanwhile. */
bool ph_channel_bell_arm(struct ph_channel *ch, const ph_ring_consumer *out);
/* Bridge: awake again (any wake-up). */
void ph_channel_bell_disarm(struct ph_channel *ch);
/* Controller: after publishing documents into the out ring. True, once per
 * sleep, when the bridge sleeps and must be rung. */
bool ph_channel_bell_due(struct ph_channel *ch);
/* Controller: sends the byte to the bell of the bridge this channel names,
 * for `swarm_id` as this process validated it (not the header's copy), on
 * a socket created on the first ring and kept in *fd (-1 before); *token
 * (may be NULL) gets the token rung. 0, or a negative errno: -EDESTADDRREQ
 * without a token; -ECONNREFUSED when nobody is bound to it (the bridge is
 * gone, or lives in another network namespace, where this name does not
 * reach: the controller then stores the token in bell_refused, and a bridge
 * that finds its own token there keeps its short tick). */
int ph_channel_bell_ring(const struct ph_channel *ch, const char *swarm_id, int *fd,
                         uint64_t *token);
/* The same for a token read elsewhere (a channel about to be replaced). */
int ph_channel_bell_send(const char *swarm_id, uint64_t token, int *fd);

#ifdef __cplusplus
}
#endif
#endif
