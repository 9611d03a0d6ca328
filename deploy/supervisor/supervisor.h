/* ph-supervisor: private interface between its files.
 *
 *   swarmfile.c  reads and validates the swarm file into a sup_spec
 *   runfiles.c   the run directory: pid lock, procs.json, ready, config files
 *   spawn.c      starts one child with its output appended to a log file
 *   loop.c       the event loop: start order, restarts with backoff, shutdown
 *                (controller, then bridge, relay and workers, a relay's
 *                workers once it is ready; stop: workers, relay,
 *                controller, bridge)
 *   log.c        timestamped log lines on stderr
 *   main.c       command line */
#ifndef PH_SUPERVISOR_H
#define PH_SUPERVISOR_H

#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "ph/common.h"
#include "ph/record.h"

/* ---- swarm file ------------------------------------------------------- */

/* Where a role's workers run and how they report (swarmfile.c). */
enum sup_placement {
    SUP_PLACE_LOCAL,  /* shared memory: the controller's segment */
    SUP_PLACE_REMOTE, /* ph-worker --remote: status over AMQP, no segment */
    SUP_PLACE_RELAY,  /* the swarm's ph-relay segment, forwarded over AMQP */
};
const char *sup_placement_name(enum sup_placement p);

struct sup_role {
    char role[PH_ID_MAX];
    unsigned count;
    enum sup_placement placement;
    /* remote and relay: the location the workers report; the file's
     * "location", else "remote-<host>" / "relay-<host>". Empty for local. */
    char location[PH_LOCATION_MAX];
    bool location_given; /* the file names it */
    /* `count` instance ids: the file's "instances", else
     * "<swarmId>-<role>-<n>" (unique across swarms: upstream UIs key
     * components by instance alone). Owned. */
    char (*instances)[PH_ID_MAX];
    /* borrowed from sup_spec.root; an object, maybe empty. Holds inQueue /
     * outQueue: the file's, else the default pipeline's (swarmfile.c). */
    json_t *config;
};

struct sup_spec {
    char path[PATH_MAX]; /* absolute path of the swarm file */
    char swarm_id[PH_ID_MAX];
    struct sup_role *roles;
    size_t nroles;
    size_t total_workers;
    char controller_instance[PH_ID_MAX]; /* the file's or "<swarmId>-controller" */
    uint32_t slots;                      /* resolved: the file's value or max(16, 2 * workers) */
    const char **controller_args;        /* borrowed strings, NULL-terminated */
    size_t ncontroller_args;
    /* Some role has placement remote or relay: the swarm needs a broker. */
    const char *first_amqp_role; /* the first such role's name (borrowed), or NULL */
    /* Some role has placement relay: the swarm's one ph-relay serves segment
     * relay_segment (also its relay id) and reports relay_location. */
    bool has_relay;
    char relay_segment[PH_ID_MAX]; /* "<swarmId>-relay" */
    char relay_location[PH_LOCATION_MAX];
    json_t *root;
};

/* Loads and validates `path`. On failure writes "<path>: <where>: <what>"
 * into err and returns PH_ERR_INVAL (bad content) or PH_ERR_SYS (unreadable). */
int sup_spec_load(const char *path, struct sup_spec *spec, char *err, size_t errlen);
void sup_spec_free(struct sup_spec *spec);

/* ---- logging ---------------------------------------------------------- */

void sup_log_set_swarm(const char *swarm_id);
void sup_log(const char *level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define sup_info(...) sup_log("info", __VA_ARGS__)
#define sup_warn(...) sup_log("warn", __VA_ARGS__)
#define sup_error(...) sup_log("error", __VA_ARGS__)

/* ---- processes -------------------------------------------------------- */

enum sup_proc_state {
    SUP_P_PENDING, /* not started yet */
    SUP_P_RUNNING, /* a live child */
    SUP_P_BACKOFF, /* exited; restart scheduled at restart_at */
    SUP_P_STOPPED, /* exited during shutdown or with status 0: not started again */
};

enum sup_proc_kind {
    SUP_K_CONTROLLER,
    SUP_K_BRIDGE,
    SUP_K_RELAY,
    SUP_K_WORKER,
};

struct sup_proc {
    char name[PH_ID_MAX]; /* "controller", "bridge", "relay" or the instance id; names the log */
    char role[PH_ID_MAX]; /* "swarm-controller", "bridge", "relay" or the worker's role */
    char instance[PH_ID_MAX];
    enum sup_proc_kind kind;
    enum sup_placement placement; /* workers: their role's; others local */
    char **argv;                  /* argv[0] is the absolute binary path */
    char **envp;                  /* borrowed; NULL: the supervisor's environment */
    char log_path[PATH_MAX];
    enum sup_proc_state state;
    pid_t pid; /* current or last child pid; 0 if never started */
    unsigned restarts;
    uint64_t started_mono_ns;
    uint64_t started_real_ns;
    uint64_t restart_at_ns; /* CLOCK_MONOTONIC deadline while in BACKOFF */
    uint64_t next_delay_ns; /* backoff to apply on the next unexpected exit */
    pid_t attached_pid;     /* worker seen ACTIVE in a slot with this pid */
};

/* ---- spawn ------------------------------------------------------------ */

/* Starts argv[0] with stdin from /dev/null and stdout+stderr appended to
 * log_path, in environment envp (NULL: the supervisor's own). The child
 * gets a clean signal mask and SIGTERM when the supervisor dies. Returns
 * PH_OK with *pid, or PH_ERR_SYS when the log cannot be opened or exec
 * fails (the child is reaped then). */
int sup_spawn(char *const argv[], char *const envp[], const char *log_path, pid_t *pid, char *err,
              size_t errlen);

/* ---- run directory ---------------------------------------------------- */

struct sup_run {
    char dir[PATH_MAX];
    char pid_path[PATH_MAX];
    char ready_path[PATH_MAX];
    char removed_path[PATH_MAX];
    char procs_path[PATH_MAX];
    char logs_dir[PATH_MAX];
    char config_dir[PATH_MAX];
    char journal_dir[PATH_MAX];    /* the controller's --journal-dir */
    char signals_path[PATH_MAX];   /* the bridge's --signals: tools append signal lines */
    char envelopes_path[PATH_MAX]; /* the bridge's file sink unless PH_SINK says otherwise */
    char info_path[PATH_MAX];      /* run.json: where this run's envelopes and journal go */
    int pid_fd;                    /* holds an flock while the supervisor lives */
};

/* Creates the run directory (and logs/, config/, journal/), takes the lock
 * on supervisor.pid (PH_ERR_BUSY with the holder's pid when another
 * supervisor has it), writes our pid, removes stale ready/procs.json and
 * creates an empty signals.jsonl (0600). */
int sup_run_open(struct sup_run *run, const char *dir, char *err, size_t errlen);
/* Writes <config_dir>/<instance>.json, mode 0600, into path. */
int sup_run_write_config(const struct sup_run *run, const char *instance, const json_t *config,
                         char *path, size_t pathlen, char *err, size_t errlen);
/* Rewrites procs.json atomically (temporary file + rename). */
int sup_run_write_procs(const struct sup_run *run, const struct sup_proc *procs, size_t n);
int sup_run_write_ready(const struct sup_run *run);
/* Writes `removed` (the time): the swarm ended after swarm-remove. phive
 * status shows it; the next supervisor of the folder removes it. */
void sup_run_mark_removed(const struct sup_run *run);
/* A sink for logs and run.json: "file:PATH" as it is; in a URL
 * (amqp://user:password@host/...) the password becomes "***". */
void sup_sink_display(const char *sink, char *out, size_t n);
/* What run.json says about the broker when the sink is amqp. */
struct sup_broker_info {
    const char *url_file;    /* the bridge's --amqp-url-file, or NULL (PH_AMQP_URL) */
    const char *private_dir; /* folder of the private node this run uses, or NULL */
};

/* Writes run.json: {swarmId, controllerInstance, bridge, sink, signals,
 * journalDir, amqpUrl, amqpUrlFile, privateBroker}. `sink` is shown as given
 * (a file sink) or with the password of a URL masked; amqpUrl (sink amqp
 * only) is the broker's URL from the URL file or PH_AMQP_URL with its
 * password masked; amqpUrlFile and privateBroker are the paths of `broker`
 * or null. */
int sup_run_write_info(const struct sup_run *run, const struct sup_spec *spec, bool bridge,
                       const char *sink, const struct sup_broker_info *broker);
/* Removes ready and supervisor.pid and drops the lock; procs.json stays so
 * that tools can see the last pids. */
void sup_run_close(struct sup_run *run);

/* ---- event loop ------------------------------------------------------- */

struct sup_options {
    const struct sup_spec *spec;
    struct sup_run *run;
    char bin_dir[PATH_MAX];
    bool have_bridge; /* bin_dir holds ph-bridge: start it; otherwise run without */
    /* Where the bridge sends envelopes: $PH_SINK, else file:<run>/envelopes.jsonl. */
    char sink[PATH_MAX + 8];
    bool sink_on_argv; /* false: the bridge reads PH_SINK from its environment */
    /* --amqp-url-file / $PH_AMQP_URL_FILE: handed to the bridge as its
     * --amqp-url-file when the sink is not a file (the path is not secret;
     * the URL in it is). Empty: the bridge uses $PH_AMQP_URL. */
    char amqp_url_file[PATH_MAX];
};

/* Runs the swarm until SIGTERM/SIGINT/SIGHUP; returns the exit code. */
int sup_loop_run(const struct sup_options *opt);

#endif
