/* Per-code alert rate limit (ratelimit.h). A handful of codes exist, so a
 * small table searched linearly is all it needs; when it is full, the last
 * entry is shared by the overflow codes, which errs on the side of fewer
 * alerts, never more. */
#include "ratelimit.h"

#include <stdio.h>
#include <string.h>

void ratelimit_init(struct ratelimit *rl, uint64_t interval_ns)
{
    memset(rl, 0, sizeof *rl);
    rl->interval_ns = interval_ns;
}

bool ratelimit_allow(struct ratelimit *rl, const char *code, uint64_t now_ns, uint64_t *suppressed)
{
    int i = 0;
    while (i < RATELIMIT_CODES - 1 && rl->e[i].used && strcmp(rl->e[i].code, code) != 0)
        i++;
    if (!rl->e[i].used) {
        rl->e[i].used = true;
        snprintf(rl->e[i].code, sizeof rl->e[i].code, "%s", code);
        rl->e[i].suppressed = 0;
        rl->e[i].last_ns = now_ns;
        *suppressed = 0;
        return true;
    }
    if (now_ns - rl->e[i].last_ns < rl->interval_ns) {
        rl->e[i].suppressed++;
        return false;
    }
    rl->e[i].last_ns = now_ns;
    *suppressed = rl->e[i].suppressed;
    rl->e[i].suppressed = 0;
    return true;
}
