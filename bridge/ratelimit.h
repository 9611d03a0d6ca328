/* At most one alert per code per interval (CONTRACT §6: a bad message is
 * "reported once as an alert"; a flood of them must not become a flood of
 * alerts). Suppressed occurrences are counted and handed to the next alert
 * that goes out, so the count is never lost, only deferred. */
#ifndef PH_BRIDGE_RATELIMIT_H
#define PH_BRIDGE_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

#define RATELIMIT_CODES 8
#define RATELIMIT_CODE_MAX 64

struct ratelimit {
    uint64_t interval_ns;
    struct {
        char code[RATELIMIT_CODE_MAX];
        bool used;
        uint64_t last_ns;    /* when the last alert of this code went out */
        uint64_t suppressed; /* occurrences since then that raised none */
    } e[RATELIMIT_CODES];
};

void ratelimit_init(struct ratelimit *rl, uint64_t interval_ns);
/* True when an alert for `code` may go out at `now_ns`; *suppressed is then
 * the number held back since the previous one (and is reset). False counts
 * this occurrence as suppressed. */
bool ratelimit_allow(struct ratelimit *rl, const char *code, uint64_t now_ns, uint64_t *suppressed);

#endif
