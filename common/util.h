/*
 * util.h: small helpers every module uses: UNUSED, fatal, clocks, bounded parsing, error text.
 * Owns nothing; strings returned are caller-provided buffers.
 */
#ifndef MOLECULE_UTIL_H
#define MOLECULE_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define UNUSED(x) ((void)(x))
#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* Logs the message and exits 2 ("fatal, do not restart"); start-up, config and OOM only. */
__attribute__((noreturn, format(printf, 1, 2))) void fatal(const char *fmt, ...);

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
char *xstrdup(const char *s);

/* Milliseconds on CLOCK_MONOTONIC: for ticks, deadlines and backoff. */
int64_t now_mono_ms(void);
/* Microseconds on CLOCK_MONOTONIC: for request latency. */
int64_t now_mono_us(void);
/* Milliseconds since the epoch (wall clock): for timestamps people read. */
int64_t now_wall_ms(void);
/* Formats epoch seconds as RFC 3339 UTC ("2026-11-22T07:30:00Z") into buf (>= 21 bytes). */
void rfc3339(time_t t, char *buf, size_t len);

/*
 * Parses a base-10 integer in [min, max] (strtonum-style).
 * Returns 0 and sets *out, or -1 with *why set to a static reason.
 */
int parse_int64(const char *s, int64_t min, int64_t max, int64_t *out, const char **why);

/* printf into err[errlen] for the callers' error buffers; does nothing when err is NULL or errlen 0. */
__attribute__((format(printf, 3, 4))) void set_err(char *err, size_t errlen, const char *fmt, ...);

/*
 * The length of s cut to at most max bytes without splitting a UTF-8 sequence:
 * strlen(s) when it fits, so s[result] == '\0' tells "not cut".
 */
size_t utf8_prefix_len(const char *s, size_t max);

/* Case-sensitive suffix and prefix tests. */
int str_has_prefix(const char *s, const char *prefix);

/* Constant-time equality of two NUL-terminated strings (length leaks, content does not). */
int str_eq_ct(const char *a, const char *b);

/* Lowercase hex of n bytes into out, which holds 2n+1 bytes. */
void hex_encode(const unsigned char *b, size_t n, char *out);
/* Decodes hex into a malloc'd buffer; -1 on an odd length, a non-hex digit or no memory. */
int hex_decode(const char *hex, unsigned char **out, size_t *outlen);

/* FNV-1a of a string: for the small in-process caches (not for anything an attacker keys). */
uint64_t hash_str(const char *s);

/* 1 when s is a canonical 8-4-4-4-12 hex UUID (any case). */
int is_uuid(const char *s);
/* 1 when s is a UUID in PostgreSQL's canonical lowercase text (what channel names are built from). */
int is_lower_uuid(const char *s);

#endif
