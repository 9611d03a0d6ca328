/* Error names, identifier rules, secret-key detection and clocks shared by
 * every binary of the project. */
#include "ph/common.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

const char *ph_err_name(int err)
{
    switch (err) {
    case PH_OK: return "ok";
    case PH_ERR_NOENT: return "no-such-object";
    case PH_ERR_ACCES: return "permission-denied";
    case PH_ERR_MAGIC: return "bad-magic";
    case PH_ERR_VERSION: return "unsupported-version";
    case PH_ERR_TRUNC: return "truncated";
    case PH_ERR_INVAL: return "invalid";
    case PH_ERR_BUSY: return "busy";
    case PH_ERR_FULL: return "full";
    case PH_ERR_CORRUPT: return "corrupt";
    case PH_ERR_SYS: return "system-error";
    case PH_ERR_EXISTS: return "exists";
    default: return "unknown-error";
    }
}

int ph_ident_check(const char *what, const char *s, char *err, size_t errlen)
{
    if (s == NULL || s[0] == '\0') {
        snprintf(err, errlen, "%s is empty", what);
        return PH_ERR_INVAL;
    }
    size_t n = strnlen(s, PH_ID_MAX);
    if (n >= PH_ID_MAX) {
        snprintf(err, errlen, "%s is longer than %d characters", what, PH_ID_MAX - 1);
        return PH_ERR_INVAL;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!(isascii(c) && (isalnum(c) || c == '-' || c == '_'))) {
            snprintf(err, errlen,
                     "%s '%.*s' contains '%c' (0x%02x): only letters, digits, '-' and '_' can be "
                     "a routing-key segment",
                     what, (int)n, s, isprint(c) ? c : '?', c);
            return PH_ERR_INVAL;
        }
    }
    if (strcmp(s, "ALL") == 0) {
        snprintf(err, errlen, "%s 'ALL' is the routing wildcard and cannot name a subject", what);
        return PH_ERR_INVAL;
    }
    return PH_OK;
}

bool ph_key_is_secret(const char *key)
{
    if (key == NULL) return false;
    /* Compare on a lower-cased copy with separators removed, so "api_key",
     * "apiKey" and "API-KEY" are one word. */
    char norm[128];
    size_t j = 0;
    for (size_t i = 0; key[i] != '\0' && j + 1 < sizeof norm; i++) {
        unsigned char c = (unsigned char)key[i];
        if (c == '_' || c == '-' || c == '.' || c == ' ') continue;
        norm[j++] = (char)tolower(c);
    }
    norm[j] = '\0';
    static const char *const words[] = {"password", "passwd",     "secret",     "token",
                                        "credential", "apikey",   "privatekey", "passphrase",
                                        "authorization", "cookie"};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (strstr(norm, words[i]) != NULL) return true;
    return false;
}

static uint64_t clock_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t ph_mono_ns(void)
{
    return clock_ns(CLOCK_MONOTONIC);
}

uint64_t ph_mono_coarse_ns(void)
{
    return clock_ns(CLOCK_MONOTONIC_COARSE);
}

uint64_t ph_real_ns(void)
{
    return clock_ns(CLOCK_REALTIME);
}

void ph_rfc3339_ms(uint64_t real_ns, char buf[32])
{
    time_t secs = (time_t)(real_ns / 1000000000ull);
    unsigned ms = (unsigned)((real_ns / 1000000ull) % 1000ull);
    struct tm tm;
    gmtime_r(&secs, &tm);
    size_t n = strftime(buf, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, 32 - n, ".%03uZ", ms);
}
