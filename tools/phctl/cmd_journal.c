/* phctl journal: prints a swarm run's journal (signals, outcomes, alerts,
 * health transitions), found through the segment header or given as a file.
 * With --follow it keeps printing lines as the controller appends them.
 *
 * The file is read with bounded memory (line_reader.h): a journal line is a
 * few hundred bytes, so a line past JOURNAL_LINE_MAX is damage and is
 * skipped, and JOURNAL_RUN_MAX bytes without any newline mean the file is not
 * a journal at all. Only regular files are read: a FIFO would block the open,
 * a device like /dev/zero never ends. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "line_reader.h"
#include "ph/shm.h"
#include "phctl.h"

#define JOURNAL_LINE_MAX ((size_t)1 << 20)   /* 1 MiB */
#define JOURNAL_RUN_MAX ((uint64_t)64 << 20) /* 64 MiB */
#define JOURNAL_PATH_MAX 512
#define MIB(n) ((unsigned long long)((n) >> 20))

static volatile sig_atomic_t stop_flag;

static void on_stop(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static void usage(FILE *out)
{
    fputs("usage: phctl journal --swarm ID [--all] [--follow] [--json]\n"
          "       phctl journal --file PATH [--all] [--follow] [--json]\n"
          "\n"
          "Prints the journal of a swarm's run: every signal the controller received,\n"
          "every outcome and alert, and every health transition, one per line.\n"
          "The journal's path is read from the swarm's segment; with the swarm gone,\n"
          "give the file (the controller writes <journal dir>/<run id>.jsonl).\n"
          "\n"
          "  --swarm ID   the swarm whose current run to print\n"
          "  --file PATH  a journal file\n"
          "  --all        first print the rotated file PATH.1, when there is one (the\n"
          "               controller rotates its journal at --journal-max-mb and keeps\n"
          "               one old file; each file starts with a checkpoint)\n"
          "  --follow     keep printing new lines until interrupted; when the controller\n"
          "               rotates the file, go on with the new one\n"
          "  --json       print the JSON lines as stored\n" PHCTL_OWNER_HELP "\n"
          "Only a regular file is read. A line longer than 1 MiB is reported on stderr\n"
          "and skipped; a last line without a newline is printed with a warning (with\n"
          "--follow, the rest of it is waited for). 64 MiB without a newline end the\n"
          "command with exit status 1: such a file is not a journal.\n",
          out);
}

static void print_as_is(const char *line, size_t len)
{
    fwrite(line, 1, len, stdout);
    putchar('\n');
}

/* One line for people: time, event, then the other fields as key=value. */
static void print_human(const char *line, size_t len)
{
    json_error_t je;
    json_t *e = json_loadb(line, len, 0, &je);
    if (!json_is_object(e)) {
        print_as_is(line, len); /* not ours to judge: show it as it is */
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

static const char *file_kind(mode_t m)
{
    if (S_ISDIR(m)) return "a directory";
    if (S_ISFIFO(m)) return "a FIFO";
    if (S_ISCHR(m)) return "a character device";
    if (S_ISBLK(m)) return "a block device";
    if (S_ISSOCK(m)) return "a socket";
    return "a file of another type";
}

/* Opens the journal for reading; refuses anything but a regular file. */
static int open_journal(const char *path, int *fd_out)
{
    /* O_NONBLOCK: opening a FIFO without a writer would wait for one. */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        fprintf(stderr, "phctl: cannot open journal %s: %s\n", path, strerror(e));
        return e == ENOENT ? PHCTL_EXIT_NOENT : e == EACCES ? PHCTL_EXIT_ACCES : PHCTL_EXIT_OTHER;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        fprintf(stderr, "phctl: cannot stat journal %s: %s\n", path, strerror(errno));
        close(fd);
        return PHCTL_EXIT_OTHER;
    }
    if (!S_ISREG(st.st_mode)) {
        fprintf(stderr,
                "phctl: journal %s is %s, not a regular file; give the journal file itself "
                "(the controller writes <journal dir>/<run id>.jsonl)\n",
                path, file_kind(st.st_mode));
        close(fd);
        return PHCTL_EXIT_OTHER;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0) fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    *fd_out = fd;
    return PHCTL_EXIT_OK;
}

/* True when `path` now names another file than the one open at fd: the
 * controller rotated the journal (renamed it to PATH.1 and put a new file with
 * a checkpoint in its place). A missing path is no rotation yet: the two
 * renames are not one step. */
static bool rotated_away(int fd, const char *path)
{
    struct stat open_st, path_st;
    if (fstat(fd, &open_st) != 0 || stat(path, &path_st) != 0) return false;
    return open_st.st_dev != path_st.st_dev || open_st.st_ino != path_st.st_ino;
}

/* Prints every line of the journal; with follow, waits at its end for more
 * until SIGINT or SIGTERM, and moves to the new file when the journal is
 * rotated (the old one was written out before the rename, so what is left
 * in it is read first). */
static int print_lines(struct line_reader *r, const char *path, bool follow, bool raw)
{
    void (*print)(const char *, size_t) = raw ? print_as_is : print_human;
    while (!stop_flag) {
        const char *line;
        size_t len;
        switch (lr_next(r, &line, &len)) {
        case LR_LINE:
            print(line, len);
            break;
        case LR_TOO_LONG:
            fflush(stdout); /* the warning goes between the lines around it */
            fprintf(stderr, "phctl: journal %s: line %llu is longer than %llu MiB: skipped\n", path,
                    (unsigned long long)r->line_no, MIB(r->max_line));
            break;
        case LR_RUNAWAY:
            fflush(stdout);
            fprintf(stderr,
                    "phctl: journal %s: line %llu runs past %llu MiB without a newline; this "
                    "is not a journal (one JSON object per line): stopped reading\n",
                    path, (unsigned long long)r->line_no, MIB(r->max_run));
            return PHCTL_EXIT_OTHER;
        case LR_ERROR:
            fflush(stdout);
            fprintf(stderr, "phctl: reading journal %s: %s\n", path, strerror(errno));
            return PHCTL_EXIT_OTHER;
        case LR_EOF:
            if (!follow) {
                if (lr_partial(r, &line, &len)) {
                    print(line, len);
                    fflush(stdout);
                    fprintf(stderr,
                            "phctl: journal %s ends with an incomplete line (line %llu has no "
                            "newline; printed as it is): the controller is still writing it, "
                            "or stopped in the middle of it\n",
                            path, (unsigned long long)r->line_no);
                }
                return PHCTL_EXIT_OK;
            }
            /* A partial line stays in the reader until the rest arrives. */
            fflush(stdout);
            if (rotated_away(r->fd, path)) {
                /* Drain what the old file still holds, then switch. */
                enum lr_status st;
                while ((st = lr_next(r, &line, &len)) == LR_LINE) print(line, len);
                if (st == LR_EOF && lr_partial(r, &line, &len)) print(line, len);
                int nfd;
                if (open_journal(path, &nfd) != PHCTL_EXIT_OK) return PHCTL_EXIT_OTHER;
                close(r->fd);
                const size_t max_line = r->max_line;
                const uint64_t max_run = r->max_run;
                lr_free(r);
                lr_init(r, nfd, max_line, max_run);
                fflush(stdout);
                fprintf(stderr, "phctl: journal %s was rotated: following the new file\n", path);
                break;
            }
            nanosleep(&(struct timespec){0, 200 * 1000000L}, NULL);
            break;
        }
    }
    return PHCTL_EXIT_OK;
}

/* --all: the rotated file PATH.1 first, when there is one. */
static int print_rotated(struct line_reader *r, const char *path, bool raw)
{
    char old[JOURNAL_PATH_MAX + 2];
    snprintf(old, sizeof old, "%s.1", path);
    struct stat st;
    if (stat(old, &st) != 0 && errno == ENOENT) return PHCTL_EXIT_OK;
    int fd;
    int rc = open_journal(old, &fd);
    if (rc != PHCTL_EXIT_OK) return rc;
    lr_init(r, fd, JOURNAL_LINE_MAX, JOURNAL_RUN_MAX);
    rc = print_lines(r, old, false, raw);
    lr_free(r);
    close(fd);
    return rc;
}

int phctl_journal(int argc, char **argv)
{
    static const struct option longs[] = {{"swarm", required_argument, NULL, 's'},
                                          {"file", required_argument, NULL, 'f'},
                                          {"follow", no_argument, NULL, 'F'},
                                          {"all", no_argument, NULL, 'a'},
                                          {"json", no_argument, NULL, 'j'},
                                          {"help", no_argument, NULL, 'h'},
                                          PHCTL_OWNER_LONGOPTS,
                                          {NULL, 0, NULL, 0}};
    const char *swarm = NULL, *file = NULL;
    bool follow = false, raw = false, all = false;
    int ch;
    optind = 1;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, ":", longs, NULL)) != -1) {
        switch (ch) {
        case 's': swarm = optarg; break;
        case 'f': file = optarg; break;
        case 'F': follow = true; break;
        case 'a': all = true; break;
        case 'j': raw = true; break;
        case 'h': usage(stdout); return PHCTL_EXIT_OK;
        case PHCTL_OPT_ALLOW_OWNER:
        case PHCTL_OPT_ANY_OWNER:
            if (!phctl_owner_option("journal", ch, optarg)) return PHCTL_EXIT_USAGE;
            break;
        default: return phctl_bad_option("journal", ch, argv);
        }
    }
    if (optind < argc) return phctl_usage_error("journal", "unexpected argument '%s'", argv[optind]);
    if ((swarm == NULL) == (file == NULL))
        return phctl_usage_error("journal", "give exactly one of --swarm and --file");
    char path[JOURNAL_PATH_MAX];
    if (swarm != NULL) {
        if (!phctl_swarm_ok("journal", swarm)) return PHCTL_EXIT_USAGE;
        int rc = journal_path_of(swarm, path, sizeof path);
        if (rc != PHCTL_EXIT_OK) return rc;
    } else {
        if (strlen(file) >= sizeof path)
            return phctl_usage_error("journal", "--file path is longer than %zu bytes",
                                     sizeof path - 1);
        snprintf(path, sizeof path, "%s", file);
    }
    struct sigaction sa = {.sa_handler = on_stop};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    struct line_reader *r = malloc(sizeof *r);
    if (r == NULL) {
        fprintf(stderr, "phctl: out of memory reading journal %s\n", path);
        return PHCTL_EXIT_OTHER;
    }
    int rc = PHCTL_EXIT_OK;
    if (all) rc = print_rotated(r, path, raw);
    int fd = -1;
    if (rc == PHCTL_EXIT_OK) rc = open_journal(path, &fd);
    if (rc == PHCTL_EXIT_OK) {
        lr_init(r, fd, JOURNAL_LINE_MAX, JOURNAL_RUN_MAX);
        rc = print_lines(r, path, follow, raw);
        close(r->fd); /* the follower may have moved on to a new file */
        lr_free(r);
    }
    free(r);
    return rc;
}
