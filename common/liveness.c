/*
 * liveness.c: heartbeats of every process, shared through one Redis hash (ADR 002).
 * Owns no state: the hash field is the process name, the value "pid last_tick restarts".
 */
#include "common/liveness.h"

#include <stdio.h>
#include <string.h>

#include "common/jsonx.h"
#include "common/kv.h"
#include "common/util.h"

int
liveness_beat(const char *name, pid_t pid, int restarts)
{
	char val[64];
	redisReply *r;

	snprintf(val, sizeof(val), "%d %lld %d", (int)pid, (long long)time(NULL), restarts);
	r = kv_command(NULL, "HSET %s %s %s", LIVENESS_KEY, name, val);
	if (r == NULL)
		return -1;
	freeReplyObject(r);
	return 0;
}

int
liveness_reset(void)
{
	redisReply *r = kv_command(NULL, "DEL %s", LIVENESS_KEY);

	if (r == NULL)
		return -1;
	freeReplyObject(r);
	return 0;
}

int
liveness_parse(const char *name, const char *val, struct liveness_entry *e)
{
	int pid, restarts;
	long long tick;
	char extra;

	if (sscanf(val, "%d %lld %d%c", &pid, &tick, &restarts, &extra) != 3 ||
	    pid <= 0 || tick < 0 || restarts < 0)
		return -1;
	snprintf(e->name, sizeof(e->name), "%s", name);
	e->pid = pid;
	e->last_tick = (time_t)tick;
	e->restarts = restarts;
	return 0;
}

struct json_object *
liveness_snapshot(struct arena *a, time_t now)
{
	struct json_object *root, *subs, *one;
	struct liveness_entry e;
	redisReply *r;
	char ts[32];
	size_t i;

	r = kv_command(a, "HGETALL %s", LIVENESS_KEY);
	if (r == NULL || r->type != REDIS_REPLY_ARRAY)
		return NULL;
	root = jsonx_own(a, json_object_new_object());
	subs = json_object_new_object();
	json_object_object_add(root, "subsystems", subs);
	for (i = 0; i + 1 < r->elements; i += 2) {
		if (liveness_parse(r->element[i]->str, r->element[i + 1]->str, &e) < 0)
			continue;
		rfc3339(e.last_tick, ts, sizeof(ts));
		one = json_object_new_object();
		json_object_object_add(one, "last_tick_at", json_object_new_string(ts));
		json_object_object_add(one, "seconds_ago",
		    json_object_new_int64(now > e.last_tick ? (int64_t)(now - e.last_tick) : 0));
		json_object_object_add(one, "pid", json_object_new_int(e.pid));
		json_object_object_add(one, "restarts", json_object_new_int(e.restarts));
		json_object_object_add(subs, e.name, one);
	}
	return root;
}
