/* ph-bridge: the only process that speaks the ph.control wire contract.
 *
 * It turns the controller's documents (shared-memory channel, msgpack) into
 * contract envelopes for a sink, and signals from a source into documents
 * for the controller: the file sink with file/stdin signals, or RabbitMQ
 * (sink amqp: envelopes out, signals in from the controller's control
 * queue). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bridge.h"
#include "loop.h"
#include "ph/log.h"

struct opts {
    const char *swarm;
    const char *sink;
    const char *signals;
    const char *amqp_url_file;
    char instance[PH_ID_MAX + 16];
    uint32_t tick_ms;
    uint32_t idle_tick_ms;
    uint32_t attach_timeout_s;
    uint32_t max_signal_bytes;
    bool no_remote_workers;
};

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: ph-bridge --swarm ID [options]\n"
        "\n"
        "Publishes the swarm controller's documents (channel /dev/shm/ph.ID.bridge) as\n"
        "ph.control envelopes, and hands signals to the controller. Documents that would\n"
        "violate the contract are refused and counted; invalid signals are rejected,\n"
        "logged and reported by one rate-limited control.invalid-message alert.\n"
        "\n"
        "options:\n"
        "  --swarm ID                  swarm id ([A-Za-z0-9_-], at most 63 characters)\n"
        "  --sink SPEC                 where envelopes go; default: $PH_SINK\n"
        "                                file:PATH  append JSON lines\n"
        "                                           {\"routingKey\": ..., \"envelope\": ...}\n"
        "                                amqp       RabbitMQ exchange ph.control; signals are\n"
        "                                           consumed from the controller's control\n"
        "                                           queue; URL from $PH_AMQP_URL or\n"
        "                                           --amqp-url-file\n"
        "  --amqp-url-file PATH        file whose first line is the broker URL\n"
        "                              amqp://user:password@host:port/vhost (never give the\n"
        "                              URL itself on the command line)\n"
        "  --signals PATH|-            read signal lines of the same form: follow the file\n"
        "                              PATH from its start like tail -f, or read stdin (-)\n"
        "                              until it ends\n"
        "  --controller-instance ID    the controller's instance id, origin of the bridge's\n"
        "                              own alerts (default: ID-controller)\n"
        "  --no-remote-workers         amqp: do not merge workers that publish their own\n"
        "                              contract status (by default the bridge consumes the\n"
        "                              swarm's worker status on a second connection and\n"
        "                              stands in for each such worker in the segment, with\n"
        "                              transport amqp)\n"
        "  --tick-ms N                 loop tick in milliseconds, 1..1000 (default 5)\n"
        "  --idle-tick-ms N            tick while idle, 1..60000 (default 100): with\n"
        "                              nothing to read or send, the bridge sleeps until\n"
        "                              the controller rings its bell (a document\n"
        "                              written), the broker sends something, or this\n"
        "                              long has passed; never shorter than --tick-ms,\n"
        "                              at most 5000 with the amqp sink (its heartbeats\n"
        "                              go out on ticks)\n"
        "  --max-signal-bytes N        largest signal accepted, 256..16777216 (default %u)\n"
        "  --attach-timeout-s N        give up when no channel appears within N seconds\n"
        "                              of start, 1..3600 (default 10)\n"
        "  --help                      this text\n"
        "\n"
        "Exits 0 on SIGTERM or SIGINT after draining the channel and flushing the sink,\n"
        "and when the controller has ended a removed swarm (swarm-remove) and its last\n"
        "documents are published and confirmed by the broker; 2 on bad options; 1 when\n"
        "the sink or the channel cannot be used.\n",
        SIGCHECK_DEFAULT_MAX_BYTES);
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
    static const struct option longs[] = {{"swarm", required_argument, NULL, 's'},
                                          {"sink", required_argument, NULL, 'k'},
                                          {"signals", required_argument, NULL, 'g'},
                                          {"controller-instance", required_argument, NULL, 'c'},
                                          {"tick-ms", required_argument, NULL, 't'},
                                          {"idle-tick-ms", required_argument, NULL, 'i'},
                                          {"max-signal-bytes", required_argument, NULL, 'm'},
                                          {"attach-timeout-s", required_argument, NULL, 'a'},
                                          {"amqp-url-file", required_argument, NULL, 'u'},
                                          {"no-remote-workers", no_argument, NULL, 'r'},
                                          {"help", no_argument, NULL, 'h'},
                                          {NULL, 0, NULL, 0}};
    memset(o, 0, sizeof *o);
    o->tick_ms = 5;
    o->idle_tick_ms = 100;
    o->attach_timeout_s = 10;
    o->max_signal_bytes = SIGCHECK_DEFAULT_MAX_BYTES;
    const char *instance = NULL;
    int ch, li = 0;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, "", longs, &li)) != -1) {
        bool ok = true;
        switch (ch) {
        case 's':
            o->swarm = optarg;
            break;
        case 'k':
            o->sink = optarg;
            break;
        case 'g':
            o->signals = optarg;
            break;
        case 'u':
            o->amqp_url_file = optarg;
            break;
        case 'r':
            o->no_remote_workers = true;
            break;
        case 'c':
            instance = optarg;
            break;
        case 't':
            ok = ph_parse_u32(optarg, &o->tick_ms, 1, 1000);
            break;
        case 'i':
            ok = ph_parse_u32(optarg, &o->idle_tick_ms, 1, 60000);
            break;
        case 'm':
            ok = ph_parse_u32(optarg, &o->max_signal_bytes, 256, 16u << 20);
            break;
        case 'a':
            ok = ph_parse_u32(optarg, &o->attach_timeout_s, 1, 3600);
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            fprintf(stderr, "ph-bridge: unknown or incomplete option '%s'\n", argv[optind - 1]);
            usage(stderr);
            return 2;
        }
        if (!ok) {
            fprintf(stderr, "ph-bridge: invalid value '%s' for --%s (see --help)\n", optarg,
                    longs[li].name);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "ph-bridge: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (o->swarm == NULL) {
        fprintf(stderr, "ph-bridge: --swarm is required\n");
        usage(stderr);
        return 2;
    }
    char err[256];
    if (ph_ident_check("swarm id", o->swarm, err, sizeof err) != PH_OK) {
        fprintf(stderr, "ph-bridge: %s\n", err);
        return 2;
    }
    if (instance != NULL)
        snprintf(o->instance, sizeof o->instance, "%s", instance);
    else
        snprintf(o->instance, sizeof o->instance, "%s-controller", o->swarm);
    if (ph_ident_check("controller instance", o->instance, err, sizeof err) != PH_OK) {
        fprintf(stderr, "ph-bridge: %s%s\n", err,
                instance == NULL ? " (give --controller-instance)" : "");
        return 2;
    }
    if (o->sink == NULL) o->sink = getenv("PH_SINK");
    return 0;
}

int main(int argc, char **argv)
{
    struct opts o;
    int rc = parse_opts(argc, argv, &o);
    if (rc != 0) return rc;
    ph_log_init("ph-bridge", o.swarm);

    char err[256];
    struct sink *sink;
    const struct sink_cfg scfg = {
        .swarm = o.swarm,
        .controller_instance = o.instance,
        .amqp_url_file = o.amqp_url_file,
        .no_remote_workers = o.no_remote_workers,
    };
    rc = sink_open(o.sink, &scfg, &sink, err, sizeof err);
    if (rc != PH_OK) {
        fprintf(stderr, "ph-bridge: %s\n", err);
        return rc == PH_ERR_INVAL ? 2 : 1;
    }
    struct bridge b;
    const struct bridge_cfg cfg = {
        .swarm = o.swarm,
        .controller_instance = o.instance,
        .max_signal_bytes = o.max_signal_bytes,
    };
    if (bridge_init(&b, &cfg, sink, err, sizeof err) != PH_OK) {
        fprintf(stderr, "ph-bridge: %s\n", err);
        sink_close(sink);
        return 1;
    }
    ph_info("starting: sink %s, signals from %s, controller instance %s", sink->spec,
            o.signals != NULL ? (o.signals[0] == '-' && o.signals[1] == '\0' ? "stdin" : o.signals)
                              : "nowhere",
            o.instance);
    uint32_t idle_ms = o.idle_tick_ms > o.tick_ms ? o.idle_tick_ms : o.tick_ms;
    if (strcmp(sink->spec, "amqp") == 0 && idle_ms > AMQP_IDLE_TICK_MAX_MS) {
        ph_warn("--idle-tick-ms %u is more than the AMQP sink allows (its heartbeats go out on "
                "ticks): %u",
                idle_ms, AMQP_IDLE_TICK_MAX_MS);
        idle_ms = AMQP_IDLE_TICK_MAX_MS;
    }
    const struct loop_cfg lc = {
        .tick_ms = o.tick_ms,
        .idle_tick_ms = idle_ms,
        .attach_timeout_ns = (uint64_t)o.attach_timeout_s * 1000000000ull,
        .signals = o.signals,
        .max_line = o.max_signal_bytes,
    };
    rc = loop_run(&b, &lc);
    bridge_destroy(&b);
    sink_close(sink);
    return rc;
}
