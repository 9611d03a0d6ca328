/* Controller <-> bridge channel (ph/channel.h). */
#include "ph/channel.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "ph/owner.h"
#include "ph/shm.h"

static int chan_name(const char *swarm_id, char *buf, size_t n, char *err, size_t errlen)
{
    int rc = ph_ident_check("swarm id", swarm_id, err, errlen);
    if (rc == PH_OK) snprintf(buf, n, "/ph.%s.bridge", swarm_id);
    return rc;
}

static int sys_err(const char *what, const char *name, char *err, size_t errlen)
{
    int e = errno;
    snprintf(err, errlen, "%s /dev/shm%s: %s", what, name, strerror(e));
    return e == ENOENT ? PH_ERR_NOENT : (e == EACCES || e == EPERM) ? PH_ERR_ACCES : PH_ERR_SYS;
}

/* From the geometry this process validated (or chose), never from the
 * shared header: a header rewritten later must not move our views. */
static void set_views(struct ph_channel *ch, uint32_t out_ring, uint32_t in_ring)
{
    ch->hdr = ch->base;
    ch->out_ring = out_ring;
    ch->in_ring = in_ring;
    ch->out_data = (uint8_t *)ch->base + PH_CHAN_HEADER_SIZE;
    ch->in_data = ch->out_data + out_ring;
}

int ph_channel_create(struct ph_channel *ch, const char *swarm_id, uint32_t out_ring,
                      uint32_t in_ring, char *err, size_t errlen)
{
    return ph_channel_create_group(ch, swarm_id, out_ring, in_ring, false, 0, err, errlen);
}

int ph_channel_create_group(struct ph_channel *ch, const char *swarm_id, uint32_t out_ring,
                            uint32_t in_ring, bool set_group, uint32_t gid, char *err,
                            size_t errlen)
{
    memset(ch, 0, sizeof *ch);
    ch->fd = -1;
    int rc = chan_name(swarm_id, ch->name, sizeof ch->name, err, errlen);
    if (rc != PH_OK) return rc;
    if (out_ring == 0) out_ring = PH_CHAN_DEFAULT_OUT_RING;
    if (in_ring == 0) in_ring = PH_CHAN_DEFAULT_IN_RING;
    if (!ph_ring_capacity_valid(out_ring) || !ph_ring_capacity_valid(in_ring)) {
        snprintf(err, errlen, "channel ring sizes must be powers of two in %u..%u bytes",
                 PH_RING_MIN_CAPACITY, PH_RING_MAX_CAPACITY);
        return PH_ERR_INVAL;
    }
    /* A channel left by an earlier controller carries documents nobody will
     * complete; the bridge re-registers on the new one. */
    shm_unlink(ch->name);
    const mode_t mode = set_group ? 0660 : 0600;
    int fd = shm_open(ch->name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) return sys_err("cannot create", ch->name, err, errlen);
    const uint64_t size = (uint64_t)PH_CHAN_HEADER_SIZE + out_ring + in_ring;
    /* The group before the group bits, so they never apply to another. */
    if ((set_group && fchown(fd, (uid_t)-1, (gid_t)gid) != 0) || fchmod(fd, mode) != 0 ||
        ftruncate(fd, (off_t)size) != 0) {
        rc = sys_err("cannot size", ch->name, err, errlen);
        close(fd);
        shm_unlink(ch->name);
        return rc;
    }
    void *base = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED) {
        rc = sys_err("cannot map", ch->name, err, errlen);
        close(fd);
        shm_unlink(ch->name);
        return rc;
    }
    struct ph_chan_header *h = base;
    h->layout_version = PH_CHAN_LAYOUT_VERSION;
    h->header_size = PH_CHAN_HEADER_SIZE;
    h->size = size;
    h->out_ring = out_ring;
    h->in_ring = in_ring;
    snprintf(h->swarm_id, sizeof h->swarm_id, "%s", swarm_id);
    /* release: publishes the fields above to openers that acquire magic. */
    atomic_store_explicit(&h->magic, PH_CHAN_MAGIC, memory_order_release);
    ch->fd = fd;
    ch->base = base;
    ch->size = (size_t)size;
    set_views(ch, out_ring, in_ring);
    return PH_OK;
}

int ph_channel_open(struct ph_channel *ch, const char *swarm_id, bool writable, char *err,
                    size_t errlen)
{
    memset(ch, 0, sizeof *ch);
    ch->fd = -1;
    int rc = chan_name(swarm_id, ch->name, sizeof ch->name, err, errlen);
    if (rc != PH_OK) return rc;
    int fd = shm_open(ch->name, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC, 0);
    if (fd < 0) {
        if (errno == ENOENT) {
            snprintf(err, errlen,
                     "no bridge channel for swarm '%s': /dev/shm%s does not exist "
                     "(is its controller running?)",
                     swarm_id, ch->name);
            return PH_ERR_NOENT;
        }
        return sys_err("cannot open", ch->name, err, errlen);
    }
    /* The owner before anything is read (ph/owner.h). */
    rc = ph_owner_check(fd, ch->name, writable, err, errlen);
    if (rc != PH_OK) {
        close(fd);
        return rc;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || (uint64_t)st.st_size < PH_CHAN_HEADER_SIZE) {
        snprintf(err, errlen, "channel /dev/shm%s is truncated", ch->name);
        close(fd);
        return PH_ERR_TRUNC;
    }
    void *hp = mmap(NULL, PH_CHAN_HEADER_SIZE, PROT_READ, MAP_SHARED, fd, 0);
    if (hp == MAP_FAILED) {
        rc = sys_err("cannot map", ch->name, err, errlen);
        close(fd);
        return rc;
    }
    const struct ph_chan_header *h = hp;
    /* acquire: pairs with the creator's release of magic. */
    uint64_t magic = atomic_load_explicit(&h->magic, memory_order_acquire);
    /* One copy of the geometry, validated below and used from then on. */
    const uint64_t size = h->size;
    const uint32_t out_ring = h->out_ring, in_ring = h->in_ring;
    rc = PH_OK;
    if (magic != PH_CHAN_MAGIC) {
        snprintf(err, errlen, "/dev/shm%s is not a bridge channel (or not initialised yet)",
                 ch->name);
        rc = PH_ERR_MAGIC;
    } else if (h->layout_version != PH_CHAN_LAYOUT_VERSION) {
        snprintf(err, errlen,
                 "channel /dev/shm%s has layout version %" PRIu32 ", this program reads %u",
                 ch->name, h->layout_version, PH_CHAN_LAYOUT_VERSION);
        rc = PH_ERR_VERSION;
    } else if (h->header_size != PH_CHAN_HEADER_SIZE || !ph_ring_capacity_valid(out_ring) ||
               !ph_ring_capacity_valid(in_ring) ||
               size != (uint64_t)PH_CHAN_HEADER_SIZE + out_ring + in_ring ||
               memchr(h->swarm_id, '\0', sizeof h->swarm_id) == NULL ||
               strcmp(h->swarm_id, swarm_id) != 0) {
        snprintf(err, errlen, "channel /dev/shm%s has an inconsistent header", ch->name);
        rc = PH_ERR_CORRUPT;
    } else if ((uint64_t)st.st_size < size) {
        snprintf(err, errlen, "channel /dev/shm%s is truncated", ch->name);
        rc = PH_ERR_TRUNC;
    }
    munmap(hp, PH_CHAN_HEADER_SIZE);
    if (rc != PH_OK) {
        close(fd);
        return rc;
    }
    void *base =
        mmap(NULL, (size_t)size, writable ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED) {
        rc = sys_err("cannot map", ch->name, err, errlen);
        close(fd);
        return rc;
    }
    ch->fd = fd;
    ch->base = base;
    ch->size = (size_t)size;
    set_views(ch, out_ring, in_ring);
    /* The header is immutable once published, but re-check the final view:
     * the object could have been replaced between the two mappings. */
    if (ch->hdr->size != size || ch->hdr->out_ring != out_ring || ch->hdr->in_ring != in_ring) {
        ph_channel_close(ch);
        snprintf(err, errlen, "channel /dev/shm%s changed while opening", ch->name);
        return PH_ERR_CORRUPT;
    }
    return PH_OK;
}

void ph_channel_close(struct ph_channel *ch)
{
    if (ch->base != NULL) munmap(ch->base, ch->size);
    if (ch->fd >= 0) close(ch->fd);
    ch->base = NULL;
    ch->hdr = NULL;
    ch->fd = -1;
}

int ph_channel_unlink(const char *swarm_id, char *err, size_t errlen)
{
    char name[PH_ID_MAX + 16];
    int rc = chan_name(swarm_id, name, sizeof name, err, errlen);
    if (rc != PH_OK) return rc;
    if (shm_unlink(name) != 0) return sys_err("cannot remove", name, err, errlen);
    return PH_OK;
}

int ph_channel_register_bridge(struct ph_channel *ch, int32_t pid, uint64_t start_time, char *err,
                               size_t errlen)
{
    struct ph_chan_header *h = ch->hdr;
    for (;;) {
        /* acquire: pairs with the release below in an earlier bridge, so its
         * start time is read consistently with its pid. */
        int32_t cur = atomic_load_explicit(&h->bridge_pid, memory_order_acquire);
        uint64_t cur_start = atomic_load_explicit(&h->bridge_start_time, memory_order_relaxed);
        if (cur != 0 && cur != pid && ph_proc_alive(cur, cur_start)) {
            snprintf(err, errlen, "swarm '%s' already has a live bridge (pid %" PRId32 ")",
                     h->swarm_id, cur);
            return PH_ERR_BUSY;
        }
        /* acq_rel: the winner's later stores (start time, heartbeat) are
         * ordered after taking ownership. */
        if (atomic_compare_exchange_strong_explicit(&h->bridge_pid, &cur, pid, memory_order_acq_rel,
                                                    memory_order_relaxed))
            break;
    }
    atomic_store_explicit(&h->bridge_start_time, start_time, memory_order_relaxed);
    atomic_store_explicit(&h->bridge_heartbeat_ns, ph_mono_ns(), memory_order_relaxed);
    /* release: the controller, seeing the new generation, also sees the
     * registration above and may address the new bridge. */
    atomic_fetch_add_explicit(&h->bridge_generation, 1, memory_order_release);
    return PH_OK;
}

void ph_channel_unregister_bridge(struct ph_channel *ch, int32_t pid)
{
    int32_t expect = pid;
    if (atomic_load_explicit(&ch->hdr->bridge_pid, memory_order_relaxed) == pid) {
        /* Our bell closes with us: nobody to ring (relaxed, a name only). */
        atomic_store_explicit(&ch->hdr->bell_token, 0, memory_order_relaxed);
        atomic_store_explicit(&ch->hdr->bridge_asleep, 0, memory_order_relaxed);
    }
    /* release: our last ring positions are published before the slot opens. */
    atomic_compare_exchange_strong_explicit(&ch->hdr->bridge_pid, &expect, 0, memory_order_release,
                                            memory_order_relaxed);
}

/* ---- the bell ------------------------------------------------------------ */

/* "\0ph.bell.<swarm>.<token>": abstract (no file to clean up, gone with the
 * socket), at most 9 + 64 + 1 + 16 bytes, within sun_path's 108. */
static socklen_t bell_addr(struct sockaddr_un *sa, const char *swarm_id, uint64_t token)
{
    memset(sa, 0, sizeof *sa);
    sa->sun_family = AF_UNIX;
    int n = snprintf(sa->sun_path + 1, sizeof sa->sun_path - 1, "ph.bell.%.*s.%016" PRIx64,
                     (int)PH_ID_MAX, swarm_id, token);
    if (n < 0 || (size_t)n >= sizeof sa->sun_path - 1) n = (int)sizeof sa->sun_path - 2;
    return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
}

int ph_channel_bell_open(const char *swarm_id, uint64_t *token, char *err, size_t errlen)
{
    int rc = ph_ident_check("swarm id", swarm_id, err, errlen);
    if (rc != PH_OK) return rc;
    /* Blocking: the bridge reads it through its io_uring loop, which waits
     * for a datagram; a non-blocking one would complete at once, empty. */
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "cannot create the bell socket: %s", strerror(errno));
        return PH_ERR_SYS;
    }
    /* A name taken (by chance or on purpose) is tried again with another
     * token; a few failures in a row mean something else is wrong. */
    for (int attempt = 0; attempt < 8; attempt++) {
        uint64_t t = 0;
        if (getrandom(&t, sizeof t, 0) != (ssize_t)sizeof t || t == 0) continue;
        struct sockaddr_un sa;
        const socklen_t len = bell_addr(&sa, swarm_id, t);
        if (bind(fd, (const struct sockaddr *)&sa, len) == 0) {
            *token = t;
            return fd;
        }
        if (errno != EADDRINUSE) break;
    }
    snprintf(err, errlen, "cannot bind the bell socket: %s", strerror(errno));
    close(fd);
    return PH_ERR_SYS;
}

bool ph_channel_bell_arm(struct ph_channel *ch, const ph_ring_consumer *out)
{
    atomic_store_explicit(&ch->hdr->bridge_asleep, 1, memory_order_relaxed);
    /* seq_cst fence between our store of bridge_asleep and our load of the
     * tail, paired with the one in ph_channel_bell_due() between the
     * controller's store of the tail and its load of bridge_asleep: of the
     * two fences one comes first in the single total order, so at least
     * one side sees the other's store. Either we see the document, or the
     * controller sees us asleep and rings. */
    atomic_thread_fence(memory_order_seq_cst);
    if (!ph_ring_pending(out)) return true;
    atomic_store_explicit(&ch->hdr->bridge_asleep, 0, memory_order_relaxed);
    return false;
}

void ph_channel_bell_disarm(struct ph_channel *ch)
{
    /* relaxed: a stale 1 only costs one needless ring. */
    if (atomic_load_explicit(&ch->hdr->bridge_asleep, memory_order_relaxed) != 0)
        atomic_store_explicit(&ch->hdr->bridge_asleep, 0, memory_order_relaxed);
}

bool ph_channel_bell_due(struct ph_channel *ch)
{
    /* seq_cst: the other half of the pair in ph_channel_bell_arm(); the
     * caller's release store of the tail comes before it. */
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&ch->hdr->bridge_asleep, memory_order_relaxed) == 0) return false;
    /* The exchange makes it one ring per sleep, whoever else looks. */
    return atomic_exchange_explicit(&ch->hdr->bridge_asleep, 0, memory_order_relaxed) != 0;
}

int ph_channel_bell_send(const char *swarm_id, uint64_t token, int *fd)
{
    if (token == 0) return -EDESTADDRREQ;
    if (*fd < 0) {
        *fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (*fd < 0) return -errno;
    }
    struct sockaddr_un sa;
    const socklen_t len = bell_addr(&sa, swarm_id, token);
    const char byte = 1;
    if (sendto(*fd, &byte, 1, MSG_DONTWAIT | MSG_NOSIGNAL, (const struct sockaddr *)&sa, len) != 1)
        return -errno;
    return 0;
}

int ph_channel_bell_ring(const struct ph_channel *ch, const char *swarm_id, int *fd,
                         uint64_t *token)
{
    /* relaxed: the token is a name to send to; a stale one reaches nobody. */
    const uint64_t t = atomic_load_explicit(&ch->hdr->bell_token, memory_order_relaxed);
    if (token != NULL) *token = t;
    return ph_channel_bell_send(swarm_id, t, fd);
}
