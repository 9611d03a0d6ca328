/* JSON rendering of a snapshot (render.h). Key names follow the documented
 * interface of `phctl shm-dump --json`; counters beyond 2^63-1 (possible
 * only in a corrupt segment) are clamped, since JSON consumers read int64. */
#include <stdint.h>

#include "ph/record.h"
#include "render.h"

static json_t *ju64(uint64_t v)
{
    return json_integer(v > (uint64_t)INT64_MAX ? INT64_MAX : (json_int_t)v);
}

static json_t *jage(int64_t ms)
{
    return ms == DUMP_AGE_NONE ? json_null() : json_integer(ms);
}

static json_t *jtime(uint64_t real_ns)
{
    if (real_ns == 0) return json_null();
    char buf[32];
    ph_rfc3339_ms(real_ns, buf);
    return json_string(buf);
}

static json_t *ring_json(const struct dump_ring *r)
{
    return json_pack("{s:o, s:o, s:o}", "used", ju64(r->used), "capacity", ju64(r->capacity),
                     "overflows", ju64(r->overflows));
}

static json_t *header_json(const struct dump_header *h)
{
    return json_pack(
        "{s:s, s:s, s:I, s:o, s:I, s:b, s:o, s:o, s:I, s:I, s:I, s:I, s:o, "
        "s:o, s:o, s:I, s:I, s:o, s:o}",
        "swarmId", h->swarm_id, "path", h->path, "layoutVersion", (json_int_t)h->layout_version,
        "generation", ju64(h->generation), "controllerPid", (json_int_t)h->controller_pid,
        "controllerAlive", h->controller_alive, "controllerStartTime",
        ju64(h->controller_start_time), "controllerHeartbeatAgeMs", jage(h->controller_hb_age_ms),
        "slotCapacity", (json_int_t)h->slot_capacity, "slotsUsed", (json_int_t)h->slots_used,
        "slotsChanging", (json_int_t)h->slots_changing, "slotHighWater",
        (json_int_t)h->slot_high_water, "segmentBytes", ju64(h->segment_bytes), "quarantinedTotal",
        ju64(h->quarantined_total), "reclaimedTotal", ju64(h->reclaimed_total), "statusRingBytes",
        (json_int_t)h->status_ring, "commandRingBytes", (json_int_t)h->command_ring, "createdAt",
        jtime(h->created_real_ns), "takenAt", jtime(h->taken_real_ns));
}

static json_t *worker_json(const struct dump_worker *w)
{
    return json_pack(
        "{s:I, s:s, s:s, s:s, s:I, s:o, s:b, s:b, s:o, s:o, s:o, s:s, s:{s:s, s:s}, s:o, "
        "s:o, s:o, s:o, s:b, s:s, s:o, s:o}",
        "slot", (json_int_t)w->slot, "state", dump_state_name(w->state), "role", w->role,
        "instance", w->instance, "pid", (json_int_t)w->pid, "startTime", ju64(w->start_time),
        "alive", w->alive, "enabled", w->enabled, "processed", ju64(w->processed), "errors",
        ju64(w->errors), "tps", ju64(w->tps), "tpsSource", dump_tps_source_name(w->tps_source),
        "ioState", "input", ph_io_in_name(w->io_in), "output", ph_io_out_name(w->io_out),
        "heartbeatAgeMs", jage(w->hb_age_ms), "ring", ring_json(&w->status), "commandRing",
        ring_json(&w->command), "records", ju64(w->records), "quarantined", w->quarantine != 0,
        "quarantineReason", ph_quarantine_name((int)w->quarantine), "lastDrainAgeMs",
        jage(w->last_drain_age_ms), "attachedAt", jtime(w->attached_real_ns));
}

json_t *dump_to_json(const struct dump *d)
{
    json_t *workers = json_array();
    if (workers == NULL) return NULL;
    for (size_t k = 0; k < d->n; k++) {
        if (json_array_append_new(workers, worker_json(&d->workers[k])) != 0) {
            json_decref(workers);
            return NULL;
        }
    }
    return json_pack("{s:o, s:o}", "header", header_json(&d->hdr), "workers", workers);
}
