/*
 * scheduler.c: the cron worker: every tick claims due schedules and queues their fires in a2a_queue.
 * Owns its per-batch arena; schedules and fires live in PostgreSQL (claimed FOR UPDATE SKIP LOCKED).
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "common/arena.h"
#include "common/conf.h"
#include "common/cron.h"
#include "common/db.h"
#include "common/events.h"
#include "common/jsonx.h"
#include "common/kv.h"
#include "common/liveness.h"
#include "common/log.h"
#include "common/proc.h"
#include "common/sig.h"
#include "common/util.h"

#define NAME "scheduler"
#define ARENA_CAP (64 * 1024 * 1024)
/* A database outage: the next tick retries; complain at most this often. */
#define COMPLAIN_EVERY_MS 10000
/* Per claimed row in the array parameters: a UUID and two 20-digit numbers with commas. */
#define ROW_TEXT 64
/* A row that could not even be disabled is retried this much later, so it blocks nothing. */
#define RETRY_BROKEN_S 3600

struct sched {
	struct conf conf;
	const char *conf_path;
	int restarts;
	int once;			/* -1: one tick, then exit (bench) */
	struct arena arena;
	int64_t next_tick_ms;
	int64_t next_beat_ms;
	int64_t last_complaint_ms;
	unsigned long fired, ticks;
};

static void setup(struct sched *s, int argc, char **argv);
static void run(struct sched *s, const sigset_t *none);
static void beat(struct sched *s, int64_t now);
static int tick(struct sched *s);
static int batch(struct sched *s, long *claimed, long *fired);
static int disable(struct sched *s, const char *id, const char *ws, const char *name, const char *why);
static void usage(void);

static const int sch_signals[] = { SIGTERM, SIGINT };
static const int sch_ignored[] = { SIGHUP };

/*
 * Due rows of live workspaces, oldest due first. now is floored: rounded, 12:00:59.6 would be
 * 12:01:00 and cron_next(after = now) would skip the 12:01 fire. SKIP LOCKED leaves rows another scheduler is
 * firing to it; a row it committed meanwhile is re-checked against the WHERE and is no longer due.
 */
static const char claim_sql[] =
    "SELECT s.id, s.workspace_id, s.name, s.cron_expr, s.timezone, "
    "  extract(epoch FROM s.next_run_at)::bigint, w.status::text, floor(extract(epoch FROM now()))::bigint "
    "FROM workspace_schedules s JOIN workspaces w ON w.id = s.workspace_id "
    "WHERE s.enabled AND (s.next_run_at IS NULL OR s.next_run_at <= now()) "
    "ORDER BY s.next_run_at NULLS FIRST LIMIT $1::int FOR UPDATE OF s SKIP LOCKED";

/*
 * One statement per batch: advance every claimed row, and queue a message/send for each one
 * that fires (fire > 0). The messageId "cron-<schedule>-<fire epoch>" is the same on every
 * delivery attempt of that fire, so agents can deduplicate.
 */
static const char advance_sql[] =
    "WITH v AS (SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::bigint[]) AS v(id, nxt, fire)), "
    "u AS (UPDATE workspace_schedules s SET next_run_at = to_timestamp(v.nxt), "
    "  last_fire_at = CASE WHEN v.fire > 0 THEN to_timestamp(v.fire) ELSE s.last_fire_at END "
    "  FROM v WHERE s.id = v.id RETURNING s.id, s.workspace_id, s.prompt, v.fire) "
    "INSERT INTO a2a_queue (workspace_id, kind, ref_id, message_id, body) "
    "SELECT u.workspace_id, 'cron', u.id, m.mid, jsonb_build_object('jsonrpc', '2.0', 'id', m.mid, "
    "  'method', 'message/send', 'params', jsonb_build_object('message', jsonb_build_object("
    "  'role', 'user', 'messageId', m.mid, 'parts', jsonb_build_array(jsonb_build_object("
    "  'kind', 'text', 'text', u.prompt))))) "
    "FROM u CROSS JOIN LATERAL (SELECT 'cron-' || u.id || '-' || u.fire AS mid) m WHERE u.fire > 0";

int
main(int argc, char **argv)
{
	struct sched s;
	sigset_t blocked, none;

	memset(&s, 0, sizeof(s));
	log_set_name(NAME);
	setup(&s, argc, argv);
	sig_setup(sch_signals, NELEM(sch_signals), sch_ignored, NELEM(sch_ignored), &blocked);
	sigemptyset(&none);
	if (s.once) {
		int64_t t0;
		int rc;

		/* Connections first: the bench times the tick, not the connects. */
		(void)db_conn();
		liveness_beat(NAME, getpid(), s.restarts);
		t0 = now_mono_us();
		rc = tick(&s);

		/* The bench reads this line: the tick alone, without start-up and connect. */
		log_warn("one tick: %lu fires queued in %.1f ms", s.fired, (double)(now_mono_us() - t0) / 1000.0);
		arena_cleanup(&s.arena);
		db_close();
		kv_close();
		cron_tz_cache_clear();
		conf_free(&s.conf);
		return rc < 0 ? 1 : 0;
	}
	log_info("ticking every %lld ms, %lld schedules per batch", (long long)s.conf.scheduler_tick_ms,
	    (long long)s.conf.scheduler_batch);
	run(&s, &none);
	log_info("stopped after %lu ticks, %lu fires queued", s.ticks, s.fired);
	arena_cleanup(&s.arena);
	db_close();
	kv_close();
	cron_tz_cache_clear();
	conf_free(&s.conf);
	return 0;
}

/* Configuration and connections' targets; a bad config exits 2 (the supervisor does not respawn). */
static void
setup(struct sched *s, int argc, char **argv)
{
	char err[512];
	const char *rs;
	int opt;

	while ((opt = getopt(argc, argv, "c:1h")) != -1) {
		switch (opt) {
		case 'c': s->conf_path = optarg; break;
		case '1': s->once = 1; break;
		default: usage();
		}
	}
	if (conf_load(&s->conf, s->conf_path, err, sizeof(err)) < 0)
		fatal("configuration: %s", err);
	conf_apply_logging(&s->conf);
	if (kv_configure(&s->conf) < 0)
		fatal("configuration: invalid redis_url");
	db_configure(&s->conf);
	rs = getenv("MOLECULE_RESTARTS");
	s->restarts = rs ? atoi(rs) : 0;
	arena_init(&s->arena, ARENA_CAP);
}

/*
 * Ticks on CLOCK_MONOTONIC: a wall-clock jump neither skips nor repeats a tick (due rows are
 * found by next_run_at <= now() anyway). A tick longer than the period starts the next at once.
 */
static void
run(struct sched *s, const sigset_t *none)
{
	struct timespec ts;
	int64_t now, wake;

	while (!sig_term) {
		now = now_mono_ms();
		if (now >= s->next_tick_ms) {
			s->next_tick_ms = now + s->conf.scheduler_tick_ms;
			if (tick(s) < 0 && now - s->last_complaint_ms >= COMPLAIN_EVERY_MS) {
				log_warn("tick failed; retrying next tick");
				s->last_complaint_ms = now;
			}
			s->ticks++;
			now = now_mono_ms();
		}
		beat(s, now);
		wake = s->next_tick_ms < s->next_beat_ms ? s->next_tick_ms : s->next_beat_ms;
		wake = wake > now ? wake - now : 0;
		ts.tv_sec = (time_t)(wake / 1000);
		ts.tv_nsec = (long)(wake % 1000) * 1000000L;
		ppoll(NULL, 0, &ts, none);
	}
}

/* Every tick and at least every heartbeat_interval, so a long tick period still looks alive. */
static void
beat(struct sched *s, int64_t now)
{
	if (now < s->next_beat_ms && s->ticks > 0)
		return;
	liveness_beat(NAME, getpid(), s->restarts);
	s->next_beat_ms = now + s->conf.heartbeat_interval_s * 1000;
}

/* Batches until one comes back short (nothing more is due). Returns 0 or -1 (database trouble). */
static int
tick(struct sched *s)
{
	long claimed, fired;

	liveness_beat(NAME, getpid(), s->restarts);
	s->next_beat_ms = now_mono_ms() + s->conf.heartbeat_interval_s * 1000;
	do {
		claimed = fired = 0;
		if (batch(s, &claimed, &fired) < 0)
			return -1;
		s->fired += (unsigned long)fired;
		if (fired > 0)
			log_info("queued %ld fires (%ld schedules claimed)", fired, claimed);
	} while (claimed >= s->conf.scheduler_batch && !sig_term);
	return 0;
}

/*
 * One transaction: claim, compute every next fire in C, advance and queue in one statement,
 * disable rows whose expression or timezone no longer parses (each under a savepoint; one that
 * cannot be disabled is only pushed back an hour). A crash anywhere before COMMIT
 * leaves every row due as it was; after it, every fire is queued exactly once.
 */
static int
batch(struct sched *s, long *claimed, long *fired)
{
	const char *params[3], *id, *ws, *status;
	char lim[24], err[320], *ids = NULL, *nexts = NULL, *fires = NULL;
	size_t ilen = 0, nlen = 0, flen = 0, cap;
	int64_t now, due, next;
	long n, i, kept = 0;
	PGresult *res;
	int rc = -1, fire;

	arena_reset(&s->arena);
	snprintf(lim, sizeof(lim), "%lld", (long long)s->conf.scheduler_batch);
	params[0] = lim;
	if (db_begin(&s->arena) < 0)
		return -1;
	res = db_exec(&s->arena, claim_sql, 1, params);
	if (res == NULL)
		goto out;
	n = PQntuples(res);
	*claimed = n;
	if (n == 0) {
		rc = db_commit(&s->arena);
		return rc;
	}
	cap = (size_t)n * ROW_TEXT + 4;
	ids = arena_alloc(&s->arena, cap);
	nexts = arena_alloc(&s->arena, cap);
	fires = arena_alloc(&s->arena, cap);
	if (ids == NULL || nexts == NULL || fires == NULL)
		goto out;
	for (i = 0; i < n; i++) {
		id = db_value(res, (int)i, 0);
		ws = db_value(res, (int)i, 1);
		status = db_value(res, (int)i, 6);
		now = strtoll(db_value(res, (int)i, 7), NULL, 10);
		due = db_value(res, (int)i, 5) ? strtoll(db_value(res, (int)i, 5), NULL, 10) : 0;
		/* Missed fires while nobody ticked collapse into one; the next is after now. */
		if (cron_next_str(db_value(res, (int)i, 3), db_value(res, (int)i, 4), now, &next,
		    err, sizeof(err)) < 0) {
			/*
			 * Disabled under a savepoint: if even that fails, only this row's work is undone
			 * and the row is pushed back (below), so it cannot roll back its neighbours on
			 * every tick.
			 */
			if (db_exec(&s->arena, "SAVEPOINT broken_row", 0, NULL) == NULL)
				goto out;
			if (disable(s, id, ws, db_value(res, (int)i, 2), err) == 0) {
				if (db_exec(&s->arena, "RELEASE SAVEPOINT broken_row", 0, NULL) == NULL)
					goto out;
				continue;
			}
			if (db_exec(&s->arena, "ROLLBACK TO SAVEPOINT broken_row", 0, NULL) == NULL)
				goto out;
			log_warn("schedule %s could not be disabled; retrying in %d s", id, RETRY_BROKEN_S);
			next = now + RETRY_BROKEN_S;
			due = 0;
		}
		/* A NULL next_run_at (imported row) only gets one; removed/paused workspaces skip. */
		fire = due > 0 && strcmp(status, "removed") != 0 && strcmp(status, "paused") != 0;
		ilen += (size_t)snprintf(ids + ilen, cap - ilen, "%s%s", kept ? "," : "{", id);
		nlen += (size_t)snprintf(nexts + nlen, cap - nlen, "%s%lld", kept ? "," : "{", (long long)next);
		flen += (size_t)snprintf(fires + flen, cap - flen, "%s%lld", kept ? "," : "{",
		    fire ? (long long)due : 0LL);
		kept++;
		*fired += fire;
	}
	if (kept > 0) {
		snprintf(ids + ilen, cap - ilen, "}");
		snprintf(nexts + nlen, cap - nlen, "}");
		snprintf(fires + flen, cap - flen, "}");
		params[0] = ids;
		params[1] = nexts;
		params[2] = fires;
		if (db_exec(&s->arena, advance_sql, 3, params) == NULL)
			goto out;
	}
	if (db_commit(&s->arena) < 0)
		goto out;
	return 0;
out:
	db_rollback();
	*fired = 0;
	return rc;
}

/* A row that cannot be computed any more: disabled with its reason, CRON_SKIPPED, the rest go on. */
static int
disable(struct sched *s, const char *id, const char *ws, const char *name, const char *why)
{
	struct json_object *payload;
	const char *params[2] = { id, why };

	log_warn("schedule %s disabled: %s", id, why);
	if (db_exec(&s->arena, "UPDATE workspace_schedules SET enabled = false, last_status = 'error', "
	    "last_error = $2, updated_at = now() WHERE id = $1::uuid", 2, params) == NULL)
		return -1;
	payload = jsonx_own(&s->arena, json_object_new_object());
	json_object_object_add(payload, "schedule_id", json_object_new_string(id));
	json_object_object_add(payload, "schedule_name", json_object_new_string(name));
	json_object_object_add(payload, "reason", json_object_new_string(why));
	return events_record(&s->arena, "CRON_SKIPPED", ws, payload);
}

static void
usage(void)
{
	fprintf(stderr, "usage: molecule-scheduler [-c config] [-1]\n");
	exit(PROC_EXIT_FATAL);
}
