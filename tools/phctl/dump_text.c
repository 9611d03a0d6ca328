/* Text rendering of a snapshot (render.h). Two tables sharing the SLOT
 * column instead of one: every field of a slot on one line would need about
 * 150 columns, and operators read this in an 80-100 column terminal. */
#include <inttypes.h>
#include <string.h>

#include "ph/record.h"
#include "render.h"

/* Copies s into buf, cut to `width` characters with a '~' marking the cut. */
static const char *fit(char *buf, size_t n, const char *s, size_t width)
{
    if (s[0] == '\0') s = "-";
    size_t len = strlen(s);
    if (width + 1 > n) width = n - 1;
    if (len <= width) return s;
    memcpy(buf, s, width - 1);
    buf[width - 1] = '~';
    buf[width] = '\0';
    return buf;
}

/* "15ms", "2.5s", "12m", "3h", "9d" or "-" for no timestamp. */
static const char *fmt_age(char *buf, size_t n, int64_t ms)
{
    if (ms < 0)
        snprintf(buf, n, "-");
    else if (ms < 1000)
        snprintf(buf, n, "%" PRId64 "ms", ms);
    else if (ms < 60000)
        snprintf(buf, n, "%.1fs", (double)ms / 1000.0);
    else if (ms < 3600000)
        snprintf(buf, n, "%" PRId64 "m", ms / 60000);
    else if (ms < 86400000)
        snprintf(buf, n, "%" PRId64 "h", ms / 3600000);
    else
        snprintf(buf, n, "%" PRId64 "d", ms / 86400000);
    return buf;
}

static void render_header(FILE *out, const struct dump_header *h)
{
    char created[32], age[32];
    ph_rfc3339_ms(h->created_real_ns, created);
    fprintf(out, "swarm       %s, layout %" PRIu32 ", generation %" PRIu64 ", created %s\n",
            h->swarm_id[0] != '\0' ? h->swarm_id : "?", h->layout_version, h->generation, created);
    fprintf(out, "segment     %s, %" PRIu64 " bytes\n", h->path, h->segment_bytes);
    if (h->controller_pid == 0)
        fprintf(out, "controller  none has registered\n");
    else if (h->controller_alive)
        fprintf(out, "controller  pid %" PRId32 ", alive, heartbeat %s ago\n", h->controller_pid,
                fmt_age(age, sizeof age, h->controller_hb_age_ms));
    else
        fprintf(out, "controller  pid %" PRId32 ", DEAD, last heartbeat %s ago\n",
                h->controller_pid, fmt_age(age, sizeof age, h->controller_hb_age_ms));
    fprintf(out,
            "slots       %" PRIu32 " used of %" PRIu32 " (high water %" PRIu32
            "), quarantined %" PRIu64 " total, reclaimed %" PRIu64 " total\n",
            h->slots_used, h->slot_capacity, h->slot_high_water, h->quarantined_total,
            h->reclaimed_total);
    fprintf(out, "rings       %" PRIu32 " B status + %" PRIu32 " B command per slot\n",
            h->status_ring, h->command_ring);
    if (h->slots_changing > 0)
        fprintf(out, "            %" PRIu32 " slot(s) changed owner while read; not shown\n",
                h->slots_changing);
}

static void render_counters(FILE *out, const struct dump *d, bool *stale, bool *measured)
{
    fprintf(out, "%4s %-8s %-13s %-16s %7s %-5s %-3s %12s %7s %8s %6s\n", "SLOT", "STATE", "ROLE",
            "INSTANCE", "PID", "ALIVE", "EN", "PROCESSED", "ERRORS", "TPS", "HB-AGE");
    for (size_t k = 0; k < d->n; k++) {
        const struct dump_worker *w = &d->workers[k];
        char role[16], inst[20], tps[32], age[32];
        /* Not attached yet: no enabled state of its own to show. */
        const bool claiming = w->state == PH_SLOT_CLAIMING || w->state == PH_SLOT_JOINING;
        const char *mark = w->tps_source == DUMP_TPS_STALE   ? "?"
                           : w->tps_source == DUMP_TPS_PHCTL ? "*"
                                                             : "";
        *stale |= w->tps_source == DUMP_TPS_STALE;
        *measured |= w->tps_source == DUMP_TPS_PHCTL;
        snprintf(tps, sizeof tps, "%" PRIu64 "%s", w->tps, mark);
        fprintf(out,
                "%4" PRIu32 " %-8s %-13s %-16s %7" PRId32 " %-5s %-3s %12" PRIu64 " %7" PRIu64
                " %8s %6s\n",
                w->slot, dump_state_name(w->state), fit(role, sizeof role, w->role, 13),
                fit(inst, sizeof inst, w->instance, 16), w->pid, w->alive ? "yes" : "no",
                claiming ? "-" : (w->enabled ? "on" : "off"), w->processed, w->errors, tps,
                fmt_age(age, sizeof age, w->hb_age_ms));
    }
}

static void render_io(FILE *out, const struct dump *d)
{
    fprintf(out, "%4s %-14s %-16s %-22s %9s %s\n", "SLOT", "IO-IN", "IO-OUT", "STATUS-RING",
            "OVERFLOWS", "QUARANTINE");
    for (size_t k = 0; k < d->n; k++) {
        const struct dump_worker *w = &d->workers[k];
        char ring[64];
        unsigned pct =
            w->status.capacity == 0 ? 0 : (unsigned)(w->status.used * 100u / w->status.capacity);
        snprintf(ring, sizeof ring, "%" PRIu64 "/%" PRIu64 " %u%%", w->status.used,
                 w->status.capacity, pct);
        fprintf(out, "%4" PRIu32 " %-14s %-16s %-22s %9" PRIu64 " %s\n", w->slot,
                ph_io_in_name(w->io_in), ph_io_out_name(w->io_out), ring, w->status.overflows,
                ph_quarantine_name((int)w->quarantine));
    }
}

void dump_render_text(FILE *out, const struct dump *d)
{
    render_header(out, &d->hdr);
    fputc('\n', out);
    if (d->n == 0) {
        fprintf(out, "no worker slot in use\n");
        return;
    }
    bool stale = false, measured = false;
    render_counters(out, d, &stale, &measured);
    if (stale) fprintf(out, "TPS?  last estimate of the controller, which is not running\n");
    if (measured)
        fprintf(out, "TPS*  measured by phctl between refreshes (controller not running)\n");
    fputc('\n', out);
    render_io(out, d);
}
