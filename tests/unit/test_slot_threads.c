/* item17_identity_reads_are_race_free_against_claims: one thread claims,
 * detaches and frees a slot over and over, each claim with another
 * identity, while another thread reads the slot's identity.
 *
 * This runs under ThreadSanitizer: the identity is written by one thread
 * while another reads it, so every access must be atomic (relaxed words
 * under a seqlock on the state word); plain loads and stores there are a
 * data race TSan reports. Every read that ph_slot_identity_read() calls
 * consistent must also be one claim's identity, never a mix of two: claim n
 * has start time n and instance "i-<n>".
 *
 *   test_slot_threads [--claims N]
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ph/shm.h"

static uint64_t n_claims = 20000;
static struct ph_segment seg;
static _Atomic int claimer_done;
static uint64_t claim_failures;
static uint64_t reads_consistent, reads_active, reads_mixed;
static char first_error[256];

static void *claimer(void *arg)
{
    (void)arg;
    const int32_t pid = (int32_t)getpid();
    char err[256], inst[PH_ID_MAX];
    for (uint64_t n = 1; n <= n_claims; n++) {
        snprintf(inst, sizeof inst, "i-%" PRIu64, n);
        uint32_t idx;
        uint64_t word;
        /* start time n: the reader can tell claims apart by it; no process
         * has it, so the duplicate check never finds a live holder. */
        if (ph_slot_claim(&seg, "r", inst, pid, n, &idx, &word, err, sizeof err) != PH_OK) {
            claim_failures++;
            if (first_error[0] == '\0') snprintf(first_error, sizeof first_error, "%s", err);
            continue;
        }
        /* Hold it a moment, so the reader also meets owned slots. */
        for (int k = 0; k < 4; k++) {
            struct ph_slot_identity mine;
            if (ph_slot_identity_read(ph_segment_slot(&seg, idx), &mine) && mine.start_time != n)
                claim_failures++;
        }
        if (n % 2 == 0) {
            /* Half the claims leave as a worker does, the others as a dead
             * owner's: freed straight from ACTIVE. */
            if (!ph_slot_detach(&seg, idx, word)) claim_failures++;
            word = atomic_load_explicit(&ph_segment_slot(&seg, idx)->state, memory_order_acquire);
        }
        if (!ph_slot_free(&seg, idx, word)) claim_failures++;
    }
    atomic_store_explicit(&claimer_done, 1, memory_order_release);
    return NULL;
}

static void *reader(void *arg)
{
    (void)arg;
    const struct ph_slot *s = ph_segment_slot(&seg, 0);
    char want[PH_ID_MAX];
    while (!atomic_load_explicit(&claimer_done, memory_order_acquire)) {
        struct ph_slot_identity id;
        if (!ph_slot_identity_read(s, &id)) continue;
        reads_consistent++;
        const unsigned st = ph_slot_state_of(id.state);
        if (st != PH_SLOT_ACTIVE && st != PH_SLOT_DETACHED) continue;
        reads_active++;
        snprintf(want, sizeof want, "i-%" PRIu64, id.start_time);
        if (strcmp(id.role, "r") != 0 || strcmp(id.instance, want) != 0 ||
            id.pid != (int32_t)getpid() || id.attached_real_ns == 0) {
            if (reads_mixed++ == 0)
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
        else {
            fprintf(stderr, "usage: %s [--claims N]\n", argv[0]);
            return 2;
        }
    }
    char id[PH_ID_MAX], err[256];
    snprintf(id, sizeof id, "ut-slt-%d", (int)getpid());
    bool adopted;
    struct ph_segment_params p = {.slots = 1, .status_ring = 1024, .command_ring = 512};
    if (ph_segment_create(&seg, id, &p, &adopted, err, sizeof err) != PH_OK) {
        fprintf(stderr, "FAIL: create: %s\n", err);
        return 1;
    }
    pthread_t tc, tr;
    pthread_create(&tr, NULL, reader, NULL);
    pthread_create(&tc, NULL, claimer, NULL);
    pthread_join(tc, NULL);
    pthread_join(tr, NULL);
    ph_segment_close(&seg);
    ph_segment_unlink(id, err, sizeof err);

    int fail = 0;
    if (claim_failures != 0) {
        fprintf(stderr, "FAIL: %" PRIu64 " claim/detach/free steps failed; first: %s\n",
                claim_failures, first_error);
        fail = 1;
    }
    if (reads_mixed != 0) {
        fprintf(stderr, "FAIL: %" PRIu64 " reads mixed two claims; first: %s\n", reads_mixed,
                first_error);
        fail = 1;
    }
    printf("%s: item17_identity_reads_are_race_free_against_claims: %" PRIu64
           " claims, %" PRIu64 " consistent identity reads (%" PRIu64 " of an owned slot)\n",
           fail ? "FAIL" : "ok", n_claims, reads_consistent, reads_active);
    return fail;
}
