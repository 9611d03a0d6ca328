/* Process identity: pid plus start time, because pids are reused. */
#include "ph/shm.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Reads start time and state letter of a process from /proc/<pid>/stat. */
static int proc_stat(int32_t pid, uint64_t *start, char *state)
{
    if (pid <= 0) return PH_ERR_INVAL;
    char path[64];
    snprintf(path, sizeof path, "/proc/%" PRId32 "/stat", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return errno == ENOENT ? PH_ERR_NOENT : PH_ERR_SYS;
    char buf[1024];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return PH_ERR_NOENT; /* the process went away while we read */
    buf[n] = '\0';
    /* The command name (field 2) may hold spaces and parentheses: fields are
     * counted from the last ')'. starttime is field 22, i.e. the 20th field
     * after the name. */
    char *p = strrchr(buf, ')');
    if (p == NULL) return PH_ERR_CORRUPT;
    p++;
    if (p[0] != ' ' || p[1] == '\0') return PH_ERR_CORRUPT;
    *state = p[1];
    for (int field = 3; field < 22; field++) {
        p = strchr(p + 1, ' ');
        if (p == NULL) return PH_ERR_CORRUPT;
    }
    char *end;
    errno = 0;
    unsigned long long v = strtoull(p + 1, &end, 10);
    if (errno != 0 || end == p + 1) return PH_ERR_CORRUPT;
    *start = v;
    return PH_OK;
}

int ph_proc_start_time(int32_t pid, uint64_t *out)
{
    char state;
    return proc_stat(pid, out, &state);
}

bool ph_proc_alive(int32_t pid, uint64_t start_time)
{
    if (pid <= 0) return false;
    if (kill(pid, 0) != 0 && errno != EPERM) return false;
    uint64_t st;
    char state;
    if (proc_stat(pid, &st, &state) != PH_OK) return false;
    /* A zombie has exited; only its parent has not collected it yet. */
    if (state == 'Z' || state == 'X') return false;
    return start_time == 0 || st == start_time;
}
