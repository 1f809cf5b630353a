/*
 * spawn.c: fork/execvpe of an argv (no shell) with a deadline that kills the whole process group.
 * The caller owns argv/env_add; spawn_run owns the child, its group and every fd it opens here.
 */
#include "common/spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"

extern char **environ;

static char **build_env(char *const env_add[]);
static int env_key_matches(const char *entry, const char *kv);
static void child_exec(char *const argv[], char **envp, const char *cwd, int logfd, int errfd)
    __attribute__((noreturn));
static int wait_deadline(pid_t pid, int64_t deadline, int *status, int *timed_out);
static void sleep_ms(long ms);

int
spawn_run(char *const argv[], char *const env_add[], const char *cwd, const char *log_path,
    long timeout_ms, char *err, size_t errlen)
{
	char **envp = NULL;
	int pfd[2] = { -1, -1 }, logfd = -1, status = 0, timed_out = 0, child_errno = 0, rc = -1;
	pid_t pid = -1;
	ssize_t n;
	int64_t deadline;

	if (argv == NULL || argv[0] == NULL) {
		set_err(err, errlen, "spawn: empty argv");
		return -1;
	}
	/* Everything that allocates happens before fork: the child only calls async-signal-safe functions. */
	envp = build_env(env_add);
	logfd = open(log_path != NULL ? log_path : "/dev/null",
	    O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (logfd < 0) {
		set_err(err, errlen, "spawn %s: cannot open log %s: %s", argv[0],
		    log_path != NULL ? log_path : "/dev/null", strerror(errno));
		goto out;
	}
	/* exec failure travels back on a close-on-exec pipe: EOF means exec succeeded. */
	if (pipe2(pfd, O_CLOEXEC) < 0) {
		set_err(err, errlen, "spawn %s: pipe: %s", argv[0], strerror(errno));
		goto out;
	}
	deadline = now_mono_ms() + (timeout_ms > 0 ? timeout_ms : 1);
	pid = fork();
	if (pid < 0) {
		set_err(err, errlen, "spawn %s: fork: %s", argv[0], strerror(errno));
		goto out;
	}
	if (pid == 0)
		child_exec(argv, envp, cwd, logfd, pfd[1]);
	/* Also in the parent, so a kill right after fork already finds the group. */
	(void)setpgid(pid, pid);
	close(pfd[1]);
	pfd[1] = -1;
	/* The deadline covers the child before exec too (a hung chdir): wait first, then read the
	 * pipe, whose only writer is gone by then, so the read cannot block. */
	if (wait_deadline(pid, deadline, &status, &timed_out) < 0) {
		set_err(err, errlen, "spawn %s: waitpid: %s", argv[0], strerror(errno));
		goto out;
	}
	do
		n = read(pfd[0], &child_errno, sizeof(child_errno));
	while (n < 0 && errno == EINTR);
	if (n == (ssize_t)sizeof(child_errno)) {
		set_err(err, errlen, "cannot run %s: %s", argv[0], strerror(child_errno));
		goto out;
	}
	if (timed_out) {
		set_err(err, errlen, "%s killed: no result within %ld ms", argv[0], timeout_ms);
		goto out;
	}
	if (WIFEXITED(status)) {
		rc = WEXITSTATUS(status);
		if (rc != 0)
			set_err(err, errlen, "%s exited with status %d", argv[0], rc);
	} else if (WIFSIGNALED(status)) {
		set_err(err, errlen, "%s killed by signal %d", argv[0], WTERMSIG(status));
	} else {
		set_err(err, errlen, "%s ended with wait status 0x%x", argv[0], (unsigned)status);
	}
out:
	if (pfd[0] >= 0)
		close(pfd[0]);
	if (pfd[1] >= 0)
		close(pfd[1]);
	if (logfd >= 0)
		close(logfd);
	free(envp);
	return rc;
}

/* A new array of pointers: environ's entries not overridden by env_add, then env_add. */
static char **
build_env(char *const env_add[])
{
	size_t ne = 0, na = 0, i, j, k = 0;
	char **envp;
	int dup;

	while (environ != NULL && environ[ne] != NULL)
		ne++;
	while (env_add != NULL && env_add[na] != NULL)
		na++;
	envp = xcalloc(ne + na + 1, sizeof(*envp));
	for (i = 0; i < ne; i++) {
		dup = 0;
		for (j = 0; j < na && !dup; j++)
			dup = env_key_matches(environ[i], env_add[j]);
		if (!dup)
			envp[k++] = environ[i];
	}
	for (j = 0; j < na; j++)
		envp[k++] = env_add[j];
	envp[k] = NULL;
	return envp;
}

static int
env_key_matches(const char *entry, const char *kv)
{
	const char *eq = strchr(kv, '=');
	size_t klen = eq != NULL ? (size_t)(eq - kv) : strlen(kv);

	return strncmp(entry, kv, klen) == 0 && entry[klen] == '=';
}

static void
child_exec(char *const argv[], char **envp, const char *cwd, int logfd, int errfd)
{
	int e, nullfd;

	(void)setpgid(0, 0);
	/* The parent may ignore or block signals; the child starts from the defaults. */
	{
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_DFL);
		signal(SIGCHLD, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		signal(SIGINT, SIG_DFL);
		signal(SIGHUP, SIG_DFL);
	}
	nullfd = open("/dev/null", O_RDONLY);
	if (nullfd < 0 || dup2(nullfd, 0) < 0 || dup2(logfd, 1) < 0 || dup2(logfd, 2) < 0)
		goto fail;
	if (cwd != NULL && chdir(cwd) < 0)
		goto fail;
	/* errfd is close-on-exec itself; keep it open until exec so a failure can be reported. */
	if (errfd > 3)
		(void)close_range(3, (unsigned)errfd - 1, 0);
	(void)close_range((unsigned)errfd + 1, ~0U, 0);
	execvpe(argv[0], argv, envp);
fail:
	e = errno;
	(void)!write(errfd, &e, sizeof(e));
	_exit(127);
}

/*
 * Waits for pid until deadline. The group is killed both on the deadline and after a normal exit
 * (stragglers such as git's helpers must not outlive the call); WNOWAIT keeps the leader unreaped
 * until then so its pid, and with it the group id, cannot be reused meanwhile.
 */
static int
wait_deadline(pid_t pid, int64_t deadline, int *status, int *timed_out)
{
	siginfo_t si;
	long nap = 1;
	pid_t r;

	for (;;) {
		memset(&si, 0, sizeof(si));
		if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (si.si_pid == pid)
			break;
		if (now_mono_ms() >= deadline) {
			*timed_out = 1;
			break;
		}
		sleep_ms(nap);
		if (nap < 50)
			nap *= 2;
	}
	(void)kill(-pid, SIGKILL);
	do
		r = waitpid(pid, status, 0);
	while (r < 0 && errno == EINTR);
	return r == pid ? 0 : -1;
}

static void
sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}
