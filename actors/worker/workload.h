/* The synthetic workload of ph-worker, kept apart from the process loop so
 * its rules can be tested on their own.
 *
 * Config keys (all optional):
 *   ratePerSec    items demanded per second (default 10)
 *   maxRatePerSec cap on items processed per second, 0 = none; a cap below
 *                 the demand throttles the output (ioState output throttled)
 *   datasetSize   items available, 0 = endless; when all are processed the
 *                 input is out-of-data and work stops
 *   errorRatio    0..1, fraction of items that fail downstream (output
 *                 downstream-error while > 0)
 *   backpressure  true: the input reports backpressure and half the rate
 *   enabled       whether the workload runs (control stays live either way) */
#ifndef PH_WORKLOAD_H
#define PH_WORKLOAD_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "ph/record.h"

struct workload_cfg {
    double rate;
    double max_rate;
    uint64_t dataset;
    double error_ratio;
    bool backpressure;
    bool enabled;
};

struct workload {
    struct workload_cfg cfg;
    double credit;     /* fractional items carried between steps */
    double err_credit; /* fractional errors carried between steps */
    uint64_t processed;
    uint64_t errors;
};

/* Reads the known keys of `config` over `out` (which holds defaults or the
 * current values). Returns false with a message for a wrong type or range. */
bool workload_cfg_parse(const json_t *config, struct workload_cfg *out, char *err, size_t n);
void workload_cfg_defaults(struct workload_cfg *c);
/* Advances by dt seconds; returns items processed in this step and adds the
 * failed ones to *errors. */
uint64_t workload_step(struct workload *w, double dt, uint64_t *errors);
/* Work ioState implied by the config and progress. */
enum ph_io_in workload_io_in(const struct workload *w);
enum ph_io_out workload_io_out(const struct workload *w);
bool workload_exhausted(const struct workload *w);

#endif
