/*
 * router.h: the one route table (method, path pattern with :params, guard, handler) and its matcher.
 * Owns nothing; the table is static data in routes.c, matches write into the request.
 */
#ifndef MOLECULE_ROUTER_H
#define MOLECULE_ROUTER_H

#include <stddef.h>

#include "fcgi/req.h"

enum guard {
	GUARD_NONE,		/* open, or checked inside the handler (registry lazy bootstrap) */
	GUARD_ADMIN,		/* AdminAuth (api.md §2.2, holes closed: guard.c) */
	GUARD_WORKSPACE,	/* WorkspaceAuth: bearer bound to :id (api.md §2.1) */
	GUARD_CANVAS_OR_BEARER,	/* PUT /canvas/viewport (api.md §2.3) */
};

/* Returns 0 with the response set, or -1: then the dispatcher answers 500 or 503. */
typedef int (*handler_fn)(struct req *r);

struct route {
	const char *method;
	const char *pattern;	/* "/workspaces/:id/state" */
	enum guard guard;
	handler_fn handler;
};

extern const struct route routes[];
extern const size_t nroutes;

/*
 * Finds the route for r->method and r->path; a literal segment beats a :param at the same
 * place. Fills r->params (percent-decoded). Returns the index, or -1 (no route, or a
 * malformed escape in the path).
 */
int router_match(const struct route *table, size_t n, struct req *r);

#endif
