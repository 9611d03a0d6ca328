/* Internals shared by phctl's subcommands: the command table's signature,
 * exit codes, and the helpers that turn a libph error into a message and an
 * exit status. Each subcommand lives in its own cmd_<name>.c. */
#ifndef PHCTL_H
#define PHCTL_H

#include <stdbool.h>

/* Exit codes, stable for scripts (also listed in `phctl --help`). */
enum phctl_exit {
    PHCTL_EXIT_OK = 0,
    PHCTL_EXIT_OTHER = 1,
    PHCTL_EXIT_USAGE = 2,   /* bad option, missing or invalid argument */
    PHCTL_EXIT_NOENT = 3,   /* no such swarm */
    PHCTL_EXIT_ACCES = 4,   /* permission denied */
    PHCTL_EXIT_MAGIC = 5,   /* not a swarm segment: bad magic or inconsistent header */
    PHCTL_EXIT_VERSION = 6, /* layout version this phctl does not read */
    PHCTL_EXIT_TRUNC = 7,   /* segment shorter than its header says */
    PHCTL_EXIT_BUSY = 8,    /* refused: the swarm's controller is alive */
    PHCTL_EXIT_BROKER = 9,  /* signal: broker unreachable or connection lost */
};

/* A subcommand: argv[0] is the subcommand's name. Returns an exit code. */
typedef int (*phctl_run_fn)(int argc, char **argv);

int phctl_shm_dump(int argc, char **argv);
int phctl_shm_rm(int argc, char **argv);
int phctl_journal(int argc, char **argv);
int phctl_signal(int argc, char **argv);

/* Exit code for a libph error (enum ph_err). */
int phctl_exit_for(int err);

/* Prints "phctl: <msg>" and a hint for the error kind on stderr; returns
 * phctl_exit_for(err). */
int phctl_fail(int err, const char *msg);

/* Prints "phctl <cmd>: <formatted message> (see 'phctl <cmd> --help')" on
 * stderr; returns PHCTL_EXIT_USAGE. */
int phctl_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Reports an option getopt_long() refused (it returned '?' or ':'); `argv`
 * and the getopt globals tell which. Returns PHCTL_EXIT_USAGE. */
int phctl_bad_option(const char *cmd, int ret, char **argv);

/* Checks a --swarm value; on failure prints why and returns false. */
bool phctl_swarm_ok(const char *cmd, const char *swarm);

/* Option codes of --allow-owner UID and --any-owner (shm-dump, journal). */
#define PHCTL_OPT_ALLOW_OWNER 0x100
#define PHCTL_OPT_ANY_OWNER 0x101
#define PHCTL_OWNER_LONGOPTS                                                                       \
    {"allow-owner", required_argument, NULL, PHCTL_OPT_ALLOW_OWNER},                               \
    {                                                                                              \
        "any-owner", no_argument, NULL, PHCTL_OPT_ANY_OWNER                                        \
    }
#define PHCTL_OWNER_HELP                                                                           \
    "      --allow-owner UID accept a segment owned by user UID (number or name) as well\n"        \
    "                        as one of ours; by default another user's segment is refused\n"       \
    "      --any-owner       accept a segment whatever user owns it (read-only inspection)\n"
/* Applies --allow-owner/--any-owner to this process's owner policy
 * (ph/owner.h); false, after a message, when the value is not a user. */
bool phctl_owner_option(const char *cmd, int opt, const char *arg);

/* Parses a decimal integer in [min, max]; false when it is not one. */
bool phctl_parse_long(const char *s, long min, long max, long *out);

#endif
