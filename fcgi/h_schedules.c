/*
 * h_schedules.c: a workspace's cron schedules (CRUD, run now, history, health) and the admin health view.
 * Owns nothing; rows live in workspace_schedules, fires in a2a_queue, history in activity_logs.
 */
#include "fcgi/handlers.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/a2a.h"
#include "common/a2aq.h"
#include "common/access.h"
#include "common/cron.h"
#include "common/db.h"
#include "common/events.h"
#include "common/jsonx.h"
#include "common/log.h"
#include "common/util.h"
#include "fcgi/guard.h"
#include "fcgi/resp.h"

#define NAME_MAX_BYTES 256
#define PROMPT_MAX_BYTES 65536
#define HISTORY_ROWS "20"
#define ADMIN_HEALTH_MAX "5000"

/* How a result column becomes a JSON member: string, "t"/"f" boolean, NULL-able string, integer. */
enum col_kind { COL_STR, COL_BOOL, COL_OPT_STR, COL_INT };

/* One member of a row object; column i of the result feeds entry i of the table. */
struct col {
	const char *key;
	enum col_kind kind;
};

/* The fields a POST or PATCH may carry; NULL / -1 when absent. */
struct sched_in {
	const char *name, *cron_expr, *timezone, *prompt;
	int enabled;
};

static int read_input(struct req *r, struct json_object *body, struct sched_in *in);
static int opt_string(struct req *r, struct json_object *body, const char *key, size_t max,
    const char **out);
static char *strip_cr(struct req *r, const char *s);
static int next_fire(struct req *r, const char *expr, const char *tz, char *out, size_t len);
static int workspace_live(struct req *r, const char *id);
static int write_failed(struct req *r, const char *what);
static int record_event(struct req *r, const char *type, const char *ws, const char *sid,
    const char *name);
static struct json_object *str_or_null(const char *s);
static struct json_object *int_of(const char *s);
static struct json_object *rows_json(struct req *r, const PGresult *res, const struct col *cols,
    size_t ncols);
static int check_ids(struct req *r, const char **id, const char **sid);

/* Columns of GET /workspaces/:id/schedules, in the reference's order. */
static const char list_sql[] =
    "SELECT id, workspace_id, name, cron_expr, timezone, prompt, enabled, "
    DB_RFC3339("last_run_at") ", " DB_RFC3339("next_run_at") ", run_count, "
    "COALESCE(last_status, ''), COALESCE(last_error, ''), source, "
    DB_RFC3339("created_at") ", " DB_RFC3339("updated_at") " "
    "FROM workspace_schedules WHERE workspace_id = $1::uuid ORDER BY created_at, id";

/* The members of each list_sql row, in its column order. */
static const struct col list_cols[] = {
	{ "id", COL_STR }, { "workspace_id", COL_STR }, { "name", COL_STR },
	{ "cron_expr", COL_STR }, { "timezone", COL_STR }, { "prompt", COL_STR },
	{ "enabled", COL_BOOL }, { "last_run_at", COL_OPT_STR }, { "next_run_at", COL_OPT_STR },
	{ "run_count", COL_INT }, { "last_status", COL_STR }, { "last_error", COL_STR },
	{ "source", COL_STR }, { "created_at", COL_STR }, { "updated_at", COL_STR },
};

/* Columns of GET /workspaces/:id/schedules/health, a peer's view. */
static const struct col health_cols[] = {
	{ "id", COL_STR }, { "name", COL_STR }, { "enabled", COL_BOOL },
	{ "last_run_at", COL_OPT_STR }, { "next_run_at", COL_OPT_STR }, { "run_count", COL_INT },
	{ "last_status", COL_STR }, { "last_error", COL_STR },
};

int
h_schedules_list(struct req *r)
{
	const char *id = req_param(r, "id"), *params[1];
	PGresult *res;

	if (id == NULL || !is_uuid(id))
		return resp_error(r, 400, "invalid workspace ID", NULL);
	params[0] = id;
	res = db_exec(r->arena, list_sql, 1, params);
	if (res == NULL)
		return -1;
	return resp_json(r, 200, rows_json(r, res, list_cols, NELEM(list_cols)));
}

int
h_schedules_create(struct req *r)
{
	const char *id = req_param(r, "id"), *params[7];
	struct json_object *body = NULL, *out;
	struct sched_in in;
	char next[32];
	PGresult *res;
	int rc;

	if (id == NULL || !is_uuid(id))
		return resp_error(r, 400, "invalid workspace ID", NULL);
	if (req_json_body_or(r, &body, "cron_expr and prompt are required") < 0 || read_input(r, body, &in) < 0)
		return -1;
	if (in.cron_expr == NULL || in.prompt == NULL || in.prompt[0] == '\0')
		return resp_error(r, 400, "cron_expr and prompt are required", NULL);
	if (in.timezone == NULL)
		in.timezone = "UTC";
	if (next_fire(r, in.cron_expr, in.timezone, next, sizeof(next)) < 0)
		return -1;
	rc = workspace_live(r, id);
	if (rc <= 0)
		return rc < 0 ? -1 : resp_error(r, 404, "workspace not found", NULL);

	params[0] = id;
	params[1] = in.name;
	params[2] = in.cron_expr;
	params[3] = in.timezone;
	params[4] = in.prompt;
	params[5] = in.enabled == 0 ? "false" : "true";
	params[6] = next;
	if (db_begin(r->arena) < 0)
		return -1;
	/* An unnamed schedule gets a unique name: (workspace_id, name) is unique (org import's key). */
	res = db_exec(r->arena, "INSERT INTO workspace_schedules (workspace_id, name, cron_expr, timezone, "
	    "prompt, enabled, next_run_at, source) VALUES ($1::uuid, "
	    "COALESCE($2, 'schedule-' || left(gen_random_uuid()::text, 8)), $3, $4, $5, $6::bool, "
	    "to_timestamp($7::bigint), 'runtime') RETURNING id, name, " DB_RFC3339("next_run_at"), 7, params);
	if (res == NULL) {
		db_rollback();
		return write_failed(r, "failed to create schedule");
	}
	if (record_event(r, "SCHEDULE_CREATED", id, db_value(res, 0, 0), db_value(res, 0, 1)) < 0 ||
	    db_commit(r->arena) < 0) {
		db_rollback();
		return -1;
	}
	out = jsonx_own(r->arena, json_object_new_object());
	json_object_object_add(out, "id", json_object_new_string(db_value(res, 0, 0)));
	json_object_object_add(out, "status", json_object_new_string("created"));
	json_object_object_add(out, "next_run_at", json_object_new_string(db_value(res, 0, 2)));
	return resp_json(r, 201, out);
}

int
h_schedules_update(struct req *r)
{
	const char *id = req_param(r, "id"), *sid = req_param(r, "sid"), *params[8];
	const char *expr, *tz;
	struct json_object *body = NULL, *out;
	struct sched_in in;
	char next[32];
	int recompute, was_enabled;
	PGresult *res;

	if (check_ids(r, &id, &sid) < 0)
		return -1;
	if (req_json_body_or(r, &body, "invalid JSON") < 0 || read_input(r, body, &in) < 0)
		return -1;
	if (in.prompt != NULL && in.prompt[0] == '\0')
		return resp_error(r, 400, "prompt must not be empty", NULL);
	params[0] = sid;
	params[1] = id;
	if (db_begin(r->arena) < 0)
		return -1;
	res = db_exec(r->arena, "SELECT cron_expr, timezone, enabled FROM workspace_schedules "
	    "WHERE id = $1::uuid AND workspace_id = $2::uuid FOR UPDATE", 2, params);
	if (res == NULL)
		goto fail;
	if (PQntuples(res) == 0) {
		db_rollback();
		return resp_error(r, 404, "schedule not found", NULL);
	}
	expr = in.cron_expr != NULL ? in.cron_expr : db_value(res, 0, 0);
	tz = in.timezone != NULL ? in.timezone : db_value(res, 0, 1);
	was_enabled = strcmp(db_value(res, 0, 2), "t") == 0;
	/* A re-enabled schedule starts from now: its old next_run_at would fire at once. */
	recompute = in.cron_expr != NULL || in.timezone != NULL || (in.enabled == 1 && !was_enabled);
	if (recompute && next_fire(r, expr, tz, next, sizeof(next)) < 0) {
		db_rollback();
		return -1;
	}
	params[2] = in.name;
	params[3] = in.cron_expr;
	params[4] = in.timezone;
	params[5] = in.prompt;
	params[6] = in.enabled < 0 ? NULL : in.enabled ? "true" : "false";
	params[7] = recompute ? next : NULL;
	res = db_exec(r->arena, "UPDATE workspace_schedules SET name = COALESCE($3, name), "
	    "cron_expr = COALESCE($4, cron_expr), timezone = COALESCE($5, timezone), "
	    "prompt = COALESCE($6, prompt), enabled = COALESCE($7::bool, enabled), "
	    "next_run_at = COALESCE(to_timestamp($8::bigint), next_run_at), "
	    "last_status = CASE WHEN $7::bool AND NOT enabled THEN '' ELSE last_status END, "
	    "updated_at = now() WHERE id = $1::uuid AND workspace_id = $2::uuid RETURNING name", 8, params);
	if (res == NULL) {
		db_rollback();
		return write_failed(r, "failed to update schedule");
	}
	if (record_event(r, "SCHEDULE_UPDATED", id, sid, db_value(res, 0, 0)) < 0 ||
	    db_commit(r->arena) < 0)
		goto fail;
	out = jsonx_own(r->arena, json_object_new_object());
	json_object_object_add(out, "status", json_object_new_string("updated"));
	return resp_json(r, 200, out);
fail:
	db_rollback();
	return -1;
}

int
h_schedules_delete(struct req *r)
{
	const char *id = req_param(r, "id"), *sid = req_param(r, "sid"), *params[2];
	struct json_object *out;
	PGresult *res;

	if (check_ids(r, &id, &sid) < 0)
		return -1;
	params[0] = sid;
	params[1] = id;
	if (db_begin(r->arena) < 0)
		return -1;
	res = db_exec(r->arena, "DELETE FROM workspace_schedules WHERE id = $1::uuid "
	    "AND workspace_id = $2::uuid RETURNING name", 2, params);
	if (res == NULL)
		goto fail;
	if (PQntuples(res) == 0) {
		db_rollback();
		return resp_error(r, 404, "schedule not found", NULL);
	}
	if (record_event(r, "SCHEDULE_DELETED", id, sid, db_value(res, 0, 0)) < 0 ||
	    db_commit(r->arena) < 0)
		goto fail;
	out = jsonx_own(r->arena, json_object_new_object());
	json_object_object_add(out, "status", json_object_new_string("deleted"));
	return resp_json(r, 200, out);
fail:
	db_rollback();
	return -1;
}

/*
 * Returns the prompt without dispatching (the canvas posts it to /a2a itself, as in the
 * reference); ?dispatch=true queues it for the dispatcher, which records it like a cron fire.
 */
int
h_schedules_run(struct req *r)
{
	const char *id = req_param(r, "id"), *sid = req_param(r, "sid"), *params[2];
	const char *dispatch = req_query(r, "dispatch"), *prompt;
	struct json_object *out, *body;
	struct a2aq_item it;
	char qid[A2AQ_ID_LEN], mid[96];
	PGresult *res;

	if (check_ids(r, &id, &sid) < 0)
		return -1;
	params[0] = sid;
	params[1] = id;
	res = db_exec(r->arena, "SELECT s.prompt, s.workspace_id FROM workspace_schedules s "
	    "JOIN workspaces w ON w.id = s.workspace_id WHERE s.id = $1::uuid AND s.workspace_id = $2::uuid "
	    "AND w.status <> 'removed'", 2, params);
	if (res == NULL)
		return -1;
	if (PQntuples(res) == 0)
		return resp_error(r, 404, "schedule not found", NULL);
	prompt = db_value(res, 0, 0);
	out = jsonx_own(r->arena, json_object_new_object());
	if (dispatch == NULL || (strcmp(dispatch, "true") != 0 && strcmp(dispatch, "1") != 0)) {
		json_object_object_add(out, "status", json_object_new_string("fired"));
		json_object_object_add(out, "workspace_id", json_object_new_string(db_value(res, 0, 1)));
		json_object_object_add(out, "prompt", json_object_new_string(prompt));
		return resp_json(r, 200, out);
	}
	snprintf(mid, sizeof(mid), "cron-%s-run-%lld", sid, (long long)now_wall_ms());
	body = jsonx_own(r->arena, a2a_text_request(prompt, mid, NULL));
	memset(&it, 0, sizeof(it));
	it.workspace_id = db_value(res, 0, 1);
	it.kind = "cron";
	it.ref_id = sid;
	it.body = body;
	if (body == NULL || db_begin(r->arena) < 0)
		return -1;
	if (a2aq_enqueue(r->arena, &it, qid, sizeof(qid)) < 0 || db_commit(r->arena) < 0) {
		db_rollback();
		return -1;
	}
	json_object_object_add(out, "status", json_object_new_string("queued"));
	json_object_object_add(out, "workspace_id", json_object_new_string(db_value(res, 0, 1)));
	json_object_object_add(out, "prompt", json_object_new_string(prompt));
	json_object_object_add(out, "queue_id", json_object_new_string(qid));
	return resp_json(r, 202, out);
}

int
h_schedules_history(struct req *r)
{
	const char *id = req_param(r, "id"), *sid = req_param(r, "sid"), *params[2], *req_text;
	struct json_object *arr, *e, *v;
	PGresult *res;
	int i, n;

	if (check_ids(r, &id, &sid) < 0)
		return -1;
	params[0] = sid;
	params[1] = id;
	res = db_exec(r->arena, "SELECT 1 FROM workspace_schedules WHERE id = $1::uuid "
	    "AND workspace_id = $2::uuid", 2, params);
	if (res == NULL)
		return -1;
	if (PQntuples(res) == 0)
		return resp_error(r, 404, "schedule not found", NULL);
	res = db_exec(r->arena, "SELECT " DB_RFC3339("created_at") ", duration_ms, status, error_detail, "
	    "request_body::text FROM activity_logs WHERE workspace_id = $2::uuid "
	    "AND activity_type = 'cron_run' AND request_body->>'schedule_id' = $1 "
	    "ORDER BY created_at DESC, id DESC LIMIT " HISTORY_ROWS, 2, params);
	if (res == NULL)
		return -1;
	arr = jsonx_own(r->arena, json_object_new_array());
	n = PQntuples(res);
	for (i = 0; i < n; i++) {
		e = json_object_new_object();
		json_object_array_add(arr, e);
		json_object_object_add(e, "timestamp", json_object_new_string(db_value(res, i, 0)));
		json_object_object_add(e, "duration_ms", int_of(db_value(res, i, 1)));
		json_object_object_add(e, "status", str_or_null(db_value(res, i, 2)));
		json_object_object_add(e, "error_detail", str_or_null(db_value(res, i, 3)));
		req_text = db_value(res, i, 4);
		v = req_text != NULL ? jsonx_parse(req_text, strlen(req_text)) : NULL;
		json_object_object_add(e, "request", v);
	}
	return resp_json(r, 200, arr);
}

/*
 * Peer-readable: X-Workspace-ID names the caller, whose own token is checked (lazy bootstrap),
 * then the hierarchy. Unlike the reference, naming the target itself skips only the hierarchy
 * check, never the token.
 */
int
h_schedules_health(struct req *r)
{
	const char *id = req_param(r, "id"), *caller = req_header(r, "X-Workspace-ID"), *params[1];
	PGresult *res;

	if (id == NULL || !is_uuid(id))
		return resp_error(r, 400, "invalid workspace ID", NULL);
	if (caller == NULL || caller[0] == '\0')
		return resp_error(r, 401, "X-Workspace-ID header required", NULL);
	if (!is_uuid(caller))
		return resp_error(r, 401, "invalid caller auth token", NULL);
	if (guard_lazy_bootstrap(r, caller, "caller", 0) < 0)
		return -1;
	if (strcasecmp(caller, id) != 0) {
		switch (access_can_communicate(r->arena, caller, id)) {
		case -1:
			return -1;
		case 0:
			return resp_error(r, 403, "access denied", NULL);
		default:
			break;
		}
	}
	params[0] = id;
	res = db_exec(r->arena, "SELECT id, name, enabled, " DB_RFC3339("last_run_at") ", "
	    DB_RFC3339("next_run_at") ", run_count, COALESCE(last_status, ''), COALESCE(last_error, '') "
	    "FROM workspace_schedules WHERE workspace_id = $1::uuid ORDER BY created_at, id", 1, params);
	if (res == NULL)
		return -1;
	return resp_json(r, 200, rows_json(r, res, health_cols, NELEM(health_cols)));
}

/*
 * Every enabled schedule of a live workspace: never_run, stale (no run for twice the cron's
 * interval, measured between its next two fires) or ok.
 */
int
h_admin_schedules_health(struct req *r)
{
	struct json_object *arr, *e;
	struct cron_expr ce;
	const struct cron_tz *tz;
	int64_t now = (int64_t)time(NULL), n1, n2, threshold, last;
	char err[256];
	const char *status;
	PGresult *res;
	int i, n;

	res = db_exec(r->arena, "SELECT s.workspace_id, w.name, s.id, s.name, s.cron_expr, s.timezone, "
	    DB_RFC3339("s.last_run_at") ", " DB_RFC3339("s.next_run_at") ", "
	    "extract(epoch FROM s.last_run_at)::bigint FROM workspace_schedules s "
	    "JOIN workspaces w ON w.id = s.workspace_id WHERE s.enabled AND w.status <> 'removed' "
	    "ORDER BY w.name, s.name LIMIT " ADMIN_HEALTH_MAX, 0, NULL);
	if (res == NULL)
		return -1;
	arr = jsonx_own(r->arena, json_object_new_array());
	n = PQntuples(res);
	for (i = 0; i < n; i++) {
		threshold = 0;
		tz = cron_tz_get(db_value(res, i, 5), err, sizeof(err));
		if (tz != NULL && cron_parse(db_value(res, i, 4), &ce, err, sizeof(err)) == 0 &&
		    cron_next(&ce, tz, now, &n1) == 0 && cron_next(&ce, tz, n1, &n2) == 0)
			threshold = 2 * (n2 - n1);
		if (db_value(res, i, 8) == NULL) {
			status = "never_run";
		} else {
			last = strtoll(db_value(res, i, 8), NULL, 10);
			status = threshold > 0 && now - last > threshold ? "stale" : "ok";
		}
		e = json_object_new_object();
		json_object_array_add(arr, e);
		json_object_object_add(e, "workspace_id", json_object_new_string(db_value(res, i, 0)));
		json_object_object_add(e, "workspace_name", json_object_new_string(db_value(res, i, 1)));
		json_object_object_add(e, "schedule_id", json_object_new_string(db_value(res, i, 2)));
		json_object_object_add(e, "schedule_name", json_object_new_string(db_value(res, i, 3)));
		json_object_object_add(e, "cron_expr", json_object_new_string(db_value(res, i, 4)));
		json_object_object_add(e, "last_run_at", str_or_null(db_value(res, i, 6)));
		json_object_object_add(e, "expected_next_run", str_or_null(db_value(res, i, 7)));
		json_object_object_add(e, "status", json_object_new_string(status));
		json_object_object_add(e, "stale_threshold_seconds", json_object_new_int64(threshold));
	}
	return resp_json(r, 200, arr);
}

/* POST/PATCH fields with their types and caps; the prompt loses its CRs. Returns 0 or -1 (400). */
static int
read_input(struct req *r, struct json_object *body, struct sched_in *in)
{
	struct json_object *v;
	const char *prompt = NULL;

	memset(in, 0, sizeof(*in));
	in->enabled = -1;
	if (opt_string(r, body, "name", NAME_MAX_BYTES, &in->name) < 0 ||
	    opt_string(r, body, "cron_expr", CRON_EXPR_MAX, &in->cron_expr) < 0 ||
	    opt_string(r, body, "timezone", CRON_TZ_NAME_MAX, &in->timezone) < 0 ||
	    opt_string(r, body, "prompt", PROMPT_MAX_BYTES, &prompt) < 0)
		return -1;
	if (in->name != NULL && in->name[0] == '\0')
		in->name = NULL;
	if (in->cron_expr != NULL && in->cron_expr[0] == '\0')
		in->cron_expr = NULL;
	if (in->timezone != NULL && in->timezone[0] == '\0')
		in->timezone = NULL;
	if (prompt != NULL && (in->prompt = strip_cr(r, prompt)) == NULL)
		return -1;
	if (json_object_object_get_ex(body, "enabled", &v) && v != NULL) {
		if (!json_object_is_type(v, json_type_boolean))
			return resp_error(r, 400, "enabled must be a boolean", NULL);
		in->enabled = json_object_get_boolean(v) ? 1 : 0;
	}
	return 0;
}

static int
opt_string(struct req *r, struct json_object *body, const char *key, size_t max, const char **out)
{
	struct json_object *v;
	char msg[96];

	*out = NULL;
	if (!json_object_object_get_ex(body, key, &v) || v == NULL)
		return 0;
	if (!json_object_is_type(v, json_type_string)) {
		snprintf(msg, sizeof(msg), "%s must be a string", key);
		return resp_error(r, 400, msg, NULL);
	}
	if ((size_t)json_object_get_string_len(v) != strlen(json_object_get_string(v))) {
		snprintf(msg, sizeof(msg), "%s must not contain NUL characters", key);
		return resp_error(r, 400, msg, NULL);
	}
	if ((size_t)json_object_get_string_len(v) > max) {
		snprintf(msg, sizeof(msg), "%s too long (max %zu bytes)", key, max);
		return resp_error(r, 400, msg, NULL);
	}
	*out = json_object_get_string(v);
	return 0;
}

static char *
strip_cr(struct req *r, const char *s)
{
	char *out = arena_strdup(r->arena, s), *w, *p;

	if (out == NULL)
		return NULL;
	for (p = w = out; *p != '\0'; p++)
		if (*p != '\r')
			*w++ = *p;
	*w = '\0';
	return out;
}

/* The first fire after now as epoch seconds text; 400 "invalid cron expression: ..." / "invalid timezone: ...". */
static int
next_fire(struct req *r, const char *expr, const char *tz, char *out, size_t len)
{
	char err[320];
	int64_t next;

	if (cron_next_str(expr, tz, (int64_t)time(NULL), &next, err, sizeof(err)) < 0)
		return resp_error(r, 400, err, NULL);
	snprintf(out, len, "%lld", (long long)next);
	return 0;
}

/* 1 when the workspace exists and is not removed, 0 when not, -1 on a database error. */
static int
workspace_live(struct req *r, const char *id)
{
	const char *params[1] = { id };
	PGresult *res = db_exec(r->arena, "SELECT 1 FROM workspaces WHERE id = $1::uuid "
	    "AND status <> 'removed'", 1, params);

	if (res == NULL)
		return -1;
	return PQntuples(res) > 0;
}

/* A unique name taken is the client's 409; text PostgreSQL refused is 400; the rest 500/503. */
static int
write_failed(struct req *r, const char *what)
{
	const char *state = db_last_sqlstate();

	if (db_unavailable())
		return -1;
	if (strcmp(state, "23505") == 0)
		return resp_error(r, 409, "a schedule with this name already exists", NULL);
	if (strncmp(state, "22", 2) == 0)
		return resp_error(r, 400, "invalid text in request (NUL character or invalid UTF-8)", NULL);
	return resp_error(r, 500, what, NULL);
}

static int
record_event(struct req *r, const char *type, const char *ws, const char *sid, const char *name)
{
	struct json_object *p = jsonx_own(r->arena, json_object_new_object());

	json_object_object_add(p, "schedule_id", json_object_new_string(sid));
	json_object_object_add(p, "schedule_name", json_object_new_string(name != NULL ? name : ""));
	return events_record(r->arena, type, ws, p);
}

static struct json_object *
str_or_null(const char *s)
{
	return s != NULL ? json_object_new_string(s) : NULL;
}

static struct json_object *
int_of(const char *s)
{
	return s != NULL ? json_object_new_int64(strtoll(s, NULL, 10)) : NULL;
}

/* Every row of res as an object whose members follow cols; the array is owned by the arena. */
static struct json_object *
rows_json(struct req *r, const PGresult *res, const struct col *cols, size_t ncols)
{
	struct json_object *arr = jsonx_own(r->arena, json_object_new_array()), *e, *v;
	const char *s;
	int i, n = PQntuples(res);
	size_t c;

	for (i = 0; i < n; i++) {
		e = json_object_new_object();
		json_object_array_add(arr, e);
		for (c = 0; c < ncols; c++) {
			s = db_value(res, i, (int)c);
			if (cols[c].kind == COL_BOOL)
				v = json_object_new_boolean(strcmp(s, "t") == 0);
			else if (cols[c].kind == COL_OPT_STR)
				v = str_or_null(s);
			else if (cols[c].kind == COL_INT)
				v = int_of(s);
			else
				v = json_object_new_string(s);
			json_object_object_add(e, cols[c].key, v);
		}
	}
	return arr;
}

static int
check_ids(struct req *r, const char **id, const char **sid)
{
	if (*id == NULL || !is_uuid(*id))
		return resp_error(r, 400, "invalid workspace ID", NULL);
	if (*sid == NULL || !is_uuid(*sid))
		return resp_error(r, 404, "schedule not found", NULL);
	return 0;
}
