/* Worker SDK (ph/worker.h): a worker's side of its slot.
 *
 * Hot-path rule: ph_worker_count() is a local addition; status reaches the
 * segment only in ph_worker_publish_status(), a 40-byte ring write plus a
 * few relaxed mirror stores, at most once per tick. Variable records
 * (config, io, acks) are encoded once and kept until a ring write succeeds,
 * so a full ring delays them but never loses the latest state.
 *
 * A full ring: a status record that does not fit is one overflow, and the
 * change waits; so do config/io/ack records (not counted: they are kept).
 * ph_worker_tick() then looks for room at most once per coarse-clock tick,
 * with ph_ring_fits() (which counts nothing), not on every call: a worker
 * ticking per item would otherwise re-read the consumer's cache line and
 * count an overflow per item while the controller is away. */
#include "ph/worker.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ph/mpjson.h"
#include "ph/shm.h"
#include "ph/worker_remote.h"

/* Remote mode's agent (amqp/worker_remote.c, CMake target
 * ph_worker_remote) is reached through weak references: libph does not
 * link ph_amqp, and in a program that did not link the agent both are
 * NULL, which ph_worker_attach() reports. */
#pragma weak ph_worker_remote_start
#pragma weak ph_worker_remote_stop

/* Acks waiting for room in a full status ring. A controller has at most 64
 * commands in flight (SWARM_MAX_PENDING), plus status-requests of its own:
 * after it stalled, its backlog of signals may reach one worker all at once,
 * and an ack dropped here leaves a command waiting for its timeout. */
#define PENDING_ACKS 96
#define STRETCH_MAX_US 1000000ul

/* PH_TEST_STRETCH_WRITE_US: for fault tests only, a pause of that many
 * microseconds (at most a second) between writing a status record's body and
 * publishing the ring tail, so that a kill lands inside the write. Unset,
 * empty or malformed: no pause. */
static uint64_t stretch_from_env(void)
{
    const char *e = getenv("PH_TEST_STRETCH_WRITE_US");
    if (e == NULL || *e == '\0') return 0;
    char *end;
    errno = 0;
    unsigned long us = strtoul(e, &end, 10);
    if (errno != 0 || *end != '\0' || us > STRETCH_MAX_US) return 0;
    return (uint64_t)us * 1000ull;
}

struct pending {
    msgpack_sbuffer buf;
    bool due;
};

struct ph_worker {
    /* Local: shared with this process's other workers (map_get). Remote:
     * this worker's private one-slot segment, and the agent relaying it. */
    struct ph_segment *seg;
    bool remote;
    struct ph_worker_agent *agent;
    struct ph_slot *slot;
    uint32_t index;
    uint64_t word; /* our claim's state word: detach only from exactly this */
    ph_ring_producer status;
    ph_ring_consumer cmd;
    bool cmd_broken;
    uint8_t *scratch;

    uint64_t processed;
    uint64_t errors;
    uint32_t seq;
    bool enabled;
    uint8_t io_in;
    uint8_t io_out;
    bool dirty;
    bool status_waiting; /* a status record found the ring full (counted once) */
    uint64_t heartbeat_ns;
    uint64_t last_publish_ns;
    uint64_t retry_ns; /* coarse clock of the last look for room for waiting records */
    /* test hook: pause between a status body and its publish */
    uint64_t stretch_ns;

    struct pending meta; /* PH_REC_META, sent once when location/transport are set */
    bool proxy;          /* attached on behalf of a worker elsewhere (transport not shm) */
    struct pending config;
    struct pending io;
    /* FIFO (acks_head, acks_count) of PENDING_ACKS, allocated by the first
     * ack (and `scratch` by the first command): allocated at attach they
     * were 5 of the 5.7 KiB of heap a worker took, and a process attaching
     * 10,000 workers spent a third of its time faulting those pages in
     * (47-68 us an attach, now 30-37). */
    struct pending *acks;
    uint32_t acks_head;
    uint32_t acks_count;
    uint64_t acks_dropped;

    json_t *patch; /* last CONFIG_PATCH handed out */
    struct ph_command *cmd_out;
    int cmd_found;
};

static void pending_init(struct pending *p)
{
    msgpack_sbuffer_init(&p->buf);
    p->due = false;
}

/* A first buffer of 256 bytes for a record about to be packed into p:
 * msgpack's own first is 8 KiB, for records of a few dozen bytes, and a
 * process attaching thousands of workers spent a quarter of its attach
 * time in malloc for them. It grows by doubling from here as needed;
 * without memory the packer's first write allocates as usual. */
static void pending_room(struct pending *p)
{
    if (p->buf.alloc != 0) return;
    if ((p->buf.data = malloc(256)) != NULL) p->buf.alloc = 256;
}

static bool pending_flush(ph_worker *w, struct pending *p, uint16_t type)
{
    if (!p->due) return true;
    /* A retry is not a loss: check for room first so that waiting records
     * are not counted as overflows on every attempt. */
    if (!ph_ring_fits(&w->status, (uint32_t)p->buf.size)) return false;
    if (!ph_ring_write(&w->status, type, p->buf.data, (uint32_t)p->buf.size)) return false;
    p->due = false;
    return true;
}

static void flush_acks(ph_worker *w)
{
    /* In order: the oldest waiting ack first, stop at the first that does
     * not fit. */
    while (w->acks_count > 0 && pending_flush(w, &w->acks[w->acks_head], PH_REC_ACK)) {
        w->acks_head = (w->acks_head + 1) % PENDING_ACKS;
        w->acks_count--;
    }
}

static void flush_all(ph_worker *w)
{
    /* Meta, config and io first: the controller then sees them before the
     * status that follows. */
    if (!pending_flush(w, &w->meta, PH_REC_META)) return;
    pending_flush(w, &w->config, PH_REC_CONFIG);
    pending_flush(w, &w->io, PH_REC_IO);
    flush_acks(w);
}

/* ---- one mapping per segment object and process ----------------------------
 *
 * A process that hosts many workers of a swarm maps the segment once: a
 * mapping per worker would cost an mmap each and, worse, a page fault for
 * every slot the claim's duplicate check reads, in every new mapping (the
 * check reads every slot in use, so attaching N workers faulted N*N/2
 * pages). A mapping is reused while the name still leads to the same object
 * (device and inode); a segment made anew gets a new mapping, and the old
 * one stays until its last worker detaches. The list is process-private and
 * guarded by a process-private mutex (attach and detach are not on the hot
 * path); nothing here is shared between processes. */
struct shared_map {
    struct ph_segment seg;
    dev_t dev;
    ino_t ino;
    unsigned refs;
    struct shared_map *next;
};
static pthread_mutex_t maps_lock = PTHREAD_MUTEX_INITIALIZER;
static struct shared_map *maps;

/* The device and inode the segment's name leads to now. */
static bool name_object(const char *name, dev_t *dev, ino_t *ino)
{
    /* One stat of the file behind the name (glibc keeps POSIX shared
     * memory in /dev/shm) instead of shm_open, fstat and close: a process
     * attaching thousands of workers asks this for each. Whether this
     * process may map the object is still up to ph_segment_open(). */
    char path[PH_ID_MAX + 24];
    struct stat st;
    bool ok;
    if (snprintf(path, sizeof path, "/dev/shm%s", name) < (int)sizeof path) {
        ok = stat(path, &st) == 0;
    } else {
        int fd = shm_open(name, O_RDONLY | O_CLOEXEC, 0);
        if (fd < 0) return false;
        ok = fstat(fd, &st) == 0;
        close(fd);
    }
    if (ok) {
        *dev = st.st_dev;
        *ino = st.st_ino;
    }
    return ok;
}

static int map_get(const char *swarm_id, struct ph_segment **out, char *err, size_t errlen)
{
    char name[PH_ID_MAX + 8];
    int rc = ph_segment_name(swarm_id, name, sizeof name, err, errlen);
    if (rc != PH_OK) return rc;
    dev_t dev = 0;
    ino_t ino = 0;
    const bool named = name_object(name, &dev, &ino);
    pthread_mutex_lock(&maps_lock);
    for (struct shared_map *m = named ? maps : NULL; m != NULL; m = m->next) {
        if (m->dev == dev && m->ino == ino && strcmp(m->seg.name, name) == 0) {
            m->refs++;
            *out = &m->seg;
            pthread_mutex_unlock(&maps_lock);
            return PH_OK;
        }
    }
    struct shared_map *m = calloc(1, sizeof *m);
    if (m == NULL) {
        pthread_mutex_unlock(&maps_lock);
        snprintf(err, errlen, "out of memory");
        return PH_ERR_SYS;
    }
    rc = ph_segment_open(&m->seg, swarm_id, true, err, errlen);
    struct stat st;
    if (rc == PH_OK && fstat(m->seg.fd, &st) == 0) {
        m->dev = st.st_dev;
        m->ino = st.st_ino;
    }
    if (rc != PH_OK) {
        free(m);
        pthread_mutex_unlock(&maps_lock);
        return rc;
    }
    m->refs = 1;
    m->next = maps;
    maps = m;
    *out = &m->seg;
    pthread_mutex_unlock(&maps_lock);
    return PH_OK;
}

static void map_put(struct ph_segment *seg)
{
    pthread_mutex_lock(&maps_lock);
    for (struct shared_map **p = &maps; *p != NULL; p = &(*p)->next) {
        struct shared_map *m = *p;
        if (&m->seg != seg) continue;
        if (--m->refs == 0) {
            *p = m->next;
            ph_segment_close(&m->seg);
            free(m);
        }
        break;
    }
    pthread_mutex_unlock(&maps_lock);
}

/* Gives the segment back: the shared mapping's reference, or the private
 * segment of remote mode. */
static void seg_put(ph_worker *w)
{
    if (!w->remote) {
        map_put(w->seg);
        return;
    }
    ph_segment_close(w->seg);
    free(w->seg);
}

/* Remote mode: a private one-slot segment in process memory. */
static int open_private(ph_worker *w, const struct ph_worker_opts *o, char *err, size_t errlen)
{
    w->seg = calloc(1, sizeof *w->seg);
    if (w->seg == NULL) {
        snprintf(err, errlen, "out of memory");
        return PH_ERR_SYS;
    }
    int rc = ph_segment_private(w->seg, o->swarm_id, 1, PH_WR_STATUS_RING, PH_WR_COMMAND_RING, err,
                                errlen);
    if (rc != PH_OK) {
        free(w->seg);
        w->seg = NULL;
        return rc;
    }
    w->remote = true;
    return PH_OK;
}

/* opts.mode, or PH_WORKER_MODE when that is AUTO; -1 with a message when
 * either is not a mode. */
static int resolve_mode(const struct ph_worker_opts *o, char *err, size_t errlen)
{
    if (o->mode != PH_WORKER_AUTO) {
        if (o->mode == PH_WORKER_LOCAL || o->mode == PH_WORKER_REMOTE) return (int)o->mode;
        snprintf(err, errlen, "unknown worker mode %d", (int)o->mode);
        return -1;
    }
    const char *e = getenv("PH_WORKER_MODE");
    if (e == NULL || *e == '\0' || strcmp(e, "auto") == 0) return PH_WORKER_AUTO;
    if (strcmp(e, "local") == 0) return PH_WORKER_LOCAL;
    if (strcmp(e, "remote") == 0) return PH_WORKER_REMOTE;
    snprintf(err, errlen, "PH_WORKER_MODE must be local, remote or auto (got '%.32s')", e);
    return -1;
}

static bool env_set(const char *name)
{
    const char *e = getenv(name);
    return e != NULL && *e != '\0';
}

/* Starts the agent of a remote worker whose rings are set up. */
static int start_agent(ph_worker *w, const struct ph_worker_opts *o, const char *location,
                       char *err, size_t errlen)
{
    struct ph_wr_ident id = {0};
    snprintf(id.swarm, sizeof id.swarm, "%s", o->swarm_id);
    snprintf(id.role, sizeof id.role, "%s", o->role);
    snprintf(id.instance, sizeof id.instance, "%s", o->instance);
    snprintf(id.location, sizeof id.location, "%s", location);
    const char *ctl = o->controller;
    if (ctl == NULL || *ctl == '\0') ctl = getenv("PH_CONTROLLER_INSTANCE");
    if (ctl != NULL && *ctl != '\0') {
        if (strlen(ctl) >= sizeof id.controller) {
            snprintf(err, errlen, "controller instance id is too long");
            return PH_ERR_INVAL;
        }
        snprintf(id.controller, sizeof id.controller, "%s", ctl);
    } else {
        snprintf(id.controller, sizeof id.controller, "%s-controller", o->swarm_id);
    }
    id.heartbeat_ms = o->heartbeat_ms ? o->heartbeat_ms : PH_WR_DEFAULT_HEARTBEAT_MS;
    const char *file = getenv("PH_AMQP_URL_FILE");
    const struct ph_worker_remote_args args = {.ident = &id,
                                               .seg = w->seg,
                                               .slot = w->slot,
                                               .started_real_ns = ph_real_ns(),
                                               .url_file = file != NULL && *file ? file : NULL};
    w->agent = ph_worker_remote_start(&args, err, errlen);
    return w->agent != NULL ? PH_OK : PH_ERR_INVAL;
}

/* This process's start time, read from /proc once per process (per
 * thread). A fork's child forgets it (pthread_atfork): a descendant may get
 * the pid of an ancestor that has exited, so the pid alone cannot tell. */
static _Thread_local int32_t cached_pid;
static _Thread_local uint64_t cached_start;
static pthread_once_t start_cache_once = PTHREAD_ONCE_INIT;

static void start_cache_forget(void)
{
    cached_pid = 0;
    cached_start = 0;
}

static void start_cache_init(void)
{
    (void)pthread_atfork(NULL, NULL, start_cache_forget);
}

static int self_start_time(int32_t pid, uint64_t *out)
{
    (void)pthread_once(&start_cache_once, start_cache_init);
    if (cached_pid != pid || cached_start == 0) {
        uint64_t st = 0;
        const int rc = ph_proc_start_time(pid, &st);
        if (rc != PH_OK) return rc;
        cached_pid = pid;
        cached_start = st;
    }
    *out = cached_start;
    return PH_OK;
}

static int open_with_timeout(ph_worker *w, const struct ph_worker_opts *o, char *err,
                             size_t errlen)
{
    const uint64_t deadline = ph_mono_ns() + (uint64_t)o->attach_timeout_ms * 1000000ull;
    for (;;) {
        int rc = map_get(o->swarm_id, &w->seg, err, errlen);
        /* Missing or not yet initialised: the controller may still be starting. */
        /* Missing, not yet sized or not yet initialised: the controller may be
         * between shm_open, ftruncate and publishing the header. */
        bool retry = rc == PH_ERR_NOENT || rc == PH_ERR_TRUNC ||
                     (rc == PH_ERR_MAGIC && strstr(err, "not initialised"));
        if (!retry || ph_mono_ns() >= deadline) return rc;
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

ph_worker *ph_worker_attach(const struct ph_worker_opts *o, char *err, size_t errlen)
{
    if (o == NULL || o->swarm_id == NULL || o->role == NULL || o->instance == NULL) {
        snprintf(err, errlen, "swarm id, role and instance are required");
        return NULL;
    }
    if (ph_ident_check("swarm id", o->swarm_id, err, errlen) != PH_OK ||
        ph_ident_check("role", o->role, err, errlen) != PH_OK ||
        ph_ident_check("instance", o->instance, err, errlen) != PH_OK)
        return NULL;
    const int mode = resolve_mode(o, err, errlen);
    if (mode < 0) return NULL;
    const bool linked = ph_worker_remote_start != NULL && ph_worker_remote_stop != NULL;
    if (mode == PH_WORKER_REMOTE && !linked) {
        snprintf(err, errlen, "remote mode not linked into this program: link ph_amqp (CMake "
                              "target ph_worker_remote)");
        return NULL;
    }
    /* Remote mode may be decided only once the segment is found missing:
     * its location is worked out (and checked) in any case. */
    char remote_loc[PH_LOCATION_MAX] = "";
    if (mode != PH_WORKER_LOCAL) {
        if (o->location != NULL)
            snprintf(remote_loc, sizeof remote_loc, "%s", o->location);
        else if (gethostname(remote_loc, sizeof remote_loc - 1) != 0 ||
                 !ph_location_ok(remote_loc))
            snprintf(remote_loc, sizeof remote_loc, "localhost");
        if (mode == PH_WORKER_REMOTE && !ph_location_ok(remote_loc)) {
            snprintf(err, errlen, "location '%.63s' is not valid (a host name of printable ASCII "
                     "without spaces, under %d bytes)", remote_loc, PH_LOCATION_MAX);
            return NULL;
        }
    }
    /* Location and transport, checked before anything is claimed. */
    char meta_loc[PH_LOCATION_MAX] = "";
    const char *meta_tr = o->transport != NULL ? o->transport : "shm";
    if (mode != PH_WORKER_REMOTE && (o->location != NULL || o->transport != NULL)) {
        if (o->location != NULL)
            snprintf(meta_loc, sizeof meta_loc, "%s", o->location);
        else if (gethostname(meta_loc, sizeof meta_loc - 1) != 0 || !ph_location_ok(meta_loc))
            snprintf(meta_loc, sizeof meta_loc, "localhost");
        if (!ph_location_ok(o->location != NULL ? o->location : meta_loc) ||
            !ph_transport_ok(meta_tr)) {
            snprintf(err, errlen, "location '%.63s' or transport '%.15s' is not valid (a host "
                     "name of printable ASCII without spaces, under %d bytes; shm, relay or amqp)",
                     o->location != NULL ? o->location : meta_loc, meta_tr, PH_LOCATION_MAX);
            return NULL;
        }
    }
    json_t *config = NULL;
    if (o->config_json != NULL) {
        json_error_t je;
        config = json_loads(o->config_json, 0, &je);
        if (config == NULL || !json_is_object(config)) {
            snprintf(err, errlen, "config is not a JSON object: %s",
                     config == NULL ? je.text : "another JSON type");
            json_decref(config);
            return NULL;
        }
    }
    ph_worker *w = calloc(1, sizeof *w);
    if (w == NULL) {
        snprintf(err, errlen, "out of memory");
        json_decref(config);
        return NULL;
    }
    int rc = mode == PH_WORKER_REMOTE ? open_private(w, o, err, errlen)
                                      : open_with_timeout(w, o, err, errlen);
    /* AUTO: no segment, but a broker to speak to. */
    if (rc == PH_ERR_NOENT && mode == PH_WORKER_AUTO && linked &&
        (env_set("PH_AMQP_URL_FILE") || env_set("PH_AMQP_URL")) && ph_location_ok(remote_loc))
        rc = open_private(w, o, err, errlen);
    if (rc != PH_OK) {
        free(w);
        json_decref(config);
        return NULL;
    }
    uint64_t start = 0;
    int32_t pid = (int32_t)getpid();
    if (self_start_time(pid, &start) != PH_OK ||
        ph_slot_claim(w->seg, o->role, o->instance, pid, start, &w->index, &w->word, err,
                      errlen) != PH_OK) {
        if (start == 0) snprintf(err, errlen, "cannot read this process's start time from /proc");
        seg_put(w);
        free(w);
        json_decref(config);
        return NULL;
    }
    w->slot = ph_segment_slot(w->seg, w->index);
    if (ph_ring_producer_init(&w->status, &w->slot->status,
                              ph_slot_status_data(w->seg, w->slot), w->seg->status_ring) != PH_OK) {
        /* The claim has just reset this ring: someone else is writing our slot. */
        snprintf(err, errlen, "slot %u of swarm '%s': status ring positions changed under the "
                 "claim (another process writes this slot)", w->index, o->swarm_id);
        ph_slot_detach(w->seg, w->index, w->word);
        seg_put(w);
        free(w);
        json_decref(config);
        return NULL;
    }
    if (ph_ring_consumer_init(&w->cmd, &w->slot->command, ph_slot_command_data(w->seg, w->slot),
                              w->seg->command_ring) != PH_OK)
        w->cmd_broken = true;
    pending_init(&w->meta);
    pending_init(&w->config);
    pending_init(&w->io);
    /* A remote worker sends no PH_REC_META: its agent knows where it runs
     * and reports that itself; and it is no proxy. */
    if (meta_loc[0] != '\0' && !w->remote) {
        pending_room(&w->meta);
        ph_rec_meta_encode(&w->meta.buf, meta_loc, meta_tr);
        w->meta.due = true;
        w->proxy = strcmp(meta_tr, "shm") != 0;
        /* Before any status: the controller must never list the worker
         * with the wrong location or transport. */
        pending_flush(w, &w->meta, PH_REC_META);
    }
    uint32_t record_ms = o->heartbeat_ms ? o->heartbeat_ms : 1000;
    /* Remote: the heartbeat is the agent's status-delta cadence; its tps
     * window wants a record at least every second. */
    if (w->remote && record_ms > 1000) record_ms = 1000;
    w->heartbeat_ns = (uint64_t)record_ms * 1000000ull;
    w->io_in = PH_IN_UNKNOWN;
    w->io_out = PH_OUT_UNKNOWN;
    w->enabled = false;
    w->stretch_ns = stretch_from_env();
    if (w->remote && start_agent(w, o, remote_loc, err, errlen) != PH_OK) {
        json_decref(config);
        ph_worker_detach(w);
        return NULL;
    }
    if (config != NULL) ph_worker_publish_config(w, config);
    json_decref(config);
    ph_worker_publish_status(w);
    return w;
}

void ph_worker_detach(ph_worker *w)
{
    if (w == NULL) return;
    /* A slot taken over while we were away (the controller judged us gone
     * and another worker claimed it) is not ours: no final records into the
     * new owner's ring, and ph_slot_detach() refuses its word anyway.
     * relaxed: compared with our own word only; the CAS decides. */
    if (atomic_load_explicit(&w->slot->state, memory_order_relaxed) == w->word) {
        flush_all(w);
        ph_worker_publish_status(w);
        ph_slot_detach(w->seg, w->index, w->word);
    }
    /* The agent drains and publishes those final records before it stops. */
    if (w->agent != NULL) ph_worker_remote_stop(w->agent);
    seg_put(w);
    msgpack_sbuffer_destroy(&w->meta.buf);
    msgpack_sbuffer_destroy(&w->config.buf);
    msgpack_sbuffer_destroy(&w->io.buf);
    for (int i = 0; w->acks != NULL && i < PENDING_ACKS; i++)
        msgpack_sbuffer_destroy(&w->acks[i].buf);
    free(w->acks);
    json_decref(w->patch);
    free(w->scratch);
    free(w);
}

void ph_worker_count(ph_worker *w, uint64_t processed)
{
    w->processed += processed;
}

void ph_worker_count_errors(ph_worker *w, uint64_t errors)
{
    w->errors += errors;
}

void ph_worker_set_enabled(ph_worker *w, bool enabled)
{
    if (w->enabled != enabled) w->dirty = true;
    w->enabled = enabled;
}

bool ph_worker_enabled(const ph_worker *w)
{
    return w->enabled;
}

void ph_worker_set_io_state(ph_worker *w, enum ph_io_in in, enum ph_io_out out)
{
    if ((unsigned)in > PH_IN_MAX_) in = PH_IN_UNKNOWN;
    if ((unsigned)out > PH_OUT_MAX_) out = PH_OUT_UNKNOWN;
    if (w->io_in != in || w->io_out != out) w->dirty = true;
    w->io_in = (uint8_t)in;
    w->io_out = (uint8_t)out;
}

/* The mirror for tools (phctl shm-dump). Relaxed stores: each field is a
 * self-contained figure; the ring record is authoritative. */
static void store_mirror(ph_worker *w, uint64_t now)
{
    atomic_store_explicit(&w->slot->w_processed, w->processed, memory_order_relaxed);
    atomic_store_explicit(&w->slot->w_errors, w->errors, memory_order_relaxed);
    atomic_store_explicit(&w->slot->w_state, ph_w_state_pack(w->enabled, w->io_in, w->io_out),
                          memory_order_relaxed);
    atomic_store_explicit(&w->slot->w_heartbeat_ns, now, memory_order_relaxed);
    w->last_publish_ns = now;
}

bool ph_worker_publish_status(ph_worker *w)
{
    const uint64_t now = ph_mono_coarse_ns();
    /* Mirror first, whether or not the ring has room: with no controller
     * draining, it is the only current view. */
    store_mirror(w, now);
    struct ph_rec_status *r = ph_ring_claim(&w->status, PH_REC_STATUS, PH_REC_STATUS_SIZE);
    if (r == NULL) {
        /* Counted once by the ring; the tick retries when there is room,
         * and the next record carries the latest state anyway. */
        w->status_waiting = true;
        return false;
    }
    /* P3_write_body (model labels: tests/model/README.md) */
    r->mono_ns = now;
    r->processed = w->processed;
    r->errors = w->errors;
    r->seq = ++w->seq;
    r->flags = w->enabled ? PH_STATUS_ENABLED : 0;
    r->io_in = w->io_in;
    r->io_out = w->io_out;
    r->reserved = 0;
    if (w->stretch_ns != 0) {
        struct timespec ts = {(time_t)(w->stretch_ns / 1000000000ull),
                              (long)(w->stretch_ns % 1000000000ull)};
        nanosleep(&ts, NULL);
    }
    ph_ring_publish(&w->status);
    w->dirty = false;
    w->status_waiting = false;
    return true;
}

void ph_worker_tick(ph_worker *w)
{
    const uint64_t now = ph_mono_coarse_ns();
    if (w->status_waiting || w->meta.due || w->config.due || w->io.due || w->acks_count > 0) {
        /* Records wait for room: look at most once per coarse-clock tick. */
        if (now == w->retry_ns) return;
        w->retry_ns = now;
        flush_all(w);
        if (w->status_waiting) {
            /* Already counted: write it only once it fits, count nothing
             * meanwhile; it carries the latest state when it goes. */
            if (ph_ring_fits(&w->status, PH_REC_STATUS_SIZE))
                ph_worker_publish_status(w);
            else if (w->dirty || now - w->last_publish_ns >= w->heartbeat_ns)
                /* Still no room: the mirror keeps the figures current at
                 * the usual cadence, or tools would see a frozen worker for
                 * as long as the controller is away. */
                store_mirror(w, now);
            return;
        }
    }
    if (w->dirty || now - w->last_publish_ns >= w->heartbeat_ns) ph_worker_publish_status(w);
}

static int encode_json(ph_worker *w, struct pending *p, const json_t *v, uint16_t type)
{
    if (!json_is_object(v)) return PH_ERR_INVAL;
    pending_room(p);
    msgpack_sbuffer_clear(&p->buf);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &p->buf, msgpack_sbuffer_write);
    if (ph_json_pack(&pk, v, true) != 0 || p->buf.size > w->status.max_record - PH_RING_HDR) {
        msgpack_sbuffer_clear(&p->buf);
        p->due = false;
        return PH_ERR_INVAL;
    }
    p->due = true;
    /* Try now; if the ring is full, ph_worker_tick() retries. */
    pending_flush(w, p, type);
    return PH_OK;
}

int ph_worker_publish_config(ph_worker *w, const json_t *config)
{
    return encode_json(w, &w->config, config, PH_REC_CONFIG);
}

int ph_worker_publish_io(ph_worker *w, const json_t *io)
{
    return encode_json(w, &w->io, io, PH_REC_IO);
}

bool ph_worker_alert(ph_worker *w, const char *level, const char *code, const char *message)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    bool ok = ph_rec_alert_encode(&sb, level, code, message) == PH_OK &&
              ph_ring_write(&w->status, PH_REC_ALERT, sb.data, (uint32_t)sb.size);
    msgpack_sbuffer_destroy(&sb);
    return ok;
}

bool ph_worker_ack(ph_worker *w, uint64_t token, bool ok, const char *message)
{
    if (w->acks == NULL && (w->acks = calloc(PENDING_ACKS, sizeof *w->acks)) != NULL)
        for (int i = 0; i < PENDING_ACKS; i++) pending_init(&w->acks[i]);
    if (w->acks == NULL || w->acks_count == PENDING_ACKS) {
        w->acks_dropped++;
        return false;
    }
    struct pending *p = &w->acks[(w->acks_head + w->acks_count) % PENDING_ACKS];
    pending_room(p);
    msgpack_sbuffer_clear(&p->buf);
    ph_rec_ack_encode(&p->buf, token, ok, message);
    p->due = true;
    w->acks_count++;
    flush_acks(w);
    return true;
}

static void republish_all(ph_worker *w)
{
    if (w->meta.buf.size > 0) w->meta.due = true;
    if (w->config.buf.size > 0) w->config.due = true;
    if (w->io.buf.size > 0) w->io.due = true;
    flush_all(w);
    ph_worker_publish_status(w);
}

static int on_command(void *ctx, uint16_t type, const uint8_t *body, uint32_t len)
{
    ph_worker *w = ctx;
    if (type != PH_CMD_CONFIG_PATCH && type != PH_CMD_STATUS_REQUEST && type != PH_CMD_STOP)
        return 0; /* unknown command: skipped, the controller may be newer */
    char err[128];
    msgpack_zone zone;
    msgpack_zone_init(&zone, 1024);
    msgpack_object o;
    if (ph_mp_decode(body, len, true, &zone, &o, err, sizeof err) == PH_OK) {
        const msgpack_object *tok = ph_mp_map_get(&o, "token");
        const msgpack_object *patch = ph_mp_map_get(&o, "patch");
        if (tok != NULL && tok->type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
            (type != PH_CMD_CONFIG_PATCH || (patch != NULL && patch->type == MSGPACK_OBJECT_MAP))) {
            w->cmd_out->type = (enum ph_command_type)type;
            w->cmd_out->token = tok->via.u64;
            w->cmd_out->patch = NULL;
            if (type == PH_CMD_CONFIG_PATCH) {
                json_decref(w->patch);
                w->patch = ph_mp_to_json(patch);
                w->cmd_out->patch = w->patch;
            }
            w->cmd_found = w->cmd_out->patch != NULL || type != PH_CMD_CONFIG_PATCH;
        }
    }
    msgpack_zone_destroy(&zone);
    return 0;
}

int ph_worker_poll_command(ph_worker *w, struct ph_command *cmd)
{
    if (w->cmd_broken) return PH_ERR_CORRUPT;
    if (w->scratch == NULL) {
        if (!ph_ring_pending(&w->cmd)) return 0;
        /* The first command: the room to read commands into (see acks). */
        if ((w->scratch = malloc(w->seg->command_ring / 2)) == NULL) return PH_ERR_SYS;
    }
    w->cmd_out = cmd;
    for (;;) {
        w->cmd_found = 0;
        int n = ph_ring_drain(&w->cmd, on_command, w, w->scratch, 1);
        if (n < 0) {
            w->cmd_broken = true;
            return PH_ERR_CORRUPT;
        }
        if (n == 0) return 0;
        if (!w->cmd_found) continue; /* malformed command: skipped */
        /* A proxy forwards the request to the worker it stands for, whose
         * answer is the fresh status: republishing here would make a silent
         * worker look alive. */
        if (cmd->type == PH_COMMAND_STATUS_REQUEST && !w->proxy) {
            republish_all(w);
            ph_worker_ack(w, cmd->token, true, "status republished");
        }
        return 1;
    }
}

bool ph_worker_remote(const ph_worker *w)
{
    return w->remote;
}

uint32_t ph_worker_slot(const ph_worker *w)
{
    return w->index;
}

uint64_t ph_worker_processed(const ph_worker *w)
{
    return w->processed;
}

uint64_t ph_worker_overflows(const ph_worker *w)
{
    return w->status.overflows;
}

bool ph_worker_controller_alive(const ph_worker *w, uint32_t max_age_ms)
{
    /* relaxed: a free-standing timestamp. */
    uint64_t hb = atomic_load_explicit(&w->seg->hdr->controller_heartbeat_ns, memory_order_relaxed);
    uint64_t now = ph_mono_ns();
    return hb != 0 && (now < hb || now - hb <= (uint64_t)max_age_ms * 1000000ull);
}
