/* ph-bridge's event loop (ph/loop.h): a timeout for the tick, SIGTERM/SIGINT
 * as events, reads of the signal input and of the bell, and a poll of the
 * broker's socket.
 * Nothing spins: between events the process sleeps in the kernel. */
#ifndef PH_BRIDGE_LOOP_H
#define PH_BRIDGE_LOOP_H

#include <stdint.h>

#include "bridge.h"

struct loop_cfg {
    uint32_t tick_ms;
    uint32_t idle_tick_ms;      /* while bridge_sleep() says so: the bell wakes it sooner */
    uint64_t attach_timeout_ns; /* give up when no channel appeared by then */
    const char *signals;        /* NULL: no signal input; "-": stdin; else a file to follow */
    size_t max_line;            /* longest signal line kept */
};

/* Runs until SIGTERM/SIGINT or until the controller closed a removed swarm
 * and its last documents are confirmed (bridge_finished): returns 0 after a
 * clean stop; 1 on a fatal error, with the reason logged. */
int loop_run(struct bridge *b, const struct loop_cfg *cfg);

#endif
