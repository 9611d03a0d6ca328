/* Documents as the controller writes them (ph/doc.h), built as JSON for
 * readability and packed to msgpack, for the unit tests and the fake
 * controller. Every builder returns a valid document; tests break one field
 * at a time to prove each refusal. */
#ifndef PH_BRIDGE_SAMPLE_DOCS_H
#define PH_BRIDGE_SAMPLE_DOCS_H

#include <jansson.h>
#include <msgpack.h>

#define SAMPLE_TS "2026-11-27T02:00:00.000Z"

/* Header of a document: NULL strings become nil. `data` is stolen. */
json_t *sample_doc(const char *kind, const char *type, const char *swarm, const char *role,
                   const char *instance, const char *origin, const char *cid, const char *ikey,
                   json_t *data);

/* Status data pieces. */
json_t *sample_iostate(const char *in, const char *out);
json_t *sample_io(void);
/* A config with secret-named keys at two depths (password, nested.apiKey). */
json_t *sample_config_with_secrets(void);

/* Whole documents. `ctl` is the controller instance. */
json_t *sample_controller_full(const char *swarm, const char *ctl, const char *cid,
                               const char *tag);
json_t *sample_controller_delta(const char *swarm, const char *ctl);
json_t *sample_worker_full(const char *swarm, const char *role, const char *inst, const char *ctl);
json_t *sample_worker_delta(const char *swarm, const char *role, const char *inst, const char *ctl);
json_t *sample_outcome(const char *swarm, const char *ctl, const char *type, const char *cid,
                       const char *ikey, const char *status);
json_t *sample_alert(const char *swarm, const char *role, const char *inst, const char *ctl);

/* Packs a document (JSON) into sb, secrets kept: the bridge must remove them. */
void sample_pack(const json_t *doc, msgpack_sbuffer *sb);

/* A signal line {"routingKey", "envelope"} as a sender would write it.
 * NULL scope values become null and the segment ALL. Returns a malloc'd
 * string. */
char *sample_signal_line(const char *type, const char *swarm, const char *role,
                         const char *instance, const char *cid, const char *ikey, json_t *data);
json_t *sample_signal_envelope(const char *type, const char *swarm, const char *role,
                               const char *instance, const char *cid, const char *ikey,
                               json_t *data);

#endif
