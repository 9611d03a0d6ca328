/* item11_concurrent_attaches_of_one_instance_admit_exactly_one: several
 * processes attach the same role and instance at the same moment, round
 * after round; exactly one may win each round.
 *
 * Each round forks --claimers processes. Each maps the segment, then blocks
 * reading a pipe until the parent closes it (so all start together), calls
 * ph_slot_claim("dup", "dup-1") under its own pid and start time, reports
 * the result through another pipe, and stays alive until every claimer has
 * answered: a winner that exited early would make a later duplicate look
 * legitimate (its holder dead). The parent then checks that exactly one
 * claimer won, that the others got PH_ERR_BUSY, and that exactly one slot
 * is ACTIVE with that identity; it reaps the children and frees the slots
 * for the next round.
 *
 *   stress_attach [--rounds N] [--claimers K]
 */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ph/shm.h"

#define MAX_CLAIMERS 32
#define SLOTS 16u

static char swarm[PH_ID_MAX];

static _Noreturn void claimer(int go, int done, int res)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    alarm(60);
    char err[256], b;
    struct ph_segment seg;
    uint64_t start = 0;
    const int32_t pid = (int32_t)getpid();
    char r = 'x';
    if (ph_segment_open(&seg, swarm, true, err, sizeof err) != PH_OK ||
        ph_proc_start_time(pid, &start) != PH_OK) {
        fprintf(stderr, "claimer %d: %s\n", (int)pid, err);
    } else {
        if (read(go, &b, 1) != 0) _exit(1); /* EOF: released together */
        uint32_t idx;
        int rc = ph_slot_claim(&seg, "dup", "dup-1", pid, start, &idx, NULL, err, sizeof err);
        r = rc == PH_OK ? 'o' : rc == PH_ERR_BUSY ? 'b' : 'x';
        if (r == 'x') fprintf(stderr, "claimer %d: unexpected: %s\n", (int)pid, err);
    }
    if (write(res, &r, 1) != 1) _exit(1);
    if (read(done, &b, 1) != 0) _exit(1); /* stay alive until all answered */
    _exit(0);
}

int main(int argc, char **argv)
{
    int rounds = 300, claimers = 4;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc)
            rounds = atoi(argv[++i]);
        else if (strcmp(argv[i], "--claimers") == 0 && i + 1 < argc)
            claimers = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--rounds N] [--claimers K]\n", argv[0]);
            return 2;
        }
    }
    if (rounds <= 0 || claimers < 2 || claimers > MAX_CLAIMERS) {
        fprintf(stderr, "rounds > 0 and 2 <= claimers <= %d\n", MAX_CLAIMERS);
        return 2;
    }
    snprintf(swarm, sizeof swarm, "st-att-%d", (int)getpid());
    char err[256];
    struct ph_segment seg;
    bool adopted;
    struct ph_segment_params params = {.slots = SLOTS, .status_ring = 1024, .command_ring = 512};
    if (ph_segment_create(&seg, swarm, &params, &adopted, err, sizeof err) != PH_OK) {
        fprintf(stderr, "FAIL: create: %s\n", err);
        return 1;
    }
    int bad_rounds = 0, total_wins = 0;
    char first_bad[256] = "";
    for (int round = 0; round < rounds; round++) {
        int go[2], done[2], res[2];
        if (pipe(go) != 0 || pipe(done) != 0 || pipe(res) != 0) {
            perror("pipe");
            break;
        }
        pid_t kids[MAX_CLAIMERS];
        fflush(NULL);
        for (int k = 0; k < claimers; k++) {
            kids[k] = fork();
            if (kids[k] < 0) {
                perror("fork");
                return 1;
            }
            if (kids[k] == 0) {
                close(go[1]);
                close(done[1]);
                close(res[0]);
                claimer(go[0], done[0], res[1]);
            }
        }
        close(go[0]);
        close(done[0]);
        close(res[1]);
        close(go[1]); /* go */
        int won = 0, busy = 0, other = 0;
        for (int k = 0; k < claimers; k++) {
            char r = 'x';
            if (read(res[0], &r, 1) != 1) r = 'x';
            won += r == 'o';
            busy += r == 'b';
            other += r == 'x';
        }
        /* Before anyone leaves: exactly one slot holds the instance. */
        int holders = 0;
        for (uint32_t i = 0; i < seg.slots; i++) {
            struct ph_slot_identity id;
            if (ph_slot_identity_read(ph_segment_slot(&seg, i), &id) &&
                ph_slot_state_of(id.state) == PH_SLOT_ACTIVE && strcmp(id.instance, "dup-1") == 0)
                holders++;
        }
        close(done[1]);
        close(res[0]);
        for (int k = 0; k < claimers; k++) waitpid(kids[k], NULL, 0);
        if (won != 1 || busy != claimers - 1 || holders != 1) {
            if (bad_rounds++ == 0)
                snprintf(first_bad, sizeof first_bad,
                         "round %d: %d won, %d busy, %d failed otherwise, %d slots ACTIVE "
                         "with the instance",
                         round, won, busy, other, holders);
        }
        total_wins += won;
        /* The controller's part: every slot back to FREE for the next round
         * (its holders are gone). */
        for (uint32_t i = 0; i < seg.slots; i++) {
            uint64_t w = atomic_load(&ph_segment_slot(&seg, i)->state);
            if (ph_slot_state_of(w) != PH_SLOT_FREE) ph_slot_free(&seg, i, w);
        }
    }
    ph_segment_close(&seg);
    ph_segment_unlink(swarm, err, sizeof err);
    if (bad_rounds != 0) {
        fprintf(stderr, "FAIL: %d of %d rounds did not admit exactly one attach; first: %s\n",
                bad_rounds, rounds, first_bad);
    }
    printf("%s: item11_concurrent_attaches_of_one_instance_admit_exactly_one: %d rounds of %d "
           "claimers, %d wins, %d bad rounds\n",
           bad_rounds ? "FAIL" : "ok", rounds, claimers, total_wins, bad_rounds);
    return bad_rounds ? 1 : 0;
}
