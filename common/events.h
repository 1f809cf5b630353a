/*
 * events.h: the event log and live events: a persisted event is INSERTed in the caller's
 * transaction and its envelope published to Redis only after COMMIT. Owns the pending queue.
 */
#ifndef MOLECULE_EVENTS_H
#define MOLECULE_EVENTS_H

#include <json-c/json.h>

#include "common/arena.h"

/* Redis pub/sub channel the broadcaster workers subscribe to. */
#define EVENTS_CHANNEL "molecule:events"

/*
 * Appends {event_type, workspace_id, payload} to structure_events inside the open transaction
 * (db_begin) and queues the live envelope for db_commit. payload may be NULL ({}); it is not
 * consumed. workspace_id may be NULL. Returns 0, or -1 (statement failed: roll back).
 */
int events_record(struct arena *a, const char *type, const char *workspace_id,
    struct json_object *payload);
/*
 * A broadcast-only event (WORKSPACE_HEARTBEAT, TASK_UPDATED, ACTIVITY_LOGGED, AGENT_MESSAGE):
 * not persisted; published at once, or at COMMIT when a transaction is open.
 */
void events_broadcast(struct arena *a, const char *type, const char *workspace_id,
    struct json_object *payload);
/* Builds the envelope {"event","workspace_id","timestamp","payload"} as compact JSON (arena). */
char *events_envelope(struct arena *a, const char *type, const char *workspace_id,
    struct json_object *payload);
/* Publishes the queued envelopes (db_commit calls this) / drops them (db_rollback). */
void events_flush(void);
void events_discard(void);

#endif
