/* Test fixture for the swarm-controller unit tests (see fixture.h). */
#include "fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "docpack.h"
#include "ph/mpjson.h"
#include "ph/record.h"

/* ---- contract invariants, checked on every emitted document ------------ */

static void violation(struct fx *f, const char *what, const json_t *doc)
{
    if (f->violations++ == 0) {
        char *txt = json_dumps(doc, JSON_COMPACT);
        snprintf(f->violation, sizeof f->violation, "%s: %.900s", what, txt ? txt : "?");
        free(txt);
    }
}

static bool only_keys(const json_t *o, const char *const *keys)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)o, k, v)
    {
        bool ok = false;
        for (int i = 0; keys[i] != NULL && !ok; i++)
            ok = strcmp(k, keys[i]) == 0;
        if (!ok) return false;
    }
    return true;
}

static bool in_set(const char *s, const char *const *set)
{
    for (int i = 0; s != NULL && set[i] != NULL; i++)
        if (strcmp(s, set[i]) == 0) return true;
    return false;
}

static bool has_key_anywhere(const json_t *v, const char *key)
{
    if (json_is_object(v)) {
        const char *k;
        json_t *x;
        json_object_foreach((json_t *)v, k, x)
        {
            if (strcmp(k, key) == 0 || has_key_anywhere(x, key)) return true;
        }
    } else if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++)
            if (has_key_anywhere(json_array_get(v, i), key)) return true;
    }
    return false;
}

static void check_doc(struct fx *f, const json_t *doc)
{
    static const char *const head[] = {"kind", "type", "swarm", "role", "instance", "origin",
                                       "cid",  "ikey", "data",  "ts",   NULL};
    static const char *const ins[] = {"ok",      "out-of-data", "backpressure", "upstream-error",
                                      "unknown", NULL};
    static const char *const outs[] = {"ok",      "blocked", "throttled", "downstream-error",
                                       "unknown", NULL};
    /* Outcomes carry the time they were made ("ts"), other documents not. */
    const bool outcome = json_is_object(doc) && jstr(doc, "kind") != NULL &&
                         strcmp(jstr(doc, "kind"), "outcome") == 0;
    const bool stamped = json_is_object(doc) && json_object_get(doc, "ts") != NULL;
    if (!json_is_object(doc) || json_object_size(doc) != (stamped ? 10u : 9u) ||
        !only_keys(doc, head) || (!outcome && stamped) ||
        (outcome && !stamped && !f->unstamped_ok)) {
        violation(f, "document head is not the keys of ph/doc.h (ts on outcomes only)", doc);
        return;
    }
    if (outcome && stamped) {
        /* Within a minute of now: stamped when made, in milliseconds. */
        const json_t *ts = jget(doc, "ts");
        const int64_t now_ms = (int64_t)(ph_real_ns() / 1000000u);
        if (!json_is_integer(ts) || json_integer_value(ts) > now_ms ||
            json_integer_value(ts) < now_ms - 60000)
            violation(f, "outcome ts is not the time it was made, in ms", doc);
    }
    const char *kind = jstr(doc, "kind"), *type = jstr(doc, "type"), *role = jstr(doc, "role");
    const json_t *data = jget(doc, "data");
    if (!json_is_object(data) || kind == NULL || type == NULL) {
        violation(f, "kind/type/data missing", doc);
        return;
    }
    const char *origin = jstr(doc, "origin");
    if (origin == NULL || origin[0] == '\0') violation(f, "origin empty", doc);
    if (strcmp(kind, "metric") == 0) {
        const bool delta = strcmp(type, "status-delta") == 0;
        const bool full = strcmp(type, "status-full") == 0;
        const bool controller = role != NULL && strcmp(role, "swarm-controller") == 0;
        static const char *const dkeys[] = {"enabled", "tps", "ioState", "context", NULL};
        static const char *const fkeys[] = {"enabled", "tps",       "ioState", "config",
                                            "io",      "startedAt", "context", NULL};
        static const char *const iokeys[] = {"work", "control", NULL};
        if (!delta && !full) violation(f, "metric type is not status-full/status-delta", doc);
        if (!json_is_boolean(jget(data, "enabled"))) violation(f, "data.enabled not a bool", doc);
        const json_t *tps = jget(data, "tps");
        if (!json_is_integer(tps) || json_integer_value(tps) < 0)
            violation(f, "data.tps not an integer >= 0", doc);
        const json_t *io = jget(data, "ioState");
        if (!json_is_object(io) || !only_keys(io, iokeys) || !in_set(jstr(io, "work.input"), ins) ||
            !in_set(jstr(io, "work.output"), outs))
            violation(f, "data.ioState malformed", doc);
        if (delta && (!only_keys(data, dkeys) || jhas(data, "config") || jhas(data, "io") ||
                      jhas(data, "startedAt")))
            violation(f, "status-delta carries more than enabled/tps/ioState/context", doc);
        if (delta && controller && jhas(data, "context.workers"))
            violation(f, "controller status-delta carries a workers list", doc);
        if (full && (!only_keys(data, fkeys) || !json_is_object(jget(data, "config")) ||
                     !json_is_object(jget(data, "io")) || jstr(data, "startedAt") == NULL))
            violation(f, "status-full lacks config/io/startedAt or has extra keys", doc);
        if (!controller && has_key_anywhere(data, "workers"))
            violation(f, "worker status carries a workers list", doc);
    } else if (strcmp(kind, "outcome") == 0) {
        const char *cid = jstr(doc, "cid");
        const char *st = jstr(data, "status");
        if (cid == NULL || cid[0] == '\0') violation(f, "outcome without correlationId", doc);
        if (st == NULL || st[0] == '\0') violation(f, "outcome without data.status", doc);
    } else if (strcmp(kind, "event") == 0) {
        static const char *const akeys[] = {"level",       "code",   "message", "errorType",
                                            "errorDetail", "logRef", "context", NULL};
        static const char *const levels[] = {"info", "warn", "error", NULL};
        const char *code = jstr(data, "code"), *msg = jstr(data, "message");
        if (strcmp(type, "alert") != 0 || !only_keys(data, akeys) ||
            !in_set(jstr(data, "level"), levels) || code == NULL || code[0] == '\0' ||
            msg == NULL || msg[0] == '\0')
            violation(f, "alert malformed", doc);
    } else {
        violation(f, "unknown kind", doc);
    }
}

/* ---- emitter and hooks ------------------------------------------------- */

static bool fx_emit(void *ctx, const char *data, size_t len, bool reliable, uint64_t seq)
{
    struct fx *f = ctx;
    msgpack_zone zone;
    msgpack_zone_init(&zone, 4096);
    msgpack_object o;
    char err[160];
    json_t *doc = NULL;
    if (ph_mp_decode((const uint8_t *)data, len, true, &zone, &o, err, sizeof err) == PH_OK)
        doc = ph_mp_to_json(&o);
    msgpack_zone_destroy(&zone);
    if (doc == NULL) {
        json_t *e = json_pack("{s:s}", "undecodable", err);
        violation(f, "emitted document does not decode", e);
        json_decref(e);
        return true;
    }
    check_doc(f, doc);
    if (seq > f->emitted_seq) f->emitted_seq = seq;
    json_array_append_new(f->docs, json_pack("{s:o, s:I, s:b, s:I}", "doc", doc, "at",
                                             (json_int_t)(f->now - f->t0), "reliable", reliable,
                                             "seq", (json_int_t)seq));
    return true;
}

static void fx_journal(void *ctx, json_t *entry)
{
    struct fx *f = ctx;
    json_array_append_new(f->journal, json_deep_copy(entry));
}

static void fx_closing(void *ctx)
{
    struct fx *f = ctx;
    f->closings++;
    f->closing_at = json_array_size(f->docs);
}

static void h_joined(void *ctx, struct ctl *c, struct ctl_worker *w)
{
    struct fx *f = ctx;
    /* As the daemon does: a worker inherited from a previous controller is
     * asked to report everything again. */
    if (f->adopting) ctl_send_command(c, w->index, PH_CMD_STATUS_REQUEST, NULL, 0);
    swarm_on_joined(&f->sw, w, !f->adopting, f->now);
}

static void h_left(void *ctx, struct ctl *c, struct ctl_worker *w, bool dead)
{
    (void)c;
    struct fx *f = ctx;
    swarm_on_left(&f->sw, w, dead, f->now);
}

static void h_alert(void *ctx, struct ctl *c, struct ctl_worker *w, const struct ph_rec_alert *a)
{
    (void)c;
    struct fx *f = ctx;
    swarm_on_alert(&f->sw, w, a);
}

static void h_ack(void *ctx, struct ctl *c, struct ctl_worker *w, const struct ph_rec_ack *a)
{
    (void)c;
    struct fx *f = ctx;
    swarm_on_ack(&f->sw, w, a, f->now);
}

static void wk_forget(ph_worker *w);

/* ---- set-up ------------------------------------------------------------ */

static int fx_counter;

static uint32_t fx_command_ring;
static uint32_t fx_slots = 16;

int fx_setup_big_commands(void **state)
{
    fx_command_ring = 1u << 16;
    int rc = fx_setup(state);
    fx_command_ring = 0;
    return rc;
}

int fx_setup_many_slots(void **state)
{
    fx_slots = 256;
    int rc = fx_setup(state);
    fx_slots = 16;
    return rc;
}

int fx_setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    snprintf(f->id, sizeof f->id, "pht-ut-sc-%d-%d", (int)getpid(), fx_counter++);
    snprintf(f->ctl_instance, sizeof f->ctl_instance, "%.40s-controller", f->id);
    f->docs = json_array();
    f->journal = json_array();
    char err[256];
    bool adopted = false;
    struct ph_segment_params p = {.slots = fx_slots, .command_ring = fx_command_ring};
    if (ph_segment_create(&f->seg, f->id, &p, &adopted, err, sizeof err) != PH_OK) {
        print_error("ph_segment_create(%s): %s\n", f->id, err);
        return -1;
    }
    struct ctl_hooks hooks = {
        .ctx = f, .joined = h_joined, .left = h_left, .alert = h_alert, .ack = h_ack};
    if (ctl_init(&f->ctl, &f->seg, &hooks) != PH_OK) return -1;
    f->now = f->t0 = ph_mono_ns();
    struct swarm_cfg cfg;
    swarm_cfg_defaults(&cfg);
    snprintf(cfg.swarm_id, sizeof cfg.swarm_id, "%s", f->id);
    snprintf(cfg.instance, sizeof cfg.instance, "%s", f->ctl_instance);
    struct swarm_emitter out = {
        .ctx = f, .emit = fx_emit, .journal = fx_journal, .closing = fx_closing};
    if (swarm_init(&f->sw, &f->ctl, &cfg, &out, f->now) != PH_OK) return -1;
    fx_tick(f);
    *state = f;
    return 0;
}

void fx_write_journal(const struct fx *f, const char *path)
{
    FILE *jf = fopen(path, "w");
    assert_non_null(jf);
    for (size_t i = 0; i < json_array_size(f->journal); i++) {
        char *line = json_dumps(json_array_get(f->journal, i), JSON_COMPACT | JSON_PRESERVE_ORDER);
        fprintf(jf, "%s\n", line);
        free(line);
    }
    fclose(jf);
}

long fx_restart_controller(struct fx *f)
{
    char path[128];
    snprintf(path, sizeof path, "/tmp/%s.journal.jsonl", f->id);
    fx_write_journal(f, path);
    long n = fx_restart_controller_from(f, path);
    unlink(path);
    return n;
}

long fx_restart_controller_from(struct fx *f, const char *path)
{
    /* The old controller is gone without a word: its pending commands, caches
     * and table with it. The segment is adopted (a new generation). */
    swarm_destroy(&f->sw);
    ctl_destroy(&f->ctl);
    atomic_fetch_add(&f->seg.hdr->generation, 1);
    struct ctl_hooks hooks = {
        .ctx = f, .joined = h_joined, .left = h_left, .alert = h_alert, .ack = h_ack};
    assert_int_equal(ctl_init(&f->ctl, &f->seg, &hooks), PH_OK);
    struct swarm_cfg cfg;
    swarm_cfg_defaults(&cfg);
    snprintf(cfg.swarm_id, sizeof cfg.swarm_id, "%s", f->id);
    snprintf(cfg.instance, sizeof cfg.instance, "%s", f->ctl_instance);
    struct swarm_emitter out = {
        .ctx = f, .emit = fx_emit, .journal = fx_journal, .closing = fx_closing};
    assert_int_equal(swarm_init(&f->sw, &f->ctl, &cfg, &out, f->now), PH_OK);
    /* Workers attached before the restart were synced by the old controller;
     * the table is rebuilt first, as the daemon does, so that signals taken
     * up again find their workers. */
    f->adopting = true;
    ctl_scan(&f->ctl, f->now);
    char err[256];
    long n = swarm_recover(&f->sw, path, f->now, err, sizeof err);
    fx_tick(f);
    f->adopting = false;
    return n;
}

int fx_teardown(void **state)
{
    struct fx *f = *state;
    if (f == NULL) return 0;
    for (int i = 0; i < f->nwk; i++) {
        wk_forget(f->wk[i]);
        ph_worker_detach(f->wk[i]);
    }
    swarm_destroy(&f->sw);
    ctl_destroy(&f->ctl);
    ph_segment_close(&f->seg);
    char err[256];
    ph_segment_unlink(f->id, err, sizeof err);
    int rc = 0;
    if (f->violations > 0) {
        print_error("%d contract violation(s) in emitted documents; first: %s\n", f->violations,
                    f->violation);
        rc = -1;
    }
    json_decref(f->docs);
    json_decref(f->journal);
    free(f);
    *state = NULL;
    return rc;
}

void fx_tick(struct fx *f)
{
    if (!f->hold_confirms && f->emitted_seq != 0) swarm_outcomes_delivered(&f->sw, f->emitted_seq);
    ctl_scan(&f->ctl, f->now);
    swarm_tick(&f->sw, f->now);
}

void fx_step(struct fx *f, uint64_t dt)
{
    f->now += dt;
    fx_tick(f);
}

/* ---- SDK workers ------------------------------------------------------- */

/* Each SDK worker's effective config, as a real worker keeps it: patches
 * merge into it, and it is what the worker reports. */
static struct {
    ph_worker *w;
    json_t *config;
} wk_cfg[4 * FX_MAX_WORKERS];

static json_t **wk_config(ph_worker *w)
{
    for (size_t i = 0; i < sizeof wk_cfg / sizeof wk_cfg[0]; i++)
        if (wk_cfg[i].w == w) return &wk_cfg[i].config;
    for (size_t i = 0; i < sizeof wk_cfg / sizeof wk_cfg[0]; i++)
        if (wk_cfg[i].w == NULL) {
            wk_cfg[i].w = w;
            wk_cfg[i].config = json_pack("{s:i, s:s}", "ratePerSec", 1, "password", "hunter2");
            return &wk_cfg[i].config;
        }
    fail_msg("too many SDK workers in one test");
    return NULL;
}

static void wk_forget(ph_worker *w)
{
    for (size_t i = 0; i < sizeof wk_cfg / sizeof wk_cfg[0]; i++)
        if (wk_cfg[i].w == w) {
            json_decref(wk_cfg[i].config);
            wk_cfg[i].w = NULL;
            wk_cfg[i].config = NULL;
        }
}

ph_worker *fx_attach(struct fx *f, const char *role, const char *instance)
{
    assert_true(f->nwk < FX_MAX_WORKERS);
    char err[256] = "";
    struct ph_worker_opts o = {.swarm_id = f->id,
                               .role = role,
                               .instance = instance,
                               .config_json = "{\"ratePerSec\": 1, \"password\": \"hunter2\"}"};
    ph_worker *w = ph_worker_attach(&o, err, sizeof err);
    if (w == NULL) print_error("ph_worker_attach(%s/%s): %s\n", role, instance, err);
    assert_non_null(w);
    f->wk[f->nwk++] = w;
    return w;
}

void fx_detach(struct fx *f, ph_worker *w)
{
    for (int i = 0; i < f->nwk; i++) {
        if (f->wk[i] != w) continue;
        wk_forget(w);
        ph_worker_detach(w);
        f->wk[i] = f->wk[--f->nwk];
        return;
    }
    fail_msg("fx_detach: unknown worker");
}

void fx_attach_three(struct fx *f, struct fx_three *t)
{
    t->g = fx_attach(f, "generator", "g-1");
    t->p1 = fx_attach(f, "processor", "p-1");
    t->p2 = fx_attach(f, "processor", "p-2");
    fx_step(f, 300 * MS);
    assert_int_equal(f->ctl.live, 3);
}

int wk_apply(ph_worker *w, bool ok, json_t **last_patch, int *last_type)
{
    int n = 0;
    struct ph_command cmd;
    while (ph_worker_poll_command(w, &cmd) > 0) {
        n++;
        if (last_type) *last_type = (int)cmd.type;
        if (cmd.type == PH_COMMAND_CONFIG_PATCH) {
            if (last_patch) {
                json_decref(*last_patch);
                *last_patch = json_deep_copy(cmd.patch);
            }
            if (ok) {
                const json_t *en = json_object_get(cmd.patch, "enabled");
                if (json_is_boolean(en)) ph_worker_set_enabled(w, json_is_true(en));
                json_t **cfg = wk_config(w);
                json_object_update(*cfg, cmd.patch);
                ph_worker_publish_config(w, *cfg);
                ph_worker_publish_status(w);
            }
            ph_worker_ack(w, cmd.token, ok, ok ? "config applied" : "refused by the test");
        } else if (cmd.type == PH_COMMAND_STOP) {
            ph_worker_ack(w, cmd.token, true, "stopping");
        }
        /* STATUS_REQUEST: the SDK republished and acked by itself. */
    }
    return n;
}

int wk_drop_commands(ph_worker *w)
{
    int n = 0;
    struct ph_command cmd;
    while (ph_worker_poll_command(w, &cmd) > 0)
        n++;
    return n;
}

/* ---- raw workers ------------------------------------------------------- */

void raw_claim(struct fx *f, struct raw *r, const char *role, const char *instance)
{
    memset(r, 0, sizeof *r);
    r->f = f;
    char err[256] = "";
    uint64_t start = 0;
    assert_int_equal(ph_proc_start_time((int32_t)getpid(), &start), PH_OK);
    if (ph_slot_claim(&f->seg, role, instance, (int32_t)getpid(), start, &r->index, NULL, err,
                      sizeof err) != PH_OK)
        fail_msg("ph_slot_claim(%s/%s): %s", role, instance, err);
    r->slot = ph_segment_slot(&f->seg, r->index);
    r->claimed_ns = atomic_load(&r->slot->claimed_mono_ns);
    assert_int_equal(ph_ring_producer_init(&r->st, &r->slot->status,
                                           ph_slot_status_data(&f->seg, r->slot),
                                           f->seg.status_ring),
                     PH_OK);
    assert_int_equal(ph_ring_consumer_init(&r->cmd, &r->slot->command,
                                           ph_slot_command_data(&f->seg, r->slot),
                                           f->seg.command_ring),
                     PH_OK);
}

void raw_status(struct raw *r, uint64_t mono_ns, uint64_t processed, bool enabled, uint8_t in,
                uint8_t out)
{
    struct ph_rec_status rec = {.mono_ns = mono_ns,
                                .processed = processed,
                                .errors = 0,
                                .seq = ++r->seq,
                                .flags = enabled ? PH_STATUS_ENABLED : 0,
                                .io_in = in,
                                .io_out = out,
                                .reserved = 0};
    assert_true(ph_ring_write(&r->st, PH_REC_STATUS, &rec, PH_REC_STATUS_SIZE));
}

struct cmd_sink {
    struct raw_cmd *cmds;
    int n, max;
};

static int on_raw_cmd(void *ctx, uint16_t type, const uint8_t *body, uint32_t len)
{
    struct cmd_sink *k = ctx;
    if (k->n >= k->max) return 0;
    struct raw_cmd *c = &k->cmds[k->n++];
    memset(c, 0, sizeof *c);
    c->type = type;
    msgpack_zone zone;
    msgpack_zone_init(&zone, 1024);
    msgpack_object o;
    char err[160];
    if (ph_mp_decode(body, len, true, &zone, &o, err, sizeof err) == PH_OK) {
        const msgpack_object *tok = ph_mp_map_get(&o, "token");
        const msgpack_object *patch = ph_mp_map_get(&o, "patch");
        if (tok != NULL && tok->type == MSGPACK_OBJECT_POSITIVE_INTEGER) c->token = tok->via.u64;
        if (patch != NULL) c->patch = ph_mp_to_json(patch);
    }
    msgpack_zone_destroy(&zone);
    return 0;
}

int raw_commands(struct raw *r, struct raw_cmd *cmds, int max)
{
    struct cmd_sink k = {cmds, 0, max};
    int n = ph_ring_drain(&r->cmd, on_raw_cmd, &k, r->scratch, 0);
    assert_true(n >= 0);
    return k.n;
}

void raw_cmds_free(struct raw_cmd *cmds, int n)
{
    for (int i = 0; i < n; i++)
        json_decref(cmds[i].patch);
}

void raw_ack(struct raw *r, uint64_t token, bool ok)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    assert_int_equal(ph_rec_ack_encode(&sb, token, ok, ok ? "ok" : "refused"), PH_OK);
    assert_true(ph_ring_write(&r->st, PH_REC_ACK, sb.data, (uint32_t)sb.size));
    msgpack_sbuffer_destroy(&sb);
}

/* ---- signals ----------------------------------------------------------- */

void fx_signal_swarm(struct fx *f, const char *type, const char *swarm, const char *role,
                     const char *instance, const char *cid, const char *ikey, const char *data_json)
{
    json_error_t je;
    json_t *data = json_loads(data_json ? data_json : "{}", 0, &je);
    if (data == NULL) fail_msg("bad test JSON %s: %s", data_json, je.text);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    char rk[512];
    snprintf(rk, sizeof rk, "signal.%s.%s.%s.%s", type, swarm ? swarm : "ALL", role ? role : "ALL",
             instance ? instance : "ALL");
    dp_map(&pk, 9);
    dp_kv_str(&pk, PH_DOC_TYPE, type);
    dp_str(&pk, PH_DOC_SWARM);
    dp_str_or_nil(&pk, swarm);
    dp_str(&pk, PH_DOC_ROLE);
    dp_str_or_nil(&pk, role);
    dp_str(&pk, PH_DOC_INSTANCE);
    dp_str_or_nil(&pk, instance);
    dp_kv_str(&pk, PH_DOC_ORIGIN, "ut-orchestrator");
    dp_kv_str(&pk, PH_DOC_CID, cid);
    dp_str(&pk, PH_DOC_IKEY);
    dp_str_or_nil(&pk, ikey);
    dp_str(&pk, PH_DOC_DATA);
    assert_int_equal(ph_json_pack(&pk, data, false), 0);
    dp_kv_str(&pk, PH_DOC_RK, rk);
    swarm_on_signal(&f->sw, (const uint8_t *)sb.data, sb.size, f->now);
    msgpack_sbuffer_destroy(&sb);
    json_decref(data);
}

void fx_signal(struct fx *f, const char *type, const char *role, const char *instance,
               const char *cid, const char *ikey, const char *data_json)
{
    fx_signal_swarm(f, type, f->id, role, instance, cid, ikey, data_json);
}

/* ---- captured documents ------------------------------------------------ */

size_t fx_ndocs(const struct fx *f)
{
    return json_array_size(f->docs);
}

json_t *fx_doc(const struct fx *f, size_t i)
{
    return json_object_get(json_array_get(f->docs, i), "doc");
}

uint64_t fx_doc_at(const struct fx *f, size_t i)
{
    return (uint64_t)json_integer_value(json_object_get(json_array_get(f->docs, i), "at"));
}

static bool matches(const json_t *d, const char *kind, const char *type, const char *role)
{
    const char *k = jstr(d, "kind"), *t = jstr(d, "type"), *r = jstr(d, "role");
    return (kind == NULL || (k && strcmp(k, kind) == 0)) &&
           (type == NULL || (t && strcmp(t, type) == 0)) &&
           (role == NULL || (r && strcmp(r, role) == 0));
}

size_t fx_count(const struct fx *f, size_t from, const char *kind, const char *type,
                const char *role)
{
    size_t n = 0;
    for (size_t i = from; i < fx_ndocs(f); i++)
        n += matches(fx_doc(f, i), kind, type, role);
    return n;
}

size_t fx_find(const struct fx *f, size_t from, const char *kind, const char *type,
               const char *role)
{
    for (size_t i = from; i < fx_ndocs(f); i++)
        if (matches(fx_doc(f, i), kind, type, role)) return i;
    return (size_t)-1;
}

json_t *fx_first(const struct fx *f, size_t from, const char *kind, const char *type,
                 const char *role)
{
    size_t i = fx_find(f, from, kind, type, role);
    return i == (size_t)-1 ? NULL : fx_doc(f, i);
}

json_t *fx_last(const struct fx *f, size_t from, const char *kind, const char *type,
                const char *role)
{
    json_t *last = NULL;
    for (size_t i = from; i < fx_ndocs(f); i++)
        if (matches(fx_doc(f, i), kind, type, role)) last = fx_doc(f, i);
    return last;
}

long fx_journal_find(const struct fx *f, long from, const char *ev, const char *change,
                     const char *instance)
{
    for (size_t i = (size_t)(from < 0 ? 0 : from); i < json_array_size(f->journal); i++) {
        const json_t *e = json_array_get(f->journal, i);
        const char *x = jstr(e, "event"), *c = jstr(e, "change"), *in = jstr(e, "instance");
        if (x == NULL || strcmp(x, ev) != 0) continue;
        if (change != NULL && (c == NULL || strcmp(c, change) != 0)) continue;
        if (instance != NULL && (in == NULL || strcmp(in, instance) != 0)) continue;
        return (long)i;
    }
    return -1;
}

/* ---- JSON helpers ------------------------------------------------------ */

json_t *jget(const json_t *v, const char *path)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    json_t *cur = (json_t *)v;
    char *save = NULL;
    for (char *seg = strtok_r(buf, ".", &save); seg != NULL && cur != NULL;
         seg = strtok_r(NULL, ".", &save)) {
        if (json_is_array(cur)) {
            char *end;
            long i = strtol(seg, &end, 10);
            cur = *end == '\0' && i >= 0 ? json_array_get(cur, (size_t)i) : NULL;
        } else {
            cur = json_object_get(cur, seg);
        }
    }
    return cur;
}

const char *jstr(const json_t *v, const char *path)
{
    return json_string_value(jget(v, path));
}

long long jint(const json_t *v, const char *path)
{
    const json_t *x = jget(v, path);
    if (!json_is_integer(x)) fail_msg("%s is not an integer", path);
    return json_integer_value(x);
}

bool jbool(const json_t *v, const char *path)
{
    const json_t *x = jget(v, path);
    if (!json_is_boolean(x)) fail_msg("%s is not a boolean", path);
    return json_is_true(x);
}

bool jhas(const json_t *v, const char *path)
{
    return jget(v, path) != NULL;
}
