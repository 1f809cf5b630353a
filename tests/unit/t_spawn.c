/* t_spawn.c: unit tests of common/spawn.c with real children (true, sh exit codes, a deadline). */
#include "tests/unit/t.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "common/spawn.h"
#include "common/util.h"

static int proc_alive(long pid);

/* Gone, or a zombie waiting for a reaper that is not ours (PID 1 here may never reap). */
static int
proc_alive(long pid)
{
	char path[64], buf[512], *p;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	if ((f = fopen(path, "r")) == NULL)
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	p = strrchr(buf, ')');
	return p != NULL && p[1] == ' ' && p[2] != 'Z' && p[2] != 'X';
}

void
test_spawn__exit_codes(void)
{
	char *tru[] = { "true", NULL };
	char *three[] = { "sh", "-c", "exit 3", NULL };
	char *nope[] = { "molecule-no-such-program", NULL };
	char err[256] = "";

	T_CHECK(spawn_run(tru, NULL, NULL, NULL, 5000, err, sizeof(err)) == 0);
	T_CHECK(spawn_run(three, NULL, NULL, NULL, 5000, err, sizeof(err)) == 3);
	T_CHECK(strstr(err, "status 3") != NULL);
	T_CHECK(spawn_run(nope, NULL, NULL, NULL, 5000, err, sizeof(err)) == -1);
	T_CHECK(strstr(err, "cannot run molecule-no-such-program") != NULL);
}

void
test_spawn__env_cwd_log(void)
{
	char dir[] = "/tmp/t_spawn.XXXXXX", log[128], buf[256] = "", err[256] = "";
	char *argv[] = { "sh", "-c", "echo \"$SPAWN_T $(pwd)\"; echo oops >&2; ls /proc/self/fd", NULL };
	char *env[] = { "SPAWN_T=hello", "HOME=/nonexistent", NULL };
	FILE *f;
	size_t n;

	T_CHECK(mkdtemp(dir) != NULL);
	snprintf(log, sizeof(log), "%s/log", dir);
	T_CHECK(spawn_run(argv, env, dir, log, 5000, err, sizeof(err)) == 0);
	f = fopen(log, "r");
	T_CHECK(f != NULL);
	if (f != NULL) {
		n = fread(buf, 1, sizeof(buf) - 1, f);
		buf[n] = '\0';
		fclose(f);
	}
	T_CHECK(strncmp(buf, "hello /tmp/t_spawn.", 19) == 0);
	T_CHECK(strstr(buf, "oops\n") != NULL);
	/* ls sees 0, 1, 2 and its own directory fd (3): nothing leaked from the parent. */
	T_CHECK(strstr(buf, "\n4\n") == NULL);
	unlink(log);
	rmdir(dir);
}

void
test_spawn__deadline_kills_group(void)
{
	char dir[] = "/tmp/t_spawn.XXXXXX", log[128], buf[128] = "", err[256] = "";
	char *argv[] = { "sh", "-c", "sleep 30 & echo $$ $!; sleep 30", NULL };
	long pid1 = 0, pid2 = 0;
	int64_t t0, el;
	FILE *f;
	int i;

	T_CHECK(mkdtemp(dir) != NULL);
	snprintf(log, sizeof(log), "%s/log", dir);
	t0 = now_mono_ms();
	T_CHECK(spawn_run(argv, NULL, NULL, log, 400, err, sizeof(err)) == -1);
	el = now_mono_ms() - t0;
	T_CHECK(el >= 400 && el < 3000);
	T_CHECK(strstr(err, "within 400 ms") != NULL);
	f = fopen(log, "r");
	T_CHECK(f != NULL);
	if (f != NULL) {
		T_CHECK(fgets(buf, sizeof(buf), f) != NULL);
		fclose(f);
	}
	T_CHECK(sscanf(buf, "%ld %ld", &pid1, &pid2) == 2);
	for (i = 0; i < 100 && pid2 > 0 && (proc_alive(pid1) || proc_alive(pid2)); i++)
		usleep(20000);
	T_CHECK(pid1 > 0 && !proc_alive(pid1));
	T_CHECK(pid2 > 0 && !proc_alive(pid2));
	unlink(log);
	rmdir(dir);
}
