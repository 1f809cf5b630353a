/*
 * migrate.h: numbered SQL migrations (NNN_name.up.sql / .down.sql), one transaction each,
 * serialised across hosts by a PostgreSQL advisory lock. Owns nothing past each call.
 */
#ifndef MOLECULE_MIGRATE_H
#define MOLECULE_MIGRATE_H

#include <libpq-fe.h>
#include <stdio.h>

struct migration {
	long version;
	char name[128];		/* "001_init" */
	int applied;
};

/*
 * Lists dir's migrations sorted by version, marking those recorded in schema_migrations.
 * Returns the count (>= 0) with *out malloc'd, or -1 (logged). Duplicate versions are an error.
 */
int migrate_list(PGconn *c, const char *dir, struct migration **out);
/* Applies every pending migration in order. Returns the number applied, or -1 (logged). */
int migrate_up(PGconn *c, const char *dir);
/* Rolls back the newest n applied migrations with their .down.sql. Returns count or -1. */
int migrate_down(PGconn *c, const char *dir, int n);
/* Prints "version name applied|pending" lines. Returns 0 or -1. */
int migrate_status(PGconn *c, const char *dir, FILE *f);

#endif
