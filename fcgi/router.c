/*
 * router.c: matches a request against the route table (cgit-style table, gin-style :params).
 * Owns nothing; captured parameters are decoded into the request's arena.
 */
#include "fcgi/router.h"

#include <string.h>

#define MAX_SEGMENTS 16

struct segs {
	const char *s[MAX_SEGMENTS];
	size_t len[MAX_SEGMENTS];
	size_t n;
};

static int split(const char *path, struct segs *out);
static int score(const struct segs *pat, const struct segs *path);

int
router_match(const struct route *table, size_t n, struct req *r)
{
	struct segs path, pat;
	int best = -1, best_score = -1, sc;
	size_t i;

	if (split(r->path, &path) < 0)
		return -1;
	for (i = 0; i < n; i++) {
		if (strcmp(table[i].method, r->method) != 0)
			continue;
		if (split(table[i].pattern, &pat) < 0 || pat.n != path.n)
			continue;
		sc = score(&pat, &path);
		if (sc > best_score) {
			best_score = sc;
			best = (int)i;
		}
	}
	if (best < 0)
		return -1;
	split(table[best].pattern, &pat);
	r->nparams = 0;
	for (i = 0; i < pat.n; i++) {
		if (pat.s[i][0] != ':')
			continue;
		if (r->nparams == REQ_MAX_PARAMS)
			return -1;
		r->params[r->nparams].key = arena_strndup(r->arena, pat.s[i] + 1, pat.len[i] - 1);
		r->params[r->nparams].val = req_percent_decode(r->arena, path.s[i], path.len[i], 0);
		if (r->params[r->nparams].key == NULL || r->params[r->nparams].val == NULL)
			return -1;
		r->nparams++;
	}
	return best;
}

/* Splits "/a/b/c" into segments; a trailing slash is not a segment (gin redirects it). */
static int
split(const char *path, struct segs *out)
{
	const char *p = path;

	out->n = 0;
	if (*p != '/')
		return -1;
	while (*p == '/') {
		const char *start = ++p;
		while (*p != '\0' && *p != '/')
			p++;
		if (p == start && *p == '\0' && out->n > 0)
			break;
		if (out->n == MAX_SEGMENTS)
			return -1;
		out->s[out->n] = start;
		out->len[out->n] = (size_t)(p - start);
		out->n++;
	}
	return 0;
}

/* -1 when the pattern cannot match; otherwise the number of literal segments matched. */
static int
score(const struct segs *pat, const struct segs *path)
{
	size_t i;
	int literals = 0;

	for (i = 0; i < pat->n; i++) {
		if (pat->s[i][0] == ':') {
			if (path->len[i] == 0)
				return -1;
			continue;
		}
		if (pat->len[i] != path->len[i] || memcmp(pat->s[i], path->s[i], pat->len[i]) != 0)
			return -1;
		literals++;
	}
	return literals;
}
