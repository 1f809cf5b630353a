/*
 * cronfire.c: records the outcome of one schedule fire (the dispatcher calls it after delivery).
 * Owns nothing; writes activity_logs, structure_events and workspace_schedules in the caller's transaction.
 */
#include "common/cronfire.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "common/db.h"
#include "common/events.h"
#include "common/jsonx.h"
#include "common/log.h"

/* Reply text kept in the activity row; the prompt is cut to 200 characters as the reference does. */
#define RESPONSE_KEEP_CHARS "4096"
#define ERROR_KEEP_CHARS "4096"

/*
 * One statement: the schedule's counters (old values on the right of SET), then the cron_run row
 * from the updated schedule. A deleted schedule updates nothing and so logs nothing.
 */
static const char *const record_query =
    "WITH s AS (UPDATE workspace_schedules SET last_run_at = now(), run_count = run_count + 1, "
    "  updated_at = now(), "
    "  consecutive_empty_runs = CASE WHEN NOT $3::bool THEN consecutive_empty_runs "
    "    WHEN $4::bool THEN consecutive_empty_runs + 1 ELSE 0 END, "
    "  last_status = CASE WHEN NOT $3::bool THEN 'error' "
    "    WHEN $4::bool AND consecutive_empty_runs + 1 >= $8::int THEN 'stale' ELSE 'ok' END, "
    "  last_error = CASE WHEN NOT $3::bool THEN COALESCE(left($5::text, " ERROR_KEEP_CHARS "), 'fire failed') "
    "    WHEN $4::bool AND consecutive_empty_runs + 1 >= $8::int THEN 'empty response ' || "
    "      (consecutive_empty_runs + 1) || ' consecutive times' ELSE '' END "
    "  WHERE id = $1::uuid AND workspace_id = $2::uuid "
    "  RETURNING id, workspace_id, name, cron_expr, prompt, last_status, last_error), "
    "a AS (INSERT INTO activity_logs (workspace_id, activity_type, method, summary, request_body, "
    "  response_body, duration_ms, status, error_detail) "
    "  SELECT s.workspace_id, 'cron_run', 'cron', 'Cron: ' || s.name, "
    "    jsonb_build_object('schedule_id', s.id, 'schedule_name', s.name, 'cron_expr', s.cron_expr, "
    "      'prompt', left(s.prompt, 200)), "
    "    CASE WHEN $6::text IS NULL THEN NULL "
    "      ELSE jsonb_build_object('result', left($6::text, " RESPONSE_KEEP_CHARS ")) END, "
    "    $7::int, s.last_status, NULLIF(s.last_error, '') FROM s RETURNING id) "
    "SELECT s.name, s.last_status FROM s";

int
cronfire_record(struct arena *a, const char *schedule_id, const char *workspace_id, int ok,
    const char *response_text, const char *error, long duration_ms)
{
	struct json_object *payload;
	const char *params[8];
	char dur[24], stale[16];
	PGresult *res;

	if (duration_ms < 0)
		duration_ms = 0;
	if (duration_ms > 2147483647L)
		duration_ms = 2147483647L;
	snprintf(dur, sizeof(dur), "%ld", duration_ms);
	snprintf(stale, sizeof(stale), "%d", CRONFIRE_STALE_AFTER);
	params[0] = schedule_id;
	params[1] = workspace_id;
	params[2] = ok ? "true" : "false";
	params[3] = ok && cronfire_is_empty(response_text) ? "true" : "false";
	params[4] = error;
	params[5] = ok && !cronfire_is_empty(response_text) ? response_text : NULL;
	params[6] = dur;
	params[7] = stale;
	res = db_exec(a, record_query, 8, params);
	if (res == NULL)
		return -1;
	if (PQntuples(res) == 0) {
		log_info("cron fire of schedule %s recorded nothing: the schedule is gone", schedule_id);
		return 0;
	}
	payload = jsonx_own(a, json_object_new_object());
	json_object_object_add(payload, "schedule_id", json_object_new_string(schedule_id));
	json_object_object_add(payload, "schedule_name", json_object_new_string(db_value(res, 0, 0)));
	json_object_object_add(payload, "status", json_object_new_string(db_value(res, 0, 1)));
	if (events_record(a, "CRON_EXECUTED", workspace_id, payload) < 0)
		return -1;
	payload = jsonx_own(a, json_object_new_object());
	json_object_object_add(payload, "activity_type", json_object_new_string("cron_run"));
	json_object_object_add(payload, "method", json_object_new_string("cron"));
	json_object_object_add(payload, "status", json_object_new_string(db_value(res, 0, 1)));
	events_broadcast(a, "ACTIVITY_LOGGED", workspace_id, payload);
	return 0;
}

int
cronfire_is_empty(const char *response_text)
{
	const char *p;

	if (response_text == NULL || strstr(response_text, "(no response generated)") != NULL)
		return 1;
	for (p = response_text; *p != '\0'; p++)
		if (!isspace((unsigned char)*p))
			return 0;
	return 1;
}
