/*
 * h_events.c: the persisted event log: GET /events and GET /events/:workspaceId (newest 100).
 * Owns nothing; rows come from structure_events, which only events_record() writes.
 */
#include "fcgi/handlers.h"

#include <string.h>

#include "common/db.h"
#include "common/jsonx.h"
#include "common/util.h"
#include "fcgi/resp.h"

#define EVENTS_LIMIT "100"

/* Columns: id, event_type, workspace_id, payload, created_at as RFC 3339 UTC (zeros trimmed). */
#define EVENT_COLUMNS "SELECT id, event_type, workspace_id, payload::text, " \
	DB_RFC3339("created_at") " FROM structure_events "

static int list_events(struct req *r, const char *workspace_id);
static struct json_object *jstr(const char *s);

int
h_events_list(struct req *r)
{
	return list_events(r, NULL);
}

int
h_events_list_workspace(struct req *r)
{
	const char *id = req_param(r, "workspaceId");

	if (!is_uuid(id))
		return resp_error(r, 400, "invalid workspace ID", NULL);
	return list_events(r, id);
}

/* Newest first: [{created_at,event_type,id,payload,workspace_id}], the reference's keys sorted. */
static int
list_events(struct req *r, const char *workspace_id)
{
	struct json_object *arr = NULL, *o;
	const char *params[1], *payload;
	PGresult *res;
	int i, n;

	params[0] = workspace_id;
	if (workspace_id != NULL)
		res = db_exec(r->arena, EVENT_COLUMNS "WHERE workspace_id = $1::uuid "
		    "ORDER BY created_at DESC LIMIT " EVENTS_LIMIT, 1, params);
	else
		res = db_exec(r->arena, EVENT_COLUMNS "ORDER BY created_at DESC LIMIT " EVENTS_LIMIT,
		    0, NULL);
	if (res == NULL)
		return -1;
	arr = jsonx_own(r->arena, json_object_new_array());
	if (arr == NULL)
		return -1;
	n = PQntuples(res);
	for (i = 0; i < n; i++) {
		o = json_object_new_object();
		if (o == NULL)
			return -1;
		payload = db_value(res, i, 3);
		json_object_object_add(o, "created_at", jstr(db_value(res, i, 4)));
		json_object_object_add(o, "event_type", jstr(db_value(res, i, 1)));
		json_object_object_add(o, "id", jstr(db_value(res, i, 0)));
		json_object_object_add(o, "payload",
		    payload ? jsonx_parse(payload, strlen(payload)) : NULL);
		json_object_object_add(o, "workspace_id", jstr(db_value(res, i, 2)));
		json_object_array_add(arr, o);
	}
	return resp_json(r, 200, arr);
}

/* A string, or JSON null for SQL NULL. */
static struct json_object *
jstr(const char *s)
{
	return s ? json_object_new_string(s) : NULL;
}
