/* fuzz_redact.c: libFuzzer target for the secret redactor of agent memories (common/redact.c). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "common/arena.h"
#include "common/redact.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct arena a;
	static int ready;
	char *text;
	const char *out;

	if (!ready) {
		arena_init(&a, 1 << 24);
		ready = 1;
	}
	text = arena_alloc(&a, size + 1);
	if (text == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	out = redact_secrets(&a, text);
	/* A replacement never grows a match by more than its label: a loose, always-true bound. */
	if (out != NULL && strlen(out) > strlen(text) * 24 + 1)
		__builtin_trap();
	arena_reset(&a);
	return 0;
}
