/*
 * redact.c: replaces secret-looking substrings of free text with labels, one linear pass per rule.
 * Owns nothing: every result is allocated from the caller's arena.
 */
#include "common/redact.h"

#include <string.h>

#include "common/util.h"

#define BASE64_MIN_RUN 33

/* NAME_API_KEY = value: the name and separator stay, the value goes. */
struct keyed_rule {
	const char *marker;
	const char *label;
};

/* A literal followed by at least min characters of a set: "Bearer " stays, "sk-" goes with its key. */
struct prefixed_rule {
	const char *literal;
	const char *label;
	int keep_literal;
	size_t min;
	int (*in_set)(unsigned char c);
};

struct out {
	char *buf;
	size_t len, cap;
};

static const char *keyed_pass(struct arena *a, const char *in, const struct keyed_rule *k);
static const char *prefixed_pass(struct arena *a, const char *in, const struct prefixed_rule *p);
static const char *base64_pass(struct arena *a, const char *in);
static int out_init(struct arena *a, struct out *o, const char *in, size_t labels, size_t llen);
static void out_put(struct out *o, const char *s, size_t n);
static size_t count(const char *in, const char *literal);
static int is_value(unsigned char c);
static int is_alnum(unsigned char c);
static int is_bearer(unsigned char c);
static int is_key(unsigned char c);
static int is_base64(unsigned char c);

static const struct keyed_rule keyed[] = {
	{ "API_KEY", "[REDACTED:API_KEY]" },
	{ "_TOKEN", "[REDACTED:TOKEN]" },
	{ "_SECRET", "[REDACTED:SECRET]" },
};

static const struct prefixed_rule prefixed[] = {
	{ "Bearer ", "[REDACTED:BEARER_TOKEN]", 1, 8, is_bearer },
	{ "sk-", "[REDACTED:SK_TOKEN]", 0, 16, is_key },
	{ "ctx7_", "[REDACTED:CTX7_TOKEN]", 0, 8, is_key },
};

const char *
redact_secrets(struct arena *a, const char *in)
{
	size_t i;

	for (i = 0; in != NULL && i < NELEM(keyed); i++)
		in = keyed_pass(a, in, &keyed[i]);
	for (i = 0; in != NULL && i < NELEM(prefixed); i++)
		in = prefixed_pass(a, in, &prefixed[i]);
	return in != NULL ? base64_pass(a, in) : NULL;
}

static const char *
keyed_pass(struct arena *a, const char *in, const struct keyed_rule *k)
{
	size_t mlen = strlen(k->marker), n = count(in, k->marker);
	const char *p = in, *hit, *q, *v;
	struct out o;

	if (n == 0)
		return in;
	if (out_init(a, &o, in, n, strlen(k->label)) < 0)
		return NULL;
	while ((hit = strstr(p, k->marker)) != NULL) {
		q = hit + mlen;
		while (*q == ' ')
			q++;
		if (*q == '=' || *q == ':') {
			q++;
			while (*q == ' ')
				q++;
			for (v = q; *v != '\0' && is_value((unsigned char)*v); v++)
				;
			if (v > q) {
				out_put(&o, p, (size_t)(q - p));
				out_put(&o, k->label, strlen(k->label));
				p = v;
				continue;
			}
		}
		out_put(&o, p, (size_t)(hit + mlen - p));
		p = hit + mlen;
	}
	out_put(&o, p, strlen(p) + 1);
	return o.buf;
}

static const char *
prefixed_pass(struct arena *a, const char *in, const struct prefixed_rule *r)
{
	size_t llen = strlen(r->literal), n = count(in, r->literal);
	const char *p = in, *hit, *v;
	struct out o;

	if (n == 0)
		return in;
	if (out_init(a, &o, in, n, strlen(r->label)) < 0)
		return NULL;
	while ((hit = strstr(p, r->literal)) != NULL) {
		for (v = hit + llen; *v != '\0' && r->in_set((unsigned char)*v); v++)
			;
		if ((size_t)(v - hit) - llen >= r->min) {
			out_put(&o, p, (size_t)(hit - p) + (r->keep_literal ? llen : 0));
			out_put(&o, r->label, strlen(r->label));
			p = v;
			continue;
		}
		out_put(&o, p, (size_t)(hit + llen - p));
		p = hit + llen;
	}
	out_put(&o, p, strlen(p) + 1);
	return o.buf;
}

/* Maximal runs of base64 characters, with up to two '=' of padding. */
static const char *
base64_pass(struct arena *a, const char *in)
{
	static const char label[] = "[REDACTED:BASE64_BLOB]";
	const char *p = in, *run, *end;
	struct out o;

	if (out_init(a, &o, in, strlen(in) / BASE64_MIN_RUN + 1, sizeof(label) - 1) < 0)
		return NULL;
	while (*p != '\0') {
		if (!is_base64((unsigned char)*p)) {
			out_put(&o, p++, 1);
			continue;
		}
		for (run = p; *p != '\0' && is_base64((unsigned char)*p); p++)
			;
		if ((size_t)(p - run) < BASE64_MIN_RUN) {
			out_put(&o, run, (size_t)(p - run));
			continue;
		}
		for (end = p; end < p + 2 && *end == '='; end++)
			;
		out_put(&o, label, sizeof(label) - 1);
		p = end;
	}
	out_put(&o, "", 1);
	return o.buf;
}

/* Room for the input plus one label per possible match: a replacement never grows it more. */
static int
out_init(struct arena *a, struct out *o, const char *in, size_t labels, size_t llen)
{
	o->len = 0;
	o->cap = strlen(in) + labels * llen + 1;
	o->buf = arena_alloc(a, o->cap);
	return o->buf != NULL ? 0 : -1;
}

static void
out_put(struct out *o, const char *s, size_t n)
{
	/* Cannot overflow by construction (out_init); the check keeps a mistake from writing past. */
	if (n > o->cap - o->len)
		n = o->cap - o->len;
	memcpy(o->buf + o->len, s, n);
	o->len += n;
}

static size_t
count(const char *in, const char *literal)
{
	size_t n = 0, len = strlen(literal);

	while ((in = strstr(in, literal)) != NULL) {
		n++;
		in += len;
	}
	return n;
}

static int
is_value(unsigned char c)
{
	return c != ' ' && c != '\t' && c != '\n' && c != '\r' && c != '\f' && c != '\v' &&
	    c != '"' && c != '\'' && c != ',' && c != ';';
}

static int
is_alnum(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static int
is_bearer(unsigned char c)
{
	return is_alnum(c) || c == '.' || c == '_' || c == '~' || c == '+' || c == '/' || c == '=' ||
	    c == '-';
}

static int
is_key(unsigned char c)
{
	return is_alnum(c) || c == '_' || c == '-';
}

static int
is_base64(unsigned char c)
{
	return is_alnum(c) || c == '+' || c == '/';
}
