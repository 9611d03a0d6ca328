/* ph-swarm-controller: owns a swarm's segment, drains every worker slot,
 * keeps the swarm aggregate, and talks to the bridge through the channel.
 *
 * The loop (ph/loop.h) never busy-waits: a timeout wakes it every tick
 * (drain rings, beat the heartbeat, emit status when due), SIGTERM/SIGINT
 * arrive as events, one poll per worker pidfd reports an owner's death the
 * moment it happens (a periodic /proc check covers owners without one), and
 * journal appends are asynchronous writes. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "ctl.h"
#include "journal.h"
#include "ph/busguard.h"
#include "ph/channel.h"
#include "ph/log.h"
#include "ph/loop.h"
#include "ph/owner.h"
#include "ph/shm.h"
#include "swarm.h"

#define OUTBOX_MAX_BYTES (64u << 20)

struct opts {
    const char *swarm;
    const char *swarm_file;
    const char *instance;
    const char *run_id;
    const char *journal_dir;
    uint32_t journal_max_mb;
    struct ph_segment_params seg;
    uint32_t tick_ms;
    uint32_t close_timeout_s;
    struct swarm_cfg cfg;
    struct swarm_role roles[SWARM_MAX_ROLES];
    uint32_t nroles;
};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: ph-swarm-controller --swarm ID [options]\n"
            "\n"
            "Creates (or re-adopts) the swarm's shared-memory segment /dev/shm/ph.ID,\n"
            "drains the status rings of every worker attached to it, keeps the swarm\n"
            "aggregate and hands status, outcomes and alerts to the bridge through\n"
            "/dev/shm/ph.ID.bridge.\n"
            "\n"
            "options:\n"
            "  --swarm ID              swarm id ([A-Za-z0-9_-], at most 63 characters)\n"
            "  --instance ID           controller instance id (default ID-controller)\n"
            "  --swarm-file PATH       swarm file: desired roles and counts, settings\n"
            "  --slots N               worker slots in the segment (default %u)\n"
            "  --status-ring BYTES     status ring per slot, power of two (default %u)\n"
            "  --command-ring BYTES    command ring per slot, power of two (default %u)\n"
            "  --mode OCTAL            permissions of the segment (default 0600; 0660 with\n"
            "                          --shm-group)\n"
            "  --shm-group GROUP       make the segment and the bridge channel group GROUP's\n"
            "                          (name or gid), mode 0660, so that workers, a bridge and\n"
            "                          phctl of other users in that group can attach; without\n"
            "                          it both are owner-only (0600) and every other user's\n"
            "                          process refuses them\n"
            "  --tick-ms N             drain interval in milliseconds (default 10)\n"
            "  --status-ttl-s N        a worker silent this long is stale (default 15)\n"
            "  --watermark-s N         status-delta at least this often (default 5)\n"
            "  --coalesce-ms N         at most one status-delta per N ms (default 20)\n"
            "  --worker-deltas on|off  per-worker status-delta (default on)\n"
            "  --worker-heartbeat-s N  per-worker status-delta at least every N s (default 5)\n"
            "  --close-timeout-s N     after swarm-remove, wait at most N s for the bridge to\n"
            "                          confirm the final status, then stop anyway (default 60)\n"
            "  --dead-grace-s N        dead workers stay listed this long (default 30)\n"
            "  --command-timeout-s N   workers must acknowledge a command within N s\n"
            "                          or its outcome is failed, retryable (default 5); a\n"
            "                          stop of the controller itself (over 2 s) does not count\n"
            "  --run-id ID             journal run id (default: the adopted segment's run,\n"
            "                          else ID-<UTC time>)\n"
            "  --journal-dir DIR       journal folder (default $PH_JOURNAL_DIR or\n"
            "                          /tmp/ph-journal/ID); the file is DIR/<run id>.jsonl\n"
            "  --journal-max-mb N      rotate the journal beyond N MiB, keeping %d older\n"
            "                          files (default %llu)\n"
            "  --help                  this text\n"
            "\n"
            "Precedence: option > environment (PH_STATUS_TTL_S, PH_WATERMARK_S) > swarm\n"
            "file (statusTtlSec, watermarkSec, deltaCoalesceMs, workerDeltas,\n"
            "workerHeartbeatSec, deadGraceSec, autoStart, runId, controller.instance) > default.\n"
            "Exits 0 on SIGTERM or SIGINT, and once a swarm-remove has completed and the\n"
            "bridge confirmed the final REMOVED status (or --close-timeout-s passed); the\n"
            "segment stays for the supervisor to remove.\n",
            PH_DEFAULT_SLOTS, PH_DEFAULT_STATUS_RING, PH_DEFAULT_COMMAND_RING, JOURNAL_KEEP_ROTATED,
            (unsigned long long)(JOURNAL_DEFAULT_MAX_BYTES >> 20));
}

static bool parse_u32(const char *s, uint32_t *out, int base)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, base);
    if (errno != 0 || end == s || *end != '\0' || v > UINT32_MAX || s[0] == '-') return false;
    *out = (uint32_t)v;
    return true;
}

/* Seconds from a number in a swarm file or the environment. */
static bool secs_ok(double v, double max)
{
    return v > 0 && v <= max;
}

static int load_swarm_file(struct opts *o)
{
    if (o->swarm_file == NULL) return 0;
    json_error_t je;
    json_t *root = json_load_file(o->swarm_file, JSON_REJECT_DUPLICATES, &je);
    if (root == NULL) {
        ph_error("swarm file %s: %s (line %d)", o->swarm_file, je.text, je.line);
        return 2;
    }
    int rc = 0;
    char err[256];
    const char *id = json_string_value(json_object_get(root, "swarmId"));
    if (id != NULL && ph_ident_check("swarmId", id, err, sizeof err) != PH_OK) {
        ph_error("swarm file %s: %s", o->swarm_file, err);
        rc = 2;
    } else if (id == NULL || strcmp(id, o->swarm) != 0) {
        ph_error("swarm file %s describes swarm '%s', not '%s'", o->swarm_file,
                 id ? id : "(no swarmId)", o->swarm);
        rc = 2;
    }
    const json_t *roles = json_object_get(root, "roles");
    size_t i;
    const json_t *r;
    json_array_foreach(roles, i, r)
    {
        const char *role = json_string_value(json_object_get(r, "role"));
        const json_t *cnt = json_object_get(r, "count");
        if (role != NULL && ph_ident_check("role", role, err, sizeof err) != PH_OK) {
            ph_error("swarm file %s: roles[%zu]: %s", o->swarm_file, i, err);
            rc = 2;
            break;
        }
        if (role == NULL || (cnt && (!json_is_integer(cnt) || json_integer_value(cnt) < 0)) ||
            o->nroles == SWARM_MAX_ROLES) {
            ph_error("swarm file %s: roles[%zu] is invalid", o->swarm_file, i);
            rc = 2;
            break;
        }
        snprintf(o->roles[o->nroles].role, PH_ID_MAX, "%s", role);
        o->roles[o->nroles++].count = cnt ? (uint32_t)json_integer_value(cnt) : 1;
    }
    const json_t *v;
    if ((v = json_object_get(root, "statusTtlSec")) && json_is_number(v) &&
        secs_ok(json_number_value(v), 3600))
        o->cfg.ttl_ns = (uint64_t)(json_number_value(v) * 1e9);
    if ((v = json_object_get(root, "watermarkSec")) && json_is_number(v) &&
        secs_ok(json_number_value(v), 3600))
        o->cfg.watermark_ns = (uint64_t)(json_number_value(v) * 1e9);
    if ((v = json_object_get(root, "deltaCoalesceMs")) && json_is_integer(v) &&
        json_integer_value(v) >= 0 && json_integer_value(v) <= 60000)
        o->cfg.coalesce_ns = (uint64_t)json_integer_value(v) * 1000000ull;
    if ((v = json_object_get(root, "deadGraceSec")) && json_is_number(v) &&
        json_number_value(v) >= 0)
        o->cfg.dead_grace_ns = (uint64_t)(json_number_value(v) * 1e9);
    if ((v = json_object_get(root, "workerHeartbeatSec")) && json_is_number(v) &&
        secs_ok(json_number_value(v), 3600))
        o->cfg.worker_heartbeat_ns = (uint64_t)(json_number_value(v) * 1e9);
    if ((v = json_object_get(root, "workerDeltas")) && json_is_boolean(v))
        o->cfg.worker_deltas = json_is_true(v);
    if ((v = json_object_get(root, "autoStart")) && json_is_boolean(v))
        o->cfg.auto_start = json_is_true(v);
    /* Checked whole, before a copy could cut them to a valid prefix. */
    if ((v = json_object_get(root, "runId")) && json_is_string(v) && o->run_id == NULL) {
        if (ph_ident_check("runId", json_string_value(v), err, sizeof err) != PH_OK) {
            ph_error("swarm file %s: %s", o->swarm_file, err);
            rc = 2;
        }
        snprintf(o->cfg.run_id, sizeof o->cfg.run_id, "%s", json_string_value(v));
    }
    const char *inst = json_string_value(json_object_get(json_object_get(root, "controller"),
                                                         "instance"));
    if (inst != NULL && ph_ident_check("controller.instance", inst, err, sizeof err) != PH_OK) {
        ph_error("swarm file %s: %s", o->swarm_file, err);
        rc = 2;
    }
    if (inst != NULL && o->instance == NULL)
        snprintf(o->cfg.instance, sizeof o->cfg.instance, "%s", inst);
    json_decref(root);
    return rc;
}

static int apply_env(struct opts *o)
{
    const char *names[2] = {"PH_STATUS_TTL_S", "PH_WATERMARK_S"};
    uint64_t *dst[2] = {&o->cfg.ttl_ns, &o->cfg.watermark_ns};
    for (int i = 0; i < 2; i++) {
        const char *e = getenv(names[i]);
        if (e == NULL || e[0] == '\0') continue;
        char *end;
        double v = strtod(e, &end);
        if (*end != '\0' || !secs_ok(v, 3600)) {
            fprintf(stderr, "ph-swarm-controller: %s='%s' is not a number of seconds in "
                            "(0, 3600]\n", names[i], e);
            return 2;
        }
        *dst[i] = (uint64_t)(v * 1e9);
    }
    return 0;
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
    static const struct option longs[] = {
        {"swarm", required_argument, NULL, 's'},         {"slots", required_argument, NULL, 'n'},
        {"status-ring", required_argument, NULL, 'r'},   {"command-ring", required_argument, NULL, 'c'},
        {"mode", required_argument, NULL, 'm'},          {"tick-ms", required_argument, NULL, 't'},
        {"swarm-file", required_argument, NULL, 'f'},    {"instance", required_argument, NULL, 'i'},
        {"status-ttl-s", required_argument, NULL, 'T'},  {"watermark-s", required_argument, NULL, 'W'},
        {"coalesce-ms", required_argument, NULL, 'C'},   {"worker-deltas", required_argument, NULL, 'D'},
        {"dead-grace-s", required_argument, NULL, 'G'},  {"run-id", required_argument, NULL, 'R'},
        {"journal-dir", required_argument, NULL, 'J'},   {"help", no_argument, NULL, 'h'},
        {"command-timeout-s", required_argument, NULL, 'K'},
        {"journal-max-mb", required_argument, NULL, 'M'},
        {"worker-heartbeat-s", required_argument, NULL, 'H'},
        {"close-timeout-s", required_argument, NULL, 'X'},
        {"shm-group", required_argument, NULL, 'g'},
        {NULL, 0, NULL, 0}};
    memset(o, 0, sizeof *o);
    swarm_cfg_defaults(&o->cfg);
    o->tick_ms = 10;
    /* Options are read twice: the swarm file and environment sit between the
     * defaults and the command line, so collect the plain ones first. */
    uint32_t ttl = 0, wm = 0, coalesce = UINT32_MAX, grace = UINT32_MAX, cmd_timeout = 0;
    uint32_t worker_hb = 0;
    o->close_timeout_s = 60;
    int deltas = -1;
    int ch, li = 0;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, "", longs, &li)) != -1) {
        bool ok = true;
        switch (ch) {
        case 's': o->swarm = optarg; break;
        case 'n': ok = parse_u32(optarg, &o->seg.slots, 10) && o->seg.slots > 0; break;
        case 'r': ok = parse_u32(optarg, &o->seg.status_ring, 10); break;
        case 'c': ok = parse_u32(optarg, &o->seg.command_ring, 10); break;
        case 'm': ok = parse_u32(optarg, &o->seg.mode, 8) && o->seg.mode > 0; break;
        case 't': ok = parse_u32(optarg, &o->tick_ms, 10) && o->tick_ms > 0 && o->tick_ms <= 10000;
            break;
        case 'f': o->swarm_file = optarg; break;
        case 'i': o->instance = optarg; break;
        case 'T': ok = parse_u32(optarg, &ttl, 10) && ttl > 0 && ttl <= 3600; break;
        case 'W': ok = parse_u32(optarg, &wm, 10) && wm > 0 && wm <= 3600; break;
        case 'C': ok = parse_u32(optarg, &coalesce, 10) && coalesce <= 60000; break;
        case 'G': ok = parse_u32(optarg, &grace, 10) && grace <= 86400; break;
        case 'D':
            ok = strcmp(optarg, "on") == 0 || strcmp(optarg, "off") == 0;
            deltas = optarg[1] == 'n';
            break;
        case 'K': ok = parse_u32(optarg, &cmd_timeout, 10) && cmd_timeout > 0 && cmd_timeout <= 3600;
            break;
        case 'H': ok = parse_u32(optarg, &worker_hb, 10) && worker_hb > 0 && worker_hb <= 3600;
            break;
        case 'X': ok = parse_u32(optarg, &o->close_timeout_s, 10) && o->close_timeout_s > 0 &&
                       o->close_timeout_s <= 86400;
            break;
        case 'g': {
            char gerr[160];
            if (ph_group_lookup(optarg, &o->seg.gid, gerr, sizeof gerr) != PH_OK) {
                fprintf(stderr, "ph-swarm-controller: invalid --shm-group: %s\n", gerr);
                return 2;
            }
            o->seg.set_group = true;
            break;
        }
        case 'R': o->run_id = optarg; break;
        case 'J': o->journal_dir = optarg; break;
        case 'M': ok = parse_u32(optarg, &o->journal_max_mb, 10) && o->journal_max_mb > 0 &&
                       o->journal_max_mb <= 1u << 20;
            break;
        case 'h': usage(stdout); exit(0);
        default:
            fprintf(stderr, "ph-swarm-controller: unknown or incomplete option '%s'\n",
                    argv[optind - 1]);
            usage(stderr);
            return 2;
        }
        if (!ok) {
            fprintf(stderr, "ph-swarm-controller: invalid value '%s' for --%s\n", optarg,
                    longs[li].name);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "ph-swarm-controller: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (o->swarm == NULL) {
        fprintf(stderr, "ph-swarm-controller: --swarm is required\n");
        usage(stderr);
        return 2;
    }
    char err[256];
    if (ph_ident_check("swarm id", o->swarm, err, sizeof err) != PH_OK ||
        (o->instance && ph_ident_check("instance", o->instance, err, sizeof err) != PH_OK)) {
        fprintf(stderr, "ph-swarm-controller: %s\n", err);
        return 2;
    }
    snprintf(o->cfg.swarm_id, sizeof o->cfg.swarm_id, "%s", o->swarm);
    int rc = load_swarm_file(o);
    if (rc == 0) rc = apply_env(o);
    if (rc != 0) return rc;
    if (o->instance) snprintf(o->cfg.instance, sizeof o->cfg.instance, "%s", o->instance);
    if (o->cfg.instance[0] == '\0')
        snprintf(o->cfg.instance, sizeof o->cfg.instance, "%.52s-controller", o->swarm);
    if (ph_ident_check("controller instance", o->cfg.instance, err, sizeof err) != PH_OK) {
        fprintf(stderr, "ph-swarm-controller: %s\n", err);
        return 2;
    }
    if (o->run_id) snprintf(o->cfg.run_id, sizeof o->cfg.run_id, "%s", o->run_id);
    /* No run id given: default_run_id() decides once the segment is open (a
     * restarted controller continues the run it adopts). */
    if ((o->run_id != NULL || o->cfg.run_id[0] != '\0') &&
        ph_ident_check("run id", o->run_id ? o->run_id : o->cfg.run_id, err, sizeof err) != PH_OK) {
        fprintf(stderr, "ph-swarm-controller: %s\n", err);
        return 2;
    }
    if (ttl) o->cfg.ttl_ns = (uint64_t)ttl * 1000000000ull;
    if (wm) o->cfg.watermark_ns = (uint64_t)wm * 1000000000ull;
    if (coalesce != UINT32_MAX) o->cfg.coalesce_ns = (uint64_t)coalesce * 1000000ull;
    if (grace != UINT32_MAX) o->cfg.dead_grace_ns = (uint64_t)grace * 1000000000ull;
    if (deltas >= 0) o->cfg.worker_deltas = deltas;
    if (cmd_timeout) o->cfg.cmd_timeout_ns = (uint64_t)cmd_timeout * 1000000000ull;
    if (worker_hb) o->cfg.worker_heartbeat_ns = (uint64_t)worker_hb * 1000000000ull;
    return 0;
}

/* An outcome or alert for the bridge. It goes into the ring once the journal
 * holds what was journaled before it (`mark`: an outcome's own entry), and
 * stays here until the out ring's head passed `end` (the bridge moves it
 * only past documents the broker has confirmed), so that when the channel
 * has to be re-created nothing that was waiting in the old one is lost. */
struct outdoc {
    struct outdoc *next;
    uint64_t mark; /* journal mark it waits for */
    uint64_t end;  /* out-ring position just past it once written; 0: not written yet */
    uint64_t seq;  /* an outcome's sequence number (swarm.h); 0 for an alert */
    size_t len;
    char data[];
};

struct app {
    struct ph_segment seg;
    bool shm_group_set; /* --shm-group: the channel's group, as the segment's */
    uint32_t shm_gid;
    struct ph_channel chan;
    ph_ring_producer to_bridge;
    ph_ring_consumer from_bridge;
    uint8_t *signal_scratch;
    uint64_t bridge_gen;
    /* reliable documents, oldest first; `unwritten` is the first not yet in
     * the ring (NULL: all written) */
    struct outdoc *outbox, *outbox_tail, *unwritten;
    size_t outbox_bytes;
    uint64_t outbox_dropped;
    uint64_t docs_dropped;
    bool status_waiting; /* a status document is waiting for room (counted once) */
    /* signals read from the in ring but not yet handed back: the bridge
     * acknowledges a signal to the broker only when the ring's head passes
     * it, and that waits until the journal holds it */
    bool holding;
    uint64_t hold_mark;
    bool out_corrupt; /* the bridge's position in the document ring failed the checks */
    uint64_t channel_resets;
    uint64_t last_reset_ns;
    /* The bridge's bell (ph/channel.h): our socket (-1 until the first
     * ring), and the out ring's record count when we last looked. */
    int bell_fd;
    uint64_t bell_seen;
    uint64_t bell_refused_logged; /* the last token we could not ring (said once) */
    uint64_t bell_rung;           /* the last token we rang */

    struct ctl ctl;
    struct swarm swarm;
    struct journal journal;
    struct ph_loop *loop;
    uint32_t tick_ms;
    uint64_t last_liveness, last_activity;
    bool journal_writing;
    bool initial_scan; /* the first scan of an adopted segment */
    uint64_t bus_faults, size_errors;
    uint32_t refused_seen; /* the segment's claims_refused_full when last looked at */
    unsigned bus_pending; /* guard slots faulted and not yet repaired */
    bool adopted;
    uint64_t started_real_ns;
    uint64_t start_time;
    bool stop;
    /* PH_TEST_DIE_BEFORE_OUTCOME=N, for fault tests only: this process
     * kills itself (SIGKILL) when its N-th outcome is in the journal and
     * about to go into the document ring, the moment a restarted controller
     * must send it again from the journal. */
    uint64_t test_die_before_outcome, test_outcomes_ready;
    uint64_t evicted_seq; /* the first outcome the full outbox dropped unwritten (0: none) */
    /* removal ending (ph/channel.h, closing) */
    bool closing;
    uint64_t closing_since_ns;
    uint64_t close_timeout_ns;
};

/* ---- emitter: documents to the bridge, reliable ones via the outbox ---- */

static void outbox_unlink_head(struct app *a)
{
    struct outdoc *d = a->outbox;
    a->outbox = d->next;
    if (a->outbox == NULL) a->outbox_tail = NULL;
    if (a->unwritten == d) a->unwritten = a->outbox;
    a->outbox_bytes -= d->len;
    free(d);
}

/* Forgets documents the bridge has handed back (published and confirmed). */
static void outbox_settle(struct app *a)
{
    if (a->outbox == NULL) return;
    /* acquire: pairs with the bridge's release of head; a position it
     * reports is one it has finished reading. */
    const uint64_t head = atomic_load_explicit(&a->chan.hdr->out.head, memory_order_acquire);
    const ph_ring_producer *p = &a->to_bridge;
    /* A position no bridge could have written settles nothing. */
    if ((head & (PH_RING_ALIGN - 1)) != 0 || head > p->tail || p->tail - head > p->capacity) {
        a->out_corrupt = true;
        return;
    }
    uint64_t delivered = 0;
    while (a->outbox != NULL && a->outbox->end != 0 && a->outbox->end <= head) {
        if (a->outbox->seq != 0) delivered = a->outbox->seq;
        outbox_unlink_head(a);
    }
    /* Outcomes go out in sequence order: the last one confirmed covers
     * every one before it, up to the first one the outbox had to drop. */
    if (delivered != 0 && a->evicted_seq != 0 && delivered >= a->evicted_seq)
        delivered = a->evicted_seq - 1;
    if (delivered != 0) swarm_outcomes_delivered(&a->swarm, delivered);
}

static void recreate_channel(struct app *a, const char *why, bool settle_first);

/* A full document ring: the bridge is slow or waits for the broker's
 * confirms, or its position is corrupt. The last would stop the swarm's
 * status for good: the channel is re-created (what the old ring held is
 * written again). */
static void check_document_ring(struct app *a)
{
    if (ph_ring_producer_check(&a->to_bridge) != PH_OK)
        a->out_corrupt = true; /* re-created at the start of the next tick */
}

/* Writes what waits, in order, as far as the journal and the room allow.
 * A full ring is a wait, not a loss: nothing is counted as dropped. */
static bool outbox_flush(struct app *a)
{
    bool wrote = false;
    while (a->unwritten != NULL) {
        struct outdoc *d = a->unwritten;
        if (!journal_durable(&a->journal, d->mark)) break;
        if (!ph_ring_fits(&a->to_bridge, (uint32_t)d->len)) {
            check_document_ring(a);
            break;
        }
        if (d->seq != 0 && a->test_die_before_outcome != 0 &&
            ++a->test_outcomes_ready == a->test_die_before_outcome) {
            ph_warn("PH_TEST_DIE_BEFORE_OUTCOME: killing this controller with outcome %" PRIu64
                    " journaled but not handed to the bridge",
                    d->seq);
            raise(SIGKILL);
        }
        void *dst = ph_ring_claim(&a->to_bridge, PH_DOC_RECORD, (uint32_t)d->len);
        if (dst == NULL) break;
        memcpy(dst, d->data, d->len);
        d->end = a->to_bridge.tail;
        wrote = true;
        a->unwritten = d->next;
    }
    if (wrote) ph_ring_publish(&a->to_bridge);
    return a->unwritten == NULL;
}

static bool emit_doc(void *ctx, const char *data, size_t len, bool reliable, uint64_t seq)
{
    struct app *a = ctx;
    if (len > a->to_bridge.max_record - PH_RING_HDR) {
        ph_error("document of %zu bytes exceeds the channel's %u-byte record limit: dropped", len,
                 a->to_bridge.max_record - PH_RING_HDR);
        a->docs_dropped++;
        return !reliable ? true : false;
    }
    if (!reliable) {
        /* Status: written now or not at all (the swarm retries with fresher
         * state); a wait is counted once, not on every retry. */
        if (!ph_ring_fits(&a->to_bridge, (uint32_t)len) ||
            !ph_ring_write(&a->to_bridge, PH_DOC_RECORD, data, (uint32_t)len)) {
            check_document_ring(a);
            if (!a->status_waiting) a->docs_dropped++;
            a->status_waiting = true;
            return false;
        }
        a->status_waiting = false;
        return true;
    }
    outbox_settle(a);
    while (a->outbox_bytes + len > OUTBOX_MAX_BYTES && a->outbox != NULL) {
        /* Written ones are in the ring already; an unwritten one is lost
         * here, and must not be covered by a "delivered" entry: a restart
         * then sends it again from the journal. */
        if (a->outbox->end == 0 && a->outbox->seq != 0 &&
            (a->evicted_seq == 0 || a->outbox->seq < a->evicted_seq))
            a->evicted_seq = a->outbox->seq;
        if (a->outbox->end == 0 && a->outbox_dropped++ % 1000 == 0)
            ph_error("bridge outbox full (%u MiB): dropping the oldest outcomes/alerts (%" PRIu64
                     " so far)",
                     OUTBOX_MAX_BYTES >> 20, a->outbox_dropped);
        outbox_unlink_head(a);
    }
    struct outdoc *d = malloc(sizeof *d + len);
    if (d == NULL) {
        a->outbox_dropped++;
        ph_error("out of memory keeping an outcome/alert for the bridge: dropped");
        return false;
    }
    d->next = NULL;
    d->mark = journal_mark(&a->journal);
    d->end = 0;
    d->seq = seq;
    d->len = len;
    memcpy(d->data, data, len);
    if (a->outbox_tail)
        a->outbox_tail->next = d;
    else
        a->outbox = d;
    a->outbox_tail = d;
    if (a->unwritten == NULL) a->unwritten = d;
    a->outbox_bytes += len;
    outbox_flush(a);
    return true;
}

/* The swarm is about to emit its final documents (swarm.h): from here on
 * the bridge publishes everything with broker confirms. Called again when
 * they are re-sent to a new bridge or into a re-created channel. */
static void on_closing(void *ctx)
{
    struct app *a = ctx;
    if (!a->closing) {
        a->closing = true;
        a->closing_since_ns = ph_mono_ns();
        ph_info("swarm removed: sending the final status; no more signals are taken in");
    }
    /* release: stored before the final documents are written, so a bridge
     * that acquires their tail sees it. */
    atomic_store_explicit(&a->chan.hdr->closing, 1, memory_order_release);
}

/* Once the final documents are all in the ring, tells the bridge where they
 * end, and stops when it has confirmed them (or the close timeout passed:
 * a swarm without a bridge must still end). */
static void closing_tick(struct app *a, uint64_t now)
{
    if (ph_loop_stopped(a->loop) || !swarm_finished(&a->swarm) || a->unwritten != NULL) return;
    const uint64_t mark = a->to_bridge.tail; /* published: status and outbox writes publish */
    if (atomic_load_explicit(&a->chan.hdr->close_mark, memory_order_relaxed) != mark) {
        /* release: the bridge that acquires the mark finds the ring filled up to it. */
        atomic_store_explicit(&a->chan.hdr->close_mark, mark, memory_order_release);
        ph_info("final status handed to the bridge (out ring up to %" PRIu64
                "); stopping once it is confirmed",
                mark);
    }
    /* acquire: pairs with the bridge's release of its ack, made once the
     * broker confirmed everything up to it. */
    const uint64_t ack = atomic_load_explicit(&a->chan.hdr->close_ack, memory_order_acquire);
    if (ack >= mark) {
        ph_info("the bridge confirmed the final status: the swarm is removed, stopping");
        ph_loop_stop(a->loop);
    } else if (now > a->closing_since_ns && now - a->closing_since_ns >= a->close_timeout_ns) {
        ph_warn("no bridge confirmed the final status within %" PRIu64
                " s (bridge down?); stopping anyway: the removal is journaled",
                (uint64_t)(a->close_timeout_ns / 1000000000u));
        ph_loop_stop(a->loop);
    }
}

static void journal_entry(void *ctx, json_t *entry)
{
    struct app *a = ctx;
    journal_add(&a->journal, entry);
}

static json_t *journal_checkpoint(void *ctx)
{
    struct app *a = ctx;
    return swarm_checkpoint_json(&a->swarm);
}

/* ---- ctl hooks -------------------------------------------------------- */

static void on_joined(void *ctx, struct ctl *c, struct ctl_worker *w)
{
    struct app *a = ctx;
    /* Attached under a previous controller (an adopted segment): that one
     * consumed its config and io records, so ask for them again; and it had
     * already brought the worker to the swarm's state. */
    const bool inherited =
        a->adopted && (a->initial_scan || w->attached_real_ns < a->started_real_ns);
    if (inherited) ctl_send_command(c, w->index, PH_CMD_STATUS_REQUEST, NULL, 0);
    swarm_on_joined(&a->swarm, w, !inherited, ph_mono_ns());
}

static void on_left(void *ctx, struct ctl *c, struct ctl_worker *w, bool dead)
{
    (void)c;
    struct app *a = ctx;
    swarm_on_left(&a->swarm, w, dead, ph_mono_ns());
}

static void on_alert(void *ctx, struct ctl *c, struct ctl_worker *w, const struct ph_rec_alert *al)
{
    (void)c;
    struct app *a = ctx;
    ph_log(strcmp(al->level, "error") == 0 ? PH_LOG_ERROR : PH_LOG_WARN, "alert from %s/%s: %s %s",
           w->role, w->instance, al->code, al->message);
    swarm_on_alert(&a->swarm, w, al);
}

static void on_ack(void *ctx, struct ctl *c, struct ctl_worker *w, const struct ph_rec_ack *ack)
{
    (void)c;
    struct app *a = ctx;
    swarm_on_ack(&a->swarm, w, ack, ph_mono_ns());
}

static int on_signal_doc(void *ctx, uint16_t type, const uint8_t *body, uint32_t len)
{
    struct app *a = ctx;
    if (type == PH_DOC_RECORD) swarm_on_signal(&a->swarm, body, len, ph_mono_ns());
    return 0;
}

/* ---- the channel -------------------------------------------------------- */

/* Takes up a channel this controller has just created (so its positions are
 * zero and cannot fail the checks) and publishes itself in it. */
static void publish_controller(struct app *a)
{
    if (ph_ring_producer_init(&a->to_bridge, &a->chan.hdr->out, a->chan.out_data,
                              a->chan.out_ring) != PH_OK ||
        ph_ring_consumer_init(&a->from_bridge, &a->chan.hdr->in, a->chan.in_data,
                              a->chan.in_ring) != PH_OK)
        ph_error("channel /dev/shm%s: a new channel with inconsistent positions (another process "
                 "writing it?); it will be re-created",
                 a->chan.name);
    atomic_store_explicit(&a->chan.hdr->controller_start_time, a->start_time,
                          memory_order_relaxed);
    /* relaxed: published with the pid below. */
    atomic_store_explicit(&a->chan.hdr->bell, 1, memory_order_relaxed);
    a->bell_seen = a->to_bridge.published; /* a new ring counts from its own start */
    /* A new channel counts registrations from 0: one that comes before the
     * loop runs (a bridge rung below) still gets its status-full. */
    a->bridge_gen = 0;
    /* relaxed: a free-standing timestamp. */
    atomic_store_explicit(&a->chan.hdr->controller_heartbeat_ns, ph_mono_ns(),
                          memory_order_relaxed);
    /* release: a bridge that acquires the pid sees the start time with it. */
    atomic_store_explicit(&a->chan.hdr->controller_pid, (int32_t)getpid(), memory_order_release);
}

static void note_mappings(const struct app *a);

/* The bell token in the channel an earlier controller left (0: none, or
 * no channel it could read): its bridge may be asleep on it. */
static uint64_t old_bell_token(const char *swarm)
{
    struct ph_channel old;
    char err[256];
    if (ph_channel_open(&old, swarm, false, err, sizeof err) != PH_OK) return 0;
    /* relaxed: a name to send to. */
    const uint64_t t = atomic_load_explicit(&old.hdr->bell_token, memory_order_relaxed);
    ph_channel_close(&old);
    return t;
}

/* Re-creates the channel after one side found it corrupt: signals read but
 * not yet handed back are forwarded again by the bridge (and recognised by
 * their correlation ids), and an alert says what happened. Every outcome
 * and alert the old ring's head had not passed goes into the new one: not
 * yet written, not yet read, or read and published but not yet confirmed
 * (the bridge hands the ring back only past confirmed documents). One the
 * bridge had published, or still reads from the old ring before it moves,
 * is published twice: at least once, as everywhere between the ring and
 * the broker; left to the old ring alone, it would be lost with a bridge
 * killed before the confirm. `settle_first`: the old head may be read (not
 * in a channel cut short), and what it passed is forgotten first. */
static void recreate_channel(struct app *a, const char *why, bool settle_first)
{
    const uint64_t now = ph_mono_ns();
    if (a->channel_resets > 0 && now - a->last_reset_ns < 1000000000ull) return; /* at most 1/s */
    a->last_reset_ns = now;
    a->channel_resets++;
    ph_error("bridge channel /dev/shm%s: %s; re-creating it (reset %" PRIu64 ")", a->chan.name,
             why, a->channel_resets);
    if (settle_first) outbox_settle(a);
    char err[512];
    struct ph_channel fresh;
    /* Default sizes, as at start: the old header is not to be trusted. */
    if (ph_channel_create_group(&fresh, a->swarm.cfg.swarm_id, 0, 0, a->shm_group_set, a->shm_gid,
                                err, sizeof err) != PH_OK) {
        ph_error("cannot re-create the bridge channel: %s", err);
        return;
    }
    /* relaxed: a name to send to (below), nothing else is read with it. A
     * channel cut short is not read (it would fault): the last token rung
     * stands in. */
    const uint64_t old_bell =
        settle_first ? atomic_load_explicit(&a->chan.hdr->bell_token, memory_order_relaxed)
                     : a->bell_rung;
    ph_channel_close(&a->chan);
    a->chan = fresh;
    note_mappings(a);
    publish_controller(a);
    /* A bridge asleep on the old channel would only see the new one at its
     * slow tick: rung, it looks at once. */
    (void)ph_channel_bell_send(a->swarm.cfg.swarm_id, old_bell, &a->bell_fd);
    a->holding = false;
    a->out_corrupt = false;
    for (struct outdoc *d = a->outbox; d != NULL; d = d->next)
        d->end = 0;
    a->unwritten = a->outbox;
    outbox_flush(a);
    swarm_on_bridge(&a->swarm);
    char msg[300];
    snprintf(msg, sizeof msg, "the controller-bridge channel was re-created: %s", why);
    swarm_controller_alert(&a->swarm, "error", "control.channel-reset", msg);
}

/* ---- shared memory that shrinks under us -------------------------------- */

/* A process that truncates the segment or the channel makes every access
 * beyond the new end raise SIGBUS. The loop checks the sizes before it
 * touches them; for the race between check and access, the SIGBUS guard
 * (ph/busguard.h) puts zero pages where the lost part was, the code that
 * faulted goes on with them, and repair_faults() restores the sizes and the
 * shared pages at the next safe point. */
enum { BUS_SEGMENT = 0, BUS_CHANNEL = 1 };

static void note_mappings(const struct app *a)
{
    ph_busguard_watch(BUS_SEGMENT, a->seg.base, a->seg.size, PROT_READ | PROT_WRITE);
    ph_busguard_watch(BUS_CHANNEL, a->chan.base, a->chan.size, PROT_READ | PROT_WRITE);
}

/* Sizes first: PH_OK when the slots may be touched this tick. */
static bool shared_memory_whole(struct app *a)
{
    char err[600];
    int rc = ph_segment_check_size(&a->seg, err, sizeof err);
    if (rc == PH_ERR_TRUNC) {
        ph_error("%s", err);
        swarm_controller_alert(&a->swarm, "error", "segment.truncated", err);
    } else if (rc != PH_OK) {
        if (a->size_errors++ == 0) ph_error("%s; not touching the slots until it is back", err);
        return false;
    }
    struct stat st;
    if (fstat(a->chan.fd, &st) == 0 && (uint64_t)st.st_size < a->chan.size)
        recreate_channel(a, "the channel was truncated", false);
    return true;
}

/* After a SIGBUS the guard answered: sizes restored (shared_memory_whole),
 * then the shared pages mapped back over the zero pages. A channel that
 * could not be re-created yet (at most one re-creation a second) keeps its
 * zero pages until the next tick tries again: what the controller writes
 * there meanwhile is in its outbox, written again into the new channel. */
static void repair_faults(struct app *a)
{
    const unsigned fresh = ph_busguard_take();
    const unsigned hit = fresh | a->bus_pending;
    if (hit == 0) return;
    a->bus_pending = 0;
    if (fresh != 0) a->bus_faults++;
    if (fresh != 0)
        ph_error("an access to shared memory faulted (SIGBUS: the %s%s%s was truncated); repairing",
             hit & (1u << BUS_SEGMENT) ? "segment" : "",
             hit == ((1u << BUS_SEGMENT) | (1u << BUS_CHANNEL)) ? " and the " : "",
             hit & (1u << BUS_CHANNEL) ? "channel" : "");
    const void *chan_before = a->chan.base;
    if (!shared_memory_whole(a)) {
        a->bus_pending = hit; /* the segment is not whole yet: again next tick */
        return;
    }
    /* ph_segment_check_size maps the segment again when it restores the
     * size; this is for a size someone else restored first. */
    int rc = 0;
    if (hit & (1u << BUS_SEGMENT))
        rc = ph_busguard_remap(a->seg.base, a->seg.size, a->seg.fd, PROT_READ | PROT_WRITE);
    if (rc != 0) ph_error("cannot map segment /dev/shm%s again: %s", a->seg.name, strerror(-rc));
    if ((hit & (1u << BUS_CHANNEL)) && a->chan.base == chan_before) {
        struct stat st;
        /* Not re-created: restored by someone else, or re-creation waits. */
        if (fstat(a->chan.fd, &st) == 0 && (uint64_t)st.st_size >= a->chan.size)
            ph_busguard_remap(a->chan.base, a->chan.size, a->chan.fd, PROT_READ | PROT_WRITE);
    }
    note_mappings(a);
}

/* ---- event loop ------------------------------------------------------- */

static void on_journal_written(void *ctx, uint64_t tag, int res);

static void arm_journal(struct app *a)
{
    const char *data;
    size_t len;
    if (a->journal_writing || !journal_next_write(&a->journal, &data, &len)) return;
    /* offset -1: the file position, which O_APPEND keeps at the end. */
    if (ph_loop_write(a->loop, a->journal.fd, data,
                      (unsigned)(len > (1u << 30) ? 1u << 30 : len), (uint64_t)-1,
                      on_journal_written, a, 0) != 0)
        a->journal_writing = true;
    else
        journal_write_done(&a->journal, -ENOMEM);
}

/* Hands held signals back once the journal records them. */
static void release_signals(struct app *a)
{
    if (a->holding && journal_durable(&a->journal, a->hold_mark)) {
        ph_ring_commit(&a->from_bridge);
        a->holding = false;
    }
}

/* Wakes a bridge asleep on its bell when documents went into the out ring
 * since the last look: one ring per sleep, none while it is awake. */
static void wake_bridge(struct app *a)
{
    if (a->chan.hdr == NULL || !ph_channel_bell_due(&a->chan)) return;
    uint64_t token = 0;
    const int rc = ph_channel_bell_ring(&a->chan, a->swarm.cfg.swarm_id, &a->bell_fd, &token);
    if (rc == 0) a->bell_rung = token;
    /* A full socket queue means rung already. Nobody bound to the name: the
     * bridge is gone, or it lives in another network namespace, where the
     * name does not reach; that one must not sleep on a bell nobody can
     * ring (it keeps its short tick when it finds its token here). */
    if (rc == -ECONNREFUSED || rc == -EPERM || rc == -EACCES) {
        /* relaxed: read by the bridge at its next wake-up, which its own
         * slow tick brings. */
        atomic_store_explicit(&a->chan.hdr->bell_refused, token, memory_order_relaxed);
        if (token != a->bell_refused_logged) {
            a->bell_refused_logged = token;
            ph_info("the bridge's bell cannot be rung (%s): the bridge is gone, or runs in "
                    "another network namespace; it is told to keep polling",
                    strerror(-rc));
        }
    }
}

static void ring_bell(struct app *a)
{
    if (a->chan.hdr == NULL || a->to_bridge.published == a->bell_seen) return;
    a->bell_seen = a->to_bridge.published;
    wake_bridge(a);
}

static void on_journal_written(void *ctx, uint64_t tag, int res)
{
    (void)tag;
    struct app *a = ctx;
    a->journal_writing = false;
    journal_write_done(&a->journal, res);
    release_signals(a);
    outbox_flush(a);
    ring_bell(a);
    arm_journal(a);
}

static void on_pidfd(void *ctx, uint64_t tag, int res);

/* The tag of a pidfd poll: slot index and claim counter, so a late
 * completion about an earlier owner of the slot is recognised and ignored. */
static uint64_t pidfd_tag(const struct ctl_worker *w)
{
    return (uint64_t)w->index | ((uint64_t)ph_slot_seq_of(w->word) << 32);
}

static void arm_pidfds(struct app *a)
{
    /* Workers that left a process still running: their polls go. */
    uint64_t stale[64];
    uint32_t n;
    while ((n = ctl_take_stale_polls(&a->ctl, stale, 64)) > 0)
        for (uint32_t i = 0; i < n; i++) ph_loop_cancel(a->loop, stale[i]);
    /* Only after a scan opened new pidfds: no per-iteration sweep of the table. */
    if (a->ctl.pidfds_to_arm == 0) return;
    a->ctl.pidfds_to_arm = 0;
    for (uint32_t wd = 0; wd < a->ctl.dirty_words; wd++) {
        uint64_t bits = a->ctl.to_arm[wd];
        while (bits != 0) {
            const uint32_t i = wd * 64 + (uint32_t)__builtin_ctzll(bits);
            bits &= bits - 1;
            struct ctl_worker *w = &a->ctl.w[i];
            if (!w->tracked || w->pidfd < 0 || w->pidfd_armed) {
                a->ctl.to_arm[wd] &= ~(1ull << (i % 64));
                continue;
            }
            w->pidfd_poll = ph_loop_poll(a->loop, w->pidfd, POLLIN, on_pidfd, a, pidfd_tag(w));
            w->pidfd_armed = w->pidfd_poll != 0;
            /* One the loop could not take stays marked for the next round. */
            if (w->pidfd_armed) a->ctl.to_arm[wd] &= ~(1ull << (i % 64));
        }
    }
}

static void owner_died(struct app *a, void *arg)
{
    const uint64_t tag = *(const uint64_t *)arg;
    uint32_t index = (uint32_t)(tag & 0xffffffffu);
    uint32_t seq = (uint32_t)(tag >> 32);
    if (index >= a->seg.slots) return;
    struct ctl_worker *w = &a->ctl.w[index];
    if (!w->tracked || ph_slot_seq_of(w->word) != seq) return;
    /* This poll has completed: nothing of it to cancel when the entry goes. */
    w->pidfd_armed = false;
    w->pidfd_poll = 0;
    /* Drain once more first: records published just before the exit count. */
    ctl_scan(&a->ctl, ph_mono_ns());
    if (w->tracked && ph_slot_seq_of(w->word) == seq) ctl_owner_died(&a->ctl, index, w->word);
}

static void on_pidfd(void *ctx, uint64_t tag, int res)
{
    struct app *a = ctx;
    /* Cancelled: its worker left (ctl_take_stale_polls), nobody died. */
    if (res != -ECANCELED && shared_memory_whole(a)) owner_died(a, &tag);
    repair_faults(a);
    arm_pidfds(a);
    ring_bell(a); /* worker.died, or its status-full, is in the ring now */
}

/* Signals from the bridge: read (held) only when nothing is held, so that
 * one journal mark covers everything held. */
static int take_signals(struct app *a)
{
    if (a->holding) return 0;
    int n = ph_ring_drain_held(&a->from_bridge, on_signal_doc, a, a->signal_scratch, 256);
    if (n < 0) {
        recreate_channel(a, "the signal ring from the bridge failed validation", true);
        return 0;
    }
    if (n > 0) {
        a->holding = true;
        a->hold_mark = journal_mark(&a->journal);
    }
    return n;
}

/* Workers refused because every slot was taken: one alert per second at
 * most, saying how many since the last look. */
static void check_refused_claims(struct app *a)
{
    /* relaxed: a counter on its own; nothing else is read through it. */
    uint32_t n = atomic_load_explicit(&a->seg.hdr->claims_refused_full, memory_order_relaxed);
    if (n == a->refused_seen) return;
    uint32_t rise = n - a->refused_seen;
    a->refused_seen = n;
    char msg[200];
    snprintf(msg, sizeof msg,
             "%" PRIu32 " worker(s) refused: all %" PRIu32 " slots of the segment are in use "
             "(%" PRIu32 " refused in all; start the controller with more --slots)",
             rise, a->seg.slots, n);
    ph_error("%s", msg);
    swarm_controller_alert(&a->swarm, "error", "slots.full", msg);
}

/* Returns whether anything arrived (records or signals). */
static bool tick(struct app *a)
{
    if (!shared_memory_whole(a)) return false;
    uint64_t now = ph_mono_ns();
    ph_segment_heartbeat(&a->seg);
    /* relaxed: a free-standing timestamp for the bridge. */
    atomic_store_explicit(&a->chan.hdr->controller_heartbeat_ns, now, memory_order_relaxed);
    /* acquire: pairs with the bridge's release store of its request. */
    uint32_t reset = atomic_load_explicit(&a->chan.hdr->reset_request, memory_order_acquire);
    /* The bridge's head is checked before it settles anything. */
    if (reset != PH_CHAN_RESET_NONE)
        recreate_channel(a,
                         reset == PH_CHAN_RESET_OUT_CORRUPT
                             ? "the bridge found the document ring corrupt"
                             : "the bridge found the signal ring's positions corrupt",
                         true);
    if (a->out_corrupt)
        recreate_channel(a, "the bridge's position in the document ring is corrupt", true);
    /* acquire: pairs with the bridge's release of its new generation. */
    uint64_t gen = atomic_load_explicit(&a->chan.hdr->bridge_generation, memory_order_acquire);
    if (gen != a->bridge_gen) {
        a->bridge_gen = gen;
        ph_info("bridge registered (generation %" PRIu64 "): sending a fresh status-full", gen);
        swarm_on_bridge(&a->swarm);
    }
    /* Closing: a signal taken in now could not be answered (nothing may
     * follow the final documents); it stays with the bridge, unacknowledged. */
    int n = a->closing ? 0 : take_signals(a);
    uint64_t drained = ctl_scan(&a->ctl, now);
    if (now - a->last_liveness >= 1000000000ull) {
        ctl_check_liveness(&a->ctl, false);
        check_refused_claims(a);
        a->last_liveness = now;
    }
    outbox_settle(a);
    outbox_flush(a);
    swarm_set_journal_failing(&a->swarm, journal_failing(&a->journal));
    swarm_tick(&a->swarm, now);
    closing_tick(a, now);
    arm_journal(a);
    release_signals(a);
    arm_pidfds(a);
    return drained > 0 || n > 0;
}

/* After this long with nothing arriving, ticks stretch to IDLE_TICK_MS:
 * an idle swarm then costs a few wake-ups a second. Workers' heartbeats
 * (1 s by default) keep a live swarm on the short tick, and deaths are
 * reported by pidfds whatever the tick. */
#define IDLE_AFTER_NS 1000000000ull
#define IDLE_TICK_MS 50u

static void on_tick(void *ctx, uint64_t tag, int res)
{
    (void)tag, (void)res;
    struct app *a = ctx;
    if (ph_loop_stopped(a->loop)) return;
    uint64_t now = ph_mono_ns();
    repair_faults(a);
    if (tick(a)) a->last_activity = now;
    repair_faults(a);
    ring_bell(a);
    uint32_t ms = now - a->last_activity > IDLE_AFTER_NS && a->tick_ms < IDLE_TICK_MS
                      ? IDLE_TICK_MS
                      : a->tick_ms;
    ph_loop_timeout(a->loop, ms, on_tick, a, 0);
}

static void on_stop_signal(void *ctx, uint64_t tag, int signo)
{
    (void)tag;
    struct app *a = ctx;
    ph_info("signal %d received: stopping", signo);
    ph_loop_stop(a->loop);
}

static void raise_fd_limit(void)
{
    /* One pidfd per worker: allow as many as the hard limit permits. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* The run id when none was given: the run of the segment this controller
 * adopts (a restart continues it), else <swarm>-<UTC time>. */
static void default_run_id(struct app *a, struct opts *o)
{
    if (o->cfg.run_id[0] != '\0') return;
    char prev[sizeof a->seg.hdr->run_id], err[160];
    if (a->adopted) {
        /* Untrusted: copied, terminated and checked before use. */
        memcpy(prev, a->seg.hdr->run_id, sizeof prev);
        prev[sizeof prev - 1] = '\0';
        if (prev[0] != '\0' && ph_ident_check("run id", prev, err, sizeof err) == PH_OK) {
            snprintf(o->cfg.run_id, sizeof o->cfg.run_id, "%s", prev);
            return;
        }
    }
    char ts[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(ts, sizeof ts, "%Y%m%dT%H%M%SZ", &tm);
    snprintf(o->cfg.run_id, sizeof o->cfg.run_id, "%s-%s", o->swarm, ts);
}

static int open_journal(struct app *a, const struct opts *o)
{
    char dir[400];
    const char *env = getenv("PH_JOURNAL_DIR");
    if (o->journal_dir)
        snprintf(dir, sizeof dir, "%s", o->journal_dir);
    else if (env && env[0])
        snprintf(dir, sizeof dir, "%s", env);
    else
        snprintf(dir, sizeof dir, "/tmp/ph-journal/%s", o->swarm);
    char path[512], err[600];
    snprintf(path, sizeof path, "%.370s/%.127s.jsonl", dir, o->cfg.run_id);
    if (journal_open(&a->journal, path, err, sizeof err) != PH_OK) {
        ph_error("%s", err);
        return 1;
    }
    if (o->journal_max_mb) a->journal.max_bytes = (uint64_t)o->journal_max_mb << 20;
    a->journal.checkpoint = journal_checkpoint;
    a->journal.checkpoint_ctx = a;
    return 0;
}

static void publish_run_facts(struct app *a, const struct opts *o)
{
    struct ph_shm_header *h = a->seg.hdr;
    /* Plain stores: published by the release store of the controller pid
     * in ph_segment_set_controller() below. */
    snprintf(h->controller_instance, sizeof h->controller_instance, "%s", o->cfg.instance);
    snprintf(h->run_id, sizeof h->run_id, "%s", o->cfg.run_id);
    snprintf(h->journal_path, sizeof h->journal_path, "%s", a->journal.path);
}

int main(int argc, char **argv)
{
    struct opts o;
    int rc = parse_opts(argc, argv, &o);
    if (rc != 0) return rc;
    ph_log_init("ph-swarm-controller", o.swarm);

    static struct app a;
    char err[512];
    rc = ph_segment_create(&a.seg, o.swarm, &o.seg, &a.adopted, err, sizeof err);
    if (rc != PH_OK) {
        ph_error("%s", err);
        return 1;
    }
    /* The previous controller's journal, read back once the table is built. */
    char prev_journal[sizeof a.seg.hdr->journal_path] = "";
    if (a.adopted) {
        memcpy(prev_journal, a.seg.hdr->journal_path, sizeof prev_journal);
        prev_journal[sizeof prev_journal - 1] = '\0';
    }
    default_run_id(&a, &o);
    if (open_journal(&a, &o) != 0) {
        ph_segment_close(&a.seg);
        return 1;
    }
    a.shm_group_set = o.seg.set_group;
    a.shm_gid = o.seg.gid;
    a.bell_fd = -1;
    const uint64_t old_bell = old_bell_token(o.swarm);
    rc = ph_channel_create_group(&a.chan, o.swarm, 0, 0, a.shm_group_set, a.shm_gid, err,
                                 sizeof err);
    if (rc != PH_OK) {
        ph_error("%s", err);
        ph_segment_close(&a.seg);
        return 1;
    }
    a.signal_scratch = malloc(a.chan.in_ring / 2);
    ph_proc_start_time(getpid(), &a.start_time);
    publish_run_facts(&a, &o);
    ph_segment_set_controller(&a.seg, (int32_t)getpid(), a.start_time);
    publish_controller(&a);
    /* A bridge still asleep on the channel a dead controller left: rung, it
     * moves to this one at once instead of at its slow tick. */
    (void)ph_channel_bell_send(o.swarm, old_bell, &a.bell_fd);
    a.started_real_ns = ph_real_ns();
    raise_fd_limit();

    signal(SIGPIPE, SIG_IGN);
    note_mappings(&a);
    if (ph_busguard_install() != 0) ph_warn("cannot install the SIGBUS guard: %s", strerror(errno));
    static const int stop_signals[] = {SIGTERM, SIGINT, SIGHUP};
    a.loop = ph_loop_new(256, err, sizeof err);
    if (a.loop == NULL || a.signal_scratch == NULL ||
        ph_loop_signals(a.loop, stop_signals, 3, on_stop_signal, &a, err, sizeof err) != 0) {
        ph_error("cannot set up the event loop: %s", a.signal_scratch ? err : "out of memory");
        return 1;
    }
    a.tick_ms = o.tick_ms;
    struct ctl_hooks hooks = {
        .ctx = &a, .joined = on_joined, .left = on_left, .alert = on_alert, .ack = on_ack};
    struct swarm_emitter em = {
        .ctx = &a, .emit = emit_doc, .journal = journal_entry, .closing = on_closing};
    a.close_timeout_ns = (uint64_t)o.close_timeout_s * 1000000000ull;
    const char *die = getenv("PH_TEST_DIE_BEFORE_OUTCOME");
    if (die != NULL) a.test_die_before_outcome = strtoull(die, NULL, 10);
    if (ctl_init(&a.ctl, &a.seg, &hooks) != PH_OK ||
        swarm_init(&a.swarm, &a.ctl, &o.cfg, &em, ph_mono_ns()) != PH_OK) {
        ph_error("out of memory for %u slots", a.seg.slots);
        return 1;
    }
    swarm_set_roles(&a.swarm, o.roles, o.nroles);
    /* journal_add borrows the entry. */
    json_t *life = json_pack("{s:s, s:s, s:s, s:s, s:i}", "event", "lifecycle", "change",
                             a.adopted ? "controller-restarted" : "controller-started", "runId",
                             o.cfg.run_id, "instance", o.cfg.instance, "pid", (int)getpid());
    journal_add(&a.journal, life);
    json_decref(life);
    ph_info("%s segment /dev/shm%s: %u slots, rings %u/%u bytes, %zu bytes, generation %" PRIu64,
            a.adopted ? "adopted" : "created", a.seg.name, a.seg.slots, a.seg.status_ring,
            a.seg.command_ring, a.seg.size,
            atomic_load_explicit(&a.seg.hdr->generation, memory_order_relaxed));
    if (a.adopted && prev_journal[0] != '\0') {
        /* The workers first, so that signals taken up again reach them;
         * each is checked against the recovered desired config once it has
         * reported its own (swarm_on_joined). */
        a.initial_scan = true;
        ctl_scan(&a.ctl, ph_mono_ns());
        a.initial_scan = false;
        if (swarm_recover(&a.swarm, prev_journal, ph_mono_ns(), err, sizeof err) < 0)
            ph_warn("%s: the swarm starts from its swarm file's state", err);
        else
            /* What was recovered may come from files a rotation will remove
             * (or from <path>.1 alone): this journal states it again. */
            journal_add_checkpoint(&a.journal);
    }
    ph_info("controller %s ready (pid %d, tick %u ms, run %s, journal %s)", o.cfg.instance,
            getpid(), o.tick_ms, o.cfg.run_id, a.journal.path);

    a.last_liveness = a.last_activity = ph_mono_ns();
    /* Refusals before this controller (an adopted segment) were alerted by
     * its predecessor, or happened with no controller to tell. */
    a.refused_seen = atomic_load_explicit(&a.seg.hdr->claims_refused_full, memory_order_relaxed);
    ph_loop_timeout(a.loop, a.tick_ms, on_tick, &a, 0);
    rc = ph_loop_run(a.loop) == 0 ? 0 : 1;

    /* Last drain and status so nothing published before the stop is left. */
    repair_faults(&a);
    tick(&a);
    repair_faults(&a);
    life = json_pack("{s:s, s:s, s:s}", "event", "lifecycle", "change", "controller-stopped",
                     "runId", o.cfg.run_id);
    journal_add(&a.journal, life);
    json_decref(life);
    /* A write in flight finishes first: the rest follows it, in order. */
    for (int i = 0; i < 1000 && a.journal_writing; i++)
        if (ph_loop_once(a.loop) < 0) break;
    journal_flush_sync(&a.journal);
    /* What the journal holds now may go: its outcomes, and the held signals
     * are handed back (those still unread, or held for entries the journal
     * could not write, stay with the bridge, unacknowledged, for the next
     * controller). */
    outbox_flush(&a);
    ring_bell(&a);
    if (a.unwritten != NULL)
        ph_warn("%zu bytes of outcomes/alerts never reached a bridge", a.outbox_bytes);
    release_signals(&a);
    swarm_destroy(&a.swarm);
    ctl_destroy(&a.ctl);
    /* release: pairs with readers' acquire of the pid; 0 means "no controller". */
    atomic_store_explicit(&a.seg.hdr->controller_pid, 0, memory_order_release);
    /* The next controller may adopt at once, without finding us gone first. */
    ph_segment_release_controller(&a.seg);
    atomic_store_explicit(&a.chan.hdr->controller_pid, 0, memory_order_release);
    ph_loop_free(a.loop); /* before the journal: a write may be in flight */
    ph_channel_close(&a.chan);
    if (a.bell_fd >= 0) close(a.bell_fd);
    ph_segment_close(&a.seg);
    journal_close(&a.journal);
    while (a.outbox != NULL) outbox_unlink_head(&a);
    free(a.signal_scratch);
    ph_info("controller stopped");
    return rc;
}
