/* Line-oriented logging to stderr with an RFC 3339 timestamp. Each line is
 * formatted into one buffer and written with a single write(2), so lines of
 * concurrent processes sharing a log file do not interleave. */
#include "ph/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "ph/common.h"

static char log_prog[64] = "ph";
static char log_subject[PH_ID_MAX + 16] = "";
static enum ph_log_level log_min = PH_LOG_INFO;

void ph_log_init(const char *prog, const char *subject)
{
    snprintf(log_prog, sizeof log_prog, "%s", prog ? prog : "ph");
    snprintf(log_subject, sizeof log_subject, "%s", subject ? subject : "");
    const char *env = getenv("PH_LOG_LEVEL");
    if (env != NULL) {
        if (strcasecmp(env, "debug") == 0) log_min = PH_LOG_DEBUG;
        else if (strcasecmp(env, "warn") == 0) log_min = PH_LOG_WARN;
        else if (strcasecmp(env, "error") == 0) log_min = PH_LOG_ERROR;
        else log_min = PH_LOG_INFO;
    }
}

void ph_log_set_level(enum ph_log_level level)
{
    log_min = level;
}

void ph_log(enum ph_log_level level, const char *fmt, ...)
{
    if (level < log_min) return;
    static const char *const names[] = {"debug", "info", "warn", "error"};
    char ts[32];
    ph_rfc3339_ms(ph_real_ns(), ts);
    char line[1024];
    int n = snprintf(line, sizeof line, "%s %s[%s] %s: ", ts, log_prog, log_subject,
                     names[level <= PH_LOG_ERROR ? level : PH_LOG_ERROR]);
    if (n < 0) return;
    if ((size_t)n < sizeof line) {
        va_list ap;
        va_start(ap, fmt);
        int m = vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
        va_end(ap);
        if (m > 0) n += m;
    }
    if ((size_t)n >= sizeof line - 1) n = (int)sizeof line - 2;
    line[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, (size_t)n);
    (void)w; /* nothing sensible to do when stderr is gone */
}
