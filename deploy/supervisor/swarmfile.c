/* The swarm file: which roles a swarm has, how many instances of each, and
 * the configuration each role's workers start with.
 *
 *   {"swarmId": "demo",
 *    "roles": [{"role": "generator", "count": 2, "config": {...},
 *               "instances": ["gen-a", "gen-b"],
 *               "placement": "local", "location": "..."}, ...],
 *    "controller": {"instance": "...", "slots": N, "args": ["--tick-ms", "50"]},
 *    "statusTtlSec": 15, "watermarkSec": 5, "deltaCoalesceMs": 20,
 *    "workerDeltas": true, "workerHeartbeatSec": 5, "deadGraceSec": 30,
 *    "autoStart": true, "runId": "...", "description": "..."}
 *
 * Instance ids are "<swarmId>-<role>-<n>" unless a role lists them
 * ("instances", one identifier per worker): upstream UIs key components by
 * instance alone, so ids must not repeat across swarms.
 *
 * Placement: where a role's workers run and how they report.
 *   "local"   (default) ph-worker on the controller's segment
 *   "remote"  ph-worker --remote: no segment, status and commands over AMQP
 *             (SDK remote mode), as a worker on another host would
 *   "relay"   ph-worker on the segment of the swarm's ph-relay, which
 *             forwards its worker table to the bridge over AMQP; the
 *             supervisor runs one relay per swarm, on segment
 *             "<swarmId>-relay", standing in for another host
 * "location" (remote and relay only) is the host name those workers report;
 * the default is "remote-<host>" or "relay-<host>" (<host>: this machine's
 * name), so that they stand apart from the local workers in the status.
 * Relay roles share one relay, hence one location: they must not name two,
 * and one that names none gets the one another relay role names.
 * Remote and relay placements need a broker; the supervisor checks that
 * when it starts (main.c), not here.
 *
 * Work-plane queues: each role's config gets inQueue / outQueue unless it
 * names them. The default pipeline chains the roles in file order: role i
 * consumes ph.work.<swarmId>.<role i> (the first role, the source, consumes
 * nothing) and produces into the queue role i+1 consumes (the last role
 * produces nothing). Workers report them in their status (io.work.queues),
 * so UIs can draw the pipeline.
 *
 * The supervisor itself uses swarmId, roles and controller; the other keys
 * are the controller's, which reads them from the same file (--swarm-file).
 * They are still type-checked here: the controller ignores a value it cannot
 * use and falls back to its default, which nobody would notice in a log.
 *
 * Everything is checked before a single process starts, and every error
 * names the file and the exact place ("roles[1].count"), because a swarm
 * half started from a half valid file is harder to clean up than a refusal.
 * Unknown keys are refused too: a typo ("cout") would otherwise silently
 * fall back to a default. */
#include "supervisor.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

#include "ph/record.h"
#include "ph/shm.h"

/* Formats "<file>: <where>: <message>" into err. */
__attribute__((format(printf, 5, 6))) static int fail(char *err, size_t errlen, const char *file,
                                                      const char *where, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (where != NULL && where[0] != '\0')
        snprintf(err, errlen, "%s: %s: %s", file, where, msg);
    else
        snprintf(err, errlen, "%s: %s", file, msg);
    return PH_ERR_INVAL;
}

static const char *json_type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a non-integer number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    case JSON_NULL:
        return "null";
    }
    return "unknown";
}

/* Refuses keys of `obj` that are not in the NULL-terminated `allowed`. */
static int only_keys(const json_t *obj, const char *const *allowed, const char *file,
                     const char *where, char *err, size_t errlen)
{
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)obj, key, v)
    {
        bool ok = false;
        for (size_t i = 0; allowed[i] != NULL && !ok; i++)
            ok = strcmp(key, allowed[i]) == 0;
        if (!ok) {
            char list[256] = "";
            for (size_t i = 0; allowed[i] != NULL; i++) {
                strncat(list, i ? ", " : "", sizeof list - strlen(list) - 1);
                strncat(list, allowed[i], sizeof list - strlen(list) - 1);
            }
            return fail(err, errlen, file, where, "unknown key '%s' (known keys: %s)", key, list);
        }
    }
    return PH_OK;
}

/* An identifier-valued string field; `what` names it in ph_ident_check's
 * message ("role", "swarm id"). */
static int ident_field(const json_t *v, const char *what, char *out, const char *file,
                       const char *where, char *err, size_t errlen)
{
    if (!json_is_string(v))
        return fail(err, errlen, file, where, "%s must be a string, not %s", what,
                    json_type_name(v));
    char why[256];
    if (ph_ident_check(what, json_string_value(v), why, sizeof why) != PH_OK)
        return fail(err, errlen, file, where, "%s", why);
    snprintf(out, PH_ID_MAX, "%s", json_string_value(v));
    return PH_OK;
}

/* The controller's settings in the swarm file, with the ranges the
 * controller accepts (actors/swarm-controller/main.c, load_swarm_file). */
static int controller_settings(const json_t *root, const char *file, char *err, size_t errlen)
{
    static const struct {
        const char *key;
        double min;
        bool min_open; /* the value must be above min, not equal to it */
        double max;
        bool integer;
        const char *what;
    } nums[] = {
        {"statusTtlSec", 0, true, 3600, false, "a number of seconds in (0, 3600]"},
        {"watermarkSec", 0, true, 3600, false, "a number of seconds in (0, 3600]"},
        {"deltaCoalesceMs", 0, false, 60000, true, "an integer number of milliseconds in 0..60000"},
        {"deadGraceSec", 0, false, 86400, false, "a number of seconds in [0, 86400]"},
        {"workerHeartbeatSec", 0, true, 3600, false, "a number of seconds in (0, 3600]"},
    };
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
        json_t *v = json_object_get(root, nums[i].key);
        if (v == NULL) continue;
        bool ok = nums[i].integer ? json_is_integer(v) : json_is_number(v);
        if (ok) {
            double d = json_number_value(v);
            ok = (nums[i].min_open ? d > nums[i].min : d >= nums[i].min) && d <= nums[i].max;
        }
        if (!ok && json_is_number(v))
            return fail(err, errlen, file, nums[i].key, "must be %s (got %g)", nums[i].what,
                        json_number_value(v));
        if (!ok)
            return fail(err, errlen, file, nums[i].key, "must be %s, not %s", nums[i].what,
                        json_type_name(v));
    }
    static const char *const bools[] = {"workerDeltas", "autoStart"};
    for (size_t i = 0; i < sizeof bools / sizeof bools[0]; i++) {
        json_t *v = json_object_get(root, bools[i]);
        if (v != NULL && !json_is_boolean(v))
            return fail(err, errlen, file, bools[i], "must be true or false, not %s",
                        json_type_name(v));
    }
    json_t *v = json_object_get(root, "runId");
    if (v != NULL) {
        /* The run id names the journal file and appears in status
         * documents: an identifier, like the swarm id. */
        char run_id[PH_ID_MAX];
        int rc = ident_field(v, "run id", run_id, file, "runId", err, errlen);
        if (rc != PH_OK) return rc;
    }
    v = json_object_get(root, "description");
    if (v != NULL && !json_is_string(v))
        return fail(err, errlen, file, "description", "must be a string, not %s",
                    json_type_name(v));
    return PH_OK;
}

const char *sup_placement_name(enum sup_placement p)
{
    switch (p) {
    case SUP_PLACE_LOCAL:
        return "local";
    case SUP_PLACE_REMOTE:
        return "remote";
    case SUP_PLACE_RELAY:
        return "relay";
    }
    return "?";
}

/* The role's "placement" and "location" (see the top of this file). */
static int role_placement(json_t *v, size_t i, struct sup_role *r, const char *file, char *err,
                          size_t errlen)
{
    char where[64];
    snprintf(where, sizeof where, "roles[%zu].placement", i);
    json_t *pl = json_object_get(v, "placement");
    r->placement = SUP_PLACE_LOCAL;
    if (pl != NULL) {
        if (!json_is_string(pl))
            return fail(err, errlen, file, where,
                        "role '%s': placement must be a string (local, remote or relay), not %s",
                        r->role, json_type_name(pl));
        const char *name = json_string_value(pl);
        if (strcmp(name, "local") == 0)
            r->placement = SUP_PLACE_LOCAL;
        else if (strcmp(name, "remote") == 0)
            r->placement = SUP_PLACE_REMOTE;
        else if (strcmp(name, "relay") == 0)
            r->placement = SUP_PLACE_RELAY;
        else
            return fail(err, errlen, file, where,
                        "role '%s': unknown placement '%s' (allowed: local, remote, relay)",
                        r->role, name);
    }
    snprintf(where, sizeof where, "roles[%zu].location", i);
    json_t *loc = json_object_get(v, "location");
    if (loc != NULL) {
        if (r->placement == SUP_PLACE_LOCAL)
            return fail(err, errlen, file, where,
                        "role '%s': location applies to placement remote or relay only (local "
                        "workers run on the controller's host)",
                        r->role);
        if (!json_is_string(loc) || !ph_location_ok(json_string_value(loc)))
            return fail(err, errlen, file, where,
                        "role '%s': location must be a host name (1..%d printable ASCII "
                        "characters, no spaces)",
                        r->role, PH_LOCATION_MAX - 1);
        snprintf(r->location, sizeof r->location, "%s", json_string_value(loc));
        r->location_given = true;
        return PH_OK;
    }
    if (r->placement == SUP_PLACE_LOCAL) return PH_OK;
    char host[PH_LOCATION_MAX - 8] = "";
    if (gethostname(host, sizeof host - 1) != 0 || !ph_location_ok(host))
        snprintf(host, sizeof host, "localhost");
    snprintf(r->location, sizeof r->location, "%s-%s",
             r->placement == SUP_PLACE_REMOTE ? "remote" : "relay", host);
    return PH_OK;
}

/* The role's instance ids: the file's "instances" (identifiers, exactly
 * `count` of them), else "<swarmId>-<role>-<n>". Uniqueness across roles is
 * checked by the caller. */
static int role_instances(json_t *v, size_t i, const char *swarm_id, struct sup_role *r,
                          const char *file, char *err, size_t errlen)
{
    char where[64];
    snprintf(where, sizeof where, "roles[%zu].instances", i);
    r->instances = calloc(r->count ? r->count : 1, sizeof *r->instances);
    if (r->instances == NULL) return fail(err, errlen, file, where, "out of memory");
    json_t *list = json_object_get(v, "instances");
    if (list != NULL) {
        if (!json_is_array(list))
            return fail(err, errlen, file, where, "must be an array of instance ids, not %s",
                        json_type_name(list));
        if (json_array_size(list) != r->count)
            return fail(err, errlen, file, where,
                        "lists %zu instance id(s) but count is %u; give one per worker",
                        json_array_size(list), r->count);
        for (unsigned n = 0; n < r->count; n++) {
            snprintf(where, sizeof where, "roles[%zu].instances[%u]", i, n);
            int rc = ident_field(json_array_get(list, n), "instance id", r->instances[n], file,
                                 where, err, errlen);
            if (rc != PH_OK) return rc;
        }
        return PH_OK;
    }
    for (unsigned n = 1; n <= r->count; n++) {
        char inst[3 * PH_ID_MAX], why[256];
        snprintf(inst, sizeof inst, "%s-%s-%u", swarm_id, r->role, n);
        if (ph_ident_check("instance id", inst, why, sizeof why) != PH_OK) {
            snprintf(where, sizeof where, "roles[%zu]", i);
            return fail(err, errlen, file, where,
                        "the default instance id '%s' is not usable (%s); name the instances "
                        "with \"instances\": [...] or use a shorter swarm id or role",
                        inst, why);
        }
        snprintf(r->instances[n - 1], PH_ID_MAX, "%.*s", PH_ID_MAX - 1, inst); /* checked */
    }
    return PH_OK;
}

static int parse_role(json_t *v, size_t i, const char *swarm_id, struct sup_role *r,
                      const char *file, char *err, size_t errlen)
{
    char where[64];
    snprintf(where, sizeof where, "roles[%zu]", i);
    if (!json_is_object(v))
        return fail(err, errlen, file, where, "must be an object, not %s", json_type_name(v));
    static const char *const keys[] = {"role",      "count",    "config", "instances",
                                       "placement", "location", NULL};
    int rc = only_keys(v, keys, file, where, err, errlen);
    if (rc != PH_OK) return rc;

    snprintf(where, sizeof where, "roles[%zu].role", i);
    json_t *role = json_object_get(v, "role");
    if (role == NULL) return fail(err, errlen, file, where, "missing");
    rc = ident_field(role, "role", r->role, file, where, err, errlen);
    if (rc != PH_OK) return rc;
    /* The controller speaks for scope role "swarm-controller": a worker of
     * that role would be indistinguishable from it on the wire. */
    if (strcmp(r->role, "swarm-controller") == 0)
        return fail(err, errlen, file, where,
                    "role 'swarm-controller' is the controller's own scope; pick another name");

    snprintf(where, sizeof where, "roles[%zu].count", i);
    json_t *count = json_object_get(v, "count");
    if (count == NULL) return fail(err, errlen, file, where, "missing");
    if (!json_is_integer(count))
        return fail(err, errlen, file, where, "must be an integer, not %s", json_type_name(count));
    json_int_t n = json_integer_value(count);
    if (n < 0 || n > (json_int_t)PH_MAX_SLOTS)
        return fail(err, errlen, file, where,
                    "must be between 0 and %u (got %" JSON_INTEGER_FORMAT ")", PH_MAX_SLOTS, n);
    r->count = (unsigned)n;
    rc = role_instances(v, i, swarm_id, r, file, err, errlen);
    if (rc != PH_OK) return rc;
    rc = role_placement(v, i, r, file, err, errlen);
    if (rc != PH_OK) return rc;

    snprintf(where, sizeof where, "roles[%zu].config", i);
    json_t *config = json_object_get(v, "config");
    if (config == NULL) {
        config = json_object();
        json_object_set_new(v, "config", config); /* owned by root from now on */
    }
    if (!json_is_object(config))
        return fail(err, errlen, file, where, "must be an object, not %s", json_type_name(config));
    static const char *const queue_keys[] = {"inQueue", "outQueue"};
    for (size_t k = 0; k < 2; k++) {
        json_t *q = json_object_get(config, queue_keys[k]);
        snprintf(where, sizeof where, "roles[%zu].config.%s", i, queue_keys[k]);
        if (q != NULL && (!json_is_string(q) || json_string_length(q) == 0))
            return fail(err, errlen, file, where, "must be a non-empty queue name, not %s",
                        json_is_string(q) ? "an empty string" : json_type_name(q));
    }
    r->config = config;
    return PH_OK;
}

/* One worker's instance id and where the file gives it, for sorting. */
struct inst_ref {
    const char *id;
    size_t role;
    unsigned n;
};

/* By position in the file: negative when x comes first. */
static int inst_pos_cmp(const struct inst_ref *x, const struct inst_ref *y)
{
    if (x->role != y->role) return x->role < y->role ? -1 : 1;
    return x->n < y->n ? -1 : x->n > y->n;
}

/* By id, then by position in the file, so that of two equal ids the later
 * one follows the earlier. */
static int inst_ref_cmp(const void *a, const void *b)
{
    const struct inst_ref *x = a, *y = b;
    int c = strcmp(x->id, y->id);
    return c != 0 ? c : inst_pos_cmp(x, y);
}

/* Instance ids are unique within the swarm, and none is the controller's.
 * Sorted, not compared pairwise: a file may name up to PH_MAX_SLOTS
 * workers, and 65,536 ids compared pairwise take seconds. Of several
 * repeats, the one reported is the first in file order. */
static int check_unique_instances(const struct sup_spec *spec, const char *file, char *err,
                                  size_t errlen)
{
    char where[64];
    /* The first worker named like the controller, in file order. */
    const struct inst_ref *ctl = NULL;
    struct inst_ref ctl_at = {0};
    for (size_t i = 0; i < spec->nroles && ctl == NULL; i++)
        for (unsigned n = 0; n < spec->roles[i].count && ctl == NULL; n++)
            if (strcmp(spec->roles[i].instances[n], spec->controller_instance) == 0) {
                ctl_at = (struct inst_ref){spec->controller_instance, i, n};
                ctl = &ctl_at;
            }
    struct inst_ref *refs = NULL;
    const struct inst_ref *dup = NULL, *orig = NULL;
    if (spec->total_workers >= 2) {
        refs = malloc(spec->total_workers * sizeof *refs);
        if (refs == NULL) return fail(err, errlen, file, "roles", "out of memory");
        size_t k = 0;
        for (size_t i = 0; i < spec->nroles; i++)
            for (unsigned n = 0; n < spec->roles[i].count; n++)
                refs[k++] = (struct inst_ref){spec->roles[i].instances[n], i, n};
        qsort(refs, k, sizeof *refs, inst_ref_cmp);
        /* The repeat to report: the one whose position in the file comes
         * first among all second occurrences. */
        for (size_t j = 1; j < k; j++) {
            if (strcmp(refs[j].id, refs[j - 1].id) != 0) continue;
            if (j >= 2 && strcmp(refs[j].id, refs[j - 2].id) == 0) continue; /* third or later */
            if (dup == NULL || inst_pos_cmp(&refs[j], dup) < 0) {
                dup = &refs[j];
                orig = &refs[j - 1];
            }
        }
    }
    /* Whichever comes first in the file is reported; at the same worker,
     * the controller's name (a pass in file order checks it first). */
    int rc = PH_OK;
    if (ctl != NULL && (dup == NULL || inst_pos_cmp(ctl, dup) <= 0)) {
        snprintf(where, sizeof where, "roles[%zu]", ctl->role);
        rc = fail(err, errlen, file, where, "instance id '%s' is the controller's; pick another",
                  spec->controller_instance);
    } else if (dup != NULL) {
        snprintf(where, sizeof where, "roles[%zu]", dup->role);
        rc = fail(err, errlen, file, where,
                  "instance id '%s' is used twice (also in roles[%zu]); instance ids must be "
                  "unique",
                  dup->id, orig->role);
    }
    free(refs);
    return rc;
}

/* The swarm's relay, when a role has placement relay: its segment name,
 * and the one location every relay role agrees on. */
static int relay_settings(struct sup_spec *spec, const char *file, char *err, size_t errlen)
{
    struct sup_role *first = NULL, *named = NULL;
    for (size_t i = 0; i < spec->nroles; i++) {
        struct sup_role *r = &spec->roles[i];
        if (r->placement != SUP_PLACE_LOCAL && spec->first_amqp_role == NULL)
            spec->first_amqp_role = r->role;
        if (r->placement != SUP_PLACE_RELAY) continue;
        if (first == NULL) first = r;
        if (!r->location_given) continue;
        if (named == NULL) {
            named = r;
        } else if (strcmp(named->location, r->location) != 0) {
            char where[64];
            snprintf(where, sizeof where, "roles[%zu].location", i);
            return fail(err, errlen, file, where,
                        "role '%s': location '%s' differs from '%s' of role '%s'; relay roles "
                        "share the swarm's one relay and report one location",
                        r->role, r->location, named->location, named->role);
        }
    }
    if (first == NULL) return PH_OK;
    spec->has_relay = true;
    snprintf(spec->relay_location, sizeof spec->relay_location, "%s",
             (named != NULL ? named : first)->location);
    for (size_t i = 0; i < spec->nroles; i++)
        if (spec->roles[i].placement == SUP_PLACE_RELAY)
            memcpy(spec->roles[i].location, spec->relay_location, sizeof spec->relay_location);
    char seg[2 * PH_ID_MAX], why[256];
    snprintf(seg, sizeof seg, "%s-relay", spec->swarm_id);
    if (ph_ident_check("relay segment", seg, why, sizeof why) != PH_OK)
        return fail(err, errlen, file, "swarmId",
                    "role '%s' has placement relay, and the relay's segment '%s' is not usable "
                    "(%s); use a shorter swarm id",
                    first->role, seg, why);
    snprintf(spec->relay_segment, sizeof spec->relay_segment, "%.*s", PH_ID_MAX - 1, seg);
    return PH_OK;
}

/* The default pipeline (see the top of this file): fills inQueue/outQueue
 * where the config names none. */
static void default_queues(struct sup_spec *spec)
{
    for (size_t i = 0; i < spec->nroles; i++) {
        json_t *c = spec->roles[i].config;
        if (i > 0 && json_object_get(c, "inQueue") == NULL)
            json_object_set_new(c, "inQueue",
                                json_sprintf("ph.work.%s.%s", spec->swarm_id, spec->roles[i].role));
    }
    /* Second pass: a role produces into whatever its successor consumes,
     * named in the file or by default. */
    for (size_t i = 0; i + 1 < spec->nroles; i++) {
        json_t *c = spec->roles[i].config;
        json_t *next_in = json_object_get(spec->roles[i + 1].config, "inQueue");
        if (json_object_get(c, "outQueue") == NULL && next_in != NULL)
            json_object_set(c, "outQueue", next_in);
    }
}

static int parse_controller(json_t *c, struct sup_spec *spec, const char *file, char *err,
                            size_t errlen)
{
    /* The controller's own default (ph-swarm-controller --help), truncated
     * the same way so that a 63-character swarm id still gives an
     * identifier. The supervisor passes it with --instance anyway. */
    snprintf(spec->controller_instance, sizeof spec->controller_instance, "%.52s-controller",
             spec->swarm_id);
    spec->slots = 0;
    if (c == NULL) return PH_OK;
    if (!json_is_object(c))
        return fail(err, errlen, file, "controller", "must be an object, not %s",
                    json_type_name(c));
    static const char *const keys[] = {"instance", "slots", "args", NULL};
    int rc = only_keys(c, keys, file, "controller", err, errlen);
    if (rc != PH_OK) return rc;

    json_t *inst = json_object_get(c, "instance");
    if (inst != NULL) {
        rc = ident_field(inst, "controller instance", spec->controller_instance, file,
                         "controller.instance", err, errlen);
        if (rc != PH_OK) return rc;
    }
    json_t *slots = json_object_get(c, "slots");
    if (slots != NULL) {
        if (!json_is_integer(slots) || json_integer_value(slots) < 1 ||
            json_integer_value(slots) > (json_int_t)PH_MAX_SLOTS)
            return fail(err, errlen, file, "controller.slots", "must be an integer in 1..%u",
                        PH_MAX_SLOTS);
        spec->slots = (uint32_t)json_integer_value(slots);
    }
    json_t *args = json_object_get(c, "args");
    if (args != NULL) {
        if (!json_is_array(args))
            return fail(err, errlen, file, "controller.args", "must be an array of strings");
        size_t n = json_array_size(args);
        spec->controller_args = calloc(n + 1, sizeof *spec->controller_args);
        if (spec->controller_args == NULL)
            return fail(err, errlen, file, "controller.args", "out of memory");
        for (size_t i = 0; i < n; i++) {
            json_t *a = json_array_get(args, i);
            if (!json_is_string(a)) {
                char where[64];
                snprintf(where, sizeof where, "controller.args[%zu]", i);
                return fail(err, errlen, file, where, "must be a string, not %s",
                            json_type_name(a));
            }
            spec->controller_args[i] = json_string_value(a);
        }
        spec->ncontroller_args = n;
    }
    return PH_OK;
}

static int parse(struct sup_spec *spec, const char *file, char *err, size_t errlen)
{
    json_t *root = spec->root;
    if (!json_is_object(root))
        return fail(err, errlen, file, NULL, "the swarm file must hold a JSON object, not %s",
                    json_type_name(root));
    static const char *const keys[] = {"swarmId",
                                       "roles",
                                       "controller",
                                       "statusTtlSec",
                                       "watermarkSec",
                                       "deltaCoalesceMs",
                                       "workerDeltas",
                                       "workerHeartbeatSec",
                                       "deadGraceSec",
                                       "autoStart",
                                       "runId",
                                       "description",
                                       NULL};
    int rc = only_keys(root, keys, file, NULL, err, errlen);
    if (rc != PH_OK) return rc;

    json_t *id = json_object_get(root, "swarmId");
    if (id == NULL) return fail(err, errlen, file, "swarmId", "missing");
    rc = ident_field(id, "swarm id", spec->swarm_id, file, "swarmId", err, errlen);
    if (rc != PH_OK) return rc;

    json_t *roles = json_object_get(root, "roles");
    if (roles == NULL) return fail(err, errlen, file, "roles", "missing");
    if (!json_is_array(roles) || json_array_size(roles) == 0)
        return fail(err, errlen, file, "roles", "must be a non-empty array of role objects");
    spec->nroles = json_array_size(roles);
    spec->roles = calloc(spec->nroles, sizeof *spec->roles);
    if (spec->roles == NULL) return fail(err, errlen, file, "roles", "out of memory");
    for (size_t i = 0; i < spec->nroles; i++) {
        rc = parse_role(json_array_get(roles, i), i, spec->swarm_id, &spec->roles[i], file, err,
                        errlen);
        if (rc != PH_OK) return rc;
        for (size_t j = 0; j < i; j++)
            if (strcmp(spec->roles[j].role, spec->roles[i].role) == 0) {
                char where[64];
                snprintf(where, sizeof where, "roles[%zu].role", i);
                return fail(err, errlen, file, where, "role '%s' already defined in roles[%zu]",
                            spec->roles[i].role, j);
            }
        spec->total_workers += spec->roles[i].count;
        /* Checked as the roles come, so that a file of many large roles
         * is refused before their instance ids take up memory. */
        if (spec->total_workers > PH_MAX_SLOTS)
            return fail(err, errlen, file, "roles",
                        "%s%zu workers in total; at most %u fit a segment",
                        i + 1 < spec->nroles ? "at least " : "", spec->total_workers, PH_MAX_SLOTS);
    }

    rc = controller_settings(root, file, err, errlen);
    if (rc == PH_OK)
        rc = parse_controller(json_object_get(root, "controller"), spec, file, err, errlen);
    if (rc == PH_OK) rc = check_unique_instances(spec, file, err, errlen);
    if (rc == PH_OK) rc = relay_settings(spec, file, err, errlen);
    if (rc != PH_OK) return rc;
    default_queues(spec);

    if (spec->slots == 0) {
        /* Twice the workers leaves room for restarts whose predecessor's slot
         * the controller has not reclaimed yet. */
        uint64_t want = 2 * (uint64_t)spec->total_workers;
        if (want < 16) want = 16;
        if (want > PH_MAX_SLOTS) want = PH_MAX_SLOTS;
        spec->slots = (uint32_t)want;
    } else if (spec->slots < spec->total_workers) {
        return fail(err, errlen, file, "controller.slots",
                    "%u slots cannot hold the %zu workers the roles ask for", spec->slots,
                    spec->total_workers);
    }
    return PH_OK;
}

int sup_spec_load(const char *path, struct sup_spec *spec, char *err, size_t errlen)
{
    memset(spec, 0, sizeof *spec);
    if (realpath(path, spec->path) == NULL) {
        snprintf(err, errlen, "%s: cannot read the swarm file: %s", path, strerror(errno));
        return PH_ERR_SYS;
    }
    json_error_t jerr;
    spec->root = json_load_file(spec->path, JSON_REJECT_DUPLICATES, &jerr);
    if (spec->root == NULL) {
        if (jerr.line < 0)
            snprintf(err, errlen, "%s: %s", path, jerr.text);
        else
            snprintf(err, errlen, "%s:%d:%d: invalid JSON: %s", path, jerr.line, jerr.column,
                     jerr.text);
        return PH_ERR_INVAL;
    }
    int rc = parse(spec, path, err, errlen);
    if (rc != PH_OK) sup_spec_free(spec);
    return rc;
}

void sup_spec_free(struct sup_spec *spec)
{
    for (size_t i = 0; spec->roles != NULL && i < spec->nroles; i++)
        free(spec->roles[i].instances);
    free(spec->roles);
    free(spec->controller_args);
    json_decref(spec->root);
    memset(spec, 0, sizeof *spec);
}
