/*
 * routes.c: the API's one route table: method, path pattern, guard, handler (api.md §3 order).
 * Owns the static table; router.c matches against it and metrics.c labels with it.
 */
#include "fcgi/router.h"

#include "common/util.h"
#include "fcgi/handlers.h"

const struct route routes[] = {
	{ "GET", "/health", GUARD_NONE, h_health },
	{ "GET", "/admin/liveness", GUARD_ADMIN, h_admin_liveness },
	{ "GET", "/metrics", GUARD_NONE, h_metrics },
};
const size_t nroutes = NELEM(routes);
