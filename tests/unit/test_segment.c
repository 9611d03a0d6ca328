/* Unit tests of the segment (shm/segment.c), slot ownership (shm/slot.c) and
 * process identity (shm/proc.c), on real POSIX shared memory.
 *
 * Every test uses its own swarm id ("pht-ut-seg-<pid>-<n>") and the group
 * teardown removes every object the tests created, so parallel runs and
 * failed runs leave nothing behind in /dev/shm. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ph/owner.h"
#include "ph/shm.h"

#ifndef PH_TEST_OPENS
#define PH_TEST_OPENS 100000
#endif

/* ---- fixtures ----------------------------------------------------------- */

#define MAX_IDS 64
static char ids[MAX_IDS][PH_ID_MAX];
static int n_ids;

static const char *new_id(void)
{
    assert_true(n_ids < MAX_IDS);
    snprintf(ids[n_ids], sizeof ids[n_ids], "pht-ut-seg-%d-%d", (int)getpid(), n_ids);
    return ids[n_ids++];
}

static int remove_all(void **state)
{
    (void)state;
    char err[256];
    for (int i = 0; i < n_ids; i++)
        ph_segment_unlink(ids[i], err, sizeof err);
    return 0;
}

static uint64_t my_start(void)
{
    uint64_t st = 0;
    assert_int_equal(ph_proc_start_time((int32_t)getpid(), &st), PH_OK);
    assert_true(st > 0);
    return st;
}

static void create(struct ph_segment *seg, const char *id, uint32_t slots)
{
    char err[256];
    bool adopted = true;
    struct ph_segment_params p = {.slots = slots, .status_ring = 1024, .command_ring = 512};
    int rc = ph_segment_create(seg, id, &p, &adopted, err, sizeof err);
    if (rc != PH_OK) fail_msg("create %s: %s", id, err);
    assert_false(adopted);
}

/* A child that sleeps until killed; its start time is real. */
static pid_t sleeper(uint64_t *start)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* Never outlive the test, even when it fails half-way. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        alarm(60);
        for (;;)
            pause();
    }
    assert_int_equal(ph_proc_start_time(pid, start), PH_OK);
    return pid;
}

static void kill_and_reap(pid_t pid)
{
    kill(pid, SIGKILL);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
}

/* A pid and start time of a process that existed and is gone (reaped). */
static pid_t dead_process(uint64_t *start)
{
    pid_t pid = sleeper(start);
    kill_and_reap(pid);
    return pid;
}

/* Makes (pid, start) the segment's controller as another process would:
 * the claim word adoption decides on, and the fields readers show. */
static void pose_controller(struct ph_segment *seg, pid_t pid, uint64_t start)
{
    atomic_store(&seg->hdr->controller_claim, ph_controller_claim_word(pid, start));
    ph_segment_set_controller(seg, pid, start);
}

static void shm_path(char *buf, size_t n, const char *id)
{
    snprintf(buf, n, "/dev/shm/ph.%s", id);
}

static int open_rc(const char *id, char *err, size_t errlen)
{
    struct ph_segment s;
    int rc = ph_segment_open(&s, id, false, err, errlen);
    if (rc == PH_OK) ph_segment_close(&s);
    return rc;
}

/* ---- segment ------------------------------------------------------------ */

static void segment_create_then_open_round_trip(void **state)
{
    (void)state;
    const char *id = new_id();
    struct ph_segment c, r, w;
    create(&c, id, 8);
    assert_int_equal(c.slots, 8);
    assert_int_equal(c.status_ring, 1024);
    assert_int_equal(c.command_ring, 512);
    assert_int_equal(c.size, ph_segment_size_for(8, 1024, 512));
    assert_int_equal(atomic_load(&c.hdr->generation), 1);

    char err[256];
    assert_int_equal(ph_segment_open(&r, id, false, err, sizeof err), PH_OK);
    assert_int_equal(r.slots, 8);
    assert_int_equal(r.slot_size, PH_SLOT_META_SIZE + 1024 + 512);
    assert_int_equal(r.status_ring, 1024);
    assert_int_equal(r.command_ring, 512);
    assert_int_equal(r.size, c.size);
    assert_int_equal(atomic_load(&r.hdr->magic), PH_SHM_MAGIC);
    assert_int_equal(r.hdr->layout_version, PH_LAYOUT_VERSION);
    assert_string_equal(r.hdr->swarm_id, id);
    /* Layout 4: the slot table is one array, the rings follow it, slot
     * after slot, and the last command ring ends where the segment does. */
    for (uint32_t i = 0; i < 8; i++) {
        struct ph_slot *sl = ph_segment_slot(&r, i);
        const uint8_t *base = r.base;
        assert_int_equal((const uint8_t *)sl - base,
                         PH_SHM_HEADER_SIZE + ph_claim_index_bytes(8) + i * PH_SLOT_META_SIZE);
        assert_int_equal(ph_slot_index(&r, sl), i);
        assert_int_equal(ph_slot_status_data(&r, sl) - base,
                         PH_SHM_HEADER_SIZE + ph_claim_index_bytes(8) + 8 * PH_SLOT_META_SIZE +
                             i * (1024 + 512));
        assert_int_equal(ph_slot_command_data(&r, sl) - ph_slot_status_data(&r, sl), 1024);
    }
    assert_int_equal(ph_slot_command_data(&r, ph_segment_slot(&r, 7)) + 512 - (uint8_t *)r.base,
                     r.size);
    assert_true(r.hdr->created_real_ns > 0);

    /* Both mappings are the same memory. */
    assert_int_equal(ph_segment_open(&w, id, true, err, sizeof err), PH_OK);
    atomic_store(&ph_segment_slot(&w, 7)->w_processed, 4242);
    assert_int_equal(atomic_load(&ph_segment_slot(&c, 7)->w_processed), 4242);
    assert_int_equal(atomic_load(&ph_segment_slot(&r, 7)->w_processed), 4242);
    /* The last slot ends exactly at the end of the segment. */
    assert_ptr_equal(ph_slot_command_data(&r, ph_segment_slot(&r, 7)) + r.command_ring,
                     (uint8_t *)r.base + r.size);
    /* A fresh segment has every slot FREE with empty rings. */
    for (uint32_t i = 0; i < r.slots; i++) {
        struct ph_slot *s = ph_segment_slot(&r, i);
        assert_int_equal(atomic_load(&s->state), 0);
        assert_int_equal(atomic_load(&s->status.tail), 0);
    }
    ph_segment_close(&w);
    ph_segment_close(&r);
    ph_segment_close(&c);
    assert_null(c.base);
}

static void segment_size_formula_fits_1000_workers_in_16_mib(void **state)
{
    (void)state;
    const uint64_t sz = ph_segment_size_for(1000, 8192, 4096);
    assert_int_equal(sz, (uint64_t)PH_SHM_HEADER_SIZE + 8192 /* 1000 index words, 2 pages */ +
                             1000ull * (PH_SLOT_META_SIZE + 8192 + 4096));
    assert_true(sz <= 16ull * 1024 * 1024);
    /* The object really has the size the formula gives (defaults). */
    const char *id = new_id();
    struct ph_segment c;
    char err[256];
    bool adopted;
    struct ph_segment_params p = {0};
    assert_int_equal(ph_segment_create(&c, id, &p, &adopted, err, sizeof err), PH_OK);
    struct stat st;
    assert_int_equal(fstat(c.fd, &st), 0);
    assert_int_equal(
        (uint64_t)st.st_size,
        ph_segment_size_for(PH_DEFAULT_SLOTS, PH_DEFAULT_STATUS_RING, PH_DEFAULT_COMMAND_RING));
    assert_int_equal(c.slots, PH_DEFAULT_SLOTS);
    ph_segment_close(&c);
}

/* An object as a creator leaves it between sizing it and publishing the
 * magic: zeros but for the claim word, last modified `age_s` ago. */
static void half_made(const char *id, uint64_t claim, int age_s)
{
    char name[PH_ID_MAX + 8];
    snprintf(name, sizeof name, "/ph.%s", id);
    int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)ph_segment_size_for(2, 1024, 512)), 0);
    assert_int_equal(
        pwrite(fd, &claim, sizeof claim, (off_t)offsetof(struct ph_shm_header, controller_claim)),
        (ssize_t)sizeof claim);
    struct timespec ts[2];
    clock_gettime(CLOCK_REALTIME, &ts[0]);
    ts[0].tv_sec -= age_s;
    ts[1] = ts[0];
    assert_int_equal(futimens(fd, ts), 0);
    close(fd);
}

static ino_t shm_inode(const char *id)
{
    char path[PH_ID_MAX + 32];
    snprintf(path, sizeof path, "/dev/shm/ph.%s", id);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return st.st_ino;
}

static void segment_create_replaces_a_half_made_object_whose_creator_died(void **state)
{
    (void)state;
    const char *id = new_id();
    uint64_t start;
    pid_t gone = dead_process(&start);
    half_made(id, ph_controller_claim_word(gone, start), 10);
    struct ph_segment seg;
    create(&seg, id, 2); /* created anew, not adopted */
    assert_int_equal(seg.hdr->magic, PH_SHM_MAGIC);
    ph_segment_close(&seg);
}

static void segment_create_leaves_a_half_made_object_of_a_live_creator(void **state)
{
    (void)state;
    const char *id = new_id();
    uint64_t start;
    pid_t slow = sleeper(&start); /* a creator stopped before its magic */
    half_made(id, ph_controller_claim_word(slow, start), 10);
    const ino_t before = shm_inode(id);
    struct ph_segment seg;
    char err[256];
    bool adopted = false;
    struct ph_segment_params p = {.slots = 2, .status_ring = 1024, .command_ring = 512};
    assert_int_not_equal(ph_segment_create(&seg, id, &p, &adopted, err, sizeof err), PH_OK);
    assert_int_equal(shm_inode(id), before); /* not unlinked from under it */
    kill_and_reap(slow);
}

static void segment_open_of_missing_swarm_is_noent(void **state)
{
    (void)state;
    const char *id = new_id();
    char err[256] = "";
    struct ph_segment s;
    assert_int_equal(ph_segment_open(&s, id, false, err, sizeof err), PH_ERR_NOENT);
    assert_non_null(strstr(err, id));
    assert_int_equal(ph_segment_open(&s, id, true, err, sizeof err), PH_ERR_NOENT);
    assert_int_equal(ph_segment_unlink(id, err, sizeof err), PH_ERR_NOENT);
}

static void segment_open_and_create_refuse_invalid_swarm_id(void **state)
{
    (void)state;
    char err[256];
    struct ph_segment s;
    bool adopted;
    struct ph_segment_params p = {0};
    assert_int_equal(ph_segment_open(&s, "../etc", false, err, sizeof err), PH_ERR_INVAL);
    assert_int_equal(ph_segment_open(&s, "", false, err, sizeof err), PH_ERR_INVAL);
    assert_int_equal(ph_segment_create(&s, "a/b", &p, &adopted, err, sizeof err), PH_ERR_INVAL);
    assert_int_equal(ph_segment_unlink("a.b", err, sizeof err), PH_ERR_INVAL);
}

static void segment_create_refuses_invalid_parameters(void **state)
{
    (void)state;
    const char *id = new_id();
    char err[256];
    struct ph_segment s;
    bool adopted;
    struct ph_segment_params bad[] = {
        {.status_ring = 1000},
        {.command_ring = 128},
        {.status_ring = PH_RING_MAX_CAPACITY * 2},
        {.slots = PH_MAX_SLOTS + 1},
        {.mode = 01777},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(ph_segment_create(&s, id, &bad[i], &adopted, err, sizeof err),
                         PH_ERR_INVAL);
        assert_int_equal(open_rc(id, err, sizeof err), PH_ERR_NOENT); /* nothing created */
    }
}

static void segment_open_rejects_bad_magic(void **state)
{
    (void)state;
    const char *id = new_id();
    struct ph_segment c;
    create(&c, id, 2);
    char path[128], err[256];
    shm_path(path, sizeof path, id);
    /* Written from outside, through the file, as another program could. */
    int fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    const uint64_t junk = 0x4a554e4b4a554e4bull;
    assert_int_equal(pwrite(fd, &junk, sizeof junk, 0), (ssize_t)sizeof junk);
    assert_int_equal(open_rc(id, err, sizeof err), PH_ERR_MAGIC);
    assert_non_null(strstr(err, "magic"));
    /* Zero magic: a creator that has not finished (or died) */
    const uint64_t zero = 0;
    assert_int_equal(pwrite(fd, &zero, sizeof zero, 0), (ssize_t)sizeof zero);
    assert_int_equal(open_rc(id, err, sizeof err), PH_ERR_MAGIC);
    assert_non_null(strstr(err, "not initialised"));
    /* Restored, it opens again: the check was the magic alone. */
    const uint64_t good = PH_SHM_MAGIC;
    assert_int_equal(pwrite(fd, &good, sizeof good, 0), (ssize_t)sizeof good);
    assert_int_equal(open_rc(id, err, sizeof err), PH_OK);
    close(fd);
    ph_segment_close(&c);
}

static void segment_open_rejects_other_layout_version(void **state)
{
    (void)state;
    const char *id = new_id();
    struct ph_segment c;
    create(&c, id, 2);
    char err[256];
    c.hdr->layout_version = PH_LAYOUT_VERSION + 1;
    assert_int_equal(open_rc(id, err, sizeof err), PH_ERR_VERSION);
    assert_non_null(strstr(err, "layout version"));
    c.hdr->layout_version = 0;
    assert_int_equal(open_rc(id, err, sizeof err), PH_ERR_VERSION);
    c.hdr->layout_version = PH_LAYOUT_VERSION;
    assert_int_equal(open_rc(id, err, sizeof err), PH_OK);
    ph_segment_close(&c);
}

/* Layout 4 (the slot table apart from the rings) cannot read a segment of
 * an older layout (layout 3 has each slot's rings beside it, layout 2 no
 * claim index, layout 1 no identity words either), and says so in words. */
static void segment_of_an_older_layout_is_refused_with_a_clear_message(void **state)
{
    (void)state;
    assert_int_equal(PH_LAYOUT_VERSION, 4);
    for (uint32_t old = 1; old <= 3; old++) {
        const char *id = new_id();
        struct ph_segment c;
        create(&c, id, 2);
        c.hdr->layout_version = old;
        char err[256], want[128];
        assert_int_equal(open_rc(id, err, sizeof err), PH_ERR_VERSION);
        snprintf(want, sizeof want,
                 "segment /dev/shm/ph.%s has layout version %u, this program reads 4", id, old);
        assert_string_equal(err, want);
        ph_segment_close(&c);
    }
}

static void segment_open_rejects_truncated_object(void **state)
{
    (void)state;
    const char *id = new_id();
    struct ph_segment c;
    create(&c, id, 4);
    const size_t size = c.size;
    char err[256];
    /* Shorter than the header says (the mapping beyond the end is not touched). */
    assert_int_equal(ftruncate(c.fd, (off_t)size - 1), 0);
    assert_int_equal(open_rc(id, err, sizeof err), PH_ERR_TRUNC);
    assert_non_null(strstr(err, "truncated"));
    assert_int_equal(ftruncate(c.fd, PH_SHM_HEADER_SIZE), 0);
    assert_int_equal(open_rc(id, err, sizeof err), PH_ERR_TRUNC);
    /* Shorter than the header itself. */
    assert_int_equal(ftruncate(c.fd, 100), 0);
    assert_int_equal(open_rc(id, err, sizeof err), PH_ERR_TRUNC);
    assert_int_equal(ftruncate(c.fd, 0), 0);
    assert_int_equal(open_rc(id, err, sizeof err), PH_ERR_TRUNC);
    ph_segment_close(&c);
}

static void segment_open_rejects_inconsistent_geometry(void **state)
{
    (void)state;
    const char *id = new_id();
    struct ph_segment c;
    create(&c, id, 4);
    struct ph_shm_header *h = c.hdr;
    const struct ph_shm_header saved = {.slot_capacity = h->slot_capacity,
                                        .slot_size = h->slot_size,
                                        .status_ring = h->status_ring,
                                        .command_ring = h->command_ring,
                                        .segment_size = h->segment_size,
                                        .header_size = h->header_size};
    char err[256];
    static const char *const cases[] = {"slot count",   "slot size",    "status ring",
                                        "command ring", "segment size", "header size",
                                        "zero slots",   "swarm id"};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        switch (i) {
        case 0:
            h->slot_capacity = 3;
            break;
        case 1:
            h->slot_size += 8;
            break;
        case 2:
            h->status_ring = 1000;
            break;
        case 3:
            h->command_ring = 64;
            break;
        case 4:
            h->segment_size -= 4096;
            break;
        case 5:
            h->header_size = 8192;
            break;
        case 6:
            h->slot_capacity = 0;
            h->segment_size = PH_SHM_HEADER_SIZE;
            break;
        case 7:
            memset(h->swarm_id, 'x', sizeof h->swarm_id);
            break;
        }
        int rc = open_rc(id, err, sizeof err);
        if (rc != PH_ERR_CORRUPT) fail_msg("%s: got %d (%s)", cases[i], rc, err);
        h->slot_capacity = saved.slot_capacity;
        h->slot_size = saved.slot_size;
        h->status_ring = saved.status_ring;
        h->command_ring = saved.command_ring;
        h->segment_size = saved.segment_size;
        h->header_size = saved.header_size;
        snprintf(h->swarm_id, sizeof h->swarm_id, "%s", id);
        assert_int_equal(open_rc(id, err, sizeof err), PH_OK);
    }
    /* A larger slot count whose size the object cannot hold: consistent
     * geometry, but the object is too short for it. */
    h->slot_capacity = 5;
    h->segment_size = ph_segment_size_for(5, h->status_ring, h->command_ring);
    assert_int_equal(open_rc(id, err, sizeof err), PH_ERR_TRUNC);
    ph_segment_close(&c);
}

/* Item 13: the geometry an open returns must be the geometry it validated.
 * A forked child (another process, as a hostile worker would be; TSan does
 * not see it) maps the header read-write and flips the slot count, slot size
 * and segment size between the real values and ones far beyond the object,
 * while this process opens and closes the segment. Every open that succeeds
 * must describe slots that lie inside its own mapping. */
static void item13_open_geometry_fits_the_mapping_under_concurrent_header_writes(void **state)
{
    (void)state;
    const char *id = new_id();
    struct ph_segment c;
    create(&c, id, 4);
    const uint32_t slots = c.slots, slot_size = c.slot_size;
    const uint64_t size = c.size;
    char path[128];
    shm_path(path, sizeof path, id);
    int go[2];
    assert_int_equal(pipe(go), 0);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        alarm(60);
        int fd = open(path, O_RDWR);
        if (fd < 0) _exit(1);
        struct ph_shm_header *h =
            mmap(NULL, PH_SHM_HEADER_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (h == MAP_FAILED) _exit(1);
        volatile uint32_t *cap = &h->slot_capacity, *ssz = &h->slot_size;
        volatile uint64_t *seg_size = &h->segment_size;
        if (write(go[1], "g", 1) != 1) _exit(1);
        const uint64_t huge = ph_segment_size_for(PH_MAX_SLOTS, c.status_ring, c.command_ring);
        for (uint64_t i = 0;; i++) {
            /* The slot count flips on every store; slot size and segment
             * size on slower phases of their own, so that every mix of real
             * and bogus values occurs, the real geometry included. */
            *cap = (i & 1) ? PH_MAX_SLOTS : slots;
            *ssz = (i & (1u << 12)) ? slot_size * 16 : slot_size;
            *seg_size = (i & (1u << 14)) ? huge : size;
        }
    }
    char g;
    assert_int_equal(read(go[0], &g, 1), 1);
    close(go[0]);
    close(go[1]);
    int ok = 0, refused = 0;
    /* The race needs both processes on a CPU at once: on a loaded 2-core
     * machine the old code was caught in about half the runs of 100,000
     * opens (the plain build's count; sanitizer builds do fewer). */
    for (int i = 0; i < PH_TEST_OPENS; i++) {
        struct ph_segment r;
        char err[256];
        if (ph_segment_open(&r, id, false, err, sizeof err) != PH_OK) {
            refused++;
            continue;
        }
        ok++;
        const uint64_t end = (uint64_t)PH_SHM_HEADER_SIZE + (uint64_t)r.slots * r.slot_size;
        const bool fits = end <= r.size && r.size <= size &&
                          r.slot_size == PH_SLOT_META_SIZE + r.status_ring + r.command_ring &&
                          r.slots <= (r.size - PH_SHM_HEADER_SIZE) / r.slot_size;
        const uint32_t got_slots = r.slots, got_slot_size = r.slot_size;
        const size_t got_size = r.size;
        ph_segment_close(&r);
        if (!fits) {
            kill_and_reap(child);
            fail_msg("open %d returned %u slots of %u bytes on a %zu-byte mapping", i, got_slots,
                     got_slot_size, got_size);
        }
    }
    kill_and_reap(child);
    print_message("%d opens succeeded, %d refused\n", ok, refused);
    /* Sanity of the test itself: both outcomes happened. */
    assert_true(ok > 0);
    assert_true(refused > 0);
    ph_segment_close(&c);
}

static void segment_is_owner_only_by_default_and_honours_mode(void **state)
{
    (void)state;
    const char *id = new_id();
    struct ph_segment c;
    create(&c, id, 1);
    struct stat st;
    assert_int_equal(fstat(c.fd, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_int_equal(st.st_uid, getuid());
    ph_segment_close(&c);

    /* An explicit mode wins over the umask. */
    const char *id2 = new_id();
    mode_t old = umask(077);
    char err[256];
    bool adopted;
    struct ph_segment_params p = {.slots = 1, .mode = 0640};
    assert_int_equal(ph_segment_create(&c, id2, &p, &adopted, err, sizeof err), PH_OK);
    umask(old);
    char path[128];
    shm_path(path, sizeof path, id2);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0640);
    ph_segment_close(&c);
}

static void segment_create_refuses_swarm_with_live_controller(void **state)
{
    (void)state;
    const char *id = new_id();
    struct ph_segment c, c2;
    create(&c, id, 2);
    uint64_t start;
    pid_t ctl = sleeper(&start);
    pose_controller(&c, ctl, start);
    assert_int_equal(atomic_load(&c.hdr->controller_pid), ctl);
    assert_int_equal(atomic_load(&c.hdr->controller_start_time), start);
    assert_true(atomic_load(&c.hdr->controller_heartbeat_ns) > 0);

    char err[256] = "";
    bool adopted = true;
    struct ph_segment_params p = {.slots = 2, .status_ring = 1024, .command_ring = 512};
    assert_int_equal(ph_segment_create(&c2, id, &p, &adopted, err, sizeof err), PH_ERR_BUSY);
    assert_false(adopted);
    char pidstr[32];
    snprintf(pidstr, sizeof pidstr, "%d", (int)ctl);
    assert_non_null(strstr(err, pidstr));
    assert_int_equal(atomic_load(&c.hdr->generation), 1);

    /* The same pid with another start time is a reused pid: not the controller. */
    pose_controller(&c, ctl, start + 1);
    assert_int_equal(ph_segment_create(&c2, id, &p, &adopted, err, sizeof err), PH_OK);
    assert_true(adopted);
    assert_int_equal(atomic_load(&c.hdr->generation), 2);
    ph_segment_close(&c2);
    kill_and_reap(ctl);
    ph_segment_close(&c);
}

static void segment_adoption_after_controller_died_bumps_generation(void **state)
{
    (void)state;
    const char *id = new_id();
    struct ph_segment c, c2;
    create(&c, id, 2);
    uint64_t start;
    pid_t ctl = sleeper(&start);
    pose_controller(&c, ctl, start);
    uint32_t idx;
    char err[256];
    assert_int_equal(
        ph_slot_claim(&c, "r", "i", (int32_t)getpid(), my_start(), &idx, NULL, err, sizeof err),
        PH_OK);
    ph_segment_close(&c);
    kill_and_reap(ctl);

    bool adopted = false;
    struct ph_segment_params p = {.slots = 2, .status_ring = 1024, .command_ring = 512};
    assert_int_equal(ph_segment_create(&c2, id, &p, &adopted, err, sizeof err), PH_OK);
    assert_true(adopted);
    assert_int_equal(atomic_load(&c2.hdr->generation), 2);
    /* Adoption keeps the slots: workers survive a controller restart. */
    assert_int_equal(ph_slot_state_of(atomic_load(&ph_segment_slot(&c2, idx)->state)),
                     PH_SLOT_ACTIVE);
    ph_segment_close(&c2);

    /* The next controller restart is one more generation. */
    assert_int_equal(ph_segment_create(&c2, id, &p, &adopted, err, sizeof err), PH_OK);
    assert_true(adopted);
    assert_int_equal(atomic_load(&c2.hdr->generation), 3);
    ph_segment_close(&c2);
}

static void segment_adoption_treats_zombie_controller_as_dead(void **state)
{
    (void)state;
    const char *id = new_id();
    struct ph_segment c, c2;
    create(&c, id, 2);
    uint64_t start;
    pid_t ctl = sleeper(&start);
    pose_controller(&c, ctl, start);
    kill(ctl, SIGKILL);
    siginfo_t si;
    /* Wait until it is a zombie, without reaping it. */
    assert_int_equal(waitid(P_PID, (id_t)ctl, &si, WEXITED | WNOWAIT), 0);
    char err[256];
    bool adopted = false;
    struct ph_segment_params p = {.slots = 2, .status_ring = 1024, .command_ring = 512};
    assert_int_equal(ph_segment_create(&c2, id, &p, &adopted, err, sizeof err), PH_OK);
    assert_true(adopted);
    int st;
    assert_int_equal(waitpid(ctl, &st, 0), ctl);
    ph_segment_close(&c2);
    ph_segment_close(&c);
}

static void segment_adoption_refuses_other_geometry(void **state)
{
    (void)state;
    const char *id = new_id();
    struct ph_segment c, c2;
    create(&c, id, 2);
    char err[256];
    bool adopted = true;
    struct ph_segment_params p = {.slots = 3, .status_ring = 1024, .command_ring = 512};
    assert_int_equal(ph_segment_create(&c2, id, &p, &adopted, err, sizeof err), PH_ERR_EXISTS);
    assert_false(adopted);
    assert_non_null(strstr(err, "geometry"));
    p.slots = 2;
    p.status_ring = 2048;
    assert_int_equal(ph_segment_create(&c2, id, &p, &adopted, err, sizeof err), PH_ERR_EXISTS);
    assert_int_equal(atomic_load(&c.hdr->generation), 1);
    ph_segment_close(&c);
}

/* A live controller is reported as such even when the geometry asked for
 * differs: "remove the segment" would be the wrong advice. */
static void segment_adoption_with_live_controller_and_other_geometry_is_busy(void **state)
{
    (void)state;
    const char *id = new_id();
    struct ph_segment c, c2;
    create(&c, id, 2);
    uint64_t start;
    pid_t ctl = sleeper(&start);
    pose_controller(&c, ctl, start);
    char err[256];
    bool adopted = true;
    struct ph_segment_params p = {.slots = 3, .status_ring = 1024, .command_ring = 512};
    assert_int_equal(ph_segment_create(&c2, id, &p, &adopted, err, sizeof err), PH_ERR_BUSY);
    assert_non_null(strstr(err, "live controller"));
    kill_and_reap(ctl);
    assert_int_equal(ph_segment_create(&c2, id, &p, &adopted, err, sizeof err), PH_ERR_EXISTS);
    ph_segment_close(&c);
}

static void segment_adoption_by_own_pid_is_not_busy(void **state)
{
    (void)state;
    const char *id = new_id();
    struct ph_segment c, c2;
    create(&c, id, 2);
    pose_controller(&c, (int32_t)getpid(), my_start());
    char err[256];
    bool adopted = false;
    struct ph_segment_params p = {.slots = 2, .status_ring = 1024, .command_ring = 512};
    assert_int_equal(ph_segment_create(&c2, id, &p, &adopted, err, sizeof err), PH_OK);
    assert_true(adopted);
    ph_segment_close(&c2);
    ph_segment_close(&c);
}

/* Item 9: adoption is one atomic claim of the controller identity. Eight
 * processes released together (all blocked reading a pipe until the parent
 * closes it) try to adopt a segment whose controller is dead: exactly one
 * may get it, the others are told a live controller has it; every round
 * bumps the generation once. The winner stays alive until all have
 * answered, then every child exits and the next round starts with a dead
 * controller again. */
static void item09_only_one_of_concurrent_adopters_wins(void **state)
{
    (void)state;
    enum { ADOPTERS = 8, ROUNDS = 30 };
    const char *id = new_id();
    struct ph_segment c;
    create(&c, id, 2);
    uint64_t dstart;
    pid_t dead = dead_process(&dstart);
    pose_controller(&c, dead, dstart);
    const struct ph_segment_params p = {.slots = 2, .status_ring = 1024, .command_ring = 512};
    for (int round = 0; round < ROUNDS; round++) {
        const uint64_t gen = atomic_load(&c.hdr->generation);
        int go[2], done[2], res[2];
        assert_int_equal(pipe(go), 0);
        assert_int_equal(pipe(done), 0);
        assert_int_equal(pipe(res), 0);
        pid_t kids[ADOPTERS];
        for (int k = 0; k < ADOPTERS; k++) {
            kids[k] = fork();
            assert_true(kids[k] >= 0);
            if (kids[k] != 0) continue;
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            alarm(60);
            close(go[1]);
            close(done[1]);
            close(res[0]);
            char b;
            if (read(go[0], &b, 1) != 0) _exit(1); /* EOF: released */
            struct ph_segment s;
            char err[256];
            bool adopted = false;
            int rc = ph_segment_create(&s, id, &p, &adopted, err, sizeof err);
            char r = rc == PH_OK && adopted ? 'o' : rc == PH_ERR_BUSY ? 'b' : 'x';
            if (write(res[1], &r, 1) != 1) _exit(1);
            if (read(done[0], &b, 1) != 0) _exit(1); /* stay alive until all answered */
            _exit(0);
        }
        close(go[0]);
        close(done[0]);
        close(res[1]);
        close(go[1]); /* release them all at once */
        int won = 0, busy = 0, other = 0;
        for (int k = 0; k < ADOPTERS; k++) {
            char r;
            assert_int_equal(read(res[0], &r, 1), 1);
            won += r == 'o';
            busy += r == 'b';
            other += r == 'x';
        }
        close(done[1]);
        close(res[0]);
        for (int k = 0; k < ADOPTERS; k++) {
            int ws;
            assert_int_equal(waitpid(kids[k], &ws, 0), kids[k]);
        }
        if (won != 1 || busy != ADOPTERS - 1)
            fail_msg("round %d: %d adopted, %d busy, %d other (want 1 and %d)", round, won, busy,
                     other, ADOPTERS - 1);
        assert_int_equal(atomic_load(&c.hdr->generation), gen + 1);
    }
    ph_segment_close(&c);
}

/* Item 9: the creator holds the claim from creation (a live creator is a
 * live controller even before ph_segment_set_controller) until a clean exit
 * releases it. */
static void item09_creator_holds_the_claim_until_it_releases_it(void **state)
{
    (void)state;
    const char *id = new_id();
    struct ph_segment c;
    create(&c, id, 2);
    assert_int_equal(atomic_load(&c.hdr->controller_claim),
                     ph_controller_claim_word(getpid(), my_start()));
    const struct ph_segment_params p = {.slots = 2, .status_ring = 1024, .command_ring = 512};
    for (int released = 0; released < 2; released++) {
        pid_t kid = fork();
        assert_true(kid >= 0);
        if (kid == 0) {
            struct ph_segment s;
            char err[256];
            bool adopted = false;
            int rc = ph_segment_create(&s, id, &p, &adopted, err, sizeof err);
            _exit(rc == PH_OK ? 0 : rc == PH_ERR_BUSY ? 1 : 2);
        }
        int ws;
        assert_int_equal(waitpid(kid, &ws, 0), kid);
        assert_true(WIFEXITED(ws));
        /* Held: another process is refused. Released: it adopts. */
        assert_int_equal(WEXITSTATUS(ws), released ? 0 : 1);
        if (!released) {
            ph_segment_release_controller(&c);
            assert_int_equal(atomic_load(&c.hdr->controller_claim), 0);
        }
    }
    /* Releasing a claim that is no longer ours leaves it alone. */
    const uint64_t theirs = atomic_load(&c.hdr->controller_claim);
    assert_true(theirs != 0);
    ph_segment_release_controller(&c);
    assert_int_equal(atomic_load(&c.hdr->controller_claim), theirs);
    ph_segment_close(&c);
}

static void segment_unlink_removes_the_object(void **state)
{
    (void)state;
    const char *id = new_id();
    struct ph_segment c;
    create(&c, id, 1);
    ph_segment_close(&c);
    char err[256], path[128];
    assert_int_equal(ph_segment_unlink(id, err, sizeof err), PH_OK);
    shm_path(path, sizeof path, id);
    assert_int_equal(access(path, F_OK), -1);
    assert_int_equal(ph_segment_unlink(id, err, sizeof err), PH_ERR_NOENT);
    assert_int_equal(open_rc(id, err, sizeof err), PH_ERR_NOENT);
}

/* ---- slots -------------------------------------------------------------- */

static void slot_claim_sets_active_state_and_identity(void **state)
{
    (void)state;
    const char *id = new_id();
    struct ph_segment c;
    create(&c, id, 4);
    struct ph_slot *s0 = ph_segment_slot(&c, 0);
    /* Leftovers of a previous owner must be reset by the claim. */
    atomic_store(&s0->status.tail, 64);
    atomic_store(&s0->status.head, 64);
    atomic_store(&s0->command.overflows, 3);
    atomic_store(&s0->w_processed, 77);
    atomic_store(&s0->c_quarantine, PH_Q_RECORD);

    char err[256];
    uint32_t idx = 99;
    const uint64_t st = my_start();
    assert_int_equal(
        ph_slot_claim(&c, "generator", "gen-1", (int32_t)getpid(), st, &idx, NULL, err, sizeof err),
        PH_OK);
    assert_int_equal(idx, 0);
    uint64_t w = atomic_load(&s0->state);
    assert_int_equal(ph_slot_state_of(w), PH_SLOT_ACTIVE);
    assert_int_equal(ph_slot_pid_of(w), getpid());
    assert_int_equal(ph_slot_seq_of(w), 1);
    assert_int_equal(atomic_load(&c.hdr->slot_high_water), 1);

    struct ph_slot_identity id0;
    assert_true(ph_slot_identity_read(s0, &id0));
    assert_int_equal(id0.state, w);
    assert_int_equal(id0.pid, getpid());
    assert_int_equal(id0.start_time, st);
    assert_string_equal(id0.role, "generator");
    assert_string_equal(id0.instance, "gen-1");
    assert_true(id0.attached_real_ns > 0);

    assert_int_equal(atomic_load(&s0->status.tail), 0);
    assert_int_equal(atomic_load(&s0->status.head), 0);
    assert_int_equal(atomic_load(&s0->command.overflows), 0);
    assert_int_equal(atomic_load(&s0->w_processed), 0);
    assert_int_equal(atomic_load(&s0->c_quarantine), PH_Q_NONE);

    /* The next claim takes the next slot. */
    assert_int_equal(
        ph_slot_claim(&c, "generator", "gen-2", (int32_t)getpid(), st, &idx, NULL, err, sizeof err),
        PH_OK);
    assert_int_equal(idx, 1);
    assert_int_equal(atomic_load(&c.hdr->slot_high_water), 2);
    ph_segment_close(&c);
}

/* Claimers share one hint in the segment: each claim starts past the
 * previous one, whichever process made it, and a slot given back (by the
 * controller freeing it) is the next one taken, whoever claims next. */
static void claims_share_a_start_hint_and_take_a_given_back_slot_first(void **state)
{
    (void)state;
    const char *id = new_id();
    struct ph_segment c, a, b;
    create(&c, id, 8);
    char err[256];
    assert_int_equal(ph_segment_open(&a, id, true, err, sizeof err), PH_OK);
    assert_int_equal(ph_segment_open(&b, id, true, err, sizeof err), PH_OK);
    const uint64_t st = my_start();
    const int32_t pid = (int32_t)getpid();
    uint32_t i0 = 99, i1 = 99, i2 = 99, i3 = 99;
    uint64_t w0 = 0;
    assert_int_equal(ph_slot_claim(&a, "g", "a-1", pid, st, &i0, &w0, err, sizeof err), PH_OK);
    assert_int_equal(ph_slot_claim(&b, "g", "b-1", pid, st, &i1, NULL, err, sizeof err), PH_OK);
    assert_int_equal(i0, 0);
    assert_int_equal(i1, 1);
    assert_int_equal(atomic_load(&c.hdr->claim_next), 2);
    /* a-1 leaves; the controller frees its slot. */
    assert_true(ph_slot_detach(&a, i0, w0));
    const uint64_t detached = atomic_load(&ph_segment_slot(&c, i0)->state);
    assert_true(ph_slot_free(&c, i0, detached));
    /* b's next claim takes slot 0 again, not 2: the high-water mark stays. */
    assert_int_equal(ph_slot_claim(&b, "g", "b-2", pid, st, &i2, NULL, err, sizeof err), PH_OK);
    assert_int_equal(i2, 0);
    assert_int_equal(ph_slot_claim(&a, "g", "a-2", pid, st, &i3, NULL, err, sizeof err), PH_OK);
    assert_int_equal(i3, 2);
    assert_int_equal(atomic_load(&c.hdr->slot_high_water), 3);
    ph_segment_close(&b);
    ph_segment_close(&a);
    ph_segment_close(&c);
}

static void slot_claim_refuses_invalid_identifiers(void **state)
{
    (void)state;
    const char *id = new_id();
    struct ph_segment c;
    create(&c, id, 2);
    char err[256];
    uint32_t idx;
    const uint64_t st = my_start();
    const int32_t me = (int32_t)getpid();
    assert_int_equal(ph_slot_claim(&c, "a.b", "i", me, st, &idx, NULL, err, sizeof err),
                     PH_ERR_INVAL);
    assert_non_null(strstr(err, "role"));
    assert_int_equal(ph_slot_claim(&c, "r", "", me, st, &idx, NULL, err, sizeof err), PH_ERR_INVAL);
    assert_non_null(strstr(err, "instance"));
    assert_int_equal(ph_slot_claim(&c, "r", "ALL", me, st, &idx, NULL, err, sizeof err),
                     PH_ERR_INVAL);
    assert_int_equal(ph_slot_claim(&c, "r", "x#", me, st, &idx, NULL, err, sizeof err),
                     PH_ERR_INVAL);
    for (uint32_t i = 0; i < c.slots; i++)
        assert_int_equal(atomic_load(&ph_segment_slot(&c, i)->state), 0);
    ph_segment_close(&c);
}

static void slot_claim_refuses_instance_held_by_live_process(void **state)
{
    (void)state;
    const char *id = new_id();
    struct ph_segment c;
    create(&c, id, 4);
    char err[256];
    uint32_t idx;
    uint64_t start;
    pid_t holder = sleeper(&start);
    assert_int_equal(ph_slot_claim(&c, "proc", "p-1", holder, start, &idx, NULL, err, sizeof err),
                     PH_OK);
    assert_int_equal(ph_slot_claim(&c, "proc", "p-1", (int32_t)getpid(), my_start(), &idx, NULL,
                                   err, sizeof err),
                     PH_ERR_BUSY);
    assert_non_null(strstr(err, "p-1"));
    /* Same instance name in another role, or another instance: fine. */
    assert_int_equal(
        ph_slot_claim(&c, "gen", "p-1", (int32_t)getpid(), my_start(), &idx, NULL, err, sizeof err),
        PH_OK);
    assert_int_equal(ph_slot_claim(&c, "proc", "p-2", (int32_t)getpid(), my_start(), &idx, NULL,
                                   err, sizeof err),
                     PH_OK);
    /* Once the holder is dead, the instance can attach again. */
    kill_and_reap(holder);
    assert_int_equal(ph_slot_claim(&c, "proc", "p-1", (int32_t)getpid(), my_start(), &idx, NULL,
                                   err, sizeof err),
                     PH_OK);
    assert_int_equal(idx, 3);
    ph_segment_close(&c);
}

static void slot_claim_allows_instance_whose_holder_is_dead_or_reused(void **state)
{
    (void)state;
    const char *id = new_id();
    struct ph_segment c;
    create(&c, id, 4);
    char err[256];
    uint32_t idx;
    uint64_t dstart;
    pid_t dead = dead_process(&dstart);
    assert_int_equal(ph_slot_claim(&c, "r", "i", dead, dstart, &idx, NULL, err, sizeof err), PH_OK);
    assert_int_equal(
        ph_slot_claim(&c, "r", "i", (int32_t)getpid(), my_start(), &idx, NULL, err, sizeof err),
        PH_OK);
    assert_int_equal(idx, 1);
    /* A live pid with another start time is a reused pid, not the holder. */
    assert_int_equal(
        ph_slot_claim(&c, "r", "j", (int32_t)getpid(), my_start() + 1, &idx, NULL, err, sizeof err),
        PH_OK);
    assert_int_equal(
        ph_slot_claim(&c, "r", "j", (int32_t)getpid(), my_start(), &idx, NULL, err, sizeof err),
        PH_OK);
    ph_segment_close(&c);
}

/* Puts slot `i` in JOINING for (pid, start) with identity r/i, as a
 * concurrent claimer in the middle of its duplicate check would be. */
static uint64_t put_joining(struct ph_segment *c, uint32_t i, pid_t pid, uint64_t start)
{
    struct ph_slot *s = ph_segment_slot(c, i);
    ph_slot_id_store(s, "r", "i", pid, start, ph_real_ns());
    const uint64_t w =
        ph_slot_word(PH_SLOT_JOINING, ph_slot_seq_of(atomic_load(&s->state)) + 1, pid);
    atomic_store(&s->state, w);
    /* Announced, as a claimer does after its CAS to JOINING. */
    atomic_store(&ph_segment_claim_index(c)[i], ph_claim_hash("r", "i"));
    if (atomic_load(&c->hdr->slot_high_water) < i + 1)
        atomic_store(&c->hdr->slot_high_water, i + 1);
    return w;
}

/* A concurrent claimer of r/i in slot 1, played by a child process: it is
 * JOINING; once slot 0 (ours) is JOINING too, it resolves to `outcome`
 * (ACTIVE: it won; FREE: it gave up) and stays alive until killed. */
static pid_t rival_in_slot_1(struct ph_segment *c, unsigned outcome)
{
    int ready[2];
    assert_int_equal(pipe(ready), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        alarm(60);
        char r;
        if (read(ready[0], &r, 1) != 1) _exit(1); /* the parent has set slot 1 up */
        struct ph_slot *mine = ph_segment_slot(c, 1), *theirs = ph_segment_slot(c, 0);
        while (ph_slot_state_of(atomic_load(&theirs->state)) != PH_SLOT_JOINING)
            sched_yield();
        const uint64_t w = atomic_load(&mine->state);
        atomic_store(&mine->state, ph_slot_word(outcome, ph_slot_seq_of(w),
                                                outcome == PH_SLOT_FREE ? 0 : ph_slot_pid_of(w)));
        for (;;)
            pause();
    }
    uint64_t start;
    assert_int_equal(ph_proc_start_time(pid, &start), PH_OK);
    put_joining(c, 1, pid, start);
    assert_int_equal(write(ready[1], "r", 1), 1);
    close(ready[0]);
    close(ready[1]);
    return pid;
}

/* Item 11: a claim of r/i that finds r/i JOINING in a lower slot, by a live
 * process, loses: that one wins the tie. Our slot goes back to FREE. */
static void item11_claim_loses_to_a_lower_slot_joining_the_same_instance(void **state)
{
    (void)state;
    const char *id = new_id();
    struct ph_segment c;
    create(&c, id, 4);
    uint64_t start;
    pid_t rival = sleeper(&start);
    put_joining(&c, 0, rival, start);
    char err[256] = "";
    uint32_t idx = 99;
    assert_int_equal(
        ph_slot_claim(&c, "r", "i", (int32_t)getpid(), my_start(), &idx, NULL, err, sizeof err),
        PH_ERR_BUSY);
    assert_non_null(strstr(err, "already attached"));
    assert_int_equal(ph_slot_state_of(atomic_load(&ph_segment_slot(&c, 1)->state)), PH_SLOT_FREE);
    /* Another instance is no rival. */
    assert_int_equal(
        ph_slot_claim(&c, "r", "j", (int32_t)getpid(), my_start(), &idx, NULL, err, sizeof err),
        PH_OK);
    /* A JOINING rival that died is none either. */
    kill_and_reap(rival);
    assert_int_equal(
        ph_slot_claim(&c, "r", "i", (int32_t)getpid(), my_start(), &idx, NULL, err, sizeof err),
        PH_OK);
    ph_segment_close(&c);
}

/* Item 11: r/i JOINING in a higher slot may not have seen our claim, so our
 * claim waits for it: it wins (ACTIVE) and we lose, or it gives up and we
 * win. The rival acts only once our slot is JOINING: no timing involved. */
static void item11_claim_waits_for_a_higher_slot_joining_the_same_instance(void **state)
{
    (void)state;
    for (int give_up = 0; give_up < 2; give_up++) {
        const char *id = new_id();
        struct ph_segment c;
        create(&c, id, 4);
        pid_t rival = rival_in_slot_1(&c, give_up ? PH_SLOT_FREE : PH_SLOT_ACTIVE);
        char err[256] = "";
        uint32_t idx = 99;
        int rc =
            ph_slot_claim(&c, "r", "i", (int32_t)getpid(), my_start(), &idx, NULL, err, sizeof err);
        if (give_up) {
            if (rc != PH_OK) fail_msg("rival gave up, yet: %s", err);
            assert_int_equal(idx, 0);
        } else {
            assert_int_equal(rc, PH_ERR_BUSY);
            assert_non_null(strstr(err, "already attached"));
            assert_int_equal(ph_slot_state_of(atomic_load(&ph_segment_slot(&c, 0)->state)),
                             PH_SLOT_FREE);
        }
        kill_and_reap(rival);
        ph_segment_close(&c);
    }
}

static void slot_claim_reports_full_table(void **state)
{
    (void)state;
    const char *id = new_id();
    struct ph_segment c;
    create(&c, id, 4);
    char err[256], inst[16];
    uint32_t idx;
    const uint64_t st = my_start();
    for (int i = 0; i < 4; i++) {
        snprintf(inst, sizeof inst, "w-%d", i);
        assert_int_equal(
            ph_slot_claim(&c, "r", inst, (int32_t)getpid(), st, &idx, NULL, err, sizeof err),
            PH_OK);
        assert_int_equal(idx, (uint32_t)i);
    }
    assert_int_equal(atomic_load(&c.hdr->claims_refused_full), 0);
    assert_int_equal(
        ph_slot_claim(&c, "r", "w-4", (int32_t)getpid(), st, &idx, NULL, err, sizeof err),
        PH_ERR_FULL);
    assert_non_null(strstr(err, "4 slots"));
    /* Each refusal is counted in the header, for the controller's alert. */
    assert_int_equal(atomic_load(&c.hdr->claims_refused_full), 1);
    /* DETACHED slots are not free either, until the controller frees them. */
    assert_true(ph_slot_detach(&c, 2, atomic_load(&ph_segment_slot(&c, 2)->state)));
    assert_int_equal(
        ph_slot_claim(&c, "r", "w-4", (int32_t)getpid(), st, &idx, NULL, err, sizeof err),
        PH_ERR_FULL);
    assert_int_equal(atomic_load(&c.hdr->claims_refused_full), 2);
    assert_true(ph_slot_free(&c, 2, atomic_load(&ph_segment_slot(&c, 2)->state)));
    assert_int_equal(
        ph_slot_claim(&c, "r", "w-4", (int32_t)getpid(), st, &idx, NULL, err, sizeof err), PH_OK);
    assert_int_equal(idx, 2);
    ph_segment_close(&c);
}

static void slot_detach_leaves_slot_detached_with_identity(void **state)
{
    (void)state;
    const char *id = new_id();
    struct ph_segment c;
    create(&c, id, 2);
    char err[256];
    uint32_t idx;
    uint64_t word = 0;
    assert_int_equal(
        ph_slot_claim(&c, "r", "i", (int32_t)getpid(), my_start(), &idx, &word, err, sizeof err),
        PH_OK);
    struct ph_slot *s = ph_segment_slot(&c, idx);
    const uint64_t active = atomic_load(&s->state);
    assert_int_equal(word, active);
    assert_true(ph_slot_detach(&c, idx, word));
    const uint64_t w = atomic_load(&s->state);
    assert_int_equal(ph_slot_state_of(w), PH_SLOT_DETACHED);
    assert_int_equal(ph_slot_seq_of(w), ph_slot_seq_of(active));
    assert_int_equal(ph_slot_pid_of(w), getpid());
    struct ph_slot_identity ident;
    assert_true(ph_slot_identity_read(s, &ident));
    assert_string_equal(ident.instance, "i");
    /* Detaching twice, with the DETACHED word, or a slot out of range,
     * changes nothing. */
    assert_false(ph_slot_detach(&c, idx, word));
    assert_false(ph_slot_detach(&c, idx, w));
    assert_int_equal(atomic_load(&s->state), w);
    assert_false(ph_slot_detach(&c, 1000, word));
    ph_segment_close(&c);
}

/* Item 17: the owner detaches only from the exact word its claim gave it.
 * Its slot freed (judged dead) and claimed by another process, its detach
 * with the old word must leave the new owner ACTIVE. */
static void item17_slot_detach_with_a_stale_word_leaves_the_new_owner_active(void **state)
{
    (void)state;
    const char *id = new_id();
    struct ph_segment c;
    create(&c, id, 1);
    char err[256];
    uint32_t idx, idx2;
    uint64_t first = 0, second = 0;
    const int32_t me = (int32_t)getpid();
    assert_int_equal(ph_slot_claim(&c, "r", "old", me, my_start(), &idx, &first, err, sizeof err),
                     PH_OK);
    assert_true(ph_slot_free(&c, idx, first));
    assert_int_equal(ph_slot_claim(&c, "r", "new", me, my_start(), &idx2, &second, err, sizeof err),
                     PH_OK);
    assert_int_equal(idx2, idx);
    assert_true(second != first);
    assert_false(ph_slot_detach(&c, idx, first));
    struct ph_slot *s = ph_segment_slot(&c, idx);
    assert_int_equal(atomic_load(&s->state), second);
    /* The new owner's own word still detaches it. */
    assert_true(ph_slot_detach(&c, idx, second));
    assert_int_equal(ph_slot_state_of(atomic_load(&s->state)), PH_SLOT_DETACHED);
    ph_segment_close(&c);
}

static void slot_free_needs_the_current_state_word(void **state)
{
    (void)state;
    const char *id = new_id();
    struct ph_segment c;
    create(&c, id, 2);
    char err[256];
    uint32_t idx;
    const uint64_t st = my_start();
    assert_int_equal(
        ph_slot_claim(&c, "r", "i", (int32_t)getpid(), st, &idx, NULL, err, sizeof err), PH_OK);
    struct ph_slot *s = ph_segment_slot(&c, idx);
    const uint64_t active = atomic_load(&s->state);
    assert_true(ph_slot_detach(&c, idx, active));
    const uint64_t detached = atomic_load(&s->state);
    /* Stale words: the ACTIVE word it had, a CLAIMING word, another claim count. */
    assert_false(ph_slot_free(&c, idx, active));
    assert_false(ph_slot_free(&c, idx, ph_slot_word(PH_SLOT_CLAIMING, 1, getpid())));
    assert_false(ph_slot_free(&c, idx, ph_slot_word(PH_SLOT_DETACHED, 2, getpid())));
    assert_false(ph_slot_free(&c, 1000, detached));
    assert_int_equal(atomic_load(&s->state), detached);
    assert_true(ph_slot_free(&c, idx, detached));
    const uint64_t freed = atomic_load(&s->state);
    assert_int_equal(ph_slot_state_of(freed), PH_SLOT_FREE);
    assert_int_equal(ph_slot_pid_of(freed), 0);
    assert_int_equal(ph_slot_seq_of(freed), 1);
    /* Freeing again with the old word fails: it is a new word now. */
    assert_false(ph_slot_free(&c, idx, detached));

    /* Claimed again: same slot, a new claim counter. */
    uint32_t idx2;
    assert_int_equal(
        ph_slot_claim(&c, "r", "i2", (int32_t)getpid(), st, &idx2, NULL, err, sizeof err), PH_OK);
    assert_int_equal(idx2, idx);
    const uint64_t again = atomic_load(&s->state);
    assert_int_equal(ph_slot_state_of(again), PH_SLOT_ACTIVE);
    assert_int_equal(ph_slot_seq_of(again), 2);
    assert_true(again != active);
    /* The word of the first claim cannot free the second owner's slot. */
    assert_false(ph_slot_free(&c, idx, active));
    assert_false(ph_slot_free(&c, idx, detached));
    /* The controller can free an ACTIVE slot (dead owner) with its word. */
    assert_true(ph_slot_free(&c, idx, again));
    ph_segment_close(&c);
}

static void slot_identity_read_on_free_slot_returns_false(void **state)
{
    (void)state;
    const char *id = new_id();
    struct ph_segment c;
    create(&c, id, 2);
    struct ph_slot_identity ident;
    assert_false(ph_slot_identity_read(ph_segment_slot(&c, 0), &ident));
    /* A CLAIMING slot names only the claimer's pid. */
    atomic_store(&ph_segment_slot(&c, 1)->state, ph_slot_word(PH_SLOT_CLAIMING, 1, 4321));
    assert_true(ph_slot_identity_read(ph_segment_slot(&c, 1), &ident));
    assert_int_equal(ident.pid, 4321);
    assert_string_equal(ident.role, "");
    /* Unterminated identity strings in a hostile segment are cut. */
    struct ph_slot *s = ph_segment_slot(&c, 0);
    for (unsigned i = 0; i < PH_ID_WORDS; i++) {
        atomic_store(&s->id_role[i], 0x5252525252525252ull);     /* "RRRRRRRR" */
        atomic_store(&s->id_instance[i], 0x4949494949494949ull); /* "IIIIIIII" */
    }
    atomic_store(&s->state, ph_slot_word(PH_SLOT_ACTIVE, 1, 4321));
    assert_true(ph_slot_identity_read(s, &ident));
    assert_int_equal(strlen(ident.role), PH_ID_MAX - 1);
    assert_int_equal(strlen(ident.instance), PH_ID_MAX - 1);
    ph_segment_close(&c);
}

static void slot_word_packs_state_claim_counter_and_pid(void **state)
{
    (void)state;
    uint64_t w = ph_slot_word(PH_SLOT_DETACHED, 0xabcdef, 0x7fffffff);
    assert_int_equal(ph_slot_state_of(w), PH_SLOT_DETACHED);
    assert_int_equal(ph_slot_seq_of(w), 0xabcdef);
    assert_int_equal(ph_slot_pid_of(w), 0x7fffffff);
    /* The claim counter wraps within its 24 bits. */
    w = ph_slot_word(PH_SLOT_ACTIVE, 0x1000000, 5);
    assert_int_equal(ph_slot_seq_of(w), 0);
    assert_int_equal(ph_slot_pid_of(w), 5);
}

/* ---- process identity --------------------------------------------------- */

static void proc_alive_checks_pid_and_start_time(void **state)
{
    (void)state;
    const uint64_t st = my_start();
    assert_true(ph_proc_alive((int32_t)getpid(), st));
    assert_true(ph_proc_alive((int32_t)getpid(), 0));
    assert_false(ph_proc_alive((int32_t)getpid(), st + 1));
    assert_false(ph_proc_alive((int32_t)getpid(), st - 1));
    assert_false(ph_proc_alive(0, 0));
    assert_false(ph_proc_alive(-1, 0));
}

static void proc_alive_false_for_reaped_child(void **state)
{
    (void)state;
    uint64_t st;
    pid_t pid = sleeper(&st);
    assert_true(ph_proc_alive(pid, st));
    kill_and_reap(pid);
    assert_false(ph_proc_alive(pid, st));
    assert_false(ph_proc_alive(pid, 0));
    uint64_t again;
    assert_int_equal(ph_proc_start_time(pid, &again), PH_ERR_NOENT);
}

static void proc_alive_false_for_zombie(void **state)
{
    (void)state;
    uint64_t st;
    pid_t pid = sleeper(&st);
    kill(pid, SIGKILL);
    siginfo_t si;
    assert_int_equal(waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT), 0);
    /* Still in /proc with the same start time, yet not alive. */
    uint64_t zst;
    assert_int_equal(ph_proc_start_time(pid, &zst), PH_OK);
    assert_int_equal(zst, st);
    assert_int_equal(kill(pid, 0), 0);
    assert_false(ph_proc_alive(pid, st));
    assert_false(ph_proc_alive(pid, 0));
    int ws;
    assert_int_equal(waitpid(pid, &ws, 0), pid);
}

static void proc_start_time_rejects_bad_pid_and_orders_child_after_parent(void **state)
{
    (void)state;
    /* A child forked now started after this test process: a later start
     * time, which is what tells a reused pid from its first owner. */
    uint64_t st;
    pid_t pid = sleeper(&st);
    assert_true(st >= my_start());
    assert_int_equal(ph_proc_start_time(-5, &st), PH_ERR_INVAL);
    kill_and_reap(pid);
}

/* The owner check (ph/owner.h) on both open paths: a segment of another
 * uid is refused, naming the owner, until the policy accepts that uid or
 * any owner; a group segment is accepted by the group's members. Needs
 * root to give a segment away. */
static void segment_open_refuses_another_owner_unless_the_policy_accepts_it(void **state)
{
    (void)state;
    if (geteuid() != 0) skip();
    const char *id = new_id();
    struct ph_segment c, r;
    create(&c, id, 2);
    char err[512], path[PH_ID_MAX + 16];
    snprintf(path, sizeof path, "/dev/shm/ph.%s", id);
    assert_int_equal(chown(path, 65534, (gid_t)-1), 0);
    assert_int_equal(ph_segment_open(&r, id, false, err, sizeof err), PH_ERR_ACCES);
    assert_non_null(strstr(err, "is owned by uid 65534"));
    assert_non_null(strstr(err, id));
    assert_int_equal(ph_segment_open(&r, id, true, err, sizeof err), PH_ERR_ACCES);
    struct ph_owner_policy pol = {.allow_uid_set = true, .allow_uid = 4242};
    ph_owner_policy_set(&pol);
    assert_int_equal(ph_segment_open(&r, id, false, err, sizeof err), PH_ERR_ACCES);
    pol.allow_uid = 65534;
    ph_owner_policy_set(&pol);
    assert_int_equal(ph_segment_open(&r, id, false, err, sizeof err), PH_OK);
    ph_segment_close(&r);
    pol = (struct ph_owner_policy){.any_owner = true};
    ph_owner_policy_set(&pol);
    assert_int_equal(ph_segment_open(&r, id, false, err, sizeof err), PH_OK);
    ph_segment_close(&r);
    pol = (struct ph_owner_policy){0};
    ph_owner_policy_set(&pol);
    /* Group access for one of our groups: readable, and writable with
     * group write only. */
    assert_int_equal(chown(path, 65534, getegid()), 0);
    assert_int_equal(chmod(path, 0640), 0);
    assert_int_equal(ph_segment_open(&r, id, false, err, sizeof err), PH_OK);
    ph_segment_close(&r);
    assert_int_equal(ph_segment_open(&r, id, true, err, sizeof err), PH_ERR_ACCES);
    assert_int_equal(chmod(path, 0660), 0);
    assert_int_equal(ph_segment_open(&r, id, true, err, sizeof err), PH_OK);
    ph_segment_close(&r);
    ph_segment_close(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(segment_create_then_open_round_trip),
        cmocka_unit_test(segment_size_formula_fits_1000_workers_in_16_mib),
        cmocka_unit_test(segment_open_of_missing_swarm_is_noent),
        cmocka_unit_test(segment_create_replaces_a_half_made_object_whose_creator_died),
        cmocka_unit_test(segment_create_leaves_a_half_made_object_of_a_live_creator),
        cmocka_unit_test(segment_open_and_create_refuse_invalid_swarm_id),
        cmocka_unit_test(segment_create_refuses_invalid_parameters),
        cmocka_unit_test(segment_open_rejects_bad_magic),
        cmocka_unit_test(segment_open_rejects_other_layout_version),
        cmocka_unit_test(segment_of_an_older_layout_is_refused_with_a_clear_message),
        cmocka_unit_test(segment_open_rejects_truncated_object),
        cmocka_unit_test(segment_open_rejects_inconsistent_geometry),
        cmocka_unit_test(item13_open_geometry_fits_the_mapping_under_concurrent_header_writes),
        cmocka_unit_test(segment_is_owner_only_by_default_and_honours_mode),
        cmocka_unit_test(segment_create_refuses_swarm_with_live_controller),
        cmocka_unit_test(segment_adoption_after_controller_died_bumps_generation),
        cmocka_unit_test(segment_adoption_treats_zombie_controller_as_dead),
        cmocka_unit_test(segment_adoption_refuses_other_geometry),
        cmocka_unit_test(segment_adoption_with_live_controller_and_other_geometry_is_busy),
        cmocka_unit_test(segment_adoption_by_own_pid_is_not_busy),
        cmocka_unit_test(item09_only_one_of_concurrent_adopters_wins),
        cmocka_unit_test(item09_creator_holds_the_claim_until_it_releases_it),
        cmocka_unit_test(segment_unlink_removes_the_object),
        cmocka_unit_test(segment_open_refuses_another_owner_unless_the_policy_accepts_it),
        cmocka_unit_test(slot_claim_sets_active_state_and_identity),
        cmocka_unit_test(slot_claim_refuses_invalid_identifiers),
        cmocka_unit_test(slot_claim_refuses_instance_held_by_live_process),
        cmocka_unit_test(slot_claim_allows_instance_whose_holder_is_dead_or_reused),
        cmocka_unit_test(item11_claim_loses_to_a_lower_slot_joining_the_same_instance),
        cmocka_unit_test(item11_claim_waits_for_a_higher_slot_joining_the_same_instance),
        cmocka_unit_test(slot_claim_reports_full_table),
        cmocka_unit_test(slot_detach_leaves_slot_detached_with_identity),
        cmocka_unit_test(item17_slot_detach_with_a_stale_word_leaves_the_new_owner_active),
        cmocka_unit_test(slot_free_needs_the_current_state_word),
        cmocka_unit_test(slot_identity_read_on_free_slot_returns_false),
        cmocka_unit_test(claims_share_a_start_hint_and_take_a_given_back_slot_first),
        cmocka_unit_test(slot_word_packs_state_claim_counter_and_pid),
        cmocka_unit_test(proc_alive_checks_pid_and_start_time),
        cmocka_unit_test(proc_alive_false_for_reaped_child),
        cmocka_unit_test(proc_alive_false_for_zombie),
        cmocka_unit_test(proc_start_time_rejects_bad_pid_and_orders_child_after_parent),
    };
    return cmocka_run_group_tests(tests, NULL, remove_all);
}
