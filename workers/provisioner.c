/*
 * provisioner.c: turns provision_jobs rows into container lifecycle calls on the engine (ADR 006).
 * Owns its engine handle, its per-job arena and the job it holds (claimed_by host:pid with a lease).
 */
#include <sys/socket.h>

#include <netinet/in.h>

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
#include <openssl/crypto.h>

#include "common/arena.h"
#include "common/conf.h"
#include "common/crypt.h"
#include "common/db.h"
#include "common/engine.h"
#include "common/events.h"
#include "common/images.h"
#include "common/jsonx.h"
#include "common/kv.h"
#include "common/liveness.h"
#include "common/log.h"
#include "common/sig.h"
#include "common/tar.h"
#include "common/tokens.h"
#include "common/util.h"

#define NAME "provisioner"
#define CHANNEL "provision_jobs"
#define POLL_MS 2000			/* slow poll beside LISTEN: backoffs coming due, leases */
#define BEAT_MAX_MS 5000
/* A dead provisioner's job is taken over by another host after its lease: longer than the longest
 * step that cannot renew it (a build lock wait plus the build, the git fetch, a pull). */
#define LEASE_MARGIN_S 300
#define LEASE_RENEW_MS 30000
#define MAX_ATTEMPTS 5			/* stop/remove/hibernate retries on engine errors */
#define MAX_TAKEOVERS 3			/* a job its provisioner died on this often is a poison job */
#define ARENA_CAP (32 * 1024 * 1024)
#define STOP_GRACE_S 10
#define CONFIGS_TAR_MAX (1024 * 1024)
#define URL_CACHE_TTL_S 300
#define AGENT_PORT_IN_CONTAINER 8000
#define LABEL_MANAGED "molecule.platform.managed"
#define MSG_MAX 512

/* Environment names the platform sets; a secret of the same name is not allowed to replace them. */
static const char *const reserved_env[] = { "WORKSPACE_ID", "WORKSPACE_CONFIG_PATH", "PLATFORM_URL",
	"MOLECULE_URL", "TIER", "AGENT_PORT", "PORT", "AGENT_URL" };

/* One claimed row of provision_jobs. */
struct job {
	const char *id, *workspace_id, *kind;
	struct json_object *payload;	/* arena-owned */
	int attempts;
	char id12[13];
	char container[32], volume[48], sessions[56];
};

/* What a provision needs from the workspace row, read under its row lock. */
struct ws_info {
	const char *name, *runtime, *status;
	long tier;
};

enum outcome { JOB_DONE, JOB_FAILED, JOB_RETRY, JOB_REQUEUE };

struct prov {
	struct conf conf;
	const char *conf_path;
	int restarts;
	char me[128];			/* host:pid, the claimed_by value */
	struct engine eng;
	int engine_ready;
	char engine_err[MSG_MAX + 64];
	struct arena arena;
	PGconn *listening;		/* the connection our LISTEN was issued on */
	int64_t next_beat_ms;
	int64_t next_poll_ms;
	int64_t lease_renewed_ms;
	struct job *cur;		/* for the build-event callback */
	char msg[MSG_MAX];		/* the current job's failure message */
};

static void setup(struct prov *p, int argc, char **argv);
static void run(struct prov *p, const sigset_t *none);
static void beat(struct prov *p);
static int term_pending(void);
static void ensure_listen(struct prov *p);
static void drain_notifies(struct prov *p);
static void take_over_dead_local(struct prov *p);
static void expire_leases(struct prov *p);
static void requeue_orphan(struct prov *p, const char *id, const char *holder, const char *ws,
    const char *kind, int attempts);
static int claim(struct prov *p, struct job *j);
static void finish(struct prov *p, struct job *j, enum outcome o);
static void renew_lease(struct prov *p, struct job *j, int force);
static enum outcome run_job(struct prov *p, struct job *j);
static enum outcome do_provision(struct prov *p, struct job *j);
static int prepare(struct prov *p, struct job *j, struct ws_info *w);
static enum outcome do_stop(struct prov *p, struct job *j, int hibernate);
static enum outcome do_remove(struct prov *p, struct job *j);
static enum outcome engine_failed(struct prov *p, struct job *j, const char *what);
static void fail_workspace(struct prov *p, struct job *j);
static int engine_up(struct prov *p);
static const char *platform_url(struct prov *p);
static int agent_address(struct prov *p, struct job *j, const struct ws_info *w, int *port,
    char *url, size_t len);
static int64_t lease_seconds(const struct prov *p);
static struct json_object *base_env(struct prov *p, struct job *j, const struct ws_info *w,
    const char *platform, int port, const char *url);
static int add_secrets(struct prov *p, struct job *j, struct json_object *env);
static int open_secret(struct prov *p, const char *scope, const char *key, const char *hex,
    const char *ver, struct json_object *env_map);
static int env_name_ok(const char *k);
static int issue_credentials(struct prov *p, struct job *j, char *token, char *inbound);
static int free_port(void);
static struct json_object *container_body(struct prov *p, struct job *j, const struct ws_info *w,
    const char *image, struct json_object *env, int port);
static char *config_yaml(struct prov *p, const struct ws_info *w, const char *model);
static char *yaml_quoted(struct arena *a, const char *s);
static int upload_configs(struct prov *p, struct job *j, const struct ws_info *w,
    const char *token, const char *inbound);
static void on_image_event(void *arg, const char *type, struct json_object *payload);
static void set_msg(struct prov *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void usage(void);

static const int prov_signals[] = { SIGTERM, SIGINT };
static const int prov_ignored[] = { SIGHUP };

int
main(int argc, char **argv)
{
	struct prov *p = xcalloc(1, sizeof(*p));
	sigset_t blocked, none;

	log_set_name(NAME);
	setup(p, argc, argv);
	sig_setup(prov_signals, NELEM(prov_signals), prov_ignored, NELEM(prov_ignored), &blocked);
	sigemptyset(&none);
	log_info("claiming provision jobs as %s", p->me);
	run(p, &none);
	log_info("stopped");
	engine_cleanup(&p->eng);
	arena_cleanup(&p->arena);
	db_close();
	kv_close();
	crypt_cleanup();
	conf_free(&p->conf);
	free(p);
	return 0;
}

/* Configuration, secrets layer, engine handle; a bad configuration exits 2 (not respawned). */
static void
setup(struct prov *p, int argc, char **argv)
{
	char err[512], host[64];
	const char *rs;
	int opt;

	while ((opt = getopt(argc, argv, "c:h")) != -1) {
		switch (opt) {
		case 'c': p->conf_path = optarg; break;
		default: usage();
		}
	}
	if (conf_load(&p->conf, p->conf_path, err, sizeof(err)) < 0)
		fatal("configuration: %s", err);
	conf_apply_logging(&p->conf);
	if (kv_configure(&p->conf) < 0)
		fatal("configuration: invalid redis_url");
	db_configure(&p->conf);
	if (crypt_init(&p->conf, err, sizeof(err)) < 0)
		fatal("secrets: %s", err);
	rs = getenv("MOLECULE_RESTARTS");
	p->restarts = rs ? atoi(rs) : 0;
	if (gethostname(host, sizeof(host)) < 0)
		snprintf(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = '\0';
	snprintf(p->me, sizeof(p->me), "%s:%d", host, (int)getpid());
	arena_init(&p->arena, ARENA_CAP);
	/* A bad DOCKER_HOST is not fatal: every job fails with the reason instead (visible in the UI). */
	if (engine_init(&p->eng, p->conf.docker_host, p->conf.docker_cert_path, err, sizeof(err)) < 0) {
		snprintf(p->engine_err, sizeof(p->engine_err), "container engine: %s", err);
		log_err("%s", p->engine_err);
	} else {
		p->engine_ready = 1;
	}
}

/*
 * The loop: beat, claim and run jobs until none is ready, then sleep on the LISTEN socket
 * until a NOTIFY, the slow poll or the next beat. Signals are only delivered in ppoll;
 * during a job term_pending() looks at them between steps.
 */
static void
run(struct prov *p, const sigset_t *none)
{
	struct job j;
	struct pollfd pfd;
	struct timespec ts;
	int64_t now, wake;
	int claimed, fd;

	if (p->conf.provision_enabled)
		take_over_dead_local(p);
	else
		log_info("provision_enabled is 0: no jobs are claimed here");
	while (!sig_term) {
		beat(p);
		ensure_listen(p);
		now = now_mono_ms();
		if (now >= p->next_poll_ms) {
			expire_leases(p);
			p->next_poll_ms = now + POLL_MS;
		}
		arena_reset(&p->arena);
		claimed = p->conf.provision_enabled ? claim(p, &j) : 0;
		if (claimed == 1) {
			p->cur = &j;
			finish(p, &j, run_job(p, &j));
			p->cur = NULL;
			if (term_pending())
				break;
			continue;
		}
		arena_reset(&p->arena);
		wake = p->next_beat_ms < p->next_poll_ms ? p->next_beat_ms : p->next_poll_ms;
		if (claimed < 0 && wake > now + 1000)
			wake = now + 1000;	/* a lost claim race: try again soon */
		now = now_mono_ms();
		wake = wake > now ? wake - now : 0;
		ts.tv_sec = (time_t)(wake / 1000);
		ts.tv_nsec = (long)(wake % 1000) * 1000000L;
		fd = p->listening != NULL ? PQsocket(p->listening) : -1;
		if (fd < 0) {
			ppoll(NULL, 0, &ts, none);
			continue;
		}
		pfd.fd = fd;
		pfd.events = POLLIN;
		pfd.revents = 0;
		if (ppoll(&pfd, 1, &ts, none) > 0)
			drain_notifies(p);
	}
}

/* liveness at most every heartbeat_interval and at least every 5 s. */
static void
beat(struct prov *p)
{
	int64_t now = now_mono_ms(), every = p->conf.heartbeat_interval_s * 1000;

	if (now < p->next_beat_ms)
		return;
	liveness_beat(NAME, getpid(), p->restarts);
	p->next_beat_ms = now + (every < BEAT_MAX_MS ? every : BEAT_MAX_MS);
}

/* SIGTERM/SIGINT arrived (flag set in ppoll, or still pending while we work). */
static int
term_pending(void)
{
	sigset_t pending;

	if (sig_term)
		return 1;
	if (sigpending(&pending) < 0)
		return 0;
	return sigismember(&pending, SIGTERM) == 1 || sigismember(&pending, SIGINT) == 1;
}

/* LISTEN again whenever db.c handed us a new connection (first use, or after a reconnect). */
static void
ensure_listen(struct prov *p)
{
	PGconn *c = db_conn();

	if (c == NULL) {
		p->listening = NULL;
		return;
	}
	if (c == p->listening)
		return;
	if (db_exec(&p->arena, "LISTEN " CHANNEL, 0, NULL) == NULL) {
		p->listening = NULL;
		return;
	}
	p->listening = c;
	arena_reset(&p->arena);
}

/* Consumes pending notifications: their content does not matter, the claim query decides. */
static void
drain_notifies(struct prov *p)
{
	PGnotify *n;

	if (p->listening == NULL || PQconsumeInput(p->listening) == 0)
		return;
	while ((n = PQnotifies(p->listening)) != NULL)
		PQfreemem(n);
}

/*
 * At start: running jobs claimed on this host by a process that no longer exists (a crash or
 * SIGKILL of our predecessor) go back to the queue at once instead of waiting out the lease.
 */
static void
take_over_dead_local(struct prov *p)
{
	const char *params[2];
	char host[128], *colon;
	PGresult *res;
	int i;
	long pid;

	snprintf(host, sizeof(host), "%s", p->me);
	colon = strrchr(host, ':');
	if (colon != NULL)
		colon[1] = '\0';
	params[0] = host;
	res = db_exec(&p->arena, "SELECT id, claimed_by, workspace_id, kind, attempts "
	    "FROM provision_jobs WHERE status = 'running' AND starts_with(claimed_by, $1)", 1, params);
	for (i = 0; res != NULL && i < PQntuples(res); i++) {
		pid = strtol(PQgetvalue(res, i, 1) + strlen(host), NULL, 10);
		if (pid <= 0 || pid == (long)getpid() || (kill((pid_t)pid, 0) < 0 && errno == ESRCH))
			requeue_orphan(p, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1),
			    PQgetvalue(res, i, 2), PQgetvalue(res, i, 3), atoi(PQgetvalue(res, i, 4)));
	}
	arena_reset(&p->arena);
}

/*
 * A job whose holder died goes back to the queue, unless holders keep dying on it: then it
 * fails (and its workspace with it) instead of crash-looping every provisioner it meets.
 */
static void
requeue_orphan(struct prov *p, const char *id, const char *holder, const char *ws,
    const char *kind, int attempts)
{
	const char *params[3] = { id, holder, NULL };
	struct job j;

	if (attempts < MAX_TAKEOVERS) {
		if (db_exec(&p->arena, "UPDATE provision_jobs SET status = 'queued', "
		    "claimed_by = NULL, lease_until = NULL, updated_at = now() "
		    "WHERE id = $1::uuid AND claimed_by = $2 AND status = 'running'", 2, params) != NULL)
			log_warn("job %s of dead %s requeued", id, holder);
		return;
	}
	set_msg(p, "the provisioner stopped %d times while running this %s job; giving up",
	    attempts, kind);
	params[2] = p->msg;
	if (db_exec(&p->arena, "UPDATE provision_jobs SET status = 'failed', lease_until = NULL, "
	    "last_error = $3, updated_at = now() WHERE id = $1::uuid AND claimed_by = $2 "
	    "AND status = 'running'", 3, params) == NULL)
		return;
	log_err("job %s (workspace %s): %s", id, ws, p->msg);
	if (strcmp(kind, "provision") == 0 || strcmp(kind, "restart") == 0) {
		memset(&j, 0, sizeof(j));
		j.id = id;
		j.workspace_id = ws;
		fail_workspace(p, &j);
	}
}

/* Jobs whose holder stopped renewing its lease (another host died) go back to the queue. */
static void
expire_leases(struct prov *p)
{
	PGresult *res = db_exec(&p->arena, "SELECT id, claimed_by, workspace_id, kind, attempts "
	    "FROM provision_jobs WHERE status = 'running' AND lease_until < now()", 0, NULL);
	int i;

	for (i = 0; res != NULL && i < PQntuples(res); i++) {
		log_warn("job %s (workspace %s): lease of %s expired", PQgetvalue(res, i, 0),
		    PQgetvalue(res, i, 2), PQgetvalue(res, i, 1));
		requeue_orphan(p, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1), PQgetvalue(res, i, 2),
		    PQgetvalue(res, i, 3), atoi(PQgetvalue(res, i, 4)));
	}
	arena_reset(&p->arena);
}

/*
 * Claims the oldest ready job of a workspace with no running job. SKIP LOCKED keeps
 * provisioners off each other's rows; the unique index on running rows settles the race of
 * two claims for one workspace (23505: the loser retries soon). 1 claimed, 0 none, -1 retry.
 */
static int
claim(struct prov *p, struct job *j)
{
	const char *params[2];
	char lease[24];
	PGresult *res;

	memset(j, 0, sizeof(*j));
	snprintf(lease, sizeof(lease), "%lld", (long long)lease_seconds(p));
	params[0] = p->me;
	params[1] = lease;
	res = db_exec(&p->arena, "UPDATE provision_jobs SET status = 'running', claimed_by = $1, "
	    "lease_until = now() + make_interval(secs => $2::int), attempts = attempts + 1, "
	    "updated_at = now() WHERE id = (SELECT q.id FROM provision_jobs q "
	    " WHERE q.status = 'queued' AND q.not_before <= now() AND NOT EXISTS ("
	    "  SELECT 1 FROM provision_jobs r WHERE r.workspace_id = q.workspace_id "
	    "  AND (r.status = 'running' OR (r.status = 'queued' AND (r.created_at, r.id) < "
	    "  (q.created_at, q.id)))) "
	    " ORDER BY q.created_at, q.id LIMIT 1 FOR UPDATE SKIP LOCKED) "
	    "RETURNING id, workspace_id, kind, payload::text, attempts", 2, params);
	if (res == NULL)
		return strcmp(db_last_sqlstate(), "23505") == 0 ? -1 : 0;
	if (PQntuples(res) == 0)
		return 0;
	j->id = PQgetvalue(res, 0, 0);
	j->workspace_id = PQgetvalue(res, 0, 1);
	j->kind = PQgetvalue(res, 0, 2);
	j->payload = jsonx_own(&p->arena, jsonx_parse(PQgetvalue(res, 0, 3),
	    (size_t)PQgetlength(res, 0, 3)));
	j->attempts = atoi(PQgetvalue(res, 0, 4));
	snprintf(j->id12, sizeof(j->id12), "%.12s", j->workspace_id);
	snprintf(j->container, sizeof(j->container), "ws-%s", j->id12);
	snprintf(j->volume, sizeof(j->volume), "ws-%s-configs", j->id12);
	snprintf(j->sessions, sizeof(j->sessions), "ws-%s-claude-sessions", j->id12);
	p->lease_renewed_ms = now_mono_ms();
	p->msg[0] = '\0';
	log_info("job %s: %s of workspace %s (attempt %d)", j->id, j->kind, j->workspace_id,
	    j->attempts);
	return 1;
}

/* Records the job's outcome; only while we still hold it (a takeover makes this a no-op). */
static void
finish(struct prov *p, struct job *j, enum outcome o)
{
	const char *params[4];
	char backoff[24];

	params[0] = j->id;
	params[1] = p->me;
	switch (o) {
	case JOB_DONE:
		db_exec(&p->arena, "UPDATE provision_jobs SET status = 'done', lease_until = NULL, "
		    "updated_at = now() WHERE id = $1::uuid AND claimed_by = $2", 2, params);
		log_info("job %s: %s done", j->id, j->kind);
		break;
	case JOB_FAILED:
		params[2] = p->msg;
		db_exec(&p->arena, "UPDATE provision_jobs SET status = 'failed', lease_until = NULL, "
		    "last_error = $3, updated_at = now() WHERE id = $1::uuid AND claimed_by = $2",
		    3, params);
		log_warn("job %s: %s failed: %s", j->id, j->kind, p->msg);
		break;
	case JOB_RETRY:
		snprintf(backoff, sizeof(backoff), "%d", 1 << (j->attempts < 6 ? j->attempts : 6));
		params[2] = p->msg;
		params[3] = backoff;
		db_exec(&p->arena, "UPDATE provision_jobs SET status = 'queued', claimed_by = NULL, "
		    "lease_until = NULL, last_error = $3, not_before = now() + "
		    "make_interval(secs => $4::int), updated_at = now() "
		    "WHERE id = $1::uuid AND claimed_by = $2", 4, params);
		log_warn("job %s: %s retried in %s s: %s", j->id, j->kind, backoff, p->msg);
		break;
	case JOB_REQUEUE:
		/* Stopping: the attempt does not count, the next provisioner starts it again. */
		db_exec(&p->arena, "UPDATE provision_jobs SET status = 'queued', claimed_by = NULL, "
		    "lease_until = NULL, attempts = greatest(attempts - 1, 0), updated_at = now() "
		    "WHERE id = $1::uuid AND claimed_by = $2", 2, params);
		log_info("job %s: %s requeued (stopping)", j->id, j->kind);
		break;
	}
}

/* Keeps the lease while a long step (a build) runs; force=1 renews now. */
static void
renew_lease(struct prov *p, struct job *j, int force)
{
	const char *params[3];
	char lease[24];
	struct arena a;

	if (!force && now_mono_ms() - p->lease_renewed_ms < LEASE_RENEW_MS)
		return;
	p->lease_renewed_ms = now_mono_ms();
	snprintf(lease, sizeof(lease), "%lld", (long long)lease_seconds(p));
	params[0] = j->id;
	params[1] = p->me;
	params[2] = lease;
	/* Its own small arena: the build callback runs in the middle of the job's arena work. */
	arena_init(&a, 64 * 1024);
	db_exec(&a, "UPDATE provision_jobs SET lease_until = now() + make_interval(secs => $3::int) "
	    "WHERE id = $1::uuid AND claimed_by = $2", 3, params);
	arena_cleanup(&a);
}

static enum outcome
run_job(struct prov *p, struct job *j)
{
	if (strcmp(j->kind, "provision") == 0 || strcmp(j->kind, "restart") == 0)
		return do_provision(p, j);
	if (strcmp(j->kind, "stop") == 0)
		return do_stop(p, j, 0);
	if (strcmp(j->kind, "hibernate") == 0)
		return do_stop(p, j, 1);
	if (strcmp(j->kind, "remove") == 0)
		return do_remove(p, j);
	set_msg(p, "unknown job kind %s", j->kind);
	return JOB_FAILED;
}

/*
 * Start (subsystems.md §3.2, with /configs written before the container starts): volume,
 * image, credentials, stale container out, create, upload /configs, start. Any failure marks
 * the workspace failed with the reason; nothing is retried behind the user's back.
 */
static enum outcome
do_provision(struct prov *p, struct job *j)
{
	struct json_object *env = NULL, *body = NULL, *labels = NULL;
	PGresult *res;
	struct ws_info w;
	char image[512], err[MSG_MAX - 64], token[TOKEN_LEN + 1], inbound[TOKEN_LEN + 1], cid[128];
	char url[64];
	const char *params[2], *pu;
	enum outcome o = JOB_FAILED;
	int port = AGENT_PORT_IN_CONTAINER, created = 0, rc;

	token[0] = inbound[0] = '\0';
	rc = prepare(p, j, &w);
	if (rc <= 0) {
		if (rc < 0)
			return JOB_RETRY;
		return JOB_DONE;
	}
	if ((pu = platform_url(p)) == NULL) {
		set_msg(p, "platform_url (PLATFORM_URL) is not configured: containers cannot reach "
		    "the platform");
		goto fail;
	}
	if (engine_up(p) < 0)
		goto fail;
	labels = json_object_new_object();
	json_object_object_add(labels, LABEL_MANAGED, json_object_new_string("true"));
	json_object_object_add(labels, "molecule.workspace.id",
	    json_object_new_string(j->workspace_id));
	if (engine_volume_create(&p->eng, j->volume, labels) < 0) {
		set_msg(p, "container engine: creating volume %s failed: %s", j->volume,
		    engine_error(&p->eng));
		goto fail;
	}
	if (term_pending())
		goto requeue;

	err[0] = '\0';
	if (images_ensure(&p->eng, &p->conf, w.runtime, on_image_event, p, image, sizeof(image),
	    err, sizeof(err)) < 0) {
		set_msg(p, "%s", err[0] != '\0' ? err : "image unavailable");
		goto fail;
	}
	renew_lease(p, j, 1);
	if (term_pending())
		goto requeue;

	if (agent_address(p, j, &w, &port, url, sizeof(url)) < 0)
		goto fail;
	if ((env = base_env(p, j, &w, pu, port, url)) == NULL)
		goto fail;
	if (add_secrets(p, j, env) < 0)
		goto fail;
	if (issue_credentials(p, j, token, inbound) < 0)
		goto fail;

	if (engine_container_remove(&p->eng, j->container) < 0) {
		set_msg(p, "container engine: removing the stale container %s failed: %s",
		    j->container, engine_error(&p->eng));
		goto fail;
	}
	body = container_body(p, j, &w, image, env, atoi(strrchr(url, ':') + 1));
	env = NULL;	/* now inside body */
	if (body == NULL)
		goto fail;
	if (engine_container_create(&p->eng, j->container, body, cid, sizeof(cid)) < 0) {
		set_msg(p, "container engine: creating %s from %s failed: %s", j->container, image,
		    engine_error(&p->eng));
		goto fail;
	}
	created = 1;
	if (upload_configs(p, j, &w, token, inbound) < 0)
		goto fail;
	if (term_pending())
		goto requeue;
	if (engine_container_start(&p->eng, j->container) < 0) {
		set_msg(p, "container engine: starting %s failed: %s", j->container,
		    engine_error(&p->eng));
		goto fail;
	}

	/* The agent registers this URL itself; written now so the A2A proxy knows it earlier. */
	params[0] = j->workspace_id;
	params[1] = url;
	res = db_exec(&p->arena, "UPDATE workspaces SET url = $2, updated_at = now() "
	    "WHERE id = $1::uuid AND status = 'provisioning' RETURNING 1", 2, params);
	if (res == NULL)
		log_warn("workspace %s: url not stored", j->workspace_id);
	/* Paused or removed meanwhile: its stop job follows; the proxy must not route to it. */
	else if (PQntuples(res) == 1)
		freeReplyObject(kv_command(NULL, "SET ws:%s:url %s EX %d", j->workspace_id, url,
		    URL_CACHE_TTL_S));
	log_info("workspace %s: container %s started from %s (%s)", j->workspace_id, j->container,
	    image, url);
	o = JOB_DONE;
	goto out;
requeue:
	o = JOB_REQUEUE;
	if (created)
		engine_container_remove(&p->eng, j->container);
	goto out;
fail:
	if (p->msg[0] == '\0')
		set_msg(p, "provisioning failed");
	if (created && engine_container_remove(&p->eng, j->container) < 0)
		log_warn("workspace %s: removing the failed container: %s", j->workspace_id,
		    engine_error(&p->eng));
	fail_workspace(p, j);
	o = JOB_FAILED;
out:
	OPENSSL_cleanse(token, sizeof(token));
	OPENSSL_cleanse(inbound, sizeof(inbound));
	json_object_put(labels);
	json_object_put(env);
	json_object_put(body);
	return o;
}

/*
 * Reads the workspace under a row lock and decides whether the job still applies. A restart
 * (secret change, sweeper, manual) of a running workspace moves it to provisioning with its
 * WORKSPACE_PROVISIONING event here. 1 go ahead, 0 nothing to do (job done), -1 database error.
 */
static int
prepare(struct prov *p, struct job *j, struct ws_info *w)
{
	const char *params[1] = { j->workspace_id };
	struct json_object *ev;
	PGresult *res;
	int restart = strcmp(j->kind, "restart") == 0, moved = 0;

	if (db_begin(&p->arena) < 0)
		return -1;
	res = db_exec(&p->arena, "SELECT name, COALESCE(runtime, 'langgraph'), status::text, "
	    "COALESCE(tier, 3) FROM workspaces WHERE id = $1::uuid FOR UPDATE", 1, params);
	if (res == NULL) {
		db_rollback();
		return -1;
	}
	if (PQntuples(res) == 0) {
		db_rollback();
		log_info("job %s: workspace %s is gone", j->id, j->workspace_id);
		return 0;
	}
	w->name = PQgetvalue(res, 0, 0);
	w->runtime = PQgetvalue(res, 0, 1);
	w->status = PQgetvalue(res, 0, 2);
	w->tier = strtol(PQgetvalue(res, 0, 3), NULL, 10);
	if (strcmp(w->runtime, "external") == 0 || (strcmp(w->status, "provisioning") != 0 &&
	    (!restart || strcmp(w->status, "removed") == 0 || strcmp(w->status, "paused") == 0 ||
	    strcmp(w->status, "hibernating") == 0 || strcmp(w->status, "hibernated") == 0 ||
	    strcmp(w->status, "awaiting_agent") == 0))) {
		db_rollback();
		log_info("job %s: workspace %s is %s (%s): nothing to do", j->id, j->workspace_id,
		    w->status, w->runtime);
		return 0;
	}
	if (strcmp(w->status, "provisioning") != 0) {
		if (db_exec(&p->arena, "UPDATE workspaces SET status = 'provisioning', url = NULL, "
		    "updated_at = now() WHERE id = $1::uuid", 1, params) == NULL)
			goto fail;
		ev = jsonx_own(&p->arena, json_object_new_object());
		if (ev == NULL)
			goto fail;
		json_object_object_add(ev, "name", json_object_new_string(w->name));
		json_object_object_add(ev, "runtime", json_object_new_string(w->runtime));
		json_object_object_add(ev, "tier", json_object_new_int64(w->tier));
		if (events_record(&p->arena, "WORKSPACE_PROVISIONING", j->workspace_id, ev) < 0)
			goto fail;
		moved = 1;
	}
	if (db_commit(&p->arena) < 0)
		goto fail;
	if (moved)
		kv_forget_workspace(j->workspace_id);
	events_broadcast(&p->arena, "WORKSPACE_PROVISIONING_STARTED", j->workspace_id, NULL);
	return 1;
fail:
	db_rollback();
	return -1;
}

/*
 * Pause (stop) and hibernate: the container goes (force-remove, so an unless-stopped restart
 * policy cannot bring it back), the volume stays. Hibernate then completes hibernating ->
 * hibernated with WORKSPACE_HIBERNATED in one transaction.
 */
static enum outcome
do_stop(struct prov *p, struct job *j, int hibernate)
{
	const char *params[1] = { j->workspace_id };
	struct json_object *ev;
	PGresult *res;

	if (engine_up(p) < 0 || engine_container_remove(&p->eng, j->container) < 0)
		return engine_failed(p, j, "stopping the container");
	if (!hibernate)
		return JOB_DONE;
	if (db_begin(&p->arena) < 0)
		return JOB_RETRY;
	res = db_exec(&p->arena, "UPDATE workspaces SET status = 'hibernated', updated_at = now() "
	    "WHERE id = $1::uuid AND status = 'hibernating' RETURNING name, COALESCE(tier, 3)",
	    1, params);
	if (res == NULL)
		goto fail;
	if (PQntuples(res) == 1) {
		ev = jsonx_own(&p->arena, json_object_new_object());
		if (ev == NULL)
			goto fail;
		json_object_object_add(ev, "name", json_object_new_string(PQgetvalue(res, 0, 0)));
		json_object_object_add(ev, "tier", json_object_new_int64(strtol(PQgetvalue(res, 0, 1),
		    NULL, 10)));
		if (events_record(&p->arena, "WORKSPACE_HIBERNATED", j->workspace_id, ev) < 0)
			goto fail;
	}
	if (db_commit(&p->arena) < 0)
		goto fail;
	return JOB_DONE;
fail:
	db_rollback();
	set_msg(p, "recording hibernation failed");
	return JOB_RETRY;
}

/* Delete: container and the workspace's volumes go; the row may already be purged. */
static enum outcome
do_remove(struct prov *p, struct job *j)
{
	if (engine_up(p) < 0 || engine_container_remove(&p->eng, j->container) < 0)
		return engine_failed(p, j, "removing the container");
	if (engine_volume_remove(&p->eng, j->volume) < 0)
		return engine_failed(p, j, "removing the config volume");
	if (engine_volume_remove(&p->eng, j->sessions) < 0)
		return engine_failed(p, j, "removing the session volume");
	log_info("workspace %s: container and volumes removed", j->workspace_id);
	return JOB_DONE;
}

/* Engine trouble on stop/remove/hibernate: retried with backoff, then failed (the sweeper's orphan pass mops up). */
static enum outcome
engine_failed(struct prov *p, struct job *j, const char *what)
{
	const char *params[2];

	if (p->msg[0] == '\0')
		set_msg(p, "container engine: %s %s failed: %s", what, j->container,
		    engine_error(&p->eng));
	if (j->attempts < MAX_ATTEMPTS)
		return JOB_RETRY;
	if (strcmp(j->kind, "hibernate") == 0) {
		params[0] = j->workspace_id;
		params[1] = p->msg;
		db_exec(&p->arena, "UPDATE workspaces SET status = 'failed', last_sample_error = $2, "
		    "updated_at = now() WHERE id = $1::uuid AND status = 'hibernating'", 2, params);
	}
	return JOB_FAILED;
}

/*
 * failed + last_sample_error + WORKSPACE_PROVISION_FAILED {error} in one transaction, only
 * while the workspace is still provisioning (a delete or pause meanwhile wins).
 */
static void
fail_workspace(struct prov *p, struct job *j)
{
	const char *params[2] = { j->workspace_id, p->msg };
	struct json_object *ev;
	PGresult *res;

	if (db_begin(&p->arena) < 0)
		return;
	res = db_exec(&p->arena, "UPDATE workspaces SET status = 'failed', last_sample_error = $2, "
	    "url = NULL, updated_at = now() WHERE id = $1::uuid AND status = 'provisioning' "
	    "RETURNING 1", 2, params);
	if (res == NULL)
		goto fail;
	if (PQntuples(res) == 1) {
		ev = jsonx_own(&p->arena, json_object_new_object());
		if (ev == NULL)
			goto fail;
		json_object_object_add(ev, "error", json_object_new_string(p->msg));
		if (events_record(&p->arena, "WORKSPACE_PROVISION_FAILED", j->workspace_id, ev) < 0)
			goto fail;
	}
	if (db_commit(&p->arena) < 0)
		goto fail;
	log_warn("workspace %s: provisioning failed: %s", j->workspace_id, p->msg);
	return;
fail:
	db_rollback();
	log_err("workspace %s: could not record the provisioning failure", j->workspace_id);
}

/* 0 when the engine answers _ping, else -1 with the reason in p->msg. */
static int
engine_up(struct prov *p)
{
	if (!p->engine_ready) {
		set_msg(p, "%s", p->engine_err);
		return -1;
	}
	if (engine_ping(&p->eng) < 0) {
		set_msg(p, "container engine unreachable at %s: %s", p->eng.host,
		    engine_error(&p->eng));
		return -1;
	}
	return 0;
}

/* platform_url, else external_platform_url, without a trailing slash; NULL when neither is set. */
static const char *
platform_url(struct prov *p)
{
	const char *u = p->conf.platform_url;
	size_t n;

	if (u == NULL || u[0] == '\0')
		u = p->conf.external_platform_url;
	if (u == NULL || u[0] == '\0')
		return NULL;
	n = strlen(u);
	while (n > 0 && u[n - 1] == '/')
		n--;
	return arena_strndup(&p->arena, u, n);
}

/*
 * Where the agent listens and the URL the platform reaches it at. Host networking: a free loopback
 * port, which the agent binds itself. Default bridge: the container's port published on a free
 * loopback port. A named network: the container's name and port, as the reference's internal URL.
 * Returns 0, or -1 with the message set.
 */
static int
agent_address(struct prov *p, struct job *j, const struct ws_info *w, int *port, char *url,
    size_t len)
{
	/* Tier 4 runs on the host's network whatever the configuration says (container_body). */
	int host_net = strcmp(p->conf.container_network, "host") == 0 || w->tier == 4;
	int host_port;

	*port = AGENT_PORT_IN_CONTAINER;
	if (!host_net && p->conf.container_network[0] != '\0') {
		snprintf(url, len, "http://%s:%d", j->container, *port);
		return 0;
	}
	if ((host_port = free_port()) < 0) {
		set_msg(p, "no free loopback port for the agent");
		return -1;
	}
	if (host_net)
		*port = host_port;
	snprintf(url, len, "http://127.0.0.1:%d", host_port);
	return 0;
}

static int64_t
lease_seconds(const struct prov *p)
{
	return 2 * p->conf.image_build_timeout_s + IMAGES_GIT_BUDGET_S + LEASE_MARGIN_S;
}

/* The platform's own variables, before any secret (which may not override them). NULL on OOM. */
static struct json_object *
base_env(struct prov *p, struct job *j, const struct ws_info *w, const char *platform, int port,
    const char *url)
{
	struct json_object *env = json_object_new_array();

	if (env == NULL)
		return NULL;
	json_object_array_add(env, json_object_new_string(arena_printf(&p->arena,
	    "WORKSPACE_ID=%s", j->workspace_id)));
	json_object_array_add(env, json_object_new_string("WORKSPACE_CONFIG_PATH=/configs"));
	json_object_array_add(env, json_object_new_string(arena_printf(&p->arena,
	    "PLATFORM_URL=%s", platform)));
	json_object_array_add(env, json_object_new_string(arena_printf(&p->arena,
	    "MOLECULE_URL=%s", platform)));
	json_object_array_add(env, json_object_new_string(arena_printf(&p->arena, "TIER=%ld",
	    w->tier)));
	json_object_array_add(env, json_object_new_string(arena_printf(&p->arena, "AGENT_PORT=%d",
	    port)));
	json_object_array_add(env, json_object_new_string(arena_printf(&p->arena, "PORT=%d", port)));
	/* What the agent registers: register refuses IP literals on loopback, not "localhost". */
	if (str_has_prefix(url, "http://127.0.0.1:"))
		json_object_array_add(env, json_object_new_string(arena_printf(&p->arena,
		    "AGENT_URL=http://localhost:%s", strrchr(url, ':') + 1)));
	else
		json_object_array_add(env, json_object_new_string(arena_printf(&p->arena,
		    "AGENT_URL=%s", url)));
	return env;
}

/*
 * Global secrets, then the workspace's (which override them), decrypted into "K=V" entries.
 * Reserved names and names that are not environment names are skipped (named in the log,
 * never the value). 0, or -1 with the reason in p->msg.
 */
static int
add_secrets(struct prov *p, struct job *j, struct json_object *env)
{
	const char *params[1] = { j->workspace_id };
	struct json_object *map = json_object_new_object();
	PGresult *g, *w;
	int i, rc = -1;

	if (map == NULL)
		return -1;
	g = db_exec(&p->arena, "SELECT key, encode(encrypted_value, 'hex'), encryption_version "
	    "FROM global_secrets ORDER BY key", 0, NULL);
	w = db_exec(&p->arena, "SELECT key, encode(encrypted_value, 'hex'), encryption_version "
	    "FROM workspace_secrets WHERE workspace_id = $1::uuid ORDER BY key", 1, params);
	if (g == NULL || w == NULL) {
		set_msg(p, "reading secrets failed");
		goto out;
	}
	for (i = 0; i < PQntuples(g); i++)
		if (open_secret(p, "global", PQgetvalue(g, i, 0), PQgetvalue(g, i, 1),
		    PQgetvalue(g, i, 2), map) < 0)
			goto out;
	for (i = 0; i < PQntuples(w); i++)
		if (open_secret(p, j->workspace_id, PQgetvalue(w, i, 0), PQgetvalue(w, i, 1),
		    PQgetvalue(w, i, 2), map) < 0)
			goto out;
	{
		json_object_object_foreach(map, k, v) {
			char *kv = arena_printf(&p->arena, "%s=%s", k, json_object_get_string(v));

			if (kv == NULL)
				goto out;
			json_object_array_add(env, json_object_new_string(kv));
			OPENSSL_cleanse(kv, strlen(kv));
		}
	}
	rc = 0;
out:
	json_object_put(map);
	return rc;
}

/* Decrypts one secret into map[key]. 0 (stored or skipped), -1 with p->msg set. */
static int
open_secret(struct prov *p, const char *scope, const char *key, const char *hex, const char *ver,
    struct json_object *env_map)
{
	unsigned char *blob = NULL, *pt = NULL;
	size_t blen = 0, ptlen = 0, i;
	char err[256];
	enum crypt_result cr;
	int rc = -1;

	if (!env_name_ok(key)) {
		log_warn("secret %s is not an environment variable name: not passed", key);
		return 0;
	}
	for (i = 0; i < NELEM(reserved_env); i++) {
		if (strcmp(key, reserved_env[i]) == 0) {
			log_warn("secret %s would override a platform variable: not passed", key);
			return 0;
		}
	}
	if (hex_decode(hex, &blob, &blen) < 0) {
		set_msg(p, "secret %s is malformed", key);
		goto out;
	}
	err[0] = '\0';
	cr = crypt_open(scope, key, atoi(ver), blob, blen, &pt, &ptlen, err, sizeof(err));
	if (cr == CRYPT_UNAVAILABLE) {
		set_msg(p, "secrets key source unavailable while decrypting %s", key);
		goto out;
	}
	if (cr != CRYPT_OK) {
		set_msg(p, "failed to decrypt secret %s", key);
		goto out;
	}
	if (memchr(pt, '\0', ptlen) != NULL) {
		log_warn("secret %s contains a NUL byte: not passed", key);
		rc = 0;
		goto out;
	}
	json_object_object_add(env_map, key, json_object_new_string_len((const char *)pt,
	    (int)ptlen));
	rc = 0;
out:
	if (pt != NULL) {
		OPENSSL_cleanse(pt, ptlen);
		free(pt);
	}
	if (blob != NULL) {
		OPENSSL_cleanse(blob, blen);
		free(blob);
	}
	return rc;
}

/* [A-Za-z_][A-Za-z0-9_]* */
static int
env_name_ok(const char *k)
{
	const char *c;

	if (k == NULL || k[0] == '\0' || (k[0] >= '0' && k[0] <= '9'))
		return 0;
	for (c = k; *c != '\0'; c++)
		if (!((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') ||
		    (*c >= '0' && *c <= '9') || *c == '_'))
			return 0;
	return 1;
}

/*
 * A fresh workspace token (every older one revoked) and a fresh inbound secret (stored sealed,
 * as register hands it out), in one transaction. 0, or -1 with p->msg set.
 */
static int
issue_credentials(struct prov *p, struct job *j, char *token, char *inbound)
{
	unsigned char *blob = NULL;
	size_t blen = 0;
	char err[256], ver[16], *hex = NULL;
	const char *params[3];
	int version = 0, rc = -1;

	if (token_generate(inbound) < 0) {
		set_msg(p, "no randomness for the inbound secret");
		return -1;
	}
	err[0] = '\0';
	if (crypt_seal(j->workspace_id, "platform_inbound_secret", (const unsigned char *)inbound,
	    strlen(inbound), &blob, &blen, &version, err, sizeof(err)) != CRYPT_OK) {
		set_msg(p, "sealing the inbound secret failed");
		goto out;
	}
	if ((hex = arena_alloc(&p->arena, blen * 2 + 1)) == NULL)
		goto out;
	hex_encode(blob, blen, hex);
	snprintf(ver, sizeof(ver), "%d", version);
	if (db_begin(&p->arena) < 0)
		goto dbfail;
	params[0] = j->workspace_id;
	params[1] = hex;
	params[2] = ver;
	if (tokens_revoke_workspace(&p->arena, j->workspace_id) < 0 ||
	    tokens_mint_workspace(&p->arena, j->workspace_id, token) < 0 ||
	    db_exec(&p->arena, "UPDATE workspaces SET platform_inbound_secret = decode($2, 'hex'), "
	    "platform_inbound_secret_version = $3::int WHERE id = $1::uuid", 3, params) == NULL ||
	    db_commit(&p->arena) < 0) {
		db_rollback();
		goto dbfail;
	}
	rc = 0;
	goto out;
dbfail:
	set_msg(p, "issuing the workspace token failed");
out:
	if (blob != NULL) {
		OPENSSL_cleanse(blob, blen);
		free(blob);
	}
	return rc;
}

/* A free loopback TCP port (bind to 0, read it back); the agent binds it moments later. */
static int
free_port(void)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	int fd, port = -1;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sin, &len) == 0)
		port = ntohs(sin.sin_port);
	close(fd);
	return port;
}

/*
 * The ContainerCreate body: image, env (consumed), labels, the config volume, restart policy,
 * network, and the tier's limits (subsystems.md §3.3; tier 1 gets caps too, unlike the
 * reference). host_port is where the agent is reached on 127.0.0.1. NULL on OOM.
 */
static struct json_object *
container_body(struct prov *p, struct job *j, const struct ws_info *w, const char *image,
    struct json_object *env, int host_port)
{
	struct json_object *b = json_object_new_object(), *hc = json_object_new_object();
	struct json_object *labels = json_object_new_object(), *binds = json_object_new_array();
	struct json_object *rp = json_object_new_object(), *o, *a;
	const char *net = p->conf.container_network;
	int tier = w->tier >= 1 && w->tier <= 4 ? (int)w->tier : 2;
	char buf[64];

	if (b == NULL || hc == NULL || labels == NULL || binds == NULL || rp == NULL) {
		json_object_put(b);
		json_object_put(hc);
		json_object_put(labels);
		json_object_put(binds);
		json_object_put(rp);
		json_object_put(env);
		return NULL;
	}
	json_object_object_add(b, "Image", json_object_new_string(image));
	json_object_object_add(b, "Env", env);
	json_object_object_add(labels, LABEL_MANAGED, json_object_new_string("true"));
	json_object_object_add(labels, "molecule.workspace.id", json_object_new_string(j->workspace_id));
	json_object_object_add(labels, "molecule.workspace.runtime", json_object_new_string(w->runtime));
	json_object_object_add(b, "Labels", labels);
	json_object_object_add(b, "HostConfig", hc);

	json_object_array_add(binds, json_object_new_string(arena_printf(&p->arena, "%s:/configs",
	    j->volume)));
	json_object_object_add(hc, "Binds", binds);
	json_object_object_add(rp, "Name", json_object_new_string("unless-stopped"));
	json_object_object_add(hc, "RestartPolicy", rp);

	switch (tier) {
	case 1:
		json_object_object_add(hc, "ReadonlyRootfs", json_object_new_boolean(1));
		o = json_object_new_object();
		json_object_object_add(o, "/tmp", json_object_new_string("rw,noexec,nosuid,size=64m"));
		json_object_object_add(hc, "Tmpfs", o);
		a = json_object_new_array();
		json_object_array_add(a, json_object_new_string("ALL"));
		json_object_object_add(hc, "CapDrop", a);
		a = json_object_new_array();
		json_object_array_add(a, json_object_new_string("no-new-privileges"));
		json_object_object_add(hc, "SecurityOpt", a);
		break;
	case 3:
		json_object_object_add(hc, "Privileged", json_object_new_boolean(1));
		break;
	case 4:
		json_object_object_add(hc, "Privileged", json_object_new_boolean(1));
		json_object_object_add(hc, "PidMode", json_object_new_string("host"));
		net = "host";
		if (p->eng.unix_path[0] != '\0')
			json_object_array_add(binds, json_object_new_string(arena_printf(&p->arena,
			    "%s:/var/run/docker.sock", p->eng.unix_path)));
		break;
	default:
		break;
	}
	json_object_object_add(hc, "Memory",
	    json_object_new_int64(p->conf.tier_memory_mb[tier - 1] * 1024 * 1024));
	json_object_object_add(hc, "NanoCpus",
	    json_object_new_int64(p->conf.tier_cpu_shares[tier - 1] * 1000000000 / 1024));

	if (net != NULL && net[0] != '\0') {
		json_object_object_add(hc, "NetworkMode", json_object_new_string(net));
	}
	if (net == NULL || net[0] == '\0') {
		/* Default bridge: the agent listens on 8000 inside, published on loopback only. A named
		 * network reaches it by container name (agent_address), nothing to publish. */
		o = json_object_new_object();
		json_object_object_add(o, "8000/tcp", json_object_new_object());
		json_object_object_add(b, "ExposedPorts", o);
		o = json_object_new_object();
		a = json_object_new_array();
		json_object_array_add(a, json_object_new_object());
		json_object_object_add(json_object_array_get_idx(a, 0), "HostIp",
		    json_object_new_string("127.0.0.1"));
		snprintf(buf, sizeof(buf), "%d", host_port);
		json_object_object_add(json_object_array_get_idx(a, 0), "HostPort",
		    json_object_new_string(buf));
		json_object_object_add(o, "8000/tcp", a);
		json_object_object_add(hc, "PortBindings", o);
	}
	return b;
}

/* The generated config.yaml (subsystems.md §3.5 item 2), values YAML-quoted. */
static char *
config_yaml(struct prov *p, const struct ws_info *w, const char *model)
{
	const char *name = yaml_quoted(&p->arena, w->name), *rt = yaml_quoted(&p->arena, w->runtime);

	if (model == NULL || model[0] == '\0')
		model = strcmp(w->runtime, "claude-code") == 0 ? "sonnet" : "anthropic:claude-opus-4-7";
	if (name == NULL || rt == NULL || (model = yaml_quoted(&p->arena, model)) == NULL)
		return NULL;
	return arena_printf(&p->arena, "name: %s\ndescription: %s\nversion: 1.0.0\ntier: %ld\n"
	    "runtime: %s\nmodel: %s\n%s", name, name, w->tier, rt, model,
	    strcmp(w->runtime, "langgraph") != 0 && strcmp(w->runtime, "deepagents") != 0 ?
	    "runtime_config:\n  timeout: 0\n" : "");
}

/* A double-quoted YAML scalar, whole: backslash, quote, control characters and DEL escaped. */
static char *
yaml_quoted(struct arena *a, const char *s)
{
	char *out = arena_alloc(a, 4 * strlen(s) + 3);	/* worst case: every byte as \xNN */
	const unsigned char *c;
	size_t o = 0;

	if (out == NULL)
		return NULL;
	out[o++] = '"';
	for (c = (const unsigned char *)s; *c != '\0'; c++) {
		if (*c == '"' || *c == '\\') {
			out[o++] = '\\';
			out[o++] = (char)*c;
		} else if (*c < 0x20 || *c == 0x7f) {
			o += (size_t)snprintf(out + o, 5, "\\x%02x", *c);
		} else {
			out[o++] = (char)*c;
		}
	}
	out[o++] = '"';
	out[o] = '\0';
	return out;
}

/*
 * /configs before start: config.yaml, .auth_token and .platform_inbound_secret (0600), through
 * PUT /archive into the created (not yet started) container's volume. 0, or -1 with p->msg.
 */
static int
upload_configs(struct prov *p, struct job *j, const struct ws_info *w, const char *token,
    const char *inbound)
{
	struct json_object *m = NULL;
	struct tar t;
	const char *model = NULL;
	char *yaml;
	int rc = -1;

	if (j->payload != NULL && json_object_object_get_ex(j->payload, "model", &m) &&
	    json_object_is_type(m, json_type_string))
		model = json_object_get_string(m);
	tar_init(&t, CONFIGS_TAR_MAX);
	yaml = config_yaml(p, w, model);
	if (yaml == NULL ||
	    tar_add_file(&t, "config.yaml", yaml, strlen(yaml), 0644) < 0 ||
	    tar_add_file(&t, ".auth_token", token, strlen(token), 0600) < 0 ||
	    tar_add_file(&t, ".platform_inbound_secret", inbound, strlen(inbound), 0600) < 0 ||
	    tar_finish(&t) < 0) {
		set_msg(p, "building the /configs archive failed");
		goto out;
	}
	if (engine_archive_put(&p->eng, j->container, "/configs", t.buf, t.len) < 0) {
		set_msg(p, "container engine: writing /configs into %s failed: %s", j->container,
		    engine_error(&p->eng));
		goto out;
	}
	rc = 0;
out:
	if (t.buf != NULL)
		OPENSSL_cleanse(t.buf, t.len);
	tar_free(&t);
	return rc;
}

/*
 * Image progress for the canvas, as broadcast-only live events of the workspace being
 * provisioned (not persisted: a build log would swamp structure_events). Also renews the lease
 * during a long build. images owns nothing after the call: the payload is ours to release.
 */
static void
on_image_event(void *arg, const char *type, struct json_object *payload)
{
	struct prov *p = arg;
	struct arena a;

	if (p->cur != NULL) {
		arena_init(&a, 256 * 1024);
		events_broadcast(&a, type, p->cur->workspace_id, payload);
		arena_cleanup(&a);
		renew_lease(p, p->cur, 0);
		beat(p);
	}
	json_object_put(payload);
}


static void
set_msg(struct prov *p, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(p->msg, sizeof(p->msg), fmt, ap);
	va_end(ap);
}

static void
usage(void)
{
	fprintf(stderr, "usage: molecule-provisioner [-c config]\n");
	exit(2);
}
