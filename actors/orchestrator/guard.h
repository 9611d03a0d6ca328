/* The rules that keep other web pages away from the orchestrator's HTTP
 * server, as pure functions of the request's headers (http.c applies them,
 * the unit tests call them directly).
 *
 * Cross-site requests: a page of another site can make a browser send a
 * form POST or a fetch with a "simple" Content-Type (text/plain,
 * application/x-www-form-urlencoded, multipart/form-data) without asking
 * the server first. A state-changing request must therefore carry
 * Content-Type: application/json, which a browser sends cross-site only
 * after a CORS preflight the orchestrator never grants.
 *
 * DNS rebinding: a page of evil.example whose name is made to resolve to
 * 127.0.0.1 reaches a loopback server as same-origin and can read its
 * answers, but its requests still say "Host: evil.example". A server on a
 * loopback address answers only Host names that are loopback ones
 * (localhost, 127.0.0.0/8, [::1], with or without a port) or named by
 * --allowed-host; on another address, any Host unless names are given. */
#ifndef PH_ORCH_GUARD_H
#define PH_ORCH_GUARD_H

#include <stdbool.h>
#include <stddef.h>

#define GUARD_HOSTS_MAX 8
#define GUARD_HOST_LEN 256

struct guard_hosts {
    bool check; /* false: any Host is answered */
    unsigned n;
    char name[GUARD_HOSTS_MAX][GUARD_HOST_LEN]; /* lower case, no port, IPv6 without [] */
};

/* The Host rule of a server listening on a loopback address or not, with
 * `n` extra names ("name", "name:port" or "[v6addr]"). false with a
 * message when a name is not a host name or there are too many. */
bool guard_hosts_init(struct guard_hosts *g, bool listen_loopback, const char *const *names,
                      unsigned n, char *err, size_t errlen);

/* Whether a request with this Host header value is answered. A request
 * without one (HTTP/1.0) is: browsers always send it. */
bool guard_host_allowed(const struct guard_hosts *g, const char *host);

/* Whether a Host header value (port allowed) names the loopback interface. */
bool guard_host_is_loopback(const char *host);

/* Whether a Content-Type header value is application/json (any case,
 * parameters such as charset allowed). NULL is not. */
bool guard_json_type(const char *content_type);

#endif
