/*
 * supervisor.c: moleculed, the process supervisor: migrates, then starts, watches and restarts
 * the API master and every worker with backoff. Owns the process table and the config.
 */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/conf.h"
#include "common/crypt.h"
#include "common/db.h"
#include "common/kv.h"
#include "common/liveness.h"
#include "common/log.h"
#include "common/migrate.h"
#include "common/proc.h"
#include "common/rotate.h"
#include "common/sig.h"
#include "common/util.h"

#define DB_WAIT_S 30

static const int sup_signals[] = { SIGCHLD, SIGTERM, SIGINT, SIGHUP };

/* What the supervisor runs. A child that reloads itself on SIGHUP is sent one; others are restarted. */
struct child_def {
	const char *name;
	const char *binary;
	int reloads_on_hup;
};

static const struct child_def children[] = {
	{ "api", "molecule-api", 1 },
	{ "broadcaster", "molecule-broadcaster", 0 },
	{ "dispatcher", "molecule-dispatcher", 0 },
	{ "provisioner", "molecule-provisioner", 0 },
	{ "sweeper", "molecule-sweeper", 0 },
	{ "scheduler", "molecule-scheduler", 0 },
};
#define NCHILDREN (sizeof(children) / sizeof(children[0]))

struct sup {
	struct conf conf;
	const char *conf_path;
	char bin_dir[PATH_MAX];
	struct proc procs[NCHILDREN];
	int stopping;
	int rolling;
	size_t roll_next;
	pid_t roll_pid;
	int64_t next_beat_ms;
};

struct exec_args {
	struct sup *sup;
	size_t index;
};

static int cmd_supervise(struct sup *s);
static int cmd_migrate(struct sup *s, int argc, char **argv);
static int cmd_secrets(struct sup *s, int argc, char **argv);
static PGconn *wait_for_db(int seconds);
static int spawn_child(struct proc *p, void *arg);
static void start_due(struct sup *s, int64_t now);
static void reap(struct sup *s, int64_t now);
static void reload(struct sup *s);
static void roll_step(struct sup *s, int64_t now);
static void find_bin_dir(struct sup *s, const char *argv0);
static void usage(void);

int
main(int argc, char **argv)
{
	struct sup s;
	char err[512];
	int opt, check_only = 0, rc;

	memset(&s, 0, sizeof(s));
	log_set_name("moleculed");
	while ((opt = getopt(argc, argv, "+c:th")) != -1) {
		switch (opt) {
		case 'c': s.conf_path = optarg; break;
		case 't': check_only = 1; break;
		default: usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (argc > 0 && strcmp(argv[0], "config-docs") == 0) {
		conf_write_docs(stdout);
		return 0;
	}
	if (conf_load(&s.conf, s.conf_path, err, sizeof(err)) < 0) {
		log_err("configuration: %s", err);
		return check_only ? 1 : PROC_EXIT_FATAL;
	}
	if (check_only) {
		conf_dump(&s.conf, stdout);
		printf("configuration ok\n");
		conf_free(&s.conf);
		return 0;
	}
	conf_apply_logging(&s.conf);
	db_configure(&s.conf);
	if (argc > 0 && strcmp(argv[0], "migrate") == 0)
		rc = cmd_migrate(&s, argc - 1, argv + 1);
	else if (argc > 0 && strcmp(argv[0], "secrets") == 0)
		rc = cmd_secrets(&s, argc - 1, argv + 1);
	else if (argc == 0) {
		find_bin_dir(&s, "/proc/self/exe");
		rc = cmd_supervise(&s);
	} else
		usage();
	conf_free(&s.conf);
	return rc;
}

static int
cmd_supervise(struct sup *s)
{
	char err[512];
	sigset_t blocked, none;
	struct timespec tick = { 0, 250 * 1000000 };
	PGconn *c;
	int64_t now;
	size_t i;
	int n;

	/* Fail closed before anything starts: production needs a secrets key source. */
	if (crypt_init(&s->conf, err, sizeof(err)) < 0) {
		log_err("secrets: %s", err);
		return PROC_EXIT_FATAL;
	}
	crypt_cleanup();
	if (s->conf.migrate_on_start) {
		c = wait_for_db(DB_WAIT_S);
		if (c == NULL)
			return 1;
		n = migrate_up(c, s->conf.migrations_dir);
		db_close();
		if (n < 0) {
			log_err("migrations failed: not starting");
			return PROC_EXIT_FATAL;
		}
		log_info("migrations: %d applied", n);
	}
	if (kv_configure(&s->conf) < 0)
		return PROC_EXIT_FATAL;
	if (liveness_reset() < 0)
		log_warn("redis unavailable: liveness will appear once it is back");

	sig_setup(sup_signals, NELEM(sup_signals), NULL, 0, &blocked);
	sigemptyset(&none);

	for (i = 0; i < NCHILDREN; i++)
		proc_init(&s->procs[i], children[i].name);
	log_info("supervising %zu processes from %s", NCHILDREN, s->bin_dir);
	while (!s->stopping || proc_any_alive(s->procs, NCHILDREN)) {
		now = now_mono_ms();
		if (sig_chld) {
			sig_chld = 0;
			reap(s, now);
		}
		if (sig_term && !s->stopping) {
			log_info("stopping every process");
			s->stopping = 1;
			for (i = 0; i < NCHILDREN; i++)
				proc_stop(&s->procs[i], now, s->conf.stop_timeout_s * 1000);
		}
		if (sig_hup) {
			sig_hup = 0;
			if (!s->stopping)
				reload(s);
		}
		if (s->stopping) {
			/* A child draining its own workers gets their deadline plus a margin. */
			proc_kill_overdue(s->procs, NCHILDREN, now - 2000);
		} else {
			start_due(s, now);
			roll_step(s, now);
			if (now >= s->next_beat_ms) {
				liveness_beat("supervisor", getpid(), 0);
				s->next_beat_ms = now + s->conf.heartbeat_interval_s * 1000;
			}
		}
		ppoll(NULL, 0, &tick, &none);
	}
	log_info("stopped");
	kv_close();
	return 0;
}

static int
cmd_migrate(struct sup *s, int argc, char **argv)
{
	const char *why = NULL;
	int64_t count = 0;
	PGconn *c;
	int rc = 1, n;

	if (argc < 1)
		usage();
	c = wait_for_db(5);
	if (c == NULL)
		return 1;
	if (strcmp(argv[0], "status") == 0 && argc == 1) {
		rc = migrate_status(c, s->conf.migrations_dir, stdout) < 0;
	} else if (strcmp(argv[0], "up") == 0 && argc == 1) {
		n = migrate_up(c, s->conf.migrations_dir);
		if (n >= 0)
			printf("%d applied\n", n);
		rc = n < 0;
	} else if (strcmp(argv[0], "down") == 0 && argc == 2) {
		if (parse_int64(argv[1], 1, 1000, &count, &why) < 0) {
			fprintf(stderr, "moleculed: migrate down N: N %s\n", why);
			goto out;
		}
		n = migrate_down(c, s->conf.migrations_dir, (int)count);
		if (n >= 0)
			printf("%d rolled back\n", n);
		rc = n < 0;
	} else {
		usage();
	}
out:
	db_close();
	return rc;
}

/* moleculed secrets rotate: re-encrypt every blob to the current mode/key (common/rotate.c). */
static int
cmd_secrets(struct sup *s, int argc, char **argv)
{
	char err[512];
	PGconn *c;
	int rc;

	if (argc != 1 || strcmp(argv[0], "rotate") != 0)
		usage();
	if (crypt_init(&s->conf, err, sizeof(err)) < 0) {
		fprintf(stderr, "moleculed: secrets rotate: %s\n", err);
		return 1;
	}
	c = wait_for_db(5);
	rc = c == NULL || rotate_secrets(c, 500, stdout) != 0;
	db_close();
	crypt_cleanup();
	return rc;
}

/* The database may still be starting (compose): retry once a second, then give up. */
static PGconn *
wait_for_db(int seconds)
{
	PGconn *c;
	int i;

	for (i = 0; i < seconds; i++) {
		c = db_conn();
		if (c != NULL)
			return c;
		sleep(1);
	}
	log_err("database unreachable for %d s: giving up", seconds);
	return NULL;
}

static int
spawn_child(struct proc *p, void *arg)
{
	const struct exec_args *ea = arg;
	const struct sup *s = ea->sup;
	char path[PATH_MAX + 64], restarts[16], dash_c[] = "-c", conf_path[PATH_MAX];
	char *argv[4];
	int n = 0;

	snprintf(path, sizeof(path), "%s/%s", s->bin_dir, children[ea->index].binary);
	snprintf(restarts, sizeof(restarts), "%d", p->restarts);
	setenv("MOLECULE_RESTARTS", restarts, 1);
	argv[n++] = path;
	if (s->conf_path != NULL) {
		snprintf(conf_path, sizeof(conf_path), "%s", s->conf_path);
		argv[n++] = dash_c;
		argv[n++] = conf_path;
	}
	argv[n] = NULL;
	return proc_exec_child(p, argv);
}

static void
start_due(struct sup *s, int64_t now)
{
	struct exec_args ea;
	size_t i;

	ea.sup = s;
	for (i = 0; i < NCHILDREN; i++) {
		struct proc *p = &s->procs[i];
		if (p->state == PROC_DONE || (p->state == PROC_IDLE && now >= p->next_start_ms)) {
			ea.index = i;
			proc_spawn(p, spawn_child, &ea, now);
		}
	}
	proc_kill_overdue(s->procs, NCHILDREN, now);
}

static void
reap(struct sup *s, int64_t now)
{
	struct proc *p;
	pid_t pid;
	int st;

	while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
		p = proc_find(s->procs, NCHILDREN, pid);
		if (p != NULL)
			proc_exited(p, st, now);
	}
}

static void
reload(struct sup *s)
{
	struct conf fresh;
	char err[512];

	memset(&fresh, 0, sizeof(fresh));
	if (conf_load(&fresh, s->conf_path, err, sizeof(err)) < 0) {
		log_err("reload: keeping the running configuration: %s", err);
		return;
	}
	conf_free(&s->conf);
	s->conf = fresh;
	conf_apply_logging(&s->conf);
	log_info("reload: configuration re-read, rolling restart");
	s->rolling = 1;
	s->roll_next = 0;
	s->roll_pid = 0;
}

/* One child at a time: self-reloading ones get SIGHUP, the others are restarted in turn. */
static void
roll_step(struct sup *s, int64_t now)
{
	struct proc *p;

	if (!s->rolling)
		return;
	if (s->roll_next >= NCHILDREN) {
		s->rolling = 0;
		return;
	}
	p = &s->procs[s->roll_next];
	if (p->state != PROC_RUNNING && s->roll_pid == 0) {
		s->roll_next++;
		return;
	}
	if (children[s->roll_next].reloads_on_hup) {
		kill(p->pid, SIGHUP);
		s->roll_next++;
		return;
	}
	if (s->roll_pid == 0) {
		s->roll_pid = p->pid;
		proc_stop(p, now, s->conf.stop_timeout_s * 1000);
	} else if (p->state == PROC_RUNNING && p->pid != s->roll_pid) {
		s->roll_pid = 0;
		s->roll_next++;
	}
}

static void
find_bin_dir(struct sup *s, const char *self)
{
	char exe[PATH_MAX];
	ssize_t n;

	if (s->conf.bin_dir[0] != '\0') {
		snprintf(s->bin_dir, sizeof(s->bin_dir), "%s", s->conf.bin_dir);
		return;
	}
	n = readlink(self, exe, sizeof(exe) - 1);
	if (n <= 0)
		fatal("cannot find my own binary: %s", strerror(errno));
	exe[n] = '\0';
	snprintf(s->bin_dir, sizeof(s->bin_dir), "%s", dirname(exe));
}

static void
usage(void)
{
	fprintf(stderr,
	    "usage: moleculed [-c config]             run the supervisor\n"
	    "       moleculed [-c config] -t          check the configuration\n"
	    "       moleculed [-c config] migrate status|up|down N\n"
	    "       moleculed [-c config] secrets rotate   re-encrypt every secret to the current key\n"
	    "       moleculed config-docs             print the configuration reference\n");
	exit(2);
}
