/* Turning untrusted bytes into text that is safe to log and to put in a JSON
 * string: the short body prefixes of rejected signals, keys quoted in
 * refusal reasons. */
#ifndef PH_BRIDGE_TEXT_H
#define PH_BRIDGE_TEXT_H

#include <stdbool.h>
#include <stddef.h>

/* Copies the start of s[0..len) into out as at most `max` bytes (out needs
 * max + 1): well-formed UTF-8 sequences are kept whole, control characters,
 * backslashes and bytes that are not UTF-8 become \xNN escapes, so the result
 * is valid UTF-8 on one line. Returns true when all of s fitted. */
bool text_prefix(const char *s, size_t len, size_t max, char *out);

/* Length of the well-formed UTF-8 sequence at s[0..len), 0 when s does not
 * start with one (overlong forms, surrogates and values past U+10FFFF are
 * not well-formed). */
size_t text_utf8_seq(const unsigned char *s, size_t len);

/* A refusal: its reason formatted into why (when why is not NULL), and
 * PH_ERR_INVAL returned, so that checks read `return text_reason(...)`. */
int text_reason(char *why, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
