/* Claiming, releasing and reading worker slots (ownership protocol in
 * ph/shm.h). Every transition is a compare-and-swap on the slot's state
 * word, so a process killed between two steps leaves a state that names it
 * (its pid) and that the controller can undo. */
#include "ph/shm.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static bool identity_matches(const struct ph_slot_identity *id, const char *role,
                             const char *instance)
{
    return strcmp(id->role, role) == 0 && strcmp(id->instance, instance) == 0;
}

bool ph_slot_identity_read(const struct ph_slot *s, struct ph_slot_identity *out)
{
    /* A seqlock on the state word: acquire the word, copy the identity with
     * relaxed loads, acquire fence, reload the word. acquire: pairs with the
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
    ph_slot_id_store(s, role, instance, pid, start_time, ph_real_ns());
    atomic_store_explicit(&s->w_processed, 0, memory_order_relaxed);
    atomic_store_explicit(&s->w_errors, 0, memory_order_relaxed);
    atomic_store_explicit(&s->w_heartbeat_ns, ph_mono_coarse_ns(), memory_order_relaxed);
    atomic_store_explicit(&s->w_state, 0, memory_order_relaxed);
    atomic_store_explicit(&s->c_tps, 0, memory_order_relaxed);
    atomic_store_explicit(&s->c_last_seen_ns, 0, memory_order_relaxed);
    atomic_store_explicit(&s->c_records, 0, memory_order_relaxed);
    atomic_store_explicit(&s->c_quarantine, PH_Q_NONE, memory_order_relaxed);
    ph_ring_reset(&s->status);
    ph_ring_reset(&s->command);
}

static void raise_high_water(struct ph_shm_header *h, uint32_t n)
{
    /* release: pairs with scanners' acquire; a scanner that sees the new
     * bound may look at the slot (whose state it then acquires itself). */
    uint32_t cur = atomic_load_explicit(&h->slot_high_water, memory_order_relaxed);
    while (cur < n && !atomic_compare_exchange_weak_explicit(&h->slot_high_water, &cur, n,
                                                             memory_order_release,
                                                             memory_order_relaxed)) {
    }
}

int ph_slot_claim(struct ph_segment *seg, const char *role, const char *instance, int32_t pid,
                  uint64_t start_time, uint32_t *index, uint64_t *word, char *err,
                  size_t errlen)
{
    int rc = ph_ident_check("role", role, err, errlen);
    if (rc == PH_OK) rc = ph_ident_check("instance", instance, err, errlen);
    if (rc != PH_OK) return rc;

    /* acquire: see raise_high_water(). */
    uint32_t hw = atomic_load_explicit(&seg->hdr->slot_high_water, memory_order_acquire);
    if (hw > seg->slots) hw = seg->slots;
    for (uint32_t i = 0; i < hw; i++) {
        struct ph_slot_identity id;
        if (ph_slot_identity_read(ph_segment_slot(seg, i), &id) &&
            ph_slot_state_of(id.state) == PH_SLOT_ACTIVE && identity_matches(&id, role, instance) &&
            ph_proc_alive(id.pid, id.start_time)) {
            snprintf(err, errlen, "instance '%s' (role %s) is already attached to swarm '%s' by "
                     "pid %" PRId32 " in slot %" PRIu32, instance, role, seg->hdr->swarm_id,
                     id.pid, i);
            return PH_ERR_BUSY;
        }
    }

    for (int round = 0; round < 3; round++) {
        for (uint32_t i = 0; i < seg->slots; i++) {
            struct ph_slot *s = ph_segment_slot(seg, i);
            /* acquire: a FREE word seen here carries the previous owner's and
             * the controller's last writes, which we then overwrite. */
            uint64_t w = atomic_load_explicit(&s->state, memory_order_acquire);
            if (ph_slot_state_of(w) != PH_SLOT_FREE) continue;
            const uint32_t seq = ph_slot_seq_of(w) + 1;
            const uint64_t claiming = ph_slot_word(PH_SLOT_CLAIMING, seq, pid);
            /* acq_rel: acquire as above; release so that a controller seeing
             * CLAIMING also sees the pid it names. */
            if (!atomic_compare_exchange_strong_explicit(&s->state, &w, claiming,
                                                         memory_order_acq_rel,
                                                         memory_order_relaxed))
                continue;
            raise_high_water(seg->hdr, i + 1);
            reset_slot(s, role, instance, pid, start_time);
            uint64_t expect = claiming;
            const uint64_t active = ph_slot_word(PH_SLOT_ACTIVE, seq, pid);
            /* release: publishes the identity and the reset rings. The CAS
             * fails only if the controller judged our claim abandoned; then
             * we lost the slot and try again. */
            if (atomic_compare_exchange_strong_explicit(&s->state, &expect, active,
                                                        memory_order_release,
                                                        memory_order_relaxed)) {
                *index = i;
                if (word != NULL) *word = active;
                return PH_OK;
            }
        }
    }
    snprintf(err, errlen, "all %" PRIu32 " slots of swarm '%s' are in use", seg->slots,
             seg->hdr->swarm_id);
    return PH_ERR_FULL;
}

bool ph_slot_detach(struct ph_segment *seg, uint32_t index, uint64_t word)
{
    if (index >= seg->slots || ph_slot_state_of(word) != PH_SLOT_ACTIVE) return false;
    struct ph_slot *s = ph_segment_slot(seg, index);
    uint64_t expect = word;
    /* Only from the exact word we were given by the claim: if the slot was
     * freed and claimed again meanwhile, it is not ours to detach.
     * release: our last records and mirror stores precede DETACHED, so the
     * controller, acquiring it, drains everything before freeing. */
    return atomic_compare_exchange_strong_explicit(
        &s->state, &expect,
        ph_slot_word(PH_SLOT_DETACHED, ph_slot_seq_of(word), ph_slot_pid_of(word)),
        memory_order_release, memory_order_relaxed);
}

bool ph_slot_free(struct ph_segment *seg, uint32_t index, uint64_t expect)
{
    if (index >= seg->slots) return false;
    struct ph_slot *s = ph_segment_slot(seg, index);
    /* release: the controller's final reads of the rings happen before a new
     * claimer (acquire) resets them. The claim counter is kept so the next
     * claim gets a new word. */
    return atomic_compare_exchange_strong_explicit(
        &s->state, &expect, ph_slot_word(PH_SLOT_FREE, ph_slot_seq_of(expect), 0),
        memory_order_release, memory_order_relaxed);
}
