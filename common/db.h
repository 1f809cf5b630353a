/*
 * db.h: PostgreSQL access, one lazily opened PGconn per process (libpq).
 * Owns the PGconn; every PGresult it returns belongs to the caller's arena.
 */
#ifndef MOLECULE_DB_H
#define MOLECULE_DB_H

#include <libpq-fe.h>

#include "common/arena.h"
#include "common/conf.h"

/* Remembers where and how to connect; connects on first use. */
void db_configure(const struct conf *c);
/* Returns a healthy connection, (re)connecting if needed, or NULL with the reason logged. */
PGconn *db_conn(void);
/*
 * The current connection as it is, without checking or reconnecting: NULL when none is open.
 * Its identity is PQbackendPID: db_conn() may PQfinish it and open another at any statement,
 * so callers must not keep the pointer across statements.
 */
PGconn *db_current(void);
/* Closes the connection (end of process). */
void db_close(void);
/* In a freshly forked child: drops the parent's connection without talking to the server. */
void db_forget_after_fork(void);
/*
 * Runs sql with text parameters ($1..$n). The result is cleared when the arena resets.
 * Returns NULL on any failure, logged; db_unavailable() then tells whether the database
 * could not be reached (503) rather than the statement failing (500).
 */
PGresult *db_exec(struct arena *a, const char *sql, int nparams, const char *const *params);
int db_unavailable(void);
/*
 * Transactions on the process's connection. db_commit publishes the live events queued
 * by events_record during the transaction; db_rollback discards them. Both return 0 or -1.
 */
int db_begin(struct arena *a);
int db_commit(struct arena *a);
void db_rollback(void);
int db_in_transaction(void);
/* SQL rendering a timestamptz column as RFC 3339 UTC, trailing fractional zeros trimmed (Go's JSON). */
#define DB_RFC3339(col) "rtrim(rtrim(to_char(" col " AT TIME ZONE 'UTC', " \
    "'YYYY-MM-DD\"T\"HH24:MI:SS.US'), '0'), '.') || 'Z'"

/* A column value, or NULL when SQL NULL. */
const char *db_value(const PGresult *res, int row, int col);
/* SQLSTATE of the last failed statement ("" when none), e.g. "23505" for a unique violation. */
const char *db_last_sqlstate(void);

#endif
