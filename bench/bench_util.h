/* Helpers shared by the benchmarks: clocks (CLOCK_MONOTONIC and a TSC
 * calibrated against it), CPU pinning, order statistics, unique swarm ids,
 * clean-up of segments and children on exit or SIGINT/SIGTERM, process CPU
 * accounting from /proc, and a minimal JSON writer.
 *
 * Benchmarks print figures; nothing here asserts. */
#ifndef PH_BENCH_UTIL_H
#define PH_BENCH_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#define BU_HAVE_TSC 1
#else
#define BU_HAVE_TSC 0
#endif

/* CLOCK_MONOTONIC in ns. */
uint64_t bu_now_ns(void);

/* A cheap spin hint for busy-wait loops. */
static inline void bu_relax(void)
{
#if BU_HAVE_TSC
    _mm_pause();
#else
    __asm__ __volatile__("" ::: "memory");
#endif
}

/* Raw cycle counter with ordering: bu_tsc_begin() cannot start before the
 * earlier instructions finish, bu_tsc_end() waits for the measured ones. On
 * machines without a TSC both fall back to CLOCK_MONOTONIC ns. */
static inline uint64_t bu_tsc_begin(void)
{
#if BU_HAVE_TSC
    _mm_lfence();
    uint64_t t = __rdtsc();
    _mm_lfence();
    return t;
#else
    return bu_now_ns();
#endif
}
static inline uint64_t bu_tsc_end(void)
{
#if BU_HAVE_TSC
    unsigned aux;
    uint64_t t = __rdtscp(&aux);
    _mm_lfence();
    return t;
#else
    return bu_now_ns();
#endif
}
/* TSC ticks per ns, calibrated once against CLOCK_MONOTONIC (~50 ms). */
double bu_tsc_per_ns(void);

/* CPUs this process may run on (sched_getaffinity); returns how many were
 * written to cpus (at most max). */
int bu_cpus(int *cpus, int max);
/* Pins the calling process to one CPU; false when refused. */
bool bu_pin(int cpu);

/* Sorts v ascending and returns the p-th percentile (0..100, nearest rank). */
double bu_percentile(double *v, size_t n, double p);
/* Median of n values (sorts v). */
double bu_median(double *v, size_t n);

/* "<prefix>-<pid>-<counter>": unique per call within this machine. */
void bu_swarm_id(char *buf, size_t n, const char *prefix);

/* Clean-up registry: segments unlinked and children SIGKILLed when the
 * program exits or gets SIGINT/SIGTERM. bu_cleanup_install() once in main. */
void bu_cleanup_install(void);
void bu_cleanup_add_swarm(const char *swarm_id);
void bu_cleanup_del_swarm(const char *swarm_id); /* unlinks it now */
void bu_cleanup_add_child(pid_t pid);
void bu_cleanup_del_child(pid_t pid);
/* In a freshly forked child: default signal dispositions, die with the parent. */
void bu_child_init(void);
/* Waits for a child and reports whether it exited with status 0. */
bool bu_wait_child(pid_t pid);

/* Programs next to this one: `dir` (or, when NULL, the directory of
 * /proc/self/exe) + "/" + name into out; false when it is not executable. */
bool bu_bin_path(const char *dir, const char *name, char *out, size_t n);
/* fork + execv(argv[0], argv) with stdout and stderr appended to `log`
 * (NULL: /dev/null) and stdin from /dev/null; the child is registered for
 * clean-up and dies with this process. Returns its pid, or -1. */
pid_t bu_spawn(char *const argv[], const char *log);
/* SIGTERM, then waits up to timeout_s (SIGKILL after that). True when the
 * child exited by itself with status 0. */
bool bu_stop_child(pid_t pid, double timeout_s);

/* Anonymous shared memory, inherited by forked children. */
void *bu_shared_alloc(size_t n);

/* Process CPU time: utime+stime from /proc/<pid>/stat in clock ticks, and the
 * scheduler's sum_exec_runtime from /proc/<pid>/schedstat in ns. */
int bu_proc_cpu_ticks(pid_t pid, uint64_t *ticks);
int bu_proc_runtime_ns(pid_t pid, uint64_t *ns);
/* Nanoseconds on a CPU of every thread of `pid` (the sum of
 * /proc/<pid>/task/<tid>/schedstat): finer than the clock ticks of
 * bu_proc_cpu_ticks, and complete for a many-threaded process such as
 * the broker. 0 or -1. */
int bu_proc_cpu_ns(pid_t pid, uint64_t *ns);
/* voluntary_ctxt_switches from /proc/<pid>/status: how often it went to sleep. */
int bu_proc_wakeups(pid_t pid, uint64_t *n);
/* VmRSS from /proc/<pid>/status, in KiB. */
int bu_proc_rss_kb(pid_t pid, uint64_t *kb);

/* The 1-minute load average (/proc/loadavg), NaN when unreadable: printed
 * beside the figures, which mean less on a loaded machine. */
double bu_loadavg1(void);

/* Sleeps for ns nanoseconds (restarting on EINTR). */
void bu_sleep_ns(uint64_t ns);

/* Minimal JSON writer to stdout: one object, optional nested objects. */
struct bu_json {
    FILE *f;
    int depth;
    bool first[8];
};
void bu_json_begin(struct bu_json *j, FILE *f);
void bu_json_obj(struct bu_json *j, const char *key); /* opens a nested object */
void bu_json_close(struct bu_json *j);                /* closes the innermost object */
void bu_json_num(struct bu_json *j, const char *key, double v); /* NaN -> null */
void bu_json_int(struct bu_json *j, const char *key, int64_t v);
void bu_json_bool(struct bu_json *j, const char *key, bool v);
void bu_json_str(struct bu_json *j, const char *key, const char *v); /* NULL -> null */
void bu_json_end(struct bu_json *j); /* closes everything and prints a newline */

/* A usage error of this program: prints "<program>: <message> (see --help)"
 * on stderr and returns 2, the benchmarks' exit status for a bad command
 * line. */
int bu_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The usage error for the option getopt_long() just parsed ("--opt value" or
 * "--opt=value"), whose value (optarg) was refused. */
int bu_bad_value(char *const argv[]);

/* A private folder /tmp/ph-bench-<name>-XXXXXX for the logs, sinks and
 * journals of the programs a benchmark starts. It goes with everything in it
 * when the program exits or is interrupted -- after the children are killed,
 * so that nothing writes into it meanwhile -- unless keep. Needs
 * bu_cleanup_install() first. Returns the path, or NULL (errno set). */
char *bu_tmpdir(const char *name, bool keep);

/* Parses a non-negative number with an optional K/M/G (x1024) suffix. */
bool bu_parse_size(const char *s, uint64_t *out);
bool bu_parse_double(const char *s, double *out);

#endif
