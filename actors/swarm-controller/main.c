/* ph-swarm-controller: owns a swarm's segment and drains every worker slot.
 *
 * The loop runs on io_uring and never busy-waits: a timeout wakes it every
 * tick to drain rings and beat the heartbeat, a signalfd read delivers
 * SIGTERM/SIGINT, and one poll per worker pidfd reports an owner's death
 * the moment it happens (a periodic /proc check covers owners without one). */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <liburing.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <jansson.h>

#include "ctl.h"
#include "ph/log.h"
#include "ph/shm.h"

enum { TAG_TICK = 1, TAG_SIGNAL = 2, TAG_PIDFD = 3 };

struct opts {
    const char *swarm;
    const char *swarm_file;
    struct ph_segment_params seg;
    uint32_t tick_ms;
};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: ph-swarm-controller --swarm ID [options]\n"
            "\n"
            "Creates (or re-adopts) the swarm's shared-memory segment /dev/shm/ph.ID and\n"
            "drains the status rings of every worker attached to it.\n"
            "\n"
            "options:\n"
            "  --swarm ID            swarm id ([A-Za-z0-9_-], at most 63 characters)\n"
            "  --slots N             worker slots in the segment (default %u)\n"
            "  --status-ring BYTES   status ring per slot, power of two (default %u)\n"
            "  --command-ring BYTES  command ring per slot, power of two (default %u)\n"
            "  --mode OCTAL          permissions of the segment (default 0600)\n"
            "  --tick-ms N           drain interval in milliseconds (default 10)\n"
            "  --swarm-file PATH     swarm file; its swarmId must match --swarm\n"
            "  --help                this text\n"
            "\n"
            "Exits 0 on SIGTERM or SIGINT; the segment stays for the supervisor to remove.\n",
            PH_DEFAULT_SLOTS, PH_DEFAULT_STATUS_RING, PH_DEFAULT_COMMAND_RING);
}

static bool parse_u32(const char *s, uint32_t *out, int base)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, base);
    if (errno != 0 || end == s || *end != '\0' || v > UINT32_MAX || s[0] == '-') return false;
    *out = (uint32_t)v;
    return true;
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
    static const struct option longs[] = {
        {"swarm", required_argument, NULL, 's'},      {"slots", required_argument, NULL, 'n'},
        {"status-ring", required_argument, NULL, 'r'}, {"command-ring", required_argument, NULL, 'c'},
        {"mode", required_argument, NULL, 'm'},       {"tick-ms", required_argument, NULL, 't'},
        {"swarm-file", required_argument, NULL, 'f'}, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    memset(o, 0, sizeof *o);
    o->tick_ms = 10;
    int ch, li = 0;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, "", longs, &li)) != -1) {
        bool ok = true;
        switch (ch) {
        case 's': o->swarm = optarg; break;
        case 'n': ok = parse_u32(optarg, &o->seg.slots, 10) && o->seg.slots > 0; break;
        case 'r': ok = parse_u32(optarg, &o->seg.status_ring, 10); break;
        case 'c': ok = parse_u32(optarg, &o->seg.command_ring, 10); break;
        case 'm': ok = parse_u32(optarg, &o->seg.mode, 8) && o->seg.mode > 0; break;
        case 't': ok = parse_u32(optarg, &o->tick_ms, 10) && o->tick_ms > 0 && o->tick_ms <= 10000;
            break;
        case 'f': o->swarm_file = optarg; break;
        case 'h': usage(stdout); exit(0);
        default:
            fprintf(stderr, "ph-swarm-controller: unknown or incomplete option '%s'\n",
                    argv[optind - 1]);
            usage(stderr);
            return 2;
        }
        if (!ok) {
            fprintf(stderr, "ph-swarm-controller: invalid value '%s' for --%s\n", optarg,
                    longs[li].name);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "ph-swarm-controller: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (o->swarm == NULL) {
        fprintf(stderr, "ph-swarm-controller: --swarm is required\n");
        usage(stderr);
        return 2;
    }
    char err[256];
    if (ph_ident_check("swarm id", o->swarm, err, sizeof err) != PH_OK) {
        fprintf(stderr, "ph-swarm-controller: %s\n", err);
        return 2;
    }
    return 0;
}

/* Reads the swarm file far enough to check that it describes this swarm. */
static int check_swarm_file(const struct opts *o)
{
    if (o->swarm_file == NULL) return 0;
    json_error_t je;
    json_t *root = json_load_file(o->swarm_file, 0, &je);
    if (root == NULL) {
        ph_error("swarm file %s: %s (line %d)", o->swarm_file, je.text, je.line);
        return 2;
    }
    const char *id = json_string_value(json_object_get(root, "swarmId"));
    int rc = 0;
    if (id == NULL || strcmp(id, o->swarm) != 0) {
        ph_error("swarm file %s describes swarm '%s', not '%s'", o->swarm_file,
                 id ? id : "(no swarmId)", o->swarm);
        rc = 2;
    }
    json_decref(root);
    return rc;
}

struct app {
    struct ph_segment seg;
    struct ctl ctl;
    struct io_uring ring;
    int sigfd;
    struct signalfd_siginfo si;
    struct __kernel_timespec tick;
    bool adopted;
    uint64_t started_real_ns;
    bool stop;
};

static void on_joined(void *ctx, struct ctl *c, struct ctl_worker *w)
{
    struct app *a = ctx;
    /* After a controller restart the previous controller consumed the
     * worker's config and io records: ask for them again. */
    if (a->adopted && w->attached_real_ns < a->started_real_ns)
        ctl_send_command(c, w->index, PH_CMD_STATUS_REQUEST, NULL, 0);
}

static void on_alert(void *ctx, struct ctl *c, struct ctl_worker *w, const struct ph_rec_alert *al)
{
    (void)ctx;
    (void)c;
    ph_log(strcmp(al->level, "error") == 0 ? PH_LOG_ERROR : PH_LOG_WARN, "alert from %s/%s: %s %s",
           w->role, w->instance, al->code, al->message);
}

static struct io_uring_sqe *sqe_get(struct app *a)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&a->ring);
    if (sqe == NULL) {
        io_uring_submit(&a->ring);
        sqe = io_uring_get_sqe(&a->ring);
    }
    return sqe;
}

static void arm_tick(struct app *a)
{
    struct io_uring_sqe *sqe = sqe_get(a);
    io_uring_prep_timeout(sqe, &a->tick, 0, 0);
    io_uring_sqe_set_data64(sqe, TAG_TICK);
}

static void arm_signal(struct app *a)
{
    struct io_uring_sqe *sqe = sqe_get(a);
    io_uring_prep_read(sqe, a->sigfd, &a->si, sizeof a->si, 0);
    io_uring_sqe_set_data64(sqe, TAG_SIGNAL);
}

/* user_data of a pidfd poll: tag, slot index and claim counter, so a late
 * completion about an earlier owner of the slot is recognised and ignored. */
static uint64_t pidfd_tag(const struct ctl_worker *w)
{
    return TAG_PIDFD | ((uint64_t)w->index << 8) | ((uint64_t)ph_slot_seq_of(w->word) << 32);
}

static void arm_pidfds(struct app *a)
{
    if (a->ctl.live == 0) return;
    for (uint32_t i = 0; i < a->seg.slots; i++) {
        struct ctl_worker *w = &a->ctl.w[i];
        if (!w->tracked || w->pidfd < 0 || w->pidfd_armed) continue;
        struct io_uring_sqe *sqe = sqe_get(a);
        io_uring_prep_poll_add(sqe, w->pidfd, POLLIN);
        io_uring_sqe_set_data64(sqe, pidfd_tag(w));
        w->pidfd_armed = true;
    }
}

static void on_pidfd(struct app *a, uint64_t tag)
{
    uint32_t index = (uint32_t)((tag >> 8) & 0xffffffu);
    uint32_t seq = (uint32_t)(tag >> 32);
    if (index >= a->seg.slots) return;
    struct ctl_worker *w = &a->ctl.w[index];
    if (!w->tracked || ph_slot_seq_of(w->word) != seq) return;
    /* Drain once more first: records published just before the exit count. */
    ctl_scan(&a->ctl, ph_mono_ns());
    if (w->tracked && ph_slot_seq_of(w->word) == seq) ctl_owner_died(&a->ctl, index, w->word);
}

static void raise_fd_limit(void)
{
    /* One pidfd per worker: allow as many as the hard limit permits. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static int run(struct app *a, const struct opts *o)
{
    uint64_t last_liveness = ph_mono_ns();
    arm_tick(a);
    arm_signal(a);
    while (!a->stop) {
        arm_pidfds(a);
        io_uring_submit_and_wait(&a->ring, 1);
        struct io_uring_cqe *cqe;
        unsigned head, seen = 0;
        bool ticked = false;
        io_uring_for_each_cqe(&a->ring, head, cqe)
        {
            seen++;
            uint64_t tag = io_uring_cqe_get_data64(cqe);
            switch (tag & 0xff) {
            case TAG_TICK: ticked = true; break;
            case TAG_SIGNAL:
                if (cqe->res == (int)sizeof a->si) {
                    ph_info("signal %u received: stopping", a->si.ssi_signo);
                    a->stop = true;
                } else {
                    arm_signal(a);
                }
                break;
            case TAG_PIDFD: on_pidfd(a, tag); break;
            default: break;
            }
        }
        io_uring_cq_advance(&a->ring, seen);
        if (ticked && !a->stop) {
            uint64_t now = ph_mono_ns();
            ph_segment_heartbeat(&a->seg);
            ctl_scan(&a->ctl, now);
            if (now - last_liveness >= 1000000000ull) {
                ctl_check_liveness(&a->ctl, false);
                last_liveness = now;
            }
            arm_tick(a);
        }
    }
    (void)o;
    return 0;
}

int main(int argc, char **argv)
{
    struct opts o;
    int rc = parse_opts(argc, argv, &o);
    if (rc != 0) return rc;
    ph_log_init("ph-swarm-controller", o.swarm);
    if (check_swarm_file(&o) != 0) return 2;

    static struct app a;
    char err[512];
    rc = ph_segment_create(&a.seg, o.swarm, &o.seg, &a.adopted, err, sizeof err);
    if (rc != PH_OK) {
        ph_error("%s", err);
        return 1;
    }
    uint64_t start = 0;
    ph_proc_start_time(getpid(), &start);
    ph_segment_set_controller(&a.seg, (int32_t)getpid(), start);
    a.started_real_ns = ph_real_ns();
    raise_fd_limit();

    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    signal(SIGPIPE, SIG_IGN);
    a.sigfd = signalfd(-1, &mask, SFD_CLOEXEC);
    rc = a.sigfd < 0 ? -errno : io_uring_queue_init(256, &a.ring, 0);
    if (rc < 0) {
        ph_error("cannot set up the event loop: %s", strerror(-rc));
        ph_segment_close(&a.seg);
        return 1;
    }
    a.tick.tv_sec = o.tick_ms / 1000;
    a.tick.tv_nsec = (long long)(o.tick_ms % 1000) * 1000000;
    struct ctl_hooks hooks = {.ctx = &a, .joined = on_joined, .alert = on_alert};
    if (ctl_init(&a.ctl, &a.seg, &hooks) != PH_OK) {
        ph_error("out of memory for %u slots", a.seg.slots);
        return 1;
    }
    ph_info("%s segment /dev/shm%s: %u slots, rings %u/%u bytes, %zu bytes, generation %" PRIu64,
            a.adopted ? "adopted" : "created", a.seg.name, a.seg.slots, a.seg.status_ring,
            a.seg.command_ring, a.seg.size,
            atomic_load_explicit(&a.seg.hdr->generation, memory_order_relaxed));
    ph_info("controller ready (pid %d, tick %u ms)", getpid(), o.tick_ms);

    rc = run(&a, &o);

    /* Last drain so nothing published before the stop is left unread. */
    ctl_scan(&a.ctl, ph_mono_ns());
    ctl_destroy(&a.ctl);
    /* release: pairs with readers' acquire of the pid; 0 means "no controller". */
    atomic_store_explicit(&a.seg.hdr->controller_pid, 0, memory_order_release);
    io_uring_queue_exit(&a.ring);
    ph_segment_close(&a.seg);
    ph_info("controller stopped");
    return rc;
}
