/* phctl shm-dump: prints a swarm's segment once, or redraws it until
 * interrupted (--watch). Reading is snapshot.c's job and rendering
 * dump_text.c's and dump_json.c's; this file owns the options, the refresh
 * loop, and what happens when the segment goes away under a watch. */
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "phctl.h"
#include "render.h"
#include "snapshot.h"

static const char CMD[] = "shm-dump";

struct dump_opts {
    const char *swarm;
    bool json;
    bool watch;
    long interval_ms;
    long count; /* 0: until interrupted */
};

static void usage(FILE *out)
{
    fputs(
        "usage: phctl shm-dump --swarm ID [--json] [--watch [--interval-ms N] [--count N]]\n"
        "\n"
        "Prints what the shared-memory segment /dev/shm/ph.<ID> of a swarm shows: the header\n"
        "(layout version, generation, controller pid, liveness and heartbeat age, slot use,\n"
        "quarantine and reclaim totals) and one row per worker slot in use (state, role,\n"
        "instance, pid, liveness, enabled, processed, errors, tps, heartbeat age, io state,\n"
        "status-ring use and overflows, quarantine).\n"
        "\n"
        "The segment is opened read-only and read the way a debugger reads memory: this works\n"
        "when the controller and every worker are dead, and it never changes the segment.\n"
        "\n"
        "Options:\n"
        "  -s, --swarm ID        swarm id (letters, digits, '-' and '_')\n"
        "  -j, --json            print one JSON document {\"header\": {...}, \"workers\": [...]}\n"
        "  -w, --watch           redraw every interval until Ctrl-C (then exit 0); with --json,\n"
        "                        one compact document per line per interval\n"
        "  -i, --interval-ms N   refresh interval of --watch in ms (default 1000, 10..3600000)\n"
        "  -n, --count N         with --watch, stop after N refreshes\n" PHCTL_OWNER_HELP
        "  -h, --help            print this help\n"
        "\n"
        "TPS is the controller's estimate. When the controller is dead, --watch measures it\n"
        "from processed counts between refreshes (shown as 120*); a single dump shows the dead\n"
        "controller's last estimate (shown as 120?). JSON says which in \"tpsSource\".\n"
        "\n"
        "Exit status: 0 ok, 1 other failure, 2 usage error, 3 no such swarm, 4 permission\n"
        "denied, 5 not a swarm segment (bad magic or header), 6 unsupported layout version,\n"
        "7 truncated segment.\n",
        out);
}

/* Returns -1 to go on, or an exit code (0 after --help). */
static int parse(int argc, char **argv, struct dump_opts *o)
{
    static const struct option longopts[] = {
        {"swarm", required_argument, NULL, 's'},
        {"json", no_argument, NULL, 'j'},
        {"watch", no_argument, NULL, 'w'},
        {"interval-ms", required_argument, NULL, 'i'},
        {"count", required_argument, NULL, 'n'},
        {"help", no_argument, NULL, 'h'},
        PHCTL_OWNER_LONGOPTS,
        {NULL, 0, NULL, 0},
    };
    bool interval_set = false;
    *o = (struct dump_opts){.interval_ms = 1000};
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, ":s:jwi:n:h", longopts, NULL)) != -1) {
        switch (c) {
        case 's':
            o->swarm = optarg;
            break;
        case 'j':
            o->json = true;
            break;
        case 'w':
            o->watch = true;
            break;
        case 'i':
            if (!phctl_parse_long(optarg, 10, 3600000, &o->interval_ms))
                return phctl_usage_error(CMD,
                                         "--interval-ms wants a number of ms in "
                                         "10..3600000, not '%s'",
                                         optarg);
            interval_set = true;
            break;
        case 'n':
            if (!phctl_parse_long(optarg, 1, 1000000000L, &o->count))
                return phctl_usage_error(CMD, "--count wants a positive number, not '%s'", optarg);
            break;
        case 'h':
            usage(stdout);
            return PHCTL_EXIT_OK;
        case PHCTL_OPT_ALLOW_OWNER:
        case PHCTL_OPT_ANY_OWNER:
            if (!phctl_owner_option(CMD, c, optarg)) return PHCTL_EXIT_USAGE;
            break;
        default:
            return phctl_bad_option(CMD, c, argv);
        }
    }
    if (optind < argc) return phctl_usage_error(CMD, "unexpected argument '%s'", argv[optind]);
    if (!phctl_swarm_ok(CMD, o->swarm)) return PHCTL_EXIT_USAGE;
    if (!o->watch && (interval_set || o->count != 0))
        return phctl_usage_error(CMD, "--interval-ms and --count apply to --watch only");
    return -1;
}

/* Writes one snapshot to stdout in the chosen form. The text form of a
 * watch on a terminal is built in memory and written at once, after an
 * ANSI home + clear, so the redraw does not flicker. */
static int emit(const struct dump *d, const struct dump_opts *o, bool clear)
{
    if (o->json) {
        json_t *doc = dump_to_json(d);
        if (doc == NULL) {
            fprintf(stderr, "phctl: out of memory while building the JSON document\n");
            return PHCTL_EXIT_OTHER;
        }
        int rc = json_dumpf(doc, stdout, o->watch ? JSON_COMPACT : JSON_INDENT(2));
        json_decref(doc);
        if (rc == 0) fputc('\n', stdout);
    } else {
        char *buf = NULL;
        size_t len = 0;
        FILE *mem = open_memstream(&buf, &len);
        if (mem == NULL) {
            perror("phctl: open_memstream");
            return PHCTL_EXIT_OTHER;
        }
        if (clear) fputs("\033[H\033[2J", mem);
        if (o->watch) {
            char now[32];
            ph_rfc3339_ms(d->hdr.taken_real_ns, now);
            fprintf(mem, "phctl shm-dump --swarm %s, every %ld ms, %s (Ctrl-C to quit)\n\n",
                    o->swarm, o->interval_ms, now);
        }
        dump_render_text(mem, d);
        if (fclose(mem) != 0) {
            free(buf);
            perror("phctl: rendering");
            return PHCTL_EXIT_OTHER;
        }
        fwrite(buf, 1, len, stdout);
        free(buf);
    }
    if (fflush(stdout) != 0 || ferror(stdout)) {
        perror("phctl: writing output");
        return PHCTL_EXIT_OTHER;
    }
    return PHCTL_EXIT_OK;
}

static int dump_once(const struct dump_opts *o)
{
    char err[512];
    struct ph_segment seg;
    int rc = ph_segment_open(&seg, o->swarm, false, err, sizeof err);
    if (rc != PH_OK) return phctl_fail(rc, err);
    struct dump d = {0};
    rc = dump_take(&seg, &d, err, sizeof err);
    ph_segment_close(&seg);
    int code = rc == PH_OK ? emit(&d, o, false) : phctl_fail(rc, err);
    dump_free(&d);
    return code;
}

/* True when the name now leads to another object than the one we mapped
 * (removed, or removed and recreated by a new controller). */
static bool segment_replaced(const struct ph_segment *seg)
{
    char path[PH_ID_MAX + 16];
    struct stat mine, now;
    snprintf(path, sizeof path, "/dev/shm%s", seg->name);
    if (fstat(seg->fd, &mine) != 0 || stat(path, &now) != 0) return true;
    return mine.st_dev != now.st_dev || mine.st_ino != now.st_ino;
}

/* While the segment cannot be read, a watch keeps trying: a tty shows the
 * reason as the frame; otherwise it goes to stderr once per new reason. */
static void report_unreadable(const struct dump_opts *o, bool tty, const char *err, char *last,
                              size_t lastlen)
{
    if (!o->json && tty) {
        printf("\033[H\033[2Jphctl shm-dump --swarm %s, every %ld ms (Ctrl-C to quit)\n\n"
               "phctl: %s; retrying\n",
               o->swarm, o->interval_ms, err);
        fflush(stdout);
        return;
    }
    if (strcmp(last, err) == 0) return;
    fprintf(stderr, "phctl: %s; retrying every %ld ms\n", err, o->interval_ms);
    snprintf(last, lastlen, "%s", err);
}

static volatile sig_atomic_t stop_requested;

static void on_stop(int sig)
{
    (void)sig;
    stop_requested = 1;
}

/* Sleeps until `deadline` (CLOCK_MONOTONIC) or a stop signal. SIGINT and
 * SIGTERM stay blocked outside this wait and ppoll() unblocks them
 * atomically, so a signal cannot slip in between the check and the sleep. */
static void wait_until(const struct timespec *deadline, const sigset_t *waitmask)
{
    while (!stop_requested) {
        struct timespec now, left;
        clock_gettime(CLOCK_MONOTONIC, &now);
        int64_t ns = (int64_t)(deadline->tv_sec - now.tv_sec) * 1000000000 +
                     (deadline->tv_nsec - now.tv_nsec);
        if (ns <= 0) return;
        left.tv_sec = (time_t)(ns / 1000000000);
        left.tv_nsec = (long)(ns % 1000000000);
        ppoll(NULL, 0, &left, waitmask);
    }
}

static int watch(const struct dump_opts *o)
{
    char err[512], last_err[512] = "";
    struct ph_segment seg;
    int rc = ph_segment_open(&seg, o->swarm, false, err, sizeof err);
    if (rc != PH_OK) return phctl_fail(rc, err);
    bool mapped = true;

    sigset_t block, waitmask;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    sigprocmask(SIG_BLOCK, &block, &waitmask);
    sigdelset(&waitmask, SIGINT);
    sigdelset(&waitmask, SIGTERM);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    const bool tty = isatty(STDOUT_FILENO) == 1;
    struct dump cur = {0}, prev = {0};
    bool have_prev = false;
    int code = PHCTL_EXIT_OK;
    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    for (long frames = 0; !stop_requested;) {
        if (mapped && segment_replaced(&seg)) {
            ph_segment_close(&seg);
            mapped = have_prev = false;
        }
        if (!mapped) {
            rc = ph_segment_open(&seg, o->swarm, false, err, sizeof err);
            mapped = rc == PH_OK;
        }
        if (mapped) {
            rc = dump_take(&seg, &cur, err, sizeof err);
            if (rc != PH_OK) {
                ph_segment_close(&seg);
                mapped = have_prev = false;
            }
        }
        if (rc == PH_OK) {
            if (have_prev) dump_rates_from(&cur, &prev);
            code = emit(&cur, o, tty && !o->json);
            if (code != PHCTL_EXIT_OK) break;
            struct dump t = prev;
            prev = cur;
            cur = t;
            have_prev = true;
            last_err[0] = '\0';
        } else {
            report_unreadable(o, tty, err, last_err, sizeof last_err);
        }
        if (o->count != 0 && ++frames >= o->count) break;

        next.tv_sec += o->interval_ms / 1000;
        next.tv_nsec += (o->interval_ms % 1000) * 1000000L;
        if (next.tv_nsec >= 1000000000L) {
            next.tv_sec++;
            next.tv_nsec -= 1000000000L;
        }
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (next.tv_sec < now.tv_sec) next = now; /* fell behind (suspend, slow tty): resync */
        wait_until(&next, &waitmask);
    }
    if (mapped) ph_segment_close(&seg);
    dump_free(&cur);
    dump_free(&prev);
    return code;
}

int phctl_shm_dump(int argc, char **argv)
{
    struct dump_opts o;
    int rc = parse(argc, argv, &o);
    if (rc >= 0) return rc;
    return o.watch ? watch(&o) : dump_once(&o);
}
