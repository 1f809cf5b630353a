/*
 * h_approvals.c: human/ancestor approval gates (api.md §4.12): create, list, decide, escalate,
 * pending lists, with lazy expiry and deadline escalation. Owns nothing; rows in approval_requests.
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
#include "common/tokens.h"
#include "common/util.h"
#include "fcgi/guard.h"
#include "fcgi/resp.h"

#define ACTION_MAX 256
#define TASK_ID_MAX 256
#define REASON_MAX 4096
#define DECIDED_BY_MAX 256
#define CONTEXT_MAX 65536
#define DEADLINE_MAX 604800	/* one week, for expires_in_seconds and escalate_after_seconds */
#define EXPIRES_DEFAULT "600"	/* the reference's 10-minute auto-expiry */
#define LIST_LIMIT "50"
#define NOT_FOUND "approval not found or already decided"

/* Who is acting on an approval: an admin credential, the requester itself, or another workspace. */
struct actor {
	const char *workspace_id;	/* NULL for an admin (human) */
	int self;			/* the requesting workspace's own token */
};

static int sweep(struct req *r);
static int authorise(struct req *r, const char *ws, struct actor *who);
static int may_act(struct req *r, const char *assignee, const char *actor);
static int lock_pending(struct req *r, const char *ws, const char *aid, const char *what,
    PGresult **res);
static int opt_seconds(struct req *r, struct json_object *body, const char *key, char *buf,
    size_t len, const char **out);
static int record_escalated(struct req *r, const PGresult *res, int row);
static struct json_object *str_or_null(const char *s);
static struct json_object *list_json(struct req *r, const PGresult *res, int with_workspace);
static int fail_tx(struct req *r, const char *msg);

#define ROW_COLUMNS "a.id, a.workspace_id, w.name, a.task_id, a.action, a.reason, a.status, " \
	"a.decided_by, " DB_RFC3339("a.decided_at") ", " DB_RFC3339("a.created_at") ", " \
	"a.assignee_id, a.escalation_level, " DB_RFC3339("a.expires_at")

int
h_approvals_create(struct req *r)
{
	const char *id = req_param(r, "id"), *action = NULL, *task = NULL, *reason = NULL;
	const char *ctx = "{}", *expires = EXPIRES_DEFAULT, *after = NULL, *parent, *params[7];
	char ebuf[24], abuf[24];
	struct json_object *body = NULL, *v, *ev, *out;
	PGresult *res;
	size_t len;

	if (id == NULL || !is_uuid(id))
		return resp_error(r, 400, "invalid workspace ID", NULL);
	if (req_json_body_or(r, &body, "invalid request body") < 0)
		return -1;
	if (req_body_str(r, body, "action", ACTION_MAX, &action) < 0)
		return -1;
	if (action == NULL)
		return resp_error(r, 400, "invalid request body", NULL);
	if (req_body_str(r, body, "task_id", TASK_ID_MAX, &task) < 0 ||
	    req_body_str(r, body, "reason", REASON_MAX, &reason) < 0 ||
	    opt_seconds(r, body, "expires_in_seconds", ebuf, sizeof(ebuf), &expires) < 0 ||
	    opt_seconds(r, body, "escalate_after_seconds", abuf, sizeof(abuf), &after) < 0)
		return -1;
	if (expires == NULL)
		expires = EXPIRES_DEFAULT;
	if (json_object_object_get_ex(body, "context", &v) && v != NULL) {
		if (!json_object_is_type(v, json_type_object))
			return resp_error(r, 400, "context must be an object", NULL);
		ctx = jsonx_dump(v, &len);
		if (ctx == NULL)
			return -1;
		if (len > CONTEXT_MAX)
			return resp_error(r, 413, "context too large (max 65536 bytes)", NULL);
	}
	/* The reference stores Go's zero values: "" rather than NULL. */
	if (task == NULL)
		task = "";
	if (reason == NULL)
		reason = "";

	if (db_begin(r->arena) < 0)
		return fail_tx(r, "failed to create approval");
	params[0] = id;
	res = db_exec(r->arena, "SELECT parent_id FROM workspaces WHERE id = $1::uuid "
	    "AND status <> 'removed' FOR SHARE", 1, params);
	if (res == NULL)
		return fail_tx(r, "failed to create approval");
	if (PQntuples(res) == 0) {
		db_rollback();
		return resp_error(r, 404, "workspace not found", NULL);
	}
	parent = db_value(res, 0, 0);
	params[1] = task;
	params[2] = action;
	params[3] = reason;
	params[4] = ctx;
	params[5] = expires;
	params[6] = after;
	/* The parent decides first; a root's request can only be decided by a human. */
	res = db_exec(r->arena, "INSERT INTO approval_requests (workspace_id, task_id, action, reason, "
	    "context, assignee_id, expires_at, escalate_after, escalate_at) SELECT w.id, $2, $3, $4, "
	    "$5::jsonb, w.parent_id, now() + make_interval(secs => $6::int), "
	    "make_interval(secs => $7::int), CASE WHEN w.parent_id IS NOT NULL AND $7::int IS NOT NULL "
	    "THEN now() + make_interval(secs => $7::int) END FROM workspaces w WHERE w.id = $1::uuid "
	    "RETURNING id", 7, params);
	if (res == NULL) {
		if (!db_unavailable() && strncmp(db_last_sqlstate(), "22", 2) == 0) {
			db_rollback();
			return resp_error(r, 400, "invalid text in request (NUL character or invalid UTF-8)",
			    NULL);
		}
		return fail_tx(r, "failed to create approval");
	}
	ev = jsonx_own(r->arena, json_object_new_object());
	json_object_object_add(ev, "approval_id", json_object_new_string(db_value(res, 0, 0)));
	json_object_object_add(ev, "action", json_object_new_string(action));
	json_object_object_add(ev, "reason", json_object_new_string(reason));
	json_object_object_add(ev, "task_id", json_object_new_string(task));
	if (events_record(r->arena, "APPROVAL_REQUESTED", id, ev) < 0)
		return fail_tx(r, "failed to create approval");
	if (parent != NULL) {
		ev = jsonx_own(r->arena, json_object_new_object());
		json_object_object_add(ev, "approval_id", json_object_new_string(db_value(res, 0, 0)));
		json_object_object_add(ev, "from_workspace_id", json_object_new_string(id));
		json_object_object_add(ev, "action", json_object_new_string(action));
		json_object_object_add(ev, "reason", json_object_new_string(reason));
		if (events_record(r->arena, "APPROVAL_ESCALATED", parent, ev) < 0)
			return fail_tx(r, "failed to create approval");
	}
	if (db_commit(r->arena) < 0)
		return fail_tx(r, "failed to create approval");
	out = jsonx_own(r->arena, json_object_new_object());
	json_object_object_add(out, "approval_id", json_object_new_string(db_value(res, 0, 0)));
	json_object_object_add(out, "status", json_object_new_string("pending"));
	return resp_json(r, 201, out);
}

int
h_approvals_list(struct req *r)
{
	const char *id = req_param(r, "id"), *params[1];
	PGresult *res;

	if (id == NULL || !is_uuid(id))
		return resp_error(r, 400, "invalid workspace ID", NULL);
	if (sweep(r) < 0)
		return fail_tx(r, "failed to list approvals");
	params[0] = id;
	res = db_exec(r->arena, "SELECT " ROW_COLUMNS " FROM approval_requests a JOIN workspaces w "
	    "ON w.id = a.workspace_id WHERE a.workspace_id = $1::uuid "
	    "ORDER BY a.created_at DESC, a.id LIMIT " LIST_LIMIT, 1, params);
	if (res == NULL)
		return fail_tx(r, "failed to list approvals");
	return resp_json(r, 200, list_json(r, res, 0));
}

int
h_approvals_pending(struct req *r)
{
	PGresult *res;

	if (sweep(r) < 0)
		return fail_tx(r, "failed to list approvals");
	res = db_exec(r->arena, "SELECT " ROW_COLUMNS " FROM approval_requests a JOIN workspaces w "
	    "ON w.id = a.workspace_id WHERE a.status = 'pending' "
	    "ORDER BY a.created_at DESC, a.id LIMIT " LIST_LIMIT, 0, NULL);
	if (res == NULL)
		return fail_tx(r, "failed to list approvals");
	return resp_json(r, 200, list_json(r, res, 1));
}

int
h_approvals_pending_workspace(struct req *r)
{
	const char *id = req_param(r, "id"), *params[1];
	PGresult *res;

	if (id == NULL || !is_uuid(id))
		return resp_error(r, 400, "invalid workspace ID", NULL);
	if (sweep(r) < 0)
		return fail_tx(r, "failed to list approvals");
	params[0] = id;
	/* What :id may decide: pending rows assigned to it or to any of its descendants. */
	res = db_exec(r->arena, "WITH RECURSIVE sub AS (SELECT id, 0 AS d FROM workspaces "
	    "WHERE id = $1::uuid UNION ALL SELECT w.id, sub.d + 1 FROM workspaces w JOIN sub "
	    "ON w.parent_id = sub.id WHERE sub.d < 32) SELECT " ROW_COLUMNS " FROM approval_requests a "
	    "JOIN workspaces w ON w.id = a.workspace_id WHERE a.status = 'pending' "
	    "AND a.assignee_id IN (SELECT id FROM sub) ORDER BY a.created_at DESC, a.id LIMIT "
	    LIST_LIMIT, 1, params);
	if (res == NULL)
		return fail_tx(r, "failed to list approvals");
	return resp_json(r, 200, list_json(r, res, 1));
}

int
h_approvals_decide(struct req *r)
{
	const char *ws = req_param(r, "id"), *aid = req_param(r, "approvalId");
	const char *decision = NULL, *by = NULL, *params[3];
	struct json_object *body = NULL, *ev, *out;
	struct actor who;
	PGresult *res;

	if (ws == NULL || !is_uuid(ws))
		return resp_error(r, 400, "invalid workspace ID", NULL);
	if (authorise(r, ws, &who) < 0)
		return -1;
	if (who.self)
		return resp_error(r, 403, "a workspace cannot decide its own approval request", NULL);
	if (req_json_body(r, &body) < 0)
		return -1;
	if (req_body_str(r, body, "decision", 16, &decision) < 0 ||
	    req_body_str(r, body, "decided_by", DECIDED_BY_MAX, &by) < 0)
		return -1;
	if (decision == NULL || (strcmp(decision, "approved") != 0 && strcmp(decision, "denied") != 0))
		return resp_error(r, 400, "decision must be 'approved' or 'denied'", NULL);
	/* A workspace decides under its own id: the body cannot put words in someone else's mouth. */
	if (who.workspace_id != NULL)
		by = who.workspace_id;
	else if (by == NULL)
		by = "human";
	if (lock_pending(r, ws, aid, "failed to decide approval", &res) < 0)
		return -1;
	params[0] = aid;
	if (who.workspace_id != NULL) {
		switch (may_act(r, db_value(res, 0, 0), who.workspace_id)) {
		case -1:
			return fail_tx(r, "failed to decide approval");
		case 0:
			db_rollback();
			return resp_error(r, 403, "only an admin or an ancestor the request is assigned to "
			    "can decide this approval", NULL);
		}
	}
	params[1] = decision;
	params[2] = by;
	if (db_exec(r->arena, "UPDATE approval_requests SET status = $2, decided_by = $3, "
	    "decided_at = now() WHERE id = $1::uuid", 3, params) == NULL)
		return fail_tx(r, "failed to decide approval");
	ev = jsonx_own(r->arena, json_object_new_object());
	json_object_object_add(ev, "approval_id", json_object_new_string(aid));
	json_object_object_add(ev, "decision", json_object_new_string(decision));
	json_object_object_add(ev, "decided_by", json_object_new_string(by));
	if (events_record(r->arena, strcmp(decision, "approved") == 0 ? "APPROVAL_APPROVED" :
	    "APPROVAL_DENIED", ws, ev) < 0)
		return fail_tx(r, "failed to decide approval");
	if (db_commit(r->arena) < 0)
		return fail_tx(r, "failed to decide approval");
	out = jsonx_own(r->arena, json_object_new_object());
	json_object_object_add(out, "status", json_object_new_string(decision));
	json_object_object_add(out, "approval_id", json_object_new_string(aid));
	return resp_json(r, 200, out);
}

int
h_approvals_escalate(struct req *r)
{
	const char *ws = req_param(r, "id"), *aid = req_param(r, "approvalId"), *params[1];
	struct json_object *out;
	struct actor who;
	PGresult *res;

	if (ws == NULL || !is_uuid(ws))
		return resp_error(r, 400, "invalid workspace ID", NULL);
	if (authorise(r, ws, &who) < 0)
		return -1;
	if (lock_pending(r, ws, aid, "failed to escalate approval", &res) < 0)
		return -1;
	params[0] = aid;
	if (db_value(res, 0, 0) == NULL) {
		db_rollback();
		return resp_error(r, 409, "approval is already with a human: nothing above to escalate to",
		    NULL);
	}
	/* The requester may ask for a higher level; so may the assignee chain or an admin. */
	if (who.workspace_id != NULL && !who.self) {
		switch (may_act(r, db_value(res, 0, 0), who.workspace_id)) {
		case -1:
			return fail_tx(r, "failed to escalate approval");
		case 0:
			db_rollback();
			return resp_error(r, 403, "only the requester, its assigned ancestors or an admin "
			    "can escalate this approval", NULL);
		}
	}
	res = db_exec(r->arena, "UPDATE approval_requests a SET assignee_id = w.parent_id, "
	    "escalation_level = a.escalation_level + 1, escalate_at = CASE WHEN w.parent_id IS NULL "
	    "OR a.escalate_after IS NULL THEN NULL ELSE now() + a.escalate_after END "
	    "FROM workspaces w WHERE a.id = $1::uuid AND w.id = a.assignee_id "
	    "RETURNING a.id, a.workspace_id, a.assignee_id, a.action, a.reason, a.escalation_level",
	    1, params);
	if (res == NULL || PQntuples(res) != 1 || record_escalated(r, res, 0) < 0)
		return fail_tx(r, "failed to escalate approval");
	if (db_commit(r->arena) < 0)
		return fail_tx(r, "failed to escalate approval");
	out = jsonx_own(r->arena, json_object_new_object());
	json_object_object_add(out, "approval_id", json_object_new_string(aid));
	json_object_object_add(out, "status", json_object_new_string("pending"));
	json_object_object_add(out, "assignee_id", str_or_null(db_value(res, 0, 2)));
	json_object_object_add(out, "escalation_level",
	    json_object_new_int(atoi(db_value(res, 0, 5))));
	return resp_json(r, 200, out);
}

/*
 * The lazy sweep every approvals route runs first (the reference expires inside its pending
 * list): overdue requests are denied as 'auto-expired', requests past their escalation
 * deadline move to the assignee's parent. Each change records its event. Returns 0 or -1.
 */
static int
sweep(struct req *r)
{
	struct json_object *ev;
	PGresult *res;
	int i, n;

	if (db_begin(r->arena) < 0)
		return -1;
	/* SKIP LOCKED: a request being decided right now is left to its decider. */
	res = db_exec(r->arena, "WITH due AS (SELECT id FROM approval_requests WHERE status = 'pending' "
	    "AND expires_at <= now() FOR UPDATE SKIP LOCKED) UPDATE approval_requests a "
	    "SET status = 'denied', decided_by = 'auto-expired', decided_at = now() FROM due "
	    "WHERE a.id = due.id RETURNING a.id, a.workspace_id", 0, NULL);
	if (res == NULL)
		return -1;
	n = PQntuples(res);
	for (i = 0; i < n; i++) {
		ev = jsonx_own(r->arena, json_object_new_object());
		json_object_object_add(ev, "approval_id", json_object_new_string(db_value(res, i, 0)));
		json_object_object_add(ev, "decision", json_object_new_string("denied"));
		json_object_object_add(ev, "decided_by", json_object_new_string("auto-expired"));
		if (events_record(r->arena, "APPROVAL_DENIED", db_value(res, i, 1), ev) < 0)
			return -1;
	}
	res = db_exec(r->arena, "WITH due AS (SELECT a.id, w.parent_id AS next FROM approval_requests a "
	    "JOIN workspaces w ON w.id = a.assignee_id WHERE a.status = 'pending' "
	    "AND a.escalate_at <= now() FOR UPDATE OF a SKIP LOCKED) UPDATE approval_requests a "
	    "SET assignee_id = due.next, escalation_level = a.escalation_level + 1, "
	    "escalate_at = CASE WHEN due.next IS NULL THEN NULL ELSE now() + a.escalate_after END "
	    "FROM due WHERE a.id = due.id "
	    "RETURNING a.id, a.workspace_id, a.assignee_id, a.action, a.reason, a.escalation_level",
	    0, NULL);
	if (res == NULL)
		return -1;
	n = PQntuples(res);
	for (i = 0; i < n; i++)
		if (record_escalated(r, res, i) < 0)
			return -1;
	return db_commit(r->arena);
}

/*
 * APPROVAL_ESCALATED on the new assignee (on the requester when only a human is left), from a
 * row of (id, workspace_id, assignee_id, action, reason, escalation_level). Returns 0 or -1.
 */
static int
record_escalated(struct req *r, const PGresult *res, int row)
{
	struct json_object *ev = jsonx_own(r->arena, json_object_new_object());
	const char *to = db_value(res, row, 2);

	json_object_object_add(ev, "approval_id", json_object_new_string(db_value(res, row, 0)));
	json_object_object_add(ev, "from_workspace_id", json_object_new_string(db_value(res, row, 1)));
	json_object_object_add(ev, "action", json_object_new_string(db_value(res, row, 3)));
	json_object_object_add(ev, "reason", str_or_null(db_value(res, row, 4)));
	json_object_object_add(ev, "assignee_id", str_or_null(to));
	json_object_object_add(ev, "escalation_level",
	    json_object_new_int(atoi(db_value(res, row, 5))));
	return events_record(r->arena, "APPROVAL_ESCALATED", to != NULL ? to : db_value(res, row, 1),
	    ev);
}

/*
 * Who is calling decide/escalate on :id's request. X-Workspace-ID naming another workspace
 * needs that workspace's own live token (no lazy-bootstrap pass: a decision is a privilege).
 * Otherwise :id's own token marks the requester (self), and anything else must pass
 * AdminAuth. Returns 0, or -1 with the response set (400/401/503).
 */
static int
authorise(struct req *r, const char *ws, struct actor *who)
{
	const char *caller = req_header(r, "X-Workspace-ID"), *tok = req_bearer(r);

	who->workspace_id = NULL;
	who->self = 0;
	if (caller != NULL && caller[0] != '\0' && strcasecmp(caller, ws) != 0) {
		if (!is_uuid(caller))
			return resp_error(r, 400, "invalid X-Workspace-ID", NULL);
		if (tok == NULL)
			return resp_error(r, 401, "missing caller auth token", NULL);
		switch (tokens_check_workspace(r->arena, caller, tok)) {
		case TOKEN_OK:
			who->workspace_id = caller;
			return 0;
		case TOKEN_ERROR:
			return resp_unavailable(r);
		case TOKEN_INVALID:
			return resp_error(r, 401, "invalid caller auth token", NULL);
		}
	}
	if (tok != NULL) {
		switch (tokens_check_workspace(r->arena, ws, tok)) {
		case TOKEN_OK:
			who->self = 1;
			who->workspace_id = ws;
			return 0;
		case TOKEN_ERROR:
			return resp_unavailable(r);
		case TOKEN_INVALID:
			break;
		}
	}
	return guard_check(r, GUARD_ADMIN);
}

/* 1 when actor is the assignee or one of its ancestors, 0 when not, -1 on a database error. */
static int
may_act(struct req *r, const char *assignee, const char *actor)
{
	const char *params[2] = { assignee, actor };
	PGresult *res;

	if (assignee == NULL)
		return 0;
	res = db_exec(r->arena, "WITH RECURSIVE up AS (SELECT id, parent_id, status, 0 AS d "
	    "FROM workspaces WHERE id = $1::uuid UNION ALL SELECT w.id, w.parent_id, w.status, up.d + 1 "
	    "FROM workspaces w JOIN up ON w.id = up.parent_id WHERE up.d < 32) "
	    "SELECT 1 FROM up WHERE id = $2::uuid AND status <> 'removed'", 2, params);
	if (res == NULL)
		return -1;
	return PQntuples(res) > 0;
}

/* Rows of ROW_COLUMNS as the reference's list shapes (plus the escalation state). */
static struct json_object *
list_json(struct req *r, const PGresult *res, int with_workspace)
{
	struct json_object *arr = jsonx_own(r->arena, json_object_new_array()), *e;
	int i, n = PQntuples(res);

	for (i = 0; i < n; i++) {
		e = json_object_new_object();
		json_object_array_add(arr, e);
		json_object_object_add(e, "id", json_object_new_string(db_value(res, i, 0)));
		if (with_workspace) {
			json_object_object_add(e, "workspace_id",
			    json_object_new_string(db_value(res, i, 1)));
			json_object_object_add(e, "workspace_name",
			    json_object_new_string(db_value(res, i, 2)));
		}
		json_object_object_add(e, "task_id", str_or_null(db_value(res, i, 3)));
		json_object_object_add(e, "action", json_object_new_string(db_value(res, i, 4)));
		json_object_object_add(e, "reason", str_or_null(db_value(res, i, 5)));
		json_object_object_add(e, "status", json_object_new_string(db_value(res, i, 6)));
		json_object_object_add(e, "decided_by", str_or_null(db_value(res, i, 7)));
		json_object_object_add(e, "decided_at", str_or_null(db_value(res, i, 8)));
		json_object_object_add(e, "created_at", json_object_new_string(db_value(res, i, 9)));
		json_object_object_add(e, "assignee_id", str_or_null(db_value(res, i, 10)));
		json_object_object_add(e, "escalation_level",
		    json_object_new_int(atoi(db_value(res, i, 11))));
		json_object_object_add(e, "expires_at", json_object_new_string(db_value(res, i, 12)));
	}
	return arr;
}

/* An optional whole number of seconds in [1, DEADLINE_MAX] rendered into buf; absent gives NULL. */
static int
opt_seconds(struct req *r, struct json_object *body, const char *key, char *buf, size_t len,
    const char **out)
{
	struct json_object *v;
	char msg[96];

	*out = NULL;
	if (!json_object_object_get_ex(body, key, &v) || v == NULL)
		return 0;
	if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 1 ||
	    json_object_get_int64(v) > DEADLINE_MAX) {
		snprintf(msg, sizeof(msg), "%s must be an integer between 1 and %d", key, DEADLINE_MAX);
		return resp_error(r, 400, msg, NULL);
	}
	snprintf(buf, len, "%lld", (long long)json_object_get_int64(v));
	*out = buf;
	return 0;
}

/*
 * Sweeps, then opens a transaction locking the pending request aid of ws. Returns 0 with
 * *res (assignee_id in column 0), or -1 with a 404 or fail_tx(what) response set.
 */
static int
lock_pending(struct req *r, const char *ws, const char *aid, const char *what, PGresult **res)
{
	const char *params[2];

	if (aid == NULL || !is_uuid(aid))
		return resp_error(r, 404, NOT_FOUND, NULL);
	if (sweep(r) < 0 || db_begin(r->arena) < 0)
		return fail_tx(r, what);
	params[0] = aid;
	params[1] = ws;
	*res = db_exec(r->arena, "SELECT assignee_id FROM approval_requests WHERE id = $1::uuid "
	    "AND workspace_id = $2::uuid AND status = 'pending' FOR UPDATE", 2, params);
	if (*res == NULL)
		return fail_tx(r, what);
	if (PQntuples(*res) == 0) {
		db_rollback();
		return resp_error(r, 404, NOT_FOUND, NULL);
	}
	return 0;
}

static struct json_object *
str_or_null(const char *s)
{
	return s != NULL ? json_object_new_string(s) : NULL;
}

static int
fail_tx(struct req *r, const char *msg)
{
	if (db_in_transaction())
		db_rollback();
	if (db_unavailable())
		return resp_unavailable(r);
	return resp_error(r, 500, msg, NULL);
}
