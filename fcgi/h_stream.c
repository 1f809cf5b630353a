/*
 * h_stream.c: nchan's authorize subrequests for the live streams: GET /ws (canvas or workspace
 * client) and GET /workspaces/:id/events/stream (SSE). Owns nothing; a 2xx answer lets nchan subscribe.
 */
#include "fcgi/handlers.h"

#include <string.h>

#include "common/db.h"
#include "common/tokens.h"
#include "common/util.h"
#include "fcgi/guard.h"
#include "fcgi/resp.h"

static int canvas_client(struct req *r, const char *tok);
static int workspace_client(struct req *r, const char *id, const char *tok);
static int workspace_live(struct req *r, const char *id);
static int allow(struct req *r);
static const char *nonempty(const char *s);

/*
 * GET /internal/ws-auth, nchan's subrequest for GET /ws with the client's headers and query.
 * A workspace client names itself with X-Workspace-ID (or ?workspace_id=, browsers cannot set
 * headers on a WebSocket) and subscribes to channel ws-<id>; anyone else is a canvas client on
 * channel "canvas", the firehose, which needs canvas credentials (unlike the reference).
 */
int
h_stream_ws_auth(struct req *r)
{
	const char *id, *tok, *channel, *want;

	id = nonempty(req_header(r, "X-Workspace-ID"));
	if (id == NULL)
		id = nonempty(req_query(r, "workspace_id"));
	tok = req_bearer(r);
	if (tok == NULL)
		tok = nonempty(req_query(r, "token"));
	/*
	 * Lowercase only: nginx names the channel after the raw id and the broadcaster publishes
	 * PostgreSQL's lowercase text, so "ABC..." would authorise a channel nobody feeds.
	 */
	if (id != NULL && !is_lower_uuid(id))
		return resp_error(r, 400, "invalid workspace ID", NULL);
	/* nginx says which channel it will subscribe to: it must be the one we authorise. */
	channel = req_env(r, "STREAM_CHANNEL");
	if (channel != NULL) {
		want = id ? arena_printf(r->arena, "ws-%s", id) : "canvas";
		if (want == NULL)
			return -1;
		if (strcmp(channel, want) != 0)
			return resp_error(r, 400, "invalid workspace ID", NULL);
	}
	if (id == NULL)
		return canvas_client(r, tok);
	return workspace_client(r, id, tok);
}

/* GET /internal/sse-auth/:id: WorkspaceAuth on :id, then the workspace must exist. */
int
h_stream_sse_auth(struct req *r)
{
	const char *id = req_param(r, "id");
	int live;

	/* Before the guard: a malformed id must not reach the token queries as a uuid cast. */
	if (id == NULL || !is_lower_uuid(id))
		return resp_error(r, 400, "invalid workspace ID", NULL);
	if (guard_check(r, GUARD_WORKSPACE) < 0)
		return -1;
	live = workspace_live(r, id);
	if (live < 0)
		return -1;
	if (live == 0)
		return resp_error(r, 404, "workspace not found", NULL);
	return allow(r);
}

/*
 * The canvas firehose: dev hatch; bootstrap (no ADMIN_TOKEN and no live workspace token yet);
 * ADMIN_TOKEN or a live org token as bearer or ?token=; or a browser Origin in CORS_ORIGINS.
 */
static int
canvas_client(struct req *r, const char *tok)
{
	const char *tid = NULL, *org = NULL;
	int live;

	if (guard_dev_mode(r))
		return allow(r);
	if (tok != NULL) {
		if (r->conf->admin_token[0] != '\0' && str_eq_ct(tok, r->conf->admin_token))
			return allow(r);
		switch (tokens_check_org(r->arena, tok, &tid, &org)) {
		case TOKEN_OK:
			return allow(r);
		case TOKEN_ERROR:
			return resp_unavailable(r);
		case TOKEN_INVALID:
			break;
		}
	}
	if (r->conf->admin_token[0] == '\0') {
		live = tokens_any_live(r->arena);
		if (live < 0)
			return resp_unavailable(r);
		if (live == 0)
			return allow(r);
	}
	if (guard_origin_allowed(r))
		return allow(r);
	return resp_error(r, 403, "event stream requires canvas credentials", NULL);
}

/* The reference's lazy bootstrap, fail-closed: a workspace with live tokens needs its own. */
static int
workspace_client(struct req *r, const char *id, const char *tok)
{
	int live = workspace_live(r, id);

	if (live < 0)
		return -1;
	if (live == 0)
		return resp_error(r, 404, "workspace not found", NULL);
	live = tokens_workspace_has_live(r->arena, id);
	if (live < 0)
		return resp_error(r, 500, "auth check failed", NULL);
	if (live == 0)
		return allow(r);
	if (tok == NULL)
		return resp_error(r, 401, "missing workspace auth token", NULL);
	switch (tokens_check_workspace(r->arena, id, tok)) {
	case TOKEN_OK:
		return allow(r);
	case TOKEN_ERROR:
		return resp_error(r, 500, "auth check failed", NULL);
	case TOKEN_INVALID:
		break;
	}
	return resp_error(r, 401, "invalid workspace auth token", NULL);
}

/* 1 when the workspace exists and is not removed, 0 when not, -1 on a database error. */
static int
workspace_live(struct req *r, const char *id)
{
	const char *params[1] = { id };
	PGresult *res;

	res = db_exec(r->arena, "SELECT 1 FROM workspaces WHERE id = $1::uuid AND status <> 'removed'",
	    1, params);
	if (res == NULL)
		return -1;
	return PQntuples(res) > 0;
}

static int
allow(struct req *r)
{
	static const char body[] = "{\"status\":\"ok\"}";

	return resp_text(r, 200, "application/json", body, sizeof(body) - 1);
}

static const char *
nonempty(const char *s)
{
	return s != NULL && s[0] != '\0' ? s : NULL;
}
