/* Desired worker configuration (desired.h). */
#include "desired.h"

#include <stdio.h>
#include <string.h>

void desired_init(struct desired *d)
{
    memset(d, 0, sizeof *d);
}

void desired_clear(struct desired *d)
{
    for (uint32_t i = 0; i < d->n; i++) json_decref(d->e[i].patch);
    d->n = 0;
}

static const char *nz(const char *s)
{
    return s != NULL ? s : "";
}

/* Does a patch addressed to (role, instance) reach every worker that an
 * entry of scope (er, ei) reaches? Instance scopes match by instance name,
 * and by role too when the patch names one. */
static bool covers(const char *role, const char *instance, const char *er, const char *ei)
{
    if (instance[0] != '\0')
        return strcmp(ei, instance) == 0 && (role[0] == '\0' || strcmp(er, role) == 0);
    if (role[0] != '\0') return strcmp(er, role) == 0;
    return true;
}

/* Does an entry of scope (er, ei) apply to the worker (role, instance)? */
static bool applies(const char *er, const char *ei, const char *role, const char *instance)
{
    if (ei[0] != '\0') return strcmp(ei, instance) == 0 && (er[0] == '\0' || strcmp(er, role) == 0);
    return er[0] == '\0' || strcmp(er, role) == 0;
}

bool desired_apply(struct desired *d, const char *role, const char *instance, const json_t *patch)
{
    role = nz(role);
    instance = nz(instance);
    if (!json_is_object(patch) || json_object_size(patch) == 0) return true;
    /* Newer values win: drop the keys this patch sets from the entries it
     * covers, then drop entries that became empty. */
    uint32_t keep = 0;
    for (uint32_t i = 0; i < d->n; i++) {
        struct desired_entry *e = &d->e[i];
        if (covers(role, instance, e->role, e->instance)) {
            const char *k;
            json_t *v;
            json_object_foreach((json_t *)patch, k, v) json_object_del(e->patch, k);
        }
        if (json_object_size(e->patch) == 0) {
            json_decref(e->patch);
            continue;
        }
        d->e[keep++] = *e;
    }
    d->n = keep;
    if (d->n == DESIRED_MAX_ENTRIES) return false;
    struct desired_entry *e = &d->e[d->n];
    snprintf(e->role, sizeof e->role, "%s", role);
    snprintf(e->instance, sizeof e->instance, "%s", instance);
    e->patch = json_deep_copy(patch);
    if (e->patch == NULL) return false;
    d->n++;
    return true;
}

json_t *desired_for(const struct desired *d, const char *role, const char *instance)
{
    json_t *out = NULL;
    for (uint32_t i = 0; i < d->n; i++) {
        const struct desired_entry *e = &d->e[i];
        if (!applies(e->role, e->instance, role, instance)) continue;
        if (out == NULL) out = json_object();
        json_object_update(out, e->patch);
    }
    return out;
}

json_t *desired_to_json(const struct desired *d)
{
    json_t *list = json_array();
    for (uint32_t i = 0; i < d->n; i++) {
        const struct desired_entry *e = &d->e[i];
        json_t *o = json_pack("{s:O}", "patch", e->patch);
        if (e->role[0]) json_object_set_new(o, "role", json_string(e->role));
        if (e->instance[0]) json_object_set_new(o, "instance", json_string(e->instance));
        json_array_append_new(list, o);
    }
    return list;
}

uint32_t desired_from_json(struct desired *d, const json_t *list)
{
    desired_clear(d);
    size_t i;
    const json_t *o;
    char err[128];
    json_array_foreach(list, i, o)
    {
        const char *role = json_string_value(json_object_get(o, "role"));
        const char *inst = json_string_value(json_object_get(o, "instance"));
        const json_t *patch = json_object_get(o, "patch");
        if (!json_is_object(patch) ||
            (role != NULL && ph_ident_check("role", role, err, sizeof err) != PH_OK) ||
            (inst != NULL && ph_ident_check("instance", inst, err, sizeof err) != PH_OK))
            continue;
        desired_apply(d, role, inst, patch);
    }
    return d->n;
}
