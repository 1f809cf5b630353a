/*
 * h_registry.c: what agents call about themselves: register, heartbeat, update-card (api.md §4.4-4.6).
 * Owns nothing; rows change in one transaction with their events, Redis liveness keys after COMMIT.
 */
#include "fcgi/handlers.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "common/crypt.h"
#include "common/db.h"
#include "common/events.h"
#include "common/jsonx.h"
#include "common/kv.h"
#include "common/log.h"
#include "common/tokens.h"
#include "common/urlcheck.h"
#include "common/util.h"
#include "fcgi/guard.h"
#include "fcgi/resp.h"

#define MAX_MONTHLY_SPEND 1000000000000LL	/* $10B in cents (reference #615) */
#define URL_CACHE_TTL 300

/* A validated heartbeat body (api.md §4.5); strings are never NULL. */
struct heartbeat {
	const char *id;
	double error_rate;
	const char *sample_error;
	int64_t active_tasks;
	int64_t uptime_seconds;
	const char *current_task;
	int64_t monthly_spend;		/* clamped; 0 = leave the column alone */
	const char *runtime_state;
	int status_mgmt;		/* runtime_metadata.capabilities.status_mgmt */
};

static int read_body(struct req *r, struct json_object **body);
static int field(struct json_object *body, const char *key, enum json_type t,
    struct json_object **out);
static int int_field(struct json_object *body, const char *key, int64_t min, int64_t max,
    int64_t *out);
static int str_field(struct json_object *body, const char *key, const char **out);
static const char *uuid_field(struct req *r, struct json_object *body, const char *key);
static int parse_heartbeat(struct req *r, struct json_object *body, struct heartbeat *hb);
static int parse_runtime_metadata(struct json_object *md, int *status_mgmt);
static const char *transition(const char *from, const struct heartbeat *hb);
static struct json_object *transition_payload(struct req *r, const char *from, const char *to,
    const struct heartbeat *hb, const char **type);
static int heartbeat_locked(struct req *r, const struct heartbeat *hb, const char *const *upd,
    const char **old_task);
static void heartbeat_broadcast(struct req *r, const struct heartbeat *hb, const char *old_task);
static int heartbeat_event_recent(const char *id, int64_t window_ms);
static void set_online(struct req *r, const char *id, int force);
static int liveness_fresh(struct req *r, const char *id);
static void liveness_check_epoch(void);
static int db_failed(struct req *r, const char *msg);
static const char *seal_inbound(struct req *r, const char *id, const char *secret,
    const char **ver);
static const char *open_inbound(struct req *r, const char *id, const char *ver,
    const char *hex);

/* The counters every heartbeat writes; $8 is the status to leave (or put) the row in. */
static const char hb_update_sql[] =
    "UPDATE workspaces SET last_heartbeat_at = now(), last_error_rate = $2::float8, "
    "last_sample_error = $3, active_tasks = $4::int, uptime_seconds = $5::int, current_task = $6, "
    "monthly_spend = CASE WHEN $7::bigint > 0 THEN $7::bigint ELSE monthly_spend END, "
    "status = $8::workspace_status, updated_at = now() WHERE id = $1::uuid";

/*
 * The steady state in one prepared statement: same task, no status transition, and the bearer
 * is one of the workspace's live tokens (or it has none: lazy bootstrap). Anything else
 * updates nothing and takes the careful path below. The counters are soft state, refreshed
 * every few seconds: this transaction alone commits without waiting for the WAL flush (ADR
 * 003); a crash loses at most the last fraction of a second of counters, never a status
 * change, which the careful path commits durably. last_used_at moves at most once a minute.
 */
static const char hb_fast_sql[] =
    "WITH async AS (SELECT set_config('synchronous_commit', 'off', true)), "
    "bump AS (UPDATE workspace_auth_tokens SET last_used_at = now() "
    "  WHERE token_hash = decode($9, 'hex') AND workspace_id = $1::uuid AND revoked_at IS NULL "
    "  AND (last_used_at IS NULL OR last_used_at < now() - interval '60 seconds')), "
    "upd AS (UPDATE workspaces w SET last_heartbeat_at = now(), last_error_rate = $2::float8, "
    "  last_sample_error = $3, active_tasks = $4::int, uptime_seconds = $5::int, "
    "  monthly_spend = CASE WHEN $7::bigint > 0 THEN $7::bigint ELSE w.monthly_spend END, "
    "  updated_at = now() FROM async "
    "  WHERE w.id = $1::uuid AND w.status <> 'removed' AND w.status::text <> ALL ($8::text[]) "
    "  AND COALESCE(w.current_task, '') = $6 "
    "  AND (EXISTS (SELECT 1 FROM workspace_auth_tokens t WHERE t.token_hash = decode($9, 'hex') "
    "    AND t.workspace_id = w.id AND t.revoked_at IS NULL) "
    "  OR NOT EXISTS (SELECT 1 FROM workspace_auth_tokens t WHERE t.workspace_id = w.id "
    "    AND t.revoked_at IS NULL)) "
    "  RETURNING 1) "
    "SELECT count(*) FROM upd";

/*
 * An unknown id creates a root workspace (reference behaviour agents rely on); removed rows
 * stay removed (no row returned). A provisioner URL on 127.0.0.1 is kept. The inbound secret
 * is minted once and stored sealed by crypt_seal ($4 hex blob, $5 its version); a row that
 * already has one keeps it, and the stored blob comes back to be opened.
 */
static const char register_sql[] =
    "INSERT INTO workspaces (id, name, url, agent_card, status, last_heartbeat_at, "
    "  platform_inbound_secret, platform_inbound_secret_version) "
    "VALUES ($1::uuid, $1, $2, $3::jsonb, 'online', now(), decode($4, 'hex'), $5::int) "
    "ON CONFLICT (id) DO UPDATE SET "
    "  url = CASE WHEN left(workspaces.url, 16) = 'http://127.0.0.1' THEN workspaces.url "
    "    ELSE EXCLUDED.url END, "
    "  agent_card = EXCLUDED.agent_card, status = 'online', last_heartbeat_at = now(), "
    "  updated_at = now(), "
    "  platform_inbound_secret = COALESCE(workspaces.platform_inbound_secret, "
    "    EXCLUDED.platform_inbound_secret), "
    "  platform_inbound_secret_version = CASE WHEN workspaces.platform_inbound_secret IS NULL "
    "    THEN EXCLUDED.platform_inbound_secret_version "
    "    ELSE workspaces.platform_inbound_secret_version END "
    "WHERE workspaces.status <> 'removed' "
    "RETURNING COALESCE(url, ''), xmax = 0, platform_inbound_secret_version, "
    "  encode(platform_inbound_secret, 'hex')";

/* The statuses evaluateStatus moves from (api.md §4.5). */
static const char *const from_statuses[] = { "online", "degraded", "offline", "provisioning" };

int
h_registry_register(struct req *r)
{
	struct json_object *body = NULL, *card = NULL, *payload, *out;
	const char *id, *url = NULL, *params[5], *stored_url, *secret;
	char why[160], tok[TOKEN_LEN + 1], fresh[TOKEN_LEN + 1];
	PGresult *res;
	size_t len;
	int live, minted = 0, rc = -1;

	if (read_body(r, &body) < 0)
		return -1;
	if ((id = uuid_field(r, body, "id")) == NULL || str_field(body, "url", &url) != 1 ||
	    url[0] == '\0' || field(body, "agent_card", json_type_null, &card) != 1)
		return resp_error(r, 400, "invalid request body", NULL);
	if (urlcheck_agent_url(url, why, sizeof(why)) < 0) {
		char msg[200];
		snprintf(msg, sizeof(msg), "invalid agent url: %s", why);
		return resp_error(r, 400, msg, NULL);
	}
	if (guard_lazy_bootstrap(r, id, "workspace", 0) < 0)
		return -1;
	if (token_generate(fresh) < 0)
		return resp_error(r, 500, "registration failed", NULL);

	params[0] = id;
	params[1] = url;
	params[2] = jsonx_dump(card, &len);
	params[3] = seal_inbound(r, id, fresh, &params[4]);
	memset(fresh, 0, sizeof(fresh));
	if (params[3] == NULL)
		return resp_error(r, 500, "registration failed", NULL);
	if (db_begin(r->arena) < 0)
		return db_failed(r, "registration failed");
	res = db_exec(r->arena, register_sql, 5, params);
	if (res == NULL) {
		/* JSON that jsonb refuses (\u0000 in a string) is the client's fault, not ours. */
		if (strncmp(db_last_sqlstate(), "22", 2) == 0) {
			db_rollback();
			return resp_error(r, 400, "invalid request body", NULL);
		}
		goto fail;
	}
	if (PQntuples(res) != 1) {
		db_rollback();
		return resp_error(r, 404, "workspace not found", NULL);
	}
	stored_url = db_value(res, 0, 0);
	secret = open_inbound(r, id, db_value(res, 0, 2), db_value(res, 0, 3));
	if (secret == NULL) {
		db_rollback();
		return resp_error(r, 500, "registration failed", NULL);
	}
	if (strcmp(db_value(res, 0, 1), "t") == 0)
		log_info("register: unknown workspace %s self-registered as a root workspace", id);

	live = tokens_workspace_has_live(r->arena, id);
	if (live < 0)
		goto fail;
	if (live == 0) {
		if (tokens_mint_workspace(r->arena, id, tok) < 0)
			goto fail;
		minted = 1;
	}
	payload = jsonx_own(r->arena, json_object_new_object());
	json_object_object_add(payload, "agent_card", json_object_get(card));
	json_object_object_add(payload, "url", json_object_new_string(stored_url));
	if (events_record(r->arena, "WORKSPACE_ONLINE", id, payload) < 0)
		goto fail;
	if (db_commit(r->arena) < 0)
		return db_failed(r, "registration failed");

	set_online(r, id, 1);
	freeReplyObject(kv_command(NULL, "SET ws:%s:url %s EX %d", id, stored_url, URL_CACHE_TTL));
	freeReplyObject(kv_command(NULL, "SET ws:%s:internal_url %s EX %d", id, url, URL_CACHE_TTL));

	/* Keys in Go's map order (sorted), as the reference serialises them. */
	out = jsonx_own(r->arena, json_object_new_object());
	if (minted)
		json_object_object_add(out, "auth_token", json_object_new_string(tok));
	json_object_object_add(out, "platform_inbound_secret", json_object_new_string(secret));
	json_object_object_add(out, "status", json_object_new_string("registered"));
	rc = resp_json(r, 200, out);
	memset(tok, 0, sizeof(tok));
	return rc;
fail:
	db_rollback();
	memset(fresh, 0, sizeof(fresh));
	return db_failed(r, "registration failed");
}

int
h_registry_heartbeat(struct req *r)
{
	static const char ok[] = "{\"status\":\"ok\"}";
	struct json_object *body = NULL;
	struct heartbeat hb;
	const char *params[9], *old_task = NULL, *tok;
	char rate[40], active[24], uptime[24], spend[24], skip[64], hash[65] = "";
	size_t i, n;
	PGresult *res;

	if (read_body(r, &body) < 0)
		return -1;
	if (parse_heartbeat(r, body, &hb) < 0)
		return resp_error(r, 400, "invalid request body", NULL);
	tok = req_bearer(r);
	if (tok != NULL && strlen(tok) == TOKEN_LEN)
		token_hash_hex(tok, hash);

	snprintf(rate, sizeof(rate), "%.17g", hb.error_rate);
	snprintf(active, sizeof(active), "%" PRId64, hb.active_tasks);
	snprintf(uptime, sizeof(uptime), "%" PRId64, hb.uptime_seconds);
	snprintf(spend, sizeof(spend), "%" PRId64, hb.monthly_spend);
	/* The statuses this heartbeat would move a row out of: a fixed vocabulary, not input. */
	n = (size_t)snprintf(skip, sizeof(skip), "{");
	for (i = 0; i < NELEM(from_statuses); i++)
		if (transition(from_statuses[i], &hb) != NULL)
			n += (size_t)snprintf(skip + n, sizeof(skip) - n, "%s%s", n > 1 ? "," : "",
			    from_statuses[i]);
	snprintf(skip + n, sizeof(skip) - n, "}");
	params[0] = hb.id;
	params[1] = rate;
	params[2] = hb.sample_error;
	params[3] = active;
	params[4] = uptime;
	params[5] = hb.current_task;
	params[6] = spend;
	params[7] = skip;
	params[8] = hash;

	res = db_exec(r->arena, hb_fast_sql, 9, params);
	if (res == NULL)
		return db_failed(r, "failed to update");
	if (atoi(PQgetvalue(res, 0, 0)) == 1) {
		/* Same task as stored: no TASK_UPDATED. */
		heartbeat_broadcast(r, &hb, hb.current_task);
		set_online(r, hb.id, 0);
		return resp_text(r, 200, "application/json; charset=utf-8", ok, sizeof(ok) - 1);
	}
	/* Unknown, removed, a new task, a status transition, or a bearer to check. */
	if (guard_lazy_bootstrap(r, hb.id, "workspace", 0) < 0)
		return -1;
	switch (heartbeat_locked(r, &hb, params, &old_task)) {
	case -1:
		return db_failed(r, "failed to update");
	case 1:
		set_online(r, hb.id, 1);
		break;
	default:
		break;	/* unknown or removed: 200 like the reference */
	}
	return resp_text(r, 200, "application/json; charset=utf-8", ok, sizeof(ok) - 1);
}

int
h_registry_update_card(struct req *r)
{
	struct json_object *body = NULL, *card = NULL, *payload;
	const char *id, *params[2];
	PGresult *res;
	size_t len;

	if (read_body(r, &body) < 0)
		return -1;
	if ((id = uuid_field(r, body, "workspace_id")) == NULL ||
	    field(body, "agent_card", json_type_null, &card) != 1)
		return resp_error(r, 400, "invalid request body", NULL);
	if (guard_lazy_bootstrap(r, id, "workspace", 0) < 0)
		return -1;
	params[0] = id;
	params[1] = jsonx_dump(card, &len);
	if (db_begin(r->arena) < 0)
		return db_failed(r, "failed to update card");
	res = db_exec(r->arena, "UPDATE workspaces SET agent_card = $2::jsonb, updated_at = now() "
	    "WHERE id = $1::uuid AND status <> 'removed' RETURNING id", 2, params);
	if (res == NULL) {
		int bad_json = strncmp(db_last_sqlstate(), "22", 2) == 0;
		db_rollback();
		if (bad_json)
			return resp_error(r, 400, "invalid request body", NULL);
		return db_failed(r, "failed to update card");
	}
	/* An unknown (or removed) id still answers 200, as the reference does; no event. */
	if (PQntuples(res) == 1) {
		payload = jsonx_own(r->arena, json_object_new_object());
		json_object_object_add(payload, "agent_card", json_object_get(card));
		if (events_record(r->arena, "AGENT_CARD_UPDATED", id, payload) < 0) {
			db_rollback();
			return db_failed(r, "failed to update card");
		}
	}
	if (db_commit(r->arena) < 0)
		return db_failed(r, "failed to update card");
	payload = jsonx_own(r->arena, json_object_new_object());
	json_object_object_add(payload, "status", json_object_new_string("updated"));
	return resp_json(r, 200, payload);
}

/* req_json_body, with the reference's one message for every 400 a body can earn. */
static int
read_body(struct req *r, struct json_object **body)
{
	if (req_json_body(r, body) == 0)
		return 0;
	if (r->status == 400)
		resp_error(r, 400, "invalid request body", NULL);
	return -1;
}

/*
 * 1 when key is present and not null (with type t; json_type_null accepts any type), 0 when
 * absent or null, -1 when of another type. Doubles accept integers too.
 */
static int
field(struct json_object *body, const char *key, enum json_type t, struct json_object **out)
{
	struct json_object *v = NULL;

	*out = NULL;
	if (!json_object_object_get_ex(body, key, &v) || v == NULL)
		return 0;
	if (t != json_type_null && !json_object_is_type(v, t) &&
	    !(t == json_type_double && json_object_is_type(v, json_type_int)))
		return -1;
	*out = v;
	return 1;
}

/* An integer in [min, max] or absent (out untouched); -1 for any other value. */
static int
int_field(struct json_object *body, const char *key, int64_t min, int64_t max, int64_t *out)
{
	struct json_object *v;
	int rc = field(body, key, json_type_int, &v);
	int64_t x;

	if (rc <= 0)
		return rc;
	x = json_object_get_int64(v);
	if (x < min || x > max)
		return -1;
	*out = x;
	return 1;
}

/* A string, or absent (out untouched); -1 for any other type. */
static int
str_field(struct json_object *body, const char *key, const char **out)
{
	struct json_object *v;
	int rc = field(body, key, json_type_string, &v);

	if (rc == 1)
		*out = json_object_get_string(v);
	return rc;
}

/* A required UUID string, lower-cased (the form the database and Redis keys use), or NULL. */
static const char *
uuid_field(struct req *r, struct json_object *body, const char *key)
{
	const char *s = NULL;
	char *id;
	size_t i;

	if (str_field(body, key, &s) != 1 || !is_uuid(s))
		return NULL;
	if ((id = arena_strdup(r->arena, s)) == NULL)
		return NULL;
	for (i = 0; id[i] != '\0'; i++)
		id[i] = (char)tolower((unsigned char)id[i]);
	return id;
}

/* Validates the types of api.md §4.5's body; absent fields take Go's zero values. */
static int
parse_heartbeat(struct req *r, struct json_object *body, struct heartbeat *hb)
{
	struct json_object *v;

	memset(hb, 0, sizeof(*hb));
	hb->sample_error = "";
	hb->current_task = "";
	hb->runtime_state = "";
	if ((hb->id = uuid_field(r, body, "workspace_id")) == NULL)
		return -1;
	if (field(body, "error_rate", json_type_double, &v) < 0)
		return -1;
	if (v != NULL)
		hb->error_rate = json_object_get_double(v);
	if (str_field(body, "sample_error", &hb->sample_error) < 0 ||
	    str_field(body, "current_task", &hb->current_task) < 0 ||
	    str_field(body, "runtime_state", &hb->runtime_state) < 0 ||
	    int_field(body, "active_tasks", 0, INT32_MAX, &hb->active_tasks) < 0 ||
	    int_field(body, "uptime_seconds", 0, INT32_MAX, &hb->uptime_seconds) < 0 ||
	    int_field(body, "monthly_spend", INT64_MIN, INT64_MAX, &hb->monthly_spend) < 0)
		return -1;
	if (hb->monthly_spend < 0)
		hb->monthly_spend = 0;
	if (hb->monthly_spend > MAX_MONTHLY_SPEND)
		hb->monthly_spend = MAX_MONTHLY_SPEND;
	if (field(body, "runtime_metadata", json_type_object, &v) < 0)
		return -1;
	if (v != NULL && parse_runtime_metadata(v, &hb->status_mgmt) < 0)
		return -1;
	return 0;
}

/* {capabilities:{name:bool...}, idle_timeout_seconds:int}; only status_mgmt is used here. */
static int
parse_runtime_metadata(struct json_object *md, int *status_mgmt)
{
	struct json_object *caps;
	int64_t idle = 0;

	if (int_field(md, "idle_timeout_seconds", INT32_MIN, INT32_MAX, &idle) < 0)
		return -1;
	if (field(md, "capabilities", json_type_object, &caps) < 0)
		return -1;
	if (caps == NULL)
		return 0;
	{
		/* The macro declares its iterators: give it a block of its own. */
		json_object_object_foreach(caps, k, v) {
			if (v != NULL && !json_object_is_type(v, json_type_boolean))
				return -1;
			if (strcmp(k, "status_mgmt") == 0 && v != NULL)
				*status_mgmt = json_object_get_boolean(v);
		}
	}
	return 0;
}

/* evaluateStatus (api.md §4.5): the status a heartbeat moves `from` to, or NULL to stay. */
static const char *
transition(const char *from, const struct heartbeat *hb)
{
	if (strcmp(from, "online") == 0) {
		if (strcmp(hb->runtime_state, "wedged") == 0)
			return "degraded";
		if (hb->error_rate >= 0.5 && !hb->status_mgmt)
			return "degraded";
	} else if (strcmp(from, "degraded") == 0) {
		if (hb->error_rate < 0.1 && hb->runtime_state[0] == '\0' && !hb->status_mgmt)
			return "online";
	} else if (strcmp(from, "offline") == 0 || strcmp(from, "provisioning") == 0) {
		return "online";
	}
	return NULL;
}

static struct json_object *
transition_payload(struct req *r, const char *from, const char *to, const struct heartbeat *hb,
    const char **type)
{
	struct json_object *p = jsonx_own(r->arena, json_object_new_object());

	if (strcmp(to, "degraded") == 0) {
		*type = "WORKSPACE_DEGRADED";
		if (strcmp(hb->runtime_state, "wedged") == 0) {
			json_object_object_add(p, "runtime_state", json_object_new_string("wedged"));
		} else {
			json_object_object_add(p, "error_rate", jsonx_number(hb->error_rate));
		}
		json_object_object_add(p, "sample_error", json_object_new_string(hb->sample_error));
		return p;
	}
	*type = "WORKSPACE_ONLINE";
	if (strcmp(from, "provisioning") == 0)
		json_object_object_add(p, "recovered_from", json_object_new_string("provisioning"));
	return p;
}

/*
 * The transactional path: lock the row, write the counters and the new status, record the
 * transition's event, queue the broadcasts, COMMIT. upd holds hb_update_sql's first 7 params.
 * Returns 1 updated, 0 unknown or removed, -1 database error (rolled back).
 */
static int
heartbeat_locked(struct req *r, const struct heartbeat *hb, const char *const *upd,
    const char **old_task)
{
	const char *params[8], *from, *to, *type = NULL;
	struct json_object *payload;
	PGresult *res;
	int i;

	if (db_begin(r->arena) < 0)
		return -1;
	res = db_exec(r->arena, "SELECT status::text, COALESCE(current_task, '') FROM workspaces "
	    "WHERE id = $1::uuid AND status <> 'removed' FOR UPDATE", 1, upd);
	if (res == NULL)
		goto fail;
	if (PQntuples(res) != 1) {
		db_rollback();
		return 0;
	}
	from = db_value(res, 0, 0);
	*old_task = db_value(res, 0, 1);
	to = transition(from, hb);
	for (i = 0; i < 7; i++)
		params[i] = upd[i];
	params[7] = to != NULL ? to : from;
	if (db_exec(r->arena, hb_update_sql, 8, params) == NULL)
		goto fail;
	if (to != NULL) {
		payload = transition_payload(r, from, to, hb, &type);
		if (events_record(r->arena, type, hb->id, payload) < 0)
			goto fail;
		log_info("heartbeat: workspace %s %s -> %s", hb->id, from, to);
	}
	heartbeat_broadcast(r, hb, *old_task);
	if (db_commit(r->arena) < 0)
		return -1;
	return 1;
fail:
	db_rollback();
	return -1;
}

/* TASK_UPDATED when current_task changed, WORKSPACE_HEARTBEAT always (broadcast-only). */
static void
heartbeat_broadcast(struct req *r, const struct heartbeat *hb, const char *old_task)
{
	struct json_object *p;

	if (old_task == NULL || strcmp(old_task, hb->current_task) != 0) {
		p = jsonx_own(r->arena, json_object_new_object());
		json_object_object_add(p, "active_tasks", json_object_new_int64(hb->active_tasks));
		json_object_object_add(p, "current_task", json_object_new_string(hb->current_task));
		events_broadcast(r->arena, "TASK_UPDATED", hb->id, p);
	}
	if (heartbeat_event_recent(hb->id, r->conf->heartbeat_event_interval_s * 1000))
		return;
	p = jsonx_own(r->arena, json_object_new_object());
	json_object_object_add(p, "active_tasks", json_object_new_int64(hb->active_tasks));
	json_object_object_add(p, "uptime_seconds", json_object_new_int64(hb->uptime_seconds));
	events_broadcast(r->arena, "WORKSPACE_HEARTBEAT", hb->id, p);
}

/*
 * WORKSPACE_HEARTBEAT is a snapshot the next one supersedes (and the canvas ignores): this
 * worker publishes at most one per workspace per window (heartbeat_event_interval). A
 * direct-mapped cache: a collision only lets an extra one through. The broadcaster applies
 * the same window across workers.
 */
static int
heartbeat_event_recent(const char *id, int64_t window_ms)
{
	static struct {
		char id[40];
		int64_t ms;
	} slots[1024];
	uint64_t h;
	int64_t now = now_mono_ms();
	size_t i;

	if (window_ms <= 0)
		return 0;
	h = hash_str(id);
	i = (size_t)(h % (sizeof(slots) / sizeof(slots[0])));
	if (strcmp(slots[i].id, id) == 0 && now - slots[i].ms < window_ms)
		return 1;
	snprintf(slots[i].id, sizeof(slots[i].id), "%s", id);
	slots[i].ms = now;
	return 0;
}

/*
 * Liveness key ws:<id> (schema.md §5). SET, not EXPIRE: a key lost to a Redis restart or
 * FLUSHALL comes back with the next heartbeat. Best effort: kv logs a failure.
 * A steady heartbeat (force=0) skips the SET when this worker refreshed the key less than a
 * sixth of its TTL ago: the key then never runs below 5/6 of its TTL while heartbeats come,
 * and Redis is spared a write per heartbeat (ADR 003). Register and transitions always SET.
 */
static void
set_online(struct req *r, const char *id, int force)
{
	if (!force && liveness_fresh(r, id))
		return;
	/* Not waiting for "+OK" saves a context switch. */
	kv_send("SET ws:%s online EX %lld", id, (long long)r->conf->liveness_ttl_s);
}

#define LIVENESS_SLOTS 4096
#define LIVENESS_EPOCH_KEY "molecule:liveness:epoch"

static struct {
	char id[40];
	int64_t set_ms;
} liveness_slots[LIVENESS_SLOTS];
static char liveness_epoch[40];
static int64_t liveness_epoch_checked_ms;

/*
 * 1 when this worker SET ws:<id> recently enough to skip it now; records the SET otherwise.
 * A direct-mapped cache: a collision only costs an extra SET.
 */
static int
liveness_fresh(struct req *r, const char *id)
{
	uint64_t h;
	int64_t now = now_mono_ms(), window = r->conf->liveness_ttl_s * 1000 / 6;
	size_t i;

	liveness_check_epoch();
	h = hash_str(id);
	i = (size_t)(h % LIVENESS_SLOTS);
	if (strcmp(liveness_slots[i].id, id) == 0 && now - liveness_slots[i].set_ms < window)
		return 1;
	snprintf(liveness_slots[i].id, sizeof(liveness_slots[i].id), "%s", id);
	liveness_slots[i].set_ms = now;
	return 0;
}

/*
 * A wiped Redis (FLUSHALL, restart) must not wait out the skip window: once a second this
 * worker reads an epoch key; when it is gone or changed, the cache is forgotten (and a fresh
 * epoch written), so the next heartbeat of every workspace SETs its key again.
 */
static void
liveness_check_epoch(void)
{
	int64_t now = now_mono_ms();
	redisReply *rep;
	char fresh[40];

	if (now - liveness_epoch_checked_ms < 1000 && liveness_epoch[0] != '\0')
		return;
	liveness_epoch_checked_ms = now;
	rep = kv_command(NULL, "GET %s", LIVENESS_EPOCH_KEY);
	if (rep != NULL && rep->type == REDIS_REPLY_STRING && strcmp(rep->str, liveness_epoch) == 0) {
		freeReplyObject(rep);
		return;
	}
	memset(liveness_slots, 0, sizeof(liveness_slots));
	if (rep != NULL && rep->type == REDIS_REPLY_STRING) {
		snprintf(liveness_epoch, sizeof(liveness_epoch), "%s", rep->str);
	} else {
		snprintf(fresh, sizeof(fresh), "%d-%lld", (int)getpid(), (long long)now_wall_ms());
		freeReplyObject(kv_command(NULL, "SET %s %s NX", LIVENESS_EPOCH_KEY, fresh));
		liveness_epoch[0] = '\0';	/* read back (ours or a racer's) at the next check */
	}
	freeReplyObject(rep);
}

/* 503 when the database is unreachable, else 500 with the route's message. Always -1. */
static int
db_failed(struct req *r, const char *msg)
{
	if (db_unavailable())
		return resp_unavailable(r);
	return resp_error(r, 500, msg, NULL);
}

/*
 * Seals a freshly minted inbound secret for workspace id. Returns the blob as hex in the
 * arena and its version in *ver, or NULL (logged without the secret).
 */
static const char *
seal_inbound(struct req *r, const char *id, const char *secret, const char **ver)
{
	unsigned char *blob = NULL;
	size_t blen = 0;
	char err[256], *hex = NULL;
	int version = 0;
	enum crypt_result cr;

	err[0] = '\0';
	cr = crypt_seal(id, "platform_inbound_secret", (const unsigned char *)secret,
	    strlen(secret), &blob, &blen, &version, err, sizeof(err));
	if (cr != CRYPT_OK) {
		log_err("register %s: sealing the inbound secret failed: %s", id, err);
		goto out;
	}
	if ((hex = arena_alloc(r->arena, blen * 2 + 1)) == NULL ||
	    (*ver = arena_printf(r->arena, "%d", version)) == NULL) {
		hex = NULL;
		goto out;
	}
	hex_encode(blob, blen, hex);
out:
	if (blob != NULL) {
		OPENSSL_cleanse(blob, blen);
		free(blob);
	}
	return hex;
}

/*
 * Opens the stored inbound secret (hex blob of version ver) of workspace id into the arena.
 * Returns NULL on any failure (logged without the secret).
 */
static const char *
open_inbound(struct req *r, const char *id, const char *ver, const char *hex)
{
	unsigned char *blob = NULL, *pt = NULL;
	size_t blen = 0, ptlen = 0, i;
	char err[256], *secret = NULL;
	int hi, lo;
	enum crypt_result cr;

	err[0] = '\0';
	if (ver == NULL || hex == NULL || strlen(hex) % 2 != 0) {
		log_err("register %s: stored inbound secret is missing or malformed", id);
		goto out;
	}
	blen = strlen(hex) / 2;
	if ((blob = malloc(blen + 1)) == NULL)
		goto out;
	for (i = 0; i < blen; i++) {
		hi = OPENSSL_hexchar2int((unsigned char)hex[2 * i]);
		lo = OPENSSL_hexchar2int((unsigned char)hex[2 * i + 1]);
		if (hi < 0 || lo < 0) {
			log_err("register %s: stored inbound secret is malformed", id);
			goto out;
		}
		blob[i] = (unsigned char)(hi << 4 | lo);
	}
	cr = crypt_open(id, "platform_inbound_secret", atoi(ver), blob, blen, &pt, &ptlen,
	    err, sizeof(err));
	if (cr != CRYPT_OK) {
		log_err("register %s: opening the inbound secret failed: %s", id, err);
		goto out;
	}
	if (memchr(pt, '\0', ptlen) != NULL) {
		log_err("register %s: stored inbound secret is not text", id);
		goto out;
	}
	if ((secret = arena_alloc(r->arena, ptlen + 1)) != NULL) {
		memcpy(secret, pt, ptlen);
		secret[ptlen] = '\0';
	}
out:
	if (pt != NULL) {
		OPENSSL_cleanse(pt, ptlen);
		free(pt);
	}
	free(blob);
	return secret;
}
