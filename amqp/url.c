/* The broker's address and broker replies as sentences (ph/amqp.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ph/amqp.h"
#include "ph/common.h"

/* A URL file larger than this is refused (URLs and comments). */
#define URL_FILE_MAX (64u << 10)

/* Overwrites n bytes: the compiler must not drop stores to memory about to
 * die (volatile). */
static void wipe(void *p, size_t n)
{
    volatile char *v = p;
    for (size_t i = 0; i < n; i++) v[i] = 0;
}

static bool blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

/* Adds the entry s[0..len) as the next URL of the list. */
static int add_url(struct ph_amqp_url *u, const char *s, size_t len, const char *source,
                   size_t line, char *err, size_t errlen)
{
    const size_t n = u->count + 1;
    char at[64] = "";
    if (line > 0) snprintf(at, sizeof at, " (line %zu)", line);
    if (u->count == PH_AMQP_URLS_MAX) {
        snprintf(err, errlen, "%s lists more than %d broker URLs", source, PH_AMQP_URLS_MAX);
        return PH_ERR_INVAL;
    }
    if (len >= PH_AMQP_URL_MAX) {
        snprintf(err, errlen, "AMQP URL %zu of %s%s is too long (%d bytes at most)", n, source,
                 at, PH_AMQP_URL_MAX - 1);
        return PH_ERR_INVAL;
    }
    char *dst = u->list[u->count];
    memcpy(dst, s, len);
    dst[len] = '\0';
    /* amqp_parse_url writes into the string it parses: a scratch copy. */
    char tmp[PH_AMQP_URL_MAX];
    memcpy(tmp, dst, len + 1);
    struct amqp_connection_info ci;
    amqp_default_connection_info(&ci);
    int rc = PH_OK;
    if (amqp_parse_url(tmp, &ci) != AMQP_STATUS_OK) {
        /* Not quoted: it may hold a password. */
        snprintf(err, errlen,
                 "AMQP URL %zu of %s%s is not amqp://user:password@host:port/vhost (not shown: "
                 "it may hold a password)",
                 n, source, at);
        rc = PH_ERR_INVAL;
    } else if (ci.ssl) {
        snprintf(err, errlen,
                 "AMQP URL %zu of %s%s: amqps:// URLs are not supported by this build; use "
                 "amqp://",
                 n, source, at);
        rc = PH_ERR_INVAL;
    } else {
        snprintf(u->list_where[u->count], sizeof u->list_where[u->count],
                 "%.64s@%.128s:%d vhost '%.64s'", ci.user, ci.host, ci.port, ci.vhost);
        u->count++;
    }
    wipe(tmp, sizeof tmp);
    if (rc != PH_OK) wipe(dst, PH_AMQP_URL_MAX);
    return rc;
}

int ph_amqp_url_parse(struct ph_amqp_url *u, const char *text, const char *source, char *err,
                      size_t errlen)
{
    memset(u, 0, sizeof *u);
    /* Line numbers help only in a file of several lines. */
    const bool numbered = strchr(text, '\n') != NULL && strchr(text, '\n')[1] != '\0';
    size_t line = 0;
    for (const char *p = text; *p != '\0';) {
        const char *eol = strchr(p, '\n');
        const char *end = eol != NULL ? eol : p + strlen(p);
        line++;
        while (p < end && blank(*p)) p++;
        if (p < end && *p != '#') {
            /* Comma-separated entries. */
            while (p < end) {
                const char *comma = memchr(p, ',', (size_t)(end - p));
                const char *e = comma != NULL ? comma : end;
                const char *b = p;
                while (b < e && blank(*b)) b++;
                const char *t = e;
                while (t > b && blank(t[-1])) t--;
                if (t > b) {
                    int rc = add_url(u, b, (size_t)(t - b), source, numbered ? line : 0, err,
                                     errlen);
                    if (rc != PH_OK) {
                        ph_amqp_url_wipe(u);
                        u->count = 0;
                        return rc;
                    }
                }
                p = comma != NULL ? comma + 1 : end;
            }
        }
        p = eol != NULL ? eol + 1 : end;
    }
    if (u->count == 0) {
        snprintf(err, errlen, "%s holds no AMQP URL", source);
        return PH_ERR_INVAL;
    }
    /* The first broker in the single-URL fields. */
    memcpy(u->raw, u->list[0], sizeof u->raw);
    memcpy(u->url, u->list[0], sizeof u->url);
    amqp_default_connection_info(&u->ci);
    (void)amqp_parse_url(u->url, &u->ci); /* checked by add_url */
    memcpy(u->where, u->list_where[0], sizeof u->where);
    return PH_OK;
}

int ph_amqp_url_load(struct ph_amqp_url *u, const char *file, char *err, size_t errlen)
{
    memset(u, 0, sizeof *u);
    if (file == NULL) {
        const char *env = getenv("PH_AMQP_URL");
        if (env == NULL || env[0] == '\0') {
            snprintf(err, errlen, "no broker URL: set PH_AMQP_URL or give --amqp-url-file PATH "
                                  "(deploy/rabbitmq start writes one)");
            return PH_ERR_INVAL;
        }
        return ph_amqp_url_parse(u, env, "PH_AMQP_URL", err, errlen);
    }
    FILE *f = fopen(file, "re");
    if (f == NULL) {
        snprintf(err, errlen, "cannot open the AMQP URL file %s: %s", file, strerror(errno));
        return PH_ERR_SYS;
    }
    char *buf = malloc(URL_FILE_MAX + 1);
    if (buf == NULL) {
        fclose(f);
        snprintf(err, errlen, "out of memory reading %s", file);
        return PH_ERR_SYS;
    }
    const size_t n = fread(buf, 1, URL_FILE_MAX + 1, f);
    const bool failed = ferror(f) != 0;
    fclose(f);
    int rc;
    if (failed) {
        snprintf(err, errlen, "cannot read the AMQP URL file %s", file);
        rc = PH_ERR_SYS;
    } else if (n > URL_FILE_MAX) {
        snprintf(err, errlen, "the AMQP URL file %s is larger than %u bytes", file, URL_FILE_MAX);
        rc = PH_ERR_INVAL;
    } else if (memchr(buf, '\0', n) != NULL) {
        snprintf(err, errlen, "the AMQP URL file %s is not text", file);
        rc = PH_ERR_INVAL;
    } else {
        buf[n] = '\0';
        char source[PH_AMQP_URL_MAX];
        snprintf(source, sizeof source, "the file %s", file);
        rc = ph_amqp_url_parse(u, buf, source, err, errlen);
    }
    wipe(buf, URL_FILE_MAX + 1);
    free(buf);
    return rc;
}

void ph_amqp_url_wipe(struct ph_amqp_url *u)
{
    wipe(u->url, sizeof u->url);
    wipe(u->raw, sizeof u->raw);
    wipe(u->list, sizeof u->list);
}

void ph_amqp_describe_reply(amqp_rpc_reply_t r, char *buf, size_t n)
{
    switch (r.reply_type) {
    case AMQP_RESPONSE_NORMAL: snprintf(buf, n, "ok"); break;
    case AMQP_RESPONSE_NONE: snprintf(buf, n, "no reply from the broker"); break;
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
        snprintf(buf, n, "%s", amqp_error_string2(r.library_error));
        break;
    case AMQP_RESPONSE_SERVER_EXCEPTION:
        if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
            const amqp_connection_close_t *m = r.reply.decoded;
            snprintf(buf, n, "broker closed the connection: %u %.*s", m->reply_code,
                     (int)m->reply_text.len, (const char *)m->reply_text.bytes);
        } else if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
            const amqp_channel_close_t *m = r.reply.decoded;
            snprintf(buf, n, "broker closed the channel: %u %.*s", m->reply_code,
                     (int)m->reply_text.len, (const char *)m->reply_text.bytes);
        } else {
            snprintf(buf, n, "unexpected broker method 0x%08x", r.reply.id);
        }
        break;
    }
}
