/* Fuzz target: a swarm's shared-memory segment as the controller meets it.
 *
 * The input is the whole segment object: it is written to this process's
 * private /dev/shm/ph.pht-fuzz-<pid> (with that swarm id put into the
 * header, when the input is long enough to have one: everything else,
 * magic, version and geometry included, is the input's) and opened with
 * ph_segment_open, the path every reader and worker takes. A segment that
 * passes is then walked as the controller walks it (swarm-controller/ctl.c):
 * two scans follow every claim (ACTIVE slots tracked, their identity
 * checked, their status rings drained through the record decoders;
 * CLAIMING/JOINING claims watched; DETACHED slots freed), a command is
 * written to every tracked worker, the liveness check departs the workers
 * whose pid is not this run's, and the slots are read as tools read them
 * (ph_slot_identity_read). The object is unlinked as soon as it is mapped,
 * so only a crash in between leaves it behind. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "ctl.h"
#include "fuzz_check.h"
#include "fuzz_shm.h"
#include "ph/log.h"
#include "ph/shm.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char swarm[PH_ID_MAX];
static char shm_name[PH_ID_MAX + 8];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    ph_log_set_level(PH_LOG_ERROR); /* a warning per freed claim would drown the fuzzer's lines */
    fuzz_swarm_id(swarm);
    snprintf(shm_name, sizeof shm_name, "/ph.%s", swarm);
    return 0;
}

static void walk(struct ph_segment *seg)
{
    struct ctl c;
    if (ctl_init(&c, seg, NULL) != PH_OK) return;
    c.use_pidfd = false; /* fuzzed pids: no descriptors on whatever process they name */
    const uint64_t now = ph_mono_ns();
    (void)ctl_scan(&c, now);
    (void)ctl_scan(&c, now + 1000000000ull);
    static const uint8_t patch[] = {0x81, 0xa7, 'e', 'n', 'a', 'b', 'l', 'e', 'd', 0xc2};
    for (uint32_t i = 0; i < seg->slots; i++) {
        if (!c.w[i].tracked) continue;
        FUZZ_CHECK_TERMINATED(c.w[i].role);
        FUZZ_CHECK_TERMINATED(c.w[i].instance);
        (void)ctl_send_command(&c, i, PH_CMD_CONFIG_PATCH, patch, sizeof patch);
        (void)ctl_send_command(&c, i, PH_CMD_STATUS_REQUEST, NULL, 0);
    }
    ctl_check_liveness(&c, true);
    ctl_destroy(&c);
    for (uint32_t i = 0; i < seg->slots; i++) {
        struct ph_slot_identity id;
        if (ph_slot_identity_read(ph_segment_slot(seg, i), &id)) {
            FUZZ_CHECK_TERMINATED(id.role);
            FUZZ_CHECK_TERMINATED(id.instance);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!fuzz_shm_write(shm_name, data, size, offsetof(struct ph_shm_header, swarm_id), swarm))
        abort();
    struct ph_segment seg;
    char err[256] = "";
    int rc = ph_segment_open(&seg, swarm, true, err, sizeof err);
    shm_unlink(shm_name);
    FUZZ_CHECK_TERMINATED(err);
    if (rc != PH_OK) return 0;
    FUZZ_CHECK(seg.size <= size && seg.slots >= 1 && seg.slots <= PH_MAX_SLOTS);
    walk(&seg);
    ph_segment_close(&seg);
    return 0;
}
