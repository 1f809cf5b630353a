/* fuzz_gitea.c: libFuzzer target for Gitea branch answers (gitea_parse_branch), untrusted network bytes. */
#include <ctype.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/gitea.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char sha[65];
	size_t i, n;

	if (gitea_parse_branch((const char *)data, size, sha, sizeof(sha)) == 0) {
		/* What reaches git's argv, a path and an image tag: only 40 or 64 lowercase hex digits. */
		n = strlen(sha);
		if (n != 40 && n != 64)
			abort();
		for (i = 0; i < n; i++)
			if (!isxdigit((unsigned char)sha[i]) || isupper((unsigned char)sha[i]))
				abort();
	} else if (sha[0] != '\0') {
		abort();
	}
	/* A too-small buffer must never be overrun. */
	(void)gitea_parse_branch((const char *)data, size, sha, 41);
	return 0;
}
