/* The ph.control wire contract (CONTRACT.md) as code: message kinds, signal
 * types, routing keys, and the checks every envelope must pass before the
 * bridge lets it out.
 *
 * All knowledge of the contract's JSON field names lives in bridge/: here
 * (what is allowed) and in envelope.c / sigcheck.c (how documents and
 * signals are translated). Transports (the file sink now, AMQP next) only
 * move bytes and never look inside an envelope. */
#ifndef PH_BRIDGE_CONTRACT_H
#define PH_BRIDGE_CONTRACT_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "ph/common.h"

#define CONTRACT_VERSION "1"
#define CONTRACT_CONTROLLER_ROLE "swarm-controller"
#define CONTRACT_ALL "ALL"
/* Longest routing key: "event.outcome." + a 31-byte type + three 63-byte
 * identifiers and their dots, with room to spare. */
#define CONTRACT_RK_MAX 256
/* correlationId, idempotencyKey and origin: at most 255 bytes, the size the
 * controller keeps them in. */
#define CONTRACT_STR_MAX 256
/* Message types (signal and outcome command names, metric and event types). */
#define CONTRACT_TYPE_MAX 32

enum contract_kind {
    CK_SIGNAL = 0,
    CK_OUTCOME = 1,
    CK_METRIC = 2,
    CK_EVENT = 3,
};

/* The envelope's keys, in the order they must be written. */
#define CONTRACT_ENVELOPE_KEYS 9
extern const char *const contract_envelope_keys[CONTRACT_ENVELOPE_KEYS];
/* The seven signal types; also the types an outcome may carry. */
#define CONTRACT_SIGNAL_TYPES 7
extern const char *const contract_signal_types[CONTRACT_SIGNAL_TYPES];

/* "signal" | "outcome" | "metric" | "event" -> enum; -1 when unknown. */
int contract_kind_parse(const char *s);
const char *contract_kind_name(enum contract_kind k);
bool contract_signal_type_known(const char *s);

/* Builds the routing key of a message; a NULL scope value is the segment ALL.
 * Refuses a kind/type pair the contract does not know and identifiers that
 * cannot be a routing segment. PH_OK or PH_ERR_INVAL with a reason. */
int contract_rk_build(char *buf, size_t n, enum contract_kind kind, const char *type,
                      const char *swarm, const char *role, const char *instance, char *why,
                      size_t whylen);

/* A parsed routing key. Scope segments are "" when the key says ALL. */
struct contract_rk {
    enum contract_kind kind;
    char type[CONTRACT_TYPE_MAX];
    char swarm[PH_ID_MAX];
    char role[PH_ID_MAX];
    char instance[PH_ID_MAX];
};
/* Parses signal.<type>.<s>.<r>.<i> or event.<metric|outcome|alert>.<type>.<s>.<r>.<i>;
 * every segment must be an identifier or ALL. */
int contract_rk_parse(const char *rk, struct contract_rk *out, char *why, size_t whylen);

/* RFC 3339 date-time (full-date "T" full-time, with "Z" or a numeric offset),
 * field ranges included. */
bool contract_rfc3339_valid(const char *s);

/* Removes every member whose key names a secret from `v` and from all
 * objects nested in it; returns how many were removed. */
size_t contract_drop_secrets(json_t *v);

/* Checks a whole envelope against the contract: keys exactly and in order,
 * timestamp, version, kind and type, origin, scope, both ids, and the data
 * rules of the kind (closed status and alert data, status-delta without
 * heavy fields, no per-worker lists outside the controller's status-full,
 * outcome status...). PH_OK, or PH_ERR_INVAL with the first violation. */
int contract_check_envelope(const json_t *env, char *why, size_t whylen);

/* Parts of the envelope check, reused by the signal intake. */
int contract_check_scope(const json_t *scope, char *why, size_t whylen);
/* A correlationId / idempotencyKey: a non-empty string of at most
 * CONTRACT_STR_MAX-1 bytes, or null when !required. */
int contract_check_id(const char *name, const json_t *v, bool required, char *why, size_t whylen);

#endif
