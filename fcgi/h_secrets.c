/*
 * h_secrets.c: workspace and global secrets (api.md §4.14), the MODEL_PROVIDER shortcut.
 * Owns nothing; plaintext lives only in malloc'd buffers wiped before free, and is never logged.
 */
#include "fcgi/handlers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "common/crypt.h"
#include "common/db.h"
#include "common/events.h"
#include "common/jsonx.h"
#include "common/log.h"
#include "common/util.h"
#include "fcgi/guard.h"
#include "fcgi/resp.h"


#define SECRET_KEY_MAX 128
#define SECRET_VALUE_MAX 65536
#define MODEL_KEY "MODEL_PROVIDER"
#define SCOPE_GLOBAL "global"
/* Workspaces a secret change restarts: running ones that the platform provisions. */
#define RESTARTABLE "w.status NOT IN ('removed', 'paused') AND " \
    "w.runtime IS DISTINCT FROM 'external'"

static int workspace_exists(struct req *r, const char *id, int lock);
static int body_secret(struct req *r, const char **key, const char **val, size_t *vlen);
static int valid_key(const char *k);
static int write_secret(struct req *r, const char *ws, const char *key, const char *val,
    size_t vlen, int *found);
static int upsert(struct req *r, const char *ws, const char *key, const char *val, size_t vlen);
static int restart_jobs(struct req *r, const char *ws, const char *key);
static int record(struct req *r, const char *type, const char *ws, const char *key);
static int seal_hex(struct req *r, const char *scope, const char *key, const char *val,
    size_t vlen, const char **hex, const char **ver);
static enum crypt_result open_hex(const char *scope, const char *key, const char *ver,
    const char *hex, unsigned char **pt, size_t *ptlen);
static int kms_unavailable(struct req *r);
static int fail_tx(struct req *r, const char *msg);
static int list_rows(struct req *r, PGresult *res);
static int saved(struct req *r, const char *status, const char *key, int global);

int
h_secrets_list(struct req *r)
{
	const char *id = NULL, *params[1];
	PGresult *res;

	if (req_workspace_id(r, &id) < 0 || workspace_exists(r, id, 0) < 0)
		return -1;
	params[0] = id;
	res = db_exec(r->arena, "SELECT key, scope, c, u FROM ("
	    "SELECT key, 'workspace' AS scope, 0 AS o, " DB_RFC3339("created_at") " AS c, "
	    DB_RFC3339("updated_at") " AS u FROM workspace_secrets WHERE workspace_id = $1::uuid "
	    "UNION ALL SELECT g.key, 'global', 1, " DB_RFC3339("g.created_at") ", " DB_RFC3339("g.updated_at")
	    " FROM global_secrets g WHERE NOT EXISTS (SELECT 1 FROM workspace_secrets s "
	    "WHERE s.workspace_id = $1::uuid AND s.key = g.key)) x ORDER BY o, key", 1, params);
	if (res == NULL)
		return fail_tx(r, "failed to list secrets");
	return list_rows(r, res);
}

int
h_secrets_values(struct req *r)
{
	const char *id = NULL, *params[1], *scope, *key;
	struct json_object *out, *failed;
	unsigned char *pt = NULL;
	size_t ptlen = 0;
	PGresult *res;
	enum crypt_result cr;
	int i, n, nfailed = 0;

	if (req_workspace_id(r, &id) < 0)
		return -1;
	/* Strict: once the workspace has a token, only that token reads the plaintext bundle. */
	if (guard_lazy_bootstrap(r, id, "workspace", 1) < 0 || workspace_exists(r, id, 0) < 0)
		return -1;
	params[0] = id;
	/* Globals first, so the workspace's own rows overlay them in the map. */
	res = db_exec(r->arena, "SELECT 'global', key, encryption_version, "
	    "encode(encrypted_value, 'hex'), 0 AS o FROM global_secrets "
	    "UNION ALL SELECT workspace_id::text, key, encryption_version, "
	    "encode(encrypted_value, 'hex'), 1 FROM workspace_secrets WHERE workspace_id = $1::uuid "
	    "ORDER BY o, key", 1, params);
	if (res == NULL)
		return fail_tx(r, "failed to load secrets");
	out = jsonx_own(r->arena, json_object_new_object());
	failed = jsonx_own(r->arena, json_object_new_array());
	if (out == NULL || failed == NULL)
		return -1;
	n = PQntuples(res);
	for (i = 0; i < n; i++) {
		scope = db_value(res, i, 0);
		key = db_value(res, i, 1);
		cr = open_hex(scope, key, db_value(res, i, 2), db_value(res, i, 3), &pt, &ptlen);
		if (cr == CRYPT_UNAVAILABLE)
			return kms_unavailable(r);
		if (cr != CRYPT_OK) {
			log_warn("secrets: %s secret %s of workspace %s failed to decrypt",
			    strcmp(scope, SCOPE_GLOBAL) == 0 ? "global" : "workspace", key, id);
			json_object_array_add(failed, json_object_new_string(arena_printf(r->arena,
			    "%s:%s", strcmp(scope, SCOPE_GLOBAL) == 0 ? "global" : "workspace", key)));
			nfailed++;
			continue;
		}
		json_object_object_add(out, key, json_object_new_string_len((const char *)pt,
		    (int)ptlen));
		OPENSSL_cleanse(pt, ptlen);
		free(pt);
		pt = NULL;
	}
	if (nfailed > 0) {
		struct json_object *extra = json_object_new_object();

		json_object_object_add(extra, "failed_keys", json_object_get(failed));
		return resp_error(r, 500, "one or more secrets failed to decrypt; "
		    "refusing to return partial bundle", extra);
	}
	return resp_json(r, 200, out);
}

int
h_secrets_set(struct req *r)
{
	const char *id = NULL, *key = NULL, *val = NULL;
	size_t vlen = 0;
	int found = 0;

	if (req_workspace_id(r, &id) < 0 || body_secret(r, &key, &val, &vlen) < 0)
		return -1;
	if (write_secret(r, id, key, val, vlen, &found) < 0)
		return -1;
	return saved(r, "saved", key, 0);
}

int
h_secrets_delete(struct req *r)
{
	const char *id = NULL, *key = req_param(r, "key");
	int found = 0;

	if (req_workspace_id(r, &id) < 0)
		return -1;
	if (key == NULL || !valid_key(key)) {
		/* No such key can exist; still answer 404 for an unknown workspace first. */
		if (workspace_exists(r, id, 0) < 0)
			return -1;
		return resp_error(r, 404, "secret not found", NULL);
	}
	if (write_secret(r, id, key, NULL, 0, &found) < 0)
		return -1;
	if (!found)
		return resp_error(r, 404, "secret not found", NULL);
	return saved(r, "deleted", key, 0);
}

int
h_secrets_model_get(struct req *r)
{
	const char *id = NULL, *params[2];
	struct json_object *out;
	unsigned char *pt = NULL;
	size_t ptlen = 0;
	PGresult *res;
	enum crypt_result cr;

	if (req_workspace_id(r, &id) < 0 || workspace_exists(r, id, 0) < 0)
		return -1;
	params[0] = id;
	params[1] = MODEL_KEY;
	res = db_exec(r->arena, "SELECT encryption_version, encode(encrypted_value, 'hex') "
	    "FROM workspace_secrets WHERE workspace_id = $1::uuid AND key = $2", 2, params);
	if (res == NULL)
		return fail_tx(r, "failed to load model");
	out = jsonx_own(r->arena, json_object_new_object());
	if (PQntuples(res) == 0) {
		json_object_object_add(out, "model", json_object_new_string(""));
		json_object_object_add(out, "source", json_object_new_string("default"));
		return resp_json(r, 200, out);
	}
	cr = open_hex(id, MODEL_KEY, db_value(res, 0, 0), db_value(res, 0, 1), &pt, &ptlen);
	if (cr == CRYPT_UNAVAILABLE)
		return kms_unavailable(r);
	if (cr != CRYPT_OK) {
		log_warn("secrets: model setting of workspace %s failed to decrypt", id);
		return resp_error(r, 500, "failed to decrypt model", NULL);
	}
	json_object_object_add(out, "model", json_object_new_string_len((const char *)pt,
	    (int)ptlen));
	json_object_object_add(out, "source", json_object_new_string("workspace_secrets"));
	OPENSSL_cleanse(pt, ptlen);
	free(pt);
	return resp_json(r, 200, out);
}

int
h_secrets_model_put(struct req *r)
{
	const char *id = NULL, *model;
	struct json_object *body = NULL, *v = NULL, *out;
	size_t len;
	int found = 0;

	if (req_workspace_id(r, &id) < 0 || req_json_body(r, &body) < 0)
		return -1;
	if (!json_object_object_get_ex(body, "model", &v) ||
	    !json_object_is_type(v, json_type_string))
		return resp_error(r, 400, "invalid request body", NULL);
	model = json_object_get_string(v);
	len = (size_t)json_object_get_string_len(v);
	if (len > SECRET_VALUE_MAX)
		return resp_error(r, 400, "secret value too large (max 65536 bytes)", NULL);
	if (write_secret(r, id, MODEL_KEY, len == 0 ? NULL : model, len, &found) < 0)
		return -1;
	out = jsonx_own(r->arena, json_object_new_object());
	if (len == 0) {
		json_object_object_add(out, "status", json_object_new_string("cleared"));
		return resp_json(r, 200, out);
	}
	json_object_object_add(out, "status", json_object_new_string("saved"));
	json_object_object_add(out, "model", json_object_new_string_len(model, (int)len));
	return resp_json(r, 200, out);
}

int
h_global_secrets_list(struct req *r)
{
	PGresult *res;

	res = db_exec(r->arena, "SELECT key, 'global', " DB_RFC3339("created_at") ", " DB_RFC3339("updated_at")
	    " FROM global_secrets ORDER BY key", 0, NULL);
	if (res == NULL)
		return fail_tx(r, "failed to list secrets");
	return list_rows(r, res);
}

int
h_global_secrets_set(struct req *r)
{
	const char *key = NULL, *val = NULL;
	size_t vlen = 0;
	int found = 0;

	if (body_secret(r, &key, &val, &vlen) < 0)
		return -1;
	if (write_secret(r, NULL, key, val, vlen, &found) < 0)
		return -1;
	return saved(r, "saved", key, 1);
}

int
h_global_secrets_delete(struct req *r)
{
	const char *key = req_param(r, "key");
	int found = 0;

	if (key == NULL || !valid_key(key))
		return resp_error(r, 404, "secret not found", NULL);
	if (write_secret(r, NULL, key, NULL, 0, &found) < 0)
		return -1;
	if (!found)
		return resp_error(r, 404, "secret not found", NULL);
	return saved(r, "deleted", key, 1);
}

int
secrets_check(struct req *r, const char *key, size_t vlen)
{
	if (!valid_key(key))
		return resp_error(r, 400, "invalid secret key", NULL);
	if (vlen > SECRET_VALUE_MAX)
		return resp_error(r, 400, "secret value too large (max 65536 bytes)", NULL);
	return 0;
}

int
secrets_store_in_tx(struct req *r, const char *ws, const char *key, const char *val, size_t vlen)
{
	if (upsert(r, ws, key, val, vlen) < 0)
		return -1;
	if (record(r, "SECRET_SET", ws, key) < 0)
		return fail_tx(r, "failed to save secret");
	return 0;
}

/* A non-removed workspace; lock = FOR SHARE inside a transaction. Returns 0 or -1 (404 set). */
static int
workspace_exists(struct req *r, const char *id, int lock)
{
	const char *params[1] = { id };
	PGresult *res;

	res = db_exec(r->arena, lock ? "SELECT 1 FROM workspaces WHERE id = $1::uuid AND "
	    "status <> 'removed' FOR SHARE" : "SELECT 1 FROM workspaces WHERE id = $1::uuid AND "
	    "status <> 'removed'", 1, params);
	if (res == NULL)
		return fail_tx(r, "failed to look up workspace");
	if (PQntuples(res) == 0) {
		if (db_in_transaction())
			db_rollback();
		return resp_error(r, 404, "workspace not found", NULL);
	}
	return 0;
}

/* {"key","value"}: both non-empty strings. Returns 0, or -1 with 400/413 set. */
static int
body_secret(struct req *r, const char **key, const char **val, size_t *vlen)
{
	struct json_object *body = NULL, *k = NULL, *v = NULL;

	if (req_json_body(r, &body) < 0)
		return -1;
	if (!json_object_object_get_ex(body, "key", &k) ||
	    !json_object_is_type(k, json_type_string) || json_object_get_string_len(k) == 0 ||
	    !json_object_object_get_ex(body, "value", &v) ||
	    !json_object_is_type(v, json_type_string) || json_object_get_string_len(v) == 0)
		return resp_error(r, 400, "invalid request body", NULL);
	*key = json_object_get_string(k);
	if ((size_t)json_object_get_string_len(k) != strlen(*key))
		return resp_error(r, 400, "invalid secret key", NULL);
	*vlen = (size_t)json_object_get_string_len(v);
	if (secrets_check(r, *key, *vlen) < 0)
		return -1;
	*val = json_object_get_string(v);
	return 0;
}

/* ^[A-Za-z_][A-Za-z0-9_]{0,127}$ */
static int
valid_key(const char *k)
{
	size_t i;

	if (k[0] == '\0' || (k[0] >= '0' && k[0] <= '9'))
		return 0;
	for (i = 0; k[i] != '\0'; i++) {
		if (i >= SECRET_KEY_MAX)
			return 0;
		if (!((k[i] >= 'A' && k[i] <= 'Z') || (k[i] >= 'a' && k[i] <= 'z') ||
		    (k[i] >= '0' && k[i] <= '9') || k[i] == '_'))
			return 0;
	}
	return 1;
}

/*
 * Upserts (val != NULL) or deletes one secret of workspace ws (NULL = global) with its
 * restart jobs and event in one transaction. *found says whether a delete hit a row.
 * Returns 0 (committed, or nothing to delete), or -1 with the response set.
 */
static int
write_secret(struct req *r, const char *ws, const char *key, const char *val, size_t vlen,
    int *found)
{
	const char *params[2];
	PGresult *res;

	*found = 0;
	if (db_begin(r->arena) < 0)
		return fail_tx(r, "failed to save secret");
	if (ws != NULL && workspace_exists(r, ws, 1) < 0)
		return -1;
	if (val != NULL) {
		if (upsert(r, ws, key, val, vlen) < 0)
			return -1;
		*found = 1;
	} else {
		params[0] = key;
		params[1] = ws;
		res = ws != NULL ? db_exec(r->arena, "DELETE FROM workspace_secrets WHERE key = $1 "
		    "AND workspace_id = $2::uuid RETURNING id", 2, params) :
		    db_exec(r->arena, "DELETE FROM global_secrets WHERE key = $1 RETURNING id",
		    1, params);
		if (res == NULL)
			return fail_tx(r, "failed to delete secret");
		if (PQntuples(res) == 0) {
			db_rollback();
			return 0;
		}
		*found = 1;
	}
	if (restart_jobs(r, ws, key) < 0 ||
	    record(r, val != NULL ? "SECRET_SET" : "SECRET_DELETED", ws, key) < 0)
		return fail_tx(r, val != NULL ? "failed to save secret" : "failed to delete secret");
	if (db_commit(r->arena) < 0)
		return fail_tx(r, val != NULL ? "failed to save secret" : "failed to delete secret");
	log_info("secrets: %s %s secret %s%s%s", val != NULL ? "saved" : "deleted",
	    ws != NULL ? "workspace" : "global", key, ws != NULL ? " of workspace " : "",
	    ws != NULL ? ws : "");
	return 0;
}

/*
 * Seals val and upserts it as secret key of ws (NULL = global) in the open transaction.
 * Returns 0, or -1 with the transaction rolled back and the response set.
 */
static int
upsert(struct req *r, const char *ws, const char *key, const char *val, size_t vlen)
{
	const char *params[4], *hex = NULL, *ver = NULL;

	if (seal_hex(r, ws != NULL ? ws : SCOPE_GLOBAL, key, val, vlen, &hex, &ver) < 0) {
		db_rollback();
		return -1;
	}
	params[0] = key;
	params[1] = hex;
	params[2] = ver;
	params[3] = ws;
	if ((ws != NULL ? db_exec(r->arena, "INSERT INTO workspace_secrets (workspace_id, "
	    "key, encrypted_value, encryption_version) VALUES ($4::uuid, $1, "
	    "decode($2, 'hex'), $3::int) ON CONFLICT (workspace_id, key) DO UPDATE SET "
	    "encrypted_value = EXCLUDED.encrypted_value, encryption_version = "
	    "EXCLUDED.encryption_version, updated_at = now()", 4, params) :
	    db_exec(r->arena, "INSERT INTO global_secrets (key, encrypted_value, "
	    "encryption_version) VALUES ($1, decode($2, 'hex'), $3::int) ON CONFLICT (key) "
	    "DO UPDATE SET encrypted_value = EXCLUDED.encrypted_value, encryption_version = "
	    "EXCLUDED.encryption_version, updated_at = now()", 3, params)) == NULL)
		return fail_tx(r, "failed to save secret");
	return 0;
}

/*
 * Queues a restart of ws (or, for a global key, of every restartable workspace that does not
 * override it). The payload names the key, never the value. Returns 0 or -1.
 */
static int
restart_jobs(struct req *r, const char *ws, const char *key)
{
	struct json_object *p = jsonx_own(r->arena, json_object_new_object());
	const char *params[2];
	size_t len;

	if (p == NULL)
		return -1;
	json_object_object_add(p, "reason", json_object_new_string("secret_changed"));
	json_object_object_add(p, "key", json_object_new_string(key));
	if (ws == NULL)
		json_object_object_add(p, "scope", json_object_new_string(SCOPE_GLOBAL));
	params[0] = ws != NULL ? ws : key;
	params[1] = jsonx_dump(p, &len);
	if (ws != NULL)
		return db_exec(r->arena, "INSERT INTO provision_jobs (workspace_id, kind, payload) "
		    "SELECT w.id, 'restart', $2::jsonb FROM workspaces w WHERE w.id = $1::uuid AND "
		    RESTARTABLE, 2, params) == NULL ? -1 : 0;
	return db_exec(r->arena, "INSERT INTO provision_jobs (workspace_id, kind, payload) "
	    "SELECT w.id, 'restart', $2::jsonb FROM workspaces w WHERE " RESTARTABLE
	    " AND NOT EXISTS (SELECT 1 FROM workspace_secrets s WHERE s.workspace_id = w.id AND "
	    "s.key = $1)", 2, params) == NULL ? -1 : 0;
}

/* SECRET_SET / SECRET_DELETED {key, scope}: never the value. Returns 0 or -1. */
static int
record(struct req *r, const char *type, const char *ws, const char *key)
{
	struct json_object *p = jsonx_own(r->arena, json_object_new_object());

	if (p == NULL)
		return -1;
	json_object_object_add(p, "key", json_object_new_string(key));
	json_object_object_add(p, "scope", json_object_new_string(ws != NULL ? "workspace" :
	    SCOPE_GLOBAL));
	return events_record(r->arena, type, ws, p);
}

/* Seals val for (scope, key); *hex and *ver are arena strings. Returns 0 or -1 (response set). */
static int
seal_hex(struct req *r, const char *scope, const char *key, const char *val, size_t vlen,
    const char **hex, const char **ver)
{
	unsigned char *blob = NULL;
	size_t blen = 0;
	char err[256], *h;
	int version = 0;
	enum crypt_result cr;

	err[0] = '\0';
	cr = crypt_seal(scope, key, (const unsigned char *)val, vlen, &blob, &blen, &version,
	    err, sizeof(err));
	if (cr == CRYPT_UNAVAILABLE) {
		log_warn("secrets: key service unavailable: %s", err);
		return kms_unavailable(r);
	}
	if (cr != CRYPT_OK) {
		log_err("secrets: sealing %s failed: %s", key, err);
		/* In envelope mode sealing fails only when KMS refuses (credentials, signature, key policy). */
		if (crypt_write_version() == CRYPT_V_ENVELOPE) {
			struct json_object *extra = json_object_new_object();
			json_object_object_add(extra, "code", json_object_new_string("kms_rejected"));
			return resp_error(r, 502, "secrets key service rejected the request — check the "
			    "platform's KMS credentials and key policy", extra);
		}
		return resp_error(r, 500, "failed to encrypt secret", NULL);
	}
	h = arena_alloc(r->arena, blen * 2 + 1);
	if (h == NULL) {
		free(blob);
		return resp_error(r, 413, "request body too large", NULL);
	}
	hex_encode(blob, blen, h);
	free(blob);
	*hex = h;
	*ver = arena_printf(r->arena, "%d", version);
	return *ver == NULL ? resp_error(r, 413, "request body too large", NULL) : 0;
}

/* Opens a hex blob of version ver for (scope, key). *pt is malloc'd (cleanse and free it). */
static enum crypt_result
open_hex(const char *scope, const char *key, const char *ver, const char *hex,
    unsigned char **pt, size_t *ptlen)
{
	unsigned char *blob = NULL;
	size_t blen = 0;
	char err[256];
	enum crypt_result cr;

	*pt = NULL;
	*ptlen = 0;
	if (ver == NULL || hex == NULL || hex_decode(hex, &blob, &blen) < 0)
		return CRYPT_FAIL;
	err[0] = '\0';
	cr = crypt_open(scope, key, atoi(ver), blob, blen, pt, ptlen, err, sizeof(err));
	free(blob);
	if (cr == CRYPT_UNAVAILABLE)
		log_warn("secrets: key service unavailable: %s", err);
	return cr;
}

static int
kms_unavailable(struct req *r)
{
	struct json_object *extra = json_object_new_object();

	json_object_object_add(extra, "code", json_object_new_string("kms_unavailable"));
	return resp_error(r, 503, "secrets key service unavailable — retry shortly", extra);
}

/* Rolls back an open transaction; 503 when the database is gone, else 500 msg. */
static int
fail_tx(struct req *r, const char *msg)
{
	if (db_in_transaction())
		db_rollback();
	if (db_unavailable())
		return resp_unavailable(r);
	return resp_error(r, 500, msg, NULL);
}

/* Rows (key, scope, created_at, updated_at) as [{key,has_value,scope,created_at,updated_at}]. */
static int
list_rows(struct req *r, PGresult *res)
{
	struct json_object *arr = jsonx_own(r->arena, json_object_new_array()), *o;
	int i, n = PQntuples(res);

	if (arr == NULL)
		return -1;
	for (i = 0; i < n; i++) {
		o = json_object_new_object();
		json_object_object_add(o, "key", json_object_new_string(db_value(res, i, 0)));
		json_object_object_add(o, "has_value", json_object_new_boolean(1));
		json_object_object_add(o, "scope", json_object_new_string(db_value(res, i, 1)));
		json_object_object_add(o, "created_at", json_object_new_string(db_value(res, i, 2)));
		json_object_object_add(o, "updated_at", json_object_new_string(db_value(res, i, 3)));
		json_object_array_add(arr, o);
	}
	return resp_json(r, 200, arr);
}

static int
saved(struct req *r, const char *status, const char *key, int global)
{
	struct json_object *out = jsonx_own(r->arena, json_object_new_object());

	if (out == NULL)
		return -1;
	json_object_object_add(out, "status", json_object_new_string(status));
	json_object_object_add(out, "key", json_object_new_string(key));
	if (global)
		json_object_object_add(out, "scope", json_object_new_string(SCOPE_GLOBAL));
	return resp_json(r, 200, out);
}
