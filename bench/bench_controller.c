/* ph-bench-controller: one consumer draining the status rings of many slots,
 * and the CPU the real ph-swarm-controller uses with many idle slots.
 * See usage() for the method. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench_util.h"
#include "ph/log.h"
#include "ph/record.h"
#include "ph/ring.h"
#include "ph/shm.h"
#ifdef PH_BENCH_HAVE_CTL
#include "ctl.h"
#endif

enum cmode { C_RAW = 0, C_CTL = 1 };
static const char *const cmode_names[] = {"libph", "ctl_scan"};

struct opts {
    uint32_t slots;
    double seconds;
    int repeat;
    uint32_t producers;
    uint32_t burst;
    uint32_t fill;
    uint32_t idle_claim;
    uint32_t cold_sweeps;
    bool raw, ctl;
    bool drain, idle;
    double idle_seconds;
    double settle_seconds;
    double wait_controller;
    const char *controller;
    uint32_t tick_ms;
    uint32_t idle_heartbeat_ms;
    bool json;
    bool pin;
};

static void usage(FILE *f)
{
    fprintf(f,
        "usage: ph-bench-controller [options]\n"
        "\n"
        "1. Drain throughput. A segment with --slots slots (default rings: 8 KiB status,\n"
        "   4 KiB command) whose slots are all claimed with ph_slot_claim under fake\n"
        "   identities (role bench, instance bee-00000...). --producers processes\n"
        "   round-robin over the slots writing STATUS records (ph_ring_claim + fill +\n"
        "   ph_ring_publish, --burst records per slot per visit, a full ring drops the\n"
        "   record as a worker would). One consumer process sweeps every slot:\n"
        "     libph     acquire the slot state word, ph_ring_drain, ph_rec_status_decode\n"
        "               into a per-slot table (the minimal controller)\n"
        "     ctl_scan  the controller's own table code (actors/swarm-controller/ctl.c,\n"
        "               library ph_ctl): ctl_scan() in a loop, pidfds off\n"
        "   Two modes, each the median of --repeat trials of --seconds:\n"
        "     concurrent  producers write while the consumer sweeps; records/s =\n"
        "                 records consumed / elapsed. Producers share one CPU, the\n"
        "                 consumer has the other. When the producers found rings full\n"
        "                 (full/s > 0) the consumer was the bottleneck and the figure is\n"
        "                 its capacity; otherwise the producers limited it.\n"
        "     prefilled   one producer puts --fill records in every ring, then the\n"
        "                 consumer alone is timed draining them all (its capacity with\n"
        "                 --fill records per slot per sweep); repeated for --seconds.\n"
        "\n"
        "   Then one idle sweep (nothing pending) is timed after a 10 ms sleep, as one\n"
        "   tick of an idle controller: libph loop, ctl_scan, and for comparison a\n"
        "   compact array of one 8-byte word per slot (what a doorbell/tail-mirror\n"
        "   array in the segment header would cost to scan).\n"
        "\n"
        "2. Idle CPU. Starts the real ph-swarm-controller (--swarm ID --slots N) and a\n"
        "   helper process that claims N slots with ph_slot_claim under its own pid and\n"
        "   start time, publishes one status per slot (as ph_worker_attach does), and\n"
        "   sleeps, keeping every slot ACTIVE. Once the controller has drained all N\n"
        "   slots (their c_records > 0) and --settle-seconds passed, its CPU is read from\n"
        "   /proc/<pid>/stat (utime+stime, clock ticks) and /proc/<pid>/schedstat\n"
        "   (ns) over --idle-seconds: %% of one core = CPU time / wall time.\n"
        "   With --idle-heartbeat-ms MS the helper instead publishes a status per slot\n"
        "   every MS (what idle workers calling ph_worker_tick do: default heartbeat\n"
        "   1000 ms).\n"
        "\n"
        "options:\n"
        "  --slots N              slots (default 1000)\n"
        "  --seconds S            drain trial duration (default 0.3)\n"
        "  --repeat N             drain trials per consumer kind (default 3)\n"
        "  --producers N          producer processes, 1..8 (default 1)\n"
        "  --burst N              records per slot per producer visit (default 1)\n"
        "  --consumer KIND        libph | ctl | both (default both when built with ph_ctl)\n"
        "  --fill N               records per ring in prefilled mode (default 1)\n"
        "  --cold-sweeps N        idle sweeps timed after a 10 ms sleep each (default 50)\n"
        "  --idle-claim N         slots the idle helper claims (default --slots; 0 measures\n"
        "                         the controller's wake-up cost alone)\n"
        "  --no-drain             skip part 1\n"
        "  --no-idle              skip part 2\n"
        "  --idle-seconds S       CPU measurement window (default 10)\n"
        "  --settle-seconds S     wait after the controller tracked every slot (default 1)\n"
        "  --idle-heartbeat-ms MS helper publishes a status per slot every MS (default 0: never)\n"
        "  --controller PATH      ph-swarm-controller binary (default: next to this program)\n"
        "  --tick-ms N            passed to the controller (default: its own, 10 ms)\n"
        "  --wait-controller S    if the binary is missing, wait up to S seconds for it\n"
        "  --no-pin               do not pin processes to CPUs\n"
        "  --json                 print one JSON object instead of the table\n"
        "  --help                 this text\n"
        "\n"
        "Figures only: nothing is asserted. Targets from issue 2: >= 5 M records/s in\n"
        "total draining 1000 slots; < 1%% of a core with 1000 idle slots.\n");
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
    *o = (struct opts){.slots = 1000, .seconds = 0.3, .repeat = 3, .producers = 1, .burst = 1, .fill = 1, .idle_claim = UINT32_MAX,
                       .cold_sweeps = 50,
                       .raw = true, .drain = true, .idle = true, .idle_seconds = 10,
                       .settle_seconds = 1, .pin = true};
#ifdef PH_BENCH_HAVE_CTL
    o->ctl = true;
#endif
    static const struct option longs[] = {
        {"slots", required_argument, NULL, 'n'},        {"seconds", required_argument, NULL, 's'},
        {"repeat", required_argument, NULL, 'r'},       {"producers", required_argument, NULL, 'p'},
        {"burst", required_argument, NULL, 'b'},        {"consumer", required_argument, NULL, 'k'},
        {"fill", required_argument, NULL, 'f'},         {"idle-claim", required_argument, NULL, 'C'},
        {"cold-sweeps", required_argument, NULL, 'W'},
        {"no-drain", no_argument, NULL, 'D'},           {"no-idle", no_argument, NULL, 'I'},
        {"idle-seconds", required_argument, NULL, 'i'}, {"settle-seconds", required_argument, NULL, 'S'},
        {"idle-heartbeat-ms", required_argument, NULL, 'H'},
        {"controller", required_argument, NULL, 'c'},   {"tick-ms", required_argument, NULL, 't'},
        {"wait-controller", required_argument, NULL, 'w'},
        {"no-pin", no_argument, NULL, 'P'},             {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},               {NULL, 0, NULL, 0}};
    int ch;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        uint64_t v = 0;
        bool ok = true;
        switch (ch) {
        case 'n': ok = bu_parse_size(optarg, &v) && v >= 1 && v <= PH_MAX_SLOTS; o->slots = (uint32_t)v; break;
        case 's': ok = bu_parse_double(optarg, &o->seconds) && o->seconds > 0 && o->seconds <= 60; break;
        case 'r': ok = bu_parse_size(optarg, &v) && v >= 1 && v <= 100; o->repeat = (int)v; break;
        case 'p': ok = bu_parse_size(optarg, &v) && v >= 1 && v <= 8; o->producers = (uint32_t)v; break;
        case 'b': ok = bu_parse_size(optarg, &v) && v >= 1 && v <= 100; o->burst = (uint32_t)v; break;
        case 'f': ok = bu_parse_size(optarg, &v) && v >= 1 && v <= 100000; o->fill = (uint32_t)v; break;
        case 'W': ok = bu_parse_size(optarg, &v) && v >= 1 && v <= 10000; o->cold_sweeps = (uint32_t)v; break;
        case 'C': ok = bu_parse_size(optarg, &v) && v <= PH_MAX_SLOTS; o->idle_claim = (uint32_t)v; break;
        case 'k':
            if (strcmp(optarg, "libph") == 0 || strcmp(optarg, "raw") == 0) {
                o->raw = true;
                o->ctl = false;
            } else if (strcmp(optarg, "ctl") == 0) {
                o->raw = false;
                o->ctl = true;
            } else if (strcmp(optarg, "both") == 0) {
                o->raw = o->ctl = true;
            } else {
                ok = false;
            }
#ifndef PH_BENCH_HAVE_CTL
            if (ok && o->ctl) {
                fprintf(stderr, "ph-bench-controller: built without ph_ctl; --consumer ctl is "
                        "unavailable\n");
                return 2;
            }
#endif
            break;
        case 'D': o->drain = false; break;
        case 'I': o->idle = false; break;
        case 'i': ok = bu_parse_double(optarg, &o->idle_seconds) && o->idle_seconds >= 0.5 && o->idle_seconds <= 600; break;
        case 'S': ok = bu_parse_double(optarg, &o->settle_seconds) && o->settle_seconds <= 60; break;
        case 'H': ok = bu_parse_size(optarg, &v) && v <= 60000; o->idle_heartbeat_ms = (uint32_t)v; break;
        case 'c': o->controller = optarg; break;
        case 't': ok = bu_parse_size(optarg, &v) && v >= 1 && v <= 10000; o->tick_ms = (uint32_t)v; break;
        case 'w': ok = bu_parse_double(optarg, &o->wait_controller) && o->wait_controller <= 3600; break;
        case 'P': o->pin = false; break;
        case 'j': o->json = true; break;
        case 'h': usage(stdout); exit(0);
        default: return bu_usage_error("unknown option '%s'", argv[optind - 1]);
        }
        if (!ok) return bu_bad_value(argv);
    }
    if (optind < argc) return bu_usage_error("unexpected argument '%s'", argv[optind]);
    if (o->idle_claim == UINT32_MAX) o->idle_claim = o->slots;
    if (o->idle_claim > o->slots) {
        fprintf(stderr, "ph-bench-controller: --idle-claim exceeds --slots\n");
        return 2;
    }
    return 0;
}

static int g_cpu_prod = -1, g_cpu_cons = -1;

static void pin_to(int cpu)
{
    if (cpu >= 0) bu_pin(cpu);
}

/* ---- part 1: drain throughput ------------------------------------------- */

#define MAX_PRODUCERS 8
enum dmode { D_CONCURRENT = 0, D_PREFILLED = 1 };
static const char *const dmode_names[] = {"concurrent", "prefilled"};

struct ctrl {
    alignas(64) _Atomic int ready;
    alignas(64) _Atomic int go;
    alignas(64) _Atomic int stop;
    alignas(64) _Atomic uint64_t fill_cycle; /* producer: cycles filled */
    uint64_t fill_count;                     /* records written in the last cycle */
    alignas(64) _Atomic uint64_t drain_cycle; /* consumer: cycles drained */
    alignas(64) struct {
        uint64_t produced, dropped;
        char pad[64 - 2 * sizeof(uint64_t)];
    } prod[MAX_PRODUCERS];
    alignas(64) uint64_t consumed, sweeps, nonempty, invalid, errors;
    double busy_s;       /* consumer time counted in records/s */
    double idle_scan_us; /* one sweep over every slot with nothing pending (warm) */
};

struct entry {
    bool have;
    struct ph_rec_status st;
    uint64_t records;
    uint64_t invalid;
};

static int on_status(void *ctx, uint16_t type, const uint8_t *body, uint32_t len)
{
    struct entry *e = ctx;
    struct ph_rec_status st;
    if (type != PH_REC_STATUS || ph_rec_status_decode(body, len, &st) != PH_OK ||
        (e->have && st.processed < e->st.processed)) {
        e->invalid++;
        return 0;
    }
    e->st = st;
    e->have = true;
    e->records++;
    return 0;
}

static void wait_go(struct ctrl *c)
{
    atomic_fetch_add(&c->ready, 1);
    while (!atomic_load_explicit(&c->go, memory_order_acquire)) bu_relax();
}

static bool stopped(struct ctrl *c)
{
    return atomic_load_explicit(&c->stop, memory_order_relaxed) != 0;
}

/* Producer k of o->producers: slots k, k+P, k+2P... */
struct prod {
    uint32_t n;
    ph_ring_producer *p;
    uint64_t *processed;
    uint32_t seq;
};

static uint64_t prod_sweep(struct prod *pr, uint32_t per_slot, uint64_t *dropped)
{
    const uint64_t now = ph_mono_coarse_ns();
    uint64_t produced = 0;
    pr->seq++;
    for (uint32_t j = 0; j < pr->n; j++) {
        for (uint32_t b = 0; b < per_slot; b++) {
            struct ph_rec_status *r = ph_ring_claim(&pr->p[j], PH_REC_STATUS, PH_REC_STATUS_SIZE);
            if (r == NULL) {
                (*dropped)++;
                break;
            }
            r->mono_ns = now;
            r->processed = ++pr->processed[j];
            r->errors = 0;
            r->seq = pr->seq;
            r->flags = PH_STATUS_ENABLED;
            r->io_in = PH_IN_OK;
            r->io_out = PH_OUT_OK;
            r->reserved = 0;
            ph_ring_publish(&pr->p[j]);
            produced++;
        }
    }
    return produced;
}

static void producer(struct ctrl *c, struct ph_segment *seg, const struct opts *o, uint32_t k,
                     int dmode)
{
    const uint32_t np = dmode == D_PREFILLED ? 1 : o->producers;
    struct prod pr = {0};
    for (uint32_t i = k; i < seg->slots; i += np) pr.n++;
    pr.p = calloc(pr.n, sizeof *pr.p);
    pr.processed = calloc(pr.n, sizeof *pr.processed);
    uint32_t j = 0;
    for (uint32_t i = k; i < seg->slots; i += np, j++) {
        struct ph_slot *s = ph_segment_slot(seg, i);
        if (ph_ring_producer_init(&pr.p[j], &s->status, ph_slot_status_data(seg, s),
                                  seg->status_ring) != PH_OK) {
            fprintf(stderr, "ph-bench-controller: slot %u: status ring positions inconsistent\n",
                    i);
            _exit(1);
        }
    }
    uint64_t produced = 0, dropped = 0;
    wait_go(c);
    if (dmode == D_CONCURRENT) {
        while (!stopped(c)) produced += prod_sweep(&pr, o->burst, &dropped);
    } else {
        uint64_t cycle = 0;
        while (!stopped(c)) {
            uint64_t d = 0, n = prod_sweep(&pr, o->fill, &d);
            produced += n;
            c->fill_count = n;
            atomic_store_explicit(&c->fill_cycle, ++cycle, memory_order_release);
            while (!stopped(c) &&
                   atomic_load_explicit(&c->drain_cycle, memory_order_acquire) != cycle)
                bu_relax();
        }
    }
    c->prod[k].produced = produced;
    c->prod[k].dropped = dropped;
    free(pr.p);
    free(pr.processed);
}

/* The consumer: a sweep visits every slot once. */
struct consumer {
    int kind;
    struct ph_segment *seg;
    ph_ring_consumer *cons;
    struct entry *tab;
    uint8_t *scratch;
    uint64_t nonempty;
#ifdef PH_BENCH_HAVE_CTL
    struct ctl ctl;
#endif
};

static bool consumer_open(struct consumer *k, int kind, struct ph_segment *seg)
{
    memset(k, 0, sizeof *k);
    k->kind = kind;
    k->seg = seg;
#ifdef PH_BENCH_HAVE_CTL
    if (kind == C_CTL) {
        ph_log_set_level(PH_LOG_WARN); /* 1000 "worker joined" lines otherwise */
        if (ctl_init(&k->ctl, seg, NULL) != PH_OK) return false;
        k->ctl.use_pidfd = false;
        ctl_scan(&k->ctl, ph_mono_ns()); /* tracks every slot before the clock starts */
        return k->ctl.live == seg->slots;
    }
#endif
    const uint32_t n = seg->slots;
    k->cons = calloc(n, sizeof *k->cons);
    k->tab = calloc(n, sizeof *k->tab);
    k->scratch = malloc(seg->status_ring / 2);
    for (uint32_t i = 0; i < n; i++) {
        struct ph_slot *s = ph_segment_slot(seg, i);
        if (ph_ring_consumer_init(&k->cons[i], &s->status, ph_slot_status_data(seg, s),
                                  seg->status_ring) != PH_OK)
            return false;
    }
    return true;
}

static uint64_t consumer_sweep(struct consumer *k)
{
#ifdef PH_BENCH_HAVE_CTL
    if (k->kind == C_CTL) return ctl_scan(&k->ctl, ph_mono_ns());
#endif
    uint64_t got = 0;
    const uint32_t n = k->seg->slots;
    for (uint32_t i = 0; i < n; i++) {
        struct ph_slot *s = ph_segment_slot(k->seg, i);
        /* acquire: as the controller does before trusting a slot */
        uint64_t w = atomic_load_explicit(&s->state, memory_order_acquire);
        if (ph_slot_state_of(w) != PH_SLOT_ACTIVE) continue;
        int r = ph_ring_drain(&k->cons[i], on_status, &k->tab[i], k->scratch, 0);
        if (r > 0) {
            got += (uint64_t)r;
            k->nonempty++;
        } else if (r < 0) {
            k->tab[i].invalid++;
        }
    }
    return got;
}

static uint64_t consumer_invalid(struct consumer *k)
{
#ifdef PH_BENCH_HAVE_CTL
    if (k->kind == C_CTL) return k->ctl.quarantined;
#endif
    uint64_t bad = 0;
    for (uint32_t i = 0; i < k->seg->slots; i++) bad += k->tab[i].invalid;
    return bad;
}

static void consumer_close(struct consumer *k)
{
#ifdef PH_BENCH_HAVE_CTL
    if (k->kind == C_CTL) {
        ctl_destroy(&k->ctl);
        return;
    }
#endif
    free(k->cons);
    free(k->tab);
    free(k->scratch);
}

static void consumer(struct ctrl *c, struct ph_segment *seg, int kind, int dmode)
{
    struct consumer k;
    if (!consumer_open(&k, kind, seg)) c->errors++;
    uint64_t consumed = 0, sweeps = 0, busy = 0;
    wait_go(c);
    if (dmode == D_CONCURRENT) {
        const uint64_t t0 = bu_now_ns();
        while (!stopped(c)) {
            consumed += consumer_sweep(&k);
            sweeps++;
        }
        busy = bu_now_ns() - t0;
    } else {
        uint64_t cycle = 0;
        for (;;) {
            while (!stopped(c) &&
                   atomic_load_explicit(&c->fill_cycle, memory_order_acquire) == cycle)
                bu_relax();
            if (stopped(c)) break;
            const uint64_t expect = c->fill_count;
            uint64_t got = 0;
            const uint64_t t0 = bu_now_ns();
            while (got < expect && !stopped(c)) {
                got += consumer_sweep(&k);
                sweeps++;
            }
            busy += bu_now_ns() - t0;
            consumed += got;
            atomic_store_explicit(&c->drain_cycle, ++cycle, memory_order_release);
        }
    }
    c->consumed = consumed;
    c->sweeps = sweeps;
    c->nonempty = k.nonempty;
    c->busy_s = (double)busy / 1e9;
    c->invalid = consumer_invalid(&k);
    /* cost of one sweep with nothing pending, caches warm */
    consumer_sweep(&k);
    const int reps = 200;
    const uint64_t a = bu_now_ns();
    for (int r = 0; r < reps; r++) consumer_sweep(&k);
    c->idle_scan_us = (double)(bu_now_ns() - a) / reps / 1000.0;
    consumer_close(&k);
}

struct trial {
    bool ok;
    double rps, produced_ps, dropped_ps, sweeps_ps, per_drain, idle_scan_us, invalid;
};

static struct ctrl *g_ctrl;

static bool drain_trial(const struct opts *o, int kind, int dmode, struct trial *t)
{
    char id[64], err[512];
    bu_swarm_id(id, sizeof id, "bench-ctl");
    struct ph_segment seg;
    bool adopted;
    struct ph_segment_params params = {.slots = o->slots};
    bu_cleanup_add_swarm(id);
    if (ph_segment_create(&seg, id, &params, &adopted, err, sizeof err) != PH_OK) {
        fprintf(stderr, "ph-bench-controller: %s\n", err);
        bu_cleanup_del_swarm(id);
        return false;
    }
    uint64_t start = 0;
    ph_proc_start_time(getpid(), &start);
    for (uint32_t i = 0; i < o->slots; i++) {
        char inst[32];
        uint32_t idx;
        snprintf(inst, sizeof inst, "bee-%05u", i);
        if (ph_slot_claim(&seg, "bench", inst, getpid(), start, &idx, NULL, err, sizeof err) !=
            PH_OK) {
            fprintf(stderr, "ph-bench-controller: claim %u: %s\n", i, err);
            ph_segment_close(&seg);
            bu_cleanup_del_swarm(id);
            return false;
        }
        struct ph_slot *s = ph_segment_slot(&seg, idx);
        memset(ph_slot_status_data(&seg, s), 0, seg.status_ring); /* fault in before timing */
    }
    struct ctrl *c = g_ctrl;
    memset(c, 0, sizeof *c);
    pid_t cons = fork();
    if (cons == 0) {
        bu_child_init();
        pin_to(g_cpu_cons);
        consumer(c, &seg, kind, dmode);
        _exit(0);
    }
    bu_cleanup_add_child(cons);
    const uint32_t np = dmode == D_PREFILLED ? 1 : o->producers;
    pid_t prod[MAX_PRODUCERS];
    for (uint32_t k = 0; k < np; k++) {
        prod[k] = fork();
        if (prod[k] == 0) {
            bu_child_init();
            pin_to(g_cpu_prod);
            producer(c, &seg, o, k, dmode);
            _exit(0);
        }
        bu_cleanup_add_child(prod[k]);
    }
    while (atomic_load(&c->ready) < (int)np + 1) bu_sleep_ns(100000);
    atomic_store_explicit(&c->go, 1, memory_order_release);
    bu_sleep_ns((uint64_t)(o->seconds * 1e9));
    atomic_store(&c->stop, 1);
    bool ok = true;
    for (uint32_t k = 0; k < np; k++) ok = bu_wait_child(prod[k]) && ok;
    ok = bu_wait_child(cons) && ok;
    ph_segment_close(&seg);
    bu_cleanup_del_swarm(id);
    uint64_t produced = 0, dropped = 0;
    for (uint32_t k = 0; k < np; k++) {
        produced += c->prod[k].produced;
        dropped += c->prod[k].dropped;
    }
    const double el = c->busy_s;
    t->ok = ok && c->errors == 0 && el > 0;
    t->rps = (double)c->consumed / el;
    t->produced_ps = (double)produced / o->seconds;
    t->dropped_ps = (double)dropped / o->seconds;
    t->sweeps_ps = (double)c->sweeps / el;
    t->per_drain = c->nonempty ? (double)c->consumed / (double)c->nonempty : NAN;
    t->idle_scan_us = c->idle_scan_us;
    t->invalid = (double)c->invalid;
    if (!t->ok)
        fprintf(stderr, "ph-bench-controller: %s/%s drain trial failed (%llu errors)\n",
                cmode_names[kind], dmode_names[dmode], (unsigned long long)c->errors);
    return t->ok;
}

struct dsum {
    bool run;
    double rps, rps_min, rps_max, produced_ps, dropped_ps, sweeps_ps, per_drain, idle_scan_us,
        invalid;
};

static void summarize(const struct trial *t, int n, struct dsum *d)
{
    double v[128];
    int k;
#define MED(field, out)                                         \
    do {                                                        \
        k = 0;                                                  \
        for (int i = 0; i < n; i++)                             \
            if (t[i].ok) v[k++] = t[i].field;                   \
        out = bu_median(v, (size_t)k);                          \
    } while (0)
    MED(rps, d->rps);
    d->rps_min = k ? v[0] : NAN;
    d->rps_max = k ? v[k - 1] : NAN;
    MED(produced_ps, d->produced_ps);
    MED(dropped_ps, d->dropped_ps);
    MED(sweeps_ps, d->sweeps_ps);
    MED(per_drain, d->per_drain);
    MED(idle_scan_us, d->idle_scan_us);
    MED(invalid, d->invalid);
#undef MED
    d->run = true;
}

/* ---- part 1b: cold idle sweeps --------------------------------------------- */

/* What one tick of an idle controller costs: a sweep over every slot with
 * nothing pending, after sleeping one tick (10 ms) as the daemon does, so the
 * lines and TLB entries are as cold as the machine leaves them. The "compact"
 * row sweeps an array of one 8-byte word per slot in a single mapping (what a
 * per-slot doorbell/tail-mirror array in the segment header would cost to
 * scan), for comparison. Results in us, median of --cold-sweeps sweeps. */
struct cold_res {
    double us[3]; /* C_RAW, C_CTL, compact */
    bool have[3];
};

static void cold_sweeps(const struct opts *o, struct cold_res *res)
{
    memset(res, 0, sizeof *res);
    char id[64], err[512];
    bu_swarm_id(id, sizeof id, "bench-ctl");
    struct ph_segment seg;
    bool adopted;
    struct ph_segment_params params = {.slots = o->slots};
    bu_cleanup_add_swarm(id);
    if (ph_segment_create(&seg, id, &params, &adopted, err, sizeof err) != PH_OK) {
        fprintf(stderr, "ph-bench-controller: %s\n", err);
        bu_cleanup_del_swarm(id);
        return;
    }
    uint64_t start = 0;
    ph_proc_start_time(getpid(), &start);
    for (uint32_t i = 0; i < o->slots; i++) {
        char inst[32];
        uint32_t idx;
        snprintf(inst, sizeof inst, "bee-%05u", i);
        if (ph_slot_claim(&seg, "bench", inst, getpid(), start, &idx, NULL, err, sizeof err) !=
            PH_OK)
            break;
        struct ph_slot *s = ph_segment_slot(&seg, idx);
        struct ph_ring_producer p;
        if (ph_ring_producer_init(&p, &s->status, ph_slot_status_data(&seg, s),
                                  seg.status_ring) != PH_OK) {
            fprintf(stderr, "ph-bench-controller: slot %u: status ring positions inconsistent\n",
                    idx);
            exit(1);
        }
        struct ph_rec_status st = {.mono_ns = ph_mono_coarse_ns(), .processed = 1, .seq = 1};
        ph_ring_write(&p, PH_REC_STATUS, &st, sizeof st); /* as ph_worker_attach does */
    }
    _Atomic uint64_t *compact = bu_shared_alloc((size_t)o->slots * sizeof *compact);
    struct cold_res *shared = bu_shared_alloc(sizeof *shared);
    memset(shared, 0, sizeof *shared);
    pid_t child = fork();
    if (child == 0) {
        bu_child_init();
        pin_to(g_cpu_cons);
        const uint32_t n = o->cold_sweeps;
        double *v = calloc(n, sizeof *v);
        for (int kind = 0; kind < 3; kind++) {
            if (kind == C_CTL && !o->ctl) continue;
            if (kind == C_RAW && !o->raw) continue;
            struct consumer k;
            uint64_t *seen = calloc(o->slots, sizeof *seen);
            uint64_t sink = 0;
            if (kind < 2) {
                if (!consumer_open(&k, kind, &seg)) continue;
                consumer_sweep(&k); /* drains the attach statuses */
            }
            for (uint32_t r = 0; r < n; r++) {
                bu_sleep_ns(10 * 1000000ull);
                const uint64_t t0 = bu_now_ns();
                if (kind < 2) {
                    sink += consumer_sweep(&k);
                } else {
                    for (uint32_t i = 0; i < o->slots; i++) {
                        uint64_t t = atomic_load_explicit(&compact[i], memory_order_acquire);
                        if (t != seen[i]) {
                            seen[i] = t;
                            sink++;
                        }
                    }
                }
                v[r] = (double)(bu_now_ns() - t0) / 1000.0;
            }
            if (kind < 2) consumer_close(&k);
            free(seen);
            shared->us[kind] = bu_median(v, n) + (double)(sink & 0); /* keep the loads */
            shared->have[kind] = true;
        }
        free(v);
        _exit(0);
    }
    bu_cleanup_add_child(child);
    bu_wait_child(child);
    *res = *shared;
    munmap(shared, sizeof *shared);
    munmap((void *)compact, (size_t)o->slots * sizeof *compact);
    ph_segment_close(&seg);
    bu_cleanup_del_swarm(id);
}

/* ---- part 2: idle CPU of the real controller ----------------------------- */

struct idle_res {
    bool run;
    const char *skipped; /* reason, when not run */
    char path[PATH_MAX];
    double pct_stat;     /* from utime+stime */
    double pct_sched;    /* from schedstat */
    double window_s;
    uint32_t active_start, active_end, tracked;
    double wakeups_ps;     /* voluntary context switches per second */
};

struct helper_ctl {
    _Atomic int claimed; /* number claimed, -1 on error */
    _Atomic int stop;
    char err[256];
};

static void idle_helper(struct helper_ctl *h, const char *id, const struct opts *o)
{
    char err[256];
    struct ph_segment seg;
    if (ph_segment_open(&seg, id, true, err, sizeof err) != PH_OK) {
        snprintf(h->err, sizeof h->err, "%s", err);
        atomic_store(&h->claimed, -1);
        _exit(1);
    }
    uint64_t start = 0;
    ph_proc_start_time(getpid(), &start);
    const uint32_t n = o->idle_claim;
    ph_ring_producer *p = calloc(n + 1, sizeof *p);
    uint64_t *seqs = calloc(n + 1, sizeof *seqs);
    uint32_t *idx = calloc(n + 1, sizeof *idx);
    for (uint32_t i = 0; i < n; i++) {
        char inst[32];
        snprintf(inst, sizeof inst, "idle-%05u", i);
        if (ph_slot_claim(&seg, "bench", inst, getpid(), start, &idx[i], NULL, err, sizeof err) !=
            PH_OK) {
            snprintf(h->err, sizeof h->err, "claim %u: %.200s", i, err);
            atomic_store(&h->claimed, -1);
            _exit(1);
        }
        struct ph_slot *s = ph_segment_slot(&seg, idx[i]);
        if (ph_ring_producer_init(&p[i], &s->status, ph_slot_status_data(&seg, s),
                                  seg.status_ring) != PH_OK) {
            snprintf(h->err, sizeof h->err, "claim %u: status ring positions inconsistent", i);
            atomic_store(&h->claimed, -1);
            _exit(1);
        }
        struct ph_rec_status st = {.mono_ns = ph_mono_coarse_ns(), .seq = 1};
        ph_ring_write(&p[i], PH_REC_STATUS, &st, sizeof st);
    }
    atomic_store(&h->claimed, (int)n);
    while (!atomic_load(&h->stop)) {
        if (o->idle_heartbeat_ms == 0 || n == 0) {
            bu_sleep_ns(50 * 1000000ull);
            continue;
        }
        /* spread one heartbeat per slot evenly over the period */
        const uint64_t period = (uint64_t)o->idle_heartbeat_ms * 1000000ull;
        const uint64_t t0 = bu_now_ns();
        for (uint32_t i = 0; i < n && !atomic_load(&h->stop); i++) {
            struct ph_rec_status st = {.mono_ns = ph_mono_coarse_ns(), .seq = (uint32_t)++seqs[i]};
            ph_ring_write(&p[i], PH_REC_STATUS, &st, sizeof st);
            uint64_t due = t0 + period * (i + 1) / n, now = bu_now_ns();
            if (due > now && due - now > 1000000) bu_sleep_ns(due - now);
        }
    }
    _exit(0);
}

static bool find_controller(const struct opts *o, char *path, size_t n)
{
    if (o->controller != NULL) {
        snprintf(path, n, "%s", o->controller);
    } else {
        char self[PATH_MAX];
        ssize_t r = readlink("/proc/self/exe", self, sizeof self - 1);
        if (r <= 0) return false;
        self[r] = '\0';
        char *slash = strrchr(self, '/');
        if (slash != NULL) *slash = '\0';
        if (strlen(self) + sizeof "/ph-swarm-controller" > n) return false;
        memcpy(path, self, strlen(self));
        memcpy(path + strlen(self), "/ph-swarm-controller", sizeof "/ph-swarm-controller");
    }
    return access(path, X_OK) == 0;
}

static uint32_t count_active(struct ph_segment *seg, uint32_t *tracked)
{
    uint32_t a = 0, t = 0;
    for (uint32_t i = 0; i < seg->slots; i++) {
        struct ph_slot *s = ph_segment_slot(seg, i);
        if (ph_slot_state_of(atomic_load_explicit(&s->state, memory_order_acquire)) ==
            PH_SLOT_ACTIVE)
            a++;
        if (atomic_load_explicit(&s->c_records, memory_order_relaxed) > 0) t++;
    }
    if (tracked) *tracked = t;
    return a;
}

static void run_idle(const struct opts *o, struct idle_res *r)
{
    memset(r, 0, sizeof *r);
    if (!find_controller(o, r->path, sizeof r->path)) {
        uint64_t deadline = bu_now_ns() + (uint64_t)(o->wait_controller * 1e9);
        while (bu_now_ns() < deadline && access(r->path, X_OK) != 0) bu_sleep_ns(5000000000ull);
        if (access(r->path, X_OK) != 0) {
            r->skipped = "ph-swarm-controller binary not found (build it, or pass --controller)";
            return;
        }
    }
    char id[64], slots[16], tick[16];
    bu_swarm_id(id, sizeof id, "bench-idle");
    snprintf(slots, sizeof slots, "%u", o->slots);
    snprintf(tick, sizeof tick, "%u", o->tick_ms);
    bu_cleanup_add_swarm(id);
    pid_t ctl = fork();
    if (ctl == 0) {
        bu_child_init();
        int dn = open("/dev/null", O_WRONLY);
        if (dn >= 0) {
            dup2(dn, 1);
            dup2(dn, 2);
        }
        if (o->tick_ms)
            execl(r->path, r->path, "--swarm", id, "--slots", slots, "--tick-ms", tick,
                  (char *)NULL);
        else
            execl(r->path, r->path, "--swarm", id, "--slots", slots, (char *)NULL);
        _exit(127);
    }
    bu_cleanup_add_child(ctl);
    /* wait for the segment and the controller's pid in it */
    struct ph_segment seg;
    char err[512];
    bool open_ok = false;
    for (int i = 0; i < 200 && !open_ok; i++) {
        if (ph_segment_open(&seg, id, false, err, sizeof err) == PH_OK) {
            if (atomic_load(&seg.hdr->controller_pid) == ctl)
                open_ok = true;
            else
                ph_segment_close(&seg);
        }
        if (!open_ok) bu_sleep_ns(25000000);
    }
    if (!open_ok) {
        r->skipped = "the controller did not create its segment within 5 s";
        kill(ctl, SIGKILL);
        bu_wait_child(ctl);
        bu_cleanup_del_swarm(id);
        return;
    }
    struct helper_ctl *h = bu_shared_alloc(sizeof *h);
    pid_t hp = fork();
    if (hp == 0) {
        bu_child_init();
        pin_to(g_cpu_prod);
        idle_helper(h, id, o);
    }
    bu_cleanup_add_child(hp);
    uint64_t dl = bu_now_ns() + 20000000000ull;
    while (atomic_load(&h->claimed) == 0 && o->idle_claim > 0 && bu_now_ns() < dl)
        bu_sleep_ns(10000000);
    uint32_t tracked = 0;
    if (atomic_load(&h->claimed) >= 0) {
        while (bu_now_ns() < dl) {
            count_active(&seg, &tracked);
            if (tracked >= o->idle_claim) break;
            bu_sleep_ns(20000000);
        }
    }
    if (atomic_load(&h->claimed) < 0 || tracked < o->idle_claim) {
        static char why[400];
        snprintf(why, sizeof why, "setup failed: %s",
                 atomic_load(&h->claimed) < 0 ? h->err : "the controller did not drain every slot "
                                                         "within 20 s");
        r->skipped = why;
    } else {
        uint64_t ticks_a = 0, ticks_b = 0, ns_a = 0, ns_b = 0, sw_a = 0, sw_b = 0;
        bu_sleep_ns((uint64_t)(o->settle_seconds * 1e9));
        r->active_start = count_active(&seg, NULL);
        const uint64_t w0 = bu_now_ns();
        bu_proc_cpu_ticks(ctl, &ticks_a);
        bu_proc_runtime_ns(ctl, &ns_a);
        bu_proc_wakeups(ctl, &sw_a);
        bu_sleep_ns((uint64_t)(o->idle_seconds * 1e9));
        bu_proc_cpu_ticks(ctl, &ticks_b);
        bu_proc_runtime_ns(ctl, &ns_b);
        bu_proc_wakeups(ctl, &sw_b);
        const uint64_t w1 = bu_now_ns();
        r->active_end = count_active(&seg, &r->tracked);
        const double wall = (double)(w1 - w0) / 1e9;
        const double hz = (double)sysconf(_SC_CLK_TCK);
        r->window_s = wall;
        r->pct_stat = 100.0 * ((double)(ticks_b - ticks_a) / hz) / wall;
        r->pct_sched = 100.0 * ((double)(ns_b - ns_a) / 1e9) / wall;
        r->wakeups_ps = (double)(sw_b - sw_a) / wall;
        r->run = true;
    }
    atomic_store(&h->stop, 1);
    kill(hp, SIGKILL);
    bu_wait_child(hp);
    kill(ctl, SIGTERM);
    bu_wait_child(ctl);
    ph_segment_close(&seg);
    bu_cleanup_del_swarm(id);
}

/* ---- main ----------------------------------------------------------------- */

int main(int argc, char **argv)
{
    struct opts o;
    int rc = parse_opts(argc, argv, &o);
    if (rc != 0) return rc;
    bu_cleanup_install();
    int cpus[8];
    if (o.pin && bu_cpus(cpus, 8) >= 2) {
        g_cpu_prod = cpus[0];
        g_cpu_cons = cpus[1];
    }
    g_ctrl = bu_shared_alloc(sizeof *g_ctrl);
    double load0 = NAN;
    FILE *lf = fopen("/proc/loadavg", "r");
    if (lf != NULL) {
        if (fscanf(lf, "%lf", &load0) != 1) load0 = NAN;
        fclose(lf);
    }

    /* ds[kind][dmode] */
    struct dsum ds[2][2];
    memset(ds, 0, sizeof ds);
    struct cold_res cold;
    memset(&cold, 0, sizeof cold);
    if (o.drain) {
        static struct trial t[2][2][100];
        int n[2][2] = {{0}};
        for (int rep = 0; rep < o.repeat; rep++) {
            for (int kind = 0; kind < 2; kind++) {
                if ((kind == C_RAW && !o.raw) || (kind == C_CTL && !o.ctl)) continue;
                for (int dm = 0; dm < 2; dm++)
                    drain_trial(&o, kind, dm, &t[kind][dm][n[kind][dm]++]);
            }
        }
        for (int kind = 0; kind < 2; kind++)
            for (int dm = 0; dm < 2; dm++)
                if (n[kind][dm]) summarize(t[kind][dm], n[kind][dm], &ds[kind][dm]);
        cold_sweeps(&o, &cold);
    }
    struct idle_res ir = {0};
    if (o.idle)
        run_idle(&o, &ir);
    else
        ir.skipped = "--no-idle";

    /* Headline: the controller's own code when it ran, else the libph loop. */
    const int hk = ds[C_CTL][D_CONCURRENT].run ? C_CTL : C_RAW;
    const struct dsum *head = &ds[hk][D_CONCURRENT];
    const struct dsum *cap = &ds[hk][D_PREFILLED];
    if (o.json) {
        struct bu_json j;
        bu_json_begin(&j, stdout);
        bu_json_str(&j, "benchmark", "ph-bench-controller");
        bu_json_num(&j, "drain_records_per_s", head->run ? head->rps : NAN);
        bu_json_num(&j, "drain_capacity_records_per_s", cap->run ? cap->rps : NAN);
        bu_json_str(&j, "drain_consumer", head->run ? cmode_names[hk] : NULL);
        for (int kind = 0; kind < 2; kind++) {
            for (int dm = 0; dm < 2; dm++) {
                const struct dsum *d = &ds[kind][dm];
                if (!d->run) continue;
                char key[64];
                snprintf(key, sizeof key, "drain_%s_%s", kind == C_RAW ? "libph" : "ctl_scan",
                         dmode_names[dm]);
                bu_json_obj(&j, key);
                bu_json_num(&j, "records_per_s", d->rps);
                bu_json_num(&j, "records_per_s_min", d->rps_min);
                bu_json_num(&j, "records_per_s_max", d->rps_max);
                bu_json_num(&j, "produced_per_s", d->produced_ps);
                bu_json_num(&j, "ring_full_per_s", d->dropped_ps);
                bu_json_num(&j, "sweeps_per_s", d->sweeps_ps);
                bu_json_num(&j, "records_per_nonempty_drain", d->per_drain);
                bu_json_num(&j, "idle_sweep_us", d->idle_scan_us);
                bu_json_num(&j, "invalid", d->invalid);
                bu_json_close(&j);
            }
        }
        bu_json_num(&j, "cold_idle_sweep_us_libph", cold.have[C_RAW] ? cold.us[C_RAW] : NAN);
        bu_json_num(&j, "cold_idle_sweep_us_ctl_scan", cold.have[C_CTL] ? cold.us[C_CTL] : NAN);
        bu_json_num(&j, "cold_idle_sweep_us_compact_array", cold.have[2] ? cold.us[2] : NAN);
        bu_json_num(&j, "idle_cpu_pct", ir.run ? ir.pct_stat : NAN);
        bu_json_num(&j, "idle_cpu_pct_schedstat", ir.run ? ir.pct_sched : NAN);
        bu_json_num(&j, "idle_window_s", ir.run ? ir.window_s : NAN);
        bu_json_num(&j, "idle_wakeups_per_s", ir.run ? ir.wakeups_ps : NAN);
        bu_json_int(&j, "idle_slots_claimed", o.idle_claim);
        bu_json_int(&j, "idle_slots_active_start", ir.active_start);
        bu_json_int(&j, "idle_slots_active_end", ir.active_end);
        bu_json_str(&j, "idle_skipped", ir.run ? NULL : ir.skipped);
        bu_json_obj(&j, "params");
        bu_json_int(&j, "slots", o.slots);
        bu_json_num(&j, "seconds", o.seconds);
        bu_json_int(&j, "repeat", o.repeat);
        bu_json_int(&j, "producers", o.producers);
        bu_json_int(&j, "burst", o.burst);
        bu_json_int(&j, "fill", o.fill);
        bu_json_int(&j, "status_ring", PH_DEFAULT_STATUS_RING);
        bu_json_num(&j, "idle_seconds", o.idle_seconds);
        bu_json_int(&j, "idle_heartbeat_ms", o.idle_heartbeat_ms);
        bu_json_int(&j, "tick_ms", o.tick_ms ? (int64_t)o.tick_ms : 10);
        bu_json_str(&j, "controller", ir.path[0] ? ir.path : NULL);
        bu_json_bool(&j, "pinned", g_cpu_prod >= 0);
        bu_json_num(&j, "loadavg1_at_start", load0);
        bu_json_bool(&j, "machine_busy", load0 > 1.5);
        bu_json_close(&j);
        bu_json_end(&j);
        return 0;
    }

    printf("ph-bench-controller: %u slots, %s", o.slots,
           g_cpu_prod >= 0 ? "pinned" : "not pinned");
    if (g_cpu_prod >= 0)
        printf(" (producers cpu %d, consumer cpu %d)", g_cpu_prod, g_cpu_cons);
    printf(", load average %.2f at start\n", load0);
    if (load0 > 1.5)
        printf("WARNING: the machine is busy (load %.2f): these figures are not representative\n",
               load0);
    if (o.drain) {
        printf("\ndrain of %u slots by one consumer process, median of %d trials x %.2f s\n"
               "  concurrent: %u producer process(es) round-robin, %u record(s) per slot visit\n"
               "  prefilled:  %u record(s) put in every ring, then the consumer is timed "
               "draining them\n", o.slots, o.repeat, o.seconds, o.producers, o.burst, o.fill);
        printf("  %-9s %-10s %8s %7s %7s %10s %10s %9s %9s %10s\n", "consumer", "mode", "Mrec/s",
               "min", "max", "produced/s", "full/s", "sweeps/s", "rec/drain", "idle sweep");
        for (int kind = 0; kind < 2; kind++) {
            for (int dm = 0; dm < 2; dm++) {
                const struct dsum *d = &ds[kind][dm];
                if (!d->run) continue;
                char per[16];
                if (isnan(d->per_drain))
                    snprintf(per, sizeof per, "-");
                else
                    snprintf(per, sizeof per, "%.2f", d->per_drain);
                printf("  %-9s %-10s %8.2f %7.2f %7.2f %9.2fM %9.2fM %9.0f %9s %8.1fus\n",
                       cmode_names[kind], dmode_names[dm], d->rps / 1e6, d->rps_min / 1e6,
                       d->rps_max / 1e6, d->produced_ps / 1e6, d->dropped_ps / 1e6,
                       d->sweeps_ps, per, d->idle_scan_us);
            }
        }
        printf("  one idle sweep over %u slots after a 10 ms sleep (median of %u):", o.slots,
               o.cold_sweeps);
        if (cold.have[C_RAW]) printf(" libph %.1f us,", cold.us[C_RAW]);
        if (cold.have[C_CTL]) printf(" ctl_scan %.1f us,", cold.us[C_CTL]);
        printf("\n  a compact array of one 8-byte word per slot %.1f us\n", cold.us[2]);
        printf("  (target >= 5 M records/s. concurrent: full/s > 0 means the producer found rings\n"
               "   full (a worker would drop those records), so the consumer was the bottleneck;\n"
               "   otherwise the producer was. prefilled: the consumer's own rate. idle sweep:\n"
               "   one pass over every slot with nothing pending, caches warm. rec/drain: libph\n"
               "   consumer only)\n");
#ifndef PH_BENCH_HAVE_CTL
        printf("  ctl_scan: not built (ph_ctl library absent)\n");
#endif
    }
    printf("\nidle controller CPU, %u slots, %u claimed by an idle helper\n", o.slots,
           o.idle_claim);
    if (ir.run) {
        if (o.tick_ms)
            printf("  %s --tick-ms %u\n", ir.path, o.tick_ms);
        else
            printf("  %s (default tick)\n", ir.path);
        printf("  %.3f%% of a core from utime+stime, %.3f%% from schedstat, over %.1f s "
               "(target < 1%%)\n", ir.pct_stat, ir.pct_sched, ir.window_s);
        printf("  %.0f wakeups/s, %.1f us of CPU per wakeup; slots ACTIVE at start/end %u/%u%s\n",
               ir.wakeups_ps, ir.wakeups_ps > 0 ? ir.pct_sched / 100.0 * 1e6 / ir.wakeups_ps : 0,
               ir.active_start, ir.active_end,
               o.idle_heartbeat_ms ? "" : "; idle slots publish nothing");
        if (o.idle_heartbeat_ms)
            printf("  helper publishes one status per slot every %u ms (%.0f records/s)\n",
                   o.idle_heartbeat_ms, o.idle_claim * 1000.0 / o.idle_heartbeat_ms);
    } else {
        printf("  skipped: %s\n", ir.skipped);
    }
    return 0;
}
