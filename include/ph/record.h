/* Records exchanged through a slot's rings.
 *
 * worker -> controller (status ring):
 *   PH_REC_STATUS  fixed 32-byte body: the worker's absolute state (cumulative
 *                  processed and error counts, enabled, work ioState).
 *   PH_REC_CONFIG  msgpack map: the effective configuration, secrets removed.
 *   PH_REC_IO      msgpack map: io topology ({work: {queues: {in, out}}}...).
 *   PH_REC_ALERT   msgpack map: {level, code, message[, context]}.
 *   PH_REC_ACK     msgpack map: {token, ok[, message]} answering a command.
 *   PH_REC_META    msgpack map: {location, transport}: where the worker runs and
 *                  how its status reaches the controller, sent once after the
 *                  claim by workers that are not plain local ones (a worker
 *                  that sends none is local: the controller's host, "shm").
 * controller -> worker (command ring):
 *   PH_CMD_CONFIG_PATCH   msgpack map {token, patch: map}
 *   PH_CMD_STATUS_REQUEST msgpack map {token}
 *   PH_CMD_STOP           msgpack map {token}
 *
 * Every record is absolute state or a self-contained event, so a record lost
 * to a full ring is repaired by the next one of its kind. Decoders validate
 * sizes, enum ranges and msgpack structure (with limits) before use. */
#ifndef PH_RECORD_H
#define PH_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "ph/common.h"

#ifdef __cplusplus
extern "C" {
#endif

enum ph_rec_type {
    PH_REC_STATUS = 1,
    PH_REC_CONFIG = 2,
    PH_REC_IO = 3,
    PH_REC_ALERT = 4,
    PH_REC_ACK = 5,
    PH_REC_META = 6,
    PH_CMD_CONFIG_PATCH = 16,
    PH_CMD_STATUS_REQUEST = 17,
    PH_CMD_STOP = 18,
};

/* Work ioState values. Numeric order is the contract's priority order, so
 * combining several workers' values is a max(). */
enum ph_io_in {
    PH_IN_UNKNOWN = 0,
    PH_IN_OK = 1,
    PH_IN_BACKPRESSURE = 2,
    PH_IN_OUT_OF_DATA = 3,
    PH_IN_UPSTREAM_ERROR = 4,
    PH_IN_MAX_ = PH_IN_UPSTREAM_ERROR,
};
enum ph_io_out {
    PH_OUT_UNKNOWN = 0,
    PH_OUT_OK = 1,
    PH_OUT_THROTTLED = 2,
    PH_OUT_BLOCKED = 3,
    PH_OUT_DOWNSTREAM_ERROR = 4,
    PH_OUT_MAX_ = PH_OUT_DOWNSTREAM_ERROR,
};
const char *ph_io_in_name(int v);  /* "ok", "out-of-data"...; "unknown" if out of range */
const char *ph_io_out_name(int v);
int ph_io_in_parse(const char *s);  /* -1 when not a known value */
int ph_io_out_parse(const char *s);

#define PH_STATUS_ENABLED 0x1u

struct ph_rec_status {
    uint64_t mono_ns;   /* worker clock (CLOCK_MONOTONIC_COARSE) at publication */
    uint64_t processed; /* cumulative items processed since attach */
    uint64_t errors;    /* cumulative items failed since attach */
    uint32_t seq;       /* status records published since attach */
    uint8_t flags;      /* PH_STATUS_ENABLED */
    uint8_t io_in;      /* enum ph_io_in */
    uint8_t io_out;     /* enum ph_io_out */
    uint8_t reserved;   /* zero */
};
#define PH_REC_STATUS_SIZE 32u

/* Checks size, flags and enum ranges; copies into *out. */
int ph_rec_status_decode(const uint8_t *body, uint32_t len, struct ph_rec_status *out);

/* Limits applied to every msgpack body before msgpack-c sees it. */
struct ph_mp_limits {
    uint32_t max_depth;   /* nesting of maps/arrays */
    uint32_t max_objects; /* objects in total */
    uint32_t max_str;     /* bytes in one str/bin/ext */
};
extern const struct ph_mp_limits ph_mp_default_limits;

/* Walks a msgpack buffer without allocating and checks that it holds exactly
 * one well-formed object within the limits, every container count backed by
 * enough bytes. Returns PH_OK or PH_ERR_CORRUPT with a reason in err. */
int ph_mp_check(const uint8_t *buf, size_t len, const struct ph_mp_limits *lim, char *err,
                size_t errlen);

/* ph_mp_check, then unpacks into `zone`; the top-level object must be a map
 * when `want_map`. */
int ph_mp_decode(const uint8_t *buf, size_t len, bool want_map, msgpack_zone *zone,
                 msgpack_object *out, char *err, size_t errlen);

/* Finds key `k` in a msgpack map; NULL when absent. */
const msgpack_object *ph_mp_map_get(const msgpack_object *map, const char *k);
/* Copies a str object into buf (NUL-terminated). false when not a str or too long. */
bool ph_mp_str(const msgpack_object *o, char *buf, size_t n);

/* Command and ack bodies. */
struct ph_rec_alert {
    char level[8]; /* info | warn | error */
    char code[64];
    char message[256];
};
int ph_rec_alert_encode(msgpack_sbuffer *sb, const char *level, const char *code,
                        const char *message);
int ph_rec_alert_decode(const uint8_t *body, uint32_t len, struct ph_rec_alert *out);

struct ph_rec_ack {
    uint64_t token;
    bool ok;
    char message[256];
};
int ph_rec_ack_encode(msgpack_sbuffer *sb, uint64_t token, bool ok, const char *message);
int ph_rec_ack_decode(const uint8_t *body, uint32_t len, struct ph_rec_ack *out);

/* Where a worker runs and how it reports (PH_REC_META). */
#define PH_LOCATION_MAX 64
struct ph_rec_meta {
    char location[PH_LOCATION_MAX]; /* host name: printable ASCII, no spaces */
    char transport[8];              /* "shm" | "relay" | "amqp" */
};
/* true when `t` is one of the transports above. */
bool ph_transport_ok(const char *t);
/* true when `s` is a non-empty location of at most PH_LOCATION_MAX - 1
 * printable ASCII bytes without spaces. */
bool ph_location_ok(const char *s);
int ph_rec_meta_encode(msgpack_sbuffer *sb, const char *location, const char *transport);
/* PH_ERR_CORRUPT unless both members are present and valid. */
int ph_rec_meta_decode(const uint8_t *body, uint32_t len, struct ph_rec_meta *out);

/* Command body: {token[, patch]}; patch is written from packed msgpack bytes. */
int ph_cmd_encode(msgpack_sbuffer *sb, uint64_t token, const uint8_t *patch, size_t patch_len);

#ifdef __cplusplus
}
#endif
#endif
