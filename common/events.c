/*
 * events.c: the event log and live events: persisted rows in the caller's transaction,
 * envelopes published to Redis after COMMIT. Owns the per-process pending queue (malloc'd).
 */
#include "common/events.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "common/db.h"
#include "common/jsonx.h"
#include "common/kv.h"
#include "common/log.h"

static void enqueue(const char *envelope);
static void publish(const char *envelope);

/* Envelopes of the open transaction, published at COMMIT; grows for big cascades. */
static char **pending;
static size_t npending, cap_pending;

int
events_record(struct arena *a, const char *type, const char *workspace_id,
    struct json_object *payload)
{
	const char *params[3];
	size_t len;
	char *env;

	params[0] = type;
	params[1] = workspace_id;
	params[2] = payload ? jsonx_dump(payload, &len) : "{}";
	/* clock_timestamp(), not now(): rows sort in the order they were written, not by when
	 * their transactions started (which may have waited on a row lock). */
	if (db_exec(a, "INSERT INTO structure_events (event_type, workspace_id, payload, created_at) "
	    "VALUES ($1, $2, $3::jsonb, clock_timestamp())", 3, params) == NULL)
		return -1;
	env = events_envelope(a, type, workspace_id, payload);
	if (env != NULL)
		enqueue(env);
	return 0;
}

void
events_broadcast(struct arena *a, const char *type, const char *workspace_id,
    struct json_object *payload)
{
	char *env = events_envelope(a, type, workspace_id, payload);

	if (env == NULL)
		return;
	if (db_in_transaction())
		enqueue(env);
	else
		publish(env);
}

char *
events_envelope(struct arena *a, const char *type, const char *workspace_id,
    struct json_object *payload)
{
	struct json_object *env = json_object_new_object();
	struct timeval tv;
	struct tm tm;
	char ts[48], base[32];
	size_t len;
	char *out;

	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(ts, sizeof(ts), "%s.%06ldZ", base, (long)tv.tv_usec);
	json_object_object_add(env, "event", json_object_new_string(type));
	json_object_object_add(env, "workspace_id", workspace_id ? json_object_new_string(workspace_id) : NULL);
	json_object_object_add(env, "timestamp", json_object_new_string(ts));
	json_object_object_add(env, "payload", payload ? json_object_get(payload) : json_object_new_object());
	out = arena_strdup(a, jsonx_dump(env, &len));
	json_object_put(env);
	return out;
}

void
events_flush(void)
{
	size_t i;

	for (i = 0; i < npending; i++) {
		publish(pending[i]);
		free(pending[i]);
	}
	npending = 0;
}

void
events_discard(void)
{
	while (npending > 0)
		free(pending[--npending]);
}

static void
enqueue(const char *envelope)
{
	char *copy, **grown;

	if (npending == cap_pending) {
		grown = realloc(pending, (cap_pending ? cap_pending * 2 : 64) * sizeof(*pending));
		if (grown == NULL) {
			log_warn("events: out of memory queueing a live event; it stays in structure_events");
			return;
		}
		pending = grown;
		cap_pending = cap_pending ? cap_pending * 2 : 64;
	}
	copy = strdup(envelope);
	if (copy != NULL)
		pending[npending++] = copy;
}

/* Live delivery is best effort: the event is already durable in structure_events. */
static void
publish(const char *envelope)
{
	redisReply *r = kv_command(NULL, "PUBLISH %s %s", EVENTS_CHANNEL, envelope);

	if (r == NULL)
		log_warn("events: publish failed; the event stays in structure_events");
	freeReplyObject(r);
}
