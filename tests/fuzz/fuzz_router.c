/* fuzz_router.c: libFuzzer target for path matching and parameter decoding (fcgi/router.c). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "common/arena.h"
#include "fcgi/router.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int h(struct req *r) { (void)r; return 0; }

static const struct route table[] = {
	{ "GET", "/workspaces/:id", GUARD_NONE, h },
	{ "GET", "/workspaces/:id/secrets/:key", GUARD_NONE, h },
	{ "GET", "/workspaces/summary", GUARD_NONE, h },
	{ "GET", "/", GUARD_NONE, h },
};

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct arena a;
	struct req r;
	size_t i;

	arena_init(&a, 1 << 20);
	memset(&r, 0, sizeof(r));
	r.arena = &a;
	r.method = "GET";
	r.path = arena_strndup(&a, (const char *)data, size);
	if (r.path != NULL && router_match(table, sizeof(table) / sizeof(table[0]), &r) >= 0) {
		for (i = 0; i < r.nparams; i++)
			if (r.params[i].val == NULL || strchr(r.params[i].val, '\0') == NULL)
				__builtin_trap();
	}
	arena_cleanup(&a);
	return 0;
}
