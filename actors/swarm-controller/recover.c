/* swarm_recover (swarm.h): a restarted controller takes up the swarm where
 * the previous one left it, from that controller's journal.
 *
 * The journal is read once, in order: <path>.1 first when <path> does not
 * start with a complete checkpoint (a controller that died right after a
 * rotation left <path> missing, empty or holding a checkpoint cut short;
 * journal.h gives the order of a rotation), then <path>. What counts:
 *   checkpoint  written first in a rotated file, and after a recovery: state,
 *               idempotency cache, ids taken in, signals still unanswered.
 *               It sums up every entry before it, so it replaces what was
 *               read up to it. An incomplete one (a last line without its
 *               newline, or one that does not parse) counts for nothing;
 *   state       a snapshot of status, workloads, roles, desired config; the
 *               one with the highest stateSeq wins (a journal written before
 *               rotations wrote the old file out first can hold entries older
 *               than the checkpoint that precedes them);
 *   signal      an attempt taken in; unanswered until an outcome names it;
 *   outcome     answers an attempt; feeds the idempotency cache; carries
 *               its sequence number ("seq") and the whole document;
 *   delivered   the broker confirmed every outcome up to "seq";
 *   ignored     an attempt that needs no answer.
 * status-request needs no answer either. Whatever is still unanswered at
 * the end was taken in (the bridge had it acknowledged) but never answered:
 * it is applied again, in its original order. An outcome no "delivered"
 * entry covers may have died with the previous controller between the
 * journal and the bridge: it is sent again as it was (the bridge drops one
 * it had published).
 *
 * The file is the controller's own (0600), but it is still read as input:
 * lines are bounded, and entries of the wrong shape are skipped. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ph/log.h"
#include "swarm.h"

#define LINE_MAX_BYTES (16u << 20)

struct recovery {
    json_t *state;      /* best state snapshot (borrowed from lines kept alive) */
    json_int_t state_seq;
    json_t *cids;       /* {cid: signal entry (unanswered) | true (answered)} */
    json_t *order;      /* [cid] in the order first taken in */
    json_t *outcomes;   /* [outcome entry] for the idempotency cache */
    json_t *seen;       /* [cid] from a checkpoint: taken in before it */
    json_t *sent;       /* [outcome entry with seq], oldest first, from sent_from on */
    size_t sent_from;   /* entries before it are known delivered */
    uint64_t out_seq; /* the highest outcome sequence number seen */
    uint64_t delivered;
};

/* An outcome with a sequence number: kept until a "delivered" covers it. */
static void take_sent(struct recovery *r, json_t *e)
{
    const uint64_t seq = swarm_entry_u64(e, "seq");
    if (seq == 0) return; /* written before outcomes were numbered */
    if (seq > r->out_seq) r->out_seq = seq;
    if (seq > r->delivered) json_array_append(r->sent, e);
}

static void take_delivered(struct recovery *r, uint64_t seq)
{
    if (seq <= r->delivered) return;
    r->delivered = seq;
    const size_t n = json_array_size(r->sent);
    while (r->sent_from < n && swarm_entry_u64(json_array_get(r->sent, r->sent_from), "seq") <= seq) r->sent_from++;
    if (r->sent_from > 1024 && r->sent_from * 2 > n) {
        /* Drop the delivered front now and then: linear over the file. */
        json_t *rest = json_array();
        for (size_t i = r->sent_from; i < n; i++) json_array_append(rest, json_array_get(r->sent, i));
        json_decref(r->sent);
        r->sent = rest;
        r->sent_from = 0;
    }
}

static void take_state(struct recovery *r, json_t *st)
{
    const json_t *seq = json_object_get(st, "stateSeq");
    json_int_t n = json_is_integer(seq) ? json_integer_value(seq) : 0;
    if (r->state == NULL || n >= r->state_seq) {
        json_decref(r->state);
        r->state = json_incref(st);
        r->state_seq = n;
    }
}

static void take_signal(struct recovery *r, json_t *e)
{
    const char *cid = json_string_value(json_object_get(e, "correlationId"));
    const char *type = json_string_value(json_object_get(e, "type"));
    if (cid == NULL || cid[0] == '\0' || type == NULL) return;
    if (json_object_get(r->cids, cid) != NULL) return; /* known: answered or taken in */
    /* A status-request is answered by a status-full, not an outcome. */
    json_object_set(r->cids, cid, strcmp(type, "status-request") == 0 ? json_true() : e);
    json_array_append_new(r->order, json_string(cid));
}

static void take_answer(struct recovery *r, const char *cid)
{
    if (cid == NULL || cid[0] == '\0') return;
    if (json_object_get(r->cids, cid) == NULL) json_array_append_new(r->order, json_string(cid));
    json_object_set_new(r->cids, cid, json_true());
}

/* Forgets what was read so far: a checkpoint replaces it. */
static void reset(struct recovery *r)
{
    json_decref(r->state);
    r->state = NULL;
    r->state_seq = 0;
    json_object_clear(r->cids);
    json_array_clear(r->order);
    json_array_clear(r->outcomes);
    json_array_clear(r->seen);
    json_array_clear(r->sent);
    r->sent_from = 0;
    r->out_seq = 0;
    r->delivered = 0;
}

static void take_checkpoint(struct recovery *r, json_t *cp)
{
    reset(r);
    take_state(r, cp);
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(cp, "idem"), i, v)
    {
        json_t *o = json_deep_copy(v);
        json_array_append_new(r->outcomes, o);
    }
    /* Ids taken in before the checkpoint: answered unless listed as open. */
    json_t *open = json_object();
    json_array_foreach(json_object_get(cp, "unanswered"), i, v)
    {
        const char *cid = json_string_value(json_object_get(v, "correlationId"));
        if (cid != NULL) json_object_set(open, cid, v);
    }
    json_array_foreach(json_object_get(cp, "seen"), i, v)
    {
        const char *cid = json_string_value(v);
        if (cid == NULL || json_object_get(r->cids, cid) != NULL) continue;
        json_t *sig = json_object_get(open, cid);
        json_object_set(r->cids, cid, sig != NULL ? sig : json_true());
        json_array_append_new(r->order, json_string(cid));
    }
    /* Open signals whose ids fell out of the seen list still count. */
    const char *cid;
    json_object_foreach(open, cid, v)
    {
        if (json_object_get(r->cids, cid) != NULL) continue;
        json_object_set(r->cids, cid, v);
        json_array_append_new(r->order, json_string(cid));
    }
    json_decref(open);
    /* Outcomes not known delivered when it was written. */
    r->out_seq = swarm_entry_u64(cp, "outSeq");
    r->delivered = swarm_entry_u64(cp, "deliveredSeq");
    json_array_foreach(json_object_get(cp, "undelivered"), i, v)
    {
        if (json_is_object(v)) take_sent(r, v);
    }
}

static void take_line(struct recovery *r, const char *line, size_t len)
{
    /* Cheap filter first: most lines (health, alerts) are not needed. */
    if (memmem(line, len, "\"event\":\"", 9) == NULL) return;
    json_error_t je;
    json_t *e = json_loadb(line, len, 0, &je);
    if (!json_is_object(e)) {
        json_decref(e);
        return;
    }
    const char *ev = json_string_value(json_object_get(e, "event"));
    if (ev == NULL) {
    } else if (strcmp(ev, "signal") == 0) {
        take_signal(r, e);
    } else if (strcmp(ev, "outcome") == 0) {
        take_answer(r, json_string_value(json_object_get(e, "correlationId")));
        if (json_is_string(json_object_get(e, "idempotencyKey")))
            json_array_append(r->outcomes, e);
        take_sent(r, e);
    } else if (strcmp(ev, "delivered") == 0) {
        take_delivered(r, swarm_entry_u64(e, "seq"));
    } else if (strcmp(ev, "ignored") == 0) {
        take_answer(r, json_string_value(json_object_get(e, "correlationId")));
    } else if (strcmp(ev, "state") == 0) {
        take_state(r, e);
    } else if (strcmp(ev, "checkpoint") == 0) {
        take_checkpoint(r, e);
    }
    json_decref(e);
}

/* Reads `f` line by line; lines longer than LINE_MAX_BYTES are skipped whole
 * (they are not ours: no entry is that long). Returns lines read. */
static long read_lines(struct recovery *r, FILE *f)
{
    char *buf = NULL;
    size_t len = 0, cap = 0;
    bool skipping = false;
    long lines = 0;
    int c;
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        for (size_t i = 0; i < n; i++) {
            c = chunk[i];
            if (c == '\n') {
                if (!skipping && len > 0) take_line(r, buf, len);
                lines++;
                len = 0;
                skipping = false;
                continue;
            }
            if (skipping) continue;
            if (len == LINE_MAX_BYTES) {
                skipping = true;
                continue;
            }
            if (len == cap) {
                size_t ncap = cap ? cap * 2 : 4096;
                char *nb = realloc(buf, ncap);
                if (nb == NULL) {
                    skipping = true;
                    continue;
                }
                buf = nb;
                cap = ncap;
            }
            buf[len++] = (char)c;
        }
    }
    /* A last line without its newline was being written when the previous
     * controller died: it is incomplete and not used. */
    free(buf);
    return lines;
}

/* Does the file start with a complete checkpoint? */
static bool starts_with_checkpoint(const char *path)
{
    FILE *f = fopen(path, "re");
    if (f == NULL) return false;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n = getline(&line, &cap, f);
    fclose(f);
    bool yes = false;
    if (n > 1 && n <= (ssize_t)LINE_MAX_BYTES && line[n - 1] == '\n' &&
        memmem(line, (size_t)n, "\"event\":\"checkpoint\"", 20) != NULL) {
        json_t *e = json_loadb(line, (size_t)n - 1, 0, NULL);
        const char *ev = json_string_value(json_object_get(e, "event"));
        yes = ev != NULL && strcmp(ev, "checkpoint") == 0;
        json_decref(e);
    }
    free(line);
    return yes;
}

long swarm_recover(struct swarm *s, const char *path, uint64_t now, char *err, size_t errlen)
{
    struct recovery r = {.cids = json_object(),
                         .order = json_array(),
                         .outcomes = json_array(),
                         .seen = json_array(),
                         .sent = json_array()};
    long lines = 0;
    char older[PATH_MAX + 8];
    snprintf(older, sizeof older, "%s.1", path);
    FILE *f = starts_with_checkpoint(path) ? NULL : fopen(older, "re");
    const bool read_older = f != NULL;
    if (f != NULL) {
        lines += read_lines(&r, f);
        fclose(f);
    }
    f = fopen(path, "re");
    if (f == NULL && !(read_older && errno == ENOENT)) {
        snprintf(err, errlen, "cannot read the previous journal %s: %s", path, strerror(errno));
        json_decref(r.state);
        json_decref(r.cids);
        json_decref(r.order);
        json_decref(r.outcomes);
        json_decref(r.seen);
        json_decref(r.sent);
        return -1;
    }
    if (f != NULL) {
        lines += read_lines(&r, f);
        fclose(f);
    }

    if (r.state != NULL) swarm_state_restore(s, r.state);
    size_t i;
    json_t *v;
    json_array_foreach(r.outcomes, i, v) swarm_idem_restore(s, v, now);
    /* Outcomes first, in the order they went out: the ones the journal
     * does not show delivered are sent again. */
    if (r.out_seq > s->out_seq) s->out_seq = r.out_seq;
    if (r.delivered > 0) {
        s->delivered_seq = r.delivered;
        s->delivered_journaled = r.delivered;
    }
    uint32_t resent = 0;
    for (i = r.sent_from; i < json_array_size(r.sent); i++) {
        swarm_resend_outcome(s, json_array_get(r.sent, i));
        resent++;
    }
    /* Answered ids next, so that a redelivery of any of them is ignored;
     * then the unanswered signals, applied again in order. */
    uint32_t answered = 0, open = 0;
    json_array_foreach(r.order, i, v)
    {
        const char *cid = json_string_value(v);
        if (json_is_true(json_object_get(r.cids, cid))) {
            ph_cidset_add(&s->seen, cid);
            answered++;
        }
    }
    json_array_foreach(r.order, i, v)
    {
        json_t *sig = json_object_get(r.cids, json_string_value(v));
        if (json_is_object(sig)) {
            swarm_apply_recovered(s, sig, now);
            open++;
        }
    }
    ph_info("journal %s%s: %ld line(s); resumed at %s with %u answered id(s), %u signal(s) taken "
            "up again, %u outcome(s) not shown delivered sent again",
            path, read_older ? " (and the file before it)" : "", lines,
            swarm_status_name(s->status), answered, open, resent);
    json_decref(r.state);
    json_decref(r.cids);
    json_decref(r.order);
    json_decref(r.outcomes);
    json_decref(r.seen);
    json_decref(r.sent);
    return lines;
}
