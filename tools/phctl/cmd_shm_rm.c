/* phctl shm-rm: removes a swarm's segment left behind by a controller that
 * died (the supervisor removes it on a clean `down`). Removing the segment
 * of a live controller would split the swarm in two (its workers keep the
 * old mapping, new workers would find a new segment), so that needs --force.
 * A segment phctl cannot read (bad magic, other layout version, truncated)
 * cannot be checked either and also needs --force. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "phctl.h"
#include "ph/channel.h"
#include "ph/shm.h"

static const char CMD[] = "shm-rm";

static void usage(FILE *out)
{
    fputs("usage: phctl shm-rm --swarm ID [--force]\n"
          "\n"
          "Removes /dev/shm/ph.<ID>, the shared-memory segment of a swarm, when its controller\n"
          "is no longer running. Workers still attached keep their mapping until they exit;\n"
          "they are listed as a warning.\n"
          "\n"
          "Options:\n"
          "  -s, --swarm ID   swarm id (letters, digits, '-' and '_')\n"
          "  -f, --force      remove even when the controller is alive or the segment cannot\n"
          "                   be read (bad magic, other layout version, truncated)\n"
          "  -h, --help       print this help\n"
          "\n"
          "Exit status: 0 removed, 1 other failure, 2 usage error, 3 no such swarm, 4 permission\n"
          "denied, 5/6/7 unreadable segment (bad magic, layout version, truncated) without\n"
          "--force, 8 the controller is alive and --force was not given.\n",
          out);
}

/* Counts live owners of slots, for the warning. */
static uint32_t live_workers(const struct ph_segment *seg)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < seg->slots; i++) {
        struct ph_slot_identity id;
        if (ph_slot_identity_read(ph_segment_slot(seg, i), &id) &&
            ph_proc_alive(id.pid, id.start_time))
            n++;
    }
    return n;
}

/* Checks whether the segment may go. Returns -1 when it may, else an exit code. */
static int check(const char *swarm, bool force)
{
    char err[512];
    struct ph_segment seg;
    int rc = ph_segment_open(&seg, swarm, false, err, sizeof err);
    if (rc == PH_ERR_NOENT || rc == PH_ERR_ACCES || rc == PH_ERR_INVAL) return phctl_fail(rc, err);
    if (rc != PH_OK) {
        if (force) {
            fprintf(stderr, "phctl: %s; removing it anyway (--force)\n", err);
            return -1;
        }
        fprintf(stderr, "phctl: %s\n", err);
        fprintf(stderr, "phctl: cannot tell whether its controller is alive; refusing to remove "
                        "it without --force\n");
        return phctl_exit_for(rc);
    }
    /* acquire: pairs with ph_segment_set_controller()'s release of the pid. */
    int32_t pid = atomic_load_explicit(&seg.hdr->controller_pid, memory_order_acquire);
    /* relaxed: ordered after the pid by the acquire above. */
    uint64_t start = atomic_load_explicit(&seg.hdr->controller_start_time, memory_order_relaxed);
    const bool alive = ph_proc_alive(pid, start);
    const uint32_t workers = live_workers(&seg);
    ph_segment_close(&seg);
    if (alive && !force) {
        fprintf(stderr,
                "phctl: swarm '%s' has a live controller (pid %" PRId32 "); stop the "
                "swarm first, or use --force\n",
                swarm, pid);
        return PHCTL_EXIT_BUSY;
    }
    if (alive)
        fprintf(stderr,
                "phctl: warning: controller pid %" PRId32 " is alive; removing its "
                "segment anyway (--force)\n",
                pid);
    if (workers > 0)
        fprintf(stderr,
                "phctl: warning: %" PRIu32 " worker process(es) still attached keep the "
                "removed segment mapped until they exit\n",
                workers);
    return -1;
}

int phctl_shm_rm(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"swarm", required_argument, NULL, 's'},
        {"force", no_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *swarm = NULL;
    bool force = false;
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, ":s:fh", longopts, NULL)) != -1) {
        switch (c) {
        case 's':
            swarm = optarg;
            break;
        case 'f':
            force = true;
            break;
        case 'h':
            usage(stdout);
            return PHCTL_EXIT_OK;
        default:
            return phctl_bad_option(CMD, c, argv);
        }
    }
    if (optind < argc) return phctl_usage_error(CMD, "unexpected argument '%s'", argv[optind]);
    if (!phctl_swarm_ok(CMD, swarm)) return PHCTL_EXIT_USAGE;

    int code = check(swarm, force);
    if (code >= 0) return code;
    char err[512];
    int rc = ph_segment_unlink(swarm, err, sizeof err);
    if (rc != PH_OK) return phctl_fail(rc, err);
    printf("removed /dev/shm/ph.%s\n", swarm);
    /* The controller's channel to the bridge goes with the swarm. */
    rc = ph_channel_unlink(swarm, err, sizeof err);
    if (rc == PH_OK)
        printf("removed /dev/shm/ph.%s.bridge\n", swarm);
    else if (rc != PH_ERR_NOENT)
        return phctl_fail(rc, err);
    return PHCTL_EXIT_OK;
}
