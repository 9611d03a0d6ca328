/* Taking a snapshot of a segment (see snapshot.h). This is the only file of
 * phctl that reads shared memory. It never writes to it: the mapping is
 * PROT_READ, so a stray store would fault rather than corrupt a swarm. */
#include "snapshot.h"

#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ph/record.h"
#include "ph/ring.h"

/* A segment truncated by someone else after we mapped it raises SIGBUS on
 * access to the lost pages. The reader arms this jump around its reads and
 * turns the fault into PH_ERR_TRUNC. Process-global by nature (a signal
 * handler), and phctl is single-threaded. */
static sigjmp_buf bus_jump;
static volatile sig_atomic_t bus_armed;

static void on_sigbus(int sig)
{
    if (bus_armed) siglongjmp(bus_jump, 1);
    signal(sig, SIG_DFL);
    raise(sig);
}

/* Identifiers in the segment are untrusted bytes: anything but printable
 * ASCII becomes '?', so neither a terminal (escape sequences) nor a JSON
 * encoder (invalid UTF-8) is handed something it would choke on. */
static void sanitize(char *s, size_t n)
{
    s[n - 1] = '\0';
    for (; *s != '\0'; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e) *s = '?';
}

static int64_t age_ms(uint64_t now, uint64_t then)
{
    if (then == 0) return DUMP_AGE_NONE;
    /* Workers stamp CLOCK_MONOTONIC_COARSE, which can read ahead of our
     * CLOCK_MONOTONIC by less than a tick; a hostile value can be anything. */
    if (then >= now) return 0;
    uint64_t ms = (now - then) / 1000000u;
    return ms > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)ms;
}

static void read_header(const struct ph_segment *seg, struct dump_header *h)
{
    const struct ph_shm_header *sh = seg->hdr;
    const uint64_t taken_mono = h->taken_mono_ns, taken_real = h->taken_real_ns;
    memset(h, 0, sizeof *h);
    h->taken_mono_ns = taken_mono;
    h->taken_real_ns = taken_real;
    snprintf(h->path, sizeof h->path, "/dev/shm%s", seg->name);

    /* Immutable fields, published by the release store of magic that
     * ph_segment_open() acquired; the geometry comes from the copy libph
     * validated, not from the (writable by others) header. */
    memcpy(h->swarm_id, sh->swarm_id, sizeof h->swarm_id);
    sanitize(h->swarm_id, sizeof h->swarm_id);
    h->layout_version = sh->layout_version;
    h->created_real_ns = sh->created_real_ns;
    h->slot_capacity = seg->slots;
    h->segment_bytes = seg->size;
    h->status_ring = seg->status_ring;
    h->command_ring = seg->command_ring;

    /* acquire: pairs with ph_segment_set_controller()'s release of the pid,
     * so the start time read next belongs to that pid. */
    h->controller_pid = atomic_load_explicit(&sh->controller_pid, memory_order_acquire);
    /* relaxed: ordered after the pid by the acquire above. */
    h->controller_start_time =
        atomic_load_explicit(&sh->controller_start_time, memory_order_relaxed);
    /* relaxed: a free-standing timestamp; nothing else is read on its strength. */
    uint64_t hb = atomic_load_explicit(&sh->controller_heartbeat_ns, memory_order_relaxed);
    /* relaxed: counters displayed as they are, each meaningful on its own. */
    h->generation = atomic_load_explicit(&sh->generation, memory_order_relaxed);
    h->quarantined_total = atomic_load_explicit(&sh->quarantined_total, memory_order_relaxed);
    h->reclaimed_total = atomic_load_explicit(&sh->reclaimed_total, memory_order_relaxed);
    /* relaxed: only displayed; the scan covers every slot whatever it says. */
    h->slot_high_water = atomic_load_explicit(&sh->slot_high_water, memory_order_relaxed);

    h->controller_hb_age_ms = age_ms(h->taken_mono_ns, hb);
    h->controller_alive = ph_proc_alive(h->controller_pid, h->controller_start_time);
}

static void read_ring(const struct ph_ring_desc *d, uint32_t capacity, struct dump_ring *out)
{
    out->capacity = capacity;
    out->used = ph_ring_used(d, capacity);
    if (out->used > capacity) out->used = capacity; /* ph_ring_used bounds it; so do we */
    /* relaxed: a statistics counter of the producer, read on its own. */
    out->overflows = atomic_load_explicit(&d->overflows, memory_order_relaxed);
}

/* Copies slot `i` into *w. Returns 1 when the slot is in use, 0 when FREE,
 * -1 when it kept changing under the reader (claimed or freed meanwhile). */
static int read_slot(const struct ph_segment *seg, uint32_t i, uint64_t now, struct dump_worker *w)
{
    if (i >= seg->slots) return 0;
    const struct ph_slot *s = ph_segment_slot(seg, i);
    for (int attempt = 0; attempt < 16; attempt++) {
        struct ph_slot_identity id;
        if (!ph_slot_identity_read(s, &id)) {
            /* relaxed: only tells FREE apart from "changed while copied";
             * either way nothing is read on its strength. */
            uint64_t st = atomic_load_explicit(&s->state, memory_order_relaxed);
            if (ph_slot_state_of(st) == PH_SLOT_FREE) return 0;
            continue;
        }
        memset(w, 0, sizeof *w);
        w->slot = i;
        w->state_word = id.state;
        w->state = ph_slot_state_of(id.state);
        w->pid = id.pid;
        w->start_time = id.start_time;
        w->attached_real_ns = id.attached_real_ns;
        memcpy(w->role, id.role, sizeof w->role);
        memcpy(w->instance, id.instance, sizeof w->instance);
        sanitize(w->role, sizeof w->role);
        sanitize(w->instance, sizeof w->instance);

        /* relaxed: the owner and the controller store these relaxed as
         * independent momentary figures; the state re-check below is what
         * ties them to this claim. */
        w->processed = atomic_load_explicit(&s->w_processed, memory_order_relaxed);
        w->errors = atomic_load_explicit(&s->w_errors, memory_order_relaxed);
        uint64_t hb = atomic_load_explicit(&s->w_heartbeat_ns, memory_order_relaxed);
        uint32_t ws = atomic_load_explicit(&s->w_state, memory_order_relaxed);
        w->tps = atomic_load_explicit(&s->c_tps, memory_order_relaxed);
        uint64_t seen = atomic_load_explicit(&s->c_last_seen_ns, memory_order_relaxed);
        w->records = atomic_load_explicit(&s->c_records, memory_order_relaxed);
        w->quarantine = atomic_load_explicit(&s->c_quarantine, memory_order_relaxed);
        read_ring(&s->status, seg->status_ring, &w->status);
        read_ring(&s->command, seg->command_ring, &w->command);

        /* Decoding follows ph_w_state_pack(): bit 0, bits 8-15, bits 16-23. */
        w->enabled = (ws & 1u) != 0;
        w->io_in = (int)((ws >> 8) & 0xffu);
        w->io_out = (int)((ws >> 16) & 0xffu);
        w->hb_ns = hb;
        w->hb_age_ms = age_ms(now, hb);
        w->last_drain_age_ms = age_ms(now, seen);

        /* acquire fence: the copies above complete before the state word is
         * read again; an unchanged word means no new claim reset them. */
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&s->state, memory_order_relaxed) != id.state) continue;
        return 1;
    }
    return -1;
}

static int grow(struct dump *d)
{
    if (d->n < d->cap) return PH_OK;
    size_t cap = d->cap == 0 ? 16 : d->cap * 2;
    struct dump_worker *p = realloc(d->workers, cap * sizeof *p);
    if (p == NULL) return PH_ERR_SYS;
    d->workers = p;
    d->cap = cap;
    return PH_OK;
}

/* Every access to the segment happens in here, under the SIGBUS guard. */
static int read_all(const struct ph_segment *seg, struct dump *d)
{
    read_header(seg, &d->hdr);
    /* Every slot, not only below slot_high_water: that word is written by
     * workers and a debugger must not trust it to hide a slot. */
    for (uint32_t i = 0; i < seg->slots; i++) {
        if (grow(d) != PH_OK) return PH_ERR_SYS;
        int r = read_slot(seg, i, d->hdr.taken_mono_ns, &d->workers[d->n]);
        if (r == 0) continue;
        d->hdr.slots_used++;
        if (r < 0) {
            d->hdr.slots_changing++;
            continue;
        }
        d->n++;
    }
    return PH_OK;
}

int dump_take(const struct ph_segment *seg, struct dump *out, char *err, size_t errlen)
{
    out->n = 0;
    memset(&out->hdr, 0, sizeof out->hdr);
    out->hdr.taken_mono_ns = ph_mono_ns();
    out->hdr.taken_real_ns = ph_real_ns();

    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigbus;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGBUS, &sa, &old);
    int rc;
    if (sigsetjmp(bus_jump, 1) == 0) {
        bus_armed = 1;
        rc = read_all(seg, out);
        bus_armed = 0;
    } else {
        bus_armed = 0;
        out->n = 0;
        rc = PH_ERR_TRUNC;
    }
    sigaction(SIGBUS, &old, NULL);

    if (rc == PH_ERR_TRUNC)
        snprintf(err, errlen,
                 "segment /dev/shm%s shrank while being read (someone truncated "
                 "or replaced it)",
                 seg->name);
    else if (rc == PH_ERR_SYS)
        snprintf(err, errlen, "out of memory while copying segment /dev/shm%s", seg->name);
    else
        /* Liveness is a syscall per worker: done once the copy is stable. */
        for (size_t k = 0; k < out->n; k++) {
            struct dump_worker *w = &out->workers[k];
            w->alive = ph_proc_alive(w->pid, w->start_time);
            w->tps_source = out->hdr.controller_alive ? DUMP_TPS_CONTROLLER : DUMP_TPS_STALE;
        }
    return rc;
}

void dump_free(struct dump *d)
{
    free(d->workers);
    d->workers = NULL;
    d->n = d->cap = 0;
}

/* phctl's measure for one worker seen in two snapshots of the same claim. */
static void measure(struct dump_worker *w, const struct dump_worker *p)
{
    if (!w->alive || w->hb_age_ms < 0 || w->hb_age_ms > DUMP_SILENT_MS) {
        w->tps = 0;
        w->tps_source = DUMP_TPS_PHCTL;
    } else if (w->hb_ns > p->hb_ns && w->processed >= p->processed) {
        double tps = (double)(w->processed - p->processed) * 1e9 / (double)(w->hb_ns - p->hb_ns);
        w->tps = tps + 0.5 >= 1.8e19 ? UINT64_MAX : (uint64_t)(tps + 0.5);
        w->tps_source = DUMP_TPS_PHCTL;
    } else if (w->hb_ns == p->hb_ns && p->tps_source == DUMP_TPS_PHCTL) {
        w->tps = p->tps; /* no status since: the last measure still holds */
        w->tps_source = DUMP_TPS_PHCTL;
    }
}

void dump_rates_from(struct dump *cur, const struct dump *prev)
{
    if (cur->hdr.controller_alive || prev == NULL) return;
    size_t j = 0;
    for (size_t k = 0; k < cur->n; k++) {
        struct dump_worker *w = &cur->workers[k];
        while (j < prev->n && prev->workers[j].slot < w->slot)
            j++;
        if (j >= prev->n) break;
        const struct dump_worker *p = &prev->workers[j];
        /* Same slot and same state word: the same claim, so the counters
         * continue each other. */
        if (p->slot == w->slot && p->state_word == w->state_word) measure(w, p);
    }
}

const char *dump_state_name(unsigned state)
{
    switch (state) {
    case PH_SLOT_FREE:
        return "free";
    case PH_SLOT_CLAIMING:
        return "claiming";
    case PH_SLOT_ACTIVE:
        return "active";
    case PH_SLOT_DETACHED:
        return "detached";
    case PH_SLOT_JOINING:
        return "joining";
    default:
        return "unknown";
    }
}

const char *dump_tps_source_name(enum dump_tps_source s)
{
    switch (s) {
    case DUMP_TPS_CONTROLLER:
        return "controller";
    case DUMP_TPS_STALE:
        return "controller-dead";
    case DUMP_TPS_PHCTL:
        return "phctl";
    }
    return "unknown";
}
