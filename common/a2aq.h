/*
 * a2aq.h: producers' side of a2a_queue: queue one outbound A2A message for the dispatcher worker.
 * Owns nothing; rows are INSERTed in the caller's transaction (if one is open) and NOTIFY wakes the worker.
 */
#ifndef MOLECULE_A2AQ_H
#define MOLECULE_A2AQ_H

#include <stddef.h>
#include <time.h>

#include <json-c/json.h>

#include "common/arena.h"

/* Bytes of a row id as text, NUL included. */
#define A2AQ_ID_LEN 37

struct a2aq_item {
	const char *workspace_id;	/* target (required) */
	const char *caller_id;		/* workspace on whose behalf it is sent; NULL = platform/canvas */
	const char *kind;		/* "a2a", "cron", "delegation" or "restart_context" */
	const char *ref_id;		/* schedule id / delegation id, or NULL */
	const char *idempotency_key;	/* NULL, or unique per target among queued/running rows */
	struct json_object *body;	/* JSON-RPC message/send or bare params/message (wrapped); not consumed */
	long deadline_ms;		/* 0 = the table default (300000) */
	int priority;			/* 0 = 50 (TASK); 100 CRITICAL, 10 INFO as in the reference */
};

/*
 * Inserts one 'queued' row. The body is normalised with a2a_wrap (JSON-RPC 2.0, id and
 * params.message.messageId filled in); that messageId is the row's stable message_id, the same on
 * every delivery attempt. With an idempotency key that is already queued or running, nothing is
 * inserted and that row's id is returned. id_out (A2AQ_ID_LEN bytes) may be NULL.
 * Returns 0, or -1 (bad body or statement failed: the caller rolls back its transaction).
 */
int a2aq_enqueue(struct arena *a, const struct a2aq_item *it, char *id_out, size_t idlen);

/*
 * Queues the restart-context message (reference restart_context.go) for workspace_id: restart time,
 * when the previous session ended (last_heartbeat_at, read now, so call it BEFORE the restart
 * changes the row), and the secret *keys* (never values) now available. The dispatcher holds it
 * until the workspace is online with a URL again and drops it after 10 minutes.
 * Returns 0, or -1 (statement failed).
 */
int a2aq_restart_context(struct arena *a, const char *workspace_id, char *id_out, size_t idlen);

/* The restart-context text for the given parts (unit-testable; arena string). */
char *a2aq_restart_text(struct arena *a, time_t restart_at, time_t prev_session, const char *keys);

#endif
