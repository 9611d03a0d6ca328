/* The controller's slot table (ctl.c) against hostile or unlucky slots:
 * corrupt ring positions, claims that stall, restarts of the controller.
 *
 * These tests drive ctl directly on a real segment (no swarm module): slots
 * are claimed with ph_slot_claim or set by hand, as a worker (or any process
 * mapping the segment read-write) could, and ctl_scan runs on a simulated
 * clock. Each test uses its own swarm id, removed in teardown. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <dirent.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ctl.h"
#include "ph/record.h"
#include "ph/shm.h"

#define SEC 1000000000ull

/* ---- fixtures ----------------------------------------------------------- */

#define MAX_IDS 32
static char ids[MAX_IDS][PH_ID_MAX];
static int n_ids;

static const char *new_id(void)
{
    assert_true(n_ids < MAX_IDS);
    snprintf(ids[n_ids], sizeof ids[n_ids], "ut-cs-%d-%d", (int)getpid(), n_ids);
    return ids[n_ids++];
}

static int remove_all(void **state)
{
    (void)state;
    char err[256];
    for (int i = 0; i < n_ids; i++) ph_segment_unlink(ids[i], err, sizeof err);
    return 0;
}

static void create(struct ph_segment *seg, const char *id, uint32_t slots)
{
    char err[256];
    bool adopted = true;
    struct ph_segment_params p = {.slots = slots, .status_ring = 1024, .command_ring = 512};
    if (ph_segment_create(seg, id, &p, &adopted, err, sizeof err) != PH_OK)
        fail_msg("create %s: %s", id, err);
}

static void ctl_start(struct ctl *c, struct ph_segment *seg)
{
    assert_int_equal(ctl_init(c, seg, NULL), PH_OK);
    c->use_pidfd = false; /* liveness from /proc only: nothing to arm here */
}

static uint64_t my_start(void)
{
    uint64_t st = 0;
    assert_int_equal(ph_proc_start_time((int32_t)getpid(), &st), PH_OK);
    return st;
}

/* A slot claimed for process (pid, start), as its worker would. */
static uint32_t claim_for(struct ph_segment *seg, const char *instance, pid_t pid,
                          uint64_t start)
{
    char err[256];
    uint32_t idx = UINT32_MAX;
    if (ph_slot_claim(seg, "r", instance, (int32_t)pid, start, &idx, NULL, err, sizeof err) !=
        PH_OK)
        fail_msg("claim %s: %s", instance, err);
    return idx;
}

static uint32_t claim(struct ph_segment *seg, const char *instance)
{
    return claim_for(seg, instance, getpid(), my_start());
}

/* ---- item 8: command ring positions ------------------------------------- */

/* The controller produces into each worker's command ring, but the ring's
 * positions sit in the worker's slot. A worker that sets an unaligned tail
 * near the end of the ring used to make the controller's padding record
 * spill past the ring into the next slot's state word. */
static void item08_controller_refuses_corrupt_command_ring_positions(void **state)
{
    (void)state;
    const char *id = new_id();
    struct ph_segment seg;
    create(&seg, id, 4);
    const uint32_t a = claim(&seg, "hostile");
    const uint32_t b = claim(&seg, "neighbour");
    assert_int_equal(b, a + 1);
    struct ph_slot *sa = ph_segment_slot(&seg, a), *sb = ph_segment_slot(&seg, b);
    const uint64_t tail = seg.command_ring - 4; /* unaligned, 4 bytes before the end */
    atomic_store(&sa->command.tail, tail);
    atomic_store(&sa->command.head, tail);
    const uint64_t neighbour = atomic_load(&sb->state);

    struct ctl c;
    ctl_start(&c, &seg);
    ctl_scan(&c, ph_mono_ns());
    assert_true(c.w[a].tracked);
    assert_true(c.w[b].tracked);
    /* A command to each: the hostile slot's is refused, nothing spills. */
    assert_int_equal(ctl_send_command(&c, a, PH_CMD_STATUS_REQUEST, NULL, 0), 0);
    assert_int_equal(atomic_load(&sb->state), neighbour);
    assert_int_equal(atomic_load(&sa->command.tail), tail);
    assert_int_equal(c.w[a].quarantine, PH_Q_RING);
    assert_int_equal(atomic_load(&sa->c_quarantine), PH_Q_RING);
    /* The neighbour is neither quarantined nor refused. */
    assert_int_equal(c.w[b].quarantine, PH_Q_NONE);
    assert_true(ctl_send_command(&c, b, PH_CMD_STATUS_REQUEST, NULL, 0) != 0);
    assert_int_equal(ph_slot_state_of(atomic_load(&sb->state)), PH_SLOT_ACTIVE);

    /* Positions made to look sane again after tracking change nothing: the
     * verdict stands and the ring is never written. */
    atomic_store(&sa->command.tail, 0);
    atomic_store(&sa->command.head, 0);
    ctl_scan(&c, ph_mono_ns());
    assert_int_equal(ctl_send_command(&c, a, PH_CMD_STATUS_REQUEST, NULL, 0), 0);
    assert_int_equal(atomic_load(&sa->command.tail), 0);
    ctl_destroy(&c);
    ph_segment_close(&seg);
}

/* A head ahead of tail, or a tail more than a ring ahead of head: the same
 * verdict, and the neighbour's state word untouched. */
static void item08_controller_refuses_out_of_range_command_ring_positions(void **state)
{
    (void)state;
    static const struct {
        uint64_t tail, head;
    } bad[] = {{64, 128}, {4096, 0}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *id = new_id();
        struct ph_segment seg;
        create(&seg, id, 2);
        const uint32_t a = claim(&seg, "hostile");
        const uint32_t b = claim(&seg, "neighbour");
        struct ph_slot *sa = ph_segment_slot(&seg, a), *sb = ph_segment_slot(&seg, b);
        atomic_store(&sa->command.tail, bad[i].tail);
        atomic_store(&sa->command.head, bad[i].head);
        const uint64_t neighbour = atomic_load(&sb->state);
        struct ctl c;
        ctl_start(&c, &seg);
        ctl_scan(&c, ph_mono_ns());
        assert_int_equal(ctl_send_command(&c, a, PH_CMD_STATUS_REQUEST, NULL, 0), 0);
        assert_int_equal(atomic_load(&sa->command.tail), bad[i].tail);
        assert_int_equal(atomic_load(&sb->state), neighbour);
        assert_int_equal(c.w[a].quarantine, PH_Q_RING);
        ctl_destroy(&c);
        ph_segment_close(&seg);
    }
}

/* ---- item 10: claims in progress ---------------------------------------- */

/* A child that sleeps until killed; its start time is real. Returns once
 * the child has armed its death signal, so that stopping it at once cannot
 * leave it behind if this test dies. */
static pid_t sleeper(void)
{
    int ready[2];
    assert_int_equal(pipe(ready), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        alarm(60);
        if (write(ready[1], "r", 1) != 1) _exit(1);
        for (;;) pause();
    }
    char r;
    assert_int_equal(read(ready[0], &r, 1), 1);
    close(ready[0]);
    close(ready[1]);
    return pid;
}

static void kill_and_reap(pid_t pid)
{
    kill(pid, SIGKILL);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
}

/* Puts slot `i` in `state` for `pid`, as a claimer between its claim CAS and
 * anything else would leave it: no claim time yet. */
static uint64_t put_claim(struct ph_segment *seg, uint32_t i, unsigned state, pid_t pid)
{
    struct ph_slot *s = ph_segment_slot(seg, i);
    const uint64_t w = ph_slot_word(state, ph_slot_seq_of(atomic_load(&s->state)) + 1, pid);
    atomic_store(&s->claimed_mono_ns, 0);
    atomic_store(&s->state, w);
    if (atomic_load(&seg->hdr->slot_high_water) < i + 1)
        atomic_store(&seg->hdr->slot_high_water, i + 1);
    return w;
}

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    int n = 0;
    while (readdir(d) != NULL) n++;
    closedir(d);
    return n;
}

/* The pid a pidfd stands for (its fdinfo), or -1. */
static long pidfd_pid(int fd)
{
    char path[64], line[128];
    snprintf(path, sizeof path, "/proc/self/fdinfo/%d", fd);
    FILE *f = fopen(path, "r");
    long pid = -1;
    while (f != NULL && fgets(line, sizeof line, f) != NULL)
        if (strncmp(line, "Pid:", 4) == 0) pid = strtol(line + 4, NULL, 10);
    if (f != NULL) fclose(f);
    return pid;
}

/* Workers of one process share the pidfd the controller opened and checked
 * for it (ctl.h, pidfds): each gets a descriptor of its own for the same
 * process, so one leaving closes only its own; another process's worker
 * gets a pidfd of that process. */
static void workers_of_one_process_each_get_their_own_pidfd_of_it(void **state)
{
    (void)state;
    const char *id = new_id();
    struct ph_segment seg;
    create(&seg, id, 8);
    const uint32_t a = claim(&seg, "one"), b = claim(&seg, "two"), d = claim(&seg, "three");
    pid_t other = sleeper();
    uint64_t other_start = 0;
    assert_int_equal(ph_proc_start_time((int32_t)other, &other_start), PH_OK);
    const uint32_t o = claim_for(&seg, "elsewhere", other, other_start);
    /* This pid with another start time: not this process (a claim by one
     * before it with the same pid), whatever pidfd is kept for this one. */
    const uint32_t x = claim_for(&seg, "impostor", getpid(), my_start() + 1);

    const int fds_before = count_fds();
    struct ctl c;
    assert_int_equal(ctl_init(&c, &seg, NULL), PH_OK); /* pidfds on */
    ctl_scan(&c, ph_mono_ns());
    assert_true(c.w[x].tracked);
    assert_int_equal(c.w[x].pidfd, -1);
    const int fa = c.w[a].pidfd, fb = c.w[b].pidfd, fd = c.w[d].pidfd, fo = c.w[o].pidfd;
    assert_true(fa >= 0 && fb >= 0 && fd >= 0 && fo >= 0);
    assert_true(fa != fb && fb != fd && fa != fd);
    assert_int_equal(pidfd_pid(fa), getpid());
    assert_int_equal(pidfd_pid(fb), getpid());
    assert_int_equal(pidfd_pid(fd), getpid());
    assert_int_equal(pidfd_pid(fo), other);

    /* One leaves: its descriptor goes, the others still name this process. */
    assert_true(ph_slot_detach(&seg, a, c.w[a].word));
    ctl_scan(&c, ph_mono_ns());
    assert_false(c.w[a].tracked);
    assert_int_equal(c.w[b].pidfd, fb);
    assert_int_equal(pidfd_pid(fb), getpid());
    assert_int_equal(pidfd_pid(fd), getpid());
    /* A worker of this process joining later gets one too. */
    const uint32_t e = claim(&seg, "four");
    ctl_scan(&c, ph_mono_ns());
    assert_true(c.w[e].pidfd >= 0 && c.w[e].pidfd != fb && c.w[e].pidfd != fd);
    assert_int_equal(pidfd_pid(c.w[e].pidfd), getpid());

    kill_and_reap(other);
    ctl_destroy(&c);
    assert_int_equal(count_fds(), fds_before); /* the kept pidfds too */
    ph_segment_close(&seg);
}

/* A worker that leaves a process which lives on: the loop's poll of its
 * pidfd would stay until the process exits (one more for every worker it
 * ever had), so ctl hands its id over to be cancelled. A poll that already
 * completed (the owner died, main.c clears it) and a pidfd never polled
 * hand over nothing; ids come out in order, as many as asked. */
static void a_worker_leaving_a_live_process_hands_its_poll_over_for_cancelling(void **state)
{
    (void)state;
    const char *id = new_id();
    struct ph_segment seg;
    create(&seg, id, 8);
    const uint32_t a = claim(&seg, "one"), b = claim(&seg, "two"), d = claim(&seg, "three");
    struct ctl c;
    assert_int_equal(ctl_init(&c, &seg, NULL), PH_OK); /* pidfds on */
    ctl_scan(&c, ph_mono_ns());
    assert_true(c.w[a].pidfd >= 0 && c.w[b].pidfd >= 0 && c.w[d].pidfd >= 0);
    /* What main.c's arm_pidfds() does with the loop's polls. */
    c.w[a].pidfd_armed = true;
    c.w[a].pidfd_poll = 41;
    c.w[d].pidfd_armed = true;
    c.w[d].pidfd_poll = 43;
    uint64_t polls[4];
    assert_int_equal(ctl_take_stale_polls(&c, polls, 4), 0);

    assert_true(ph_slot_detach(&seg, b, c.w[b].word)); /* never polled */
    assert_true(ph_slot_detach(&seg, d, c.w[d].word));
    assert_true(ph_slot_detach(&seg, a, c.w[a].word));
    ctl_scan(&c, ph_mono_ns());
    assert_false(c.w[a].tracked || c.w[b].tracked || c.w[d].tracked);
    assert_int_equal(c.nstale_polls, 2);
    assert_int_equal(ctl_take_stale_polls(&c, polls, 1), 1);
    assert_int_equal(polls[0], 41); /* slot order: a's slot comes first */
    assert_int_equal(ctl_take_stale_polls(&c, polls, 4), 1);
    assert_int_equal(polls[0], 43);
    assert_int_equal(ctl_take_stale_polls(&c, polls, 4), 0);
    assert_int_equal(c.stale_polls_dropped, 0);
    ctl_destroy(&c);
    ph_segment_close(&seg);
}

/* A claimer stopped right after its claim CAS (SIGSTOP), with no claim time
 * written: however long it stays there, its process lives, so the
 * controller must not free the slot (another worker would get it, and the
 * first, resumed, would reset the new owner's rings and identity). It warns
 * once. When the claimer dies, the slot is freed. */
static void item10_controller_never_expires_a_live_claimer(void **state)
{
    (void)state;
    const char *id = new_id();
    struct ph_segment seg;
    create(&seg, id, 2);
    pid_t claimer = sleeper();
    assert_int_equal(kill(claimer, SIGSTOP), 0);
    const uint64_t w = put_claim(&seg, 0, PH_SLOT_CLAIMING, claimer);
    struct ph_slot *s = ph_segment_slot(&seg, 0);

    struct ctl c;
    ctl_start(&c, &seg);
    const uint64_t t0 = ph_mono_ns();
    ctl_scan(&c, t0);
    ctl_scan(&c, t0 + 3600 * SEC); /* an hour later */
    ctl_scan(&c, t0 + 7200 * SEC);
    assert_int_equal(atomic_load(&s->state), w);
    assert_false(c.w[0].tracked);
    assert_int_equal(c.reclaimed, 0);
    assert_int_equal(c.slow_claims, 1); /* warned once, not on every scan */

    kill_and_reap(claimer);
    ctl_scan(&c, t0 + 7201 * SEC);
    assert_int_equal(ph_slot_state_of(atomic_load(&s->state)), PH_SLOT_FREE);
    assert_int_equal(c.reclaimed, 1);
    ctl_destroy(&c);
    ph_segment_close(&seg);
}

/* The same with this test's own pid as the claimer (alive for sure), and a
 * claim time from long ago: the age of the claim is no reason. A claim by
 * a process that is already gone when first seen is freed at once. */
static void item10_claims_are_judged_by_their_process_not_their_age(void **state)
{
    (void)state;
    const char *id = new_id();
    struct ph_segment seg;
    create(&seg, id, 2);
    const uint64_t mine = put_claim(&seg, 0, PH_SLOT_CLAIMING, getpid());
    atomic_store(&ph_segment_slot(&seg, 0)->claimed_mono_ns, 1);
    pid_t gone = sleeper();
    kill_and_reap(gone);
    put_claim(&seg, 1, PH_SLOT_CLAIMING, gone);

    struct ctl c;
    ctl_start(&c, &seg);
    const uint64_t t0 = ph_mono_ns();
    ctl_scan(&c, t0 + 1000 * SEC);
    assert_int_equal(atomic_load(&ph_segment_slot(&seg, 0)->state), mine);
    assert_int_equal(ph_slot_state_of(atomic_load(&ph_segment_slot(&seg, 1)->state)),
                     PH_SLOT_FREE);
    assert_int_equal(c.reclaimed, 1);
    ctl_destroy(&c);
    ph_segment_close(&seg);
}

/* Item 11 (controller side): a JOINING slot is a claim in progress, not a
 * worker: not tracked, never freed while its claimer lives, judged by the
 * start time the claimer published. A JOINING slot whose published start
 * time is not its pid's (the pid was reused) is freed. */
static void item11_controller_treats_joining_like_claiming(void **state)
{
    (void)state;
    const char *id = new_id();
    struct ph_segment seg;
    create(&seg, id, 2);
    const uint64_t live = put_claim(&seg, 0, PH_SLOT_JOINING, getpid());
    ph_slot_id_store(ph_segment_slot(&seg, 0), "r", "joining", getpid(), my_start(), ph_real_ns());
    put_claim(&seg, 1, PH_SLOT_JOINING, getpid());
    ph_slot_id_store(ph_segment_slot(&seg, 1), "r", "reused", getpid(), my_start() + 1,
                     ph_real_ns());

    struct ctl c;
    ctl_start(&c, &seg);
    const uint64_t t0 = ph_mono_ns();
    ctl_scan(&c, t0);
    ctl_scan(&c, t0 + 3600 * SEC);
    assert_int_equal(atomic_load(&ph_segment_slot(&seg, 0)->state), live);
    assert_false(c.w[0].tracked);
    assert_int_equal(c.live, 0);
    assert_int_equal(c.slow_claims, 1);
    assert_int_equal(ph_slot_state_of(atomic_load(&ph_segment_slot(&seg, 1)->state)),
                     PH_SLOT_FREE);
    assert_int_equal(c.reclaimed, 1);
    ctl_destroy(&c);
    ph_segment_close(&seg);
}

/* ---- item 12: command tokens across controller restarts ----------------- */

/* Sends n status requests to slot `idx` and stores their tokens. */
static void send_n(struct ctl *c, uint32_t idx, uint64_t *tokens, int n)
{
    for (int i = 0; i < n; i++) {
        tokens[i] = ctl_send_command(c, idx, PH_CMD_STATUS_REQUEST, NULL, 0);
        assert_true(tokens[i] != 0);
    }
}

/* An ack left in a worker's ring for the previous controller's command must
 * not complete a command of the next one: the two controllers' tokens never
 * meet. */
static void item12_tokens_of_successive_controllers_are_disjoint(void **state)
{
    (void)state;
    const char *id = new_id();
    struct ph_segment seg;
    create(&seg, id, 2);
    const uint32_t idx = claim(&seg, "w");
    enum { N = 5 };
    uint64_t first[N], second[N];

    struct ctl c;
    ctl_start(&c, &seg);
    ctl_scan(&c, ph_mono_ns());
    assert_true(c.w[idx].tracked);
    send_n(&c, idx, first, N);
    ctl_destroy(&c);
    const uint64_t gen1 = atomic_load(&seg.hdr->generation);
    ph_segment_close(&seg);

    /* The next controller adopts the segment (a new generation) and sends
     * commands to the same, still attached, worker. */
    char err[256];
    bool adopted = false;
    struct ph_segment_params p = {.slots = 2, .status_ring = 1024, .command_ring = 512};
    if (ph_segment_create(&seg, id, &p, &adopted, err, sizeof err) != PH_OK)
        fail_msg("adopt: %s", err);
    assert_true(adopted);
    assert_int_equal(atomic_load(&seg.hdr->generation), gen1 + 1);
    ctl_start(&c, &seg);
    ctl_scan(&c, ph_mono_ns());
    assert_true(c.w[idx].tracked);
    send_n(&c, idx, second, N);
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++)
            if (first[i] == second[j])
                fail_msg("token %llu issued by both controllers", (unsigned long long)first[i]);
    /* Each controller's range is its generation's. */
    for (int i = 0; i < N; i++) {
        assert_int_equal(first[i] >> 32, gen1);
        assert_int_equal(second[i] >> 32, gen1 + 1);
    }
    ctl_destroy(&c);
    ph_segment_close(&seg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(item08_controller_refuses_corrupt_command_ring_positions),
        cmocka_unit_test(item08_controller_refuses_out_of_range_command_ring_positions),
        cmocka_unit_test(item10_controller_never_expires_a_live_claimer),
        cmocka_unit_test(item10_claims_are_judged_by_their_process_not_their_age),
        cmocka_unit_test(item11_controller_treats_joining_like_claiming),
        cmocka_unit_test(item12_tokens_of_successive_controllers_are_disjoint),
        cmocka_unit_test(workers_of_one_process_each_get_their_own_pidfd_of_it),
        cmocka_unit_test(a_worker_leaving_a_live_process_hands_its_poll_over_for_cancelling),
    };
    return cmocka_run_group_tests(tests, NULL, remove_all);
}
