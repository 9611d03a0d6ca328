/* Multi-process stress test of the shared-memory status plane under kill -9.
 *
 * The parent creates a segment and plays the controller: it drains every
 * slot's status ring continuously, verifies every record, and frees the slots
 * of dead producers. Producer processes write records in a tight loop, so a
 * SIGKILL lands in the middle of a write most of the time; the parent kills a
 * random producer every few milliseconds and forks a replacement.
 *
 * Producers come in two kinds, told apart by their role:
 *   "raw": ph_slot_claim + ph_ring_producer directly, sometimes two records
 *          per publish. STATUS: seq +1 per record written, `errors` is a
 *          checksum of (processed, seq), flags and io derived from seq.
 *          CONFIG: msgpack {"k": n, "blob": bin} with n +1 per record written
 *          and a blob whose length and bytes follow from n.
 *   "sdk": the worker SDK (ph_worker_attach, count, publish_status,
 *          publish_config). STATUS: `errors` is a checksum of `processed`.
 *          CONFIG: {"k": n, "data": str} with n increasing.
 * Any record that fails a check is a torn, stale or out-of-bounds read.
 *
 * The consumer must never see a bad record, never stall (the largest gap
 * between two iterations of its loop must stay under a second), and free
 * every dead producer's slot: reap children (waitpid WNOHANG), detect dead
 * owners with ph_proc_alive(pid, start time), drain what they left, then
 * ph_slot_free. At the end every child is killed and reaped and every slot
 * must be FREE.
 *
 * The consumer here is written from libph primitives alone, on purpose
 * independent of the controller's own slot table.
 *
 *   stress_kill [--seconds N] [--producers P] [--slots S] [--seed X] [--verbose]
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ph/mpjson.h"
#include "ph/record.h"
#include "ph/shm.h"
#include "ph/worker.h"

#define STATUS_RING 2048u
#define COMMAND_RING 256u
#define MAX_CHILDREN 64
#define DRAIN_BATCH 256u /* records per slot per loop iteration: keeps the loop responsive */
#define LIVENESS_NS (5ull * 1000000ull)
#define STALL_LIMIT_NS (1000ull * 1000000ull)

static char swarm[PH_ID_MAX];
static int verbose;

/* ---- shared record rules (producer writes them, consumer checks them) --- */

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

static uint64_t raw_errors(uint64_t processed, uint32_t seq)
{
    return mix(processed * 0x9e3779b97f4a7c15ull + seq);
}

static uint64_t sdk_errors(uint64_t processed)
{
    return mix(processed ^ 0x5bd1e995ull);
}

static uint32_t blob_len(uint64_t k)
{
    return (uint32_t)(mix(k + 77) % 601); /* 0..600 bytes */
}

static uint8_t blob_byte(uint64_t k, uint32_t i)
{
    return (uint8_t)(mix(k) >> ((i & 7) * 8)) ^ (uint8_t)i;
}

static char data_char(uint64_t k, uint32_t i)
{
    return (char)('a' + (mix(k * 31 + i) % 26));
}

static uint32_t data_len(uint64_t k)
{
    return (uint32_t)(mix(k + 5) % 300);
}

/* ---- producers ----------------------------------------------------------- */

static void child_setup(void)
{
    /* A producer never outlives the test, whatever happens to the parent. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() == 1) _exit(9);
    /* Producers spin; on 2 cores they would starve the consumer of CPU (not
     * block it). A lower priority keeps the consumer draining, as a real
     * controller must; stalls caused by the ring protocol still show. */
    if (setpriority(PRIO_PROCESS, 0, 10) != 0) perror("setpriority");
}

static void nap_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static _Noreturn void run_raw(const char *instance, uint64_t rng)
{
    char err[256];
    struct ph_segment seg;
    if (ph_segment_open(&seg, swarm, true, err, sizeof err) != PH_OK) {
        fprintf(stderr, "raw %s: %s\n", instance, err);
        _exit(3);
    }
    uint64_t start;
    const int32_t pid = (int32_t)getpid();
    if (ph_proc_start_time(pid, &start) != PH_OK) _exit(3);
    uint32_t idx;
    int rc = PH_ERR_FULL;
    for (int tries = 0; tries < 2000 && rc == PH_ERR_FULL; tries++) {
        rc = ph_slot_claim(&seg, "raw", instance, pid, start, &idx, NULL, err, sizeof err);
        if (rc == PH_ERR_FULL) nap_ms(1);
    }
    if (rc != PH_OK) {
        fprintf(stderr, "raw %s: %s\n", instance, err);
        _exit(3);
    }
    struct ph_slot *s = ph_segment_slot(&seg, idx);
    ph_ring_producer p;
    if (ph_ring_producer_init(&p, &s->status, ph_slot_status_data(&seg, s), seg.status_ring) !=
        PH_OK) {
        fprintf(stderr, "raw %s: status ring positions inconsistent after the claim\n", instance);
        _exit(3);
    }

    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    uint8_t blob[601];
    uint64_t processed = 0;
    uint32_t seq = 0;
    uint64_t k = 0;
    for (uint64_t it = 0;; it++) {
        rng = mix(rng + it);
        processed += 1 + rng % 7;
        unsigned claimed = 0;
        struct ph_rec_status *r = ph_ring_claim(&p, PH_REC_STATUS, PH_REC_STATUS_SIZE);
        if (r != NULL) {
            seq++;
            r->mono_ns = ph_mono_coarse_ns();
            r->processed = processed;
            r->errors = raw_errors(processed, seq);
            r->seq = seq;
            r->flags = (uint8_t)(seq & PH_STATUS_ENABLED);
            r->io_in = (uint8_t)(seq % (PH_IN_MAX_ + 1));
            r->io_out = (uint8_t)((seq / 7) % (PH_OUT_MAX_ + 1));
            r->reserved = 0;
            claimed++;
        }
        /* Publish now, or keep the record back to go out with a config. */
        if ((rng >> 8) % 4 != 0) {
            if (claimed) ph_ring_publish(&p);
            claimed = 0;
        }
        if ((rng >> 12) % 3 == 0) {
            const uint64_t next = k + 1;
            const uint32_t len = blob_len(next);
            for (uint32_t i = 0; i < len; i++)
                blob[i] = blob_byte(next, i);
            msgpack_sbuffer_clear(&sb);
            msgpack_packer pk;
            msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
            msgpack_pack_map(&pk, 2);
            msgpack_pack_str_with_body(&pk, "k", 1);
            msgpack_pack_uint64(&pk, next);
            msgpack_pack_str_with_body(&pk, "blob", 4);
            msgpack_pack_bin_with_body(&pk, blob, len);
            uint8_t *dst = ph_ring_claim(&p, PH_REC_CONFIG, (uint32_t)sb.size);
            if (dst != NULL) {
                /* Copied in pieces, so a kill can land between them. */
                size_t half = sb.size / 2;
                memcpy(dst, sb.data, half);
                memcpy(dst + half, sb.data + half, sb.size - half);
                k = next;
                claimed++;
            }
        }
        if (claimed) ph_ring_publish(&p);
        atomic_store_explicit(&s->w_processed, processed, memory_order_relaxed);
    }
}

static _Noreturn void run_sdk(const char *instance, uint64_t rng)
{
    char err[256];
    ph_worker *w = NULL;
    for (int tries = 0; tries < 2000 && w == NULL; tries++) {
        w = ph_worker_attach(
            &(struct ph_worker_opts){
                .swarm_id = swarm, .role = "sdk", .instance = instance, .heartbeat_ms = 1000},
            err, sizeof err);
        if (w == NULL && strstr(err, "in use") == NULL) break; /* only a full table is retried */
        if (w == NULL) nap_ms(1);
    }
    if (w == NULL) {
        fprintf(stderr, "sdk %s: %s\n", instance, err);
        _exit(3);
    }
    uint64_t processed = 0, errors = 0, k = 0;
    char data[301];
    for (uint64_t it = 0;; it++) {
        rng = mix(rng + it);
        uint64_t d = 1 + rng % 5;
        ph_worker_count(w, d);
        processed += d;
        const uint64_t want = sdk_errors(processed);
        ph_worker_count_errors(w, want - errors); /* wraps to exactly `want` */
        errors = want;
        ph_worker_set_enabled(w, (rng >> 20) & 1);
        ph_worker_publish_status(w);
        if ((rng >> 12) % 4 == 0) {
            k++;
            const uint32_t len = data_len(k);
            for (uint32_t i = 0; i < len; i++)
                data[i] = data_char(k, i);
            json_t *cfg = json_pack("{s:I, s:s#}", "k", (json_int_t)k, "data", data, (int)len);
            ph_worker_publish_config(w, cfg);
            json_decref(cfg);
        }
        ph_worker_tick(w);
    }
}

/* ---- consumer (the parent) ----------------------------------------------- */

enum kind { KIND_RAW, KIND_SDK };

struct track {
    uint64_t word; /* state word of the claim being consumed; 0: none */
    enum kind kind;
    int32_t pid;
    uint64_t start;
    ph_ring_consumer c;
    uint32_t last_seq;
    uint64_t last_processed;
    uint64_t last_k;
    uint64_t records;
    uint32_t slot;
};

static struct {
    uint64_t records, status, config, bad, corrupt, kills, spawned, freed_active, freed_claiming,
        claims_seen, iterations, child_failures, unpublished_tail;
    uint64_t max_gap_ns;
} stats;

static void bad(struct track *t, const char *what, uint64_t a, uint64_t b)
{
    stats.bad++;
    if (stats.bad <= 10)
        fprintf(stderr, "BAD RECORD slot %u pid %d (%s): %s (%" PRIu64 ", %" PRIu64 ")\n", t->slot,
                (int)t->pid, t->kind == KIND_RAW ? "raw" : "sdk", what, a, b);
}

static void check_status(struct track *t, const uint8_t *body, uint32_t len)
{
    struct ph_rec_status s;
    if (ph_rec_status_decode(body, len, &s) != PH_OK) {
        bad(t, "status record fails decoding", len, 0);
        return;
    }
    stats.status++;
    if (s.seq != t->last_seq + 1) bad(t, "status seq not consecutive", s.seq, t->last_seq);
    /* A raw producer counts before every record; the SDK may repeat a count
     * in a heartbeat, so only its order is checked. */
    if (t->last_seq > 0 &&
        (t->kind == KIND_RAW ? s.processed <= t->last_processed : s.processed < t->last_processed))
        bad(t, "processed going backwards", s.processed, t->last_processed);
    if (t->kind == KIND_RAW) {
        if (s.errors != raw_errors(s.processed, s.seq)) bad(t, "raw checksum", s.processed, s.seq);
        if (s.flags != (s.seq & 1u) || s.io_in != s.seq % (PH_IN_MAX_ + 1) ||
            s.io_out != (s.seq / 7) % (PH_OUT_MAX_ + 1))
            bad(t, "raw flags/io", s.seq, s.flags);
    } else if (s.errors != sdk_errors(s.processed) && !(s.seq == 1 && s.processed == 0)) {
        bad(t, "sdk checksum", s.processed, s.seq);
    }
    t->last_seq = s.seq;
    t->last_processed = s.processed;
}

static void check_config(struct track *t, const uint8_t *body, uint32_t len)
{
    char err[160];
    msgpack_zone zone;
    msgpack_zone_init(&zone, 2048);
    msgpack_object o;
    if (ph_mp_decode(body, len, true, &zone, &o, err, sizeof err) != PH_OK) {
        bad(t, err, len, 0);
        msgpack_zone_destroy(&zone);
        return;
    }
    stats.config++;
    const msgpack_object *k = ph_mp_map_get(&o, "k");
    if (k == NULL || k->type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
        bad(t, "config without k", len, 0);
        msgpack_zone_destroy(&zone);
        return;
    }
    const uint64_t n = k->via.u64;
    if (t->kind == KIND_RAW) {
        if (n != t->last_k + 1) bad(t, "raw config k not consecutive", n, t->last_k);
        const msgpack_object *b = ph_mp_map_get(&o, "blob");
        if (b == NULL || b->type != MSGPACK_OBJECT_BIN || b->via.bin.size != blob_len(n)) {
            bad(t, "raw config blob missing or wrong size", n, b ? b->via.bin.size : 0);
        } else {
            for (uint32_t i = 0; i < b->via.bin.size; i++)
                if ((uint8_t)b->via.bin.ptr[i] != blob_byte(n, i)) {
                    bad(t, "raw config blob byte", n, i);
                    break;
                }
        }
    } else {
        if (n <= t->last_k) bad(t, "sdk config k not increasing", n, t->last_k);
        const msgpack_object *d = ph_mp_map_get(&o, "data");
        if (d == NULL || d->type != MSGPACK_OBJECT_STR || d->via.str.size != data_len(n)) {
            bad(t, "sdk config data missing or wrong size", n, d ? d->via.str.size : 0);
        } else {
            for (uint32_t i = 0; i < d->via.str.size; i++)
                if (d->via.str.ptr[i] != data_char(n, i)) {
                    bad(t, "sdk config data byte", n, i);
                    break;
                }
        }
        if (o.via.map.size != 2) bad(t, "sdk config has extra keys", n, o.via.map.size);
    }
    t->last_k = n;
    msgpack_zone_destroy(&zone);
}

static int on_record(void *ctx, uint16_t type, const uint8_t *body, uint32_t len)
{
    struct track *t = ctx;
    stats.records++;
    t->records++;
    if (type == PH_REC_STATUS)
        check_status(t, body, len);
    else if (type == PH_REC_CONFIG)
        check_config(t, body, len);
    else
        bad(t, "unexpected record type", type, len);
    return 0;
}

static uint8_t scratch[STATUS_RING];

/* Drains up to `max` records (0: everything); false when the ring is corrupt. */
static bool drain(struct track *t, uint32_t max)
{
    int n = ph_ring_drain(&t->c, on_record, t, scratch, max);
    if (n < 0) {
        stats.corrupt++;
        fprintf(stderr, "CORRUPT RING slot %u pid %d: drain returned %d (%s)\n", t->slot,
                (int)t->pid, n, ph_err_name(n));
        return false;
    }
    return true;
}

/* A claim we have been consuming is over (owner dead): take what is left,
 * check the accounting, free the slot. */
static void retire(struct ph_segment *seg, struct ph_slot *s, struct track *t)
{
    if (drain(t, 0)) {
        /* The producer stores `tail` before the `published` counter, and a
         * raw producer publishes up to two records at once: a kill between
         * the two stores leaves `published` short by at most two. */
        uint64_t pub = atomic_load_explicit(&s->status.published, memory_order_relaxed);
        if (t->records < pub || t->records - pub > 2)
            bad(t, "records consumed vs published counter", t->records, pub);
        if (t->records > pub) stats.unpublished_tail++;
    }
    if (!ph_slot_free(seg, t->slot, t->word)) {
        bad(t, "ph_slot_free failed on a dead owner's slot", t->word, atomic_load(&s->state));
    } else {
        stats.freed_active++;
    }
    if (verbose)
        fprintf(stderr, "freed slot %u of pid %d after %" PRIu64 " records\n", t->slot, (int)t->pid,
                t->records);
    t->word = 0;
}

static void scan(struct ph_segment *seg, struct track *tracks, bool liveness, bool *busy)
{
    uint32_t hw = atomic_load_explicit(&seg->hdr->slot_high_water, memory_order_acquire);
    if (hw > seg->slots) hw = seg->slots;
    for (uint32_t i = 0; i < hw; i++) {
        struct ph_slot *s = ph_segment_slot(seg, i);
        struct track *t = &tracks[i];
        /* acquire: pairs with the claimer's release CAS to ACTIVE. */
        const uint64_t w = atomic_load_explicit(&s->state, memory_order_acquire);
        const unsigned st = ph_slot_state_of(w);
        if (st == PH_SLOT_FREE) {
            if (t->word != 0) bad(t, "slot freed behind the consumer's back", w, t->word);
            t->word = 0;
            continue;
        }
        if (st == PH_SLOT_CLAIMING || st == PH_SLOT_JOINING) {
            /* A claim in progress: not tracked until ACTIVE. */
            if (t->word != 0) bad(t, "tracked slot went back to CLAIMING/JOINING", w, t->word);
            t->word = 0;
            if (liveness && !ph_proc_alive(ph_slot_pid_of(w), 0)) {
                if (ph_slot_free(seg, i, w)) stats.freed_claiming++;
            }
            continue;
        }
        if (t->word != w && t->word != 0 &&
            !(st == PH_SLOT_DETACHED && ph_slot_seq_of(w) == ph_slot_seq_of(t->word)))
            bad(t, "slot changed owner while tracked", w, t->word);
        if (t->word == 0) {
            /* A new claim: read and check its identity, start consuming. */
            struct ph_slot_identity id;
            memset(t, 0, sizeof *t);
            t->slot = i;
            if (!ph_slot_identity_read(s, &id) || id.state != w) {
                bad(t, "identity changed while read", w, id.state);
                continue;
            }
            t->word = w;
            t->pid = id.pid;
            t->start = id.start_time;
            if (strcmp(id.role, "raw") == 0)
                t->kind = KIND_RAW;
            else if (strcmp(id.role, "sdk") == 0)
                t->kind = KIND_SDK;
            else
                bad(t, "unknown role", 0, 0);
            if (strncmp(id.instance, "p-", 2) != 0 || id.pid != ph_slot_pid_of(w))
                bad(t, "identity does not match the claim", (uint64_t)id.pid,
                    (uint64_t)ph_slot_pid_of(w));
            if (ph_ring_consumer_init(&t->c, &s->status, ph_slot_status_data(seg, s),
                                      seg->status_ring) != PH_OK)
                bad(t, "consumer init on a fresh claim", 0, 0);
            stats.claims_seen++;
        }
        if (ph_ring_pending(&t->c)) {
            *busy = true;
            if (!drain(t, DRAIN_BATCH)) {
                /* Quarantined: never read again, freed once its owner is gone. */
                atomic_store_explicit(&s->c_quarantine, PH_Q_RING, memory_order_relaxed);
            }
        }
        t->word = w;
        if (st == PH_SLOT_DETACHED || (liveness && !ph_proc_alive(t->pid, t->start)))
            retire(seg, s, t);
    }
}

/* ---- children bookkeeping ----------------------------------------------- */

static pid_t children[MAX_CHILDREN];
static int n_children;
static uint64_t serial;

static void spawn(uint64_t seed)
{
    char instance[32];
    snprintf(instance, sizeof instance, "p-%" PRIu64, serial);
    const bool raw = serial % 2 == 0;
    const uint64_t rng = mix(seed ^ (serial * 0x100000001b3ull));
    serial++;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        exit(2);
    }
    if (pid == 0) {
        child_setup();
        if (raw)
            run_raw(instance, rng);
        else
            run_sdk(instance, rng);
    }
    children[n_children++] = pid;
    stats.spawned++;
}

static void forget(pid_t pid)
{
    for (int i = 0; i < n_children; i++)
        if (children[i] == pid) {
            children[i] = children[--n_children];
            return;
        }
}

static void judge_exit(pid_t pid, int ws)
{
    if (WIFSIGNALED(ws) && WTERMSIG(ws) == SIGKILL) return;
    stats.child_failures++;
    if (WIFEXITED(ws))
        fprintf(stderr, "producer %d exited on its own with status %d\n", (int)pid,
                WEXITSTATUS(ws));
    else if (WIFSIGNALED(ws))
        fprintf(stderr, "producer %d died of signal %d\n", (int)pid, WTERMSIG(ws));
}

static bool reap(void)
{
    bool any = false;
    for (;;) {
        int ws;
        pid_t pid = waitpid(-1, &ws, WNOHANG);
        if (pid <= 0) break;
        judge_exit(pid, ws);
        forget(pid);
        any = true;
    }
    return any;
}

static void usage(const char *prog)
{
    fprintf(stderr,
            "usage: %s [--seconds N] [--producers P] [--slots S] [--seed X] [--verbose]\n"
            "  Forks P producers (default 4) into a swarm segment of S slots (default 16),\n"
            "  kills them at random with SIGKILL for N seconds (default 5) while draining\n"
            "  and verifying every record; exits non-zero on any bad record, stall or leak.\n",
            prog);
}

int main(int argc, char **argv)
{
    double seconds = 5;
    int producers = 4;
    uint32_t slots = 16;
    uint64_t seed = (uint64_t)time(NULL) ^ (uint64_t)getpid();
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc)
            seconds = atof(argv[++i]);
        else if (strcmp(argv[i], "--producers") == 0 && i + 1 < argc)
            producers = atoi(argv[++i]);
        else if (strcmp(argv[i], "--slots") == 0 && i + 1 < argc)
            slots = (uint32_t)atoi(argv[++i]);
        else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc)
            seed = strtoull(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--verbose") == 0)
            verbose = 1;
        else {
            usage(argv[0]);
            return strcmp(argv[i], "--help") == 0 ? 0 : 2;
        }
    }
    if (seconds <= 0 || producers < 1 || producers > MAX_CHILDREN / 2 ||
        slots < (uint32_t)producers * 2 || slots > 1024) {
        fprintf(stderr, "need seconds > 0, 1 <= producers <= %d, 2*producers <= slots <= 1024\n",
                MAX_CHILDREN / 2);
        return 2;
    }
    snprintf(swarm, sizeof swarm, "pht-stress-kill-%d", (int)getpid());
    printf("stress_kill: swarm %s, %d producers, %u slots, %.1f s, seed %" PRIu64 "\n", swarm,
           producers, slots, seconds, seed);

    char err[256];
    struct ph_segment seg;
    bool adopted;
    struct ph_segment_params params = {
        .slots = slots, .status_ring = STATUS_RING, .command_ring = COMMAND_RING};
    if (ph_segment_create(&seg, swarm, &params, &adopted, err, sizeof err) != PH_OK) {
        fprintf(stderr, "create: %s\n", err);
        return 2;
    }
    uint64_t my_start = 0;
    ph_proc_start_time((int32_t)getpid(), &my_start);
    ph_segment_set_controller(&seg, (int32_t)getpid(), my_start);

    struct track *tracks = calloc(slots, sizeof *tracks);
    if (tracks == NULL) return 2;
    uint64_t rng = mix(seed);
    for (int i = 0; i < producers; i++)
        spawn(seed);

    const uint64_t t0 = ph_mono_ns();
    const uint64_t deadline = t0 + (uint64_t)(seconds * 1e9);
    uint64_t last = t0, next_kill = t0 + 5 * 1000000ull, next_liveness = t0;
    for (;;) {
        const uint64_t now = ph_mono_ns();
        if (now - last > stats.max_gap_ns) stats.max_gap_ns = now - last;
        last = now;
        if (now >= deadline) break;
        stats.iterations++;
        ph_segment_heartbeat(&seg);

        bool liveness = reap();
        if (now >= next_liveness) {
            liveness = true;
            next_liveness = now + LIVENESS_NS;
        }
        bool busy = false;
        scan(&seg, tracks, liveness, &busy);

        if (now >= next_kill && n_children > 0) {
            rng = mix(rng + now);
            pid_t victim = children[rng % (uint64_t)n_children];
            if (kill(victim, SIGKILL) == 0) stats.kills++;
            next_kill = now + (1 + (rng >> 32) % 30) * 1000000ull; /* 1..30 ms */
            forget(victim);                                        /* reaped later by waitpid(-1) */
        }
        while (n_children < producers && n_children < MAX_CHILDREN)
            spawn(seed);
        if (!busy) {
            /* Nothing to read: a short sleep instead of spinning against the producers. */
            struct timespec ts = {0, 100 * 1000L};
            nanosleep(&ts, NULL);
        }
    }

    /* Shutdown: kill and reap every producer, then every slot must come back. */
    for (int i = 0; i < n_children; i++)
        kill(children[i], SIGKILL);
    for (;;) {
        int ws;
        pid_t pid = waitpid(-1, &ws, 0);
        if (pid < 0) {
            if (errno == EINTR) continue;
            break; /* ECHILD: none left */
        }
        judge_exit(pid, ws);
    }
    n_children = 0;
    bool busy = false;
    scan(&seg, tracks, true, &busy);
    uint32_t not_free = 0;
    for (uint32_t i = 0; i < seg.slots; i++) {
        uint64_t w = atomic_load(&ph_segment_slot(&seg, i)->state);
        if (ph_slot_state_of(w) != PH_SLOT_FREE) {
            not_free++;
            fprintf(stderr, "slot %u not FREE at the end: state %u pid %d\n", i,
                    ph_slot_state_of(w), (int)ph_slot_pid_of(w));
        }
    }
    const uint64_t freed = stats.freed_active + stats.freed_claiming;
    const double run_s = (double)(ph_mono_ns() - t0) / 1e9;
    printf("records %" PRIu64 " (status %" PRIu64 ", config %" PRIu64
           "), producers spawned %" PRIu64 ", kills %" PRIu64 ", slots freed %" PRIu64 " (%" PRIu64
           " active, %" PRIu64 " mid-claim), claims seen %" PRIu64
           ", kills between tail and counter %" PRIu64 ", loop iterations %" PRIu64
           ", max loop gap %.1f ms, %.1f s\n",
           stats.records, stats.status, stats.config, stats.spawned, stats.kills, freed,
           stats.freed_active, stats.freed_claiming, stats.claims_seen, stats.unpublished_tail,
           stats.iterations, (double)stats.max_gap_ns / 1e6, run_s);

    int fail = 0;
    if (stats.bad) fprintf(stderr, "FAIL: %" PRIu64 " bad records\n", stats.bad), fail = 1;
    if (stats.corrupt)
        fprintf(stderr, "FAIL: %" PRIu64 " corrupt rings\n", stats.corrupt), fail = 1;
    if (stats.child_failures)
        fprintf(stderr, "FAIL: %" PRIu64 " producers failed\n", stats.child_failures), fail = 1;
    if (stats.max_gap_ns > STALL_LIMIT_NS)
        fprintf(stderr, "FAIL: the consumer stalled for %.1f ms\n", (double)stats.max_gap_ns / 1e6),
            fail = 1;
    if (not_free) fprintf(stderr, "FAIL: %u slots not freed\n", not_free), fail = 1;
    if (stats.freed_active != stats.claims_seen)
        fprintf(stderr, "FAIL: %" PRIu64 " claims consumed but %" PRIu64 " freed\n",
                stats.claims_seen, stats.freed_active),
            fail = 1;
    if (stats.records == 0 || stats.kills == 0 || freed == 0)
        fprintf(stderr, "FAIL: nothing happened (records, kills or frees is zero)\n"), fail = 1;

    ph_segment_close(&seg);
    if (ph_segment_unlink(swarm, err, sizeof err) != PH_OK) {
        fprintf(stderr, "FAIL: %s\n", err);
        fail = 1;
    }
    free(tracks);
    printf("%s\n", fail ? "FAIL" : "ok");
    return fail;
}
