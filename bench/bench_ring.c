/* ph-bench-ring: status-ring throughput between two processes, compared with
 * a plain SPSC ring measured in the same run, and the worker-side cost of one
 * status update through the worker SDK. See usage() for the method. */
#include <getopt.h>
#include <sched.h>
#include <math.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bench_util.h"
#include "ph/record.h"
#include "ph/ring.h"
#include "ph/shm.h"
#include "ph/worker.h"

#define END_TYPE 0x7ff0u /* bench-private record type: "producer finished" */
#define PLAIN_SLOT 64u

enum mode { M_EACH = 0, M_BATCH = 1, M_PLAIN = 2 };
static const char *const mode_names[] = {"publish-each", "batched", "plain-baseline"};

struct opts {
    double seconds;       /* per throughput trial */
    int repeat;           /* trials per configuration */
    uint32_t batch;       /* records per publish in batched mode */
    uint32_t small_ring;  /* the segment's default status ring */
    uint32_t big_ring;    /* a larger status ring for throughput */
    uint32_t body;        /* record body bytes (STATUS: 32) */
    bool json;
    bool pin;
    bool skip_throughput;
    bool skip_worker;
    uint32_t write_batches; /* batches timed for the per-update cost */
    uint32_t write_batch;   /* calls per timed batch */
    uint32_t single_calls;  /* individually timed calls */
    uint32_t tick_batches;  /* batches of 1000 count+tick */
};

static void usage(FILE *f)
{
    fprintf(f,
        "usage: ph-bench-ring [options]\n"
        "\n"
        "Measures the worker->controller status ring of libph between two processes\n"
        "over a real segment (/dev/shm/ph.bench-ring-<pid>-<n>, removed at the end and\n"
        "on SIGINT/SIGTERM), and the worker-side cost of one status update.\n"
        "\n"
        "Throughput (records/s, median of --repeat trials of --seconds each):\n"
        "  publish-each   producer process: ph_ring_claim + fill + ph_ring_publish per\n"
        "                 STATUS record (32-byte body, 40 bytes in the ring)\n"
        "  batched        producer claims --batch records, then one ph_ring_publish\n"
        "  plain-baseline a plain two-process SPSC ring of 64-byte slots, one release\n"
        "                 store of the tail index per record, same record, same handler\n"
        "  publish-each/64B  publish-each with 56-byte bodies: 64-byte records that never\n"
        "                 share a cache line (to compare the record layout)\n"
        "  The producer retries (pause + retry) when the ring is full instead of\n"
        "  dropping, so every record is delivered; retries are counted (libph also\n"
        "  counts each failed claim in the ring's `overflows`). The consumer process\n"
        "  drains with ph_ring_drain and a handler that reads the record's counter and\n"
        "  checks the sequence. records/s = records consumed / (consumer end - producer\n"
        "  start). Each configuration runs at the default 8 KiB status ring and at a\n"
        "  larger one (--big-ring); trials of all configurations are interleaved so\n"
        "  background noise spreads evenly. Producer and consumer are pinned to two\n"
        "  different CPUs when at least two are available.\n"
        "\n"
        "Worker-side cost (a worker process attached with ph_worker_attach, a consumer\n"
        "process draining its ring with ph_ring_drain + ph_rec_status_decode):\n"
        "  batch method   TSC read (lfence/rdtscp) around --write-batch back-to-back\n"
        "                 ph_worker_publish_status() calls, divided by the count; the\n"
        "                 percentiles are over --write-batches batches. Three settings:\n"
        "                 - the consumer drains the ring between batches and is idle\n"
        "                   during one, as the controller (10 ms tick) is: write_ns_*\n"
        "                 - the consumer polls the ring all along: write_contended_ns_*\n"
        "                 - a ring the worker's own process drains between batches, so\n"
        "                   no line leaves the CPU (instructions only): write_local_ns_*\n"
        "  single method  each call timed alone, the consumer having drained the ring\n"
        "                 just before it: with CLOCK_MONOTONIC minus the median cost of\n"
        "                 an empty clock_gettime pair (not serialising: the call overlaps\n"
        "                 the clock read, so this one reads low), and with the TSC\n"
        "                 between lfences minus an empty pair. Both clocks step by\n"
        "                 10-20 ns on a VM, so percentiles come in steps; the trimmed\n"
        "                 means (values up to p99) average the steps out.\n"
        "  tick           ph_worker_count(w, 1) + ph_worker_tick(w) per item, TSC around\n"
        "                 batches of 1000 items; again with the worker's status ring full\n"
        "                 (nobody drains it) and a config record pending.\n"
        "\n"
        "options:\n"
        "  --seconds S         duration of one throughput trial (default 0.2)\n"
        "  --repeat N          trials per configuration (default 5)\n"
        "  --batch N           records per publish in batched mode (default 64)\n"
        "  --big-ring BYTES    larger status ring, power of two (default 1M)\n"
        "  --small-ring BYTES  default-size status ring (default 8K)\n"
        "  --body BYTES        record body, 32..1024 (default 32 = STATUS); 56 gives\n"
        "                      64-byte records, one per cache line\n"
        "  --write-batches N   timed batches for the batch method (default 20000)\n"
        "  --write-batch N     calls per batch (default 100)\n"
        "  --single-calls N    individually timed calls (default 100000)\n"
        "  --tick-batches N    batches of 1000 count+tick items (default 2000)\n"
        "  --no-throughput     skip the throughput part\n"
        "  --no-worker         skip the worker-side cost part\n"
        "  --no-pin            do not pin processes to CPUs\n"
        "  --json              print one JSON object instead of the table\n"
        "  --help              this text\n"
        "\n"
        "Figures only: nothing is asserted. Targets from issue 2: >= 10 M records/s\n"
        "publishing every record, median status update <= 50 ns.\n");
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
    *o = (struct opts){.seconds = 0.2, .repeat = 5, .batch = 64, .small_ring = 8192,
                       .big_ring = 1u << 20, .body = PH_REC_STATUS_SIZE, .pin = true,
                       .write_batches = 20000, .write_batch = 100, .single_calls = 100000,
                       .tick_batches = 2000};
    static const struct option longs[] = {
        {"seconds", required_argument, NULL, 's'},     {"repeat", required_argument, NULL, 'r'},
        {"batch", required_argument, NULL, 'b'},       {"big-ring", required_argument, NULL, 'B'},
        {"small-ring", required_argument, NULL, 'S'},  {"body", required_argument, NULL, 'y'},
        {"write-batches", required_argument, NULL, 'w'}, {"write-batch", required_argument, NULL, 'W'},
        {"single-calls", required_argument, NULL, 'c'}, {"tick-batches", required_argument, NULL, 't'},
        {"no-throughput", no_argument, NULL, 'T'},     {"no-worker", no_argument, NULL, 'K'},
        {"no-pin", no_argument, NULL, 'P'},            {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},              {NULL, 0, NULL, 0}};
    int ch;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        uint64_t v = 0;
        bool ok = true;
        switch (ch) {
        case 's': ok = bu_parse_double(optarg, &o->seconds) && o->seconds > 0 && o->seconds <= 60; break;
        case 'r': ok = bu_parse_size(optarg, &v) && v >= 1 && v <= 100; o->repeat = (int)v; break;
        case 'b': ok = bu_parse_size(optarg, &v) && v >= 1 && v <= 4096; o->batch = (uint32_t)v; break;
        case 'B': ok = bu_parse_size(optarg, &v) && ph_ring_capacity_valid(v); o->big_ring = (uint32_t)v; break;
        case 'S': ok = bu_parse_size(optarg, &v) && ph_ring_capacity_valid(v); o->small_ring = (uint32_t)v; break;
        case 'y': ok = bu_parse_size(optarg, &v) && v >= 32 && v <= 1024; o->body = (uint32_t)v; break;
        case 'w': ok = bu_parse_size(optarg, &v) && v >= 10 && v <= 10000000; o->write_batches = (uint32_t)v; break;
        case 'W': ok = bu_parse_size(optarg, &v) && v >= 1 && v <= 100; o->write_batch = (uint32_t)v; break;
        case 'c': ok = bu_parse_size(optarg, &v) && v >= 10 && v <= 10000000; o->single_calls = (uint32_t)v; break;
        case 't': ok = bu_parse_size(optarg, &v) && v >= 10 && v <= 1000000; o->tick_batches = (uint32_t)v; break;
        case 'T': o->skip_throughput = true; break;
        case 'K': o->skip_worker = true; break;
        case 'P': o->pin = false; break;
        case 'j': o->json = true; break;
        case 'h': usage(stdout); exit(0);
        default: return bu_usage_error("unknown option '%s'", argv[optind - 1]);
        }
        if (!ok) return bu_bad_value(argv);
    }
    if (optind < argc) return bu_usage_error("unexpected argument '%s'", argv[optind]);
    if (o->body + PH_RING_HDR > o->small_ring / 2) {
        fprintf(stderr, "ph-bench-ring: --body too large for the small ring\n");
        return 2;
    }
    if ((uint64_t)o->write_batch * (o->body + PH_RING_HDR) > o->small_ring) {
        fprintf(stderr, "ph-bench-ring: --write-batch does not fit in the small ring\n");
        return 2;
    }
    return 0;
}

/* ---- CPUs ------------------------------------------------------------------- */

static int g_cpu_prod = -1, g_cpu_cons = -1;

static void choose_cpus(const struct opts *o)
{
    int cpus[8];
    int n = bu_cpus(cpus, 8);
    if (o->pin && n >= 2) {
        g_cpu_prod = cpus[0];
        g_cpu_cons = cpus[1];
    }
}

static void pin_to(int cpu)
{
    if (cpu >= 0) bu_pin(cpu);
}

/* ---- throughput ------------------------------------------------------------- */

struct ctrl {
    alignas(64) _Atomic int ready;
    alignas(64) _Atomic int go;
    alignas(64) _Atomic int stop;
    alignas(64) uint64_t t_start; /* producer: first write */
    uint64_t t_prod_end;
    uint64_t produced;
    uint64_t retries;
    uint64_t lib_overflows;
    uint64_t publishes;
    alignas(64) uint64_t t_cons_end;
    uint64_t consumed;
    uint64_t bad;
    uint64_t drains;
    uint64_t empty_polls;
    uint64_t checksum;
    int cons_err;
};

struct plain_ring {
    alignas(64) _Atomic uint64_t tail;
    alignas(64) _Atomic uint64_t head;
    alignas(64) uint8_t slots[]; /* nslots * PLAIN_SLOT */
};

struct cons_ctx {
    uint64_t expect;
    uint64_t count;
    uint64_t bad;
    uint64_t sum;
    bool done;
};

/* The consumer's handler: reads the record's cumulative counter, checks the
 * sequence, accumulates a checksum. */
static int on_record(void *ctx, uint16_t type, const uint8_t *body, uint32_t len)
{
    struct cons_ctx *c = ctx;
    if (type == END_TYPE) {
        c->done = true;
        return 1;
    }
    uint64_t v;
    memcpy(&v, body + 8, sizeof v); /* ph_rec_status.processed */
    if (v != c->expect || len < PH_REC_STATUS_SIZE) c->bad++;
    c->expect = v + 1;
    c->sum += v;
    c->count++;
    return 0;
}
/* Called through a volatile pointer by the plain ring too, so both pay the
 * same indirect call. */
static ph_ring_handler volatile g_handler = on_record;

static inline void fill_status(uint8_t *b, uint64_t i)
{
    struct ph_rec_status *r = (struct ph_rec_status *)b;
    r->mono_ns = i;
    r->processed = i;
    r->errors = 0;
    r->seq = (uint32_t)i;
    r->flags = PH_STATUS_ENABLED;
    r->io_in = PH_IN_OK;
    r->io_out = PH_OUT_OK;
    r->reserved = 0;
}

static void wait_go(struct ctrl *c)
{
    atomic_fetch_add(&c->ready, 1);
    while (!atomic_load_explicit(&c->go, memory_order_acquire)) bu_relax();
}

static void producer_ph(struct ctrl *c, const struct opts *o, ph_ring_producer *p, int mode,
                        uint32_t body)
{
    const uint32_t batch = mode == M_BATCH ? o->batch : 1;
    const uint32_t rounds = batch >= 256 ? 1 : 256 / batch; /* clock read every ~256 records */
    uint64_t i = 0, retries = 0, publishes = 0;
    wait_go(c);
    const uint64_t t0 = bu_now_ns();
    const uint64_t deadline = t0 + (uint64_t)(o->seconds * 1e9);
    for (;;) {
        for (uint32_t r = 0; r < rounds; r++) {
            uint32_t claimed = 0, unpublished = 0;
            while (claimed < batch) {
                uint8_t *b = ph_ring_claim(p, PH_REC_STATUS, body);
                if (b == NULL) {
                    /* Full: publish what is claimed so the consumer can make
                     * room, then retry. */
                    if (unpublished) {
                        ph_ring_publish(p);
                        publishes++;
                        unpublished = 0;
                    }
                    retries++;
                    bu_relax();
                    continue;
                }
                fill_status(b, i++);
                claimed++;
                unpublished++;
            }
            ph_ring_publish(p);
            publishes++;
        }
        if (bu_now_ns() >= deadline) break;
    }
    while (!ph_ring_write(p, END_TYPE, NULL, 0)) {
        retries++;
        bu_relax();
    }
    c->t_prod_end = bu_now_ns();
    c->t_start = t0;
    c->produced = i;
    c->retries = retries;
    c->publishes = publishes;
    c->lib_overflows = p->overflows;
}

static void consumer_ph(struct ctrl *c, ph_ring_consumer *cons, uint32_t max_record)
{
    uint8_t *scratch = malloc(max_record);
    struct cons_ctx ctx = {0};
    uint64_t drains = 0, empty = 0;
    int err = 0;
    wait_go(c);
    for (;;) {
        int n = ph_ring_drain(cons, on_record, &ctx, scratch, 0);
        if (ctx.done) break;
        if (n < 0) {
            err = n;
            break;
        }
        if (n == 0) {
            empty++;
            bu_relax();
        } else {
            drains++;
        }
    }
    c->t_cons_end = bu_now_ns();
    c->consumed = ctx.count;
    c->bad = ctx.bad;
    c->checksum = ctx.sum;
    c->drains = drains;
    c->empty_polls = empty;
    c->cons_err = err;
    free(scratch);
}

static void producer_plain(struct ctrl *c, const struct opts *o, struct plain_ring *r,
                           uint32_t nslots)
{
    const uint64_t mask = nslots - 1;
    uint64_t tail = 0, head_cache = 0, i = 0, retries = 0;
    wait_go(c);
    const uint64_t t0 = bu_now_ns();
    const uint64_t deadline = t0 + (uint64_t)(o->seconds * 1e9);
    bool end = false;
    for (;;) {
        for (uint32_t k = 0; k < 256 || end; k++) {
            if (tail - head_cache == nslots) {
                head_cache = atomic_load_explicit(&r->head, memory_order_acquire);
                while (tail - head_cache == nslots) {
                    retries++;
                    bu_relax();
                    head_cache = atomic_load_explicit(&r->head, memory_order_acquire);
                }
            }
            uint8_t *s = r->slots + (tail & mask) * PLAIN_SLOT;
            struct ph_ring_rec h = {.len = PH_RING_HDR + PH_REC_STATUS_SIZE,
                                    .type = end ? END_TYPE : PH_REC_STATUS};
            memcpy(s, &h, sizeof h);
            if (!end) fill_status(s + PH_RING_HDR, i++);
            tail++;
            atomic_store_explicit(&r->tail, tail, memory_order_release);
            if (end) break;
        }
        if (end) break;
        if (bu_now_ns() >= deadline) end = true;
    }
    c->t_prod_end = bu_now_ns();
    c->t_start = t0;
    c->produced = i;
    c->retries = retries;
    c->publishes = i + 1;
    c->lib_overflows = 0;
}

static void consumer_plain(struct ctrl *c, struct plain_ring *r, uint32_t nslots)
{
    const uint64_t mask = nslots - 1;
    struct cons_ctx ctx = {0};
    uint64_t head = 0, drains = 0, empty = 0;
    ph_ring_handler fn = g_handler;
    wait_go(c);
    while (!ctx.done) {
        uint64_t t = atomic_load_explicit(&r->tail, memory_order_acquire);
        if (t == head) {
            empty++;
            bu_relax();
            continue;
        }
        while (head != t) {
            const uint8_t *s = r->slots + (head & mask) * PLAIN_SLOT;
            struct ph_ring_rec h;
            memcpy(&h, s, sizeof h);
            uint8_t body[PH_REC_STATUS_SIZE];
            memcpy(body, s + PH_RING_HDR, sizeof body); /* copy out, as ph_ring_drain does */
            head++;
            if (fn(&ctx, h.type, body, sizeof body) != 0) break;
        }
        atomic_store_explicit(&r->head, head, memory_order_release);
        drains++;
    }
    c->t_cons_end = bu_now_ns();
    c->consumed = ctx.count;
    c->bad = ctx.bad;
    c->checksum = ctx.sum;
    c->drains = drains;
    c->empty_polls = empty;
    c->cons_err = 0;
}

struct trial {
    bool ok;
    double rps;
    double retries;
    double lib_overflows;
    double bad;
    double recs_per_drain;
};

static struct ctrl *g_ctrl;

static bool trial_ph(const struct opts *o, int mode, uint32_t ring, uint32_t body,
                     struct trial *t)
{
    char id[64], err[512];
    bu_swarm_id(id, sizeof id, "bench-ring");
    struct ph_segment seg;
    bool adopted;
    struct ph_segment_params params = {.slots = 1, .status_ring = ring};
    bu_cleanup_add_swarm(id);
    if (ph_segment_create(&seg, id, &params, &adopted, err, sizeof err) != PH_OK) {
        fprintf(stderr, "ph-bench-ring: %s\n", err);
        bu_cleanup_del_swarm(id);
        return false;
    }
    uint64_t start = 0;
    uint32_t idx = 0;
    ph_proc_start_time(getpid(), &start);
    if (ph_slot_claim(&seg, "bench", "ring", getpid(), start, &idx, NULL, err, sizeof err) !=
        PH_OK) {
        fprintf(stderr, "ph-bench-ring: %s\n", err);
        ph_segment_close(&seg);
        bu_cleanup_del_swarm(id);
        return false;
    }
    struct ph_slot *s = ph_segment_slot(&seg, idx);
    memset(ph_slot_status_data(&seg, s), 0, ring); /* fault the pages in before timing */

    struct ctrl *c = g_ctrl;
    memset(c, 0, sizeof *c);
    pid_t cons = fork();
    if (cons == 0) {
        bu_child_init();
        pin_to(g_cpu_cons);
        ph_ring_consumer cc;
        if (ph_ring_consumer_init(&cc, &s->status, ph_slot_status_data(&seg, s), ring) != PH_OK)
            _exit(1);
        consumer_ph(c, &cc, ring / 2);
        _exit(0);
    }
    bu_cleanup_add_child(cons);
    pid_t prod = fork();
    if (prod == 0) {
        bu_child_init();
        pin_to(g_cpu_prod);
        ph_ring_producer p;
        if (ph_ring_producer_init(&p, &s->status, ph_slot_status_data(&seg, s), ring) != PH_OK)
            _exit(1);
        producer_ph(c, o, &p, mode, body);
        _exit(0);
    }
    bu_cleanup_add_child(prod);
    while (atomic_load(&c->ready) < 2) bu_sleep_ns(100000);
    atomic_store_explicit(&c->go, 1, memory_order_release);
    bool ok = bu_wait_child(prod);
    ok = bu_wait_child(cons) && ok;
    ph_segment_close(&seg);
    bu_cleanup_del_swarm(id);
    ok = ok && c->cons_err == 0 && c->consumed == c->produced;
    t->ok = ok;
    t->rps = (double)c->consumed / ((double)(c->t_cons_end - c->t_start) / 1e9);
    t->retries = (double)c->retries;
    t->lib_overflows = (double)c->lib_overflows;
    t->bad = (double)c->bad;
    t->recs_per_drain = c->drains ? (double)c->consumed / (double)c->drains : 0;
    if (!ok)
        fprintf(stderr, "ph-bench-ring: %s trial failed (consumer error %d, produced %llu, "
                "consumed %llu)\n", mode_names[mode], c->cons_err,
                (unsigned long long)c->produced, (unsigned long long)c->consumed);
    return ok;
}

static bool trial_plain(const struct opts *o, uint32_t ring, struct trial *t)
{
    const uint32_t nslots = ring / PLAIN_SLOT;
    const size_t sz = sizeof(struct plain_ring) + (size_t)nslots * PLAIN_SLOT;
    struct plain_ring *r = bu_shared_alloc(sz);
    memset(r, 0, sz);
    struct ctrl *c = g_ctrl;
    memset(c, 0, sizeof *c);
    pid_t cons = fork();
    if (cons == 0) {
        bu_child_init();
        pin_to(g_cpu_cons);
        consumer_plain(c, r, nslots);
        _exit(0);
    }
    bu_cleanup_add_child(cons);
    pid_t prod = fork();
    if (prod == 0) {
        bu_child_init();
        pin_to(g_cpu_prod);
        producer_plain(c, o, r, nslots);
        _exit(0);
    }
    bu_cleanup_add_child(prod);
    while (atomic_load(&c->ready) < 2) bu_sleep_ns(100000);
    atomic_store_explicit(&c->go, 1, memory_order_release);
    bool ok = bu_wait_child(prod);
    ok = bu_wait_child(cons) && ok;
    munmap(r, sz);
    ok = ok && c->consumed == c->produced;
    t->ok = ok;
    t->rps = (double)c->consumed / ((double)(c->t_cons_end - c->t_start) / 1e9);
    t->retries = (double)c->retries;
    t->lib_overflows = 0;
    t->bad = (double)c->bad;
    t->recs_per_drain = c->drains ? (double)c->consumed / (double)c->drains : 0;
    return ok;
}

#define NCONF 8
struct conf {
    int mode;
    uint32_t ring;
    uint32_t body;
    struct trial *trials;
    int n;
    /* medians */
    double rps, rps_min, rps_max, retries, overflows, bad, per_drain;
};

static void summarize(struct conf *cf)
{
    double *v = calloc((size_t)cf->n + 1, sizeof *v);
    int k = 0;
#define MED(field, out)                                                  \
    do {                                                                 \
        k = 0;                                                           \
        for (int i = 0; i < cf->n; i++)                                  \
            if (cf->trials[i].ok) v[k++] = cf->trials[i].field;          \
        out = bu_median(v, (size_t)k);                                   \
    } while (0)
    MED(rps, cf->rps);
    cf->rps_min = k ? v[0] : NAN;
    cf->rps_max = k ? v[k - 1] : NAN;
    MED(retries, cf->retries);
    MED(lib_overflows, cf->overflows);
    MED(bad, cf->bad);
    MED(recs_per_drain, cf->per_drain);
#undef MED
    free(v);
}

/* ---- worker-side cost ----------------------------------------------------- */

/* Consumer behaviour during the worker measurement. */
enum { C_POLL = 0, C_ON_REQUEST = 1 };

struct wres {
    alignas(64) _Atomic int slot_ready;
    _Atomic int cons_ready;
    _Atomic int stop;
    _Atomic int cmode;
    alignas(64) _Atomic int req; /* worker: 1 = "drain now"; consumer: 0 = done */
    alignas(64) uint32_t slot;
    int error;
    char errmsg[256];
    double poll_p50, poll_p90, poll_p99, poll_mean;    /* batch, consumer polling */
    double quiet_p50, quiet_p90, quiet_p99, quiet_mean; /* batch, consumer drains between */
    double local_p50, local_p90, local_p99, local_mean; /* batch, same-CPU drain */
    double single_p50, single_p90, single_p99, single_mean, clock_overhead, clock_step;
    double tsc_p50, tsc_p90, tsc_p99, tsc_mean, tsc_overhead, tsc_step;
    double tick_p50, tick_p90, tick_p99;
    double count_p50;
    double tick_full_p50, tick_full_p99; /* count+tick, ring full, a config pending */
    double full_overflows_per_item;
    uint64_t calls, drops;
    uint64_t consumed, decode_errors;
    double tsc_per_ns;
};

struct dec_ctx {
    uint64_t n, bad;
};

static int on_status(void *ctx, uint16_t type, const uint8_t *body, uint32_t len)
{
    struct dec_ctx *d = ctx;
    struct ph_rec_status st;
    if (type == PH_REC_STATUS && ph_rec_status_decode(body, len, &st) == PH_OK)
        d->n++;
    else if (type == PH_REC_STATUS)
        d->bad++;
    return 0;
}

/* Returns once the consumer has drained the ring empty; false if it stopped. */
static bool sync_drain(struct wres *r, const struct ph_ring_desc *d, uint32_t cap)
{
    uint64_t spins = 0;
    if (atomic_load_explicit(&r->cmode, memory_order_relaxed) == C_ON_REQUEST)
        atomic_store_explicit(&r->req, 1, memory_order_release);
    while (ph_ring_used(d, cap) != 0 || atomic_load_explicit(&r->req, memory_order_acquire)) {
        bu_relax();
        if (++spins > (1u << 28)) return false; /* consumer gone */
    }
    return true;
}

/* Smallest non-zero step between two back-to-back reads of a clock. */
static double clock_step(bool tsc, double tpn)
{
    double best = 1e18;
    for (int i = 0; i < 20000; i++) {
        uint64_t a = tsc ? bu_tsc_begin() : bu_now_ns();
        uint64_t b = a;
        while (b == a) b = tsc ? bu_tsc_begin() : bu_now_ns();
        double d = (double)(b - a) / (tsc ? tpn : 1.0);
        if (d < best) best = d;
    }
    return best;
}

/* Mean of the values up to the 99th percentile: the clock's steps average
 * out (random phase), preemptions and interrupts in the top 1% do not count.
 * v must be sorted (bu_percentile sorts it). */
static double trimmed_mean(const double *v, uint32_t n)
{
    uint32_t k = n - n / 100;
    double sum = 0;
    for (uint32_t i = 0; i < k; i++) sum += v[i];
    return k ? sum / k : NAN;
}

static bool batch_run(struct wres *r, ph_worker *w, const struct ph_ring_desc *d, uint32_t cap,
                      const struct opts *o, double *v, double *p50, double *p90, double *p99,
                      double *mean, uint64_t *calls)
{
    const uint32_t nb = o->write_batches, wb = o->write_batch, warm = nb / 10 + 1;
    const double tpn = r->tsc_per_ns;
    double sum = 0;
    for (uint32_t b = 0; b < warm + nb; b++) {
        if (!sync_drain(r, d, cap)) return false;
        uint64_t t0 = bu_tsc_begin();
        for (uint32_t k = 0; k < wb; k++) ph_worker_publish_status(w);
        uint64_t t1 = bu_tsc_end();
        *calls += wb;
        if (b >= warm) {
            v[b - warm] = (double)(t1 - t0) / tpn / wb;
            sum += v[b - warm];
        }
    }
    (void)sum;
    *p50 = bu_percentile(v, nb, 50);
    *p90 = bu_percentile(v, nb, 90);
    *p99 = bu_percentile(v, nb, 99);
    *mean = trimmed_mean(v, nb);
    return true;
}

static void worker_child(struct wres *r, const char *id, struct ph_segment *seg,
                         const struct opts *o)
{
    char err[200];
    struct ph_worker_opts wo = {.swarm_id = id, .role = "bench", .instance = "writer"};
    ph_worker *w = ph_worker_attach(&wo, err, sizeof err);
    if (w == NULL) {
        r->error = 1;
        snprintf(r->errmsg, sizeof r->errmsg, "ph_worker_attach: %s", err);
        atomic_store(&r->slot_ready, -1);
        return;
    }
    r->slot = ph_worker_slot(w);
    atomic_store(&r->slot_ready, 1);
    while (!atomic_load(&r->cons_ready)) bu_relax();
    const struct ph_ring_desc *d = &ph_segment_slot(seg, r->slot)->status;
    const uint32_t cap = seg->status_ring;
    const double tpn = r->tsc_per_ns;
    const uint64_t drops0 = ph_worker_overflows(w);
    uint64_t calls = 0;
    double *v = calloc((size_t)o->write_batches + o->single_calls + o->tick_batches + 20016,
                       sizeof *v);

    /* 1. batches, consumer polling the ring continuously (contended) */
    atomic_store(&r->cmode, C_POLL);
    if (!batch_run(r, w, d, cap, o, v, &r->poll_p50, &r->poll_p90, &r->poll_p99, &r->poll_mean,
                   &calls))
        goto gone;
    /* 2. batches, consumer drains between batches only */
    atomic_store(&r->cmode, C_ON_REQUEST);
    if (!batch_run(r, w, d, cap, o, v, &r->quiet_p50, &r->quiet_p90, &r->quiet_p99,
                   &r->quiet_mean, &calls))
        goto gone;

    /* 3. single calls, CLOCK_MONOTONIC; the consumer drains before each */
    const uint32_t ns = o->single_calls;
    for (uint32_t i = 0; i < 20000; i++) {
        uint64_t a = bu_now_ns(), b = bu_now_ns();
        v[i] = (double)(b - a);
    }
    r->clock_overhead = bu_median(v, 20000);
    r->clock_step = clock_step(false, tpn);
    for (uint32_t i = 0; i < ns; i++) {
        if (!sync_drain(r, d, cap)) goto gone;
        uint64_t a = bu_now_ns();
        ph_worker_publish_status(w);
        uint64_t b = bu_now_ns();
        v[i] = (double)(b - a) - r->clock_overhead;
    }
    calls += ns;

    r->single_p50 = bu_percentile(v, ns, 50);
    r->single_p90 = bu_percentile(v, ns, 90);
    r->single_p99 = bu_percentile(v, ns, 99);
    r->single_mean = trimmed_mean(v, ns);

    /* 4. single calls, TSC */
    for (uint32_t i = 0; i < 20000; i++) {
        uint64_t a = bu_tsc_begin(), b = bu_tsc_end();
        v[i] = (double)(b - a);
    }
    const double tsc_ov = bu_median(v, 20000);
    r->tsc_overhead = tsc_ov / tpn;
    r->tsc_step = clock_step(true, tpn);
    for (uint32_t i = 0; i < ns; i++) {
        if (!sync_drain(r, d, cap)) goto gone;
        uint64_t a = bu_tsc_begin();
        ph_worker_publish_status(w);
        uint64_t b = bu_tsc_end();
        v[i] = ((double)(b - a) - tsc_ov) / tpn;
    }
    calls += ns;

    r->tsc_p50 = bu_percentile(v, ns, 50);
    r->tsc_p90 = bu_percentile(v, ns, 90);
    r->tsc_p99 = bu_percentile(v, ns, 99);
    r->tsc_mean = trimmed_mean(v, ns);
    r->drops = ph_worker_overflows(w) - drops0;
    r->calls = calls;
    atomic_store(&r->cmode, C_POLL);

    /* 5. count + tick per item */
    const uint32_t nt = o->tick_batches;
    for (uint32_t b = 0; b < nt + nt / 10; b++) {
        uint64_t t0 = bu_tsc_begin();
        for (int k = 0; k < 1000; k++) {
            ph_worker_count(w, 1);
            ph_worker_tick(w);
        }
        uint64_t t1 = bu_tsc_end();
        if (b >= nt / 10) v[b - nt / 10] = (double)(t1 - t0) / tpn / 1000.0;
    }
    r->tick_p50 = bu_percentile(v, nt, 50);
    r->tick_p90 = bu_percentile(v, nt, 90);
    r->tick_p99 = bu_percentile(v, nt, 99);
    for (uint32_t b = 0; b < nt; b++) {
        uint64_t t0 = bu_tsc_begin();
        for (int k = 0; k < 1000; k++) ph_worker_count(w, 1);
        uint64_t t1 = bu_tsc_end();
        v[b] = (double)(t1 - t0) / tpn / 1000.0;
    }
    r->count_p50 = bu_percentile(v, nt, 50);

    /* 5b. count + tick per item while the status ring is full (nobody drains
     *     this worker's ring) and a config record is pending: the state a
     *     worker is in while its controller is gone or stalled. */
    {
        struct ph_worker_opts fo = {.swarm_id = id, .role = "bench", .instance = "full"};
        ph_worker *fw = ph_worker_attach(&fo, err, sizeof err);
        if (fw != NULL) {
            while (ph_worker_publish_status(fw)) {
            }
            /* larger than the space a full ring of 40-byte statuses leaves */
            json_t *cfg = json_pack("{s:i, s:s}", "ratePerSec", 100, "note",
                                    "a config record larger than the tail space of a full ring");
            ph_worker_publish_config(fw, cfg);
            json_decref(cfg);
            const uint64_t ov0 = ph_worker_overflows(fw);
            uint64_t items = 0;
            for (uint32_t b = 0; b < nt + nt / 10; b++) {
                uint64_t t0 = bu_tsc_begin();
                for (int k = 0; k < 1000; k++) {
                    ph_worker_count(fw, 1);
                    ph_worker_tick(fw);
                }
                uint64_t t1 = bu_tsc_end();
                items += 1000;
                if (b >= nt / 10) v[b - nt / 10] = (double)(t1 - t0) / tpn / 1000.0;
            }
            r->tick_full_p50 = bu_percentile(v, nt, 50);
            r->tick_full_p99 = bu_percentile(v, nt, 99);
            r->full_overflows_per_item = (double)(ph_worker_overflows(fw) - ov0) / (double)items;
            ph_worker_detach(fw);
        }
    }

    /* 6. batches into a second worker's ring that this process drains itself
     *    between batches: no line ever leaves this CPU, i.e. the cost of the
     *    instructions alone. */
    struct ph_worker_opts lo = {.swarm_id = id, .role = "bench", .instance = "local"};
    ph_worker *lw = ph_worker_attach(&lo, err, sizeof err);
    if (lw != NULL) {
        struct ph_slot *ls = ph_segment_slot(seg, ph_worker_slot(lw));
        ph_ring_consumer lc;
        uint8_t *scratch = malloc(cap / 2);
        struct dec_ctx dc = {0};
        double sum = 0;
        const uint32_t nb = o->write_batches, wb = o->write_batch, warm = nb / 10 + 1;
        if (ph_ring_consumer_init(&lc, &ls->status, ph_slot_status_data(seg, ls), cap) == PH_OK) {
            for (uint32_t b = 0; b < warm + nb; b++) {
                while (ph_ring_drain(&lc, on_status, &dc, scratch, 0) > 0) {
                }
                uint64_t t0 = bu_tsc_begin();
                for (uint32_t k = 0; k < wb; k++) ph_worker_publish_status(lw);
                uint64_t t1 = bu_tsc_end();
                if (b >= warm) {
                    v[b - warm] = (double)(t1 - t0) / tpn / wb;
                    sum += v[b - warm];
                }
            }
            (void)sum;
            r->local_p50 = bu_percentile(v, nb, 50);
            r->local_p90 = bu_percentile(v, nb, 90);
            r->local_p99 = bu_percentile(v, nb, 99);
            r->local_mean = trimmed_mean(v, nb);
        }
        free(scratch);
        ph_worker_detach(lw);
    }
    free(v);
    ph_worker_detach(w);
    return;
gone:
    r->error = 1;
    snprintf(r->errmsg, sizeof r->errmsg, "the consumer stopped draining");
    free(v);
    ph_worker_detach(w);
}

static void worker_consumer(struct wres *r, struct ph_segment *seg)
{
    int sr;
    while ((sr = atomic_load(&r->slot_ready)) == 0) bu_relax();
    if (sr < 0) _exit(1);
    struct ph_slot *s = ph_segment_slot(seg, r->slot);
    ph_ring_consumer c;
    if (ph_ring_consumer_init(&c, &s->status, ph_slot_status_data(seg, s), seg->status_ring) !=
        PH_OK)
        _exit(1);
    uint8_t *scratch = malloc(seg->status_ring / 2);
    struct dec_ctx d = {0};
    atomic_store(&r->cons_ready, 1);
    while (!atomic_load_explicit(&r->stop, memory_order_relaxed)) {
        if (atomic_load_explicit(&r->cmode, memory_order_relaxed) == C_POLL) {
            int n = ph_ring_drain(&c, on_status, &d, scratch, 0);
            if (n < 0) break;
            if (n == 0) bu_relax();
        } else if (atomic_load_explicit(&r->req, memory_order_acquire)) {
            int n;
            while ((n = ph_ring_drain(&c, on_status, &d, scratch, 0)) > 0) {
            }
            if (n < 0) break;
            atomic_store_explicit(&r->req, 0, memory_order_release);
        } else {
            bu_relax();
        }
    }
    ph_ring_drain(&c, on_status, &d, scratch, 0);
    r->consumed = d.n;
    r->decode_errors = d.bad;
    free(scratch);
    _exit(0);
}

static bool run_worker_cost(const struct opts *o, struct wres *r)
{
    char id[64], err[512];
    bu_swarm_id(id, sizeof id, "bench-ring");
    struct ph_segment seg;
    bool adopted;
    struct ph_segment_params params = {.slots = 4, .status_ring = o->small_ring};
    bu_cleanup_add_swarm(id);
    if (ph_segment_create(&seg, id, &params, &adopted, err, sizeof err) != PH_OK) {
        fprintf(stderr, "ph-bench-ring: %s\n", err);
        bu_cleanup_del_swarm(id);
        return false;
    }
    memset(r, 0, sizeof *r);
    r->tsc_per_ns = bu_tsc_per_ns();
    pid_t wk = fork();
    if (wk == 0) {
        bu_child_init();
        pin_to(g_cpu_prod);
        worker_child(r, id, &seg, o);
        _exit(r->error ? 1 : 0);
    }
    bu_cleanup_add_child(wk);
    pid_t cons = fork();
    if (cons == 0) {
        bu_child_init();
        pin_to(g_cpu_cons);
        worker_consumer(r, &seg);
    }
    bu_cleanup_add_child(cons);
    bool ok = bu_wait_child(wk);
    atomic_store(&r->stop, 1);
    bu_wait_child(cons);
    ph_segment_close(&seg);
    bu_cleanup_del_swarm(id);
    if (!ok) fprintf(stderr, "ph-bench-ring: worker-side measurement failed: %s\n", r->errmsg);
    return ok;
}

/* ---- cache-line round trip ------------------------------------------------ */

/* One-way latency of moving a cache line between the two CPUs: two processes
 * ping-pong a counter; context for every figure above. */
static double line_transfer_ns(void)
{
    struct pp {
        alignas(64) _Atomic uint64_t v;
        alignas(64) _Atomic int ready;
    } *p = bu_shared_alloc(sizeof *p);
    const uint64_t rounds = 200000;
    atomic_store(&p->v, 0);
    atomic_store(&p->ready, 0);
    pid_t c = fork();
    if (c == 0) {
        bu_child_init();
        pin_to(g_cpu_cons);
        atomic_store(&p->ready, 1);
        for (uint64_t i = 1; i < 2 * rounds; i += 2) {
            while (atomic_load_explicit(&p->v, memory_order_acquire) != i) bu_relax();
            atomic_store_explicit(&p->v, i + 1, memory_order_release);
        }
        _exit(0);
    }
    bu_cleanup_add_child(c);
    while (!atomic_load(&p->ready)) bu_relax();
    /* the parent plays the producer's CPU for the duration */
    cpu_set_t saved;
    sched_getaffinity(0, sizeof saved, &saved);
    pin_to(g_cpu_prod);
    uint64_t t0 = bu_now_ns();
    for (uint64_t i = 0; i < 2 * rounds; i += 2) {
        atomic_store_explicit(&p->v, i + 1, memory_order_release);
        while (atomic_load_explicit(&p->v, memory_order_acquire) != i + 2) bu_relax();
    }
    uint64_t t1 = bu_now_ns();
    sched_setaffinity(0, sizeof saved, &saved);
    bu_wait_child(c);
    munmap(p, sizeof *p);
    return (double)(t1 - t0) / (double)(2 * rounds);
}

/* ---- main ----------------------------------------------------------------- */


static void print_mrps(double v)
{
    if (isnan(v))
        printf("%9s", "n/a");
    else
        printf("%9.2f", v / 1e6);
}

int main(int argc, char **argv)
{
    struct opts o;
    int rc = parse_opts(argc, argv, &o);
    if (rc != 0) return rc;
    bu_cleanup_install();
    choose_cpus(&o);
    g_ctrl = bu_shared_alloc(sizeof *g_ctrl);
    const double load0 = bu_loadavg1();
    const double xfer = g_cpu_prod >= 0 ? line_transfer_ns() : NAN;

    /* Rows 6 and 7 repeat publish-each with 56-byte bodies, i.e. 64-byte records
     * that never share a cache line: the same run, interleaved, so the
     * layout effect is compared under the same noise. */
    struct conf cf[NCONF] = {
        {.mode = M_EACH, .ring = o.small_ring, .body = o.body},
        {.mode = M_EACH, .ring = o.big_ring, .body = o.body},
        {.mode = M_BATCH, .ring = o.small_ring, .body = o.body},
        {.mode = M_BATCH, .ring = o.big_ring, .body = o.body},
        {.mode = M_PLAIN, .ring = o.small_ring, .body = PH_REC_STATUS_SIZE},
        {.mode = M_PLAIN, .ring = o.big_ring, .body = PH_REC_STATUS_SIZE},
        {.mode = M_EACH, .ring = o.small_ring, .body = 56},
        {.mode = M_EACH, .ring = o.big_ring, .body = 56},
    };
    if (!o.skip_throughput) {
        for (int i = 0; i < NCONF; i++) cf[i].trials = calloc((size_t)o.repeat, sizeof(struct trial));
        for (int rep = 0; rep < o.repeat; rep++) {
            for (int i = 0; i < NCONF; i++) {
                struct trial *t = &cf[i].trials[cf[i].n++];
                if (cf[i].mode == M_PLAIN)
                    trial_plain(&o, cf[i].ring, t);
                else
                    trial_ph(&o, cf[i].mode, cf[i].ring, cf[i].body, t);
            }
        }
        for (int i = 0; i < NCONF; i++) {
            summarize(&cf[i]);
            free(cf[i].trials);
            cf[i].trials = NULL;
        }
    }

    struct wres *wr = bu_shared_alloc(sizeof *wr);
    bool wok = false;
    if (!o.skip_worker) wok = run_worker_cost(&o, wr);

    /* Headline figures: the best ring size of each kind. */
    int best_each = cf[0].rps >= cf[1].rps || isnan(cf[1].rps) ? 0 : 1;
    int best_batch = cf[2].rps >= cf[3].rps || isnan(cf[3].rps) ? 2 : 3;
    int best_plain = cf[4].rps >= cf[5].rps || isnan(cf[5].rps) ? 4 : 5;
    double rps = o.skip_throughput ? NAN : cf[best_each].rps;
    double rps_b = o.skip_throughput ? NAN : cf[best_batch].rps;
    double base = o.skip_throughput ? NAN : cf[best_plain].rps;
    const char *pinning = g_cpu_prod >= 0 ? "pinned" : "not pinned";

    if (o.json) {
        struct bu_json j;
        bu_json_begin(&j, stdout);
        bu_json_str(&j, "benchmark", "ph-bench-ring");
        bu_json_num(&j, "records_per_s", rps);
        bu_json_int(&j, "records_per_s_ring_bytes", o.skip_throughput ? 0 : cf[best_each].ring);
        bu_json_num(&j, "records_per_s_batched", rps_b);
        bu_json_int(&j, "records_per_s_batched_ring_bytes",
                    o.skip_throughput ? 0 : cf[best_batch].ring);
        bu_json_num(&j, "baseline_records_per_s", base);
        bu_json_int(&j, "baseline_ring_bytes", o.skip_throughput ? 0 : cf[best_plain].ring);
        bu_json_num(&j, "ratio_vs_baseline", rps / base);
        bu_json_num(&j, "batched_ratio_vs_baseline", rps_b / base);
        bu_json_num(&j, "write_ns_p50", wok ? wr->quiet_p50 : NAN);
        bu_json_num(&j, "write_ns_p90", wok ? wr->quiet_p90 : NAN);
        bu_json_num(&j, "write_ns_p99", wok ? wr->quiet_p99 : NAN);
        bu_json_num(&j, "write_contended_ns_p50", wok ? wr->poll_p50 : NAN);
        bu_json_num(&j, "write_contended_ns_p90", wok ? wr->poll_p90 : NAN);
        bu_json_num(&j, "write_contended_ns_p99", wok ? wr->poll_p99 : NAN);
        bu_json_num(&j, "write_local_ns_p50", wok ? wr->local_p50 : NAN);
        bu_json_num(&j, "write_local_ns_p99", wok ? wr->local_p99 : NAN);
        bu_json_num(&j, "write_single_ns_mean", wok ? wr->single_mean : NAN);
        bu_json_num(&j, "write_single_tsc_ns_mean", wok ? wr->tsc_mean : NAN);
        bu_json_num(&j, "write_single_ns_p50", wok ? wr->single_p50 : NAN);
        bu_json_num(&j, "write_single_ns_p90", wok ? wr->single_p90 : NAN);
        bu_json_num(&j, "write_single_ns_p99", wok ? wr->single_p99 : NAN);
        bu_json_num(&j, "write_single_tsc_ns_p50", wok ? wr->tsc_p50 : NAN);
        bu_json_num(&j, "write_single_tsc_ns_p99", wok ? wr->tsc_p99 : NAN);
        bu_json_num(&j, "clock_overhead_ns", wok ? wr->clock_overhead : NAN);
        bu_json_num(&j, "clock_step_ns", wok ? wr->clock_step : NAN);
        bu_json_num(&j, "tsc_step_ns", wok ? wr->tsc_step : NAN);
        bu_json_num(&j, "line_transfer_ns", xfer);
        bu_json_bool(&j, "machine_busy", load0 > 1.5 || (!isnan(xfer) && xfer > 1000));
        bu_json_num(&j, "tick_ns_p50", wok ? wr->tick_p50 : NAN);
        bu_json_num(&j, "tick_ns_p99", wok ? wr->tick_p99 : NAN);
        bu_json_num(&j, "count_ns_p50", wok ? wr->count_p50 : NAN);
        bu_json_num(&j, "tick_full_ring_ns_p50", wok ? wr->tick_full_p50 : NAN);
        bu_json_num(&j, "tick_full_ring_ns_p99", wok ? wr->tick_full_p99 : NAN);
        bu_json_num(&j, "tick_full_ring_overflows_per_item", wok ? wr->full_overflows_per_item : NAN);
        bu_json_int(&j, "write_drops", wok ? (int64_t)wr->drops : -1);
        bu_json_obj(&j, "configs");
        for (int i = 0; i < NCONF && !o.skip_throughput; i++) {
            char key[64];
            snprintf(key, sizeof key, "%s_%u%s", mode_names[cf[i].mode], cf[i].ring,
                     i >= 6 ? "_64B_records" : "");
            bu_json_obj(&j, key);
            bu_json_num(&j, "records_per_s", cf[i].rps);
            bu_json_num(&j, "records_per_s_min", cf[i].rps_min);
            bu_json_num(&j, "records_per_s_max", cf[i].rps_max);
            bu_json_num(&j, "retries", cf[i].retries);
            bu_json_num(&j, "ring_overflows_counted", cf[i].overflows);
            bu_json_num(&j, "sequence_errors", cf[i].bad);
            bu_json_num(&j, "records_per_drain", cf[i].per_drain);
            bu_json_close(&j);
        }
        bu_json_close(&j);
        bu_json_obj(&j, "params");
        bu_json_num(&j, "seconds", o.seconds);
        bu_json_int(&j, "repeat", o.repeat);
        bu_json_int(&j, "batch", o.batch);
        bu_json_int(&j, "small_ring", o.small_ring);
        bu_json_int(&j, "big_ring", o.big_ring);
        bu_json_int(&j, "body", o.body);
        bu_json_int(&j, "record_bytes_in_ring", (o.body + PH_RING_HDR + 7) & ~7u);
        bu_json_int(&j, "write_batches", o.write_batches);
        bu_json_int(&j, "write_batch", o.write_batch);
        bu_json_int(&j, "single_calls", o.single_calls);
        bu_json_int(&j, "tick_batches", o.tick_batches);
        bu_json_bool(&j, "pinned", g_cpu_prod >= 0);
        bu_json_int(&j, "producer_cpu", g_cpu_prod);
        bu_json_int(&j, "consumer_cpu", g_cpu_cons);
        bu_json_num(&j, "loadavg1_at_start", load0);
        bu_json_num(&j, "tsc_per_ns", bu_tsc_per_ns());
        bu_json_close(&j);
        bu_json_end(&j);
        return 0;
    }

    printf("ph-bench-ring: %s", pinning);
    if (g_cpu_prod >= 0) printf(" (producer cpu %d, consumer cpu %d)", g_cpu_prod, g_cpu_cons);
    printf(", record body %u bytes (%u in the ring), load average %.2f at start\n", o.body,
           (o.body + PH_RING_HDR + 7) & ~7u, load0);
    if (!isnan(xfer))
        printf("cache line transfer between the two CPUs: %.0f ns one way (ping-pong)\n", xfer);
    if (load0 > 1.5 || (!isnan(xfer) && xfer > 1000))
        printf("WARNING: the machine is busy (load %.2f%s): these figures are not representative\n",
               load0, !isnan(xfer) && xfer > 1000 ? ", the two CPUs are time-sliced" : "");
    if (!o.skip_throughput) {
        printf("\nthroughput, one producer process -> one consumer process, median of %d trials "
               "x %.2f s\n", o.repeat, o.seconds);
        printf("  %-16s %9s %9s %9s %9s %12s %12s %9s\n", "mode", "ring", "Mrec/s", "min", "max",
               "retries", "rec/drain", "seq.err");
        for (int i = 0; i < NCONF; i++) {
            char ring[32];
            if (cf[i].ring >= (1u << 20))
                snprintf(ring, sizeof ring, "%uM", cf[i].ring >> 20);
            else
                snprintf(ring, sizeof ring, "%uK", cf[i].ring >> 10);
            char name[32];
            if (cf[i].mode == M_BATCH)
                snprintf(name, sizeof name, "batched/%u", o.batch);
            else if (i >= 6)
                snprintf(name, sizeof name, "publish-each/64B");
            else
                snprintf(name, sizeof name, "%s", mode_names[cf[i].mode]);
            printf("  %-16s %9s ", name, ring);
            print_mrps(cf[i].rps);
            printf(" ");
            print_mrps(cf[i].rps_min);
            printf(" ");
            print_mrps(cf[i].rps_max);
            printf(" %12.0f %12.1f %9.0f\n", cf[i].retries, cf[i].per_drain, cf[i].bad);
        }
        printf("\n  publish-each best  %.2f M records/s (target >= 10)\n", rps / 1e6);
        printf("  batched best       %.2f M records/s\n", rps_b / 1e6);
        printf("  plain baseline     %.2f M records/s\n", base / 1e6);
        printf("  ratio publish-each / baseline  %.2f   batched / baseline  %.2f\n", rps / base,
               rps_b / base);
        printf("  (retries: failed claims on a full ring, retried; libph counts each one in "
               "the ring's overflows)\n");
    }
    if (!o.skip_worker && wok) {
        printf("\nworker-side cost, ph_worker_publish_status() (ring %u bytes, consumer "
               "draining in another process)\n", o.small_ring);
        printf("  batch of %u calls / %u, consumer drains between batches\n"
               "                                p50 %6.1f  p90 %6.1f  p99 %6.1f  mean %6.1f ns "
               "(target median <= 50)\n", o.write_batch, o.write_batch, wr->quiet_p50,
               wr->quiet_p90, wr->quiet_p99, wr->quiet_mean);
        printf("  batch of %u calls / %u, consumer polling the ring all along (contended)\n"
               "                                p50 %6.1f  p90 %6.1f  p99 %6.1f  mean %6.1f ns\n",
               o.write_batch, o.write_batch, wr->poll_p50, wr->poll_p90, wr->poll_p99,
               wr->poll_mean);
        printf("  batch of %u calls / %u, ring drained by the same process (no line leaves "
               "the CPU)\n"
               "                                p50 %6.1f  p90 %6.1f  p99 %6.1f  mean %6.1f ns\n",
               o.write_batch, o.write_batch, wr->local_p50, wr->local_p90, wr->local_p99,
               wr->local_mean);
        printf("  single call, CLOCK_MONOTONIC  p50 %6.1f  p90 %6.1f  p99 %6.1f  mean %6.1f ns\n"
               "                                (minus %.1f ns clock pair; clock step %.0f ns)\n",
               wr->single_p50, wr->single_p90, wr->single_p99,
               wr->single_mean, wr->clock_overhead, wr->clock_step);
        printf("  single call, TSC              p50 %6.1f  p90 %6.1f  p99 %6.1f  mean %6.1f ns\n"
               "                                (minus %.1f ns TSC pair; TSC step %.0f ns)\n",
               wr->tsc_p50, wr->tsc_p90, wr->tsc_p99, wr->tsc_mean, wr->tsc_overhead,
               wr->tsc_step);
        printf("  single-call percentiles move in clock steps; the means (of the values up to "
               "p99)\n  average the steps out\n");
        printf("  count+tick per item           p50 %6.2f  p90 %6.2f  p99 %6.2f ns; count alone "
               "p50 %.2f ns\n", wr->tick_p50, wr->tick_p90, wr->tick_p99, wr->count_p50);
        printf("  count+tick, ring full + config pending  p50 %6.2f  p99 %6.2f ns; overflows "
               "counted per item %.2f\n", wr->tick_full_p50, wr->tick_full_p99,
               wr->full_overflows_per_item);
        printf("  %llu calls, %llu dropped (ring full), consumer decoded %llu, %llu invalid\n",
               (unsigned long long)wr->calls, (unsigned long long)wr->drops,
               (unsigned long long)wr->consumed, (unsigned long long)wr->decode_errors);
    }
    return 0;
}
