/* t_jsonx.c: unit tests of common/jsonx.c (compact output the clients match, strict parsing). */
#include "tests/unit/t.h"

#include "common/jsonx.h"

void
test_jsonx__compact_numbers(void)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "x", jsonx_number(100.0));
	json_object_object_add(o, "zoom", jsonx_number(1.5));
	json_object_object_add(o, "last_error_rate", jsonx_number(0.8));
	json_object_object_add(o, "neg", jsonx_number(-3));
	json_object_object_add(o, "agent_card", NULL);
	json_object_object_add(o, "url", json_object_new_string("http://a/b"));
	T_STREQ(jsonx_dump(o, NULL),
	    "{\"x\":100,\"zoom\":1.5,\"last_error_rate\":0.8,\"neg\":-3,\"agent_card\":null,\"url\":\"http://a/b\"}");
	json_object_put(o);
	o = jsonx_number(0.1 + 0.2);
	T_STREQ(jsonx_dump(o, NULL), "0.30000000000000004");
	json_object_put(o);
}

void
test_jsonx__parse_strict(void)
{
	struct json_object *o;

	o = jsonx_parse("{\"a\":1}", 7);
	T_CHECK(o != NULL && json_object_is_type(o, json_type_object));
	json_object_put(o);
	o = jsonx_parse("{\"a\":1}  \n", 10);
	T_CHECK(o != NULL);
	json_object_put(o);
	T_CHECK(jsonx_parse("{\"a\":1}x", 8) == NULL);
	T_CHECK(jsonx_parse("{\"a\":", 5) == NULL);
	T_CHECK(jsonx_parse("{\"a\":tru}", 10) == NULL);
	T_CHECK(jsonx_parse("", 0) == NULL);
}
