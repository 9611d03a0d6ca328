/* Shared vocabulary of the project: error codes, identifier rules, clocks.
 *
 * Every public function that can fail returns a ph_err and, where it takes
 * an (err, errlen) pair, writes a sentence a person can act on into it. */
#ifndef PH_COMMON_H
#define PH_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum ph_err {
    PH_OK = 0,
    PH_ERR_NOENT = -1,   /* no such swarm / object */
    PH_ERR_ACCES = -2,   /* permission denied */
    PH_ERR_MAGIC = -3,   /* not a segment of ours */
    PH_ERR_VERSION = -4, /* layout version we do not read */
    PH_ERR_TRUNC = -5,   /* shorter than its header says */
    PH_ERR_INVAL = -6,   /* bad argument or malformed input */
    PH_ERR_BUSY = -7,    /* owned by a live process */
    PH_ERR_FULL = -8,    /* no free slot / no ring space */
    PH_ERR_CORRUPT = -9, /* shared data failed validation */
    PH_ERR_SYS = -10,    /* a system call failed; errno-based message */
    PH_ERR_EXISTS = -11, /* already present */
} ph_err;

/* Short name of an error code, for logs ("no-such-swarm", "bad-magic"...). */
const char *ph_err_name(int err);

/* Identifiers (swarm, role, instance) end up as routing-key segments and in
 * the shared-memory object name, so they are restricted to 1..PH_ID_MAX-1
 * characters of [A-Za-z0-9_-]; "ALL" is the routing wildcard and is refused.
 * `what` names the identifier in the message ("swarm id"). */
#define PH_ID_MAX 64
int ph_ident_check(const char *what, const char *s, char *err, size_t errlen);

/* True when a configuration key names a secret (password, secret, token,
 * credential, api key, private key...): its value is never published. */
bool ph_key_is_secret(const char *key);

/* CLOCK_MONOTONIC in ns: comparable between processes of one boot. */
uint64_t ph_mono_ns(void);
/* CLOCK_MONOTONIC_COARSE in ns: a few ns to read, resolution of a jiffy.
 * Used on worker hot paths where tps windows are seconds long. */
uint64_t ph_mono_coarse_ns(void);
/* CLOCK_REALTIME in ns. */
uint64_t ph_real_ns(void);
/* Formats a CLOCK_REALTIME ns value as RFC 3339 UTC with milliseconds
 * ("2026-11-26T12:00:00.123Z"); buf needs 25 bytes. */
void ph_rfc3339_ms(uint64_t real_ns, char buf[32]);

#ifdef __cplusplus
}
#endif
#endif
