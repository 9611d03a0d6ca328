/* item17_identity_reads_are_race_free_against_claims: claimer threads
 * claim, detach and free slots over and over, each claim with another
 * identity, while another thread reads every slot's identity.
 *
 * This runs under ThreadSanitizer: the identity is written by one thread
 * while another reads it, so every access must be atomic (relaxed words
 * under a seqlock on the state word); plain loads and stores there are a
 * data race TSan reports. Every read that ph_slot_identity_read() calls
 * consistent must also be one claim's identity, never a mix of two: a
 * claim with start time n has instance "i-<n>".
 *
 * With several claimers (one slot each, all starting at slot 0) the claim
 * CAS is contended, and the reader also checks that every slot it sees in
 * use is below slot_high_water (the controller scans only below it; the
 * claimer raises it before its CAS).
 *
 *   test_slot_threads [--claims N] [--claimers K]   (N claims per claimer)
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ph/shm.h"

#define MAX_CLAIMERS 16

static uint64_t n_claims = 20000;
static unsigned n_claimers = 1;
static struct ph_segment seg;
static _Atomic unsigned claimers_done;
static _Atomic uint64_t claim_failures;
static uint64_t reads_consistent, reads_active, reads_mixed, reads_above_mark;
static char first_claim_error[256]; /* claimer 0 only */
static char first_error[256];       /* reader only */

static void *claimer(void *arg)
{
    const unsigned t = (unsigned)(uintptr_t)arg;
    const int32_t pid = (int32_t)getpid();
    char err[256], inst[PH_ID_MAX];
    for (uint64_t n = 1; n <= n_claims; n++) {
        /* start time: unique over all claimers, so the reader can tell
         * claims apart by it; no process has it, so the duplicate check
         * never finds a live holder. */
        const uint64_t start = n * n_claimers + t;
        snprintf(inst, sizeof inst, "i-%" PRIu64, start);
        uint32_t idx;
        uint64_t word;
        /* relaxed (all claim_failures updates): a counter read after join. */
        if (ph_slot_claim(&seg, "r", inst, pid, start, &idx, &word, err, sizeof err) != PH_OK) {
            atomic_fetch_add_explicit(&claim_failures, 1, memory_order_relaxed);
            if (t == 0 && first_claim_error[0] == '\0')
                snprintf(first_claim_error, sizeof first_claim_error, "%s", err);
            continue;
        }
        /* Hold it a moment, so the reader also meets owned slots. */
        for (int k = 0; k < 4; k++) {
            struct ph_slot_identity mine;
            if (ph_slot_identity_read(ph_segment_slot(&seg, idx), &mine) &&
                mine.start_time != start)
                atomic_fetch_add_explicit(&claim_failures, 1, memory_order_relaxed);
        }
        if (n % 2 == 0) {
            /* Half the claims leave as a worker does, the others as a dead
             * owner's: freed straight from ACTIVE. */
            if (!ph_slot_detach(&seg, idx, word))
                atomic_fetch_add_explicit(&claim_failures, 1, memory_order_relaxed);
            word = atomic_load_explicit(&ph_segment_slot(&seg, idx)->state, memory_order_acquire);
        }
        if (!ph_slot_free(&seg, idx, word))
            atomic_fetch_add_explicit(&claim_failures, 1, memory_order_relaxed);
    }
    /* release: the reader, seeing every claimer done, stops. */
    atomic_fetch_add_explicit(&claimers_done, 1, memory_order_release);
    return NULL;
}

static void *reader(void *arg)
{
    (void)arg;
    char want[PH_ID_MAX];
    uint32_t i = 0;
    while (atomic_load_explicit(&claimers_done, memory_order_acquire) < n_claimers) {
        const struct ph_slot *s = ph_segment_slot(&seg, i);
        /* acquire, then acquire: a slot seen claimed was claimed after its
         * claimer raised the mark (raise_high_water precedes the claim
         * CAS), so the mark read after it covers the slot. */
        const uint64_t w = atomic_load_explicit(&s->state, memory_order_acquire);
        const uint32_t hw = atomic_load_explicit(&seg.hdr->slot_high_water, memory_order_acquire);
        if (ph_slot_state_of(w) != PH_SLOT_FREE && hw <= i) {
            if (reads_above_mark++ == 0 && reads_mixed == 0)
                snprintf(first_error, sizeof first_error,
                         "slot %" PRIu32 " in use (state %u) above slot_high_water %" PRIu32, i,
                         ph_slot_state_of(w), hw);
        }
        struct ph_slot_identity id;
        const bool ok = ph_slot_identity_read(s, &id);
        i = (i + 1) % seg.slots;
        if (!ok) continue;
        reads_consistent++;
        const unsigned st = ph_slot_state_of(id.state);
        if (st != PH_SLOT_ACTIVE && st != PH_SLOT_DETACHED) continue;
        reads_active++;
        snprintf(want, sizeof want, "i-%" PRIu64, id.start_time);
        if (strcmp(id.role, "r") != 0 || strcmp(id.instance, want) != 0 ||
            id.pid != (int32_t)getpid() || id.attached_real_ns == 0) {
            if (reads_mixed++ == 0 && reads_above_mark == 0)
                snprintf(first_error, sizeof first_error,
                         "identity mixes claims: start %" PRIu64 ", instance '%s', role '%s'",
                         id.start_time, id.instance, id.role);
        }
    }
    return NULL;
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--claims") == 0 && i + 1 < argc)
            n_claims = strtoull(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--claimers") == 0 && i + 1 < argc)
            n_claimers = (unsigned)strtoul(argv[++i], NULL, 10);
        else {
            fprintf(stderr, "usage: %s [--claims N] [--claimers 1..%d]\n", argv[0], MAX_CLAIMERS);
            return 2;
        }
    }
    if (n_claims == 0 || n_claimers == 0 || n_claimers > MAX_CLAIMERS) {
        fprintf(stderr, "claims must be > 0 and claimers in 1..%d\n", MAX_CLAIMERS);
        return 2;
    }
    char id[PH_ID_MAX], err[256];
    snprintf(id, sizeof id, "ut-slt-%d", (int)getpid());
    bool adopted;
    /* One slot per claimer: a claim always finds one, after losing CAS
     * races to the others. */
    struct ph_segment_params p = {.slots = n_claimers, .status_ring = 1024, .command_ring = 512};
    if (ph_segment_create(&seg, id, &p, &adopted, err, sizeof err) != PH_OK) {
        fprintf(stderr, "FAIL: create: %s\n", err);
        return 1;
    }
    pthread_t tc[MAX_CLAIMERS], tr;
    pthread_create(&tr, NULL, reader, NULL);
    for (unsigned t = 0; t < n_claimers; t++)
        pthread_create(&tc[t], NULL, claimer, (void *)(uintptr_t)t);
    for (unsigned t = 0; t < n_claimers; t++)
        pthread_join(tc[t], NULL);
    pthread_join(tr, NULL);
    ph_segment_close(&seg);
    ph_segment_unlink(id, err, sizeof err);

    int fail = 0;
    const uint64_t failures = atomic_load(&claim_failures);
    if (failures != 0) {
        fprintf(stderr,
                "FAIL: %" PRIu64 " claim/detach/free steps failed; first of claimer 0: %s\n",
                failures, first_claim_error);
        fail = 1;
    }
    if (reads_mixed != 0 || reads_above_mark != 0) {
        fprintf(stderr,
                "FAIL: %" PRIu64 " reads mixed two claims, %" PRIu64
                " found a slot in use above the mark; first: %s\n",
                reads_mixed, reads_above_mark, first_error);
        fail = 1;
    }
    printf("%s: item17_identity_reads_are_race_free_against_claims: %u claimers x %" PRIu64
           " claims, %" PRIu64 " consistent identity reads (%" PRIu64 " of an owned slot)\n",
           fail ? "FAIL" : "ok", n_claimers, n_claims, reads_consistent, reads_active);
    return fail;
}
