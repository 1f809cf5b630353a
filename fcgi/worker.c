/*
 * worker.c: one pre-forked API worker: accept on the shared socket, dispatch, heartbeat, recycle.
 * Owns its FCGX_Request, its request arena and its lazily opened database connections.
 */
#include "fcgi/worker.h"

#include <errno.h>
#include <fcgiapp.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/time.h>
#include <unistd.h>

#include "common/arena.h"
#include "common/db.h"
#include "common/kv.h"
#include "common/liveness.h"
#include "common/log.h"
#include "common/util.h"
#include "fcgi/dispatch.h"

static void on_stop(int sig);
static void on_tick(int sig);
static void install_signals(sigset_t *blocked);
static long read_body(void *src, char *buf, size_t len);

static volatile sig_atomic_t stop_requested;
static volatile sig_atomic_t tick_due;

int
worker_main(struct proc *p, void *args)
{
	const struct worker_args *wa = args;
	const struct conf *c = wa->conf;
	struct itimerval every;
	FCGX_Request rq;
	struct arena arena;
	sigset_t blocked;
	int64_t served = 0;
	const char *out;
	size_t len;
	int rc;

	log_set_name(p->name);
	/* ps and pkill show which slot a process is. */
	prctl(PR_SET_NAME, p->name);
	/* The master's Redis context came with fork(): never share it. */
	kv_forget_after_fork();
	db_forget_after_fork();
	install_signals(&blocked);
	memset(&every, 0, sizeof(every));
	every.it_interval.tv_sec = c->heartbeat_interval_s;
	every.it_value.tv_sec = c->heartbeat_interval_s;
	setitimer(ITIMER_REAL, &every, NULL);
	arena_init(&arena, (size_t)c->arena_cap_bytes);
	if (FCGX_InitRequest(&rq, wa->listen_fd, FCGI_FAIL_ACCEPT_ON_INTR) != 0) {
		log_err("cannot initialise the FastCGI request");
		return PROC_EXIT_FATAL;
	}
	liveness_beat(p->name, getpid(), p->restarts);
	while (!stop_requested) {
		/* Signals are delivered only while waiting for a connection, never mid-request. */
		sigprocmask(SIG_UNBLOCK, &blocked, NULL);
		rc = (stop_requested || tick_due) ? -EINTR : FCGX_Accept_r(&rq);
		sigprocmask(SIG_BLOCK, &blocked, NULL);
		if (tick_due) {
			tick_due = 0;
			liveness_beat(p->name, getpid(), p->restarts);
		}
		if (rc < 0) {
			if (rc != -EINTR) {
				log_err("accept failed: %s", strerror(-rc));
				usleep(100000);
			}
			continue;
		}
		out = dispatch(&arena, c, rq.envp, read_body, rq.in, &len);
		FCGX_PutStr(out, (int)len, rq.out);
		FCGX_Finish_r(&rq);
		arena_reset(&arena);
		if (c->max_requests > 0 && ++served >= c->max_requests) {
			log_info("served %lld requests, recycling", (long long)served);
			break;
		}
	}
	FCGX_Free(&rq, 1);
	arena_cleanup(&arena);
	db_close();
	kv_close();
	return 0;
}

static void
install_signals(sigset_t *blocked)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	/* No SA_RESTART: accept() must return EINTR so the loop sees the flag. */
	sa.sa_handler = on_stop;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sa.sa_handler = on_tick;
	sigaction(SIGALRM, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sigemptyset(blocked);
	sigaddset(blocked, SIGTERM);
	sigaddset(blocked, SIGINT);
	sigaddset(blocked, SIGALRM);
	sigprocmask(SIG_BLOCK, blocked, NULL);
}

static void
on_stop(int sig)
{
	UNUSED(sig);
	stop_requested = 1;
}

static void
on_tick(int sig)
{
	UNUSED(sig);
	tick_due = 1;
}

static long
read_body(void *src, char *buf, size_t len)
{
	int chunk = len > (1 << 30) ? (1 << 30) : (int)len;

	return FCGX_GetStr(buf, chunk, src);
}
