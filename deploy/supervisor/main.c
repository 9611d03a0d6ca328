/* ph-supervisor: runs one swarm from a swarm file.
 *
 * Starts the swarm controller, waits until it has made the shared-memory
 * segment ready, then starts the bridge (ph-bridge, which turns the
 * controller's documents into envelopes) and every worker; restarts whatever
 * crashes with exponential backoff; on SIGTERM/SIGINT stops the workers, the
 * controller, then the bridge, and removes the segment and the bridge
 * channel. Roles placed "remote" or "relay" run as remote-mode workers or
 * behind the swarm's ph-relay (loop.c). `deploy/phive` is its front end. */
#include "supervisor.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: ph-supervisor --swarm-file PATH --run-dir DIR [--bin-dir DIR]\n"
            "                     [--amqp-url-file PATH] [--broker-dir DIR]\n"
            "       ph-supervisor --swarm-file PATH --check\n"
            "\n"
            "Runs one swarm: the swarm controller first, then the bridge and every worker of\n"
            "the swarm file. A process that crashes (signal, non-zero status) is restarted\n"
            "(backoff 0.5 s doubling to 30 s, reset after 60 s of uptime); one that exits\n"
            "with status 0 (a worker told to stop by swarm-remove) is not. On SIGTERM or\n"
            "SIGINT stops the workers, then the relay, the controller and the bridge\n"
            "(SIGKILL after 5 s each), removes /dev/shm/ph.<swarmId>,\n"
            "/dev/shm/ph.<swarmId>-relay and /dev/shm/ph.<swarmId>.bridge and exits 0.\n"
            "After swarm-remove the controller sends the final status and exits 0,\n"
            "the bridge exits 0 once the broker confirmed it (SIGTERM after 30 s), and the\n"
            "supervisor releases the swarm the same way, writes <run-dir>/removed and\n"
            "exits 0.\n"
            "\n"
            "Without a ph-bridge in the bin directory the swarm runs without one (a warning\n"
            "is logged): nothing is published and no signal reaches the controller.\n"
            "\n"
            "Options:\n"
            "  --swarm-file PATH  swarm file: {\"swarmId\": ID, \"roles\": [{\"role\": R,\n"
            "                     \"count\": N, \"config\": {...}, \"instances\": [...]}, ...],\n"
            "                     \"controller\": {\"instance\": I, \"slots\": N, \"args\": [...]}}\n"
            "                     Workers are named ID-R-1..N unless \"instances\" lists N\n"
            "                     ids. Each role's config gets inQueue/outQueue unless it\n"
            "                     names them: roles in file order form a chain, role R\n"
            "                     consuming ph.work.ID.R (the first role consumes nothing)\n"
            "                     and producing into the next role's queue.\n"
            "                     A role's \"placement\" says where its workers run:\n"
            "                       \"local\"   (default) on the controller's segment\n"
            "                       \"remote\"  ph-worker --remote --location L --controller\n"
            "                                 <controller instance>: no segment, status and\n"
            "                                 commands over AMQP; the broker URL file is\n"
            "                                 given in PH_AMQP_URL_FILE\n"
            "                       \"relay\"   on the segment of the swarm's one ph-relay\n"
            "                                 (--segment and --relay-id ID-relay), which\n"
            "                                 forwards them to the bridge over AMQP; started\n"
            "                                 before its workers, stopped after them, its\n"
            "                                 segment /dev/shm/ph.ID-relay removed at stop\n"
            "                     \"location\" (remote and relay only): the host name those\n"
            "                     workers report (default remote-<host> or relay-<host>,\n"
            "                     <host> being this machine's); relay roles share one.\n"
            "                     remote and relay need a broker (PH_SINK not a file) and\n"
            "                     ph-bridge: refused at start otherwise.\n"
            "                     Other top-level keys (statusTtlSec, watermarkSec,\n"
            "                     deltaCoalesceMs, workerDeltas, workerHeartbeatSec,\n"
            "                     deadGraceSec, autoStart, runId, description) are the\n"
            "                     controller's; they are checked here and read by the\n"
            "                     controller from the file.\n"
            "  --run-dir DIR      where run files go: supervisor.pid, procs.json, ready,\n"
            "                     run.json, logs/<name>.log, config/<instance>.json,\n"
            "                     journal/<runId>.jsonl, signals.jsonl (created if absent)\n"
            "  --bin-dir DIR      where ph-swarm-controller, ph-worker, ph-bridge and\n"
            "                     ph-relay are (default: the directory of this executable)\n"
            "  --amqp-url-file PATH  file whose first line is the broker URL; given to the\n"
            "                     bridge and the relay as --amqp-url-file and to remote\n"
            "                     workers as PH_AMQP_URL_FILE when the sink is not a file\n"
            "                     (default: $PH_AMQP_URL_FILE; without either the bridge\n"
            "                     reads $PH_AMQP_URL). Only the path goes on argv.\n"
            "  --broker-dir DIR   the private RabbitMQ node (deploy/rabbitmq --dir) this run\n"
            "                     uses; recorded in run.json as privateBroker, for phive\n"
            "  --check            validate the swarm file, print a summary and exit\n"
            "  --help             this text\n"
            "\n"
            "Environment:\n"
            "  PH_SINK            where the bridge sends envelopes (default:\n"
            "                     file:<run-dir>/envelopes.jsonl); passed on to the bridge\n"
            "                     (file:PATH on its argv, anything else, e.g. amqp, in its\n"
            "                     environment)\n"
            "  PH_AMQP_URL_FILE   default of --amqp-url-file\n"
            "  PH_AMQP_URL        the broker URL, inherited by the bridge, the relay and\n"
            "                     remote workers when there is no URL file (never logged)\n"
            "\n"
            "Exit status: 0 after a clean stop, a removal or a valid --check; 1 when the swarm\n"
            "file is invalid, the swarm already runs, or the controller does not start; 2 on\n"
            "bad usage.\n");
}

static int default_bin_dir(char *out, size_t n)
{
    char self[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    if (len <= 0) return -1;
    self[len] = '\0';
    snprintf(out, n, "%s", dirname(self));
    return 0;
}

static bool executable(const char *dir, const char *name, bool quiet)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (access(path, X_OK) == 0) return true;
    if (quiet) return false;
    fprintf(stderr,
            "ph-supervisor: %s is not an executable (%s); build the project or pass "
            "--bin-dir\n",
            path, strerror(errno));
    return false;
}

/* Children inherit fds 0-2 through dup2 only, but files the supervisor
 * opens must never land on 0-2 (a log opened as fd 2 would receive our own
 * messages): fill any closed standard fd with /dev/null. */
static void ensure_std_fds(void)
{
    for (int fd = 0; fd < 3; fd++)
        if (fcntl(fd, F_GETFD) < 0 && errno == EBADF) {
            int n = open("/dev/null", O_RDWR);
            if (n >= 0 && n != fd) {
                dup2(n, fd);
                close(n);
            }
        }
}

static void print_summary(const struct sup_spec *spec)
{
    json_t *auto_start = json_object_get(spec->root, "autoStart");
    printf("swarm %s: %zu workers in %zu roles, %u slots, controller instance %s%s\n",
           spec->swarm_id, spec->total_workers, spec->nroles, spec->slots,
           spec->controller_instance, json_is_true(auto_start) ? ", autoStart" : "");
    for (size_t i = 0; i < spec->nroles; i++) {
        const struct sup_role *r = &spec->roles[i];
        const char *in = json_string_value(json_object_get(r->config, "inQueue"));
        const char *out = json_string_value(json_object_get(r->config, "outQueue"));
        printf("  %-20s x%u  in %s  out %s", r->role, r->count, in ? in : "-", out ? out : "-");
        if (r->placement != SUP_PLACE_LOCAL)
            printf("  placement %s at %s", sup_placement_name(r->placement), r->location);
        printf("\n");
        for (unsigned n = 0; n < r->count; n++) printf("    %s\n", r->instances[n]);
    }
}

int main(int argc, char **argv)
{
    enum {
        OPT_SWARM_FILE = 1000,
        OPT_RUN_DIR,
        OPT_BIN_DIR,
        OPT_AMQP_URL_FILE,
        OPT_BROKER_DIR,
        OPT_CHECK,
        OPT_HELP
    };
    static const struct option opts[] = {
        {"swarm-file", required_argument, NULL, OPT_SWARM_FILE},
        {"run-dir", required_argument, NULL, OPT_RUN_DIR},
        {"bin-dir", required_argument, NULL, OPT_BIN_DIR},
        {"amqp-url-file", required_argument, NULL, OPT_AMQP_URL_FILE},
        {"broker-dir", required_argument, NULL, OPT_BROKER_DIR},
        {"check", no_argument, NULL, OPT_CHECK},
        {"help", no_argument, NULL, OPT_HELP},
        {NULL, 0, NULL, 0},
    };
    const char *swarm_file = NULL, *run_dir = NULL, *bin_dir = NULL;
    const char *amqp_url_file = NULL, *broker_dir = NULL;
    bool check = false;
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case OPT_SWARM_FILE:
            swarm_file = optarg;
            break;
        case OPT_RUN_DIR:
            run_dir = optarg;
            break;
        case OPT_BIN_DIR:
            bin_dir = optarg;
            break;
        case OPT_AMQP_URL_FILE:
            amqp_url_file = optarg;
            break;
        case OPT_BROKER_DIR:
            broker_dir = optarg;
            break;
        case OPT_CHECK:
            check = true;
            break;
        case OPT_HELP:
            usage(stdout);
            return 0;
        default:
            fprintf(stderr, "ph-supervisor: unknown option or missing value: %s\n",
                    argv[optind - 1]);
            fprintf(stderr, "Try 'ph-supervisor --help'.\n");
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "ph-supervisor: unexpected argument '%s'\nTry 'ph-supervisor --help'.\n",
                argv[optind]);
        return 2;
    }
    if (swarm_file == NULL || (run_dir == NULL && !check)) {
        fprintf(stderr, "ph-supervisor: --swarm-file and --run-dir are required\n"
                        "Try 'ph-supervisor --help'.\n");
        return 2;
    }

    ensure_std_fds();
    /* A closed stderr pipe must not kill the supervisor mid-shutdown. */
    signal(SIGPIPE, SIG_IGN);
    /* Started in the background by a shell, we inherit SIGINT ignored; an
     * ignored signal is discarded even while blocked for the signalfd. */
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGHUP, SIG_DFL);

    struct sup_spec spec;
    char err[1024];
    if (sup_spec_load(swarm_file, &spec, err, sizeof err) != PH_OK) {
        fprintf(stderr, "ph-supervisor: %s\n", err);
        return 1;
    }
    if (check) {
        print_summary(&spec);
        sup_spec_free(&spec);
        return 0;
    }
    sup_log_set_swarm(spec.swarm_id);

    struct sup_options opt = {.spec = &spec};
    if (bin_dir != NULL) {
        if (realpath(bin_dir, opt.bin_dir) == NULL) {
            fprintf(stderr, "ph-supervisor: --bin-dir %s: %s\n", bin_dir, strerror(errno));
            sup_spec_free(&spec);
            return 1;
        }
    } else if (default_bin_dir(opt.bin_dir, sizeof opt.bin_dir) != 0) {
        fprintf(stderr, "ph-supervisor: cannot find my own directory; pass --bin-dir\n");
        sup_spec_free(&spec);
        return 1;
    }
    if (!executable(opt.bin_dir, "ph-swarm-controller", false) ||
        !executable(opt.bin_dir, "ph-worker", false)) {
        sup_spec_free(&spec);
        return 1;
    }
    /* The bridge is optional: controller and workers are useful on their
     * own (phctl reads the segment), and a checkout built before the bridge
     * existed must still run. */
    opt.have_bridge = executable(opt.bin_dir, "ph-bridge", true);

    /* Remote and relay workers reach the controller only through the broker
     * and the bridge: refused before anything starts when either is
     * missing, rather than left running with nobody hearing them. */
    const char *env_sink = getenv("PH_SINK");
    bool file_sink = env_sink == NULL || env_sink[0] == '\0' || strncmp(env_sink, "file:", 5) == 0;
    if (spec.first_amqp_role != NULL) {
        size_t i = 0;
        while (strcmp(spec.roles[i].role, spec.first_amqp_role) != 0)
            i++;
        const struct sup_role *r = &spec.roles[i];
        char what[160];
        snprintf(what, sizeof what, "roles[%zu]: role '%s' has placement %s", i, r->role,
                 sup_placement_name(r->placement));
        bool refuse = true;
        if (file_sink)
            fprintf(stderr,
                    "ph-supervisor: %s: %s, whose workers report over AMQP, but there is no "
                    "broker (%s); run with PH_SINK=amqp (deploy/phive's default) and a broker, "
                    "or use placement local\n",
                    spec.path, what,
                    env_sink != NULL && env_sink[0] != '\0' ? "PH_SINK is a file sink"
                                                            : "PH_SINK is unset: a file sink");
        else if (!opt.have_bridge)
            fprintf(stderr,
                    "ph-supervisor: %s: %s, whose workers report over AMQP to the bridge, but "
                    "there is no ph-bridge in %s; build it, or use placement local\n",
                    spec.path, what, opt.bin_dir);
        else
            refuse = false;
        if (refuse) {
            sup_spec_free(&spec);
            return 1;
        }
    }
    if (spec.has_relay && !executable(opt.bin_dir, "ph-relay", false)) {
        sup_spec_free(&spec);
        return 1;
    }

    struct sup_run run;
    int rc = sup_run_open(&run, run_dir, err, sizeof err);
    if (rc != PH_OK) {
        sup_error("%s", err);
        if (run.pid_fd >= 0) sup_run_close(&run);
        sup_spec_free(&spec);
        return 1;
    }
    opt.run = &run;

    if (env_sink != NULL && env_sink[0] != '\0') {
        snprintf(opt.sink, sizeof opt.sink, "%s", env_sink);
        /* A file sink goes on the command line, where ps shows it. Any
         * other sink (a broker URL) may carry a password, and every user can
         * read argv: the bridge takes it from PH_SINK, which it inherits. */
        opt.sink_on_argv = strncmp(env_sink, "file:", 5) == 0;
    } else {
        snprintf(opt.sink, sizeof opt.sink, "file:%s", run.envelopes_path);
        opt.sink_on_argv = true;
    }
    if (!opt.have_bridge)
        sup_warn("no ph-bridge in %s: running without a bridge (no envelopes are published, no "
                 "signal reaches the controller); build it to get one",
                 opt.bin_dir);
    if (amqp_url_file == NULL) amqp_url_file = getenv("PH_AMQP_URL_FILE");
    if (amqp_url_file != NULL && amqp_url_file[0] != '\0' && !opt.sink_on_argv) {
        /* Absolute: the bridge may resolve it from another directory. The
         * file may not exist yet (a broker still starting); the bridge
         * reports that. */
        char abs[PATH_MAX];
        if (realpath(amqp_url_file, abs) == NULL) snprintf(abs, sizeof abs, "%s", amqp_url_file);
        snprintf(opt.amqp_url_file, sizeof opt.amqp_url_file, "%s", abs);
    }
    char broker_abs[PATH_MAX] = "";
    if (broker_dir != NULL && broker_dir[0] != '\0' &&
        realpath(broker_dir, broker_abs) == NULL)
        snprintf(broker_abs, sizeof broker_abs, "%s", broker_dir);
    const struct sup_broker_info broker = {
        .url_file = opt.amqp_url_file[0] != '\0' ? opt.amqp_url_file : NULL,
        .private_dir = broker_abs[0] != '\0' ? broker_abs : NULL,
    };
    sup_run_write_info(&run, &spec, opt.have_bridge, opt.sink, &broker);

    int code = sup_loop_run(&opt);
    sup_run_close(&run);
    sup_spec_free(&spec);
    return code;
}
