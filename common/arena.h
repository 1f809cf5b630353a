/*
 * arena.h: a bump allocator over chained blocks, reset after every request (nginx pools).
 * Owns its blocks and runs the cleanup handlers registered on it (PGresult, json, curl) at reset.
 */
#ifndef MOLECULE_ARENA_H
#define MOLECULE_ARENA_H

#include <stddef.h>

typedef void (*arena_cleanup_fn)(void *p);

struct arena_block;
struct arena_cleanup;

struct arena {
	struct arena_block *head;
	struct arena_cleanup *cleanups;
	size_t used;	/* bytes handed out since the last reset, for the cap */
	size_t cap;	/* 0 = unlimited */
};

void arena_init(struct arena *a, size_t cap);
/* Runs cleanups (last registered first) and frees every block but the first. */
void arena_reset(struct arena *a);
void arena_cleanup(struct arena *a);

/* Returns NULL when the cap would be exceeded or memory is exhausted. */
void *arena_alloc(struct arena *a, size_t n);
char *arena_strdup(struct arena *a, const char *s);
char *arena_strndup(struct arena *a, const char *s, size_t n);
__attribute__((format(printf, 2, 3))) char *arena_printf(struct arena *a, const char *fmt, ...);
/* Registers fn(p) to run at the next reset; returns -1 (and runs fn now) if that fails. */
int arena_on_reset(struct arena *a, arena_cleanup_fn fn, void *p);

#endif
