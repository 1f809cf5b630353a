/*
 * migrate.c: numbered SQL migrations (NNN_name.up.sql / .down.sql), one transaction each,
 * serialised across hosts by a PostgreSQL advisory lock. Owns the lists it mallocs until return.
 */
#include "common/migrate.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"

/* Any fixed number works; every host must use the same one. */
#define MIGRATE_LOCK_KEY "7246151337"
#define MIGRATION_MAX_BYTES (16 * 1024 * 1024)

static int ensure_table(PGconn *c);
static int lock(PGconn *c);
static void unlock(PGconn *c);
static int run(PGconn *c, const char *sql, const char *what);
static int run_file(PGconn *c, const char *dir, const struct migration *m, const char *suffix);
static int apply_one(PGconn *c, const char *dir, const struct migration *m, int up);
static int parse_name(const char *file, struct migration *m);
static int by_version(const void *a, const void *b);
static char *read_file(const char *path);

int
migrate_list(PGconn *c, const char *dir, struct migration **out)
{
	struct migration *list = NULL, m;
	struct dirent *de;
	DIR *d = NULL;
	PGresult *res = NULL;
	size_t n = 0, cap = 0, i;
	int j, rc = -1;

	*out = NULL;
	d = opendir(dir);
	if (d == NULL) {
		log_err("migrations: cannot open %s: %s", dir, strerror(errno));
		goto out;
	}
	while ((de = readdir(d)) != NULL) {
		if (parse_name(de->d_name, &m) < 0)
			continue;
		if (n == cap) {
			struct migration *grown;
			cap = cap ? cap * 2 : 16;
			grown = realloc(list, cap * sizeof(*list));
			if (grown == NULL)
				fatal("out of memory listing migrations");
			list = grown;
		}
		list[n++] = m;
	}
	if (n > 1)
		qsort(list, n, sizeof(*list), by_version);
	for (i = 1; i < n; i++) {
		if (list[i].version == list[i - 1].version) {
			log_err("migrations: version %ld used twice (%s, %s)", list[i].version,
			    list[i - 1].name, list[i].name);
			goto out;
		}
	}
	if (ensure_table(c) < 0)
		goto out;
	res = PQexec(c, "SELECT version FROM schema_migrations");
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		log_err("migrations: reading schema_migrations: %s", PQerrorMessage(c));
		goto out;
	}
	for (j = 0; j < PQntuples(res); j++) {
		long v = strtol(PQgetvalue(res, j, 0), NULL, 10);
		int found = 0;
		for (i = 0; i < n; i++) {
			if (list[i].version == v) {
				list[i].applied = 1;
				found = 1;
			}
		}
		if (!found)
			log_warn("migrations: version %ld is applied but has no file in %s", v, dir);
	}
	*out = list;
	list = NULL;
	rc = (int)n;
out:
	PQclear(res);
	free(list);
	if (d != NULL)
		closedir(d);
	return rc;
}

int
migrate_up(PGconn *c, const char *dir)
{
	struct migration *list = NULL;
	int n, i, applied = 0, rc = -1;

	if (lock(c) < 0)
		return -1;
	/* Listed under the lock: another host may have just finished. */
	n = migrate_list(c, dir, &list);
	if (n < 0)
		goto out;
	for (i = 0; i < n; i++) {
		if (list[i].applied)
			continue;
		if (apply_one(c, dir, &list[i], 1) < 0)
			goto out;
		applied++;
	}
	rc = applied;
out:
	unlock(c);
	free(list);
	return rc;
}

int
migrate_down(PGconn *c, const char *dir, int count)
{
	struct migration *list = NULL;
	int n, i, done = 0, rc = -1;

	if (lock(c) < 0)
		return -1;
	n = migrate_list(c, dir, &list);
	if (n < 0)
		goto out;
	for (i = n - 1; i >= 0 && done < count; i--) {
		if (!list[i].applied)
			continue;
		if (apply_one(c, dir, &list[i], 0) < 0)
			goto out;
		done++;
	}
	rc = done;
out:
	unlock(c);
	free(list);
	return rc;
}

int
migrate_status(PGconn *c, const char *dir, FILE *f)
{
	struct migration *list = NULL;
	int n, i;

	n = migrate_list(c, dir, &list);
	if (n < 0)
		return -1;
	for (i = 0; i < n; i++)
		fprintf(f, "%03ld %-40s %s\n", list[i].version, list[i].name,
		    list[i].applied ? "applied" : "pending");
	free(list);
	return 0;
}

static int
ensure_table(PGconn *c)
{
	return run(c, "CREATE TABLE IF NOT EXISTS schema_migrations ("
	    "version bigint PRIMARY KEY, name text NOT NULL, "
	    "applied_at timestamptz NOT NULL DEFAULT now())", "creating schema_migrations");
}

static int
lock(PGconn *c)
{
	return run(c, "SELECT pg_advisory_lock(" MIGRATE_LOCK_KEY ")", "taking the migration lock");
}

static void
unlock(PGconn *c)
{
	run(c, "SELECT pg_advisory_unlock(" MIGRATE_LOCK_KEY ")", "releasing the migration lock");
}

static int
run(PGconn *c, const char *sql, const char *what)
{
	PGresult *res = PQexec(c, sql);
	ExecStatusType st = PQresultStatus(res);
	int rc = 0;

	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		char msg[512];
		snprintf(msg, sizeof(msg), "%s", PQerrorMessage(c));
		msg[strcspn(msg, "\n")] = '\0';
		log_err("migrations: %s: %s", what, msg);
		rc = -1;
	}
	PQclear(res);
	return rc;
}

static int
run_file(PGconn *c, const char *dir, const struct migration *m, const char *suffix)
{
	char path[4096], what[256];
	char *sql;
	int rc;

	snprintf(path, sizeof(path), "%s/%s.%s.sql", dir, m->name, suffix);
	sql = read_file(path);
	if (sql == NULL)
		return -1;
	snprintf(what, sizeof(what), "%s.%s.sql", m->name, suffix);
	rc = run(c, sql, what);
	free(sql);
	return rc;
}

static int
apply_one(PGconn *c, const char *dir, const struct migration *m, int up)
{
	char version[32];
	const char *params[2];
	PGresult *res = NULL;
	int ok;

	snprintf(version, sizeof(version), "%ld", m->version);
	params[0] = version;
	params[1] = m->name;
	if (run(c, "BEGIN", "begin") < 0)
		return -1;
	if (run_file(c, dir, m, up ? "up" : "down") < 0)
		goto rollback;
	if (up)
		res = PQexecParams(c, "INSERT INTO schema_migrations(version, name) VALUES ($1, $2)",
		    2, NULL, params, NULL, NULL, 0);
	else
		res = PQexecParams(c, "DELETE FROM schema_migrations WHERE version = $1",
		    1, NULL, params, NULL, NULL, 0);
	ok = PQresultStatus(res) == PGRES_COMMAND_OK;
	PQclear(res);
	if (!ok) {
		log_err("migrations: recording %s: %s", m->name, PQerrorMessage(c));
		goto rollback;
	}
	if (run(c, "COMMIT", "commit") < 0)
		return -1;
	log_info("migrations: %s %s", up ? "applied" : "rolled back", m->name);
	return 0;
rollback:
	run(c, "ROLLBACK", "rollback");
	return -1;
}

/* Accepts "NNN_name.up.sql" with NNN all digits and name [a-z0-9_]. */
static int
parse_name(const char *file, struct migration *m)
{
	const char *p = file, *suffix;
	size_t len;

	memset(m, 0, sizeof(*m));
	if (!isdigit((unsigned char)*p))
		return -1;
	while (isdigit((unsigned char)*p))
		p++;
	if (*p != '_')
		return -1;
	suffix = strstr(file, ".up.sql");
	if (suffix == NULL || suffix[strlen(".up.sql")] != '\0')
		return -1;
	len = (size_t)(suffix - file);
	if (len >= sizeof(m->name))
		return -1;
	for (p = p + 1; p < suffix; p++)
		if (!islower((unsigned char)*p) && !isdigit((unsigned char)*p) && *p != '_')
			return -1;
	memcpy(m->name, file, len);
	m->version = strtol(file, NULL, 10);
	return 0;
}

static int
by_version(const void *a, const void *b)
{
	const struct migration *x = a, *y = b;

	return (x->version > y->version) - (x->version < y->version);
}

static char *
read_file(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	long size;

	if (f == NULL) {
		log_err("migrations: cannot open %s: %s", path, strerror(errno));
		return NULL;
	}
	if (fseek(f, 0, SEEK_END) < 0 || (size = ftell(f)) < 0 || size > MIGRATION_MAX_BYTES ||
	    fseek(f, 0, SEEK_SET) < 0) {
		log_err("migrations: %s: unreadable or larger than %d bytes", path, MIGRATION_MAX_BYTES);
		goto fail;
	}
	buf = xmalloc((size_t)size + 1);
	if (fread(buf, 1, (size_t)size, f) != (size_t)size) {
		log_err("migrations: short read on %s", path);
		goto fail;
	}
	buf[size] = '\0';
	fclose(f);
	return buf;
fail:
	free(buf);
	fclose(f);
	return NULL;
}
