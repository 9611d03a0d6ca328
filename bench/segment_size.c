/* ph-bench-segsize: the segment size formula, sizes for typical swarms, and
 * the memory actually resident for 1000 idle workers. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_util.h"
#include "ph/record.h"
#include "ph/ring.h"
#include "ph/shm.h"

struct opts {
    uint32_t workers;
    uint32_t status_ring;
    uint32_t command_ring;
    bool json;
};

static void usage(FILE *f)
{
    fprintf(f,
        "usage: ph-bench-segsize [options]\n"
        "\n"
        "Prints the segment size formula (ph_segment_size_for) and the size for 1, 100,\n"
        "1000 and 10000 workers, then measures the memory actually resident: it creates\n"
        "a segment for --workers slots, claims every slot (ph_slot_claim), publishes one\n"
        "STATUS record per slot, and reads Rss/Pss of the segment's mapping from\n"
        "/proc/self/smaps. Two more stages follow: every status ring written all the way\n"
        "round (a long-running worker's steady state), then one command per slot in\n"
        "the command rings. The segment is removed at the end (and on SIGINT).\n"
        "\n"
        "options:\n"
        "  --workers N          slots for the resident-memory part (default 1000)\n"
        "  --status-ring BYTES  status ring per slot (default %u)\n"
        "  --command-ring BYTES command ring per slot (default %u)\n"
        "  --json               one JSON object instead of the table\n"
        "  --help               this text\n"
        "\n"
        "Target from issue 2: at most 16 MiB for 1000 workers.\n",
        PH_DEFAULT_STATUS_RING, PH_DEFAULT_COMMAND_RING);
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
    *o = (struct opts){.workers = 1000, .status_ring = PH_DEFAULT_STATUS_RING,
                       .command_ring = PH_DEFAULT_COMMAND_RING};
    static const struct option longs[] = {{"workers", required_argument, NULL, 'n'},
                                          {"status-ring", required_argument, NULL, 's'},
                                          {"command-ring", required_argument, NULL, 'c'},
                                          {"json", no_argument, NULL, 'j'},
                                          {"help", no_argument, NULL, 'h'},
                                          {NULL, 0, NULL, 0}};
    int ch;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        uint64_t v = 0;
        bool ok = true;
        switch (ch) {
        case 'n': ok = bu_parse_size(optarg, &v) && v >= 1 && v <= PH_MAX_SLOTS; o->workers = (uint32_t)v; break;
        case 's': ok = bu_parse_size(optarg, &v) && ph_ring_capacity_valid(v); o->status_ring = (uint32_t)v; break;
        case 'c': ok = bu_parse_size(optarg, &v) && ph_ring_capacity_valid(v); o->command_ring = (uint32_t)v; break;
        case 'j': o->json = true; break;
        case 'h': usage(stdout); exit(0);
        default: return bu_usage_error("unknown option '%s'", argv[optind - 1]);
        }
        if (!ok) return bu_bad_value(argv);
    }
    if (optind < argc) return bu_usage_error("unexpected argument '%s'", argv[optind]);
    return 0;
}

struct smaps {
    bool found;
    uint64_t size_kb, rss_kb, pss_kb;
};

/* Rss/Pss of the mapping of /dev/shm<name> in this process. */
static struct smaps read_smaps(const char *shm_name)
{
    struct smaps r = {0};
    char want[128];
    snprintf(want, sizeof want, "/dev/shm%s", shm_name);
    FILE *f = fopen("/proc/self/smaps", "r");
    if (f == NULL) return r;
    char line[512];
    bool in = false;
    while (fgets(line, sizeof line, f) != NULL) {
        unsigned long long v;
        /* Mapping headers start with a lower-case hex address
         * ("7f..-7f.. rw-s 00000000 00:19 42 /dev/shm/ph.x"); attribute
         * lines with a capitalised name ("Rss:    12 kB"). */
        if ((line[0] >= '0' && line[0] <= '9') || (line[0] >= 'a' && line[0] <= 'f')) {
            char path[256] = "";
            in = sscanf(line, "%*x-%*x %*s %*x %*s %*u %255s", path) == 1 &&
                 strcmp(path, want) == 0;
            if (in) r.found = true;
            continue;
        }
        if (!in) continue;
        if (sscanf(line, "Size: %llu kB", &v) == 1)
            r.size_kb += v;
        else if (sscanf(line, "Rss: %llu kB", &v) == 1)
            r.rss_kb += v;
        else if (sscanf(line, "Pss: %llu kB", &v) == 1)
            r.pss_kb += v;
    }
    fclose(f);
    return r;
}

static int drain_count(void *ctx, uint16_t type, const uint8_t *body, uint32_t len)
{
    (void)type;
    (void)body;
    (void)len;
    (*(uint64_t *)ctx)++;
    return 0;
}

int main(int argc, char **argv)
{
    struct opts o;
    int rc = parse_opts(argc, argv, &o);
    if (rc != 0) return rc;
    bu_cleanup_install();

    const uint32_t counts[] = {1, 100, 1000, 10000};
    uint64_t sizes[4];
    for (int i = 0; i < 4; i++)
        sizes[i] = ph_segment_size_for(counts[i], o.status_ring, o.command_ring);
    const uint64_t slot_bytes = (uint64_t)PH_SLOT_META_SIZE + o.status_ring + o.command_ring;
    uint64_t max16 = ((16ull << 20) - PH_SHM_HEADER_SIZE) / slot_bytes;
    while (max16 > 0 && ph_segment_size_for((uint32_t)max16, o.status_ring, o.command_ring) > (16ull << 20))
        max16--; /* the claim index takes its pages too */

    /* resident memory for o.workers idle workers */
    char id[64], err[512];
    bu_swarm_id(id, sizeof id, "bench-segsize");
    bu_cleanup_add_swarm(id);
    struct ph_segment seg;
    bool adopted;
    struct ph_segment_params params = {.slots = o.workers, .status_ring = o.status_ring,
                                       .command_ring = o.command_ring};
    if (ph_segment_create(&seg, id, &params, &adopted, err, sizeof err) != PH_OK) {
        fprintf(stderr, "ph-bench-segsize: %s\n", err);
        return 1;
    }
    struct smaps st_empty = read_smaps(seg.name);
    uint64_t start = 0;
    ph_proc_start_time(getpid(), &start);
    uint8_t *scratch = malloc(o.status_ring);
    const uint64_t claim_t0 = bu_now_ns();
    for (uint32_t i = 0; i < o.workers; i++) {
        char inst[32];
        uint32_t idx;
        snprintf(inst, sizeof inst, "idle-%05u", i);
        if (ph_slot_claim(&seg, "bench", inst, getpid(), start, &idx, NULL, err, sizeof err) !=
            PH_OK) {
            fprintf(stderr, "ph-bench-segsize: %s\n", err);
            return 1;
        }
        struct ph_slot *s = ph_segment_slot(&seg, idx);
        ph_ring_producer p;
        if (ph_ring_producer_init(&p, &s->status, ph_slot_status_data(&seg, s),
                                  seg.status_ring) != PH_OK) {
            fprintf(stderr, "ph-bench-segsize: slot %u: status ring positions inconsistent\n", idx);
            return 1;
        }
        struct ph_rec_status r = {.mono_ns = ph_mono_coarse_ns(), .seq = 1};
        ph_ring_write(&p, PH_REC_STATUS, &r, sizeof r);
    }
    const double claim_ms = (double)(bu_now_ns() - claim_t0) / 1e6;
    struct smaps st_idle = read_smaps(seg.name);

    /* every status ring written round once (drained as it goes, as the
     * controller would) */
    for (uint32_t i = 0; i < o.workers; i++) {
        struct ph_slot *s = ph_segment_slot(&seg, i);
        ph_ring_producer p;
        ph_ring_consumer c;
        if (ph_ring_producer_init(&p, &s->status, ph_slot_status_data(&seg, s),
                                  seg.status_ring) != PH_OK) {
            fprintf(stderr, "ph-bench-segsize: slot %u: status ring positions inconsistent\n", i);
            return 1;
        }
        ph_ring_consumer_init(&c, &s->status, ph_slot_status_data(&seg, s), seg.status_ring);
        uint64_t n = 0;
        struct ph_rec_status r = {0};
        while (p.tail < (uint64_t)seg.status_ring + 64) {
            if (!ph_ring_write(&p, PH_REC_STATUS, &r, sizeof r))
                ph_ring_drain(&c, drain_count, &n, scratch, 0);
        }
        ph_ring_drain(&c, drain_count, &n, scratch, 0);
    }
    struct smaps st_wrapped = read_smaps(seg.name);

    /* one command per slot */
    for (uint32_t i = 0; i < o.workers; i++) {
        struct ph_slot *s = ph_segment_slot(&seg, i);
        ph_ring_producer p;
        if (ph_ring_producer_init(&p, &s->command, ph_slot_command_data(&seg, s),
                                  seg.command_ring) != PH_OK) {
            fprintf(stderr, "ph-bench-segsize: slot %u: command ring positions inconsistent\n", i);
            return 1;
        }
        static const uint8_t body[24] = {0x81};
        ph_ring_write(&p, PH_CMD_STATUS_REQUEST, body, sizeof body);
    }
    struct smaps st_cmd = read_smaps(seg.name);
    free(scratch);
    ph_segment_close(&seg);
    bu_cleanup_del_swarm(id);

    const double mib = 1024.0 * 1024.0;
    if (o.json) {
        struct bu_json j;
        bu_json_begin(&j, stdout);
        bu_json_str(&j, "benchmark", "ph-bench-segsize");
        bu_json_str(&j, "formula", "size = 4096 + ceil(slots * 8 / 4096) * 4096 + slots * (768 + status_ring + command_ring)");
        bu_json_int(&j, "header_bytes", PH_SHM_HEADER_SIZE);
        bu_json_int(&j, "slot_meta_bytes", PH_SLOT_META_SIZE);
        bu_json_int(&j, "slot_meta_used_bytes", (int64_t)sizeof(struct ph_slot));
        bu_json_int(&j, "slot_bytes", (int64_t)slot_bytes);
        bu_json_obj(&j, "size_bytes");
        for (int i = 0; i < 4; i++) {
            char k[16];
            snprintf(k, sizeof k, "%u", counts[i]);
            bu_json_int(&j, k, (int64_t)sizes[i]);
        }
        bu_json_close(&j);
        bu_json_num(&j, "size_1000_mib", (double)sizes[2] / mib);
        bu_json_int(&j, "max_workers_in_16_mib", (int64_t)max16);
        bu_json_int(&j, "rss_workers", o.workers);
        bu_json_int(&j, "rss_empty_kib", (int64_t)st_empty.rss_kb);
        bu_json_int(&j, "rss_idle_kib", (int64_t)st_idle.rss_kb);
        bu_json_int(&j, "rss_status_rings_wrapped_kib", (int64_t)st_wrapped.rss_kb);
        bu_json_int(&j, "rss_with_one_command_kib", (int64_t)st_cmd.rss_kb);
        bu_json_int(&j, "mapping_kib", (int64_t)st_cmd.size_kb);
        bu_json_num(&j, "claim_all_ms", claim_ms);
        bu_json_bool(&j, "smaps_found", st_cmd.found);
        bu_json_obj(&j, "params");
        bu_json_int(&j, "status_ring", o.status_ring);
        bu_json_int(&j, "command_ring", o.command_ring);
        bu_json_close(&j);
        bu_json_end(&j);
        return 0;
    }
    printf("segment size (ph_segment_size_for)\n");
    printf("  size = header + claim index + slots * (slot metadata + status ring + command ring)\n");
    printf("       = %u + (slots * 8, in whole pages) + slots * (%u + %u + %u)\n"
           "       = %u + index + slots * %llu bytes\n",
           PH_SHM_HEADER_SIZE, PH_SLOT_META_SIZE, o.status_ring, o.command_ring,
           PH_SHM_HEADER_SIZE, (unsigned long long)slot_bytes);
    printf("  (slot metadata: %zu of %u bytes used by struct ph_slot)\n", sizeof(struct ph_slot),
           PH_SLOT_META_SIZE);
    printf("  %8s %14s %10s\n", "workers", "bytes", "MiB");
    for (int i = 0; i < 4; i++)
        printf("  %8u %14llu %10.2f%s\n", counts[i], (unsigned long long)sizes[i],
               (double)sizes[i] / mib, counts[i] == 1000 ? "   (target <= 16 MiB)" : "");
    printf("  at most %llu workers fit in 16 MiB with these rings\n", (unsigned long long)max16);
    printf("\nresident memory of the segment mapping, %u workers (/proc/self/smaps)\n",
           o.workers);
    if (!st_cmd.found) {
        printf("  mapping not found in /proc/self/smaps\n");
        return 0;
    }
    printf("  mapping size                              %8.2f MiB\n", st_cmd.size_kb / 1024.0);
    printf("  created, nothing claimed                  %8.2f MiB Rss\n", st_empty.rss_kb / 1024.0);
    printf("  every slot claimed, one status each       %8.2f MiB Rss (%.1f KiB per worker)\n",
           st_idle.rss_kb / 1024.0, (double)st_idle.rss_kb / o.workers);
    printf("  every status ring written round once      %8.2f MiB Rss\n",
           st_wrapped.rss_kb / 1024.0);
    printf("  plus one command per slot                 %8.2f MiB Rss\n", st_cmd.rss_kb / 1024.0);
    printf("  claiming the %u slots one after another (ph_slot_claim + one status) took "
           "%.1f ms\n", o.workers, claim_ms);
    printf("  (tmpfs pages are allocated on first touch: an idle worker costs its metadata\n"
           "   page(s) and the first page of its status ring, a long-running one its whole\n"
           "   status ring. A slot is %llu bytes, %s a multiple of 4096, so\n   %s)\n",
           (unsigned long long)slot_bytes, slot_bytes % 4096 ? "not" : "exactly",
           slot_bytes % 4096 ? "the command ring's pages are shared with the status ring and the next\n"
                               "   slot's metadata: an unused command ring saves little"
                             : "an unused command ring stays unallocated");
    return 0;
}
