/* Creation, adoption and validated mapping of a swarm's segment. */
#include "ph/log.h"
#include "ph/owner.h"
#include "ph/shm.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

uint64_t ph_segment_size_for(uint32_t slots, uint32_t status_ring, uint32_t command_ring)
{
    return (uint64_t)PH_SHM_HEADER_SIZE + ph_claim_index_bytes(slots) +
           (uint64_t)slots * ((uint64_t)PH_SLOT_META_SIZE + status_ring + command_ring);
}

int ph_segment_name(const char *swarm_id, char *buf, size_t n, char *err, size_t errlen)
{
    int rc = ph_ident_check("swarm id", swarm_id, err, errlen);
    if (rc != PH_OK) return rc;
    snprintf(buf, n, "/ph.%s", swarm_id);
    return PH_OK;
}

static int sys_err(const char *what, const char *name, char *err, size_t errlen)
{
    int e = errno;
    snprintf(err, errlen, "%s /dev/shm%s: %s", what, name, strerror(e));
    if (e == ENOENT) return PH_ERR_NOENT;
    if (e == EACCES || e == EPERM) return PH_ERR_ACCES;
    return PH_ERR_SYS;
}

/* The immutable part of the header as one reader saw it. The live header
 * is writable by every process that maps the segment read-write, so it is
 * copied once, right after magic is acquired, and from then on only the
 * copy is validated and used: a field read twice could differ between the
 * check and the use. The layout mirrors ph_shm_header from layout_version
 * to swarm_id, so one memcpy takes it. */
struct hdr_copy {
    uint32_t layout_version;
    uint32_t header_size;
    uint64_t segment_size;
    uint32_t slot_capacity;
    uint32_t slot_size;
    uint32_t status_ring;
    uint32_t command_ring;
    uint64_t created_real_ns;
    char swarm_id[PH_ID_MAX];
};
#define HDR_COPY_AT offsetof(struct ph_shm_header, layout_version)
#define HDR_COPY_LEN (offsetof(struct ph_shm_header, swarm_id) + PH_ID_MAX - HDR_COPY_AT)
#define SAME_PLACE(f)                                                                              \
    _Static_assert(offsetof(struct hdr_copy, f) ==                                                 \
                       offsetof(struct ph_shm_header, f) - HDR_COPY_AT,                            \
                   "struct hdr_copy must mirror ph_shm_header: " #f)
SAME_PLACE(header_size);
SAME_PLACE(segment_size);
SAME_PLACE(slot_capacity);
SAME_PLACE(slot_size);
SAME_PLACE(status_ring);
SAME_PLACE(command_ring);
SAME_PLACE(created_real_ns);
SAME_PLACE(swarm_id);
_Static_assert(sizeof(struct hdr_copy) == HDR_COPY_LEN, "struct hdr_copy has padding at its end");

/* Acquires magic and, when it is ours, copies the immutable fields. */
static int copy_header(const struct ph_shm_header *h, const char *name, struct hdr_copy *out,
                       char *err, size_t errlen)
{
    /* acquire: pairs with the creator's release store of magic, which it
     * makes after every immutable field is written; the copy below reads
     * those fields. */
    uint64_t magic = atomic_load_explicit(&h->magic, memory_order_acquire);
    if (magic == 0) {
        snprintf(err, errlen,
                 "segment /dev/shm%s is not initialised (controller starting, or "
                 "it died while creating it)",
                 name);
        return PH_ERR_MAGIC;
    }
    if (magic != PH_SHM_MAGIC) {
        snprintf(err, errlen, "/dev/shm%s is not a swarm segment (bad magic 0x%016" PRIx64 ")",
                 name, magic);
        return PH_ERR_MAGIC;
    }
    memcpy(out, (const uint8_t *)h + HDR_COPY_AT, HDR_COPY_LEN);
    return PH_OK;
}

/* Validates a private copy of a header against what this build reads.
 * `file_size` is the object's size. */
static int validate_copy(const struct hdr_copy *h, const char *name, const char *swarm_id,
                         uint64_t file_size, char *err, size_t errlen)
{
    if (h->layout_version != PH_LAYOUT_VERSION) {
        snprintf(err, errlen,
                 "segment /dev/shm%s has layout version %" PRIu32 ", this program reads %u", name,
                 h->layout_version, PH_LAYOUT_VERSION);
        return PH_ERR_VERSION;
    }
    if (h->header_size != PH_SHM_HEADER_SIZE || h->slot_capacity == 0 ||
        h->slot_capacity > PH_MAX_SLOTS || !ph_ring_capacity_valid(h->status_ring) ||
        !ph_ring_capacity_valid(h->command_ring) ||
        h->slot_size != PH_SLOT_META_SIZE + h->status_ring + h->command_ring ||
        h->segment_size != ph_segment_size_for(h->slot_capacity, h->status_ring, h->command_ring)) {
        snprintf(err, errlen,
                 "segment /dev/shm%s has an inconsistent geometry (slots %" PRIu32
                 ", slot size %" PRIu32 ", rings %" PRIu32 "/%" PRIu32 ", size %" PRIu64 ")",
                 name, h->slot_capacity, h->slot_size, h->status_ring, h->command_ring,
                 h->segment_size);
        return PH_ERR_CORRUPT;
    }
    if (memchr(h->swarm_id, '\0', sizeof h->swarm_id) == NULL ||
        strcmp(h->swarm_id, swarm_id) != 0) {
        snprintf(err, errlen, "segment /dev/shm%s names another swarm", name);
        return PH_ERR_CORRUPT;
    }
    if (file_size < h->segment_size) {
        snprintf(err, errlen,
                 "segment /dev/shm%s is truncated: %" PRIu64 " bytes, its header "
                 "says %" PRIu64,
                 name, file_size, h->segment_size);
        return PH_ERR_TRUNC;
    }
    return PH_OK;
}

/* Where a mapping's parts are (layout 4, ph/shm.h): the header, the claim
 * index, every slot's metadata, then every slot's rings. One place for the
 * three ways a segment is mapped (opened, private, created or adopted). */
static void set_geometry(struct ph_segment *seg, uint32_t slots, uint32_t status_ring,
                         uint32_t command_ring)
{
    seg->slots = slots;
    seg->slots_offset = PH_SHM_HEADER_SIZE + ph_claim_index_bytes(slots);
    seg->rings_offset = seg->slots_offset + (uint64_t)slots * PH_SLOT_META_SIZE;
    seg->slot_size = PH_SLOT_META_SIZE + status_ring + command_ring;
    seg->status_ring = status_ring;
    seg->command_ring = command_ring;
}

/* Maps and validates an open object. On success the segment owns fd. */
static int map_validated(struct ph_segment *seg, int fd, const char *swarm_id, bool writable,
                         char *err, size_t errlen)
{
    /* The owner before anything is read: another user's object is not
     * ours to trust, whatever its header says. */
    int rc = ph_owner_check(fd, seg->name, writable, err, errlen);
    if (rc != PH_OK) return rc;
    struct stat st;
    if (fstat(fd, &st) != 0) return sys_err("cannot stat", seg->name, err, errlen);
    if ((uint64_t)st.st_size < PH_SHM_HEADER_SIZE) {
        snprintf(err, errlen,
                 "segment /dev/shm%s is truncated: %lld bytes, smaller than its "
                 "%u-byte header",
                 seg->name, (long long)st.st_size, PH_SHM_HEADER_SIZE);
        return PH_ERR_TRUNC;
    }
    /* Map the header alone first: the full size is only trusted once the
     * header checks out. */
    void *h = mmap(NULL, PH_SHM_HEADER_SIZE, PROT_READ, MAP_SHARED, fd, 0);
    if (h == MAP_FAILED) return sys_err("cannot map", seg->name, err, errlen);
    struct hdr_copy hc;
    rc = copy_header(h, seg->name, &hc, err, errlen);
    munmap(h, PH_SHM_HEADER_SIZE);
    if (rc == PH_OK)
        rc = validate_copy(&hc, seg->name, swarm_id, (uint64_t)st.st_size, err, errlen);
    if (rc != PH_OK) return rc;
    /* Size and geometry come from the validated copy only. */
    const size_t size = (size_t)hc.segment_size;
    void *base = mmap(NULL, size, writable ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED) return sys_err("cannot map", seg->name, err, errlen);
    /* Re-check on the final mapping: someone may have recreated the object
     * between the two maps. The live header must still say what the copy
     * says; the copy is what we use either way. */
    struct hdr_copy again;
    rc = copy_header(base, seg->name, &again, err, errlen);
    if (rc == PH_OK && memcmp(&again, &hc, sizeof hc) != 0) {
        snprintf(err, errlen,
                 "segment /dev/shm%s changed while being opened (recreated, or its "
                 "header is being written by another process)",
                 seg->name);
        rc = PH_ERR_CORRUPT;
    }
    if (rc != PH_OK) {
        munmap(base, size);
        return rc;
    }
    seg->fd = fd;
    seg->base = base;
    seg->size = size;
    seg->hdr = base;
    set_geometry(seg, hc.slot_capacity, hc.status_ring, hc.command_ring);
    return PH_OK;
}

int ph_segment_open(struct ph_segment *seg, const char *swarm_id, bool writable, char *err,
                    size_t errlen)
{
    memset(seg, 0, sizeof *seg);
    seg->fd = -1;
    int rc = ph_segment_name(swarm_id, seg->name, sizeof seg->name, err, errlen);
    if (rc != PH_OK) return rc;
    int fd = shm_open(seg->name, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC, 0);
    if (fd < 0) {
        if (errno == ENOENT) {
            snprintf(err, errlen,
                     "no swarm '%s': /dev/shm%s does not exist (is its controller "
                     "running?)",
                     swarm_id, seg->name);
            return PH_ERR_NOENT;
        }
        return sys_err("cannot open", seg->name, err, errlen);
    }
    rc = map_validated(seg, fd, swarm_id, writable, err, errlen);
    if (rc != PH_OK) close(fd);
    return rc;
}

void ph_segment_close(struct ph_segment *seg)
{
    if (seg->base != NULL) munmap(seg->base, seg->size);
    if (seg->fd >= 0) close(seg->fd);
    seg->base = NULL;
    seg->hdr = NULL;
    seg->fd = -1;
}

int ph_segment_private(struct ph_segment *seg, const char *swarm_id, uint32_t slots,
                       uint32_t status_ring, uint32_t command_ring, char *err, size_t errlen)
{
    memset(seg, 0, sizeof *seg);
    seg->fd = -1;
    int rc = ph_segment_name(swarm_id, seg->name, sizeof seg->name, err, errlen);
    if (rc != PH_OK) return rc;
    if (status_ring == 0) status_ring = PH_DEFAULT_STATUS_RING;
    if (command_ring == 0) command_ring = PH_DEFAULT_COMMAND_RING;
    if (slots == 0 || slots > PH_MAX_SLOTS || !ph_ring_capacity_valid(status_ring) ||
        !ph_ring_capacity_valid(command_ring)) {
        snprintf(err, errlen, "invalid private segment parameters");
        return PH_ERR_INVAL;
    }
    const uint64_t size = ph_segment_size_for(slots, status_ring, command_ring);
    /* Anonymous memory is zero-filled: every slot FREE, every ring empty. */
    void *base = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
                      0);
    if (base == MAP_FAILED) {
        snprintf(err, errlen, "cannot map %" PRIu64 " bytes of private memory: %s", size,
                 strerror(errno));
        return PH_ERR_SYS;
    }
    struct ph_shm_header *h = base;
    h->layout_version = PH_LAYOUT_VERSION;
    h->header_size = PH_SHM_HEADER_SIZE;
    h->segment_size = size;
    h->slot_capacity = slots;
    h->slot_size = PH_SLOT_META_SIZE + status_ring + command_ring;
    h->status_ring = status_ring;
    h->command_ring = command_ring;
    h->created_real_ns = ph_real_ns();
    snprintf(h->swarm_id, sizeof h->swarm_id, "%s", swarm_id);
    /* relaxed: published with everything else by the release store of
     * magic below. */
    atomic_store_explicit(&h->generation, 1, memory_order_relaxed);
    /* release: as in ph_segment_create(); the threads of this process that
     * use the segment are started after this anyway. */
    atomic_store_explicit(&h->magic, PH_SHM_MAGIC, memory_order_release);
    seg->base = base;
    seg->size = (size_t)size;
    seg->hdr = h;
    set_geometry(seg, slots, status_ring, command_ring);
    return PH_OK;
}

int ph_segment_unlink(const char *swarm_id, char *err, size_t errlen)
{
    char name[PH_ID_MAX + 8];
    int rc = ph_segment_name(swarm_id, name, sizeof name, err, errlen);
    if (rc != PH_OK) return rc;
    if (shm_unlink(name) != 0) return sys_err("cannot remove", name, err, errlen);
    return PH_OK;
}

/* True when the claim names a process that still runs: its pid is alive
 * (not a zombie) and the low 32 bits of its start time match. */
static bool claim_alive(uint64_t claim)
{
    const int32_t pid = ph_controller_claim_pid(claim);
    uint64_t start;
    if (pid <= 0 || ph_proc_start_time(pid, &start) != PH_OK) return false;
    return (uint32_t)start == (uint32_t)claim && ph_proc_alive(pid, start);
}

/* An existing object whose magic was never published, older than a second
 * and whose creator (the claim it writes before the magic) is gone, was left
 * by a creator that died half-way: safe to replace. A creator that is only
 * slow (stopped, swapped out) keeps its object. */
static bool abandoned_creation(int fd)
{
    struct stat st;
    if (fstat(fd, &st) != 0) return false;
    if ((uint64_t)st.st_size >= sizeof(uint64_t)) {
        uint64_t magic = 0;
        if (pread(fd, &magic, sizeof magic, 0) != (ssize_t)sizeof magic || magic != 0) return false;
    }
    const off_t at = (off_t)offsetof(struct ph_shm_header, controller_claim);
    uint64_t claim = 0;
    if ((uint64_t)st.st_size >= (uint64_t)at + sizeof claim &&
        pread(fd, &claim, sizeof claim, at) == (ssize_t)sizeof claim && claim != 0 &&
        claim_alive(claim))
        return false;
    return time(NULL) - st.st_mtime > 1;
}

/* True when `name` still names the object open on `fd`: a rival that took
 * our half-made object for abandoned has unlinked it and made its own. */
static bool still_named(int fd, const char *name)
{
    char path[PH_ID_MAX + 32];
    snprintf(path, sizeof path, "/dev/shm%s", name);
    struct stat mine, named;
    return fstat(fd, &mine) == 0 && stat(path, &named) == 0 && mine.st_ino == named.st_ino &&
           mine.st_dev == named.st_dev;
}

/* True when claim `cur` belongs to a live controller other than `me`. Our
 * own word (this process created or adopted the segment before) is not a
 * rival; a reused pid of ours has another start time. */
static bool rival(uint64_t cur, uint64_t me)
{
    return cur != 0 && cur != me && claim_alive(cur);
}

/* Takes the controller claim for `me`: PH_OK, or the pid of the live
 * controller that holds it (a positive number). */
static int take_claim(struct ph_shm_header *h, uint64_t me)
{
    /* A1_load_claim (model labels: tests/model/README.md). acquire: pairs
     * with the acq_rel CAS of the controller that took the claim last (or
     * the creator's release of magic), so what it did before claiming is
     * visible to us once we hold the claim. */
    uint64_t cur = atomic_load_explicit(&h->controller_claim, memory_order_acquire);
    for (;;) {
        if (rival(cur, me)) return ph_controller_claim_pid(cur); /* A2_rival_check */
        /* A3_claim_cas. acq_rel: acquire as above; release so that our later stores
         * (generation, controller fields, rings) are ordered after the
         * claim for whoever takes it after us. A failure reloads `cur`
         * (acquire): someone else claimed first; re-check it, it is most
         * likely alive, and we are BUSY. */
        if (atomic_compare_exchange_strong_explicit(&h->controller_claim, &cur, me,
                                                    memory_order_acq_rel, memory_order_acquire))
            return PH_OK;
    }
}

/* A segment shorter than its (valid) header says: someone truncated it. The
 * adopting controller gives it back its size (the lost pages come back as
 * zeros: free slots, empty rings) rather than refusing it and being
 * restarted into the same refusal. */
static int restore_truncated(int fd, const char *name, const char *swarm_id, char *err,
                             size_t errlen)
{
    struct ph_shm_header h;
    if (pread(fd, &h, sizeof h, 0) != (ssize_t)sizeof h) return PH_ERR_TRUNC;
    struct hdr_copy hc;
    int rc = copy_header(&h, name, &hc, err, errlen);
    if (rc == PH_OK) rc = validate_copy(&hc, name, swarm_id, UINT64_MAX, err, errlen);
    if (rc != PH_OK) return rc;
    if (ftruncate(fd, (off_t)hc.segment_size) != 0)
        return sys_err("cannot restore the size of", name, err, errlen);
    ph_warn("segment /dev/shm%s was truncated: its size is restored to %" PRIu64 " bytes", name,
            hc.segment_size);
    return PH_OK;
}

static int adopt(struct ph_segment *seg, const char *swarm_id, const struct ph_segment_params *p,
                 uint64_t me, char *err, size_t errlen)
{
    int fd = shm_open(seg->name, O_RDWR | O_CLOEXEC, 0);
    if (fd < 0) return sys_err("cannot open", seg->name, err, errlen);
    int rc = map_validated(seg, fd, swarm_id, true, err, errlen);
    if (rc == PH_ERR_TRUNC && restore_truncated(fd, seg->name, swarm_id, err, errlen) == PH_OK)
        rc = map_validated(seg, fd, swarm_id, true, err, errlen);
    if (rc != PH_OK) {
        close(fd);
        return rc;
    }
    /* A live controller first: its segment's geometry is none of our
     * business. acquire: as in take_claim(); this look decides nothing by
     * itself, take_claim() does. */
    const uint64_t cur = atomic_load_explicit(&seg->hdr->controller_claim, memory_order_acquire);
    int holder = rival(cur, me) ? ph_controller_claim_pid(cur) : 0;
    /* The geometry validated at open (seg), not the live header. Checked
     * before the claim: a controller that cannot use the segment must not
     * take it from the next one that can. */
    if (holder == 0 && (seg->slots != p->slots || seg->status_ring != p->status_ring ||
                        seg->command_ring != p->command_ring)) {
        snprintf(err, errlen,
                 "segment /dev/shm%s left by a previous controller has another "
                 "geometry (%" PRIu32 " slots, rings %" PRIu32 "/%" PRIu32 "); remove it with "
                 "'phctl shm-rm --swarm %s' once its workers are gone",
                 seg->name, seg->slots, seg->status_ring, seg->command_ring, swarm_id);
        ph_segment_close(seg);
        return PH_ERR_EXISTS;
    }
    if (holder == 0) holder = take_claim(seg->hdr, me);
    if (holder != 0) {
        snprintf(err, errlen, "swarm '%s' already has a live controller (pid %d)", swarm_id,
                 holder);
        ph_segment_close(seg);
        return PH_ERR_BUSY;
    }
    seg->claim = me;
    return PH_OK;
}

int ph_segment_create(struct ph_segment *seg, const char *swarm_id,
                      const struct ph_segment_params *params, bool *adopted, char *err,
                      size_t errlen)
{
    memset(seg, 0, sizeof *seg);
    seg->fd = -1;
    *adopted = false;
    int rc = ph_segment_name(swarm_id, seg->name, sizeof seg->name, err, errlen);
    if (rc != PH_OK) return rc;
    struct ph_segment_params p = *params;
    if (p.slots == 0) p.slots = PH_DEFAULT_SLOTS;
    if (p.status_ring == 0) p.status_ring = PH_DEFAULT_STATUS_RING;
    if (p.command_ring == 0) p.command_ring = PH_DEFAULT_COMMAND_RING;
    if (p.mode == 0) p.mode = p.set_group ? 0660 : 0600;
    if (p.slots > PH_MAX_SLOTS || !ph_ring_capacity_valid(p.status_ring) ||
        !ph_ring_capacity_valid(p.command_ring) || (p.mode & ~0777u) != 0) {
        snprintf(err, errlen,
                 "invalid segment parameters: slots 1..%u, ring sizes powers of two "
                 "in %u..%u bytes, mode within 0777",
                 PH_MAX_SLOTS, PH_RING_MIN_CAPACITY, PH_RING_MAX_CAPACITY);
        return PH_ERR_INVAL;
    }
    const uint64_t size = ph_segment_size_for(p.slots, p.status_ring, p.command_ring);
    uint64_t start = 0;
    if (ph_proc_start_time((int32_t)getpid(), &start) != PH_OK) {
        snprintf(err, errlen, "cannot read this process's start time from /proc/%d/stat",
                 (int)getpid());
        return PH_ERR_SYS;
    }
    const uint64_t me = ph_controller_claim_word((int32_t)getpid(), start);

    for (int attempt = 0; attempt < 3; attempt++) {
        int fd = shm_open(seg->name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, p.mode);
        if (fd < 0 && errno == EEXIST) {
            int probe = shm_open(seg->name, O_RDONLY | O_CLOEXEC, 0);
            bool dead_creator = probe >= 0 && abandoned_creation(probe);
            if (probe >= 0) close(probe);
            if (dead_creator && attempt == 0) {
                shm_unlink(seg->name);
                continue;
            }
            rc = adopt(seg, swarm_id, &p, me, err, errlen);
            if (rc != PH_OK) return rc;
            *adopted = true;
            /* A5_generation. Only the claim's winner gets here. relaxed: a counter, ordered
             * for the next controller by our claim CAS's release side. */
            atomic_fetch_add_explicit(&seg->hdr->generation, 1, memory_order_relaxed);
            return PH_OK;
        }
        if (fd < 0) return sys_err("cannot create", seg->name, err, errlen);
        /* The umask may have narrowed the mode; the caller's choice wins.
         * The group first, so the group bits never apply to another. */
        if ((p.set_group && fchown(fd, (uid_t)-1, (gid_t)p.gid) != 0) || fchmod(fd, p.mode) != 0 ||
            ftruncate(fd, (off_t)size) != 0) {
            rc = sys_err("cannot size", seg->name, err, errlen);
            close(fd);
            shm_unlink(seg->name);
            return rc;
        }
        void *base = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (base == MAP_FAILED) {
            rc = sys_err("cannot map", seg->name, err, errlen);
            close(fd);
            shm_unlink(seg->name);
            return rc;
        }
        /* ftruncate zero-fills: every slot starts FREE with empty rings. */
        struct ph_shm_header *h = base;
        h->layout_version = PH_LAYOUT_VERSION;
        h->header_size = PH_SHM_HEADER_SIZE;
        h->segment_size = size;
        h->slot_capacity = p.slots;
        h->slot_size = PH_SLOT_META_SIZE + p.status_ring + p.command_ring;
        h->status_ring = p.status_ring;
        h->command_ring = p.command_ring;
        h->created_real_ns = ph_real_ns();
        snprintf(h->swarm_id, sizeof h->swarm_id, "%s", swarm_id);
        atomic_store_explicit(&h->generation, 1, memory_order_relaxed);
        /* A0_create_claim. relaxed: the creator holds the claim from the
         * start; published with everything else by the release store of
         * magic below. */
        atomic_store_explicit(&h->controller_claim, me, memory_order_relaxed);
        /* release: publishes every field above to readers that acquire magic. */
        atomic_store_explicit(&h->magic, PH_SHM_MAGIC, memory_order_release);
        if (!still_named(fd, seg->name)) {
            /* Replaced while we were slow: ours is reachable by no one.
             * Start over; the next attempt meets the replacement. */
            munmap(base, (size_t)size);
            close(fd);
            continue;
        }
        seg->fd = fd;
        seg->base = base;
        seg->size = (size_t)size;
        /* Our own parameters, not a read-back of the shared header. */
        seg->hdr = h;
        set_geometry(seg, p.slots, p.status_ring, p.command_ring);
        seg->claim = me;
        return PH_OK;
    }
    snprintf(err, errlen, "cannot create /dev/shm%s: it keeps reappearing", seg->name);
    return PH_ERR_SYS;
}

void ph_segment_set_controller(struct ph_segment *seg, int32_t pid, uint64_t start_time)
{
    ph_segment_heartbeat(seg);
    atomic_store_explicit(&seg->hdr->controller_start_time, start_time, memory_order_relaxed);
    /* release: a reader that acquires the new pid also sees its start time
     * and first heartbeat. */
    atomic_store_explicit(&seg->hdr->controller_pid, pid, memory_order_release);
}

void ph_segment_release_controller(struct ph_segment *seg)
{
    if (seg->hdr == NULL || seg->claim == 0) return;
    uint64_t expect = seg->claim;
    /* A4_release_claim. release: our last stores as controller precede the empty claim, for
     * the next controller that takes it (acquire). Only from our own word:
     * a claim someone else took since is theirs. */
    atomic_compare_exchange_strong_explicit(&seg->hdr->controller_claim, &expect, 0,
                                            memory_order_release, memory_order_relaxed);
    seg->claim = 0;
}

void ph_segment_heartbeat(struct ph_segment *seg)
{
    /* relaxed: a free-standing timestamp; nothing is read on its strength. */
    atomic_store_explicit(&seg->hdr->controller_heartbeat_ns, ph_mono_ns(), memory_order_relaxed);
}

const char *ph_quarantine_name(int q)
{
    switch (q) {
    case PH_Q_NONE:
        return "none";
    case PH_Q_RING:
        return "ring-out-of-bounds";
    case PH_Q_RECORD:
        return "malformed-record";
    case PH_Q_IDENTITY:
        return "invalid-identity";
    default:
        return "unknown";
    }
}

int ph_segment_check_size(struct ph_segment *seg, char *err, size_t errlen)
{
    struct stat st;
    if (fstat(seg->fd, &st) != 0) return sys_err("cannot stat", seg->name, err, errlen);
    if ((uint64_t)st.st_size >= seg->size) return PH_OK;
    const uint64_t had = (uint64_t)st.st_size;
    if (ftruncate(seg->fd, (off_t)seg->size) != 0)
        return sys_err("cannot restore the size of", seg->name, err, errlen);
    /* The shared pages over our whole mapping again, at the same address: a
     * SIGBUS guard (ph/busguard.h) may have put private zero pages where
     * the lost part was, and the header must be written to the object. */
    if (mmap(seg->base, seg->size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, seg->fd, 0) ==
        MAP_FAILED)
        return sys_err("cannot map again", seg->name, err, errlen);
    struct ph_shm_header *h = seg->hdr;
    /* acquire: as readers do; a header page that was cut away comes back
     * as zeros, and is written again from what this process validated. */
    if (atomic_load_explicit(&h->magic, memory_order_acquire) != PH_SHM_MAGIC) {
        h->layout_version = PH_LAYOUT_VERSION;
        h->header_size = PH_SHM_HEADER_SIZE;
        h->segment_size = seg->size;
        h->slot_capacity = seg->slots;
        h->slot_size = seg->slot_size;
        h->status_ring = seg->status_ring;
        h->command_ring = seg->command_ring;
        h->created_real_ns = ph_real_ns();
        snprintf(h->swarm_id, sizeof h->swarm_id, "%s", seg->name + 4);
        /* relaxed: published by the release store of magic below. */
        atomic_store_explicit(&h->controller_claim, seg->claim, memory_order_relaxed);
        atomic_fetch_add_explicit(&h->generation, 1, memory_order_relaxed);
        /* release: publishes the fields above to readers that acquire magic. */
        atomic_store_explicit(&h->magic, PH_SHM_MAGIC, memory_order_release);
    }
    snprintf(err, errlen,
             "segment /dev/shm%s was truncated to %" PRIu64 " bytes (it needs %zu): its size is "
             "restored and the workers in the lost part must attach again; if it happens again, "
             "stop the swarm (deploy/phive down %s) and remove the segment (phctl shm-rm --swarm "
             "%s --force)",
             seg->name, had, seg->size, seg->name + 4, seg->name + 4);
    return PH_ERR_TRUNC;
}
