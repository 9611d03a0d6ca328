/* Writes the binary seeds of the fuzz corpora from the real encoders:
 *   OUT/record/   record bodies as workers and the controller write them
 *   OUT/segment/  a segment made by ph_segment_create, one worker's slot
 *                 claimed by ph_slot_claim, its status ring holding one
 *                 record of every kind
 *   OUT/channel/  a channel made by ph_channel_create, its out ring holding
 *                 controller documents, its in ring a signal sigcheck made
 * Run by tests/fuzz/make_corpus; the objects it creates in /dev/shm
 * (pht-fuzz-seed-<pid>) are removed before it exits. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ph/channel.h"
#include "ph/mpjson.h"
#include "ph/record.h"
#include "ph/shm.h"
#include "sample_docs.h"
#include "sigcheck.h"

static const char *out_dir;

static void save(const char *sub, const char *name, const void *data, size_t len)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", out_dir, sub);
    if (mkdir(path, 0755) != 0 && errno != EEXIST) {
        perror(path);
        exit(1);
    }
    snprintf(path, sizeof path, "%s/%s/%s", out_dir, sub, name);
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(data, 1, len, f) != len || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
}

/* The bytes of /dev/shm`name`, saved as a seed. */
static void save_object(const char *sub, const char *seed, const char *name)
{
    char path[256];
    snprintf(path, sizeof path, "/dev/shm%s", name);
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        perror(path);
        exit(1);
    }
    static uint8_t buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    save(sub, seed, buf, n);
}

static void pack(const json_t *j, msgpack_sbuffer *sb)
{
    msgpack_sbuffer_clear(sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    if (ph_json_pack(&pk, j, false) != 0) {
        fprintf(stderr, "fuzz_seeds: a sample is too deep to pack\n");
        exit(1);
    }
}

static void status_body(uint8_t out[PH_REC_STATUS_SIZE], uint64_t processed, int io_in)
{
    struct ph_rec_status st = {.mono_ns = 123456789,
                               .processed = processed,
                               .errors = 1,
                               .seq = 7,
                               .flags = PH_STATUS_ENABLED,
                               .io_in = (uint8_t)io_in,
                               .io_out = PH_OUT_OK};
    memcpy(out, &st, sizeof st);
}

/* Every record kind a worker writes, in order, through `write`. */
static void worker_records(void (*write)(void *ctx, uint16_t type, const void *b, size_t n),
                           void *ctx)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    uint8_t st[PH_REC_STATUS_SIZE];
    status_body(st, 42, PH_IN_OK);
    write(ctx, PH_REC_STATUS, st, sizeof st);
    json_t *cfg = sample_config_with_secrets();
    pack(cfg, &sb);
    json_decref(cfg);
    write(ctx, PH_REC_CONFIG, sb.data, sb.size);
    json_t *io = json_pack("{s:{s:{s:[s], s:[s]}}}", "work", "queues", "in", "ph.work.demo.gen",
                           "out", "ph.work.demo.mod");
    pack(io, &sb);
    json_decref(io);
    write(ctx, PH_REC_IO, sb.data, sb.size);
    msgpack_sbuffer_clear(&sb);
    ph_rec_alert_encode(&sb, "warn", "io.out-of-data", "the input queue is empty");
    write(ctx, PH_REC_ALERT, sb.data, sb.size);
    msgpack_sbuffer_clear(&sb);
    ph_rec_ack_encode(&sb, 4294967297ull, true, "applied");
    write(ctx, PH_REC_ACK, sb.data, sb.size);
    status_body(st, 50, PH_IN_OUT_OF_DATA);
    write(ctx, PH_REC_STATUS, st, sizeof st);
    msgpack_sbuffer_destroy(&sb);
}

static void save_record(void *ctx, uint16_t type, const void *b, size_t n)
{
    (void)ctx;
    static const char *const names[] = {[PH_REC_STATUS] = "status",
                                        [PH_REC_CONFIG] = "config",
                                        [PH_REC_IO] = "io",
                                        [PH_REC_ALERT] = "alert",
                                        [PH_REC_ACK] = "ack"};
    static unsigned seen;
    char name[64];
    snprintf(name, sizeof name, "%s-%u", names[type], seen++);
    save("record", name, b, n);
}

static void ring_record(void *ctx, uint16_t type, const void *b, size_t n)
{
    if (!ph_ring_write(ctx, type, b, (uint32_t)n)) {
        fprintf(stderr, "fuzz_seeds: a seed record does not fit its ring\n");
        exit(1);
    }
}

static void records(void)
{
    worker_records(save_record, NULL);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    static const uint8_t patch[] = {0x82, 0xa7, 'e',  'n', 'a', 'b', 'l', 'e',
                                    'd',  0xc3, 0xa4, 'r', 'a', 't', 'e', 0xcb,
                                    0x40, 0x59, 0,    0,   0,   0,   0,   0};
    ph_cmd_encode(&sb, 8589934593ull, patch, sizeof patch);
    save("record", "cmd-config-patch", sb.data, sb.size);
    msgpack_sbuffer_clear(&sb);
    ph_cmd_encode(&sb, 8589934594ull, NULL, 0);
    save("record", "cmd-status-request", sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
}

static void segment(void)
{
    char swarm[PH_ID_MAX], err[256];
    snprintf(swarm, sizeof swarm, "pht-fuzz-seed-%ld", (long)getpid());
    struct ph_segment seg;
    bool adopted;
    const struct ph_segment_params p = {.slots = 3, .status_ring = 2048, .command_ring = 256};
    if (ph_segment_create(&seg, swarm, &p, &adopted, err, sizeof err) != PH_OK) {
        fprintf(stderr, "fuzz_seeds: %s\n", err);
        exit(1);
    }
    uint64_t start = 0;
    ph_proc_start_time((int32_t)getpid(), &start);
    ph_segment_set_controller(&seg, (int32_t)getpid(), start);
    save_object("segment", "empty", seg.name);
    uint32_t index;
    uint64_t word;
    if (ph_slot_claim(&seg, "generator", "gen-1", (int32_t)getpid(), start, &index, &word, err,
                      sizeof err) != PH_OK) {
        fprintf(stderr, "fuzz_seeds: %s\n", err);
        exit(1);
    }
    save_object("segment", "one-worker-no-records", seg.name);
    struct ph_slot *s = ph_segment_slot(&seg, index);
    ph_ring_producer pr;
    ph_ring_producer_init(&pr, &s->status, ph_slot_status_data(&seg, s), seg.status_ring);
    worker_records(ring_record, &pr);
    save_object("segment", "one-worker-records", seg.name);
    uint32_t second;
    if (ph_slot_claim(&seg, "moderator", "mod-1", (int32_t)getpid(), start, &second, NULL, err,
                      sizeof err) == PH_OK)
        ph_slot_detach(&seg, second, atomic_load(&ph_segment_slot(&seg, second)->state));
    save_object("segment", "one-worker-one-detached", seg.name);
    ph_segment_close(&seg);
    ph_segment_unlink(swarm, err, sizeof err);
}

static void doc_record(ph_ring_producer *pr, json_t *doc)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    pack(doc, &sb);
    json_decref(doc);
    ring_record(pr, PH_DOC_RECORD, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
}

static void channel(void)
{
    char swarm[PH_ID_MAX], err[256];
    snprintf(swarm, sizeof swarm, "pht-fuzz-seed-%ld", (long)getpid());
    struct ph_channel ch;
    if (ph_channel_create(&ch, swarm, 8192, 2048, err, sizeof err) != PH_OK) {
        fprintf(stderr, "fuzz_seeds: %s\n", err);
        exit(1);
    }
    save_object("channel", "empty", ch.name);
    ph_ring_producer out;
    ph_ring_producer_init(&out, &ch.hdr->out, ch.out_data, ch.out_ring);
    doc_record(&out, sample_controller_delta(swarm, "c-1"));
    doc_record(&out, sample_alert(swarm, "generator", "gen-1", "c-1"));
    doc_record(&out, sample_outcome(swarm, "c-1", "swarm-start", "cid-1", "ik-1", "Running"));
    save_object("channel", "out-docs", ch.name);
    doc_record(&out, sample_worker_delta(swarm, "generator", "gen-1", "c-1"));
    save_object("channel", "out-docs-4", ch.name);

    /* A signal as the bridge writes it: sigcheck's document. */
    struct sigcheck_cfg cfg = {.swarm = swarm};
    struct sigcheck_result r;
    sigcheck_result_init(&r);
    char *line = sample_signal_line("swarm-start", swarm, "swarm-controller", "c-1", "cid-2",
                                    "ik-2", json_object());
    if (sigcheck_line(&cfg, line, strlen(line), strlen(line), &r) != SIG_OK) {
        fprintf(stderr, "fuzz_seeds: the sample signal is refused: %s\n", r.reason);
        exit(1);
    }
    ph_ring_producer in;
    ph_ring_producer_init(&in, &ch.hdr->in, ch.in_data, ch.in_ring);
    ring_record(&in, PH_DOC_RECORD, r.doc.data, r.doc.size);
    save("record", "signal-doc", r.doc.data, r.doc.size);
    save_object("channel", "out-docs-in-signal", ch.name);
    free(line);
    sigcheck_result_free(&r);
    ph_channel_close(&ch);
    ph_channel_unlink(swarm, err, sizeof err);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: fuzz_seeds OUT_DIR\n");
        return 2;
    }
    out_dir = argv[1];
    records();
    segment();
    channel();
    return 0;
}
