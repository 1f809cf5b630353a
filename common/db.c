/*
 * db.c: PostgreSQL access, one lazily opened PGconn per process (libpq).
 * Owns the PGconn (process lifetime); PGresults are registered on the caller's arena.
 */
#include "common/db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/events.h"
#include "common/log.h"
#include "common/util.h"

static void clear_result(void *p);
static const char *prepared_name(PGconn *c, const char *sql, int nparams);
static void forget_prepared(void);
static void on_notice(void *arg, const char *msg);

static PGconn *conn;
static char *dsn;
static char connect_timeout[16];
static char options[64];
/*
 * Statements prepared on this connection, keyed by their text: the hot paths (token check,
 * heartbeat) then skip parsing and planning on every call.
 */
#define MAX_PREPARED 256
struct prepared {
	char *sql;
	uint64_t hash;
	char name[16];
};
static struct prepared prepared[MAX_PREPARED];
static size_t nprepared;

static int unavailable;
static int in_tx;
static char sqlstate[6];

void
db_configure(const struct conf *c)
{
	free(dsn);
	dsn = xstrdup(c->database_url);
	snprintf(connect_timeout, sizeof(connect_timeout), "%lld", (long long)c->db_connect_timeout_s);
	snprintf(options, sizeof(options), "-c statement_timeout=%lld",
	    (long long)c->db_statement_timeout_ms);
}

PGconn *
db_conn(void)
{
	/* Later keywords override what the URI in dbname says (expand_dbname=1). */
	const char *keys[] = { "dbname", "connect_timeout", "options", "application_name", NULL };
	const char *vals[] = { dsn, connect_timeout, options, "molecule", NULL };

	if (conn != NULL && PQstatus(conn) == CONNECTION_OK)
		return conn;
	if (conn != NULL) {
		log_warn("database connection lost, reconnecting");
		PQfinish(conn);
		conn = NULL;
	}
	forget_prepared();
	if (dsn == NULL) {
		log_err("database not configured");
		return NULL;
	}
	conn = PQconnectdbParams(keys, vals, 1);
	if (conn == NULL || PQstatus(conn) != CONNECTION_OK) {
		char msg[256];
		snprintf(msg, sizeof(msg), "%s", conn ? PQerrorMessage(conn) : "out of memory");
		msg[strcspn(msg, "\n")] = '\0';
		log_err("database connect failed: %s", msg);
		PQfinish(conn);
		conn = NULL;
		return NULL;
	}
	PQsetNoticeProcessor(conn, on_notice, NULL);
	return conn;
}

PGconn *
db_current(void)
{
	return conn;
}

void
db_close(void)
{
	PQfinish(conn);
	conn = NULL;
	forget_prepared();
}

void
db_forget_after_fork(void)
{
	if (conn == NULL)
		return;
	/* Closing our copy of the socket first makes PQfinish's goodbye go nowhere. */
	close(PQsocket(conn));
	PQfinish(conn);
	conn = NULL;
	forget_prepared();
}

PGresult *
db_exec(struct arena *a, const char *sql, int nparams, const char *const *params)
{
	PGresult *res;
	ExecStatusType st;
	PGconn *c;
	const char *state, *name;

	unavailable = 0;
	sqlstate[0] = '\0';
	c = db_conn();
	if (c == NULL) {
		unavailable = 1;
		return NULL;
	}
	name = prepared_name(c, sql, nparams);
	if (name != NULL)
		res = PQexecPrepared(c, name, nparams, params, NULL, NULL, 0);
	else
		res = PQexecParams(c, sql, nparams, NULL, params, NULL, NULL, 0);
	st = PQresultStatus(res);
	if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
		if (arena_on_reset(a, clear_result, res) < 0)
			return NULL;
		return res;
	}
	state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	snprintf(sqlstate, sizeof(sqlstate), "%s", state ? state : "");
	if (PQstatus(c) != CONNECTION_OK) {
		unavailable = 1;
		log_err("database connection failed during a statement");
	} else {
		char msg[256];
		snprintf(msg, sizeof(msg), "%s", PQresultErrorMessage(res));
		msg[strcspn(msg, "\n")] = '\0';
		log_err("statement failed (%s): %s", sqlstate, msg);
	}
	PQclear(res);
	return NULL;
}

int
db_unavailable(void)
{
	return unavailable;
}

const char *
db_last_sqlstate(void)
{
	return sqlstate;
}

int
db_begin(struct arena *a)
{
	if (db_exec(a, "BEGIN", 0, NULL) == NULL)
		return -1;
	in_tx = 1;
	return 0;
}

int
db_commit(struct arena *a)
{
	in_tx = 0;
	if (db_exec(a, "COMMIT", 0, NULL) == NULL) {
		events_discard();
		return -1;
	}
	events_flush();
	return 0;
}

void
db_rollback(void)
{
	PGresult *res;

	in_tx = 0;
	events_discard();
	if (conn == NULL || PQstatus(conn) != CONNECTION_OK)
		return;
	res = PQexec(conn, "ROLLBACK");
	PQclear(res);
}

int
db_in_transaction(void)
{
	return in_tx;
}

const char *
db_value(const PGresult *res, int row, int col)
{
	if (PQgetisnull(res, row, col))
		return NULL;
	return PQgetvalue(res, row, col);
}

/* Server notices (e.g. "relation already exists, skipping") go through the log, at debug. */
static void
on_notice(void *arg, const char *msg)
{
	(void)arg;
	log_debug("postgres: %.*s", (int)strcspn(msg, "\n"), msg);
}

/*
 * The name of sql prepared on c, preparing it on first use. NULL (use the unprepared path) for
 * statements without parameters (BEGIN, COMMIT), when the cache is full or preparing failed.
 */
static const char *
prepared_name(PGconn *c, const char *sql, int nparams)
{
	uint64_t h;
	struct prepared *e;
	PGresult *res;
	size_t i;
	int ok;

	if (nparams == 0)
		return NULL;
	h = hash_str(sql);
	for (i = 0; i < nprepared; i++)
		if (prepared[i].hash == h && strcmp(prepared[i].sql, sql) == 0)
			return prepared[i].name;
	if (nprepared == MAX_PREPARED)
		return NULL;
	e = &prepared[nprepared];
	snprintf(e->name, sizeof(e->name), "m%zu", nprepared);
	res = PQprepare(c, e->name, sql, nparams, NULL);
	ok = PQresultStatus(res) == PGRES_COMMAND_OK;
	PQclear(res);
	if (!ok)
		return NULL;
	e->sql = strdup(sql);
	if (e->sql == NULL)
		return NULL;
	e->hash = h;
	nprepared++;
	return e->name;
}

static void
forget_prepared(void)
{
	while (nprepared > 0)
		free(prepared[--nprepared].sql);
}

static void
clear_result(void *p)
{
	PQclear(p);
}
