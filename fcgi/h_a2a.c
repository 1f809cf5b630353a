/*
 * h_a2a.c: POST /workspaces/:id/a2a, the A2A proxy (api.md §4.9): caller checks, JSON-RPC wrap,
 * one pinned, deadline-bound POST to the agent, activity + events. Owns the curl handle per call.
 */
#include "fcgi/handlers.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "common/a2a.h"
#include "common/access.h"
#include "common/db.h"
#include "common/events.h"
#include "common/jsonx.h"
#include "common/log.h"
#include "common/tokens.h"
#include "common/util.h"
#include "fcgi/guard.h"
#include "fcgi/resp.h"

/* The reference reads at most 10 MiB of an agent's answer. */
#define RESPONSE_MAX (10L * 1024 * 1024)
#define CONNECT_TIMEOUT_MS 5000L
#define SUMMARY_MAX 256
#define WAKE_RETRY_S 15
#define BUSY_RETRY_S 30

static const char *const system_prefixes[] = { "webhook:", "system:", "test:", "channel:" };

struct target {
	const char *id, *name, *status, *url, *runtime;
	long tier;
};

struct call {
	long status;		/* HTTP status of the agent's answer, 0 when none */
	CURLcode rc;
	char errbuf[CURL_ERROR_SIZE];
	char *body;
	size_t len;
	int too_large;
	int64_t duration_ms;
};

static int read_body(struct req *r, const char **buf, size_t *len);
static int timeout_seconds(struct req *r, long *out);
static int check_caller(struct req *r, const char *id, const char **caller);
static int canvas_credentials(struct req *r);
static int caller_credentials(struct req *r, const char *caller);
static int load_target(struct req *r, const char *id, struct target *t);
static int not_running(struct req *r, const struct target *t);
static int wake(struct req *r, const struct target *t);
static int post(struct req *r, const char *url, const char *resolve, const char *body, size_t len,
    long timeout_s, struct call *c);
static size_t on_body(char *ptr, size_t size, size_t n, void *userdata);
static int answer(struct req *r, const struct call *c, long timeout_s);
static void record(struct req *r, const struct target *t, const char *caller, const char *method,
    const char *request, const struct call *c, struct json_object *response);
static const char *summary_of(struct req *r, struct json_object *request);
static const char *status_text(long status);

int
h_a2a_proxy(struct req *r)
{
	const char *id = req_param(r, "id"), *caller = NULL, *raw = NULL, *reqtext, *method;
	char resolve[A2A_RESOLVE_MAX], err[256];
	struct json_object *body, *wrapped, *v, *response = NULL;
	struct target t;
	struct call c;
	size_t rawlen = 0, reqlen = 0;
	long timeout_s = 0;
	int rc;

	if (id == NULL || !is_uuid(id))
		return resp_error(r, 404, "workspace not found", NULL);
	if (check_caller(r, id, &caller) < 0 || timeout_seconds(r, &timeout_s) < 0 ||
	    read_body(r, &raw, &rawlen) < 0)
		return -1;
	body = jsonx_own(r->arena, jsonx_parse(raw, rawlen));
	if (body == NULL)
		return resp_error(r, 400, "invalid JSON", NULL);

	rc = load_target(r, id, &t);
	if (rc < 0)
		return -1;
	if (rc == 0)
		return resp_error(r, 404, "workspace not found", NULL);
	if (t.url == NULL || t.url[0] == '\0')
		return not_running(r, &t);
	if (a2a_pin_target(t.url, (int)r->conf->a2a_allow_loopback, resolve, sizeof(resolve), err,
	    sizeof(err)) < 0) {
		log_warn("a2a: workspace %s url refused: %s", t.id, err);
		return resp_error(r, 502, "workspace URL is not publicly routable", NULL);
	}
	wrapped = jsonx_own(r->arena, a2a_wrap(body, err, sizeof(err)));
	if (wrapped == NULL)
		return resp_error(r, 400, err, NULL);
	method = json_object_object_get_ex(wrapped, "method", &v) &&
	    json_object_is_type(v, json_type_string) ? json_object_get_string(v) : "message/send";
	reqtext = jsonx_dump(wrapped, &reqlen);
	if (reqtext == NULL)
		return resp_error(r, 500, "failed to marshal request", NULL);

	if (post(r, t.url, resolve, reqtext, reqlen, timeout_s, &c) < 0)
		return resp_error(r, 500, "failed to create proxy request", NULL);
	if (c.rc == CURLE_OK && !c.too_large && c.len > 0)
		response = jsonx_own(r->arena, jsonx_parse(c.body, c.len));
	record(r, &t, caller, method, reqtext, &c, response);
	return answer(r, &c, timeout_s);
}

/*
 * The body as bytes, at most a2a_max_body_bytes (413 beyond). Returns 0, or -1 with the
 * response set.
 */
static int
read_body(struct req *r, const char **buf, size_t *len)
{
	const char *cl = req_env(r, "CONTENT_LENGTH"), *why = NULL;
	int64_t n = 0, max = r->conf->a2a_max_body_bytes;
	long got, total = 0;
	char *b;

	if (cl != NULL && cl[0] != '\0' && parse_int64(cl, 0, INT64_MAX, &n, &why) < 0)
		return resp_error(r, 400, "invalid Content-Length", NULL);
	if (n > max) {
		struct json_object *extra = json_object_new_object();
		json_object_object_add(extra, "max_bytes", json_object_new_int64(max));
		return resp_error(r, 413, "request body too large", extra);
	}
	if (n == 0)
		return resp_error(r, 400, "failed to read request body", NULL);
	b = arena_alloc(r->arena, (size_t)n + 1);
	if (b == NULL)
		return resp_error(r, 413, "request body too large", NULL);
	while (total < n && r->read_body != NULL) {
		got = r->read_body(r->body_src, b + total, (size_t)(n - total));
		if (got <= 0)
			break;
		total += got;
	}
	if (total != n)
		return resp_error(r, 400, "failed to read request body", NULL);
	b[n] = '\0';
	*buf = b;
	*len = (size_t)n;
	return 0;
}

/* X-Timeout in seconds: absent or <= 0 is the default, above the maximum is the maximum. */
static int
timeout_seconds(struct req *r, long *out)
{
	const char *h = req_header(r, "X-Timeout"), *why = NULL;
	int64_t v = 0;

	*out = (long)r->conf->a2a_timeout_default_s;
	if (h == NULL || h[0] == '\0')
		return 0;
	if (parse_int64(h, INT32_MIN, INT32_MAX, &v, &why) < 0)
		return resp_error(r, 400, "invalid X-Timeout: expected whole seconds", NULL);
	if (v > 0)
		*out = v > r->conf->a2a_timeout_max_s ? (long)r->conf->a2a_timeout_max_s : (long)v;
	return 0;
}

/*
 * Who is calling. A workspace (X-Workspace-ID) must exist, prove itself (caller_credentials)
 * and be allowed by the hierarchy; no header means the canvas, which needs canvas
 * credentials here (the reference lets anyone in). Returns 0, or -1 with the response set.
 */
static int
check_caller(struct req *r, const char *id, const char **caller)
{
	const char *h = req_header(r, "X-Workspace-ID");
	size_t i;

	*caller = NULL;
	if (h == NULL || h[0] == '\0')
		return canvas_credentials(r);
	for (i = 0; i < NELEM(system_prefixes); i++)
		if (strncasecmp(h, system_prefixes[i], strlen(system_prefixes[i])) == 0) {
			log_warn("security: a2a caller forge attempt %.64s -> %s", h, id);
			return resp_error(r, 403, "invalid caller ID", NULL);
		}
	if (!is_uuid(h))
		return resp_error(r, 403, "invalid caller ID", NULL);
	if (caller_credentials(r, h) < 0)
		return -1;
	if (strcasecmp(h, id) != 0) {
		switch (access_can_communicate(r->arena, h, id)) {
		case 1:
			break;
		case 0:
			return resp_error(r, 403,
			    "access denied: workspaces cannot communicate per hierarchy rules", NULL);
		default:
			return resp_unavailable(r);
		}
	}
	*caller = h;
	return 0;
}

/*
 * The claimed caller's proof. Missing or removed: 403. With live tokens: one of them as bearer
 * (lazy bootstrap). Without (external, provisioning, all revoked): unlike the reference, which
 * lets anyone speak for it, the request needs canvas credentials, else 401 with the lazy
 * bootstrap's strings. Returns 0, or -1 with the response set.
 */
static int
caller_credentials(struct req *r, const char *caller)
{
	const char *params[1] = { caller }, *tok = req_bearer(r);
	enum token_check rc;
	PGresult *res;
	int live = 0;

	res = db_exec(r->arena, "SELECT 1 FROM workspaces WHERE id = $1::uuid AND status <> 'removed'",
	    1, params);
	if (res == NULL)
		return db_unavailable() ? resp_unavailable(r) : resp_error(r, 500, "lookup failed", NULL);
	if (PQntuples(res) != 1)
		return resp_error(r, 403, "invalid caller ID", NULL);
	rc = tokens_lazy_check(r->arena, caller, tok, &live);
	if (rc == TOKEN_ERROR)
		return resp_unavailable(r);
	if (live && rc == TOKEN_OK)
		return 0;
	if (!live && canvas_credentials(r) == 0)
		return 0;
	if (!live && r->status != 401)
		return -1;
	return resp_error(r, 401, tok == NULL ? "missing caller auth token" : "invalid caller auth token",
	    NULL);
}

/* ADMIN_TOKEN or an org token as bearer, the development hatch, or an allowed browser Origin. */
static int
canvas_credentials(struct req *r)
{
	const char *tok = req_bearer(r), *tid = NULL, *org = NULL;

	if (tok != NULL) {
		if (r->conf->admin_token[0] != '\0' && str_eq_ct(tok, r->conf->admin_token))
			return 0;
		switch (tokens_check_org(r->arena, tok, &tid, &org)) {
		case TOKEN_OK:
			return 0;
		case TOKEN_ERROR:
			return resp_unavailable(r);
		case TOKEN_INVALID:
			return resp_error(r, 401, "invalid admin auth token", NULL);
		}
	}
	if (guard_dev_mode(r) || guard_origin_allowed(r))
		return 0;
	return resp_error(r, 401, "canvas credentials required: X-Workspace-ID with its token, "
	    "an admin bearer or an allowed Origin", NULL);
}

/*
 * The target row and its budget. Returns 1 found (t filled), 0 missing or removed, -1 with
 * the response set (402 over budget, 503/500 on a database error).
 */
static int
load_target(struct req *r, const char *id, struct target *t)
{
	const char *params[1] = { id };
	const char *limit, *spend;
	PGresult *res;

	memset(t, 0, sizeof(*t));
	res = db_exec(r->arena, "SELECT id, name, status::text, COALESCE(url, ''), "
	    "COALESCE(runtime, ''), COALESCE(tier, 1), budget_limit, monthly_spend "
	    "FROM workspaces WHERE id = $1::uuid", 1, params);
	if (res == NULL)
		return db_unavailable() ? resp_unavailable(r) : resp_error(r, 500, "lookup failed", NULL);
	if (PQntuples(res) != 1 || strcmp(PQgetvalue(res, 0, 2), "removed") == 0)
		return 0;
	t->id = PQgetvalue(res, 0, 0);
	t->name = PQgetvalue(res, 0, 1);
	t->status = PQgetvalue(res, 0, 2);
	t->url = PQgetvalue(res, 0, 3);
	t->runtime = PQgetvalue(res, 0, 4);
	t->tier = strtol(PQgetvalue(res, 0, 5), NULL, 10);
	limit = db_value(res, 0, 6);
	spend = db_value(res, 0, 7);
	if (limit != NULL && spend != NULL && strtoll(spend, NULL, 10) >= strtoll(limit, NULL, 10))
		return resp_error(r, 402, "workspace budget limit exceeded", NULL);
	return 1;
}

/* No URL: a hibernated workspace is woken (503 waking), anything else is 503 with its status. */
static int
not_running(struct req *r, const struct target *t)
{
	struct json_object *extra = json_object_new_object();
	char secs[16];

	if (strcmp(t->status, "hibernated") == 0 || strcmp(t->status, "hibernating") == 0) {
		if (strcmp(t->status, "hibernated") == 0 && wake(r, t) < 0)
			log_err("a2a: cannot queue the wake-up of workspace %s", t->id);
		snprintf(secs, sizeof(secs), "%d", WAKE_RETRY_S);
		resp_header(r, "Retry-After", secs);
		json_object_object_add(extra, "waking", json_object_new_boolean(1));
		json_object_object_add(extra, "retry_after", json_object_new_int(WAKE_RETRY_S));
		return resp_error(r, 503, "workspace is waking from hibernation — retry in ~15 seconds",
		    extra);
	}
	json_object_object_add(extra, "status", json_object_new_string(t->status));
	return resp_error(r, 503, "workspace has no URL", extra);
}

/*
 * Queues the restart that resumes a hibernated workspace, as POST /restart does: one
 * transaction with the status change and WORKSPACE_PROVISIONING. A job already queued (an
 * earlier call is waking it) is reused. Returns 0 or -1.
 */
static int
wake(struct req *r, const struct target *t)
{
	const char *params[1] = { t->id };
	struct json_object *ev;
	PGresult *res;

	if (db_begin(r->arena) < 0)
		return -1;
	/* Only if it is still hibernated: concurrent callers wake it once. */
	res = db_exec(r->arena, "UPDATE workspaces SET status = 'provisioning', updated_at = now() "
	    "WHERE id = $1::uuid AND status = 'hibernated' RETURNING id", 1, params);
	if (res == NULL)
		goto fail;
	if (PQntuples(res) == 0) {
		db_rollback();
		return 0;
	}
	if (db_exec(r->arena, "INSERT INTO provision_jobs (workspace_id, kind, payload) "
	    "SELECT $1::uuid, 'restart', '{\"reason\":\"a2a_wake\"}'::jsonb WHERE NOT EXISTS ("
	    "SELECT 1 FROM provision_jobs WHERE workspace_id = $1::uuid AND status = 'queued' "
	    "AND kind IN ('provision', 'restart'))", 1, params) == NULL)
		goto fail;
	ev = jsonx_own(r->arena, json_object_new_object());
	if (ev == NULL)
		goto fail;
	json_object_object_add(ev, "name", json_object_new_string(t->name));
	json_object_object_add(ev, "runtime", json_object_new_string(t->runtime));
	json_object_object_add(ev, "tier", json_object_new_int64(t->tier));
	if (events_record(r->arena, "WORKSPACE_PROVISIONING", t->id, ev) < 0)
		goto fail;
	if (db_commit(r->arena) < 0)
		return -1;
	log_info("workspace %s: woken by an A2A call", t->id);
	return 0;
fail:
	db_rollback();
	return -1;
}

/*
 * One POST to the agent: pinned to the checked address, http(s) only, no redirects and no
 * proxy from the environment, the whole call bounded by timeout_s, the answer by RESPONSE_MAX.
 * Returns 0 with c filled (c->rc says whether it worked), or -1 when curl cannot start.
 */
static int
post(struct req *r, const char *url, const char *resolve, const char *body, size_t len,
    long timeout_s, struct call *c)
{
	struct curl_slist *hl = NULL, *pin = NULL;
	CURL *h = NULL;
	int64_t t0;
	int rc = -1;

	UNUSED(r);
	memset(c, 0, sizeof(*c));
	h = curl_easy_init();
	if (h == NULL)
		goto out;
	hl = curl_slist_append(hl, "Content-Type: application/json");
	hl = curl_slist_append(hl, "Expect:");
	if (resolve != NULL && resolve[0] != '\0')
		pin = curl_slist_append(NULL, resolve);
	if (hl == NULL || (resolve != NULL && resolve[0] != '\0' && pin == NULL))
		goto out;
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_s * 1000L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
	    timeout_s * 1000L < CONNECT_TIMEOUT_MS ? timeout_s * 1000L : CONNECT_TIMEOUT_MS);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_PROXY, "");
	curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(h, CURLOPT_RESOLVE, pin);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, c);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, c->errbuf);
	curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)RESPONSE_MAX);
	t0 = now_mono_ms();
	c->rc = curl_easy_perform(h);
	c->duration_ms = now_mono_ms() - t0;
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &c->status);
	if (c->rc == CURLE_FILESIZE_EXCEEDED)
		c->too_large = 1;
	rc = 0;
out:
	curl_easy_cleanup(h);
	curl_slist_free_all(hl);
	curl_slist_free_all(pin);
	if (rc < 0)
		free(c->body);
	else if (c->body != NULL) {
		/* The answer lives in the arena from here on; the malloc'd buffer goes now. */
		char *copy = arena_alloc(r->arena, c->len + 1);
		if (copy == NULL) {
			c->too_large = 1;
			c->len = 0;
		} else {
			memcpy(copy, c->body, c->len);
			copy[c->len] = '\0';
		}
		free(c->body);
		c->body = copy;
	}
	return rc;
}

static size_t
on_body(char *ptr, size_t size, size_t n, void *userdata)
{
	struct call *c = userdata;
	size_t add = size * n;
	char *grown;

	if (c->len + add > (size_t)RESPONSE_MAX) {
		c->too_large = 1;
		return 0;
	}
	grown = realloc(c->body, c->len + add + 1);
	if (grown == NULL)
		return 0;
	c->body = grown;
	memcpy(c->body + c->len, ptr, add);
	c->len += add;
	return add;
}

/* The client's answer: the agent's own on success, else the reference's error shapes. */
static int
answer(struct req *r, const struct call *c, long timeout_s)
{
	struct json_object *extra, *err, *v;
	char secs[16];
	const char *msg = NULL;

	switch (c->rc) {
	case CURLE_OK:
		break;
	case CURLE_OPERATION_TIMEDOUT:
		extra = json_object_new_object();
		json_object_object_add(extra, "timeout_s", json_object_new_int64(timeout_s));
		return resp_error(r, 504, "workspace agent did not answer within the deadline", extra);
	case CURLE_GOT_NOTHING:
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_PARTIAL_FILE:
		/* The reference's "busy": the agent dropped the connection mid-call. */
		snprintf(secs, sizeof(secs), "%d", BUSY_RETRY_S);
		resp_header(r, "Retry-After", secs);
		extra = json_object_new_object();
		json_object_object_add(extra, "busy", json_object_new_boolean(1));
		json_object_object_add(extra, "retry_after", json_object_new_int(BUSY_RETRY_S));
		return resp_error(r, 503, "workspace agent busy — retry after a short backoff", extra);
	default:
		if (c->too_large) {
			extra = json_object_new_object();
			json_object_object_add(extra, "delivery_confirmed", json_object_new_boolean(1));
			return resp_error(r, 502, "failed to read agent response", extra);
		}
		return resp_error(r, 502, "failed to reach workspace agent", NULL);
	}
	if (c->too_large) {
		extra = json_object_new_object();
		json_object_object_add(extra, "delivery_confirmed", json_object_new_boolean(1));
		return resp_error(r, 502, "failed to read agent response", extra);
	}
	if (c->status >= 300 || c->status < 200) {
		/* The agent's own error string when it gave one, else the status text. */
		err = jsonx_own(r->arena, c->len > 0 ? jsonx_parse(c->body, c->len) : NULL);
		if (err != NULL && json_object_is_type(err, json_type_object) &&
		    json_object_object_get_ex(err, "error", &v)) {
			struct json_object *m;
			if (json_object_is_type(v, json_type_string))
				msg = json_object_get_string(v);
			else if (json_object_is_type(v, json_type_object) &&
			    json_object_object_get_ex(v, "message", &m) &&
			    json_object_is_type(m, json_type_string))
				msg = json_object_get_string(m);
		}
		return resp_error(r, c->status >= 300 && c->status <= 599 ? (int)c->status : 502,
		    msg != NULL ? msg : status_text(c->status), NULL);
	}
	return resp_text(r, (int)c->status, "application/json", c->body != NULL ? c->body : "",
	    c->len);
}

/*
 * The a2a_receive activity row (on the target, with request, response and duration),
 * ACTIVITY_LOGGED, A2A_RESPONSE for canvas calls that succeeded, and the caller's
 * last_outbound_at. Best effort: the agent has answered, the client gets that answer anyway.
 */
static void
record(struct req *r, const struct target *t, const char *caller, const char *method,
    const char *request, const struct call *c, struct json_object *response)
{
	const char *params[10], *summary;
	char dur[24], detail[CURL_ERROR_SIZE + 64];
	struct json_object *ev;
	size_t len;
	int ok = c->rc == CURLE_OK && !c->too_large && c->status >= 200 && c->status < 300;
	int attempt;

	snprintf(dur, sizeof(dur), "%lld", (long long)c->duration_ms);
	if (ok)
		detail[0] = '\0';
	else if (c->rc != CURLE_OK)
		snprintf(detail, sizeof(detail), "%s", c->errbuf[0] ? c->errbuf : curl_easy_strerror(c->rc));
	else
		snprintf(detail, sizeof(detail), "agent answered HTTP %ld", c->status);
	summary = summary_of(r, jsonx_own(r->arena, jsonx_parse(request, strlen(request))));
	/* jsonb refuses some JSON (\u0000): the row is then kept without the bodies. */
	for (attempt = 0; attempt < 2; attempt++) {
		params[0] = t->id;
		params[1] = caller;
		params[2] = method;
		params[3] = summary;
		params[4] = attempt == 0 ? request : NULL;
		params[5] = attempt == 0 && response != NULL ? jsonx_dump(response, &len) : NULL;
		params[6] = dur;
		params[7] = ok ? "ok" : "error";
		params[8] = detail[0] ? detail : NULL;
		if (db_begin(r->arena) < 0)
			return;
		if (db_exec(r->arena, "INSERT INTO activity_logs (workspace_id, activity_type, source_id, "
		    "target_id, method, summary, request_body, response_body, duration_ms, status, "
		    "error_detail) VALUES ($1::uuid, 'a2a_receive', $2::uuid, $1::uuid, $3, $4, $5::jsonb, "
		    "$6::jsonb, $7::int, $8, $9)", 9, params) != NULL)
			break;
		db_rollback();
		if (strncmp(db_last_sqlstate(), "22", 2) != 0)
			return;
	}
	if (attempt == 2)
		return;
	if (caller != NULL && ok) {
		params[0] = caller;
		if (db_exec(r->arena, "UPDATE workspaces SET last_outbound_at = now() "
		    "WHERE id = $1::uuid", 1, params) == NULL)
			goto fail;
	}
	ev = jsonx_own(r->arena, json_object_new_object());
	if (ev == NULL)
		goto fail;
	json_object_object_add(ev, "activity_type", json_object_new_string("a2a_receive"));
	json_object_object_add(ev, "method", json_object_new_string(method));
	json_object_object_add(ev, "summary", summary ? json_object_new_string(summary) : NULL);
	json_object_object_add(ev, "status", json_object_new_string(ok ? "ok" : "error"));
	json_object_object_add(ev, "source_id", caller ? json_object_new_string(caller) : NULL);
	json_object_object_add(ev, "target_id", json_object_new_string(t->id));
	json_object_object_add(ev, "duration_ms", json_object_new_int64(c->duration_ms));
	events_broadcast(r->arena, "ACTIVITY_LOGGED", t->id, ev);
	if (caller == NULL && c->rc == CURLE_OK && !c->too_large && c->status < 400) {
		ev = jsonx_own(r->arena, json_object_new_object());
		if (ev == NULL)
			goto fail;
		json_object_object_add(ev, "response_body", json_object_get(response));
		json_object_object_add(ev, "method", json_object_new_string(method));
		json_object_object_add(ev, "duration_ms", json_object_new_int64(c->duration_ms));
		events_broadcast(r->arena, "A2A_RESPONSE", t->id, ev);
	}
	if (db_commit(r->arena) < 0)
		log_err("a2a: cannot record the call to %s", t->id);
	return;
fail:
	db_rollback();
	log_err("a2a: cannot record the call to %s", t->id);
}

/* The first text part of the request, cut at SUMMARY_MAX bytes on a UTF-8 boundary. */
static const char *
summary_of(struct req *r, struct json_object *request)
{
	struct json_object *params, *msg, *parts, *part, *text;
	const char *s;
	size_t n;

	if (request == NULL || !json_object_object_get_ex(request, "params", &params) ||
	    !json_object_is_type(params, json_type_object) ||
	    !json_object_object_get_ex(params, "message", &msg) ||
	    !json_object_is_type(msg, json_type_object) ||
	    !json_object_object_get_ex(msg, "parts", &parts) ||
	    !json_object_is_type(parts, json_type_array) || json_object_array_length(parts) == 0)
		return NULL;
	part = json_object_array_get_idx(parts, 0);
	if (!json_object_is_type(part, json_type_object) ||
	    !json_object_object_get_ex(part, "text", &text) ||
	    !json_object_is_type(text, json_type_string))
		return NULL;
	s = json_object_get_string(text);
	n = strlen(s);
	if (n <= SUMMARY_MAX)
		return arena_strdup(r->arena, s);
	n = SUMMARY_MAX;
	while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
		n--;
	return arena_strndup(r->arena, s, n);
}

/* Go's http.StatusText for the statuses agents answer with. */
static const char *
status_text(long status)
{
	switch (status) {
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 413: return "Request Entity Too Large";
	case 422: return "Unprocessable Entity";
	case 429: return "Too Many Requests";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	default: return "agent returned an unexpected status";
	}
}
