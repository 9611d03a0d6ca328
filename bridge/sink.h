/* Where envelopes go. One small interface, one backend per transport, chosen
 * by a spec string (`--sink` or PH_SINK):
 *   file:PATH  JSON lines {"routingKey": "...", "envelope": {...}} (sink_file.c)
 *   amqp       RabbitMQ ph.control exchange (the next step; refused for now)
 *
 * publish() hands one checked envelope over (the sink may buffer it);
 * flush() pushes what is buffered, once per loop tick. A backend that also
 * receives signals (AMQP) feeds them to bridge_signal_message(). */
#ifndef PH_BRIDGE_SINK_H
#define PH_BRIDGE_SINK_H

#include <stddef.h>

#include <jansson.h>

#include "contract.h"

struct sink;

struct sink_ops {
    /* `env` is borrowed. `kind` lets a transport treat outcomes and alerts
     * (must not be lost) differently from status (the latest wins). */
    int (*publish)(struct sink *s, const char *rk, const json_t *env, enum contract_kind kind,
                   char *err, size_t errlen);
    int (*flush)(struct sink *s, char *err, size_t errlen);
    void (*close)(struct sink *s);
};

struct sink {
    const struct sink_ops *ops;
    char spec[64]; /* for logs: "file:/path" shortened, "amqp" */
};

/* Opens the sink named by `spec`. PH_ERR_INVAL for a spec this build does not
 * provide (with the reason), PH_ERR_SYS when the backend cannot start. */
int sink_open(const char *spec, struct sink **out, char *err, size_t errlen);

static inline int sink_publish(struct sink *s, const char *rk, const json_t *env,
                               enum contract_kind kind, char *err, size_t errlen)
{
    return s->ops->publish(s, rk, env, kind, err, errlen);
}
static inline int sink_flush(struct sink *s, char *err, size_t errlen)
{
    return s->ops->flush(s, err, errlen);
}
static inline void sink_close(struct sink *s)
{
    if (s != NULL) s->ops->close(s);
}

/* Backends. */
int sink_file_open(const char *path, struct sink **out, char *err, size_t errlen);

#endif
