/*
 * guard.c: the auth guards of api.md §2 with the reference's holes closed (see
 * docs/compatibility.md). Owns nothing; tokens are compared in constant time and never logged.
 */
#include "fcgi/guard.h"

#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>

#include "common/db.h"
#include "common/tokens.h"
#include "common/util.h"
#include "fcgi/resp.h"

static int admin_auth(struct req *r);
static int workspace_auth(struct req *r);
static int canvas_or_bearer(struct req *r);
static int is_admin_token(const struct req *r, const char *tok);
static int org_token(struct req *r, const char *tok);
static int fly_replay_state_matches(const char *hdr, const char *org);

int
guard_dev_mode(const struct req *r)
{
	return conf_is_dev(r->conf) && r->conf->admin_token[0] == '\0';
}

int
guard_check(struct req *r, enum guard g)
{
	switch (g) {
	case GUARD_NONE:
		return 0;
	case GUARD_ADMIN:
		return admin_auth(r);
	case GUARD_WORKSPACE:
		return workspace_auth(r);
	case GUARD_CANVAS_OR_BEARER:
		return canvas_or_bearer(r);
	}
	return resp_error(r, 500, "unknown guard", NULL);
}

int
guard_tenant(struct req *r)
{
	static const char *const open_paths[] = { "/health", "/metrics", "/registry/register",
		"/registry/heartbeat" };
	const char *org = r->conf->org_id, *hdr;
	size_t i;

	if (org[0] == '\0')
		return 0;
	for (i = 0; i < NELEM(open_paths); i++)
		if (strcmp(r->path, open_paths[i]) == 0)
			return 0;
	hdr = req_header(r, "X-Molecule-Org-Id");
	if (hdr != NULL && str_eq_ct(hdr, org))
		return 0;
	hdr = req_header(r, "Fly-Replay-Src");
	if (hdr != NULL && fly_replay_state_matches(hdr, org))
		return 0;
	/* 404 with no body: a stranger learns nothing about this tenant. */
	resp_text(r, 404, "application/json", "", 0);
	return -1;
}

int
guard_origin_allowed(const struct req *r)
{
	const char *origin = req_header(r, "Origin"), *p = r->conf->cors_origins;
	size_t olen, n;

	if (origin == NULL || origin[0] == '\0')
		return 0;
	olen = strlen(origin);
	while (*p != '\0') {
		while (*p == ' ' || *p == ',')
			p++;
		n = strcspn(p, ",");
		while (n > 0 && p[n - 1] == ' ')
			n--;
		if (n == olen && strncmp(p, origin, n) == 0)
			return 1;
		p += strcspn(p, ",");
	}
	return 0;
}

int
guard_lazy_bootstrap(struct req *r, const char *workspace_id, const char *what, int strict)
{
	char msg[64];
	const char *tok = req_bearer(r);
	int live = 0;
	enum token_check rc = tokens_lazy_check(r->arena, workspace_id, tok, &live);

	if (rc == TOKEN_ERROR) {
		if (strict)
			return resp_error(r, 500, "auth check failed", NULL);
		/* The reference fails open here; a datastore outage is a 503, never a pass. */
		return resp_unavailable(r);
	}
	if (!live || rc == TOKEN_OK)
		return 0;
	snprintf(msg, sizeof(msg), "%s %s auth token", tok == NULL ? "missing" : "invalid", what);
	return resp_error(r, 401, msg, NULL);
}

/*
 * AdminAuth (api.md §2.2). Bootstrap (no ADMIN_TOKEN, no live workspace token) and the dev
 * hatch pass. Otherwise the bearer must be ADMIN_TOKEN or a live org token. Unlike the
 * reference, a workspace token is never an admin credential.
 */
static int
admin_auth(struct req *r)
{
	const char *tok;
	int live;

	if (r->conf->admin_token[0] == '\0') {
		live = tokens_any_live(r->arena);
		if (live < 0)
			return resp_unavailable(r);
		if (live == 0) {
			r->auth_admin = 1;
			return 0;
		}
	}
	if (guard_dev_mode(r)) {
		r->auth_admin = 1;
		return 0;
	}
	tok = req_bearer(r);
	if (tok == NULL)
		return resp_error(r, 401, "admin auth required", NULL);
	if (is_admin_token(r, tok)) {
		r->auth_admin = 1;
		return 0;
	}
	switch (org_token(r, tok)) {
	case TOKEN_OK:
		return 0;
	case TOKEN_ERROR:
		return resp_unavailable(r);
	default:
		return resp_error(r, 401, "invalid admin auth token", NULL);
	}
}

/* WorkspaceAuth (api.md §2.1): ADMIN_TOKEN, an org token, the workspace's own token, or dev mode. */
static int
workspace_auth(struct req *r)
{
	const char *id = req_param(r, "id"), *tok = req_bearer(r);

	if (id == NULL || id[0] == '\0')
		return resp_error(r, 401, "missing workspace ID", NULL);
	if (tok != NULL) {
		if (is_admin_token(r, tok)) {
			r->auth_admin = 1;
			return 0;
		}
		switch (org_token(r, tok)) {
		case TOKEN_OK:
			return 0;
		case TOKEN_ERROR:
			return resp_unavailable(r);
		case TOKEN_INVALID:
			break;
		}
		switch (tokens_check_workspace(r->arena, id, tok)) {
		case TOKEN_OK:
			return 0;
		case TOKEN_ERROR:
			return resp_unavailable(r);
		case TOKEN_INVALID:
			return resp_error(r, 401, "invalid workspace auth token", NULL);
		}
	}
	if (guard_dev_mode(r)) {
		r->auth_admin = 1;
		return 0;
	}
	return resp_error(r, 401, "missing workspace auth token", NULL);
}

/* CanvasOrBearer (api.md §2.3), but a database error denies instead of allowing. */
static int
canvas_or_bearer(struct req *r)
{
	const char *tok = req_bearer(r);
	int live = tokens_any_live(r->arena);

	if (live < 0)
		return resp_unavailable(r);
	if (live == 0 || guard_dev_mode(r))
		return 0;
	if (tok != NULL) {
		if (is_admin_token(r, tok))
			return 0;
		switch (org_token(r, tok)) {
		case TOKEN_OK:
			return 0;
		case TOKEN_ERROR:
			return resp_unavailable(r);
		case TOKEN_INVALID:
			return resp_error(r, 401, "invalid admin auth token", NULL);
		}
	}
	if (guard_origin_allowed(r))
		return 0;
	return resp_error(r, 401, "admin auth required", NULL);
}

static int
is_admin_token(const struct req *r, const char *tok)
{
	return r->conf->admin_token[0] != '\0' && str_eq_ct(tok, r->conf->admin_token);
}

static int
org_token(struct req *r, const char *tok)
{
	const char *id = NULL, *org = NULL;
	enum token_check rc = tokens_check_org(r->arena, tok, &id, &org);

	if (rc == TOKEN_OK) {
		r->auth_admin = 1;
		r->auth_org_token_id = id;
		r->auth_org_id = org;
	}
	return (int)rc;
}

/* Fly-Replay-Src is "k=v;k=v"; the state= value must equal the org id exactly. */
static int
fly_replay_state_matches(const char *hdr, const char *org)
{
	const char *p = hdr;
	size_t n, olen = strlen(org);

	while (*p != '\0') {
		while (*p == ' ' || *p == ';')
			p++;
		n = strcspn(p, ";");
		if (strncmp(p, "state=", 6) == 0 && n - 6 == olen &&
		    CRYPTO_memcmp(p + 6, org, olen) == 0)
			return 1;
		p += n;
	}
	return 0;
}
