/* Synthetic workload rules (see workload.h). */
#include "workload.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

void workload_cfg_defaults(struct workload_cfg *c)
{
    *c = (struct workload_cfg){.rate = 10, .max_rate = 0, .dataset = 0, .error_ratio = 0,
                               .backpressure = false, .enabled = true};
}

static bool get_number(const json_t *o, const char *k, double lo, double hi, double *out,
                       char *err, size_t n)
{
    const json_t *v = json_object_get(o, k);
    if (v == NULL) return true;
    if (!json_is_number(v) || !isfinite(json_number_value(v)) || json_number_value(v) < lo ||
        json_number_value(v) > hi) {
        snprintf(err, n, "config key '%s' must be a number in [%g, %g]", k, lo, hi);
        return false;
    }
    *out = json_number_value(v);
    return true;
}

static bool get_bool(const json_t *o, const char *k, bool *out, char *err, size_t n)
{
    const json_t *v = json_object_get(o, k);
    if (v == NULL) return true;
    if (json_is_boolean(v)) {
        *out = json_is_true(v);
        return true;
    }
    /* Upstream tools send booleans as strings too. */
    const char *s = json_string_value(v);
    if (s != NULL && (strcmp(s, "true") == 0 || strcmp(s, "false") == 0)) {
        *out = s[0] == 't';
        return true;
    }
    snprintf(err, n, "config key '%s' must be true or false", k);
    return false;
}

bool workload_cfg_parse(const json_t *config, struct workload_cfg *out, char *err, size_t n)
{
    if (!json_is_object(config)) {
        snprintf(err, n, "config must be a JSON object");
        return false;
    }
    struct workload_cfg c = *out;
    double dataset = (double)c.dataset;
    if (!get_number(config, "ratePerSec", 0, 1e9, &c.rate, err, n) ||
        !get_number(config, "maxRatePerSec", 0, 1e9, &c.max_rate, err, n) ||
        !get_number(config, "datasetSize", 0, 9e15, &dataset, err, n) ||
        !get_number(config, "errorRatio", 0, 1, &c.error_ratio, err, n) ||
        !get_bool(config, "backpressure", &c.backpressure, err, n) ||
        !get_bool(config, "enabled", &c.enabled, err, n))
        return false;
    c.dataset = (uint64_t)dataset;
    *out = c;
    return true;
}

bool workload_exhausted(const struct workload *w)
{
    return w->cfg.dataset > 0 && w->processed >= w->cfg.dataset;
}

static double effective_rate(const struct workload_cfg *c)
{
    double r = c->rate;
    if (c->max_rate > 0 && c->max_rate < r) r = c->max_rate;
    if (c->backpressure) r /= 2;
    return r;
}

uint64_t workload_step(struct workload *w, double dt, uint64_t *errors)
{
    if (!w->cfg.enabled || workload_exhausted(w) || dt <= 0) {
        w->credit = 0;
        return 0;
    }
    w->credit += effective_rate(&w->cfg) * dt;
    uint64_t items = (uint64_t)w->credit;
    w->credit -= (double)items;
    if (w->cfg.dataset > 0 && items > w->cfg.dataset - w->processed)
        items = w->cfg.dataset - w->processed;
    w->err_credit += (double)items * w->cfg.error_ratio;
    uint64_t failed = (uint64_t)w->err_credit;
    w->err_credit -= (double)failed;
    w->processed += items;
    w->errors += failed;
    *errors += failed;
    return items;
}

enum ph_io_in workload_io_in(const struct workload *w)
{
    if (workload_exhausted(w)) return PH_IN_OUT_OF_DATA;
    if (w->cfg.backpressure) return PH_IN_BACKPRESSURE;
    return PH_IN_OK;
}

enum ph_io_out workload_io_out(const struct workload *w)
{
    if (w->cfg.error_ratio > 0) return PH_OUT_DOWNSTREAM_ERROR;
    if (w->cfg.max_rate > 0 && w->cfg.max_rate < w->cfg.rate) return PH_OUT_THROTTLED;
    return PH_OUT_OK;
}
