/*
 * h_discovery.c: how agents find each other: discover, peers, check-access (api.md §4.7, §7).
 * Owns nothing; the hierarchy policy lives in common/access.c, URLs come from the row or Redis.
 */
#include "fcgi/handlers.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/access.h"
#include "common/db.h"
#include "common/jsonx.h"
#include "common/kv.h"
#include "common/tokens.h"
#include "common/util.h"
#include "fcgi/guard.h"
#include "fcgi/resp.h"

static const char *lower_uuid(struct req *r, const char *s);
static int discovery_caller(struct req *r, const char *id);
static struct json_object *peer_json(PGresult *res, int row);
static int db_failed(struct req *r, const char *msg);

/*
 * Row 0 (ord 0) exists iff the workspace does (and is not removed); then siblings (all other
 * roots for a root), children, parent, each group oldest first. $2 filters on name/role.
 */
static const char peers_sql[] =
    "WITH me AS (SELECT id, parent_id FROM workspaces WHERE id = $1::uuid AND status <> 'removed'), "
    "p AS (SELECT 1 AS ord, w.id FROM workspaces w, me WHERE w.id <> me.id "
    "    AND (w.parent_id = me.parent_id OR (me.parent_id IS NULL AND w.parent_id IS NULL)) "
    "  UNION ALL SELECT 2, w.id FROM workspaces w, me WHERE w.parent_id = me.id "
    "  UNION ALL SELECT 3, me.parent_id FROM me WHERE me.parent_id IS NOT NULL) "
    "SELECT 0 AS ord, NULL::text, NULL::text, NULL::text, NULL::int, NULL::text, NULL::text, "
    "  NULL::text, NULL::text, NULL::int, NULL::timestamptz AS created FROM me "
    "UNION ALL "
    "SELECT p.ord, w.id::text, w.name, COALESCE(w.role, ''), COALESCE(w.tier, 1), w.status::text, "
    "  COALESCE(w.agent_card::text, 'null'), COALESCE(w.url, ''), w.parent_id::text, "
    "  COALESCE(w.active_tasks, 0), w.created_at "
    "FROM p JOIN workspaces w ON w.id = p.id WHERE w.status <> 'removed' "
    "  AND ($2::text IS NULL OR strpos(lower(w.name), lower($2)) > 0 "
    "    OR strpos(lower(COALESCE(w.role, '')), lower($2)) > 0) "
    "ORDER BY 1, 11, 2";

int
h_discovery_discover(struct req *r)
{
	const char *caller = req_header(r, "X-Workspace-ID"), *target = req_param(r, "id");
	const char *params[1], *name, *runtime, *status, *url, *found = NULL;
	struct json_object *out, *extra;
	redisReply *rep;
	PGresult *res;

	if (caller == NULL || caller[0] == '\0')
		return resp_error(r, 400, "X-Workspace-ID header is required", NULL);
	if (!is_uuid(target))
		return resp_error(r, 400, "invalid workspace ID", NULL);
	target = lower_uuid(r, target);
	caller = lower_uuid(r, caller);
	if (target == NULL || caller == NULL)
		return -1;
	if (discovery_caller(r, caller) < 0)
		return -1;
	switch (access_can_communicate(r->arena, caller, target)) {
	case -1:
		return db_failed(r, "lookup failed");
	case 0:
		return resp_error(r, 403, "not authorized to discover this workspace", NULL);
	default:
		break;
	}

	params[0] = target;
	res = db_exec(r->arena, "SELECT name, COALESCE(runtime, ''), status::text, COALESCE(url, '') "
	    "FROM workspaces WHERE id = $1::uuid", 1, params);
	if (res == NULL)
		return db_failed(r, "lookup failed");
	if (PQntuples(res) != 1)
		return resp_error(r, 404, "workspace not found", NULL);
	name = db_value(res, 0, 0);
	runtime = db_value(res, 0, 1);
	status = db_value(res, 0, 2);
	url = db_value(res, 0, 3);

	/* A removed workspace's last address is never handed out. */
	if (strcmp(status, "removed") != 0) {
		if (strcmp(runtime, "external") == 0 && url[0] != '\0')
			found = url;
		if (found == NULL) {
			rep = kv_command(r->arena, "GET ws:%s:internal_url", target);
			if (rep != NULL && rep->type == REDIS_REPLY_STRING && rep->len > 0)
				found = rep->str;
		}
		if (found == NULL && url[0] != '\0')
			found = url;
		if (found == NULL && (strcmp(status, "online") == 0 || strcmp(status, "degraded") == 0))
			found = arena_printf(r->arena, "http://ws-%.12s:8000", target);
	}
	if (found == NULL) {
		extra = json_object_new_object();
		json_object_object_add(extra, "status", json_object_new_string(status));
		return resp_error(r, 503, "workspace not available", extra);
	}
	out = jsonx_own(r->arena, json_object_new_object());
	json_object_object_add(out, "id", json_object_new_string(target));
	json_object_object_add(out, "name", json_object_new_string(name));
	json_object_object_add(out, "url", json_object_new_string(found));
	return resp_json(r, 200, out);
}

int
h_discovery_peers(struct req *r)
{
	const char *id = req_param(r, "id"), *q = req_query(r, "q"), *params[2];
	struct json_object *arr, *peer;
	PGresult *res;
	int i, n;

	if (!is_uuid(id))
		return resp_error(r, 400, "invalid workspace ID", NULL);
	if ((id = lower_uuid(r, id)) == NULL)
		return -1;
	if (discovery_caller(r, id) < 0)
		return -1;
	params[0] = id;
	params[1] = q != NULL && q[0] != '\0' ? q : NULL;
	res = db_exec(r->arena, peers_sql, 2, params);
	if (res == NULL)
		return db_failed(r, "lookup failed");
	n = PQntuples(res);
	if (n == 0 || strcmp(PQgetvalue(res, 0, 0), "0") != 0)
		return resp_error(r, 404, "workspace not found", NULL);
	arr = jsonx_own(r->arena, json_object_new_array());
	for (i = 1; i < n; i++) {
		if ((peer = peer_json(res, i)) == NULL)
			return -1;
		json_object_array_add(arr, peer);
	}
	return resp_json(r, 200, arr);
}

int
h_discovery_check_access(struct req *r)
{
	struct json_object *body = NULL, *caller_v = NULL, *target_v = NULL, *out;
	const char *caller, *target, *tok;
	int allowed;

	if (req_json_body(r, &body) < 0) {
		if (r->status == 400)
			resp_error(r, 400, "invalid request body", NULL);
		return -1;
	}
	if (!json_object_object_get_ex(body, "caller_id", &caller_v) ||
	    !json_object_object_get_ex(body, "target_id", &target_v) ||
	    !json_object_is_type(caller_v, json_type_string) ||
	    !json_object_is_type(target_v, json_type_string))
		return resp_error(r, 400, "invalid request body", NULL);
	caller = json_object_get_string(caller_v);
	target = json_object_get_string(target_v);
	if (!is_uuid(caller) || !is_uuid(target))
		return resp_error(r, 400, "invalid request body", NULL);
	caller = lower_uuid(r, caller);
	target = lower_uuid(r, target);
	if (caller == NULL || target == NULL)
		return -1;

	/* Unlike the reference, not open: the caller's own token, or AdminAuth. */
	tok = req_bearer(r);
	switch (tok != NULL ? tokens_check_workspace(r->arena, caller, tok) : TOKEN_INVALID) {
	case TOKEN_OK:
		break;
	case TOKEN_ERROR:
		return resp_unavailable(r);
	case TOKEN_INVALID:
		if (guard_check(r, GUARD_ADMIN) < 0)
			return -1;
		break;
	}
	if ((allowed = access_can_communicate(r->arena, caller, target)) < 0)
		return db_failed(r, "lookup failed");
	out = jsonx_own(r->arena, json_object_new_object());
	json_object_object_add(out, "allowed", json_object_new_boolean(allowed));
	return resp_json(r, 200, out);
}

/* UUIDs compare, key Redis and bind tokens in lower case; anything else is kept as sent. */
static const char *
lower_uuid(struct req *r, const char *s)
{
	char *c;
	size_t i;

	if (!is_uuid(s))
		return s;
	if ((c = arena_strdup(r->arena, s)) == NULL)
		return NULL;
	for (i = 0; c[i] != '\0'; i++)
		c[i] = (char)tolower((unsigned char)c[i]);
	return c;
}

/*
 * validateDiscoveryCaller: the dev-mode hatch, else lazy bootstrap on the caller's id
 * (503 on a database error, where the reference fails open). Returns 0 or -1 with 401 set.
 */
static int
discovery_caller(struct req *r, const char *id)
{
	if (guard_dev_mode(r))
		return 0;
	return guard_lazy_bootstrap(r, id, "workspace", 0);
}

/* {active_tasks,agent_card,id,name,parent_id,role,status,tier,url}: Go's sorted map keys. */
static struct json_object *
peer_json(PGresult *res, int row)
{
	struct json_object *p = json_object_new_object(), *card;
	const char *role = db_value(res, row, 3), *card_text = db_value(res, row, 6),
	    *parent = db_value(res, row, 8);

	if (p == NULL)
		return NULL;
	card = jsonx_parse(card_text, strlen(card_text));
	json_object_object_add(p, "active_tasks", json_object_new_int64(atoll(db_value(res, row, 9))));
	json_object_object_add(p, "agent_card", card);
	json_object_object_add(p, "id", json_object_new_string(db_value(res, row, 1)));
	json_object_object_add(p, "name", json_object_new_string(db_value(res, row, 2)));
	json_object_object_add(p, "parent_id", parent ? json_object_new_string(parent) : NULL);
	json_object_object_add(p, "role", role[0] ? json_object_new_string(role) : NULL);
	json_object_object_add(p, "status", json_object_new_string(db_value(res, row, 5)));
	json_object_object_add(p, "tier", json_object_new_int64(atoll(db_value(res, row, 4))));
	json_object_object_add(p, "url", json_object_new_string(db_value(res, row, 7)));
	return p;
}

static int
db_failed(struct req *r, const char *msg)
{
	if (db_unavailable())
		return resp_unavailable(r);
	return resp_error(r, 500, msg, NULL);
}
