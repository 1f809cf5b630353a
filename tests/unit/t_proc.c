/* t_proc.c: unit tests of common/proc.c with real children (/bin/true, sh -c 'exit 2'). */
#include "tests/unit/t.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/proc.h"

static int
run_argv(struct proc *p, void *argv)
{
	return proc_exec_child(p, argv);
}

static int
wait_child(struct proc *p, int64_t now)
{
	int st = 0;

	if (waitpid(p->pid, &st, 0) != p->pid)
		return -1;
	proc_exited(p, st, now);
	return 0;
}

void
test_proc__backoff(void)
{
	int64_t b = PROC_BACKOFF_MIN_MS;
	int i;

	T_CHECK(proc_backoff_next(0) == 1000);
	T_CHECK(proc_backoff_next(1000) == 2000);
	T_CHECK(proc_backoff_next(2000) == 4000);
	for (i = 0; i < 20; i++)
		b = proc_backoff_next(b);
	T_CHECK(b == 30000);
}

void
test_proc__spawn_and_reap(void)
{
	char *argv[] = { "/bin/sh", "-c", "exit 3", NULL };
	struct proc p;

	proc_init(&p, "crasher");
	T_CHECK(proc_spawn(&p, run_argv, argv, 0) == 0);
	T_CHECK(p.pid > 0 && p.state == PROC_RUNNING);
	T_CHECK(wait_child(&p, 10) == 0);
	T_CHECK(p.state == PROC_IDLE);
	T_CHECK(p.restarts == 1);
	T_CHECK(p.next_start_ms == 10 + 1000);
	T_CHECK(p.backoff_ms == 2000);
	/* The second crash waits twice as long. */
	T_CHECK(proc_spawn(&p, run_argv, argv, 2000) == 0);
	T_CHECK(wait_child(&p, 2010) == 0);
	T_CHECK(p.next_start_ms == 2010 + 2000);
	T_CHECK(p.restarts == 2);
}

void
test_proc__fatal_exit_not_restarted(void)
{
	char *fatal_argv[] = { "/bin/sh", "-c", "exit 2", NULL };
	char *true_argv[] = { "/bin/true", NULL };
	char *sleep_argv[] = { "/bin/sleep", "30", NULL };
	struct proc p;

	proc_init(&p, "fatal");
	T_CHECK(proc_spawn(&p, run_argv, fatal_argv, 0) == 0);
	T_CHECK(wait_child(&p, 5) == 0);
	T_CHECK(p.state == PROC_FATAL);
	T_CHECK(p.restarts == 0);

	/* A stop we asked for is not a crash either. */
	proc_init(&p, "stopped");
	T_CHECK(proc_spawn(&p, run_argv, sleep_argv, 0) == 0);
	proc_stop(&p, 0, 1000);
	T_CHECK(p.state == PROC_STOPPING);
	T_CHECK(wait_child(&p, 5) == 0);
	T_CHECK(p.state == PROC_DONE);
	T_CHECK(p.restarts == 0);

	/* A clean exit is a recycle: restarted at once, not counted as a crash. */
	proc_init(&p, "recycled");
	T_CHECK(proc_spawn(&p, run_argv, true_argv, 100) == 0);
	T_CHECK(wait_child(&p, 150) == 0);
	T_CHECK(p.state == PROC_IDLE && p.restarts == 0 && p.next_start_ms == 150);
	T_CHECK(p.backoff_ms == PROC_BACKOFF_MIN_MS);
}

void
test_proc__healthy_resets_backoff(void)
{
	char *argv[] = { "/bin/sh", "-c", "kill -9 $$", NULL };
	struct proc p;

	proc_init(&p, "killed");
	p.backoff_ms = 16000;
	T_CHECK(proc_spawn(&p, run_argv, argv, 0) == 0);
	T_CHECK(wait_child(&p, PROC_HEALTHY_MS + 1) == 0);
	T_CHECK(p.next_start_ms == PROC_HEALTHY_MS + 1 + 1000);
	T_CHECK(p.backoff_ms == 2000);
}

void
test_proc__describe_status(void)
{
	char buf[64];

	proc_describe_status(3 << 8, buf, sizeof(buf));
	T_STREQ(buf, "exited with code 3");
	proc_describe_status(SIGKILL, buf, sizeof(buf));
	T_STREQ(buf, "killed by signal 9");
}
