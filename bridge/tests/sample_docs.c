/* Sample controller documents and signal lines (sample_docs.h). */
#include "sample_docs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ph/mpjson.h"

static json_t *str_or_null(const char *s)
{
    return s != NULL ? json_string(s) : json_null();
}

json_t *sample_doc(const char *kind, const char *type, const char *swarm, const char *role,
                   const char *instance, const char *origin, const char *cid, const char *ikey,
                   json_t *data)
{
    json_t *d = json_object();
    json_object_set_new(d, "kind", str_or_null(kind));
    json_object_set_new(d, "type", str_or_null(type));
    json_object_set_new(d, "swarm", str_or_null(swarm));
    json_object_set_new(d, "role", str_or_null(role));
    json_object_set_new(d, "instance", str_or_null(instance));
    json_object_set_new(d, "origin", str_or_null(origin));
    json_object_set_new(d, "cid", str_or_null(cid));
    json_object_set_new(d, "ikey", str_or_null(ikey));
    json_object_set_new(d, "data", data);
    return d;
}

json_t *sample_iostate(const char *in, const char *out)
{
    return json_pack("{s:{s:s,s:s}}", "work", "input", in, "output", out);
}

json_t *sample_io(void)
{
    return json_pack("{s:{s:{s:[s],s:[s]},s:{s:{s:i,s:i,s:f}}},s:{s:{s:[s]}}}", "work", "queues",
                     "in", "ph.demo.gen", "out", "ph.demo.mod", "queueStats", "ph.demo.gen",
                     "depth", 3, "consumers", 1, "oldestAgeSec", 0.5, "control", "queues", "in",
                     "ph.control.demo.generator.gen-1");
}

json_t *sample_config_with_secrets(void)
{
    return json_pack("{s:i,s:s,s:{s:s,s:b},s:[{s:s}]}", "ratePerSec", 50, "password", "hunter2",
                     "target", "apiKey", "xyz", "tls", 1, "headers", "authorization", "Bearer abc");
}

static json_t *controller_context(bool full, const char *tag)
{
    json_t *ctx = json_pack("{s:s,s:s,s:{s:i,s:i,s:i,s:i},s:s,s:i,s:{},s:{s:s}}", "swarmStatus",
                            "RUNNING", "state", "Degraded", "totals", "desired", 4, "healthy", 3,
                            "running", 3, "enabled", 3, "watermark", SAMPLE_TS, "maxStalenessSec",
                            2, "scenario", "journal", "runId", "run-1");
    if (tag != NULL) json_object_set_new(ctx, "fakeTag", json_string(tag));
    if (full) {
        json_t *w = json_array();
        static const char *const roles[][2] = {
            {"generator", "gen-1"}, {"moderator", "mod-1"}, {"processor", "proc-1"}};
        for (int i = 0; i < 3; i++)
            json_array_append_new(w, json_pack("{s:s,s:s,s:b,s:i,s:o,s:s,s:b,s:s,s:s}", "role",
                                               roles[i][0], "instance", roles[i][1], "enabled", 1,
                                               "tps", 10 + i, "ioState",
                                               sample_iostate("ok", "ok"), "lastSeenAt", SAMPLE_TS,
                                               "stale", 0, "location", "host-a", "transport",
                                               "shm"));
        json_object_set_new(ctx, "workers", w);
    }
    return ctx;
}

json_t *sample_controller_full(const char *swarm, const char *ctl, const char *cid, const char *tag)
{
    json_t *data =
        json_pack("{s:b,s:i,s:o,s:o,s:o,s:s,s:o}", "enabled", 1, "tps", 33, "ioState",
                  sample_iostate("ok", "throttled"), "config", sample_config_with_secrets(), "io",
                  sample_io(), "startedAt", SAMPLE_TS, "context", controller_context(true, tag));
    return sample_doc("metric", "status-full", swarm, "swarm-controller", ctl, ctl, cid, NULL,
                      data);
}

json_t *sample_controller_delta(const char *swarm, const char *ctl)
{
    json_t *data =
        json_pack("{s:b,s:i,s:o,s:o}", "enabled", 1, "tps", 33, "ioState",
                  sample_iostate("backpressure", "ok"), "context", controller_context(false, NULL));
    return sample_doc("metric", "status-delta", swarm, "swarm-controller", ctl, ctl, NULL, NULL,
                      data);
}

json_t *sample_worker_full(const char *swarm, const char *role, const char *inst, const char *ctl)
{
    json_t *data = json_pack("{s:b,s:i,s:o,s:o,s:o,s:s,s:{s:s}}", "enabled", 0, "tps", 0, "ioState",
                             sample_iostate("out-of-data", "ok"), "config",
                             json_pack("{s:i}", "ratePerSec", 5), "io", sample_io(), "startedAt",
                             "2026-11-27T01:59:58.5+01:00", "context", "location", "local");
    return sample_doc("metric", "status-full", swarm, role, inst, ctl, NULL, NULL, data);
}

json_t *sample_worker_delta(const char *swarm, const char *role, const char *inst, const char *ctl)
{
    json_t *data = json_pack("{s:b,s:i,s:o}", "enabled", 1, "tps", 12, "ioState",
                             sample_iostate("ok", "downstream-error"));
    return sample_doc("metric", "status-delta", swarm, role, inst, ctl, NULL, NULL, data);
}

json_t *sample_outcome(const char *swarm, const char *ctl, const char *type, const char *cid,
                       const char *ikey, const char *status)
{
    json_t *data = json_pack("{s:s,s:b,s:b}", "status", status, "retryable", 0, "enabled", 1);
    return sample_doc("outcome", type, swarm, "swarm-controller", ctl, ctl, cid, ikey, data);
}

json_t *sample_alert(const char *swarm, const char *role, const char *inst, const char *ctl)
{
    json_t *data =
        json_pack("{s:s,s:s,s:s,s:n,s:{s:s}}", "level", "warn", "code", "io.out-of-data", "message",
                  "dataset exhausted", "logRef", "context", "dataset", "users.csv");
    return sample_doc("event", "alert", swarm, role, inst, ctl, NULL, NULL, data);
}

void sample_pack(const json_t *doc, msgpack_sbuffer *sb)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    ph_json_pack(&pk, doc, false);
}

json_t *sample_signal_envelope(const char *type, const char *swarm, const char *role,
                               const char *instance, const char *cid, const char *ikey,
                               json_t *data)
{
    return json_pack("{s:s,s:s,s:s,s:s,s:s,s:{s:o,s:o,s:o},s:o,s:o,s:o}", "timestamp", SAMPLE_TS,
                     "version", "1", "kind", "signal", "type", type, "origin", "orchestrator-1",
                     "scope", "swarmId", str_or_null(swarm), "role", str_or_null(role), "instance",
                     str_or_null(instance), "correlationId", str_or_null(cid), "idempotencyKey",
                     str_or_null(ikey), "data", data);
}

char *sample_signal_line(const char *type, const char *swarm, const char *role,
                         const char *instance, const char *cid, const char *ikey, json_t *data)
{
    char rk[256];
    snprintf(rk, sizeof rk, "signal.%s.%s.%s.%s", type, swarm ? swarm : "ALL", role ? role : "ALL",
             instance ? instance : "ALL");
    json_t *line = json_pack("{s:s,s:o}", "routingKey", rk, "envelope",
                             sample_signal_envelope(type, swarm, role, instance, cid, ikey, data));
    char *s = json_dumps(line, JSON_COMPACT);
    json_decref(line);
    return s;
}
