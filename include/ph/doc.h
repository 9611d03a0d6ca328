/* Documents exchanged between the controller and the bridge over the
 * channel (ph/channel.h): one msgpack map per ring record.
 *
 * controller -> bridge ("out" ring): a message to publish.
 *   kind      str   "metric" | "outcome" | "event"
 *   type      str   "status-full" | "status-delta" (metric), the command name
 *                   (outcome), "alert" (event)
 *   swarm     str|nil  scope.swarmId   (nil: the routing segment is ALL)
 *   role      str|nil  scope.role
 *   instance  str|nil  scope.instance
 *   origin    str   the emitter's instance id
 *   cid       str|nil  correlationId
 *   ikey      str|nil  idempotencyKey
 *   data      map   the envelope's data, with the contract's field names
 *   ts        uint  optional: when the document was made, in milliseconds
 *                   since the Unix epoch; the envelope's timestamp. Outcomes
 *                   carry it, so that one sent again after a restart (the
 *                   journal could not show it delivered) is the same message
 *                   byte for byte, a replay a receiver recognises, not a
 *                   second answer. Without it the envelope is stamped when
 *                   the bridge reads the document.
 * The bridge adds timestamp (unless ts gives it) and version, orders the envelope keys, writes
 * both ids (null when nil), derives the routing key from kind/type/scope,
 * validates the result against the contract and refuses (and counts) a
 * document that would violate it.
 *
 * bridge -> controller ("in" ring): a validated signal.
 *   type      str   signal type (swarm-start, config-update, status-request...)
 *   swarm, role, instance   str|nil   the signal's scope (nil: ALL)
 *   origin    str   who sent it
 *   cid       str   correlationId (non-empty)
 *   ikey      str|nil  idempotencyKey
 *   data      map   the signal's arguments
 *   rk        str   the routing key it arrived with
 */
#ifndef PH_DOC_H
#define PH_DOC_H

#define PH_DOC_KIND "kind"
#define PH_DOC_TYPE "type"
#define PH_DOC_SWARM "swarm"
#define PH_DOC_ROLE "role"
#define PH_DOC_INSTANCE "instance"
#define PH_DOC_ORIGIN "origin"
#define PH_DOC_CID "cid"
#define PH_DOC_IKEY "ikey"
#define PH_DOC_DATA "data"
#define PH_DOC_RK "rk"
#define PH_DOC_TS "ts"

/* The latest ts a document may carry: the last millisecond a 64-bit count
 * of nanoseconds holds (in the year 2554), as the bridge keeps times. */
#define PH_DOC_TS_MAX 18446744073709ull

#endif
