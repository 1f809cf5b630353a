/*
 * main.c: molecule-api's master: opens the FastCGI sockets, pre-forks the two worker pools (API and
 * A2A, ADR 005), respawns with backoff, rolls them on SIGHUP, drains on SIGTERM. Owns sockets and slots.
 */
#include <errno.h>
#include <fcgiapp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/conf.h"
#include "common/crypt.h"
#include "common/db.h"
#include "common/kv.h"
#include "common/liveness.h"
#include "common/log.h"
#include "common/proc.h"
#include "common/sig.h"
#include "common/util.h"
#include "fcgi/metrics.h"
#include "fcgi/router.h"
#include "fcgi/worker.h"

#define MAX_WORKERS 256

static const int master_signals[] = { SIGCHLD, SIGTERM, SIGINT, SIGHUP };

/*
 * Two pools on two sockets: long A2A calls (POST /workspaces/:id/a2a, routed by nginx to the
 * second socket) can only ever occupy the A2A workers, never the ones serving the rest of the API.
 */
enum { POOL_API, POOL_A2A, NPOOLS };

struct pool {
	const char *prefix;	/* slot names: "<prefix>-N" */
	struct worker_args wargs;
	struct proc slots[MAX_WORKERS];
	size_t nworkers;	/* target count; 0 for an A2A pool that is switched off */
};

struct master {
	struct conf conf;
	const char *conf_path;
	struct pool pools[NPOOLS];
	int restarts;		/* of the master itself, from the supervisor */
	int stopping;
	int rolling;
	size_t roll_pool;
	size_t roll_next;
	pid_t roll_pid;
	int64_t next_beat_ms;
};

static int open_socket(const char *path, int backlog);
static void reap(struct master *m, int64_t now);
static void converge(struct master *m, int64_t now);
static void roll_step(struct master *m, int64_t now);
static void reload(struct master *m);
static void set_targets(struct master *m);
static int any_alive(struct master *m);
static void default_a2a_socket(struct conf *c);
static void usage(void);

int
main(int argc, char **argv)
{
	struct master m;
	char err[512];
	sigset_t blocked, none;
	struct timespec tick = { 0, 250 * 1000000 };
	const char *rs;
	int opt, check_only = 0;
	int64_t now;
	size_t i, k;

	memset(&m, 0, sizeof(m));
	log_set_name("api");
	while ((opt = getopt(argc, argv, "c:th")) != -1) {
		switch (opt) {
		case 'c': m.conf_path = optarg; break;
		case 't': check_only = 1; break;
		default: usage();
		}
	}
	if (conf_load(&m.conf, m.conf_path, err, sizeof(err)) < 0)
		fatal("configuration: %s", err);
	default_a2a_socket(&m.conf);
	if (check_only)
		return 0;
	conf_apply_logging(&m.conf);
	db_configure(&m.conf);
	if (kv_configure(&m.conf) < 0)
		fatal("configuration: invalid redis_url");
	/* Before fork: workers inherit the key material; KMS connections open in each worker. */
	if (crypt_init(&m.conf, err, sizeof(err)) < 0)
		fatal("secrets: %s", err);
	rs = getenv("MOLECULE_RESTARTS");
	m.restarts = rs ? atoi(rs) : 0;

	FCGX_Init();
	sig_setup(master_signals, NELEM(master_signals), NULL, 0, &blocked);
	m.pools[POOL_API].prefix = "api-worker";
	m.pools[POOL_A2A].prefix = "a2a-worker";
	for (k = 0; k < NPOOLS; k++) {
		m.pools[k].wargs.conf = &m.conf;
		m.pools[k].wargs.listen_fd = -1;
	}
	/*
	 * The A2A socket first: the stack waits for the API socket, and by then both exist.
	 * Without an A2A pool (a2a_workers 0) the route is served by the API pool (shared).
	 */
	if (m.conf.a2a_workers > 0)
		m.pools[POOL_A2A].wargs.listen_fd = open_socket(m.conf.a2a_socket,
		    (int)m.conf.listen_backlog);
	m.pools[POOL_API].wargs.listen_fd = open_socket(m.conf.fcgi_socket, (int)m.conf.listen_backlog);
	if (metrics_init(nroutes) < 0)
		fatal("cannot map the shared metrics: %s", strerror(errno));
	set_targets(&m);
	for (k = 0; k < NPOOLS; k++) {
		for (i = 0; i < MAX_WORKERS; i++) {
			char name[32];
			snprintf(name, sizeof(name), "%s-%zu", m.pools[k].prefix, i);
			proc_init(&m.pools[k].slots[i], name);
			m.pools[k].slots[i].state = PROC_DONE;
		}
	}
	log_info("listening on %s with %zu workers", m.conf.fcgi_socket, m.pools[POOL_API].nworkers);
	if (m.pools[POOL_A2A].nworkers > 0)
		log_info("a2a pool listening on %s with %zu workers", m.conf.a2a_socket,
		    m.pools[POOL_A2A].nworkers);
	sigemptyset(&none);
	while (!m.stopping || any_alive(&m)) {
		now = now_mono_ms();
		if (sig_chld) {
			sig_chld = 0;
			reap(&m, now);
		}
		if (sig_term && !m.stopping) {
			log_info("stopping: draining %zu workers",
			    m.pools[POOL_API].nworkers + m.pools[POOL_A2A].nworkers);
			m.stopping = 1;
			for (k = 0; k < NPOOLS; k++)
				for (i = 0; i < MAX_WORKERS; i++)
					proc_stop(&m.pools[k].slots[i], now, m.conf.stop_timeout_s * 1000);
		}
		if (sig_hup) {
			sig_hup = 0;
			if (!m.stopping)
				reload(&m);
		}
		if (m.stopping) {
			for (k = 0; k < NPOOLS; k++)
				proc_kill_overdue(m.pools[k].slots, MAX_WORKERS, now);
		} else {
			converge(&m, now);
			roll_step(&m, now);
			if (now >= m.next_beat_ms) {
				liveness_beat("api", getpid(), m.restarts);
				m.next_beat_ms = now + m.conf.heartbeat_interval_s * 1000;
			}
		}
		/* Signals are blocked except here, so none is lost between a check and the wait. */
		ppoll(NULL, 0, &tick, &none);
	}
	/* The socket file stays: a successor renames its own over it, nginx sees no gap. */
	log_info("stopped");
	conf_free(&m.conf);
	kv_close();
	return 0;
}

/* Opens the listening socket once, before forking: every worker accepts on the same fd. */
static int
open_socket(const char *path, int backlog)
{
	struct sockaddr_un sun;
	struct stat st;
	char tmp[sizeof(sun.sun_path) + 16];
	int fd, probe, tries, in_use = 0;

	if (strlen(path) >= sizeof(sun.sun_path))
		fatal("fcgi_socket: path too long: %s", path);
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			fatal("fcgi_socket: %s exists and is not a socket", path);
		/* A socket someone still answers on belongs to a live master: do not steal it. */
		memset(&sun, 0, sizeof(sun));
		sun.sun_family = AF_UNIX;
		memcpy(sun.sun_path, path, strlen(path) + 1);
		/* Workers of a master that just died may still hold it for a moment: wait a bit. */
		for (tries = 0; tries < 50; tries++) {
			probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
			if (probe < 0)
				fatal("fcgi_socket: socket: %s", strerror(errno));
			in_use = connect(probe, (struct sockaddr *)&sun, sizeof(sun)) == 0;
			close(probe);
			if (!in_use)
				break;
			usleep(100000);
		}
		if (in_use)
			fatal("fcgi_socket: %s is in use by another process", path);
	}
	/*
	 * Bind under a temporary name and rename it into place, so nginx never finds the path
	 * missing (it logs that as [crit]); a stale file only means "connection refused".
	 */
	if (snprintf(tmp, sizeof(tmp), "%s.%d", path, (int)getpid()) >= (int)sizeof(sun.sun_path))
		fatal("fcgi_socket: path too long: %s", path);
	unlink(tmp);
	fd = FCGX_OpenSocket(tmp, backlog);
	if (fd < 0)
		fatal("fcgi_socket: cannot listen on %s: %s", path, strerror(errno));
	/* Access is decided by the socket's directory; nginx's workers may run as another user. */
	if (chmod(tmp, 0666) < 0 || rename(tmp, path) < 0) {
		unlink(tmp);
		fatal("fcgi_socket: cannot move %s into place: %s", path, strerror(errno));
	}
	return fd;
}

static void
reap(struct master *m, int64_t now)
{
	struct proc *p;
	pid_t pid;
	int st, before;
	size_t k;

	while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
		p = NULL;
		for (k = 0; k < NPOOLS && p == NULL; k++)
			p = proc_find(m->pools[k].slots, MAX_WORKERS, pid);
		if (p == NULL)
			continue;
		before = p->restarts;
		proc_exited(p, st, now);
		if (p->restarts != before)
			metrics_worker_restart();
	}
}

/* Starts the slots that should run and stops the ones beyond the target count, per pool. */
static void
converge(struct master *m, int64_t now)
{
	size_t i, k, fatal_count;

	for (k = 0; k < NPOOLS; k++) {
		struct pool *pl = &m->pools[k];
		fatal_count = 0;
		for (i = 0; i < MAX_WORKERS; i++) {
			struct proc *p = &pl->slots[i];
			if (i >= pl->nworkers) {
				if (p->state == PROC_RUNNING)
					proc_stop(p, now, m->conf.stop_timeout_s * 1000);
				continue;
			}
			if (p->state == PROC_FATAL)
				fatal_count++;
			if (p->state == PROC_DONE || (p->state == PROC_IDLE && now >= p->next_start_ms))
				proc_spawn(p, worker_main, &pl->wargs, now);
		}
		proc_kill_overdue(pl->slots, MAX_WORKERS, now);
		if (pl->nworkers > 0 && fatal_count == pl->nworkers)
			fatal("every %s exited fatally", pl->prefix);
	}
}

/* Rolling restart after SIGHUP: one worker at a time, the next once its replacement runs. */
static void
roll_step(struct master *m, int64_t now)
{
	struct proc *p;

	if (!m->rolling)
		return;
	if (m->roll_pool < NPOOLS && m->roll_next >= m->pools[m->roll_pool].nworkers) {
		m->roll_pool++;
		m->roll_next = 0;
		m->roll_pid = 0;
	}
	if (m->roll_pool >= NPOOLS) {
		m->rolling = 0;
		log_info("rolling restart done");
		return;
	}
	p = &m->pools[m->roll_pool].slots[m->roll_next];
	if (m->roll_pid == 0) {
		if (p->state != PROC_RUNNING) {
			m->roll_next++;
			return;
		}
		m->roll_pid = p->pid;
		proc_stop(p, now, m->conf.stop_timeout_s * 1000);
	} else if (p->state == PROC_RUNNING && p->pid != m->roll_pid) {
		m->roll_pid = 0;
		m->roll_next++;
	}
}

static void
reload(struct master *m)
{
	struct conf fresh;
	char err[512];

	memset(&fresh, 0, sizeof(fresh));
	if (conf_load(&fresh, m->conf_path, err, sizeof(err)) < 0) {
		log_err("reload: keeping the running configuration: %s", err);
		return;
	}
	if (strcmp(fresh.fcgi_socket, m->conf.fcgi_socket) != 0)
		log_warn("reload: fcgi_socket changes only on restart");
	if (fresh.a2a_socket[0] != '\0' && strcmp(fresh.a2a_socket, m->conf.a2a_socket) != 0)
		log_warn("reload: a2a_socket changes only on restart");
	free(fresh.fcgi_socket);
	fresh.fcgi_socket = m->conf.fcgi_socket;
	m->conf.fcgi_socket = NULL;
	free(fresh.a2a_socket);
	fresh.a2a_socket = m->conf.a2a_socket;
	m->conf.a2a_socket = NULL;
	conf_free(&m->conf);
	m->conf = fresh;
	default_a2a_socket(&m->conf);
	conf_apply_logging(&m->conf);
	/* Workers forked from now on connect with the new settings. */
	db_configure(&m->conf);
	set_targets(m);
	log_info("reload: configuration re-read, rolling %zu + %zu workers",
	    m->pools[POOL_API].nworkers, m->pools[POOL_A2A].nworkers);
	m->rolling = 1;
	m->roll_pool = 0;
	m->roll_next = 0;
	m->roll_pid = 0;
}

/* Worker counts from the configuration; an A2A pool without a socket stays off until restart. */
static void
set_targets(struct master *m)
{
	size_t n = (size_t)conf_api_workers(&m->conf);

	m->pools[POOL_API].nworkers = n > MAX_WORKERS ? MAX_WORKERS : n;
	n = (size_t)m->conf.a2a_workers;
	if (n > 0 && m->pools[POOL_A2A].wargs.listen_fd < 0) {
		log_warn("a2a_workers: the A2A pool was off at start; it starts only on restart");
		n = 0;
	}
	m->pools[POOL_A2A].nworkers = n > MAX_WORKERS ? MAX_WORKERS : n;
}

/* An empty a2a_socket is a2a.sock next to fcgi_socket (both in the folder nginx can reach). */
static void
default_a2a_socket(struct conf *c)
{
	const char *slash;
	size_t dir;

	if (c->a2a_socket[0] != '\0')
		return;
	slash = strrchr(c->fcgi_socket, '/');
	dir = slash != NULL ? (size_t)(slash - c->fcgi_socket) + 1 : 0;
	free(c->a2a_socket);
	c->a2a_socket = xmalloc(dir + sizeof("a2a.sock"));
	memcpy(c->a2a_socket, c->fcgi_socket, dir);
	memcpy(c->a2a_socket + dir, "a2a.sock", sizeof("a2a.sock"));
}

static int
any_alive(struct master *m)
{
	size_t k;

	for (k = 0; k < NPOOLS; k++)
		if (proc_any_alive(m->pools[k].slots, MAX_WORKERS))
			return 1;
	return 0;
}

static void
usage(void)
{
	fprintf(stderr, "usage: molecule-api [-t] [-c config]\n");
	exit(2);
}
