/* fuzz_config.c: libFuzzer target for the configuration file parser (common/conf.c). */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/conf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char path[64];
	struct conf c = { 0 };
	char err[512];
	FILE *f;

	if (path[0] == '\0')
		snprintf(path, sizeof(path), "/tmp/fuzz-conf-%d", (int)getpid());
	f = fopen(path, "w");
	if (f == NULL)
		return 0;
	fwrite(data, 1, size, f);
	fclose(f);
	chmod(path, 0600);
	if (conf_load(&c, path, err, sizeof(err)) == 0) {
		if (c.api_workers < 0 || c.max_body_bytes < 1024)
			__builtin_trap();
	}
	conf_free(&c);
	return 0;
}
