/* The bridge's bell (ph/channel.h) between two threads: one plays the
 * controller (writes documents into the out ring, then rings the bell when
 * ph_channel_bell_due() says the bridge sleeps), the other the bridge
 * (drains, arms the bell, and waits on its socket). A wake-up is lost when
 * the bridge waits with documents in the ring and nobody rings: the wait
 * here is long (PH_BELL_WAIT_MS), so a lost one fails the test instead of
 * being covered by a slow tick. Every record arrives once, in order.
 *
 * Runs under ThreadSanitizer too, for the ring's release/acquire pairs and
 * the flag's atomics; TSan does not model the two seq_cst fences, which
 * this test exercises only as far as the hardware reorders (x86: rarely).
 *
 *   test_bell_threads [--records N] [--seed S]
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "ph/channel.h"

#define PH_BELL_WAIT_MS 3000

static uint64_t n_records = 200000;
static uint64_t seed = 1;
static char swarm[32]; /* the channel's swarm id */
static struct ph_channel ch;
static ph_ring_producer prod;
static ph_ring_consumer cons;
static _Atomic uint64_t rings_sent;
static _Atomic uint64_t consumed; /* records the bridge has read */
static _Atomic int bridge_gave_up;
static char ctl_error[256];

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return x;
}

/* Short pauses now and then, so that the bridge really goes to sleep
 * between bursts instead of always finding the next record. */
static void pause_a_little(uint64_t r)
{
    if ((r & 63) == 0) {
        struct timespec ts = {0, (long)(r >> 8) % 200000};
        nanosleep(&ts, NULL);
    } else if ((r & 7) == 0) {
        sched_yield();
    }
}

static void *controller(void *arg)
{
    (void)arg;
    int fd = -1;
    uint64_t r = seed;
    for (uint64_t i = 0; i < n_records; i++) {
        while (!ph_ring_write(&prod, PH_DOC_RECORD, &i, sizeof i))
            sched_yield(); /* full */
        if (ph_channel_bell_due(&ch)) {
            int rc = ph_channel_bell_ring(&ch, swarm, &fd, NULL);
            if (rc != 0 && ctl_error[0] == '\0')
                snprintf(ctl_error, sizeof ctl_error, "ring failed: %s", strerror(-rc));
            atomic_fetch_add_explicit(&rings_sent, 1, memory_order_relaxed);
        }
        r = mix(r + i);
        /* Bursts of 1 to 4 records, then wait until the bridge has read
         * them: the last record of a burst is the one a lost wake-up
         * strands, since nothing written later would ring for it. */
        if ((r & 3) == 0 || i + 1 == n_records) {
            while (atomic_load_explicit(&consumed, memory_order_acquire) < i + 1 &&
                   !atomic_load_explicit(&bridge_gave_up, memory_order_relaxed))
                sched_yield();
            if (atomic_load_explicit(&bridge_gave_up, memory_order_relaxed)) break;
        }
        pause_a_little(r);
    }
    if (fd >= 0) close(fd);
    return NULL;
}

struct got {
    uint64_t next, bad;
};

static int on_record(void *ctx, uint16_t type, const uint8_t *body, uint32_t len)
{
    struct got *g = ctx;
    uint64_t v;
    if (type != PH_DOC_RECORD || len != sizeof v) {
        g->bad++;
        return 0;
    }
    memcpy(&v, body, sizeof v);
    if (v != g->next) g->bad++;
    g->next = v + 1;
    return 0;
}

int main(int argc, char **argv)
{
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--records") == 0)
            n_records = strtoull(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--seed") == 0)
            seed = strtoull(argv[i + 1], NULL, 10);
        else {
            fprintf(stderr, "usage: test_bell_threads [--records N] [--seed S]\n");
            return 2;
        }
    }
    char err[256];
    snprintf(swarm, sizeof swarm, "pht-bell-%d", (int)getpid());
    if (ph_channel_create(&ch, swarm, 1u << 14, 4096, err, sizeof err) != PH_OK) {
        fprintf(stderr, "test_bell_threads: %s\n", err);
        return 1;
    }
    int rc = 1;
    uint64_t token = 0;
    const int bell = ph_channel_bell_open(swarm, &token, err, sizeof err);
    if (bell < 0 || ph_ring_producer_init(&prod, &ch.hdr->out, ch.out_data, ch.out_ring) != PH_OK ||
        ph_ring_consumer_init(&cons, &ch.hdr->out, ch.out_data, ch.out_ring) != PH_OK) {
        fprintf(stderr, "test_bell_threads: setup failed: %s\n", bell < 0 ? err : "ring init");
        goto out;
    }
    atomic_store(&ch.hdr->bell_token, token);
    atomic_store(&ch.hdr->bell, 1);

    uint8_t *scratch = malloc(ch.out_ring / 2);
    pthread_t t;
    if (scratch == NULL || pthread_create(&t, NULL, controller, NULL) != 0) {
        fprintf(stderr, "test_bell_threads: cannot start the controller thread\n");
        free(scratch);
        goto out;
    }
    struct got g = {0};
    uint64_t br = seed ^ 0x9e3779b97f4a7c15ull;
    uint64_t sleeps = 0, heard = 0, lost = 0;
    while (g.next < n_records && lost == 0) {
        ph_ring_drain(&cons, on_record, &g, scratch, 0);
        ph_ring_commit(&cons);
        atomic_store_explicit(&consumed, g.next, memory_order_release);
        /* The bridge's own work after a drain (publishing what it read):
         * the controller's next record often lands in this window, before
         * the bell is armed, which is the case the arm's second look at
         * the ring is for. */
        br = mix(br + g.next);
        for (volatile uint64_t k = br % 4000; k > 0; k--) {
        }
        if (g.next >= n_records || !ph_channel_bell_arm(&ch, &cons)) continue;
        sleeps++;
        struct pollfd p = {.fd = bell, .events = POLLIN};
        const int n = poll(&p, 1, PH_BELL_WAIT_MS);
        if (n == 0) {
            lost++; /* asleep with the controller's records unannounced */
            atomic_store_explicit(&bridge_gave_up, 1, memory_order_relaxed);
            break;
        }
        char buf[16];
        while (recv(bell, buf, sizeof buf, MSG_DONTWAIT) > 0)
            heard++;
        ph_channel_bell_disarm(&ch);
    }
    pthread_join(t, NULL);
    free(scratch);
    const uint64_t sent = atomic_load(&rings_sent);
    printf("test_bell_threads: %" PRIu64 " records, %" PRIu64 " in order, %" PRIu64
           " bad; the bridge slept %" PRIu64 " times, %" PRIu64 " rings sent, %" PRIu64
           " heard, %" PRIu64 " lost wake-ups\n",
           n_records, g.next, g.bad, sleeps, sent, heard, lost);
    if (lost != 0)
        fprintf(stderr, "FAIL: the bridge slept %d ms with records waiting and no ring\n",
                PH_BELL_WAIT_MS);
    else if (g.bad != 0 || g.next != n_records)
        fprintf(stderr, "FAIL: records lost, repeated or out of order\n");
    else if (ctl_error[0] != '\0')
        fprintf(stderr, "FAIL: %s\n", ctl_error);
    else if (sleeps == 0 || sent == 0)
        fprintf(stderr, "FAIL: the bridge never slept (nothing was tested)\n");
    else
        rc = 0;
out:
    if (bell >= 0) close(bell);
    ph_channel_close(&ch);
    ph_channel_unlink(swarm, err, sizeof err);
    return rc;
}
