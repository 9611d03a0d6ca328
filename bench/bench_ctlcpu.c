/* ph-bench-ctlcpu: CPU of the real ph-swarm-controller (and of ph-bridge)
 * with many workers reporting once a second. See usage() for the method. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_util.h"
#include "ph/channel.h"
#include "ph/log.h"
#include "ph/record.h"
#include "ph/ring.h"
#include "ph/shm.h"

enum bridge_mode { B_BOTH = 0, B_OFF = 1, B_ON = 2 };

struct opts {
    uint32_t workers;
    uint32_t slots;
    uint32_t period_ms;
    uint32_t items;
    double seconds;
    double settle;
    int bridge;
    uint32_t tick_ms;
    const char *bindir;
    bool keep;
    bool json;
};

static void usage(FILE *f)
{
    fprintf(f,
        "usage: ph-bench-ctlcpu [options]\n"
        "\n"
        "CPU of the real ph-swarm-controller with --workers workers reporting once a\n"
        "second, without and then with ph-bridge draining its documents.\n"
        "\n"
        "  1. ph-swarm-controller --swarm ID --slots S --journal-dir TMP --run-id journal\n"
        "     (its defaults otherwise: 10 ms tick, 50 ms coalescing, worker deltas on),\n"
        "     taken from the directory of this program (or --bin-dir); TMP is a fresh\n"
        "     folder /tmp/ph-bench-ctlcpu-XXXXXX.\n"
        "  2. One helper process claims --workers slots with ph_slot_claim under its own\n"
        "     pid and start time (role generator/moderator/processor/postprocessor in\n"
        "     turn, instance <role>-<n>), publishes a first STATUS record into each (as\n"
        "     ph_worker_attach does), then one STATUS record per slot every --period-ms,\n"
        "     spread evenly over the period (slot i at i/N of it), each reporting --items\n"
        "     more processed items (a steady tps per worker), enabled, ioState ok/ok.\n"
        "  3. Once the controller has drained every slot (c_records > 0) and\n"
        "     --settle-seconds passed (the join status-fulls go out meanwhile), the\n"
        "     controller's CPU is read over --seconds: utime+stime from /proc/<pid>/stat\n"
        "     (clock ticks) and the run time from /proc/<pid>/schedstat (ns); %% of one\n"
        "     core = CPU time / wall time. Wake-ups/s from voluntary context switches.\n"
        "  4. With the bridge: ph-bridge --swarm ID --sink file:TMP/env.jsonl is started,\n"
        "     --settle-seconds pass (its registration makes the controller send a\n"
        "     status-full of every worker; the bridge drains what waited in the channel),\n"
        "     then the controller's and the bridge's CPU over --seconds, and the lines the\n"
        "     sink received in the window.\n"
        "Without a bridge the controller's documents wait in the channel's 8 MiB out\n"
        "ring (status documents are dropped once it is full, which takes minutes here).\n"
        "The helper's own CPU is reported for information.\n"
        "\n"
        "options:\n"
        "  --workers N         workers (default 1000)\n"
        "  --slots N           segment slots, >= workers (default 1024)\n"
        "  --period-ms N       report period per worker (default 1000)\n"
        "  --items N           items per report (default 100: 100 tps per worker)\n"
        "  --seconds S         measurement window (default 10)\n"
        "  --settle-seconds S  wait before each window (default 2)\n"
        "  --bridge MODE       both (default): without then with the bridge; off; on\n"
        "  --tick-ms N         pass --tick-ms to the controller (default: its own, 10)\n"
        "  --bin-dir DIR       where ph-swarm-controller and ph-bridge are\n"
        "  --keep              keep TMP (sink file, journal, daemon logs)\n"
        "  --json              one JSON object instead of the table\n"
        "  --help              this text\n"
        "\n"
        "Figures only, nothing is asserted. Target (issue 3): < 2%% of a core for the\n"
        "controller with 1000 workers reporting once a second. The daemons are stopped\n"
        "with SIGTERM; /dev/shm/ph.ID, /dev/shm/ph.ID.bridge and TMP are removed at exit\n"
        "and on SIGINT/SIGTERM.\n");
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
    *o = (struct opts){.workers = 1000, .slots = 1024, .period_ms = 1000, .items = 100,
                       .seconds = 10, .settle = 2, .bridge = B_BOTH};
    static const struct option longs[] = {
        {"workers", required_argument, NULL, 'n'},  {"slots", required_argument, NULL, 'S'},
        {"period-ms", required_argument, NULL, 'p'}, {"items", required_argument, NULL, 'i'},
        {"seconds", required_argument, NULL, 's'},  {"settle-seconds", required_argument, NULL, 'w'},
        {"bridge", required_argument, NULL, 'b'},   {"tick-ms", required_argument, NULL, 't'},
        {"bin-dir", required_argument, NULL, 'B'},  {"keep", no_argument, NULL, 'k'},
        {"json", no_argument, NULL, 'j'},           {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    int ch;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        uint64_t v = 0;
        bool ok = true;
        switch (ch) {
        case 'n': ok = bu_parse_size(optarg, &v) && v <= PH_MAX_SLOTS; o->workers = (uint32_t)v; break;
        case 'S': ok = bu_parse_size(optarg, &v) && v >= 1 && v <= PH_MAX_SLOTS; o->slots = (uint32_t)v; break;
        case 'p': ok = bu_parse_size(optarg, &v) && v >= 1 && v <= 600000; o->period_ms = (uint32_t)v; break;
        case 'i': ok = bu_parse_size(optarg, &v) && v <= 1000000000; o->items = (uint32_t)v; break;
        case 's': ok = bu_parse_double(optarg, &o->seconds) && o->seconds >= 0.5 && o->seconds <= 3600; break;
        case 'w': ok = bu_parse_double(optarg, &o->settle) && o->settle <= 600; break;
        case 'b':
            if (strcmp(optarg, "both") == 0) o->bridge = B_BOTH;
            else if (strcmp(optarg, "off") == 0) o->bridge = B_OFF;
            else if (strcmp(optarg, "on") == 0) o->bridge = B_ON;
            else ok = false;
            break;
        case 't': ok = bu_parse_size(optarg, &v) && v >= 1 && v <= 10000; o->tick_ms = (uint32_t)v; break;
        case 'B': o->bindir = optarg; break;
        case 'k': o->keep = true; break;
        case 'j': o->json = true; break;
        case 'h': usage(stdout); exit(0);
        default: return bu_usage_error("unknown option '%s'", argv[optind - 1]);
        }
        if (!ok) return bu_bad_value(argv);
    }
    if (optind < argc) return bu_usage_error("unexpected argument '%s'", argv[optind]);
    if (o->workers > o->slots) {
        fprintf(stderr, "ph-bench-ctlcpu: --workers exceeds --slots\n");
        return 2;
    }
    return 0;
}

/* The private temporary folder (bu_tmpdir): logs, sinks, the journal. */
static char *g_tmp;

/* ---- the helper: N workers in one process ------------------------------------ */

struct helper_ctl {
    _Atomic int claimed; /* number claimed, -1 on error */
    _Atomic int stop;
    _Atomic uint64_t records;
    _Atomic uint64_t dropped;
    char err[256];
};

static const char *const g_roles[4] = {"generator", "moderator", "processor", "postprocessor"};

static void helper(struct helper_ctl *h, const char *id, const struct opts *o)
{
    char err[256];
    struct ph_segment seg;
    if (ph_segment_open(&seg, id, true, err, sizeof err) != PH_OK) {
        snprintf(h->err, sizeof h->err, "%s", err);
        atomic_store(&h->claimed, -1);
        _exit(1);
    }
    uint64_t start = 0;
    ph_proc_start_time(getpid(), &start);
    const uint32_t n = o->workers;
    ph_ring_producer *p = calloc(n + 1, sizeof *p);
    struct ph_rec_status *st = calloc(n + 1, sizeof *st);
    uint32_t per_role[4] = {0};
    for (uint32_t i = 0; i < n; i++) {
        const uint32_t r = i % 4;
        char inst[PH_ID_MAX];
        snprintf(inst, sizeof inst, "%s-%u", g_roles[r], ++per_role[r]);
        uint32_t idx;
        if (ph_slot_claim(&seg, g_roles[r], inst, getpid(), start, &idx, NULL, err, sizeof err) !=
            PH_OK) {
            snprintf(h->err, sizeof h->err, "claim %u: %.200s", i, err);
            atomic_store(&h->claimed, -1);
            _exit(1);
        }
        struct ph_slot *s = ph_segment_slot(&seg, idx);
        if (ph_ring_producer_init(&p[i], &s->status, ph_slot_status_data(&seg, s),
                                  seg.status_ring) != PH_OK) {
            snprintf(h->err, sizeof h->err, "claim %u: status ring positions inconsistent", i);
            atomic_store(&h->claimed, -1);
            _exit(1);
        }
        st[i] = (struct ph_rec_status){.mono_ns = ph_mono_coarse_ns(), .seq = 1,
                                       .flags = PH_STATUS_ENABLED, .io_in = PH_IN_OK,
                                       .io_out = PH_OUT_OK};
        ph_ring_write(&p[i], PH_REC_STATUS, &st[i], sizeof st[i]);
    }
    atomic_store(&h->claimed, (int)n);
    const uint64_t period = (uint64_t)o->period_ms * 1000000ull;
    uint64_t records = 0, dropped = 0;
    while (!atomic_load(&h->stop) && n > 0) {
        const uint64_t t0 = bu_now_ns();
        for (uint32_t i = 0; i < n && !atomic_load(&h->stop); i++) {
            st[i].mono_ns = ph_mono_coarse_ns();
            st[i].processed += o->items;
            st[i].seq++;
            if (ph_ring_write(&p[i], PH_REC_STATUS, &st[i], sizeof st[i]))
                records++;
            else
                dropped++;
            const uint64_t due = t0 + period * (i + 1) / n, now = bu_now_ns();
            if (due > now && due - now > 200000) bu_sleep_ns(due - now);
        }
        atomic_store_explicit(&h->records, records, memory_order_relaxed);
        atomic_store_explicit(&h->dropped, dropped, memory_order_relaxed);
    }
    _exit(0);
}

/* ---- measurement ----------------------------------------------------------------- */

struct cpu {
    bool ok;
    double pct_stat, pct_sched, wakeups_ps;
};

struct sample {
    uint64_t ticks, ns, sw;
};

static void sample_of(pid_t pid, struct sample *s)
{
    memset(s, 0, sizeof *s);
    if (pid <= 0) return;
    bu_proc_cpu_ticks(pid, &s->ticks);
    bu_proc_runtime_ns(pid, &s->ns);
    bu_proc_wakeups(pid, &s->sw);
}

static void cpu_of(const struct sample *a, const struct sample *b, double wall, struct cpu *c)
{
    const double hz = (double)sysconf(_SC_CLK_TCK);
    c->ok = true;
    c->pct_stat = 100.0 * ((double)(b->ticks - a->ticks) / hz) / wall;
    c->pct_sched = 100.0 * ((double)(b->ns - a->ns) / 1e9) / wall;
    c->wakeups_ps = (double)(b->sw - a->sw) / wall;
}

struct phase {
    bool run;
    bool bridge;
    double window_s;
    struct cpu ctl, br, helper;
    uint64_t records;   /* helper records published in the window */
    uint64_t dropped;   /* helper records dropped (ring full) in the window */
    uint64_t sink_lines; /* lines the sink got in the window */
    uint64_t docs_published; /* the bridge's count in the window */
};

static uint64_t count_lines(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    char buf[65536];
    uint64_t n = 0;
    ssize_t r;
    while ((r = read(fd, buf, sizeof buf)) > 0)
        for (ssize_t i = 0; i < r; i++) n += buf[i] == '\n';
    close(fd);
    return n;
}

static void measure(const struct opts *o, pid_t ctl, pid_t br, pid_t hp, struct helper_ctl *h,
                    struct ph_channel *ch, const char *sink, struct phase *ph)
{
    bu_sleep_ns((uint64_t)(o->settle * 1e9));
    struct sample c0, b0, h0, c1, b1, h1;
    const uint64_t r0 = atomic_load(&h->records), d0 = atomic_load(&h->dropped);
    const uint64_t l0 = sink ? count_lines(sink) : 0;
    const uint64_t p0 = ch ? atomic_load(&ch->hdr->docs_published) : 0;
    const uint64_t w0 = bu_now_ns();
    sample_of(ctl, &c0);
    sample_of(br, &b0);
    sample_of(hp, &h0);
    bu_sleep_ns((uint64_t)(o->seconds * 1e9));
    sample_of(ctl, &c1);
    sample_of(br, &b1);
    sample_of(hp, &h1);
    const uint64_t w1 = bu_now_ns();
    const double wall = (double)(w1 - w0) / 1e9;
    ph->window_s = wall;
    cpu_of(&c0, &c1, wall, &ph->ctl);
    if (br > 0) cpu_of(&b0, &b1, wall, &ph->br);
    cpu_of(&h0, &h1, wall, &ph->helper);
    ph->records = atomic_load(&h->records) - r0;
    ph->dropped = atomic_load(&h->dropped) - d0;
    ph->sink_lines = sink ? count_lines(sink) - l0 : 0;
    ph->docs_published = ch ? atomic_load(&ch->hdr->docs_published) - p0 : 0;
    ph->bridge = br > 0;
    ph->run = true;
}


static void json_cpu(struct bu_json *j, const char *key, const struct cpu *c)
{
    bu_json_obj(j, key);
    bu_json_num(j, "cpu_pct", c->ok ? c->pct_stat : NAN);
    bu_json_num(j, "cpu_pct_schedstat", c->ok ? c->pct_sched : NAN);
    bu_json_num(j, "wakeups_per_s", c->ok ? c->wakeups_ps : NAN);
    bu_json_close(j);
}

static void json_phase(struct bu_json *j, const char *key, const struct phase *p)
{
    bu_json_obj(j, key);
    bu_json_bool(j, "run", p->run);
    if (p->run) {
        bu_json_num(j, "window_s", p->window_s);
        json_cpu(j, "controller", &p->ctl);
        if (p->bridge) json_cpu(j, "bridge", &p->br);
        json_cpu(j, "helper", &p->helper);
        bu_json_num(j, "records_per_s", (double)p->records / p->window_s);
        bu_json_int(j, "records_dropped", (int64_t)p->dropped);
        if (p->bridge) {
            bu_json_num(j, "sink_lines_per_s", (double)p->sink_lines / p->window_s);
            bu_json_num(j, "docs_published_per_s", (double)p->docs_published / p->window_s);
        }
    }
    bu_json_close(j);
}

static void print_cpu(const char *who, const struct cpu *c)
{
    printf("  %-12s %7.3f %% %7.3f %% %9.0f %9.1f us\n", who, c->pct_stat, c->pct_sched,
           c->wakeups_ps, c->wakeups_ps > 0 ? c->pct_sched / 100.0 * 1e6 / c->wakeups_ps : 0);
}

static void print_phase(const char *title, const struct phase *p)
{
    printf("\n%s\n", title);
    if (!p->run) {
        printf("  not run\n");
        return;
    }
    printf("  %-12s %9s %9s %9s %12s   (window %.1f s)\n", "process", "stat", "schedstat",
           "wakeups/s", "CPU/wakeup", p->window_s);
    print_cpu("controller", &p->ctl);
    if (p->bridge) print_cpu("bridge", &p->br);
    print_cpu("helper", &p->helper);
    printf("  %.0f status records/s published by the helper, %llu dropped (ring full)\n",
           (double)p->records / p->window_s, (unsigned long long)p->dropped);
    if (p->bridge)
        printf("  %.1f documents/s published by the bridge, %.1f sink lines/s\n",
               (double)p->docs_published / p->window_s, (double)p->sink_lines / p->window_s);
}

int main(int argc, char **argv)
{
    struct opts o;
    int rc = parse_opts(argc, argv, &o);
    if (rc != 0) return rc;
    bu_cleanup_install();
    ph_log_init("ph-bench-ctlcpu", NULL);
    const double load0 = bu_loadavg1();
    const char *fail = NULL;
    static char why[600];
    struct phase without = {0}, with = {0};

    char ctl_bin[PATH_MAX], br_bin[PATH_MAX];
    const bool need_bridge = o.bridge != B_OFF;
    if (!bu_bin_path(o.bindir, "ph-swarm-controller", ctl_bin, sizeof ctl_bin) ||
        (need_bridge && !bu_bin_path(o.bindir, "ph-bridge", br_bin, sizeof br_bin))) {
        fprintf(stderr, "ph-bench-ctlcpu: ph-swarm-controller or ph-bridge not found next to "
                        "this program (build them, or pass --bin-dir)\n");
        return 1;
    }
    g_tmp = bu_tmpdir("ctlcpu", o.keep);
    if (g_tmp == NULL) {
        perror("ph-bench-ctlcpu: cannot create a folder in /tmp");
        return 1;
    }
    char id[64], slots[16], tick[16], sinkpath[128], sink[160], ctl_log[128], br_log[128];
    bu_swarm_id(id, sizeof id, "bench-cpu");
    bu_cleanup_add_swarm(id);
    snprintf(slots, sizeof slots, "%u", o.slots);
    snprintf(tick, sizeof tick, "%u", o.tick_ms);
    snprintf(sinkpath, sizeof sinkpath, "%s/env.jsonl", g_tmp);
    snprintf(sink, sizeof sink, "file:%s", sinkpath);
    snprintf(ctl_log, sizeof ctl_log, "%s/controller.log", g_tmp);
    snprintf(br_log, sizeof br_log, "%s/bridge.log", g_tmp);
    char *cargv[16];
    int ca = 0;
    cargv[ca++] = ctl_bin;
    cargv[ca++] = "--swarm";
    cargv[ca++] = id;
    cargv[ca++] = "--slots";
    cargv[ca++] = slots;
    cargv[ca++] = "--journal-dir";
    cargv[ca++] = g_tmp;
    cargv[ca++] = "--run-id";
    cargv[ca++] = "journal";
    if (o.tick_ms) {
        cargv[ca++] = "--tick-ms";
        cargv[ca++] = tick;
    }
    cargv[ca] = NULL;
    pid_t br = -1, hp = -1, ctl = bu_spawn(cargv, ctl_log);
    struct helper_ctl *h = bu_shared_alloc(sizeof *h);
    struct ph_segment seg = {.fd = -1};
    struct ph_channel ch = {.fd = -1};
    bool seg_open = false, ch_open = false;
    char err[512];
    for (int i = 0; i < 200 && !seg_open && ctl > 0; i++) {
        if (ph_segment_open(&seg, id, false, err, sizeof err) == PH_OK) {
            if (atomic_load(&seg.hdr->controller_pid) == ctl)
                seg_open = true;
            else
                ph_segment_close(&seg);
        }
        if (!seg_open) bu_sleep_ns(25 * 1000000ull);
    }
    if (!seg_open) {
        fail = "the controller did not create its segment within 5 s (see its log with --keep)";
        goto done;
    }
    ch_open = ph_channel_open(&ch, id, false, err, sizeof err) == PH_OK;
    hp = fork();
    if (hp == 0) {
        bu_child_init();
        helper(h, id, &o);
    }
    bu_cleanup_add_child(hp);
    /* Every claimed slot drained at least once. */
    const uint64_t dl = bu_now_ns() + 30000000000ull;
    uint32_t tracked = 0;
    while (bu_now_ns() < dl && atomic_load(&h->claimed) >= 0) {
        tracked = 0;
        for (uint32_t i = 0; i < seg.slots; i++)
            tracked += atomic_load_explicit(&ph_segment_slot(&seg, i)->c_records,
                                            memory_order_relaxed) > 0;
        if (atomic_load(&h->claimed) == (int)o.workers && tracked >= o.workers) break;
        bu_sleep_ns(20 * 1000000ull);
    }
    if (atomic_load(&h->claimed) < 0) {
        snprintf(why, sizeof why, "helper: %s", h->err);
        fail = why;
        goto done;
    }
    if (tracked < o.workers) {
        snprintf(why, sizeof why, "the controller drained %u of %u slots within 30 s", tracked,
                 o.workers);
        fail = why;
        goto done;
    }
    if (o.bridge != B_ON) measure(&o, ctl, -1, hp, h, NULL, NULL, &without);
    if (need_bridge) {
        char *bargv[] = {br_bin, "--swarm", id, "--sink", sink, NULL};
        br = bu_spawn(bargv, br_log);
        measure(&o, ctl, br, hp, h, ch_open ? &ch : NULL, sinkpath, &with);
    }

done:;
    bool br_clean = true, ctl_clean = true;
    if (hp > 0) {
        atomic_store(&h->stop, 1);
        bu_stop_child(hp, 5);
    }
    br_clean = bu_stop_child(br, 5);
    ctl_clean = bu_stop_child(ctl, 5);
    if (ch_open) ph_channel_close(&ch);
    if (seg_open) ph_segment_close(&seg);
    bu_cleanup_del_swarm(id);
    const double load1 = bu_loadavg1();

    if (o.json) {
        struct bu_json j;
        bu_json_begin(&j, stdout);
        bu_json_str(&j, "benchmark", "ph-bench-ctlcpu");
        bu_json_str(&j, "error", fail);
        bu_json_num(&j, "controller_cpu_pct", without.run ? without.ctl.pct_stat : NAN);
        bu_json_num(&j, "controller_cpu_pct_with_bridge", with.run ? with.ctl.pct_stat : NAN);
        bu_json_num(&j, "bridge_cpu_pct", with.run ? with.br.pct_stat : NAN);
        json_phase(&j, "without_bridge", &without);
        json_phase(&j, "with_bridge", &with);
        bu_json_bool(&j, "bridge_stopped_cleanly", br_clean);
        bu_json_bool(&j, "controller_stopped_cleanly", ctl_clean);
        bu_json_obj(&j, "params");
        bu_json_int(&j, "workers", o.workers);
        bu_json_int(&j, "slots", o.slots);
        bu_json_int(&j, "period_ms", o.period_ms);
        bu_json_int(&j, "items_per_report", o.items);
        bu_json_num(&j, "seconds", o.seconds);
        bu_json_num(&j, "settle_seconds", o.settle);
        bu_json_int(&j, "controller_tick_ms", o.tick_ms ? o.tick_ms : 10);
        bu_json_num(&j, "loadavg1_at_start", load0);
        bu_json_num(&j, "loadavg1_at_end", load1);
        bu_json_bool(&j, "machine_busy", load0 > 1.5 || load1 > 1.5);
        bu_json_close(&j);
        bu_json_end(&j);
        return 0;
    }
    printf("ph-bench-ctlcpu: %s --slots %u, %u workers reporting every %u ms (%u items each)\n",
           ctl_bin, o.slots, o.workers, o.period_ms, o.items);
    printf("  load average %.2f at start, %.2f at end\n", load0, load1);
    if (load0 > 1.5 || load1 > 1.5)
        printf("WARNING: the machine is busy: these figures are not representative\n");
    if (fail != NULL) printf("  failed: %s\n", fail);
    if (o.bridge != B_ON) print_phase("without the bridge", &without);
    if (need_bridge) print_phase("with ph-bridge (file sink)", &with);
    printf("\n(%% of one core: stat = utime+stime in clock ticks, schedstat = run time in ns.\n"
           " Target: controller < 2%% with 1000 workers reporting once a second)\n");
    if (o.keep) printf("  kept %s\n", g_tmp);
    return 0;
}
