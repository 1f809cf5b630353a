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
#include "common/sig.h"
#include "common/util.h"
#include "fcgi/dispatch.h"

static long read_body(void *src, char *buf, size_t len);
static void drain_stdin(FCGX_Stream *in);

static const int worker_signals[] = { SIGTERM, SIGINT, SIGALRM };
static const int worker_ignored[] = { SIGHUP };

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
	/* SIGHUP belongs to the master (it rolls the workers); a worker ignores it. */
	sig_setup(worker_signals, NELEM(worker_signals), worker_ignored, NELEM(worker_ignored),
	    &blocked);
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
	while (!sig_term) {
		/* Signals are delivered only while waiting for a connection, never mid-request. */
		sigprocmask(SIG_UNBLOCK, &blocked, NULL);
		rc = (sig_term || sig_alrm) ? -EINTR : FCGX_Accept_r(&rq);
		sigprocmask(SIG_BLOCK, &blocked, NULL);
		if (sig_alrm) {
			sig_alrm = 0;
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
		drain_stdin(rq.in);
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

/*
 * Reads what is left of the request body up to its end-of-stream record. Closing the
 * connection with bytes still unread would reset it while nginx may still be writing the
 * body's last record, and nginx would answer 502 although our response had been sent.
 */
static void
drain_stdin(FCGX_Stream *in)
{
	char buf[8192];
	long total = 0;
	int n;

	while ((n = FCGX_GetStr(buf, sizeof(buf), in)) > 0) {
		total += n;
		if (total > 64L * 1024 * 1024)
			break;
	}
}

static long
read_body(void *src, char *buf, size_t len)
{
	int chunk = len > (1 << 30) ? (1 << 30) : (int)len;

	return FCGX_GetStr(buf, chunk, src);
}
