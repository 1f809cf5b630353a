/*
 * a2aq.c: producers' side of a2a_queue (see a2aq.h): normalise the body, INSERT the row.
 * Owns nothing; statements run on the process's connection, inside the caller's transaction if open.
 */
#include "common/a2aq.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/a2a.h"
#include "common/db.h"
#include "common/jsonx.h"
#include "common/log.h"
#include "common/util.h"

/* The reference waits 30 s for the workspace to come online; a container start may take longer. */
#define RESTART_CONTEXT_DEADLINE_MS 120000

static const char *message_id_of(struct json_object *req);
static void human_duration(long s, char *buf, size_t len);

int
a2aq_enqueue(struct arena *a, const struct a2aq_item *it, char *id_out, size_t idlen)
{
	struct json_object *req;
	const char *params[9], *mid, *body;
	char err[256], dl[24], prio[16];
	size_t len;
	PGresult *res;

	if (id_out != NULL && idlen > 0)
		id_out[0] = '\0';
	if (it == NULL || it->workspace_id == NULL || it->kind == NULL)
		return -1;
	req = jsonx_own(a, a2a_wrap(it->body, err, sizeof(err)));
	if (req == NULL) {
		log_warn("a2a queue: not queued for %s: %s", it->workspace_id, err);
		return -1;
	}
	mid = message_id_of(req);
	body = jsonx_dump(req, &len);
	if (mid == NULL || body == NULL)
		return -1;
	snprintf(dl, sizeof(dl), "%ld", it->deadline_ms > 0 ? it->deadline_ms : 300000L);
	snprintf(prio, sizeof(prio), "%d", it->priority > 0 ? it->priority : 50);
	params[0] = it->workspace_id;
	params[1] = it->caller_id;
	params[2] = it->kind;
	params[3] = it->ref_id;
	params[4] = mid;
	params[5] = body;
	params[6] = it->idempotency_key;
	params[7] = dl;
	params[8] = prio;
	res = db_exec(a, "INSERT INTO a2a_queue (workspace_id, caller_id, kind, ref_id, message_id, body, "
	    "idempotency_key, deadline_ms, priority) VALUES ($1::uuid, $2::uuid, $3, $4::uuid, $5, $6::jsonb, "
	    "$7, $8::int, $9::smallint) ON CONFLICT (workspace_id, idempotency_key) "
	    "WHERE idempotency_key IS NOT NULL AND status IN ('queued', 'running') DO NOTHING RETURNING id",
	    9, params);
	if (res == NULL)
		return -1;
	if (PQntuples(res) == 0 && it->idempotency_key != NULL) {
		params[1] = it->idempotency_key;
		res = db_exec(a, "SELECT id FROM a2a_queue WHERE workspace_id = $1::uuid AND idempotency_key = $2 "
		    "AND status IN ('queued', 'running')", 2, params);
		if (res == NULL)
			return -1;
	}
	if (PQntuples(res) != 1)
		return -1;
	if (id_out != NULL)
		snprintf(id_out, idlen, "%s", db_value(res, 0, 0));
	return 0;
}

int
a2aq_restart_context(struct arena *a, const char *workspace_id, char *id_out, size_t idlen)
{
	struct json_object *meta, *req;
	struct a2aq_item it;
	const char *params[1], *prev;
	char *text;
	PGresult *res;

	params[0] = workspace_id;
	/* Keys only, never values: the agent learns which credentials arrived, nothing more. */
	res = db_exec(a, "SELECT extract(epoch FROM now())::bigint, "
	    "extract(epoch FROM w.last_heartbeat_at)::bigint, "
	    "(SELECT string_agg(k, ', ' ORDER BY k) FROM (SELECT key AS k FROM global_secrets UNION "
	    "SELECT key FROM workspace_secrets WHERE workspace_id = w.id) s), 'restart-' || gen_random_uuid() "
	    "FROM workspaces w WHERE w.id = $1::uuid", 1, params);
	if (res == NULL || PQntuples(res) != 1)
		return -1;
	prev = db_value(res, 0, 1);
	text = a2aq_restart_text(a, (time_t)strtoll(db_value(res, 0, 0), NULL, 10),
	    prev != NULL ? (time_t)strtoll(prev, NULL, 10) : 0, db_value(res, 0, 2));
	if (text == NULL)
		return -1;
	meta = jsonx_own(a, json_object_new_object());
	json_object_object_add(meta, "source", json_object_new_string("platform"));
	json_object_object_add(meta, "kind", json_object_new_string("restart_context"));
	json_object_object_add(meta, "layer", json_object_new_int(1));
	json_object_object_add(meta, "restart_context", json_object_new_boolean(1));
	req = jsonx_own(a, a2a_text_request(text, db_value(res, 0, 3), meta));
	memset(&it, 0, sizeof(it));
	it.workspace_id = workspace_id;
	it.kind = "restart_context";
	it.body = req;
	it.deadline_ms = RESTART_CONTEXT_DEADLINE_MS;
	return a2aq_enqueue(a, &it, id_out, idlen);
}

char *
a2aq_restart_text(struct arena *a, time_t restart_at, time_t prev_session, const char *keys)
{
	char at[32], prev[32], ago[32], line[160];

	rfc3339(restart_at, at, sizeof(at));
	if (prev_session <= 0) {
		snprintf(line, sizeof(line), "Previous session ended: (no prior session on record)\n");
	} else {
		rfc3339(prev_session, prev, sizeof(prev));
		human_duration((long)(restart_at - prev_session), ago, sizeof(ago));
		snprintf(line, sizeof(line), "Previous session ended: %s (%s ago)\n", prev, ago);
	}
	return arena_printf(a, "=== WORKSPACE RESTART CONTEXT ===\nRestart at: %s\n%sEnv vars now available: %s\n"
	    "=== END RESTART CONTEXT ===\n", at, line, keys != NULL && keys[0] != '\0' ? keys : "(none)");
}

static const char *
message_id_of(struct json_object *req)
{
	struct json_object *p, *m, *id;

	if (!json_object_object_get_ex(req, "params", &p) || !json_object_object_get_ex(p, "message", &m) ||
	    !json_object_object_get_ex(m, "messageId", &id) || !json_object_is_type(id, json_type_string))
		return NULL;
	return json_object_get_string(id);
}

/* Go's terse form the reference prints: "2h14m", "3m5s", "38s". */
static void
human_duration(long s, char *buf, size_t len)
{
	if (s <= 0)
		snprintf(buf, len, "0s");
	else if (s >= 3600)
		snprintf(buf, len, "%ldh%ldm", s / 3600, (s % 3600) / 60);
	else if (s >= 60)
		snprintf(buf, len, "%ldm%lds", s / 60, s % 60);
	else
		snprintf(buf, len, "%lds", s);
}
