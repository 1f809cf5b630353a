/*
 * tokens.c: workspace and org bearer tokens, hashed with sha256 before they touch the database.
 * Owns nothing; results live in the caller's arena, plaintext is wiped from local buffers.
 */
#include "common/tokens.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "common/db.h"
#include "common/log.h"
#include "common/util.h"

static const char b64url[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

int
token_generate(char *out)
{
	unsigned char raw[32];
	size_t i, o = 0;
	unsigned v;

	if (RAND_bytes(raw, sizeof(raw)) != 1)
		return -1;
	/* base64url without padding: 32 bytes -> 43 characters. */
	for (i = 0; i + 3 <= sizeof(raw); i += 3) {
		v = (unsigned)raw[i] << 16 | (unsigned)raw[i + 1] << 8 | raw[i + 2];
		out[o++] = b64url[(v >> 18) & 63];
		out[o++] = b64url[(v >> 12) & 63];
		out[o++] = b64url[(v >> 6) & 63];
		out[o++] = b64url[v & 63];
	}
	v = (unsigned)raw[30] << 8 | raw[31];
	out[o++] = b64url[(v >> 10) & 63];
	out[o++] = b64url[(v >> 4) & 63];
	out[o++] = b64url[(v << 2) & 63];
	out[o] = '\0';
	OPENSSL_cleanse(raw, sizeof(raw));
	return 0;
}

void
token_hash_hex(const char *tok, char *out)
{
	unsigned char md[SHA256_DIGEST_LENGTH];
	size_t i;

	SHA256((const unsigned char *)tok, strlen(tok), md);
	for (i = 0; i < sizeof(md); i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

int
tokens_mint_workspace(struct arena *a, const char *workspace_id, char *out)
{
	char hash[65], prefix[TOKEN_PREFIX_LEN + 1];
	const char *params[3];

	if (token_generate(out) < 0)
		return -1;
	token_hash_hex(out, hash);
	memcpy(prefix, out, TOKEN_PREFIX_LEN);
	prefix[TOKEN_PREFIX_LEN] = '\0';
	params[0] = workspace_id;
	params[1] = hash;
	params[2] = prefix;
	if (db_exec(a, "INSERT INTO workspace_auth_tokens (workspace_id, token_hash, prefix) "
	    "VALUES ($1, decode($2, 'hex'), $3)", 3, params) == NULL) {
		OPENSSL_cleanse(out, TOKEN_LEN);
		return -1;
	}
	return 0;
}

int
tokens_revoke_workspace(struct arena *a, const char *workspace_id)
{
	const char *params[1] = { workspace_id };
	PGresult *res = db_exec(a, "UPDATE workspace_auth_tokens SET revoked_at = now() "
	    "WHERE workspace_id = $1 AND revoked_at IS NULL", 1, params);

	return res ? atoi(PQcmdTuples(res)) : -1;
}

enum token_check
tokens_check_workspace(struct arena *a, const char *workspace_id, const char *tok)
{
	int live = 0;

	return tokens_lazy_check(a, workspace_id, tok, &live);
}

enum token_check
tokens_lazy_check(struct arena *a, const char *workspace_id, const char *tok, int *live)
{
	char hash[65] = "";
	const char *params[2];
	PGresult *res;

	*live = 0;
	/* Not a UUID: no such workspace, so no tokens (and the index below stays usable). */
	if (!is_uuid(workspace_id))
		return TOKEN_INVALID;
	if (tok != NULL && strlen(tok) == TOKEN_LEN)
		token_hash_hex(tok, hash);
	params[0] = hash;
	params[1] = workspace_id;
	/*
	 * One round trip on the hot path (every heartbeat): does the workspace have live tokens,
	 * is this one of them, and bump last_used_at at most once a minute (not a write per call).
	 */
	res = db_exec(a, "WITH live AS ("
	    "  SELECT t.id, t.token_hash, t.last_used_at FROM workspace_auth_tokens t"
	    "  JOIN workspaces w ON w.id = t.workspace_id"
	    "  WHERE t.workspace_id = $2::uuid AND t.revoked_at IS NULL AND w.status <> 'removed'),"
	    " hit AS (SELECT id, last_used_at FROM live WHERE token_hash = decode($1, 'hex')),"
	    " bump AS (UPDATE workspace_auth_tokens SET last_used_at = now() WHERE id IN"
	    "  (SELECT id FROM hit WHERE last_used_at IS NULL OR last_used_at < now() - interval '60 seconds'))"
	    " SELECT (SELECT count(*) FROM live), (SELECT count(*) FROM hit)", 2, params);
	if (res == NULL)
		return TOKEN_ERROR;
	*live = atoi(PQgetvalue(res, 0, 0)) > 0;
	return hash[0] != '\0' && atoi(PQgetvalue(res, 0, 1)) == 1 ? TOKEN_OK : TOKEN_INVALID;
}

int
tokens_workspace_has_live(struct arena *a, const char *workspace_id)
{
	const char *params[1] = { workspace_id };
	PGresult *res;

	if (!is_uuid(workspace_id))
		return 0;
	res = db_exec(a, "SELECT 1 FROM workspace_auth_tokens WHERE workspace_id = $1::uuid "
	    "AND revoked_at IS NULL LIMIT 1", 1, params);
	return res ? PQntuples(res) > 0 : -1;
}

int
tokens_any_live(struct arena *a)
{
	PGresult *res = db_exec(a, "SELECT 1 FROM workspace_auth_tokens WHERE revoked_at IS NULL LIMIT 1",
	    0, NULL);

	return res ? PQntuples(res) > 0 : -1;
}

enum token_check
tokens_check_org(struct arena *a, const char *tok, const char **token_id, const char **org_id)
{
	char hash[65];
	const char *params[1];
	PGresult *res;

	*token_id = NULL;
	*org_id = NULL;
	if (tok == NULL || strlen(tok) != TOKEN_LEN)
		return TOKEN_INVALID;
	token_hash_hex(tok, hash);
	params[0] = hash;
	res = db_exec(a, "UPDATE org_api_tokens SET last_used_at = now() "
	    "WHERE token_hash = decode($1, 'hex') AND revoked_at IS NULL RETURNING id, org_id", 1, params);
	if (res == NULL)
		return TOKEN_ERROR;
	if (PQntuples(res) != 1)
		return TOKEN_INVALID;
	*token_id = db_value(res, 0, 0);
	*org_id = db_value(res, 0, 1);
	return TOKEN_OK;
}
