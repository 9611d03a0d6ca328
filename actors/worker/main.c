/* ph-worker: a worker actor ("bee") of one role with a synthetic workload.
 *
 * It attaches to its swarm's segment through the worker SDK (or, in remote
 * mode, speaks the contract over AMQP through the SDK's agent), runs the
 * workload in 10 ms steps, reports status through its slot, and applies
 * config patches from its command ring. Disabling the workload never stops
 * the control loop: commands are polled on every step either way. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "ph/log.h"
#include "ph/worker.h"
#include "workload.h"

#define STEP_NS 10000000L

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
    stop_signal = sig;
}

struct opts {
    const char *swarm, *role, *instance, *config, *config_file;
    const char *location, *controller;
    enum ph_worker_mode mode;
    uint32_t attach_timeout_ms;
    uint32_t heartbeat_ms; /* 0: the SDK's default for the mode */
};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: ph-worker --swarm ID --role ROLE --instance ID [options]\n"
            "\n"
            "A worker of one role running a synthetic workload; it reports status to\n"
            "its swarm controller through shared memory or, on a host without the\n"
            "swarm's segment, over AMQP (remote mode).\n"
            "\n"
            "options:\n"
            "  --config JSON            initial config (a JSON object)\n"
            "  --config-file PATH       initial config read from a file (preferred: argv is\n"
            "                           visible to every user, a file can be private)\n"
            "  --attach-timeout-ms N    wait this long for the swarm segment (default 10000)\n"
            "  --heartbeat-ms N         status at least this often (default 1000 local,\n"
            "                           5000 remote: the status-delta heartbeat)\n"
            "  --local                  shared memory only, never remote\n"
            "  --remote                 remote mode: status and signals over AMQP\n"
            "  --location HOST          where this worker runs, reported in its status\n"
            "                           (remote default: the host name)\n"
            "  --controller ID          remote: the swarm controller's instance id, the\n"
            "                           only origin whose config-updates are applied\n"
            "                           (default $PH_CONTROLLER_INSTANCE, else <swarm>-controller)\n"
            "  --help                   this text\n"
            "\n"
            "Without --local or --remote the mode is PH_WORKER_MODE (local, remote or\n"
            "auto; default auto): local when the segment appears within the attach\n"
            "timeout, else remote when a broker URL is configured. The broker URL is\n"
            "read from the file named by PH_AMQP_URL_FILE or from PH_AMQP_URL, never\n"
            "from the command line.\n"
            "\n"
            "config keys: ratePerSec, maxRatePerSec (cap: output throttled), datasetSize\n"
            "(finite: input out-of-data when done), errorRatio (output downstream-error),\n"
            "backpressure (input backpressure, half rate), enabled. Other keys are kept\n"
            "and reported, except values under keys naming secrets (dbPass, auth,\n"
            "apiKey...) and the credentials of URLs (amqp://user:***@host).\n");
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
    static const struct option longs[] = {
        {"swarm", required_argument, NULL, 's'},
        {"role", required_argument, NULL, 'r'},
        {"instance", required_argument, NULL, 'i'},
        {"config", required_argument, NULL, 'c'},
        {"config-file", required_argument, NULL, 'f'},
        {"attach-timeout-ms", required_argument, NULL, 'a'},
        {"heartbeat-ms", required_argument, NULL, 'b'},
        {"local", no_argument, NULL, 'L'},
        {"remote", no_argument, NULL, 'R'},
        {"location", required_argument, NULL, 'l'},
        {"controller", required_argument, NULL, 'C'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    memset(o, 0, sizeof *o);
    o->attach_timeout_ms = 10000;
    int ch, li = 0;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, "", longs, &li)) != -1) {
        char *end = NULL;
        unsigned long v = 0;
        switch (ch) {
        case 's': o->swarm = optarg; break;
        case 'r': o->role = optarg; break;
        case 'i': o->instance = optarg; break;
        case 'c': o->config = optarg; break;
        case 'f': o->config_file = optarg; break;
        case 'L':
        case 'R': {
            const enum ph_worker_mode m = ch == 'L' ? PH_WORKER_LOCAL : PH_WORKER_REMOTE;
            if (o->mode != PH_WORKER_AUTO && o->mode != m) {
                fprintf(stderr, "ph-worker: give --local or --remote, not both\n");
                return 2;
            }
            o->mode = m;
            break;
        }
        case 'l': o->location = optarg; break;
        case 'C': o->controller = optarg; break;
        case 'a':
        case 'b':
            errno = 0;
            v = strtoul(optarg, &end, 10);
            if (errno != 0 || *end != '\0' || end == optarg || optarg[0] == '-' || v > 3600000 ||
                (ch == 'b' && v == 0)) {
                fprintf(stderr, "ph-worker: invalid value '%s' for --%s\n", optarg,
                        longs[li].name);
                return 2;
            }
            if (ch == 'a') o->attach_timeout_ms = (uint32_t)v;
            else o->heartbeat_ms = (uint32_t)v;
            break;
        case 'h': usage(stdout); exit(0);
        default:
            fprintf(stderr, "ph-worker: unknown or incomplete option '%s'\n", argv[optind - 1]);
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "ph-worker: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (o->swarm == NULL || o->role == NULL || o->instance == NULL) {
        fprintf(stderr, "ph-worker: --swarm, --role and --instance are required\n");
        usage(stderr);
        return 2;
    }
    if (o->config != NULL && o->config_file != NULL) {
        fprintf(stderr, "ph-worker: give --config or --config-file, not both\n");
        return 2;
    }
    return 0;
}

static json_t *load_config(const struct opts *o)
{
    json_error_t je;
    json_t *c;
    if (o->config_file != NULL)
        c = json_load_file(o->config_file, 0, &je);
    else if (o->config != NULL)
        c = json_loads(o->config, 0, &je);
    else
        return json_object();
    if (c == NULL) {
        ph_error("config %s: %s (line %d)", o->config_file ? o->config_file : "--config", je.text,
                 je.line);
        return NULL;
    }
    if (!json_is_object(c)) {
        ph_error("config must be a JSON object");
        json_decref(c);
        return NULL;
    }
    return c;
}

/* io topology: queues named by the optional inQueue / outQueue config keys. */
static void publish_io(ph_worker *w, const json_t *config)
{
    json_t *queues = json_object();
    const char *keys[2] = {"inQueue", "outQueue"};
    const char *names[2] = {"in", "out"};
    for (int i = 0; i < 2; i++) {
        const json_t *q = json_object_get(config, keys[i]);
        if (json_is_string(q)) json_object_set_new(queues, names[i], json_pack("[O]", q));
    }
    json_t *io = json_pack("{s:{s:o}}", "work", "queues", queues);
    ph_worker_publish_io(w, io);
    json_decref(io);
}

struct bee {
    ph_worker *w;
    json_t *config;
    struct workload load;
    bool out_of_data_reported;
    bool command_ring_broken; /* said once */
};

static void apply_state(struct bee *b)
{
    ph_worker_set_enabled(b->w, b->load.cfg.enabled);
    ph_worker_set_io_state(b->w, workload_io_in(&b->load), workload_io_out(&b->load));
}

static bool handle_command(struct bee *b, const struct ph_command *cmd)
{
    char err[256];
    switch (cmd->type) {
    case PH_COMMAND_CONFIG_PATCH: {
        json_t *merged = json_deep_copy(b->config);
        json_object_update(merged, cmd->patch);
        struct workload_cfg next = b->load.cfg;
        if (!workload_cfg_parse(merged, &next, err, sizeof err)) {
            ph_warn("config patch refused: %s", err);
            ph_worker_ack(b->w, cmd->token, false, err);
            json_decref(merged);
            return true;
        }
        json_decref(b->config);
        b->config = merged;
        bool dataset_grew = next.dataset == 0 || next.dataset > b->load.cfg.dataset;
        b->load.cfg = next;
        if (dataset_grew && !workload_exhausted(&b->load)) b->out_of_data_reported = false;
        ph_worker_publish_config(b->w, b->config);
        publish_io(b->w, b->config);
        apply_state(b);
        ph_worker_publish_status(b->w);
        ph_worker_ack(b->w, cmd->token, true, "config applied");
        ph_info("config patch applied (enabled=%s, ratePerSec=%g)",
                b->load.cfg.enabled ? "true" : "false", b->load.cfg.rate);
        return true;
    }
    case PH_COMMAND_STOP:
        ph_info("stop command received");
        ph_worker_ack(b->w, cmd->token, true, "stopping");
        return false;
    case PH_COMMAND_STATUS_REQUEST:
    default: return true; /* answered by the SDK */
    }
}

int main(int argc, char **argv)
{
    struct opts o;
    int rc = parse_opts(argc, argv, &o);
    if (rc != 0) return rc;
    ph_log_init("ph-worker", o.instance);

    struct bee b = {0};
    b.config = load_config(&o);
    if (b.config == NULL) return 2;
    workload_cfg_defaults(&b.load.cfg);
    char err[512];
    if (!workload_cfg_parse(b.config, &b.load.cfg, err, sizeof err)) {
        ph_error("%s", err);
        return 2;
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    char *cfg_text = json_dumps(b.config, JSON_COMPACT);
    struct ph_worker_opts wo = {.swarm_id = o.swarm,
                                .role = o.role,
                                .instance = o.instance,
                                .config_json = cfg_text,
                                .heartbeat_ms = o.heartbeat_ms,
                                .attach_timeout_ms = o.attach_timeout_ms,
                                .location = o.location,
                                .mode = o.mode,
                                .controller = o.controller};
    b.w = ph_worker_attach(&wo, err, sizeof err);
    free(cfg_text);
    if (b.w == NULL) {
        ph_error("cannot attach: %s", err);
        json_decref(b.config);
        return 1;
    }
    publish_io(b.w, b.config);
    apply_state(&b);
    ph_worker_publish_status(b.w);
    if (ph_worker_remote(b.w))
        ph_info("attached to swarm %s as %s/%s in remote mode (AMQP)", o.swarm, o.role,
                o.instance);
    else
        ph_info("attached to swarm %s as %s/%s in slot %u", o.swarm, o.role, o.instance,
                ph_worker_slot(b.w));

    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    bool running = true;
    while (running && !stop_signal) {
        next.tv_nsec += STEP_NS;
        if (next.tv_nsec >= 1000000000L) {
            next.tv_nsec -= 1000000000L;
            next.tv_sec++;
        }
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);

        uint64_t errors = 0;
        uint64_t items = workload_step(&b.load, STEP_NS / 1e9, &errors);
        if (items > 0) ph_worker_count(b.w, items);
        if (errors > 0) ph_worker_count_errors(b.w, errors);
        if (workload_exhausted(&b.load) && !b.out_of_data_reported) {
            snprintf(err, sizeof err, "dataset of %llu items exhausted",
                     (unsigned long long)b.load.cfg.dataset);
            ph_worker_alert(b.w, "warn", "io.out-of-data", err);
            ph_info("%s", err);
            b.out_of_data_reported = true;
        }
        apply_state(&b);
        ph_worker_tick(b.w);

        struct ph_command cmd;
        int n = 0;
        while (running && (n = ph_worker_poll_command(b.w, &cmd)) > 0)
            running = handle_command(&b, &cmd);
        if (n == PH_ERR_SYS) {
            ph_warn("out of memory to read a command: trying again");
        } else if (n < 0 && !b.command_ring_broken) {
            /* Said once: the SDK ignores the ring from now on. */
            ph_error("command ring corrupt: commands are ignored from now on");
            b.command_ring_broken = true;
        }
        /* Catch up rather than burst after a long stall (e.g. SIGSTOP). */
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec > next.tv_sec + 1) next = now;
    }
    if (stop_signal) ph_info("signal %d received: detaching", (int)stop_signal);
    ph_worker_detach(b.w);
    json_decref(b.config);
    return 0;
}
