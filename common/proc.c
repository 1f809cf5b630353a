/*
 * proc.c: the process table both the supervisor and the API master keep: spawn, reap, backoff.
 * Owns no memory; entries are caller storage and children are reaped by the caller's loop.
 */
#include "common/proc.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/log.h"

static void child_reset_signals(void);

void
proc_init(struct proc *p, const char *name)
{
	memset(p, 0, sizeof(*p));
	snprintf(p->name, sizeof(p->name), "%s", name);
	p->state = PROC_IDLE;
	p->backoff_ms = PROC_BACKOFF_MIN_MS;
}

int
proc_spawn(struct proc *p, proc_child_fn fn, void *arg, int64_t now_ms)
{
	pid_t parent = getpid();
	pid_t pid = fork();

	if (pid < 0) {
		log_err("%s: fork failed: %s", p->name, strerror(errno));
		p->next_start_ms = now_ms + p->backoff_ms;
		return -1;
	}
	if (pid == 0) {
		/* The parent may already be gone by the time prctl runs: check again. */
		if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0 || getppid() != parent)
			_exit(1);
		child_reset_signals();
		exit(fn(p, arg));
	}
	p->pid = pid;
	p->state = PROC_RUNNING;
	p->started_ms = now_ms;
	log_info("%s: started, pid %d", p->name, (int)pid);
	return 0;
}

int
proc_exec_child(struct proc *p, void *argv)
{
	char *const *av = argv;

	/* Nothing the parent opened (Redis, PostgreSQL, log files) leaks into the new program. */
	syscall(SYS_close_range, 3U, ~0U, 0U);
	execv(av[0], av);
	log_err("%s: exec %s failed: %s", p->name, av[0], strerror(errno));
	return 127;
}

void
proc_exited(struct proc *p, int st, int64_t now_ms)
{
	char how[64];
	int64_t uptime = now_ms - p->started_ms;

	proc_describe_status(st, how, sizeof(how));
	p->pid = 0;
	if (p->state == PROC_STOPPING) {
		log_info("%s: %s after stop request", p->name, how);
		p->state = PROC_DONE;
		return;
	}
	if (WIFEXITED(st) && WEXITSTATUS(st) == PROC_EXIT_FATAL) {
		log_err("%s: %s (fatal): not restarting", p->name, how);
		p->state = PROC_FATAL;
		return;
	}
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
		/*
		 * A clean exit is a planned recycle (max_requests), not a crash. The caller's loop
		 * starts at most one process per tick, so even a child that exits at once cannot spin.
		 */
		log_info("%s: %s; starting a fresh one", p->name, how);
		p->state = PROC_IDLE;
		p->next_start_ms = now_ms;
		return;
	}
	if (uptime >= PROC_HEALTHY_MS)
		p->backoff_ms = PROC_BACKOFF_MIN_MS;
	p->state = PROC_IDLE;
	p->restarts++;
	p->next_start_ms = now_ms + p->backoff_ms;
	log_warn("%s: %s after %lld ms; restarting in %lld ms", p->name, how,
	    (long long)uptime, (long long)p->backoff_ms);
	p->backoff_ms = proc_backoff_next(p->backoff_ms);
}

int64_t
proc_backoff_next(int64_t cur_ms)
{
	int64_t next = cur_ms < PROC_BACKOFF_MIN_MS ? PROC_BACKOFF_MIN_MS : cur_ms * 2;

	return next > PROC_BACKOFF_MAX_MS ? PROC_BACKOFF_MAX_MS : next;
}

void
proc_describe_status(int st, char *buf, size_t len)
{
	if (WIFEXITED(st))
		snprintf(buf, len, "exited with code %d", WEXITSTATUS(st));
	else if (WIFSIGNALED(st))
		snprintf(buf, len, "killed by signal %d%s", WTERMSIG(st),
		    WCOREDUMP(st) ? " (core dumped)" : "");
	else
		snprintf(buf, len, "changed state 0x%x", (unsigned)st);
}

void
proc_stop(struct proc *p, int64_t now_ms, int64_t timeout_ms)
{
	if (p->pid <= 0) {
		p->state = PROC_DONE;
		return;
	}
	if (p->state != PROC_STOPPING) {
		kill(p->pid, SIGTERM);
		p->state = PROC_STOPPING;
		p->stop_deadline_ms = now_ms + timeout_ms;
	}
}

struct proc *
proc_find(struct proc *procs, size_t n, pid_t pid)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (procs[i].pid == pid)
			return &procs[i];
	return NULL;
}

void
proc_kill_overdue(struct proc *procs, size_t n, int64_t now_ms)
{
	size_t i;

	for (i = 0; i < n; i++) {
		struct proc *p = &procs[i];
		if (p->state == PROC_STOPPING && p->pid > 0 && now_ms >= p->stop_deadline_ms) {
			log_warn("%s: still running after the stop deadline, sending SIGKILL", p->name);
			kill(p->pid, SIGKILL);
			p->stop_deadline_ms = now_ms + 60000;
		}
	}
}

int
proc_any_alive(const struct proc *procs, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (procs[i].pid > 0)
			return 1;
	return 0;
}

static void
child_reset_signals(void)
{
	static const int sigs[] = { SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGALRM, SIGPIPE, SIGUSR1 };
	struct sigaction sa;
	sigset_t none;
	size_t i;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaction(sigs[i], &sa, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}
