/* ph-orchestrator: the swarms' registry, built from swarm-controller
 * aggregates only, served as an HTTP API, Prometheus metrics and a web UI.
 *
 * It consumes, on its own exclusive queue, the controllers' status-full and
 * status-delta, outcomes and alerts (never per-worker status); publishes
 * status-requests (a swarm first seen through a delta, a swarm whose full is
 * missing, refresh and reset, its own restart) and the lifecycle signals
 * the API asks for; and reports its own status as hive/orchestrator. One
 * loop (ph/loop.h) runs the broker client, the HTTP server and the tick. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <netinet/in.h>

#include "api.h"
#include "contract.h"
#include "envelope.h"
#include "guard.h"
#include "http.h"
#include "ph/amqp.h"
#include "ph/log.h"
#include "ph/loop.h"
#include "registry.h"

#define NS_PER_S 1000000000ull
#define STATUS_DELTA_NS (5 * NS_PER_S)
#define STATUS_FULL_NS (60 * NS_PER_S)

struct opts {
    const char *instance;
    const char *http;
    const char *web_dir;
    const char *url_file;
    const char *observer_file;
    const char *stomp_url;
    uint32_t tick_ms;
    uint32_t http_timeout_s;
    struct reg_cfg reg;
    const char *allowed_hosts[GUARD_HOSTS_MAX];
    unsigned n_allowed_hosts;
    bool loopback; /* HTTP on a 127.0.0.0/8 address */
    struct guard_hosts hosts;
};

struct app {
    struct opts o;
    struct ph_loop *loop;
    struct ph_amqp *amqp;
    struct registry reg;
    struct api api;
    struct http *http;
    char queue[256];
    json_t *ui_config;
    uint64_t started_real_ns;
    uint64_t seen_session;
    bool rebuild_due; /* ask every controller for a full once connected */
    uint64_t last_delta_ns, last_full_ns;
    bool full_due;
    bool sock_armed, drain_armed;
    uint64_t sock_session, sock_id;
    uint64_t alerts;
};

static void usage(FILE *f)
{
    fprintf(f, "usage: ph-orchestrator [options]\n"
               "\n"
               "Keeps the registry of the swarms from their controllers' aggregates (never\n"
               "per-worker status) and serves it: a REST API, Prometheus metrics at /metrics and\n"
               "the web UI.\n"
               "\n"
               "options:\n"
               "  --instance ID            this orchestrator's instance (default orchestrator-1)\n"
               "  --http HOST:PORT         where to serve HTTP (default $PH_HTTP_ADDR or\n"
               "                           127.0.0.1:8088; an IPv4 address)\n"
               "  --allowed-host NAME      a Host header the HTTP server answers besides the\n"
               "                           loopback ones (localhost, 127.0.0.0/8, [::1]);\n"
               "                           repeatable, up to 8. On a loopback address only\n"
               "                           those are answered, others get 403 (DNS\n"
               "                           rebinding); on another address any Host is,\n"
               "                           unless names are given\n"
               "  --http-timeout-s N       an HTTP connection idle this long is closed\n"
               "                           (default 30)\n"
               "  --web-dir DIR            the web UI's built files (default: <bin>/../web)\n"
               "  --amqp-url-file PATH     the broker's URL (default: $PH_AMQP_URL)\n"
               "  --observer-credentials PATH\n"
               "                           read-only broker user for the web UI (user=,\n"
               "                           password= lines); handed to pages on loopback only\n"
               "  --stomp-url URL          the broker's web-STOMP endpoint for the UI\n"
               "                           (default ws://127.0.0.1:15674/ws)\n"
               "  --degraded-after-s N     a swarm silent this long is degraded (default 20)\n"
               "  --failed-after-s N       a swarm silent this long is failed (default 40)\n"
               "  --tick-ms N              housekeeping interval (default 100)\n"
               "  --help                   this text\n"
               "\n"
               "Every POST to the API must carry Content-Type: application/json, with or\n"
               "without a body (415 otherwise): other web pages cannot send that.\n"
               "\n"
               "Exits 0 on SIGTERM or SIGINT, 2 on bad usage, 1 when it cannot start.\n");
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
    static const struct option longs[] = {{"instance", required_argument, NULL, 'i'},
                                          {"http", required_argument, NULL, 'H'},
                                          {"allowed-host", required_argument, NULL, 'A'},
                                          {"http-timeout-s", required_argument, NULL, 'T'},
                                          {"web-dir", required_argument, NULL, 'w'},
                                          {"amqp-url-file", required_argument, NULL, 'u'},
                                          {"observer-credentials", required_argument, NULL, 'o'},
                                          {"stomp-url", required_argument, NULL, 's'},
                                          {"degraded-after-s", required_argument, NULL, 'd'},
                                          {"failed-after-s", required_argument, NULL, 'f'},
                                          {"tick-ms", required_argument, NULL, 't'},
                                          {"help", no_argument, NULL, 'h'},
                                          {NULL, 0, NULL, 0}};
    memset(o, 0, sizeof *o);
    reg_cfg_defaults(&o->reg);
    o->instance = "orchestrator-1";
    o->http = getenv("PH_HTTP_ADDR") && getenv("PH_HTTP_ADDR")[0] ? getenv("PH_HTTP_ADDR")
                                                                   : "127.0.0.1:8088";
    o->stomp_url = "ws://127.0.0.1:15674/ws";
    o->tick_ms = 100;
    o->http_timeout_s = HTTP_TIMEOUT_S_DEFAULT;
    uint32_t degraded = 20, failed = 40;
    int ch, li = 0;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, "", longs, &li)) != -1) {
        bool ok = true;
        switch (ch) {
        case 'i': o->instance = optarg; break;
        case 'H': o->http = optarg; break;
        case 'A':
            if (o->n_allowed_hosts < GUARD_HOSTS_MAX) o->allowed_hosts[o->n_allowed_hosts] = optarg;
            o->n_allowed_hosts++;
            break;
        case 'w': o->web_dir = optarg; break;
        case 'u': o->url_file = optarg; break;
        case 'o': o->observer_file = optarg; break;
        case 's': o->stomp_url = optarg; break;
        case 'd': ok = ph_parse_u32(optarg, &degraded, 1, 86400); break;
        case 'f': ok = ph_parse_u32(optarg, &failed, 1, 86400); break;
        case 't': ok = ph_parse_u32(optarg, &o->tick_ms, 1, 10000); break;
        case 'T':
            ok = ph_parse_u32(optarg, &o->http_timeout_s, 1, 3600);
            break;
        case 'h': usage(stdout); exit(0);
        default:
            fprintf(stderr, "ph-orchestrator: unknown or incomplete option '%s'\n",
                    argv[optind - 1]);
            usage(stderr);
            return 2;
        }
        if (!ok) {
            fprintf(stderr, "ph-orchestrator: invalid value '%s' for --%s\n", optarg,
                    longs[li].name);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "ph-orchestrator: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    char err[256];
    if (ph_ident_check("instance", o->instance, err, sizeof err) != PH_OK) {
        fprintf(stderr, "ph-orchestrator: %s\n", err);
        return 2;
    }
    if (failed <= degraded) {
        fprintf(stderr, "ph-orchestrator: --failed-after-s (%u) must exceed --degraded-after-s "
                        "(%u)\n",
                failed, degraded);
        return 2;
    }
    struct sockaddr_in sa;
    if (!http_parse_addr(o->http, &sa, err, sizeof err)) {
        fprintf(stderr, "ph-orchestrator: --http / PH_HTTP_ADDR: %s\n", err);
        return 2;
    }
    o->loopback = http_addr_is_loopback(&sa);
    if (!guard_hosts_init(&o->hosts, o->loopback, o->allowed_hosts, o->n_allowed_hosts, err,
                          sizeof err)) {
        fprintf(stderr, "ph-orchestrator: %s\n", err);
        return 2;
    }
    o->reg.degraded_after_ns = (uint64_t)degraded * NS_PER_S;
    o->reg.failed_after_ns = (uint64_t)failed * NS_PER_S;
    return 0;
}

/* ---- publishing -------------------------------------------------------- */

/* Builds, checks and publishes an envelope; `reliable` for signals. */
static int publish(struct app *a, enum contract_kind kind, const char *type, const char *swarm,
                   const char *role, const char *instance, const char *cid, const char *ikey,
                   json_t *data, bool reliable)
{
    struct envelope e = {0};
    e.env = envelope_new(ph_real_ns(), kind, type, a->o.instance, swarm, role, instance, cid, ikey,
                         data);
    char why[256] = "out of memory";
    int rc = -1;
    if (e.env == NULL || envelope_finish(&e, why, sizeof why) != PH_OK) {
        ph_error("not publishing %s %s: %s", type, swarm ? swarm : "ALL", why);
    } else {
        char *body = json_dumps(e.env, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
        if (body != NULL && ph_amqp_publish(a->amqp, e.rk, body, strlen(body), reliable) == PH_OK)
            rc = 0;
        free(body);
    }
    envelope_clear(&e);
    return rc;
}

static int publish_signal(void *ctx, const char *type, const char *swarm, const char *role,
                          const char *instance, const char *cid, const char *ikey, json_t *data)
{
    struct app *a = ctx;
    if (!ph_amqp_up(a->amqp)) {
        json_decref(data);
        return -1; /* the caller says so (503); a signal would only go stale */
    }
    ph_info("publishing %s to %s.%s.%s (correlationId %s)", type, swarm ? swarm : "ALL",
            role ? role : "ALL", instance ? instance : "ALL", cid);
    return publish(a, CK_SIGNAL, type, swarm, role, instance, cid, ikey, data, true);
}

/* The orchestrator's own status (CONTRACT §7: hive/orchestrator). */
static void publish_status(struct app *a, bool full, uint64_t now)
{
    uint32_t healthy = 0, degraded = 0, failed = 0;
    for (uint32_t i = 0; i < a->reg.n; i++) {
        enum reg_health h = reg_health(&a->reg, &a->reg.s[i], now);
        healthy += h == REG_HEALTHY;
        degraded += h == REG_DEGRADED;
        failed += h == REG_FAILED;
    }
    json_t *data = json_pack("{s:b, s:i, s:{s:{s:s, s:s}}}", "enabled", 1, "tps", 0, "ioState",
                             "work", "input", "ok", "output", "ok");
    json_object_set_new(data, "context",
                        json_pack("{s:i, s:i, s:i, s:i, s:s, s:i}", "swarms", (int)a->reg.n,
                                  "healthy", (int)healthy, "degraded", (int)degraded, "failed",
                                  (int)failed, "http", a->o.http, "intervalSeconds", 5));
    if (full) {
        char ts[32];
        ph_rfc3339_ms(a->started_real_ns, ts);
        json_object_set_new(data, "config",
                            json_pack("{s:s, s:s, s:I, s:I}", "instance", a->o.instance, "http",
                                      a->o.http, "degradedAfterSec",
                                      (json_int_t)(a->o.reg.degraded_after_ns / NS_PER_S),
                                      "failedAfterSec",
                                      (json_int_t)(a->o.reg.failed_after_ns / NS_PER_S)));
        json_object_set_new(data, "io", json_pack("{s:{s:{s:[s]}}}", "control", "queues", "in",
                                                  a->queue));
        json_object_set_new(data, "startedAt", json_string(ts));
    }
    publish(a, CK_METRIC, full ? "status-full" : "status-delta", "hive", "orchestrator",
            a->o.instance, NULL, NULL, data, false);
}

/* ---- receiving --------------------------------------------------------- */

static int deliver(void *ctx, const char *rk, size_t rklen, const char *body, size_t len,
                   uint64_t delivery)
{
    (void)rklen, (void)delivery;
    struct app *a = ctx;
    json_error_t je;
    json_t *env = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    if (env == NULL) {
        a->reg.ignored++;
        return 1;
    }
    if (strncmp(rk, "event.alert.", 12) == 0) {
        a->alerts++;
        json_decref(env);
        return 0;
    }
    struct reg_effect eff;
    const uint64_t now = ph_mono_ns();
    reg_feed(&a->reg, rk, env, now, &eff);
    json_decref(env);
    if (eff.request_full) {
        char cid[64];
        api_new_id(cid, sizeof cid, "orch-");
        publish_signal(a, "status-request", eff.swarm, CONTRACT_CONTROLLER_ROLE,
                       eff.controller[0] ? eff.controller : NULL, cid, NULL, json_object());
    }
    if (eff.removed) ph_info("swarm %s was removed: left the registry", eff.swarm);
    return 0;
}

static json_t *binding_keys(void)
{
    return json_pack("{s:b, s:b, s:b, s:b}", "event.metric.status-full.*.swarm-controller.*", 1,
                     "event.metric.status-delta.*.swarm-controller.*", 1, "event.outcome.#", 1,
                     "event.alert.alert.#", 1);
}

/* ---- the loop ---------------------------------------------------------- */

static void await_broker(struct app *a);

static void on_sock(void *ctx, uint64_t session, int res)
{
    (void)res;
    struct app *a = ctx;
    if (!a->sock_armed || session != a->sock_session) return;
    a->sock_armed = false;
    ph_amqp_service(a->amqp);
    await_broker(a);
}

/* A round at once for frames rabbitmq-c had read already (await_broker). */
static void on_drain(void *ctx, uint64_t tag, int res)
{
    (void)tag, (void)res;
    struct app *a = ctx;
    a->drain_armed = false;
    if (ph_loop_stopped(a->loop)) return;
    ph_amqp_service(a->amqp);
    await_broker(a);
}

static void sync_sock(struct app *a)
{
    uint64_t session = 0;
    int fd = ph_amqp_fd(a->amqp, &session);
    if (a->sock_armed && (fd < 0 || session != a->sock_session)) {
        ph_loop_cancel(a->loop, a->sock_id);
        a->sock_armed = false;
    }
    if (!a->sock_armed && fd >= 0) {
        a->sock_id = ph_loop_poll(a->loop, fd, POLLIN, on_sock, a, session);
        a->sock_armed = a->sock_id != 0;
        a->sock_session = session;
    }
}

/* After every service: a poll of the broker's socket for what comes next,
 * and a round at once when rabbitmq-c holds frames it has read already (a
 * burst larger than one service takes, frames read while waiting for an RPC
 * reply), which no poll reports. The round goes through the loop, so the
 * HTTP server is served between two of them. */
static void await_broker(struct app *a)
{
    sync_sock(a);
    if (!a->drain_armed && ph_amqp_buffered(a->amqp))
        a->drain_armed = ph_loop_timeout(a->loop, 0, on_drain, a, 0) != 0;
}

static void housekeeping(struct app *a, uint64_t now)
{
    ph_amqp_flush(a->amqp);
    const uint64_t session = ph_amqp_session(a->amqp);
    if (ph_amqp_up(a->amqp) && session != a->seen_session) {
        /* (Re)connected: the registry may have missed anything; every
         * controller is asked for a full (the rebuild after a restart). */
        a->seen_session = session;
        a->rebuild_due = true;
        a->full_due = true;
    }
    if (a->rebuild_due && ph_amqp_up(a->amqp)) {
        json_t *b = api_broadcast(&a->api, false, false, now, ph_real_ns());
        a->rebuild_due = false;
        ph_info("asked %lld swarm(s) for a status-full (rebuild)",
                (long long)json_integer_value(json_object_get(b, "signalsPublished")));
        json_decref(b);
    }
    char ids[16][PH_ID_MAX], ctl[16][PH_ID_MAX];
    uint32_t n = ph_amqp_up(a->amqp) ? reg_wanting_full(&a->reg, now, ids, ctl, 16) : 0;
    for (uint32_t i = 0; i < n; i++) {
        char cid[64];
        api_new_id(cid, sizeof cid, "orch-");
        if (publish_signal(a, "status-request", ids[i], CONTRACT_CONTROLLER_ROLE,
                           ctl[i][0] ? ctl[i] : NULL, cid, NULL, json_object()) == 0)
            reg_full_requested(&a->reg, ids[i], now);
    }
    if (ph_amqp_up(a->amqp)) {
        if (a->full_due || now - a->last_full_ns >= STATUS_FULL_NS) {
            publish_status(a, true, now);
            a->full_due = false;
            a->last_full_ns = a->last_delta_ns = now;
        } else if (now - a->last_delta_ns >= STATUS_DELTA_NS) {
            publish_status(a, false, now);
            a->last_delta_ns = now;
        }
    }
    await_broker(a);
}

static void on_tick(void *ctx, uint64_t tag, int res)
{
    (void)tag, (void)res;
    struct app *a = ctx;
    if (ph_loop_stopped(a->loop)) return;
    housekeeping(a, ph_mono_ns());
    ph_loop_timeout(a->loop, a->o.tick_ms, on_tick, a, 0);
}

static void on_stop_signal(void *ctx, uint64_t tag, int signo)
{
    (void)tag;
    struct app *a = ctx;
    ph_info("signal %d received: stopping", signo);
    ph_loop_stop(a->loop);
}

/* ---- set-up ------------------------------------------------------------ */

/* The UI's settings: where web-STOMP is and the read-only user, when the
 * observer credentials are given and HTTP is served on loopback only. */
static json_t *ui_config(const struct opts *o)
{
    if (o->observer_file == NULL) return NULL;
    if (!o->loopback) {
        ph_warn("HTTP is served on %s, not on loopback: the observer credentials are not handed "
                "to pages",
                o->http);
        return NULL;
    }
    FILE *f = fopen(o->observer_file, "re");
    if (f == NULL) {
        ph_warn("cannot read the observer credentials %s: %s (the UI gets no live updates)",
                o->observer_file, strerror(errno));
        return NULL;
    }
    char line[512], user[128] = "", pass[256] = "";
    while (fgets(line, sizeof line, f) != NULL) {
        line[strcspn(line, "\r\n")] = '\0';
        if (strncmp(line, "user=", 5) == 0) snprintf(user, sizeof user, "%.120s", line + 5);
        if (strncmp(line, "password=", 9) == 0) snprintf(pass, sizeof pass, "%.250s", line + 9);
    }
    fclose(f);
    if (user[0] == '\0' || pass[0] == '\0') {
        ph_warn("%s lacks user= or password=: the UI gets no live updates", o->observer_file);
        return NULL;
    }
    json_t *c = json_pack("{s:s, s:s, s:s, s:s, s:s}", "stompUrl", o->stomp_url, "login", user,
                          "passcode", pass, "vhost", "/", "exchange", "ph.control");
    memset(pass, 0, sizeof pass);
    return c;
}

static void default_web_dir(struct opts *o, char *buf, size_t n)
{
    if (o->web_dir != NULL) return;
    char exe[PATH_MAX];
    ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (k <= 0) return;
    exe[k] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash == NULL) return;
    *slash = '\0';
    snprintf(buf, n, "%s/../web", exe);
    o->web_dir = buf;
}

int main(int argc, char **argv)
{
    static struct app a;
    int rc = parse_opts(argc, argv, &a.o);
    if (rc != 0) return rc;
    ph_log_init("ph-orchestrator", a.o.instance);
    char webbuf[PATH_MAX + 16];
    default_web_dir(&a.o, webbuf, sizeof webbuf);
    signal(SIGPIPE, SIG_IGN);
    char err[512];
    struct ph_amqp_url url;
    if (ph_amqp_url_load(&url, a.o.url_file, err, sizeof err) != PH_OK) {
        ph_error("%s", err);
        return 2;
    }
    snprintf(a.queue, sizeof a.queue, "ph.orchestrator.%s", a.o.instance);
    const struct ph_amqp_cfg acfg = {.name = "orchestrator",
                                     .queue = a.queue,
                                     .durable_queue = false,
                                     .prefetch = 500,
                                     .auto_ack = true,
                                     .deliver = deliver,
                                     .deliver_ctx = &a};
    static const int stop_signals[] = {SIGTERM, SIGINT};
    if (reg_init(&a.reg, &a.o.reg) != PH_OK ||
        ph_amqp_open(&a.amqp, &url, &acfg, err, sizeof err) != PH_OK ||
        (a.loop = ph_loop_new(64, err, sizeof err)) == NULL ||
        ph_loop_signals(a.loop, stop_signals, 2, on_stop_signal, &a, err, sizeof err) != 0) {
        ph_error("cannot start: %s", err);
        return 1;
    }
    ph_amqp_bind(a.amqp, binding_keys());
    api_init(&a.api, &a.reg, publish_signal, &a);
    a.ui_config = ui_config(&a.o);
    a.api.ui_config = a.ui_config;
    const struct http_cfg hcfg = {.addr = a.o.http,
                                  .web_dir = a.o.web_dir,
                                  .hosts = &a.o.hosts,
                                  .timeout_s = a.o.http_timeout_s};
    if (http_start(&a.http, &hcfg, &a.api, a.loop, err, sizeof err) != PH_OK) {
        ph_error("%s", err);
        return 1;
    }
    if (!a.o.hosts.check)
        ph_info("HTTP on %s, not a loopback address: any Host header is answered (--allowed-host "
                "names the ones to answer)",
                a.o.http);
    a.started_real_ns = ph_real_ns();
    ph_info("orchestrator %s: HTTP on %s (UI %s), broker %s, queue %s", a.o.instance, a.o.http,
            a.o.web_dir ? a.o.web_dir : "none", ph_amqp_where(a.amqp), a.queue);
    housekeeping(&a, ph_mono_ns());
    ph_loop_timeout(a.loop, a.o.tick_ms, on_tick, &a, 0);
    rc = ph_loop_run(a.loop) == 0 ? 0 : 1;
    ph_loop_free(a.loop);
    http_stop(a.http);
    ph_amqp_close(a.amqp, 1000000000ull);
    reg_free(&a.reg);
    json_decref(a.ui_config);
    ph_info("orchestrator stopped");
    return rc;
}
