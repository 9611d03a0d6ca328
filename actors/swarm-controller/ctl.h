/* The controller's table of workers, fed by draining every slot of the
 * segment. One entry per slot index; an entry follows one claim of its slot
 * (identified by the slot's state word) from the moment the controller sees
 * it ACTIVE until the owner detaches or dies and the slot is freed.
 *
 * The table keeps what the status semantics need: absolute state from the
 * latest status record, a tps window over the cumulative counter, the latest
 * config and io snapshots (msgpack), first/last seen times, and the
 * quarantine verdict for slots whose contents failed validation.
 *
 * Nothing here blocks or sleeps; the event loop (main.c) calls ctl_scan()
 * on every tick and ctl_owner_died() when a pidfd reports an exit. */
#ifndef PH_CTL_H
#define PH_CTL_H

#include <stdalign.h>
#include <stdbool.h>
#include <stdint.h>

#include "ph/record.h"
#include "ph/ring.h"
#include "ph/shm.h"

#define CTL_TPS_SAMPLES 32
/* A claim in progress for longer than this is warned about, once. It is
 * never freed while its process lives: a claimer may be stopped or slow,
 * and freeing under it would let it overwrite the slot's next owner. */
#define CTL_CLAIM_TIMEOUT_NS (10ull * 1000000000ull)
#define CTL_DRAIN_BUDGET 4096u /* records per slot per scan: one noisy worker cannot starve others */

struct ctl_sample {
    uint64_t t_ns;
    uint64_t processed;
};

struct ctl_blob {
    uint8_t *data; /* msgpack map, validated */
    uint32_t len;
    uint32_t cap;
};

struct ctl_worker {
    /* What every scan reads of every slot comes first, in one cache line:
     * a scan of 10,000 slots 100 times a second pays for each line. */
    alignas(64) bool tracked;
    uint32_t quarantine; /* enum ph_quarantine */
    uint64_t word; /* slot state word of the claim we follow */
    ph_ring_consumer status;

    uint32_t index;
    int32_t pid;
    uint64_t start_time;
    char role[PH_ID_MAX];
    char instance[PH_ID_MAX];
    /* From the worker's PH_REC_META; "" until one arrives (a local worker:
     * the controller's host, "shm"). */
    char location[PH_LOCATION_MAX];
    char transport[8];
    uint64_t attached_real_ns;
    uint64_t tracked_mono_ns;

    ph_ring_producer command;
    bool command_ok; /* command ring positions passed validation: it may be written */
    int pidfd; /* -1 when unavailable: liveness then comes from the periodic check */
    bool pidfd_armed;
    uint64_t pidfd_poll; /* the event loop's poll of pidfd while armed (its id) */

    bool have_status;
    struct ph_rec_status st;
    uint64_t last_seen_ns; /* controller CLOCK_MONOTONIC of the latest record */
    struct ctl_sample win[CTL_TPS_SAMPLES];
    uint32_t win_len;
    uint64_t tps;
    /* The rate the samples give, computed when a sample is added (over
     * tps_window): a tick then only asks whether the newest sample aged
     * past the window, instead of walking the window for every worker. */
    uint64_t tps_rate, tps_window;

    struct ctl_blob config;
    struct ctl_blob io;
    struct ctl_blob queues; /* {in: [..], out: [..]} of io.work.queues, msgpack; len 0: none */
    uint64_t records;
    uint64_t bad_records;
    uint64_t alerts;
};

/* A claim in progress (slot CLAIMING or JOINING), as the controller first saw it.
 * Kept apart from ctl_worker, whose entry is cleared when a claim it
 * followed ends: these facts must outlive that. */
struct ctl_claim {
    uint64_t word;          /* state word first seen; 0: no claim in progress */
    uint64_t first_seen_ns; /* controller clock at first sight, not the slot's claim time */
    uint64_t start_time;    /* the claimer's /proc start time, read at first sight */
    bool known;             /* start_time was read: the claimer was alive then */
    bool published;         /* start_time is the one the claimer published (JOINING) */
    bool warned;            /* the once-only warning about a slow claim is out */
};

struct ctl;
/* Observers of table events (all optional). */
struct ctl_hooks {
    void *ctx;
    void (*joined)(void *ctx, struct ctl *c, struct ctl_worker *w);
    /* `dead` true when the owner died, false on a clean detach. Called
     * before the slot is freed; w still holds the last state. */
    void (*left)(void *ctx, struct ctl *c, struct ctl_worker *w, bool dead);
    void (*alert)(void *ctx, struct ctl *c, struct ctl_worker *w, const struct ph_rec_alert *a);
    void (*ack)(void *ctx, struct ctl *c, struct ctl_worker *w, const struct ph_rec_ack *a);
    void (*quarantined)(void *ctx, struct ctl *c, struct ctl_worker *w, const char *why);
    /* Every valid record, after the table is updated (tests, statistics). */
    void (*record)(void *ctx, struct ctl *c, struct ctl_worker *w, uint16_t type,
                   const uint8_t *body, uint32_t len);
};

#define CTL_PIDFD_CACHE 16
/* Polls to cancel kept between two loop iterations (a worker left a live
 * process); a scan rarely sees more leave at once. */
#define CTL_STALE_POLLS 256

struct ctl {
    struct ph_segment *seg;
    struct ctl_worker *w; /* seg->slots entries */
    struct ctl_claim *claims; /* seg->slots entries: claims in progress */
    uint8_t *scratch;     /* status_ring / 2 bytes */
    uint64_t started_mono_ns;
    uint64_t tps_window_ns;
    bool use_pidfd;
    struct ctl_hooks hooks;
    uint64_t next_token; /* (generation << 32) | n: disjoint across controller restarts */
    /* counters */
    uint64_t records;
    uint64_t reclaimed;
    uint64_t quarantined;
    uint64_t slow_claims; /* claims in progress longer than CTL_CLAIM_TIMEOUT_NS (warned) */
    uint32_t live;          /* tracked entries */
    uint32_t pidfds_to_arm; /* pidfds opened since the loop last armed polls */
    /* One bit per slot whose entry changed since the table's consumer
     * (the swarm module's tick) last cleared it: records drained, tracked,
     * departed, quarantined. The consumer visits those entries instead of
     * every slot; a bit set twice is still one visit. */
    uint64_t *dirty;
    uint32_t dirty_words;
    /* One bit per slot whose owner got a pidfd the event loop has not armed
     * yet (pidfds_to_arm counts them): arming visits those slots only. */
    uint64_t *to_arm;
    /* Processes whose pidfd was opened and checked lately (pid, start
     * time), with a pidfd of their own: one process attaches many workers,
     * and each of its workers gets a duplicate of that pidfd instead of a
     * pidfd_open and a read of /proc (a fifth of the controller's time
     * while 10,000 workers joined). Entries are replaced in turn. */
    struct ctl_pidfd_cache {
        int32_t pid;
        uint64_t start_time;
        int fd; /* -1: empty */
    } pidfds[CTL_PIDFD_CACHE];
    uint32_t pidfds_next;
    /* Polls of pidfds whose worker left while its process lives on: the
     * poll holds the process's pidfd open until it exits, so the loop must
     * cancel it (ctl_take_stale_polls). A full queue leaves the rest to
     * the process's exit, as before the queue; they are counted. */
    uint64_t stale_polls[CTL_STALE_POLLS];
    uint32_t nstale_polls;
    uint64_t stale_polls_dropped;
};

int ctl_init(struct ctl *c, struct ph_segment *seg, const struct ctl_hooks *hooks);
void ctl_destroy(struct ctl *c);

/* Follows claims and detaches, drains every tracked slot's status ring,
 * frees claims whose process is gone. Returns records drained. */
uint64_t ctl_scan(struct ctl *c, uint64_t now_ns);

/* The polls of departed workers' pidfds to cancel (ctl.h, stale_polls):
 * copies up to `max` ids into `ids`, removes them, returns how many. */
uint32_t ctl_take_stale_polls(struct ctl *c, uint64_t *ids, uint32_t max);
/* The owner of slot `index` is gone (pidfd fired, or the periodic check):
 * drain what it left, report it, free the slot. `word` guards against a
 * late notification about an earlier claim. */
void ctl_owner_died(struct ctl *c, uint32_t index, uint64_t word);
/* Periodic liveness check (pid + start time) of every tracked owner without
 * a pidfd, or of all when `all`. */
void ctl_check_liveness(struct ctl *c, bool all);

/* Writes a command into a worker's command ring; returns its token, or 0
 * when the ring is full, the worker is not tracked, or its command ring
 * failed validation (the slot is then quarantined and never written). */
uint64_t ctl_send_command(struct ctl *c, uint32_t index, uint16_t type, const uint8_t *patch,
                          size_t patch_len);

/* Marks slot `index` changed (also for callers that change an entry). */
void ctl_mark_dirty(struct ctl *c, uint32_t index);

/* tps of a worker at `now` from its window (integer items per second). */
uint64_t ctl_worker_tps(const struct ctl_worker *w, uint64_t now_ns, uint64_t window_ns);

#endif
