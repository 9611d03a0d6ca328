/* Signal intake: what a control message must be before it may reach the
 * controller (CONTRACT §1, §2, §4, §6), and its translation into a signal
 * document (ph/doc.h) for the channel's "in" ring.
 *
 * Transport-neutral: the file/stdin reader hands whole lines of the form
 * {"routingKey": "...", "envelope": {...}}; an AMQP consumer hands the
 * delivery's routing key and body. Both end in the same checks, and every
 * way of being wrong has its own verdict, so a caller can count, log and
 * alert without parsing reason strings. */
#ifndef PH_BRIDGE_SIGCHECK_H
#define PH_BRIDGE_SIGCHECK_H

#include <stdbool.h>
#include <stddef.h>

#include <msgpack.h>

#include "contract.h"

#define SIGCHECK_DEFAULT_MAX_BYTES (256u * 1024u)
/* An oversize message up to this many times the limit is still parsed, to
 * find out whom to answer; a larger one is refused unread. */
#define SIGCHECK_IDENTIFY_FACTOR 4u
/* A rejected message is quoted by at most this many bytes (CONTRACT §6). */
#define SIGCHECK_PREFIX_MAX 120

enum sigcheck_verdict {
    SIG_OK = 0,
    SIG_OVERSIZE,            /* larger than the configured limit */
    SIG_NOT_JSON,            /* does not parse as JSON (or is not UTF-8) */
    SIG_NOT_OBJECT,          /* JSON, but the envelope is not an object */
    SIG_BAD_LINE,            /* a line that is not {"routingKey", "envelope"} */
    SIG_BAD_ROUTING_KEY,     /* not signal.<type>.<swarmId>.<role>.<instance> */
    SIG_NOT_ENVELOPE,        /* keys missing or extra; bad timestamp, version or origin */
    SIG_WRONG_KIND,          /* kind is not "signal" */
    SIG_UNKNOWN_TYPE,        /* type is not one of the seven signal types */
    SIG_TYPE_MISMATCH,       /* routing key type segment != envelope type */
    SIG_BAD_SCOPE,           /* scope is not {swarmId, role, instance} of identifiers or null */
    SIG_SCOPE_MISMATCH,      /* scope disagrees with the routing key (null <=> ALL) */
    SIG_OTHER_SWARM,         /* addressed to a swarm this bridge does not serve */
    SIG_NO_CORRELATION_ID,   /* correlationId missing, null or empty */
    SIG_BAD_IDEMPOTENCY_KEY, /* idempotencyKey neither null nor a non-empty string */
    SIG_BAD_DATA,            /* data is not an object */
    SIG_TOO_COMPLEX,         /* data beyond what the controller decodes (ph_mp_default_limits) */
    SIG_VERDICT_COUNT_
};

/* Short stable name of a verdict ("scope-mismatch"), for logs and tests. */
const char *sigcheck_verdict_name(enum sigcheck_verdict v);

struct sigcheck_cfg {
    const char *swarm; /* the swarm this bridge serves */
    size_t max_bytes;  /* largest message accepted; 0: SIGCHECK_DEFAULT_MAX_BYTES */
};

struct sigcheck_result {
    enum sigcheck_verdict verdict;
    char reason[320];
    /* The routing key as received, made printable ("" when there was none). */
    char rk[CONTRACT_RK_MAX];
    /* Start of the message, printable; values under secret-named keys are
     * replaced by "***" and URL credentials stripped when it parsed as JSON,
     * and a raw prefix stops after a secret-looking word or a "://". Only
     * filled when rejected. */
    char prefix[SIGCHECK_PREFIX_MAX + 1];
    /* When accepted: */
    char type[CONTRACT_TYPE_MAX];
    char cid[CONTRACT_STR_MAX];
    msgpack_sbuffer doc; /* the packed signal document (ph/doc.h) */
    /* When rejected but still identifiable (a signal routing key of this
     * swarm, a known type, a valid correlationId): the sender waits for an
     * outcome, and gets a failed one naming the reason. Strings exact, as
     * the envelope had them; "" for a null idempotencyKey or an ALL scope
     * segment. */
    struct {
        bool ok;
        char type[CONTRACT_TYPE_MAX];
        char cid[CONTRACT_STR_MAX];
        char ikey[CONTRACT_STR_MAX];
        char role[PH_ID_MAX];
        char instance[PH_ID_MAX];
    } answer;
};

void sigcheck_result_init(struct sigcheck_result *r);
void sigcheck_result_free(struct sigcheck_result *r);

/* An AMQP-style message: routing key and body (the envelope's JSON). */
enum sigcheck_verdict sigcheck_message(const struct sigcheck_cfg *cfg, const char *rk, size_t rklen,
                                       const char *body, size_t len, struct sigcheck_result *r);

/* One line of a signal file: `len` bytes are present; `full_len` is the
 * line's real length (larger when the reader kept only a prefix of an
 * oversize line). */
enum sigcheck_verdict sigcheck_line(const struct sigcheck_cfg *cfg, const char *line, size_t len,
                                    size_t full_len, struct sigcheck_result *r);

#endif
