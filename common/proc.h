/*
 * proc.h: the process table both the supervisor and the API master keep: spawn, reap, backoff.
 * Owns the struct proc entries it is given (caller storage); children belong to the caller.
 */
#ifndef MOLECULE_PROC_H
#define MOLECULE_PROC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define PROC_EXIT_FATAL 2		/* a child exiting 2 is never restarted (nginx) */
#define PROC_BACKOFF_MIN_MS 1000
#define PROC_BACKOFF_MAX_MS 30000
#define PROC_HEALTHY_MS 60000		/* up this long: the next crash starts from the minimum again */

enum proc_state {
	PROC_IDLE,	/* not started yet, or waiting for next_start_ms */
	PROC_RUNNING,
	PROC_STOPPING,	/* we sent SIGTERM: its exit is not a crash */
	PROC_FATAL,	/* exited 2: left alone */
	PROC_DONE,	/* stopped on purpose, not to be restarted */
};

struct proc {
	char name[48];
	pid_t pid;
	enum proc_state state;
	int restarts;		/* respawns after crashes or kills */
	int64_t started_ms;	/* monotonic */
	int64_t next_start_ms;	/* monotonic; when an IDLE entry may start */
	int64_t backoff_ms;	/* delay before the next restart after a crash */
	int64_t stop_deadline_ms;
};

/* Runs in the child after fork; its return value is the exit code. */
typedef int (*proc_child_fn)(struct proc *p, void *arg);

void proc_init(struct proc *p, const char *name);
/*
 * Forks; the child dies with its parent (PR_SET_PDEATHSIG + getppid re-check), gets default
 * signal dispositions and an empty mask, then runs fn. Returns 0 or -1 (fork failed, logged).
 */
int proc_spawn(struct proc *p, proc_child_fn fn, void *arg, int64_t now_ms);
/* execv helper for proc_spawn: closes inherited fds >= 3 first. Returns only on failure (127). */
int proc_exec_child(struct proc *p, void *argv);
/*
 * Records the exit of p with wait status st at now_ms: logs "exited with code N" or
 * "killed by signal N", and schedules the restart (state IDLE + next_start_ms) unless the
 * exit was fatal (2) or requested. Exit 0 is a recycle: due at once, not counted as a crash.
 */
void proc_exited(struct proc *p, int st, int64_t now_ms);
/* Next delay after a crash: doubles from PROC_BACKOFF_MIN_MS, capped at PROC_BACKOFF_MAX_MS. */
int64_t proc_backoff_next(int64_t cur_ms);
/* "exited with code 3", "killed by signal 9 (core dumped)". */
void proc_describe_status(int st, char *buf, size_t len);
/* Sends SIGTERM and sets the stop deadline; an entry not running becomes DONE. */
void proc_stop(struct proc *p, int64_t now_ms, int64_t timeout_ms);
/* Finds the entry for pid among n; NULL if none. */
struct proc *proc_find(struct proc *procs, size_t n, pid_t pid);
/* SIGKILLs every STOPPING entry whose deadline passed. */
void proc_kill_overdue(struct proc *procs, size_t n, int64_t now_ms);
/* 1 while any entry still has a live pid. */
int proc_any_alive(const struct proc *procs, size_t n);

#endif
