/*
 * h_tokens.c: bearer-token management: per-workspace tokens, org API tokens, the test-token hatch.
 * Owns nothing; plaintext tokens exist only in a stack buffer (wiped) and the response body.
 */
#include "fcgi/handlers.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "common/db.h"
#include "common/jsonx.h"
#include "common/kv.h"
#include "common/log.h"
#include "common/tokens.h"
#include "common/util.h"
#include "fcgi/guard.h"
#include "fcgi/resp.h"


#define MAX_WS_TOKENS 50
#define WS_LIST_DEFAULT 50
#define WS_LIST_MAX 200
#define ORG_LIST_MAX "500"
#define ORG_NAME_MAX 100
#define ORG_MINT_PER_HOUR 10
#define ORG_MINT_WINDOW_S 3600

static int workspace_live(struct req *r, const char **id);
static int query_int(struct req *r, const char *name, int64_t min, int64_t max, int64_t dflt,
    int64_t *out, const char *msg);
static int org_rate_limited(struct req *r, long long *retry_after);
static int org_name(struct req *r, const char **name);
static size_t utf8_chars(const char *s);
static int mint_response(struct req *r, const char *id, char *tok);
static int db_fail(struct req *r, const char *msg);

int
h_tokens_list(struct req *r)
{
	const char *id = NULL, *params[3];
	char lim[24], off[24];
	struct json_object *out, *arr, *t;
	PGresult *res;
	int64_t limit = 0, offset = 0;
	int i, n;

	if (workspace_live(r, &id) < 0)
		return -1;
	if (query_int(r, "limit", 1, INT32_MAX, WS_LIST_DEFAULT, &limit,
	    "limit must be a positive integer") < 0 ||
	    query_int(r, "offset", 0, INT32_MAX, 0, &offset,
	    "offset must be a non-negative integer") < 0)
		return -1;
	if (limit > WS_LIST_MAX)
		limit = WS_LIST_MAX;
	snprintf(lim, sizeof(lim), "%lld", (long long)limit);
	snprintf(off, sizeof(off), "%lld", (long long)offset);
	params[0] = id;
	params[1] = lim;
	params[2] = off;
	res = db_exec(r->arena, "SELECT id, prefix, " DB_RFC3339("created_at") ", " DB_RFC3339("last_used_at")
	    " FROM workspace_auth_tokens WHERE workspace_id = $1::uuid AND revoked_at IS NULL"
	    " ORDER BY created_at DESC, id LIMIT $2::int OFFSET $3::int", 3, params);
	if (res == NULL)
		return -1;
	out = jsonx_own(r->arena, json_object_new_object());
	arr = json_object_new_array();
	json_object_object_add(out, "tokens", arr);
	n = PQntuples(res);
	for (i = 0; i < n; i++) {
		t = json_object_new_object();
		json_object_object_add(t, "id", json_object_new_string(db_value(res, i, 0)));
		json_object_object_add(t, "prefix", json_object_new_string(db_value(res, i, 1)));
		json_object_object_add(t, "created_at", json_object_new_string(db_value(res, i, 2)));
		json_object_object_add(t, "last_used_at", db_value(res, i, 3) ?
		    json_object_new_string(db_value(res, i, 3)) : NULL);
		json_object_array_add(arr, t);
	}
	json_object_object_add(out, "count", json_object_new_int(n));
	return resp_json(r, 200, out);
}

int
h_tokens_create(struct req *r)
{
	const char *id = req_param(r, "id"), *params[1];
	char tok[TOKEN_LEN + 1], msg[64];
	struct json_object *out;
	PGresult *res;
	int rc = -1;

	if (id == NULL || !is_uuid(id))
		return resp_error(r, 400, "invalid workspace ID", NULL);
	params[0] = id;
	tok[0] = '\0';
	if (db_begin(r->arena) < 0)
		return -1;
	/* The row lock serialises concurrent mints, so the cap cannot be raced past. */
	res = db_exec(r->arena, "SELECT 1 FROM workspaces WHERE id = $1::uuid AND status <> 'removed' "
	    "FOR NO KEY UPDATE", 1, params);
	if (res == NULL)
		goto out;
	if (PQntuples(res) == 0) {
		rc = resp_error(r, 404, "workspace not found", NULL);
		goto out;
	}
	res = db_exec(r->arena, "SELECT count(*) FROM workspace_auth_tokens "
	    "WHERE workspace_id = $1::uuid AND revoked_at IS NULL", 1, params);
	if (res == NULL)
		goto out;
	if (atoi(PQgetvalue(res, 0, 0)) >= MAX_WS_TOKENS) {
		snprintf(msg, sizeof(msg), "maximum %d active tokens per workspace", MAX_WS_TOKENS);
		rc = resp_error(r, 429, msg, NULL);
		goto out;
	}
	if (tokens_mint_workspace(r->arena, id, tok) < 0) {
		rc = db_fail(r, "failed to create token");
		goto out;
	}
	if (db_commit(r->arena) < 0) {
		OPENSSL_cleanse(tok, sizeof(tok));
		return -1;
	}
	log_info("tokens: issued a new token for workspace %s", id);
	out = jsonx_own(r->arena, json_object_new_object());
	json_object_object_add(out, "auth_token", json_object_new_string(tok));
	json_object_object_add(out, "workspace_id", json_object_new_string(id));
	json_object_object_add(out, "message",
	    json_object_new_string("Save this token now — it cannot be retrieved again."));
	OPENSSL_cleanse(tok, sizeof(tok));
	return resp_json(r, 201, out);
out:
	db_rollback();
	OPENSSL_cleanse(tok, sizeof(tok));
	return rc;
}

int
h_tokens_revoke(struct req *r)
{
	const char *id = NULL, *tid = req_param(r, "tokenId"), *params[2];
	struct json_object *out;
	PGresult *res;

	if (workspace_live(r, &id) < 0)
		return -1;
	if (tid == NULL || !is_uuid(tid))
		return resp_error(r, 400, "invalid token ID", NULL);
	params[0] = tid;
	params[1] = id;
	res = db_exec(r->arena, "UPDATE workspace_auth_tokens SET revoked_at = now() "
	    "WHERE id = $1::uuid AND workspace_id = $2::uuid AND revoked_at IS NULL RETURNING id",
	    2, params);
	if (res == NULL)
		return -1;
	if (PQntuples(res) == 0)
		return resp_error(r, 404, "token not found or already revoked", NULL);
	log_info("tokens: revoked token %s of workspace %s", tid, id);
	out = jsonx_own(r->arena, json_object_new_object());
	json_object_object_add(out, "status", json_object_new_string("revoked"));
	return resp_json(r, 200, out);
}

int
h_org_tokens_list(struct req *r)
{
	struct json_object *out, *arr, *t;
	PGresult *res;
	const char *v;
	int i, n;

	res = db_exec(r->arena, "SELECT id, prefix, name, org_id, created_by, " DB_RFC3339("created_at") ", "
	    DB_RFC3339("last_used_at") " FROM org_api_tokens WHERE revoked_at IS NULL "
	    "ORDER BY created_at DESC, id LIMIT " ORG_LIST_MAX, 0, NULL);
	if (res == NULL)
		return db_fail(r, "failed to list tokens");
	out = jsonx_own(r->arena, json_object_new_object());
	arr = json_object_new_array();
	json_object_object_add(out, "tokens", arr);
	n = PQntuples(res);
	for (i = 0; i < n; i++) {
		t = json_object_new_object();
		json_object_object_add(t, "id", json_object_new_string(db_value(res, i, 0)));
		json_object_object_add(t, "prefix", json_object_new_string(db_value(res, i, 1)));
		/* name, org_id, created_by and last_used_at are omitted when empty (omitempty). */
		if ((v = db_value(res, i, 2)) != NULL && v[0] != '\0')
			json_object_object_add(t, "name", json_object_new_string(v));
		if ((v = db_value(res, i, 3)) != NULL)
			json_object_object_add(t, "org_id", json_object_new_string(v));
		if ((v = db_value(res, i, 4)) != NULL && v[0] != '\0')
			json_object_object_add(t, "created_by", json_object_new_string(v));
		json_object_object_add(t, "created_at", json_object_new_string(db_value(res, i, 5)));
		if ((v = db_value(res, i, 6)) != NULL)
			json_object_object_add(t, "last_used_at", json_object_new_string(v));
		json_object_array_add(arr, t);
	}
	json_object_object_add(out, "count", json_object_new_int(n));
	return resp_json(r, 200, out);
}

int
h_org_tokens_create(struct req *r)
{
	const char *name = NULL, *params[5];
	char tok[TOKEN_LEN + 1], hash[65], prefix[TOKEN_PREFIX_LEN + 1], ra[24];
	struct json_object *out, *extra;
	long long retry = 0;
	PGresult *res;
	int rc = -1;

	if (org_rate_limited(r, &retry)) {
		snprintf(ra, sizeof(ra), "%lld", retry);
		resp_header(r, "Retry-After", ra);
		extra = json_object_new_object();
		json_object_object_add(extra, "retry_after", json_object_new_int64(retry));
		return resp_error(r, 429, "rate limit exceeded", extra);
	}
	if (org_name(r, &name) < 0)
		return -1;
	if (token_generate(tok) < 0)
		return resp_error(r, 500, "failed to mint token", NULL);
	token_hash_hex(tok, hash);
	memcpy(prefix, tok, TOKEN_PREFIX_LEN);
	prefix[TOKEN_PREFIX_LEN] = '\0';
	params[0] = hash;
	params[1] = prefix;
	params[2] = name;
	/* Provenance: the minting org token's prefix, else the operator credential. */
	params[3] = r->auth_org_token_id;
	/* An org token anchors what it mints to its own org; nothing else does. */
	params[4] = r->auth_org_id;
	res = db_exec(r->arena, "INSERT INTO org_api_tokens (token_hash, prefix, name, created_by, org_id) "
	    "VALUES (decode($1, 'hex'), $2, $3, COALESCE((SELECT 'org-token:' || prefix "
	    "FROM org_api_tokens WHERE id = $4::uuid), 'admin-token'), $5::uuid) "
	    "RETURNING id, created_by", 5, params);
	if (res == NULL || PQntuples(res) != 1) {
		rc = db_fail(r, "failed to mint token");
		goto out;
	}
	log_info("orgtoken: minted id=%s prefix=%s by=%s", db_value(res, 0, 0), prefix,
	    db_value(res, 0, 1));
	out = jsonx_own(r->arena, json_object_new_object());
	json_object_object_add(out, "id", json_object_new_string(db_value(res, 0, 0)));
	json_object_object_add(out, "prefix", json_object_new_string(prefix));
	if (name != NULL)
		json_object_object_add(out, "name", json_object_new_string(name));
	json_object_object_add(out, "auth_token", json_object_new_string(tok));
	json_object_object_add(out, "warning",
	    json_object_new_string("copy this token now; it will not be shown again"));
	rc = resp_json(r, 200, out);
out:
	OPENSSL_cleanse(tok, sizeof(tok));
	return rc;
}

int
h_org_tokens_revoke(struct req *r)
{
	const char *id = req_param(r, "id"), *params[1];
	struct json_object *out;
	PGresult *res;

	/* Not a UUID: no such token (the reference answered 500 "failed to revoke"). */
	if (id == NULL || !is_uuid(id))
		return resp_error(r, 404, "token not found or already revoked", NULL);
	params[0] = id;
	res = db_exec(r->arena, "UPDATE org_api_tokens SET revoked_at = now() "
	    "WHERE id = $1::uuid AND revoked_at IS NULL RETURNING id", 1, params);
	if (res == NULL)
		return db_fail(r, "failed to revoke");
	if (PQntuples(res) == 0)
		return resp_error(r, 404, "token not found or already revoked", NULL);
	log_info("orgtoken: revoked id=%s", id);
	out = jsonx_own(r->arena, json_object_new_object());
	json_object_object_add(out, "revoked", json_object_new_string(db_value(res, 0, 0)));
	return resp_json(r, 200, out);
}

/*
 * GET /admin/workspaces/:id/test-token: no route guard, gated here. Off in production
 * unless enable_test_tokens; with ADMIN_TOKEN set only that bearer opens it; without one
 * only AdminAuth's bootstrap or dev hatch does. Org tokens never do.
 */
int
h_admin_test_token(struct req *r)
{
	const char *id = req_param(r, "id"), *tok, *params[1];
	char plain[TOKEN_LEN + 1];
	PGresult *res;

	if (conf_is_production(r->conf) && !r->conf->enable_test_tokens)
		return resp_error(r, 404, "not found", NULL);
	if (r->conf->admin_token[0] != '\0') {
		tok = req_bearer(r);
		if (tok == NULL || !str_eq_ct(tok, r->conf->admin_token))
			return resp_error(r, 401, "admin auth required", NULL);
	} else {
		if (guard_check(r, GUARD_ADMIN) < 0)
			return -1;
		if (r->auth_org_token_id != NULL)
			return resp_error(r, 401, "admin auth required", NULL);
	}
	if (id == NULL || !is_uuid(id))
		return resp_error(r, 400, "invalid workspace ID", NULL);
	params[0] = id;
	res = db_exec(r->arena, "SELECT 1 FROM workspaces WHERE id = $1::uuid AND status <> 'removed'",
	    1, params);
	if (res == NULL)
		return db_fail(r, "lookup failed");
	if (PQntuples(res) == 0)
		return resp_error(r, 404, "workspace not found", NULL);
	if (tokens_mint_workspace(r->arena, id, plain) < 0)
		return db_fail(r, "token issue failed");
	log_info("admin: issued a test token for workspace %s", id);
	return mint_response(r, id, plain);
}

/* :id is a UUID of an existing, not removed workspace. Returns 0, or -1 with 400/404 set. */
static int
workspace_live(struct req *r, const char **id)
{
	const char *params[1];
	PGresult *res;

	*id = req_param(r, "id");
	if (*id == NULL || !is_uuid(*id))
		return resp_error(r, 400, "invalid workspace ID", NULL);
	params[0] = *id;
	res = db_exec(r->arena, "SELECT 1 FROM workspaces WHERE id = $1::uuid AND status <> 'removed'",
	    1, params);
	if (res == NULL)
		return -1;
	if (PQntuples(res) == 0)
		return resp_error(r, 404, "workspace not found", NULL);
	return 0;
}

/* An optional integer query argument in [min, max]; absent or empty gives dflt. */
static int
query_int(struct req *r, const char *name, int64_t min, int64_t max, int64_t dflt, int64_t *out,
    const char *msg)
{
	const char *v = req_query(r, name), *why = NULL;

	*out = dflt;
	if (v == NULL || v[0] == '\0')
		return 0;
	if (parse_int64(v, min, max, out, &why) < 0)
		return resp_error(r, 400, msg, NULL);
	return 0;
}

/*
 * The 10 mints per hour per client address limiter (Redis INCR + EXPIRE). Returns 1 when
 * over the limit with *retry_after set; 0 otherwise, also when Redis is down (logged).
 */
static int
org_rate_limited(struct req *r, long long *retry_after)
{
	const char *addr = req_env(r, "REMOTE_ADDR");
	redisReply *rep;
	long long n;

	if (addr == NULL || addr[0] == '\0')
		addr = "unknown";
	rep = kv_command(r->arena, "INCR org_tokens_rl:%s", addr);
	if (rep == NULL || rep->type != REDIS_REPLY_INTEGER) {
		log_warn("orgtoken: rate limiter unavailable, not limiting");
		return 0;
	}
	n = rep->integer;
	if (n == 1)
		kv_command(r->arena, "EXPIRE org_tokens_rl:%s %d", addr, ORG_MINT_WINDOW_S);
	if (n <= ORG_MINT_PER_HOUR)
		return 0;
	rep = kv_command(r->arena, "TTL org_tokens_rl:%s", addr);
	*retry_after = rep != NULL && rep->type == REDIS_REPLY_INTEGER ? rep->integer : -1;
	if (*retry_after < 0) {
		/* A key left without expiry (crash between INCR and EXPIRE) must not block forever. */
		kv_command(r->arena, "EXPIRE org_tokens_rl:%s %d", addr, ORG_MINT_WINDOW_S);
		*retry_after = ORG_MINT_WINDOW_S;
	}
	if (*retry_after == 0)
		*retry_after = 1;
	return 1;
}

/*
 * The optional {"name"} body of POST /org/tokens. *name is NULL for no body, no name or "".
 * Returns 0, or -1 with 400/413 set.
 */
static int
org_name(struct req *r, const char **name)
{
	const char *cl = req_env(r, "CONTENT_LENGTH");
	struct json_object *body = NULL, *v;

	*name = NULL;
	if (cl == NULL || cl[0] == '\0' || strcmp(cl, "0") == 0)
		return 0;
	if (req_json_body(r, &body) < 0)
		return -1;
	if (!json_object_object_get_ex(body, "name", &v) || v == NULL)
		return 0;
	if (!json_object_is_type(v, json_type_string))
		return resp_error(r, 400, "name must be a string", NULL);
	if ((size_t)json_object_get_string_len(v) != strlen(json_object_get_string(v)))
		return resp_error(r, 400, "name must not contain NUL characters", NULL);
	if (utf8_chars(json_object_get_string(v)) > ORG_NAME_MAX)
		return resp_error(r, 400, "name too long (max 100 chars)", NULL);
	if (json_object_get_string_len(v) > 0)
		*name = json_object_get_string(v);
	return 0;
}

/* Code points in a UTF-8 string (continuation bytes are not counted). */
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
mint_response(struct req *r, const char *id, char *tok)
{
	struct json_object *out = jsonx_own(r->arena, json_object_new_object());
	int rc;

	json_object_object_add(out, "auth_token", json_object_new_string(tok));
	json_object_object_add(out, "workspace_id", json_object_new_string(id));
	rc = resp_json(r, 200, out);
	OPENSSL_cleanse(tok, TOKEN_LEN + 1);
	return rc;
}

/* A failed statement: 503 when the database is unreachable, else 500 with msg. Returns -1. */
static int
db_fail(struct req *r, const char *msg)
{
	if (db_unavailable())
		return resp_unavailable(r);
	return resp_error(r, 500, msg, NULL);
}
