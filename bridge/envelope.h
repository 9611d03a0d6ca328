/* Controller documents (ph/doc.h, msgpack) -> contract envelopes (JSON).
 *
 * The controller speaks in documents that name the subject and carry the
 * data; the bridge adds what the wire needs (timestamp, version, both ids
 * written even when absent, the key order, the routing key) and refuses any
 * document whose envelope would break the contract. */
#ifndef PH_BRIDGE_ENVELOPE_H
#define PH_BRIDGE_ENVELOPE_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "contract.h"
#include "ph/record.h"

/* Limits for a document from the out ring, checked before msgpack-c
 * allocates anything. Wider than ph_mp_default_limits: a controller
 * status-full lists every worker (about 20 objects each, 10,000 workers and
 * more), and the ring already caps a document at half its size. */
extern const struct ph_mp_limits envelope_doc_limits;

/* From this many workers on, a controller status-full takes the one-pass
 * path (envelope.text). */
#define ENVELOPE_FAST_WORKERS 8

/* How every sink serialises an envelope: compact, keys in contract order,
 * and reals with 15 significant digits. jansson's default is 17, which
 * shows the binary approximation of a decimal (0.786 is written
 * 0.78600000000000003); 15 digits are the most that every decimal survives
 * a round trip through a double with, so what the controller meant (0.786)
 * is what goes on the wire. */
#define ENVELOPE_DUMP_FLAGS (JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15))

struct envelope {
    json_t *env; /* keys in contract order; owned */
    /* A controller status-full of ENVELOPE_FAST_WORKERS workers or more: the
     * whole envelope as the sinks write it (owned), its worker list checked
     * and written straight from msgpack (mprender.h); env then lists only
     * each worker's role and instance. NULL otherwise: sinks dump env. */
    char *text;
    size_t text_len;
    enum contract_kind kind;
    char rk[CONTRACT_RK_MAX]; /* routing key */
    size_t secrets_dropped;   /* secret-named keys removed from data.config */
    size_t credentials_stripped; /* URL userinfos masked in data.config strings */
};

/* Builds an envelope from its parts (NULL scope values and ids become JSON
 * null); `data` is stolen. NULL only when out of memory or a string is not
 * UTF-8. The result is not checked: see envelope_finish(). */
json_t *envelope_new(uint64_t real_ns, enum contract_kind kind, const char *type,
                     const char *origin, const char *swarm, const char *role, const char *instance,
                     const char *cid, const char *ikey, json_t *data);

/* Checks `e->env` against the contract and derives the routing key.
 * PH_OK, or PH_ERR_INVAL with the reason; e->env stays owned by e. */
int envelope_finish(struct envelope *e, char *why, size_t whylen);

/* Decodes one document, builds and checks its envelope. PH_OK with *out
 * filled (release with envelope_clear), or PH_ERR_CORRUPT / PH_ERR_INVAL with
 * a reason that names the document ("metric status-delta for
 * demo.generator.gen-1 from demo-controller: ...") when it got that far. */
int envelope_from_doc(const uint8_t *doc, size_t len, uint64_t real_ns, struct envelope *out,
                      char *why, size_t whylen);

void envelope_clear(struct envelope *e);

/* One line of the file sink's format, without its newline, through `out`:
 * {"routingKey":<rk>,"envelope":<the envelope>}, routingKey first. The
 * envelope is `text` when given (envelope.text), else env dumped with
 * ENVELOPE_DUMP_FLAGS. 0, or -1 when `out` failed or memory ran out. */
int envelope_write_line(const char *rk, const json_t *env, const char *text,
                        json_dump_callback_t out, void *ctx);

#endif
