/* phctl journal: prints a swarm run's journal (signals, outcomes, alerts,
 * health transitions), found through the segment header or given as a file.
 * With --follow it keeps printing lines as the controller appends them. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "ph/shm.h"
#include "phctl.h"

static volatile sig_atomic_t stop_flag;

static void on_stop(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static void usage(FILE *out)
{
    fputs("usage: phctl journal --swarm ID [--follow] [--json]\n"
          "       phctl journal --file PATH [--follow] [--json]\n"
          "\n"
          "Prints the journal of a swarm's run: every signal the controller received,\n"
          "every outcome and alert, and every health transition, one per line.\n"
          "The journal's path is read from the swarm's segment; with the swarm gone,\n"
          "give the file (the controller writes <journal dir>/<run id>.jsonl).\n"
          "\n"
          "  --swarm ID   the swarm whose current run to print\n"
          "  --file PATH  a journal file\n"
          "  --follow     keep printing new lines until interrupted\n"
          "  --json       print the JSON lines as stored\n",
          out);
}

/* One line for people: time, event, then the other fields as key=value. */
static void print_human(const char *line)
{
    json_error_t je;
    json_t *e = json_loads(line, 0, &je);
    if (!json_is_object(e)) {
        printf("%s\n", line); /* not ours to judge: show it as it is */
        json_decref(e);
        return;
    }
    const char *ts = json_string_value(json_object_get(e, "ts"));
    const char *ev = json_string_value(json_object_get(e, "event"));
    printf("%s %-9s", ts ? ts : "-", ev ? ev : "-");
    const char *k;
    json_t *v;
    json_object_foreach(e, k, v)
    {
        if (strcmp(k, "ts") == 0 || strcmp(k, "event") == 0 || strcmp(k, "runId") == 0 ||
            json_is_null(v))
            continue;
        if (json_is_string(v)) {
            printf(" %s=%s", k, json_string_value(v));
        } else {
            char *t = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
            printf(" %s=%s", k, t ? t : "?");
            free(t);
        }
    }
    printf("\n");
    json_decref(e);
}

static int journal_path_of(const char *swarm, char *path, size_t n)
{
    struct ph_segment seg;
    char err[512];
    int rc = ph_segment_open(&seg, swarm, false, err, sizeof err);
    if (rc != PH_OK) return phctl_fail(rc, err);
    /* Written by the controller before it published its pid; copied and
     * terminated here because the segment is untrusted. */
    char tmp[sizeof seg.hdr->journal_path];
    memcpy(tmp, seg.hdr->journal_path, sizeof tmp);
    tmp[sizeof tmp - 1] = '\0';
    ph_segment_close(&seg);
    if (tmp[0] == '\0') {
        fprintf(stderr, "phctl: swarm '%s' has no journal recorded in its segment\n", swarm);
        return PHCTL_EXIT_OTHER;
    }
    snprintf(path, n, "%s", tmp);
    return PHCTL_EXIT_OK;
}

int phctl_journal(int argc, char **argv)
{
    static const struct option longs[] = {{"swarm", required_argument, NULL, 's'},
                                          {"file", required_argument, NULL, 'f'},
                                          {"follow", no_argument, NULL, 'F'},
                                          {"json", no_argument, NULL, 'j'},
                                          {"help", no_argument, NULL, 'h'},
                                          {NULL, 0, NULL, 0}};
    const char *swarm = NULL, *file = NULL;
    bool follow = false, raw = false;
    int ch;
    optind = 1;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, ":", longs, NULL)) != -1) {
        switch (ch) {
        case 's': swarm = optarg; break;
        case 'f': file = optarg; break;
        case 'F': follow = true; break;
        case 'j': raw = true; break;
        case 'h': usage(stdout); return PHCTL_EXIT_OK;
        default: return phctl_bad_option("journal", ch, argv);
        }
    }
    if (optind < argc) return phctl_usage_error("journal", "unexpected argument '%s'", argv[optind]);
    if ((swarm == NULL) == (file == NULL))
        return phctl_usage_error("journal", "give exactly one of --swarm and --file");
    char path[512];
    if (swarm != NULL) {
        if (!phctl_swarm_ok("journal", swarm)) return PHCTL_EXIT_USAGE;
        int rc = journal_path_of(swarm, path, sizeof path);
        if (rc != PHCTL_EXIT_OK) return rc;
    } else {
        snprintf(path, sizeof path, "%s", file);
    }
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "phctl: cannot open journal %s: %s\n", path, strerror(errno));
        return errno == ENOENT ? PHCTL_EXIT_NOENT
                               : errno == EACCES ? PHCTL_EXIT_ACCES : PHCTL_EXIT_OTHER;
    }
    struct sigaction sa = {.sa_handler = on_stop};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    char *line = NULL;
    size_t cap = 0;
    /* A line the controller is still writing has no newline yet: keep it
     * until the rest arrives. */
    char *partial = NULL;
    size_t plen = 0;
    while (!stop_flag) {
        ssize_t n = getline(&line, &cap, f);
        if (n < 0) {
            if (!follow) break;
            clearerr(f);
            fflush(stdout);
            struct timespec ts = {0, 200 * 1000000L};
            nanosleep(&ts, NULL);
            continue;
        }
        if (line[n - 1] != '\n') {
            char *p = realloc(partial, plen + (size_t)n + 1);
            if (p == NULL) break;
            partial = p;
            memcpy(partial + plen, line, (size_t)n + 1);
            plen += (size_t)n;
            continue;
        }
        line[n - 1] = '\0';
        const char *text = line;
        if (partial != NULL) {
            char *p = realloc(partial, plen + (size_t)n + 1);
            if (p == NULL) break;
            partial = p;
            memcpy(partial + plen, line, (size_t)n);
            text = partial;
        }
        if (raw)
            printf("%s\n", text);
        else
            print_human(text);
        free(partial);
        partial = NULL;
        plen = 0;
    }
    free(partial);
    free(line);
    fclose(f);
    return PHCTL_EXIT_OK;
}
