/* phctl signal: publishes one control signal on the broker (ph.control) and
 * waits for its answer: the outcome whose correlationId matches, or for a
 * status-request the status-full carrying that correlationId.
 *
 * Before publishing it declares an exclusive, auto-delete, server-named
 * queue bound to event.outcome.<type>.<swarm>.# (and, for status-request,
 * event.metric.status-full.<swarm>.#), so the answer cannot slip past it.
 * The signal is published persistent, mandatory and confirmed: a signal
 * no queue is bound to (no bridge for that swarm on this broker) is
 * reported at once instead of after the timeout.
 *
 * The broker URL comes from PH_AMQP_URL or --amqp-url-file, never from
 * argv, and its password is never printed. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <jansson.h>

#include "ph/amqp.h"
#include "ph/common.h"
#include "phctl.h"

#define CMD "signal"
#define EXCHANGE "ph.control"
#define CHANNEL 1
#define CONTROLLER_ROLE "swarm-controller"
#define WILDCARD "ALL"
#define RK_MAX 256

static const char *const types[] = {"status-request", "config-update", "swarm-start",
                                    "swarm-stop",     "swarm-remove",  "swarm-template",
                                    "swarm-plan"};

static void usage(FILE *out)
{
    fputs("usage: phctl signal TYPE --swarm ID [--role R] [--instance I] [--data JSON]\n"
          "                   [--idempotency-key K] [--timeout S] [--json] [--amqp-url-file PATH]\n"
          "\n"
          "Publishes one control signal on the broker's ph.control exchange and waits for\n"
          "its answer: the outcome with the signal's correlationId, or for status-request\n"
          "the status-full carrying it. TYPE is one of status-request, config-update,\n"
          "swarm-start, swarm-stop, swarm-remove, swarm-template, swarm-plan.\n"
          "\n"
          "Scope (routing key signal.TYPE.SWARM.ROLE.INSTANCE):\n"
          "  default               the swarm's controller: swarm-controller.<ID>-controller\n"
          "  --role R              every worker of role R (instance ALL); lifecycle signals\n"
          "                        (swarm-*) accept only --role swarm-controller\n"
          "  --role R --instance I one instance\n"
          "  --instance I          the controller instance I (role swarm-controller)\n"
          "  --role ALL            the whole swarm (<ID>.ALL.ALL; config-update, status-request)\n"
          "\n"
          "Options:\n"
          "  --swarm ID               the swarm (letters, digits, '-' and '_')\n"
          "  --data JSON              the signal's data, a JSON object (default {});\n"
          "                           config-update: the patch, e.g. '{\"enabled\": false}'\n"
          "  --idempotency-key K      stable key of this action (default: a fresh UUID)\n"
          "  --timeout S              seconds to wait for the answer (default 10, 1..3600)\n"
          "  --json                   print the received envelope as one JSON line\n"
          "  --amqp-url-file PATH     file holding amqp://user:pass@host:port/vhost\n"
          "                           (default: the PH_AMQP_URL environment variable)\n"
          "  -h, --help               this text\n"
          "\n"
          "Prints one line: the answer's status, scope and correlationId (the whole\n"
          "envelope with --json).\n"
          "\n"
          "Exit status: 0 answered (status not \"failed\"), 1 the outcome says \"failed\"\n"
          "(or another failure), 2 usage error, 3 no answer within the timeout,\n"
          "4 the broker refused the login (credentials, vhost), 9 the broker is\n"
          "unreachable or the connection was lost.\n",
          out);
}

/* ---- small helpers ------------------------------------------------------ */

static bool known_type(const char *t)
{
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (strcmp(t, types[i]) == 0) return true;
    return false;
}

static bool uuid4(char out[37])
{
    unsigned char b[16];
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    size_t got = 0;
    while (got < sizeof b) {
        ssize_t n = read(fd, b + got, sizeof b - got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            close(fd);
            return false;
        }
        got += (size_t)n;
    }
    close(fd);
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    snprintf(out, 37,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
             b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
             b[15]);
    return true;
}

/* phctl-<host or user>-<pid>, reduced to [A-Za-z0-9_-]. */
static void make_origin(char *out, size_t n)
{
    char who[64] = "";
    if (gethostname(who, sizeof who) != 0 || who[0] == '\0') {
        const char *u = getenv("USER");
        snprintf(who, sizeof who, "%s", u && *u ? u : "unknown");
    }
    who[sizeof who - 1] = '\0';
    snprintf(out, n, "phctl-%.40s-%ld", who, (long)getpid());
    for (char *p = out; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '_'))
            *p = '-';
}

/* ---- the conversation --------------------------------------------------- */

struct want {
    const char *type;
    const char *cid;
    const char *swarm;
    bool status_full;           /* answer is a status-full, not an outcome */
    bool controller_full_only;  /* for status-request to the controller or the swarm */
};

/* True when `env` answers the signal. */
static bool answers(const struct want *w, const json_t *env)
{
    const char *kind = json_string_value(json_object_get(env, "kind"));
    const char *type = json_string_value(json_object_get(env, "type"));
    const char *cid = json_string_value(json_object_get(env, "correlationId"));
    if (kind == NULL || type == NULL || cid == NULL || strcmp(cid, w->cid) != 0) return false;
    if (!w->status_full) return strcmp(kind, "outcome") == 0 && strcmp(type, w->type) == 0;
    if (strcmp(kind, "metric") != 0 || strcmp(type, "status-full") != 0) return false;
    if (!w->controller_full_only) return true;
    const char *role = json_string_value(json_object_get(json_object_get(env, "scope"), "role"));
    return role != NULL && strcmp(role, CONTROLLER_ROLE) == 0;
}

static const char *str_or(const json_t *v, const char *dflt)
{
    const char *s = json_string_value(v);
    return s != NULL ? s : dflt;
}

static void print_summary(const json_t *env)
{
    const json_t *scope = json_object_get(env, "scope");
    const json_t *data = json_object_get(env, "data");
    const char *type = str_or(json_object_get(env, "type"), "?");
    const char *kind = str_or(json_object_get(env, "kind"), "?");
    char where[3 * PH_ID_MAX + 3];
    snprintf(where, sizeof where, "%s.%s.%s", str_or(json_object_get(scope, "swarmId"), WILDCARD),
             str_or(json_object_get(scope, "role"), WILDCARD),
             str_or(json_object_get(scope, "instance"), WILDCARD));
    const char *cid = str_or(json_object_get(env, "correlationId"), "-");
    if (strcmp(kind, "metric") == 0) {
        const json_t *ctx = json_object_get(data, "context");
        const json_t *tot = json_object_get(ctx, "totals");
        printf("%s %s", type, str_or(json_object_get(ctx, "swarmStatus"), "-"));
        const char *state = json_string_value(json_object_get(ctx, "state"));
        if (state != NULL) printf(" state=%s", state);
        printf(" enabled=%s tps=%lld",
               json_is_true(json_object_get(data, "enabled")) ? "true" : "false",
               (long long)json_integer_value(json_object_get(data, "tps")));
        if (json_is_object(tot))
            printf(" desired=%lld healthy=%lld running=%lld",
                   (long long)json_integer_value(json_object_get(tot, "desired")),
                   (long long)json_integer_value(json_object_get(tot, "healthy")),
                   (long long)json_integer_value(json_object_get(tot, "running")));
        const json_t *workers = json_object_get(ctx, "workers");
        if (json_is_array(workers)) printf(" workers=%zu", json_array_size(workers));
        printf(" scope=%s correlationId=%s\n", where, cid);
        return;
    }
    printf("%s %s scope=%s correlationId=%s", type,
           str_or(json_object_get(data, "status"), "(no status)"), where, cid);
    const json_t *en = json_object_get(data, "enabled");
    if (json_is_boolean(en)) printf(" enabled=%s", json_is_true(en) ? "true" : "false");
    const json_t *rt = json_object_get(data, "retryable");
    if (json_is_boolean(rt)) printf(" retryable=%s", json_is_true(rt) ? "true" : "false");
    const char *msg = json_string_value(json_object_get(data, "message"));
    if (msg != NULL) printf(" message=\"%s\"", msg);
    printf("\n");
}

static uint64_t now_ms(void)
{
    return ph_mono_ns() / 1000000u;
}

/* Connects and logs in; an exit code other than 0 on failure (printed). */
static int open_conn(amqp_connection_state_t *out, struct amqp_connection_info *ci, const char *where)
{
    amqp_connection_state_t c = amqp_new_connection();
    amqp_socket_t *sock = c != NULL ? amqp_tcp_socket_new(c) : NULL;
    if (sock == NULL) {
        fprintf(stderr, "phctl: out of memory\n");
        if (c) amqp_destroy_connection(c);
        return PHCTL_EXIT_OTHER;
    }
    struct timeval cto = {5, 0};
    int rc = amqp_socket_open_noblock(sock, ci->host, ci->port, &cto);
    if (rc != AMQP_STATUS_OK) {
        /* rabbitmq-c does not keep connect()'s errno: refused and
         * unreachable both read "a socket error occurred". */
        fprintf(stderr,
                "phctl: cannot reach the broker %s (connection refused or host unreachable): "
                "%s\n",
                where, amqp_error_string2(rc));
        fprintf(stderr, "phctl: hint: is RabbitMQ running there? ('deploy/rabbitmq status')\n");
        amqp_destroy_connection(c);
        return PHCTL_EXIT_BROKER;
    }
    amqp_set_handshake_timeout(c, &cto);
    amqp_set_rpc_timeout(c, &cto);
    amqp_rpc_reply_t r = amqp_login(c, ci->vhost, 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, ci->user,
                                    ci->password);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        char why[300];
        ph_amqp_describe_reply(r, why, sizeof why);
        const bool refused =
            (r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION &&
             r.reply.id == AMQP_CONNECTION_CLOSE_METHOD &&
             (((const amqp_connection_close_t *)r.reply.decoded)->reply_code == 403 ||
              ((const amqp_connection_close_t *)r.reply.decoded)->reply_code == 530)) ||
            (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
             (r.library_error == AMQP_STATUS_CONNECTION_CLOSED ||
              r.library_error == AMQP_STATUS_SOCKET_CLOSED));
        fprintf(stderr, "phctl: the broker %s refused the login: %s\n", where, why);
        if (refused)
            fprintf(stderr, "phctl: hint: check the user, password and vhost of the AMQP URL\n");
        amqp_destroy_connection(c);
        return refused ? PHCTL_EXIT_ACCES : PHCTL_EXIT_BROKER;
    }
    *out = c;
    return PHCTL_EXIT_OK;
}

static bool rpc_ok(amqp_connection_state_t c, const char *what)
{
    amqp_rpc_reply_t r = amqp_get_rpc_reply(c);
    if (r.reply_type == AMQP_RESPONSE_NORMAL) return true;
    char why[300];
    ph_amqp_describe_reply(r, why, sizeof why);
    fprintf(stderr, "phctl: %s: %s\n", what, why);
    return false;
}

static void close_conn(amqp_connection_state_t c, bool up)
{
    if (up) {
        amqp_channel_close(c, CHANNEL, AMQP_REPLY_SUCCESS);
        amqp_connection_close(c, AMQP_REPLY_SUCCESS);
    }
    amqp_destroy_connection(c);
}

/* ---- main --------------------------------------------------------------- */

int phctl_signal(int argc, char **argv)
{
    static const struct option longs[] = {{"swarm", required_argument, NULL, 's'},
                                          {"role", required_argument, NULL, 'r'},
                                          {"instance", required_argument, NULL, 'i'},
                                          {"data", required_argument, NULL, 'd'},
                                          {"idempotency-key", required_argument, NULL, 'k'},
                                          {"timeout", required_argument, NULL, 't'},
                                          {"json", no_argument, NULL, 'j'},
                                          {"amqp-url-file", required_argument, NULL, 'u'},
                                          {"help", no_argument, NULL, 'h'},
                                          {NULL, 0, NULL, 0}};
    const char *swarm = NULL, *role = NULL, *instance = NULL, *data_s = NULL, *ikey = NULL,
               *url_file = NULL, *timeout_s = NULL;
    bool raw = false;
    int ch;
    optind = 1;
    opterr = 0;
    /* GNU getopt moves the words that are not options to the end: TYPE may
     * come before or after the options. */
    while ((ch = getopt_long(argc, argv, ":h", longs, NULL)) != -1) {
        switch (ch) {
        case 's': swarm = optarg; break;
        case 'r': role = optarg; break;
        case 'i': instance = optarg; break;
        case 'd': data_s = optarg; break;
        case 'k': ikey = optarg; break;
        case 't': timeout_s = optarg; break;
        case 'j': raw = true; break;
        case 'u': url_file = optarg; break;
        case 'h': usage(stdout); return PHCTL_EXIT_OK;
        default: return phctl_bad_option(CMD, ch, argv);
        }
    }
    const char *type = optind < argc ? argv[optind] : NULL;
    if (optind + 1 < argc)
        return phctl_usage_error(CMD, "unexpected argument '%s'", argv[optind + 1]);
    if (type == NULL) return phctl_usage_error(CMD, "the signal TYPE is required");
    if (!known_type(type))
        return phctl_usage_error(CMD, "unknown signal type '%s' (status-request, config-update, "
                                      "swarm-start, swarm-stop, swarm-remove, swarm-template, "
                                      "swarm-plan)",
                                 type);
    if (!phctl_swarm_ok(CMD, swarm)) return PHCTL_EXIT_USAGE;
    long timeout = 10;
    if (timeout_s != NULL && !phctl_parse_long(timeout_s, 1, 3600, &timeout))
        return phctl_usage_error(CMD, "--timeout must be whole seconds in 1..3600, not '%s'",
                                 timeout_s);
    char err[256];
    const bool lifecycle = strncmp(type, "swarm-", 6) == 0;
    const bool role_all = role != NULL && strcmp(role, WILDCARD) == 0;
    const bool inst_all = instance != NULL && strcmp(instance, WILDCARD) == 0;
    if (role != NULL && !role_all && ph_ident_check("role", role, err, sizeof err) != PH_OK)
        return phctl_usage_error(CMD, "invalid --role: %s", err);
    if (instance != NULL && !inst_all &&
        ph_ident_check("instance", instance, err, sizeof err) != PH_OK)
        return phctl_usage_error(CMD, "invalid --instance: %s", err);
    if (ikey != NULL && ikey[0] == '\0')
        return phctl_usage_error(CMD, "--idempotency-key must not be empty");
    if (ikey != NULL && strlen(ikey) > 200)
        return phctl_usage_error(CMD, "--idempotency-key is longer than 200 characters");

    /* Scope: NULL is the wildcard (JSON null, routing segment ALL). */
    char ctl_inst[PH_ID_MAX + 16];
    snprintf(ctl_inst, sizeof ctl_inst, "%.52s-controller", swarm);
    const char *s_role, *s_inst;
    if (role == NULL) {
        s_role = CONTROLLER_ROLE;
        s_inst = instance != NULL ? (inst_all ? NULL : instance) : ctl_inst;
    } else if (role_all) {
        if (instance != NULL && !inst_all)
            return phctl_usage_error(CMD, "--role ALL addresses the whole swarm: it takes no "
                                          "--instance");
        s_role = NULL;
        s_inst = NULL;
    } else {
        s_role = role;
        s_inst = instance == NULL || inst_all ? NULL : instance;
    }
    if (lifecycle && (s_role == NULL || strcmp(s_role, CONTROLLER_ROLE) != 0))
        return phctl_usage_error(CMD, "%s is a command to the swarm controller: --role may only "
                                      "be swarm-controller",
                                 type);

    json_t *data = NULL;
    if (data_s != NULL) {
        json_error_t je;
        data = json_loads(data_s, JSON_REJECT_DUPLICATES, &je);
        if (data == NULL)
            return phctl_usage_error(CMD, "--data is not JSON: %s (at character %d)", je.text,
                                     je.position);
        if (!json_is_object(data)) {
            json_decref(data);
            return phctl_usage_error(CMD, "--data must be a JSON object");
        }
    } else {
        data = json_object();
    }

    char cid[37], fresh_ikey[37];
    if (!uuid4(cid) || (ikey == NULL && !uuid4(fresh_ikey))) {
        fprintf(stderr, "phctl: cannot read /dev/urandom: %s\n", strerror(errno));
        json_decref(data);
        return PHCTL_EXIT_OTHER;
    }
    if (ikey == NULL) ikey = fresh_ikey;
    char origin[128], ts[32];
    make_origin(origin, sizeof origin);
    ph_rfc3339_ms(ph_real_ns(), ts);
    json_t *env = json_object();
    json_object_set_new(env, "timestamp", json_string(ts));
    json_object_set_new(env, "version", json_string("1"));
    json_object_set_new(env, "kind", json_string("signal"));
    json_object_set_new(env, "type", json_string(type));
    json_object_set_new(env, "origin", json_string(origin));
    json_object_set_new(env, "scope", json_pack("{s:s, s:o, s:o}", "swarmId", swarm, "role",
                                                s_role ? json_string(s_role) : json_null(),
                                                "instance",
                                                s_inst ? json_string(s_inst) : json_null()));
    json_object_set_new(env, "correlationId", json_string(cid));
    json_object_set_new(env, "idempotencyKey", json_string(ikey));
    json_object_set_new(env, "data", data);
    char *body = json_dumps(env, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(env);
    if (body == NULL) {
        fprintf(stderr, "phctl: out of memory\n");
        return PHCTL_EXIT_OTHER;
    }
    char rk[RK_MAX];
    snprintf(rk, sizeof rk, "signal.%s.%s.%s.%s", type, swarm, s_role ? s_role : WILDCARD,
             s_inst ? s_inst : WILDCARD);

    /* The broker. */
    struct ph_amqp_url url;
    char uerr[400];
    int rc = ph_amqp_url_load(&url, url_file, uerr, sizeof uerr);
    if (rc != PH_OK) {
        fprintf(stderr, "phctl: %s\n", uerr);
        free(body);
        return rc == PH_ERR_SYS ? (errno == EACCES ? PHCTL_EXIT_ACCES : PHCTL_EXIT_OTHER)
                                : PHCTL_EXIT_USAGE;
    }
    struct amqp_connection_info ci = url.ci;
    const char *where = url.where;
    amqp_connection_state_t c = NULL;
    rc = open_conn(&c, &ci, where);
    ph_amqp_url_wipe(&url); /* the password */
    if (rc != PHCTL_EXIT_OK) {
        free(body);
        return rc;
    }
    bool up = true;
    int result = PHCTL_EXIT_BROKER;
    amqp_channel_open(c, CHANNEL);
    if (!rpc_ok(c, "channel.open")) goto lost;
    amqp_exchange_declare(c, CHANNEL, amqp_cstring_bytes(EXCHANGE), amqp_cstring_bytes("topic"),
                          0, 1, 0, 0, amqp_empty_table);
    if (!rpc_ok(c, "exchange.declare " EXCHANGE)) goto lost;
    amqp_queue_declare_ok_t *qd =
        amqp_queue_declare(c, CHANNEL, amqp_empty_bytes, 0, 0, 1, 1, amqp_empty_table);
    if (qd == NULL || !rpc_ok(c, "queue.declare")) goto lost;
    amqp_bytes_t q = amqp_bytes_malloc_dup(qd->queue);
    const bool is_status = strcmp(type, "status-request") == 0;
    char key[RK_MAX];
    snprintf(key, sizeof key, "event.outcome.%s.%s.#", type, swarm);
    amqp_queue_bind(c, CHANNEL, q, amqp_cstring_bytes(EXCHANGE), amqp_cstring_bytes(key),
                    amqp_empty_table);
    if (!rpc_ok(c, "queue.bind")) goto lost_q;
    if (is_status) {
        snprintf(key, sizeof key, "event.metric.status-full.%s.#", swarm);
        amqp_queue_bind(c, CHANNEL, q, amqp_cstring_bytes(EXCHANGE), amqp_cstring_bytes(key),
                        amqp_empty_table);
        if (!rpc_ok(c, "queue.bind")) goto lost_q;
    }
    amqp_basic_consume(c, CHANNEL, q, amqp_empty_bytes, 0, 1, 1, amqp_empty_table);
    if (!rpc_ok(c, "basic.consume")) goto lost_q;
    amqp_confirm_select(c, CHANNEL);
    if (!rpc_ok(c, "confirm.select")) goto lost_q;

    amqp_basic_properties_t p;
    memset(&p, 0, sizeof p);
    p._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG;
    p.content_type = amqp_cstring_bytes("application/json");
    p.delivery_mode = 2;
    amqp_bytes_t b = {.len = strlen(body), .bytes = body};
    int prc = amqp_basic_publish(c, CHANNEL, amqp_cstring_bytes(EXCHANGE), amqp_cstring_bytes(rk),
                                 1, 0, &p, b);
    if (prc != AMQP_STATUS_OK) {
        fprintf(stderr, "phctl: publishing %s: %s\n", rk, amqp_error_string2(prc));
        goto lost_q;
    }

    const struct want w = {.type = type,
                           .cid = cid,
                           .swarm = swarm,
                           .status_full = is_status,
                           .controller_full_only = is_status &&
                                                   (s_role == NULL ||
                                                    strcmp(s_role, CONTROLLER_ROLE) == 0)};
    const uint64_t deadline = now_ms() + (uint64_t)timeout * 1000u;
    bool confirmed = false, returned = false;
    json_t *answer = NULL;
    while (answer == NULL) {
        uint64_t now = now_ms();
        if (now >= deadline) break;
        uint64_t left = deadline - now;
        struct timeval tv = {(time_t)(left / 1000), (suseconds_t)(left % 1000) * 1000};
        amqp_frame_t f;
        amqp_maybe_release_buffers(c);
        int frc = amqp_simple_wait_frame_noblock(c, &f, &tv);
        if (frc == AMQP_STATUS_TIMEOUT) break;
        if (frc != AMQP_STATUS_OK) {
            fprintf(stderr,
                    "phctl: lost the connection to the broker %s while waiting for the answer "
                    "to correlationId %s: %s\n",
                    where, cid, amqp_error_string2(frc));
            up = false;
            goto lost_q;
        }
        if (f.frame_type != AMQP_FRAME_METHOD) continue;
        switch (f.payload.method.id) {
        case AMQP_BASIC_ACK_METHOD:
            confirmed = true;
            if (returned) {
                fprintf(stderr,
                        "phctl: no queue is bound to %s: is the bridge of swarm '%s' running "
                        "on this broker?\n",
                        rk, swarm);
                result = PHCTL_EXIT_OTHER;
                goto done_q;
            }
            break;
        case AMQP_BASIC_NACK_METHOD:
            fprintf(stderr, "phctl: the broker refused the signal (basic.nack)\n");
            result = PHCTL_EXIT_OTHER;
            goto done_q;
        case AMQP_BASIC_RETURN_METHOD:
        case AMQP_BASIC_DELIVER_METHOD: {
            const bool ret = f.payload.method.id == AMQP_BASIC_RETURN_METHOD;
            amqp_message_t msg;
            amqp_rpc_reply_t r = amqp_read_message(c, f.channel, &msg, 0);
            if (r.reply_type != AMQP_RESPONSE_NORMAL) {
                char why[300];
                ph_amqp_describe_reply(r, why, sizeof why);
                fprintf(stderr, "phctl: reading a message from the broker: %s\n", why);
                up = false;
                goto lost_q;
            }
            if (ret) {
                returned = true;
            } else {
                json_error_t je;
                json_t *e = json_loadb(msg.body.bytes, msg.body.len, 0, &je);
                if (json_is_object(e) && answers(&w, e))
                    answer = e;
                else
                    json_decref(e);
            }
            amqp_destroy_message(&msg);
            break;
        }
        case AMQP_CHANNEL_CLOSE_METHOD:
        case AMQP_CONNECTION_CLOSE_METHOD: {
            const bool conn = f.payload.method.id == AMQP_CONNECTION_CLOSE_METHOD;
            const amqp_channel_close_t *m = f.payload.method.decoded; /* same layout */
            fprintf(stderr, "phctl: the broker closed the %s: %u %.*s\n",
                    conn ? "connection" : "channel", m->reply_code, (int)m->reply_text.len,
                    (const char *)m->reply_text.bytes);
            up = false;
            goto lost_q;
        }
        default: break;
        }
    }
    (void)confirmed;
    if (answer == NULL) {
        fprintf(stderr, "phctl: no %s for correlationId %s within %ld s\n",
                is_status ? "status-full" : "outcome", cid, timeout);
        result = PHCTL_EXIT_NOENT; /* 3: timeout */
        goto done_q;
    }
    if (raw) {
        char *t = json_dumps(answer, JSON_COMPACT | JSON_PRESERVE_ORDER);
        printf("%s\n", t ? t : "null");
        free(t);
    } else {
        print_summary(answer);
    }
    fflush(stdout);
    const char *st = json_string_value(json_object_get(json_object_get(answer, "data"), "status"));
    result = st != NULL && strcmp(st, "failed") == 0 ? PHCTL_EXIT_OTHER : PHCTL_EXIT_OK;
    json_decref(answer);
done_q:
    amqp_bytes_free(q);
    close_conn(c, true);
    free(body);
    return result;
lost_q:
    amqp_bytes_free(q);
lost:
    close_conn(c, up);
    free(body);
    return PHCTL_EXIT_BROKER;
}
