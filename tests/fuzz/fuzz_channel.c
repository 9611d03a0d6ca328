/* Fuzz target: the controller <-> bridge channel (ph/channel.h) as its two
 * readers meet it.
 *
 * The input is the whole channel object, written to this process's private
 * /dev/shm/ph.pht-fuzz-<pid>.bridge (the header's swarm id set to that
 * name when the input reaches it; everything else is the input's) and
 * opened with ph_channel_open. A channel that passes is read as the bridge
 * reads it when it attaches (bridge/bridge.c): it registers, attaches a
 * consumer to the out ring and a producer to the in ring (positions
 * validated), drains the out ring without handing space back, turning every
 * document into a contract envelope (envelope_from_doc, which validates it
 * against the contract), hands space back record by record, and writes a
 * signal into the in ring. Then as the controller reads the in ring: every
 * signal document decoded (ph_mp_decode, its data through ph_mp_to_json). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "contract.h"
#include "envelope.h"
#include "fuzz_check.h"
#include "fuzz_shm.h"
#include "ph/channel.h"
#include "ph/doc.h"
#include "ph/log.h"
#include "ph/mpjson.h"
#include "ph/record.h"
#include "ph/shm.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char swarm[PH_ID_MAX];
static char shm_name[PH_ID_MAX + 16];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    ph_log_set_level(PH_LOG_ERROR);
    fuzz_swarm_id(swarm);
    snprintf(shm_name, sizeof shm_name, "/ph.%s.bridge", swarm);
    return 0;
}

struct out_ctx {
    ph_ring_consumer *c;
    uint64_t ends[64]; /* positions just past the first documents */
    unsigned n;
};

static int on_doc(void *ctx, uint16_t type, const uint8_t *body, uint32_t len)
{
    struct out_ctx *o = ctx;
    if (o->n < sizeof o->ends / sizeof o->ends[0]) o->ends[o->n++] = o->c->head;
    if (type != PH_DOC_RECORD) return 0; /* the bridge refuses and counts it */
    struct envelope e;
    char why[256] = "";
    if (envelope_from_doc(body, len, 1795744800123000000ull, &e, why, sizeof why) == PH_OK) {
        FUZZ_CHECK_TERMINATED(e.rk);
        struct contract_rk k;
        char kwhy[256];
        FUZZ_CHECK(contract_rk_parse(e.rk, &k, kwhy, sizeof kwhy) == PH_OK);
        char *text = json_dumps(e.env, ENVELOPE_DUMP_FLAGS);
        FUZZ_CHECK(text != NULL);
        free(text);
        if (e.text != NULL) {
            /* A long status-full written in one pass: it must read back. */
            json_t *back = json_loadb(e.text, e.text_len, 0, NULL);
            FUZZ_CHECK(back != NULL);
            json_decref(back);
        }
        envelope_clear(&e);
    } else {
        FUZZ_CHECK(why[0] != '\0');
        FUZZ_CHECK_TERMINATED(why);
    }
    return 0;
}

/* The controller's reading of one signal document (swarm.c, parse_signal). */
static int on_signal(void *ctx, uint16_t type, const uint8_t *body, uint32_t len)
{
    (void)ctx;
    if (type != PH_DOC_RECORD) return 0;
    msgpack_zone zone;
    msgpack_zone_init(&zone, 4096);
    msgpack_object o;
    char err[160];
    if (ph_mp_decode(body, len, true, &zone, &o, err, sizeof err) == PH_OK) {
        char buf[256];
        (void)ph_mp_str(ph_mp_map_get(&o, PH_DOC_TYPE), buf, sizeof buf);
        (void)ph_mp_str(ph_mp_map_get(&o, PH_DOC_CID), buf, sizeof buf);
        const msgpack_object *d = ph_mp_map_get(&o, PH_DOC_DATA);
        if (d != NULL && d->type == MSGPACK_OBJECT_MAP) {
            json_t *j = ph_mp_to_json(d);
            json_decref(j);
        }
    }
    msgpack_zone_destroy(&zone);
    return 0;
}

static void bridge_side(struct ph_channel *ch)
{
    uint64_t start = 0;
    (void)ph_proc_start_time((int32_t)getpid(), &start);
    char err[256];
    if (ph_channel_register_bridge(ch, (int32_t)getpid(), start, err, sizeof err) != PH_OK) return;
    ph_ring_consumer out;
    if (ph_ring_consumer_init(&out, &ch->hdr->out, ch->out_data, ch->out_ring) == PH_OK) {
        uint8_t *scratch = malloc(out.max_record);
        FUZZ_CHECK(scratch != NULL);
        struct out_ctx o = {.c = &out};
        (void)ph_ring_drain_held(&out, on_doc, &o, scratch, 0);
        for (unsigned i = 0; i < o.n; i++)
            FUZZ_CHECK(ph_ring_commit_to(&out, o.ends[i]) == PH_OK);
        ph_ring_commit(&out);
        free(scratch);
    }
    ph_ring_producer in;
    if (ph_ring_producer_init(&in, &ch->hdr->in, ch->in_data, ch->in_ring) == PH_OK) {
        static const uint8_t doc[] = {0x82, 0xa4, 't',  'y', 'p', 'e', 0xac, 's',
                                      'w',  'a',  'r',  'm', '-', 's', 't',  'a',
                                      'r',  't',  0xa3, 'c', 'i', 'd', 0xa1, 'c'};
        (void)ph_ring_write(&in, PH_DOC_RECORD, doc, sizeof doc);
    }
    ph_channel_unregister_bridge(ch, (int32_t)getpid());
}

static void controller_side(struct ph_channel *ch)
{
    ph_ring_consumer in;
    if (ph_ring_consumer_init(&in, &ch->hdr->in, ch->in_data, ch->in_ring) != PH_OK) return;
    uint8_t *scratch = malloc(in.max_record);
    FUZZ_CHECK(scratch != NULL);
    (void)ph_ring_drain(&in, on_signal, NULL, scratch, 0);
    free(scratch);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!fuzz_shm_write(shm_name, data, size, offsetof(struct ph_chan_header, swarm_id), swarm))
        abort();
    struct ph_channel ch;
    char err[256] = "";
    int rc = ph_channel_open(&ch, swarm, true, err, sizeof err);
    shm_unlink(shm_name);
    FUZZ_CHECK_TERMINATED(err);
    if (rc != PH_OK) return 0;
    FUZZ_CHECK(ch.size <= size);
    bridge_side(&ch);
    controller_side(&ch);
    ph_channel_close(&ch);
    return 0;
}
