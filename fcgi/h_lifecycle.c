/*
 * h_lifecycle.c: POST /workspaces/:id/restart|pause|resume|hibernate (api.md §3 rows 15-18).
 * Owns nothing: each route changes status, queues provision_jobs and records its events in one
 * transaction; the provisioner worker does the container work.
 */
#include "fcgi/handlers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/a2aq.h"
#include "common/db.h"
#include "common/events.h"
#include "common/jsonx.h"
#include "common/kv.h"
#include "common/log.h"
#include "common/util.h"
#include "fcgi/resp.h"

/* The same lock h_workspaces.c takes around hierarchy changes: no subtree moves under us. */
#define HIERARCHY_LOCK_SQL "SELECT pg_advisory_xact_lock(4242000001)"

/* Every descendant of $1 (not $1 itself), any depth; UNION stops on a loop in the data. */
#define SUBTREE_CTE "WITH RECURSIVE d AS (" \
	" SELECT id FROM workspaces WHERE id = $1::uuid" \
	" UNION SELECT w.id FROM workspaces w JOIN d ON w.parent_id = d.id)"

/* 1 when an ancestor of $1 is paused. */
#define PAUSED_ANCESTOR_SQL "WITH RECURSIVE up AS (" \
	" SELECT parent_id AS id FROM workspaces WHERE id = $1::uuid" \
	" UNION SELECT w.parent_id FROM workspaces w JOIN up ON w.id = up.id" \
	"  WHERE w.parent_id IS NOT NULL)" \
	" SELECT 1 FROM workspaces w JOIN up ON w.id = up.id WHERE w.status = 'paused' LIMIT 1"

/* Queued container work a state change makes obsolete. */
#define CANCEL_JOBS_SQL "UPDATE provision_jobs SET status = 'failed', " \
	"last_error = $2, updated_at = now() WHERE workspace_id = ANY($1::uuid[]) " \
	"AND status = 'queued' AND kind IN ('provision', 'restart')"

/* The locked row every route starts from. */
struct ws_row {
	const char *id, *name, *status, *runtime;
	long tier, active_tasks;
};

static int lock_row(struct req *r, const char *id, struct ws_row *w);
static int paused_ancestor(struct req *r, const char *id);
static int opt_body(struct req *r, struct json_object **body);
static int body_bool(struct json_object *body, const char *key);
static const char *body_str(struct json_object *body, const char *key);
static int query_true(struct req *r, const char *name);
static int queue_job(struct req *r, const char *id, const char *kind, struct json_object *payload);
static struct json_object *ev_name(struct req *r, const char *name, long tier, const char *runtime);
static const char *id_array(struct req *r, const PGresult *res, int col);
static int fail_tx(struct req *r, const char *msg);

int
h_lifecycle_restart(struct req *r)
{
	struct json_object *body = NULL, *payload = NULL, *out = NULL;
	const char *id = NULL, *params[2], *tmpl;
	struct ws_row w;
	PGresult *res;
	int reset, rc;

	if (req_workspace_id(r, &id) < 0 || opt_body(r, &body) < 0)
		return -1;
	reset = query_true(r, "reset") || body_bool(body, "reset");
	tmpl = body_str(body, "template");

	if (db_begin(r->arena) < 0)
		return fail_tx(r, "failed to restart workspace");
	rc = lock_row(r, id, &w);
	if (rc < 0)
		return fail_tx(r, "failed to restart workspace");
	if (rc == 0 || strcmp(w.status, "removed") == 0) {
		db_rollback();
		return resp_error(r, 404, "workspace not found", NULL);
	}
	if (strcmp(w.runtime, "external") == 0) {
		db_rollback();
		return resp_error(r, 400, "external workspaces have no container to restart", NULL);
	}
	if (strcmp(w.status, "paused") == 0) {
		db_rollback();
		return resp_error(r, 409, "workspace is paused; resume it instead", NULL);
	}
	if (strcmp(w.status, "hibernating") == 0) {
		db_rollback();
		return resp_error(r, 409, "workspace is hibernating; retry shortly", NULL);
	}
	switch (paused_ancestor(r, id)) {
	case 0:
		break;
	case 1:
		db_rollback();
		return resp_error(r, 409, "cannot restart: a parent workspace is paused", NULL);
	default:
		return fail_tx(r, "failed to restart workspace");
	}

	/*
	 * A job still waiting in the queue already does what this one would: restarts that
	 * race (double clicks, secret changes) coalesce into it. A running one is followed by ours.
	 */
	payload = jsonx_own(r->arena, json_object_new_object());
	if (payload == NULL)
		return fail_tx(r, "failed to restart workspace");
	json_object_object_add(payload, "reason", json_object_new_string("manual"));
	if (reset)
		json_object_object_add(payload, "reset", json_object_new_boolean(1));
	if (tmpl != NULL)
		json_object_object_add(payload, "template", json_object_new_string(tmpl));
	if (body_bool(body, "rebuild_config"))
		json_object_object_add(payload, "rebuild_config", json_object_new_boolean(1));
	/* The waiting job takes this request's options too, so the answer below stays true. */
	params[0] = id;
	params[1] = json_object_to_json_string_ext(payload, JSON_C_TO_STRING_PLAIN);
	res = db_exec(r->arena, "UPDATE provision_jobs SET payload = payload || $2::jsonb, "
	    "updated_at = now() WHERE workspace_id = $1::uuid AND status = 'queued' "
	    "AND kind IN ('provision', 'restart') RETURNING 1", 2, params);
	if (res == NULL)
		return fail_tx(r, "failed to restart workspace");
	if (PQntuples(res) == 0) {
		if (queue_job(r, id, "restart", payload) < 0)
			return fail_tx(r, "failed to restart workspace");
		/* Before the status change: the context quotes the last heartbeat of the old session. */
		if (a2aq_restart_context(r->arena, id, NULL, 0) < 0)
			return fail_tx(r, "failed to restart workspace");
	}
	if (db_exec(r->arena, "UPDATE workspaces SET status = 'provisioning', url = NULL, "
	    "updated_at = now() WHERE id = $1::uuid", 1, params) == NULL)
		return fail_tx(r, "failed to restart workspace");
	if (events_record(r->arena, "WORKSPACE_PROVISIONING", id,
	    ev_name(r, w.name, w.tier, w.runtime)) < 0)
		return fail_tx(r, "failed to restart workspace");
	if (db_commit(r->arena) < 0)
		return fail_tx(r, "failed to restart workspace");
	log_info("workspace %s: restart queued", id);
	kv_forget_workspace(id);

	out = jsonx_own(r->arena, json_object_new_object());
	if (out == NULL)
		return -1;
	json_object_object_add(out, "config_dir", json_object_new_string(tmpl != NULL ? tmpl : ""));
	json_object_object_add(out, "reset_session", json_object_new_boolean(reset));
	json_object_object_add(out, "status", json_object_new_string("provisioning"));
	return resp_json(r, 200, out);
}

int
h_lifecycle_pause(struct req *r)
{
	struct json_object *out = NULL;
	const char *id = NULL, *params[2], *ids;
	struct ws_row w;
	PGresult *res;
	int i, n, rc;

	if (req_workspace_id(r, &id) < 0)
		return -1;
	if (db_begin(r->arena) < 0 || db_exec(r->arena, HIERARCHY_LOCK_SQL, 0, NULL) == NULL)
		return fail_tx(r, "failed to pause workspace");
	rc = lock_row(r, id, &w);
	if (rc < 0)
		return fail_tx(r, "failed to pause workspace");
	if (rc == 0 || strcmp(w.status, "removed") == 0 || strcmp(w.status, "paused") == 0) {
		db_rollback();
		return resp_error(r, 404, "workspace not found or already paused", NULL);
	}
	params[0] = id;
	res = db_exec(r->arena, SUBTREE_CTE " UPDATE workspaces w SET status = 'paused', url = NULL, "
	    "updated_at = now() FROM d WHERE w.id = d.id AND w.status NOT IN ('removed', 'paused') "
	    "RETURNING w.id, w.name, COALESCE(w.runtime, '')", 1, params);
	if (res == NULL)
		return fail_tx(r, "failed to pause workspace");
	n = PQntuples(res);
	if ((ids = id_array(r, res, 0)) == NULL)
		return fail_tx(r, "failed to pause workspace");
	params[0] = ids;
	params[1] = "cancelled: workspace paused";
	if (db_exec(r->arena, CANCEL_JOBS_SQL, 2, params) == NULL)
		return fail_tx(r, "failed to pause workspace");
	for (i = 0; i < n; i++) {
		struct json_object *ev = jsonx_own(r->arena, json_object_new_object());

		if (strcmp(PQgetvalue(res, i, 2), "external") != 0 &&
		    queue_job(r, PQgetvalue(res, i, 0), "stop", NULL) < 0)
			return fail_tx(r, "failed to pause workspace");
		if (ev == NULL)
			return fail_tx(r, "failed to pause workspace");
		json_object_object_add(ev, "name", json_object_new_string(PQgetvalue(res, i, 1)));
		if (events_record(r->arena, "WORKSPACE_PAUSED", PQgetvalue(res, i, 0), ev) < 0)
			return fail_tx(r, "failed to pause workspace");
	}
	if (db_commit(r->arena) < 0)
		return fail_tx(r, "failed to pause workspace");
	log_info("workspace %s: paused with its subtree (%d)", id, n);
	for (i = 0; i < n; i++)
		kv_forget_workspace(PQgetvalue(res, i, 0));

	out = jsonx_own(r->arena, json_object_new_object());
	if (out == NULL)
		return -1;
	json_object_object_add(out, "paused_count", json_object_new_int(n));
	json_object_object_add(out, "status", json_object_new_string("paused"));
	return resp_json(r, 200, out);
}

int
h_lifecycle_resume(struct req *r)
{
	struct json_object *out = NULL, *payload = NULL;
	const char *id = NULL, *params[1];
	struct ws_row w;
	PGresult *res;
	int i, n, rc, external;

	if (req_workspace_id(r, &id) < 0)
		return -1;
	if (db_begin(r->arena) < 0 || db_exec(r->arena, HIERARCHY_LOCK_SQL, 0, NULL) == NULL)
		return fail_tx(r, "failed to resume workspace");
	rc = lock_row(r, id, &w);
	if (rc < 0)
		return fail_tx(r, "failed to resume workspace");
	if (rc == 0 || strcmp(w.status, "paused") != 0) {
		db_rollback();
		return resp_error(r, 404, "workspace not found or not paused", NULL);
	}
	switch (paused_ancestor(r, id)) {
	case 0:
		break;
	case 1:
		db_rollback();
		return resp_error(r, 409, "cannot resume: a parent workspace is paused", NULL);
	default:
		return fail_tx(r, "failed to resume workspace");
	}
	/* External agents have no container: they come back online by heartbeating. */
	params[0] = id;
	res = db_exec(r->arena, SUBTREE_CTE " UPDATE workspaces w SET status = CASE "
	    "WHEN w.runtime = 'external' THEN 'offline'::workspace_status "
	    "ELSE 'provisioning'::workspace_status END, updated_at = now() "
	    "FROM d WHERE w.id = d.id AND w.status = 'paused' "
	    "RETURNING w.id, w.name, COALESCE(w.tier, 1), COALESCE(w.runtime, '')", 1, params);
	if (res == NULL)
		return fail_tx(r, "failed to resume workspace");
	n = PQntuples(res);
	payload = jsonx_own(r->arena, json_object_new_object());
	if (payload == NULL)
		return fail_tx(r, "failed to resume workspace");
	json_object_object_add(payload, "reason", json_object_new_string("resume"));
	for (i = 0; i < n; i++) {
		external = strcmp(PQgetvalue(res, i, 3), "external") == 0;
		if (!external && queue_job(r, PQgetvalue(res, i, 0), "provision", payload) < 0)
			return fail_tx(r, "failed to resume workspace");
		if (events_record(r->arena, external ? "WORKSPACE_OFFLINE" : "WORKSPACE_PROVISIONING",
		    PQgetvalue(res, i, 0), external ? NULL : ev_name(r, PQgetvalue(res, i, 1),
		    strtol(PQgetvalue(res, i, 2), NULL, 10), PQgetvalue(res, i, 3))) < 0)
			return fail_tx(r, "failed to resume workspace");
	}
	if (db_commit(r->arena) < 0)
		return fail_tx(r, "failed to resume workspace");
	log_info("workspace %s: resumed with its subtree (%d)", id, n);

	out = jsonx_own(r->arena, json_object_new_object());
	if (out == NULL)
		return -1;
	json_object_object_add(out, "resumed_count", json_object_new_int(n));
	json_object_object_add(out, "status", json_object_new_string("provisioning"));
	return resp_json(r, 200, out);
}

int
h_lifecycle_hibernate(struct req *r)
{
	struct json_object *out = NULL, *extra = NULL;
	const char *id = NULL, *params[2], *ids;
	struct ws_row w;
	int rc;

	if (req_workspace_id(r, &id) < 0)
		return -1;
	if (db_begin(r->arena) < 0)
		return fail_tx(r, "failed to hibernate workspace");
	rc = lock_row(r, id, &w);
	if (rc < 0)
		return fail_tx(r, "failed to hibernate workspace");
	if (rc == 0 || strcmp(w.status, "removed") == 0) {
		db_rollback();
		return resp_error(r, 404, "workspace not found", NULL);
	}
	if (strcmp(w.runtime, "external") == 0) {
		db_rollback();
		return resp_error(r, 400, "external workspaces cannot be hibernated", NULL);
	}
	if (strcmp(w.status, "online") != 0 && strcmp(w.status, "degraded") != 0) {
		db_rollback();
		return resp_error(r, 409, arena_printf(r->arena, "workspace is %s: only an online or "
		    "degraded workspace can be hibernated", w.status), NULL);
	}
	if (w.active_tasks > 0 && !query_true(r, "force")) {
		db_rollback();
		extra = json_object_new_object();
		if (extra != NULL)
			json_object_object_add(extra, "active_tasks",
			    json_object_new_int64(w.active_tasks));
		return resp_error(r, 409, "workspace has active tasks; use ?force=true to "
		    "terminate them", extra);
	}
	params[0] = id;
	if (db_exec(r->arena, "UPDATE workspaces SET status = 'hibernating', url = NULL, "
	    "updated_at = now() WHERE id = $1::uuid", 1, params) == NULL)
		return fail_tx(r, "failed to hibernate workspace");
	ids = arena_printf(r->arena, "{%s}", id);
	params[0] = ids;
	params[1] = "cancelled: workspace hibernating";
	if (ids == NULL || db_exec(r->arena, CANCEL_JOBS_SQL, 2, params) == NULL ||
	    queue_job(r, id, "hibernate", NULL) < 0 ||
	    events_record(r->arena, "WORKSPACE_HIBERNATING", id,
	    ev_name(r, w.name, w.tier, NULL)) < 0)
		return fail_tx(r, "failed to hibernate workspace");
	if (db_commit(r->arena) < 0)
		return fail_tx(r, "failed to hibernate workspace");
	log_info("workspace %s: hibernation queued", id);
	kv_forget_workspace(id);

	/* The container stops asynchronously; WORKSPACE_HIBERNATED follows when it has. */
	out = jsonx_own(r->arena, json_object_new_object());
	if (out == NULL)
		return -1;
	json_object_object_add(out, "status", json_object_new_string("hibernating"));
	return resp_json(r, 200, out);
}

/* Locks the workspace row (FOR UPDATE). 1 found (w filled), 0 no such row, -1 database error. */
static int
lock_row(struct req *r, const char *id, struct ws_row *w)
{
	const char *params[1] = { id };
	PGresult *res;

	res = db_exec(r->arena, "SELECT id, name, status::text, COALESCE(runtime, ''), "
	    "COALESCE(tier, 1), COALESCE(active_tasks, 0) FROM workspaces WHERE id = $1::uuid "
	    "FOR UPDATE", 1, params);
	if (res == NULL)
		return -1;
	if (PQntuples(res) == 0)
		return 0;
	w->id = PQgetvalue(res, 0, 0);
	w->name = PQgetvalue(res, 0, 1);
	w->status = PQgetvalue(res, 0, 2);
	w->runtime = PQgetvalue(res, 0, 3);
	w->tier = strtol(PQgetvalue(res, 0, 4), NULL, 10);
	w->active_tasks = strtol(PQgetvalue(res, 0, 5), NULL, 10);
	return 1;
}

/* 1 when an ancestor is paused, 0 not, -1 database error. */
static int
paused_ancestor(struct req *r, const char *id)
{
	const char *params[1] = { id };
	PGresult *res = db_exec(r->arena, PAUSED_ANCESTOR_SQL, 1, params);

	if (res == NULL)
		return -1;
	return PQntuples(res) > 0;
}

/* The body is optional (the canvas posts none): *body NULL when empty. 0, or -1 with 400 set. */
static int
opt_body(struct req *r, struct json_object **body)
{
	const char *cl = req_env(r, "CONTENT_LENGTH");

	*body = NULL;
	if (cl == NULL || cl[0] == '\0' || strcmp(cl, "0") == 0)
		return 0;
	if (req_json_body(r, body) == 0)
		return 0;
	if (r->status == 400)
		return resp_error(r, 400, "invalid request body", NULL);
	return -1;
}

static int
body_bool(struct json_object *body, const char *key)
{
	struct json_object *v = NULL;

	return body != NULL && json_object_object_get_ex(body, key, &v) &&
	    json_object_is_type(v, json_type_boolean) && json_object_get_boolean(v);
}

/* A non-empty string value, or NULL. */
static const char *
body_str(struct json_object *body, const char *key)
{
	struct json_object *v = NULL;
	const char *s;

	if (body == NULL || !json_object_object_get_ex(body, key, &v) ||
	    !json_object_is_type(v, json_type_string))
		return NULL;
	s = json_object_get_string(v);
	return s[0] != '\0' ? s : NULL;
}

static int
query_true(struct req *r, const char *name)
{
	const char *v = req_query(r, name);

	return v != NULL && strcmp(v, "true") == 0;
}

/* INSERTs a queued job (its trigger NOTIFYs the provisioner at COMMIT). Returns 0 or -1. */
static int
queue_job(struct req *r, const char *id, const char *kind, struct json_object *payload)
{
	const char *params[3];
	size_t len;

	params[0] = id;
	params[1] = kind;
	params[2] = payload != NULL ? jsonx_dump(payload, &len) : "{}";
	return db_exec(r->arena, "INSERT INTO provision_jobs (workspace_id, kind, payload) "
	    "VALUES ($1::uuid, $2, $3::jsonb)", 3, params) == NULL ? -1 : 0;
}

/* {name, tier[, runtime]}, owned by the arena. */
static struct json_object *
ev_name(struct req *r, const char *name, long tier, const char *runtime)
{
	struct json_object *ev = jsonx_own(r->arena, json_object_new_object());

	if (ev == NULL)
		return NULL;
	json_object_object_add(ev, "name", json_object_new_string(name));
	if (runtime != NULL)
		json_object_object_add(ev, "runtime", json_object_new_string(runtime));
	json_object_object_add(ev, "tier", json_object_new_int64(tier));
	return ev;
}

/* A uuid[] literal of column col (ids from the database, so safe). NULL when out of memory. */
static const char *
id_array(struct req *r, const PGresult *res, int col)
{
	int i, n = PQntuples(res);
	size_t len = 3 + (size_t)n * 37, o = 0;
	char *buf = arena_alloc(r->arena, len);

	if (buf == NULL)
		return NULL;
	buf[o++] = '{';
	for (i = 0; i < n; i++)
		o += (size_t)snprintf(buf + o, len - o, "%s%s", i > 0 ? "," : "",
		    PQgetvalue(res, i, col));
	buf[o++] = '}';
	buf[o] = '\0';
	return buf;
}


/* Rolls back; 503 when the database is unreachable, else 500 msg. Always -1. */
static int
fail_tx(struct req *r, const char *msg)
{
	int down = db_unavailable();

	db_rollback();
	if (down)
		return resp_unavailable(r);
	return resp_error(r, 500, msg, NULL);
}
