/* The supervisor's event loop: one swarm's processes from start to stop.
 *
 * Phases:
 *   START_CONTROLLER  the controller runs; wait (≤ 10 s) until the segment
 *                     is valid and names it as controller (the controller
 *                     creates the bridge channel before it says so)
 *   START_WORKERS     the bridge, the relay (when a role has placement
 *                     relay) and every local and remote worker started; the
 *                     relay's workers once the relay has made its segment
 *                     ready. Wait until each local worker is ACTIVE in a
 *                     slot of the controller's segment with its pid, each
 *                     relay worker likewise in the relay's segment, each
 *                     remote worker runs (it has no segment: the
 *                     controller's status lists it), and the bridge and
 *                     relay run; then write `ready`
 *   RUNNING           restart whatever crashes, with backoff; a process that
 *                     exits with status 0 was told to stop (a worker after
 *                     swarm-remove) and stays stopped. A controller that
 *                     exits 0 after closing the channel (ph/channel.h) has
 *                     ended a removed swarm: the swarm is released, through
 *                     the stop phases below, and the supervisor exits 0
 *   STOP_WORKERS      SIGTERM the workers; SIGKILL those left after 5 s
 *   STOP_RELAY        the same for the relay, once its workers are gone
 *   STOP_CONTROLLER   the same for the controller, which comes after the
 *                     workers so that it sees them detach and reports it
 *   STOP_BRIDGE       the same for the bridge, last: the controller's final
 *                     status goes through the channel, the bridge drains it
 *                     and exits. After a removal the bridge exits by itself
 *                     once the broker confirmed the last documents: it gets
 *                     BRIDGE_FINAL_GRACE before SIGTERM
 *   DONE              unlink the segment, the relay's segment and the bridge
 *                     channel, remove ready and supervisor.pid
 *
 * The process table is [0] the controller, [1] the bridge when there is
 * one, then the relay when there is one, then the workers.
 *
 * The relay's segment outlives a relay that crashes: the restarted relay
 * adopts it, and its workers stay attached. It goes at DONE, like the
 * controller's, and a supervisor that starts finds and removes a stale one
 * the same way.
 *
 * Waiting never spins: the loop sleeps in io_uring (a POLL_ADD on a
 * signalfd that carries SIGCHLD, SIGTERM, SIGINT and SIGHUP) with a timeout
 * that is the nearest deadline (a backoff expiring, a stop grace period, a
 * readiness check). When io_uring is unavailable (kernel.io_uring_disabled)
 * the same wait is done with poll(). */
#include "supervisor.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <liburing.h>

#include "ph/channel.h"
#include "ph/shm.h"

#define MS 1000000ull
#define SEC 1000000000ull
#define CONTROLLER_READY_TIMEOUT (10 * SEC)
#define CONTROLLER_CHECK_EVERY (25 * MS)
#define ATTACH_CHECK_EVERY (50 * MS)
#define ATTACH_WARN_AFTER (10 * SEC)
#define STOP_GRACE (5 * SEC)
/* After a removal: how long the bridge may take to have the final status
 * confirmed (a broker that reconnects after a hiccup) before SIGTERM. */
#define BRIDGE_FINAL_GRACE (30 * SEC)
#define KILL_GRACE (2 * SEC) /* after SIGKILL, for the kernel to finish the job */
#define BACKOFF_FIRST (500 * MS)
#define BACKOFF_MAX (30 * SEC)
#define BACKOFF_RESET_UPTIME (60 * SEC)

enum sup_phase {
    SUP_START_CONTROLLER,
    SUP_START_WORKERS,
    SUP_RUNNING,
    SUP_STOP_WORKERS,
    SUP_STOP_RELAY,
    SUP_STOP_CONTROLLER,
    SUP_STOP_BRIDGE,
    SUP_DONE,
};

struct sup {
    const struct sup_options *opt;
    const char *swarm;
    struct io_uring ring;
    bool have_uring;
    bool poll_armed;
    int sfd;
    struct sup_proc *procs; /* [0] the controller, [1] the bridge if any, the relay if any,
                             * then the workers */
    size_t nprocs;
    size_t first_worker; /* index of the first worker in procs */
    size_t nworkers;
    struct sup_proc *relay; /* in procs, or NULL */
    bool relay_ready;       /* the relay's segment names the relay: its workers may start */
    char **remote_env;      /* environment of remote workers, or NULL (the supervisor's) */
    enum sup_phase phase;
    uint64_t phase_started;  /* CLOCK_MONOTONIC */
    uint64_t phase_deadline; /* 0: none */
    uint64_t next_check;     /* 0: none */
    bool killed;             /* SIGKILL already sent in this stop phase */
    bool attach_warned;
    bool released;     /* the controller ended a removed swarm */
    bool bridge_asked; /* released: the bridge was left to exit by itself, then SIGTERMed */
    int exit_code;
    char last_check_err[256];
};

/* ---- small helpers ---------------------------------------------------- */

static char *xstrdup(const char *s)
{
    char *d = strdup(s);
    if (d == NULL) {
        sup_error("out of memory");
        exit(1);
    }
    return d;
}

static void describe_status(int status, char *buf, size_t n)
{
    if (WIFEXITED(status)) {
        snprintf(buf, n, "exited with status %d", WEXITSTATUS(status));
    } else if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        const char *abbr = sigabbrev_np(sig);
        snprintf(buf, n, "killed by signal %d (SIG%s)%s", sig, abbr ? abbr : "?",
                 WCOREDUMP(status) ? ", core dumped" : "");
    } else {
        snprintf(buf, n, "ended with wait status 0x%x", (unsigned)status);
    }
}

static void fmt_secs(uint64_t ns, char *buf, size_t n)
{
    snprintf(buf, n, "%.3f s", (double)ns / (double)SEC);
}

static bool is_running(const struct sup_proc *p)
{
    return p->state == SUP_P_RUNNING;
}

static struct sup_proc *bridge_proc(struct sup *s)
{
    return s->opt->have_bridge ? &s->procs[1] : NULL;
}

/* The kind of process a stop phase stops. */
static enum sup_proc_kind phase_kind(enum sup_phase ph)
{
    return ph == SUP_STOP_WORKERS      ? SUP_K_WORKER
           : ph == SUP_STOP_RELAY      ? SUP_K_RELAY
           : ph == SUP_STOP_CONTROLLER ? SUP_K_CONTROLLER
                                       : SUP_K_BRIDGE;
}

static void save_procs(struct sup *s)
{
    sup_run_write_procs(s->opt->run, s->procs, s->nprocs);
}

/* ---- building the process table ------------------------------------- */

static int build_procs(struct sup *s)
{
    const struct sup_spec *spec = s->opt->spec;
    const struct sup_run *run = s->opt->run;
    const char *bin = s->opt->bin_dir;
    s->first_worker = (s->opt->have_bridge ? 2 : 1) + (spec->has_relay ? 1 : 0);
    s->nworkers = spec->total_workers;
    s->nprocs = s->first_worker + s->nworkers;
    s->procs = calloc(s->nprocs, sizeof *s->procs);
    if (s->procs == NULL) return PH_ERR_SYS;

    char path[PATH_MAX], num[16];
    struct sup_proc *c = &s->procs[0];
    c->kind = SUP_K_CONTROLLER;
    snprintf(c->name, sizeof c->name, "controller");
    snprintf(c->role, sizeof c->role, "swarm-controller");
    snprintf(c->instance, sizeof c->instance, "%s", spec->controller_instance);
    c->argv = calloc(12 + spec->ncontroller_args, sizeof *c->argv);
    if (c->argv == NULL) return PH_ERR_SYS;
    if (snprintf(path, sizeof path, "%s/ph-swarm-controller", bin) >= (int)sizeof path)
        return PH_ERR_INVAL;
    snprintf(num, sizeof num, "%" PRIu32, spec->slots);
    size_t k = 0;
    c->argv[k++] = xstrdup(path);
    c->argv[k++] = xstrdup("--swarm");
    c->argv[k++] = xstrdup(spec->swarm_id);
    c->argv[k++] = xstrdup("--slots");
    c->argv[k++] = xstrdup(num);
    /* The same id the controller would pick, but explicit: procs.json, the
     * bridge's --controller-instance and the controller must agree. */
    c->argv[k++] = xstrdup("--instance");
    c->argv[k++] = xstrdup(spec->controller_instance);
    /* In the run folder rather than the controller's /tmp default, so that a
     * run's journal is found next to its logs. */
    c->argv[k++] = xstrdup("--journal-dir");
    c->argv[k++] = xstrdup(run->journal_dir);
    /* The controller reads the desired counts and its settings
     * (statusTtlSec, autoStart, runId...) from the same file. */
    c->argv[k++] = xstrdup("--swarm-file");
    c->argv[k++] = xstrdup(spec->path);
    /* Last: getopt keeps the last value, so the file's args may override. */
    for (size_t i = 0; i < spec->ncontroller_args; i++)
        c->argv[k++] = xstrdup(spec->controller_args[i]);

    struct sup_proc *b = bridge_proc(s);
    if (b != NULL) {
        b->kind = SUP_K_BRIDGE;
        snprintf(b->name, sizeof b->name, "bridge");
        snprintf(b->role, sizeof b->role, "bridge");
        /* The bridge has no instance id of its own on the wire (it speaks
         * for the controller's documents). */
        snprintf(b->instance, sizeof b->instance, "bridge");
        b->argv = calloc(16, sizeof *b->argv);
        if (b->argv == NULL) return PH_ERR_SYS;
        if (snprintf(path, sizeof path, "%s/ph-bridge", bin) >= (int)sizeof path)
            return PH_ERR_INVAL;
        k = 0;
        b->argv[k++] = xstrdup(path);
        b->argv[k++] = xstrdup("--swarm");
        b->argv[k++] = xstrdup(spec->swarm_id);
        b->argv[k++] = xstrdup("--controller-instance");
        b->argv[k++] = xstrdup(spec->controller_instance);
        if (s->opt->sink_on_argv) {
            b->argv[k++] = xstrdup("--sink");
            b->argv[k++] = xstrdup(s->opt->sink);
        } else if (s->opt->amqp_url_file[0] != '\0') {
            /* The file's path, never the URL: argv is readable by everyone. */
            b->argv[k++] = xstrdup("--amqp-url-file");
            b->argv[k++] = xstrdup(s->opt->amqp_url_file);
        }
        b->argv[k++] = xstrdup("--signals");
        b->argv[k++] = xstrdup(run->signals_path);
    }

    if (spec->has_relay) {
        struct sup_proc *y = &s->procs[s->first_worker - 1];
        s->relay = y;
        y->kind = SUP_K_RELAY;
        snprintf(y->name, sizeof y->name, "relay");
        snprintf(y->role, sizeof y->role, "relay");
        /* Its relay id, which is also its segment's name. */
        snprintf(y->instance, sizeof y->instance, "%s", spec->relay_segment);
        y->argv = calloc(16, sizeof *y->argv);
        if (y->argv == NULL) return PH_ERR_SYS;
        if (snprintf(path, sizeof path, "%s/ph-relay", bin) >= (int)sizeof path)
            return PH_ERR_INVAL;
        k = 0;
        y->argv[k++] = xstrdup(path);
        y->argv[k++] = xstrdup("--swarm");
        y->argv[k++] = xstrdup(spec->swarm_id);
        /* Not the swarm's own name: on this host the controller's segment
         * has that one. */
        y->argv[k++] = xstrdup("--segment");
        y->argv[k++] = xstrdup(spec->relay_segment);
        y->argv[k++] = xstrdup("--relay-id");
        y->argv[k++] = xstrdup(spec->relay_segment);
        y->argv[k++] = xstrdup("--location");
        y->argv[k++] = xstrdup(spec->relay_location);
        if (s->opt->amqp_url_file[0] != '\0') {
            /* The file's path, never the URL; without it the relay reads
             * $PH_AMQP_URL, which it inherits. */
            y->argv[k++] = xstrdup("--amqp-url-file");
            y->argv[k++] = xstrdup(s->opt->amqp_url_file);
        }
    }
    if (spec->first_amqp_role != NULL && s->opt->amqp_url_file[0] != '\0') {
        /* Remote workers read the broker URL from the file PH_AMQP_URL_FILE
         * names (never from argv): the supervisor's environment with that
         * variable set to the bridge's URL file. */
        extern char **environ;
        size_t n = 0;
        while (environ[n] != NULL)
            n++;
        s->remote_env = calloc(n + 2, sizeof *s->remote_env);
        if (s->remote_env == NULL) return PH_ERR_SYS;
        size_t e = 0;
        for (size_t i = 0; i < n; i++)
            if (strncmp(environ[i], "PH_AMQP_URL_FILE=", 17) != 0)
                s->remote_env[e++] = xstrdup(environ[i]);
        char var[PATH_MAX + 32];
        snprintf(var, sizeof var, "PH_AMQP_URL_FILE=%s", s->opt->amqp_url_file);
        s->remote_env[e++] = xstrdup(var);
    }

    size_t w = s->first_worker;
    for (size_t r = 0; r < spec->nroles; r++) {
        const struct sup_role *role = &spec->roles[r];
        for (unsigned n = 1; n <= role->count; n++, w++) {
            struct sup_proc *p = &s->procs[w];
            p->kind = SUP_K_WORKER;
            snprintf(p->role, sizeof p->role, "%s", role->role);
            /* Checked identifiers (swarmfile.c): "<swarmId>-<role>-<n>" or
             * the file's own; the process, its log and config file are
             * named after it too. */
            memcpy(p->instance, role->instances[n - 1], sizeof p->instance);
            memcpy(p->name, p->instance, sizeof p->name);
            char cfg[PATH_MAX], err[512];
            if (sup_run_write_config(s->opt->run, p->instance, role->config, cfg, sizeof cfg, err,
                                     sizeof err) != PH_OK) {
                sup_error("%s", err);
                return PH_ERR_SYS;
            }
            p->placement = role->placement;
            p->argv = calloc(16, sizeof *p->argv);
            if (p->argv == NULL) return PH_ERR_SYS;
            if (snprintf(path, sizeof path, "%s/ph-worker", bin) >= (int)sizeof path)
                return PH_ERR_INVAL;
            k = 0;
            p->argv[k++] = xstrdup(path);
            p->argv[k++] = xstrdup("--swarm");
            /* A relay's workers attach to the segment the relay serves,
             * which they name as their swarm. */
            p->argv[k++] =
                xstrdup(role->placement == SUP_PLACE_RELAY ? spec->relay_segment : spec->swarm_id);
            p->argv[k++] = xstrdup("--role");
            p->argv[k++] = xstrdup(p->role);
            p->argv[k++] = xstrdup("--instance");
            p->argv[k++] = xstrdup(p->instance);
            p->argv[k++] = xstrdup("--config-file");
            p->argv[k++] = xstrdup(cfg);
            if (role->placement == SUP_PLACE_REMOTE) {
                p->argv[k++] = xstrdup("--remote");
                p->argv[k++] = xstrdup("--location");
                p->argv[k++] = xstrdup(role->location);
                p->argv[k++] = xstrdup("--controller");
                p->argv[k++] = xstrdup(spec->controller_instance);
                p->envp = s->remote_env;
            } else if (role->placement == SUP_PLACE_RELAY) {
                /* The relay's segment or nothing: a worker that fell back to
                 * remote mode would report under the segment's name. */
                p->argv[k++] = xstrdup("--local");
            }
        }
    }
    for (size_t i = 0; i < s->nprocs; i++) {
        struct sup_proc *p = &s->procs[i];
        p->state = SUP_P_PENDING;
        p->next_delay_ns = BACKOFF_FIRST;
        if (snprintf(p->log_path, sizeof p->log_path, "%s/%s.log", s->opt->run->logs_dir,
                     p->name) >= (int)sizeof p->log_path)
            return PH_ERR_INVAL;
    }
    return PH_OK;
}

static void free_procs(struct sup *s)
{
    for (size_t i = 0; i < s->nprocs; i++) {
        char **a = s->procs[i].argv;
        for (size_t k = 0; a != NULL && a[k] != NULL; k++)
            free(a[k]);
        free(a);
    }
    free(s->procs);
    for (size_t i = 0; s->remote_env != NULL && s->remote_env[i] != NULL; i++)
        free(s->remote_env[i]);
    free(s->remote_env);
}

/* ---- the segment ------------------------------------------------------ */

/* The pid the process of `kind` has now, or 0. */
static pid_t owner_pid(const struct sup *s, enum sup_proc_kind kind)
{
    if (kind == SUP_K_RELAY) return s->relay != NULL ? s->relay->pid : 0;
    return s->procs[0].pid;
}

/* Before starting: a segment whose owner (the controller, or for
 * `relay_seg` the relay) lives belongs to a swarm that runs without us
 * (refuse); one whose owner is gone is left over from a run that ended
 * badly (remove it, so this run starts from generation 1). */
static int check_existing_segment(struct sup *s, const char *name, bool relay_seg)
{
    struct ph_segment seg;
    char err[256];
    int rc = ph_segment_open(&seg, name, false, err, sizeof err);
    if (rc == PH_ERR_NOENT) return PH_OK;
    if (rc == PH_ERR_ACCES) {
        sup_error("%s (a swarm of another user?)", err);
        return rc;
    }
    const char *owner = relay_seg ? "relay" : "controller";
    if (rc == PH_OK) {
        int32_t pid = atomic_load_explicit(&seg.hdr->controller_pid, memory_order_acquire);
        uint64_t st = atomic_load_explicit(&seg.hdr->controller_start_time, memory_order_relaxed);
        ph_segment_close(&seg);
        if (pid > 0 && ph_proc_alive(pid, st) && relay_seg) {
            sup_error("the relay's segment /dev/shm/ph.%s is in use by pid %" PRId32
                      " (a relay of swarm %s still running, or a swarm named %s); stop it first",
                      name, pid, s->swarm, name);
            return PH_ERR_BUSY;
        }
        if (pid > 0 && ph_proc_alive(pid, st)) {
            sup_error("swarm %s already has a live controller (pid %" PRId32
                      "); stop that swarm first (deploy/phive down %s)",
                      s->swarm, pid, s->swarm);
            return PH_ERR_BUSY;
        }
        sup_warn("removing stale segment /dev/shm/ph.%s (its %s pid %" PRId32 " is gone)", name,
                 owner, pid);
    } else {
        sup_warn("removing stale segment /dev/shm/ph.%s: %s", name, err);
    }
    rc = ph_segment_unlink(name, err, sizeof err);
    if (rc != PH_OK && rc != PH_ERR_NOENT) {
        sup_error("%s", err);
        return rc;
    }
    return PH_OK;
}

/* True when segment `name` is valid and names our process of `kind` (the
 * controller, or the relay) as its owner. */
static bool segment_ready(struct sup *s, const char *name, enum sup_proc_kind kind)
{
    struct ph_segment seg;
    int rc = ph_segment_open(&seg, name, false, s->last_check_err, sizeof s->last_check_err);
    if (rc != PH_OK) return false;
    int32_t pid = atomic_load_explicit(&seg.hdr->controller_pid, memory_order_acquire);
    ph_segment_close(&seg);
    if (pid != owner_pid(s, kind)) {
        snprintf(s->last_check_err, sizeof s->last_check_err,
                 "the segment %s names owner pid %" PRId32 ", not ours (%d)", name, pid,
                 (int)owner_pid(s, kind));
        return false;
    }
    return true;
}

static bool controller_ready(struct sup *s)
{
    return segment_ready(s, s->swarm, SUP_K_CONTROLLER);
}

/* Marks the workers of `placement` found ACTIVE in a slot of segment
 * `name` under their current pid. */
static void mark_attached(struct sup *s, const char *name, enum sup_placement placement)
{
    struct ph_segment seg;
    int rc = ph_segment_open(&seg, name, false, s->last_check_err, sizeof s->last_check_err);
    if (rc != PH_OK) return;
    uint32_t hw = atomic_load_explicit(&seg.hdr->slot_high_water, memory_order_acquire);
    if (hw > seg.slots) hw = seg.slots;
    for (uint32_t i = 0; i < hw; i++) {
        struct ph_slot_identity id;
        if (!ph_slot_identity_read(ph_segment_slot(&seg, i), &id)) continue;
        if (ph_slot_state_of(id.state) != PH_SLOT_ACTIVE) continue;
        for (size_t k = s->first_worker; k < s->nprocs; k++) {
            struct sup_proc *p = &s->procs[k];
            if (p->placement == placement && is_running(p) && p->pid == id.pid &&
                strcmp(p->instance, id.instance) == 0)
                p->attached_pid = p->pid;
        }
    }
    ph_segment_close(&seg);
}

/* Marks the workers found ACTIVE in a slot under their current pid (local
 * ones in the controller's segment, relay ones in the relay's; a remote
 * worker has no segment and counts once it runs); true when every worker
 * is, except those that exited normally (stopped on purpose: they will not
 * attach again). */
static bool workers_attached(struct sup *s)
{
    mark_attached(s, s->swarm, SUP_PLACE_LOCAL);
    if (s->relay != NULL) mark_attached(s, s->opt->spec->relay_segment, SUP_PLACE_RELAY);
    for (size_t k = s->first_worker; k < s->nprocs; k++) {
        struct sup_proc *p = &s->procs[k];
        if (p->placement == SUP_PLACE_REMOTE && is_running(p)) p->attached_pid = p->pid;
    }
    for (size_t k = s->first_worker; k < s->nprocs; k++) {
        const struct sup_proc *p = &s->procs[k];
        if (p->state == SUP_P_STOPPED) continue;
        if (!is_running(p) || p->attached_pid != p->pid) return false;
    }
    return true;
}

/* The bridge, when there is one, must be running for the swarm to count as
 * ready: without it nothing the controller says reaches anyone. The relay
 * likewise for its workers. */
static bool bridge_up(struct sup *s)
{
    const struct sup_proc *b = bridge_proc(s);
    return (b == NULL || is_running(b)) && (s->relay == NULL || is_running(s->relay));
}

/* Removes segment `name` unless a process we did not start owns it now
 * (the owner of `kind`: the controller, or the relay). */
static int unlink_segment(struct sup *s, const char *name, enum sup_proc_kind kind)
{
    struct ph_segment seg;
    char err[256];
    if (ph_segment_open(&seg, name, false, err, sizeof err) == PH_OK) {
        int32_t pid = atomic_load_explicit(&seg.hdr->controller_pid, memory_order_acquire);
        uint64_t st = atomic_load_explicit(&seg.hdr->controller_start_time, memory_order_relaxed);
        ph_segment_close(&seg);
        if (pid > 0 && pid != owner_pid(s, kind) && ph_proc_alive(pid, st)) {
            sup_warn("not removing /dev/shm/ph.%s: %s pid %" PRId32
                     " (not started by this supervisor) owns it",
                     name, kind == SUP_K_RELAY ? "relay" : "controller", pid);
            return PH_ERR_BUSY;
        }
    }
    int rc = ph_segment_unlink(name, err, sizeof err);
    if (rc == PH_OK) sup_info("removed segment /dev/shm/ph.%s", name);
    if (rc == PH_ERR_NOENT) return PH_OK;
    if (rc != PH_OK) sup_error("%s", err);
    return rc;
}

/* The controller creates /dev/shm/ph.<swarm>.bridge and leaves it when it
 * exits (a restarted controller replaces it): removed here, with the same
 * care as the segment. Whether or not a bridge ran, the controller made one. */
static int unlink_channel(struct sup *s)
{
    struct ph_channel ch;
    char err[256];
    if (ph_channel_open(&ch, s->swarm, false, err, sizeof err) == PH_OK) {
        int32_t pid = atomic_load_explicit(&ch.hdr->controller_pid, memory_order_acquire);
        uint64_t st = atomic_load_explicit(&ch.hdr->controller_start_time, memory_order_relaxed);
        ph_channel_close(&ch);
        if (pid > 0 && pid != s->procs[0].pid && ph_proc_alive(pid, st)) {
            sup_warn("not removing /dev/shm/ph.%s.bridge: controller pid %" PRId32
                     " (not started by this supervisor) owns it",
                     s->swarm, pid);
            return PH_ERR_BUSY;
        }
    }
    int rc = ph_channel_unlink(s->swarm, err, sizeof err);
    if (rc == PH_OK) sup_info("removed bridge channel /dev/shm/ph.%s.bridge", s->swarm);
    if (rc == PH_ERR_NOENT) return PH_OK;
    if (rc != PH_OK) sup_error("%s", err);
    return rc;
}

/* ---- process lifecycle ----------------------------------------------- */

static void begin_shutdown(struct sup *s, int code, const char *why);

static void schedule_restart(struct sup_proc *p, uint64_t now, const char *what)
{
    uint64_t up = p->started_mono_ns ? now - p->started_mono_ns : 0;
    /* A process that ran a while had recovered: its next crash starts the
     * backoff over. */
    if (up >= BACKOFF_RESET_UPTIME) p->next_delay_ns = BACKOFF_FIRST;
    uint64_t delay = p->next_delay_ns;
    p->next_delay_ns = delay * 2 > BACKOFF_MAX ? BACKOFF_MAX : delay * 2;
    p->state = SUP_P_BACKOFF;
    p->restart_at_ns = now + delay;
    char ups[32], ds[32];
    fmt_secs(up, ups, sizeof ups);
    fmt_secs(delay, ds, sizeof ds);
    sup_warn("%s %s after %s; restarting in %s", p->name, what, ups, ds);
}

static void start_proc(struct sup *s, struct sup_proc *p)
{
    char err[512];
    pid_t pid;
    uint64_t now = ph_mono_ns();
    p->attached_pid = 0;
    if (sup_spawn(p->argv, p->envp, p->log_path, &pid, err, sizeof err) != PH_OK) {
        sup_error("%s: %s", p->name, err);
        p->started_mono_ns = now;
        if (p->kind == SUP_K_CONTROLLER && s->phase == SUP_START_CONTROLLER)
            begin_shutdown(s, 1, "the controller could not be started");
        else
            schedule_restart(p, now, "could not be started");
        save_procs(s);
        return;
    }
    p->pid = pid;
    p->state = SUP_P_RUNNING;
    p->started_mono_ns = now;
    p->started_real_ns = ph_real_ns();
    if (p->restarts > 0)
        sup_info("restarted %s pid %d (restart %u)", p->name, (int)pid, p->restarts);
    else
        sup_info("started %s pid %d", p->name, (int)pid);
    save_procs(s);
}

/* True when the controller closed the swarm's channel: it ended a removed
 * swarm (ph/channel.h, closing). */
static bool channel_closed(struct sup *s)
{
    struct ph_channel ch;
    char err[256];
    if (ph_channel_open(&ch, s->swarm, false, err, sizeof err) != PH_OK) return false;
    /* acquire: pairs with the controller's release store. */
    bool closed = atomic_load_explicit(&ch.hdr->closing, memory_order_acquire) != 0;
    ph_channel_close(&ch);
    return closed;
}

static void on_exit_status(struct sup *s, struct sup_proc *p, int status)
{
    char what[96];
    describe_status(status, what, sizeof what);
    uint64_t now = ph_mono_ns();
    if (s->phase >= SUP_STOP_WORKERS) {
        p->state = SUP_P_STOPPED;
        sup_info("%s pid %d %s", p->name, (int)p->pid, what);
    } else if (p->kind == SUP_K_CONTROLLER && s->phase == SUP_START_CONTROLLER) {
        p->state = SUP_P_STOPPED;
        sup_error("the controller pid %d %s before the segment was ready; see %s", (int)p->pid,
                  what, p->log_path);
        begin_shutdown(s, 1, "the controller did not start");
    } else if (p->kind == SUP_K_CONTROLLER && WIFEXITED(status) && WEXITSTATUS(status) == 0 &&
               channel_closed(s)) {
        /* swarm-remove ends the swarm: nothing is left to run or restart. */
        p->state = SUP_P_STOPPED;
        s->released = true;
        sup_info("the controller pid %d exited 0 after ending the swarm (swarm-remove): "
                 "releasing it",
                 (int)p->pid);
        sup_run_mark_removed(s->opt->run);
        begin_shutdown(s, 0, "swarm removed");
    } else if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        /* Status 0 is a decision, not a crash: a worker exits 0 on SIGTERM
         * and on the stop command the controller sends for swarm-remove.
         * Restarting it would undo the removal. */
        p->state = SUP_P_STOPPED;
        sup_info("%s pid %d exited normally; not restarted", p->name, (int)p->pid);
    } else {
        char line[160];
        snprintf(line, sizeof line, "pid %d %s", (int)p->pid, what);
        schedule_restart(p, now, line);
    }
    save_procs(s);
}

static void reap(struct sup *s)
{
    for (;;) {
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid <= 0) return; /* 0: others still run; -1 ECHILD: none left */
        struct sup_proc *p = NULL;
        for (size_t i = 0; i < s->nprocs && p == NULL; i++)
            if (s->procs[i].pid == pid && is_running(&s->procs[i])) p = &s->procs[i];
        if (p != NULL) on_exit_status(s, p, status);
    }
}

static size_t signal_procs(struct sup *s, enum sup_proc_kind kind, int sig)
{
    size_t n = 0;
    for (size_t i = 0; i < s->nprocs; i++) {
        struct sup_proc *p = &s->procs[i];
        if (p->kind != kind) continue;
        if (is_running(p)) {
            if (kill(p->pid, sig) == 0) n++;
            if (sig == SIGKILL)
                sup_warn("%s pid %d ignored SIGTERM: sent SIGKILL", p->name, (int)p->pid);
        } else if (p->state != SUP_P_STOPPED) {
            p->state = SUP_P_STOPPED; /* cancels a pending start or restart */
        }
    }
    return n;
}

static void enter_phase(struct sup *s, enum sup_phase ph, uint64_t deadline_in, uint64_t check_in)
{
    uint64_t now = ph_mono_ns();
    s->phase = ph;
    s->phase_started = now;
    s->phase_deadline = deadline_in ? now + deadline_in : 0;
    s->next_check = check_in ? now + check_in : 0;
    s->killed = false;
}

static void begin_shutdown(struct sup *s, int code, const char *why)
{
    if (code > s->exit_code) s->exit_code = code;
    if (s->phase >= SUP_STOP_WORKERS) {
        /* A second request while stopping: skip the grace period. */
        if (!s->killed) {
            sup_warn("%s while stopping: killing what is left now", why);
            s->phase_deadline = ph_mono_ns();
        }
        return;
    }
    enter_phase(s, SUP_STOP_WORKERS, STOP_GRACE, 0);
    size_t n = signal_procs(s, SUP_K_WORKER, SIGTERM);
    if (n > 0)
        sup_info("%s: stopping %zu worker%s", why, n, n == 1 ? "" : "s");
    else
        sup_info("%s: stopping", why);
    save_procs(s);
}

/* True while a process of `kind` still runs. */
static bool any_running(const struct sup *s, enum sup_proc_kind kind)
{
    for (size_t i = 0; i < s->nprocs; i++)
        if (s->procs[i].kind == kind && is_running(&s->procs[i])) return true;
    return false;
}

/* Moves through the stop phases as processes go away: workers, then the
 * controller, then the bridge. */
static void advance_stop(struct sup *s)
{
    if (s->phase == SUP_STOP_WORKERS) {
        if (any_running(s, SUP_K_WORKER)) return;
        /* The relay after its workers: it reports their departure. */
        enter_phase(s, SUP_STOP_RELAY, STOP_GRACE, 0);
        if (signal_procs(s, SUP_K_RELAY, SIGTERM) > 0)
            sup_info("stopping the relay pid %d", (int)s->relay->pid);
        save_procs(s);
    }
    if (s->phase == SUP_STOP_RELAY) {
        if (any_running(s, SUP_K_RELAY)) return;
        enter_phase(s, SUP_STOP_CONTROLLER, STOP_GRACE, 0);
        if (signal_procs(s, SUP_K_CONTROLLER, SIGTERM) > 0)
            sup_info("stopping the controller pid %d", (int)s->procs[0].pid);
        save_procs(s);
    }
    if (s->phase == SUP_STOP_CONTROLLER) {
        if (any_running(s, SUP_K_CONTROLLER)) return;
        if (s->released && any_running(s, SUP_K_BRIDGE)) {
            /* It exits by itself once the broker confirmed the final status;
             * a SIGTERM now could cut that short. */
            enter_phase(s, SUP_STOP_BRIDGE, BRIDGE_FINAL_GRACE, 0);
            s->bridge_asked = true;
            sup_info("waiting for the bridge pid %d to publish the final status",
                     (int)bridge_proc(s)->pid);
        } else {
            enter_phase(s, SUP_STOP_BRIDGE, STOP_GRACE, 0);
            /* The controller flushed its last documents into the channel before
             * exiting; the bridge drains them on SIGTERM, then exits. */
            if (signal_procs(s, SUP_K_BRIDGE, SIGTERM) > 0)
                sup_info("stopping the bridge pid %d", (int)bridge_proc(s)->pid);
        }
        save_procs(s);
    }
    if (s->phase == SUP_STOP_BRIDGE && !any_running(s, SUP_K_BRIDGE)) s->phase = SUP_DONE;
}

/* ---- timers ----------------------------------------------------------- */

static void on_time(struct sup *s, uint64_t now)
{
    /* Restarts due (never during startup of the controller or shutdown). */
    if (s->phase == SUP_START_WORKERS || s->phase == SUP_RUNNING) {
        for (size_t i = 0; i < s->nprocs; i++) {
            struct sup_proc *p = &s->procs[i];
            if (p->state == SUP_P_BACKOFF && p->restart_at_ns <= now) {
                p->restarts++;
                start_proc(s, p);
            }
        }
    }

    switch (s->phase) {
    case SUP_START_CONTROLLER:
        if (s->next_check != 0 && now >= s->next_check) {
            if (controller_ready(s)) {
                char t[32];
                fmt_secs(now - s->phase_started, t, sizeof t);
                sup_info("controller ready after %s (segment /dev/shm/ph.%s, %" PRIu32
                         " slots); starting %s%s%zu workers",
                         t, s->swarm, s->opt->spec->slots, bridge_proc(s) ? "the bridge and " : "",
                         s->relay != NULL ? "the relay and " : "", s->nworkers);
                enter_phase(s, SUP_START_WORKERS, 0, ATTACH_CHECK_EVERY);
                /* The bridge first (procs[1]). The order is not critical:
                 * what the controller writes before a bridge registers waits
                 * in the channel's ring, and a newly registered bridge is
                 * sent a fresh status-full. The relay's workers wait for
                 * the relay's segment (START_WORKERS). */
                for (size_t i = 1; i < s->nprocs; i++)
                    if (s->procs[i].placement != SUP_PLACE_RELAY) start_proc(s, &s->procs[i]);
                return;
            }
            s->next_check = now + CONTROLLER_CHECK_EVERY;
        }
        if (s->phase == SUP_START_CONTROLLER && now >= s->phase_deadline) {
            sup_error("the controller pid %d did not make the segment ready within 10 s (%s); "
                      "see %s",
                      (int)s->procs[0].pid, s->last_check_err, s->procs[0].log_path);
            begin_shutdown(s, 1, "startup failed");
        }
        break;
    case SUP_START_WORKERS:
        if (now >= s->next_check && s->relay != NULL && !s->relay_ready &&
            segment_ready(s, s->opt->spec->relay_segment, SUP_K_RELAY)) {
            char t[32];
            fmt_secs(now - s->phase_started, t, sizeof t);
            s->relay_ready = true;
            sup_info("relay ready after %s (segment /dev/shm/ph.%s); starting its workers", t,
                     s->opt->spec->relay_segment);
            for (size_t i = s->first_worker; i < s->nprocs; i++)
                if (s->procs[i].placement == SUP_PLACE_RELAY && s->procs[i].state == SUP_P_PENDING)
                    start_proc(s, &s->procs[i]);
        }
        if (now >= s->next_check) {
            if (workers_attached(s) && bridge_up(s)) {
                char t[32];
                fmt_secs(now - s->phase_started, t, sizeof t);
                sup_info("ready: controller, %s%s%zu workers running (attached after %s)",
                         bridge_proc(s) ? "bridge, " : "", s->relay != NULL ? "relay, " : "",
                         s->nworkers, t);
                sup_run_write_ready(s->opt->run);
                enter_phase(s, SUP_RUNNING, 0, 0);
                return;
            }
            s->next_check = now + ATTACH_CHECK_EVERY;
            if (!s->attach_warned && now - s->phase_started >= ATTACH_WARN_AFTER) {
                s->attach_warned = true;
                for (size_t i = s->first_worker; i < s->nprocs; i++) {
                    struct sup_proc *p = &s->procs[i];
                    if (p->state != SUP_P_STOPPED && (!is_running(p) || p->attached_pid != p->pid))
                        sup_warn("%s has not attached to the segment yet; see %s", p->name,
                                 p->log_path);
                }
                if (bridge_proc(s) != NULL && !is_running(bridge_proc(s)))
                    sup_warn("the bridge is not running; see %s", bridge_proc(s)->log_path);
                if (s->relay != NULL && !s->relay_ready)
                    sup_warn("the relay has not made its segment /dev/shm/ph.%s ready yet; its "
                             "workers wait for it; see %s",
                             s->opt->spec->relay_segment, s->relay->log_path);
                else if (s->relay != NULL && !is_running(s->relay))
                    sup_warn("the relay is not running; see %s", s->relay->log_path);
            }
        }
        break;
    case SUP_STOP_WORKERS:
    case SUP_STOP_RELAY:
    case SUP_STOP_CONTROLLER:
    case SUP_STOP_BRIDGE: {
        enum sup_proc_kind kind = phase_kind(s->phase);
        if (s->phase == SUP_STOP_BRIDGE && s->bridge_asked && now >= s->phase_deadline) {
            s->bridge_asked = false;
            s->phase_deadline = now + STOP_GRACE;
            if (signal_procs(s, SUP_K_BRIDGE, SIGTERM) > 0)
                sup_warn("the bridge did not finish publishing the final status within 30 s; "
                         "stopping it (see %s)",
                         bridge_proc(s)->log_path);
        } else if (now >= s->phase_deadline && !s->killed) {
            signal_procs(s, kind, SIGKILL);
            s->killed = true;
            s->phase_deadline = now + KILL_GRACE;
        } else if (now >= s->phase_deadline) {
            /* Unkillable (uninterruptible sleep): give up on it rather than
             * hang the shutdown; it stays in procs.json as running. */
            for (size_t i = 0; i < s->nprocs; i++) {
                struct sup_proc *p = &s->procs[i];
                if (p->kind == kind && is_running(p)) {
                    sup_error("%s pid %d survived SIGKILL for 2 s; leaving it", p->name,
                              (int)p->pid);
                    p->state = SUP_P_STOPPED;
                }
            }
        }
        advance_stop(s);
        break;
    }
    case SUP_RUNNING:
    case SUP_DONE:
        break;
    }
}

static uint64_t next_deadline(const struct sup *s)
{
    uint64_t d = 0;
#define TAKE(x)                                                                                    \
    do {                                                                                           \
        uint64_t v_ = (x);                                                                         \
        if (v_ != 0 && (d == 0 || v_ < d)) d = v_;                                                 \
    } while (0)
    TAKE(s->phase_deadline);
    TAKE(s->next_check);
    if (s->phase == SUP_START_WORKERS || s->phase == SUP_RUNNING)
        for (size_t i = 0; i < s->nprocs; i++)
            if (s->procs[i].state == SUP_P_BACKOFF) TAKE(s->procs[i].restart_at_ns);
#undef TAKE
    return d;
}

/* ---- waiting and signals ---------------------------------------------- */

/* Sleeps until the signalfd is readable or `deadline` (CLOCK_MONOTONIC ns,
 * 0 = none) passes. */
static void wait_events(struct sup *s, uint64_t deadline)
{
    uint64_t now = ph_mono_ns();
    uint64_t left = deadline == 0 ? 0 : deadline > now ? deadline - now : 1;
    if (s->have_uring) {
        if (!s->poll_armed) {
            struct io_uring_sqe *sqe = io_uring_get_sqe(&s->ring);
            if (sqe != NULL) {
                io_uring_prep_poll_add(sqe, s->sfd, POLLIN);
                io_uring_sqe_set_data64(sqe, 1);
                s->poll_armed = true;
            }
        }
        struct __kernel_timespec ts = {.tv_sec = (long long)(left / SEC),
                                       .tv_nsec = (long long)(left % SEC)};
        struct io_uring_cqe *cqe;
        int rc = io_uring_submit_and_wait_timeout(&s->ring, &cqe, 1, deadline ? &ts : NULL, NULL);
        if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) {
            sup_warn("io_uring wait failed (%s); continuing with poll()", strerror(-rc));
            io_uring_queue_exit(&s->ring);
            s->have_uring = false;
            return;
        }
        unsigned head, seen = 0;
        io_uring_for_each_cqe(&s->ring, head, cqe)
        {
            if (cqe->user_data == 1) s->poll_armed = false; /* one-shot: re-armed next time */
            seen++;
        }
        io_uring_cq_advance(&s->ring, seen);
        return;
    }
    struct pollfd pfd = {.fd = s->sfd, .events = POLLIN};
    int ms = deadline == 0 ? -1 : (int)((left + MS - 1) / MS);
    (void)poll(&pfd, 1, ms);
}

static void handle_signals(struct sup *s)
{
    struct signalfd_siginfo si[16];
    bool child = false;
    int stop = 0;
    for (;;) {
        ssize_t n = read(s->sfd, si, sizeof si);
        if (n <= 0) break;
        for (size_t i = 0; i < (size_t)n / sizeof si[0]; i++) {
            if (si[i].ssi_signo == SIGCHLD)
                child = true;
            else
                stop = (int)si[i].ssi_signo;
        }
    }
    /* Shutdown first: children that exited because of the same Ctrl-C are
     * then counted as stopped, not as crashes to restart. */
    if (stop != 0) {
        char why[48];
        snprintf(why, sizeof why, "received SIG%s", sigabbrev_np(stop));
        begin_shutdown(s, 0, why);
    }
    if (child) reap(s);
}

static int setup_events(struct sup *s)
{
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    if (sigprocmask(SIG_BLOCK, &mask, NULL) != 0) {
        sup_error("sigprocmask: %s", strerror(errno));
        return PH_ERR_SYS;
    }
    s->sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (s->sfd < 0) {
        sup_error("signalfd: %s", strerror(errno));
        return PH_ERR_SYS;
    }
    int rc = io_uring_queue_init(8, &s->ring, 0);
    s->have_uring = rc == 0;
    if (!s->have_uring) sup_warn("io_uring unavailable (%s); waiting with poll()", strerror(-rc));
    return PH_OK;
}

/* ---- entry ------------------------------------------------------------ */

int sup_loop_run(const struct sup_options *opt)
{
    struct sup s = {.opt = opt, .swarm = opt->spec->swarm_id, .sfd = -1};
    int rc = setup_events(&s);
    if (rc == PH_OK) rc = check_existing_segment(&s, s.swarm, false);
    if (rc == PH_OK && opt->spec->has_relay)
        rc = check_existing_segment(&s, opt->spec->relay_segment, true);
    if (rc == PH_OK) rc = build_procs(&s);
    if (rc != PH_OK) {
        if (s.have_uring) io_uring_queue_exit(&s.ring);
        if (s.sfd >= 0) close(s.sfd);
        free_procs(&s);
        return 1;
    }
    save_procs(&s);
    sup_info("starting swarm %s: controller %s%s%s + %zu workers, %" PRIu32 " slots, bin %s",
             s.swarm, opt->spec->controller_instance, opt->have_bridge ? " + bridge" : "",
             s.relay != NULL ? " + relay" : "", s.nworkers, opt->spec->slots, opt->bin_dir);
    for (size_t i = 0; i < opt->spec->nroles; i++) {
        const struct sup_role *r = &opt->spec->roles[i];
        if (r->placement == SUP_PLACE_REMOTE)
            sup_info("role %s: %u remote worker%s (ph-worker --remote, location %s)", r->role,
                     r->count, r->count == 1 ? "" : "s", r->location);
        else if (r->placement == SUP_PLACE_RELAY)
            sup_info("role %s: %u worker%s behind the relay (segment /dev/shm/ph.%s, location %s)",
                     r->role, r->count, r->count == 1 ? "" : "s", opt->spec->relay_segment,
                     r->location);
    }
    if (opt->have_bridge) {
        char sink[PATH_MAX + 8];
        sup_sink_display(opt->sink, sink, sizeof sink);
        sup_info("envelopes go to %s; signals are read from %s", sink, opt->run->signals_path);
        if (!opt->sink_on_argv)
            sup_info("broker URL from %s",
                     opt->amqp_url_file[0] != '\0' ? opt->amqp_url_file : "$PH_AMQP_URL");
    }
    sup_info("journal: %s/<runId>.jsonl", opt->run->journal_dir);

    enter_phase(&s, SUP_START_CONTROLLER, CONTROLLER_READY_TIMEOUT, CONTROLLER_CHECK_EVERY);
    start_proc(&s, &s.procs[0]);
    for (;;) {
        on_time(&s, ph_mono_ns());
        /* Exits and shutdown requests handled since the last pass may
         * complete a stop phase without any timer being due. */
        if (s.phase >= SUP_STOP_WORKERS) advance_stop(&s);
        if (s.phase == SUP_DONE) break;
        wait_events(&s, next_deadline(&s));
        handle_signals(&s);
    }

    if (unlink_segment(&s, s.swarm, SUP_K_CONTROLLER) != PH_OK && s.exit_code == 0) s.exit_code = 1;
    if (s.relay != NULL && unlink_segment(&s, opt->spec->relay_segment, SUP_K_RELAY) != PH_OK &&
        s.exit_code == 0)
        s.exit_code = 1;
    if (unlink_channel(&s) != PH_OK && s.exit_code == 0) s.exit_code = 1;
    save_procs(&s);
    sup_info("stopped (exit %d)", s.exit_code);
    if (s.have_uring) io_uring_queue_exit(&s.ring);
    close(s.sfd);
    free_procs(&s);
    return s.exit_code;
}
