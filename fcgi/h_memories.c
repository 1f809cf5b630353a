/*
 * h_memories.c: HMA memories (LOCAL/TEAM/GLOBAL facts, full-text search), the key/value memory
 * with TTL and optimistic version, and the admin export/import. Owns nothing; rows in PostgreSQL.
 */
#include "fcgi/handlers.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "common/db.h"
#include "common/jsonx.h"
#include "common/log.h"
#include "common/redact.h"
#include "common/util.h"
#include "fcgi/resp.h"

#define CONTENT_MAX 65536	/* one memory fact */
#define NAMESPACE_MAX 50	/* characters, as the reference's varchar(50) */
#define QUERY_MAX 1000
#define SEARCH_LIMIT 50
#define KEY_MAX 256
#define VALUE_MAX 65536		/* serialised JSON of one key/value entry */
#define KEYS_MAX 1000		/* live keys per workspace */
#define TTL_MAX 31536000	/* one year */
#define EXPORT_MAX 10000
#define IMPORT_MAX 10000

static int workspace_parent(struct req *r, const char *id, const char **parent);
static int get_str(struct req *r, struct json_object *body, const char *key, size_t max,
    int required, const char **out);
static int check_scope(const char *s);
static size_t utf8_chars(const char *s);
static int valid_namespace(const char *ns);
static const char *redact(struct req *r, const char *in);
static const char *escape_global(struct req *r, const char *in);
static const char *replace_all(struct req *r, const char *in, const char *from, const char *to);
static int sha256_hex(const char *s, char *out);
static struct json_object *memory_row(struct arena *a, const PGresult *res, int i);
static struct json_object *kv_row(const PGresult *res, int i);
static struct json_object *raw_json(const char *text);
static int import_one(struct req *r, struct json_object *item, int *imported, int *skipped);
static int audit_global(struct req *r, const char *ws, const char *mid, const char *ns,
    const char *stored);
static int fail_tx(struct req *r, const char *msg);
static int stmt_failed(struct req *r, const char *msg);

/* ---- HMA memories (api.md §4.10) ------------------------------------------------------- */

int
h_memories_commit(struct req *r)
{
	const char *id = req_param(r, "id"), *content = NULL, *scope = NULL, *ns = NULL;
	const char *parent = NULL, *mid = NULL;
	struct json_object *body = NULL, *v, *out;

	if (id == NULL || !is_uuid(id))
		return resp_error(r, 400, "invalid workspace ID", NULL);
	if (req_json_body_or(r, &body, "invalid request body") < 0)
		return -1;
	/* The reference's binding: both required, any other shape is "invalid request body". */
	if (!json_object_object_get_ex(body, "content", &v) || !json_object_is_type(v, json_type_string) ||
	    json_object_get_string_len(v) == 0)
		return resp_error(r, 400, "invalid request body", NULL);
	if (json_object_get_string_len(v) > CONTENT_MAX)
		return resp_error(r, 413, "content too large (max 65536 bytes)", NULL);
	if (get_str(r, body, "content", CONTENT_MAX, 1, &content) < 0 ||
	    get_str(r, body, "scope", 16, 0, &scope) < 0)
		return -1;
	if (scope == NULL)
		return resp_error(r, 400, "invalid request body", NULL);
	if (!check_scope(scope))
		return resp_error(r, 400, "scope must be LOCAL, TEAM, or GLOBAL", NULL);
	/* Past the byte cap too: the reference's message, not the generic one. */
	if (json_object_object_get_ex(body, "namespace", &v) && json_object_is_type(v, json_type_string) &&
	    (size_t)json_object_get_string_len(v) > 4 * NAMESPACE_MAX)
		return resp_error(r, 400, "namespace must be <= 50 characters", NULL);
	if (get_str(r, body, "namespace", 4 * NAMESPACE_MAX, 0, &ns) < 0)
		return -1;
	if (ns == NULL)
		ns = "general";
	if (!valid_namespace(ns))
		return resp_error(r, 400, "namespace must be <= 50 characters", NULL);

	switch (workspace_parent(r, id, &parent)) {
	case -1:
		return fail_tx(r, "failed to store memory");
	case 0:
		return resp_error(r, 404, "workspace not found", NULL);
	}
	if (strcmp(scope, "GLOBAL") == 0 && parent != NULL)
		return resp_error(r, 403, "only root workspaces can write GLOBAL memories", NULL);
	if (db_begin(r->arena) < 0)
		return fail_tx(r, "failed to store memory");
	if (memories_insert_in_tx(r, id, content, scope, ns, &mid) < 0)
		return -1;
	if (db_commit(r->arena) < 0)
		return fail_tx(r, "failed to store memory");
	out = jsonx_own(r->arena, json_object_new_object());
	json_object_object_add(out, "id", json_object_new_string(mid));
	json_object_object_add(out, "scope", json_object_new_string(scope));
	json_object_object_add(out, "namespace", json_object_new_string(ns));
	return resp_json(r, 201, out);
}

int
memories_insert_in_tx(struct req *r, const char *ws, const char *content, const char *scope,
    const char *ns, const char **id)
{
	const char *stored, *params[4];
	PGresult *res;

	stored = redact(r, content);
	/* A GLOBAL fact is shown to every agent inside a [MEMORY ...] frame: no forged frames. */
	if (stored != NULL && strcmp(scope, "GLOBAL") == 0)
		stored = escape_global(r, stored);
	if (stored == NULL)
		return fail_tx(r, "failed to store memory");
	params[0] = ws;
	params[1] = stored;
	params[2] = scope;
	params[3] = ns;
	res = db_exec(r->arena, "INSERT INTO agent_memories (workspace_id, content, scope, namespace) "
	    "VALUES ($1::uuid, $2, $3, $4) RETURNING id", 4, params);
	if (res == NULL)
		return stmt_failed(r, "failed to store memory");
	if (id != NULL)
		*id = db_value(res, 0, 0);
	if (strcmp(scope, "GLOBAL") == 0 && audit_global(r, ws, db_value(res, 0, 0), ns, stored) < 0)
		return fail_tx(r, "failed to store memory");
	return 0;
}

int
h_memories_search(struct req *r)
{
	const char *id = req_param(r, "id"), *scope = req_query(r, "scope"), *q = req_query(r, "q");
	const char *ns = req_query(r, "namespace"), *lim = req_query(r, "limit");
	const char *wsq = req_query(r, "workspace_id"), *parent = NULL, *why = NULL;
	const char *where, *match = "TRUE", *order = "m.created_at DESC, m.id", *params[5];
	char limbuf[16], *sql, *like;
	int64_t limit = SEARCH_LIMIT;
	struct json_object *arr;
	PGresult *res;
	size_t qlen, i, j;
	int n, k;

	if (id == NULL || !is_uuid(id))
		return resp_error(r, 400, "invalid workspace ID", NULL);
	if (scope == NULL)
		scope = "";
	if (scope[0] != '\0' && !check_scope(scope))
		return resp_error(r, 400, "scope must be LOCAL, TEAM, or GLOBAL", NULL);
	if (ns != NULL && ns[0] == '\0')
		ns = NULL;
	if (ns != NULL && !valid_namespace(ns))
		return resp_error(r, 400, "namespace must be <= 50 characters", NULL);
	if (q != NULL && q[0] == '\0')
		q = NULL;
	if (q != NULL && strlen(q) > QUERY_MAX)
		return resp_error(r, 400, "q too long (max 1000 bytes)", NULL);
	/* Out-of-range limits fall back to the default, as the reference does. */
	if (lim != NULL && parse_int64(lim, 1, SEARCH_LIMIT, &limit, &why) < 0)
		limit = SEARCH_LIMIT;
	/* Runtimes send their own id here; naming another workspace would read its memories. */
	if (wsq != NULL && wsq[0] != '\0' && strcasecmp(wsq, id) != 0)
		return resp_error(r, 403, "workspace_id does not match the authenticated workspace",
		    NULL);
	switch (workspace_parent(r, id, &parent)) {
	case -1:
		return fail_tx(r, "search failed");
	case 0:
		return resp_error(r, 404, "workspace not found", NULL);
	}

	/* TEAM: the parent and its children (self, siblings), or for a root itself and its children. */
	if (strcmp(scope, "LOCAL") == 0)
		where = "m.workspace_id = $1::uuid AND m.scope = 'LOCAL'";
	else if (strcmp(scope, "TEAM") == 0)
		where = "m.scope = 'TEAM' AND (w.id = $2::uuid OR w.parent_id = $2::uuid) "
		    "AND w.status <> 'removed'";
	else if (strcmp(scope, "GLOBAL") == 0)
		where = "m.scope = 'GLOBAL' AND w.status <> 'removed'";
	else
		where = "m.workspace_id = $1::uuid";
	params[0] = id;
	params[1] = parent != NULL ? parent : id;
	params[2] = ns;
	params[3] = NULL;
	qlen = q != NULL ? strlen(q) : 0;
	if (qlen >= 2) {
		match = "m.content_tsv @@ websearch_to_tsquery('english', $4)";
		order = "ts_rank(m.content_tsv, websearch_to_tsquery('english', $4)) DESC, "
		    "m.created_at DESC, m.id";
		params[3] = q;
	} else if (qlen == 1) {
		/* One character is too short for FTS: a substring match, the wildcard escaped. */
		like = arena_alloc(r->arena, 2 * qlen + 1);
		if (like == NULL)
			return -1;
		for (i = j = 0; i < qlen; i++) {
			if (q[i] == '%' || q[i] == '_' || q[i] == '\\')
				like[j++] = '\\';
			like[j++] = q[i];
		}
		like[j] = '\0';
		match = "m.content ILIKE '%' || $4 || '%'";
		params[3] = like;
	}
	snprintf(limbuf, sizeof(limbuf), "%lld", (long long)limit);
	params[4] = limbuf;
	/* Only constant fragments are spliced: every value stays a $n parameter (each one is
	 * named once outside the fragments so PostgreSQL always knows its type). */
	sql = arena_printf(r->arena, "SELECT m.id, m.workspace_id, m.content, m.scope, m.namespace, "
	    DB_RFC3339("m.created_at") " FROM agent_memories m JOIN workspaces w "
	    "ON w.id = m.workspace_id WHERE $1::uuid IS NOT NULL AND $2::uuid IS NOT NULL "
	    "AND %s AND ($3::text IS NULL OR m.namespace = $3) "
	    "AND ($4::text IS NULL OR %s) ORDER BY %s LIMIT $5::int", where, match, order);
	if (sql == NULL)
		return -1;
	res = db_exec(r->arena, sql, 5, params);
	if (res == NULL)
		return stmt_failed(r, "search failed");
	arr = jsonx_own(r->arena, json_object_new_array());
	n = PQntuples(res);
	for (k = 0; k < n; k++)
		json_object_array_add(arr, memory_row(r->arena, res, k));
	return resp_json(r, 200, arr);
}

int
h_memories_delete(struct req *r)
{
	const char *id = req_param(r, "id"), *mid = req_param(r, "memoryId"), *params[2];
	struct json_object *out;
	PGresult *res;

	if (id == NULL || !is_uuid(id))
		return resp_error(r, 400, "invalid workspace ID", NULL);
	if (mid == NULL || !is_uuid(mid))
		return resp_error(r, 404, "memory not found or not owned by this workspace", NULL);
	params[0] = id;
	params[1] = mid;
	res = db_exec(r->arena, "DELETE FROM agent_memories WHERE id = $2::uuid "
	    "AND workspace_id = $1::uuid RETURNING id", 2, params);
	if (res == NULL)
		return fail_tx(r, "delete failed");
	if (PQntuples(res) == 0)
		return resp_error(r, 404, "memory not found or not owned by this workspace", NULL);
	out = jsonx_own(r->arena, json_object_new_object());
	json_object_object_add(out, "status", json_object_new_string("deleted"));
	return resp_json(r, 200, out);
}

/* ---- key/value memory ----------------------------------------------------------------- */

#define KV_COLUMNS "key, value::text, version, " DB_RFC3339("expires_at") ", " \
	DB_RFC3339("updated_at")
#define KV_LIVE "(expires_at IS NULL OR expires_at > now())"

int
h_memory_list(struct req *r)
{
	const char *id = req_param(r, "id"), *params[1];
	struct json_object *arr;
	PGresult *res;
	int i, n;

	if (id == NULL || !is_uuid(id))
		return resp_error(r, 400, "invalid workspace ID", NULL);
	params[0] = id;
	res = db_exec(r->arena, "SELECT " KV_COLUMNS " FROM workspace_memory WHERE "
	    "workspace_id = $1::uuid AND " KV_LIVE " ORDER BY key", 1, params);
	if (res == NULL)
		return fail_tx(r, "failed to list memory");
	arr = jsonx_own(r->arena, json_object_new_array());
	n = PQntuples(res);
	for (i = 0; i < n; i++)
		json_object_array_add(arr, kv_row(res, i));
	return resp_json(r, 200, arr);
}

int
h_memory_get(struct req *r)
{
	const char *id = req_param(r, "id"), *key = req_param(r, "key"), *params[2];
	PGresult *res;

	if (id == NULL || !is_uuid(id))
		return resp_error(r, 400, "invalid workspace ID", NULL);
	if (key == NULL || key[0] == '\0' || strlen(key) > KEY_MAX)
		return resp_error(r, 404, "key not found", NULL);
	params[0] = id;
	params[1] = key;
	res = db_exec(r->arena, "SELECT " KV_COLUMNS " FROM workspace_memory WHERE "
	    "workspace_id = $1::uuid AND key = $2 AND " KV_LIVE, 2, params);
	if (res == NULL)
		return stmt_failed(r, "failed to read memory");
	if (PQntuples(res) == 0)
		return resp_error(r, 404, "key not found", NULL);
	return resp_json(r, 200, jsonx_own(r->arena, kv_row(res, 0)));
}

int
h_memory_set(struct req *r)
{
	const char *id = req_param(r, "id"), *key = NULL, *hdr, *val, *why = NULL, *params[5];
	char ttlbuf[24], verbuf[24];
	struct json_object *body = NULL, *v, *extra, *out;
	int64_t ttl = 0, ifv = -1;
	PGresult *res;
	size_t vlen;

	if (id == NULL || !is_uuid(id))
		return resp_error(r, 400, "invalid workspace ID", NULL);
	if (req_json_body(r, &body) < 0)
		return -1;
	if (get_str(r, body, "key", KEY_MAX, 1, &key) < 0)
		return -1;
	if (key == NULL)
		return resp_error(r, 400, "key is required", NULL);
	if (!json_object_object_get_ex(body, "value", &v))
		return resp_error(r, 400, "value is required", NULL);
	val = jsonx_dump(v, &vlen);
	if (val == NULL)
		return -1;
	if (vlen > VALUE_MAX)
		return resp_error(r, 413, "value too large (max 65536 bytes)", NULL);
	if (json_object_object_get_ex(body, "ttl_seconds", &v) && v != NULL) {
		if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 0 ||
		    json_object_get_int64(v) > TTL_MAX)
			return resp_error(r, 400, "ttl_seconds must be an integer between 0 and 31536000",
			    NULL);
		ttl = json_object_get_int64(v);
	}
	if (json_object_object_get_ex(body, "if_match_version", &v) && v != NULL) {
		if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 0)
			return resp_error(r, 400, "if_match_version must be a non-negative integer", NULL);
		ifv = json_object_get_int64(v);
	}
	/* If-Match: "3" or 3 (an ETag-style header for HTTP clients); the body field wins. */
	hdr = req_header(r, "If-Match");
	if (ifv < 0 && hdr != NULL && hdr[0] != '\0') {
		char tmp[24];
		size_t hl = strlen(hdr);

		if (hl >= 2 && hdr[0] == '"' && hdr[hl - 1] == '"' && hl - 2 < sizeof(tmp)) {
			memcpy(tmp, hdr + 1, hl - 2);
			tmp[hl - 2] = '\0';
			hdr = tmp;
		}
		if (parse_int64(hdr, 0, INT64_MAX, &ifv, &why) < 0)
			return resp_error(r, 400, "If-Match must be a version number", NULL);
	}

	if (db_begin(r->arena) < 0)
		return fail_tx(r, "failed to save memory");
	params[0] = id;
	res = db_exec(r->arena, "SELECT 1 FROM workspaces WHERE id = $1::uuid AND status <> 'removed' "
	    "FOR SHARE", 1, params);
	if (res == NULL)
		return fail_tx(r, "failed to save memory");
	if (PQntuples(res) == 0) {
		db_rollback();
		return resp_error(r, 404, "workspace not found", NULL);
	}
	/* Lazy purge: an expired key is gone, so it can be created afresh (at version 1). */
	if (db_exec(r->arena, "DELETE FROM workspace_memory WHERE workspace_id = $1::uuid "
	    "AND expires_at <= now()", 1, params) == NULL)
		return fail_tx(r, "failed to save memory");
	params[1] = key;
	res = db_exec(r->arena, "SELECT count(*), coalesce(max(version) FILTER (WHERE key = $2), 0) "
	    "FROM workspace_memory WHERE workspace_id = $1::uuid", 2, params);
	if (res == NULL) {
		return stmt_failed(r, "failed to save memory");
	}
	if (ifv >= 0 && strtoll(db_value(res, 0, 1), NULL, 10) != ifv) {
		db_rollback();
		extra = json_object_new_object();
		json_object_object_add(extra, "current_version",
		    json_object_new_int64(strtoll(db_value(res, 0, 1), NULL, 10)));
		return resp_error(r, 409, "version mismatch", extra);
	}
	if (strcmp(db_value(res, 0, 1), "0") == 0 && strtoll(db_value(res, 0, 0), NULL, 10) >= KEYS_MAX) {
		db_rollback();
		return resp_error(r, 413, "too many keys (max 1000)", NULL);
	}
	snprintf(ttlbuf, sizeof(ttlbuf), "%lld", (long long)ttl);
	snprintf(verbuf, sizeof(verbuf), "%lld", (long long)ifv);
	params[2] = val;
	params[3] = ttl > 0 ? ttlbuf : NULL;
	params[4] = verbuf;
	/* The version check is repeated in the statement: two racing writers cannot both win. */
	res = db_exec(r->arena, "INSERT INTO workspace_memory (workspace_id, key, value, expires_at) "
	    "VALUES ($1::uuid, $2, $3::jsonb, now() + make_interval(secs => $4::bigint)) "
	    "ON CONFLICT (workspace_id, key) DO UPDATE SET value = EXCLUDED.value, "
	    "expires_at = EXCLUDED.expires_at, version = workspace_memory.version + 1, updated_at = now() "
	    "WHERE $5::bigint < 0 OR workspace_memory.version = $5::bigint RETURNING version", 5, params);
	if (res == NULL) {
		return stmt_failed(r, "failed to save memory");
	}
	if (PQntuples(res) == 0) {
		db_rollback();
		return resp_error(r, 409, "version mismatch", NULL);
	}
	if (db_commit(r->arena) < 0)
		return fail_tx(r, "failed to save memory");
	out = jsonx_own(r->arena, json_object_new_object());
	json_object_object_add(out, "status", json_object_new_string("ok"));
	json_object_object_add(out, "key", json_object_new_string(key));
	json_object_object_add(out, "version", json_object_new_int64(strtoll(db_value(res, 0, 0), NULL, 10)));
	return resp_json(r, 200, out);
}

int
h_memory_delete(struct req *r)
{
	const char *id = req_param(r, "id"), *key = req_param(r, "key"), *params[2];
	struct json_object *out;
	PGresult *res;

	if (id == NULL || !is_uuid(id))
		return resp_error(r, 400, "invalid workspace ID", NULL);
	if (key == NULL || key[0] == '\0' || strlen(key) > KEY_MAX)
		return resp_error(r, 404, "key not found", NULL);
	params[0] = id;
	params[1] = key;
	/* An expired key is deleted too, but reported as not found: it was already invisible. */
	res = db_exec(r->arena, "DELETE FROM workspace_memory WHERE workspace_id = $1::uuid "
	    "AND key = $2 RETURNING " KV_LIVE, 2, params);
	if (res == NULL)
		return stmt_failed(r, "failed to delete memory");
	if (PQntuples(res) == 0 || strcmp(db_value(res, 0, 0), "t") != 0)
		return resp_error(r, 404, "key not found", NULL);
	out = jsonx_own(r->arena, json_object_new_object());
	json_object_object_add(out, "status", json_object_new_string("deleted"));
	json_object_object_add(out, "key", json_object_new_string(key));
	return resp_json(r, 200, out);
}

/* ---- admin backup --------------------------------------------------------------------- */

int
h_admin_memories_export(struct req *r)
{
	struct json_object *arr, *e;
	const char *content;
	PGresult *res;
	int i, n;

	res = db_exec(r->arena, "SELECT m.id, m.content, m.scope, m.namespace, "
	    DB_RFC3339("m.created_at") ", w.name FROM agent_memories m JOIN workspaces w "
	    "ON w.id = m.workspace_id ORDER BY m.created_at, m.id LIMIT 10000", 0, NULL);
	if (res == NULL)
		return fail_tx(r, "failed to export memories");
	arr = jsonx_own(r->arena, json_object_new_array());
	n = PQntuples(res);
	for (i = 0; i < n; i++) {
		/* Rows written before redaction existed (or by hand) are redacted on the way out. */
		content = redact(r, db_value(res, i, 1));
		if (content == NULL)
			return -1;
		e = json_object_new_object();
		json_object_array_add(arr, e);
		json_object_object_add(e, "id", json_object_new_string(db_value(res, i, 0)));
		json_object_object_add(e, "content", json_object_new_string(content));
		json_object_object_add(e, "scope", json_object_new_string(db_value(res, i, 2)));
		json_object_object_add(e, "namespace", json_object_new_string(db_value(res, i, 3)));
		json_object_object_add(e, "created_at", json_object_new_string(db_value(res, i, 4)));
		json_object_object_add(e, "workspace_name", json_object_new_string(db_value(res, i, 5)));
	}
	if (n == EXPORT_MAX)
		resp_header(r, "X-Truncated", "true");
	return resp_json(r, 200, arr);
}

int
h_admin_memories_import(struct req *r)
{
	struct json_object *body = NULL, *items, *out;
	int imported = 0, skipped = 0, errors = 0;
	size_t i, n;

	if (req_json_value(r, &body) < 0)
		return -1;
	items = body;
	if (json_object_is_type(body, json_type_object) &&
	    !json_object_object_get_ex(body, "memories", &items))
		items = NULL;
	if (!json_object_is_type(items, json_type_array))
		return resp_error(r, 400, "expected a JSON array of memories", NULL);
	n = json_object_array_length(items);
	if (n > IMPORT_MAX)
		return resp_error(r, 413, "too many memories (max 10000)", NULL);
	for (i = 0; i < n; i++) {
		switch (import_one(r, json_object_array_get_idx(items, i), &imported, &skipped)) {
		case -1:
			errors++;
			break;
		case -2:
			return fail_tx(r, "failed to import memories");
		}
	}
	out = jsonx_own(r->arena, json_object_new_object());
	json_object_object_add(out, "imported", json_object_new_int(imported));
	json_object_object_add(out, "skipped", json_object_new_int(skipped));
	json_object_object_add(out, "errors", json_object_new_int(errors));
	json_object_object_add(out, "total", json_object_new_int((int)n));
	return resp_json(r, 200, out);
}

/* ---- helpers -------------------------------------------------------------------------- */

/*
 * One imported memory, matched to a live workspace by name (the oldest when names repeat).
 * Returns 0 (imported or skipped: counted), -1 (an invalid item), -2 (database unusable).
 */
static int
import_one(struct req *r, struct json_object *item, int *imported, int *skipped)
{
	struct json_object *v;
	const char *content, *scope, *ns = "general", *name, *created = NULL, *params[5];
	PGresult *res;

	if (!json_object_is_type(item, json_type_object))
		return -1;
	if (!json_object_object_get_ex(item, "content", &v) || !json_object_is_type(v, json_type_string) ||
	    json_object_get_string_len(v) == 0 || json_object_get_string_len(v) > CONTENT_MAX)
		return -1;
	content = json_object_get_string(v);
	if (!json_object_object_get_ex(item, "scope", &v) || !json_object_is_type(v, json_type_string) ||
	    !check_scope(json_object_get_string(v)))
		return -1;
	scope = json_object_get_string(v);
	if (json_object_object_get_ex(item, "namespace", &v) && json_object_is_type(v, json_type_string) &&
	    json_object_get_string_len(v) > 0)
		ns = json_object_get_string(v);
	if (!valid_namespace(ns))
		return -1;
	if (!json_object_object_get_ex(item, "workspace_name", &v) ||
	    !json_object_is_type(v, json_type_string) || json_object_get_string_len(v) == 0)
		return -1;
	name = json_object_get_string(v);
	if (json_object_object_get_ex(item, "created_at", &v) && json_object_is_type(v, json_type_string) &&
	    json_object_get_string_len(v) > 0 && json_object_get_string_len(v) < 64)
		created = json_object_get_string(v);
	content = redact(r, content);
	if (content != NULL && strcmp(scope, "GLOBAL") == 0)
		content = escape_global(r, content);
	if (content == NULL)
		return -2;
	params[0] = name;
	params[1] = content;
	params[2] = scope;
	params[3] = ns;
	params[4] = created;
	/* GLOBAL keeps its root-only rule; an identical memory already there is skipped. */
	res = db_exec(r->arena, "WITH w AS (SELECT id, parent_id FROM workspaces WHERE name = $1::text "
	    "AND status <> 'removed' ORDER BY created_at, id LIMIT 1), "
	    "ins AS (INSERT INTO agent_memories (workspace_id, content, scope, namespace, created_at) "
	    "SELECT w.id, $2::text, $3::text, $4::text, coalesce($5::timestamptz, now()) FROM w "
	    "WHERE ($3::text <> 'GLOBAL' OR w.parent_id IS NULL) AND NOT EXISTS (SELECT 1 "
	    "FROM agent_memories m WHERE m.workspace_id = w.id AND m.content = $2::text "
	    "AND m.scope = $3::text AND m.namespace = $4::text) "
	    "RETURNING 1) SELECT (SELECT count(*) FROM w), (SELECT count(*) FROM ins), "
	    "(SELECT parent_id IS NOT NULL FROM w)", 5, params);
	if (res == NULL)
		return db_unavailable() ? -2 : -1;
	if (strcmp(db_value(res, 0, 1), "1") == 0) {
		(*imported)++;
		return 0;
	}
	if (strcmp(db_value(res, 0, 0), "1") == 0 && strcmp(scope, "GLOBAL") == 0 &&
	    db_value(res, 0, 2) != NULL && strcmp(db_value(res, 0, 2), "t") == 0)
		return -1;
	(*skipped)++;
	return 0;
}

/* 1 with *parent (NULL for a root) for a live workspace, 0 when there is none, -1 db error. */
static int
workspace_parent(struct req *r, const char *id, const char **parent)
{
	const char *params[1] = { id };
	PGresult *res;

	*parent = NULL;
	res = db_exec(r->arena, "SELECT parent_id FROM workspaces WHERE id = $1::uuid "
	    "AND status <> 'removed'", 1, params);
	if (res == NULL)
		return -1;
	if (PQntuples(res) == 0)
		return 0;
	*parent = db_value(res, 0, 0);
	return 1;
}

/*
 * A string member: absent/null/"" give *out = NULL (a 400 "<key> is required" when required
 * and a non-string is present). Returns 0, or -1 with a 400 set.
 */
static int
get_str(struct req *r, struct json_object *body, const char *key, size_t max, int required,
    const char **out)
{
	struct json_object *v;
	char msg[96];

	if (required && json_object_object_get_ex(body, key, &v) && v != NULL &&
	    !json_object_is_type(v, json_type_string)) {
		*out = NULL;
		snprintf(msg, sizeof(msg), "%s is required", key);
		return resp_error(r, 400, msg, NULL);
	}
	return req_body_str(r, body, key, max, out);
}

static int
check_scope(const char *s)
{
	return strcmp(s, "LOCAL") == 0 || strcmp(s, "TEAM") == 0 || strcmp(s, "GLOBAL") == 0;
}

static size_t
utf8_chars(const char *s)
{
	size_t n = 0;

	for (; *s != '\0'; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			n++;
	return n;
}

static int
valid_namespace(const char *ns)
{
	return strlen(ns) <= 4 * NAMESPACE_MAX && utf8_chars(ns) <= NAMESPACE_MAX;
}

/* Secret-looking substrings replaced by their label (subsystems.md §11). NULL when out of memory. */
static const char *
redact(struct req *r, const char *in)
{
	return redact_secrets(r->arena, in);
}

static const char *
escape_global(struct req *r, const char *in)
{
	return replace_all(r, in, "[MEMORY ", "[_MEMORY ");
}

static const char *
replace_all(struct req *r, const char *in, const char *from, const char *to)
{
	size_t fl = strlen(from), tl = strlen(to), n = 0, used = 0, seg;
	const char *p, *hit;
	char *out;

	for (p = strstr(in, from); p != NULL; p = strstr(p + fl, from))
		n++;
	if (n == 0)
		return in;
	out = arena_alloc(r->arena, strlen(in) + n * tl + 1);
	if (out == NULL)
		return NULL;
	for (p = in; (hit = strstr(p, from)) != NULL; p = hit + fl) {
		seg = (size_t)(hit - p);
		memcpy(out + used, p, seg);
		used += seg;
		memcpy(out + used, to, tl);
		used += tl;
	}
	memcpy(out + used, p, strlen(p) + 1);
	return out;
}

static int
sha256_hex(const char *s, char *out)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	if (EVP_Digest(s, strlen(s), md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32)
		return -1;
	hex_encode(md, mdlen, out);
	return 0;
}

/* {id,workspace_id,content,scope,namespace,created_at}; GLOBAL content framed for the reader. */
static struct json_object *
memory_row(struct arena *a, const PGresult *res, int i)
{
	struct json_object *e = json_object_new_object();
	const char *scope = db_value(res, i, 3), *content = db_value(res, i, 2), *framed;

	json_object_object_add(e, "id", json_object_new_string(db_value(res, i, 0)));
	json_object_object_add(e, "workspace_id", json_object_new_string(db_value(res, i, 1)));
	if (strcmp(scope, "GLOBAL") == 0) {
		framed = arena_printf(a, "[MEMORY id=%s scope=GLOBAL from=%s]: %s", db_value(res, i, 0),
		    db_value(res, i, 1), content);
		if (framed != NULL)
			content = framed;
	}
	json_object_object_add(e, "content", json_object_new_string(content));
	json_object_object_add(e, "scope", json_object_new_string(scope));
	json_object_object_add(e, "namespace", json_object_new_string(db_value(res, i, 4)));
	json_object_object_add(e, "created_at", json_object_new_string(db_value(res, i, 5)));
	return e;
}

/* {key,value,version,expires_at,updated_at} from KV_COLUMNS. */
static struct json_object *
kv_row(const PGresult *res, int i)
{
	struct json_object *e = json_object_new_object();
	const char *exp = db_value(res, i, 3);

	json_object_object_add(e, "key", json_object_new_string(db_value(res, i, 0)));
	json_object_object_add(e, "value", raw_json(db_value(res, i, 1)));
	json_object_object_add(e, "version", json_object_new_int64(strtoll(db_value(res, i, 2), NULL, 10)));
	json_object_object_add(e, "expires_at", exp != NULL ? json_object_new_string(exp) : NULL);
	json_object_object_add(e, "updated_at", json_object_new_string(db_value(res, i, 4)));
	return e;
}

static struct json_object *
raw_json(const char *text)
{
	if (text == NULL || strcmp(text, "null") == 0)
		return NULL;
	return jsonx_parse(text, strlen(text));
}

/* The activity_logs audit of a GLOBAL write: a fingerprint, never the text. Returns 0 or -1. */
static int
audit_global(struct req *r, const char *ws, const char *mid, const char *ns, const char *stored)
{
	struct json_object *audit;
	const char *params[3];
	char sha[65];
	size_t len;

	if (sha256_hex(stored, sha) < 0)
		return -1;
	audit = jsonx_own(r->arena, json_object_new_object());
	if (audit == NULL)
		return -1;
	json_object_object_add(audit, "memory_id", json_object_new_string(mid));
	json_object_object_add(audit, "namespace", json_object_new_string(ns));
	json_object_object_add(audit, "sha256", json_object_new_string(sha));
	params[0] = ws;
	params[1] = arena_printf(r->arena, "GLOBAL memory written (sha256 %s)", sha);
	params[2] = jsonx_dump(audit, &len);
	if (params[1] == NULL || db_exec(r->arena, "INSERT INTO activity_logs (workspace_id, "
	    "activity_type, source_id, method, summary, request_body, status) VALUES ($1::uuid, "
	    "'memory_write_global', $1::uuid, 'commit_memory', $2, $3::jsonb, 'ok')", 3,
	    params) == NULL)
		return -1;
	return 0;
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

/*
 * A failed statement: text PostgreSQL refused (SQLSTATE class 22: NUL, bad UTF-8, a bad
 * timestamp) is the client's 400; anything else is fail_tx. Rolls back an open transaction.
 */
static int
stmt_failed(struct req *r, const char *msg)
{
	if (!db_unavailable() && strncmp(db_last_sqlstate(), "22", 2) == 0) {
		if (db_in_transaction())
			db_rollback();
		return resp_error(r, 400, "invalid text in request (NUL character or invalid UTF-8)",
		    NULL);
	}
	return fail_tx(r, msg);
}
