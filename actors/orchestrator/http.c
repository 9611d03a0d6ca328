/* The orchestrator's HTTP server (http.h). */
#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <microhttpd.h>

#include "guard.h"
#include "ph/log.h"

struct http {
    struct MHD_Daemon *d;
    struct api *api;
    struct ph_loop *loop;
    char web_dir[1024];
    bool has_web;
    struct guard_hosts hosts;
    int epfd;
    bool armed;
    uint16_t port;
    /* The timer MHD_get_timeout asks for: 0 when none is armed. */
    uint64_t timer_id, timer_due_ns, timer_gen;
};

/* Per connection: the request body, bounded. */
struct req {
    char *body;
    size_t len, cap;
    bool too_large;
};

bool http_parse_addr(const char *spec, void *out, char *err, size_t errlen)
{
    struct sockaddr_in *sa = out;
    memset(sa, 0, sizeof *sa);
    const char *colon = strrchr(spec, ':');
    char host[64];
    if (colon == NULL || (size_t)(colon - spec) >= sizeof host) {
        snprintf(err, errlen, "'%s' is not HOST:PORT (e.g. 127.0.0.1:8088)", spec);
        return false;
    }
    memcpy(host, spec, (size_t)(colon - spec));
    host[colon - spec] = '\0';
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end != '\0' || end == colon + 1 || port < 0 || port > 65535) {
        snprintf(err, errlen, "'%s': the port must be a number in 0..65535", spec);
        return false;
    }
    if (host[0] == '\0') snprintf(host, sizeof host, "127.0.0.1");
    if (inet_pton(AF_INET, host, &sa->sin_addr) != 1) {
        snprintf(err, errlen, "'%s': the host must be an IPv4 address (e.g. 127.0.0.1)", spec);
        return false;
    }
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)port);
    return true;
}

bool http_addr_is_loopback(const void *sockaddr_in)
{
    const struct sockaddr_in *sa = sockaddr_in;
    return (ntohl(sa->sin_addr.s_addr) >> 24) == 127;
}

static const char *type_of(const char *path)
{
    static const char *const types[][2] = {
        {".html", "text/html; charset=utf-8"}, {".js", "text/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},   {".json", "application/json"},
        {".svg", "image/svg+xml"},             {".png", "image/png"},
        {".ico", "image/x-icon"},              {".map", "application/json"},
        {".txt", "text/plain; charset=utf-8"},
    };
    const char *dot = strrchr(path, '.');
    for (size_t i = 0; dot != NULL && i < sizeof types / sizeof types[0]; i++)
        if (strcmp(dot, types[i][0]) == 0) return types[i][1];
    return NULL;
}

static enum MHD_Result respond(struct MHD_Connection *c, int status, const char *type, char *body,
                            size_t len, bool no_store)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (r == NULL) {
        free(body);
        return MHD_NO;
    }
    if (type != NULL) MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    if (no_store) MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    enum MHD_Result ok = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    return ok;
}

static enum MHD_Result send_text(struct MHD_Connection *c, int status, const char *text)
{
    char *b = strdup(text);
    return b != NULL ? respond(c, status, "text/plain; charset=utf-8", b, strlen(b), true) : MHD_NO;
}

/* A refused Host (guard.h): the page that sent it is not the orchestrator's. */
static enum MHD_Result refuse_host(struct MHD_Connection *c)
{
    char *b = strdup("{\"error\":\"this server answers only requests whose Host header is a "
                     "loopback name or address (localhost, 127.0.0.1, [::1]) or a name given "
                     "with --allowed-host\",\"status\":403}");
    return b != NULL ? respond(c, 403, "application/json", b, strlen(b), true) : MHD_NO;
}

/* A file of the UI: only plain names under the folder, of a known type. */
static enum MHD_Result serve_file(struct http *h, struct MHD_Connection *c, const char *url)
{
    if (!h->has_web)
        return send_text(c, 404, "The web UI is not built. deploy/phive up builds it (npm ci and "
                                 "esbuild in actors/orchestrator/web); /api/swarms and /metrics "
                                 "work without it.\n");
    const char *rel = strcmp(url, "/") == 0 ? "/index.html" : url;
    bool ok = strlen(rel) < 256 && strstr(rel, "..") == NULL && strstr(rel, "//") == NULL;
    for (const char *p = rel; ok && *p; p++)
        ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
             *p == '/' || *p == '.' || *p == '-' || *p == '_';
    const char *type = ok ? type_of(rel) : NULL;
    if (type == NULL) return send_text(c, 404, "not found\n");
    char path[1400];
    snprintf(path, sizeof path, "%s%s", h->web_dir, rel);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        if (fd >= 0) close(fd);
        return send_text(c, 404, "not found\n");
    }
    struct MHD_Response *r = MHD_create_response_from_fd((uint64_t)st.st_size, fd);
    if (r == NULL) {
        close(fd);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    enum MHD_Result res = MHD_queue_response(c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return res;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
    (void)version;
    struct http *h = cls;
    struct req *q = *con_cls;
    if (q == NULL) {
        /* Headers only so far: a refused Host is answered before any body. */
        if (!guard_host_allowed(
                &h->hosts, MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST)))
            return refuse_host(c);
        q = calloc(1, sizeof *q);
        if (q == NULL) return MHD_NO;
        *con_cls = q;
        return MHD_YES; /* headers only: the body, if any, comes next */
    }
    if (*upload_size > 0) {
        if (!q->too_large && q->len + *upload_size > API_MAX_BODY) {
            q->too_large = true;
            free(q->body);
            q->body = NULL;
            q->len = q->cap = 0;
        }
        if (!q->too_large) {
            if (q->len + *upload_size > q->cap) {
                size_t cap = q->len + *upload_size;
                char *b = realloc(q->body, cap);
                if (b == NULL) return MHD_NO;
                q->body = b;
                q->cap = cap;
            }
            memcpy(q->body + q->len, upload, *upload_size);
            q->len += *upload_size;
        }
        *upload_size = 0;
        return MHD_YES;
    }
    if (strncmp(url, "/api/", 5) != 0 && strcmp(url, "/api") != 0 && strcmp(url, "/metrics") != 0) {
        if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
            return send_text(c, 405, "the UI's files take GET\n");
        return serve_file(h, c, url);
    }
    struct api_resp resp;
    const char *type =
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    if (q->too_large)
        api_handle(h->api, method, url, type, NULL, API_MAX_BODY + 1, ph_mono_ns(), ph_real_ns(),
                   &resp);
    else
        api_handle(h->api, method, url, type, q->body, q->len, ph_mono_ns(), ph_real_ns(), &resp);
    return respond(c, resp.status, resp.content_type, resp.body, resp.len, true);
}

static void on_done(void *cls, struct MHD_Connection *c, void **con_cls,
                    enum MHD_RequestTerminationCode code)
{
    (void)cls, (void)c, (void)code;
    struct req *q = *con_cls;
    if (q != NULL) {
        free(q->body);
        free(q);
    }
    *con_cls = NULL;
}

static void on_ready(void *ctx, uint64_t tag, int res);
static void on_timer(void *ctx, uint64_t tag, int res);

/* The longest wait a timer is armed for; MHD is asked again when it ends. */
#define TIMER_MAX_MS 3600000ull

/* What has to happen after every MHD_run: a poll of MHD's epoll fd (a
 * socket has something), and a timer for when MHD must run although no
 * socket says so. MHD_get_timeout gives that time: the next connection
 * timeout, or 0 when work is already pending (a pipelined request left in a
 * connection's buffer, which its edge-triggered epoll reports no more). */
static void arm(struct http *h)
{
    if (!h->armed && h->epfd >= 0)
        h->armed = ph_loop_poll(h->loop, h->epfd, POLLIN, on_ready, h, 0) != 0;
    MHD_UNSIGNED_LONG_LONG ms;
    if (MHD_get_timeout(h->d, &ms) != MHD_YES) return; /* nothing timed: the poll is enough */
    if (ms > TIMER_MAX_MS) ms = TIMER_MAX_MS;
    const uint64_t due = ph_mono_ns() + (uint64_t)ms * 1000000ull;
    if (h->timer_id != 0 && h->timer_due_ns <= due) return; /* the armed one comes first */
    if (h->timer_id != 0) ph_loop_cancel(h->loop, h->timer_id);
    /* A cancelled timer still completes; its old generation tells it apart. */
    h->timer_gen++;
    h->timer_id = ph_loop_timeout(h->loop, (uint32_t)ms, on_timer, h, h->timer_gen);
    h->timer_due_ns = due;
}

static void service(struct http *h)
{
    MHD_run(h->d);
    arm(h);
}

static void on_ready(void *ctx, uint64_t tag, int res)
{
    (void)tag, (void)res;
    struct http *h = ctx;
    h->armed = false;
    service(h);
}

static void on_timer(void *ctx, uint64_t tag, int res)
{
    (void)res;
    struct http *h = ctx;
    if (tag != h->timer_gen) return; /* replaced by a sooner one */
    h->timer_id = 0;
    service(h);
}

static void log_mhd(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    msg[strcspn(msg, "\n")] = '\0';
    ph_warn("http: %s", msg);
}

int http_start(struct http **out, const struct http_cfg *cfg, struct api *api,
               struct ph_loop *loop, char *err, size_t errlen)
{
    *out = NULL;
    struct sockaddr_in sa;
    if (!http_parse_addr(cfg->addr, &sa, err, errlen)) return PH_ERR_INVAL;
    struct http *h = calloc(1, sizeof *h);
    if (h == NULL) {
        snprintf(err, errlen, "out of memory");
        return PH_ERR_SYS;
    }
    h->api = api;
    h->loop = loop;
    h->epfd = -1;
    if (cfg->hosts != NULL)
        h->hosts = *cfg->hosts;
    else
        guard_hosts_init(&h->hosts, http_addr_is_loopback(&sa), NULL, 0, err, errlen);
    if (cfg->web_dir != NULL) {
        snprintf(h->web_dir, sizeof h->web_dir, "%s", cfg->web_dir);
        struct stat st;
        h->has_web = stat(h->web_dir, &st) == 0 && S_ISDIR(st.st_mode);
        if (!h->has_web) ph_warn("web UI folder %s not found: serving the API only", h->web_dir);
    }
    h->d = MHD_start_daemon(
        MHD_USE_EPOLL | MHD_USE_ERROR_LOG, ntohs(sa.sin_port), NULL, NULL, on_request, h,
        MHD_OPTION_EXTERNAL_LOGGER, log_mhd, NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
        MHD_OPTION_NOTIFY_COMPLETED, on_done, NULL, MHD_OPTION_CONNECTION_LIMIT, (unsigned)512,
        MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)(cfg->timeout_s ? cfg->timeout_s : HTTP_TIMEOUT_S_DEFAULT),
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(128 * 1024), MHD_OPTION_END);
    if (h->d == NULL) {
        snprintf(err, errlen, "cannot serve HTTP on %s: %s (is the port in use? set "
                 "PH_HTTP_ADDR or --http)", cfg->addr, strerror(errno ? errno : EADDRINUSE));
        free(h);
        return PH_ERR_SYS;
    }
    const union MHD_DaemonInfo *fdi = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_EPOLL_FD);
    const union MHD_DaemonInfo *pi = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    h->epfd = fdi != NULL ? fdi->epoll_fd : -1;
    h->port = pi != NULL ? pi->port : ntohs(sa.sin_port);
    arm(h);
    *out = h;
    return PH_OK;
}

uint16_t http_port(const struct http *h)
{
    return h->port;
}

void http_stop(struct http *h)
{
    if (h == NULL) return;
    MHD_stop_daemon(h->d);
    free(h);
}
