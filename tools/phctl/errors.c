/* From libph's error codes and messages to what an operator reads: one line
 * naming the problem (libph's sentence), a hint saying what to do about it,
 * and a distinct exit status per kind so scripts can tell them apart. */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <errno.h>

#include "ph/common.h"
#include "ph/owner.h"
#include "phctl.h"

int phctl_exit_for(int err)
{
    switch (err) {
    case PH_OK:
        return PHCTL_EXIT_OK;
    case PH_ERR_INVAL:
        return PHCTL_EXIT_USAGE;
    case PH_ERR_NOENT:
        return PHCTL_EXIT_NOENT;
    case PH_ERR_ACCES:
        return PHCTL_EXIT_ACCES;
    /* A header whose geometry does not add up is as unreadable as one
     * with the wrong magic: neither is a segment this phctl can follow. */
    case PH_ERR_MAGIC:
    case PH_ERR_CORRUPT:
        return PHCTL_EXIT_MAGIC;
    case PH_ERR_VERSION:
        return PHCTL_EXIT_VERSION;
    case PH_ERR_TRUNC:
        return PHCTL_EXIT_TRUNC;
    case PH_ERR_BUSY:
        return PHCTL_EXIT_BUSY;
    default:
        return PHCTL_EXIT_OTHER;
    }
}

static const char *hint_for(int err)
{
    switch (err) {
    case PH_ERR_NOENT:
        return "check the swarm id; 'ls /dev/shm/ph.*' lists the segments on this host";
    case PH_ERR_ACCES:
        return "segments are owner-only (mode 0600): run phctl as the user that runs the "
               "swarm's controller; to inspect another user's swarm read-only, shm-dump and "
               "journal take --allow-owner UID (or --any-owner)";
    case PH_ERR_MAGIC:
    case PH_ERR_CORRUPT:
        return "the object was not written by a swarm controller, or was damaged; "
               "'phctl shm-rm --force' removes it";
    case PH_ERR_VERSION:
        return "use the phctl built with that swarm's controller";
    case PH_ERR_TRUNC:
        return "the segment was cut short (disk-full /dev/shm, or a tool truncated it); "
               "stop the swarm and remove it with 'phctl shm-rm'";
    default:
        return NULL;
    }
}

int phctl_fail(int err, const char *msg)
{
    const char *hint = hint_for(err);
    fprintf(stderr, "phctl: %s\n", msg);
    if (hint != NULL) fprintf(stderr, "phctl: hint: %s\n", hint);
    return phctl_exit_for(err);
}

int phctl_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "phctl %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (see 'phctl %s --help')\n", cmd);
    va_end(ap);
    return PHCTL_EXIT_USAGE;
}

int phctl_bad_option(const char *cmd, int ret, char **argv)
{
    /* getopt_long leaves the offending word at argv[optind - 1], except for
     * a short option inside a cluster ("-jx"), which only optopt names. */
    const char *word = optind > 0 ? argv[optind - 1] : "?";
    const bool is_long = word[0] == '-' && word[1] == '-';
    if (ret == ':') return phctl_usage_error(cmd, "option '%s' needs a value", word);
    if (is_long && optopt != 0) /* a known long option given "=value" it does not take */
        return phctl_usage_error(cmd, "option '%s' takes no value", word);
    if (!is_long && optopt > 0 && optopt < 128)
        return phctl_usage_error(cmd, "unknown option '-%c'", optopt);
    return phctl_usage_error(cmd, "unknown option '%s'", word);
}

bool phctl_swarm_ok(const char *cmd, const char *swarm)
{
    char err[256];
    if (swarm == NULL) {
        phctl_usage_error(cmd, "--swarm ID is required");
        return false;
    }
    if (ph_ident_check("swarm id", swarm, err, sizeof err) != PH_OK) {
        phctl_usage_error(cmd, "invalid --swarm: %s", err);
        return false;
    }
    return true;
}

bool phctl_parse_long(const char *s, long min, long max, long *out)
{
    if (s == NULL || *s == '\0') return false;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max) return false;
    *out = v;
    return true;
}

bool phctl_owner_option(const char *cmd, int opt, const char *arg)
{
    static struct ph_owner_policy pol;
    char err[256];
    if (opt == PHCTL_OPT_ANY_OWNER) {
        pol.any_owner = true;
    } else {
        if (ph_user_lookup(arg, &pol.allow_uid, err, sizeof err) != PH_OK) {
            phctl_usage_error(cmd, "invalid --allow-owner: %s", err);
            return false;
        }
        pol.allow_uid_set = true;
    }
    ph_owner_policy_set(&pol);
    return true;
}
