/* The broker's address and broker replies as sentences (ph/amqp.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ph/amqp.h"
#include "ph/common.h"

int ph_amqp_url_load(struct ph_amqp_url *u, const char *file, char *err, size_t errlen)
{
    memset(u, 0, sizeof *u);
    if (file != NULL) {
        FILE *f = fopen(file, "re");
        if (f == NULL) {
            snprintf(err, errlen, "cannot open the AMQP URL file %s: %s", file, strerror(errno));
            return PH_ERR_SYS;
        }
        bool ok = fgets(u->raw, sizeof u->raw, f) != NULL;
        fclose(f);
        if (!ok) u->raw[0] = '\0';
    } else {
        const char *env = getenv("PH_AMQP_URL");
        if (env == NULL || env[0] == '\0') {
            snprintf(err, errlen, "no broker URL: set PH_AMQP_URL or give --amqp-url-file PATH "
                                  "(deploy/rabbitmq start writes one)");
            return PH_ERR_INVAL;
        }
        if (strlen(env) >= sizeof u->raw) {
            snprintf(err, errlen, "PH_AMQP_URL is too long");
            return PH_ERR_INVAL;
        }
        snprintf(u->raw, sizeof u->raw, "%s", env);
    }
    u->raw[strcspn(u->raw, "\r\n")] = '\0';
    if (u->raw[0] == '\0') {
        snprintf(err, errlen, "the AMQP URL%s%s is empty", file ? " file " : "", file ? file : "");
        return PH_ERR_INVAL;
    }
    memcpy(u->url, u->raw, sizeof u->url);
    amqp_default_connection_info(&u->ci);
    if (amqp_parse_url(u->url, &u->ci) != AMQP_STATUS_OK) {
        /* Not quoted: it may hold a password. */
        snprintf(err, errlen,
                 "the AMQP URL%s is not amqp://user:password@host:port/vhost (not shown: it "
                 "may hold a password)",
                 file ? " in the file" : " in PH_AMQP_URL");
        ph_amqp_url_wipe(u);
        return PH_ERR_INVAL;
    }
    if (u->ci.ssl) {
        snprintf(err, errlen, "amqps:// URLs are not supported by this build; use amqp://");
        ph_amqp_url_wipe(u);
        return PH_ERR_INVAL;
    }
    snprintf(u->where, sizeof u->where, "%.64s@%.128s:%d vhost '%.64s'", u->ci.user, u->ci.host,
             u->ci.port, u->ci.vhost);
    return PH_OK;
}

void ph_amqp_url_wipe(struct ph_amqp_url *u)
{
    /* volatile: the compiler must not drop a store to memory about to die. */
    volatile char *p = u->url, *q = u->raw;
    for (size_t i = 0; i < sizeof u->url; i++) p[i] = q[i] = 0;
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
