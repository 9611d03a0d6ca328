/* The per-swarm shared-memory segment: /dev/shm/ph.<swarmId>.
 *
 *   +--------------------+  offset 0
 *   | ph_shm_header      |  PH_SHM_HEADER_SIZE bytes (one page)
 *   +--------------------+
 *   | claim index        |  one 64-bit word per slot, whole pages
 *   +--------------------+  (ph_claim_index_bytes(slots))
 *   | slot table         |  slots x PH_SLOT_META_SIZE bytes: each slot's
 *   |   ph_slot 0, 1 ... |    ph_slot (state, identity, ring positions)
 *   +--------------------+
 *   | rings of slot 0    |  status_ring bytes  (worker -> controller)
 *   |                    |  command_ring bytes (controller -> worker)
 *   | rings of slot 1 ...|
 *   +--------------------+
 *
 * (Layout 4; layout 3 put each slot's rings right after its metadata.) The
 * table keeps every slot's state word and ring positions together, five to
 * a page: the controller polls them all on every tick, and a claim touches
 * a page that neighbouring claims share, where rings kilobytes apart made
 * each slot a page fault and a TLB miss of its own. slot_size (metadata
 * plus rings) is still the per-slot cost.
 *
 *   size = PH_SHM_HEADER_SIZE + ph_claim_index_bytes(slots)
 *          + slots * (PH_SLOT_META_SIZE + status_ring + command_ring)
 *
 * The claim index holds, per slot, a hash of the (role, instance) its last
 * claimer announced (0: none yet). A claimer's duplicate check reads it as
 * one dense array instead of every slot's identity (slots are kilobytes
 * apart): it only looks at a slot whose word matches its own hash. The
 * words are hints: a match is checked against the slot's state and
 * identity, any value is safe (see shm/slot.c).
 *
 * The controller creates the segment and writes the immutable part of the
 * header; storing `magic` (release) is the last step and publishes it.
 * Which process is the controller is one word, `controller_claim` (pid and
 * start time): set at creation, taken over by one CAS when its process is
 * gone, given up on a clean exit; so two controllers never share a swarm.
 * Readers acquire `magic` first, copy the immutable part once and validate
 * and use only that copy; the segment is untrusted input to every reader.
 *
 * Slot ownership is one 64-bit word, `state`: bits 0-7 the state, 8-31 a
 * claim counter (so a stale compare-and-swap cannot hit a later owner),
 * 32-63 the owner's pid. The transitions, each a CAS on that word:
 *
 *   FREE -> CLAIMING      worker: the slot is its own; it writes its identity
 *                         and resets the rings
 *   CLAIMING -> JOINING   worker (seq_cst): identity published; it now checks
 *                         every other slot for the same role and instance
 *   JOINING -> FREE       worker: lost (a live duplicate is ACTIVE, or JOINING
 *                         in a lower slot) -> PH_ERR_BUSY
 *   JOINING -> ACTIVE     worker (release): won; the controller tracks it
 *   ACTIVE -> DETACHED    worker, on clean exit, from the exact word its claim
 *                         returned
 *   DETACHED -> FREE      controller, once it has drained the rings
 *   any -> FREE           controller, when the process named by the word is
 *                         gone (dead, zombie, or its pid reused): never
 *                         because a claim is slow
 *
 * The identity (pid, start time, role, instance) is stored as 64-bit atomic
 * words, written while CLAIMING and read under a seqlock on `state`,
 * because a reader may copy it while a new claimer writes it.
 * No process-shared lock exists anywhere: a process killed at any point
 * leaves a state the others can see and repair.
 *
 * Layout version 3: identity words, the controller claim word, JOINING
 * (version 2), and the claim index between the header and the slots, with
 * the refused-claims counter in what had been padding of the claim line.
 * Programs refuse segments of any other version. */
#ifndef PH_SHM_H
#define PH_SHM_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

#include "ph/common.h"
#include "ph/ring.h"

#ifdef __cplusplus
extern "C" {
#endif

#define PH_SHM_MAGIC 0x31304d4853485050ull /* "PPHSHM01" little-endian */
#define PH_LAYOUT_VERSION 4u
#define PH_SHM_HEADER_SIZE 4096u
#define PH_SLOT_META_SIZE 768u
#define PH_MAX_SLOTS 65536u
#define PH_ID_WORDS (PH_ID_MAX / 8) /* 64-bit words of an identifier in a slot */
_Static_assert(PH_ID_MAX % 8 == 0, "identifiers are stored as whole 64-bit words");
#define PH_DEFAULT_SLOTS 256u
#define PH_DEFAULT_STATUS_RING 8192u
#define PH_DEFAULT_COMMAND_RING 4096u

struct ph_shm_header {
    /* Immutable after publication. */
    _Atomic uint64_t magic; /* stored last with release: publishes the rest */
    uint32_t layout_version;
    uint32_t header_size;
    uint64_t segment_size;
    uint32_t slot_capacity;
    uint32_t slot_size;
    uint32_t status_ring;  /* bytes of status ring data per slot */
    uint32_t command_ring; /* bytes of command ring data per slot */
    uint64_t created_real_ns;
    char swarm_id[PH_ID_MAX];

    /* Controller line: written by the controller only. */
    /* Who is the controller: ph_controller_claim_word(pid, start time), or 0
     * after a clean exit. Set by the creator before magic is published;
     * taken by an adopter with one compare-and-swap, only from a claim
     * whose process is gone, before it touches anything else. This word,
     * not controller_pid, decides adoption. */
    alignas(64) _Atomic uint64_t controller_claim;
    /* For readers (tools, workers): published by ph_segment_set_controller. */
    _Atomic int32_t controller_pid;
    _Atomic uint64_t controller_start_time;  /* /proc/<pid>/stat starttime */
    _Atomic uint64_t controller_heartbeat_ns; /* CLOCK_MONOTONIC */
    _Atomic uint64_t generation;              /* +1 per controller (re)start */
    _Atomic uint64_t quarantined_total;
    _Atomic uint64_t reclaimed_total; /* slots freed after their owner died */

    /* Claim line: written by claiming workers. */
    /* 1 + highest slot a claim was ever attempted on: raised before the
     * claim's CAS, so every slot not FREE is below it. */
    alignas(64) _Atomic uint32_t slot_high_water;
    /* Claims refused because every slot was taken: +1 per refusal (in what
     * was padding of this line); the controller raises an alert when it
     * rises. */
    _Atomic uint32_t claims_refused_full;
    /* Where the next claim starts looking (a hint, in what was padding of
     * this line: 0 in a segment that never had it). Each claimer takes its
     * own start with a fetch-and-add, so claimers attaching at the same
     * time start on different slots instead of racing for the same one;
     * a slot given back lowers it, so that the lowest free slots are taken
     * again first and the high-water mark stays low. */
    _Atomic uint32_t claim_next;

    /* Run facts, written by each controller before it publishes its pid
     * (ph_segment_set_controller); readers copy and NUL-terminate them. */
    alignas(64) char controller_instance[PH_ID_MAX];
    char run_id[128];
    char journal_path[512];
};

enum ph_slot_state {
    PH_SLOT_FREE = 0,
    PH_SLOT_CLAIMING = 1,
    PH_SLOT_ACTIVE = 2,
    PH_SLOT_DETACHED = 3,
    PH_SLOT_JOINING = 4, /* identity published; its claimer is checking for duplicates */
};
static inline unsigned ph_slot_state_of(uint64_t w)
{
    return (unsigned)(w & 0xffu);
}
static inline uint32_t ph_slot_seq_of(uint64_t w)
{
    return (uint32_t)((w >> 8) & 0xffffffu);
}
static inline int32_t ph_slot_pid_of(uint64_t w)
{
    return (int32_t)(w >> 32);
}
static inline uint64_t ph_slot_word(unsigned state, uint32_t seq, int32_t pid)
{
    return ((uint64_t)(uint32_t)pid << 32) | ((uint64_t)(seq & 0xffffffu) << 8) | (state & 0xffu);
}

/* Quarantine reasons, written by the controller. */
enum ph_quarantine {
    PH_Q_NONE = 0,
    PH_Q_RING = 1,     /* a ring's positions or a status record header out of bounds */
    PH_Q_RECORD = 2,   /* a record body failed validation */
    PH_Q_IDENTITY = 3, /* role/instance not a valid identifier */
};
const char *ph_quarantine_name(int q);

struct ph_slot {
    /* Ownership line. */
    alignas(64) _Atomic uint64_t state;
    _Atomic uint64_t claimed_mono_ns; /* when CLAIMING began (the tps baseline) */
    /* Identity: 64-bit words, because a reader may copy them while a new
     * claimer writes them. Written with relaxed stores by the claimer while
     * the slot is CLAIMING, published by its CAS out of CLAIMING, read with
     * relaxed loads under a seqlock on `state` (ph_slot_identity_read()).
     * Use the ph_slot_id_* accessors below, not the words. */
    _Atomic uint64_t id_pid;        /* owner pid (low 32 bits) */
    _Atomic uint64_t id_start_time; /* /proc/<pid>/stat starttime, against pid reuse */
    _Atomic uint64_t id_attached_real_ns;
    _Atomic uint64_t id_role[PH_ID_WORDS];     /* NUL-padded text, 8 bytes a word */
    _Atomic uint64_t id_instance[PH_ID_WORDS];

    /* Worker mirror line: the latest status, relaxed stores by the owner,
     * for tools that read the segment while nothing drains it. */
    alignas(64) _Atomic uint64_t w_processed;
    _Atomic uint64_t w_errors;
    _Atomic uint64_t w_heartbeat_ns; /* CLOCK_MONOTONIC(_COARSE) of the last status */
    _Atomic uint32_t w_state;        /* bit 0 enabled, bits 8-15 io_in, 16-23 io_out */

    /* Controller line: the controller's view of this slot. */
    alignas(64) _Atomic uint64_t c_tps;
    _Atomic uint64_t c_last_seen_ns; /* CLOCK_MONOTONIC of the last record drained */
    _Atomic uint64_t c_records;      /* records drained from this slot */
    _Atomic uint32_t c_quarantine;   /* enum ph_quarantine */

    struct ph_ring_desc status;  /* worker produces, controller consumes */
    struct ph_ring_desc command; /* controller produces, worker consumes */
};
_Static_assert(sizeof(struct ph_slot) <= PH_SLOT_META_SIZE, "slot metadata grew");
_Static_assert(sizeof(struct ph_shm_header) <= PH_SHM_HEADER_SIZE, "header grew");

/* Identity accessors. Text goes in and out as NUL-padded bytes, 8 to a
 * word, in host order (the segment never leaves the host). Stores are
 * relaxed: only the claimer writes, while CLAIMING, and its CAS out of
 * CLAIMING publishes them. Loads are relaxed: readers order them with the
 * seqlock in ph_slot_identity_read(), which is the only reader. */
static inline void ph_slot_id_text_store(_Atomic uint64_t words[PH_ID_WORDS], const char *s)
{
    char buf[PH_ID_MAX] = {0};
    size_t n = strnlen(s, PH_ID_MAX - 1);
    memcpy(buf, s, n);
    for (unsigned i = 0; i < PH_ID_WORDS; i++) {
        uint64_t v;
        memcpy(&v, buf + 8 * i, sizeof v);
        atomic_store_explicit(&words[i], v, memory_order_relaxed);
    }
}
static inline void ph_slot_id_text_load(const _Atomic uint64_t words[PH_ID_WORDS],
                                        char out[PH_ID_MAX])
{
    for (unsigned i = 0; i < PH_ID_WORDS; i++) {
        uint64_t v = atomic_load_explicit(&words[i], memory_order_relaxed);
        memcpy(out + 8 * i, &v, sizeof v);
    }
    out[PH_ID_MAX - 1] = '\0'; /* untrusted: never let an unterminated string escape */
}
static inline void ph_slot_id_store(struct ph_slot *s, const char *role, const char *instance,
                                    int32_t pid, uint64_t start_time, uint64_t attached_real_ns)
{
    atomic_store_explicit(&s->id_pid, (uint32_t)pid, memory_order_relaxed);
    atomic_store_explicit(&s->id_start_time, start_time, memory_order_relaxed);
    atomic_store_explicit(&s->id_attached_real_ns, attached_real_ns, memory_order_relaxed);
    ph_slot_id_text_store(s->id_role, role);
    ph_slot_id_text_store(s->id_instance, instance);
}
static inline int32_t ph_slot_id_pid(const struct ph_slot *s)
{
    return (int32_t)(uint32_t)atomic_load_explicit(&s->id_pid, memory_order_relaxed);
}
static inline uint64_t ph_slot_id_start_time(const struct ph_slot *s)
{
    return atomic_load_explicit(&s->id_start_time, memory_order_relaxed);
}
static inline uint64_t ph_slot_id_attached_real_ns(const struct ph_slot *s)
{
    return atomic_load_explicit(&s->id_attached_real_ns, memory_order_relaxed);
}

/* The controller claim word: pid in the high half, the low 32 bits of its
 * /proc start time in the low half (enough to tell a reused pid). */
static inline uint64_t ph_controller_claim_word(int32_t pid, uint64_t start_time)
{
    return ((uint64_t)(uint32_t)pid << 32) | (uint32_t)start_time;
}
static inline int32_t ph_controller_claim_pid(uint64_t claim)
{
    return (int32_t)(uint32_t)(claim >> 32);
}

static inline uint32_t ph_w_state_pack(int enabled, int io_in, int io_out)
{
    return (uint32_t)(enabled ? 1 : 0) | ((uint32_t)(io_in & 0xff) << 8) |
           ((uint32_t)(io_out & 0xff) << 16);
}

/* A mapped segment. */
struct ph_segment {
    int fd;
    void *base;
    size_t size; /* bytes mapped */
    struct ph_shm_header *hdr;
    uint32_t slots;
    uint32_t slot_size;
    uint32_t status_ring;
    uint32_t command_ring;
    uint64_t slots_offset;    /* PH_SHM_HEADER_SIZE + ph_claim_index_bytes(slots) */
    uint64_t rings_offset;    /* slots_offset + slots * PH_SLOT_META_SIZE */
    uint64_t claim;           /* our controller claim word if we created/adopted it, else 0 */
    char name[PH_ID_MAX + 8]; /* "/ph.<swarm>" */
};

struct ph_segment_params {
    uint32_t slots;        /* 0: PH_DEFAULT_SLOTS */
    uint32_t status_ring;  /* 0: PH_DEFAULT_STATUS_RING; power of two */
    uint32_t command_ring; /* 0: PH_DEFAULT_COMMAND_RING; power of two */
    unsigned mode;         /* 0: 0600, or 0660 with set_group */
    bool set_group;        /* give the object group `gid` (--shm-group) */
    uint32_t gid;
};

/* Bytes a segment with these parameters occupies (the formula above). */
uint64_t ph_segment_size_for(uint32_t slots, uint32_t status_ring, uint32_t command_ring);
/* Writes "/ph.<swarm>" into buf; PH_ERR_INVAL when the id is not valid. */
int ph_segment_name(const char *swarm_id, char *buf, size_t n, char *err, size_t errlen);

/* Controller side. Creates the segment, holding the controller claim for
 * this process (getpid() and its /proc start time) from before it is
 * published. When one exists whose controller claim names a process that is
 * gone (or no claim: a clean exit) and whose geometry matches, takes the
 * claim with one compare-and-swap and only then adopts it (generation + 1):
 * PH_OK with *adopted = true. Of several processes adopting at once exactly
 * one wins; the others, like anyone facing a live controller, get
 * PH_ERR_BUSY. Another geometry -> PH_ERR_EXISTS. */
int ph_segment_create(struct ph_segment *seg, const char *swarm_id,
                      const struct ph_segment_params *params, bool *adopted, char *err,
                      size_t errlen);
/* Reader/worker side: maps and validates an existing segment. `writable`
 * selects O_RDWR (workers) or O_RDONLY (tools). Errors: PH_ERR_NOENT,
 * PH_ERR_ACCES (also: an owner the process's policy refuses, ph/owner.h),
 * PH_ERR_MAGIC, PH_ERR_VERSION, PH_ERR_TRUNC, PH_ERR_CORRUPT. The
 * controller's adoption checks the owner the same way. */
int ph_segment_open(struct ph_segment *seg, const char *swarm_id, bool writable, char *err,
                    size_t errlen);
void ph_segment_close(struct ph_segment *seg);
/* A process-private segment of `slots` slots in anonymous memory (no
 * /dev/shm object, nothing left behind; fd stays -1), laid out and
 * published as ph_segment_create() does, so that ph_slot_claim() and the
 * rings work on it unchanged. For a worker whose status plane is relayed by
 * a thread of its own process (remote mode, ph/worker.h). Ring sizes 0
 * take the defaults. Released by ph_segment_close(). */
int ph_segment_private(struct ph_segment *seg, const char *swarm_id, uint32_t slots,
                       uint32_t status_ring, uint32_t command_ring, char *err, size_t errlen);
/* Removes /dev/shm/ph.<swarm>; PH_ERR_NOENT when absent. */
int ph_segment_unlink(const char *swarm_id, char *err, size_t errlen);

/* Controller side, every tick: PH_OK while the object has its size. When
 * someone truncated it, restores the size (and a header page cut away,
 * from this process's validated geometry) and returns PH_ERR_TRUNC with a
 * message saying what was lost and what to do; PH_ERR_SYS when it cannot.
 * The segment is mapped again (same address) after a restore, replacing
 * any zero pages a SIGBUS guard put there. Touching the mapping beyond a
 * truncated object raises SIGBUS: callers check before they touch the
 * slots, and guard the race (ph/busguard.h). */
int ph_segment_check_size(struct ph_segment *seg, char *err, size_t errlen);

/* Publishes this process as the controller (controller_pid and start time,
 * for readers) and beats its heartbeat. */
void ph_segment_set_controller(struct ph_segment *seg, int32_t pid, uint64_t start_time);
/* Clean controller exit: gives the claim up (0), if it is still ours, so
 * the next controller adopts without waiting for this process to be gone. */
void ph_segment_release_controller(struct ph_segment *seg);
void ph_segment_heartbeat(struct ph_segment *seg);

/* Bytes of the claim index for `slots` slots: 8 a slot, in whole pages. */
static inline uint64_t ph_claim_index_bytes(uint32_t slots)
{
    return ((uint64_t)slots * 8u + 4095u) & ~(uint64_t)4095u;
}
/* The claim index word of (role, instance): FNV-1a over "role\0instance",
 * never 0 (the word of a slot nobody announced in). */
uint64_t ph_claim_hash(const char *role, const char *instance);
/* The claim index: seg->slots words (see the layout above). */
static inline _Atomic uint64_t *ph_segment_claim_index(const struct ph_segment *seg)
{
    return (_Atomic uint64_t *)((uint8_t *)seg->base + PH_SHM_HEADER_SIZE);
}
static inline struct ph_slot *ph_segment_slot(const struct ph_segment *seg, uint32_t i)
{
    return (struct ph_slot *)((uint8_t *)seg->base + seg->slots_offset +
                              (size_t)i * PH_SLOT_META_SIZE);
}
/* Index of a slot from ph_segment_slot(). */
static inline uint32_t ph_slot_index(const struct ph_segment *seg, const struct ph_slot *s)
{
    return (uint32_t)(((const uint8_t *)s - ((const uint8_t *)seg->base + seg->slots_offset)) /
                      PH_SLOT_META_SIZE);
}
static inline uint8_t *ph_slot_status_data(const struct ph_segment *seg, struct ph_slot *s)
{
    return (uint8_t *)seg->base + seg->rings_offset +
           (size_t)ph_slot_index(seg, s) * ((size_t)seg->status_ring + seg->command_ring);
}
static inline uint8_t *ph_slot_command_data(const struct ph_segment *seg, struct ph_slot *s)
{
    return ph_slot_status_data(seg, s) + seg->status_ring;
}

/* Claims a free slot for (role, instance) as process (pid, start_time).
 * Refuses an (role, instance) pair held by a live process (PH_ERR_BUSY),
 * also one being claimed at the same moment by another process: of
 * concurrent claims of one pair exactly one wins. A claim may wait (short
 * sleeps, at most 2 s) for a concurrent claim of the same pair in a higher
 * slot to resolve. Returns PH_ERR_FULL when every slot is taken. On success
 * *index is the
 * slot and *word (when not NULL) the state word the owner now holds: keep
 * it for ph_slot_detach(). */
int ph_slot_claim(struct ph_segment *seg, const char *role, const char *instance, int32_t pid,
                  uint64_t start_time, uint32_t *index, uint64_t *word, char *err,
                  size_t errlen);
/* Owner side: marks the slot DETACHED (the controller frees it), only if
 * its state word is still exactly `word`, the one ph_slot_claim() returned:
 * a slot taken over since then belongs to someone else. Returns true when
 * it detached. */
bool ph_slot_detach(struct ph_segment *seg, uint32_t index, uint64_t word);
/* Controller side: frees the slot if its state word still equals `expect`. */
bool ph_slot_free(struct ph_segment *seg, uint32_t index, uint64_t expect);

/* Snapshot of a slot's identity for readers, consistent with one claim: the
 * state word is read before and after copying and must not have changed.
 * Returns false when the slot is FREE or changed under the reader. */
struct ph_slot_identity {
    uint64_t state;
    int32_t pid;
    uint64_t start_time;
    uint64_t attached_real_ns;
    char role[PH_ID_MAX];
    char instance[PH_ID_MAX];
};
bool ph_slot_identity_read(const struct ph_slot *s, struct ph_slot_identity *out);

/* Process facts. */
/* Start time (clock ticks after boot) of a live pid, from /proc; PH_ERR_NOENT if gone. */
int ph_proc_start_time(int32_t pid, uint64_t *out);
/* True when `pid` runs and started at `start_time` (0: any start time). */
bool ph_proc_alive(int32_t pid, uint64_t start_time);

#ifdef __cplusplus
}
#endif
#endif
