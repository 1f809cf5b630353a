/* t_a2a.c: unit tests of common/a2a.c: JSON-RPC wrapping, text requests, result text, address pinning. */
#include "tests/unit/t.h"

#include "common/a2a.h"
#include "common/jsonx.h"

static const char *get_str(struct json_object *o, const char *path);
static struct json_object *parse(const char *s);

void
test_a2a__wrap(void)
{
	char err[128];
	struct json_object *in, *out;
	size_t len;

	/* A full JSON-RPC body keeps its id and messageId. */
	in = parse("{\"jsonrpc\":\"2.0\",\"id\":\"my-id\",\"method\":\"message/send\","
	    "\"params\":{\"message\":{\"role\":\"user\",\"messageId\":\"m1\",\"parts\":[]}}}");
	T_CHECK(in != NULL);
	out = a2a_wrap(in, err, sizeof(err));
	T_CHECK(out != NULL);
	T_STREQ(get_str(out, "id"), "my-id");
	T_STREQ(get_str(out, "params.message.messageId"), "m1");
	json_object_put(in);
	json_object_put(out);

	/* Bare {method, params} with a numeric id: wrapped, id kept, messageId added. */
	in = parse("{\"id\":7,\"method\":\"message/send\",\"params\":{\"message\":{\"parts\":[]}}}");
	T_CHECK(in != NULL);
	out = a2a_wrap(in, err, sizeof(err));
	T_CHECK(out != NULL);
	T_STREQ(get_str(out, "jsonrpc"), "2.0");
	T_STREQ(jsonx_dump(json_object_object_get(out, "id"), &len), "7");
	T_CHECK(strlen(get_str(out, "params.message.messageId")) == 36);
	json_object_put(in);
	json_object_put(out);

	/* Bare params ({message}) and a bare message become message/send. */
	in = parse("{\"message\":{\"role\":\"user\",\"parts\":[{\"kind\":\"text\",\"text\":\"hi\"}]}}");
	out = a2a_wrap(in, err, sizeof(err));
	T_STREQ(get_str(out, "method"), "message/send");
	T_CHECK(strlen(get_str(out, "id")) == 36);
	T_CHECK(json_object_object_get(json_object_object_get(out, "params"), "message") != NULL);
	json_object_put(in);
	json_object_put(out);
	in = parse("{\"role\":\"user\",\"parts\":[]}");
	out = a2a_wrap(in, err, sizeof(err));
	T_CHECK(out != NULL && get_str(out, "params.message.messageId") != NULL);
	json_object_put(in);
	json_object_put(out);

	/* Nothing to send. */
	in = parse("{\"hello\":1}");
	T_CHECK(a2a_wrap(in, err, sizeof(err)) == NULL);
	json_object_put(in);
	in = parse("[1]");
	T_CHECK(a2a_wrap(in, err, sizeof(err)) == NULL);
	json_object_put(in);
}

void
test_a2a__text_request_and_result(void)
{
	struct json_object *meta = json_object_new_object(), *req, *resp;

	json_object_object_add(meta, "delegation_id", json_object_new_string("d1"));
	req = a2a_text_request("run the report", "msg-1", meta);
	T_STREQ(get_str(req, "method"), "message/send");
	T_STREQ(get_str(req, "id"), "msg-1");
	T_STREQ(get_str(req, "params.message.messageId"), "msg-1");
	T_STREQ(get_str(req, "params.message.metadata.delegation_id"), "d1");
	json_object_put(meta);
	json_object_put(req);

	resp = parse("{\"result\":{\"parts\":[{\"kind\":\"data\"},{\"kind\":\"text\",\"text\":\"done\"}]}}");
	T_STREQ(a2a_result_text(resp), "done");
	json_object_put(resp);
	resp = parse("{\"result\":{\"kind\":\"task\",\"artifacts\":[{\"parts\":[{\"type\":\"text\","
	    "\"text\":\"art\"}]}]}}");
	T_STREQ(a2a_result_text(resp), "art");
	json_object_put(resp);
	resp = parse("{\"result\":{\"status\":{\"message\":{\"parts\":[{\"kind\":\"text\",\"text\":\"st\"}]}}}}");
	T_STREQ(a2a_result_text(resp), "st");
	json_object_put(resp);
	resp = parse("{\"error\":{\"code\":-1}}");
	T_CHECK(a2a_result_text(resp) == NULL);
	json_object_put(resp);
}

void
test_a2a__pin_target(void)
{
	char res[A2A_RESOLVE_MAX], err[256];

	/* Loopback only when allowed; names are pinned, literals need no pin. */
	T_CHECK(a2a_pin_target("http://127.0.0.1:8000/a2a", 0, res, sizeof(res), err, sizeof(err)) < 0);
	T_CHECK(strstr(err, "loopback") != NULL);
	T_CHECK(a2a_pin_target("http://127.0.0.1:8000/a2a", 1, res, sizeof(res), err, sizeof(err)) == 0);
	T_STREQ(res, "");
	T_CHECK(a2a_pin_target("http://localhost:9/x", 0, res, sizeof(res), err, sizeof(err)) < 0);
	T_CHECK(a2a_pin_target("http://localhost:9/x", 1, res, sizeof(res), err, sizeof(err)) == 0);
	T_CHECK(strncmp(res, "localhost:9:", 12) == 0);
	T_CHECK(a2a_pin_target("http://[::1]:8000", 0, res, sizeof(res), err, sizeof(err)) < 0);
	T_CHECK(a2a_pin_target("http://[::ffff:127.0.0.1]:8000", 0, res, sizeof(res), err, sizeof(err)) < 0);
	/* Metadata, link-local, unspecified: refused even with loopback allowed. */
	T_CHECK(a2a_pin_target("http://169.254.169.254/latest", 1, res, sizeof(res), err, sizeof(err)) < 0);
	T_CHECK(a2a_pin_target("http://0.0.0.0:80", 1, res, sizeof(res), err, sizeof(err)) < 0);
	T_CHECK(a2a_pin_target("http://[fe80::1]:80", 1, res, sizeof(res), err, sizeof(err)) < 0);
	/* Private-use addresses are agent networks: allowed. */
	T_CHECK(a2a_pin_target("http://10.1.2.3:8000", 0, res, sizeof(res), err, sizeof(err)) == 0);
	/* Syntax. */
	T_CHECK(a2a_pin_target("ftp://10.1.2.3/", 1, res, sizeof(res), err, sizeof(err)) < 0);
	T_CHECK(a2a_pin_target("http://u:p@10.1.2.3/", 1, res, sizeof(res), err, sizeof(err)) < 0);
	T_CHECK(a2a_pin_target("http://10.1.2.3:99999/", 1, res, sizeof(res), err, sizeof(err)) < 0);
	T_CHECK(a2a_pin_target("http:///x", 1, res, sizeof(res), err, sizeof(err)) < 0);
}

/* A string at a dotted path, or NULL. */
static const char *
get_str(struct json_object *o, const char *path)
{
	char key[64];
	const char *p = path, *dot;
	size_t n;

	while (o != NULL && *p != '\0') {
		dot = strchr(p, '.');
		n = dot != NULL ? (size_t)(dot - p) : strlen(p);
		if (n >= sizeof(key))
			return NULL;
		memcpy(key, p, n);
		key[n] = '\0';
		if (!json_object_object_get_ex(o, key, &o))
			return NULL;
		p += n + (dot != NULL);
	}
	return o != NULL && json_object_is_type(o, json_type_string) ? json_object_get_string(o) : NULL;
}

static struct json_object *
parse(const char *s)
{
	return jsonx_parse(s, strlen(s));
}
