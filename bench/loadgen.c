/* ph-loadgen: W simulated workers, R status updates per second each, for S
 * seconds, measured the same way through two architectures:
 *
 *   --mode shm              the real pipeline: worker SDK -> shared memory ->
 *                           ph-swarm-controller -> ph-bridge -> RabbitMQ, and an
 *                           observer subscribed like a UI (controller deltas);
 *   --mode amqp-per-worker  every simulated worker publishes its own
 *                           status-delta envelope to ph.control at the same rate
 *                           and one controller-side consumer receives them all.
 *
 * The workers are spread over a few processes (--procs), each driving many
 * workers: through the worker SDK (one slot each) or over one AMQP connection
 * per process. One of them, the probe, flips its input ioState between ok and
 * upstream-error, one flip at a time once the previous one was seen, so that
 * the observer (shm: the controller's aggregate delta; amqp: the probe's own
 * envelope) times the staleness of a change end to end. Other workers change
 * at --changes-per-s: enabled toggles, output ioState transitions, config.
 *
 * Prints figures; asserts nothing. See --help and docs in bench/README.md. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "bench_util.h"
#include "ph/amqp.h"
#include "ph/channel.h"
#include "ph/common.h"
#include "ph/log.h"
#include "ph/shm.h"
#include "ph/worker.h"

#define MAX_PROCS 16
#define MAX_FLIPS 65536
#define PROBE_TIMEOUT_NS (2000ull * 1000000ull)
#define NS 1000000000ull

enum mode { M_SHM, M_AMQP };
/* shm mode: where the second half of the workers runs (another "host"). */
enum split { S_LOCAL, S_RELAY, S_REMOTE };
static const char *const SPLIT_NAMES[] = {"all-local", "local+relay", "local+remote"};

struct opts {
    enum mode mode;
    enum split split;
    uint32_t workers;
    double rate, seconds, warmup, changes_per_s;
    uint32_t procs, probe_ms, tick_ms;
    int32_t coalesce_ms; /* -1: the controller's default */
    bool worker_deltas, json, keep, print_envelope;
    const char *url_file, *broker_pid_file, *bindir;
};

/* What the processes share (an anonymous shared mapping). */
struct proc_stats {
    _Atomic uint64_t updates; /* status updates made: steady, changes, probe flips */
    _Atomic uint64_t dropped; /* updates the SDK or the connection refused */
    _Atomic uint64_t changes; /* state changes made (included in updates) */
    _Atomic uint64_t behind;  /* updates due but not made at the end */
    _Atomic int ready;        /* 1 attached/connected, -1 failed */
    char err[256];
};
struct shared {
    _Atomic int go;          /* the parent set the times: start */
    _Atomic int stop;        /* stop now (interrupted or a process failed) */
    _Atomic uint64_t t0_ns;  /* updates are due from here (moved on by a pause) */
    _Atomic int paused;      /* the idle baseline: no updates, no changes, no flips */
    _Atomic uint64_t end_ns; /* and stop here */
    _Atomic uint64_t flips;  /* probe flips made; flip k sets input to k odd ? upstream-error : ok */
    _Atomic uint64_t seen;   /* the last flip the parent saw */
    _Atomic uint64_t flip_ns[MAX_FLIPS];
    struct proc_stats p[MAX_PROCS];
};

static struct shared *g_sh;

static void usage(FILE *f)
{
    fputs("usage: ph-loadgen --mode shm|amqp-per-worker [options]\n"
          "\n"
          "Drives W simulated workers at R status updates per second each for S seconds\n"
          "and measures: updates/s offered and achieved, CPU seconds per million updates\n"
          "of every process involved (workers, controller, bridge, observer or consumer,\n"
          "the broker when its pid is known), end-to-end staleness of a change (p50,\n"
          "p99), broker messages and bytes per second, resident memory, shared-memory\n"
          "size and the time to attach the workers. A mode that does not keep up\n"
          "(achieved below 95% of offered) says so; nothing waits without bound.\n"
          "\n"
          "  --mode M            shm (the real pipeline) or amqp-per-worker (each worker\n"
          "                      publishes its own status-delta to ph.control)\n"
          "  --workers W         simulated workers (default 1000, up to 60000)\n"
          "  --rate R            status updates per second per worker (default 1)\n"
          "  --seconds S         measured window (default 10)\n"
          "  --warmup S          before the window (default 2)\n"
          "  --procs N           worker processes (default: one per 2,500 workers, 1..16)\n"
          "  --changes-per-s C   state changes per second over the swarm: enabled\n"
          "                      toggles, output ioState transitions, config (default:\n"
          "                      one per hundred updates, at least 1)\n"
          "  --probe-ms MS       quiet time between two staleness probes (default 100)\n"
          "  --worker-deltas     shm: per-worker status-delta on (default: the swarm is\n"
          "                      aggregate-only, workerDeltas false)\n"
          "  --split S           shm: where the second half of the workers runs, as if on\n"
          "                      a second host: local (default: all on the controller's\n"
          "                      segment), relay (a ph-relay's own segment, forwarded in\n"
          "                      batches) or remote (the SDK's remote mode: each worker\n"
          "                      speaks the contract over AMQP itself). At least 2 procs.\n"
          "                      Updates of remote workers reach the controller as the\n"
          "                      contract's deltas (on change and heartbeat): compare\n"
          "                      made updates and CPU per made update\n"
          "  --tick-ms N         the controller's drain tick (default: its own)\n"
          "  --coalesce-ms N     the controller's delta pacing, one per N ms on average\n"
          "                      under sustained change (default: its own, 20)\n"
          "  --amqp-url-file F   the broker (default: $PH_AMQP_URL)\n"
          "  --broker-pid-file F the broker's pid, for its CPU and memory (default: the\n"
          "                      rabbitmq.pid next to --amqp-url-file, when there is one)\n"
          "  --bin-dir DIR       where ph-swarm-controller and ph-bridge are (default:\n"
          "                      this program's folder)\n"
          "  --keep              keep the folder of logs and journal (printed)\n"
          "  --json              one JSON object instead of the table\n"
          "  --print-envelope    print one per-worker status-delta as the amqp mode\n"
          "                      sends it ({routingKey, envelope}) and exit\n"
          "  --help              this text\n",
          f);
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
    *o = (struct opts){.mode = M_SHM, .workers = 1000, .rate = 1, .seconds = 10, .warmup = 2,
                       .changes_per_s = -1, .probe_ms = 100, .coalesce_ms = -1};
    bool have_mode = false;
    static const struct option longs[] = {
        {"mode", required_argument, NULL, 'm'},         {"workers", required_argument, NULL, 'w'},
        {"rate", required_argument, NULL, 'r'},         {"seconds", required_argument, NULL, 's'},
        {"warmup", required_argument, NULL, 'W'},       {"procs", required_argument, NULL, 'p'},
        {"changes-per-s", required_argument, NULL, 'c'}, {"probe-ms", required_argument, NULL, 'P'},
        {"worker-deltas", no_argument, NULL, 'd'},      {"tick-ms", required_argument, NULL, 't'},
        {"amqp-url-file", required_argument, NULL, 'u'}, {"broker-pid-file", required_argument, NULL, 'b'},
        {"bin-dir", required_argument, NULL, 'B'},      {"keep", no_argument, NULL, 'k'},
        {"json", no_argument, NULL, 'j'},               {"print-envelope", no_argument, NULL, 'E'},
        {"split", required_argument, NULL, 'S'},        {"coalesce-ms", required_argument, NULL, 'C'},
        {"help", no_argument, NULL, 'h'},               {NULL, 0, NULL, 0}};
    int ch;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        uint64_t v = 0;
        bool ok = true;
        switch (ch) {
        case 'm':
            have_mode = true;
            if (strcmp(optarg, "shm") == 0) o->mode = M_SHM;
            else if (strcmp(optarg, "amqp-per-worker") == 0) o->mode = M_AMQP;
            else ok = false;
            break;
        case 'w': ok = bu_parse_size(optarg, &v) && v >= 1 && v <= 60000; o->workers = (uint32_t)v; break;
        case 'r': ok = bu_parse_double(optarg, &o->rate) && o->rate > 0 && o->rate <= 10000; break;
        case 's': ok = bu_parse_double(optarg, &o->seconds) && o->seconds >= 0.5 && o->seconds <= 3600; break;
        case 'W': ok = bu_parse_double(optarg, &o->warmup) && o->warmup <= 600; break;
        case 'p': ok = bu_parse_size(optarg, &v) && v >= 1 && v <= MAX_PROCS; o->procs = (uint32_t)v; break;
        case 'c': ok = bu_parse_double(optarg, &o->changes_per_s) && o->changes_per_s >= 0 && o->changes_per_s <= 100000; break;
        case 'P': ok = bu_parse_size(optarg, &v) && v >= 1 && v <= 60000; o->probe_ms = (uint32_t)v; break;
        case 'd': o->worker_deltas = true; break;
        case 'S':
            if (strcmp(optarg, "local") == 0) o->split = S_LOCAL;
            else if (strcmp(optarg, "relay") == 0) o->split = S_RELAY;
            else if (strcmp(optarg, "remote") == 0) o->split = S_REMOTE;
            else ok = false;
            break;
        case 't': ok = bu_parse_size(optarg, &v) && v >= 1 && v <= 10000; o->tick_ms = (uint32_t)v; break;
        case 'C': ok = bu_parse_size(optarg, &v) && v <= 60000; o->coalesce_ms = (int32_t)v; break;
        case 'u': o->url_file = optarg; break;
        case 'b': o->broker_pid_file = optarg; break;
        case 'B': o->bindir = optarg; break;
        case 'k': o->keep = true; break;
        case 'j': o->json = true; break;
        case 'E': o->print_envelope = true; break;
        case 'h': usage(stdout); exit(0);
        default: return bu_usage_error("unknown option '%s'", argv[optind - 1]);
        }
        if (!ok) return bu_bad_value(argv);
    }
    if (optind < argc) return bu_usage_error("unexpected argument '%s'", argv[optind]);
    if (o->print_envelope) return 0;
    if (!have_mode) return bu_usage_error("--mode shm or --mode amqp-per-worker is required");
    /* A change for every hundred updates, at least one a second. */
    if (o->changes_per_s < 0) o->changes_per_s = fmax(1.0, o->workers * o->rate / 100.0);
    if (o->procs == 0) o->procs = (o->workers + 2499) / 2500;
    if (o->procs > MAX_PROCS) o->procs = MAX_PROCS;
    if (o->procs > o->workers) o->procs = o->workers;
    if (o->worker_deltas && o->mode != M_SHM)
        return bu_usage_error("--worker-deltas applies to --mode shm only");
    if (o->split != S_LOCAL && o->mode != M_SHM)
        return bu_usage_error("--split applies to --mode shm only");
    if (o->split != S_LOCAL && o->procs < 2) o->procs = o->workers >= 2 ? 2 : 1;
    if (o->split != S_LOCAL && o->workers < 2)
        return bu_usage_error("--split needs at least 2 workers");
    if (o->url_file == NULL && getenv("PH_AMQP_URL") == NULL)
        return bu_usage_error("no broker: give --amqp-url-file or set PH_AMQP_URL");
    return 0;
}

/* ---- names --------------------------------------------------------------- */

static const char *const ROLES[] = {"generator", "moderator", "processor", "postprocessor"};

/* Worker i of the swarm: role by i mod 4; worker 0 is the probe. */
static void worker_names(const char *swarm, uint32_t i, const char **role, char *inst, size_t n)
{
    *role = ROLES[i % 4];
    if (i == 0) snprintf(inst, n, "%s-probe", swarm);
    else snprintf(inst, n, "%s-%s-%u", swarm, ROLES[i % 4], i / 4 + 1);
}

static const char *flip_input(uint64_t k)
{
    return (k & 1) ? "upstream-error" : "ok";
}

/* ---- the per-worker envelope ---------------------------------------------- */

/* What a worker of the per-worker architecture publishes on every update: a
 * contract status-delta (kind metric) with its counters, rendered the way
 * a worker would, into buf; returns its length (0 when it does not fit). */
static size_t render_delta(char *buf, size_t n, const char *swarm, const char *role,
                           const char *inst, bool enabled, uint64_t tps, const char *in,
                           const char *out, uint64_t processed, double interval_s)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    int len = snprintf(
        buf, n,
        "{\"timestamp\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ\",\"version\":\"1\","
        "\"kind\":\"metric\",\"type\":\"status-delta\",\"origin\":\"%s\","
        "\"scope\":{\"swarmId\":\"%s\",\"role\":\"%s\",\"instance\":\"%s\"},"
        "\"correlationId\":null,\"idempotencyKey\":null,"
        "\"data\":{\"enabled\":%s,\"tps\":%llu,\"ioState\":{\"work\":{\"input\":\"%s\","
        "\"output\":\"%s\"}},\"context\":{\"intervalSeconds\":%g,\"processed\":%llu,"
        "\"errors\":0,\"location\":\"local\"}}}",
        tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
        ts.tv_nsec / 1000000, inst, swarm, role, inst, enabled ? "true" : "false",
        (unsigned long long)tps, in, out, interval_s, (unsigned long long)processed);
    return len > 0 && (size_t)len < n ? (size_t)len : 0;
}

static void routing_key(char *buf, size_t n, const char *swarm, const char *role, const char *inst)
{
    snprintf(buf, n, "event.metric.status-delta.%s.%s.%s", swarm, role, inst);
}

/* ---- a worker process ------------------------------------------------------ */

struct sim {
    const char *role;
    char inst[PH_ID_MAX + 16];
    char rk[3 * PH_ID_MAX + 64];
    ph_worker *w;
    bool enabled;
    const char *out;
    uint64_t processed;
};

static uint64_t rnd_state;
static uint64_t rnd(void)
{
    /* xorshift64*: the change mix only needs to be spread, not secure. */
    rnd_state ^= rnd_state >> 12;
    rnd_state ^= rnd_state << 25;
    rnd_state ^= rnd_state >> 27;
    return rnd_state * 0x2545F4914F6CDD1Dull;
}

struct wctx {
    const struct opts *o;
    const char *swarm;
    uint32_t idx, first, count;
    struct sim *s;
    struct ph_amqp *a;
    char body[1024];
};

/* One status update of worker j (shm: a record through the SDK; amqp: an
 * envelope on the connection). False when it was refused. */
static bool update(struct wctx *c, uint32_t j, const char *in)
{
    struct sim *s = &c->s[j];
    s->processed += 1;
    if (c->a == NULL) {
        ph_worker_count(s->w, 1);
        return ph_worker_publish_status(s->w);
    }
    size_t len = render_delta(c->body, sizeof c->body, c->swarm, s->role, s->inst, s->enabled,
                              (uint64_t)c->o->rate, in, s->out, s->processed, 1.0 / c->o->rate);
    return len > 0 && ph_amqp_publish(c->a, s->rk, c->body, len, false) == PH_OK;
}

/* A state change of a random worker other than the probe. */
static bool change(struct wctx *c)
{
    if (c->count < 2 && c->first == 0) return true;
    uint32_t j = (uint32_t)(rnd() % c->count);
    if (c->first + j == 0) j = 1;
    struct sim *s = &c->s[j];
    switch (rnd() % 3) {
    case 0:
        s->enabled = !s->enabled;
        if (c->a == NULL) ph_worker_set_enabled(s->w, s->enabled);
        break;
    case 1:
        s->out = strcmp(s->out, "ok") == 0 ? "throttled" : "ok";
        if (c->a == NULL)
            ph_worker_set_io_state(s->w, PH_IN_OK, strcmp(s->out, "ok") == 0 ? PH_OUT_OK : PH_OUT_THROTTLED);
        break;
    default:
        if (c->a == NULL) {
            json_t *cfg = json_pack("{s:I}", "ratePerSec", (json_int_t)(rnd() % 1000));
            int rc = ph_worker_publish_config(s->w, cfg);
            json_decref(cfg);
            if (rc != PH_OK) return false;
        }
        break;
    }
    return update(c, j, "ok");
}

static void proc_fail(struct proc_stats *ps, const char *what, const char *detail)
{
    snprintf(ps->err, sizeof ps->err, "%s%s%s", what, detail[0] ? ": " : "", detail);
    atomic_store(&ps->ready, -1);
    atomic_store(&g_sh->stop, 1);
}

static int worker_proc(const struct opts *o, const char *swarm, uint32_t idx)
{
    struct proc_stats *ps = &g_sh->p[idx];
    struct wctx c = {.o = o, .swarm = swarm, .idx = idx};
    c.first = (uint32_t)((uint64_t)o->workers * idx / o->procs);
    c.count = (uint32_t)((uint64_t)o->workers * (idx + 1) / o->procs) - c.first;
    c.s = calloc(c.count, sizeof *c.s);
    if (c.s == NULL) {
        proc_fail(ps, "out of memory", "");
        return 1;
    }
    rnd_state = 0x9E3779B97F4A7C15ull ^ ((uint64_t)idx << 32) ^ (uint64_t)getpid();
    for (uint32_t j = 0; j < c.count; j++) {
        worker_names(swarm, c.first + j, &c.s[j].role, c.s[j].inst, sizeof c.s[j].inst);
        routing_key(c.s[j].rk, sizeof c.s[j].rk, swarm, c.s[j].role, c.s[j].inst);
        c.s[j].enabled = true;
        c.s[j].out = "ok";
    }
    char err[512];
    /* The second half of the processes is the other "host" (--split). */
    const bool away = o->split != S_LOCAL && idx >= (o->procs + 1) / 2;
    char relay_seg[PH_ID_MAX];
    snprintf(relay_seg, sizeof relay_seg, "%.59s-rly", swarm);
    if (away && o->split == S_REMOTE && o->url_file != NULL)
        setenv("PH_AMQP_URL_FILE", o->url_file, 1);
    if (o->mode == M_SHM) {
        for (uint32_t j = 0; j < c.count && !atomic_load(&g_sh->stop); j++) {
            struct ph_worker_opts wo = {.swarm_id = away && o->split == S_RELAY ? relay_seg : swarm,
                                        .role = c.s[j].role,
                                        .instance = c.s[j].inst, .heartbeat_ms = 1000,
                                        .attach_timeout_ms = 20000,
                                        .config_json = "{\"ratePerSec\": 1}",
                                        .mode = away && o->split == S_REMOTE ? PH_WORKER_REMOTE
                                                                             : PH_WORKER_LOCAL};
            c.s[j].w = ph_worker_attach(&wo, err, sizeof err);
            if (c.s[j].w == NULL) {
                proc_fail(ps, "attach", err);
                return 1;
            }
            /* Remote workers one after the other: each connects and declares
             * its queue before the next starts, as workers starting on
             * their own hosts would; a thousand at once time each other's
             * declares out on a small machine. (Remote mode: the segment's
             * heartbeat is the agent's connection.) */
            for (uint64_t until = bu_now_ns() + 10 * NS;
                 away && o->split == S_REMOTE && !ph_worker_controller_alive(c.s[j].w, 2000) &&
                 bu_now_ns() < until && !atomic_load(&g_sh->stop);)
                bu_sleep_ns(2000000);
            ph_worker_set_enabled(c.s[j].w, true);
            ph_worker_set_io_state(c.s[j].w, PH_IN_OK, PH_OUT_OK);
            ph_worker_publish_status(c.s[j].w);
        }
    } else {
        struct ph_amqp_url url;
        const struct ph_amqp_cfg cfg = {.name = "loadgen-worker"};
        if (ph_amqp_url_load(&url, o->url_file, err, sizeof err) != PH_OK ||
            ph_amqp_open(&c.a, &url, &cfg, err, sizeof err) != PH_OK) {
            proc_fail(ps, "broker", err);
            return 1;
        }
        const uint64_t until = bu_now_ns() + 20 * NS;
        while (!ph_amqp_up(c.a) && bu_now_ns() < until && !atomic_load(&g_sh->stop)) {
            ph_amqp_flush(c.a);
            bu_sleep_ns(10000000);
        }
        if (!ph_amqp_up(c.a)) {
            proc_fail(ps, "no connection to the broker within 20 s", "");
            return 1;
        }
    }
    atomic_store(&ps->ready, 1);
    while (!atomic_load(&g_sh->go) && !atomic_load(&g_sh->stop)) bu_sleep_ns(1000000);

    uint64_t t0 = atomic_load(&g_sh->t0_ns);
    while (bu_now_ns() < t0) bu_sleep_ns(1000000);
    const double per_ns = (double)c.count * o->rate / 1e9;
    const double changes_per_ns = o->changes_per_s / o->procs / 1e9;
    uint64_t done = 0, changes = 0, dropped = 0, flips = 0, flip_at = t0;
    const bool probe = c.first == 0;
    const char *probe_in = "ok";
    uint64_t now;
    /* end_ns moves: the window starts once the join burst is published. */
    while ((now = bu_now_ns()) < atomic_load_explicit(&g_sh->end_ns, memory_order_relaxed) &&
           !atomic_load(&g_sh->stop)) {
        if (atomic_load_explicit(&g_sh->paused, memory_order_relaxed)) {
            /* The parent moves t0 on by the pause: nothing is owed after it.
             * A slow poll: the baseline should not count this loop. */
            bu_sleep_ns(20000000);
            continue;
        }
        t0 = atomic_load_explicit(&g_sh->t0_ns, memory_order_relaxed);
        if (now < t0) {
            bu_sleep_ns(1000000);
            continue;
        }
        const uint64_t due = (uint64_t)((double)(now - t0) * per_ns);
        /* At most one pass over this process's workers per round, so the
         * probe and the connection are served however far behind it is. */
        uint64_t budget = c.count;
        while (done < due && budget-- > 0) {
            const uint32_t j = (uint32_t)(done % c.count);
            if (!update(&c, j, j == 0 && probe ? probe_in : "ok")) dropped++;
            done++;
        }
        while (changes < (uint64_t)((double)(now - t0) * changes_per_ns)) {
            if (!change(&c)) dropped++;
            changes++;
        }
        if (probe) {
            /* One flip at a time: the next once the parent saw this one, or
             * its wait ran out. */
            const uint64_t k = atomic_load(&g_sh->flips);
            const bool seen = atomic_load(&g_sh->seen) >= k;
            if (k + 1 < MAX_FLIPS && now >= flip_at &&
                (seen || now - atomic_load(&g_sh->flip_ns[k]) > PROBE_TIMEOUT_NS)) {
                probe_in = flip_input(k + 1);
                if (c.a == NULL)
                    ph_worker_set_io_state(c.s[0].w, (k + 1) & 1 ? PH_IN_UPSTREAM_ERROR : PH_IN_OK,
                                           PH_OUT_OK);
                atomic_store(&g_sh->flip_ns[k + 1], bu_now_ns());
                atomic_store(&g_sh->flips, k + 1);
                if (!update(&c, 0, probe_in)) dropped++;
                flips++;
                flip_at = bu_now_ns() + (uint64_t)o->probe_ms * 1000000ull;
            }
        }
        if (c.a != NULL) ph_amqp_flush(c.a);
        atomic_store_explicit(&ps->updates, done + changes + flips, memory_order_relaxed);
        atomic_store_explicit(&ps->changes, changes, memory_order_relaxed);
        atomic_store_explicit(&ps->dropped, dropped, memory_order_relaxed);
        if (done >= due) {
            /* Caught up: sleep to the next update due, but 5 to 10 ms, so
             * that updates go out in small batches (a wakeup per update
             * would cost more than the update) and the probe and the
             * changes keep their time. The same in both modes. */
            const double next = ((double)(done + 1) / per_ns) + (double)t0;
            uint64_t wait = next > (double)now ? (uint64_t)(next - (double)now) : 0;
            if (wait < 5000000) wait = 5000000;
            bu_sleep_ns(wait > 10000000 ? 10000000 : wait);
        }
    }
    const uint64_t end = atomic_load(&g_sh->end_ns);
    const uint64_t due_end = (uint64_t)((double)(end - t0) * per_ns);
    atomic_store(&ps->behind, due_end > done ? due_end - done : 0);
    if (c.a != NULL) ph_amqp_close(c.a, 2 * NS);
    /* Remote workers are left to the process's exit: each detach closes a
     * connection and waits for its confirms, a thousand of them one after
     * the other, after the figures are taken. */
    if (!(away && o->split == S_REMOTE))
        for (uint32_t j = 0; j < c.count; j++)
            if (c.s[j].w != NULL) ph_worker_detach(c.s[j].w);
    free(c.s);
    return 0;
}

/* ---- the observer / consumer (in the parent) ------------------------------- */

struct obs {
    enum mode mode;
    char probe_rk[3 * PH_ID_MAX + 64];
    bool counting;
    uint64_t msgs, bytes;    /* in the window */
    uint64_t all_msgs, all_bytes; /* shm: every message on ph.control (the '#' queue) */
    double *stale_ms;
    size_t nstale, capstale;
    uint64_t probe_timeouts;
};

static void probe_seen(struct obs *ob, const char *in)
{
    const uint64_t k = atomic_load(&g_sh->flips);
    if (k == 0 || atomic_load(&g_sh->seen) >= k || strcmp(in, flip_input(k)) != 0) return;
    const uint64_t now = bu_now_ns();
    atomic_store(&g_sh->seen, k);
    if (!ob->counting) return;
    if (ob->nstale == ob->capstale) {
        size_t cap = ob->capstale ? ob->capstale * 2 : 1024;
        double *n = realloc(ob->stale_ms, cap * sizeof *n);
        if (n == NULL) return;
        ob->stale_ms = n;
        ob->capstale = cap;
    }
    ob->stale_ms[ob->nstale++] = (double)(now - atomic_load(&g_sh->flip_ns[k])) / 1e6;
}

/* The aggregate's (shm) or the probe's (amqp) input ioState in a body. */
static void probe_from_body(struct obs *ob, const char *body, size_t len)
{
    json_error_t je;
    json_t *e = json_loadb(body, len, 0, &je);
    const char *in = json_string_value(json_object_get(
        json_object_get(json_object_get(json_object_get(e, "data"), "ioState"), "work"), "input"));
    if (in != NULL) probe_seen(ob, in);
    json_decref(e);
}

static int on_observed(void *ctx, const char *rk, size_t rklen, const char *body, size_t len,
                       uint64_t delivery)
{
    (void)delivery;
    struct obs *ob = ctx;
    if (ob->counting) {
        ob->msgs++;
        ob->bytes += len;
    }
    if (ob->mode == M_SHM) {
        probe_from_body(ob, body, len); /* controller deltas only: a few per second */
    } else if (rklen == strlen(ob->probe_rk) && memcmp(rk, ob->probe_rk, rklen) == 0) {
        probe_from_body(ob, body, len);
    }
    return 0;
}

static int on_any(void *ctx, const char *rk, size_t rklen, const char *body, size_t len,
                  uint64_t delivery)
{
    (void)rk, (void)rklen, (void)body, (void)delivery;
    struct obs *ob = ctx;
    if (ob->counting) {
        ob->all_msgs++;
        ob->all_bytes += len;
    }
    return 0;
}

static struct ph_amqp *consumer(const struct opts *o, const char *name, const char *queue,
                                const char *key, ph_amqp_deliver_fn fn, void *ctx)
{
    char err[512];
    struct ph_amqp_url url;
    const struct ph_amqp_cfg cfg = {.name = name, .queue = queue, .prefetch = 1000,
                                    .auto_ack = true, .deliver = fn, .deliver_ctx = ctx};
    struct ph_amqp *a;
    if (ph_amqp_url_load(&url, o->url_file, err, sizeof err) != PH_OK ||
        ph_amqp_open(&a, &url, &cfg, err, sizeof err) != PH_OK) {
        fprintf(stderr, "ph-loadgen: %s\n", err);
        return NULL;
    }
    ph_amqp_bind(a, json_pack("{s:b}", key, 1));
    return a;
}

/* Serves the consumers for up to `ns`. */
static void serve(struct ph_amqp *a, struct ph_amqp *b, uint64_t ns)
{
    const uint64_t until = bu_now_ns() + ns;
    do {
        struct pollfd pf[2];
        int n = 0;
        uint64_t sess;
        ph_amqp_flush(a);
        if (b != NULL) ph_amqp_flush(b);
        int fa = ph_amqp_fd(a, &sess), fb = b != NULL ? ph_amqp_fd(b, &sess) : -1;
        if (fa >= 0) pf[n++] = (struct pollfd){.fd = fa, .events = POLLIN};
        if (fb >= 0) pf[n++] = (struct pollfd){.fd = fb, .events = POLLIN};
        if (ph_amqp_buffered(a) || (b != NULL && ph_amqp_buffered(b))) continue;
        /* A delivery wakes the poll at once; the timeout only bounds how
         * late the loop looks at the clock. */
        if (n > 0) poll(pf, (nfds_t)n, 10);
        else bu_sleep_ns(10000000);
    } while (bu_now_ns() < until);
}

/* ---- process figures -------------------------------------------------------- */

struct pfig {
    const char *name;
    pid_t pid;
    uint64_t cpu0, cpu1; /* CPU ns (every thread) over the window */
    uint64_t idle0, idle1;   /* and over the idle baseline */
    uint64_t rss_kb;
};

/* The process's CPU time now (ns, every thread) into *t; left as it is
 * when the process cannot be read. */
static void cpu_now(const struct pfig *p, uint64_t *t)
{
    if (p->pid > 0) bu_proc_cpu_ns(p->pid, t);
}

static pid_t broker_pid(const struct opts *o)
{
    char path[PATH_MAX];
    const char *file = o->broker_pid_file;
    if (file == NULL && o->url_file != NULL) {
        const char *slash = strrchr(o->url_file, '/');
        int dl = slash != NULL ? (int)(slash - o->url_file) : 1;
        snprintf(path, sizeof path, "%.*s/rabbitmq.pid", dl, slash != NULL ? o->url_file : ".");
        file = path;
    }
    if (file == NULL) return 0;
    FILE *f = fopen(file, "r");
    long pid = 0;
    if (f != NULL) {
        if (fscanf(f, "%ld", &pid) != 1) pid = 0;
        fclose(f);
    }
    return pid > 0 && kill((pid_t)pid, 0) == 0 ? (pid_t)pid : 0;
}

/* Records drained by the controller so far (every slot's c_records). */
/* Waits until the bridge's position in the document ring has passed the
 * ring's tail as it is now, then for the broker (`bpid`, 0: unknown) to
 * settle. Returns the seconds waited, or -1 with `why`. */
static double wait_bridge_drained(const char *swarm, pid_t bpid, struct ph_amqp *a,
                                  struct ph_amqp *b, char *why, size_t whylen)
{
    struct ph_channel ch;
    char err[256];
    if (ph_channel_open(&ch, swarm, false, err, sizeof err) != PH_OK) {
        snprintf(why, whylen, "cannot open the bridge channel: %s", err);
        return -1;
    }
    const uint64_t t0 = bu_now_ns();
    /* acquire: positions published by the controller and the bridge. */
    const uint64_t tail = atomic_load_explicit(&ch.hdr->out.tail, memory_order_acquire);
    double waited = -1;
    for (uint64_t until = t0 + 60 * NS; bu_now_ns() < until;) {
        if (atomic_load_explicit(&ch.hdr->out.head, memory_order_acquire) >= tail) {
            waited = (double)(bu_now_ns() - t0) / 1e9;
            break;
        }
        serve(a, b, 20000000);
    }
    ph_channel_close(&ch);
    if (waited < 0) {
        snprintf(why, whylen, "the bridge did not publish the join burst within 60 s");
        return waited;
    }
    /* The broker applies the bridge's bindings for the new workers (two per
     * worker) after the fact: the window starts once it has settled, its CPU
     * under a fifth of a core in three 200 ms samples in a row (bounded:
     * 60 s more; 10,000 workers take it about 30 s here). */
    uint64_t t_prev = 0, t_now = 0;
    const bool have = bpid > 0 && bu_proc_cpu_ns(bpid, &t_prev) == 0;
    int quiet = 0;
    for (uint64_t until = bu_now_ns() + 60 * NS; have && bu_now_ns() < until && quiet < 3;) {
        serve(a, b, 200000000);
        if (bu_proc_cpu_ns(bpid, &t_now) != 0) break;
        const double cores = (double)(t_now - t_prev) / 1e9 / 0.2;
        t_prev = t_now;
        quiet = cores < 0.2 ? quiet + 1 : 0;
    }
    serve(a, b, 100000000); /* what it published reaches the observer's queues */
    return (double)(bu_now_ns() - t0) / 1e9;
}

static uint64_t drained(const struct ph_segment *seg, uint32_t *active)
{
    uint64_t sum = 0;
    uint32_t act = 0;
    for (uint32_t i = 0; i < seg->slots; i++) {
        const struct ph_slot *s = ph_segment_slot(seg, i);
        /* relaxed: counters and a state for a figure, each self-contained. */
        sum += atomic_load_explicit(&s->c_records, memory_order_relaxed);
        if (ph_slot_state_of(atomic_load_explicit(&s->state, memory_order_relaxed)) == PH_SLOT_ACTIVE &&
            atomic_load_explicit(&s->c_last_seen_ns, memory_order_relaxed) != 0)
            act++;
    }
    if (active != NULL) *active = act;
    return sum;
}

static int print_envelope(void)
{
    char body[1024], rk[256];
    const char *swarm = "lg-sample";
    char inst[64];
    const char *role;
    worker_names(swarm, 5, &role, inst, sizeof inst);
    routing_key(rk, sizeof rk, swarm, role, inst);
    size_t n = render_delta(body, sizeof body, swarm, role, inst, true, 10, "ok", "throttled", 1234, 0.1);
    if (n == 0) return 1;
    printf("{\"routingKey\":\"%s\",\"envelope\":%s}\n", rk, body);
    return 0;
}

static double pct(double *v, size_t n, double p)
{
    return n > 0 ? bu_percentile(v, n, p) : NAN;
}

int main(int argc, char **argv)
{
    struct opts o;
    int rc = parse_opts(argc, argv, &o);
    if (rc != 0) return rc;
    if (o.print_envelope) return print_envelope();
    ph_log_init("ph-loadgen", "bench");
    ph_log_set_level(PH_LOG_WARN);
    signal(SIGPIPE, SIG_IGN);
    bu_cleanup_install();
    g_sh = bu_shared_alloc(sizeof *g_sh);
    char *tmp = bu_tmpdir("loadgen", o.keep);
    if (g_sh == NULL || tmp == NULL) {
        perror("ph-loadgen: cannot set up (shared memory, or a folder in /tmp)");
        return 1;
    }
    const double load0 = bu_loadavg1();
    char swarm[PH_ID_MAX];
    bu_swarm_id(swarm, sizeof swarm, "lg");
    char ctl_inst[PH_ID_MAX + 16];
    snprintf(ctl_inst, sizeof ctl_inst, "%s-controller", swarm);

    struct pfig figs[MAX_PROCS + 4];
    size_t nfig = 0;
    struct ph_segment seg;
    bool seg_open = false;
    const char *fail = NULL;
    static char why[600];
    pid_t ctl = 0, br = 0, relay = 0;

    /* The observer (shm: controller deltas, like a UI, and a '#' counter of
     * every message on ph.control) or the controller-side consumer (amqp:
     * every worker's status-delta). */
    struct obs ob = {.mode = o.mode};
    char q1[128], q2[128], key[256];
    snprintf(q1, sizeof q1, "ph.loadgen.%d.observer", (int)getpid());
    snprintf(q2, sizeof q2, "ph.loadgen.%d.all", (int)getpid());
    {
        const char *role;
        char inst[PH_ID_MAX + 16];
        worker_names(swarm, 0, &role, inst, sizeof inst);
        routing_key(ob.probe_rk, sizeof ob.probe_rk, swarm, role, inst);
    }
    if (o.mode == M_SHM)
        snprintf(key, sizeof key, "event.metric.status-delta.%s.swarm-controller.*", swarm);
    else
        snprintf(key, sizeof key, "event.metric.status-delta.%s.#", swarm);
    struct ph_amqp *a = consumer(&o, o.mode == M_SHM ? "observer" : "consumer", q1, key, on_observed, &ob);
    struct ph_amqp *b = o.mode == M_SHM ? consumer(&o, "counter", q2, "#", on_any, &ob) : NULL;
    if (a == NULL || (o.mode == M_SHM && b == NULL)) return 1;
    for (uint64_t until = bu_now_ns() + 20 * NS; bu_now_ns() < until;) {
        serve(a, b, 10000000);
        if (ph_amqp_up(a) && (b == NULL || ph_amqp_up(b))) break;
    }
    if (!ph_amqp_up(a) || (b != NULL && !ph_amqp_up(b))) {
        fprintf(stderr, "ph-loadgen: cannot reach the broker (%s) within 20 s\n", ph_amqp_where(a));
        return 1;
    }
    serve(a, b, 300000000); /* bindings applied */

    if (o.mode == M_SHM) {
        char ctl_bin[PATH_MAX], br_bin[PATH_MAX], slots[16], tick[16], coalesce[16], ctl_log[PATH_MAX],
            br_log[PATH_MAX];
        if (!bu_bin_path(o.bindir, "ph-swarm-controller", ctl_bin, sizeof ctl_bin) ||
            !bu_bin_path(o.bindir, "ph-bridge", br_bin, sizeof br_bin)) {
            fprintf(stderr, "ph-loadgen: ph-swarm-controller or ph-bridge not found (build them, "
                            "or pass --bin-dir)\n");
            return 1;
        }
        snprintf(slots, sizeof slots, "%u", o.workers + 16);
        snprintf(tick, sizeof tick, "%u", o.tick_ms);
        snprintf(ctl_log, sizeof ctl_log, "%s/controller.log", tmp);
        snprintf(br_log, sizeof br_log, "%s/bridge.log", tmp);
        bu_cleanup_add_swarm(swarm);
        char *cargv[16] = {ctl_bin, "--swarm", swarm, "--slots", slots, "--worker-deltas",
                           o.worker_deltas ? "on" : "off", "--journal-dir", tmp, "--run-id",
                           "journal"};
        int ca = 11;
        if (o.tick_ms) {
            cargv[ca++] = "--tick-ms";
            cargv[ca++] = tick;
        }
        snprintf(coalesce, sizeof coalesce, "%d", (int)o.coalesce_ms);
        if (o.coalesce_ms >= 0) {
            cargv[ca++] = "--coalesce-ms";
            cargv[ca++] = coalesce;
        }
        cargv[ca] = NULL;
        ctl = bu_spawn(cargv, ctl_log);
        char url_arg[PATH_MAX];
        snprintf(url_arg, sizeof url_arg, "%s", o.url_file != NULL ? o.url_file : "");
        char *bargv[] = {br_bin, "--swarm", swarm, "--controller-instance", ctl_inst, "--sink",
                         "amqp", o.url_file != NULL ? "--amqp-url-file" : NULL, url_arg, NULL};
        br = bu_spawn(bargv, br_log);
        if (ctl <= 0 || br <= 0) {
            fprintf(stderr, "ph-loadgen: cannot start the controller or the bridge\n");
            return 1;
        }
        figs[nfig++] = (struct pfig){.name = "controller", .pid = ctl};
        figs[nfig++] = (struct pfig){.name = "bridge", .pid = br};
        if (o.split == S_RELAY) {
            char rl_bin[PATH_MAX], rl_log[PATH_MAX], rseg[PH_ID_MAX];
            snprintf(rseg, sizeof rseg, "%.59s-rly", swarm);
            snprintf(rl_log, sizeof rl_log, "%s/relay.log", tmp);
            if (!bu_bin_path(o.bindir, "ph-relay", rl_bin, sizeof rl_bin)) {
                fprintf(stderr, "ph-loadgen: ph-relay not found (build it, or pass --bin-dir)\n");
                return 1;
            }
            bu_cleanup_add_swarm(rseg);
            char *rargv[] = {rl_bin, "--swarm", swarm, "--segment", rseg, "--relay-id", "lg-relay",
                             "--location", "relay-host", "--slots", slots,
                             o.url_file != NULL ? "--amqp-url-file" : NULL, url_arg, NULL};
            relay = bu_spawn(rargv, rl_log);
            if (relay <= 0) {
                fprintf(stderr, "ph-loadgen: cannot start ph-relay\n");
                return 1;
            }
            figs[nfig++] = (struct pfig){.name = "relay", .pid = relay};
            char rerr[256];
            struct ph_segment rs;
            bool up = false;
            for (uint64_t until = bu_now_ns() + 10 * NS; !up && bu_now_ns() < until;) {
                if (ph_segment_open(&rs, rseg, false, rerr, sizeof rerr) == PH_OK) {
                    ph_segment_close(&rs);
                    up = true;
                } else {
                    bu_sleep_ns(20000000);
                }
            }
            if (!up) {
                fprintf(stderr, "ph-loadgen: the relay made no segment within 10 s (log: %s)\n",
                        rl_log);
                return 1;
            }
        }
        char err[512];
        for (uint64_t until = bu_now_ns() + 10 * NS; !seg_open && bu_now_ns() < until;) {
            if (ph_segment_open(&seg, swarm, false, err, sizeof err) == PH_OK) seg_open = true;
            else bu_sleep_ns(20000000);
        }
        if (!seg_open) {
            fprintf(stderr, "ph-loadgen: the controller made no segment within 10 s: %s (log: %s)\n",
                    err, ctl_log);
            return 1;
        }
    }

    /* The workers. */
    const uint64_t t_attach = bu_now_ns();
    pid_t kids[MAX_PROCS];
    for (uint32_t i = 0; i < o.procs; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            bu_child_init();
            _exit(worker_proc(&o, swarm, i));
        }
        if (pid < 0) {
            perror("ph-loadgen: fork");
            return 1;
        }
        kids[i] = pid;
        bu_cleanup_add_child(pid);
        figs[nfig++] = (struct pfig){.name = "workers", .pid = pid};
    }
    double attach_s = NAN;
    /* Part of it: until every worker process has claimed its slots and
     * written its first status (the SDK's share; the rest is the
     * controller's to pick them up). */
    double claimed_s = NAN;
    /* Remote workers each open a connection and declare and bind a queue:
     * a thousand of them take many seconds on a small machine. */
    const uint64_t attach_limit_s = o.split == S_REMOTE ? 60 + o.workers / 10 : 60;
    for (uint64_t until = bu_now_ns() + attach_limit_s * NS; bu_now_ns() < until && fail == NULL;) {
        uint32_t ready = 0;
        for (uint32_t i = 0; i < o.procs; i++) {
            int r = atomic_load(&g_sh->p[i].ready);
            if (r < 0) {
                snprintf(why, sizeof why, "worker process %u: %s", i, g_sh->p[i].err);
                fail = why;
            }
            ready += r > 0;
        }
        /* The slot table is read only once every process has attached its
         * workers: a pass over 10,000 slots touches 10,000 pages, and every
         * 5 ms it took CPU from the attaching processes it measures. */
        uint32_t visible = o.workers;
        if (ready == o.procs && isnan(claimed_s))
            claimed_s = (double)(bu_now_ns() - t_attach) / 1e9;
        if (seg_open && ready == o.procs) drained(&seg, &visible);
        if (ready == o.procs && visible >= o.workers) {
            attach_s = (double)(bu_now_ns() - t_attach) / 1e9;
            break;
        }
        serve(a, b, 5000000);
    }
    if (fail == NULL && isnan(attach_s)) {
        snprintf(why, sizeof why, "the workers did not attach within %llu s",
                 (unsigned long long)attach_limit_s);
        fail = why;
    }
    const pid_t bpid = broker_pid(&o);
    if (bpid > 0) figs[nfig++] = (struct pfig){.name = "broker", .pid = bpid};
    figs[nfig++] = (struct pfig){.name = o.mode == M_SHM ? "observer" : "consumer", .pid = getpid()};

    /* Warm-up, then the window. */
    uint64_t off0 = 0, off1 = 0, ach0 = 0, ach1 = 0, t_w0 = 0, t_w1 = 0, flips0 = 0, flips1 = 0;
    uint64_t t_idle0 = 0, t_idle1 = 0;
    const double idle_s = o.seconds < 4 ? o.seconds : 4;
    if (fail == NULL) {
        const uint64_t t0 = bu_now_ns() + 50000000;
        atomic_store(&g_sh->t0_ns, t0);
        /* The workers go on a second past the window, so that the window
         * never sees them stop; the end moves once the window starts. */
        atomic_store(&g_sh->end_ns, t0 + (uint64_t)((o.warmup + o.seconds + 61) * 1e9));
        atomic_store(&g_sh->go, 1);
        serve(a, b, (uint64_t)(o.warmup * 1e9) + 50000000);
        /* shm: every joining worker sent one worker status-full (the join
         * report, aggregate-only or not); with thousands of workers they
         * may still be going through the bridge. The window starts once the
         * bridge has read past what the ring held now (bounded: 60 s). */
        if (o.mode == M_SHM) {
            const double waited = wait_bridge_drained(swarm, bpid, a, b, &why[0], sizeof why);
            if (waited < 0) fail = why;
            else if (waited > 0.05)
                fprintf(stderr, "ph-loadgen: waited %.2f s for the join burst (one worker "
                                "status-full each, two bindings each) to settle before the "
                                "window\n",
                        waited);
        }
        /* The idle baseline, same run: the workers pause, and what every
         * process costs meanwhile (controller ticks, bridge, broker,
         * observer) is what the swarm costs doing nothing. */
        if (fail == NULL) {
            atomic_store(&g_sh->paused, 1);
            const uint64_t p0 = bu_now_ns();
            serve(a, b, 300000000); /* updates in flight land */
            t_idle0 = bu_now_ns();
            for (size_t i = 0; i < nfig; i++) cpu_now(&figs[i], &figs[i].idle0);
            serve(a, b, (uint64_t)(idle_s * 1e9));
            for (size_t i = 0; i < nfig; i++) cpu_now(&figs[i], &figs[i].idle1);
            t_idle1 = bu_now_ns();
            atomic_store(&g_sh->t0_ns, atomic_load(&g_sh->t0_ns) + (bu_now_ns() - p0));
            atomic_store(&g_sh->paused, 0);
            serve(a, b, 500000000);
        }
        t_w0 = bu_now_ns();
        atomic_store(&g_sh->end_ns, t_w0 + (uint64_t)((o.seconds + 1) * 1e9));
        for (uint32_t i = 0; i < o.procs; i++) off0 += atomic_load(&g_sh->p[i].updates);
        ach0 = seg_open ? drained(&seg, NULL) : 0;
        flips0 = atomic_load(&g_sh->flips);
        for (size_t i = 0; i < nfig; i++) cpu_now(&figs[i], &figs[i].cpu0);
        ob.counting = true;
        serve(a, b, (uint64_t)(o.seconds * 1e9));
        ob.counting = false;
        t_w1 = bu_now_ns();
        for (uint32_t i = 0; i < o.procs; i++) off1 += atomic_load(&g_sh->p[i].updates);
        ach1 = seg_open ? drained(&seg, NULL) : 0;
        flips1 = atomic_load(&g_sh->flips);
        for (size_t i = 0; i < nfig; i++) {
            cpu_now(&figs[i], &figs[i].cpu1);
            if (bu_proc_rss_kb(figs[i].pid, &figs[i].rss_kb) != 0) figs[i].rss_kb = 0;
        }
        if (o.mode == M_AMQP) ach1 = ob.msgs; /* received by the consumer in the window */
    }
    atomic_store(&g_sh->stop, 1);
    uint64_t dropped = 0, behind = 0, changes = 0;
    for (uint32_t i = 0; i < o.procs; i++) {
        /* They stop by themselves (detaching 10,000 workers takes a moment);
         * a process that does not is stopped. */
        int st = -1;
        /* Remote workers close a connection each when they detach. */
        const uint64_t end_limit_s = o.split == S_REMOTE ? 30 + o.workers / 10 : 30;
        for (uint64_t until = bu_now_ns() + end_limit_s * NS; bu_now_ns() < until;) {
            if (waitpid(kids[i], &st, WNOHANG) == kids[i]) break;
            st = -1;
            bu_sleep_ns(10000000);
        }
        bool clean = st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0;
        if (st != -1) bu_cleanup_del_child(kids[i]);
        else bu_stop_child(kids[i], 5);
        if (!clean && fail == NULL) {
            snprintf(why, sizeof why, "worker process %u did not end cleanly", i);
            fail = why;
        }
        dropped += atomic_load(&g_sh->p[i].dropped);
        behind += atomic_load(&g_sh->p[i].behind);
        changes += atomic_load(&g_sh->p[i].changes);
    }
    uint64_t shm_bytes = 0;
    if (seg_open) {
        struct stat st;
        char p[PATH_MAX];
        snprintf(p, sizeof p, "/dev/shm/ph.%s", swarm);
        if (stat(p, &st) == 0) shm_bytes += (uint64_t)st.st_size;
        snprintf(p, sizeof p, "/dev/shm/ph.%s.bridge", swarm);
        if (stat(p, &st) == 0) shm_bytes += (uint64_t)st.st_size;
        ph_segment_close(&seg);
    }
    if (relay > 0) bu_stop_child(relay, 10);
    if (br > 0) bu_stop_child(br, 10);
    if (ctl > 0) bu_stop_child(ctl, 10);
    bu_cleanup_del_swarm(swarm);
    if (o.split == S_RELAY) {
        char rseg[PH_ID_MAX];
        snprintf(rseg, sizeof rseg, "%.59s-rly", swarm);
        bu_cleanup_del_swarm(rseg);
    }
    ph_amqp_close(a, 0);
    if (b != NULL) ph_amqp_close(b, 0);

    /* Figures. */
    const double win = t_w1 > t_w0 ? (double)(t_w1 - t_w0) / 1e9 : NAN;
    /* Offered: the steady updates, the changes and the probe's flips (each
     * one more update) the workers were asked to make. */
    const double offered = (double)o.workers * o.rate + o.changes_per_s + (double)(flips1 - flips0) / win;
    const double made = (double)(off1 - off0) / win;
    const double achieved = o.mode == M_SHM ? (double)(ach1 - ach0) / win : (double)ach1 / win;
    double cpu_s = 0, rss_total = 0;
    for (size_t i = 0; i < nfig; i++) {
        cpu_s += (double)(figs[i].cpu1 - figs[i].cpu0) / 1e9;
        rss_total += (double)figs[i].rss_kb;
    }
    const double updates_in_window = achieved * win;
    const double cpu_per_m = updates_in_window > 0 ? cpu_s / (updates_in_window / 1e6) : NAN;
    /* Marginal: the window's CPU less what the same processes spent idle
     * for as long (the baseline above), per million updates. */
    const double idle_len = t_idle1 > t_idle0 ? (double)(t_idle1 - t_idle0) / 1e9 : NAN;
    double idle_cpu_s = 0;
    for (size_t i = 0; i < nfig; i++) idle_cpu_s += (double)(figs[i].idle1 - figs[i].idle0) / 1e9;
    const double idle_cores = idle_cpu_s / idle_len;
    const double marginal_s = cpu_s - idle_cores * win;
    const double marginal_per_m =
        updates_in_window > 0 ? (marginal_s > 0 ? marginal_s : 0) / (updates_in_window / 1e6) : NAN;
    const double broker_msgs = o.mode == M_SHM ? (double)ob.all_msgs / win : (double)ob.msgs / win;
    const double broker_bytes = o.mode == M_SHM ? (double)ob.all_bytes / win : (double)ob.bytes / win;
    const bool keeping_up = achieved >= 0.95 * offered;
    const double p50 = pct(ob.stale_ms, ob.nstale, 50), p99 = pct(ob.stale_ms, ob.nstale, 99);
    const double load1 = bu_loadavg1();

    if (o.json) {
        struct bu_json j;
        bu_json_begin(&j, stdout);
        bu_json_str(&j, "benchmark", "ph-loadgen");
        bu_json_str(&j, "error", fail);
        bu_json_str(&j, "mode", o.mode == M_SHM ? "shm" : "amqp-per-worker");
        if (o.mode == M_SHM) bu_json_bool(&j, "worker_deltas", o.worker_deltas);
        if (o.mode == M_SHM && o.coalesce_ms >= 0) bu_json_int(&j, "coalesce_ms", o.coalesce_ms);
        if (o.mode == M_SHM) bu_json_str(&j, "split", SPLIT_NAMES[o.split]);
        bu_json_int(&j, "workers", o.workers);
        bu_json_num(&j, "rate", o.rate);
        bu_json_int(&j, "procs", o.procs);
        bu_json_num(&j, "seconds", win);
        bu_json_num(&j, "offered_updates_per_s", offered);
        bu_json_num(&j, "made_updates_per_s", made);
        bu_json_num(&j, "achieved_updates_per_s", achieved);
        bu_json_bool(&j, "keeping_up", keeping_up);
        bu_json_int(&j, "updates_dropped", (int64_t)dropped);
        bu_json_int(&j, "updates_behind_at_end", (int64_t)behind);
        bu_json_int(&j, "state_changes", (int64_t)changes);
        bu_json_num(&j, "cpu_s", cpu_s);
        bu_json_num(&j, "cpu_s_per_million_updates", cpu_per_m);
        bu_json_num(&j, "idle_cpu_cores", idle_cores);
        bu_json_num(&j, "marginal_cpu_s_per_million_updates", marginal_per_m);
        bu_json_obj(&j, "cpu_s_by_process");
        for (size_t i = 0; i < nfig; i++) {
            double s = (double)(figs[i].cpu1 - figs[i].cpu0) / 1e9;
            if (strcmp(figs[i].name, "workers") == 0) {
                /* summed below */
                continue;
            }
            bu_json_num(&j, figs[i].name, s);
        }
        double ws = 0;
        for (size_t i = 0; i < nfig; i++)
            if (strcmp(figs[i].name, "workers") == 0) ws += (double)(figs[i].cpu1 - figs[i].cpu0) / 1e9;
        bu_json_num(&j, "workers", ws);
        bu_json_close(&j);
        bu_json_bool(&j, "broker_measured", bpid > 0);
        bu_json_num(&j, "staleness_p50_ms", p50);
        bu_json_num(&j, "staleness_p99_ms", p99);
        bu_json_int(&j, "staleness_samples", (int64_t)ob.nstale);
        bu_json_num(&j, "broker_msgs_per_s", broker_msgs);
        bu_json_num(&j, "broker_bytes_per_s", broker_bytes);
        bu_json_num(&j, "rss_mib", rss_total / 1024);
        bu_json_num(&j, "shm_mib", (double)shm_bytes / (1024.0 * 1024.0));
        bu_json_num(&j, "attach_s", attach_s);
        bu_json_num(&j, "attach_claimed_s", claimed_s);
        bu_json_num(&j, "load_before", load0);
        bu_json_num(&j, "load_after", load1);
        bu_json_end(&j);
    } else {
        printf("ph-loadgen --mode %s: %u workers x %g/s in %u processes, %.1f s window%s%s%s\n",
               o.mode == M_SHM ? "shm" : "amqp-per-worker", o.workers, o.rate, o.procs, win,
               o.mode == M_SHM ? (o.worker_deltas ? " (worker deltas on)" : " (aggregate-only)") : "",
               o.split != S_LOCAL ? ", " : "", o.split != S_LOCAL ? SPLIT_NAMES[o.split] : "");
        if (fail != NULL) printf("  FAILED: %s\n", fail);
        printf("  updates/s   offered %.0f  made %.0f  achieved %.0f  %s\n", offered, made, achieved,
               keeping_up ? "(keeping up)" : "(NOT keeping up: below 95% of offered)");
        printf("  CPU         %.2f s in the window, %.3f s per million updates\n", cpu_s, cpu_per_m);
        printf("  idle        %.3f cores with the workers paused (same processes, %.1f s); "
               "marginal %.3f s per million updates\n",
               idle_cores, idle_len, marginal_per_m);
        for (size_t i = 0; i < nfig; i++)
            printf("    %-10s pid %-7d %.2f s  rss %llu KiB\n", figs[i].name, (int)figs[i].pid,
                   (double)(figs[i].cpu1 - figs[i].cpu0) / 1e9,
                   (unsigned long long)figs[i].rss_kb);
        if (bpid <= 0) printf("    (broker pid unknown: --broker-pid-file; its CPU is not counted)\n");
        printf("  staleness   p50 %.2f ms  p99 %.2f ms  (%zu changes seen)\n", p50, p99, ob.nstale);
        printf("  broker      %.1f msgs/s  %.0f bytes/s\n", broker_msgs, broker_bytes);
        printf("  memory      rss %.1f MiB in all, shared memory %.2f MiB\n", rss_total / 1024,
               (double)shm_bytes / (1024.0 * 1024.0));
        printf("  attach      %.3f s for %u workers (all claimed and reporting after %.3f s)\n",
               attach_s, o.workers, claimed_s);
        printf("  load        %.2f before, %.2f after\n", load0, load1);
    }
    if (o.keep) fprintf(stderr, "ph-loadgen: kept %s\n", tmp);
    free(ob.stale_ms);
    return fail == NULL ? 0 : 1;
}
