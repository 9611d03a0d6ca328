/* The two renderings of a snapshot: an aligned text table for people and
 * one JSON document for programs. Neither touches shared memory. */
#ifndef PHCTL_RENDER_H
#define PHCTL_RENDER_H

#include <stdio.h>

#include <jansson.h>

#include "snapshot.h"

/* Header block and two tables (identity and counters; io, rings and
 * quarantine), one row per slot in use, each line at most 100 columns as
 * long as role and instance fit their columns (longer ones end in '~'). */
void dump_render_text(FILE *out, const struct dump *d);

/* {"header": {...}, "workers": [...]}; NULL when memory runs out. */
json_t *dump_to_json(const struct dump *d);

#endif
