/* fuzz_json_body.c: libFuzzer target for JSON request bodies (req_json_body + jsonx_parse). */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "common/arena.h"
#include "common/conf.h"
#include "fcgi/req.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct src {
	const uint8_t *data;
	size_t size, off;
};

static long
read_src(void *p, char *buf, size_t len)
{
	struct src *s = p;
	size_t n = s->size - s->off < len ? s->size - s->off : len;

	memcpy(buf, s->data + s->off, n);
	s->off += n;
	return (long)n;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct conf c;
	static int loaded;
	char method[] = "REQUEST_METHOD=POST", uri[] = "REQUEST_URI=/x", cl[64], err[128];
	char *env[] = { method, uri, cl, NULL };
	struct src s = { data, size, 0 };
	struct json_object *obj = NULL;
	struct arena a;
	struct req r;

	if (!loaded) {
		conf_load(&c, NULL, err, sizeof(err));
		c.max_body_bytes = 65536;
		loaded = 1;
	}
	snprintf(cl, sizeof(cl), "CONTENT_LENGTH=%zu", size);
	arena_init(&a, 4 << 20);
	if (req_init(&r, &a, &c, env, read_src, &s) == 0) {
		if (req_json_body(&r, &obj) == 0 && !json_object_is_type(obj, json_type_object))
			__builtin_trap();
		if (obj == NULL && !r.responded)
			__builtin_trap();
	}
	arena_cleanup(&a);
	return 0;
}
