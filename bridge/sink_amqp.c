/* AMQP sink and signal source (sink.h): the bridge's side of RabbitMQ, on
 * the project's client (ph/amqp.h).
 *
 * What is the bridge's own here:
 *   - the controller's control queue ph.control.<swarm>.swarm-controller.
 *     <instance> (durable), consumed with a prefetch of 50, and its bindings,
 *     which amqp_topo.c derives from what is published and which follow the
 *     workers as they come and go;
 *   - outcomes, alerts (and signals) are published reliably (persistent,
 *     kept until confirmed, resent after a reconnect); a document of the
 *     controller's carries its hold as the message's cookie, so the oldest
 *     unconfirmed one says how far the bridge may hand the out ring back,
 *     and is never dropped from a full outbox: the bridge stops reading
 *     the ring while the outbox is full instead; status goes out once,
 *     and status published while disconnected is dropped: a fresh
 *     status-full is asked of the controller after every reconnect
 *     (take_resync), and it supersedes every delta missed. The last
 *     documents of a removed swarm (sink confirm_all) are the exception:
 *     no later full will come, so they are published reliably too;
 *   - a delivery the bridge accepts is acknowledged only when it settles it,
 *     once the controller has taken the signal in; unsettled deliveries count
 *     against the prefetch, so a stalled controller stops the broker's
 *     deliveries (flow control) instead of growing the bridge; after a
 *     reconnect the broker delivers them again (the controller recognises
 *     repeats by correlationId).
 * A second connection, unless switched off, serves the remote workers
 * (remote.h): an exclusive queue ph.bridge.<swarm>.<instance>.workers,
 * auto-acknowledged (status is absolute: a lost one is replaced by the next),
 * bound to the swarm's worker status and config-update outcomes, and the
 * signals that forward the controller's commands to them, published
 * reliably. It is its own connection so that a flood of worker status never
 * holds up the control queue's signals.
 * The URL comes from PH_AMQP_URL or from a file, never from the command
 * line. */
#include "sink.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amqp_topo.h"
#include "envelope.h"
#include "ph/amqp.h"
#include "ph/log.h"
#include "remote.h"

#define PREFETCH 50
_Static_assert(SINK_SESSION_SHIFT == PH_AMQP_SESSION_SHIFT, "one delivery handle format");
#define CLOSE_CONFIRM_WAIT_NS 2000000000ull

struct amqp_sink {
    struct sink base;
    struct ph_amqp *amqp;
    char queue[CONTRACT_RK_MAX];
    struct amqp_topo topo;
    bool topo_dirty;         /* bindings to apply at the next flush */
    uint64_t seen_session;   /* the connection take_resync last looked at */
    uint64_t status_dropped; /* status published while disconnected */
    uint64_t status_dropped_since;
    struct ph_amqp *wk; /* remote workers' connection, or NULL */
    struct remote *remote;
    char wk_queue[CONTRACT_RK_MAX];
    uint64_t wk_session; /* the remote-worker connection the relays were heard on */
};

static int wk_deliver(void *ctx, const char *rk, size_t rklen, const char *body, size_t len,
                      uint64_t delivery)
{
    (void)delivery;
    struct amqp_sink *s = ctx;
    return remote_on_message(s->remote, rk, rklen, body, len, ph_mono_ns()) == 0 ? 0 : 1;
}

static int wk_publish(void *ctx, const char *rk, const char *body, size_t len, bool reliable)
{
    struct amqp_sink *s = ctx;
    return ph_amqp_publish(s->wk, rk, body, len, reliable) == PH_OK ? 0 : -1;
}

static int deliver(void *ctx, const char *rk, size_t rklen, const char *body, size_t len,
                   uint64_t delivery)
{
    struct amqp_sink *s = ctx;
    return s->base.receive != NULL
               ? s->base.receive(s->base.receive_ctx, rk, rklen, body, len, delivery)
               : 1;
}

static int amqp_publish(struct sink *sb, const char *rk, const json_t *env, const char *text,
                        enum contract_kind kind, uint64_t hold, char *err, size_t errlen)
{
    struct amqp_sink *s = (struct amqp_sink *)sb;
    /* The whole set is rebuilt once per flush (a thousand workers joining
     * in one drain cost one set, not one per worker); a worker's own keys
     * go out now, ahead of the status that announces it, so that a signal
     * sent on seeing that status finds its binding. */
    if (amqp_topo_observe(&s->topo, rk, env)) {
        s->topo_dirty = true;
        struct contract_rk k;
        char why[128];
        if (contract_rk_parse(rk, &k, why, sizeof why) == PH_OK &&
            strcmp(k.role, CONTRACT_CONTROLLER_ROLE) != 0 && strcmp(k.instance, CONTRACT_ALL) != 0)
            ph_amqp_bind_add(s->amqp, amqp_topo_worker_keys(&s->topo, k.role, k.instance));
    }
    if (kind == CK_METRIC && s->remote != NULL) {
        /* Its echo on the remote-worker queue is not a remote worker. */
        struct contract_rk k;
        char why[128];
        if (contract_rk_parse(rk, &k, why, sizeof why) == PH_OK &&
            strcmp(k.role, CONTRACT_CONTROLLER_ROLE) != 0 && k.role[0] != '\0' &&
            k.instance[0] != '\0')
            remote_note_local(s->remote, k.role, k.instance, ph_mono_ns());
    }
    const bool status = kind == CK_METRIC && !s->base.confirm_all;
    if (status && !ph_amqp_up(s->amqp)) {
        s->status_dropped++;
        s->status_dropped_since++;
        return PH_OK;
    }
    char *body = text != NULL ? (char *)text : json_dumps(env, ENVELOPE_DUMP_FLAGS);
    if (body == NULL) {
        snprintf(err, errlen, "sink amqp: cannot serialise the envelope for %s", rk);
        return PH_ERR_SYS;
    }
    int rc = !status && hold != 0 ? ph_amqp_publish_cookie(s->amqp, rk, body, strlen(body), hold)
                                  : ph_amqp_publish(s->amqp, rk, body, strlen(body), !status);
    if (body != text) free(body);
    if (rc == PH_ERR_NOENT) { /* status, and the connection just went */
        s->status_dropped++;
        s->status_dropped_since++;
        rc = PH_OK;
    }
    if (rc != PH_OK) snprintf(err, errlen, "sink amqp: out of memory keeping %s", rk);
    return rc;
}

static int amqp_flush(struct sink *sb, char *err, size_t errlen)
{
    (void)err, (void)errlen;
    struct amqp_sink *s = (struct amqp_sink *)sb;
    if (s->topo_dirty) {
        json_t *keys = amqp_topo_keys(&s->topo);
        if (keys != NULL) {
            ph_amqp_bind(s->amqp, keys);
            s->topo_dirty = false;
        }
    }
    ph_amqp_flush(s->amqp);
    if (s->wk != NULL) {
        ph_amqp_service(s->wk);
        const uint64_t session = ph_amqp_session(s->wk);
        if (session != s->wk_session) {
            s->wk_session = session;
            remote_forget_relays(s->remote);
        }
        remote_tick(s->remote, ph_mono_ns());
        ph_amqp_flush(s->wk);
    }
    return PH_OK;
}

static size_t amqp_unconfirmed(struct sink *sb)
{
    return ph_amqp_unconfirmed(((struct amqp_sink *)sb)->amqp);
}

static uint64_t amqp_held(struct sink *sb)
{
    return ph_amqp_oldest_cookie(((struct amqp_sink *)sb)->amqp);
}

static void amqp_release_holds(struct sink *sb)
{
    ph_amqp_forget_cookies(((struct amqp_sink *)sb)->amqp);
}

static bool amqp_full(struct sink *sb)
{
    return ph_amqp_outbox_full(((struct amqp_sink *)sb)->amqp);
}

static int amqp_poll_fd(struct sink *sb, uint64_t *gen)
{
    return ph_amqp_fd(((struct amqp_sink *)sb)->amqp, gen);
}

static void amqp_service(struct sink *sb)
{
    struct amqp_sink *s = (struct amqp_sink *)sb;
    ph_amqp_service(s->amqp);
    if (s->wk != NULL) ph_amqp_service(s->wk);
}

static bool amqp_take_resync(struct sink *sb)
{
    struct amqp_sink *s = (struct amqp_sink *)sb;
    const uint64_t session = ph_amqp_session(s->amqp);
    if (session == s->seen_session || !ph_amqp_up(s->amqp)) return false;
    s->seen_session = session;
    /* A reconnect, or status dropped before the first connect: the
     * controller's next status-full brings every consumer up to date. */
    const bool resync = session > 1 || s->status_dropped_since > 0;
    if (s->status_dropped_since > 0)
        ph_info("%" PRIu64 " status message(s) dropped while disconnected; asking for a "
                "fresh status-full",
                s->status_dropped_since);
    s->status_dropped_since = 0;
    return resync;
}

static void amqp_settle(struct sink *sb, uint64_t delivery)
{
    ph_amqp_settle(((struct amqp_sink *)sb)->amqp, delivery);
}

static uint64_t amqp_session(struct sink *sb)
{
    return ph_amqp_session(((struct amqp_sink *)sb)->amqp);
}

static void amqp_close_sink(struct sink *sb)
{
    struct amqp_sink *s = (struct amqp_sink *)sb;
    const struct ph_amqp_stats st = *ph_amqp_stats(s->amqp);
    ph_amqp_close(s->amqp, CLOSE_CONFIRM_WAIT_NS);
    ph_info("AMQP sink closed: %" PRIu64 " published, %" PRIu64 " confirmed, %" PRIu64
            " nacked, %" PRIu64 " status dropped while disconnected, %" PRIu64
            " outbox drops, %" PRIu64 " signals acked, %" PRIu64 " rejected, %" PRIu64
            " connection(s)",
            st.published, st.confirmed, st.nacked, s->status_dropped, st.outbox_dropped, st.acked,
            st.rejected, st.connections);
    if (s->wk != NULL) {
        const struct remote_stats *rs = remote_stats(s->remote);
        ph_info("remote workers: %" PRIu64 " joined, %" PRIu64 " left, %" PRIu64
                " statuses, %" PRIu64 " commands forwarded, %" PRIu64 " answered, %" PRIu64
                " timed out, %" PRIu64 " refused",
                rs->joined, rs->left, rs->statuses, rs->commands, rs->acks, rs->timeouts,
                rs->refused);
        ph_amqp_close(s->wk, CLOSE_CONFIRM_WAIT_NS / 2);
        remote_close(s->remote);
    }
    amqp_topo_free(&s->topo);
    free(s);
}

/* Both connections settled (ph_amqp_settled: connected, nothing to send,
 * confirm or bind, nothing read and unhandled), no topology change to
 * apply, and no remote worker or relay to look after (their timeouts and
 * forwarded commands are ticked): the socket poll and the bell are enough.
 * The remote-worker connection is read at the next tick; with nobody on
 * it, that is only the echo of our own status and a joiner's first
 * message. The heartbeats of both go out on ticks: ph-bridge keeps its
 * idle tick at most AMQP_IDLE_TICK_MAX_MS with this sink. */
static bool amqp_quiet(struct sink *sb)
{
    struct amqp_sink *s = (struct amqp_sink *)sb;
    if (s->topo_dirty || !ph_amqp_settled(s->amqp)) return false;
    return s->wk == NULL || (ph_amqp_settled(s->wk) && remote_idle(s->remote));
}

static const struct sink_ops amqp_ops = {
    .publish = amqp_publish,
    .flush = amqp_flush,
    .close = amqp_close_sink,
    .poll_fd = amqp_poll_fd,
    .service = amqp_service,
    .take_resync = amqp_take_resync,
    .settle = amqp_settle,
    .session = amqp_session,
    .unconfirmed = amqp_unconfirmed,
    .held = amqp_held,
    .release_holds = amqp_release_holds,
    .full = amqp_full,
    .quiet = amqp_quiet,
};

static int open_remote(struct amqp_sink *s, const struct sink_cfg *cfg, char *err, size_t errlen)
{
    struct ph_amqp_url url;
    char why[400];
    int rc = ph_amqp_url_load(&url, cfg->amqp_url_file, why, sizeof why);
    if (rc != PH_OK) {
        snprintf(err, errlen, "sink amqp (remote workers): %s", why);
        return rc;
    }
    snprintf(s->wk_queue, sizeof s->wk_queue, "ph.bridge.%s.%s.workers", cfg->swarm,
             cfg->controller_instance);
    const struct remote_cfg rcfg = {.swarm = cfg->swarm,
                                    .controller_instance = cfg->controller_instance,
                                    .publish = wk_publish,
                                    .publish_ctx = s};
    const struct ph_amqp_cfg acfg = {.name = "bridge",
                                     .purpose = "remote workers",
                                     .queue = s->wk_queue,
                                     .durable_queue = false,
                                     .auto_ack = true,
                                     .deliver = wk_deliver,
                                     .deliver_ctx = s};
    if ((rc = remote_open(&s->remote, &rcfg, err, errlen)) != PH_OK ||
        (rc = ph_amqp_open(&s->wk, &url, &acfg, err, errlen)) != PH_OK) {
        remote_close(s->remote);
        s->remote = NULL;
        ph_amqp_url_wipe(&url);
        return rc;
    }
    ph_amqp_bind(s->wk, remote_keys(cfg->swarm));
    return PH_OK;
}

int sink_amqp_open(const struct sink_cfg *cfg, struct sink **out, char *err, size_t errlen)
{
    *out = NULL;
    if (cfg == NULL || cfg->swarm == NULL || cfg->controller_instance == NULL) {
        snprintf(err, errlen, "sink amqp: swarm and controller instance are required");
        return PH_ERR_INVAL;
    }
    struct amqp_sink *s = calloc(1, sizeof *s);
    struct ph_amqp_url url;
    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        return PH_ERR_SYS;
    }
    char why[400];
    int rc = ph_amqp_url_load(&url, cfg->amqp_url_file, why, sizeof why);
    if (rc != PH_OK) {
        snprintf(err, errlen, "sink amqp: %s", why);
        free(s);
        return rc;
    }
    snprintf(s->queue, sizeof s->queue, "ph.control.%s.%s.%s", cfg->swarm,
             CONTRACT_CONTROLLER_ROLE, cfg->controller_instance);
    const struct ph_amqp_cfg acfg = {.name = "bridge",
                                     .queue = s->queue,
                                     .durable_queue = true,
                                     .prefetch = PREFETCH,
                                     .deliver = deliver,
                                     .deliver_ctx = s};
    char where[sizeof url.where];
    snprintf(where, sizeof where, "%s", url.where);
    if (amqp_topo_init(&s->topo, cfg->swarm, cfg->controller_instance) != PH_OK ||
        (rc = ph_amqp_open(&s->amqp, &url, &acfg, err, errlen)) != PH_OK) {
        if (rc == PH_OK) snprintf(err, errlen, "out of memory");
        amqp_topo_free(&s->topo);
        ph_amqp_url_wipe(&url);
        free(s);
        return rc != PH_OK ? rc : PH_ERR_SYS;
    }
    ph_amqp_bind(s->amqp, amqp_topo_keys(&s->topo));
    if (!cfg->no_remote_workers && (rc = open_remote(s, cfg, err, errlen)) != PH_OK) {
        ph_amqp_close(s->amqp, 0);
        amqp_topo_free(&s->topo);
        free(s);
        return rc;
    }
    s->base.ops = &amqp_ops;
    snprintf(s->base.spec, sizeof s->base.spec, "amqp");
    ph_info("AMQP sink: broker %s, exchange " PH_AMQP_EXCHANGE ", control queue %s", where,
            s->queue);
    *out = &s->base;
    return PH_OK;
}
