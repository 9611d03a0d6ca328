/* Swarm semantics of the controller: the swarm aggregate, when status goes
 * out, lifecycle commands and their outcomes.
 *
 * Inputs: the worker table (ctl.h), signal documents from the bridge, and
 * the clock. Outputs: documents (ph/doc.h) handed to an emitter, and journal
 * entries. Time is always passed in, so every rule here is unit-testable
 * without processes: tps windows, staleness, ioState priority, coalescing,
 * the watermark cadence and idempotent replays.
 *
 * Emission rules (CONTRACT.md §3):
 *  - controller status-delta: when the aggregate changes (paced: at the next
 *    tick after a quiet spell, one per `coalesce_ns` on average under
 *    sustained change, SWARM_DELTA_BURST) and at least every `watermark_ns`;
 *  - controller status-full: on startup, on status-request, after swarm-start
 *    is applied, whenever a (new) bridge registers, and when the worker set
 *    changes (a worker joins, leaves, dies or its dead entry is dropped),
 *    coalesced to at most one per `member_full_ns`, so that a consumer
 *    holding the latest full always has the live worker list;
 *  - worker status-full: when it joins (once its first status arrived), after a
 *    config-update is applied to it, on a status-request addressed to it;
 *  - worker status-delta: when its enabled/ioState/stale changes, at most once
 *    per worker per `worker_delta_ns`, and at least every
 *    `worker_heartbeat_ns`; none at all when `worker_deltas` is false;
 *  - removal: once swarm-remove has completed, nothing else is in flight and
 *    the stopped workers have left (or `cmd_timeout_ns` passed), the final
 *    REMOVED status-delta and status-full go out, after which the
 *    swarm emits nothing more and swarm_finished() is true: the process may
 *    stop once the bridge has published them (emitter `closing`). */
#ifndef PH_SWARM_H
#define PH_SWARM_H

#include <jansson.h>
#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>

#include "ph/cidset.h"
#include "ctl.h"
#include "desired.h"

#define SWARM_MAX_ROLES 64
#define SWARM_MAX_GHOSTS 1024
#define SWARM_MAX_PENDING 64
#define SWARM_IDEM_CACHE 512
#define SWARM_MAX_PLAN_STEPS 256
#define SWARM_MAX_FULL_CIDS 32
/* The tick's timer wheel: SWARM_WHEEL buckets of 2^SWARM_WHEEL_SHIFT ns
 * (16.8 ms), a horizon of 17 s; a later deadline waits in its bucket for
 * as many turns as it needs. */
#define SWARM_WHEEL 1024u
#define SWARM_WHEEL_SHIFT 24u
#define SWARM_NO_LINK UINT32_MAX
/* swarm_agg.oldest_seen_ns before it is looked up (at emission only). */
#define SWARM_OLDEST_LAZY UINT64_MAX

enum swarm_status {
    SW_NEW,
    SW_READY,
    SW_STARTING,
    SW_RUNNING,
    SW_STOPPING,
    SW_STOPPED,
    SW_REMOVED,
    SW_FAILED,
};
const char *swarm_status_name(enum swarm_status s);

struct swarm_cfg {
    char swarm_id[PH_ID_MAX];
    char instance[PH_ID_MAX]; /* the controller's instance id */
    char run_id[128];         /* journal run id; "" when none */
    char host[PH_LOCATION_MAX]; /* this host's name: the location of local workers */
    uint64_t ttl_ns;          /* status older than this: stale (default 15 s) */
    uint64_t watermark_ns;    /* delta at least this often (default 5 s) */
    uint64_t coalesce_ns;     /* controller deltas: one per this on average (default 20 ms) */
    uint64_t worker_delta_ns; /* at most one delta per worker per this (default 5 s) */
    uint64_t dead_grace_ns;   /* dead workers stay listed this long (default 30 s) */
    uint64_t cmd_timeout_ns;  /* workers must ack within this (default 5 s) */
    uint64_t worker_heartbeat_ns; /* worker delta at least this often (default 5 s) */
    uint64_t member_full_ns;      /* at most one membership status-full per this (default 1 s) */
    bool worker_deltas;       /* per-worker deltas on (default true) */
    bool auto_start;          /* apply swarm-start once every desired worker joined */
};
void swarm_cfg_defaults(struct swarm_cfg *c);

struct swarm_role {
    char role[PH_ID_MAX];
    uint32_t count;
};

/* A worker that died: listed (stale) for the grace period, unless a worker of
 * the same role and instance joins again. */
struct swarm_ghost {
    bool used;
    char role[PH_ID_MAX];
    char instance[PH_ID_MAX];
    int32_t pid;
    bool enabled;
    uint8_t io_in, io_out;
    uint64_t last_seen_ns;
    uint64_t died_ns;
    char location[PH_LOCATION_MAX]; /* "" for a local worker */
    char transport[8];
};

/* Per-slot emission memory, parallel to ctl->w. */
struct swarm_wstate {
    uint64_t word;            /* claim it describes */
    bool full_sent;           /* join status-full went out */
    bool stale;               /* last stale verdict */
    bool stale_requested;     /* a status-request command was sent for the stale spell */
    uint8_t sent_flags;       /* enabled/io of the last delta or full */
    uint8_t sent_in, sent_out;
    bool delta_due;
    uint64_t last_delta_ns;
    int16_t role_hint;        /* its role's index in the last aggregate (a guess, checked
                               * against role_hash: no string compare per worker per tick) */
    uint64_t role_hash;       /* FNV-1a 64 of its role, for the claim role_word */
    uint64_t role_word;
    bool sync_check;          /* inherited from a previous controller: compare its config
                               * with the desired one once it has reported it */
    uint64_t sync_check_since;
    char last_alert_code[64]; /* per-worker alert flood guard */
    uint64_t last_alert_ns;
    uint32_t alerts_suppressed;
};

/* What one tracked worker adds to the aggregate, as of its last visit by
 * the tick, kept so that the next visit takes exactly that out again; and
 * its place in the timer wheel. Parallel to ctl->w, never cleared by the
 * join and leave hooks (a visit settles it). */
struct swarm_acc {
    bool counted;
    bool enabled, healthy;
    bool queued; /* in the wheel, at due_ns */
    uint8_t io_in, io_out;
    int16_t role; /* index in swarm.iroles; -1: none (table full) */
    uint64_t tps;
    uint64_t due_ns;
    uint32_t next, prev; /* bucket list links (SWARM_NO_LINK) */
};

/* Attempts of one idempotencyKey that may wait for a command in flight; a
 * further attempt is answered at once (failed, retryable). */
#define SWARM_MAX_EXTRA 4096
/* Controller deltas are paced by a token bucket: each costs coalesce_ns of
 * credit, credit accrues with time up to this many deltas' worth. A change
 * after a quiet spell goes out at the next tick; under sustained change
 * deltas average one per coalesce_ns (50/s by default). */
#define SWARM_DELTA_BURST 4
/* Correlation ids remembered against redelivery (ph/cidset.h). */
#define SWARM_SEEN_CIDS 16384
/* Outcomes handed out and not yet known delivered, kept for a restart (see
 * swarm_outcomes_delivered); beyond this many the oldest are forgotten. */
#define SWARM_UNDELIVERED_MAX 16384u

struct swarm_target {
    uint32_t slot;
    uint64_t word;
    uint64_t token;
    bool done;
    bool ok;
};

/* A command waiting for worker acks before its outcome goes out. */
struct swarm_pending {
    bool used;
    char type[32];
    char cid[256];
    char ikey[256];
    char scope_role[PH_ID_MAX];     /* "" = null */
    char scope_instance[PH_ID_MAX]; /* "" = null */
    enum swarm_status on_success;   /* lifecycle status to enter, or -1 */
    bool lifecycle;
    bool enabled_known;
    bool enabled;
    bool full_after;   /* controller status-full once applied */
    uint64_t deadline_ns;
    struct swarm_target *targets;
    uint32_t ntargets;
    char failure[256];
    /* replays of the same idempotencyKey that arrived while in flight: each
     * attempt gets its own outcome when the command completes */
    char **extra;
    uint32_t nextra, extra_cap;
    /* an internal command bringing a (re)joining worker to the swarm's state */
    bool join_sync;
    /* the signal as journaled (owned; NULL for internal commands): written
     * into a checkpoint so that a restarted controller can apply it again */
    json_t *signal;
};

struct swarm_idem {
    bool used;
    char ikey[256];
    char type[32];
    char status[32];
    bool enabled_known, enabled, retryable;
    uint64_t at_ns;
};

struct swarm_plan_step {
    char id[64];
    uint64_t offset_ns;
    char role[PH_ID_MAX];     /* "" = all workers */
    char instance[PH_ID_MAX]; /* "" = all of the role */
    json_t *patch;
    bool fired;
};

struct swarm_plan {
    bool active;
    struct swarm_plan_step steps[SWARM_MAX_PLAN_STEPS];
    uint32_t nsteps;
    uint64_t started_ns;
    uint32_t total_runs;
    uint32_t runs_done;
    char last_step[64];
};

/* Per-role summary within the aggregate. */
struct swarm_role_sum {
    char role[PH_ID_MAX];
    uint64_t hash; /* FNV-1a 64 of role */
    uint32_t count, enabled, desired;
    uint64_t tps;
};

/* What the controller aggregate looks like at one moment: computed in one
 * pass over the table per tick, then rendered without another pass. */
struct swarm_agg {
    struct swarm_role_sum roles[SWARM_MAX_ROLES];
    uint32_t nroles;
    uint32_t desired, healthy, running, enabled, live;
    uint8_t io_in, io_out;
    uint64_t tps;
    uint64_t oldest_seen_ns; /* CLOCK_MONOTONIC of the oldest healthy heartbeat, 0 if none */
    enum swarm_status status;
    const char *state;
    uint32_t plan_fired;
    uint32_t plan_gen;
    bool journal_failing;
};

struct swarm_emitter {
    void *ctx;
    /* A packed document (ph/doc.h). `reliable`: outcome, alert or a removed
     * swarm's final status, must not be lost (the emitter keeps it, in
     * order, until the bridge takes it). `seq`: an outcome's sequence
     * number (> 0, increasing; its journal entry carries it), 0 for any
     * other document; the emitter reports the outcomes the broker confirmed
     * with swarm_outcomes_delivered(). Returns false when a non-reliable
     * document could not be queued (the caller retries). */
    bool (*emit)(void *ctx, const char *data, size_t len, bool reliable, uint64_t seq);
    /* One journal entry (a JSON object, borrowed). May be NULL. */
    void (*journal)(void *ctx, json_t *entry);
    /* Called right before the final documents of a removed swarm are
     * emitted (again after swarm_on_bridge re-sends them): the process
     * marks the channel so that the bridge publishes them with confirms.
     * May be NULL. */
    void (*closing)(void *ctx);
};

struct swarm {
    struct swarm_cfg cfg;
    struct ctl *ctl;
    struct swarm_emitter out;
    struct swarm_role roles[SWARM_MAX_ROLES];
    uint32_t nroles;
    json_t *controller_config; /* reported as data.config of the controller full */
    enum swarm_status status;
    bool workloads_enabled;
    uint64_t started_real_ns;
    uint64_t started_mono_ns;

    struct swarm_wstate *ws; /* ctl->seg->slots entries */

    /* The aggregate, kept up to date by visits (swarm_agg_build): the tick
     * visits only the workers whose entry changed (ctl's dirty bits) or
     * whose next time-driven change (staleness, tps aging, join status-full,
     * worker delta or heartbeat, inherited config check) came due in the
     * wheel. Its cost follows what changed, not the number of workers. */
    struct swarm_acc *acc;  /* ctl->seg->slots entries */
    uint64_t *seen_ns;      /* per slot: last_seen of a healthy worker, 0 otherwise */
    struct swarm_role_sum iroles[SWARM_MAX_ROLES]; /* roles of the counted workers */
    uint32_t niroles;
    uint32_t unroled; /* counted workers whose role found no room in iroles */
    uint32_t live, enabled, healthy, running;
    uint32_t in_hist[256], out_hist[256]; /* healthy workers per ioState */
    uint64_t tps;
    uint32_t wheel[SWARM_WHEEL];
    uint64_t wheel_next; /* absolute bucket the next tick starts from */
    struct swarm_ghost ghosts[SWARM_MAX_GHOSTS];
    struct swarm_pending pending[SWARM_MAX_PENDING];
    struct swarm_idem idem[SWARM_IDEM_CACHE];
    struct swarm_plan plan;

    /* emission state */
    bool full_due;                                  /* a full without a correlationId */
    char full_cids[SWARM_MAX_FULL_CIDS][256];       /* status-requests waiting for a full */
    uint32_t nfull_cids;
    uint32_t plan_gen;                              /* +1 per accepted plan */
    struct swarm_agg last_sent;
    bool have_sent;
    uint64_t last_delta_ns;
    uint64_t delta_credit_ns; /* pacing credit (SWARM_DELTA_BURST) */
    uint64_t credit_at_ns;    /* when the credit was last brought up to date */
    bool delta_due;
    const char *last_health; /* for health transitions in the journal */
    bool auto_started;
    bool members_changed; /* the worker set changed since the last controller full */
    bool have_full;       /* a controller full went out (last_full_ns is valid) */
    uint64_t last_full_ns;
    size_t full_bytes;    /* the last controller full's size: the next one's buffer */
    bool finished;       /* removed: the final documents went out, nothing follows */
    uint8_t final_stage; /* removal ending: 0 not begun, 1 announced, 2 final delta out */
    bool removed_seen;   /* status REMOVED noticed by the tick, at removed_ns */
    uint64_t removed_ns;
    uint64_t last_tick_ns; /* the previous swarm_tick (0: none yet) */

    /* delivery and restart safety */
    struct ph_cidset seen;   /* correlation ids taken in (each gets one outcome) */
    uint64_t out_seq;             /* the last outcome's sequence number */
    uint64_t delivered_seq;       /* outcomes up to this one were confirmed */
    uint64_t delivered_journaled; /* the last "delivered" journal entry */
    json_t **undelivered;         /* ring of SWARM_UNDELIVERED_MAX outcome entries */
    uint32_t undel_head, undel_n; /* oldest entry, entries held */
    uint64_t undel_forgotten;     /* entries forgotten for lack of room */
    struct desired desired;  /* config in force for (re)joining workers */
    uint64_t state_seq;      /* +1 per change of status, workloads, roles or desired */
    uint64_t state_journaled;
    bool journal_failing; /* the journal cannot take entries (swarm_set_journal_failing) */

    /* statistics */
    uint64_t deltas, fulls, outcomes, alerts, worker_fulls, worker_deltas, duplicates,
        join_syncs, outcomes_resent;
    uint64_t visits; /* worker visits by the tick */
};

int swarm_init(struct swarm *s, struct ctl *ctl, const struct swarm_cfg *cfg,
               const struct swarm_emitter *out, uint64_t now_ns);
void swarm_destroy(struct swarm *s);
/* Desired roles and counts (swarm file or swarm-template). */
void swarm_set_roles(struct swarm *s, const struct swarm_role *roles, uint32_t n);

/* ctl hooks forward here. `sync`: bring the worker to the swarm's desired
 * state now. False for workers found attached when an adopted segment is
 * taken over: those are checked once they have reported their config (or
 * after SWARM_SYNC_CHECK_NS) and sent the desired config only if it
 * differs, because a restarted controller must not disturb a whole swarm,
 * yet a worker restarted while no controller ran must not stay behind. */
#define SWARM_SYNC_CHECK_NS 2000000000ull
void swarm_on_joined(struct swarm *s, struct ctl_worker *w, bool sync, uint64_t now_ns);
void swarm_on_left(struct swarm *s, struct ctl_worker *w, bool dead, uint64_t now_ns);
void swarm_on_alert(struct swarm *s, struct ctl_worker *w, const struct ph_rec_alert *a);
void swarm_on_ack(struct swarm *s, struct ctl_worker *w, const struct ph_rec_ack *a,
                  uint64_t now_ns);
/* A signal document from the bridge (already validated by it; re-checked). */
void swarm_on_signal(struct swarm *s, const uint8_t *doc, size_t len, uint64_t now_ns);
/* Whether the process's journal is failing (journal_failing()): reported
 * as data.context.journal.failing, a change in the next delta. Signals and
 * outcomes wait for the journal meanwhile; status does not. The change to
 * failing raises the alert journal.failing (sent at once, not journaled:
 * the outbox would hold it until the journal works again); the change back
 * raises journal.recovered (reliable, journaled). */
void swarm_set_journal_failing(struct swarm *s, bool failing);
/* An alert from the controller itself (reliable, journaled). */
void swarm_controller_alert(struct swarm *s, const char *level, const char *code,
                            const char *message);
/* The bridge (re)registered: it needs a fresh status-full. After the swarm
 * finished, the final documents are emitted again instead: the previous
 * bridge may have taken them without publishing them. */
void swarm_on_bridge(struct swarm *s);
/* True once a removed swarm's final REMOVED status-delta and status-full
 * have been emitted: the controller has nothing more to say and may stop
 * when the bridge has them. */
static inline bool swarm_finished(const struct swarm *s)
{
    return s->finished;
}
/* After a controller restart on an adopted segment: takes back, from the
 * previous controller's journal, the lifecycle status, the workloads flag,
 * the roles, the desired worker config, the idempotency cache and the ids
 * already answered; signals that were taken in but never answered are
 * applied again (or answered failed, retryable, when their data was not
 * journaled whole). Returns the number of entries read, or -1 with a
 * message when the file cannot be read. */
long swarm_recover(struct swarm *s, const char *journal_path, uint64_t now_ns, char *err,
                   size_t errlen);

/* Journal forms of the swarm's state, used by the journal (state entries,
 * checkpoints at rotation) and by swarm_recover (journal.h). */
/* {status, workloadsEnabled, roles, desired, stateSeq}: a new object. */
json_t *swarm_state_json(const struct swarm *s);
void swarm_state_restore(struct swarm *s, const json_t *state);
/* A checkpoint: the state plus the idempotency cache, the ids taken in, the
 * signals still waiting for their outcome and the outcomes not yet known
 * delivered. A new object. */
json_t *swarm_checkpoint_json(const struct swarm *s);
/* Recovery steps (recover.c drives them). */
void swarm_idem_restore(struct swarm *s, const json_t *outcome_entry, uint64_t now_ns);
/* A journal entry's positive integer member `key` ("seq", "outSeq",
 * "deliveredSeq"); 0 when absent or not a positive integer. */
uint64_t swarm_entry_u64(const json_t *entry, const char *key);
/* Sends again, as it was, a journaled outcome (an entry with "seq") that
 * no "delivered" entry covers: the previous controller may have died
 * between journaling it and handing it to the bridge. The bridge drops one
 * it already published (its correlationId). */
void swarm_resend_outcome(struct swarm *s, const json_t *outcome_entry);
/* Applies a journaled signal entry again (its correlationId is marked as
 * taken in); one whose data was not journaled whole is answered failed,
 * retryable. */
void swarm_apply_recovered(struct swarm *s, const json_t *signal_entry, uint64_t now_ns);

/* The broker confirmed every outcome up to sequence number `seq` (the
 * bridge handed the document ring back past it). The next tick journals it
 * ("delivered"), so that a restarted controller sends again only the
 * outcomes after it (swarm_recover). */
void swarm_outcomes_delivered(struct swarm *s, uint64_t seq);

/* Periodic work: staleness, ghosts, command timeouts, plan steps, and the
 * emission decisions. Call every tick after ctl_scan(). */
void swarm_tick(struct swarm *s, uint64_t now_ns);

/* Aggregate now (exposed for tests and tools). */
void swarm_aggregate(const struct swarm *s, uint64_t now_ns, struct swarm_agg *out);
/* The same aggregate from the totals the tick keeps (no pass over the
 * workers), as of the last swarm_tick; oldest_seen_ns is
 * SWARM_OLDEST_LAZY, looked up when a document is packed. */
void swarm_agg_build(const struct swarm *s, uint64_t now_ns, struct swarm_agg *out);
/* FNV-1a 64 of a role name (the role tables compare it before the name). */
uint64_t swarm_role_hash(const char *role);
/* The oldest heartbeat of a healthy worker as of the last tick, 0 if none. */
uint64_t swarm_oldest_seen(const struct swarm *s);
/* True when `a` differs from `b` enough to warrant a delta. */
bool swarm_agg_changed(const struct swarm_agg *a, const struct swarm_agg *b);
/* Combined work ioState of several workers: highest priority wins. */
uint8_t swarm_combine_in(uint8_t a, uint8_t b);
uint8_t swarm_combine_out(uint8_t a, uint8_t b);
bool swarm_worker_healthy(const struct swarm *s, const struct ctl_worker *w, uint64_t now_ns);
/* Where a worker runs and how it reports: its PH_REC_META, or this host and
 * "shm" for a local worker. */
const char *swarm_worker_location(const struct swarm *s, const struct ctl_worker *w);
const char *swarm_worker_transport(const struct ctl_worker *w);
/* A worker that publishes its own contract status over AMQP (transport
 * "amqp"): the controller merges it into the aggregate and lists it, but
 * never speaks for it (no per-worker status of its own from here). */
bool swarm_worker_speaks_for_itself(const struct ctl_worker *w);

/* Status documents (status.c); false when the emitter could not queue them. */
bool swarm_emit_controller_delta(struct swarm *s, const struct swarm_agg *a, uint64_t now_ns);
bool swarm_emit_controller_full(struct swarm *s, const struct swarm_agg *a, const char *cid,
                                uint64_t now_ns);
bool swarm_emit_worker_full(struct swarm *s, const struct ctl_worker *w, const char *cid,
                            uint64_t now_ns);
bool swarm_emit_worker_delta(struct swarm *s, const struct ctl_worker *w, uint64_t now_ns);

#endif
