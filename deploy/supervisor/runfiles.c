/* The run directory of one swarm, the supervisor's interface to phive and
 * to people:
 *
 *   supervisor.pid   our pid; we hold an flock on it while we live, so a
 *                    second supervisor for the same run directory is refused
 *                    even if the pid was recycled
 *   procs.json       [{name, role, instance, placement, pid, restarts,
 *                    startedAt, state, log}], rewritten atomically on every
 *                    change; kept after exit so that the last pids can be
 *                    checked. placement: local, remote or relay (a worker's
 *                    role's; local for the controller, bridge and relay)
 *   ready            exists once every process runs (workers attached)
 *   removed          the time the swarm ended after swarm-remove (the
 *                    supervisor released it and exited)
 *   logs/<name>.log  each child's stdout and stderr
 *   config/<inst>.json  each worker's start configuration, mode 0600: configs
 *                    may hold secrets, and argv is readable by every user
 *   journal/<runId>.jsonl  the controller's journal (--journal-dir), 0700
 *   signals.jsonl    signals for the controller, one {"routingKey", "envelope"}
 *                    per line: tools append, the bridge reads (--signals);
 *                    0600 because a signal may carry a config patch
 *   envelopes.jsonl  what the bridge publishes, when PH_SINK is not set
 *   run.json         where this run's envelopes, signals and journal go, for
 *                    phive and people; with sink amqp also the broker (URL
 *                    with its password masked, the URL file, the private
 *                    node's folder when phive started one for the run) */
#include "supervisor.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

static int sys_fail(char *err, size_t errlen, const char *what, const char *path)
{
    snprintf(err, errlen, "cannot %s %s: %s", what, path, strerror(errno));
    return PH_ERR_SYS;
}

/* mkdir -p with `mode` for directories it creates. */
static int mkdirs(const char *path, mode_t mode, char *err, size_t errlen)
{
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) {
        errno = ENAMETOOLONG;
        return sys_fail(err, errlen, "create directory", path);
    }
    for (char *p = buf + 1; *p != '\0'; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return sys_fail(err, errlen, "create directory", buf);
        *p = '/';
    }
    if (mkdir(buf, mode) != 0 && errno != EEXIST)
        return sys_fail(err, errlen, "create directory", buf);
    return PH_OK;
}

static int join(char *out, const char *dir, const char *name, char *err, size_t errlen)
{
    if (snprintf(out, PATH_MAX, "%s/%s", dir, name) >= PATH_MAX) {
        snprintf(err, errlen, "path too long: %s/%s", dir, name);
        return PH_ERR_INVAL;
    }
    return PH_OK;
}

int sup_run_open(struct sup_run *run, const char *dir, char *err, size_t errlen)
{
    memset(run, 0, sizeof *run);
    run->pid_fd = -1;
    int rc = mkdirs(dir, 0755, err, errlen);
    if (rc != PH_OK) return rc;
    if (realpath(dir, run->dir) == NULL) return sys_fail(err, errlen, "resolve", dir);
    if ((rc = join(run->pid_path, run->dir, "supervisor.pid", err, errlen)) != PH_OK ||
        (rc = join(run->ready_path, run->dir, "ready", err, errlen)) != PH_OK ||
        (rc = join(run->removed_path, run->dir, "removed", err, errlen)) != PH_OK ||
        (rc = join(run->procs_path, run->dir, "procs.json", err, errlen)) != PH_OK ||
        (rc = join(run->logs_dir, run->dir, "logs", err, errlen)) != PH_OK ||
        (rc = join(run->config_dir, run->dir, "config", err, errlen)) != PH_OK ||
        (rc = join(run->journal_dir, run->dir, "journal", err, errlen)) != PH_OK ||
        (rc = join(run->signals_path, run->dir, "signals.jsonl", err, errlen)) != PH_OK ||
        (rc = join(run->envelopes_path, run->dir, "envelopes.jsonl", err, errlen)) != PH_OK ||
        (rc = join(run->info_path, run->dir, "run.json", err, errlen)) != PH_OK)
        return rc;

    run->pid_fd = open(run->pid_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (run->pid_fd < 0) return sys_fail(err, errlen, "open", run->pid_path);
    if (flock(run->pid_fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        char held[32] = "";
        ssize_t n = pread(run->pid_fd, held, sizeof held - 1, 0);
        held[n > 0 ? n : 0] = '\0';
        held[strcspn(held, "\n")] = '\0';
        close(run->pid_fd);
        run->pid_fd = -1;
        if (e == EWOULDBLOCK) {
            snprintf(err, errlen, "another supervisor (pid %s) already runs in %s",
                     held[0] ? held : "?", run->dir);
            return PH_ERR_BUSY;
        }
        errno = e;
        return sys_fail(err, errlen, "lock", run->pid_path);
    }
    /* A supervisor that was exiting may have unlinked the file between our
     * open and our flock: then we hold a lock nobody else can see. */
    struct stat held_st, path_st;
    if (fstat(run->pid_fd, &held_st) != 0 || stat(run->pid_path, &path_st) != 0 ||
        held_st.st_ino != path_st.st_ino || held_st.st_dev != path_st.st_dev) {
        close(run->pid_fd);
        run->pid_fd = -1;
        snprintf(err, errlen, "%s changed while it was being locked; try again", run->pid_path);
        return PH_ERR_BUSY;
    }
    /* The lock is ours: whatever else is in the directory is stale. */
    unlink(run->ready_path);
    unlink(run->removed_path);
    unlink(run->procs_path);
    unlink(run->info_path);
    char line[32];
    int len = snprintf(line, sizeof line, "%ld\n", (long)getpid());
    if (ftruncate(run->pid_fd, 0) != 0 || pwrite(run->pid_fd, line, (size_t)len, 0) != len)
        return sys_fail(err, errlen, "write", run->pid_path);

    if ((rc = mkdirs(run->logs_dir, 0755, err, errlen)) != PH_OK) return rc;
    if ((rc = mkdirs(run->config_dir, 0700, err, errlen)) != PH_OK) return rc;
    /* An existing config/ made by someone else with a wider mode is narrowed. */
    if (chmod(run->config_dir, 0700) != 0) return sys_fail(err, errlen, "chmod", run->config_dir);
    /* The journal records signals, config patches included. */
    if ((rc = mkdirs(run->journal_dir, 0700, err, errlen)) != PH_OK) return rc;
    if (chmod(run->journal_dir, 0700) != 0) return sys_fail(err, errlen, "chmod", run->journal_dir);

    /* Emptied: signals a tool left for an earlier run must not be replayed
     * to this one's controller. Tools append to it, so it must exist before
     * the bridge starts reading. */
    int fd = open(run->signals_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) return sys_fail(err, errlen, "create", run->signals_path);
    if (fchmod(fd, 0600) != 0) {
        close(fd);
        return sys_fail(err, errlen, "chmod", run->signals_path);
    }
    close(fd);
    /* And the bridge's read position in it (<signals>.pos) starts over. */
    char pos[PATH_MAX + 8];
    snprintf(pos, sizeof pos, "%s.pos", run->signals_path);
    if (unlink(pos) != 0 && errno != ENOENT) return sys_fail(err, errlen, "remove", pos);
    return PH_OK;
}

/* Writes `text` to `path` through a temporary file and rename, so readers
 * (phive, tests) never see a half-written file. */
static int write_atomic(const char *path, const char *text, mode_t mode, char *err, size_t errlen)
{
    char tmp[PATH_MAX + 16];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0) return sys_fail(err, errlen, "create", tmp);
    size_t len = strlen(text), off = 0;
    while (off < len) {
        ssize_t n = write(fd, text + off, len - off);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            int e = errno;
            close(fd);
            unlink(tmp);
            errno = e;
            return sys_fail(err, errlen, "write", tmp);
        }
        off += (size_t)n;
    }
    /* fchmod: O_CREAT's mode only applies to a new file and is umasked. */
    if (fchmod(fd, mode) != 0 || close(fd) != 0) {
        unlink(tmp);
        return sys_fail(err, errlen, "write", tmp);
    }
    if (rename(tmp, path) != 0) {
        unlink(tmp);
        return sys_fail(err, errlen, "rename into", path);
    }
    return PH_OK;
}

int sup_run_write_config(const struct sup_run *run, const char *instance, const json_t *config,
                         char *path, size_t pathlen, char *err, size_t errlen)
{
    if (snprintf(path, pathlen, "%s/%s.json", run->config_dir, instance) >= (int)pathlen) {
        snprintf(err, errlen, "config path too long for %s", instance);
        return PH_ERR_INVAL;
    }
    char *text = json_dumps(config, JSON_COMPACT);
    if (text == NULL) {
        snprintf(err, errlen, "cannot encode the config of %s", instance);
        return PH_ERR_INVAL;
    }
    int rc = write_atomic(path, text, 0600, err, errlen);
    free(text);
    return rc;
}

static const char *state_name(enum sup_proc_state s)
{
    switch (s) {
    case SUP_P_PENDING:
        return "pending";
    case SUP_P_RUNNING:
        return "running";
    case SUP_P_BACKOFF:
        return "backoff";
    case SUP_P_STOPPED:
        return "stopped";
    }
    return "unknown";
}

int sup_run_write_procs(const struct sup_run *run, const struct sup_proc *procs, size_t n)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        const struct sup_proc *p = &procs[i];
        char ts[32];
        json_t *started = json_null();
        if (p->started_real_ns != 0) {
            ph_rfc3339_ms(p->started_real_ns, ts);
            started = json_string(ts);
        }
        json_array_append_new(arr,
                              json_pack("{s:s, s:s, s:s, s:s, s:o, s:I, s:o, s:s, s:b, s:s}",
                                        "name", p->name, "role", p->role, "instance", p->instance,
                                        "placement", sup_placement_name(p->placement), "pid",
                                        p->pid > 0 ? json_integer(p->pid) : json_null(), "restarts",
                                        (json_int_t)p->restarts, "startedAt", started, "state",
                                        state_name(p->state), "running", p->state == SUP_P_RUNNING,
                                        "log", p->log_path));
    }
    char *text = json_dumps(arr, JSON_INDENT(2));
    json_decref(arr);
    if (text == NULL) return PH_ERR_INVAL;
    size_t len = strlen(text);
    char *nl = realloc(text, len + 2);
    if (nl == NULL) {
        free(text);
        return PH_ERR_SYS;
    }
    nl[len] = '\n';
    nl[len + 1] = '\0';
    char err[512];
    int rc = write_atomic(run->procs_path, nl, 0644, err, sizeof err);
    free(nl);
    if (rc != PH_OK) sup_warn("%s", err);
    return rc;
}

int sup_run_write_ready(const struct sup_run *run)
{
    char ts[40];
    ph_rfc3339_ms(ph_real_ns(), ts);
    strcat(ts, "\n");
    char err[512];
    int rc = write_atomic(run->ready_path, ts, 0644, err, sizeof err);
    if (rc != PH_OK) sup_warn("%s", err);
    return rc;
}

void sup_run_mark_removed(const struct sup_run *run)
{
    char ts[40];
    ph_rfc3339_ms(ph_real_ns(), ts);
    strcat(ts, "\n");
    char err[512];
    if (write_atomic(run->removed_path, ts, 0644, err, sizeof err) != PH_OK) sup_warn("%s", err);
}

/* A sink for display: "file:PATH" as it is; in a URL
 * (amqp://user:password@host/...) the password is replaced by "***". */
void sup_sink_display(const char *sink, char *out, size_t n)
{
    snprintf(out, n, "%s", sink);
    char *scheme_end = strstr(out, "://");
    if (scheme_end == NULL) return;
    char *auth = scheme_end + 3;
    char *at = strchr(auth, '@');
    char *slash = strchr(auth, '/');
    if (at == NULL || (slash != NULL && slash < at)) return;
    char *colon = memchr(auth, ':', (size_t)(at - auth));
    if (colon == NULL) return;
    char rest[PATH_MAX + 8];
    snprintf(rest, sizeof rest, "%s", at);
    snprintf(colon, n - (size_t)(colon - out), ":***%s", rest);
}

/* The broker URL of an amqp sink, password masked, into out; "" when it is
 * not known (no URL file, no PH_AMQP_URL, unreadable file). */
static void broker_url_display(const struct sup_broker_info *broker, char *out, size_t n)
{
    char url[PATH_MAX + 8] = "";
    out[0] = '\0';
    if (broker != NULL && broker->url_file != NULL) {
        FILE *f = fopen(broker->url_file, "re");
        if (f == NULL) return;
        if (fgets(url, sizeof url, f) == NULL) url[0] = '\0';
        fclose(f);
        url[strcspn(url, "\r\n")] = '\0';
    } else {
        const char *env = getenv("PH_AMQP_URL");
        if (env != NULL) snprintf(url, sizeof url, "%s", env);
    }
    if (url[0] != '\0') sup_sink_display(url, out, n);
    explicit_bzero(url, sizeof url);
}

int sup_run_write_info(const struct sup_run *run, const struct sup_spec *spec, bool bridge,
                       const char *sink, const struct sup_broker_info *broker)
{
    char shown[PATH_MAX + 8], url[PATH_MAX + 8] = "";
    sup_sink_display(sink, shown, sizeof shown);
    bool file_sink = strncmp(sink, "file:", 5) == 0;
    if (!file_sink) broker_url_display(broker, url, sizeof url);
    const char *url_file = !file_sink && broker ? broker->url_file : NULL;
    const char *private_dir = !file_sink && broker ? broker->private_dir : NULL;
    json_t *doc = json_pack(
        "{s:s, s:s, s:b, s:s, s:s, s:s, s:s?, s:s?, s:s?}", "swarmId", spec->swarm_id,
        "controllerInstance", spec->controller_instance, "bridge", bridge, "sink", shown,
        "signals", run->signals_path, "journalDir", run->journal_dir, "amqpUrl",
        url[0] != '\0' ? url : NULL, "amqpUrlFile", url_file, "privateBroker", private_dir);
    char *text = doc ? json_dumps(doc, JSON_INDENT(2)) : NULL;
    json_decref(doc);
    if (text == NULL) return PH_ERR_INVAL;
    size_t len = strlen(text);
    char *nl = realloc(text, len + 2);
    if (nl == NULL) {
        free(text);
        return PH_ERR_SYS;
    }
    nl[len] = '\n';
    nl[len + 1] = '\0';
    char err[512];
    int rc = write_atomic(run->info_path, nl, 0644, err, sizeof err);
    free(nl);
    if (rc != PH_OK) sup_warn("%s", err);
    return rc;
}

void sup_run_close(struct sup_run *run)
{
    if (run->pid_fd < 0) return;
    unlink(run->ready_path);
    /* Unlink while still holding the lock: a new supervisor that opens the
     * path afterwards creates a fresh file and locks that one. */
    unlink(run->pid_path);
    close(run->pid_fd);
    run->pid_fd = -1;
}
