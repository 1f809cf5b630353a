/*
 * h_admin.c: operator routes under /admin: liveness of every supervised process.
 * Owns nothing; reads the shared heartbeats (common/liveness.c).
 */
#include "fcgi/handlers.h"

#include <time.h>

#include "common/liveness.h"
#include "fcgi/resp.h"

int
h_admin_liveness(struct req *r)
{
	struct json_object *snap = liveness_snapshot(r->arena, time(NULL));

	if (snap == NULL) {
		struct json_object *extra = json_object_new_object();
		json_object_object_add(extra, "code", json_object_new_string("platform_unavailable"));
		return resp_error(r, 503, "liveness store unavailable — retry shortly", extra);
	}
	return resp_json(r, 200, snap);
}
