/* Owner checks of shared-memory objects (ph/owner.h). */
#include "ph/owner.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ph/common.h"

static struct ph_owner_policy policy;

void ph_owner_policy_set(const struct ph_owner_policy *p)
{
    policy = *p;
}

/* True when gid is this process's effective group or a supplementary one. */
static bool in_group(gid_t gid)
{
    if (getegid() == gid) return true;
    int n = getgroups(0, NULL);
    if (n <= 0) return false;
    gid_t *groups = calloc((size_t)n, sizeof *groups);
    if (groups == NULL) return false;
    n = getgroups(n, groups);
    bool found = false;
    for (int i = 0; i < n && !found; i++)
        found = groups[i] == gid;
    free(groups);
    return found;
}

int ph_owner_check(int fd, const char *name, bool writable, char *err, size_t errlen)
{
    struct stat st;
    if (fstat(fd, &st) != 0) {
        snprintf(err, errlen, "cannot stat /dev/shm%s: %s", name, strerror(errno));
        return PH_ERR_SYS;
    }
    const uid_t me = geteuid();
    if (st.st_uid == me || policy.any_owner) return PH_OK;
    if (policy.allow_uid_set && st.st_uid == (uid_t)policy.allow_uid) return PH_OK;
    const mode_t need = writable ? (S_IRGRP | S_IWGRP) : S_IRGRP;
    if ((st.st_mode & need) == need && in_group(st.st_gid)) return PH_OK;
    snprintf(err, errlen,
             "/dev/shm%s is owned by uid %lu (group %lu, mode %04o), not by this process's uid "
             "%lu: refused, since another user's object could steer this process; accept that "
             "owner explicitly (phctl --allow-owner %lu), or have the swarm made for a shared "
             "group (ph-swarm-controller --shm-group)",
             name, (unsigned long)st.st_uid, (unsigned long)st.st_gid,
             (unsigned)(st.st_mode & 07777), (unsigned long)me, (unsigned long)st.st_uid);
    return PH_ERR_ACCES;
}

/* A decimal number in [0, UINT32_MAX - 1] (the last is (uid_t)-1). */
static bool parse_id(const char *s, uint32_t *out)
{
    if (s[0] < '0' || s[0] > '9') return false;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v >= UINT32_MAX) return false;
    *out = (uint32_t)v;
    return true;
}

int ph_group_lookup(const char *group, uint32_t *gid, char *err, size_t errlen)
{
    if (group == NULL || group[0] == '\0') {
        snprintf(err, errlen, "the group is empty");
        return PH_ERR_INVAL;
    }
    if (parse_id(group, gid)) return PH_OK;
    const struct group *g = getgrnam(group);
    if (g == NULL) {
        snprintf(err, errlen, "no group '%.64s' on this host", group);
        return PH_ERR_INVAL;
    }
    *gid = (uint32_t)g->gr_gid;
    return PH_OK;
}

int ph_user_lookup(const char *user, uint32_t *uid, char *err, size_t errlen)
{
    if (user == NULL || user[0] == '\0') {
        snprintf(err, errlen, "the user is empty");
        return PH_ERR_INVAL;
    }
    if (parse_id(user, uid)) return PH_OK;
    const struct passwd *pw = getpwnam(user);
    if (pw == NULL) {
        snprintf(err, errlen, "no user '%.64s' on this host", user);
        return PH_ERR_INVAL;
    }
    *uid = (uint32_t)pw->pw_uid;
    return PH_OK;
}
