/*
 * liveness.h: heartbeats of every process, shared through one Redis hash (ADR 002).
 * Owns no state; each process beats its own field, GET /admin/liveness reads them all.
 */
#ifndef MOLECULE_LIVENESS_H
#define MOLECULE_LIVENESS_H

#include <json-c/json.h>
#include <sys/types.h>
#include <time.h>

#include "common/arena.h"

#define LIVENESS_KEY "molecule:liveness"

struct liveness_entry {
	char name[48];
	pid_t pid;
	time_t last_tick;
	int restarts;
};

/* Records "name is alive now" with its pid and restart count. Returns 0 or -1 (Redis down). */
int liveness_beat(const char *name, pid_t pid, int restarts);
/* Forgets every entry: the supervisor does this once at start, its children beat again. */
int liveness_reset(void);
/* Parses one stored value; returns -1 if malformed. */
int liveness_parse(const char *name, const char *val, struct liveness_entry *e);
/*
 * Builds {"subsystems":{name:{"last_tick_at","seconds_ago","pid","restarts"}}} as of now.
 * Returns NULL when Redis cannot be read. The object is owned by the arena.
 */
struct json_object *liveness_snapshot(struct arena *a, time_t now);

#endif
