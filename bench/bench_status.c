/* ph-bench-status: the cost of the controller's status documents, built by
 * the controller's own code (library ph_ctl) and rendered to JSON by the
 * bridge's own code (library ph_bridge). See usage() for the method. */
#include <getopt.h>
#include <stdatomic.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <msgpack.h>

#include "bench_util.h"
#include "ctl.h"
#include "envelope.h"
#include "ph/channel.h"
#include "ph/log.h"
#include "ph/record.h"
#include "ph/ring.h"
#include "ph/shm.h"
#include "swarm.h"

#define MAX_SIZES 4

struct opts {
    uint32_t sizes[MAX_SIZES]; /* worker counts; sizes[0] is the headline */
    int nsizes;
    int repeat;        /* status-full runs per size (after two warm-ups) */
    int iterations;    /* status-delta and worker status-full runs per size */
    const char *dump;  /* write the rendered status-full line here */
    bool json;
};

static void usage(FILE *f)
{
    fprintf(f,
        "usage: ph-bench-status [options]\n"
        "\n"
        "Builds the swarm controller's status documents with the controller's code\n"
        "(actors/swarm-controller, library ph_ctl) and renders them to the JSON envelope\n"
        "with the bridge's code (bridge/envelope.c, library ph_bridge), in one process.\n"
        "\n"
        "Set-up, per swarm size N: a segment of N slots (ph_segment_create, default\n"
        "rings); N slots claimed with ph_slot_claim under fake identities (this process's\n"
        "pid, role one of generator/moderator/processor/postprocessor in turn, instance\n"
        "<role>-<n>); into each slot's status ring one STATUS record (enabled, ioState\n"
        "ok/ok, every 16th input backpressure; 100..1099 items reported one second after\n"
        "the claim, so every worker has a tps), a CONFIG record (4 keys) and an IO record\n"
        "(work queues in/out), as a worker publishes them.\n"
        "ctl_init (pidfds off) and one ctl_scan track and drain every slot; swarm_init\n"
        "with an emitter that copies each packed document into a buffer (the real\n"
        "controller copies it into the bridge ring: the same memcpy); desired roles N/4\n"
        "each, swarm RUNNING, a journal run id; the aggregate from swarm_aggregate.\n"
        "\n"
        "Timed, CLOCK_MONOTONIC around each step:\n"
        "  controller status-full, median of --repeat runs after two warm-up runs\n"
        "  (the second run of a process still pays a one-time cost, about 15 ms at\n"
        "  10,000 workers here, that a bridge pays once in its life):\n"
        "    build   swarm_emit_controller_full(): msgpack document of the aggregate and\n"
        "            the sorted list of N workers, copied out by the emitter\n"
        "    convert envelope_from_doc(): the bridge's well-formedness walk, msgpack\n"
        "            decode, conversion to jansson, shape check, contract check of the\n"
        "            envelope (every worker entry) and routing key\n"
        "    dump    the file sink's line {\"routingKey\": ..., \"envelope\": ...} serialised\n"
        "            as bridge/sink_file.c does it: json_dump_callback (the serialiser of\n"
        "            json_dumps, JSON_COMPACT|JSON_PRESERVE_ORDER) into a reused buffer\n"
        "    free    json_decref of the line and envelope_clear(): the bridge releases the\n"
        "            envelope tree after publishing it\n"
        "    total   build + convert + dump (median of the per-run totals; the target's\n"
        "            \"built and rendered to JSON\"), and total + free\n"
        "  controller status-delta, median (and p99) over --iterations: the same four\n"
        "    steps for swarm_emit_controller_delta() (aggregate, per-role summary; no\n"
        "    worker list)\n"
        "  worker status-full, likewise for swarm_emit_worker_full() of one worker\n"
        "  aggregate: swarm_aggregate() over the N slots (what every controller tick\n"
        "    computes before deciding to emit), median over --iterations\n"
        "Sizes: bytes of the msgpack document, of the envelope JSON and of the line.\n"
        "\n"
        "options:\n"
        "  --workers N[,N...]  swarm sizes, up to %d (default 10000,1000); the first is\n"
        "                      the headline\n"
        "  --repeat N          status-full runs per size after the warm-up (default 7, >= 1)\n"
        "  --iterations N      status-delta / worker-full / aggregate runs (default 2000)\n"
        "  --dump PATH         write the rendered status-full line of the first size to PATH\n"
        "  --json              one JSON object instead of the table\n"
        "  --help              this text\n"
        "\n"
        "Figures only, nothing is asserted. Targets (issue 3): status-full of 10,000\n"
        "workers built and rendered to JSON in <= 50 ms; status-delta render <= 50 us.\n"
        "Segments are /dev/shm/ph.bench-status-<pid>-<n>, removed at exit and on\n"
        "SIGINT/SIGTERM. Claiming 10,000 slots takes about a second (each claim scans\n"
        "the slot table).\n",
        MAX_SIZES);
}

static bool parse_sizes(const char *s, struct opts *o)
{
    o->nsizes = 0;
    char buf[128];
    snprintf(buf, sizeof buf, "%s", s);
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        uint64_t v;
        if (o->nsizes == MAX_SIZES || !bu_parse_size(tok, &v) || v < 4 || v > PH_MAX_SLOTS)
            return false;
        o->sizes[o->nsizes++] = (uint32_t)v;
    }
    return o->nsizes > 0;
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
    *o = (struct opts){.sizes = {10000, 1000}, .nsizes = 2, .repeat = 7, .iterations = 2000};
    static const struct option longs[] = {
        {"workers", required_argument, NULL, 'n'}, {"repeat", required_argument, NULL, 'r'},
        {"iterations", required_argument, NULL, 'i'}, {"dump", required_argument, NULL, 'd'},
        {"json", no_argument, NULL, 'j'},          {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    int ch;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        uint64_t v = 0;
        bool ok = true;
        switch (ch) {
        case 'n': ok = parse_sizes(optarg, o); break;
        case 'r': ok = bu_parse_size(optarg, &v) && v >= 1 && v <= 1000; o->repeat = (int)v; break;
        case 'i': ok = bu_parse_size(optarg, &v) && v >= 1 && v <= 10000000; o->iterations = (int)v; break;
        case 'd': o->dump = optarg; break;
        case 'j': o->json = true; break;
        case 'h': usage(stdout); exit(0);
        default: return bu_usage_error("unknown option '%s'", argv[optind - 1]);
        }
        if (!ok) return bu_bad_value(argv);
    }
    if (optind < argc) return bu_usage_error("unexpected argument '%s'", argv[optind]);
    return 0;
}

/* ---- the emitter: keeps the last packed document ------------------------- */

struct capture {
    char *data;
    size_t len, cap;
    uint64_t docs;
};

static bool capture_emit(void *ctx, const char *data, size_t len, bool reliable, uint64_t seq)
{
    (void)reliable;
    (void)seq;
    struct capture *c = ctx;
    if (len > c->cap) {
        size_t cap = c->cap ? c->cap : 4096;
        while (cap < len) cap *= 2;
        char *n = realloc(c->data, cap);
        if (n == NULL) return false;
        c->data = n;
        c->cap = cap;
    }
    memcpy(c->data, data, len);
    c->len = len;
    c->docs++;
    return true;
}

/* ---- set-up ----------------------------------------------------------------- */

static const char *const g_roles[4] = {"generator", "moderator", "processor", "postprocessor"};

struct world {
    char id[64];
    struct ph_segment seg;
    struct ctl ctl;
    struct swarm sw;
    struct capture cap;
    struct swarm_agg agg;
    uint64_t now;
    uint32_t n;
    double claim_s; /* time to claim the N slots */
    bool ok;
};

static void on_joined(void *ctx, struct ctl *c, struct ctl_worker *w)
{
    (void)c;
    struct world *wd = ctx;
    swarm_on_joined(&wd->sw, w, true, wd->now);
}

static void pack_cstr(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str(pk, strlen(s));
    msgpack_pack_str_body(pk, s, strlen(s));
}

/* What a worker publishes when it attaches: status, config, io. */
static void publish_worker(struct ph_segment *seg, uint32_t idx, uint32_t n, const char *role)
{
    struct ph_slot *s = ph_segment_slot(seg, idx);
    ph_ring_producer p;
    if (ph_ring_producer_init(&p, &s->status, ph_slot_status_data(seg, s), seg->status_ring) !=
        PH_OK) {
        fprintf(stderr, "ph-bench-status: slot %u: status ring positions inconsistent\n", idx);
        exit(1);
    }
    /* A report one second after the claim with 100..1099 items: tps is the
     * item count (the first sample of a worker's window is its claim). */
    const uint64_t claimed = atomic_load_explicit(&s->claimed_mono_ns, memory_order_relaxed);
    struct ph_rec_status st = {.mono_ns = claimed + 1000000000ull,
                               .processed = 100 + (uint64_t)(n * 7919u) % 1000,
                               .seq = 1,
                               .flags = PH_STATUS_ENABLED,
                               .io_in = n % 16 == 5 ? PH_IN_BACKPRESSURE : PH_IN_OK,
                               .io_out = PH_OUT_OK};
    ph_ring_write(&p, PH_REC_STATUS, &st, sizeof st);

    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 4);
    pack_cstr(&pk, "enabled");
    msgpack_pack_true(&pk);
    pack_cstr(&pk, "ratePerSec");
    msgpack_pack_uint32(&pk, 100);
    pack_cstr(&pk, "mode");
    pack_cstr(&pk, "steady");
    pack_cstr(&pk, "batchSize");
    msgpack_pack_uint32(&pk, 16);
    ph_ring_write(&p, PH_REC_CONFIG, sb.data, (uint32_t)sb.size);
    msgpack_sbuffer_clear(&sb);
    char qin[96], qout[96];
    snprintf(qin, sizeof qin, "ph.work.bench.%s.in", role);
    snprintf(qout, sizeof qout, "ph.work.bench.%s.out", role);
    msgpack_pack_map(&pk, 1);
    pack_cstr(&pk, "work");
    msgpack_pack_map(&pk, 1);
    pack_cstr(&pk, "queues");
    msgpack_pack_map(&pk, 2);
    pack_cstr(&pk, "in");
    msgpack_pack_array(&pk, 1);
    pack_cstr(&pk, qin);
    pack_cstr(&pk, "out");
    msgpack_pack_array(&pk, 1);
    pack_cstr(&pk, qout);
    ph_ring_write(&p, PH_REC_IO, sb.data, (uint32_t)sb.size);
    msgpack_sbuffer_destroy(&sb);
}

static void world_open(struct world *wd, uint32_t n)
{
    memset(wd, 0, sizeof *wd);
    wd->n = n;
    char err[512];
    bu_swarm_id(wd->id, sizeof wd->id, "bench-status");
    bu_cleanup_add_swarm(wd->id);
    struct ph_segment_params params = {.slots = n};
    bool adopted;
    if (ph_segment_create(&wd->seg, wd->id, &params, &adopted, err, sizeof err) != PH_OK) {
        fprintf(stderr, "ph-bench-status: %s\n", err);
        bu_cleanup_del_swarm(wd->id);
        return;
    }
    uint64_t start = 0;
    ph_proc_start_time(getpid(), &start);
    const uint64_t t0 = bu_now_ns();
    uint32_t per_role[4] = {0};
    for (uint32_t i = 0; i < n; i++) {
        const uint32_t r = i % 4;
        char inst[PH_ID_MAX];
        snprintf(inst, sizeof inst, "%s-%u", g_roles[r], ++per_role[r]);
        uint32_t idx;
        if (ph_slot_claim(&wd->seg, g_roles[r], inst, getpid(), start, &idx, NULL, err,
                          sizeof err) != PH_OK) {
            fprintf(stderr, "ph-bench-status: claim %u: %s\n", i, err);
            return;
        }
        publish_worker(&wd->seg, idx, i, g_roles[r]);
    }
    wd->claim_s = (double)(bu_now_ns() - t0) / 1e9;

    wd->now = ph_mono_ns();
    const struct ctl_hooks hooks = {.ctx = wd, .joined = on_joined};
    if (ctl_init(&wd->ctl, &wd->seg, &hooks) != PH_OK) return;
    wd->ctl.use_pidfd = false; /* one process owns every slot; liveness is not measured */
    struct swarm_cfg cfg;
    swarm_cfg_defaults(&cfg);
    snprintf(cfg.swarm_id, sizeof cfg.swarm_id, "%s", wd->id);
    snprintf(cfg.instance, sizeof cfg.instance, "%.40s-controller", wd->id);
    snprintf(cfg.run_id, sizeof cfg.run_id, "%.60s-20260101T000000Z", wd->id);
    const struct swarm_emitter em = {.ctx = &wd->cap, .emit = capture_emit};
    if (swarm_init(&wd->sw, &wd->ctl, &cfg, &em, wd->now) != PH_OK) return;
    struct swarm_role roles[4];
    for (int r = 0; r < 4; r++) {
        snprintf(roles[r].role, sizeof roles[r].role, "%s", g_roles[r]);
        roles[r].count = n / 4 + ((uint32_t)r < n % 4);
    }
    swarm_set_roles(&wd->sw, roles, 4);
    /* The controller drains "after" the reports (1 s after each claim). */
    wd->now = ph_mono_ns() + 1100 * 1000000ull;
    ctl_scan(&wd->ctl, wd->now);
    if (wd->ctl.live != n) {
        fprintf(stderr, "ph-bench-status: the controller tracks %u of %u workers\n", wd->ctl.live,
                n);
        return;
    }
    wd->sw.status = SW_RUNNING;
    wd->sw.workloads_enabled = true;
    swarm_aggregate(&wd->sw, wd->now, &wd->agg);
    wd->ok = true;
}

static void world_close(struct world *wd)
{
    if (wd->sw.ws != NULL) swarm_destroy(&wd->sw);
    if (wd->ctl.w != NULL) ctl_destroy(&wd->ctl);
    if (wd->seg.base != NULL) ph_segment_close(&wd->seg);
    free(wd->cap.data);
    bu_cleanup_del_swarm(wd->id);
}

/* ---- one document: build, convert, dump ---------------------------------- */

enum doc_kind { K_FULL, K_DELTA, K_WORKER };

struct one {
    double build_us, convert_us, dump_us, free_us, total_us, all_us;
    size_t mp_bytes, env_bytes, line_bytes;
    bool ok;
    char why[512];
};

/* The file sink's batch buffer (bridge/sink_file.c): lines are serialised
 * into one buffer that is reused from batch to batch. */
struct linebuf {
    char *data;
    size_t len, cap;
};
static struct linebuf g_lb;

static int lb_append(const char *d, size_t n, void *ctx)
{
    struct linebuf *b = ctx;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 64 * 1024;
        while (cap < b->len + n) cap *= 2;
        char *x = realloc(b->data, cap);
        if (x == NULL) return -1;
        b->data = x;
        b->cap = cap;
    }
    memcpy(b->data + b->len, d, n);
    b->len += n;
    return 0;
}

/* Returns the rendered line in *line (caller frees) when line != NULL. */
static void run_one(struct world *wd, enum doc_kind k, struct one *r, char **line)
{
    memset(r, 0, sizeof *r);
    g_lb.len = 0;
    const uint64_t t0 = bu_now_ns();
    bool built = false;
    switch (k) {
    case K_FULL: built = swarm_emit_controller_full(&wd->sw, &wd->agg, NULL, wd->now); break;
    case K_DELTA: built = swarm_emit_controller_delta(&wd->sw, &wd->agg, wd->now); break;
    case K_WORKER:
        built = swarm_emit_worker_full(&wd->sw, &wd->ctl.w[wd->n / 2], NULL, wd->now);
        break;
    }
    const uint64_t t1 = bu_now_ns();
    if (!built) {
        snprintf(r->why, sizeof r->why, "the emitter refused the document (out of memory)");
        return;
    }
    struct envelope e;
    int rc = envelope_from_doc((const uint8_t *)wd->cap.data, wd->cap.len, ph_real_ns(), &e,
                               r->why, sizeof r->why);
    const uint64_t t2 = bu_now_ns();
    if (rc != PH_OK) return;
    /* The file sink's line, serialised as file_publish() does it
     * (envelope_write_line), into the reused batch buffer. */
    rc = envelope_write_line(e.rk, e.env, e.text, lb_append, &g_lb);
    if (rc == 0) rc = lb_append("\n", 1, &g_lb);
    const uint64_t t3 = bu_now_ns();
    /* What the bridge then releases: the envelope. */
    const size_t rklen = strlen(e.rk);
    envelope_clear(&e);
    const uint64_t t4 = bu_now_ns();
    if (rc != 0) {
        snprintf(r->why, sizeof r->why, "serialising the line failed (out of memory)");
        return;
    }
    r->build_us = (double)(t1 - t0) / 1e3;
    r->convert_us = (double)(t2 - t1) / 1e3;
    r->dump_us = (double)(t3 - t2) / 1e3;
    r->free_us = (double)(t4 - t3) / 1e3;
    r->total_us = (double)(t3 - t0) / 1e3;
    r->all_us = (double)(t4 - t0) / 1e3;
    r->mp_bytes = wd->cap.len;
    r->line_bytes = g_lb.len - 1; /* without the newline */
    /* The envelope alone: the line minus {"routingKey":"<rk>","envelope":...}. */
    r->env_bytes = r->line_bytes - (strlen("{\"routingKey\":\"\",\"envelope\":}") + rklen);
    r->ok = true;
    if (line != NULL) {
        *line = malloc(g_lb.len + 1);
        if (*line != NULL) {
            memcpy(*line, g_lb.data, g_lb.len);
            (*line)[g_lb.len] = '\0';
        }
    }
}

struct stat4 {
    double build, convert, dump, free, total, all; /* medians, us */
    double total_p99, total_min;
    size_t mp_bytes, env_bytes, line_bytes;
    int runs;
    bool ok;
    char why[512];
};

static void measure(struct world *wd, enum doc_kind k, int runs, struct stat4 *s, bool warmup,
                    char **line)
{
    memset(s, 0, sizeof *s);
    double *b = calloc((size_t)runs, sizeof *b), *c = calloc((size_t)runs, sizeof *c),
           *d = calloc((size_t)runs, sizeof *d), *fr = calloc((size_t)runs, sizeof *fr),
           *t = calloc((size_t)runs, sizeof *t), *al = calloc((size_t)runs, sizeof *al);
    struct one r;
    if (warmup) {
        /* Two: the second still pays one-time costs (see --help). */
        run_one(wd, k, &r, NULL);
        if (!r.ok) {
            snprintf(s->why, sizeof s->why, "%s", r.why);
            goto out;
        }
        run_one(wd, k, &r, line);
        if (!r.ok) {
            snprintf(s->why, sizeof s->why, "%s", r.why);
            goto out;
        }
    }
    for (int i = 0; i < runs; i++) {
        run_one(wd, k, &r, NULL);
        if (!r.ok) {
            snprintf(s->why, sizeof s->why, "%s", r.why);
            goto out;
        }
        b[i] = r.build_us;
        c[i] = r.convert_us;
        d[i] = r.dump_us;
        fr[i] = r.free_us;
        t[i] = r.total_us;
        al[i] = r.all_us;
    }
    s->build = bu_median(b, (size_t)runs);
    s->convert = bu_median(c, (size_t)runs);
    s->dump = bu_median(d, (size_t)runs);
    s->free = bu_median(fr, (size_t)runs);
    s->total = bu_median(t, (size_t)runs);
    s->all = bu_median(al, (size_t)runs);
    s->total_p99 = bu_percentile(t, (size_t)runs, 99);
    s->total_min = t[0]; /* sorted by the percentile */
    s->mp_bytes = r.mp_bytes;
    s->env_bytes = r.env_bytes;
    s->line_bytes = r.line_bytes;
    s->runs = runs;
    s->ok = true;
out:
    free(b);
    free(c);
    free(d);
    free(fr);
    free(t);
    free(al);
}

struct size_res {
    uint32_t n;
    bool ok;
    double claim_s;
    double agg_us;
    struct stat4 full, delta, worker;
    size_t chan_max_doc; /* largest document the controller-bridge channel takes */
};

static void run_size(const struct opts *o, uint32_t n, bool dump, struct size_res *res)
{
    memset(res, 0, sizeof *res);
    res->n = n;
    struct world *wd = calloc(1, sizeof *wd);
    world_open(wd, n);
    if (!wd->ok) {
        world_close(wd);
        free(wd);
        return;
    }
    res->claim_s = wd->claim_s;
    char *line = NULL;
    measure(wd, K_FULL, o->repeat, &res->full, true, dump ? &line : NULL);
    measure(wd, K_DELTA, o->iterations, &res->delta, true, NULL);
    measure(wd, K_WORKER, o->iterations, &res->worker, true, NULL);
    double *v = calloc((size_t)o->iterations, sizeof *v);
    struct swarm_agg a;
    for (int i = 0; i < o->iterations; i++) {
        const uint64_t t0 = bu_now_ns();
        swarm_aggregate(&wd->sw, wd->now, &a);
        v[i] = (double)(bu_now_ns() - t0) / 1e3 + (double)(a.live & 0);
    }
    res->agg_us = bu_median(v, (size_t)o->iterations);
    free(v);
    res->chan_max_doc = PH_CHAN_DEFAULT_OUT_RING / 2 - PH_RING_HDR;
    if (line != NULL) {
        FILE *f = fopen(o->dump, "w");
        if (f == NULL || fputs(line, f) < 0 || fputc('\n', f) < 0)
            fprintf(stderr, "ph-bench-status: cannot write %s\n", o->dump);
        if (f) fclose(f);
        free(line);
    }
    res->ok = true;
    world_close(wd);
    free(wd);
}

/* ---- main ----------------------------------------------------------------- */

static void json_stat(struct bu_json *j, const char *key, const struct stat4 *s, bool ms)
{
    const double k = ms ? 1e-3 : 1.0;
    bu_json_obj(j, key);
    bu_json_bool(j, "ok", s->ok);
    if (!s->ok) {
        bu_json_str(j, "error", s->why);
        bu_json_close(j);
        return;
    }
    const char *u = ms ? "ms" : "us";
    char name[32];
    snprintf(name, sizeof name, "build_%s", u);
    bu_json_num(j, name, s->build * k);
    snprintf(name, sizeof name, "convert_%s", u);
    bu_json_num(j, name, s->convert * k);
    snprintf(name, sizeof name, "dump_%s", u);
    bu_json_num(j, name, s->dump * k);
    snprintf(name, sizeof name, "free_%s", u);
    bu_json_num(j, name, s->free * k);
    snprintf(name, sizeof name, "total_%s", u);
    bu_json_num(j, name, s->total * k);
    snprintf(name, sizeof name, "total_incl_free_%s", u);
    bu_json_num(j, name, s->all * k);
    snprintf(name, sizeof name, "total_%s_p99", u);
    bu_json_num(j, name, s->total_p99 * k);
    snprintf(name, sizeof name, "total_%s_min", u);
    bu_json_num(j, name, s->total_min * k);
    bu_json_int(j, "msgpack_bytes", (int64_t)s->mp_bytes);
    bu_json_int(j, "envelope_json_bytes", (int64_t)s->env_bytes);
    bu_json_int(j, "line_bytes", (int64_t)s->line_bytes);
    bu_json_int(j, "runs", s->runs);
    bu_json_close(j);
}

static void print_row(const char *what, const struct stat4 *s, bool ms)
{
    if (!s->ok) {
        printf("  %-23s failed: %s\n", what, s->why);
        return;
    }
    const double k = ms ? 1e-3 : 1.0;
    const char *u = ms ? "ms" : "us";
    printf("  %-23s %8.3f %8.3f %8.3f %8.3f %8.3f %8.3f %8.3f %s %9zu %9zu %5d\n", what,
           s->build * k, s->convert * k, s->dump * k, s->total * k, s->total_p99 * k,
           s->free * k, s->all * k, u, s->mp_bytes, s->env_bytes, s->runs);
}

int main(int argc, char **argv)
{
    struct opts o;
    int rc = parse_opts(argc, argv, &o);
    if (rc != 0) return rc;
    bu_cleanup_install();
    ph_log_init("ph-bench-status", NULL);
    /* The controller code logs every join at info level: not part of the figures. */
    ph_log_set_level(PH_LOG_WARN);
    double load0 = NAN;
    FILE *lf = fopen("/proc/loadavg", "r");
    if (lf != NULL) {
        if (fscanf(lf, "%lf", &load0) != 1) load0 = NAN;
        fclose(lf);
    }
    struct size_res res[MAX_SIZES];
    for (int i = 0; i < o.nsizes; i++) run_size(&o, o.sizes[i], i == 0 && o.dump, &res[i]);
    double load1 = NAN;
    lf = fopen("/proc/loadavg", "r");
    if (lf != NULL) {
        if (fscanf(lf, "%lf", &load1) != 1) load1 = NAN;
        fclose(lf);
    }
    const struct size_res *h = &res[0];

    if (o.json) {
        struct bu_json j;
        bu_json_begin(&j, stdout);
        bu_json_str(&j, "benchmark", "ph-bench-status");
        bu_json_int(&j, "workers", h->n);
        bu_json_num(&j, "full_total_ms", h->ok && h->full.ok ? h->full.total / 1e3 : NAN);
        bu_json_num(&j, "full_total_incl_free_ms", h->ok && h->full.ok ? h->full.all / 1e3 : NAN);
        bu_json_num(&j, "full_msgpack_bytes", h->ok && h->full.ok ? (double)h->full.mp_bytes : NAN);
        bu_json_num(&j, "full_json_bytes", h->ok && h->full.ok ? (double)h->full.env_bytes : NAN);
        bu_json_num(&j, "delta_total_us", h->ok && h->delta.ok ? h->delta.total : NAN);
        bu_json_num(&j, "worker_full_total_us", h->ok && h->worker.ok ? h->worker.total : NAN);
        for (int i = 0; i < o.nsizes; i++) {
            const struct size_res *r = &res[i];
            char key[32];
            snprintf(key, sizeof key, "n%u", r->n);
            bu_json_obj(&j, key);
            bu_json_bool(&j, "ok", r->ok);
            if (r->ok) {
                bu_json_num(&j, "claim_s", r->claim_s);
                json_stat(&j, "controller_full", &r->full, true);
                json_stat(&j, "controller_delta", &r->delta, false);
                json_stat(&j, "worker_full", &r->worker, false);
                bu_json_num(&j, "aggregate_us", r->agg_us);
                bu_json_bool(&j, "full_fits_channel", r->full.mp_bytes <= r->chan_max_doc);
            }
            bu_json_close(&j);
        }
        bu_json_obj(&j, "params");
        bu_json_int(&j, "repeat", o.repeat);
        bu_json_int(&j, "iterations", o.iterations);
        bu_json_int(&j, "channel_max_document_bytes", PH_CHAN_DEFAULT_OUT_RING / 2 - PH_RING_HDR);
        bu_json_num(&j, "loadavg1_at_start", load0);
        bu_json_num(&j, "loadavg1_at_end", load1);
        bu_json_bool(&j, "machine_busy", load0 > 1.5 || load1 > 1.5);
        bu_json_close(&j);
        bu_json_end(&j);
        return 0;
    }

    printf("ph-bench-status: controller status documents (ph_ctl) rendered by the bridge "
           "(ph_bridge); load average %.2f at start, %.2f at end\n", load0, load1);
    if (load0 > 1.5 || load1 > 1.5)
        printf("WARNING: the machine is busy: these figures are not representative\n");
    for (int i = 0; i < o.nsizes; i++) {
        const struct size_res *r = &res[i];
        printf("\n%u workers", r->n);
        if (!r->ok) {
            printf(": set-up failed\n");
            continue;
        }
        printf(" (claimed in %.2f s)\n", r->claim_s);
        printf("  %-23s %8s %8s %8s %8s %8s %8s %8s %2s %9s %9s %5s\n", "document", "build",
               "convert", "dump", "total", "p99", "free", "+free", "", "msgpack B", "JSON B",
               "runs");
        print_row("controller status-full", &r->full, true);
        print_row("controller status-delta", &r->delta, false);
        print_row("worker status-full", &r->worker, false);
        printf("  swarm_aggregate() over %u slots: %.1f us (median)\n", r->n, r->agg_us);
        if (r->full.ok)
            printf("  status-full: %.1f KiB msgpack, %.1f KiB envelope JSON (%zu-byte line); "
                   "%s the channel's %u-byte document limit\n",
                   r->full.mp_bytes / 1024.0, r->full.env_bytes / 1024.0, r->full.line_bytes,
                   r->full.mp_bytes <= r->chan_max_doc ? "within" : "OVER",
                   PH_CHAN_DEFAULT_OUT_RING / 2 - PH_RING_HDR);
    }
    printf("\n(medians; build = controller msgpack, convert = bridge envelope_from_doc, dump =\n"
           " serialising the sink line; total = the three; p99 of total; free = releasing the\n"
           " envelope tree afterwards (the bridge pays it too), +free = total + free.\n"
           " Targets: status-full of 10,000 workers <= 50 ms total; status-delta <= 50 us)\n");
    return 0;
}
