/*
 * h_canvas.c: the canvas's saved viewport: GET and PUT /canvas/viewport (one global row).
 * Owns nothing; the row lives in canvas_viewport under a fixed id, as in the reference.
 */
#include "fcgi/handlers.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "common/db.h"
#include "common/jsonx.h"
#include "fcgi/resp.h"

/* The reference upserts this one id, so there is only ever one viewport row. */
#define VIEWPORT_ID "00000000-0000-0000-0000-000000000001"

static int number_member(struct json_object *obj, const char *key, double *out);

int
h_canvas_viewport_get(struct req *r)
{
	struct json_object *out = NULL;
	PGresult *res;
	int found;

	res = db_exec(r->arena, "SELECT x, y, zoom FROM canvas_viewport "
	    "ORDER BY saved_at DESC NULLS LAST LIMIT 1", 0, NULL);
	if (res == NULL)
		return -1;
	out = jsonx_own(r->arena, json_object_new_object());
	if (out == NULL)
		return -1;
	found = PQntuples(res) == 1;
	json_object_object_add(out, "x", jsonx_number(found ? strtod(PQgetvalue(res, 0, 0), NULL) : 0));
	json_object_object_add(out, "y", jsonx_number(found ? strtod(PQgetvalue(res, 0, 1), NULL) : 0));
	json_object_object_add(out, "zoom",
	    jsonx_number(found ? strtod(PQgetvalue(res, 0, 2), NULL) : 1));
	return resp_json(r, 200, out);
}

int
h_canvas_viewport_put(struct req *r)
{
	struct json_object *body = NULL, *out = NULL;
	const char *params[3];
	char x[32], y[32], zoom[32];
	double dx, dy, dz;

	if (req_json_body(r, &body) < 0) {
		if (r->status == 400)
			return resp_error(r, 400, "invalid viewport data", NULL);
		return -1;
	}
	if (number_member(body, "x", &dx) < 0 || number_member(body, "y", &dy) < 0 ||
	    number_member(body, "zoom", &dz) < 0 || dz <= 0)
		return resp_error(r, 400, "invalid viewport data", NULL);
	snprintf(x, sizeof(x), "%.17g", dx);
	snprintf(y, sizeof(y), "%.17g", dy);
	snprintf(zoom, sizeof(zoom), "%.17g", dz);
	params[0] = x;
	params[1] = y;
	params[2] = zoom;
	if (db_exec(r->arena, "INSERT INTO canvas_viewport (id, x, y, zoom, saved_at) "
	    "VALUES ('" VIEWPORT_ID "', $1::float8, $2::float8, $3::float8, now()) "
	    "ON CONFLICT (id) DO UPDATE SET x = EXCLUDED.x, y = EXCLUDED.y, zoom = EXCLUDED.zoom, "
	    "saved_at = now()", 3, params) == NULL) {
		if (db_unavailable())
			return resp_unavailable(r);
		return resp_error(r, 500, "failed to save viewport", NULL);
	}
	out = jsonx_own(r->arena, json_object_new_object());
	if (out == NULL)
		return -1;
	json_object_object_add(out, "status", json_object_new_string("saved"));
	return resp_json(r, 200, out);
}

/* A required, finite JSON number member. Returns 0 with *out set, or -1. */
static int
number_member(struct json_object *obj, const char *key, double *out)
{
	struct json_object *v = NULL;

	if (!json_object_object_get_ex(obj, key, &v) || v == NULL)
		return -1;
	if (!json_object_is_type(v, json_type_int) && !json_object_is_type(v, json_type_double))
		return -1;
	*out = json_object_get_double(v);
	return isfinite(*out) ? 0 : -1;
}
