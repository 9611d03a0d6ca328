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

/* A command-line number: decimal digits only (no sign, no trailing text),
 * within [lo, hi]. false leaves *out as it was. */
bool ph_parse_u32(const char *s, uint32_t *out, uint32_t lo, uint32_t hi);

/* True when a configuration key names a secret: its value is never
 * published (status config, journal, quoted signals).
 *
 * The key is cut into words at every character that is not an ASCII letter
 * (_ - . space, digits...) and at camelCase boundaries, and compared without
 * case: dbPass -> db, pass; apiKey -> api, key; X-API-KEY -> x, api, key;
 * OAuthToken -> o, auth, token. The key is secret when
 *  - a word starts with pass (pass, passwd, password, passphrase, passcode;
 *    not passenger, passive, passage, passes, passed, passing, passthrough),
 *    pwd, secret, token, credential, cookie or jwt, or is cred, creds or
 *    bearer;
 *  - a word is auth or starts with authn, authz, authentication,
 *    authorization, authorisation or oauth ("author", "authority" are not);
 *  - a word is "key" after a credential kind, wherever it stands (apiKey,
 *    privateKeyPem, accessKeyId, signing_key...: api, private, access,
 *    secret, signing, encryption, master, ssh, hmac, client, session, auth,
 *    license, shared, subscription);
 *  - "key" is the last word (key, X-API-KEY, tls.key), unless the word before
 *    makes it an identifier: routingKey, idempotencyKey, partitionKey,
 *    publicKey, primaryKey, cacheKey... Where "key" is not last it describes a
 *    key without holding it (keyCount, keyId, keyFile: not secret), and words
 *    that merely contain it (keyspace, monkey, hotkey) are not secrets;
 *  - a word ends with a key compound written as one word (apikey, privatekey,
 *    accesskey, secretkey, signingkey, encryptionkey, masterkey, sshkey...)
 *    or with sessionid, or is id after session (a session id is a bearer
 *    credential);
 *  - its letters alone, lower-cased, contain password, passwd, passphrase,
 *    secret, token, credential, apikey, privatekey, authorization or cookie:
 *    ALLCAPS concatenations (DBPASSWORD, MYAPIKEY) have no word boundary.
 * Matching too much hides a value from a status; matching too little
 * publishes a credential. So unknown words near a secret word count, and only
 * the common ordinary words above are let through. */
bool ph_key_is_secret(const char *key);

/* Strips credentials from URL-shaped text: every "://" starts an authority
 * whose userinfo is replaced, "scheme://user:password@host/..." ->
 * "scheme://user:***@host/...", and in "scheme://token@host" the token
 * becomes *** (a lone userinfo is usually a token). Every URL of the text is handled
 * ("amqp://u:p@h1 amqp://u:p@h2"); the last '@' before the path ends the
 * userinfo, and a password with an unencoded '#', '?', '@' or '/' is still
 * caught. Empty or already masked ("***") parts are left as they are, so
 * stripping twice changes nothing.
 *
 * Like snprintf: writes at most `cap` bytes of the result to `out` (no NUL is
 * added; out may be NULL when cap is 0) and returns the result's length.
 * *stripped (may be NULL) is set to the number of userinfos replaced: 0 means
 * the result is `s` unchanged, so a first call with cap 0 tells whether a
 * second one is needed. `s` may hold NUL bytes. */
size_t ph_url_strip_credentials(const char *s, size_t len, char *out, size_t cap, size_t *stripped);

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
