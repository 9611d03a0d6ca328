/* Safe text from untrusted bytes (text.h). jansson refuses strings that are
 * not UTF-8 and a log line must stay one line, so everything quoted from a
 * rejected message goes through here. */
#include "text.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "ph/common.h"

size_t text_utf8_seq(const unsigned char *s, size_t len)
{
    if (len == 0) return 0;
    const unsigned char c = s[0];
    if (c < 0x80) return 1;
    size_t n;
    unsigned lo = 0x80, hi = 0xbf; /* allowed range of the second byte */
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        if (c == 0xe0) lo = 0xa0; /* overlong */
        if (c == 0xed) hi = 0x9f; /* UTF-16 surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        if (c == 0xf0) lo = 0x90; /* overlong */
        if (c == 0xf4) hi = 0x8f; /* past U+10FFFF */
    } else {
        return 0;
    }
    if (len < n || s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i < n; i++)
        if (s[i] < 0x80 || s[i] > 0xbf) return 0;
    return n;
}

bool text_prefix(const char *s, size_t len, size_t max, char *out)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, o = 0;
    while (i < len) {
        size_t seq = text_utf8_seq(u + i, len - i);
        const bool plain = seq > 1 || (seq == 1 && u[i] >= 0x20 && u[i] != 0x7f && u[i] != '\\');
        if (plain) {
            if (o + seq > max) break;
            memcpy(out + o, s + i, seq);
            o += seq;
            i += seq;
        } else {
            /* One escaped byte; a backslash is escaped too so that "\x0a" in
             * the output always means an escape, never the original text. */
            if (o + 4 > max) break;
            snprintf(out + o, 5, "\\x%02x", u[i]);
            o += 4;
            i += 1;
        }
    }
    out[o] = '\0';
    return i == len;
}

int text_reason(char *why, size_t n, const char *fmt, ...)
{
    if (why != NULL && n > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, n, fmt, ap);
        va_end(ap);
    }
    return PH_ERR_INVAL;
}
