/* ph-bench-latency: from a worker's state change to the controller's
 * status-delta line written by the bridge's file sink, through the real
 * ph-swarm-controller and ph-bridge. See usage() for the method. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "bench_util.h"
#include "ph/log.h"
#include "ph/shm.h"
#include "ph/worker.h"

enum change_mode { M_IO = 0, M_ENABLED = 1 };

struct opts {
    uint32_t changes;
    uint32_t spacing_ms;
    uint32_t jitter_us;
    uint32_t timeout_ms;
    int mode;
    uint32_t coalesce_ms; /* UINT32_MAX: the controller's default */
    uint32_t tick_ms;     /* 0: the controller's default */
    uint32_t bridge_tick_ms;
    const char *bindir;
    bool keep;
    bool json;
};

static void usage(FILE *f)
{
    fprintf(f,
        "usage: ph-bench-latency [options]\n"
        "\n"
        "End-to-end latency from a worker's state change to the swarm controller's\n"
        "status-delta line in the bridge's file sink, with the real daemons:\n"
        "  ph-swarm-controller --swarm ID --journal-dir TMP   (default tick, coalescing)\n"
        "  ph-bridge --swarm ID --sink file:TMP/env.jsonl --signals TMP/sig.jsonl\n"
        "taken from the directory of this program (or --bin-dir), TMP a fresh folder\n"
        "/tmp/ph-bench-latency-XXXXXX. A worker attaches in this process with the SDK\n"
        "(ph_worker_attach, default 1 s heartbeat, ph_worker_tick while waiting).\n"
        "\n"
        "Each change (--changes of them, after one warm-up change):\n"
        "  io mode (default): the worker's input ioState alternates ok / backpressure\n"
        "    (ph_worker_set_io_state, output ok); the awaited line is a controller-scope\n"
        "    status-delta (scope.role swarm-controller) whose data.ioState.work.input\n"
        "    is the new value (one worker: the swarm's input is the worker's).\n"
        "  enabled mode (--mode enabled): ph_worker_set_enabled toggles; the awaited\n"
        "    delta is the one whose data.context.totals.enabled is 1 / 0. (The delta's\n"
        "    own data.enabled is the swarm's workloads flag, not the worker's.)\n"
        "  then ph_worker_publish_status(), and t0 = CLOCK_REALTIME right after it. The\n"
        "  sink file is read incrementally, woken by inotify (IN_MODIFY), every complete\n"
        "  line parsed with jansson until the awaited delta appears (or --timeout-ms).\n"
        "\n"
        "Two latencies per change:\n"
        "  read   CLOCK_REALTIME when the read() that returned the line completed, - t0:\n"
        "         the whole path, including the sink's write and this reader's wake-up.\n"
        "  stamp  the envelope's timestamp - t0: the bridge stamps a document when it\n"
        "         converts it, before the sink writes the line; the stamp has millisecond\n"
        "         resolution (truncated), so this figure reads 0-1 ms low and can be\n"
        "         negative for very short paths.\n"
        "Report: p50, p90, p99, max (nearest rank) of each, in ms.\n"
        "\n"
        "Spacing: the next change is made --spacing-ms plus a random 0..--jitter-ms after\n"
        "the previous awaited line was read. The jitter puts changes at random phases of\n"
        "the controller's tick (without it the spacing locks onto the tick, and every\n"
        "change waits nearly the same part of it). A delta is emitted at most once per coalescing period (20 ms by\n"
        "default) after the previous one; the previous delta was written before it was\n"
        "read, so with spacing >= the period (default 60 ms) no change waits for the\n"
        "coalescing timer and none are merged: the figures are the pipeline's own\n"
        "(controller tick + bridge tick + conversion + write). A spacing below the\n"
        "period adds the coalescing wait on purpose; a spacing above 1000 ms lets the\n"
        "controller stretch its idle tick (50 ms after 1 s without records).\n"
        "\n"
        "options:\n"
        "  --changes N         measured changes (default 1000)\n"
        "  --spacing-ms N      quiet time before each change, see above (default 60)\n"
        "  --jitter-ms X       plus uniform random 0..X ms (default 10, one controller tick)\n"
        "  --timeout-ms N      give up on one change after N ms (default 2000)\n"
        "  --mode io|enabled   what changes (default io)\n"
        "  --coalesce-ms N     pass --coalesce-ms to the controller (default: its own, 20)\n"
        "  --tick-ms N         pass --tick-ms to the controller (default: its own, 10)\n"
        "  --bridge-tick-ms N  pass --tick-ms to the bridge (default: its own, 5)\n"
        "  --bin-dir DIR       where ph-swarm-controller and ph-bridge are\n"
        "  --keep              keep TMP (sink file, signal file, journal, daemon logs)\n"
        "  --json              one JSON object instead of the table\n"
        "  --help              this text\n"
        "\n"
        "Figures only, nothing is asserted. Target (issue 3): p99 <= 25 ms with the\n"
        "default coalescing. The daemons are stopped with SIGTERM; /dev/shm/ph.ID and\n"
        "/dev/shm/ph.ID.bridge and TMP are removed at exit and on SIGINT/SIGTERM.\n");
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
    *o = (struct opts){.changes = 1000, .spacing_ms = 60, .jitter_us = 10000, .timeout_ms = 2000, .mode = M_IO,
                       .coalesce_ms = UINT32_MAX};
    static const struct option longs[] = {
        {"changes", required_argument, NULL, 'n'},   {"spacing-ms", required_argument, NULL, 's'},
        {"jitter-ms", required_argument, NULL, 'J'}, {"timeout-ms", required_argument, NULL, 'T'}, {"mode", required_argument, NULL, 'm'},
        {"coalesce-ms", required_argument, NULL, 'C'}, {"tick-ms", required_argument, NULL, 't'},
        {"bridge-tick-ms", required_argument, NULL, 'b'}, {"bin-dir", required_argument, NULL, 'B'},
        {"keep", no_argument, NULL, 'k'},            {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},            {NULL, 0, NULL, 0}};
    int ch;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        uint64_t v = 0;
        bool ok = true;
        switch (ch) {
        case 'n': ok = bu_parse_size(optarg, &v) && v >= 1 && v <= 1000000; o->changes = (uint32_t)v; break;
        case 's': ok = bu_parse_size(optarg, &v) && v <= 600000; o->spacing_ms = (uint32_t)v; break;
        case 'J': {
            double d = 0;
            ok = bu_parse_double(optarg, &d) && d <= 10000;
            o->jitter_us = (uint32_t)(d * 1000);
            break;
        }
        case 'T': ok = bu_parse_size(optarg, &v) && v >= 10 && v <= 600000; o->timeout_ms = (uint32_t)v; break;
        case 'm':
            if (strcmp(optarg, "io") == 0) o->mode = M_IO;
            else if (strcmp(optarg, "enabled") == 0) o->mode = M_ENABLED;
            else ok = false;
            break;
        case 'C': ok = bu_parse_size(optarg, &v) && v <= 60000; o->coalesce_ms = (uint32_t)v; break;
        case 't': ok = bu_parse_size(optarg, &v) && v >= 1 && v <= 10000; o->tick_ms = (uint32_t)v; break;
        case 'b': ok = bu_parse_size(optarg, &v) && v >= 1 && v <= 1000; o->bridge_tick_ms = (uint32_t)v; break;
        case 'B': o->bindir = optarg; break;
        case 'k': o->keep = true; break;
        case 'j': o->json = true; break;
        case 'h': usage(stdout); exit(0);
        default: return bu_usage_error("unknown option '%s'", argv[optind - 1]);
        }
        if (!ok) return bu_bad_value(argv);
    }
    if (optind < argc) return bu_usage_error("unexpected argument '%s'", argv[optind]);
    return 0;
}

/* The private temporary folder (bu_tmpdir): logs, sinks, the journal. */
static char *g_tmp;

/* ---- the sink file, read incrementally ------------------------------------- */

struct reader {
    int fd;
    int ino_fd;
    char *buf;
    size_t len, cap;
    uint64_t lines;
    uint64_t bytes;
};

static bool reader_open(struct reader *r, const char *path)
{
    memset(r, 0, sizeof *r);
    r->fd = open(path, O_RDONLY | O_CLOEXEC);
    r->ino_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (r->fd < 0 || r->ino_fd < 0 || inotify_add_watch(r->ino_fd, path, IN_MODIFY) < 0)
        return false;
    r->cap = 1 << 16;
    r->buf = malloc(r->cap);
    return r->buf != NULL;
}

static void reader_close(struct reader *r)
{
    if (r->fd >= 0) close(r->fd);
    if (r->ino_fd >= 0) close(r->ino_fd);
    free(r->buf);
}

/* A line handler: returns true when it was the awaited one. */
typedef bool (*line_fn)(void *ctx, const char *line, size_t len, uint64_t read_real_ns);

/* Reads what is new; calls fn for each complete line. True when fn matched. */
static bool reader_pump(struct reader *r, line_fn fn, void *ctx)
{
    bool hit = false;
    for (;;) {
        if (r->cap - r->len < 65536) {
            size_t cap = r->cap * 2;
            char *b = realloc(r->buf, cap);
            if (b == NULL) return hit;
            r->buf = b;
            r->cap = cap;
        }
        ssize_t n = read(r->fd, r->buf + r->len, r->cap - r->len);
        const uint64_t t = ph_real_ns();
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return hit;
        r->bytes += (uint64_t)n;
        size_t start = 0;
        const size_t scan_from = r->len;
        r->len += (size_t)n;
        for (size_t i = scan_from; i < r->len; i++) {
            if (r->buf[i] != '\n') continue;
            r->lines++;
            if (!hit && fn(ctx, r->buf + start, i - start, t)) hit = true;
            start = i + 1;
        }
        memmove(r->buf, r->buf + start, r->len - start);
        r->len -= start;
    }
}

/* Waits for a change of the file (or the timeout); drains inotify events. */
static void reader_wait(struct reader *r, int timeout_ms)
{
    struct pollfd p = {.fd = r->ino_fd, .events = POLLIN};
    if (poll(&p, 1, timeout_ms) > 0) {
        char ev[4096];
        while (read(r->ino_fd, ev, sizeof ev) > 0) {
        }
    }
}

/* ---- matching ---------------------------------------------------------------- */

static const char *jpath_str(const json_t *v, const char *const *path, int n)
{
    for (int i = 0; i < n && v != NULL; i++) v = json_object_get(v, path[i]);
    return json_string_value(v);
}

/* "2026-11-27T03:44:14.487Z" -> ns; 0 when it does not parse. */
static uint64_t parse_ts(const char *s)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    unsigned ms = 0;
    if (s == NULL || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d.%3uZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                            &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms) != 7)
        return 0;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    const time_t t = timegm(&tm);
    return (uint64_t)t * 1000000000ull + (uint64_t)ms * 1000000ull;
}

struct await {
    int mode;
    int want_in;         /* M_IO: enum ph_io_in */
    int want_enabled;    /* M_ENABLED: 0 or 1 */
    uint64_t ts_ns;      /* envelope timestamp of the match */
    uint64_t read_ns;    /* when its read completed */
    uint64_t deltas;     /* controller deltas seen (any) */
    uint64_t fulls;      /* controller fulls seen */
    uint64_t other;      /* other lines */
    uint64_t bad;        /* lines that did not parse */
};

static bool on_line(void *ctx, const char *line, size_t len, uint64_t read_ns)
{
    struct await *a = ctx;
    /* Cheap filter first: only controller status lines are parsed. */
    if (memmem(line, len, "\"routingKey\":\"event.metric.status-", 34) == NULL ||
        memmem(line, len, ".swarm-controller.", 18) == NULL) {
        a->other++;
        return false;
    }
    json_error_t je;
    json_t *l = json_loadb(line, len, 0, &je);
    if (l == NULL) {
        a->bad++;
        return false;
    }
    bool hit = false;
    const json_t *env = json_object_get(l, "envelope");
    const char *type = json_string_value(json_object_get(env, "type"));
    if (type != NULL && strcmp(type, "status-full") == 0) {
        a->fulls++;
    } else if (type != NULL && strcmp(type, "status-delta") == 0) {
        a->deltas++;
        const json_t *data = json_object_get(env, "data");
        if (a->mode == M_IO) {
            static const char *const p[] = {"ioState", "work", "input"};
            const char *in = jpath_str(data, p, 3);
            hit = in != NULL && a->want_in >= 0 && strcmp(in, ph_io_in_name(a->want_in)) == 0;
        } else {
            const json_t *e =
                json_object_get(json_object_get(json_object_get(data, "context"), "totals"),
                                "enabled");
            hit = json_is_integer(e) && a->want_enabled >= 0 &&
                  json_integer_value(e) == a->want_enabled;
        }
        if (hit) {
            a->ts_ns = parse_ts(json_string_value(json_object_get(env, "timestamp")));
            a->read_ns = read_ns;
        }
    } else {
        a->other++;
    }
    json_decref(l);
    return hit;
}

static void worker_service(ph_worker *w)
{
    ph_worker_tick(w);
    struct ph_command cmd;
    while (ph_worker_poll_command(w, &cmd) > 0)
        if (cmd.type != PH_COMMAND_STATUS_REQUEST) ph_worker_ack(w, cmd.token, true, "bench");
}

/* Waits for the awaited line; false on timeout. */
static bool await_line(struct reader *r, struct await *a, ph_worker *w, uint64_t deadline_mono)
{
    for (;;) {
        if (reader_pump(r, on_line, a)) return true;
        const uint64_t now = bu_now_ns();
        if (now >= deadline_mono) return false;
        uint64_t left_ms = (deadline_mono - now) / 1000000ull + 1;
        reader_wait(r, (int)(left_ms < 100 ? left_ms : 100));
        if (w != NULL) worker_service(w);
    }
}

/* ---- main ----------------------------------------------------------------- */

struct pct {
    double p50, p90, p99, max, mean;
};

static void pct_of(const double *src, size_t n, struct pct *p)
{
    double *v = malloc(sizeof *v * (n ? n : 1));
    memcpy(v, src, sizeof *v * n);
    double sum = 0;
    for (size_t i = 0; i < n; i++) sum += v[i];
    p->p50 = bu_percentile(v, n, 50);
    p->p90 = bu_percentile(v, n, 90);
    p->p99 = bu_percentile(v, n, 99);
    p->max = n ? v[n - 1] : NAN;
    p->mean = n ? sum / (double)n : NAN;
    free(v);
}


int main(int argc, char **argv)
{
    struct opts o;
    int rc = parse_opts(argc, argv, &o);
    if (rc != 0) return rc;
    bu_cleanup_install();
    ph_log_init("ph-bench-latency", NULL);
    const double load0 = bu_loadavg1();

    char ctl_bin[PATH_MAX], br_bin[PATH_MAX];
    if (!bu_bin_path(o.bindir, "ph-swarm-controller", ctl_bin, sizeof ctl_bin) ||
        !bu_bin_path(o.bindir, "ph-bridge", br_bin, sizeof br_bin)) {
        fprintf(stderr, "ph-bench-latency: ph-swarm-controller or ph-bridge not found next to "
                        "this program (build them, or pass --bin-dir)\n");
        return 1;
    }
    g_tmp = bu_tmpdir("latency", o.keep);
    if (g_tmp == NULL) {
        perror("ph-bench-latency: cannot create a folder in /tmp");
        return 1;
    }
    char id[64], sink[PATH_MAX + 16], sinkpath[PATH_MAX], sigpath[PATH_MAX], ctl_log[PATH_MAX],
        br_log[PATH_MAX];
    bu_swarm_id(id, sizeof id, "bench-lat");
    snprintf(sinkpath, sizeof sinkpath, "%s/env.jsonl", g_tmp);
    snprintf(sink, sizeof sink, "file:%s", sinkpath);
    snprintf(sigpath, sizeof sigpath, "%s/sig.jsonl", g_tmp);
    snprintf(ctl_log, sizeof ctl_log, "%s/controller.log", g_tmp);
    snprintf(br_log, sizeof br_log, "%s/bridge.log", g_tmp);
    for (int i = 0; i < 2; i++) {
        int fd = open(i ? sigpath : sinkpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd >= 0) close(fd);
    }
    bu_cleanup_add_swarm(id);

    /* The controller. */
    char coalesce[16], tick[16], btick[16];
    snprintf(coalesce, sizeof coalesce, "%u", o.coalesce_ms);
    snprintf(tick, sizeof tick, "%u", o.tick_ms);
    snprintf(btick, sizeof btick, "%u", o.bridge_tick_ms);
    char *cargv[16];
    int ca = 0;
    cargv[ca++] = ctl_bin;
    cargv[ca++] = "--swarm";
    cargv[ca++] = id;
    cargv[ca++] = "--journal-dir";
    cargv[ca++] = g_tmp;
    cargv[ca++] = "--run-id";
    cargv[ca++] = "journal";
    if (o.coalesce_ms != UINT32_MAX) {
        cargv[ca++] = "--coalesce-ms";
        cargv[ca++] = coalesce;
    }
    if (o.tick_ms) {
        cargv[ca++] = "--tick-ms";
        cargv[ca++] = tick;
    }
    cargv[ca] = NULL;
    const char *fail = NULL;
    pid_t br = -1, ctl = bu_spawn(cargv, ctl_log);
    ph_worker *w = NULL;
    struct reader rd = {.fd = -1, .ino_fd = -1};
    double *lat_read = calloc(o.changes, sizeof *lat_read);
    double *lat_stamp = calloc(o.changes, sizeof *lat_stamp);
    uint32_t got = 0, timeouts = 0;
    struct await aw = {.mode = o.mode, .want_in = -1, .want_enabled = -1};
    double run_s = 0;

    /* Wait for the segment with this controller's pid in it. */
    bool up = false;
    for (int i = 0; i < 200 && !up && ctl > 0; i++) {
        struct ph_segment seg;
        char err[512];
        if (ph_segment_open(&seg, id, false, err, sizeof err) == PH_OK) {
            up = atomic_load(&seg.hdr->controller_pid) == ctl;
            ph_segment_close(&seg);
        }
        if (!up) bu_sleep_ns(25 * 1000000ull);
    }
    if (!up) {
        fail = "the controller did not create its segment within 5 s (see its log with --keep)";
        goto done;
    }
    char *bargv[12];
    int ba = 0;
    bargv[ba++] = br_bin;
    bargv[ba++] = "--swarm";
    bargv[ba++] = id;
    bargv[ba++] = "--sink";
    bargv[ba++] = sink;
    bargv[ba++] = "--signals";
    bargv[ba++] = sigpath;
    if (o.bridge_tick_ms) {
        bargv[ba++] = "--tick-ms";
        bargv[ba++] = btick;
    }
    bargv[ba] = NULL;
    br = bu_spawn(bargv, br_log);
    if (!reader_open(&rd, sinkpath)) {
        fail = "cannot read the sink file (inotify?)";
        goto done;
    }
    /* The bridge's registration makes the controller send a status-full. */
    const uint64_t dl = bu_now_ns() + 10000000000ull;
    while (aw.fulls == 0 && bu_now_ns() < dl) {
        reader_pump(&rd, on_line, &aw);
        if (aw.fulls == 0) reader_wait(&rd, 100);
    }
    if (aw.fulls == 0) {
        fail = "no controller status-full in the sink within 10 s (bridge not attached?)";
        goto done;
    }
    char err[512];
    w = ph_worker_attach(&(struct ph_worker_opts){.swarm_id = id, .role = "bench",
                                                  .instance = "bench-1"},
                         err, sizeof err);
    if (w == NULL) {
        static char why[600];
        snprintf(why, sizeof why, "ph_worker_attach: %s", err);
        fail = why;
        goto done;
    }
    ph_worker_set_enabled(w, false);
    int state = 0; /* io: 0 = ok, 1 = backpressure; enabled: 0/1 */
    uint64_t last_read_mono = bu_now_ns();
    uint64_t rng = last_read_mono ^ ((uint64_t)getpid() << 32) ^ 0x9e3779b97f4a7c15ull; /* xorshift64 */
    const uint64_t run0 = bu_now_ns();
    for (uint32_t i = 0; i <= o.changes; i++) { /* i == 0: warm-up, not counted */
        /* Quiet time, serving the worker (heartbeat, commands) meanwhile. */
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        const uint64_t jitter = o.jitter_us ? (rng % ((uint64_t)o.jitter_us * 1000u)) : 0;
        const uint64_t due = last_read_mono + (uint64_t)o.spacing_ms * 1000000ull + jitter;
        while (bu_now_ns() < due) {
            reader_pump(&rd, on_line, &aw);
            worker_service(w);
            const uint64_t left = due - bu_now_ns();
            if ((int64_t)left > 0) bu_sleep_ns(left < 5000000ull ? left : 5000000ull);
        }
        reader_pump(&rd, on_line, &aw); /* nothing stale left for the match */
        state ^= 1;
        if (o.mode == M_IO) {
            ph_worker_set_io_state(w, state ? PH_IN_BACKPRESSURE : PH_IN_OK, PH_OUT_OK);
            aw.want_in = state ? PH_IN_BACKPRESSURE : PH_IN_OK;
        } else {
            ph_worker_set_io_state(w, PH_IN_OK, PH_OUT_OK);
            ph_worker_set_enabled(w, state != 0);
            aw.want_enabled = state;
        }
        ph_worker_publish_status(w);
        const uint64_t t0 = ph_real_ns();
        const bool ok = await_line(&rd, &aw, w, bu_now_ns() + (uint64_t)o.timeout_ms * 1000000ull);
        last_read_mono = bu_now_ns();
        if (i == 0) continue;
        if (!ok) {
            timeouts++;
            continue;
        }
        lat_read[got] = ((double)aw.read_ns - (double)t0) / 1e6;
        lat_stamp[got] = aw.ts_ns ? ((double)aw.ts_ns - (double)t0) / 1e6 : NAN;
        got++;
    }
    run_s = (double)(bu_now_ns() - run0) / 1e9;

done:
    ph_worker_detach(w);
    const bool br_clean = bu_stop_child(br, 5);
    const bool ctl_clean = bu_stop_child(ctl, 5);
    bu_cleanup_del_swarm(id);
    reader_close(&rd);
    const double load1 = bu_loadavg1();

    struct pct pr = {NAN, NAN, NAN, NAN, NAN}, ps = pr;
    if (got > 0) {
        pct_of(lat_read, got, &pr);
        pct_of(lat_stamp, got, &ps);
    }
    const char *mode = o.mode == M_IO ? "io" : "enabled";
    if (o.json) {
        struct bu_json j;
        bu_json_begin(&j, stdout);
        bu_json_str(&j, "benchmark", "ph-bench-latency");
        bu_json_str(&j, "error", fail);
        bu_json_num(&j, "p50_ms", pr.p50);
        bu_json_num(&j, "p99_ms", pr.p99);
        bu_json_obj(&j, "read");
        bu_json_num(&j, "p50_ms", pr.p50);
        bu_json_num(&j, "p90_ms", pr.p90);
        bu_json_num(&j, "p99_ms", pr.p99);
        bu_json_num(&j, "max_ms", pr.max);
        bu_json_num(&j, "mean_ms", pr.mean);
        bu_json_close(&j);
        bu_json_obj(&j, "stamp");
        bu_json_num(&j, "p50_ms", ps.p50);
        bu_json_num(&j, "p90_ms", ps.p90);
        bu_json_num(&j, "p99_ms", ps.p99);
        bu_json_num(&j, "max_ms", ps.max);
        bu_json_num(&j, "mean_ms", ps.mean);
        bu_json_close(&j);
        bu_json_int(&j, "changes", o.changes);
        bu_json_int(&j, "matched", got);
        bu_json_int(&j, "timeouts", timeouts);
        bu_json_int(&j, "controller_deltas_seen", (int64_t)aw.deltas);
        bu_json_int(&j, "controller_fulls_seen", (int64_t)aw.fulls);
        bu_json_int(&j, "other_lines", (int64_t)aw.other);
        bu_json_num(&j, "run_s", run_s);
        bu_json_bool(&j, "bridge_stopped_cleanly", br_clean);
        bu_json_bool(&j, "controller_stopped_cleanly", ctl_clean);
        bu_json_obj(&j, "params");
        bu_json_str(&j, "mode", mode);
        bu_json_int(&j, "spacing_ms", o.spacing_ms);
        bu_json_num(&j, "jitter_ms", o.jitter_us / 1000.0);
        bu_json_int(&j, "timeout_ms", o.timeout_ms);
        bu_json_num(&j, "coalesce_ms", o.coalesce_ms == UINT32_MAX ? 20 : o.coalesce_ms);
        bu_json_int(&j, "controller_tick_ms", o.tick_ms ? o.tick_ms : 10);
        bu_json_int(&j, "bridge_tick_ms", o.bridge_tick_ms ? o.bridge_tick_ms : 5);
        bu_json_num(&j, "loadavg1_at_start", load0);
        bu_json_num(&j, "loadavg1_at_end", load1);
        bu_json_bool(&j, "machine_busy", load0 > 1.5 || load1 > 1.5);
        bu_json_close(&j);
        bu_json_end(&j);
    } else {
        printf("ph-bench-latency: worker state change -> controller status-delta line in the "
               "bridge's file sink\n");
        printf("  %s (tick %u ms, coalescing %u ms), %s (tick %u ms); load average %.2f at "
               "start, %.2f at end\n",
               ctl_bin, o.tick_ms ? o.tick_ms : 10,
               o.coalesce_ms == UINT32_MAX ? 20 : o.coalesce_ms, br_bin,
               o.bridge_tick_ms ? o.bridge_tick_ms : 5, load0, load1);
        if (load0 > 1.5 || load1 > 1.5)
            printf("WARNING: the machine is busy: these figures are not representative\n");
        if (fail != NULL) printf("  failed: %s\n", fail);
        printf("  %u changes (%s mode, %u ms + 0..%.1f ms quiet before each), %u matched, %u "
               "timed out (> %u ms), %.1f s\n",
               o.changes, mode, o.spacing_ms, o.jitter_us / 1000.0, got, timeouts, o.timeout_ms, run_s);
        printf("  %-34s %8s %8s %8s %8s %8s\n", "latency (ms)", "p50", "p90", "p99", "max",
               "mean");
        printf("  %-34s %8.2f %8.2f %8.2f %8.2f %8.2f\n", "read: line read - change", pr.p50,
               pr.p90, pr.p99, pr.max, pr.mean);
        printf("  %-34s %8.2f %8.2f %8.2f %8.2f %8.2f\n", "stamp: envelope timestamp - change",
               ps.p50, ps.p90, ps.p99, ps.max, ps.mean);
        printf("  (target p99 <= 25 ms with the default coalescing. stamp: ms resolution, reads\n"
               "   0-1 ms low. controller deltas seen %llu, fulls %llu, other lines %llu)\n",
               (unsigned long long)aw.deltas, (unsigned long long)aw.fulls,
               (unsigned long long)aw.other);
        if (o.keep) printf("  kept %s\n", g_tmp);
    }
    free(lat_read);
    free(lat_stamp);
    return 0; /* figures only: a failed set-up is reported, not an exit status */
}
