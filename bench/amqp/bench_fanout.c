/* ph-bench-fanout: what one UI costs the broker, subscribed to the swarm
 * controller's aggregate versus subscribed to every worker's status
 * (issue 8's benchmark). See usage() for the method. Prints figures; never
 * asserts. */
#include <getopt.h>
#include <signal.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_util.h"
#include "ph/amqp.h"
#include "ph/log.h"
#include "ph/worker.h"

struct opts {
    uint32_t workers;
    uint32_t period_ms;
    double warmup, seconds;
    const char *url_file, *bindir;
    bool json, keep;
};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: ph-bench-fanout --amqp-url-file PATH [options]\n"
            "\n"
            "Starts a swarm of W workers (simulated in this process through the worker SDK,\n"
            "each reporting every period), its ph-swarm-controller (per-worker deltas on, as\n"
            "by default) and ph-bridge on the broker, and two subscribers like a UI:\n"
            "  aggregate   bound to event.metric.status-delta.<swarm>.swarm-controller.*\n"
            "              (what the project's UI subscribes to)\n"
            "  per-worker  bound to event.metric.# (what a UI subscribing to every worker's\n"
            "              status gets)\n"
            "After a warm-up it counts, for a window, the messages and bytes each receives\n"
            "and prints the rates and their ratio.\n"
            "\n"
            "  --amqp-url-file PATH   the broker (bench/amqp/fanout.sh starts a private one)\n"
            "  --workers W            simulated workers (default 1000)\n"
            "  --period-ms P          status record period per worker (default 1000)\n"
            "  --warmup S             seconds before counting (default 12)\n"
            "  --seconds S            counting window (default 30)\n"
            "  --bin DIR              where ph-swarm-controller and ph-bridge are (default:\n"
            "                         this program's folder)\n"
            "  --keep                 keep the folder of logs and journal (printed)\n"
            "  --json                 one JSON object instead of the table\n");
}

struct counter {
    const char *name;
    uint64_t msgs, bytes, by_kind[3]; /* controller delta, controller full, worker status */
    bool counting;
};

static int count(void *ctx, const char *rk, size_t rklen, const char *body, size_t len,
                 uint64_t delivery)
{
    (void)rklen, (void)body, (void)delivery;
    struct counter *c = ctx;
    if (!c->counting) return 0;
    c->msgs++;
    c->bytes += len;
    const bool ctl = strstr(rk, ".swarm-controller.") != NULL;
    c->by_kind[ctl ? (strstr(rk, "status-full") ? 1 : 0) : 2]++;
    return 0;
}

static struct ph_amqp *subscriber(const char *file, const char *queue, const char *key,
                                  struct counter *c)
{
    char err[400];
    struct ph_amqp_url url;
    if (ph_amqp_url_load(&url, file, err, sizeof err) != PH_OK) {
        fprintf(stderr, "ph-bench-fanout: %s\n", err);
        exit(1);
    }
    const struct ph_amqp_cfg cfg = {.name = c->name,
                                    .queue = queue,
                                    .prefetch = 1000,
                                    .auto_ack = true,
                                    .deliver = count,
                                    .deliver_ctx = c};
    struct ph_amqp *a;
    if (ph_amqp_open(&a, &url, &cfg, err, sizeof err) != PH_OK) {
        fprintf(stderr, "ph-bench-fanout: %s\n", err);
        exit(1);
    }
    ph_amqp_bind(a, json_pack("{s:b}", key, 1));
    return a;
}

int main(int argc, char **argv)
{
    struct opts o = {.workers = 1000, .period_ms = 1000, .warmup = 12, .seconds = 30};
    static const struct option longs[] = {
        {"amqp-url-file", required_argument, NULL, 'u'}, {"workers", required_argument, NULL, 'w'},
        {"period-ms", required_argument, NULL, 'p'},     {"warmup", required_argument, NULL, 'W'},
        {"seconds", required_argument, NULL, 's'},       {"bin", required_argument, NULL, 'b'},
        {"json", no_argument, NULL, 'j'},                {"help", no_argument, NULL, 'h'},
        {"keep", no_argument, NULL, 'k'},                {NULL, 0, NULL, 0}};
    int ch;
    uint64_t v;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        switch (ch) {
        case 'u': o.url_file = optarg; break;
        case 'w':
            if (!bu_parse_size(optarg, &v) || v == 0 || v > 60000) goto bad;
            o.workers = (uint32_t)v;
            break;
        case 'p':
            if (!bu_parse_size(optarg, &v) || v == 0 || v > 60000) goto bad;
            o.period_ms = (uint32_t)v;
            break;
        case 'W':
            if (!bu_parse_double(optarg, &o.warmup) || o.warmup < 0) goto bad;
            break;
        case 's':
            if (!bu_parse_double(optarg, &o.seconds) || o.seconds <= 0) goto bad;
            break;
        case 'b': o.bindir = optarg; break;
        case 'j': o.json = true; break;
        case 'k': o.keep = true; break;
        case 'h': usage(stdout); return 0;
        default: return bu_usage_error("unknown option '%s'", argv[optind - 1]);
        }
        continue;
    bad:
        return bu_bad_value(argv);
    }
    if (optind < argc) return bu_usage_error("unexpected argument '%s'", argv[optind]);
    if (o.url_file == NULL) return bu_usage_error("--amqp-url-file is required");
    ph_log_init("ph-bench-fanout", "bench");
    ph_log_set_level(PH_LOG_WARN);
    signal(SIGPIPE, SIG_IGN);
    bu_cleanup_install();
    const char *tmp = bu_tmpdir("fanout", o.keep);
    if (tmp == NULL) {
        perror("ph-bench-fanout: cannot create a folder in /tmp");
        return 1;
    }
    char ctl_log[PATH_MAX], br_log[PATH_MAX];
    snprintf(ctl_log, sizeof ctl_log, "%s/controller.log", tmp);
    snprintf(br_log, sizeof br_log, "%s/bridge.log", tmp);
    char swarm[PH_ID_MAX], ctl_inst[PH_ID_MAX + 16], slots[16], ctl_bin[4096], br_bin[4096],
        url_arg[4200];
    bu_swarm_id(swarm, sizeof swarm, "fan");
    snprintf(ctl_inst, sizeof ctl_inst, "%s-controller", swarm);
    snprintf(slots, sizeof slots, "%u", o.workers + 16);
    if (!bu_bin_path(o.bindir, "ph-swarm-controller", ctl_bin, sizeof ctl_bin) ||
        !bu_bin_path(o.bindir, "ph-bridge", br_bin, sizeof br_bin)) {
        fprintf(stderr, "ph-bench-fanout: ph-swarm-controller / ph-bridge not found\n");
        return 1;
    }
    snprintf(url_arg, sizeof url_arg, "%s", o.url_file);
    bu_cleanup_add_swarm(swarm);
    char *ctl_argv[] = {ctl_bin, "--swarm", swarm, "--slots", slots, "--worker-deltas", "on",
                        "--journal-dir", (char *)tmp, NULL};
    pid_t ctl = bu_spawn(ctl_argv, ctl_log);
    char *br_argv[] = {br_bin, "--swarm", swarm, "--controller-instance", ctl_inst, "--sink", "amqp",
                       "--amqp-url-file", url_arg, NULL};
    pid_t br = bu_spawn(br_argv, br_log);

    struct counter agg = {.name = "aggregate"}, all = {.name = "per-worker"};
    char key[200], q1[128], q2[128];
    snprintf(key, sizeof key, "event.metric.status-delta.%s.swarm-controller.*", swarm);
    snprintf(q1, sizeof q1, "ph.bench.fanout.agg.%d", (int)getpid());
    snprintf(q2, sizeof q2, "ph.bench.fanout.all.%d", (int)getpid());
    struct ph_amqp *sa = subscriber(o.url_file, q1, key, &agg);
    struct ph_amqp *sb = subscriber(o.url_file, q2, "event.metric.#", &all);

    /* The workers. */
    ph_worker **w = calloc(o.workers, sizeof *w);
    static const char *const roles[] = {"generator", "moderator", "processor", "postprocessor"};
    const uint64_t t_attach = bu_now_ns();
    for (uint32_t i = 0; i < o.workers; i++) {
        char inst[PH_ID_MAX], err[256];
        snprintf(inst, sizeof inst, "%.30s-%s-%u", swarm, roles[i % 4], i / 4 + 1);
        struct ph_worker_opts wo = {.swarm_id = swarm, .role = roles[i % 4], .instance = inst,
                                    .heartbeat_ms = o.period_ms, .attach_timeout_ms = 10000,
                                    .config_json = "{\"ratePerSec\": 10}"};
        w[i] = ph_worker_attach(&wo, err, sizeof err);
        if (w[i] == NULL) {
            fprintf(stderr, "ph-bench-fanout: worker %u: %s\n", i, err);
            return 1;
        }
        ph_worker_set_enabled(w[i], true);
        ph_worker_set_io_state(w[i], PH_IN_OK, PH_OUT_OK);
    }
    const double attach_s = (double)(bu_now_ns() - t_attach) / 1e9;

    const uint64_t t0 = bu_now_ns();
    const uint64_t warm_end = t0 + (uint64_t)(o.warmup * 1e9);
    const uint64_t end = warm_end + (uint64_t)(o.seconds * 1e9);
    uint64_t counted_from = 0, records = 0;
    for (uint64_t now = t0; now < end; now = bu_now_ns()) {
        if (counted_from == 0 && now >= warm_end) {
            counted_from = now;
            agg.counting = all.counting = true;
        }
        /* Every worker does some work and reports when its period is due. */
        for (uint32_t i = 0; i < o.workers; i++) {
            ph_worker_count(w[i], 1);
            ph_worker_tick(w[i]);
            struct ph_command cmd;
            while (ph_worker_poll_command(w[i], &cmd) > 0)
                if (cmd.type == PH_COMMAND_CONFIG_PATCH) ph_worker_ack(w[i], cmd.token, true, "ok");
        }
        records += o.workers;
        ph_amqp_flush(sa);
        ph_amqp_flush(sb);
        bu_sleep_ns(10000000);
    }
    const double window = (double)(bu_now_ns() - counted_from) / 1e9;
    const double ra = (double)agg.msgs / window, rb = (double)all.msgs / window;
    if (o.json) {
        struct bu_json j;
        bu_json_begin(&j, stdout);
        bu_json_int(&j, "workers", o.workers);
        bu_json_int(&j, "period_ms", o.period_ms);
        bu_json_num(&j, "window_s", window);
        bu_json_num(&j, "attach_s", attach_s);
        bu_json_num(&j, "aggregate_msgs_per_s", ra);
        bu_json_num(&j, "aggregate_bytes_per_s", (double)agg.bytes / window);
        bu_json_num(&j, "per_worker_msgs_per_s", rb);
        bu_json_num(&j, "per_worker_bytes_per_s", (double)all.bytes / window);
        bu_json_num(&j, "per_worker_worker_msgs_per_s", (double)all.by_kind[2] / window);
        bu_json_num(&j, "ratio", ra > 0 ? rb / ra : 0);
        bu_json_end(&j);
    } else {
        printf("swarm of %u workers reporting every %u ms; counted for %.1f s after %.0f s\n",
               o.workers, o.period_ms, window, o.warmup);
        printf("%-12s %12s %14s   %s\n", "subscriber", "msgs/s", "bytes/s", "what");
        printf("%-12s %12.1f %14.0f   controller deltas\n", "aggregate", ra,
               (double)agg.bytes / window);
        printf("%-12s %12.1f %14.0f   %.1f/s worker status, %.1f/s controller deltas, %.2f/s "
               "controller fulls\n",
               "per-worker", rb, (double)all.bytes / window, (double)all.by_kind[2] / window,
               (double)all.by_kind[0] / window, (double)all.by_kind[1] / window);
        printf("ratio per-worker/aggregate: %.1f (messages), %.1f (bytes)\n", ra > 0 ? rb / ra : 0,
               agg.bytes > 0 ? (double)all.bytes / (double)agg.bytes : 0);
    }
    for (uint32_t i = 0; i < o.workers; i++) ph_worker_detach(w[i]);
    free(w);
    ph_amqp_close(sa, 0);
    ph_amqp_close(sb, 0);
    bu_stop_child(br, 5);
    bu_stop_child(ctl, 5);
    bu_cleanup_del_swarm(swarm);
    if (o.keep) fprintf(stderr, "ph-bench-fanout: kept %s\n", tmp);
    (void)records;
    return 0;
}
