/* ph-test-fake-controller: a stand-in swarm controller for the bridge's
 * integration test (tests/contract/test_bridge_file.sh).
 *
 * It creates the channel /dev/shm/ph.<swarm>.bridge as the real controller
 * does, writes one document of every kind the bridge publishes (and, with
 * --invalid, one document per contract violation the bridge must refuse),
 * then answers the signals it receives the way the contract says: an outcome
 * echoing correlationId and idempotencyKey, or a status-full carrying the
 * status-request's correlationId. Everything it sees is printed to stdout as
 * JSON lines:
 *   {"event":"ready","valid":N,"invalid":M,"tag":T}
 *   {"event":"signal","doc":{...the signal document...}}
 *   {"event":"stats","docs_published":..,"docs_refused":..,"signals_rejected":..,...}
 * It polls with a sleep: it is a test helper, not a product loop. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "ph/channel.h"
#include "ph/mpjson.h"
#include "ph/record.h"
#include "ph/shm.h"
#include "sample_docs.h"

static volatile sig_atomic_t stop_requested;

static void on_stop(int sig)
{
    (void)sig;
    stop_requested = 1;
}

struct fake {
    const char *swarm;
    const char *ctl;
    const char *tag;
    struct ph_channel ch;
    ph_ring_producer out;
    ph_ring_consumer in;
    uint8_t *scratch;
};

static void print_json(json_t *v)
{
    char *s = json_dumps(v, JSON_COMPACT);
    printf("%s\n", s);
    fflush(stdout);
    free(s);
    json_decref(v);
}

static void put(struct fake *f, json_t *doc)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    sample_pack(doc, &sb);
    json_decref(doc);
    if (!ph_ring_write(&f->out, PH_DOC_RECORD, sb.data, (uint32_t)sb.size))
        fprintf(stderr, "fake-controller: out ring full, document dropped\n");
    msgpack_sbuffer_destroy(&sb);
}

static int put_valid(struct fake *f)
{
    const char *s = f->swarm, *c = f->ctl;
    put(f, sample_controller_full(s, c, NULL, f->tag));
    put(f, sample_controller_delta(s, c));
    put(f, sample_worker_full(s, "generator", "gen-1", c));
    put(f, sample_worker_delta(s, "generator", "gen-1", c));
    /* A correlationId of this controller's own: each attempt is answered
     * once, and the bridge drops an outcome for one it already published. */
    char cid[64];
    snprintf(cid, sizeof cid, "boot-%s", f->tag != NULL ? f->tag : "1");
    put(f, sample_outcome(s, c, "swarm-template", cid, NULL, "Ready"));
    put(f, sample_alert(s, "generator", "gen-1", c));
    put(f, sample_alert(s, NULL, NULL, c));
    return 7;
}

static json_t *data_of(json_t *d)
{
    return json_object_get(d, "data");
}

/* One document per violation; the bridge must refuse every one. */
static int put_invalid(struct fake *f)
{
    const char *s = f->swarm, *c = f->ctl;
    int n = 0;
    json_t *d;

    d = sample_worker_delta(s, "generator", "gen-1", c); /* delta with config */
    json_object_set_new(data_of(d), "config", json_object());
    put(f, d), n++;
    d = sample_worker_full(s, "generator", "gen-1", c); /* full without startedAt */
    json_object_del(data_of(d), "startedAt");
    put(f, d), n++;
    d = sample_worker_delta(s, "generator", "gen-1", c); /* bad ioState value */
    json_object_set_new(data_of(d), "ioState", sample_iostate("sleepy", "ok"));
    put(f, d), n++;
    d = sample_worker_delta(s, "generator", "gen-1", c); /* negative tps */
    json_object_set_new(data_of(d), "tps", json_integer(-5));
    put(f, d), n++;
    d = sample_worker_delta(s, "generator", "gen-1", c); /* fractional tps */
    json_object_set_new(data_of(d), "tps", json_real(1.5));
    put(f, d), n++;
    d = sample_worker_delta(s, "generator", "gen-1", c); /* unknown kind */
    json_object_set_new(d, "kind", json_string("gossip"));
    put(f, d), n++;
    put(f, sample_worker_delta(s, "gen.erator", "gen-1", c)), n++; /* bad identifier */
    d = sample_alert(s, NULL, NULL, c);                            /* alert without code */
    json_object_del(data_of(d), "code");
    put(f, d), n++;
    put(f, sample_outcome(s, c, "swarm-stop", NULL, NULL, "Stopped")), n++; /* no cid */
    d = sample_worker_full(s, "generator", "gen-1", c); /* workers in a worker status */
    json_object_set_new(json_object_get(data_of(d), "context"), "workers", json_array());
    put(f, d), n++;
    if (!ph_ring_write(&f->out, PH_DOC_RECORD, "\xc1\x00", 2)) return n; /* not msgpack */
    n++;
    if (!ph_ring_write(&f->out, 99, "{}", 2)) return n; /* not a document record */
    n++;
    return n;
}

static const char *outcome_status(const char *type)
{
    if (strcmp(type, "swarm-start") == 0) return "Running";
    if (strcmp(type, "swarm-stop") == 0) return "Stopped";
    if (strcmp(type, "swarm-remove") == 0) return "Removed";
    if (strcmp(type, "swarm-template") == 0) return "Ready";
    return "applied";
}

static int on_signal(void *ctx, uint16_t type, const uint8_t *body, uint32_t len)
{
    struct fake *f = ctx;
    if (type != PH_DOC_RECORD) return 0;
    msgpack_zone zone;
    msgpack_zone_init(&zone, 4096);
    msgpack_object o;
    char err[160];
    /* The real controller decodes with the default limits too. */
    if (ph_mp_decode(body, len, true, &zone, &o, err, sizeof err) != PH_OK) {
        print_json(json_pack("{s:s,s:s}", "event", "bad-signal-document", "error", err));
        msgpack_zone_destroy(&zone);
        return 0;
    }
    json_t *doc = ph_mp_to_json(&o);
    msgpack_zone_destroy(&zone);
    if (doc == NULL) {
        print_json(json_pack("{s:s}", "event", "bad-signal-document"));
        return 0;
    }
    const char *st = json_string_value(json_object_get(doc, "type"));
    const char *cid = json_string_value(json_object_get(doc, "cid"));
    const char *ikey = json_string_value(json_object_get(doc, "ikey"));
    if (st != NULL && cid != NULL) {
        if (strcmp(st, "status-request") == 0)
            put(f, sample_controller_full(f->swarm, f->ctl, cid, f->tag));
        else
            put(f, sample_outcome(f->swarm, f->ctl, st, cid, ikey, outcome_status(st)));
    }
    print_json(json_pack("{s:s,s:o}", "event", "signal", "doc", doc));
    return 0;
}

static void usage(FILE *out)
{
    fprintf(out, "usage: ph-test-fake-controller --swarm ID [--instance ID] [--tag T] "
                 "[--invalid] [--keep]\n"
                 "Test helper: creates the bridge channel, writes sample documents, answers "
                 "signals.\n");
}

int main(int argc, char **argv)
{
    static const struct option longs[] = {{"swarm", required_argument, NULL, 's'},
                                          {"instance", required_argument, NULL, 'i'},
                                          {"tag", required_argument, NULL, 't'},
                                          {"invalid", no_argument, NULL, 'v'},
                                          {"keep", no_argument, NULL, 'k'},
                                          {"help", no_argument, NULL, 'h'},
                                          {NULL, 0, NULL, 0}};
    struct fake f = {0};
    bool invalid = false, keep = false;
    char ctl_buf[PH_ID_MAX + 16];
    int ch;
    while ((ch = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        switch (ch) {
        case 's':
            f.swarm = optarg;
            break;
        case 'i':
            f.ctl = optarg;
            break;
        case 't':
            f.tag = optarg;
            break;
        case 'v':
            invalid = true;
            break;
        case 'k':
            keep = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (f.swarm == NULL) {
        usage(stderr);
        return 2;
    }
    if (f.ctl == NULL) {
        snprintf(ctl_buf, sizeof ctl_buf, "%s-controller", f.swarm);
        f.ctl = ctl_buf;
    }
    char err[256];
    if (ph_channel_create(&f.ch, f.swarm, 0, 0, err, sizeof err) != PH_OK) {
        fprintf(stderr, "fake-controller: %s\n", err);
        return 1;
    }
    struct ph_chan_header *h = f.ch.hdr;
    uint64_t start = 0;
    ph_proc_start_time((int32_t)getpid(), &start);
    atomic_store(&h->controller_start_time, start);
    atomic_store(&h->controller_heartbeat_ns, ph_mono_ns());
    atomic_store(&h->controller_pid, (int32_t)getpid());
    if (ph_ring_producer_init(&f.out, &h->out, f.ch.out_data, h->out_ring) != PH_OK) return 1;
    if (ph_ring_consumer_init(&f.in, &h->in, f.ch.in_data, h->in_ring) != PH_OK) return 1;
    f.scratch = malloc(h->in_ring / 2);

    struct sigaction sa = {0};
    sa.sa_handler = on_stop;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    int valid = put_valid(&f);
    int bad = invalid ? put_invalid(&f) : 0;
    print_json(json_pack("{s:s,s:i,s:i,s:s?}", "event", "ready", "valid", valid, "invalid", bad,
                         "tag", f.tag));

    const struct timespec nap = {0, 10 * 1000 * 1000};
    while (!stop_requested) {
        atomic_store_explicit(&h->controller_heartbeat_ns, ph_mono_ns(), memory_order_relaxed);
        if (ph_ring_drain(&f.in, on_signal, &f, f.scratch, 0) == PH_ERR_CORRUPT) {
            fprintf(stderr, "fake-controller: in ring corrupt\n");
            break;
        }
        nanosleep(&nap, NULL);
    }
    print_json(json_pack("{s:s,s:I,s:I,s:I,s:I,s:i,s:I}", "event", "stats", "docs_published",
                         (json_int_t)atomic_load(&h->docs_published), "docs_refused",
                         (json_int_t)atomic_load(&h->docs_refused), "signals_rejected",
                         (json_int_t)atomic_load(&h->signals_rejected), "bridge_generation",
                         (json_int_t)atomic_load(&h->bridge_generation), "bridge_pid",
                         (int)atomic_load(&h->bridge_pid), "in_overflows",
                         (json_int_t)atomic_load(&h->in.overflows)));
    free(f.scratch);
    ph_channel_close(&f.ch);
    if (!keep) ph_channel_unlink(f.swarm, err, sizeof err);
    return 0;
}
