/* Who owns the shared-memory objects a process attaches to.
 *
 * A segment (/dev/shm/ph.<swarm>) and a bridge channel (ph.<swarm>.bridge)
 * are written by their creator and trusted by whoever maps them: their
 * records steer a worker, their documents reach the broker. So an object
 * is opened only when this process's effective uid owns it, or when the
 * object was made for a group (mode with group bits, its group one of this
 * process's groups: ph-swarm-controller --shm-group), or when the process
 * was told explicitly to accept another owner (phctl --allow-owner UID,
 * --any-owner). Every open path of libph (ph_segment_open, the
 * controller's adoption in ph_segment_create, ph_channel_open) applies the
 * process's policy below; a refusal is PH_ERR_ACCES with a message naming
 * the object and its owner. */
#ifndef PH_OWNER_H
#define PH_OWNER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct ph_owner_policy {
    bool any_owner;     /* accept every owner (an operator inspecting read-only) */
    bool allow_uid_set; /* accept allow_uid as well as our own */
    uint32_t allow_uid;
};

/* Sets this process's policy; the default is the zero policy (own uid and
 * group objects only). Call before opening anything, from one thread. */
void ph_owner_policy_set(const struct ph_owner_policy *p);

/* Checks the object open on `fd`, named `name` in messages ("/ph.x"):
 * PH_OK when the policy accepts its owner, else PH_ERR_ACCES with a
 * message; PH_ERR_SYS when it cannot be examined. `writable`: the caller
 * will map it read-write (a group object then needs group write). */
int ph_owner_check(int fd, const char *name, bool writable, char *err, size_t errlen);

/* Resolves a group given by name or number to its gid: PH_OK, or
 * PH_ERR_INVAL with a message. */
int ph_group_lookup(const char *group, uint32_t *gid, char *err, size_t errlen);

/* Parses a uid given as a number or a user name: PH_OK, or PH_ERR_INVAL. */
int ph_user_lookup(const char *user, uint32_t *uid, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
