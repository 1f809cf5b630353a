/*
 * worker.h: one pre-forked API worker: accept on the shared socket, dispatch, heartbeat, recycle.
 * Owns its FastCGI request, its arena and (lazily) its PostgreSQL and Redis connections.
 */
#ifndef MOLECULE_WORKER_H
#define MOLECULE_WORKER_H

#include "common/conf.h"
#include "common/proc.h"

struct worker_args {
	const struct conf *conf;
	int listen_fd;
};

/* proc_child_fn: serves until SIGTERM or max_requests; returns the exit code. */
int worker_main(struct proc *p, void *args);

#endif
