/* fuzz_cron.c: libFuzzer target for the cron grammar, next-fire search and TZif parser (common/cron.c). */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "common/cron.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const zones[] = { "UTC", "America/New_York", "Europe/Berlin",
		"Australia/Lord_Howe" };
	const struct cron_tz *tz;
	struct cron_tz *own;
	struct cron_expr e;
	char text[CRON_EXPR_MAX + 2], err[256];
	int64_t after, next;

	if (size < 2)
		return 0;
	/* First byte 'T': the rest is a TZif file; otherwise byte 0 picks a zone and the rest is text. */
	if (data[0] == 'T') {
		own = cron_tz_from_bytes(data + 1, size - 1, err, sizeof(err));
		if (own != NULL) {
			cron_parse("*/7 * * * *", &e, err, sizeof(err));
			for (after = -4000000000LL; after < 4000000000LL; after += 400000000LL) {
				(void)cron_tz_offset(own, after);
				if (cron_next(&e, own, after, &next) == 0 && next <= after)
					__builtin_trap();
			}
			cron_tz_free(own);
		}
		return 0;
	}
	if (size - 1 > CRON_EXPR_MAX + 1)
		size = CRON_EXPR_MAX + 2;
	memcpy(text, data + 1, size - 1);
	text[size - 1] = '\0';
	if (cron_parse(text, &e, err, sizeof(err)) < 0) {
		if (err[0] == '\0')
			__builtin_trap();
		return 0;
	}
	tz = cron_tz_get(zones[data[0] % 4], err, sizeof(err));
	if (tz == NULL)
		return 0;
	after = 1767225600 + (int64_t)(data[0]) * 86400 * 17;
	if (cron_next(&e, tz, after, &next) == 0 && (next <= after || next > after + 11LL * 366 * 86400))
		__builtin_trap();
	return 0;
}
