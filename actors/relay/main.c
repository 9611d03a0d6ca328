/* ph-relay: a swarm's workers on a host that is not the controller's.
 *
 * It creates (or adopts) the swarm's segment on this host, drains it with
 * the controller's table code, and forwards the table to the controller's
 * bridge over AMQP in batches: one message per batch period for the whole
 * host (relay.h). Commands for its workers come back the same way. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ph/amqp.h"
#include "ph/log.h"
#include "ph/loop.h"
#include "ph/shm.h"
#include "relay.h"

struct opts {
    const char *swarm;
    const char *segment;
    const char *amqp_url_file;
    char relay_id[PH_ID_MAX];
    char host[PH_LOCATION_MAX];
    uint32_t batch_ms;
    struct ph_segment_params seg;
};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: ph-relay --swarm ID [options]\n"
            "\n"
            "Serves a swarm's workers on a host that is not its controller's: creates the\n"
            "swarm's shared-memory segment here (workers attach to it as they would to the\n"
            "controller's), drains it, and forwards the host's worker table to the swarm\n"
            "controller's bridge over RabbitMQ, one message per batch period for the whole\n"
            "host; commands for its workers come back the same way.\n"
            "\n"
            "options:\n"
            "  --swarm ID          the swarm the workers belong to\n"
            "  --segment ID        the segment's name on this host, /dev/shm/ph.ID (default:\n"
            "                      the swarm id; another name lets a relay share a host with\n"
            "                      the controller, for tests): workers attach with --swarm ID\n"
            "  --relay-id ID       this relay's id in routing keys (default: the host name)\n"
            "  --location HOST     the location reported for its workers (default: the host\n"
            "                      name)\n"
            "  --batch-ms N        batch period in milliseconds, 10..10000 (default 100)\n"
            "  --slots N           worker slots in the segment (default %u)\n"
            "  --amqp-url-file F   file whose first line is the broker URL (default:\n"
            "                      $PH_AMQP_URL); never give the URL on the command line\n"
            "  --help              this text\n"
            "\n"
            "Exits 0 on SIGTERM or SIGINT, 2 on bad options, 1 when the segment cannot be\n"
            "made or the broker URL is missing. An unreachable broker is retried; the\n"
            "workers keep running meanwhile and the next batch after the reconnect lists\n"
            "them all.\n",
            PH_DEFAULT_SLOTS);
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
    static const struct option longs[] = {{"swarm", required_argument, NULL, 's'},
                                          {"segment", required_argument, NULL, 'g'},
                                          {"relay-id", required_argument, NULL, 'r'},
                                          {"location", required_argument, NULL, 'l'},
                                          {"batch-ms", required_argument, NULL, 'b'},
                                          {"slots", required_argument, NULL, 'n'},
                                          {"amqp-url-file", required_argument, NULL, 'u'},
                                          {"help", no_argument, NULL, 'h'},
                                          {NULL, 0, NULL, 0}};
    memset(o, 0, sizeof *o);
    o->batch_ms = 100;
    char host[PH_LOCATION_MAX] = "";
    if (gethostname(host, sizeof host - 1) != 0 || !ph_location_ok(host))
        snprintf(host, sizeof host, "localhost");
    const char *id = NULL, *loc = NULL;
    int ch, li = 0;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, "", longs, &li)) != -1) {
        bool ok = true;
        switch (ch) {
        case 's': o->swarm = optarg; break;
        case 'g': o->segment = optarg; break;
        case 'r': id = optarg; break;
        case 'l': loc = optarg; break;
        case 'u': o->amqp_url_file = optarg; break;
        case 'b': ok = ph_parse_u32(optarg, &o->batch_ms, 10, 10000); break;
        case 'n': ok = ph_parse_u32(optarg, &o->seg.slots, 1, 1u << 20); break;
        case 'h': usage(stdout); exit(0);
        default:
            fprintf(stderr, "ph-relay: unknown or incomplete option '%s'\n", argv[optind - 1]);
            usage(stderr);
            return 2;
        }
        if (!ok) {
            fprintf(stderr, "ph-relay: invalid value '%s' for --%s (see --help)\n", optarg,
                    longs[li].name);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "ph-relay: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (o->swarm == NULL) {
        fprintf(stderr, "ph-relay: --swarm is required\n");
        usage(stderr);
        return 2;
    }
    char err[256];
    snprintf(o->relay_id, sizeof o->relay_id, "%s", id != NULL ? id : host);
    snprintf(o->host, sizeof o->host, "%s", loc != NULL ? loc : host);
    if (o->segment == NULL) o->segment = o->swarm;
    if (ph_ident_check("swarm id", o->swarm, err, sizeof err) != PH_OK ||
        ph_ident_check("segment", o->segment, err, sizeof err) != PH_OK ||
        ph_ident_check("relay id", o->relay_id, err, sizeof err) != PH_OK) {
        fprintf(stderr, "ph-relay: %s%s\n", err, id == NULL ? " (give --relay-id)" : "");
        return 2;
    }
    if (!ph_location_ok(o->host)) {
        fprintf(stderr, "ph-relay: --location must be a host name (printable ASCII, no spaces)\n");
        return 2;
    }
    return 0;
}

struct app {
    struct ph_loop *loop;
    struct ph_segment seg;
    struct ctl ctl;
    struct relay *relay;
    struct ph_amqp *amqp;
    uint64_t session;
    uint32_t batch_ms;
    uint64_t last_batch, last_liveness;
};

static int publish(void *ctx, const char *rk, const char *body, size_t len, bool reliable)
{
    struct app *a = ctx;
    return ph_amqp_publish(a->amqp, rk, body, len, reliable) == PH_OK ? 0 : -1;
}

static int deliver(void *ctx, const char *rk, size_t rklen, const char *body, size_t len,
                   uint64_t delivery)
{
    (void)rk, (void)rklen, (void)delivery;
    struct app *a = ctx;
    return relay_on_down(a->relay, body, len) == 0 ? 0 : 1;
}

#define TICK_MS 10u

static void on_tick(void *ctx, uint64_t tag, int res)
{
    (void)tag, (void)res;
    struct app *a = ctx;
    if (ph_loop_stopped(a->loop)) return;
    const uint64_t now = ph_mono_ns();
    char err[256];
    if (ph_segment_check_size(&a->seg, err, sizeof err) == PH_OK) {
        ph_segment_heartbeat(&a->seg);
        ctl_scan(&a->ctl, now);
        if (now - a->last_liveness >= 1000000000ull) {
            ctl_check_liveness(&a->ctl, true);
            a->last_liveness = now;
        }
    }
    ph_amqp_service(a->amqp);
    const uint64_t session = ph_amqp_session(a->amqp);
    if (session != a->session && ph_amqp_up(a->amqp)) {
        /* A new connection: the bridge may have missed anything. */
        a->session = session;
        relay_want_full(a->relay);
    }
    if (ph_amqp_up(a->amqp) && now - a->last_batch >= (uint64_t)a->batch_ms * 1000000ull) {
        relay_batch(a->relay, now);
        a->last_batch = now;
    }
    ph_amqp_flush(a->amqp);
    ph_loop_timeout(a->loop, TICK_MS, on_tick, a, 0);
}

static void on_stop(void *ctx, uint64_t tag, int signo)
{
    (void)tag;
    struct app *a = ctx;
    ph_info("signal %d received: stopping", signo);
    ph_loop_stop(a->loop);
}

int main(int argc, char **argv)
{
    struct opts o;
    int rc = parse_opts(argc, argv, &o);
    if (rc != 0) return rc;
    ph_log_init("ph-relay", o.swarm);
    signal(SIGPIPE, SIG_IGN);
    static struct app a;
    a.batch_ms = o.batch_ms;
    char err[512];
    struct ph_amqp_url url;
    if (ph_amqp_url_load(&url, o.amqp_url_file, err, sizeof err) != PH_OK) {
        ph_error("%s", err);
        return 1;
    }
    bool adopted = false;
    if (ph_segment_create(&a.seg, o.segment, &o.seg, &adopted, err, sizeof err) != PH_OK) {
        ph_error("%s", err);
        ph_amqp_url_wipe(&url);
        return 1;
    }
    uint64_t start = 0;
    ph_proc_start_time(getpid(), &start);
    ph_segment_set_controller(&a.seg, (int32_t)getpid(), start);
    char queue[3 * PH_ID_MAX], down[3 * PH_ID_MAX];
    snprintf(queue, sizeof queue, "ph.relay.%s.%s", o.swarm, o.relay_id);
    relay_key(down, sizeof down, o.swarm, o.relay_id, "down");
    const struct ph_amqp_cfg acfg = {
        .name = "relay", .queue = queue, .durable_queue = false, .deliver = deliver, .deliver_ctx = &a};
    const struct relay_cfg rcfg = {.swarm = o.swarm,
                                   .relay_id = o.relay_id,
                                   .host = o.host,
                                   .publish = publish,
                                   .publish_ctx = &a};
    static const int stops[] = {SIGTERM, SIGINT, SIGHUP};
    a.loop = ph_loop_new(64, err, sizeof err);
    if (a.loop == NULL || ph_loop_signals(a.loop, stops, 3, on_stop, &a, err, sizeof err) != 0 ||
        ctl_init(&a.ctl, &a.seg, NULL) != PH_OK ||
        relay_open(&a.relay, &rcfg, &a.ctl, err, sizeof err) != PH_OK ||
        ph_amqp_open(&a.amqp, &url, &acfg, err, sizeof err) != PH_OK) {
        ph_error("cannot start: %s", err);
        ph_amqp_url_wipe(&url);
        ph_segment_close(&a.seg);
        return 1;
    }
    /* Deaths are found by the once-a-second liveness check of every owner:
     * no pidfd per worker to arm in this loop. */
    a.ctl.use_pidfd = false;
    json_t *keys = json_object();
    json_object_set_new(keys, down, json_true());
    ph_amqp_bind(a.amqp, keys);
    ph_info("relay %s for swarm %s at %s: segment /dev/shm%s (%s, %u slots), broker %s, batches "
            "every %u ms on relay.%s.%s.up",
            o.relay_id, o.swarm, o.host, a.seg.name, adopted ? "adopted" : "created", a.seg.slots,
            ph_amqp_where(a.amqp), o.batch_ms, o.swarm, o.relay_id);
    a.last_liveness = ph_mono_ns();
    ph_loop_timeout(a.loop, TICK_MS, on_tick, &a, 0);
    rc = ph_loop_run(a.loop) == 0 ? 0 : 1;
    const struct relay_stats *st = relay_stats(a.relay);
    ph_info("relay stopped: %" PRIu64 " batches, %" PRIu64 " worker entries, %" PRIu64
            " commands, %" PRIu64 " acks",
            st->batches, st->workers_sent, st->commands, st->acks);
    ph_amqp_close(a.amqp, 1000000000ull);
    relay_close(a.relay);
    ctl_destroy(&a.ctl);
    ph_segment_release_controller(&a.seg);
    ph_segment_close(&a.seg);
    ph_segment_unlink(o.segment, err, sizeof err);
    ph_loop_free(a.loop);
    return rc;
}
