/* The orchestrator's HTTP server: libmicrohttpd without threads of its own,
 * driven by the process's loop (ph/loop.h) through its epoll fd and a timer
 * armed from MHD_get_timeout after every MHD_run (connection timeouts, work
 * MHD has pending that no socket reports): it needs nothing else from the
 * loop, no tick. Routes
 * under /api/ and /metrics go to api.c; anything else is a file of the web
 * UI's folder (index.html at "/"), read-only, with a fixed set of types.
 * Every request, files included, first passes the Host rule of guard.h
 * (403 otherwise): /api/ui-config hands out the observer's credentials. */
#ifndef PH_ORCH_HTTP_H
#define PH_ORCH_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "api.h"
#include "guard.h"
#include "ph/loop.h"

struct http;

struct http_cfg {
    const char *addr;                /* "HOST:PORT"; HOST an IPv4 address */
    const char *web_dir;             /* NULL: no UI files (a note is served at "/") */
    const struct guard_hosts *hosts; /* the Host rule; NULL: loopback names on loopback */
    uint32_t timeout_s;              /* a connection idle this long is closed; 0: 30 s */
};

#define HTTP_TIMEOUT_S_DEFAULT 30

/* Parses "HOST:PORT" into an IPv4 socket address; false with a message. */
bool http_parse_addr(const char *spec, void *sockaddr_in_out, char *err, size_t errlen);
/* Whether a parsed address is on the loopback network (127.0.0.0/8). */
bool http_addr_is_loopback(const void *sockaddr_in);

int http_start(struct http **out, const struct http_cfg *cfg, struct api *api, struct ph_loop *loop,
               char *err, size_t errlen);
void http_stop(struct http *h);
uint16_t http_port(const struct http *h);

#endif
