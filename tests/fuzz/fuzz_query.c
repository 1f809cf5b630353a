/* fuzz_query.c: libFuzzer target for the query-string and percent decoders (fcgi/req.c). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "common/arena.h"
#include "fcgi/req.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct arena a;
	struct req_kv kv[REQ_MAX_QUERY];
	char *qs;
	size_t n, i;

	arena_init(&a, 1 << 20);
	qs = arena_strndup(&a, (const char *)data, size);
	if (qs != NULL) {
		n = req_parse_query(&a, qs, kv, REQ_MAX_QUERY);
		for (i = 0; i < n; i++)
			if (strlen(kv[i].key) == 0)
				__builtin_trap();
		req_percent_decode(&a, (const char *)data, size, 0);
	}
	arena_cleanup(&a);
	return 0;
}
