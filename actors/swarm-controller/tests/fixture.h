/* Test fixture for the swarm-controller unit tests.
 *
 * Each test gets a real shared-memory segment (unique swarm id, unlinked in
 * teardown), the controller's slot table (ctl) on it and the swarm module
 * with a capturing emitter: every packed document is decoded
 * (ph_mp_decode + ph_mp_to_json), checked against the contract's invariants
 * and kept in a list together with the simulated time it was emitted at;
 * journal entries are kept too.
 *
 * Time is simulated: f->now starts at the real CLOCK_MONOTONIC of set-up
 * (so claim times and SDK status stamps are comparable) and only moves when
 * a test calls fx_step(); the ctl hooks forward it to the swarm module.
 *
 * Workers are driven either through the real SDK (ph_worker_attach in this
 * process) or as "raw" workers: a slot claimed with ph_slot_claim whose
 * status ring the test writes directly, for exact control of timestamps and
 * counters, and whose command ring the test reads as the worker would. */
#ifndef PH_CTL_TEST_FIXTURE_H
#define PH_CTL_TEST_FIXTURE_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>
#include <jansson.h>

#include "ctl.h"
#include "ph/shm.h"
#include "ph/worker.h"
#include "swarm.h"

#define MS 1000000ull
#define SEC 1000000000ull

#define FX_MAX_WORKERS 16


struct fx {
    char id[PH_ID_MAX];
    char ctl_instance[PH_ID_MAX];
    struct ph_segment seg;
    struct ctl ctl;
    struct swarm sw;
    uint64_t t0;  /* simulated clock at set-up */
    uint64_t now; /* simulated clock */
    json_t *docs; /* [{doc, at, reliable}] in emission order */
    json_t *journal;
    int violations;
    char violation[1024];
    ph_worker *wk[FX_MAX_WORKERS];
    int nwk;
    bool adopting; /* joins seen while re-adopting are not synced */
    int closings;  /* calls of the emitter's closing hook */
    size_t closing_at; /* fx_ndocs() at the last of them */
    /* The highest outcome sequence number emitted; every tick reports it
     * delivered (a bridge whose broker confirms at once) unless
     * hold_confirms is set (a bridge that has not confirmed yet). */
    uint64_t emitted_seq;
    bool hold_confirms;
    /* Outcomes without "ts" pass the document check (sent again from a
     * journal written before outcomes were stamped). */
    bool unstamped_ok;
};

/* cmocka set-up / teardown: *state becomes a struct fx, already ticked once
 * (the startup status-full and first delta are in f->docs). */
int fx_setup(void **state);
/* The same with 64 KiB command rings (patches larger than the default's). */
int fx_setup_big_commands(void **state);
/* The same with 256 slots (16 otherwise). */
int fx_setup_many_slots(void **state);
int fx_teardown(void **state);

/* Advances the simulated clock by dt, then ctl_scan + swarm_tick at it
 * (with outcomes confirmed first: see hold_confirms). */
void fx_step(struct fx *f, uint64_t dt);
/* ctl_scan + swarm_tick at the current time. */
void fx_tick(struct fx *f);

/* Simulates a controller kill -9 and restart on the same segment: writes
 * the journal so far to a file, drops the swarm and slot table without any
 * clean-up, adopts the segment (generation + 1), recovers from the file
 * (swarm_recover) and ticks once. Returns what swarm_recover returned. */
long fx_restart_controller(struct fx *f);
/* The same, recovering from the journal at `path` as the test left it
 * (with <path>.1 beside it, or not). */
long fx_restart_controller_from(struct fx *f, const char *path);
/* Writes the journal entries so far to `path`, one line each. */
void fx_write_journal(const struct fx *f, const char *path);

/* ---- SDK workers ---- */
ph_worker *fx_attach(struct fx *f, const char *role, const char *instance);
/* The usual cast: generator g-1, processors p-1 and p-2, attached and seen. */
struct fx_three {
    ph_worker *g, *p1, *p2;
};
void fx_attach_three(struct fx *f, struct fx_three *t);
/* Detaches (clean exit) and forgets an SDK worker. */
void fx_detach(struct fx *f, ph_worker *w);
/* Polls the worker's command ring and applies what it finds as the real
 * worker does (enabled from the patch, config and status republished, then
 * ack with `ok`). Returns the number of commands handled; the last
 * CONFIG_PATCH patch (a new reference) goes to *last_patch when not NULL
 * and the last command type to *last_type. */
int wk_apply(ph_worker *w, bool ok, json_t **last_patch, int *last_type);
/* Commands waiting in the worker's ring, without acking (consumes them). */
int wk_drop_commands(ph_worker *w);

/* ---- raw workers ---- */
struct raw {
    struct fx *f;
    uint32_t index;
    struct ph_slot *slot;
    uint64_t claimed_ns; /* slot's claimed_mono_ns: the tps baseline sample */
    ph_ring_producer st;
    ph_ring_consumer cmd;
    uint8_t scratch[1u << 13];
    uint32_t seq;
};
struct raw_cmd {
    uint16_t type;
    uint64_t token;
    json_t *patch; /* new reference or NULL */
};
void raw_claim(struct fx *f, struct raw *r, const char *role, const char *instance);
void raw_status(struct raw *r, uint64_t mono_ns, uint64_t processed, bool enabled, uint8_t in,
                uint8_t out);
/* Drains the command ring into cmds (up to max); returns the count. The
 * caller json_decref()s the patches (raw_cmds_free). */
int raw_commands(struct raw *r, struct raw_cmd *cmds, int max);
void raw_cmds_free(struct raw_cmd *cmds, int n);
void raw_ack(struct raw *r, uint64_t token, bool ok);

/* ---- signals ---- */
/* Builds a signal document (ph/doc.h) and hands it to swarm_on_signal at
 * f->now. swarm NULL = this swarm; role/instance/ikey NULL = nil; data_json
 * NULL = {}. */
void fx_signal(struct fx *f, const char *type, const char *role, const char *instance,
               const char *cid, const char *ikey, const char *data_json);
void fx_signal_swarm(struct fx *f, const char *type, const char *swarm, const char *role,
                     const char *instance, const char *cid, const char *ikey,
                     const char *data_json);

/* ---- captured documents ---- */
size_t fx_ndocs(const struct fx *f);
json_t *fx_doc(const struct fx *f, size_t i); /* borrowed */
uint64_t fx_doc_at(const struct fx *f, size_t i);
/* Matching docs from index `from`: kind/type/role NULL = any. */
size_t fx_count(const struct fx *f, size_t from, const char *kind, const char *type,
                const char *role);
/* Last matching doc at or after `from` (borrowed), NULL when none. */
json_t *fx_last(const struct fx *f, size_t from, const char *kind, const char *type,
                const char *role);
json_t *fx_first(const struct fx *f, size_t from, const char *kind, const char *type,
                 const char *role);
/* Index of the first matching doc at or after from, or (size_t)-1. */
size_t fx_find(const struct fx *f, size_t from, const char *kind, const char *type,
               const char *role);

/* ---- journal ---- */
/* Index of the first journal entry at or after `from` with event == ev and
 * (when not NULL) change == change and instance == instance, or -1. */
long fx_journal_find(const struct fx *f, long from, const char *ev, const char *change,
                     const char *instance);

/* ---- JSON helpers ---- */
/* Dotted path lookup ("data.context.totals.healthy"); borrowed or NULL. */
json_t *jget(const json_t *v, const char *path);
const char *jstr(const json_t *v, const char *path);
long long jint(const json_t *v, const char *path); /* asserts an integer */
bool jbool(const json_t *v, const char *path);     /* asserts a boolean */
bool jhas(const json_t *v, const char *path);

#endif
