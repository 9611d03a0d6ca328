/* A process-local copy of what a swarm's segment shows at one instant.
 *
 * shm-dump reads the segment once into this plain structure, then renders
 * it as text or JSON; nothing downstream touches shared memory. The copy is
 * taken the way a debugger would: read-only, every index bounded by the
 * geometry libph validated on open, strings NUL-terminated, and a segment
 * shrunk under the reader (SIGBUS) reported as truncated instead of a
 * crash. */
#ifndef PHCTL_SNAPSHOT_H
#define PHCTL_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ph/shm.h"

#define DUMP_AGE_NONE (-1) /* no timestamp was ever written */

struct dump_header {
    char swarm_id[PH_ID_MAX];
    char path[PH_ID_MAX + 16]; /* "/dev/shm/ph.<swarm>" */
    uint32_t layout_version;
    uint64_t generation;
    int32_t controller_pid;
    uint64_t controller_start_time;
    bool controller_alive;
    int64_t controller_hb_age_ms; /* DUMP_AGE_NONE when it never beat */
    uint32_t slot_capacity;
    uint32_t slots_used;      /* non-FREE slots seen */
    uint32_t slots_changing;  /* non-FREE slots skipped: reclaimed while being read */
    uint32_t slot_high_water; /* as the header says, unbounded: it is untrusted */
    uint64_t segment_bytes;
    uint32_t status_ring;
    uint32_t command_ring;
    uint64_t quarantined_total;
    uint64_t reclaimed_total;
    uint64_t created_real_ns;
    uint64_t taken_mono_ns; /* when this snapshot was taken */
    uint64_t taken_real_ns;
};

struct dump_ring {
    uint64_t used; /* bytes, bounded by capacity */
    uint64_t capacity;
    uint64_t overflows;
};

enum dump_tps_source {
    DUMP_TPS_CONTROLLER, /* the live controller's estimate */
    DUMP_TPS_STALE,      /* the last estimate of a controller that is gone */
    DUMP_TPS_PHCTL,      /* computed by phctl from processed between two refreshes */
};

struct dump_worker {
    uint32_t slot;
    uint64_t state_word; /* identifies the claim: a new owner changes it */
    unsigned state;      /* enum ph_slot_state */
    char role[PH_ID_MAX];
    char instance[PH_ID_MAX];
    int32_t pid;
    uint64_t start_time;
    uint64_t attached_real_ns;
    bool alive;
    bool enabled;
    int io_in;  /* enum ph_io_in, possibly out of range: names say "unknown" */
    int io_out; /* enum ph_io_out */
    uint64_t processed;
    uint64_t errors;
    uint64_t tps;
    enum dump_tps_source tps_source;
    uint64_t hb_ns;            /* worker clock of its last status (processed is as of then) */
    int64_t hb_age_ms;         /* DUMP_AGE_NONE when never written */
    int64_t last_drain_age_ms; /* controller's last record from this slot */
    uint64_t records;          /* records the controller drained from this slot */
    struct dump_ring status;
    struct dump_ring command;
    unsigned quarantine; /* enum ph_quarantine */
};

struct dump {
    struct dump_header hdr;
    struct dump_worker *workers; /* sorted by slot */
    size_t n;
    size_t cap;
};

/* Reads `seg` into `out` (which may hold a previous snapshot: its storage is
 * reused). PH_ERR_TRUNC with a message when the segment shrank during the
 * read; PH_ERR_SYS when memory runs out. */
int dump_take(const struct ph_segment *seg, struct dump *out, char *err, size_t errlen);
void dump_free(struct dump *d);

/* For snapshots of a dead controller: replaces each worker's stale tps by
 * phctl's own measure against `prev` for slots still held by the same
 * claim: the processed delta over the delta of the worker's heartbeat
 * stamps (the mirror moves once per status, so dividing by the time between
 * refreshes would jitter), kept between two statuses, 0 for a dead owner
 * or one silent for DUMP_SILENT_MS. */
#define DUMP_SILENT_MS 5000
void dump_rates_from(struct dump *cur, const struct dump *prev);

const char *dump_state_name(unsigned state);
const char *dump_tps_source_name(enum dump_tps_source s);

#endif
