/*
 * arena.c: a bump allocator over chained blocks, reset after every request (nginx pools).
 * Owns its blocks and the cleanup list; objects handed out belong to the arena until reset.
 */
#include "common/arena.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BLOCK_SIZE (16 * 1024)
#define ALIGN 16

struct arena_block {
	struct arena_block *next;
	size_t size;
	size_t off;
	_Alignas(ALIGN) unsigned char data[];
};

struct arena_cleanup {
	struct arena_cleanup *next;
	arena_cleanup_fn fn;
	void *p;
};

static struct arena_block *block_new(size_t min);

void
arena_init(struct arena *a, size_t cap)
{
	a->head = NULL;
	a->cleanups = NULL;
	a->used = 0;
	a->cap = cap;
}

void
arena_reset(struct arena *a)
{
	struct arena_block *b, *next;

	while (a->cleanups != NULL) {
		struct arena_cleanup *c = a->cleanups;
		a->cleanups = c->next;
		c->fn(c->p);
	}
	if (a->head == NULL)
		return;
	/* Keep one standard block so a steady request load allocates nothing. */
	for (b = a->head; b != NULL; b = next) {
		next = b->next;
		if (next == NULL && b->size == BLOCK_SIZE) {
			b->off = 0;
			a->head = b;
			break;
		}
		free(b);
		if (next == NULL)
			a->head = NULL;
	}
	if (a->head != NULL)
		a->head->next = NULL;
	a->used = 0;
}

void
arena_cleanup(struct arena *a)
{
	if (a == NULL)
		return;
	arena_reset(a);
	free(a->head);
	a->head = NULL;
}

void *
arena_alloc(struct arena *a, size_t n)
{
	struct arena_block *b = a->head;
	size_t need = (n + ALIGN - 1) & ~(size_t)(ALIGN - 1);

	if (need < n || (a->cap != 0 && a->used + need > a->cap))
		return NULL;
	if (b == NULL || b->size - b->off < need) {
		b = block_new(need);
		if (b == NULL)
			return NULL;
		b->next = a->head;
		a->head = b;
	}
	a->used += need;
	b->off += need;
	return b->data + b->off - need;
}

char *
arena_strndup(struct arena *a, const char *s, size_t n)
{
	char *p = arena_alloc(a, n + 1);

	if (p == NULL)
		return NULL;
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

char *
arena_strdup(struct arena *a, const char *s)
{
	return arena_strndup(a, s, strlen(s));
}

char *
arena_printf(struct arena *a, const char *fmt, ...)
{
	va_list ap;
	int n;
	char *p;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return NULL;
	p = arena_alloc(a, (size_t)n + 1);
	if (p == NULL)
		return NULL;
	va_start(ap, fmt);
	vsnprintf(p, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return p;
}

int
arena_on_reset(struct arena *a, arena_cleanup_fn fn, void *p)
{
	struct arena_cleanup *c = arena_alloc(a, sizeof(*c));

	if (c == NULL) {
		fn(p);
		return -1;
	}
	c->fn = fn;
	c->p = p;
	c->next = a->cleanups;
	a->cleanups = c;
	return 0;
}

static struct arena_block *
block_new(size_t min)
{
	size_t size = min > BLOCK_SIZE ? min : BLOCK_SIZE;
	struct arena_block *b = malloc(sizeof(*b) + size);

	if (b == NULL)
		return NULL;
	b->next = NULL;
	b->size = size;
	b->off = 0;
	return b;
}
