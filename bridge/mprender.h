/* A controller status-full's worker list, checked and written as JSON text
 * straight from the decoded msgpack in one pass.
 *
 * The list is all of the document that grows with the swarm: 10,000 workers
 * are some 250,000 values. Through a jansson tree they cost a tree build, a
 * shape check, the contract check, a dump and a free, most of a 2 MB
 * document's time in the bridge. Here each entry is checked against the
 * contract (the rules and words of contract.c's check of a worker entry) as
 * it is written, in the byte form jansson gives with ENVELOPE_DUMP_FLAGS,
 * so that the envelope reads the same either way. The rest of the envelope
 * is small and goes the usual way (envelope.c). */
#ifndef PH_BRIDGE_MPRENDER_H
#define PH_BRIDGE_MPRENDER_H

#include <jansson.h>
#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>

/* A growing text buffer; `oom` once an allocation failed. */
struct jbuf {
    char *p;
    size_t len, cap;
    bool oom;
};
void jbuf_put(struct jbuf *b, const char *s, size_t n);
/* Room for n more bytes at once; a hint: false without the memory, and the
 * buffer stays usable (unlike a failed write, which sets `oom`). */
bool jbuf_reserve(struct jbuf *b, size_t n);
void jbuf_free(struct jbuf *b);

/* Writes `o` as JSON, as jansson dumps its conversion (ph_mp_to_json) with
 * ENVELOPE_DUMP_FLAGS: compact, keys in order, reals with 15 significant
 * digits, bin and ext as null, integers above INT64_MAX as INT64_MAX.
 * PH_OK, or PH_ERR_INVAL for what a JSON envelope cannot carry: a string
 * that is not UTF-8, a map key that is not a string or holds a NUL byte, a
 * duplicate key, NaN or infinity. */
int mp_write_json(const msgpack_object *o, struct jbuf *b);

/* Checks data.context.workers (`arr`, a msgpack array) entry by entry and
 * writes it ("[...]") into `b`. PH_OK with *ids a new JSON array of
 * {"role", "instance"} per entry (what the AMQP sink binds by), or
 * PH_ERR_INVAL with the reason (the words contract.c uses), or PH_ERR_SYS
 * when memory ran out. */
int mp_workers_render(const msgpack_object *arr, struct jbuf *b, json_t **ids, char *why,
                      size_t whylen);

#endif
