/*
 * dispatch.c: one request from CGI parameters to rendered response: route, guard, handler, errors.
 * Owns nothing; turns any unshaped handler failure into a generic 500/503 (never internal text).
 */
#include "fcgi/dispatch.h"

#include <stdio.h>

#include "common/db.h"
#include "common/log.h"
#include "common/util.h"
#include "fcgi/guard.h"
#include "fcgi/metrics.h"
#include "fcgi/resp.h"
#include "fcgi/router.h"

static void serve(struct req *r);

static const char fallback[] =
    "Status: 500 Internal Server Error\r\nContent-Type: application/json\r\n\r\n"
    "{\"error\":\"internal error\"}";

const char *
dispatch(struct arena *a, const struct conf *c, char **envp, req_read_fn read_body,
    void *body_src, size_t *len)
{
	struct req r;
	const char *out;

	if (req_init(&r, a, c, envp, read_body, body_src) < 0) {
		log_set_request_id(r.request_id);
		resp_error(&r, 400, "malformed request line", NULL);
	} else {
		log_set_request_id(r.request_id);
		serve(&r);
	}
	metrics_record(r.route_index, r.status, now_mono_us() - r.started_us);
	resp_header(&r, "X-Request-Id", r.request_id ? r.request_id : "");
	out = resp_render(&r, len);
	if (out == NULL) {
		*len = sizeof(fallback) - 1;
		out = fallback;
	}
	log_debug("%s %s -> %d", r.method ? r.method : "-", r.path ? r.path : "-", r.status);
	log_set_request_id(NULL);
	return out;
}

static void
serve(struct req *r)
{
	const struct route *rt;
	int rc;

	if (guard_tenant(r) < 0)
		return;
	r->route_index = router_match(routes, nroutes, r);
	if (r->route_index < 0) {
		resp_error(r, 404, "not found", NULL);
		return;
	}
	rt = &routes[r->route_index];
	if (guard_check(r, rt->guard) < 0) {
		if (!r->responded)
			resp_error(r, 500, "internal error", NULL);
		return;
	}
	rc = rt->handler(r);
	if (rc == 0 && r->responded)
		return;
	if (r->responded)
		return;
	/* The handler failed without shaping an error: say only what the client can act on. */
	if (db_unavailable())
		resp_unavailable(r);
	else {
		struct json_object *extra = json_object_new_object();
		json_object_object_add(extra, "request_id", json_object_new_string(r->request_id));
		resp_error(r, 500, "internal error", extra);
	}
}
