/*
 * dispatcher.c: sends the outbound A2A messages queued in a2a_queue (schedule fires, delegations, restart
 * context) with libcurl multi, bounded overall and per target, and records each outcome in one transaction.
 * Owns the curl multi handle, one job slot per concurrent call, and the leases of the rows it sends.
 */
#include <sys/types.h>

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "common/a2a.h"
#include "common/arena.h"
#include "common/conf.h"
#include "common/cronfire.h"
#include "common/db.h"
#include "common/events.h"
#include "common/jsonx.h"
#include "common/kv.h"
#include "common/liveness.h"
#include "common/log.h"
#include "common/proc.h"
#include "common/sig.h"
#include "common/util.h"

#define NAME "dispatcher"
#define ARENA_CAP (64 * 1024 * 1024)
/* The reference caps an agent's reply at 10 MiB. */
#define RESP_MAX (10 * 1024 * 1024)
/* A lease outlives the call's deadline by this much: time to record the outcome. */
#define LEASE_MARGIN_MS 10000
#define RETRY_BASE_MS 1000
#define RETRY_MAX_MS 60000
#define CONNECT_TIMEOUT_MS 10000
/* A restart-context message for a workspace that never came back is dropped after this. */
#define RESTART_CONTEXT_WAIT "10 minutes"
/* Most finished a2a_queue rows one housekeeping run deletes. */
#define PRUNE_BATCH "1000"
/*
 * A lease that ran out: the row goes back to the queue, or is failed once its attempts are used
 * up (a row whose outcome could never be recorded would otherwise be sent forever). $1: the cap.
 */
#define REQUEUE_OR_GIVE_UP "status = CASE WHEN attempts >= $1::int THEN 'failed' ELSE 'queued' END, " \
    "error = CASE WHEN attempts >= $1::int THEN 'gave up after ' || attempts || ' attempts' " \
    "ELSE error END, lease_owner = CASE WHEN attempts >= $1::int THEN lease_owner END, " \
    "lease_until = NULL, updated_at = now()"
#define URL_MAX 2048
#define ERR_MAX 512
#define SUMMARY_MAX 200
#define PREVIEW_MAX 200
#define TASK_PREVIEW_MAX 80

/* OUT_RETRY: the request never reached the agent; OUT_BUSY: it answered 429/503 (no attempt counted). */
enum outcome { OUT_OK, OUT_RETRY, OUT_BUSY, OUT_FAIL };

/* One in-flight call; the slot and its easy handle are reused. */
struct job {
	int busy;
	CURL *easy;
	struct curl_slist *headers;
	struct curl_slist *resolve;
	char id[40];
	char workspace_id[40];
	char caller_id[40];
	char ref_id[40];
	char kind[24];
	char *body;		/* the JSON-RPC request, malloc'd */
	char *resp;		/* the reply, malloc'd, capped at RESP_MAX */
	size_t resp_len;
	int resp_over;
	int attempts;
	long deadline_ms;
	int64_t started_ms;
	char errbuf[CURL_ERROR_SIZE];
};

struct sock {
	curl_socket_t fd;
	int what;
};

struct dsp {
	struct conf conf;
	const char *conf_path;
	int restarts;
	char owner[128];
	char host[96];
	struct arena arena;
	CURLM *multi;
	struct job *jobs;
	size_t njobs;
	size_t active;
	struct sock *socks;
	size_t nsocks;
	size_t socks_cap;
	int64_t curl_due_ms;	/* -1: curl wants no timeout */
	int listen_pid;		/* backend PID of the connection we LISTEN on; 0: none */
	int wake;
	int64_t next_poll_ms;
	int64_t next_beat_ms;
	unsigned long done;
	unsigned long failed;
	unsigned long retried;
};

static void setup(struct dsp *d, int argc, char **argv);
static void run(struct dsp *d, const sigset_t *none);
static void beat(struct dsp *d, int64_t now);
static void ensure_listen(struct dsp *d);
static PGconn *listening(struct dsp *d);
static void drain_notifies(struct dsp *d);
static void housekeeping(struct dsp *d);
static void recover_dead_owners(struct dsp *d);
static void claim(struct dsp *d);
static void mark_delegations_dispatched(struct dsp *d, PGresult *res);
static void start_job(struct dsp *d, PGresult *res, int row);
static struct job *free_slot(struct dsp *d);
static void collect(struct dsp *d);
static void complete(struct dsp *d, struct job *j, CURLcode rc);
static void finish(struct dsp *d, struct job *j, enum outcome out, const char *response, const char *error);
static int record_final(struct dsp *d, struct job *j, int ok, const char *response, const char *error,
    long duration_ms);
static int record_delegation(struct dsp *d, struct job *j, int ok, const char *text, const char *error);
static int record_activity(struct dsp *d, struct job *j, int ok, const char *response, const char *error,
    long duration_ms);
static void release_job(struct dsp *d, struct job *j);
static void release_all(struct dsp *d);
static const char *reply_text(struct dsp *d, const char *response);
static const char *preview(struct dsp *d, const char *s, size_t max);
static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata);
static int on_socket(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp);
static int on_timer(CURLM *multi, long timeout_ms, void *userp);
static void usage(void);

static const int dsp_signals[] = { SIGTERM, SIGINT };
static const int dsp_ignored[] = { SIGHUP };

int
main(int argc, char **argv)
{
	struct dsp d;
	sigset_t blocked, none;
	size_t i;

	memset(&d, 0, sizeof(d));
	log_set_name(NAME);
	setup(&d, argc, argv);
	sig_setup(dsp_signals, NELEM(dsp_signals), dsp_ignored, NELEM(dsp_ignored), &blocked);
	sigemptyset(&none);
	log_info("dispatching a2a_queue: %zu concurrent, deadline %lld ms, %lld attempts, as %s",
	    d.njobs, (long long)d.conf.dispatcher_deadline_ms, (long long)d.conf.dispatcher_retries, d.owner);
	run(&d, &none);
	release_all(&d);
	log_info("stopped: %lu done, %lu failed, %lu retried", d.done, d.failed, d.retried);
	for (i = 0; i < d.njobs; i++)
		curl_easy_cleanup(d.jobs[i].easy);
	curl_multi_cleanup(d.multi);
	curl_global_cleanup();
	free(d.jobs);
	free(d.socks);
	arena_cleanup(&d.arena);
	db_close();
	kv_close();
	conf_free(&d.conf);
	return 0;
}

/* Configuration, the multi handle and one easy handle per slot; a bad config exits 2. */
static void
setup(struct dsp *d, int argc, char **argv)
{
	char err[512];
	const char *rs;
	size_t i;
	int opt;

	while ((opt = getopt(argc, argv, "c:h")) != -1) {
		switch (opt) {
		case 'c': d->conf_path = optarg; break;
		default: usage();
		}
	}
	if (conf_load(&d->conf, d->conf_path, err, sizeof(err)) < 0)
		fatal("configuration: %s", err);
	conf_apply_logging(&d->conf);
	if (kv_configure(&d->conf) < 0)
		fatal("configuration: invalid redis_url");
	db_configure(&d->conf);
	rs = getenv("MOLECULE_RESTARTS");
	d->restarts = rs ? atoi(rs) : 0;
	if (gethostname(d->host, sizeof(d->host)) < 0)
		snprintf(d->host, sizeof(d->host), "localhost");
	d->host[sizeof(d->host) - 1] = '\0';
	snprintf(d->owner, sizeof(d->owner), "%s:%ld", d->host, (long)getpid());
	arena_init(&d->arena, ARENA_CAP);
	d->curl_due_ms = -1;

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		fatal("curl_global_init failed");
	d->multi = curl_multi_init();
	if (d->multi == NULL)
		fatal("out of memory");
	curl_multi_setopt(d->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
	curl_multi_setopt(d->multi, CURLMOPT_SOCKETDATA, d);
	curl_multi_setopt(d->multi, CURLMOPT_TIMERFUNCTION, on_timer);
	curl_multi_setopt(d->multi, CURLMOPT_TIMERDATA, d);
	/* Keep one idle connection per slot: agents are few, reconnecting each call costs a handshake. */
	curl_multi_setopt(d->multi, CURLMOPT_MAXCONNECTS, (long)d->conf.dispatcher_concurrency);
	d->njobs = (size_t)d->conf.dispatcher_concurrency;
	d->jobs = xcalloc(d->njobs, sizeof(*d->jobs));
	for (i = 0; i < d->njobs; i++) {
		d->jobs[i].easy = curl_easy_init();
		if (d->jobs[i].easy == NULL)
			fatal("out of memory");
	}
}

/*
 * The loop: beat; on a NOTIFY, a finished call or the poll tick, claim what fits; then wait in ppoll
 * on the database socket and curl's sockets until the next event, curl timeout, poll or beat.
 */
static void
run(struct dsp *d, const sigset_t *none)
{
	struct pollfd *pfds = NULL;
	struct timespec ts;
	size_t i, n, cap = 0;
	int64_t now, wake;
	int running, flags, pg = -1;
	PGconn *lc;

	while (!sig_term) {
		now = now_mono_ms();
		beat(d, now);
		/* A statement found the link broken and db.c reconnected: LISTEN on the new one now. */
		if (d->listen_pid != 0 && listening(d) == NULL) {
			d->listen_pid = 0;
			d->next_poll_ms = now;
		}
		if (now >= d->next_poll_ms) {
			ensure_listen(d);
			housekeeping(d);
			d->wake = 1;
			d->next_poll_ms = now + d->conf.dispatcher_poll_ms;
		}
		drain_notifies(d);
		if (d->wake && d->active < d->njobs) {
			d->wake = 0;
			claim(d);
			collect(d);
		}
		arena_reset(&d->arena);

		if (cap < d->nsocks + 1) {
			cap = d->nsocks + 16;
			free(pfds);
			pfds = xcalloc(cap, sizeof(*pfds));
		}
		n = 0;
		pg = -1;
		/* No statement runs between here and PQconsumeInput: lc stays valid. */
		lc = listening(d);
		if (lc != NULL && PQsocket(lc) >= 0) {
			pfds[n].fd = PQsocket(lc);
			pfds[n].events = POLLIN;
			pg = (int)n++;
		}
		for (i = 0; i < d->nsocks; i++) {
			pfds[n].fd = d->socks[i].fd;
			pfds[n].events = (short)(((d->socks[i].what & CURL_POLL_IN) ? POLLIN : 0) |
			    ((d->socks[i].what & CURL_POLL_OUT) ? POLLOUT : 0));
			pfds[n].revents = 0;
			n++;
		}
		wake = d->next_poll_ms < d->next_beat_ms ? d->next_poll_ms : d->next_beat_ms;
		if (d->curl_due_ms >= 0 && d->curl_due_ms < wake)
			wake = d->curl_due_ms;
		if (d->wake && d->active < d->njobs)
			wake = now;
		now = now_mono_ms();
		wake = wake > now ? wake - now : 0;
		ts.tv_sec = (time_t)(wake / 1000);
		ts.tv_nsec = (long)(wake % 1000) * 1000000L;
		for (i = 0; i < n; i++)
			pfds[i].revents = 0;
		if (ppoll(pfds, n, &ts, none) < 0 && errno != EINTR) {
			log_warn("ppoll failed: %s", strerror(errno));
			continue;
		}
		if (pg >= 0 && (pfds[pg].revents & (POLLIN | POLLERR | POLLHUP)) &&
		    PQconsumeInput(lc) == 0) {
			/* db_conn notices the broken connection and reconnects; LISTEN again then. */
			d->listen_pid = 0;
			d->next_poll_ms = now_mono_ms();
		}
		for (i = 0; i < n; i++) {
			if ((int)i == pg || pfds[i].revents == 0)
				continue;
			flags = 0;
			if (pfds[i].revents & POLLIN)
				flags |= CURL_CSELECT_IN;
			if (pfds[i].revents & POLLOUT)
				flags |= CURL_CSELECT_OUT;
			if (pfds[i].revents & (POLLERR | POLLHUP | POLLNVAL))
				flags |= CURL_CSELECT_ERR;
			curl_multi_socket_action(d->multi, pfds[i].fd, flags, &running);
		}
		if (d->curl_due_ms >= 0 && now_mono_ms() >= d->curl_due_ms) {
			d->curl_due_ms = -1;
			curl_multi_socket_action(d->multi, CURL_SOCKET_TIMEOUT, 0, &running);
		}
		collect(d);
		arena_reset(&d->arena);
	}
	free(pfds);
}

/* liveness every heartbeat_interval, idle or busy. */
static void
beat(struct dsp *d, int64_t now)
{
	if (now < d->next_beat_ms)
		return;
	liveness_beat(NAME, getpid(), d->restarts);
	d->next_beat_ms = now + d->conf.heartbeat_interval_s * 1000;
}

/*
 * LISTEN on every new connection (db.c reconnects behind our back); a new one may have missed NOTIFYs.
 * The connection is known by its backend PID only: db.c may have freed the PGconn we saw last.
 */
static void
ensure_listen(struct dsp *d)
{
	PGconn *c = db_conn();

	if (c == NULL) {
		d->listen_pid = 0;
		return;
	}
	if (d->listen_pid != 0 && PQbackendPID(c) == d->listen_pid)
		return;
	if (db_exec(&d->arena, "LISTEN a2a_queue", 0, NULL) == NULL || (c = db_current()) == NULL) {
		d->listen_pid = 0;
		return;
	}
	d->listen_pid = PQbackendPID(c);
	d->wake = 1;
	recover_dead_owners(d);
}

/* The connection our LISTEN is on, or NULL: none, broken, or replaced by db.c since. */
static PGconn *
listening(struct dsp *d)
{
	PGconn *c = db_current();

	if (d->listen_pid == 0 || c == NULL || PQstatus(c) != CONNECTION_OK || PQbackendPID(c) != d->listen_pid)
		return NULL;
	return c;
}

static void
drain_notifies(struct dsp *d)
{
	PGnotify *n;
	PGconn *c = listening(d);

	if (c == NULL)
		return;
	while ((n = PQnotifies(c)) != NULL) {
		d->wake = 1;
		PQfreemem(n);
	}
}

/*
 * Expired leases (a dispatcher that died mid-call) go back to the queue: delivery is at least once,
 * up to dispatcher_retries attempts. Restart-context messages whose workspace never came back, and
 * schedule fires whose schedule was deleted or disabled (a manual run of a disabled one still goes),
 * are dropped. Finished rows older than a2a_queue_retention_hours are deleted, a batch per run.
 */
static void
housekeeping(struct dsp *d)
{
	char cap[24], keep[24];
	const char *params[1];
	PGresult *res;
	int i, failed = 0;

	if (d->listen_pid == 0)
		return;
	snprintf(cap, sizeof(cap), "%lld", (long long)d->conf.dispatcher_retries);
	snprintf(keep, sizeof(keep), "%lld", (long long)d->conf.a2a_queue_retention_hours);
	params[0] = cap;
	res = db_exec(&d->arena, "UPDATE a2a_queue SET " REQUEUE_OR_GIVE_UP " WHERE status = 'running' "
	    "AND lease_until < now() RETURNING status", 1, params);
	if (res != NULL && PQntuples(res) > 0) {
		for (i = 0; i < PQntuples(res); i++)
			failed += strcmp(db_value(res, i, 0), "failed") == 0;
		log_warn("a2a_queue rows whose lease expired: %d requeued, %d failed after %s attempts",
		    PQntuples(res) - failed, failed, cap);
	}
	db_exec(&d->arena, "UPDATE a2a_queue SET status = 'dropped', error = 'workspace did not come "
	    "online', updated_at = now() WHERE status = 'queued' AND kind = 'restart_context' "
	    "AND created_at < now() - interval '" RESTART_CONTEXT_WAIT "'", 0, NULL);
	res = db_exec(&d->arena, "UPDATE a2a_queue q SET status = 'dropped', error = 'schedule deleted or "
	    "disabled', updated_at = now() WHERE q.status = 'queued' AND q.kind = 'cron' AND q.ref_id IS NOT "
	    "NULL AND NOT EXISTS (SELECT 1 FROM workspace_schedules s WHERE s.id = q.ref_id AND (s.enabled "
	    "OR q.message_id LIKE 'cron-%-run-%')) RETURNING id", 0, NULL);
	if (res != NULL && PQntuples(res) > 0)
		log_info("dropped %d schedule fires of deleted or disabled schedules", PQntuples(res));
	params[0] = keep;
	db_exec(&d->arena, "DELETE FROM a2a_queue WHERE id IN (SELECT id FROM a2a_queue WHERE status IN "
	    "('done', 'failed', 'dropped') AND updated_at < now() - make_interval(hours => $1::int) "
	    "LIMIT " PRUNE_BATCH ")", 1, params);
}

/*
 * Rows leased by a dispatcher of this host that is gone (kill -9, crash) are requeued at once instead
 * of after their lease: the supervisor restarts us within a second, the lease may run for minutes.
 */
static void
recover_dead_owners(struct dsp *d)
{
	char cap[24];
	const char *params[2];
	PGresult *res, *r2;
	long pid;
	char *end;
	int i;

	params[0] = d->host;
	res = db_exec(&d->arena, "SELECT DISTINCT lease_owner FROM a2a_queue WHERE status = 'running' "
	    "AND lease_owner LIKE $1 || ':%'", 1, params);
	if (res == NULL)
		return;
	for (i = 0; i < PQntuples(res); i++) {
		const char *o = db_value(res, i, 0);
		const char *colon = strrchr(o, ':');

		if (colon == NULL)
			continue;
		errno = 0;
		pid = strtol(colon + 1, &end, 10);
		if (errno != 0 || *end != '\0' || pid <= 0 || pid == (long)getpid())
			continue;
		if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
			continue;
		snprintf(cap, sizeof(cap), "%lld", (long long)d->conf.dispatcher_retries);
		params[0] = cap;
		params[1] = o;
		r2 = db_exec(&d->arena, "UPDATE a2a_queue SET " REQUEUE_OR_GIVE_UP " WHERE status = 'running' "
		    "AND lease_owner = $2 RETURNING id", 2, params);
		if (r2 != NULL)
			log_warn("requeued %d a2a_queue rows of dead dispatcher %s", PQntuples(r2), o);
	}
}

/*
 * Claims as many due rows as there are free slots, never more per target than its
 * max_concurrent_tasks minus what is running for it (on any host) or, when more, what the agent
 * last reported busy with (workspaces.active_tasks). The advisory lock serialises
 * claims of several dispatchers so the per-target count cannot be raced; SKIP LOCKED keeps
 * drop-stale and producers from blocking us. Restart-context rows wait for the target to be online.
 */
static void
claim(struct dsp *d)
{
	char free_s[24], max_dl[24], margin[24];
	const char *params[4];
	PGresult *res;
	int i;

	if (d->listen_pid == 0)
		return;
	snprintf(free_s, sizeof(free_s), "%zu", d->njobs - d->active);
	snprintf(max_dl, sizeof(max_dl), "%lld", (long long)d->conf.dispatcher_deadline_ms);
	snprintf(margin, sizeof(margin), "%d", LEASE_MARGIN_MS);
	params[0] = free_s;
	params[1] = d->owner;
	params[2] = max_dl;
	params[3] = margin;
	if (db_begin(&d->arena) < 0)
		return;
	if (db_exec(&d->arena, "SELECT pg_advisory_xact_lock(hashtext('molecule:a2a_queue:claim'))",
	    0, NULL) == NULL)
		goto fail;
	res = db_exec(&d->arena,
	    "WITH due AS (SELECT DISTINCT workspace_id FROM a2a_queue "
	    "  WHERE status = 'queued' AND not_before <= now()), "
	    "room AS (SELECT w.id, GREATEST(w.max_concurrent_tasks, 1) - GREATEST((SELECT count(*) FROM a2a_queue r "
	    "  WHERE r.workspace_id = w.id AND r.status = 'running'), COALESCE(w.active_tasks, 0)) AS n, "
	    "  (w.status IN ('online', 'degraded') AND COALESCE(w.url, '') <> '') AS reachable "
	    "  FROM due JOIN workspaces w ON w.id = due.workspace_id), "
	    "cand AS (SELECT c.id, c.priority, c.created_at FROM room, LATERAL (SELECT q.id, q.priority, "
	    "  q.created_at FROM a2a_queue q WHERE q.workspace_id = room.id AND q.status = 'queued' "
	    "  AND q.not_before <= now() AND (q.kind <> 'restart_context' OR room.reachable) "
	    "  ORDER BY q.priority DESC, q.created_at LIMIT GREATEST(room.n, 0) FOR UPDATE SKIP LOCKED) c "
	    "  WHERE room.n > 0), "
	    "pick AS (SELECT id FROM cand ORDER BY priority DESC, created_at LIMIT $1::int) "
	    "UPDATE a2a_queue q SET status = 'running', attempts = q.attempts + 1, lease_owner = $2, "
	    "  lease_until = now() + make_interval(secs => (LEAST(q.deadline_ms, $3::int) + $4::int) / 1000.0), "
	    "  updated_at = now() FROM pick WHERE q.id = pick.id "
	    "RETURNING q.id, q.workspace_id, q.caller_id, q.kind, q.ref_id, q.body::text, q.attempts, "
	    "  LEAST(q.deadline_ms, $3::int)", 4, params);
	if (res == NULL)
		goto fail;
	mark_delegations_dispatched(d, res);
	if (db_commit(&d->arena) < 0)
		return;
	for (i = 0; i < PQntuples(res); i++)
		start_job(d, res, i);
	/* A full batch means more may be waiting. */
	if (PQntuples(res) > 0 && d->active < d->njobs)
		d->wake = 1;
	return;
fail:
	db_rollback();
}

/* First attempt of a platform delegation: pending -> dispatched, DELEGATION_STATUS (reference order). */
static void
mark_delegations_dispatched(struct dsp *d, PGresult *res)
{
	struct json_object *p;
	const char *params[2];
	PGresult *r2;
	int i;

	for (i = 0; i < PQntuples(res); i++) {
		if (strcmp(db_value(res, i, 3), "delegation") != 0 || db_value(res, i, 2) == NULL ||
		    db_value(res, i, 4) == NULL || strcmp(db_value(res, i, 6), "1") != 0)
			continue;
		params[0] = db_value(res, i, 2);
		params[1] = db_value(res, i, 4);
		r2 = db_exec(&d->arena, "UPDATE activity_logs SET status = 'dispatched' WHERE workspace_id = "
		    "$1::uuid AND activity_type = 'delegation' AND method = 'delegate' AND "
		    "request_body->>'delegation_id' = $2 AND status = 'pending' RETURNING id", 2, params);
		if (r2 == NULL || PQntuples(r2) == 0)
			continue;
		p = jsonx_own(&d->arena, json_object_new_object());
		json_object_object_add(p, "delegation_id", json_object_new_string(params[1]));
		json_object_object_add(p, "target_id", json_object_new_string(db_value(res, i, 1)));
		json_object_object_add(p, "status", json_object_new_string("dispatched"));
		events_record(&d->arena, "DELEGATION_STATUS", params[0], p);
	}
}

/* Resolves and pins the target, then hands the call to curl; a row that cannot be sent finishes now. */
static void
start_job(struct dsp *d, PGresult *res, int row)
{
	struct job *j = free_slot(d);
	char url[URL_MAX], resolve[A2A_RESOLVE_MAX], err[ERR_MAX], hdr[64];
	const char *v;
	int rc;

	if (j == NULL)
		return;
	memset(j->id, 0, sizeof(j->id));
	snprintf(j->id, sizeof(j->id), "%s", db_value(res, row, 0));
	snprintf(j->workspace_id, sizeof(j->workspace_id), "%s", db_value(res, row, 1));
	v = db_value(res, row, 2);
	snprintf(j->caller_id, sizeof(j->caller_id), "%s", v ? v : "");
	snprintf(j->kind, sizeof(j->kind), "%s", db_value(res, row, 3));
	v = db_value(res, row, 4);
	snprintf(j->ref_id, sizeof(j->ref_id), "%s", v ? v : "");
	j->body = xstrdup(db_value(res, row, 5));
	j->attempts = atoi(db_value(res, row, 6));
	j->deadline_ms = atol(db_value(res, row, 7));
	j->resp = NULL;
	j->resp_len = 0;
	j->resp_over = 0;
	j->errbuf[0] = '\0';
	j->busy = 1;
	d->active++;
	j->started_ms = now_mono_ms();

	if (a2a_target_url(&d->arena, j->workspace_id, url, sizeof(url)) < 0) {
		finish(d, j, OUT_RETRY, NULL, "workspace has no URL");
		return;
	}
	rc = a2a_pin_target(url, (int)d->conf.a2a_allow_loopback, resolve, sizeof(resolve), err, sizeof(err));
	if (rc == A2A_PIN_TEMPORARY) {
		finish(d, j, OUT_RETRY, NULL, err);
		return;
	}
	if (rc < 0) {
		char msg[ERR_MAX + 64];
		snprintf(msg, sizeof(msg), "workspace URL is not publicly routable: %s", err);
		finish(d, j, OUT_FAIL, NULL, msg);
		return;
	}
	/* The deadline travels with the call, as the proxy's X-Timeout (seconds, rounded up). */
	snprintf(hdr, sizeof(hdr), "X-Timeout: %ld", (j->deadline_ms + 999) / 1000);
	j->headers = curl_slist_append(NULL, "Content-Type: application/json");
	j->headers = curl_slist_append(j->headers, "Expect:");
	j->headers = curl_slist_append(j->headers, hdr);
	j->resolve = resolve[0] != '\0' ? curl_slist_append(NULL, resolve) : NULL;
	if (j->headers == NULL || (resolve[0] != '\0' && j->resolve == NULL))
		fatal("out of memory");
	curl_easy_reset(j->easy);
	curl_easy_setopt(j->easy, CURLOPT_URL, url);
	curl_easy_setopt(j->easy, CURLOPT_POSTFIELDS, j->body);
	curl_easy_setopt(j->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(j->body));
	curl_easy_setopt(j->easy, CURLOPT_HTTPHEADER, j->headers);
	if (j->resolve != NULL)
		curl_easy_setopt(j->easy, CURLOPT_RESOLVE, j->resolve);
	curl_easy_setopt(j->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(j->easy, CURLOPT_TIMEOUT_MS, j->deadline_ms);
	curl_easy_setopt(j->easy, CURLOPT_CONNECTTIMEOUT_MS,
	    j->deadline_ms < CONNECT_TIMEOUT_MS ? j->deadline_ms : (long)CONNECT_TIMEOUT_MS);
	curl_easy_setopt(j->easy, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(j->easy, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(j->easy, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(j->easy, CURLOPT_WRITEDATA, j);
	curl_easy_setopt(j->easy, CURLOPT_PRIVATE, j);
	curl_easy_setopt(j->easy, CURLOPT_ERRORBUFFER, j->errbuf);
	if (curl_multi_add_handle(d->multi, j->easy) != CURLM_OK)
		finish(d, j, OUT_RETRY, NULL, "could not start the call");
}

static struct job *
free_slot(struct dsp *d)
{
	size_t i;

	for (i = 0; i < d->njobs; i++)
		if (!d->jobs[i].busy)
			return &d->jobs[i];
	return NULL;
}

/* Every call curl has finished since the last look. */
static void
collect(struct dsp *d)
{
	struct CURLMsg *m;
	struct job *j;
	int left;

	while ((m = curl_multi_info_read(d->multi, &left)) != NULL) {
		if (m->msg != CURLMSG_DONE)
			continue;
		j = NULL;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&j);
		curl_multi_remove_handle(d->multi, m->easy_handle);
		if (j != NULL)
			complete(d, j, m->data.result);
	}
}

/*
 * Classifies a finished call. Retried (an attempt counted): the request never reached the agent
 * (connection refused, name not resolved, nothing sent). Requeued without counting an attempt:
 * 429 and 503 (the agent is busy). Failed for good: anything after the request was sent (the
 * deadline, other statuses: the prompt may have run), a JSON-RPC error, an oversized reply.
 * A 2xx reply that is not JSON is kept as a JSON string.
 */
static void
complete(struct dsp *d, struct job *j, CURLcode rc)
{
	struct json_object *reply, *e, *m;
	char msg[ERR_MAX];
	const char *resp = NULL;
	long code = 0, sent = 0;
	size_t len;
	int unsent;

	curl_easy_getinfo(j->easy, CURLINFO_RESPONSE_CODE, &code);
	curl_easy_getinfo(j->easy, CURLINFO_REQUEST_SIZE, &sent);
	if (j->resp_over) {
		finish(d, j, OUT_FAIL, NULL, "agent reply larger than 10 MiB");
		return;
	}
	if (rc != CURLE_OK) {
		unsent = rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST || sent == 0;
		if (rc == CURLE_OPERATION_TIMEDOUT)
			snprintf(msg, sizeof(msg), "agent did not answer within the deadline (%ld ms)",
			    j->deadline_ms);
		else
			snprintf(msg, sizeof(msg), "failed to reach workspace agent: %s",
			    j->errbuf[0] ? j->errbuf : curl_easy_strerror(rc));
		finish(d, j, unsent ? OUT_RETRY : OUT_FAIL, NULL, msg);
		return;
	}
	reply = j->resp_len > 0 ? jsonx_own(&d->arena, jsonx_parse(j->resp, j->resp_len)) : NULL;
	if (reply == NULL && j->resp_len > 0) {
		reply = jsonx_own(&d->arena, json_object_new_string_len(j->resp, (int)j->resp_len));
	}
	if (reply != NULL)
		resp = arena_strdup(&d->arena, jsonx_dump(reply, &len));
	if (code == 429 || code == 503) {
		snprintf(msg, sizeof(msg), "agent answered %ld", code);
		finish(d, j, OUT_BUSY, resp, msg);
		return;
	}
	if (code < 200 || code > 299) {
		snprintf(msg, sizeof(msg), "agent answered %ld", code);
		finish(d, j, OUT_FAIL, resp, msg);
		return;
	}
	if (reply != NULL && json_object_is_type(reply, json_type_object) &&
	    json_object_object_get_ex(reply, "error", &e) && e != NULL) {
		if (json_object_is_type(e, json_type_object) && json_object_object_get_ex(e, "message", &m) &&
		    json_object_is_type(m, json_type_string))
			snprintf(msg, sizeof(msg), "agent error: %s", json_object_get_string(m));
		else
			snprintf(msg, sizeof(msg), "agent error: %s", json_object_get_string(e));
		finish(d, j, OUT_FAIL, resp, msg);
		return;
	}
	finish(d, j, OUT_OK, resp, NULL);
}

/*
 * Records the outcome and frees the slot. A retry goes back to 'queued' with exponential backoff
 * until dispatcher_retries attempts; a busy answer goes back with its attempt given back. A final
 * outcome is recorded in one transaction with its kind's side effects; one the database refuses
 * (SQLSTATE class 22: a reply with \u0000 or invalid UTF-8) is recorded as failed without the
 * reply. If recording fails otherwise, the lease expires and the row is sent again, up to
 * dispatcher_retries attempts (housekeeping).
 */
static void
finish(struct dsp *d, struct job *j, enum outcome out, const char *response, const char *error)
{
	long duration = (long)(now_mono_ms() - j->started_ms), backoff;
	char back[24];
	const char *params[5];
	PGresult *res;
	int i, rc;

	if (out == OUT_BUSY || (out == OUT_RETRY && j->attempts < d->conf.dispatcher_retries)) {
		backoff = RETRY_BASE_MS;
		for (i = 1; i < j->attempts && backoff < RETRY_MAX_MS; i++)
			backoff *= 2;
		if (backoff > RETRY_MAX_MS)
			backoff = RETRY_MAX_MS;
		snprintf(back, sizeof(back), "%ld", backoff);
		params[0] = j->id;
		params[1] = d->owner;
		params[2] = error;
		params[3] = back;
		params[4] = out == OUT_BUSY ? "1" : "0";
		res = db_exec(&d->arena, "UPDATE a2a_queue SET status = 'queued', lease_until = NULL, "
		    "lease_owner = NULL, error = $3, not_before = now() + make_interval(secs => $4::int / 1000.0), "
		    "attempts = GREATEST(attempts - $5::int, 0), updated_at = now() WHERE id = $1::uuid "
		    "AND status = 'running' AND lease_owner = $2 RETURNING id", 5, params);
		if (res != NULL)
			d->retried++;
		log_info("a2a %s to %s attempt %d: %s; retrying in %ld ms", j->kind, j->workspace_id,
		    j->attempts, error, backoff);
		release_job(d, j);
		return;
	}
	rc = record_final(d, j, out == OUT_OK, response, error, duration);
	if (rc < 0 && strncmp(db_last_sqlstate(), "22", 2) == 0) {
		log_warn("a2a %s to %s: outcome not storable (SQLSTATE %s), recording it failed without the reply",
		    j->kind, j->workspace_id, db_last_sqlstate());
		out = OUT_FAIL;
		error = "reply not storable";
		rc = record_final(d, j, 0, NULL, error, duration);
	}
	if (rc == 0) {
		if (out == OUT_OK)
			d->done++;
		else
			d->failed++;
	}
	if (out != OUT_OK)
		log_warn("a2a %s to %s failed after %d attempts: %s", j->kind, j->workspace_id, j->attempts,
		    error ? error : "unknown error");
	release_job(d, j);
}

/* The row's final state plus, in the same transaction, what its kind records. Returns 0 or -1. */
static int
record_final(struct dsp *d, struct job *j, int ok, const char *response, const char *error,
    long duration_ms)
{
	const char *params[6], *text;
	char dur[24];
	PGresult *res;
	int rc = -1;

	snprintf(dur, sizeof(dur), "%ld", duration_ms);
	params[0] = j->id;
	params[1] = d->owner;
	params[2] = ok ? "done" : "failed";
	params[3] = response;
	params[4] = error;
	params[5] = dur;
	if (db_begin(&d->arena) < 0)
		return -1;
	res = db_exec(&d->arena, "UPDATE a2a_queue SET status = $3, response = $4::jsonb, error = $5, "
	    "duration_ms = $6::int, lease_until = NULL, updated_at = now() WHERE id = $1::uuid "
	    "AND status = 'running' AND lease_owner = $2 RETURNING id", 6, params);
	if (res == NULL)
		goto out;
	if (PQntuples(res) == 0) {
		/* Dropped by an admin or taken over after our lease ran out: theirs to record. */
		log_warn("a2a_queue row %s is no longer leased to us; outcome not recorded", j->id);
		goto out;
	}
	text = reply_text(d, response);
	if (strcmp(j->kind, "cron") == 0) {
		if (j->ref_id[0] != '\0' && cronfire_record(&d->arena, j->ref_id, j->workspace_id, ok, text,
		    error, duration_ms) < 0)
			goto out;
	} else if (strcmp(j->kind, "delegation") == 0) {
		if (record_delegation(d, j, ok, text, error) < 0)
			goto out;
	} else if (record_activity(d, j, ok, response, error, duration_ms) < 0) {
		goto out;
	}
	if (db_commit(&d->arena) < 0)
		return -1;
	return 0;
out:
	db_rollback();
	return rc;
}

/*
 * As the reference's executeDelegation: the 'delegate' row takes the final status, a
 * 'delegate_result' row carries the reply (or the error), DELEGATION_COMPLETE / _FAILED on the source.
 */
static int
record_delegation(struct dsp *d, struct job *j, int ok, const char *text, const char *error)
{
	struct json_object *rb = NULL, *p;
	const char *params[7], *rbs = NULL, *summary;
	size_t len;

	if (j->caller_id[0] == '\0' || j->ref_id[0] == '\0')
		return 0;
	if (text == NULL)
		text = "";
	params[0] = j->caller_id;
	params[1] = j->ref_id;
	params[2] = ok ? "completed" : "failed";
	params[3] = ok ? NULL : error;
	if (db_exec(&d->arena, "UPDATE activity_logs SET status = $3, error_detail = COALESCE($4, "
	    "error_detail) WHERE workspace_id = $1::uuid AND activity_type = 'delegation' AND method = "
	    "'delegate' AND request_body->>'delegation_id' = $2", 4, params) == NULL)
		return -1;
	if (ok) {
		rb = jsonx_own(&d->arena, json_object_new_object());
		json_object_object_add(rb, "text", json_object_new_string(text));
		json_object_object_add(rb, "delegation_id", json_object_new_string(j->ref_id));
		rbs = jsonx_dump(rb, &len);
		summary = arena_printf(&d->arena, "Delegation completed (%s)", preview(d, text, TASK_PREVIEW_MAX));
	} else {
		summary = "Delegation failed";
	}
	params[0] = j->caller_id;
	params[1] = j->workspace_id;
	params[2] = summary;
	params[3] = rbs;
	params[4] = ok ? "completed" : "failed";
	params[5] = ok ? NULL : error;
	/* A source workspace deleted meanwhile records nothing (its rows are gone with it). */
	if (db_exec(&d->arena, "INSERT INTO activity_logs (workspace_id, activity_type, method, source_id, "
	    "target_id, summary, response_body, status, error_detail) SELECT w.id, 'delegation', "
	    "'delegate_result', w.id, $2::uuid, $3, $4::jsonb, $5, $6 FROM workspaces w WHERE w.id = $1::uuid",
	    6, params) == NULL)
		return -1;
	p = jsonx_own(&d->arena, json_object_new_object());
	json_object_object_add(p, "delegation_id", json_object_new_string(j->ref_id));
	json_object_object_add(p, "target_id", json_object_new_string(j->workspace_id));
	if (ok)
		json_object_object_add(p, "response_preview",
		    json_object_new_string(preview(d, text, PREVIEW_MAX)));
	else
		json_object_object_add(p, "error", json_object_new_string(error ? error : "delivery failed"));
	return events_record(&d->arena, ok ? "DELEGATION_COMPLETE" : "DELEGATION_FAILED", j->caller_id, p);
}

/* An 'a2a_receive' row on the target, as the proxy writes for a call it forwarded. */
static int
record_activity(struct dsp *d, struct job *j, int ok, const char *response, const char *error,
    long duration_ms)
{
	struct json_object *p;
	const char *params[8], *text;
	char dur[24];
	PGresult *res;

	text = reply_text(d, response);
	snprintf(dur, sizeof(dur), "%ld", duration_ms);
	params[0] = j->workspace_id;
	params[1] = j->caller_id[0] ? j->caller_id : NULL;
	params[2] = strcmp(j->kind, "restart_context") == 0 ? "Restart context" :
	    (text != NULL ? preview(d, text, SUMMARY_MAX) : "A2A message");
	params[3] = j->body;
	params[4] = response;
	params[5] = dur;
	params[6] = ok ? "ok" : "error";
	params[7] = error;
	res = db_exec(&d->arena, "INSERT INTO activity_logs (workspace_id, activity_type, source_id, "
	    "target_id, method, summary, request_body, response_body, duration_ms, status, error_detail) "
	    "SELECT w.id, 'a2a_receive', $2::uuid, w.id, 'message/send', $3, $4::jsonb, $5::jsonb, $6::int, "
	    "$7, $8 FROM workspaces w WHERE w.id = $1::uuid RETURNING id", 8, params);
	if (res == NULL)
		return -1;
	if (PQntuples(res) == 0)
		return 0;
	p = jsonx_own(&d->arena, json_object_new_object());
	json_object_object_add(p, "activity_type", json_object_new_string("a2a_receive"));
	json_object_object_add(p, "method", json_object_new_string("message/send"));
	json_object_object_add(p, "status", json_object_new_string(params[6]));
	json_object_object_add(p, "duration_ms", json_object_new_int64(duration_ms));
	events_broadcast(&d->arena, "ACTIVITY_LOGGED", j->workspace_id, p);
	return 0;
}

static void
release_job(struct dsp *d, struct job *j)
{
	curl_slist_free_all(j->headers);
	curl_slist_free_all(j->resolve);
	j->headers = NULL;
	j->resolve = NULL;
	free(j->body);
	free(j->resp);
	j->body = NULL;
	j->resp = NULL;
	j->busy = 0;
	d->active--;
	d->wake = 1;
}

/*
 * SIGTERM: calls in flight are abandoned and their rows go back to the queue at once, the attempt
 * not counted. The agent may have seen the message: the next delivery has the same messageId.
 */
static void
release_all(struct dsp *d)
{
	const char *params[1];
	size_t i;

	for (i = 0; i < d->njobs; i++) {
		if (!d->jobs[i].busy)
			continue;
		curl_multi_remove_handle(d->multi, d->jobs[i].easy);
		release_job(d, &d->jobs[i]);
	}
	params[0] = d->owner;
	db_exec(&d->arena, "UPDATE a2a_queue SET status = 'queued', attempts = GREATEST(attempts - 1, 0), "
	    "lease_until = NULL, lease_owner = NULL, updated_at = now() WHERE status = 'running' "
	    "AND lease_owner = $1", 1, params);
	arena_reset(&d->arena);
}

/* The first text part of a JSON-RPC reply, or NULL (empty reply). */
static const char *
reply_text(struct dsp *d, const char *response)
{
	struct json_object *r;

	if (response == NULL)
		return NULL;
	r = jsonx_own(&d->arena, jsonx_parse(response, strlen(response)));
	return r != NULL ? a2a_result_text(r) : NULL;
}

/* s cut to max bytes on a UTF-8 boundary with "..." appended when cut (the reference's truncate). */
static const char *
preview(struct dsp *d, const char *s, size_t max)
{
	size_t n = utf8_prefix_len(s, max);

	return s[n] == '\0' ? s : arena_printf(&d->arena, "%.*s...", (int)n, s);
}

static size_t
on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct job *j = userdata;
	size_t n = size * nmemb;
	char *p;

	if (j->resp_len + n > RESP_MAX) {
		j->resp_over = 1;
		return 0;
	}
	p = realloc(j->resp, j->resp_len + n + 1);
	if (p == NULL)
		return 0;
	memcpy(p + j->resp_len, ptr, n);
	j->resp = p;
	j->resp_len += n;
	j->resp[j->resp_len] = '\0';
	return n;
}

/* curl tells which sockets to watch for what; the loop builds its pollfd set from this table. */
static int
on_socket(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
	struct dsp *d = userp;
	size_t i;

	UNUSED(easy);
	UNUSED(socketp);
	for (i = 0; i < d->nsocks; i++)
		if (d->socks[i].fd == s)
			break;
	if (what == CURL_POLL_REMOVE) {
		if (i < d->nsocks)
			d->socks[i] = d->socks[--d->nsocks];
		return 0;
	}
	if (i == d->nsocks) {
		if (d->nsocks == d->socks_cap) {
			d->socks_cap = d->socks_cap ? d->socks_cap * 2 : 16;
			d->socks = realloc(d->socks, d->socks_cap * sizeof(*d->socks));
			if (d->socks == NULL)
				fatal("out of memory");
		}
		d->socks[d->nsocks].fd = s;
		d->nsocks++;
	}
	d->socks[i].what = what;
	return 0;
}

static int
on_timer(CURLM *multi, long timeout_ms, void *userp)
{
	struct dsp *d = userp;

	UNUSED(multi);
	d->curl_due_ms = timeout_ms < 0 ? -1 : now_mono_ms() + timeout_ms;
	return 0;
}

static void
usage(void)
{
	fprintf(stderr, "usage: molecule-dispatcher [-c config]\n");
	exit(PROC_EXIT_FATAL);
}
