/* t_a2aq.c: unit tests of common/a2aq.c: the restart-context text the dispatcher delivers. */
#include "tests/unit/t.h"

#include <string.h>

#include "common/a2aq.h"
#include "common/arena.h"

void
test_a2aq__restart_text(void)
{
	struct arena a;
	char *s;

	arena_init(&a, 0);
	/* 2026-01-02T03:04:05Z, previous session 2h14m10s earlier, two keys. */
	s = a2aq_restart_text(&a, 1767323045, 1767323045 - 8050, "API_KEY, GITHUB_TOKEN");
	T_CHECK(s != NULL && strcmp(s, "=== WORKSPACE RESTART CONTEXT ===\n"
	    "Restart at: 2026-01-02T03:04:05Z\n"
	    "Previous session ended: 2026-01-02T00:49:55Z (2h14m ago)\n"
	    "Env vars now available: API_KEY, GITHUB_TOKEN\n"
	    "=== END RESTART CONTEXT ===\n") == 0);
	s = a2aq_restart_text(&a, 1767323045, 0, NULL);
	T_CHECK(s != NULL && strstr(s, "Previous session ended: (no prior session on record)\n") != NULL);
	T_CHECK(strstr(s, "Env vars now available: (none)\n") != NULL);
	s = a2aq_restart_text(&a, 1767323045, 1767323045 - 185, "");
	T_CHECK(s != NULL && strstr(s, "(3m5s ago)") != NULL);
	arena_cleanup(&a);
}
