/* fuzz_engine_stream.c: libFuzzer target for the engine's JSON-lines and multiplexed-log parsers. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "common/engine_stream.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
on_line(void *arg, const char *line)
{
	size_t *n = arg;

	*n += strlen(line);
}

/* The first byte picks the chunk size, so the fuzzer also explores every split of the same bytes. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct jsonl p;
	struct mux m;
	size_t step, off, total = 0, take;
	int bad = 0;

	if (size == 0)
		return 0;
	step = (size_t)data[0] % 17 + 1;
	data++;
	size--;
	jsonl_init(&p, on_line, &total);
	for (off = 0; off < size; off += step) {
		take = size - off < step ? size - off : step;
		if (jsonl_feed(&p, data + off, take) != 0)
			break;
	}
	jsonl_finish(&p);
	if (p.len > JSONL_MAX_LINE || strlen(p.err) >= sizeof(p.err))
		__builtin_trap();
	jsonl_free(&p);

	mux_init(&m, 64);
	for (off = 0; off < size && !bad; off += step) {
		take = size - off < step ? size - off : step;
		bad = mux_feed(&m, data + off, take) != 0;
	}
	if (m.out != NULL && (m.len > 64 || strlen(m.out) > m.len))
		__builtin_trap();
	mux_free(&m);
	return 0;
}
