/* phctl: the operator CLI of a swarm. This file only finds the subcommand
 * and hands it its arguments; each subcommand is one cmd_<name>.c with its
 * own options and --help, so adding one is a line in the table below. */
#include <stdio.h>
#include <string.h>

#include "phctl.h"

struct phctl_command {
    const char *name;
    const char *summary;
    phctl_run_fn run;
};

static const struct phctl_command commands[] = {
    {"shm-dump", "print a swarm's shared-memory segment: header and one row per worker slot",
     phctl_shm_dump},
    {"shm-rm", "remove a leftover segment whose controller is gone", phctl_shm_rm},
    {"journal", "print a swarm run's journal of signals, outcomes, alerts and health",
     phctl_journal},
    {"signal", "publish a control signal on the broker and wait for its outcome",
     phctl_signal},
};

static void usage(FILE *out)
{
    fputs("usage: phctl <command> [options]\n"
          "       phctl <command> --help\n"
          "\n"
          "Operator CLI of a swarm. Reads the swarm's shared-memory segment\n"
          "(/dev/shm/ph.<swarmId>) directly, so it works when every other process is dead;\n"
          "'signal' talks to the swarm through the broker (PH_AMQP_URL).\n"
          "\n"
          "Commands:\n",
          out);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fputs("\n"
          "Exit status:\n"
          "  0 success                      5 not a swarm segment (bad magic, bad header)\n"
          "  1 other failure                6 unsupported layout version\n"
          "  2 usage error                  7 truncated segment\n"
          "  3 no such swarm                8 refused: the swarm's controller is alive\n"
          "  4 permission denied            9 broker unreachable (signal)\n"
          "  (signal: 3 means no answer within the timeout; see 'phctl signal --help')\n",
          out);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return PHCTL_EXIT_USAGE;
    }
    const char *name = argv[1];
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0 || strcmp(name, "help") == 0) {
        if (argc > 2 && strcmp(name, "help") == 0) {
            /* "phctl help shm-dump" is "phctl shm-dump --help". */
            for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
                if (strcmp(argv[2], commands[i].name) == 0) {
                    char *sub[] = {argv[2], "--help", NULL};
                    return commands[i].run(2, sub);
                }
            }
            fprintf(stderr, "phctl: unknown command '%s' (see 'phctl --help')\n", argv[2]);
            return PHCTL_EXIT_USAGE;
        }
        usage(stdout);
        return PHCTL_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(name, commands[i].name) == 0) return commands[i].run(argc - 1, argv + 1);
    if (name[0] == '-')
        fprintf(stderr, "phctl: unknown option '%s' before the command (see 'phctl --help')\n",
                name);
    else
        fprintf(stderr, "phctl: unknown command '%s' (see 'phctl --help')\n", name);
    return PHCTL_EXIT_USAGE;
}
