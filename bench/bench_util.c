/* Benchmark helpers; see bench_util.h. */
#include "bench_util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

uint64_t bu_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

double bu_loadavg1(void)
{
    double l = NAN;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f != NULL) {
        if (fscanf(f, "%lf", &l) != 1) l = NAN;
        fclose(f);
    }
    return l;
}

void bu_sleep_ns(uint64_t ns)
{
    struct timespec ts = {(time_t)(ns / 1000000000ull), (long)(ns % 1000000000ull)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

double bu_tsc_per_ns(void)
{
    static double cached;
    if (cached > 0) return cached;
#if BU_HAVE_TSC
    /* Two 25 ms windows, TSC and CLOCK_MONOTONIC read back to back at both
     * ends; the two ratios agree to well under 0.1% unless preempted between
     * the paired reads, which only lowers a ratio's accuracy marginally. */
    double best = 0;
    for (int i = 0; i < 2; i++) {
        uint64_t n0 = bu_now_ns(), t0 = bu_tsc_begin();
        bu_sleep_ns(25 * 1000000ull);
        uint64_t n1 = bu_now_ns(), t1 = bu_tsc_end();
        double r = (double)(t1 - t0) / (double)(n1 - n0);
        if (r > best) best = r;
    }
    cached = best;
#else
    cached = 1.0;
#endif
    return cached;
}

int bu_cpus(int *cpus, int max)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) != 0) return 0;
    int n = 0;
    for (int c = 0; c < CPU_SETSIZE && n < max; c++)
        if (CPU_ISSET(c, &set)) cpus[n++] = c;
    return n;
}

bool bu_pin(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return sched_setaffinity(0, sizeof set, &set) == 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y ? 1 : 0;
}

double bu_percentile(double *v, size_t n, double p)
{
    if (n == 0) return NAN;
    qsort(v, n, sizeof *v, cmp_double);
    /* nearest rank: the smallest value with at least p% of values <= it */
    double rank = ceil(p / 100.0 * (double)n);
    size_t i = rank < 1 ? 0 : (size_t)rank - 1;
    if (i >= n) i = n - 1;
    return v[i];
}

double bu_median(double *v, size_t n)
{
    if (n == 0) return NAN;
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2.0;
}

void bu_swarm_id(char *buf, size_t n, const char *prefix)
{
    static unsigned counter;
    snprintf(buf, n, "%s-%ld-%u", prefix, (long)getpid(), counter++);
}

/* ---- clean-up registry ---------------------------------------------------- */

#define MAX_SWARMS 32
#define MAX_CHILDREN 64
static char g_swarms[MAX_SWARMS][80]; /* "/ph.<id>", "" when unused */
static volatile pid_t g_children[MAX_CHILDREN];
static pid_t g_owner; /* only the process that installed the registry cleans up */
static char g_tmpdir[64]; /* bu_tmpdir's folder, "" when none or kept */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (flag == FTW_DP) rmdir(path);
    else unlink(path);
    return 0;
}

static void cleanup_now(void)
{
    if (getpid() != g_owner) return;
    for (int i = 0; i < MAX_CHILDREN; i++)
        if (g_children[i] > 0) kill(g_children[i], SIGKILL);
    /* Reap them, so nothing of ours outlives the program. */
    for (int i = 0; i < MAX_CHILDREN; i++)
        if (g_children[i] > 0) waitpid(g_children[i], NULL, 0);
    for (int i = 0; i < MAX_SWARMS; i++)
        if (g_swarms[i][0] != '\0') shm_unlink(g_swarms[i]);
    /* Last: the children that wrote into it are gone. (nftw is not
     * async-signal-safe; after an interrupt this is best effort.) */
    if (g_tmpdir[0] != '\0') nftw(g_tmpdir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

static void on_signal(int sig)
{
    cleanup_now();
    static const char msg[] = "\nbench: interrupted; segments removed, children killed\n";
    ssize_t r = write(2, msg, sizeof msg - 1);
    (void)r;
    _exit(128 + sig);
}

static void on_exit_cleanup(void)
{
    cleanup_now();
}

void bu_cleanup_install(void)
{
    g_owner = getpid();
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    atexit(on_exit_cleanup);
}

/* A swarm's objects: the segment and the controller-bridge channel that
 * ph-swarm-controller creates next to it ("/ph.<id>.bridge"). */
static void cleanup_add_name(const char *name)
{
    for (int i = 0; i < MAX_SWARMS; i++) {
        if (g_swarms[i][0] == '\0') {
            snprintf(g_swarms[i], sizeof g_swarms[i], "%s", name);
            return;
        }
    }
}

void bu_cleanup_add_swarm(const char *swarm_id)
{
    char name[80];
    snprintf(name, sizeof name, "/ph.%s", swarm_id);
    cleanup_add_name(name);
    snprintf(name, sizeof name, "/ph.%s.bridge", swarm_id);
    cleanup_add_name(name);
}

void bu_cleanup_del_swarm(const char *swarm_id)
{
    char names[2][80];
    snprintf(names[0], sizeof names[0], "/ph.%s", swarm_id);
    snprintf(names[1], sizeof names[1], "/ph.%s.bridge", swarm_id);
    for (int k = 0; k < 2; k++) {
        shm_unlink(names[k]);
        for (int i = 0; i < MAX_SWARMS; i++)
            if (strcmp(g_swarms[i], names[k]) == 0) g_swarms[i][0] = '\0';
    }
}

char *bu_tmpdir(const char *name, bool keep)
{
    static char path[sizeof g_tmpdir];
    int n = snprintf(path, sizeof path, "/tmp/ph-bench-%s-XXXXXX", name);
    if (n < 0 || (size_t)n >= sizeof path) {
        errno = ENAMETOOLONG;
        return NULL;
    }
    if (mkdtemp(path) == NULL) return NULL;
    if (!keep) snprintf(g_tmpdir, sizeof g_tmpdir, "%s", path);
    return path;
}

int bu_usage_error(const char *fmt, ...)
{
    fprintf(stderr, "%s: ", program_invocation_short_name);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs(" (see --help)\n", stderr);
    return 2;
}

int bu_bad_value(char *const argv[])
{
    const char *opt = optind >= 1 ? argv[optind - 1] : "?";
    if (opt == optarg && optind >= 2) opt = argv[optind - 2]; /* "--opt value" */
    const char *eq = strchr(opt, '=');
    const int n = eq != NULL ? (int)(eq - opt) : (int)strlen(opt);
    return bu_usage_error("invalid value '%s' for %.*s", optarg != NULL ? optarg : "", n, opt);
}

void bu_cleanup_add_child(pid_t pid)
{
    for (int i = 0; i < MAX_CHILDREN; i++) {
        if (g_children[i] <= 0) {
            g_children[i] = pid;
            return;
        }
    }
}

void bu_cleanup_del_child(pid_t pid)
{
    for (int i = 0; i < MAX_CHILDREN; i++)
        if (g_children[i] == pid) g_children[i] = 0;
}

void bu_child_init(void)
{
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
}

bool bu_wait_child(pid_t pid)
{
    int st = 0;
    pid_t r;
    while ((r = waitpid(pid, &st, 0)) < 0 && errno == EINTR) {
    }
    bu_cleanup_del_child(pid);
    return r == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

bool bu_bin_path(const char *dir, const char *name, char *out, size_t n)
{
    char self[4096];
    if (dir == NULL) {
        ssize_t r = readlink("/proc/self/exe", self, sizeof self - 1);
        if (r <= 0) return false;
        self[r] = '\0';
        char *slash = strrchr(self, '/');
        if (slash != NULL) *slash = '\0';
        dir = self;
    }
    if ((size_t)snprintf(out, n, "%s/%s", dir, name) >= n) return false;
    return access(out, X_OK) == 0;
}

pid_t bu_spawn(char *const argv[], const char *log)
{
    pid_t pid = fork();
    if (pid == 0) {
        bu_child_init();
        int fd = open(log ? log : "/dev/null", O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        int dn = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        if (dn >= 0) dup2(dn, 0);
        execv(argv[0], argv);
        _exit(127);
    }
    if (pid > 0) bu_cleanup_add_child(pid);
    return pid;
}

bool bu_stop_child(pid_t pid, double timeout_s)
{
    if (pid <= 0) return true;
    kill(pid, SIGTERM);
    const uint64_t deadline = bu_now_ns() + (uint64_t)(timeout_s * 1e9);
    int st = 0;
    for (;;) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) {
            bu_cleanup_del_child(pid);
            return WIFEXITED(st) && WEXITSTATUS(st) == 0;
        }
        if (r < 0 && errno != EINTR) {
            bu_cleanup_del_child(pid);
            return false;
        }
        if (bu_now_ns() >= deadline) break;
        bu_sleep_ns(10 * 1000000ull);
    }
    kill(pid, SIGKILL);
    bu_wait_child(pid);
    return false;
}

void *bu_shared_alloc(size_t n)
{
    void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        perror("bench: mmap");
        exit(1);
    }
    return p;
}

/* ---- /proc ---------------------------------------------------------------- */

static int read_small(const char *path, char *buf, size_t n)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t r = read(fd, buf, n - 1);
    close(fd);
    if (r <= 0) return -1;
    buf[r] = '\0';
    return 0;
}

int bu_proc_cpu_ticks(pid_t pid, uint64_t *ticks)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
    if (read_small(path, buf, sizeof buf) != 0) return -1;
    /* Fields are counted after the last ')' (the name may hold spaces): p
     * starts on the blank before field 3 (state); after the k-th strchr it
     * is on the blank before field 3 + k. utime is field 14, stime 15. */
    char *p = strrchr(buf, ')');
    if (p == NULL) return -1;
    p++;
    unsigned long long ut = 0, stt = 0;
    for (int k = 1; k <= 12; k++) {
        p = strchr(p + 1, ' ');
        if (p == NULL) return -1;
        if (k == 11) ut = strtoull(p + 1, NULL, 10);
        if (k == 12) stt = strtoull(p + 1, NULL, 10);
    }
    *ticks = ut + stt;
    return 0;
}

int bu_proc_runtime_ns(pid_t pid, uint64_t *ns)
{
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/%ld/schedstat", (long)pid);
    if (read_small(path, buf, sizeof buf) != 0) return -1;
    *ns = strtoull(buf, NULL, 10);
    return 0;
}

int bu_proc_cpu_ns(pid_t pid, uint64_t *ns)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/task", (long)pid);
    DIR *d = opendir(path);
    if (d == NULL) return -1;
    uint64_t sum = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
        char p2[96], buf[256];
        snprintf(p2, sizeof p2, "/proc/%ld/task/%.16s/schedstat", (long)pid, e->d_name);
        /* A thread gone meanwhile takes its time with it: counted as 0. */
        if (read_small(p2, buf, sizeof buf) == 0) sum += strtoull(buf, NULL, 10);
    }
    closedir(d);
    *ns = sum;
    return 0;
}

/* A number field ("Name:   value") of /proc/<pid>/status. */
static int proc_status_field(pid_t pid, const char *field, uint64_t *n)
{
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/%ld/status", (long)pid);
    if (read_small(path, buf, sizeof buf) != 0) return -1;
    const char *p = strstr(buf, field);
    if (p == NULL) return -1;
    *n = strtoull(p + strlen(field), NULL, 10);
    return 0;
}

int bu_proc_wakeups(pid_t pid, uint64_t *n)
{
    return proc_status_field(pid, "voluntary_ctxt_switches:", n);
}

int bu_proc_rss_kb(pid_t pid, uint64_t *kb)
{
    return proc_status_field(pid, "VmRSS:", kb);
}

/* ---- JSON ----------------------------------------------------------------- */

static void json_key(struct bu_json *j, const char *key)
{
    if (!j->first[j->depth]) fputc(',', j->f);
    j->first[j->depth] = false;
    fprintf(j->f, "\"%s\":", key);
}

void bu_json_begin(struct bu_json *j, FILE *f)
{
    memset(j, 0, sizeof *j);
    j->f = f;
    j->first[0] = true;
    fputc('{', f);
}

void bu_json_obj(struct bu_json *j, const char *key)
{
    json_key(j, key);
    fputc('{', j->f);
    if (j->depth < 7) j->depth++;
    j->first[j->depth] = true;
}

void bu_json_close(struct bu_json *j)
{
    if (j->depth == 0) return;
    fputc('}', j->f);
    j->depth--;
}

void bu_json_num(struct bu_json *j, const char *key, double v)
{
    json_key(j, key);
    if (isnan(v) || isinf(v))
        fputs("null", j->f);
    else if ((v == floor(v) || fabs(v) >= 1e5) && fabs(v) < 9e15)
        fprintf(j->f, "%.0f", v); /* rates and counts: whole numbers */
    else
        fprintf(j->f, "%.4f", v);
}

void bu_json_int(struct bu_json *j, const char *key, int64_t v)
{
    json_key(j, key);
    fprintf(j->f, "%lld", (long long)v);
}

void bu_json_bool(struct bu_json *j, const char *key, bool v)
{
    json_key(j, key);
    fputs(v ? "true" : "false", j->f);
}

void bu_json_str(struct bu_json *j, const char *key, const char *v)
{
    json_key(j, key);
    if (v == NULL) {
        fputs("null", j->f);
        return;
    }
    fputc('"', j->f);
    for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(j->f, "\\%c", *p);
        else if (*p < 0x20)
            fprintf(j->f, "\\u%04x", *p);
        else
            fputc(*p, j->f);
    }
    fputc('"', j->f);
}

void bu_json_end(struct bu_json *j)
{
    while (j->depth > 0) bu_json_close(j);
    fputs("}\n", j->f);
    fflush(j->f);
}

bool bu_parse_size(const char *s, uint64_t *out)
{
    if (s == NULL || *s == '\0' || *s == '-') return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 0);
    if (errno != 0 || end == s) return false;
    uint64_t mul = 1;
    if (*end == 'k' || *end == 'K') mul = 1024, end++;
    else if (*end == 'm' || *end == 'M') mul = 1024 * 1024, end++;
    else if (*end == 'g' || *end == 'G') mul = 1024ull * 1024 * 1024, end++;
    if (*end == 'i' && mul > 1) end++;
    if (*end == 'B' || *end == 'b') end++;
    if (*end != '\0') return false;
    *out = (uint64_t)v * mul;
    return true;
}

bool bu_parse_double(const char *s, double *out)
{
    if (s == NULL || *s == '\0') return false;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !(v >= 0)) return false;
    *out = v;
    return true;
}
