/*
 * h_activity.c: a workspace's activity feed (list, agent self-reports) and agent → canvas notify.
 * Owns nothing; rows go to activity_logs, live events out as broadcast-only envelopes.
 */
#include "fcgi/handlers.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/db.h"
#include "common/events.h"
#include "common/jsonx.h"
#include "common/log.h"
#include "common/util.h"
#include "fcgi/resp.h"


#define LIST_DEFAULT 100
#define LIST_MAX 500
#define METHOD_MAX 256
#define SUMMARY_MAX 4096
#define STATUS_MAX 64
#define ERROR_DETAIL_MAX 16384
#define TYPE_MAX 64
#define MESSAGE_MAX 65536
#define ATTACHMENTS_MAX 20
#define ATTACH_URI_MAX 4096
#define ATTACH_NAME_MAX 1024

static const char *const activity_types[] = { "a2a_send", "a2a_receive", "task_update",
	"agent_log", "skill_promotion", "memory_write", "error" };

static int opt_json(struct req *r, struct json_object *body, const char *key, const char **out);
static void add_raw_json(struct json_object *obj, const char *key, const char *text);
static struct json_object *str_or_null(const char *s);
static int check_attachments(struct req *r, struct json_object *body, struct json_object **out);
static const char *utf8_prefix(struct req *r, const char *s, size_t max);
static int insert_failed(struct req *r);

int
h_activity_list(struct req *r)
{
	const char *id = req_param(r, "id"), *type = req_query(r, "type");
	const char *source = req_query(r, "source"), *lim = req_query(r, "limit");
	const char *why = NULL, *params[4];
	char limbuf[24];
	struct json_object *arr, *e;
	int64_t limit = LIST_DEFAULT;
	PGresult *res;
	int i, n;

	if (id == NULL || !is_uuid(id))
		return resp_error(r, 400, "invalid workspace ID", NULL);
	if (type != NULL && type[0] == '\0')
		type = NULL;
	if (type != NULL && strlen(type) > TYPE_MAX)
		return resp_error(r, 400, "type too long (max 64 bytes)", NULL);
	if (source != NULL && source[0] == '\0')
		source = NULL;
	if (source != NULL && strcmp(source, "canvas") != 0 && strcmp(source, "agent") != 0)
		return resp_error(r, 400, "source must be 'canvas' or 'agent'", NULL);
	if (lim != NULL && lim[0] != '\0' &&
	    parse_int64(lim, 1, INT32_MAX, &limit, &why) < 0)
		return resp_error(r, 400, "limit must be a positive integer", NULL);
	if (limit > LIST_MAX)
		limit = LIST_MAX;
	snprintf(limbuf, sizeof(limbuf), "%lld", (long long)limit);

	params[0] = id;
	res = db_exec(r->arena, "SELECT 1 FROM workspaces WHERE id = $1::uuid", 1, params);
	if (res == NULL)
		return -1;
	if (PQntuples(res) == 0)
		return resp_error(r, 404, "workspace not found", NULL);
	params[1] = type;
	params[2] = source;
	params[3] = limbuf;
	/* canvas = rows with no source (canvas-initiated), agent = rows with one. */
	res = db_exec(r->arena, "SELECT id, workspace_id, activity_type, source_id, target_id, method, "
	    "summary, duration_ms, status, error_detail, " DB_RFC3339("created_at") ", request_body::text, "
	    "response_body::text, tool_trace::text FROM activity_logs WHERE workspace_id = $1::uuid "
	    "AND ($2::text IS NULL OR activity_type = $2::text) "
	    "AND ($3::text IS NULL OR (source_id IS NULL) = ($3::text = 'canvas')) "
	    "ORDER BY created_at DESC, id DESC LIMIT $4::int", 4, params);
	if (res == NULL)
		return insert_failed(r);
	arr = jsonx_own(r->arena, json_object_new_array());
	n = PQntuples(res);
	for (i = 0; i < n; i++) {
		e = json_object_new_object();
		json_object_array_add(arr, e);
		json_object_object_add(e, "id", json_object_new_string(db_value(res, i, 0)));
		json_object_object_add(e, "workspace_id", json_object_new_string(db_value(res, i, 1)));
		json_object_object_add(e, "activity_type", json_object_new_string(db_value(res, i, 2)));
		json_object_object_add(e, "source_id", str_or_null(db_value(res, i, 3)));
		json_object_object_add(e, "target_id", str_or_null(db_value(res, i, 4)));
		json_object_object_add(e, "method", str_or_null(db_value(res, i, 5)));
		json_object_object_add(e, "summary", str_or_null(db_value(res, i, 6)));
		json_object_object_add(e, "duration_ms", db_value(res, i, 7) ?
		    json_object_new_int64(strtoll(db_value(res, i, 7), NULL, 10)) : NULL);
		json_object_object_add(e, "status", str_or_null(db_value(res, i, 8)));
		json_object_object_add(e, "error_detail", str_or_null(db_value(res, i, 9)));
		json_object_object_add(e, "created_at", json_object_new_string(db_value(res, i, 10)));
		/* The JSON columns appear only when the row has them. */
		add_raw_json(e, "request_body", db_value(res, i, 11));
		add_raw_json(e, "response_body", db_value(res, i, 12));
		add_raw_json(e, "tool_trace", db_value(res, i, 13));
	}
	return resp_json(r, 200, arr);
}

int
h_activity_report(struct req *r)
{
	const char *id = req_param(r, "id"), *type = NULL, *method = NULL, *summary = NULL;
	const char *target = NULL, *source = NULL, *status = NULL, *detail = NULL;
	const char *reqb = NULL, *respb = NULL, *params[10];
	char dur[24];
	struct json_object *body = NULL, *v, *payload, *out;
	int64_t duration = -1;
	PGresult *res;
	size_t i;

	if (id == NULL || !is_uuid(id))
		return resp_error(r, 400, "invalid workspace ID", NULL);
	if (req_json_body(r, &body) < 0)
		return -1;
	if (req_body_str(r, body, "activity_type", TYPE_MAX, &type) < 0)
		return -1;
	if (type == NULL)
		return resp_error(r, 400, "activity_type is required", NULL);
	for (i = 0; i < NELEM(activity_types); i++)
		if (strcmp(type, activity_types[i]) == 0)
			break;
	if (i == NELEM(activity_types))
		return resp_error(r, 400, "invalid activity_type, must be one of: a2a_send, "
		    "a2a_receive, task_update, agent_log, skill_promotion, memory_write, error", NULL);
	if (req_body_str(r, body, "method", METHOD_MAX, &method) < 0 ||
	    req_body_str(r, body, "summary", SUMMARY_MAX, &summary) < 0 ||
	    req_body_str(r, body, "target_id", 64, &target) < 0 ||
	    req_body_str(r, body, "source_id", 64, &source) < 0 ||
	    req_body_str(r, body, "status", STATUS_MAX, &status) < 0 ||
	    req_body_str(r, body, "error_detail", ERROR_DETAIL_MAX, &detail) < 0)
		return -1;
	if (target != NULL && !is_uuid(target))
		return resp_error(r, 400, "target_id must be a UUID", NULL);
	if (json_object_object_get_ex(body, "duration_ms", &v) && v != NULL) {
		if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 0 ||
		    json_object_get_int64(v) > INT32_MAX)
			return resp_error(r, 400, "duration_ms must be a non-negative integer", NULL);
		duration = json_object_get_int64(v);
	}
	if (opt_json(r, body, "request_body", &reqb) < 0 ||
	    opt_json(r, body, "response_body", &respb) < 0)
		return -1;
	/* metadata stands in for a missing request_body (the reference's fallback). */
	if (reqb == NULL && opt_json(r, body, "metadata", &reqb) < 0)
		return -1;
	/* WorkspaceAuth proved the caller owns :id; the body must not attribute the row elsewhere. */
	if (source != NULL && strcasecmp(source, id) != 0) {
		log_warn("security: source_id spoof attempt for workspace %s from %s", id,
		    req_env(r, "REMOTE_ADDR") ? req_env(r, "REMOTE_ADDR") : "-");
		return resp_error(r, 403, "source_id must match authenticated workspace", NULL);
	}
	if (status == NULL)
		status = "ok";
	if (duration >= 0)
		snprintf(dur, sizeof(dur), "%lld", (long long)duration);
	params[0] = id;
	params[1] = type;
	params[2] = target;
	params[3] = method;
	params[4] = summary;
	params[5] = reqb;
	params[6] = respb;
	params[7] = duration >= 0 ? dur : NULL;
	params[8] = status;
	params[9] = detail;
	/* source_id defaults to the workspace itself; a removed workspace logs nothing. */
	res = db_exec(r->arena, "INSERT INTO activity_logs (workspace_id, activity_type, source_id, "
	    "target_id, method, summary, request_body, response_body, duration_ms, status, error_detail) "
	    "SELECT w.id, $2, w.id, $3::uuid, $4, $5, $6::jsonb, $7::jsonb, $8::int, $9, $10 "
	    "FROM workspaces w WHERE w.id = $1::uuid AND w.status <> 'removed' "
	    "RETURNING workspace_id, source_id", 10, params);
	if (res == NULL)
		return insert_failed(r);
	if (PQntuples(res) == 0)
		return resp_error(r, 404, "workspace not found", NULL);

	payload = jsonx_own(r->arena, json_object_new_object());
	json_object_object_add(payload, "activity_type", json_object_new_string(type));
	json_object_object_add(payload, "method", str_or_null(method));
	json_object_object_add(payload, "summary", str_or_null(summary));
	json_object_object_add(payload, "status", json_object_new_string(status));
	json_object_object_add(payload, "source_id", json_object_new_string(db_value(res, 0, 1)));
	json_object_object_add(payload, "target_id", str_or_null(target));
	json_object_object_add(payload, "duration_ms",
	    duration >= 0 ? json_object_new_int64(duration) : NULL);
	events_broadcast(r->arena, "ACTIVITY_LOGGED", db_value(res, 0, 0), payload);

	out = jsonx_own(r->arena, json_object_new_object());
	json_object_object_add(out, "status", json_object_new_string("logged"));
	return resp_json(r, 200, out);
}

int
h_activity_notify(struct req *r)
{
	const char *id = req_param(r, "id"), *message, *params[3];
	struct json_object *body = NULL, *v, *atts = NULL, *stored, *payload, *out;
	size_t len;
	PGresult *res;

	if (id == NULL || !is_uuid(id))
		return resp_error(r, 400, "invalid workspace ID", NULL);
	if (req_json_body(r, &body) < 0)
		return -1;
	if (!json_object_object_get_ex(body, "message", &v) || !json_object_is_type(v, json_type_string) ||
	    json_object_get_string_len(v) == 0)
		return resp_error(r, 400, "message is required", NULL);
	message = json_object_get_string(v);
	if ((size_t)json_object_get_string_len(v) != strlen(message))
		return resp_error(r, 400, "message must not contain NUL characters", NULL);
	if (strlen(message) > MESSAGE_MAX)
		return resp_error(r, 400, "message too long (max 65536 bytes)", NULL);
	if (check_attachments(r, body, &atts) < 0)
		return -1;

	/* The row keeps the message in the canvas chat history (source_id NULL = canvas side). */
	stored = jsonx_own(r->arena, json_object_new_object());
	json_object_object_add(stored, "result", json_object_new_string(message));
	if (atts != NULL)
		json_object_object_add(stored, "attachments", json_object_get(atts));
	params[0] = id;
	params[1] = utf8_prefix(r, message, SUMMARY_MAX);
	params[2] = jsonx_dump(stored, &len);
	if (params[1] == NULL || params[2] == NULL)
		return -1;
	res = db_exec(r->arena, "WITH w AS (SELECT id, name FROM workspaces "
	    "WHERE id = $1::uuid AND status <> 'removed'), "
	    "ins AS (INSERT INTO activity_logs (workspace_id, activity_type, method, summary, "
	    "response_body, status) SELECT w.id, 'a2a_receive', 'notify', $2, $3::jsonb, 'ok' FROM w "
	    "RETURNING id) SELECT w.id, w.name FROM w", 3, params);
	if (res == NULL)
		return insert_failed(r);
	if (PQntuples(res) == 0)
		return resp_error(r, 404, "workspace not found", NULL);

	payload = jsonx_own(r->arena, json_object_new_object());
	json_object_object_add(payload, "message", json_object_new_string(message));
	json_object_object_add(payload, "workspace_id", json_object_new_string(db_value(res, 0, 0)));
	json_object_object_add(payload, "name", json_object_new_string(db_value(res, 0, 1)));
	if (atts != NULL)
		json_object_object_add(payload, "attachments", json_object_get(atts));
	events_broadcast(r->arena, "AGENT_MESSAGE", db_value(res, 0, 0), payload);

	out = jsonx_own(r->arena, json_object_new_object());
	json_object_object_add(out, "status", json_object_new_string("sent"));
	return resp_json(r, 200, out);
}

/* An optional JSON member of any type, serialised for a jsonb parameter; null is absent. */
static int
opt_json(struct req *r, struct json_object *body, const char *key, const char **out)
{
	struct json_object *v;
	size_t len;

	*out = NULL;
	if (!json_object_object_get_ex(body, key, &v) || v == NULL)
		return 0;
	*out = arena_strdup(r->arena, jsonx_dump(v, &len));
	return *out == NULL ? -1 : 0;
}

/* Adds key: <parsed text> when text is not SQL NULL (a stored JSON null stays null). */
static void
add_raw_json(struct json_object *obj, const char *key, const char *text)
{
	struct json_object *v;

	if (text == NULL)
		return;
	if (strcmp(text, "null") == 0) {
		json_object_object_add(obj, key, NULL);
		return;
	}
	v = jsonx_parse(text, strlen(text));
	if (v == NULL) {
		/* Deeper than the parser allows: keep the row, drop the column. */
		log_warn("activity: %s of a row could not be re-read as JSON", key);
		return;
	}
	json_object_object_add(obj, key, v);
}

static struct json_object *
str_or_null(const char *s)
{
	return s != NULL ? json_object_new_string(s) : NULL;
}

/*
 * attachments: absent/null, or an array of {uri*, name*, mimeType?, size?}. *out is a clean
 * copy (known keys only; owned by the arena) or NULL when there are none. Returns 0 or -1 (400).
 */
static int
check_attachments(struct req *r, struct json_object *body, struct json_object **out)
{
	struct json_object *arr, *a, *uri, *name, *mime, *size, *clean;
	char msg[96];
	size_t i, n;

	*out = NULL;
	if (!json_object_object_get_ex(body, "attachments", &arr) || arr == NULL)
		return 0;
	if (!json_object_is_type(arr, json_type_array))
		return resp_error(r, 400, "attachments must be an array", NULL);
	n = json_object_array_length(arr);
	if (n == 0)
		return 0;
	if (n > ATTACHMENTS_MAX)
		return resp_error(r, 400, "too many attachments (max 20)", NULL);
	*out = jsonx_own(r->arena, json_object_new_array());
	for (i = 0; i < n; i++) {
		a = json_object_array_get_idx(arr, i);
		uri = name = mime = size = NULL;
		if (json_object_is_type(a, json_type_object)) {
			json_object_object_get_ex(a, "uri", &uri);
			json_object_object_get_ex(a, "name", &name);
			json_object_object_get_ex(a, "mimeType", &mime);
			json_object_object_get_ex(a, "size", &size);
		}
		if (!json_object_is_type(uri, json_type_string) || json_object_get_string_len(uri) == 0 ||
		    !json_object_is_type(name, json_type_string) || json_object_get_string_len(name) == 0) {
			snprintf(msg, sizeof(msg), "attachment[%zu]: uri and name are required", i);
			return resp_error(r, 400, msg, NULL);
		}
		if (json_object_get_string_len(uri) > ATTACH_URI_MAX ||
		    json_object_get_string_len(name) > ATTACH_NAME_MAX) {
			snprintf(msg, sizeof(msg), "attachment[%zu]: uri or name too long", i);
			return resp_error(r, 400, msg, NULL);
		}
		if (mime != NULL && !json_object_is_type(mime, json_type_string)) {
			snprintf(msg, sizeof(msg), "attachment[%zu]: mimeType must be a string", i);
			return resp_error(r, 400, msg, NULL);
		}
		if (size != NULL && (!json_object_is_type(size, json_type_int) ||
		    json_object_get_int64(size) < 0)) {
			snprintf(msg, sizeof(msg), "attachment[%zu]: size must be a non-negative integer", i);
			return resp_error(r, 400, msg, NULL);
		}
		clean = json_object_new_object();
		json_object_object_add(clean, "uri", json_object_get(uri));
		json_object_object_add(clean, "name", json_object_get(name));
		if (mime != NULL)
			json_object_object_add(clean, "mimeType", json_object_get(mime));
		if (size != NULL)
			json_object_object_add(clean, "size", json_object_get(size));
		json_object_array_add(*out, clean);
	}
	return 0;
}

/* s cut to at most max bytes without splitting a UTF-8 sequence (arena copy when cut). */
static const char *
utf8_prefix(struct req *r, const char *s, size_t max)
{
	size_t n = utf8_prefix_len(s, max);

	return s[n] == '\0' ? s : arena_strndup(r->arena, s, n);
}

/*
 * A failed statement: text PostgreSQL refused (NUL in JSON, invalid UTF-8: SQLSTATE class
 * 22) is the client's fault, 400; anything else goes to the dispatcher (500/503).
 */
static int
insert_failed(struct req *r)
{
	if (!db_unavailable() && strncmp(db_last_sqlstate(), "22", 2) == 0)
		return resp_error(r, 400, "invalid text in request (NUL character or invalid UTF-8)",
		    NULL);
	return -1;
}
