/* Error names, identifier rules, command-line numbers, secret detection (key names and URL
 * credentials) and clocks shared by every binary of the project. */
#include "ph/common.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
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

/* ---- secret keys ------------------------------------------------------ */

/* Secret detection works on the words of a key, so that a secret word is
 * found however the key is spelled (dbPass, db_pass, DB-PASS, X-API-KEY) and
 * an ordinary word that merely contains one (bypass, compass, monkey,
 * keyspace, author) is not. The rules are listed in ph/common.h. Erring on
 * the side of "secret" only hides a value from a status; erring the other way
 * publishes a credential, so unknown words close to a secret word count. */

struct word {
    const char *p; /* into the key, not NUL-terminated */
    size_t n;
};

static bool word_is(struct word w, const char *lit)
{
    return w.n == strlen(lit) && strncasecmp(w.p, lit, w.n) == 0;
}

static bool word_starts(struct word w, const char *lit)
{
    size_t n = strlen(lit);
    return w.n >= n && strncasecmp(w.p, lit, n) == 0;
}

static bool word_ends(struct word w, const char *lit)
{
    size_t n = strlen(lit);
    return w.n >= n && strncasecmp(w.p + w.n - n, lit, n) == 0;
}

static bool word_in(struct word w, const char *const *list)
{
    for (; *list != NULL; list++)
        if (word_is(w, *list)) return true;
    return false;
}

/* A word alone names a secret: pass..., pwd..., secret..., token...,
 * credential..., cred(s), auth, authn..., authz..., authentication...,
 * authorization..., oauth..., cookie..., jwt..., bearer. */
static bool word_names_secret(struct word w)
{
    /* Every secret word starts with one of these: most words stop here. */
    if (w.n == 0 || strchr("pstcaojb", tolower((unsigned char)w.p[0])) == NULL) return false;
    /* Ordinary English words that start with "pass"; everything else that
     * does (pass, passwd, password, passwort, passphrase, passcode...) is a
     * password. */
    static const char *const not_pass[] = {"passeng", "passiv",  "passag",  "passes",
                                           "passed",  "passing", "passthr", NULL};
    if (word_starts(w, "pass")) {
        for (const char *const *x = not_pass; *x != NULL; x++)
            if (word_starts(w, *x)) return false;
        return true;
    }
    /* "author", "authority", "authored" are not secrets: only the auth
     * scheme words are. */
    static const char *const prefixes[] = {
        "pwd",           "secret",        "token", "credential", "authn", "authz", "authentication",
        "authorization", "authorisation", "oauth", "cookie",     "jwt",   NULL};
    for (const char *const *x = prefixes; *x != NULL; x++)
        if (word_starts(w, *x)) return true;
    static const char *const exact[] = {"auth", "cred", "creds", "bearer", NULL};
    return word_in(w, exact);
}

/* Words ending in these name a secret key even when written as one word
 * (APIKEY, X_APIKEY, AWSSECRETKEY...). */
static const char *const key_compounds[] = {
    "apikey",     "privatekey", "accesskey",       "secretkey", "signingkey", "encryptionkey",
    "masterkey",  "sshkey",     "hmackey",         "clientkey", "sessionkey", "authkey",
    "licensekey", "sharedkey",  "subscriptionkey", NULL};

/* A word before "key" that makes the key an identifier, not a credential:
 * routingKey, idempotencyKey, partitionKey, publicKey... */
static const char *const key_identifiers[] = {
    "routing", "idempotency", "partition",     "sort",      "shard",   "hash",
    "cache",   "dedup",       "deduplication", "primary",   "foreign", "message",
    "record",  "lookup",      "object",        "map",       "row",     "group",
    "index",   "correlation", "unique",        "composite", "public",  NULL};

/* A word before "key" that makes it a credential wherever "key" stands
 * (apiKeyValue, privateKeyPem, accessKeyId). */
static const char *const key_qualifiers[] = {
    "api",  "private", "access",  "secret", "signing", "encryption", "master",       "ssh",
    "hmac", "client",  "session", "auth",   "license", "shared",     "subscription", NULL};

static bool key_word_is_secret(struct word w, struct word prev, bool last)
{
    /* A session id is a bearer credential (JSESSIONID, session_id). */
    if (word_ends(w, "id"))
        return word_ends(w, "sessionid") || (word_is(w, "id") && word_is(prev, "session"));
    if (!word_ends(w, "key")) return false;
    for (const char *const *x = key_compounds; *x != NULL; x++)
        if (word_ends(w, *x)) return true;
    if (!word_is(w, "key")) return false;
    if (prev.n > 0 && word_in(prev, key_qualifiers)) return true;
    /* "key" names the thing only as the last word: keyCount, keyId, keyFile
     * and keyPath describe a key without holding it. */
    return last && !(prev.n > 0 && word_in(prev, key_identifiers));
}

/* Splits at every character that is not an ASCII letter (separators,
 * digits) and at camelCase boundaries: a lower-case letter followed by an
 * upper-case one (dbPass), and the last capital of a run of capitals
 * followed by a lower-case letter (APIKey -> API, Key; OAuth -> O, Auth). */
static size_t next_word(const char *key, size_t i, struct word *w)
{
    while (key[i] != '\0' && !isalpha((unsigned char)key[i]))
        i++;
    size_t b = i;
    if (key[i] != '\0') i++;
    while (isalpha((unsigned char)key[i])) {
        bool up = isupper((unsigned char)key[i]);
        bool prev_low = islower((unsigned char)key[i - 1]);
        bool next_low = islower((unsigned char)key[i + 1]);
        if (up && (prev_low || next_low)) break;
        i++;
    }
    w->p = key + b;
    w->n = i - b;
    return i;
}

/* True when the letters of `key`, lower-cased with everything else
 * skipped, contain `needle` (lower-case letters): catches ALLCAPS
 * concatenations (DBPASSWORD) the word split cannot see into. */
static bool letters_contain(const char *key, const char *needle)
{
    /* Byte by byte, without a copy: only for keys too long for the buffer
     * of letters_contain_any. */
    for (size_t s = 0; key[s] != '\0'; s++) {
        if (!isalpha((unsigned char)key[s])) continue;
        size_t i = s, j = 0;
        while (needle[j] != '\0' && key[i] != '\0') {
            unsigned char c = (unsigned char)key[i++];
            if (!isalpha(c)) continue;
            if (tolower(c) != needle[j]) break;
            j++;
        }
        if (needle[j] == '\0') return true;
    }
    return false;
}

static bool letters_contain_any(const char *key, const char *const *needles)
{
    /* The letters, lower-cased, once; strstr for each needle. sigcheck asks
     * about every word end of a 120-byte quote, so this is worth a copy. */
    char letters[256];
    size_t j = 0;
    for (size_t i = 0; key[i] != '\0'; i++) {
        if (!isalpha((unsigned char)key[i])) continue;
        if (j + 1 == sizeof letters) {
            for (; *needles != NULL; needles++)
                if (letters_contain(key, *needles)) return true;
            return false;
        }
        letters[j++] = (char)tolower((unsigned char)key[i]);
    }
    letters[j] = '\0';
    for (; *needles != NULL; needles++)
        if (strstr(letters, *needles) != NULL) return true;
    return false;
}

bool ph_key_is_secret(const char *key)
{
    if (key == NULL) return false;
    static const char *const whole[] = {"password",      "passwd",     "passphrase", "secret",
                                        "token",         "credential", "apikey",     "privatekey",
                                        "authorization", "cookie",     NULL};
    if (letters_contain_any(key, whole)) return true;
    struct word prev = {key, 0}, w;
    size_t i = next_word(key, 0, &w);
    while (w.n > 0) {
        struct word next;
        size_t j = next_word(key, i, &next);
        if (word_names_secret(w) || key_word_is_secret(w, prev, next.n == 0)) return true;
        prev = w;
        w = next;
        i = j;
    }
    return false;
}

/* ---- credentials in URLs ------------------------------------------------ */

/* Characters a URL cannot hold and that delimit one in running text. */
static bool url_stop(unsigned char c)
{
    return c == '\0' || isspace(c) || c == '"' || c == '<' || c == '>';
}

/* For the authority starting at s[a] (just after "://"): the index of the
 * '@' that ends its userinfo, or `len` when it has none. */
static size_t userinfo_end(const char *s, size_t len, size_t a)
{
    size_t e = a, at = len;
    /* RFC 3986 ends the authority at '/', '?' or '#'. Only '/' ends it here:
     * people write '#' and '?' unencoded in passwords, and cutting there
     * would publish the rest. The last '@' wins for the same reason
     * ("u:p@ss@host"). */
    for (; e < len && s[e] != '/' && !url_stop((unsigned char)s[e]); e++)
        if (s[e] == '@') at = e;
    if (at != len || e >= len || s[e] != '/' || s[a] == '[') return at;
    /* No '@' before the first '/'. "host:5672/" is an ordinary authority,
     * but "user:pa/ss@host" (a password with an unencoded '/') leaves a
     * colon followed by something that is not a port: then the userinfo
     * ends at the next '@' of the URL, or at the last one before the '/'
     * that follows it, as above (so that stripping the result again finds
     * the same userinfo, already masked). */
    const char *colon = memchr(s + a, ':', e - a);
    if (colon == NULL) return len;
    bool port = true;
    for (const char *p = colon + 1; p < s + e; p++)
        if (!isdigit((unsigned char)*p)) port = false;
    if (port) return len;
    size_t i = e;
    while (i < len && s[i] != '@' && !url_stop((unsigned char)s[i]))
        i++;
    if (i >= len || s[i] != '@') return len;
    for (at = i; i < len && s[i] != '/' && !url_stop((unsigned char)s[i]); i++)
        if (s[i] == '@') at = i;
    return at;
}

/* Appends k bytes to out (capacity cap) and counts them in *n, snprintf-like. */
static void emit(char *out, size_t cap, size_t *n, const char *p, size_t k)
{
    if (*n < cap) memcpy(out + *n, p, k < cap - *n ? k : cap - *n);
    *n += k;
}

static bool is_mask(const char *p, size_t k)
{
    return k == 3 && memcmp(p, "***", 3) == 0;
}

size_t ph_url_strip_credentials(const char *s, size_t len, char *out, size_t cap, size_t *stripped)
{
    size_t n = 0, count = 0, done = 0; /* s[0, done) already emitted */
    for (size_t j = 0; j + 3 <= len; j++) {
        if (!(s[j] == ':' && s[j + 1] == '/' && s[j + 2] == '/')) continue;
        size_t a = j + 3, at = userinfo_end(s, len, a);
        if (at == len) continue;
        const char *colon = memchr(s + a, ':', at - a);
        /* user:password keeps the user (who connects is useful and rarely
         * secret); a lone userinfo is usually a token and goes entirely.
         * Empty or already masked parts stay, so stripping twice is a no-op. */
        size_t from = colon != NULL ? (size_t)(colon - s) + 1 : a;
        if (from < at && !is_mask(s + from, at - from)) {
            emit(out, cap, &n, s + done, from - done);
            emit(out, cap, &n, "***", 3);
            done = at;
            count++;
        }
        j = at; /* the next URL, if any, starts after this userinfo */
    }
    emit(out, cap, &n, s + done, len - done);
    if (stripped != NULL) *stripped = count;
    return n;
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
    /* The date and time of the last second written, per thread: a status
     * document stamps thousands of workers within a few seconds, and
     * gmtime_r and strftime cost more than the rest of an entry. */
    static _Thread_local time_t last_secs = (time_t)-1;
    static _Thread_local char last[26];
    static _Thread_local size_t last_len;
    const time_t secs = (time_t)(real_ns / 1000000000ull);
    const unsigned ms = (unsigned)((real_ns / 1000000ull) % 1000ull);
    if (secs != last_secs || last_len == 0) {
        struct tm tm;
        gmtime_r(&secs, &tm);
        last_len = strftime(last, sizeof last, "%Y-%m-%dT%H:%M:%S", &tm);
        last_secs = secs;
    }
    memcpy(buf, last, last_len);
    char *p = buf + last_len; /* ".mmmZ" and the NUL: at most 26 + 6 bytes */
    p[0] = '.';
    p[1] = (char)('0' + ms / 100);
    p[2] = (char)('0' + ms / 10 % 10);
    p[3] = (char)('0' + ms % 10);
    p[4] = 'Z';
    p[5] = '\0';
}

bool ph_parse_u32(const char *s, uint32_t *out, uint32_t lo, uint32_t hi)
{
    if (s == NULL || *s < '0' || *s > '9') return false;
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < lo || v > hi) return false;
    *out = (uint32_t)v;
    return true;
}
