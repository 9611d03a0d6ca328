/* Binding keys of the controller's control queue (amqp_topo.h). */
#include "amqp_topo.h"

#include <stdio.h>
#include <string.h>

static const char *const worker_types[] = {"config-update", "status-request"};

int amqp_topo_init(struct amqp_topo *t, const char *swarm, const char *controller)
{
    memset(t, 0, sizeof *t);
    snprintf(t->swarm, sizeof t->swarm, "%s", swarm);
    snprintf(t->controller, sizeof t->controller, "%s", controller);
    t->roles = json_object();
    t->live = json_object();
    return t->roles != NULL && t->live != NULL ? PH_OK : PH_ERR_SYS;
}

void amqp_topo_free(struct amqp_topo *t)
{
    json_decref(t->roles);
    json_decref(t->live);
    t->roles = t->live = NULL;
}

static bool ident_ok(const char *s)
{
    if (s == NULL || s[0] == '\0' || strlen(s) >= PH_ID_MAX) return false;
    for (const char *p = s; *p; p++)
        if (*p == '.' || *p == '*' || *p == '#' || *p == ' ' || *p == '\t' || *p == '\n' ||
            *p == '\r')
            return false;
    return strcmp(s, CONTRACT_ALL) != 0;
}

static bool add_key(json_t *set, const char *key)
{
    if (json_object_get(set, key) != NULL) return false;
    json_object_set_new(set, key, json_true());
    return true;
}

static bool add_worker(json_t *roles, json_t *live, const char *role, const char *instance)
{
    if (!ident_ok(role) || !ident_ok(instance) || strcmp(role, CONTRACT_CONTROLLER_ROLE) == 0)
        return false;
    char pair[2 * PH_ID_MAX + 2];
    snprintf(pair, sizeof pair, "%s.%s", role, instance);
    bool changed = add_key(roles, role);
    return add_key(live, pair) || changed;
}

bool amqp_topo_observe(struct amqp_topo *t, const char *rk, const json_t *env)
{
    struct contract_rk k;
    char why[128];
    if (contract_rk_parse(rk, &k, why, sizeof why) != PH_OK || k.kind != CK_METRIC ||
        strcmp(k.swarm, t->swarm) != 0)
        return false;
    if (strcmp(k.role, CONTRACT_CONTROLLER_ROLE) != 0)
        return add_worker(t->roles, t->live, k.role, k.instance);
    if (strcmp(k.type, "status-full") != 0) return false;
    /* The controller's full list is the live set. */
    const json_t *workers =
        json_object_get(json_object_get(json_object_get(env, "data"), "context"), "workers");
    if (!json_is_array(workers)) return false;
    json_t *live = json_object();
    if (live == NULL) return false;
    bool changed = false;
    size_t i;
    const json_t *w;
    json_array_foreach(workers, i, w)
    {
        changed |= add_worker(t->roles, live, json_string_value(json_object_get(w, "role")),
                              json_string_value(json_object_get(w, "instance")));
    }
    if (!json_equal(live, t->live)) {
        json_decref(t->live);
        t->live = live;
        return true;
    }
    json_decref(live);
    return changed;
}

static void put(json_t *keys, const char *type, const char *swarm, const char *role,
                const char *instance)
{
    char key[CONTRACT_RK_MAX];
    snprintf(key, sizeof key, "signal.%s.%s.%s.%s", type, swarm, role, instance);
    json_object_set_new(keys, key, json_true());
}

json_t *amqp_topo_worker_keys(const struct amqp_topo *t, const char *role, const char *instance)
{
    json_t *keys = json_object();
    if (keys == NULL) return NULL;
    for (size_t i = 0; i < sizeof worker_types / sizeof worker_types[0]; i++) {
        put(keys, worker_types[i], t->swarm, role, CONTRACT_ALL);
        put(keys, worker_types[i], CONTRACT_ALL, role, CONTRACT_ALL);
        put(keys, worker_types[i], t->swarm, role, instance);
    }
    return keys;
}

json_t *amqp_topo_keys(const struct amqp_topo *t)
{
    json_t *keys = json_object();
    if (keys == NULL) return NULL;
    put(keys, "*", t->swarm, CONTRACT_CONTROLLER_ROLE, t->controller);
    put(keys, "*", t->swarm, CONTRACT_CONTROLLER_ROLE, CONTRACT_ALL);
    for (size_t i = 0; i < sizeof worker_types / sizeof worker_types[0]; i++) {
        const char *ty = worker_types[i];
        put(keys, ty, t->swarm, CONTRACT_ALL, CONTRACT_ALL);
        put(keys, ty, CONTRACT_ALL, CONTRACT_CONTROLLER_ROLE, CONTRACT_ALL);
        const char *role;
        json_t *v;
        json_object_foreach((json_t *)t->roles, role, v)
        {
            put(keys, ty, t->swarm, role, CONTRACT_ALL);
            put(keys, ty, CONTRACT_ALL, role, CONTRACT_ALL);
        }
        const char *pair;
        json_object_foreach((json_t *)t->live, pair, v)
        {
            char role_[PH_ID_MAX];
            const char *dot = strchr(pair, '.');
            if (dot == NULL || (size_t)(dot - pair) >= sizeof role_) continue;
            memcpy(role_, pair, (size_t)(dot - pair));
            role_[dot - pair] = '\0';
            put(keys, ty, t->swarm, role_, dot + 1);
        }
    }
    return keys;
}
