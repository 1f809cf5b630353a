/*
 * sweeper.c: notices dead workspaces: liveness key expiry, container health, provision timeouts, orphans.
 * Owns its subscribed redisContext, the engine client and the per-pass arena; jobs go to PostgreSQL.
 */
#include <sys/time.h>

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <json-c/json.h>

#include "common/arena.h"
#include "common/conf.h"
#include "common/db.h"
#include "common/engine.h"
#include "common/events.h"
#include "common/jsonx.h"
#include "common/kv.h"
#include "common/liveness.h"
#include "common/log.h"
#include "common/proc.h"
#include "common/sig.h"
#include "common/sweep.h"
#include "common/util.h"

#define NAME "sweeper"
#define RECONNECT_MIN_MS 100
#define RECONNECT_MAX_MS 5000
#define COMPLAIN_EVERY_MS 10000
/*
 * The Redis generation: fcgi/h_registry.c writes it too (SET NX) and forgets its skip cache
 * when it changes. A changed or missing value means Redis was wiped: every liveness key is gone
 * and no expiry will ever fire for them, so the sweeper catches up from PostgreSQL.
 */
#define EPOCH_KEY "molecule:liveness:epoch"
#define EPOCH_CHECK_MS 1000
/* Online rows without a heartbeat for a whole TTL and without a key: lost notifications. */
#define STALE_PASS_MS 30000
/* A PostgreSQL outage: try again after this long instead of logging a connect error per tick. */
#define DB_RETRY_MS 2000
/* Every engine call of a pass, and the pass itself, are bounded (reference: 30 s per cycle). */
#define ENGINE_CALL_TIMEOUT_MS 10000
#define PASS_DEADLINE_MS 30000
#define TIMEOUT_BATCH "100"
#define ARENA_CAP (16 * 1024 * 1024)
#define COMPLAINT_SLOTS 16

enum part { PART_EXPIRY, PART_HEALTH, PART_TIMEOUT, PART_ORPHANS, NPARTS };

static const char *const part_names[NPARTS] = {
	"sweeper.expiry", "sweeper.health", "sweeper.timeout", "sweeper.orphans",
};

/* What the health sweep may do with a workspace it found without a running container. */
enum offline_from { FROM_LIVE, FROM_LIVE_OR_OFFLINE };

struct swp {
	struct conf conf;
	const char *conf_path;
	int restarts;
	redisContext *sub;		/* subscribed: no other command may run on it */
	char channel[64];
	int64_t next_connect_ms;
	int64_t reconnect_ms;
	int need_catchup;
	char epoch[64];
	int64_t next_epoch_ms;
	int64_t next_stale_ms;
	int64_t next_catchup_ms;
	int64_t next_beat_ms;
	int64_t db_retry_ms;
	int64_t next_run_ms[NPARTS];
	int part_ok[NPARTS];
	struct engine eng;
	int have_engine;
	struct arena arena;		/* a pass's queries */
	struct arena tx;		/* one workspace's transaction inside a pass */
	struct {
		const char *fmt;
		int64_t at_ms;
	} complaints[COMPLAINT_SLOTS];	/* rate limit per message kind */
	unsigned long offlined, queued, failed, reaped;
};

/* Collected by the orphan pass's engine walk. */
struct orphan_list {
	struct arena *a;
	char **names;
	char **prefixes;
	size_t n, cap;
};

static void setup(struct swp *b, int argc, char **argv);
static void run(struct swp *b, const sigset_t *none);
static void tick(struct swp *b, int64_t now);
static int64_t next_wake(const struct swp *b);
static void beat(struct swp *b, int64_t now);
static int subscribe(struct swp *b);
static void enable_notifications(struct swp *b, redisContext *c);
static void drop_subscriber(struct swp *b, const char *why);
static int drain_replies(struct swp *b);
static void on_expired(void *arg, const char *key, size_t len);
static void check_epoch(struct swp *b);
static int db_ready(struct swp *b);
static void db_failed(struct swp *b);
static int catch_up(struct swp *b);
static int take_offline(struct swp *b, const char *id, const char *why, enum offline_from from,
    int clear_keys);
static int queue_restart(struct swp *b, struct arena *a, const char *id, const char *why);
static int health_pass(struct swp *b);
static int timeout_pass(struct swp *b);
static int orphan_pass(struct swp *b);
static PGresult *dead_prefixes(struct swp *b, const struct orphan_list *cons,
    const struct orphan_list *vols);
static void remove_orphans(struct swp *b, PGresult *dead, const struct orphan_list *cons,
    const struct orphan_list *vols);
static int collect_orphan(void *arg, const char *id, const char *name, struct json_object *labels);
static int collect_orphan_volume(void *arg, const char *id, const char *name,
    struct json_object *labels);
static int orphan_add(struct orphan_list *ol, const char *name, const char *prefix);
static int64_t timeout_every_ms(const struct conf *c);
static void complain(struct swp *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void usage(void);

static const int swp_signals[] = { SIGTERM, SIGINT };
static const int swp_ignored[] = { SIGHUP };

int
main(int argc, char **argv)
{
	struct swp *b = xcalloc(1, sizeof(*b));
	sigset_t blocked, none;

	log_set_name(NAME);
	setup(b, argc, argv);
	sig_setup(swp_signals, NELEM(swp_signals), swp_ignored, NELEM(swp_ignored), &blocked);
	sigemptyset(&none);
	log_info("sweeping: health every %llds, orphans every %llds, provision timeout %llds, "
	    "at most %lld auto-restarts per workspace per hour",
	    (long long)b->conf.health_sweep_interval_s, (long long)b->conf.orphan_sweep_interval_s,
	    (long long)b->conf.provision_timeout_s, (long long)b->conf.auto_restart_per_hour);
	run(b, &none);
	log_info("stopped: %lu offline, %lu restarts queued, %lu provision timeouts, %lu orphans removed",
	    b->offlined, b->queued, b->failed, b->reaped);
	if (b->sub != NULL)
		redisFree(b->sub);
	engine_cleanup(&b->eng);
	arena_cleanup(&b->arena);
	arena_cleanup(&b->tx);
	db_close();
	kv_close();
	conf_free(&b->conf);
	free(b);
	return 0;
}

/* Configuration, Redis target, engine client; a bad config exits 2. */
static void
setup(struct swp *b, int argc, char **argv)
{
	char err[512];
	const char *rs;
	int opt, i;

	while ((opt = getopt(argc, argv, "c:h")) != -1) {
		switch (opt) {
		case 'c': b->conf_path = optarg; break;
		default: usage();
		}
	}
	if (conf_load(&b->conf, b->conf_path, err, sizeof(err)) < 0)
		fatal("configuration: %s", err);
	conf_apply_logging(&b->conf);
	if (kv_configure(&b->conf) < 0)
		fatal("configuration: invalid redis_url");
	db_configure(&b->conf);
	snprintf(b->channel, sizeof(b->channel), "__keyevent@%d__:expired", kv_db());
	rs = getenv("MOLECULE_RESTARTS");
	b->restarts = rs ? atoi(rs) : 0;
	arena_init(&b->arena, ARENA_CAP);
	arena_init(&b->tx, ARENA_CAP);
	b->reconnect_ms = RECONNECT_MIN_MS;
	/* Without an engine the expiry and timeout parts still work; the others say why they idle. */
	if (engine_init(&b->eng, b->conf.docker_host, b->conf.docker_cert_path, err, sizeof(err)) < 0)
		log_err("container engine unusable, health and orphan sweeps disabled: %s", err);
	else
		b->have_engine = 1;
	b->eng.timeout_ms = ENGINE_CALL_TIMEOUT_MS;
	for (i = 0; i < NPARTS; i++)
		b->part_ok[i] = 1;
}

/*
 * The loop: one tick of due work, then wait for the subscriber socket until the next thing is
 * due. Expiry messages that arrive during a long pass wait in the socket buffer.
 */
static void
run(struct swp *b, const sigset_t *none)
{
	struct pollfd pfd;
	struct timespec ts;
	int64_t now, wake;
	int n;

	while (!sig_term) {
		now = now_mono_ms();
		tick(b, now);
		if (sig_term)
			break;
		now = now_mono_ms();
		wake = next_wake(b);
		wake = wake > now ? wake - now : 0;
		ts.tv_sec = (time_t)(wake / 1000);
		ts.tv_nsec = (long)(wake % 1000) * 1000000L;
		if (b->sub == NULL) {
			ppoll(NULL, 0, &ts, none);
			continue;
		}
		pfd.fd = b->sub->fd;
		pfd.events = POLLIN;
		pfd.revents = 0;
		n = ppoll(&pfd, 1, &ts, none);
		if (n < 0 && errno != EINTR) {
			drop_subscriber(b, strerror(errno));
			continue;
		}
		if (n > 0 && (redisBufferRead(b->sub) != REDIS_OK || drain_replies(b) < 0))
			drop_subscriber(b, b->sub->errstr[0] ? b->sub->errstr : "connection closed");
	}
}

/* Everything that is due now, cheapest first; each pass resets the arena behind itself. */
static void
tick(struct swp *b, int64_t now)
{
	if (b->sub == NULL && now >= b->next_connect_ms && subscribe(b) < 0) {
		b->next_connect_ms = now + b->reconnect_ms;
		b->reconnect_ms = b->reconnect_ms * 2 > RECONNECT_MAX_MS ?
		    RECONNECT_MAX_MS : b->reconnect_ms * 2;
	}
	if (now >= b->next_epoch_ms) {
		b->next_epoch_ms = now + EPOCH_CHECK_MS;
		check_epoch(b);
	}
	/* The catch-up after a (re)subscription or a wipe is the stale pass, run early. */
	if (((b->need_catchup && now >= b->next_catchup_ms) || now >= b->next_stale_ms) && db_ready(b)) {
		b->part_ok[PART_EXPIRY] = catch_up(b) == 0;
		if (b->part_ok[PART_EXPIRY]) {
			b->need_catchup = 0;
			b->next_stale_ms = now + STALE_PASS_MS;
		} else {
			b->next_catchup_ms = now + DB_RETRY_MS;
			b->next_stale_ms = now + DB_RETRY_MS;
		}
	}
	/* Scheduled before the pass: a full batch sets 0 (drain the rest next tick), which must win. */
	if (now >= b->next_run_ms[PART_TIMEOUT]) {
		b->next_run_ms[PART_TIMEOUT] = now + timeout_every_ms(&b->conf);
		b->part_ok[PART_TIMEOUT] = db_ready(b) && timeout_pass(b) == 0;
	}
	if (now >= b->next_run_ms[PART_HEALTH]) {
		b->part_ok[PART_HEALTH] = db_ready(b) && health_pass(b) == 0;
		b->next_run_ms[PART_HEALTH] = now_mono_ms() + b->conf.health_sweep_interval_s * 1000;
	}
	if (now >= b->next_run_ms[PART_ORPHANS]) {
		b->part_ok[PART_ORPHANS] = db_ready(b) && orphan_pass(b) == 0;
		b->next_run_ms[PART_ORPHANS] = now_mono_ms() + b->conf.orphan_sweep_interval_s * 1000;
	}
	beat(b, now_mono_ms());
}

static int64_t
next_wake(const struct swp *b)
{
	int64_t wake = b->next_beat_ms, db_work = b->next_stale_ms;
	int i;

	if (b->need_catchup && b->next_catchup_ms < db_work)
		db_work = b->next_catchup_ms;
	/* Not before PostgreSQL's retry pause ends: no spinning while it is down. */
	if (db_work < b->db_retry_ms)
		db_work = b->db_retry_ms;
	if (db_work < wake)
		wake = db_work;
	if (b->next_epoch_ms < wake)
		wake = b->next_epoch_ms;
	if (b->sub == NULL && b->next_connect_ms < wake)
		wake = b->next_connect_ms;
	for (i = PART_HEALTH; i < NPARTS; i++) {
		if (b->next_run_ms[i] < wake)
			wake = b->next_run_ms[i];
	}
	return wake;
}

/*
 * "sweeper" every heartbeat_interval while the loop turns; each part only while it works
 * (expiry: subscribed; the others: their last pass reached PostgreSQL), so a stuck or
 * blind part shows a growing seconds_ago in /admin/liveness.
 */
static void
beat(struct swp *b, int64_t now)
{
	int i;

	if (now < b->next_beat_ms)
		return;
	b->next_beat_ms = now + b->conf.heartbeat_interval_s * 1000;
	if (liveness_beat(NAME, getpid(), b->restarts) < 0)
		return;
	for (i = 0; i < NPARTS; i++) {
		if (i == PART_EXPIRY ? (b->sub != NULL && b->part_ok[i]) : b->part_ok[i])
			liveness_beat(part_names[i], getpid(), b->restarts);
	}
}

/*
 * Own context (a subscribed one cannot run commands): AUTH, the notification flags, SUBSCRIBE.
 * Every (re)subscription is followed by a catch-up: expiries while we were away are lost.
 * Returns 0, or -1 with the context closed.
 */
static int
subscribe(struct swp *b)
{
	char err[256];
	redisContext *c = kv_open(err, sizeof(err));

	if (c == NULL) {
		complain(b, "%s", err);
		return -1;
	}
	enable_notifications(b, c);
	if (c->err) {
		complain(b, "redis config failed: %s", c->errstr);
		redisFree(c);
		return -1;
	}
	if (kv_subscribe(c, b->channel, err, sizeof(err)) < 0) {
		complain(b, "%s", err);
		redisFree(c);
		return -1;
	}
	b->sub = c;
	b->reconnect_ms = RECONNECT_MIN_MS;
	b->need_catchup = 1;
	b->next_catchup_ms = 0;
	log_info("subscribed to %s", b->channel);
	if (drain_replies(b) < 0) {
		drop_subscriber(b, c->errstr[0] ? c->errstr : "protocol error");
		return -1;
	}
	return 0;
}

/*
 * Expiry events need E and x in notify-keyspace-events; merged into what is set, so other
 * users of the same Redis keep theirs. A Redis that refuses CONFIG (managed services) must
 * be configured by its operator: warned, not fatal.
 */
static void
enable_notifications(struct swp *b, redisContext *c)
{
	redisReply *r;
	char flags[64];
	const char *cur = "";

	r = redisCommand(c, "CONFIG GET notify-keyspace-events");
	if (r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
	    r->element[1]->type == REDIS_REPLY_STRING)
		cur = r->element[1]->str;
	else if (r != NULL) {
		complain(b, "redis refused CONFIG GET notify-keyspace-events; set it to include Ex");
		freeReplyObject(r);
		return;
	}
	if (r == NULL)
		return;
	if (sweep_notify_flags(cur, flags, sizeof(flags)) == 1) {
		freeReplyObject(r);
		r = redisCommand(c, "CONFIG SET notify-keyspace-events %s", flags);
		if (r != NULL && r->type == REDIS_REPLY_ERROR)
			complain(b, "redis refused CONFIG SET notify-keyspace-events %s: %s", flags, r->str);
		else if (r != NULL)
			log_info("redis notify-keyspace-events set to %s", flags);
	}
	freeReplyObject(r);
}

/* hiredis 0.14: a context with an error is never reused; the loop reconnects with backoff. */
static void
drop_subscriber(struct swp *b, const char *why)
{
	log_warn("lost the redis subscription: %s; reconnecting", why);
	redisFree(b->sub);
	b->sub = NULL;
	b->reconnect_ms = RECONNECT_MIN_MS;
	b->next_connect_ms = now_mono_ms() + b->reconnect_ms;
}

/* Every complete reply already buffered. Returns 0 or -1 (protocol error). */
static int
drain_replies(struct swp *b)
{
	return kv_drain_messages(b->sub, on_expired, b);
}

/* An expired key "ws:<id>": that workspace's liveness TTL ran out. */
static void
on_expired(void *arg, const char *key, size_t len)
{
	struct swp *b = arg;
	char id[40];

	UNUSED(len);
	if (sweep_liveness_id(key, id, sizeof(id)) < 0)
		return;
	/* Lost while PostgreSQL is down: the stale pass finds the row once it is back. */
	if (!db_ready(b))
		return;
	take_offline(b, id, "liveness_expired", FROM_LIVE, 0);
}

/* A wiped Redis (FLUSHALL, restart with no persistence) changes or drops the epoch value. */
static void
check_epoch(struct swp *b)
{
	redisReply *r;
	char fresh[64];

	r = kv_command(NULL, "GET %s", EPOCH_KEY);
	if (r == NULL)
		return;
	if (r->type == REDIS_REPLY_STRING) {
		if (b->epoch[0] != '\0' && strcmp(r->str, b->epoch) != 0) {
			log_warn("redis was wiped (liveness epoch changed): catching up from the database");
			b->need_catchup = 1;
			b->next_catchup_ms = 0;
		}
		snprintf(b->epoch, sizeof(b->epoch), "%s", r->str);
		freeReplyObject(r);
		return;
	}
	freeReplyObject(r);
	if (b->epoch[0] != '\0') {
		log_warn("redis was wiped (liveness epoch gone): catching up from the database");
		b->need_catchup = 1;
		b->next_catchup_ms = 0;
	}
	/* Ours or a racing API worker's: whichever won is read back on the next check. */
	snprintf(fresh, sizeof(fresh), "sweeper-%d-%lld", (int)getpid(), (long long)now_wall_ms());
	freeReplyObject(kv_command(NULL, "SET %s %s NX", EPOCH_KEY, fresh));
	b->epoch[0] = '\0';
	b->next_epoch_ms = 0;
}

/* 0 while PostgreSQL is in its retry pause after a failure, 1 otherwise. */
static int
db_ready(struct swp *b)
{
	return now_mono_ms() >= b->db_retry_ms;
}

static void
db_failed(struct swp *b)
{
	if (db_in_transaction())
		db_rollback();
	if (db_unavailable())
		b->db_retry_ms = now_mono_ms() + DB_RETRY_MS;
}

/*
 * Online and degraded workspaces whose liveness key is gone without an expiry we saw (missed
 * while unsubscribed, PostgreSQL down, or Redis wiped) go offline, but only once their last sign
 * of life (heartbeat, else last update) is a whole TTL old: exactly when their key would have
 * expired. A wiped Redis therefore neither loses an offline transition nor restarts live agents,
 * whose next heartbeat SETs their key again (ADR 003). While a key exists it is the authority.
 * Returns 0, or -1 when PostgreSQL or Redis failed (retried).
 */
static int
catch_up(struct swp *b)
{
	char ttl[24];
	const char *params[1];
	PGresult *res;
	redisReply *r;
	int i, n, gone, rc = -1, offline = 0;

	snprintf(ttl, sizeof(ttl), "%lld", (long long)b->conf.liveness_ttl_s);
	params[0] = ttl;
	res = db_exec(&b->arena, "SELECT id::text FROM workspaces WHERE status IN ('online', "
	    "'degraded') AND COALESCE(last_heartbeat_at, updated_at, created_at) < "
	    "now() - make_interval(secs => $1::bigint) ORDER BY id", 1, params);
	if (res == NULL) {
		db_failed(b);
		goto out;
	}
	n = PQntuples(res);
	for (i = 0; i < n; i++) {
		const char *id = PQgetvalue(res, i, 0);

		r = kv_command(NULL, "EXISTS ws:%s", id);
		if (r == NULL)
			goto out;
		gone = r->type == REDIS_REPLY_INTEGER && r->integer == 0;
		freeReplyObject(r);
		if (gone && take_offline(b, id, "liveness_lost", FROM_LIVE, 0) == 1)
			offline++;
	}
	if (offline > 0)
		log_info("liveness catch-up: %d silent workspaces without a liveness key went offline", offline);
	rc = 0;
out:
	arena_reset(&b->arena);
	return rc;
}

/*
 * One workspace without a sign of life: online/degraded -> offline with WORKSPACE_OFFLINE,
 * then the auto-restart policy, all in one transaction under the row lock. FROM_LIVE_OR_OFFLINE
 * (container gone) also queues a restart for a row already offline. clear_keys drops the
 * liveness and URL cache keys after COMMIT (the container is gone: its URL is dead).
 * Returns 1 when something changed, 0 when the row did not qualify, -1 on a database error.
 */
static int
take_offline(struct swp *b, const char *id, const char *why, enum offline_from from, int clear_keys)
{
	const char *params[1] = { id };
	const char *status;
	PGresult *res;
	int flipped = 0, queued = 0, rc = -1;

	if (db_begin(&b->tx) < 0)
		goto fail;
	res = db_exec(&b->tx, "SELECT status::text FROM workspaces WHERE id = $1::uuid FOR UPDATE",
	    1, params);
	if (res == NULL)
		goto fail;
	status = PQntuples(res) == 1 ? PQgetvalue(res, 0, 0) : "";
	if (strcmp(status, "online") == 0 || strcmp(status, "degraded") == 0) {
		if (db_exec(&b->tx, "UPDATE workspaces SET status = 'offline', updated_at = now() "
		    "WHERE id = $1::uuid", 1, params) == NULL)
			goto fail;
		if (events_record(&b->tx, "WORKSPACE_OFFLINE", id, NULL) < 0)
			goto fail;
		flipped = 1;
	} else if (!(from == FROM_LIVE_OR_OFFLINE && strcmp(status, "offline") == 0)) {
		db_rollback();
		rc = 0;
		goto out;
	}
	queued = queue_restart(b, &b->tx, id, why);
	if (queued < 0)
		goto fail;
	if (db_commit(&b->tx) < 0)
		goto fail;
	if (clear_keys)
		kv_forget_workspace(id);
	b->offlined += (unsigned long)flipped;
	b->queued += (unsigned long)queued;
	if (flipped || queued)
		log_info("workspace %s %s (%s)%s", id, flipped ? "offline" : "still offline", why,
		    queued ? "; restart queued" : "");
	rc = flipped || queued;
	goto out;
fail:
	db_failed(b);
	complain(b, "could not take workspace %s offline: database error", id);
out:
	arena_reset(&b->tx);
	return rc;
}

/*
 * The auto-restart policy, inside the caller's transaction: only an offline, container-backed
 * workspace (never external, paused, hibernated or removed: they are not 'offline'), only when
 * no job of it is queued or running, and at most auto_restart_per_hour sweeper restarts per
 * workspace per rolling hour, counted from the jobs themselves so a sweeper restart forgets nothing.
 * Returns 1 queued, 0 not (policy), -1 on a database error.
 */
static int
queue_restart(struct swp *b, struct arena *a, const char *id, const char *why)
{
	struct json_object *payload;
	const char *params[3];
	char cap[24];
	size_t len;
	PGresult *res;

	if (b->conf.auto_restart_per_hour <= 0)
		return 0;
	payload = jsonx_own(a, json_object_new_object());
	if (payload == NULL)
		return -1;
	json_object_object_add(payload, "reason", json_object_new_string(why));
	json_object_object_add(payload, "source", json_object_new_string(NAME));
	snprintf(cap, sizeof(cap), "%lld", (long long)b->conf.auto_restart_per_hour);
	params[0] = id;
	params[1] = jsonx_dump(payload, &len);
	params[2] = cap;
	res = db_exec(a, "INSERT INTO provision_jobs (workspace_id, kind, payload) "
	    "SELECT w.id, 'restart', $2::jsonb FROM workspaces w WHERE w.id = $1::uuid "
	    "AND w.status = 'offline' AND w.runtime IS DISTINCT FROM 'external' "
	    "AND NOT EXISTS (SELECT 1 FROM provision_jobs j WHERE j.workspace_id = w.id "
	    "AND j.status IN ('queued', 'running')) "
	    "AND (SELECT count(*) FROM provision_jobs j WHERE j.workspace_id = w.id "
	    "AND j.kind = 'restart' AND j.payload->>'source' = 'sweeper' "
	    "AND j.created_at > now() - interval '1 hour') < $3::bigint "
	    "RETURNING id", 3, params);
	if (res == NULL)
		return -1;
	if (PQntuples(res) == 1)
		return 1;
	res = db_exec(a, "SELECT 1 FROM workspaces w WHERE w.id = $1::uuid "
	    "AND w.runtime IS DISTINCT FROM 'external' AND NOT EXISTS (SELECT 1 FROM provision_jobs j "
	    "WHERE j.workspace_id = w.id AND j.status IN ('queued', 'running'))", 1, params);
	if (res != NULL && PQntuples(res) == 1)
		log_warn("workspace %s not restarted: %lld automatic restarts in the last hour "
		    "(auto_restart_per_hour)", id, (long long)b->conf.auto_restart_per_hour);
	return 0;
}

/*
 * Every workspace that should have a container: gone or stopped -> offline + restart.
 * An engine error ends the pass without touching anything: a daemon hiccup must not
 * restart every workspace (reference IsRunning). Returns 0, or -1 when PostgreSQL failed.
 */
static int
health_pass(struct swp *b)
{
	int64_t deadline = now_mono_ms() + PASS_DEADLINE_MS;
	enum engine_state st;
	PGresult *res;
	char name[32];
	int i, n, rc = -1;

	res = db_exec(&b->arena, "SELECT id::text FROM workspaces WHERE status IN "
	    "('online', 'degraded', 'offline') AND runtime IS DISTINCT FROM 'external' ORDER BY id",
	    0, NULL);
	if (res == NULL) {
		db_failed(b);
		goto out;
	}
	n = PQntuples(res);
	rc = 0;
	if (n == 0)
		goto out;
	if (!b->have_engine) {
		complain(b, "health sweep skipped: no usable container engine");
		goto out;
	}
	for (i = 0; i < n && !sig_term; i++) {
		if (now_mono_ms() > deadline) {
			complain(b, "health sweep stopped at its %d s deadline (%d of %d checked)",
			    PASS_DEADLINE_MS / 1000, i, n);
			break;
		}
		snprintf(name, sizeof(name), "ws-%.*s", SWEEP_ID12, PQgetvalue(res, i, 0));
		if (engine_container_state(&b->eng, name, &st) < 0) {
			complain(b, "health sweep stopped: engine: %s", engine_error(&b->eng));
			break;
		}
		if (st == ENGINE_MISSING || st == ENGINE_STOPPED) {
			if (take_offline(b, PQgetvalue(res, i, 0), st == ENGINE_MISSING ? "container_missing" :
			    "container_stopped", FROM_LIVE_OR_OFFLINE, 1) < 0) {
				rc = -1;
				break;
			}
		}
	}
out:
	arena_reset(&b->arena);
	return rc;
}

/*
 * provisioning for longer than provision_timeout -> failed with WORKSPACE_PROVISION_FAILED,
 * in batches, rows another transaction holds skipped until the next pass. awaiting_agent
 * (an external workspace waiting for its agent) is never timed out.
 * Returns 0, or -1 when PostgreSQL failed.
 */
static int
timeout_pass(struct swp *b)
{
	struct json_object *ev;
	const char *params[2];
	char secs[24], msg[128];
	PGresult *res;
	int i, n, rc = -1;

	snprintf(secs, sizeof(secs), "%lld", (long long)b->conf.provision_timeout_s);
	snprintf(msg, sizeof(msg), "provisioning timed out after %lld s",
	    (long long)b->conf.provision_timeout_s);
	params[0] = secs;
	params[1] = msg;
	if (db_begin(&b->arena) < 0)
		goto fail;
	res = db_exec(&b->arena, "UPDATE workspaces SET status = 'failed', last_sample_error = $2, "
	    "updated_at = now() WHERE id IN (SELECT id FROM workspaces WHERE status = 'provisioning' "
	    "AND updated_at < now() - make_interval(secs => $1::bigint) ORDER BY updated_at "
	    "LIMIT " TIMEOUT_BATCH " FOR UPDATE SKIP LOCKED) AND status = 'provisioning' "
	    "RETURNING id::text, COALESCE(runtime, '')", 2, params);
	if (res == NULL)
		goto fail;
	n = PQntuples(res);
	for (i = 0; i < n; i++) {
		ev = jsonx_own(&b->arena, json_object_new_object());
		if (ev == NULL)
			goto fail;
		json_object_object_add(ev, "error", json_object_new_string(msg));
		json_object_object_add(ev, "timeout_secs",
		    json_object_new_int64(b->conf.provision_timeout_s));
		json_object_object_add(ev, "runtime", json_object_new_string(PQgetvalue(res, i, 1)));
		json_object_object_add(ev, "source", json_object_new_string("provision_timeout_sweep"));
		if (events_record(&b->arena, "WORKSPACE_PROVISION_FAILED", PQgetvalue(res, i, 0), ev) < 0)
			goto fail;
	}
	if (db_commit(&b->arena) < 0)
		goto fail;
	for (i = 0; i < n; i++)
		log_warn("workspace %s failed: %s", PQgetvalue(res, i, 0), msg);
	b->failed += (unsigned long)n;
	/* A full batch: the rest on the next tick rather than one long transaction. */
	if (n == atoi(TIMEOUT_BATCH))
		b->next_run_ms[PART_TIMEOUT] = 0;
	rc = 0;
	goto out;
fail:
	db_failed(b);
out:
	arena_reset(&b->arena);
	return rc;
}

/*
 * Managed containers (by label) named ws-<id12> whose workspace is removed or has no row at
 * all (a wiped or restored database) are removed with their volumes; managed volumes of such
 * workspaces left without a container (a failed provision, an engine restart) go too. Anything
 * of a live row is left alone, so a provision in progress is never touched. An engine error
 * skips the pass. Returns 0, or -1 when PostgreSQL failed.
 */
static int
orphan_pass(struct swp *b)
{
	struct orphan_list cons, vols;
	PGresult *dead = NULL;
	int rc = 0;

	memset(&cons, 0, sizeof(cons));
	memset(&vols, 0, sizeof(vols));
	cons.a = vols.a = &b->arena;
	if (!b->have_engine) {
		complain(b, "orphan sweep skipped: no usable container engine");
		goto out;
	}
	if (engine_container_list(&b->eng, SWEEP_MANAGED_LABEL, collect_orphan, &cons) < 0 ||
	    engine_volume_list(&b->eng, SWEEP_MANAGED_LABEL, collect_orphan_volume, &vols) < 0) {
		complain(b, "orphan sweep skipped: engine: %s", engine_error(&b->eng));
		goto out;
	}
	if (cons.n + vols.n == 0)
		goto out;
	if ((dead = dead_prefixes(b, &cons, &vols)) == NULL) {
		db_failed(b);
		rc = -1;
		goto out;
	}
	remove_orphans(b, dead, &cons, &vols);
out:
	arena_reset(&b->arena);
	return rc;
}

/* Which of the listed prefixes have no live workspace row. The result belongs to the arena. */
static PGresult *
dead_prefixes(struct swp *b, const struct orphan_list *cons, const struct orphan_list *vols)
{
	const struct orphan_list *lists[2] = { cons, vols };
	const char *params[1];
	size_t i, k, off = 1, cap = (cons->n + vols->n) * (SWEEP_ID12 + 1) + 3;
	char *arr = arena_alloc(&b->arena, cap);

	if (arr == NULL)
		return NULL;
	/* A text[] literal is safe here: prefixes are [0-9a-f-] only (sweep_*_prefix). */
	arr[0] = '{';
	for (k = 0; k < 2; k++)
		for (i = 0; i < lists[k]->n; i++)
			off += (size_t)snprintf(arr + off, cap - off, "%s%s", off > 1 ? "," : "",
			    lists[k]->prefixes[i]);
	snprintf(arr + off, cap - off, "}");
	params[0] = arr;
	return db_exec(&b->arena, "SELECT DISTINCT p FROM unnest($1::text[]) p WHERE NOT EXISTS "
	    "(SELECT 1 FROM workspaces w WHERE left(w.id::text, 12) = p AND w.status <> 'removed')",
	    1, params);
}

/* Removes the containers, then the volumes, of every dead prefix; failures wait for the next pass. */
static void
remove_orphans(struct swp *b, PGresult *dead, const struct orphan_list *cons,
    const struct orphan_list *vols)
{
	int64_t deadline = now_mono_ms() + PASS_DEADLINE_MS;
	const char *p;
	size_t i;
	int j;

	for (j = 0; j < PQntuples(dead) && !sig_term && now_mono_ms() < deadline; j++) {
		p = PQgetvalue(dead, j, 0);
		for (i = 0; i < cons->n; i++) {
			if (strcmp(cons->prefixes[i], p) != 0)
				continue;
			if (engine_container_remove(&b->eng, cons->names[i]) < 0) {
				complain(b, "orphan %s not removed: %s", cons->names[i], engine_error(&b->eng));
				continue;
			}
			log_info("removed orphan container %s (no live workspace %s...)", cons->names[i], p);
			b->reaped++;
		}
		for (i = 0; i < vols->n; i++) {
			if (strcmp(vols->prefixes[i], p) != 0)
				continue;
			if (engine_volume_remove(&b->eng, vols->names[i]) < 0)
				complain(b, "orphan volume %s not removed: %s", vols->names[i],
				    engine_error(&b->eng));
			else
				log_info("removed orphan volume %s", vols->names[i]);
		}
	}
}

/* engine_container_list callback: keeps ws-<id12> containers, ignores any other managed one. */
static int
collect_orphan(void *arg, const char *id, const char *name, struct json_object *labels)
{
	char prefix[SWEEP_ID12 + 1];

	UNUSED(id);
	UNUSED(labels);
	if (sweep_container_prefix(name, prefix, sizeof(prefix)) < 0)
		return 0;
	return orphan_add(arg, name[0] == '/' ? name + 1 : name, prefix);
}

/* engine_volume_list callback: keeps the provisioner's ws-<id12>-* volumes. */
static int
collect_orphan_volume(void *arg, const char *id, const char *name, struct json_object *labels)
{
	char prefix[SWEEP_ID12 + 1];

	UNUSED(id);
	UNUSED(labels);
	if (sweep_volume_prefix(name, prefix, sizeof(prefix)) < 0)
		return 0;
	return orphan_add(arg, name, prefix);
}

static int
orphan_add(struct orphan_list *ol, const char *name, const char *prefix)
{
	void *p;

	if (ol->n == ol->cap) {
		size_t cap = ol->cap ? ol->cap * 2 : 32;

		p = arena_alloc(ol->a, cap * sizeof(char *));
		if (p == NULL)
			return -1;
		if (ol->n > 0)
			memcpy(p, ol->names, ol->n * sizeof(char *));
		ol->names = p;
		p = arena_alloc(ol->a, cap * sizeof(char *));
		if (p == NULL)
			return -1;
		if (ol->n > 0)
			memcpy(p, ol->prefixes, ol->n * sizeof(char *));
		ol->prefixes = p;
		ol->cap = cap;
	}
	ol->names[ol->n] = arena_strdup(ol->a, name);
	ol->prefixes[ol->n] = arena_strdup(ol->a, prefix);
	if (ol->names[ol->n] == NULL || ol->prefixes[ol->n] == NULL)
		return -1;
	ol->n++;
	return 0;
}

/* The reference checks every 30 s; a short timeout (tests) is checked proportionally sooner. */
static int64_t
timeout_every_ms(const struct conf *c)
{
	int64_t s = c->provision_timeout_s / 5;

	if (s < 1)
		s = 1;
	if (s > 30)
		s = 30;
	return s * 1000;
}

/*
 * One warning per kind (its format) per COMPLAIN_EVERY_MS: an outage must not flood the log,
 * and one noisy kind must not hide another.
 */
static void
complain(struct swp *b, const char *fmt, ...)
{
	int64_t now = now_mono_ms();
	char msg[512];
	va_list ap;
	size_t i, slot = 0;

	for (i = 0; i < COMPLAINT_SLOTS; i++) {
		if (b->complaints[i].fmt == fmt) {
			slot = i;
			break;
		}
		if (b->complaints[i].at_ms < b->complaints[slot].at_ms)
			slot = i;
	}
	if (b->complaints[slot].fmt == fmt && now - b->complaints[slot].at_ms < COMPLAIN_EVERY_MS)
		return;
	b->complaints[slot].fmt = fmt;
	b->complaints[slot].at_ms = now;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_warn("%s", msg);
}

static void
usage(void)
{
	fprintf(stderr, "usage: molecule-sweeper [-c config]\n");
	exit(PROC_EXIT_FATAL);
}
