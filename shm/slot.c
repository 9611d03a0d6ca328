/* Claiming, releasing and reading worker slots (ownership protocol in
 * ph/shm.h). Every transition is a compare-and-swap on the slot's state
 * word, so a process killed between two steps leaves a state that names it
 * (its pid) and that the controller can undo. */
#include "ph/shm.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* The swarm id for messages: from the object's name this process opened,
 * not the shared header (which a corrupt segment may leave unterminated). */
static const char *seg_swarm(const struct ph_segment *seg)
{
    return seg->name + 4; /* "/ph." */
}

static bool identity_matches(const struct ph_slot_identity *id, const char *role,
                             const char *instance)
{
    return strcmp(id->role, role) == 0 && strcmp(id->instance, instance) == 0;
}

uint64_t ph_claim_hash(const char *role, const char *instance)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (const char *p = role;; p++) {
        h = (h ^ (uint8_t)*p) * 0x100000001b3ull;
        if (*p == '\0') break;
    }
    for (const char *p = instance; *p != '\0'; p++) h = (h ^ (uint8_t)*p) * 0x100000001b3ull;
    return h | 1u;
}

bool ph_slot_identity_read(const struct ph_slot *s, struct ph_slot_identity *out)
{
    /* R1_identity_read (model labels: tests/model/README.md). A seqlock on
     * the state word: acquire the word, copy the identity with relaxed
     * loads, acquire fence, reload the word. acquire: pairs with the
     * claimer's CAS out of CLAIMING (release or stronger), so the identity
     * words of the claim named by w1 are visible. */
    uint64_t w1 = atomic_load_explicit(&s->state, memory_order_acquire);
    if (ph_slot_state_of(w1) == PH_SLOT_FREE) return false;
    out->state = w1;
    if (ph_slot_state_of(w1) == PH_SLOT_CLAIMING) {
        /* Identity is being written: only the pid in the state word is known. */
        out->pid = ph_slot_pid_of(w1);
        out->start_time = 0;
        out->attached_real_ns = 0;
        out->role[0] = out->instance[0] = '\0';
        return true;
    }
    out->pid = ph_slot_id_pid(s);
    out->start_time = ph_slot_id_start_time(s);
    out->attached_real_ns = ph_slot_id_attached_real_ns(s);
    ph_slot_id_text_load(s->id_role, out->role);
    ph_slot_id_text_load(s->id_instance, out->instance);
    /* acquire fence: if any word above came from a later claimer (whose
     * stores follow the release fence after its CAS to CLAIMING), that
     * CAS is visible to the reload below, which then differs from w1. */
    atomic_thread_fence(memory_order_acquire);
    uint64_t w2 = atomic_load_explicit(&s->state, memory_order_relaxed);
    return w1 == w2;
}

static void reset_slot(struct ph_slot *s, const char *role, const char *instance, int32_t pid,
                       uint64_t start_time)
{
    /* release fence: orders our CAS to CLAIMING before every store below, so
     * a reader that copies any of them (relaxed) and then acquire-fences
     * sees the slot no longer in the state it started from (seqlock). */
    atomic_thread_fence(memory_order_release);
    /* Runs while the slot is CLAIMING by us: the CAS out of CLAIMING
     * publishes these, hence relaxed. */
    atomic_store_explicit(&s->claimed_mono_ns, ph_mono_ns(), memory_order_relaxed);
    ph_slot_id_store(s, role, instance, pid, start_time, ph_real_ns()); /* S3_write_identity */
    atomic_store_explicit(&s->w_processed, 0, memory_order_relaxed);
    atomic_store_explicit(&s->w_errors, 0, memory_order_relaxed);
    atomic_store_explicit(&s->w_heartbeat_ns, ph_mono_coarse_ns(), memory_order_relaxed);
    atomic_store_explicit(&s->w_state, 0, memory_order_relaxed);
    atomic_store_explicit(&s->c_tps, 0, memory_order_relaxed);
    atomic_store_explicit(&s->c_last_seen_ns, 0, memory_order_relaxed);
    atomic_store_explicit(&s->c_records, 0, memory_order_relaxed);
    atomic_store_explicit(&s->c_quarantine, PH_Q_NONE, memory_order_relaxed);
    ph_ring_reset(&s->status); /* S4_reset_rings */
    ph_ring_reset(&s->command);
}

static void raise_high_water(struct ph_shm_header *h, uint32_t n)
{
    /* seq_cst: part of the duplicate check's total order (see
     * check_duplicates()): a claimer that scans up to a bound read after
     * our raise covers our slot; seq_cst also gives the release that
     * scanners (acquire) rely on to look at the slot. */
    uint32_t cur = atomic_load_explicit(&h->slot_high_water, memory_order_seq_cst);
    while (cur < n && !atomic_compare_exchange_weak_explicit(&h->slot_high_water, &cur, n,
                                                             memory_order_seq_cst,
                                                             memory_order_seq_cst)) {
    }
}

/* The shared claim hint (ph_shm_header.claim_next). relaxed, all three: a
 * hint about where to look; the CAS on a slot's state word decides, and a
 * stale hint costs a longer search, never a wrong claim. */
static uint32_t claim_start(struct ph_segment *seg)
{
    return atomic_fetch_add_explicit(&seg->hdr->claim_next, 1, memory_order_relaxed);
}

static void claim_hint_lower(struct ph_shm_header *h, uint32_t index)
{
    uint32_t cur = atomic_load_explicit(&h->claim_next, memory_order_relaxed);
    while (index < cur && !atomic_compare_exchange_weak_explicit(&h->claim_next, &cur, index,
                                                                 memory_order_relaxed,
                                                                 memory_order_relaxed)) {
    }
}

/* After a search that had to pass taken slots from `start` (what our
 * fetch-and-add returned) to `index`: the next claim may start past them,
 * but only if nobody moved the hint since (a slot given back meanwhile
 * lowered it, and must be found first). */
static void claim_hint_skip(struct ph_segment *seg, uint32_t start, uint32_t index)
{
    uint32_t expect = start + 1;
    const uint32_t next = (index + 1) % seg->slots;
    if (next == expect % seg->slots) return;
    atomic_compare_exchange_strong_explicit(&seg->hdr->claim_next, &expect, next,
                                            memory_order_relaxed, memory_order_relaxed);
}

#define JOIN_WAIT_NS (2ull * 1000000000ull) /* longest wait for a concurrent claim */
#define JOIN_NAP_NS (1000000L)              /* between looks at it */

/* Our slot `mine` is JOINING with (role, instance), and we announced the
 * pair's hash in the claim index. Looks at every other slot that may be in
 * use whose index word is that hash; PH_OK when we may go ACTIVE,
 * PH_ERR_BUSY when a live process holds or wins the same pair.
 *
 * Why two concurrent claimers cannot both win (the store-buffer litmus):
 * each made its slot JOINING with a seq_cst CAS and then announced its
 * hash with a seq_cst store, then reads the high water mark and every
 * other index word with seq_cst loads. All of these are in one total
 * order. Whichever announcement comes first, the other claimer's loads
 * come after it and see that hash; high-water raises are seq_cst too and
 * precede each claimer's announcement, so the bound the other reads covers
 * the slot. With acquire/release only, both could read the old words and
 * both win. A slot whose word matches is then judged by its state word and
 * identity (the announcement follows the CAS to JOINING, so that state is
 * visible): an old claimer's stale hash, or a hash collision, only costs
 * that look. At least one of any two sees the other, then:
 *   - the other is ACTIVE: we lose;
 *   - the other is JOINING in a lower slot: it wins, we lose;
 *   - the other is JOINING in a higher slot: it may not have seen us, so we
 *     wait until it resolves: it gives up (FREE), or goes ACTIVE and we
 *     lose. Waits only go from lower to higher slots, so they end. */
static int check_duplicates(struct ph_segment *seg, uint32_t mine, const char *role,
                            const char *instance, char *err, size_t errlen)
{
    /* S6_dup_scan */
    uint64_t deadline = 0;
    const uint64_t hash = ph_claim_hash(role, instance);
    _Atomic uint64_t *index = ph_segment_claim_index(seg);
    /* seq_cst: see above. */
    uint32_t hw = atomic_load_explicit(&seg->hdr->slot_high_water, memory_order_seq_cst);
    if (hw > seg->slots) hw = seg->slots;
    for (uint32_t j = 0; j < hw; j++) {
        if (j == mine) continue;
        /* seq_cst: the loads of the litmus above. A slot announcing another
         * pair (or none) cannot hold ours. */
        if (atomic_load_explicit(&index[j], memory_order_seq_cst) != hash) continue;
        const struct ph_slot *o = ph_segment_slot(seg, j);
        for (int look = 0;; look++) {
            /* seq_cst: see above. */
            const uint64_t w = atomic_load_explicit(&o->state, memory_order_seq_cst);
            const unsigned st = ph_slot_state_of(w);
            if (st != PH_SLOT_ACTIVE && st != PH_SLOT_JOINING) break;
            struct ph_slot_identity id;
            if (!ph_slot_identity_read(o, &id) || id.state != w) {
                if (look < 64) continue; /* changed while read: look again */
                break;                   /* churning: not a settled holder of our pair */
            }
            if (!identity_matches(&id, role, instance) || !ph_proc_alive(id.pid, id.start_time))
                break;
            if (st == PH_SLOT_ACTIVE || j < mine) {
                snprintf(err, errlen, "instance '%s' (role %s) is already attached to swarm "
                         "'%s' by pid %" PRId32 " in slot %" PRIu32 "%s", instance, role,
                         seg_swarm(seg), id.pid, j,
                         st == PH_SLOT_JOINING ? " (attaching at the same moment)" : "");
                return PH_ERR_BUSY;
            }
            /* JOINING above us: wait for it to resolve, then look again. */
            const uint64_t now = ph_mono_ns();
            if (deadline == 0) deadline = now + JOIN_WAIT_NS;
            if (now >= deadline) {
                snprintf(err, errlen, "instance '%s' (role %s) is being attached to swarm '%s' "
                         "by pid %" PRId32 " in slot %" PRIu32 " at the same moment, and that "
                         "attach did not finish within 2 s; try again", instance, role,
                         seg_swarm(seg), id.pid, j);
                return PH_ERR_BUSY;
            }
            struct timespec ts = {0, JOIN_NAP_NS};
            nanosleep(&ts, NULL);
        }
    }
    return PH_OK;
}

int ph_slot_claim(struct ph_segment *seg, const char *role, const char *instance, int32_t pid,
                  uint64_t start_time, uint32_t *index, uint64_t *word, char *err,
                  size_t errlen)
{
    int rc = ph_ident_check("role", role, err, errlen);
    if (rc == PH_OK) rc = ph_ident_check("instance", instance, err, errlen);
    if (rc != PH_OK) return rc;

    /* Fast refusal when a live process already holds the pair, before
     * taking a slot: the authoritative check is check_duplicates(), made
     * after our slot is JOINING. acquire: see raise_high_water(). */
    const uint64_t hash = ph_claim_hash(role, instance);
    _Atomic uint64_t *claim_index = ph_segment_claim_index(seg);
    uint32_t hw = atomic_load_explicit(&seg->hdr->slot_high_water, memory_order_acquire);
    if (hw > seg->slots) hw = seg->slots;
    for (uint32_t i = 0; i < hw; i++) {
        /* relaxed: a hint only, as this whole pass is. */
        if (atomic_load_explicit(&claim_index[i], memory_order_relaxed) != hash) continue;
        struct ph_slot_identity id;
        if (ph_slot_identity_read(ph_segment_slot(seg, i), &id) &&
            ph_slot_state_of(id.state) == PH_SLOT_ACTIVE && identity_matches(&id, role, instance) &&
            ph_proc_alive(id.pid, id.start_time)) {
            snprintf(err, errlen, "instance '%s' (role %s) is already attached to swarm '%s' by "
                     "pid %" PRId32 " in slot %" PRIu32, instance, role, seg_swarm(seg),
                     id.pid, i);
            return PH_ERR_BUSY;
        }
    }

    /* The search starts at the segment's claim hint: the slots before it
     * were in use (claimers attaching many workers would otherwise read
     * every taken slot again for each one), and a concurrent claimer got
     * another start. It wraps around, so a slot freed below is still found. */
    const uint32_t start = claim_start(seg);
    const uint32_t from = start % seg->slots;
    for (int round = 0; round < 3; round++) {
        for (uint32_t k = 0; k < seg->slots; k++) {
            const uint32_t i = (from + k) % seg->slots;
            struct ph_slot *s = ph_segment_slot(seg, i);
            /* acquire: a FREE word seen here carries the previous owner's and
             * the controller's last writes, which we then overwrite. */
            uint64_t w = atomic_load_explicit(&s->state, memory_order_acquire);
            if (ph_slot_state_of(w) != PH_SLOT_FREE) continue;
            const uint32_t seq = ph_slot_seq_of(w) + 1;
            const uint64_t claiming = ph_slot_word(PH_SLOT_CLAIMING, seq, pid);
            /* S1_raise_high_water: before the CAS, not after it. The
             * controller scans only below the mark; a claimer killed
             * between a successful CAS and a later raise would leave a
             * CLAIMING slot no scan reaches, never expired (found by
             * tests/model/slot.pml, mutant MUT_RAISE_AFTER_CLAIM). Raising
             * it for a slot whose CAS then fails costs a scan one slot. */
            raise_high_water(seg->hdr, i + 1);
            /* S2_claim_cas. acq_rel: acquire as above; release so that a
             * controller seeing CLAIMING also sees the pid it names (and,
             * through the raise sequenced before it, a mark covering the
             * slot). */
            if (!atomic_compare_exchange_strong_explicit(&s->state, &w, claiming,
                                                         memory_order_acq_rel,
                                                         memory_order_relaxed))
                continue;
            reset_slot(s, role, instance, pid, start_time);
            const uint64_t joining = ph_slot_word(PH_SLOT_JOINING, seq, pid);
            uint64_t expect = claiming;
            /* S5_join_cas. seq_cst: publishes the identity (it includes release) and puts
             * this CAS in the total order the duplicate check relies on
             * (check_duplicates()). It fails only if the controller freed
             * the slot, judging us gone; then we try another slot. */
            if (!atomic_compare_exchange_strong_explicit(&s->state, &expect, joining,
                                                         memory_order_seq_cst,
                                                         memory_order_relaxed))
                continue;
            /* S5_announce. seq_cst: the announcement of the litmus in check_duplicates(),
             * after the CAS to JOINING so that a claimer seeing it sees the
             * slot JOINING (or later). */
            atomic_store_explicit(&claim_index[i], hash, memory_order_seq_cst);
            rc = check_duplicates(seg, i, role, instance, err, errlen);
            if (rc != PH_OK) {
                /* S7_lose_free. Lost: give the slot back (it keeps its claim counter). */
                ph_slot_free(seg, i, joining);
                return rc;
            }
            expect = joining;
            const uint64_t active = ph_slot_word(PH_SLOT_ACTIVE, seq, pid);
            /* S8_active_cas. release: the controller, acquiring ACTIVE, sees
             * the identity and the reset rings (already published by
             * JOINING). */
            if (atomic_compare_exchange_strong_explicit(&s->state, &expect, active,
                                                        memory_order_release,
                                                        memory_order_relaxed)) {
                *index = i;
                if (word != NULL) *word = active;
                claim_hint_skip(seg, start, i);
                return PH_OK;
            }
        }
    }
    /* relaxed: a counter read on its own by the controller and tools; it
     * orders nothing else. */
    atomic_fetch_add_explicit(&seg->hdr->claims_refused_full, 1, memory_order_relaxed);
    snprintf(err, errlen, "all %" PRIu32 " slots of swarm '%s' are in use", seg->slots,
             seg_swarm(seg));
    return PH_ERR_FULL;
}

bool ph_slot_detach(struct ph_segment *seg, uint32_t index, uint64_t word)
{
    if (index >= seg->slots || ph_slot_state_of(word) != PH_SLOT_ACTIVE) return false;
    struct ph_slot *s = ph_segment_slot(seg, index);
    uint64_t expect = word;
    /* S9_detach. Only from the exact word we were given by the claim: if the slot was
     * freed and claimed again meanwhile, it is not ours to detach.
     * release: our last records and mirror stores precede DETACHED, so the
     * controller, acquiring it, drains everything before freeing. */
    if (!atomic_compare_exchange_strong_explicit(
            &s->state, &expect,
            ph_slot_word(PH_SLOT_DETACHED, ph_slot_seq_of(word), ph_slot_pid_of(word)),
            memory_order_release, memory_order_relaxed))
        return false;
    /* The next claim looks here first (the controller frees it soon). Only
     * once it is ours to give back: a failed detach must not send claimers
     * to a slot someone else holds. */
    claim_hint_lower(seg->hdr, index);
    return true;
}

bool ph_slot_free(struct ph_segment *seg, uint32_t index, uint64_t expect)
{
    if (index >= seg->slots) return false;
    struct ph_slot *s = ph_segment_slot(seg, index);
    /* release: the controller's final reads of the rings happen before a new
     * claimer (acquire) resets them. The claim counter is kept so the next
     * claim gets a new word. */
    if (!atomic_compare_exchange_strong_explicit(
            &s->state, &expect, ph_slot_word(PH_SLOT_FREE, ph_slot_seq_of(expect), 0),
            memory_order_release, memory_order_relaxed))
        return false;
    /* The next claim looks here first, now that it is free. */
    claim_hint_lower(seg->hdr, index);
    return true;
}
