/* ph-bench-amqp: ph-bridge --sink amqp against a local RabbitMQ broker.
 *   throughput  a fake controller (this process) fills the channel's out ring
 *               with controller status-delta documents; envelopes/s through
 *               the bridge to a consumer on the broker, and the bridge's CPU
 *               per 10,000 envelopes;
 *   latency     worker state change -> controller status-delta consumed from
 *               the broker, with the real ph-swarm-controller and ph-bridge.
 * See usage() for the method. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <jansson.h>
#include <msgpack.h>

#include "bench_util.h"
#include "ph/channel.h"
#include "ph/log.h"
#include "ph/record.h"
#include "ph/ring.h"
#include "ph/shm.h"
#include "ph/worker.h"
#include "sample_docs.h"

#define EXCHANGE "ph.control"

struct opts {
    const char *url_file;
    const char *bindir;
    bool do_tp, do_lat;
    uint32_t docs, trials, tp_timeout_s;
    uint32_t changes, spacing_ms, jitter_us, timeout_ms;
    bool keep, json;
};

static void usage(FILE *f)
{
    fprintf(f,
        "usage: ph-bench-amqp --amqp-url-file PATH [options]\n"
        "\n"
        "ph-bridge --sink amqp against a running broker (bench/amqp/run.sh starts a private\n"
        "one with deploy/rabbitmq). ph-bridge and ph-swarm-controller are taken from the\n"
        "directory of this program (or --bin-dir); logs and the journal go to a fresh\n"
        "/tmp/ph-bench-amqp-XXXXXX, removed at the end (--keep keeps it).\n"
        "\n"
        "1. throughput. This process is a fake controller: it creates the channel\n"
        "   (ph_channel_create, default 8 MiB out ring) and starts\n"
        "     ph-bridge --swarm ID --sink amqp --amqp-url-file PATH\n"
        "   A consumer thread in this process (its own connection) declares an exclusive\n"
        "   queue bound to event.metric.status-delta.ID.# on ph.control and consumes with\n"
        "   no-ack. The document is a controller status-delta (kind metric, role\n"
        "   swarm-controller, data enabled/tps/ioState/context with totals and per-role\n"
        "   summary), built by bridge/tests/sample_docs.c and packed to msgpack once. A\n"
        "   warm-up of 1,000 documents, then --trials trials: --docs documents written\n"
        "   into the out ring at full speed (claims until the ring is full, one publish,\n"
        "   50 us sleep when full). Per trial:\n"
        "     consumed/s   (docs - 1) / (last consumed - first consumed), CLOCK_MONOTONIC\n"
        "                  in the consumer thread: the headline (median over trials)\n"
        "     end-to-end/s docs / (last consumed - first written)\n"
        "     bridge/s     the channel's docs_published counter (the bridge counts a\n"
        "                  document when rabbitmq-c has taken it; status documents are\n"
        "                  published without confirms), first to last, polled by the\n"
        "                  writer\n"
        "     bridge CPU   utime+stime (/proc/PID/stat, 10 ms ticks) and sum_exec_runtime\n"
        "                  (/proc/PID/schedstat, ns) of ph-bridge from the first write to\n"
        "                  the last consumption, per 10,000 envelopes\n"
        "   A trial gives up after --tp-timeout-s.\n"
        "\n"
        "2. latency. ph-swarm-controller --swarm ID (default tick 10 ms, coalescing 20 ms)\n"
        "   and ph-bridge --sink amqp; a worker attaches in this process (ph_worker_attach).\n"
        "   A consumer (this thread, own connection, exclusive queue) is bound to\n"
        "   event.metric.status-delta.ID.swarm-controller.# and ...status-full... (the full\n"
        "   that answers the bridge's registration says the path is live). Each change\n"
        "   toggles the worker's input ioState ok/backpressure (ph_worker_set_io_state),\n"
        "   then ph_worker_publish_status(); t0 = CLOCK_REALTIME right after. The awaited\n"
        "   delta is the one whose data.ioState.work.input is the new value; latency =\n"
        "   CLOCK_REALTIME when amqp_consume_message returned it - t0. The next change\n"
        "   comes --spacing-ms + uniform 0..--jitter-ms after the previous receipt:\n"
        "   >= 60 ms > the 20 ms coalescing period, so no change waits for the coalescing\n"
        "   timer and none are merged (figures are the pipeline's own: controller tick,\n"
        "   bridge tick, AMQP publish, broker routing, delivery). p50/p90/p99/max.\n"
        "\n"
        "options:\n"
        "  --amqp-url-file PATH  the broker URL file (deploy/rabbitmq's DIR/amqp-url);\n"
        "                        default $PH_AMQP_URL_FILE\n"
        "  --only throughput|latency   one part only\n"
        "  --docs N           documents per throughput trial (default 50000)\n"
        "  --trials N         throughput trials (default 3)\n"
        "  --tp-timeout-s N   give up on a throughput trial after N s (default 60)\n"
        "  --changes N        latency changes (default 1000)\n"
        "  --spacing-ms N     quiet time before each change (default 60)\n"
        "  --jitter-ms X      plus uniform 0..X ms (default 5)\n"
        "  --timeout-ms N     give up on one change after N ms (default 2000)\n"
        "  --bin-dir DIR      where ph-bridge and ph-swarm-controller are\n"
        "  --keep             keep the temporary folder\n"
        "  --json             one JSON object instead of the tables\n"
        "  --help             this text\n"
        "\n"
        "Figures only, nothing is asserted. Target (issue 4): latency p99 <= 30 ms.\n"
        "The daemons are stopped with SIGTERM, the shared-memory objects and the folder\n"
        "removed at exit and on SIGINT/SIGTERM; the queues are exclusive (gone with the\n"
        "connection); the bridge's durable control queues stay on the broker.\n");
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
    *o = (struct opts){.url_file = getenv("PH_AMQP_URL_FILE"), .do_tp = true, .do_lat = true,
                       .docs = 50000, .trials = 3, .tp_timeout_s = 60, .changes = 1000,
                       .spacing_ms = 60, .jitter_us = 5000, .timeout_ms = 2000};
    static const struct option longs[] = {
        {"amqp-url-file", required_argument, NULL, 'u'}, {"only", required_argument, NULL, 'o'},
        {"docs", required_argument, NULL, 'd'},          {"trials", required_argument, NULL, 'r'},
        {"tp-timeout-s", required_argument, NULL, 'x'},  {"changes", required_argument, NULL, 'n'},
        {"spacing-ms", required_argument, NULL, 's'},    {"jitter-ms", required_argument, NULL, 'J'},
        {"timeout-ms", required_argument, NULL, 'T'},    {"bin-dir", required_argument, NULL, 'B'},
        {"keep", no_argument, NULL, 'k'},                {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},                {NULL, 0, NULL, 0}};
    int ch;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        uint64_t v = 0;
        bool ok = true;
        switch (ch) {
        case 'u': o->url_file = optarg; break;
        case 'o':
            if (strcmp(optarg, "throughput") == 0) o->do_lat = false;
            else if (strcmp(optarg, "latency") == 0) o->do_tp = false;
            else ok = false;
            break;
        case 'd': ok = bu_parse_size(optarg, &v) && v >= 2 && v <= 100000000; o->docs = (uint32_t)v; break;
        case 'r': ok = bu_parse_size(optarg, &v) && v >= 1 && v <= 100; o->trials = (uint32_t)v; break;
        case 'x': ok = bu_parse_size(optarg, &v) && v >= 1 && v <= 3600; o->tp_timeout_s = (uint32_t)v; break;
        case 'n': ok = bu_parse_size(optarg, &v) && v >= 1 && v <= 1000000; o->changes = (uint32_t)v; break;
        case 's': ok = bu_parse_size(optarg, &v) && v <= 600000; o->spacing_ms = (uint32_t)v; break;
        case 'J': {
            double d = 0;
            ok = bu_parse_double(optarg, &d) && d <= 10000;
            o->jitter_us = (uint32_t)(d * 1000);
            break;
        }
        case 'T': ok = bu_parse_size(optarg, &v) && v >= 10 && v <= 600000; o->timeout_ms = (uint32_t)v; break;
        case 'B': o->bindir = optarg; break;
        case 'k': o->keep = true; break;
        case 'j': o->json = true; break;
        case 'h': usage(stdout); exit(0);
        default: return bu_usage_error("unknown option '%s'", argv[optind - 1]);
        }
        if (!ok) return bu_bad_value(argv);
    }
    if (optind < argc) return bu_usage_error("unexpected argument '%s'", argv[optind]);
    if (o->url_file == NULL || access(o->url_file, R_OK) != 0) {
        fprintf(stderr, "ph-bench-amqp: --amqp-url-file (or $PH_AMQP_URL_FILE) must name a "
                        "readable URL file (deploy/rabbitmq url-file --dir DIR)\n");
        return 2;
    }
    return 0;
}

/* The private temporary folder (bu_tmpdir): logs, sinks, the journal. */
static char *g_tmp;

/* ---- AMQP consumer ------------------------------------------------------- */

static bool reply_ok(const char *what, amqp_rpc_reply_t r, char *err, size_t n)
{
    if (r.reply_type == AMQP_RESPONSE_NORMAL) return true;
    if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION)
        snprintf(err, n, "%s: %s", what, amqp_error_string2(r.library_error));
    else
        snprintf(err, n, "%s failed (reply type %d)", what, r.reply_type);
    return false;
}

/* Connects, declares an exclusive server-named queue bound to `keys` on
 * ph.control, starts a no-ack consumer. NULL on failure (err set). */
static amqp_connection_state_t consumer_open(const char *url_file, const char *const *keys, int nkeys,
                                             char *err, size_t n)
{
    static char url[2048];
    FILE *f = fopen(url_file, "r");
    if (f == NULL || fgets(url, sizeof url, f) == NULL) {
        if (f) fclose(f);
        snprintf(err, n, "cannot read %s", url_file);
        return NULL;
    }
    fclose(f);
    url[strcspn(url, "\r\n")] = '\0';
    struct amqp_connection_info ci;
    amqp_default_connection_info(&ci);
    if (amqp_parse_url(url, &ci) != AMQP_STATUS_OK) {
        snprintf(err, n, "bad URL in %s", url_file);
        return NULL;
    }
    amqp_connection_state_t c = amqp_new_connection();
    amqp_socket_t *s = amqp_tcp_socket_new(c);
    struct timeval tv = {5, 0};
    int rc = amqp_socket_open_noblock(s, ci.host, ci.port, &tv);
    if (rc != AMQP_STATUS_OK) {
        snprintf(err, n, "connect %s:%d: %s", ci.host, ci.port, amqp_error_string2(rc));
        amqp_destroy_connection(c);
        return NULL;
    }
    if (!reply_ok("login", amqp_login(c, ci.vhost, 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, ci.user, ci.password), err, n))
        goto fail;
    amqp_channel_open(c, 1);
    if (!reply_ok("channel.open", amqp_get_rpc_reply(c), err, n)) goto fail;
    amqp_exchange_declare(c, 1, amqp_cstring_bytes(EXCHANGE), amqp_cstring_bytes("topic"), 0, 1, 0, 0,
                          amqp_empty_table);
    if (!reply_ok("exchange.declare", amqp_get_rpc_reply(c), err, n)) goto fail;
    amqp_queue_declare_ok_t *q = amqp_queue_declare(c, 1, amqp_empty_bytes, 0, 0, 1, 1, amqp_empty_table);
    if (!reply_ok("queue.declare", amqp_get_rpc_reply(c), err, n)) goto fail;
    amqp_bytes_t qn = amqp_bytes_malloc_dup(q->queue);
    for (int i = 0; i < nkeys; i++) {
        amqp_queue_bind(c, 1, qn, amqp_cstring_bytes(EXCHANGE), amqp_cstring_bytes(keys[i]), amqp_empty_table);
        if (!reply_ok("queue.bind", amqp_get_rpc_reply(c), err, n)) {
            amqp_bytes_free(qn);
            goto fail;
        }
    }
    amqp_basic_consume(c, 1, qn, amqp_empty_bytes, 0, 1, 1, amqp_empty_table);
    amqp_bytes_free(qn);
    if (!reply_ok("basic.consume", amqp_get_rpc_reply(c), err, n)) goto fail;
    return c;
fail:
    amqp_destroy_connection(c);
    return NULL;
}

static void consumer_close(amqp_connection_state_t c)
{
    if (c == NULL) return;
    amqp_channel_close(c, 1, AMQP_REPLY_SUCCESS);
    amqp_connection_close(c, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(c);
}

/* ---- 1. throughput --------------------------------------------------------- */

struct tp_consumer {
    amqp_connection_state_t conn;
    uint64_t *t; /* CLOCK_MONOTONIC of every message received, by index */
    uint64_t cap;
    _Atomic uint64_t got;
    _Atomic bool stop;
    uint64_t body_bytes;
    char rk[256];
    char error[256];
};

static void *tp_consume(void *arg)
{
    struct tp_consumer *c = arg;
    while (!atomic_load(&c->stop)) {
        amqp_envelope_t env;
        struct timeval tv = {0, 100000};
        amqp_maybe_release_buffers(c->conn);
        amqp_rpc_reply_t r = amqp_consume_message(c->conn, &env, &tv, 0);
        const uint64_t t = bu_now_ns();
        if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && r.library_error == AMQP_STATUS_TIMEOUT)
            continue;
        if (r.reply_type != AMQP_RESPONSE_NORMAL) {
            reply_ok("consume", r, c->error, sizeof c->error);
            break;
        }
        const uint64_t i = atomic_load_explicit(&c->got, memory_order_relaxed);
        if (i < c->cap) c->t[i] = t;
        if (i == 0) {
            c->body_bytes = env.message.body.len;
            snprintf(c->rk, sizeof c->rk, "%.*s", (int)env.routing_key.len, (char *)env.routing_key.bytes);
        }
        atomic_store_explicit(&c->got, i + 1, memory_order_release);
        amqp_destroy_envelope(&env);
    }
    return NULL;
}

struct tp_trial {
    double consumed_per_s, e2e_per_s, bridge_per_s;
    double cpu_ms_per_10k_ticks, cpu_ms_per_10k_sched, cpu_pct;
    double run_s;
    uint64_t consumed;
    bool ok;
};

struct tp_result {
    struct tp_trial tr[100];
    uint32_t ntr;
    double med_consumed, med_e2e, med_bridge, med_cpu_ticks, med_cpu_sched, med_cpu_pct;
    size_t mp_bytes, env_bytes;
    char rk[256];
    uint64_t refused;
    const char *fail;
};

/* Writes n copies of doc into the out ring as fast as it accepts them;
 * polls the bridge's docs_published counter meanwhile. */
static bool tp_write(ph_ring_producer *p, struct ph_chan_header *h, const char *doc, uint32_t len, uint64_t n,
                     uint64_t pub_base, uint64_t *pub_first, uint64_t deadline)
{
    uint64_t left = n;
    while (left > 0) {
        uint32_t k = 0;
        void *dst;
        while (left > 0 && (dst = ph_ring_claim(p, PH_DOC_RECORD, len)) != NULL) {
            memcpy(dst, doc, len);
            left--;
            k++;
        }
        if (k > 0) ph_ring_publish(p);
        if (*pub_first == 0 && atomic_load_explicit(&h->docs_published, memory_order_relaxed) > pub_base)
            *pub_first = bu_now_ns();
        if (left > 0) {
            if (bu_now_ns() > deadline) return false;
            bu_sleep_ns(50000);
        }
    }
    return true;
}

static void run_throughput(const struct opts *o, const char *br_bin, struct tp_result *res)
{
    memset(res, 0, sizeof *res);
    char id[64], err[512], br_log[PATH_MAX];
    bu_swarm_id(id, sizeof id, "bench-amqp-tp");
    snprintf(br_log, sizeof br_log, "%s/bridge-tp.log", g_tmp);
    bu_cleanup_add_swarm(id);
    struct ph_channel ch;
    memset(&ch, 0, sizeof ch);
    pid_t br = -1;
    struct tp_consumer cons;
    memset(&cons, 0, sizeof cons);
    pthread_t th;
    bool th_started = false;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);

    if (ph_channel_create(&ch, id, 0, 0, err, sizeof err) != PH_OK) {
        static char why[600];
        snprintf(why, sizeof why, "ph_channel_create: %s", err);
        res->fail = why;
        goto done;
    }
    uint64_t start = 0;
    ph_proc_start_time(getpid(), &start);
    atomic_store_explicit(&ch.hdr->controller_start_time, start, memory_order_relaxed);
    atomic_store_explicit(&ch.hdr->controller_pid, (int32_t)getpid(), memory_order_release);
    ph_ring_producer p;
    if (ph_ring_producer_init(&p, &ch.hdr->out, ch.out_data, ch.out_ring) != PH_OK) {
        res->fail = "the channel's out ring positions are inconsistent";
        goto done;
    }

    char ctl_inst[96];
    snprintf(ctl_inst, sizeof ctl_inst, "%.60s-controller", id);
    json_t *doc = sample_controller_delta(id, ctl_inst);
    sample_pack(doc, &sb);
    json_decref(doc);
    res->mp_bytes = sb.size;

    char key[160];
    snprintf(key, sizeof key, "event.metric.status-delta.%s.#", id);
    const char *keys[1] = {key};
    cons.conn = consumer_open(o->url_file, keys, 1, err, sizeof err);
    if (cons.conn == NULL) {
        static char why[600];
        snprintf(why, sizeof why, "consumer: %s", err);
        res->fail = why;
        goto done;
    }
    const uint64_t warm = 1000;
    cons.cap = warm + (uint64_t)o->docs * o->trials;
    cons.t = calloc(cons.cap, sizeof *cons.t);
    if (cons.t == NULL || pthread_create(&th, NULL, tp_consume, &cons) != 0) {
        res->fail = "out of memory / thread";
        goto done;
    }
    th_started = true;

    char *bargv[] = {(char *)br_bin, "--swarm", id, "--sink", "amqp", "--amqp-url-file", (char *)o->url_file,
                     NULL};
    br = bu_spawn(bargv, br_log);
    uint64_t dl = bu_now_ns() + 10000000000ull;
    while (atomic_load(&ch.hdr->bridge_pid) != br && bu_now_ns() < dl) bu_sleep_ns(5000000);
    if (atomic_load(&ch.hdr->bridge_pid) != br) {
        res->fail = "the bridge did not register on the channel within 10 s (see its log with --keep)";
        goto done;
    }
    /* Warm-up: the whole path is live once these are consumed. */
    uint64_t pf = 0;
    tp_write(&p, ch.hdr, sb.data, (uint32_t)sb.size, warm, 0, &pf, bu_now_ns() + 20000000000ull);
    dl = bu_now_ns() + 20000000000ull;
    while (atomic_load(&cons.got) < warm && bu_now_ns() < dl && cons.error[0] == '\0') bu_sleep_ns(1000000);
    if (atomic_load(&cons.got) < warm) {
        res->fail = cons.error[0] ? cons.error : "the warm-up documents did not reach the consumer within 20 s";
        goto done;
    }
    snprintf(res->rk, sizeof res->rk, "%s", cons.rk);
    res->env_bytes = cons.body_bytes;

    for (uint32_t t = 0; t < o->trials; t++) {
        struct tp_trial *tr = &res->tr[res->ntr++];
        const uint64_t base = atomic_load(&cons.got);
        const uint64_t pub_base = atomic_load(&ch.hdr->docs_published);
        uint64_t tk0 = 0, ns0 = 0, tk1 = 0, ns1 = 0;
        bu_proc_cpu_ticks(br, &tk0);
        bu_proc_runtime_ns(br, &ns0);
        const uint64_t t0 = bu_now_ns();
        const uint64_t deadline = t0 + (uint64_t)o->tp_timeout_s * 1000000000ull;
        uint64_t pub_first = 0, pub_last = 0;
        tp_write(&p, ch.hdr, sb.data, (uint32_t)sb.size, o->docs, pub_base, &pub_first, deadline);
        while (bu_now_ns() < deadline && cons.error[0] == '\0') {
            const uint64_t pub = atomic_load_explicit(&ch.hdr->docs_published, memory_order_relaxed);
            if (pub_first == 0 && pub > pub_base) pub_first = bu_now_ns();
            if (pub_last == 0 && pub >= pub_base + o->docs) pub_last = bu_now_ns();
            if (atomic_load(&cons.got) >= base + o->docs) break;
            bu_sleep_ns(200000);
        }
        const uint64_t got = atomic_load(&cons.got) - base;
        bu_proc_cpu_ticks(br, &tk1);
        bu_proc_runtime_ns(br, &ns1);
        tr->consumed = got;
        tr->run_s = (double)(bu_now_ns() - t0) / 1e9;
        if (got < o->docs) continue; /* timed out: reported as such */
        const uint64_t first = cons.t[base], last = cons.t[base + o->docs - 1];
        tr->consumed_per_s = (double)(o->docs - 1) / ((double)(last - first) / 1e9);
        tr->e2e_per_s = (double)o->docs / ((double)(last - t0) / 1e9);
        tr->bridge_per_s = pub_last > pub_first ? (double)(o->docs - 1) / ((double)(pub_last - pub_first) / 1e9) : NAN;
        const double hz = (double)sysconf(_SC_CLK_TCK);
        tr->cpu_ms_per_10k_ticks = (double)(tk1 - tk0) / hz * 1e3 / (double)o->docs * 1e4;
        tr->cpu_ms_per_10k_sched = (double)(ns1 - ns0) / 1e6 / (double)o->docs * 1e4;
        tr->cpu_pct = (double)(ns1 - ns0) / (double)(last - t0) * 100.0;
        tr->ok = true;
    }
    res->refused = atomic_load(&ch.hdr->docs_refused);
    double v[6][100];
    uint32_t k = 0;
    for (uint32_t i = 0; i < res->ntr; i++) {
        if (!res->tr[i].ok) continue;
        v[0][k] = res->tr[i].consumed_per_s;
        v[1][k] = res->tr[i].e2e_per_s;
        v[2][k] = res->tr[i].bridge_per_s;
        v[3][k] = res->tr[i].cpu_ms_per_10k_ticks;
        v[4][k] = res->tr[i].cpu_ms_per_10k_sched;
        v[5][k] = res->tr[i].cpu_pct;
        k++;
    }
    if (k == 0) {
        res->fail = "no trial completed within --tp-timeout-s";
    } else {
        res->med_consumed = bu_median(v[0], k);
        res->med_e2e = bu_median(v[1], k);
        res->med_bridge = bu_median(v[2], k);
        res->med_cpu_ticks = bu_median(v[3], k);
        res->med_cpu_sched = bu_median(v[4], k);
        res->med_cpu_pct = bu_median(v[5], k);
    }

done:
    if (br > 0) bu_stop_child(br, 5);
    if (th_started) {
        atomic_store(&cons.stop, true);
        pthread_join(th, NULL);
    }
    consumer_close(cons.conn);
    free(cons.t);
    msgpack_sbuffer_destroy(&sb);
    if (ch.base != NULL) ph_channel_close(&ch);
    bu_cleanup_del_swarm(id);
}

/* ---- 2. latency ------------------------------------------------------------ */

struct lat_result {
    double p50, p90, p99, max, mean;
    uint32_t changes, matched, timeouts;
    uint64_t deltas, fulls;
    size_t delta_bytes;
    double run_s;
    const char *fail;
};

struct await {
    int want_in;
    uint64_t recv_ns;
    uint64_t deltas, fulls, other;
    size_t last_delta_bytes;
};

static void worker_service(ph_worker *w)
{
    ph_worker_tick(w);
    struct ph_command cmd;
    while (ph_worker_poll_command(w, &cmd) > 0)
        if (cmd.type != PH_COMMAND_STATUS_REQUEST) ph_worker_ack(w, cmd.token, true, "bench");
}

/* Receives what is there for up to wait_us; true when the awaited delta came. */
static bool lat_pump(amqp_connection_state_t c, struct await *a, long wait_us, char *err, size_t n)
{
    for (;;) {
        amqp_envelope_t env;
        struct timeval tv = {wait_us / 1000000, wait_us % 1000000};
        amqp_maybe_release_buffers(c);
        amqp_rpc_reply_t r = amqp_consume_message(c, &env, &tv, 0);
        const uint64_t t = ph_real_ns();
        if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && r.library_error == AMQP_STATUS_TIMEOUT)
            return false;
        if (r.reply_type != AMQP_RESPONSE_NORMAL) {
            reply_ok("consume", r, err, n);
            return false;
        }
        bool hit = false;
        const char *rk = env.routing_key.bytes;
        const size_t rklen = env.routing_key.len;
        if (rklen > 24 && memmem(rk, rklen, "status-full", 11) != NULL) {
            a->fulls++;
        } else if (rklen > 24 && memmem(rk, rklen, "status-delta", 12) != NULL) {
            a->deltas++;
            a->last_delta_bytes = env.message.body.len;
            json_error_t je;
            json_t *e = json_loadb(env.message.body.bytes, env.message.body.len, 0, &je);
            const char *in = json_string_value(json_object_get(
                json_object_get(json_object_get(json_object_get(e, "data"), "ioState"), "work"), "input"));
            hit = in != NULL && a->want_in >= 0 && strcmp(in, ph_io_in_name(a->want_in)) == 0;
            json_decref(e);
            if (hit) a->recv_ns = t;
        } else {
            a->other++;
        }
        amqp_destroy_envelope(&env);
        if (hit) return true;
        wait_us = 0; /* drain what is buffered, then return */
    }
}

static void run_latency(const struct opts *o, const char *ctl_bin, const char *br_bin, struct lat_result *res)
{
    memset(res, 0, sizeof *res);
    res->p50 = res->p90 = res->p99 = res->max = res->mean = NAN;
    res->changes = o->changes;
    char id[64], err[512], ctl_log[PATH_MAX], br_log[PATH_MAX];
    bu_swarm_id(id, sizeof id, "bench-amqp-lat");
    snprintf(ctl_log, sizeof ctl_log, "%s/controller.log", g_tmp);
    snprintf(br_log, sizeof br_log, "%s/bridge-lat.log", g_tmp);
    bu_cleanup_add_swarm(id);
    pid_t ctl = -1, br = -1;
    ph_worker *w = NULL;
    amqp_connection_state_t c = NULL;
    double *lat = calloc(o->changes, sizeof *lat);
    struct await aw = {.want_in = -1};

    char *cargv[] = {(char *)ctl_bin, "--swarm", id, "--journal-dir", g_tmp, "--run-id", "journal", NULL};
    ctl = bu_spawn(cargv, ctl_log);
    bool up = false;
    for (int i = 0; i < 200 && !up && ctl > 0; i++) {
        struct ph_segment seg;
        if (ph_segment_open(&seg, id, false, err, sizeof err) == PH_OK) {
            up = atomic_load(&seg.hdr->controller_pid) == ctl;
            ph_segment_close(&seg);
        }
        if (!up) bu_sleep_ns(25 * 1000000ull);
    }
    if (!up) {
        res->fail = "the controller did not create its segment within 5 s";
        goto done;
    }
    char k1[160], k2[160];
    snprintf(k1, sizeof k1, "event.metric.status-delta.%s.swarm-controller.#", id);
    snprintf(k2, sizeof k2, "event.metric.status-full.%s.swarm-controller.#", id);
    const char *keys[2] = {k1, k2};
    c = consumer_open(o->url_file, keys, 2, err, sizeof err);
    if (c == NULL) {
        static char why[600];
        snprintf(why, sizeof why, "consumer: %s", err);
        res->fail = why;
        goto done;
    }
    char *bargv[] = {(char *)br_bin, "--swarm", id, "--sink", "amqp", "--amqp-url-file", (char *)o->url_file,
                     NULL};
    br = bu_spawn(bargv, br_log);
    err[0] = '\0';
    uint64_t dl = bu_now_ns() + 15000000000ull;
    while (aw.fulls == 0 && bu_now_ns() < dl && err[0] == '\0') lat_pump(c, &aw, 100000, err, sizeof err);
    if (aw.fulls == 0) {
        res->fail = "no controller status-full from the broker within 15 s (bridge not connected?)";
        goto done;
    }
    w = ph_worker_attach(&(struct ph_worker_opts){.swarm_id = id, .role = "bench", .instance = "bench-1"}, err,
                         sizeof err);
    if (w == NULL) {
        static char why[600];
        snprintf(why, sizeof why, "ph_worker_attach: %s", err);
        res->fail = why;
        goto done;
    }
    ph_worker_set_enabled(w, false);
    int state = 0;
    uint64_t last = bu_now_ns();
    uint64_t rng = last ^ ((uint64_t)getpid() << 32) ^ 0x9e3779b97f4a7c15ull;
    const uint64_t run0 = bu_now_ns();
    for (uint32_t i = 0; i <= o->changes; i++) { /* i == 0: warm-up */
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        const uint64_t jitter = o->jitter_us ? rng % ((uint64_t)o->jitter_us * 1000u) : 0;
        const uint64_t due = last + (uint64_t)o->spacing_ms * 1000000ull + jitter;
        for (;;) {
            const uint64_t now = bu_now_ns();
            if (now >= due) break;
            worker_service(w);
            const uint64_t left_us = (due - now) / 1000;
            lat_pump(c, &aw, (long)(left_us < 5000 ? left_us : 5000), err, sizeof err);
        }
        lat_pump(c, &aw, 0, err, sizeof err); /* nothing stale left */
        state ^= 1;
        ph_worker_set_io_state(w, state ? PH_IN_BACKPRESSURE : PH_IN_OK, PH_OUT_OK);
        aw.want_in = state ? PH_IN_BACKPRESSURE : PH_IN_OK;
        ph_worker_publish_status(w);
        const uint64_t t0 = ph_real_ns();
        const uint64_t deadline = bu_now_ns() + (uint64_t)o->timeout_ms * 1000000ull;
        bool ok = false;
        err[0] = '\0';
        while (!ok && bu_now_ns() < deadline && err[0] == '\0') {
            ok = lat_pump(c, &aw, 5000, err, sizeof err);
            worker_service(w);
        }
        last = bu_now_ns();
        if (err[0] != '\0') {
            static char why[600];
            snprintf(why, sizeof why, "consumer: %s", err);
            res->fail = why;
            break;
        }
        if (i == 0) continue;
        if (!ok) {
            res->timeouts++;
            continue;
        }
        lat[res->matched++] = ((double)aw.recv_ns - (double)t0) / 1e6;
    }
    res->run_s = (double)(bu_now_ns() - run0) / 1e9;
    if (res->matched > 0) {
        double sum = 0;
        for (uint32_t i = 0; i < res->matched; i++) sum += lat[i];
        res->mean = sum / res->matched;
        res->p50 = bu_percentile(lat, res->matched, 50);
        res->p90 = bu_percentile(lat, res->matched, 90);
        res->p99 = bu_percentile(lat, res->matched, 99);
        res->max = lat[res->matched - 1];
    }
done:
    res->deltas = aw.deltas;
    res->fulls = aw.fulls;
    res->delta_bytes = aw.last_delta_bytes;
    ph_worker_detach(w);
    if (br > 0) bu_stop_child(br, 5);
    if (ctl > 0) bu_stop_child(ctl, 5);
    consumer_close(c);
    free(lat);
    bu_cleanup_del_swarm(id);
}

/* ---- main ----------------------------------------------------------------- */

int main(int argc, char **argv)
{
    struct opts o;
    int rc = parse_opts(argc, argv, &o);
    if (rc != 0) return rc;
    bu_cleanup_install();
    ph_log_init("ph-bench-amqp", NULL);
    const double load0 = bu_loadavg1();
    char ctl_bin[PATH_MAX], br_bin[PATH_MAX];
    if (!bu_bin_path(o.bindir, "ph-swarm-controller", ctl_bin, sizeof ctl_bin) ||
        !bu_bin_path(o.bindir, "ph-bridge", br_bin, sizeof br_bin)) {
        fprintf(stderr, "ph-bench-amqp: ph-swarm-controller or ph-bridge not found next to this program "
                        "(build them, or pass --bin-dir)\n");
        return 1;
    }
    g_tmp = bu_tmpdir("amqp", o.keep);
    if (g_tmp == NULL) {
        perror("ph-bench-amqp: cannot create a folder in /tmp");
        return 1;
    }

    static struct tp_result tp;
    static struct lat_result lr;
    memset(&tp, 0, sizeof tp);
    memset(&lr, 0, sizeof lr);
    if (o.do_tp) run_throughput(&o, br_bin, &tp);
    const double load_mid = bu_loadavg1();
    if (o.do_lat) run_latency(&o, ctl_bin, br_bin, &lr);
    const double load1 = bu_loadavg1();
    const bool busy = load0 > 1.5 || load_mid > 1.5 || load1 > 1.5;

    if (o.json) {
        struct bu_json j;
        bu_json_begin(&j, stdout);
        bu_json_str(&j, "benchmark", "ph-bench-amqp");
        if (o.do_tp) {
            bu_json_obj(&j, "throughput");
            bu_json_str(&j, "error", tp.fail);
            bu_json_num(&j, "envelopes_per_s", tp.med_consumed);
            bu_json_num(&j, "end_to_end_per_s", tp.med_e2e);
            bu_json_num(&j, "bridge_published_per_s", tp.med_bridge);
            bu_json_num(&j, "bridge_cpu_ms_per_10k", tp.med_cpu_sched);
            bu_json_num(&j, "bridge_cpu_ms_per_10k_ticks", tp.med_cpu_ticks);
            bu_json_num(&j, "bridge_cpu_pct", tp.med_cpu_pct);
            bu_json_int(&j, "docs_per_trial", o.docs);
            bu_json_int(&j, "trials", o.trials);
            bu_json_int(&j, "trials_completed", (int64_t)tp.ntr);
            bu_json_int(&j, "doc_msgpack_bytes", (int64_t)tp.mp_bytes);
            bu_json_int(&j, "envelope_bytes", (int64_t)tp.env_bytes);
            bu_json_str(&j, "routing_key", tp.rk);
            bu_json_int(&j, "docs_refused", (int64_t)tp.refused);
            bu_json_close(&j);
        }
        if (o.do_lat) {
            bu_json_obj(&j, "latency");
            bu_json_str(&j, "error", lr.fail);
            bu_json_num(&j, "p50_ms", lr.p50);
            bu_json_num(&j, "p90_ms", lr.p90);
            bu_json_num(&j, "p99_ms", lr.p99);
            bu_json_num(&j, "max_ms", lr.max);
            bu_json_num(&j, "mean_ms", lr.mean);
            bu_json_bool(&j, "target_p99_30ms_met", lr.matched > 0 && lr.p99 <= 30.0);
            bu_json_int(&j, "changes", lr.changes);
            bu_json_int(&j, "matched", lr.matched);
            bu_json_int(&j, "timeouts", lr.timeouts);
            bu_json_int(&j, "controller_deltas_seen", (int64_t)lr.deltas);
            bu_json_int(&j, "delta_envelope_bytes", (int64_t)lr.delta_bytes);
            bu_json_num(&j, "run_s", lr.run_s);
            bu_json_int(&j, "spacing_ms", o.spacing_ms);
            bu_json_num(&j, "jitter_ms", o.jitter_us / 1000.0);
            bu_json_close(&j);
        }
        bu_json_obj(&j, "params");
        bu_json_num(&j, "loadavg1_at_start", load0);
        bu_json_num(&j, "loadavg1_between", load_mid);
        bu_json_num(&j, "loadavg1_at_end", load1);
        bu_json_bool(&j, "machine_busy", busy);
        bu_json_int(&j, "cpus", sysconf(_SC_NPROCESSORS_ONLN));
        bu_json_close(&j);
        bu_json_end(&j);
    } else {
        printf("ph-bench-amqp: ph-bridge --sink amqp, local broker; load average %.2f at start, %.2f "
               "between, %.2f at end\n", load0, load_mid, load1);
        if (busy) printf("WARNING: the machine is busy: these figures are not representative\n");
        if (o.do_tp) {
            printf("\n  throughput: controller status-delta, %zu B msgpack -> %zu B envelope (%s)\n",
                   tp.mp_bytes, tp.env_bytes, tp.rk);
            if (tp.fail) printf("  failed: %s\n", tp.fail);
            printf("  %-6s %10s %12s %12s %14s %14s %8s %8s\n", "trial", "consumed", "consumed/s", "e2e/s",
                   "bridge pub/s", "CPU ms/10k", "CPU %", "run s");
            for (uint32_t i = 0; i < tp.ntr; i++) {
                const struct tp_trial *t = &tp.tr[i];
                printf("  %-6u %10llu %12.0f %12.0f %14.0f %14.1f %8.1f %8.2f%s\n", i + 1,
                       (unsigned long long)t->consumed, t->consumed_per_s, t->e2e_per_s, t->bridge_per_s,
                       t->cpu_ms_per_10k_sched, t->cpu_pct, t->run_s, t->ok ? "" : "  (timed out)");
            }
            printf("  %-6s %10s %12.0f %12.0f %14.0f %14.1f %8.1f\n", "median", "", tp.med_consumed, tp.med_e2e,
                   tp.med_bridge, tp.med_cpu_sched, tp.med_cpu_pct);
            printf("  (CPU: ph-bridge schedstat; from /proc/PID/stat ticks: %.1f ms/10k. refused %llu)\n",
                   tp.med_cpu_ticks, (unsigned long long)tp.refused);
        }
        if (o.do_lat) {
            printf("\n  latency: worker ioState change -> controller status-delta consumed from the broker\n");
            if (lr.fail) printf("  failed: %s\n", lr.fail);
            printf("  %u changes (%u ms + 0..%.1f ms after the previous receipt), %u matched, %u timed out, "
                   "%.1f s; delta envelope %zu B\n",
                   lr.changes, o.spacing_ms, o.jitter_us / 1000.0, lr.matched, lr.timeouts, lr.run_s,
                   lr.delta_bytes);
            printf("  %-12s %8s %8s %8s %8s %8s\n", "ms", "p50", "p90", "p99", "max", "mean");
            printf("  %-12s %8.2f %8.2f %8.2f %8.2f %8.2f\n", "change->recv", lr.p50, lr.p90, lr.p99, lr.max,
                   lr.mean);
            printf("  target p99 <= 30 ms: %s\n",
                   lr.matched == 0 ? "n/a" : lr.p99 <= 30.0 ? "met" : "MISSED");
        }
        if (o.keep) printf("  kept %s\n", g_tmp);
    }
    return 0;
}
