/* Log lines of ph-supervisor on stderr:
 *   2026-11-27T02:40:00.123Z ph-supervisor[demo] info: started generator-1 pid 1234
 * One fprintf per line so that lines stay whole when phive appends stderr to
 * a file that others also read. */
#include "supervisor.h"

#include <stdio.h>
#include <string.h>

/* The swarm id is set once, after the swarm file was read; "-" before. */
static char log_swarm[PH_ID_MAX] = "-";

void sup_log_set_swarm(const char *swarm_id)
{
    snprintf(log_swarm, sizeof log_swarm, "%s", swarm_id);
}

void sup_log(const char *level, const char *fmt, ...)
{
    char ts[32];
    ph_rfc3339_ms(ph_real_ns(), ts);
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s ph-supervisor[%s] %s: %s\n", ts, log_swarm, level, msg);
    fflush(stderr);
}
