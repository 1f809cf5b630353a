/* t_arena.c: unit tests of common/arena.c (bump allocation, cap, cleanup handlers). */
#include "tests/unit/t.h"

#include <stdint.h>

#include "common/arena.h"

static int cleaned[4];
static int clean_order[4];
static int nclean;

static void
mark(void *p)
{
	int i = (int)(intptr_t)p;

	cleaned[i]++;
	clean_order[nclean++] = i;
}

void
test_arena__alloc_and_reset(void)
{
	struct arena a;
	char *s;
	void *p;
	int i;

	arena_init(&a, 0);
	s = arena_strdup(&a, "hello");
	T_STREQ(s, "hello");
	T_STREQ(arena_printf(&a, "%s-%d", "x", 42), "x-42");
	for (i = 0; i < 1000; i++) {
		p = arena_alloc(&a, 100);
		T_CHECK(p != NULL);
		T_CHECK(((uintptr_t)p & 15) == 0);
	}
	arena_reset(&a);
	T_CHECK(a.used == 0);
	T_CHECK(arena_alloc(&a, 10) != NULL);
	arena_cleanup(&a);
}

void
test_arena__cap(void)
{
	struct arena a;

	arena_init(&a, 1024);
	T_CHECK(arena_alloc(&a, 512) != NULL);
	T_CHECK(arena_alloc(&a, 1024) == NULL);
	T_CHECK(arena_alloc(&a, 256) != NULL);
	arena_reset(&a);
	T_CHECK(arena_alloc(&a, 1000) != NULL);
	arena_cleanup(&a);
}

void
test_arena__cleanup_order(void)
{
	struct arena a;

	arena_init(&a, 0);
	nclean = 0;
	arena_on_reset(&a, mark, (void *)(intptr_t)1);
	arena_on_reset(&a, mark, (void *)(intptr_t)2);
	arena_reset(&a);
	T_CHECK(cleaned[1] == 1 && cleaned[2] == 1);
	T_CHECK(clean_order[0] == 2 && clean_order[1] == 1);
	arena_reset(&a);
	T_CHECK(cleaned[1] == 1);
	/* A full arena still runs the cleanup, at once. */
	arena_cleanup(&a);
	arena_init(&a, 16);
	T_CHECK(arena_alloc(&a, 16) != NULL);
	T_CHECK(arena_on_reset(&a, mark, (void *)(intptr_t)3) == -1);
	T_CHECK(cleaned[3] == 1);
	arena_cleanup(&a);
}

void
test_arena__big_block(void)
{
	struct arena a;
	char *p;

	arena_init(&a, 0);
	p = arena_alloc(&a, 100000);
	T_CHECK(p != NULL);
	memset(p, 'x', 100000);
	T_CHECK(arena_alloc(&a, 8) != NULL);
	arena_reset(&a);
	arena_reset(&a);
	arena_cleanup(&a);
}
