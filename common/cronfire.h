/*
 * cronfire.h: records the outcome of one schedule fire (the dispatcher calls it after delivery).
 * Owns nothing; writes activity_logs, structure_events and workspace_schedules in the caller's transaction.
 */
#ifndef MOLECULE_CRONFIRE_H
#define MOLECULE_CRONFIRE_H

#include "common/arena.h"

/* Empty replies in a row after which a schedule is marked 'stale' (the reference's #795). */
#define CRONFIRE_STALE_AFTER 3

/*
 * Records the outcome of one schedule fire inside the caller's open transaction (db_begin):
 * an activity_logs 'cron_run' row, a CRON_EXECUTED event, the schedule's last_run_at /
 * last_status / last_error / run_count, and consecutive-empty tracking as in the reference
 * (an ok reply with no text counts as empty; CRONFIRE_STALE_AFTER in a row -> 'stale').
 * ok=0 means the fire failed (error set, may be NULL). response_text may be NULL (empty reply).
 * A schedule deleted meanwhile records nothing and is not an error.
 * Returns 0, or -1 (a statement failed: the caller rolls back).
 */
int cronfire_record(struct arena *a, const char *schedule_id, const char *workspace_id, int ok,
    const char *response_text, const char *error, long duration_ms);

/* 1 when a reply text counts as empty: NULL, only whitespace, or "(no response generated)". */
int cronfire_is_empty(const char *response_text);

#endif
