/*
 * jsonx.c: compact JSON output the existing clients match byte for byte ("x":100, no spaces).
 * Owns nothing; json objects are the caller's, optionally handed to an arena.
 */
#include "common/jsonx.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static void put_json(void *p);

const char *
jsonx_dump(struct json_object *obj, size_t *len)
{
	return json_object_to_json_string_length(obj,
	    JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, len);
}

struct json_object *
jsonx_number(double d)
{
	char buf[32];

	if (isfinite(d) && d == floor(d) && fabs(d) < 9007199254740992.0)
		return json_object_new_int64((int64_t)d);
	if (!isfinite(d))
		return json_object_new_null();
	/* Shortest of %.15g/%.17g that reads back as the same double, like Go's strconv. */
	snprintf(buf, sizeof(buf), "%.15g", d);
	if (strtod(buf, NULL) != d)
		snprintf(buf, sizeof(buf), "%.17g", d);
	return json_object_new_double_s(d, buf);
}

struct json_object *
jsonx_own(struct arena *a, struct json_object *obj)
{
	if (obj != NULL && arena_on_reset(a, put_json, obj) < 0)
		return NULL;
	return obj;
}

struct json_object *
jsonx_parse(const char *buf, size_t len)
{
	struct json_tokener *tok;
	struct json_object *obj;

	if (len > (size_t)INT32_MAX)
		return NULL;
	tok = json_tokener_new_ex(64);
	if (tok == NULL)
		return NULL;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	obj = json_tokener_parse_ex(tok, buf, (int)len);
	/* Trailing bytes after the value (other than whitespace) make it invalid. */
	if (obj != NULL && (json_tokener_get_error(tok) != json_tokener_success ||
	    (size_t)json_tokener_get_parse_end(tok) != len)) {
		size_t i;
		for (i = json_tokener_get_parse_end(tok); i < len; i++) {
			if (buf[i] != ' ' && buf[i] != '\n' && buf[i] != '\r' && buf[i] != '\t') {
				json_object_put(obj);
				obj = NULL;
				break;
			}
		}
	}
	if (obj == NULL && json_tokener_get_error(tok) == json_tokener_continue)
		obj = NULL;
	json_tokener_free(tok);
	return obj;
}

static void
put_json(void *p)
{
	json_object_put(p);
}
