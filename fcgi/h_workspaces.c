/*
 * h_workspaces.c: the workspace routes: list, create, get, patch, delete, state (api.md §4.2-4.3).
 * Owns nothing; each state change commits with its structure_events rows in one transaction.
 */
#include "fcgi/handlers.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/db.h"
#include "common/events.h"
#include "common/jsonx.h"
#include "common/kv.h"
#include "common/log.h"
#include "common/tokens.h"
#include "common/urlcheck.h"
#include "common/util.h"
#include "fcgi/guard.h"
#include "fcgi/resp.h"

#define TEMPLATE_MAX_CHARS 255
#define DIR_MAX_BYTES 4096
#define URL_MAX_BYTES 2048
#define HOST_MAX_BYTES 255
#define MAX_TASKS_LIMIT 1000
#define DEFAULT_TIER 3
#define URL_CACHE_TTL_S 300
#define CANVAS_MSG "canvas must be an object with numeric x and y"
#define SEED_MEMORIES_MAX 100
#define SEED_CONTENT_MAX 100000	/* bytes; longer content is cut at a UTF-8 boundary */

/* Serialises parent_id changes, creates under a parent and cascades: no cycle, no orphan. */
#define HIERARCHY_LOCK_SQL "SELECT pg_advisory_xact_lock(4242000001)"


/* One select list for list and get; the C_* enum names its columns. */
#define WS_COLUMNS "w.id, w.name, NULLIF(w.role, ''), COALESCE(w.tier, 1), w.status::text, " \
	"w.agent_card::text, COALESCE(w.url, ''), w.parent_id, COALESCE(w.active_tasks, 0), " \
	"w.max_concurrent_tasks, COALESCE(w.last_error_rate, 0), COALESCE(w.last_sample_error, ''), " \
	"COALESCE(w.uptime_seconds, 0), COALESCE(w.current_task, ''), " \
	"COALESCE(w.runtime, 'langgraph'), NULLIF(w.workspace_dir, ''), COALESCE(cl.x, 0), " \
	"COALESCE(cl.y, 0), COALESCE(cl.collapsed, false), w.budget_limit, w.monthly_spend, " \
	DB_RFC3339("w.last_outbound_at") \
	" FROM workspaces w LEFT JOIN canvas_layouts cl ON cl.workspace_id = w.id"

enum ws_col {
	C_ID, C_NAME, C_ROLE, C_TIER, C_STATUS, C_CARD, C_URL, C_PARENT, C_ACTIVE, C_MAXTASKS,
	C_ERRRATE, C_SAMPLEERR, C_UPTIME, C_TASK, C_RUNTIME, C_DIR, C_X, C_Y, C_COLLAPSED,
	C_BUDGET, C_SPEND, C_OUTBOUND
};

/* One validated initial_memories entry; content already cut to SEED_CONTENT_MAX. */
struct seed_memory {
	const char *content, *scope;
};

/* A validated POST /workspaces body. */
struct ws_create {
	const char *name, *role, *template, *model, *runtime, *url, *dir, *access, *parent_id;
	int64_t tier, budget, max_tasks;
	int has_budget, external;
	double x, y;
	struct json_object *secrets;	/* checked key -> non-empty string, or NULL */
	struct seed_memory *memories;
	size_t nmemories;
};

/* A validated PATCH /workspaces/:id body: has_* says which keys were sent. */
struct ws_patch {
	int has_name, has_role, has_tier, has_parent, has_collapsed, has_runtime, has_dir, has_xy;
	const char *name, *role, *parent_id, *runtime, *dir;
	int64_t tier;
	int collapsed;
	double x, y;
};

/* The row PATCH compares against, read FOR UPDATE. */
struct ws_current {
	const char *name, *role, *parent_id, *runtime, *dir, *access;
	int64_t tier;
	int collapsed;
	double x, y;
};

static struct json_object *ws_object(const PGresult *res, int row, int full);
static struct json_object *jstr(const char *s);
static struct json_object *jint(const char *s);
static struct json_object *jnum(const char *s);
static struct json_object *jraw(const char *s);
__attribute__((format(printf, 2, 3))) static int bad(struct req *r, const char *fmt, ...);
static int get_string(struct req *r, struct json_object *body, const char *key, const char **out);
static int get_int(struct req *r, struct json_object *body, const char *key, int64_t *out);
static int get_bool(struct req *r, struct json_object *body, const char *key, int *out);
static int get_number(struct json_object *v, double *out);
static long utf8_chars(const char *s);
static const char *fields_problem(const char *name, const char *role, const char *model,
    const char *runtime);
static int has_text(const char *s);
static int template_ok(const char *t);
static int dir_ok(const char *dir);
static int url_ok(const char *url);
static int host_ok(const char *host);
static int parse_create(struct req *r, struct json_object *body, struct ws_create *in);
static int parse_secrets(struct req *r, struct json_object *body, struct ws_create *in);
static int parse_memories(struct req *r, struct json_object *body, struct ws_create *in);
static int parse_memory(struct req *r, struct json_object *e, size_t i, int root,
    struct seed_memory *m);
static int store_seed(struct req *r, const char *id, const struct ws_create *in);
static int parse_patch(struct req *r, struct json_object *body, struct ws_patch *p);
static int lock_parent(struct req *r, const char *parent_id);
static int creates_cycle(struct req *r, const char *id, const char *parent_id);
static int create_external_reply(struct req *r, const char *id, const char *token);
static const char *platform_url(struct req *r);
static int fail_tx(struct req *r, const char *msg);
static int streq_null(const char *a, const char *b);
static const char *id_array(struct req *r, const char *root, const PGresult *res, int col,
    size_t *n);
static char *fmt_double(struct req *r, double d);
static const char *lower_uuid(struct req *r, const char *s);

static const char *const blocked_dirs[] = { "/etc", "/var", "/proc", "/sys", "/dev", "/boot",
	"/sbin", "/bin", "/lib", "/lib32", "/lib64", "/usr", "/run" };

/* The reference's validateWorkspaceFields messages (H/workspace_crud.go), in its order. */
static const struct field_rule {
	const char *newline, *special, *too_long;
	long max;
} field_rules[4] = {
	{ "name must not contain newline characters", "name contains invalid characters",
	  "name must be at most 255 characters", 255 },
	{ "role must not contain newline characters", "role contains invalid characters",
	  "role must be at most 1000 characters", 1000 },
	{ "model must not contain newline characters", NULL,
	  "model must be at most 100 characters", 100 },
	{ "runtime must not contain newline characters", NULL,
	  "runtime must be at most 100 characters", 100 },
};

int
h_workspaces_list(struct req *r)
{
	PGresult *res;
	struct json_object *arr;
	int i, n;

	res = db_exec(r->arena, "SELECT " WS_COLUMNS " WHERE w.status <> 'removed' "
	    "ORDER BY w.created_at, w.id", 0, NULL);
	if (res == NULL)
		return -1;
	arr = jsonx_own(r->arena, json_object_new_array());
	if (arr == NULL)
		return -1;
	n = PQntuples(res);
	for (i = 0; i < n; i++)
		json_object_array_add(arr, ws_object(res, i, 1));
	return resp_json(r, 200, arr);
}

int
h_workspaces_create(struct req *r)
{
	struct json_object *body = NULL, *ev = NULL, *out = NULL;
	struct ws_create in;
	const char *params[12], *id, *status;
	char tier[24], budget[24], maxt[24], token[TOKEN_LEN + 1];
	PGresult *res;
	redisReply *rep;
	int rc = -1;

	token[0] = '\0';
	if (req_json_body_or(r, &body, "invalid workspace payload") < 0)
		return -1;
	if (parse_create(r, body, &in) < 0)
		return -1;
	if (!in.external)
		status = "provisioning";
	else if (in.url != NULL)
		status = "online";
	else
		status = "awaiting_agent";

	if (db_begin(r->arena) < 0)
		return fail_tx(r, "failed to create workspace");
	if (in.parent_id != NULL) {
		if (db_exec(r->arena, HIERARCHY_LOCK_SQL, 0, NULL) == NULL)
			return fail_tx(r, "failed to create workspace");
		switch (lock_parent(r, in.parent_id)) {
		case 0:
			break;
		case 1:
			db_rollback();
			return resp_error(r, 400, "parent workspace not found", NULL);
		default:
			return fail_tx(r, "failed to create workspace");
		}
	}
	snprintf(tier, sizeof(tier), "%lld", (long long)in.tier);
	snprintf(budget, sizeof(budget), "%lld", (long long)in.budget);
	snprintf(maxt, sizeof(maxt), "%lld", (long long)in.max_tasks);
	params[0] = in.name;
	params[1] = in.role;
	params[2] = tier;
	params[3] = in.runtime;
	params[4] = status;
	params[5] = in.parent_id;
	params[6] = in.dir;
	params[7] = in.access;
	params[8] = in.has_budget ? budget : NULL;
	params[9] = maxt;
	params[10] = in.external ? in.url : NULL;
	res = db_exec(r->arena, "WITH n AS (SELECT gen_random_uuid() AS id) "
	    "INSERT INTO workspaces (id, name, role, tier, runtime, status, parent_id, workspace_dir, "
	    "workspace_access, budget_limit, max_concurrent_tasks, url, awareness_namespace) "
	    "SELECT n.id, $1, $2, $3::int, $4, $5::workspace_status, $6::uuid, $7, $8, $9::bigint, "
	    "$10::int, $11, 'workspace:' || n.id FROM n RETURNING id", 11, params);
	if (res == NULL || PQntuples(res) != 1)
		return fail_tx(r, "failed to create workspace");
	id = PQgetvalue(res, 0, 0);

	params[0] = id;
	params[1] = fmt_double(r, in.x);
	params[2] = fmt_double(r, in.y);
	if (params[1] == NULL || params[2] == NULL || db_exec(r->arena,
	    "INSERT INTO canvas_layouts (workspace_id, x, y) VALUES ($1, $2::float8, $3::float8)",
	    3, params) == NULL)
		return fail_tx(r, "failed to create workspace");

	if (!in.external) {
		struct json_object *job = jsonx_own(r->arena, json_object_new_object());
		size_t len;

		if (job == NULL)
			return fail_tx(r, "failed to create workspace");
		if (in.template != NULL)
			json_object_object_add(job, "template",
			    json_object_new_string(in.template));
		if (in.model != NULL)
			json_object_object_add(job, "model", json_object_new_string(in.model));
		params[1] = jsonx_dump(job, &len);
		if (db_exec(r->arena, "INSERT INTO provision_jobs (workspace_id, kind, payload) "
		    "VALUES ($1, 'provision', $2::jsonb)", 2, params) == NULL)
			return fail_tx(r, "failed to create workspace");
	}

	/* The canvas adds the node on WORKSPACE_PROVISIONING (name, tier, runtime, parent_id, x, y). */
	ev = jsonx_own(r->arena, json_object_new_object());
	if (ev == NULL)
		return fail_tx(r, "failed to create workspace");
	json_object_object_add(ev, "name", json_object_new_string(in.name));
	json_object_object_add(ev, "tier", json_object_new_int64(in.tier));
	json_object_object_add(ev, "runtime", json_object_new_string(in.runtime));
	if (in.parent_id != NULL)
		json_object_object_add(ev, "parent_id", json_object_new_string(in.parent_id));
	json_object_object_add(ev, "x", jsonx_number(in.x));
	json_object_object_add(ev, "y", jsonx_number(in.y));
	if (events_record(r->arena, "WORKSPACE_PROVISIONING", id, ev) < 0)
		return fail_tx(r, "failed to create workspace");
	if (store_seed(r, id, &in) < 0)
		return -1;

	if (in.external) {
		ev = jsonx_own(r->arena, json_object_new_object());
		if (ev == NULL)
			return fail_tx(r, "failed to create workspace");
		json_object_object_add(ev, "name", json_object_new_string(in.name));
		json_object_object_add(ev, "external", json_object_new_boolean(1));
		if (in.url == NULL && tokens_mint_workspace(r->arena, id, token) < 0)
			return fail_tx(r, "failed to create workspace");
		if (events_record(r->arena, in.url != NULL ? "WORKSPACE_ONLINE" :
		    "WORKSPACE_AWAITING_AGENT", id, ev) < 0)
			goto fail;
	}
	if (db_commit(r->arena) < 0)
		goto fail;
	log_info("workspace %s created (%s)", id, status);

	if (in.external && in.url != NULL) {
		/* The A2A proxy's URL cache, as the reference fills it; best effort. */
		rep = kv_command(r->arena, "SET ws:%s:url %s EX %d", id, in.url, URL_CACHE_TTL_S);
		if (rep == NULL)
			log_warn("workspace %s: url cache not written", id);
	}
	if (in.external) {
		rc = create_external_reply(r, id, in.url != NULL ? NULL : token);
		goto out;
	}
	out = jsonx_own(r->arena, json_object_new_object());
	if (out == NULL)
		goto out;
	json_object_object_add(out, "awareness_namespace",
	    jstr(arena_printf(r->arena, "workspace:%s", id)));
	json_object_object_add(out, "id", json_object_new_string(id));
	json_object_object_add(out, "status", json_object_new_string("provisioning"));
	json_object_object_add(out, "workspace_access", json_object_new_string(in.access));
	rc = resp_json(r, 201, out);
	goto out;
fail:
	rc = fail_tx(r, "failed to create workspace");
out:
	memset(token, 0, sizeof(token));
	return rc;
}

int
h_workspaces_get(struct req *r)
{
	const char *id = NULL, *params[1];
	PGresult *res;

	if (req_workspace_id(r, &id) < 0)
		return -1;
	params[0] = id;
	res = db_exec(r->arena, "SELECT " WS_COLUMNS " WHERE w.id = $1::uuid", 1, params);
	if (res == NULL)
		return -1;
	if (PQntuples(res) == 0)
		return resp_error(r, 404, "workspace not found", NULL);
	return resp_json(r, 200, jsonx_own(r->arena, ws_object(res, 0, 0)));
}

int
h_workspaces_patch(struct req *r)
{
	struct json_object *body = NULL, *ev = NULL, *fields = NULL, *out = NULL;
	struct ws_patch p;
	struct ws_current cur;
	const char *id = NULL, *params[14];
	char tier[24];
	PGresult *res;
	int ch_name, ch_role, ch_tier, ch_parent, ch_runtime, ch_dir, ch_xy, ch_collapsed;

	if (req_workspace_id(r, &id) < 0)
		return -1;
	if (req_json_body_or(r, &body, "invalid request body") < 0)
		return -1;
	if (parse_patch(r, body, &p) < 0)
		return -1;

	if (db_begin(r->arena) < 0)
		return fail_tx(r, "failed to update workspace");
	if (p.has_parent && db_exec(r->arena, HIERARCHY_LOCK_SQL, 0, NULL) == NULL)
		return fail_tx(r, "failed to update workspace");
	params[0] = id;
	res = db_exec(r->arena, "SELECT w.name, w.role, COALESCE(w.tier, 1), w.parent_id, w.runtime, "
	    "w.workspace_dir, w.workspace_access, cl.x, cl.y, COALESCE(cl.collapsed, false) "
	    "FROM workspaces w LEFT JOIN canvas_layouts cl ON cl.workspace_id = w.id "
	    "WHERE w.id = $1::uuid AND w.status <> 'removed' FOR UPDATE OF w", 1, params);
	if (res == NULL)
		return fail_tx(r, "failed to update workspace");
	if (PQntuples(res) == 0) {
		db_rollback();
		return resp_error(r, 404, "workspace not found", NULL);
	}
	cur.name = db_value(res, 0, 0);
	cur.role = db_value(res, 0, 1);
	cur.tier = strtoll(PQgetvalue(res, 0, 2), NULL, 10);
	cur.parent_id = db_value(res, 0, 3);
	cur.runtime = db_value(res, 0, 4);
	cur.dir = db_value(res, 0, 5);
	cur.access = db_value(res, 0, 6);
	cur.x = db_value(res, 0, 7) ? strtod(db_value(res, 0, 7), NULL) : 0;
	cur.y = db_value(res, 0, 8) ? strtod(db_value(res, 0, 8), NULL) : 0;
	cur.collapsed = PQgetvalue(res, 0, 9)[0] == 't';

	ch_name = p.has_name && !streq_null(p.name, cur.name);
	ch_role = p.has_role && !streq_null(p.role, cur.role);
	ch_tier = p.has_tier && p.tier != cur.tier;
	ch_parent = p.has_parent && !streq_null(p.parent_id, cur.parent_id);
	ch_runtime = p.has_runtime && !streq_null(p.runtime, cur.runtime);
	ch_dir = p.has_dir && !streq_null(p.dir, cur.dir);
	ch_xy = p.has_xy && (db_value(res, 0, 7) == NULL || p.x != cur.x || p.y != cur.y);
	ch_collapsed = p.has_collapsed && p.collapsed != cur.collapsed;

	if (ch_parent && p.parent_id != NULL) {
		if (strcasecmp(p.parent_id, id) == 0) {
			db_rollback();
			return resp_error(r, 400, "parent_id would create a cycle", NULL);
		}
		switch (lock_parent(r, p.parent_id)) {
		case 0:
			break;
		case 1:
			db_rollback();
			return resp_error(r, 400, "parent workspace not found", NULL);
		default:
			return fail_tx(r, "failed to update workspace");
		}
		switch (creates_cycle(r, id, p.parent_id)) {
		case 0:
			break;
		case 1:
			db_rollback();
			return resp_error(r, 400, "parent_id would create a cycle", NULL);
		default:
			return fail_tx(r, "failed to update workspace");
		}
	}
	/* A bind mount needs a directory: clearing it under read_only/read_write is inconsistent. */
	if (ch_dir && p.dir == NULL && cur.access != NULL && strcmp(cur.access, "none") != 0) {
		db_rollback();
		return resp_error(r, 400, "invalid workspace access", NULL);
	}

	if (ch_name || ch_role || ch_tier || ch_parent || ch_runtime || ch_dir) {
		snprintf(tier, sizeof(tier), "%lld", (long long)p.tier);
		params[0] = id;
		params[1] = ch_name ? "t" : "f";
		params[2] = p.name;
		params[3] = ch_role ? "t" : "f";
		params[4] = p.role;
		params[5] = ch_tier ? "t" : "f";
		params[6] = tier;
		params[7] = ch_parent ? "t" : "f";
		params[8] = p.parent_id;
		params[9] = ch_runtime ? "t" : "f";
		params[10] = p.runtime;
		params[11] = ch_dir ? "t" : "f";
		params[12] = p.dir;
		if (db_exec(r->arena, "UPDATE workspaces SET "
		    "name = CASE WHEN $2::bool THEN $3 ELSE name END, "
		    "role = CASE WHEN $4::bool THEN $5 ELSE role END, "
		    "tier = CASE WHEN $6::bool THEN $7::int ELSE tier END, "
		    "parent_id = CASE WHEN $8::bool THEN $9::uuid ELSE parent_id END, "
		    "runtime = CASE WHEN $10::bool THEN $11 ELSE runtime END, "
		    "workspace_dir = CASE WHEN $12::bool THEN $13 ELSE workspace_dir END, "
		    "updated_at = now() WHERE id = $1::uuid", 13, params) == NULL)
			return fail_tx(r, "failed to update workspace");
	}
	if (ch_xy || ch_collapsed) {
		params[0] = id;
		params[1] = fmt_double(r, ch_xy ? p.x : cur.x);
		params[2] = fmt_double(r, ch_xy ? p.y : cur.y);
		params[3] = (ch_collapsed ? p.collapsed : cur.collapsed) ? "t" : "f";
		params[4] = ch_xy ? "t" : "f";
		params[5] = ch_collapsed ? "t" : "f";
		if (params[1] == NULL || params[2] == NULL || db_exec(r->arena,
		    "INSERT INTO canvas_layouts (workspace_id, x, y, collapsed) "
		    "VALUES ($1::uuid, $2::float8, $3::float8, $4::bool) "
		    "ON CONFLICT (workspace_id) DO UPDATE SET "
		    "x = CASE WHEN $5::bool THEN EXCLUDED.x ELSE canvas_layouts.x END, "
		    "y = CASE WHEN $5::bool THEN EXCLUDED.y ELSE canvas_layouts.y END, "
		    "collapsed = CASE WHEN $6::bool THEN EXCLUDED.collapsed "
		    "ELSE canvas_layouts.collapsed END", 6, params) == NULL)
			return fail_tx(r, "failed to update workspace");
	}

	if (ch_name || ch_role || ch_tier || ch_runtime || ch_dir || ch_xy || ch_collapsed) {
		/* New values of what changed; the host path itself stays out of the event stream. */
		ev = jsonx_own(r->arena, json_object_new_object());
		fields = json_object_new_array();
		if (ev == NULL || fields == NULL) {
			json_object_put(fields);
			return fail_tx(r, "failed to update workspace");
		}
		json_object_object_add(ev, "fields", fields);
		if (ch_name) {
			json_object_array_add(fields, json_object_new_string("name"));
			json_object_object_add(ev, "name", json_object_new_string(p.name));
		}
		if (ch_role) {
			json_object_array_add(fields, json_object_new_string("role"));
			json_object_object_add(ev, "role", jstr(p.role));
		}
		if (ch_tier) {
			json_object_array_add(fields, json_object_new_string("tier"));
			json_object_object_add(ev, "tier", json_object_new_int64(p.tier));
		}
		if (ch_runtime) {
			json_object_array_add(fields, json_object_new_string("runtime"));
			json_object_object_add(ev, "runtime", json_object_new_string(p.runtime));
		}
		if (ch_dir)
			json_object_array_add(fields, json_object_new_string("workspace_dir"));
		if (ch_collapsed) {
			json_object_array_add(fields, json_object_new_string("collapsed"));
			json_object_object_add(ev, "collapsed", json_object_new_boolean(p.collapsed));
		}
		if (ch_xy) {
			json_object_array_add(fields, json_object_new_string("x"));
			json_object_array_add(fields, json_object_new_string("y"));
			json_object_object_add(ev, "x", jsonx_number(p.x));
			json_object_object_add(ev, "y", jsonx_number(p.y));
		}
		if (events_record(r->arena, "WORKSPACE_UPDATED", id, ev) < 0)
			return fail_tx(r, "failed to update workspace");
	}
	if (ch_parent) {
		ev = jsonx_own(r->arena, json_object_new_object());
		if (ev == NULL)
			return fail_tx(r, "failed to update workspace");
		json_object_object_add(ev, "parent_id", jstr(p.parent_id));
		json_object_object_add(ev, "old_parent_id", jstr(cur.parent_id));
		if (events_record(r->arena, "WORKSPACE_MOVED", id, ev) < 0)
			return fail_tx(r, "failed to update workspace");
	}
	if (db_commit(r->arena) < 0)
		return fail_tx(r, "failed to update workspace");

	out = jsonx_own(r->arena, json_object_new_object());
	if (out == NULL)
		return -1;
	if (ch_dir)
		json_object_object_add(out, "needs_restart", json_object_new_boolean(1));
	json_object_object_add(out, "status", json_object_new_string("updated"));
	return resp_json(r, 200, out);
}

int
h_workspaces_delete(struct req *r)
{
	struct json_object *out = NULL, *kids = NULL, *kid = NULL, *ev = NULL;
	const char *id = NULL, *params[2], *confirm, *purge_arg, *all, *fresh;
	PGresult *res, *kres, *dres;
	size_t nall = 0, nfresh = 0;
	int i, nkids, ndesc, purge, root_removed;

	if (req_workspace_id(r, &id) < 0)
		return -1;
	confirm = req_query(r, "confirm");
	purge_arg = req_query(r, "purge");
	purge = purge_arg != NULL && strcmp(purge_arg, "true") == 0;

	if (db_begin(r->arena) < 0)
		return fail_tx(r, "failed to delete workspace");
	if (db_exec(r->arena, HIERARCHY_LOCK_SQL, 0, NULL) == NULL)
		return fail_tx(r, "failed to delete workspace");
	params[0] = id;
	res = db_exec(r->arena, "SELECT id, status::text FROM workspaces WHERE id = $1::uuid "
	    "FOR UPDATE", 1, params);
	if (res == NULL)
		return fail_tx(r, "failed to delete workspace");
	if (PQntuples(res) == 0) {
		db_rollback();
		return resp_error(r, 404, "workspace not found", NULL);
	}
	id = PQgetvalue(res, 0, 0);
	params[0] = id;
	root_removed = strcmp(PQgetvalue(res, 0, 1), "removed") == 0;
	if (root_removed && !purge) {
		/* Already gone: idempotent, and no second WORKSPACE_REMOVED. */
		db_rollback();
		out = jsonx_own(r->arena, json_object_new_object());
		if (out == NULL)
			return -1;
		json_object_object_add(out, "cascade_deleted", json_object_new_int(0));
		json_object_object_add(out, "status", json_object_new_string("removed"));
		return resp_json(r, 200, out);
	}

	kres = db_exec(r->arena, "SELECT id, name FROM workspaces WHERE parent_id = $1::uuid "
	    "AND status <> 'removed' ORDER BY created_at, id", 1, params);
	if (kres == NULL)
		return fail_tx(r, "failed to check children");
	nkids = PQntuples(kres);
	if (nkids > 0 && (confirm == NULL || strcmp(confirm, "true") != 0)) {
		db_rollback();
		out = jsonx_own(r->arena, json_object_new_object());
		kids = json_object_new_array();
		if (out == NULL || kids == NULL) {
			json_object_put(kids);
			return -1;
		}
		for (i = 0; i < nkids; i++) {
			kid = json_object_new_object();
			json_object_object_add(kid, "id", jstr(PQgetvalue(kres, i, 0)));
			json_object_object_add(kid, "name", jstr(PQgetvalue(kres, i, 1)));
			json_object_array_add(kids, kid);
		}
		json_object_object_add(out, "children", kids);
		json_object_object_add(out, "children_count", json_object_new_int(nkids));
		json_object_object_add(out, "message", json_object_new_string("This workspace has "
		    "sub-workspaces. Delete with ?confirm=true to cascade delete."));
		json_object_object_add(out, "status", jstr("confirmation_required"));
		return resp_json(r, 409, out);
	}

	/* Every descendant at any depth; a purge takes removed ones too (no orphans left). */
	params[1] = purge ? "t" : "f";
	dres = db_exec(r->arena, "WITH RECURSIVE d AS ("
	    " SELECT id, status FROM workspaces WHERE parent_id = $1::uuid"
	    "  AND ($2::bool OR status <> 'removed')"
	    " UNION SELECT w.id, w.status FROM workspaces w JOIN d ON w.parent_id = d.id"
	    "  WHERE $2::bool OR w.status <> 'removed')"
	    " SELECT id, status::text FROM d WHERE id <> $1::uuid", 2, params);
	if (dres == NULL)
		return fail_tx(r, "failed to delete workspace");
	ndesc = PQntuples(dres);
	all = id_array(r, id, dres, -1, &nall);
	fresh = id_array(r, root_removed ? NULL : id, dres, 1, &nfresh);
	if (all == NULL || fresh == NULL)
		return fail_tx(r, "failed to delete workspace");

	params[0] = fresh;
	if (db_exec(r->arena, "UPDATE workspaces SET status = 'removed', updated_at = now() "
	    "WHERE id = ANY($1::uuid[])", 1, params) == NULL)
		return fail_tx(r, "failed to delete workspace");
	params[0] = all;
	if (db_exec(r->arena, "DELETE FROM canvas_layouts WHERE workspace_id = ANY($1::uuid[])",
	    1, params) == NULL ||
	    db_exec(r->arena, "UPDATE workspace_auth_tokens SET revoked_at = now() "
	    "WHERE workspace_id = ANY($1::uuid[]) AND revoked_at IS NULL", 1, params) == NULL ||
	    db_exec(r->arena, "UPDATE provision_jobs SET status = 'failed', "
	    "last_error = 'cancelled: workspace removed', updated_at = now() "
	    "WHERE workspace_id = ANY($1::uuid[]) AND status = 'queued' "
	    "AND kind IN ('provision', 'restart')", 1, params) == NULL)
		return fail_tx(r, "failed to delete workspace");
	/* Purged workspaces too: the job has no FK, so their containers are still cleaned up. */
	params[0] = fresh;
	if (db_exec(r->arena, "INSERT INTO provision_jobs (workspace_id, kind) "
	    "SELECT unnest($1::uuid[]), 'remove'", 1, params) == NULL)
		return fail_tx(r, "failed to delete workspace");

	for (i = 0; i < ndesc; i++) {
		if (strcmp(PQgetvalue(dres, i, 1), "removed") == 0)
			continue;
		if (events_record(r->arena, "WORKSPACE_REMOVED", PQgetvalue(dres, i, 0), NULL) < 0)
			return fail_tx(r, "failed to delete workspace");
	}
	if (!root_removed || purge) {
		ev = jsonx_own(r->arena, json_object_new_object());
		if (ev == NULL)
			return fail_tx(r, "failed to delete workspace");
		json_object_object_add(ev, "cascade_deleted", json_object_new_int(ndesc));
		if (purge)
			json_object_object_add(ev, "purged", json_object_new_boolean(1));
		if (events_record(r->arena, "WORKSPACE_REMOVED", id, ev) < 0)
			return fail_tx(r, "failed to delete workspace");
	}

	if (purge) {
		params[0] = all;
		if (db_exec(r->arena, "UPDATE workspaces SET parent_id = NULL WHERE "
		    "parent_id = ANY($1::uuid[]) AND NOT (id = ANY($1::uuid[]))", 1, params) == NULL ||
		    db_exec(r->arena, "UPDATE workspaces SET forwarded_to = NULL WHERE "
		    "forwarded_to = ANY($1::uuid[]) AND NOT (id = ANY($1::uuid[]))", 1, params) == NULL ||
		    db_exec(r->arena, "DELETE FROM workspaces WHERE id = ANY($1::uuid[])",
		    1, params) == NULL)
			return fail_tx(r, "purge failed");
	}
	if (db_commit(r->arena) < 0)
		return fail_tx(r, purge ? "purge failed" : "failed to delete workspace");
	log_info("workspace %s %s with %d descendant(s)", id, purge ? "purged" : "removed", ndesc);

	kv_forget_workspace(id);
	for (i = 0; i < ndesc; i++)
		kv_forget_workspace(PQgetvalue(dres, i, 0));

	out = jsonx_own(r->arena, json_object_new_object());
	if (out == NULL)
		return -1;
	json_object_object_add(out, "cascade_deleted", json_object_new_int(ndesc));
	json_object_object_add(out, "status", json_object_new_string(purge ? "purged" : "removed"));
	return resp_json(r, 200, out);
}

int
h_workspaces_state(struct req *r)
{
	struct json_object *out = NULL;
	const char *id = NULL, *params[1], *status;
	PGresult *res;

	if (req_workspace_id(r, &id) < 0)
		return -1;
	if (guard_lazy_bootstrap(r, id, "workspace", 1) < 0)
		return -1;
	params[0] = id;
	res = db_exec(r->arena, "SELECT status::text FROM workspaces WHERE id = $1::uuid",
	    1, params);
	if (res == NULL)
		return -1;
	out = jsonx_own(r->arena, json_object_new_object());
	if (out == NULL)
		return -1;
	if (PQntuples(res) == 0) {
		json_object_object_add(out, "deleted", json_object_new_boolean(1));
		json_object_object_add(out, "workspace_id", json_object_new_string(id));
		return resp_json(r, 404, out);
	}
	status = PQgetvalue(res, 0, 0);
	if (strcmp(status, "removed") == 0) {
		json_object_object_add(out, "deleted", json_object_new_boolean(1));
		json_object_object_add(out, "status", json_object_new_string(status));
		json_object_object_add(out, "workspace_id", json_object_new_string(id));
		return resp_json(r, 404, out);
	}
	json_object_object_add(out, "deleted", json_object_new_boolean(0));
	json_object_object_add(out, "paused", json_object_new_boolean(strcmp(status, "paused") == 0));
	json_object_object_add(out, "status", json_object_new_string(status));
	json_object_object_add(out, "workspace_id", json_object_new_string(id));
	return resp_json(r, 200, out);
}

/*
 * One row of WS_COLUMNS as the reference's scanWorkspaceRow shapes it, keys in Go's (sorted)
 * order. full=1 is the list item; full=0 is GET /workspaces/:id: sensitive fields stripped,
 * last_outbound_at added.
 */
static struct json_object *
ws_object(const PGresult *res, int row, int full)
{
	struct json_object *o = json_object_new_object();

	if (o == NULL)
		return NULL;
	json_object_object_add(o, "active_tasks", jint(db_value(res, row, C_ACTIVE)));
	json_object_object_add(o, "agent_card", jraw(db_value(res, row, C_CARD)));
	if (full)
		json_object_object_add(o, "budget_limit", jint(db_value(res, row, C_BUDGET)));
	json_object_object_add(o, "collapsed",
	    json_object_new_boolean(PQgetvalue(res, row, C_COLLAPSED)[0] == 't'));
	if (full)
		json_object_object_add(o, "current_task", jstr(db_value(res, row, C_TASK)));
	json_object_object_add(o, "id", jstr(db_value(res, row, C_ID)));
	json_object_object_add(o, "last_error_rate", jnum(db_value(res, row, C_ERRRATE)));
	if (!full)
		json_object_object_add(o, "last_outbound_at", jstr(db_value(res, row, C_OUTBOUND)));
	if (full)
		json_object_object_add(o, "last_sample_error", jstr(db_value(res, row, C_SAMPLEERR)));
	json_object_object_add(o, "max_concurrent_tasks", jint(db_value(res, row, C_MAXTASKS)));
	if (full)
		json_object_object_add(o, "monthly_spend", jint(db_value(res, row, C_SPEND)));
	json_object_object_add(o, "name", jstr(db_value(res, row, C_NAME)));
	json_object_object_add(o, "parent_id", jstr(db_value(res, row, C_PARENT)));
	json_object_object_add(o, "role", jstr(db_value(res, row, C_ROLE)));
	json_object_object_add(o, "runtime", jstr(db_value(res, row, C_RUNTIME)));
	json_object_object_add(o, "status", jstr(db_value(res, row, C_STATUS)));
	json_object_object_add(o, "tier", jint(db_value(res, row, C_TIER)));
	json_object_object_add(o, "uptime_seconds", jint(db_value(res, row, C_UPTIME)));
	json_object_object_add(o, "url", jstr(db_value(res, row, C_URL)));
	if (full)
		json_object_object_add(o, "workspace_dir", jstr(db_value(res, row, C_DIR)));
	json_object_object_add(o, "x", jnum(db_value(res, row, C_X)));
	json_object_object_add(o, "y", jnum(db_value(res, row, C_Y)));
	return o;
}

/* A string, or JSON null for SQL NULL. */
static struct json_object *
jstr(const char *s)
{
	return s ? json_object_new_string(s) : NULL;
}

/* An integer column, or null. */
static struct json_object *
jint(const char *s)
{
	return s ? json_object_new_int64(strtoll(s, NULL, 10)) : NULL;
}

/* A float8 column printed compactly (100, 0.8), or null. */
static struct json_object *
jnum(const char *s)
{
	return s ? jsonx_number(strtod(s, NULL)) : NULL;
}

/* A jsonb column passed through as JSON (re-serialised compact); null for NULL or JSON null. */
static struct json_object *
jraw(const char *s)
{
	return s ? jsonx_parse(s, strlen(s)) : NULL;
}

/* A 400 with a formatted message (keys are our literals). Always -1. */
static int
bad(struct req *r, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return resp_error(r, 400, msg, NULL);
}

/* 0 absent or null, 1 a string in *out, -1 wrong type or unusable text (400 set). */
static int
get_string(struct req *r, struct json_object *body, const char *key, const char **out)
{
	struct json_object *v = NULL;
	const char *s;

	*out = NULL;
	if (!json_object_object_get_ex(body, key, &v) || v == NULL)
		return 0;
	if (!json_object_is_type(v, json_type_string))
		return bad(r, "%s must be a string", key);
	s = json_object_get_string(v);
	if ((size_t)json_object_get_string_len(v) != strlen(s))
		return bad(r, "%s must not contain NUL characters", key);
	if (utf8_chars(s) < 0)
		return bad(r, "%s must be valid UTF-8", key);
	*out = s;
	return 1;
}

/* 0 absent or null, 1 an integer in *out (whole doubles count), -1 otherwise (400 set). */
static int
get_int(struct req *r, struct json_object *body, const char *key, int64_t *out)
{
	struct json_object *v = NULL;
	double d;

	if (!json_object_object_get_ex(body, key, &v) || v == NULL)
		return 0;
	if (json_object_is_type(v, json_type_int)) {
		*out = json_object_get_int64(v);
		return 1;
	}
	if (json_object_is_type(v, json_type_double)) {
		d = json_object_get_double(v);
		if (isfinite(d) && d == floor(d) && fabs(d) < 9007199254740992.0) {
			*out = (int64_t)d;
			return 1;
		}
	}
	return bad(r, "%s must be an integer", key);
}

/* 0 absent or null, 1 a boolean in *out, -1 otherwise (400 set). */
static int
get_bool(struct req *r, struct json_object *body, const char *key, int *out)
{
	struct json_object *v = NULL;

	if (!json_object_object_get_ex(body, key, &v) || v == NULL)
		return 0;
	if (!json_object_is_type(v, json_type_boolean))
		return bad(r, "%s must be a boolean", key);
	*out = json_object_get_boolean(v);
	return 1;
}

/* 0 with a finite number in *out, -1 when v is not one. */
static int
get_number(struct json_object *v, double *out)
{
	if (v == NULL || !(json_object_is_type(v, json_type_int) ||
	    json_object_is_type(v, json_type_double)))
		return -1;
	*out = json_object_get_double(v);
	return isfinite(*out) ? 0 : -1;
}

/* Code points in s, or -1 when s is not well-formed UTF-8 (overlongs, surrogates rejected). */
static long
utf8_chars(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	unsigned long cp;
	long n = 0;
	int more, i;

	while (*p != '\0') {
		if (*p < 0x80) {
			p++;
			n++;
			continue;
		}
		if ((*p & 0xe0) == 0xc0) {
			more = 1;
			cp = *p & 0x1f;
		} else if ((*p & 0xf0) == 0xe0) {
			more = 2;
			cp = *p & 0x0f;
		} else if ((*p & 0xf8) == 0xf0) {
			more = 3;
			cp = *p & 0x07;
		} else {
			return -1;
		}
		for (i = 1; i <= more; i++) {
			if ((p[i] & 0xc0) != 0x80)
				return -1;
			cp = cp << 6 | (p[i] & 0x3f);
		}
		if ((more == 1 && cp < 0x80) || (more == 2 && cp < 0x800) ||
		    (more == 3 && cp < 0x10000) || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return -1;
		p += more + 1;
		n++;
	}
	return n;
}

/*
 * The reference's validateWorkspaceFields (newlines, YAML-special characters in name/role,
 * lengths), counting characters rather than bytes. NULL fields pass. Returns the message or NULL.
 */
static const char *
fields_problem(const char *name, const char *role, const char *model, const char *runtime)
{
	const char *vals[4];
	size_t i;

	vals[0] = name;
	vals[1] = role;
	vals[2] = model;
	vals[3] = runtime;
	for (i = 0; i < 4; i++)
		if (vals[i] != NULL && strpbrk(vals[i], "\n\r") != NULL)
			return field_rules[i].newline;
	for (i = 0; i < 4; i++)
		if (vals[i] != NULL && field_rules[i].special != NULL &&
		    strpbrk(vals[i], "{}[]|>*&!") != NULL)
			return field_rules[i].special;
	for (i = 0; i < 4; i++)
		if (vals[i] != NULL && utf8_chars(vals[i]) > field_rules[i].max)
			return field_rules[i].too_long;
	return NULL;
}

/* 1 when s has a character other than blanks. */
static int
has_text(const char *s)
{
	for (; s != NULL && *s != '\0'; s++)
		if (*s != ' ' && *s != '\t')
			return 1;
	return 0;
}

/* A template is a relative directory under the templates root: no "..", no absolute path. */
static int
template_ok(const char *t)
{
	const char *p;
	size_t n;

	if (t[0] == '/' || t[0] == '\0')
		return 0;
	for (p = t; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f || *p == '\\')
			return 0;
	for (p = t; *p != '\0'; p += n + (p[n] == '/')) {
		n = strcspn(p, "/");
		if (n == 2 && p[0] == '.' && p[1] == '.')
			return 0;
	}
	return 1;
}

/*
 * The reference's validateWorkspaceDir: absolute, no "..", not a system path (checked on the
 * cleaned path). Also refuses "/" itself, control characters, and a few more system trees.
 */
static int
dir_ok(const char *dir)
{
	char clean[DIR_MAX_BYTES + 2];
	const char *p;
	size_t n, o = 0, i, blen;

	if (dir[0] != '/' || strlen(dir) > DIR_MAX_BYTES || strstr(dir, "..") != NULL)
		return 0;
	for (p = dir; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return 0;
	/* filepath.Clean without "..": drop empty and "." segments. */
	for (p = dir; *p != '\0'; p += n) {
		while (*p == '/')
			p++;
		n = strcspn(p, "/");
		if (n == 0 || (n == 1 && p[0] == '.'))
			continue;
		clean[o++] = '/';
		memcpy(clean + o, p, n);
		o += n;
	}
	clean[o] = '\0';
	if (o == 0)
		return 0;
	for (i = 0; i < NELEM(blocked_dirs); i++) {
		blen = strlen(blocked_dirs[i]);
		if (strncmp(clean, blocked_dirs[i], blen) == 0 &&
		    (clean[blen] == '\0' || clean[blen] == '/'))
			return 0;
	}
	return 1;
}

/* An absolute http(s) URL with a host, no credentials, no whitespace or control characters. */
static int
url_ok(const char *url)
{
	const char *p, *h;
	size_t n;

	if (strlen(url) > URL_MAX_BYTES)
		return 0;
	if (strncasecmp(url, "http://", 7) == 0)
		h = url + 7;
	else if (strncasecmp(url, "https://", 8) == 0)
		h = url + 8;
	else
		return 0;
	for (p = url; *p != '\0'; p++)
		if ((unsigned char)*p <= 0x20 || *p == 0x7f || *p == '"' || *p == '<' || *p == '>' ||
		    *p == '\\' || *p == '`')
			return 0;
	n = strcspn(h, "/?#");
	if (n == 0 || memchr(h, '@', n) != NULL)
		return 0;
	return 1;
}

/* A Host header value we are willing to echo into shell and Python snippets. */
static int
host_ok(const char *host)
{
	const char *p;

	if (host == NULL || host[0] == '\0' || strlen(host) > HOST_MAX_BYTES)
		return 0;
	for (p = host; *p != '\0'; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		    *p == '.' || *p == '-' || *p == ':' || *p == '[' || *p == ']' || *p == '_'))
			return 0;
	return 1;
}

/* Validates a POST /workspaces body into in. Returns 0, or -1 with a 400 set. */
static int
parse_create(struct req *r, struct json_object *body, struct ws_create *in)
{
	struct json_object *canvas = NULL, *v = NULL;
	const char *problem;
	int rc;

	memset(in, 0, sizeof(*in));
	if (get_string(r, body, "name", &in->name) < 0 || get_string(r, body, "role", &in->role) < 0 ||
	    get_string(r, body, "template", &in->template) < 0 ||
	    get_string(r, body, "model", &in->model) < 0 ||
	    get_string(r, body, "runtime", &in->runtime) < 0 ||
	    get_string(r, body, "url", &in->url) < 0 ||
	    get_string(r, body, "workspace_dir", &in->dir) < 0 ||
	    get_string(r, body, "workspace_access", &in->access) < 0 ||
	    get_string(r, body, "parent_id", &in->parent_id) < 0 ||
	    get_bool(r, body, "external", &in->external) < 0)
		return -1;
	if (!has_text(in->name))
		return resp_error(r, 400, "name is required", NULL);
	problem = fields_problem(in->name, in->role, in->model, in->runtime);
	if (problem != NULL)
		return resp_error(r, 400, problem, NULL);
	if (in->role != NULL && in->role[0] == '\0')
		in->role = NULL;
	if (in->model != NULL && in->model[0] == '\0')
		in->model = NULL;
	if (in->template != NULL && in->template[0] == '\0')
		in->template = NULL;
	if (in->template != NULL) {
		if (utf8_chars(in->template) > TEMPLATE_MAX_CHARS)
			return resp_error(r, 400, "template must be at most 255 characters", NULL);
		if (!template_ok(in->template))
			return resp_error(r, 400, "invalid template", NULL);
	}

	rc = get_int(r, body, "tier", &in->tier);
	if (rc < 0)
		return -1;
	if (rc == 0 || in->tier == 0)
		in->tier = DEFAULT_TIER;
	if (in->tier < 1 || in->tier > 4)
		return resp_error(r, 400, "tier must be between 1 and 4", NULL);

	if (in->runtime != NULL && in->runtime[0] == '\0')
		in->runtime = NULL;
	if (in->runtime != NULL && strcmp(in->runtime, "external") == 0)
		in->external = 1;
	if (in->runtime == NULL)
		in->runtime = in->external ? "external" : "langgraph";

	if (in->dir != NULL && in->dir[0] == '\0')
		in->dir = NULL;
	if (in->dir != NULL && !dir_ok(in->dir))
		return resp_error(r, 400, "invalid workspace directory", NULL);
	if (in->access == NULL || in->access[0] == '\0')
		in->access = "none";
	if (strcmp(in->access, "none") != 0 && ((strcmp(in->access, "read_only") != 0 &&
	    strcmp(in->access, "read_write") != 0) || in->dir == NULL))
		return resp_error(r, 400, "invalid workspace access", NULL);

	if (in->parent_id != NULL && in->parent_id[0] == '\0')
		in->parent_id = NULL;
	if (in->parent_id != NULL && !is_uuid(in->parent_id))
		return resp_error(r, 400, "invalid parent_id", NULL);
	if (in->parent_id != NULL && (in->parent_id = lower_uuid(r, in->parent_id)) == NULL)
		return -1;

	if (in->url != NULL && in->url[0] == '\0')
		in->url = NULL;
	if (in->external && in->url != NULL) {
		char why[128], msg[192];

		if (!url_ok(in->url))
			return resp_error(r, 400, "url must be an http or https URL", NULL);
		/* The same address rules as /registry/register: discover hands this URL out. */
		if (urlcheck_agent_url(in->url, why, sizeof(why)) < 0) {
			snprintf(msg, sizeof(msg), "invalid agent url: %s", why);
			return resp_error(r, 400, msg, NULL);
		}
	}

	rc = get_int(r, body, "budget_limit", &in->budget);
	if (rc < 0)
		return -1;
	in->has_budget = rc;
	if (rc && in->budget < 0)
		return resp_error(r, 400, "budget_limit must not be negative", NULL);
	rc = get_int(r, body, "max_concurrent_tasks", &in->max_tasks);
	if (rc < 0)
		return -1;
	if (rc == 0 || in->max_tasks <= 0)
		in->max_tasks = 1;
	if (in->max_tasks > MAX_TASKS_LIMIT)
		return resp_error(r, 400, "max_concurrent_tasks must be at most 1000", NULL);

	if (json_object_object_get_ex(body, "canvas", &canvas) && canvas != NULL) {
		if (!json_object_is_type(canvas, json_type_object))
			return resp_error(r, 400, CANVAS_MSG, NULL);
		if (json_object_object_get_ex(canvas, "x", &v) && v != NULL && get_number(v, &in->x) < 0)
			return resp_error(r, 400, CANVAS_MSG, NULL);
		v = NULL;
		if (json_object_object_get_ex(canvas, "y", &v) && v != NULL && get_number(v, &in->y) < 0)
			return resp_error(r, 400, CANVAS_MSG, NULL);
	}
	return parse_secrets(r, body, in) < 0 || parse_memories(r, body, in) < 0 ? -1 : 0;
}

/*
 * secrets: an object of key -> non-empty string, checked by the secrets routes' rules; a
 * wrong shape is the reference's bind error. Returns 0, or -1 with a 400 set.
 */
static int
parse_secrets(struct req *r, struct json_object *body, struct ws_create *in)
{
	struct json_object *s = NULL;

	if (!json_object_object_get_ex(body, "secrets", &s) || s == NULL)
		return 0;
	if (!json_object_is_type(s, json_type_object))
		return resp_error(r, 400, "invalid workspace payload", NULL);
	{
		/* The macro declares its iterators: give it a block of its own. */
		json_object_object_foreach(s, k, v) {
			if (v == NULL || !json_object_is_type(v, json_type_string) ||
			    json_object_get_string_len(v) == 0)
				return resp_error(r, 400, "invalid workspace payload", NULL);
			if (secrets_check(r, k, (size_t)json_object_get_string_len(v)) < 0)
				return -1;
		}
	}
	in->secrets = s;
	return 0;
}

/* initial_memories: at most SEED_MEMORIES_MAX {content, scope}. Returns 0, or -1 (400 set). */
static int
parse_memories(struct req *r, struct json_object *body, struct ws_create *in)
{
	struct json_object *a = NULL;
	size_t i, n;

	if (!json_object_object_get_ex(body, "initial_memories", &a) || a == NULL)
		return 0;
	if (!json_object_is_type(a, json_type_array))
		return resp_error(r, 400, "initial_memories must be an array", NULL);
	n = json_object_array_length(a);
	if (n > SEED_MEMORIES_MAX)
		return resp_error(r, 400, "initial_memories must have at most 100 entries", NULL);
	if (n == 0)
		return 0;
	in->memories = arena_alloc(r->arena, n * sizeof(*in->memories));
	if (in->memories == NULL)
		return resp_error(r, 413, "request body too large", NULL);
	for (i = 0; i < n; i++)
		if (parse_memory(r, json_object_array_get_idx(a, i), i, in->parent_id == NULL,
		    &in->memories[i]) < 0)
			return -1;
	in->nmemories = n;
	return 0;
}

/*
 * Entry i: content a non-empty UTF-8 string without NUL (cut to SEED_CONTENT_MAX bytes),
 * scope LOCAL (default), TEAM, or GLOBAL on a root only. Returns 0, or -1 with a 400 set.
 */
static int
parse_memory(struct req *r, struct json_object *e, size_t i, int root, struct seed_memory *m)
{
	const char *c = NULL, *scope = NULL;
	size_t cut;
	char *copy;

	if (e == NULL || !json_object_is_type(e, json_type_object))
		return bad(r, "initial_memories[%zu] must be an object", i);
	if (get_string(r, e, "content", &c) < 0 || get_string(r, e, "scope", &scope) < 0)
		return -1;
	if (c == NULL || c[0] == '\0')
		return bad(r, "initial_memories[%zu].content is required", i);
	if (scope == NULL || scope[0] == '\0')
		scope = "LOCAL";
	if (strcmp(scope, "LOCAL") != 0 && strcmp(scope, "TEAM") != 0 && strcmp(scope, "GLOBAL") != 0)
		return bad(r, "initial_memories[%zu].scope must be LOCAL, TEAM, or GLOBAL", i);
	if (strcmp(scope, "GLOBAL") == 0 && !root)
		return bad(r, "initial_memories[%zu]: only root workspaces can write GLOBAL memories", i);
	cut = utf8_prefix_len(c, SEED_CONTENT_MAX);
	if (c[cut] != '\0') {
		copy = arena_alloc(r->arena, cut + 1);
		if (copy == NULL)
			return resp_error(r, 413, "request body too large", NULL);
		memcpy(copy, c, cut);
		copy[cut] = '\0';
		c = copy;
	}
	m->content = c;
	m->scope = scope;
	return 0;
}

/*
 * Writes the parsed secrets (sealed, SECRET_SET each, no restart job: the provision job starts
 * the container with them) and initial memories of new workspace id in the open transaction.
 * Returns 0, or -1 with the transaction rolled back and the response set.
 */
static int
store_seed(struct req *r, const char *id, const struct ws_create *in)
{
	size_t i;

	if (in->secrets != NULL) {
		/* The macro declares its iterators: give it a block of its own. */
		json_object_object_foreach(in->secrets, k, v) {
			if (secrets_store_in_tx(r, id, k, json_object_get_string(v),
			    (size_t)json_object_get_string_len(v)) < 0)
				return -1;
		}
	}
	for (i = 0; i < in->nmemories; i++)
		if (memories_insert_in_tx(r, id, in->memories[i].content, in->memories[i].scope,
		    "general", NULL) < 0)
			return -1;
	return 0;
}

/* Validates a PATCH body (recognised keys only). Returns 0, or -1 with a 400 set. */
static int
parse_patch(struct req *r, struct json_object *body, struct ws_patch *p)
{
	struct json_object *vx = NULL, *vy = NULL;
	const char *problem;
	int hx, hy;

	memset(p, 0, sizeof(*p));
	p->has_name = json_object_object_get_ex(body, "name", NULL);
	if (p->has_name && (get_string(r, body, "name", &p->name) < 0))
		return -1;
	if (p->has_name && p->name == NULL)
		return resp_error(r, 400, "name must be a string", NULL);
	p->has_role = json_object_object_get_ex(body, "role", NULL);
	if (p->has_role && get_string(r, body, "role", &p->role) < 0)
		return -1;
	p->has_runtime = json_object_object_get_ex(body, "runtime", NULL);
	if (p->has_runtime && get_string(r, body, "runtime", &p->runtime) < 0)
		return -1;
	if (p->has_runtime && p->runtime == NULL)
		return resp_error(r, 400, "runtime must be a string", NULL);
	problem = fields_problem(p->name, p->role, NULL, p->runtime);
	if (problem != NULL)
		return resp_error(r, 400, problem, NULL);
	if (p->has_name && !has_text(p->name))
		return resp_error(r, 400, "name must not be empty", NULL);
	if (p->has_runtime && p->runtime[0] == '\0')
		return resp_error(r, 400, "runtime must not be empty", NULL);
	if (p->role != NULL && p->role[0] == '\0')
		p->role = NULL;

	p->has_tier = json_object_object_get_ex(body, "tier", NULL);
	if (p->has_tier) {
		if (get_int(r, body, "tier", &p->tier) <= 0) {
			if (!r->responded)
				return resp_error(r, 400, "tier must be an integer", NULL);
			return -1;
		}
		if (p->tier < 1 || p->tier > 4)
			return resp_error(r, 400, "tier must be between 1 and 4", NULL);
	}

	p->has_parent = json_object_object_get_ex(body, "parent_id", NULL);
	if (p->has_parent && get_string(r, body, "parent_id", &p->parent_id) < 0)
		return -1;
	if (p->parent_id != NULL && p->parent_id[0] == '\0')
		p->parent_id = NULL;
	if (p->parent_id != NULL && !is_uuid(p->parent_id))
		return resp_error(r, 400, "invalid parent_id", NULL);
	if (p->parent_id != NULL && (p->parent_id = lower_uuid(r, p->parent_id)) == NULL)
		return -1;

	p->has_collapsed = json_object_object_get_ex(body, "collapsed", NULL);
	if (p->has_collapsed && get_bool(r, body, "collapsed", &p->collapsed) <= 0) {
		if (!r->responded)
			return resp_error(r, 400, "collapsed must be a boolean", NULL);
		return -1;
	}

	p->has_dir = json_object_object_get_ex(body, "workspace_dir", NULL);
	if (p->has_dir && get_string(r, body, "workspace_dir", &p->dir) < 0)
		return -1;
	if (p->dir != NULL && p->dir[0] == '\0')
		p->dir = NULL;
	if (p->dir != NULL && !dir_ok(p->dir))
		return resp_error(r, 400, "invalid workspace directory", NULL);

	hx = json_object_object_get_ex(body, "x", &vx);
	hy = json_object_object_get_ex(body, "y", &vy);
	if (hx != hy)
		return resp_error(r, 400, "x and y must be provided together", NULL);
	if (hx) {
		if (get_number(vx, &p->x) < 0 || get_number(vy, &p->y) < 0)
			return resp_error(r, 400, "x and y must be numbers", NULL);
		p->has_xy = 1;
	}
	return 0;
}

/*
 * Locks the parent row FOR SHARE (a concurrent delete waits for us). Returns 0 when it exists
 * and is not removed, 1 when it does not, -1 on a database error.
 */
static int
lock_parent(struct req *r, const char *parent_id)
{
	const char *params[1] = { parent_id };
	PGresult *res = db_exec(r->arena, "SELECT 1 FROM workspaces WHERE id = $1::uuid "
	    "AND status <> 'removed' FOR SHARE", 1, params);

	if (res == NULL)
		return -1;
	return PQntuples(res) == 1 ? 0 : 1;
}

/* 1 when id is parent_id or one of its ancestors (the move would close a loop), 0 not, -1 error. */
static int
creates_cycle(struct req *r, const char *id, const char *parent_id)
{
	const char *params[2];
	PGresult *res;

	params[0] = parent_id;
	params[1] = id;
	/* UNION, not UNION ALL: a loop already in the data ends the walk instead of spinning. */
	res = db_exec(r->arena, "WITH RECURSIVE up AS ("
	    " SELECT id, parent_id FROM workspaces WHERE id = $1::uuid"
	    " UNION SELECT w.id, w.parent_id FROM workspaces w JOIN up ON w.id = up.parent_id)"
	    " SELECT 1 FROM up WHERE id = $2::uuid", 2, params);
	if (res == NULL)
		return -1;
	return PQntuples(res) > 0;
}

/* The 201 of an external create: {external,id,status}, plus the connection block without url. */
static int
create_external_reply(struct req *r, const char *id, const char *token)
{
	struct json_object *out = NULL, *conn = NULL;
	const char *pu;

	out = jsonx_own(r->arena, json_object_new_object());
	if (out == NULL)
		return -1;
	if (token != NULL) {
		pu = platform_url(r);
		conn = json_object_new_object();
		if (pu == NULL || conn == NULL) {
			json_object_put(conn);
			return -1;
		}
		json_object_object_add(conn, "auth_token", json_object_new_string(token));
		json_object_object_add(conn, "curl_register_template", jstr(arena_printf(r->arena,
		    "# Register your agent, then keep it online with a heartbeat every 30 s.\n"
		    "# WORKSPACE_AUTH_TOKEN is the auth_token of the create response (shown once);\n"
		    "# AGENT_URL is where the platform reaches your agent (http or https).\n"
		    "export WORKSPACE_AUTH_TOKEN='<auth_token>'\n"
		    "export AGENT_URL='https://agent.example.com'\n"
		    "curl -fsS -X POST '%s/registry/register' \\\n"
		    "  -H \"Authorization: Bearer $WORKSPACE_AUTH_TOKEN\" \\\n"
		    "  -H 'Content-Type: application/json' \\\n"
		    "  -d '{\"id\":\"%s\",\"url\":\"'\"$AGENT_URL\"'\","
		    "\"agent_card\":{\"name\":\"external-agent\",\"version\":\"0.1.0\"}}'\n"
		    "while sleep 30; do\n"
		    "  curl -fsS -X POST '%s/registry/heartbeat' \\\n"
		    "    -H \"Authorization: Bearer $WORKSPACE_AUTH_TOKEN\" \\\n"
		    "    -H 'Content-Type: application/json' \\\n"
		    "    -d '{\"workspace_id\":\"%s\",\"active_tasks\":0,\"error_rate\":0,"
		    "\"uptime_seconds\":0}' >/dev/null\n"
		    "done\n", pu, id, pu, id)));
		json_object_object_add(conn, "heartbeat_endpoint",
		    jstr(arena_printf(r->arena, "%s/registry/heartbeat", pu)));
		json_object_object_add(conn, "platform_url", json_object_new_string(pu));
		json_object_object_add(conn, "python_snippet", jstr(arena_printf(r->arena,
		    "# An external agent's platform loop, standard library only.\n"
		    "import json, os, time, urllib.request\n"
		    "\n"
		    "PLATFORM_URL = \"%s\"\n"
		    "WORKSPACE_ID = \"%s\"\n"
		    "# WORKSPACE_AUTH_TOKEN: the auth_token of the create response\n"
		    "AUTH_TOKEN = os.environ[\"WORKSPACE_AUTH_TOKEN\"]\n"
		    "AGENT_URL = os.environ.get(\"AGENT_URL\", \"https://agent.example.com\")\n"
		    "\n"
		    "def post(path, body):\n"
		    "    req = urllib.request.Request(PLATFORM_URL + path,\n"
		    "        data=json.dumps(body).encode(),\n"
		    "        headers={\"Authorization\": \"Bearer \" + AUTH_TOKEN,\n"
		    "                 \"Content-Type\": \"application/json\"})\n"
		    "    with urllib.request.urlopen(req, timeout=10) as resp:\n"
		    "        return json.load(resp)\n"
		    "\n"
		    "post(\"/registry/register\", {\"id\": WORKSPACE_ID, \"url\": AGENT_URL,\n"
		    "    \"agent_card\": {\"name\": \"external-agent\", \"version\": \"0.1.0\"}})\n"
		    "started = time.time()\n"
		    "while True:\n"
		    "    post(\"/registry/heartbeat\", {\"workspace_id\": WORKSPACE_ID,\n"
		    "        \"active_tasks\": 0, \"error_rate\": 0,\n"
		    "        \"uptime_seconds\": int(time.time() - started)})\n"
		    "    time.sleep(30)\n", pu, id)));
		json_object_object_add(conn, "registry_endpoint",
		    jstr(arena_printf(r->arena, "%s/registry/register", pu)));
		json_object_object_add(conn, "workspace_id", json_object_new_string(id));
		json_object_object_add(out, "connection", conn);
	}
	json_object_object_add(out, "external", json_object_new_boolean(1));
	json_object_object_add(out, "id", json_object_new_string(id));
	json_object_object_add(out, "status", json_object_new_string(token != NULL ?
	    "awaiting_agent" : "online"));
	return resp_json(r, 201, out);
}

/*
 * Where an external agent reaches this platform: EXTERNAL_PLATFORM_URL, else scheme and host
 * of the request (X-Forwarded-Proto/-Host first). Header values that are not a plain scheme or
 * host are ignored: the result is pasted into shell and Python snippets.
 */
static const char *
platform_url(struct req *r)
{
	const char *conf = r->conf->external_platform_url, *proto, *host, *rs, *https;
	const char *scheme = "http";
	size_t n;

	if (conf != NULL && conf[0] != '\0') {
		n = strlen(conf);
		while (n > 0 && conf[n - 1] == '/')
			n--;
		return arena_strndup(r->arena, conf, n);
	}
	proto = req_header(r, "X-Forwarded-Proto");
	rs = req_env(r, "REQUEST_SCHEME");
	https = req_env(r, "HTTPS");
	if (proto != NULL && (strncasecmp(proto, "https", 5) == 0) &&
	    (proto[5] == '\0' || proto[5] == ',' || proto[5] == ' '))
		scheme = "https";
	else if (proto != NULL && (strncasecmp(proto, "http", 4) == 0) &&
	    (proto[4] == '\0' || proto[4] == ',' || proto[4] == ' '))
		scheme = "http";
	else if ((rs != NULL && strcmp(rs, "https") == 0) || (https != NULL && https[0] != '\0'))
		scheme = "https";
	host = req_header(r, "X-Forwarded-Host");
	if (!host_ok(host))
		host = req_header(r, "Host");
	if (!host_ok(host))
		host = "localhost";
	return arena_printf(r->arena, "%s://%s", scheme, host);
}

/* Rolls back and answers 503 when the database is unreachable, else 500 msg. Always -1. */
static int
fail_tx(struct req *r, const char *msg)
{
	int down = db_unavailable();

	db_rollback();
	if (down)
		return resp_unavailable(r);
	return resp_error(r, 500, msg, NULL);
}

/* Equality where NULL equals only NULL; UUIDs compare case-insensitively. */
static int
streq_null(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	if (is_uuid(a) && is_uuid(b))
		return strcasecmp(a, b) == 0;
	return strcmp(a, b) == 0;
}

/*
 * A Postgres uuid[] literal of root (may be NULL) and the ids in column 0 of res; with col >= 0
 * only rows whose column col is not "removed". Ids come from the database, so the literal is
 * safe. Returns it in the arena with the count in *n, or NULL when out of memory.
 */
static const char *
id_array(struct req *r, const char *root, const PGresult *res, int col, size_t *n)
{
	int i, rows = PQntuples(res);
	size_t len = 3 + (size_t)(rows + 1) * 37, o = 0;
	char *buf = arena_alloc(r->arena, len);

	*n = 0;
	if (buf == NULL)
		return NULL;
	buf[o++] = '{';
	if (root != NULL) {
		o += (size_t)snprintf(buf + o, len - o, "%s", root);
		(*n)++;
	}
	for (i = 0; i < rows; i++) {
		if (col >= 0 && strcmp(PQgetvalue(res, i, col), "removed") == 0)
			continue;
		o += (size_t)snprintf(buf + o, len - o, "%s%s", *n > 0 ? "," : "",
		    PQgetvalue(res, i, 0));
		(*n)++;
	}
	buf[o++] = '}';
	buf[o] = '\0';
	return buf;
}


/* A double as exact SQL text, in the arena (NULL when out of memory). */
static char *
fmt_double(struct req *r, double d)
{
	return arena_printf(r->arena, "%.17g", d);
}

/* The lower-case form of a validated UUID, in the arena (NULL when out of memory). */
static const char *
lower_uuid(struct req *r, const char *s)
{
	char *out = arena_strdup(r->arena, s), *p;

	for (p = out; p != NULL && *p != '\0'; p++)
		if (*p >= 'A' && *p <= 'F')
			*p = (char)(*p - 'A' + 'a');
	return out;
}
