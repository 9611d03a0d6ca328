/* Request guards of the orchestrator's HTTP server (guard.h). */
#include "guard.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static bool name_char(char c, bool v6)
{
    if (isalnum((unsigned char)c) || c == '.') return true;
    return v6 ? c == ':' : c == '-' || c == '_';
}

/* The name of a Host value, "name[:port]" or "[v6addr][:port]": lower
 * case, an IPv6 address without its brackets (*v6 then set). false when the
 * value is not of that shape or the port is not a number in 0..65535. */
static bool host_name(const char *host, char *name, size_t n, bool *v6)
{
    while (*host == ' ' || *host == '\t')
        host++;
    size_t len = strlen(host);
    while (len > 0 && (host[len - 1] == ' ' || host[len - 1] == '\t'))
        len--;
    const char *end = host + len, *start = host, *stop, *rest;
    *v6 = host[0] == '[';
    if (*v6) {
        start = host + 1;
        stop = memchr(start, ']', (size_t)(end - start));
        if (stop == NULL) return false;
        rest = stop + 1;
    } else {
        stop = memchr(host, ':', len);
        if (stop == NULL) stop = end;
        rest = stop;
    }
    const size_t k = (size_t)(stop - start);
    if (k == 0 || k >= n) return false;
    for (size_t i = 0; i < k; i++) {
        if (!name_char(start[i], *v6)) return false;
        name[i] = (char)tolower((unsigned char)start[i]);
    }
    name[k] = '\0';
    if (rest == end) return true;
    if (*rest++ != ':' || rest == end || end - rest > 5) return false;
    unsigned port = 0;
    for (; rest < end; rest++) {
        if (*rest < '0' || *rest > '9') return false;
        port = port * 10 + (unsigned)(*rest - '0');
    }
    return port <= 65535;
}

static bool name_is_loopback(const char *name, bool v6)
{
    if (v6) {
        struct in6_addr a;
        if (inet_pton(AF_INET6, name, &a) != 1) return false;
        return IN6_IS_ADDR_LOOPBACK(&a) || (IN6_IS_ADDR_V4MAPPED(&a) && a.s6_addr[12] == 127);
    }
    if (strcmp(name, "localhost") == 0) return true;
    struct in_addr a;
    return inet_pton(AF_INET, name, &a) == 1 && (ntohl(a.s_addr) >> 24) == 127;
}

bool guard_hosts_init(struct guard_hosts *g, bool listen_loopback, const char *const *names,
                      unsigned n, char *err, size_t errlen)
{
    memset(g, 0, sizeof *g);
    if (n > GUARD_HOSTS_MAX) {
        snprintf(err, errlen, "at most %d --allowed-host names (%u given)", GUARD_HOSTS_MAX, n);
        return false;
    }
    for (unsigned i = 0; i < n; i++) {
        bool v6;
        if (!host_name(names[i], g->name[i], sizeof g->name[i], &v6)) {
            snprintf(err, errlen,
                     "--allowed-host '%.200s' is not a host name or address (NAME, NAME:PORT or "
                     "[IPv6]; a port is ignored)",
                     names[i]);
            return false;
        }
    }
    g->n = n;
    g->check = listen_loopback || n > 0;
    return true;
}

bool guard_host_allowed(const struct guard_hosts *g, const char *host)
{
    if (!g->check || host == NULL) return true;
    char name[GUARD_HOST_LEN];
    bool v6;
    if (!host_name(host, name, sizeof name, &v6)) return false;
    if (name_is_loopback(name, v6)) return true;
    for (unsigned i = 0; i < g->n; i++)
        if (strcmp(name, g->name[i]) == 0) return true;
    return false;
}

bool guard_host_is_loopback(const char *host)
{
    char name[GUARD_HOST_LEN];
    bool v6;
    return host != NULL && host_name(host, name, sizeof name, &v6) && name_is_loopback(name, v6);
}

bool guard_json_type(const char *ct)
{
    static const char json[] = "application/json";
    if (ct == NULL) return false;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    if (strncasecmp(ct, json, sizeof json - 1) != 0) return false;
    ct += sizeof json - 1;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    return *ct == '\0' || *ct == ';';
}
