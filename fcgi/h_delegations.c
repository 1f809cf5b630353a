/*
 * h_delegations.c: delegations between workspaces (api.md §4.11) and the a2a_queue admin tool.
 * Owns nothing; delegations are activity_logs rows as in the reference, delivery is an a2a_queue row.
 */
#include "fcgi/handlers.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/a2a.h"
#include "common/a2aq.h"
#include "common/access.h"
#include "common/db.h"
#include "common/events.h"
#include "common/jsonx.h"
#include "common/log.h"
#include "common/util.h"
#include "fcgi/resp.h"

#define TASK_MAX (256 * 1024)
#define KEY_MAX 256
#define ID_MAX 256
#define ERROR_MAX 16384
#define LIST_LIMIT "50"
#define TASK_PREVIEW 100
#define RESULT_PREVIEW 200
#define LIST_PREVIEW 300
#define SUMMARY_PREVIEW 80

static const char *str_member(struct json_object *body, const char *key, size_t max);
static const char *truncated(struct req *r, const char *s, size_t max);
static int idempotent_hit(struct req *r, const char *source, const char *key, const char *target);
static int send_delegated(struct req *r, const char *source, const char *target, const char *did);
static int platform_in_flight(struct req *r, const char *source, const char *did);
static void update_status(struct req *r, const char *source, const char *did, const char *status,
    const char *error, int *rc);

int
h_delegations_delegate(struct req *r)
{
	const char *id = req_param(r, "id"), *target, *task, *key, *params[5], *did;
	struct json_object *body = NULL, *payload, *meta, *a2a;
	struct a2aq_item it;
	char mid[64];
	PGresult *res;
	int allowed, hit;

	if (id == NULL || !is_uuid(id))
		return resp_error(r, 400, "invalid workspace ID", NULL);
	if (req_json_body_or(r, &body, "invalid delegation request") < 0)
		return -1;
	target = str_member(body, "target_id", ID_MAX);
	task = str_member(body, "task", TASK_MAX);
	key = str_member(body, "idempotency_key", KEY_MAX);
	if (target == NULL || task == NULL || target[0] == '\0' || task[0] == '\0')
		return resp_error(r, 400, "invalid delegation request", NULL);
	if (!is_uuid(target))
		return resp_error(r, 400, "target_id must be a valid UUID", NULL);
	if (key != NULL && key[0] == '\0')
		key = NULL;
	if (strcasecmp(id, target) == 0)
		return resp_error(r, 400, "self-delegation not permitted", NULL);
	params[0] = target;
	res = db_exec(r->arena, "SELECT 1 FROM workspaces WHERE id = $1::uuid AND status <> 'removed'", 1, params);
	if (res == NULL)
		return -1;
	if (PQntuples(res) == 0)
		return resp_error(r, 404, "workspace not found", NULL);
	/* The reference checks the hierarchy only later, in the background proxy call; we refuse now. */
	allowed = access_can_communicate(r->arena, id, target);
	if (allowed < 0)
		return -1;
	if (allowed == 0)
		return resp_error(r, 403, "access denied: workspaces cannot communicate per hierarchy rules", NULL);

	if (db_begin(r->arena) < 0)
		return -1;
	if (key != NULL && (hit = idempotent_hit(r, id, key, target)) != 0) {
		if (hit < 0)
			goto fail;
		goto done_hit;
	}
	params[0] = id;
	params[1] = target;
	params[2] = task;
	params[3] = key;
	/* Concurrent requests with one key: the loser's INSERT waits, then does nothing. */
	res = db_exec(r->arena, "INSERT INTO activity_logs (workspace_id, activity_type, method, source_id, "
	    "target_id, summary, request_body, status, idempotency_key) SELECT w.id, 'delegation', 'delegate', "
	    "w.id, $2::uuid, 'Delegating to ' || $2, jsonb_build_object('task', $3::text, 'delegation_id', "
	    "gen_random_uuid()::text), 'pending', $4 FROM workspaces w WHERE w.id = $1::uuid "
	    "ON CONFLICT (workspace_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING "
	    "RETURNING request_body->>'delegation_id'", 4, params);
	if (res == NULL)
		goto fail;
	if (PQntuples(res) == 0) {
		if (key != NULL && (hit = idempotent_hit(r, id, key, target)) != 0) {
			if (hit < 0)
				goto fail;
			goto done_hit;
		}
		db_rollback();
		return resp_error(r, 404, "workspace not found", NULL);
	}
	did = db_value(res, 0, 0);

	meta = jsonx_own(r->arena, json_object_new_object());
	json_object_object_add(meta, "source", json_object_new_string("delegation"));
	json_object_object_add(meta, "delegation_id", json_object_new_string(did));
	json_object_object_add(meta, "source_workspace_id", json_object_new_string(id));
	snprintf(mid, sizeof(mid), "delegation-%s", did);
	a2a = jsonx_own(r->arena, a2a_text_request(task, mid, meta));
	memset(&it, 0, sizeof(it));
	it.workspace_id = target;
	it.caller_id = id;
	it.kind = "delegation";
	it.ref_id = did;
	it.body = a2a;
	if (a2aq_enqueue(r->arena, &it, NULL, 0) < 0)
		goto fail;
	payload = jsonx_own(r->arena, json_object_new_object());
	json_object_object_add(payload, "delegation_id", json_object_new_string(did));
	json_object_object_add(payload, "target_id", json_object_new_string(target));
	json_object_object_add(payload, "task_preview", json_object_new_string(truncated(r, task, TASK_PREVIEW)));
	if (events_record(r->arena, "DELEGATION_SENT", id, payload) < 0)
		goto fail;
	if (db_commit(r->arena) < 0)
		return -1;
	return send_delegated(r, id, target, did);
done_hit:
	if (db_commit(r->arena) < 0)
		return -1;
	return 0;
fail:
	db_rollback();
	return -1;
}

int
h_delegations_list(struct req *r)
{
	const char *id = req_param(r, "id"), *params[1], *v;
	struct json_object *arr, *e;
	PGresult *res;
	int i, n;

	if (id == NULL || !is_uuid(id))
		return resp_error(r, 400, "invalid workspace ID", NULL);
	params[0] = id;
	res = db_exec(r->arena, "SELECT id, activity_type, COALESCE(source_id::text, ''), "
	    "COALESCE(target_id::text, ''), COALESCE(summary, ''), COALESCE(status, ''), "
	    "COALESCE(error_detail, ''), COALESCE(response_body->>'text', response_body::text, ''), "
	    "COALESCE(request_body->>'delegation_id', response_body->>'delegation_id', ''), "
	    DB_RFC3339("created_at") " FROM activity_logs WHERE workspace_id = $1::uuid "
	    "AND method IN ('delegate', 'delegate_result') ORDER BY created_at DESC, id DESC LIMIT " LIST_LIMIT,
	    1, params);
	if (res == NULL)
		return resp_error(r, 500, "query failed", NULL);
	arr = jsonx_own(r->arena, json_object_new_array());
	n = PQntuples(res);
	for (i = 0; i < n; i++) {
		e = json_object_new_object();
		json_object_array_add(arr, e);
		json_object_object_add(e, "id", json_object_new_string(db_value(res, i, 0)));
		json_object_object_add(e, "type", json_object_new_string(db_value(res, i, 1)));
		json_object_object_add(e, "source_id", json_object_new_string(db_value(res, i, 2)));
		json_object_object_add(e, "target_id", json_object_new_string(db_value(res, i, 3)));
		json_object_object_add(e, "summary", json_object_new_string(db_value(res, i, 4)));
		json_object_object_add(e, "status", json_object_new_string(db_value(res, i, 5)));
		json_object_object_add(e, "created_at", json_object_new_string(db_value(res, i, 9)));
		if ((v = db_value(res, i, 8))[0] != '\0')
			json_object_object_add(e, "delegation_id", json_object_new_string(v));
		if ((v = db_value(res, i, 6))[0] != '\0')
			json_object_object_add(e, "error", json_object_new_string(v));
		if ((v = db_value(res, i, 7))[0] != '\0')
			json_object_object_add(e, "response_preview",
			    json_object_new_string(truncated(r, v, LIST_PREVIEW)));
	}
	return resp_json(r, 200, arr);
}

/* An agent that sent its delegation over A2A itself records it here (no second send). */
int
h_delegations_record(struct req *r)
{
	const char *id = req_param(r, "id"), *target, *task, *did, *params[4];
	struct json_object *body = NULL, *payload, *out;
	PGresult *res;

	if (id == NULL || !is_uuid(id))
		return resp_error(r, 400, "invalid workspace ID", NULL);
	if (req_json_body_or(r, &body, "invalid request body") < 0)
		return -1;
	target = str_member(body, "target_id", ID_MAX);
	task = str_member(body, "task", TASK_MAX);
	did = str_member(body, "delegation_id", ID_MAX);
	if (target == NULL || task == NULL || did == NULL || target[0] == '\0' || task[0] == '\0' ||
	    did[0] == '\0')
		return resp_error(r, 400, "invalid request body", NULL);
	if (!is_uuid(target))
		return resp_error(r, 400, "target_id must be a valid UUID", NULL);
	params[0] = id;
	params[1] = target;
	params[2] = task;
	params[3] = did;
	if (db_begin(r->arena) < 0)
		return -1;
	res = db_exec(r->arena, "INSERT INTO activity_logs (workspace_id, activity_type, method, source_id, "
	    "target_id, summary, request_body, status) SELECT w.id, 'delegation', 'delegate', w.id, $2::uuid, "
	    "'Delegating to ' || $2, jsonb_build_object('task', $3::text, 'delegation_id', $4::text), "
	    "'dispatched' FROM workspaces w WHERE w.id = $1::uuid RETURNING id", 4, params);
	if (res == NULL || PQntuples(res) == 0) {
		db_rollback();
		return resp_error(r, 500, "failed to record delegation", NULL);
	}
	payload = jsonx_own(r->arena, json_object_new_object());
	json_object_object_add(payload, "delegation_id", json_object_new_string(did));
	json_object_object_add(payload, "target_id", json_object_new_string(target));
	json_object_object_add(payload, "task_preview", json_object_new_string(truncated(r, task, TASK_PREVIEW)));
	if (events_record(r->arena, "DELEGATION_SENT", id, payload) < 0) {
		db_rollback();
		return -1;
	}
	if (db_commit(r->arena) < 0)
		return -1;
	out = jsonx_own(r->arena, json_object_new_object());
	json_object_object_add(out, "delegation_id", json_object_new_string(did));
	json_object_object_add(out, "status", json_object_new_string("recorded"));
	return resp_json(r, 202, out);
}

/* The agent reports the end of a delegation it recorded. */
int
h_delegations_update(struct req *r)
{
	const char *id = req_param(r, "id"), *did = req_param(r, "delegation_id"), *status, *err, *prev;
	const char *params[4];
	struct json_object *body = NULL, *payload, *rb, *out;
	size_t len;
	int rc = 0;

	if (id == NULL || !is_uuid(id))
		return resp_error(r, 400, "invalid workspace ID", NULL);
	if (did == NULL || did[0] == '\0' || strlen(did) > ID_MAX)
		return resp_error(r, 400, "invalid delegation ID", NULL);
	if (req_json_body(r, &body) < 0)
		return -1;
	status = str_member(body, "status", 32);
	err = str_member(body, "error", ERROR_MAX);
	prev = str_member(body, "response_preview", TASK_MAX);
	if (status == NULL)
		return resp_error(r, 400, "invalid request body", NULL);
	if (strcmp(status, "completed") != 0 && strcmp(status, "failed") != 0)
		return resp_error(r, 400, "status must be 'completed' or 'failed'", NULL);
	if (prev == NULL)
		prev = "";
	if (db_begin(r->arena) < 0)
		return -1;
	switch (platform_in_flight(r, id, did)) {
	case 0:
		break;
	case 1:
		db_rollback();
		return resp_error(r, 409, "delegation is still being delivered by the platform", NULL);
	default:
		db_rollback();
		return -1;
	}
	update_status(r, id, did, status, err, &rc);
	payload = jsonx_own(r->arena, json_object_new_object());
	json_object_object_add(payload, "delegation_id", json_object_new_string(did));
	if (strcmp(status, "completed") == 0) {
		rb = jsonx_own(r->arena, json_object_new_object());
		json_object_object_add(rb, "text", json_object_new_string(prev));
		json_object_object_add(rb, "delegation_id", json_object_new_string(did));
		params[0] = id;
		params[1] = arena_printf(r->arena, "Delegation completed (%s)", truncated(r, prev, SUMMARY_PREVIEW));
		params[2] = jsonx_dump(rb, &len);
		if (rc == 0 && db_exec(r->arena, "INSERT INTO activity_logs (workspace_id, activity_type, method, "
		    "source_id, summary, response_body, status) SELECT w.id, 'delegation', 'delegate_result', w.id, "
		    "$2, $3::jsonb, 'completed' FROM workspaces w WHERE w.id = $1::uuid", 3, params) == NULL)
			rc = -1;
		json_object_object_add(payload, "response_preview",
		    json_object_new_string(truncated(r, prev, RESULT_PREVIEW)));
	} else {
		json_object_object_add(payload, "error", json_object_new_string(err != NULL ? err : ""));
	}
	if (rc == 0 && events_record(r->arena, strcmp(status, "completed") == 0 ? "DELEGATION_COMPLETE" :
	    "DELEGATION_FAILED", id, payload) < 0)
		rc = -1;
	if (rc < 0) {
		db_rollback();
		return -1;
	}
	if (db_commit(r->arena) < 0)
		return -1;
	out = jsonx_own(r->arena, json_object_new_object());
	json_object_object_add(out, "status", json_object_new_string(status));
	json_object_object_add(out, "delegation_id", json_object_new_string(did));
	return resp_json(r, 200, out);
}

/* POST /admin/a2a-queue/drop-stale?max_age_minutes=N&workspace_id=<id>: queued rows older than N → dropped. */
int
h_admin_queue_drop_stale(struct req *r)
{
	const char *age = req_query(r, "max_age_minutes"), *ws = req_query(r, "workspace_id"), *why = NULL;
	const char *params[2];
	struct json_object *out;
	int64_t mins = 60;
	char buf[24];
	PGresult *res;

	if (age != NULL && age[0] != '\0' && parse_int64(age, 1, 5256000, &mins, &why) < 0)
		return resp_error(r, 400, "max_age_minutes must be a positive integer", NULL);
	if (ws != NULL && ws[0] == '\0')
		ws = NULL;
	if (ws != NULL && !is_uuid(ws))
		return resp_error(r, 400, "workspace_id must be a valid UUID", NULL);
	snprintf(buf, sizeof(buf), "%lld", (long long)mins);
	params[0] = buf;
	params[1] = ws;
	res = db_exec(r->arena, "UPDATE a2a_queue SET status = 'dropped', error = 'dropped as stale by an "
	    "admin', updated_at = now() WHERE id IN (SELECT id FROM a2a_queue WHERE status = 'queued' AND "
	    "created_at < now() - make_interval(mins => $1::int) AND ($2::uuid IS NULL OR workspace_id = "
	    "$2::uuid) FOR UPDATE SKIP LOCKED) RETURNING id", 2, params);
	if (res == NULL)
		return db_unavailable() ? -1 : resp_error(r, 500, "failed to drop stale items", NULL);
	log_info("a2a queue: dropped %d stale items (workspace_id=%s, max_age=%lldm)", PQntuples(res),
	    ws ? ws : "*", (long long)mins);
	out = jsonx_own(r->arena, json_object_new_object());
	json_object_object_add(out, "dropped", json_object_new_int(PQntuples(res)));
	return resp_json(r, 200, out);
}

/*
 * An existing delegation with this key. Not failed: the 200 idempotent answer is set and 1
 * returned. Failed: its key is released (history kept) so a new one can take it; 0. -1 on error.
 */
static int
idempotent_hit(struct req *r, const char *source, const char *key, const char *target)
{
	const char *params[2];
	struct json_object *out;
	PGresult *res;

	params[0] = source;
	params[1] = key;
	res = db_exec(r->arena, "SELECT id, COALESCE(request_body->>'delegation_id', ''), COALESCE(status, ''), "
	    "COALESCE(target_id::text, '') FROM activity_logs WHERE workspace_id = $1::uuid AND "
	    "idempotency_key = $2 FOR UPDATE", 2, params);
	if (res == NULL)
		return -1;
	if (PQntuples(res) == 0 || db_value(res, 0, 1)[0] == '\0')
		return 0;
	if (strcmp(db_value(res, 0, 2), "failed") == 0) {
		params[0] = db_value(res, 0, 0);
		if (db_exec(r->arena, "UPDATE activity_logs SET idempotency_key = NULL WHERE id = $1::uuid", 1,
		    params) == NULL)
			return -1;
		return 0;
	}
	out = jsonx_own(r->arena, json_object_new_object());
	json_object_object_add(out, "delegation_id", json_object_new_string(db_value(res, 0, 1)));
	json_object_object_add(out, "status", json_object_new_string(db_value(res, 0, 2)));
	json_object_object_add(out, "target_id", json_object_new_string(db_value(res, 0, 3)[0] != '\0' ?
	    db_value(res, 0, 3) : target));
	json_object_object_add(out, "idempotent_hit", json_object_new_boolean(1));
	resp_json(r, 200, out);
	return 1;
}

static int
send_delegated(struct req *r, const char *source, const char *target, const char *did)
{
	struct json_object *out = jsonx_own(r->arena, json_object_new_object());

	UNUSED(source);
	json_object_object_add(out, "delegation_id", json_object_new_string(did));
	json_object_object_add(out, "status", json_object_new_string("delegated"));
	json_object_object_add(out, "target_id", json_object_new_string(target));
	return resp_json(r, 202, out);
}

/*
 * Whether the platform still owns delivery of this delegation (its a2a_queue row is queued or
 * running). A terminal update then would release the idempotency key while the first copy is
 * still sent, and a retry would queue a second. The row is locked so the dispatcher's own
 * finish is seen. Returns 1, 0, or -1 on a database error.
 */
static int
platform_in_flight(struct req *r, const char *source, const char *did)
{
	const char *params[2] = { source, did };
	PGresult *res;

	res = db_exec(r->arena, "SELECT q.id FROM activity_logs l JOIN a2a_queue q ON q.workspace_id = "
	    "l.target_id AND q.kind = 'delegation' AND q.ref_id::text = l.request_body->>'delegation_id' "
	    "WHERE l.workspace_id = $1::uuid AND l.activity_type = 'delegation' AND l.method = 'delegate' "
	    "AND l.request_body->>'delegation_id' = $2 AND q.status IN ('queued', 'running') FOR UPDATE OF q",
	    2, params);
	if (res == NULL)
		return -1;
	return PQntuples(res) > 0;
}

/* The 'delegate' row takes the reported status (the reference's updateDelegationStatus). */
static void
update_status(struct req *r, const char *source, const char *did, const char *status, const char *error,
    int *rc)
{
	const char *params[4];

	params[0] = status;
	params[1] = error;
	params[2] = source;
	params[3] = did;
	if (db_exec(r->arena, "UPDATE activity_logs SET status = $1, error_detail = COALESCE($2, error_detail) "
	    "WHERE workspace_id = $3::uuid AND activity_type = 'delegation' AND method = 'delegate' AND "
	    "request_body->>'delegation_id' = $4", 4, params) == NULL)
		*rc = -1;
}

/* A string member (NULL when absent, not a string, holding a NUL, or longer than max). */
static const char *
str_member(struct json_object *body, const char *key, size_t max)
{
	struct json_object *v;
	const char *s;

	if (!json_object_object_get_ex(body, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	s = json_object_get_string(v);
	if ((size_t)json_object_get_string_len(v) != strlen(s) || strlen(s) > max)
		return NULL;
	return s;
}

/* s cut to max bytes on a UTF-8 boundary, "..." appended when cut (the reference's truncate). */
static const char *
truncated(struct req *r, const char *s, size_t max)
{
	size_t n = utf8_prefix_len(s, max);

	return s[n] == '\0' ? s : arena_printf(r->arena, "%.*s...", (int)n, s);
}
