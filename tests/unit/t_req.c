/* t_req.c: unit tests of fcgi/req.c, resp.c and dispatch.c on hand-made CGI environments. */
#include "tests/unit/t.h"

#include <stdlib.h>

#include "common/conf.h"
#include "common/util.h"
#include "fcgi/dispatch.h"
#include "fcgi/req.h"
#include "fcgi/resp.h"

struct buf_src {
	const char *data;
	size_t len, off;
};

static long
buf_read(void *src, char *out, size_t len)
{
	struct buf_src *b = src;
	size_t n = b->len - b->off < len ? b->len - b->off : len;

	memcpy(out, b->data + b->off, n);
	b->off += n;
	return (long)n;
}

static void
load_conf(struct conf *c)
{
	char err[256];

	memset(c, 0, sizeof(*c));
	T_CHECK(conf_load(c, NULL, err, sizeof(err)) == 0);
}

void
test_req__query_parsing(void)
{
	struct arena a;
	struct req_kv kv[4];
	size_t n;

	arena_init(&a, 0);
	n = req_parse_query(&a, "confirm=true&purge&x=a+b%21&=skip&bad=%zz&y=", kv, 4);
	T_CHECK(n == 4);
	T_STREQ(kv[0].key, "confirm");
	T_STREQ(kv[0].val, "true");
	T_STREQ(kv[1].key, "purge");
	T_STREQ(kv[1].val, "");
	T_STREQ(kv[2].val, "a b!");
	T_STREQ(kv[3].key, "y");
	T_CHECK(req_parse_query(&a, "", kv, 4) == 0);
	T_CHECK(req_parse_query(&a, "a=1&b=2&c=3&d=4&e=5", kv, 4) == 4);
	T_CHECK(req_parse_query(&a, "&&&", kv, 4) == 0);
	arena_cleanup(&a);
}

void
test_req__percent_decode(void)
{
	struct arena a;

	arena_init(&a, 0);
	T_STREQ(req_percent_decode(&a, "%41%62c", 7, 0), "Abc");
	T_STREQ(req_percent_decode(&a, "a+b", 3, 0), "a+b");
	T_STREQ(req_percent_decode(&a, "a+b", 3, 1), "a b");
	T_CHECK(req_percent_decode(&a, "%4", 2, 0) == NULL);
	T_CHECK(req_percent_decode(&a, "%", 1, 0) == NULL);
	T_CHECK(req_percent_decode(&a, "%00", 3, 0) == NULL);
	/* Length is honoured: bytes after len are not read. */
	T_STREQ(req_percent_decode(&a, "ab%41", 2, 0), "ab");
	arena_cleanup(&a);
}

void
test_req__headers_and_bearer(void)
{
	char *env[] = { "REQUEST_METHOD=GET", "REQUEST_URI=/x?q=1", "HTTP_AUTHORIZATION=Bearer  tok123",
		"HTTP_X_WORKSPACE_ID=ws-1", "CONTENT_TYPE=application/json", NULL };
	struct arena a;
	struct conf c;
	struct req r;

	load_conf(&c);
	arena_init(&a, 0);
	T_CHECK(req_init(&r, &a, &c, env, NULL, NULL) == 0);
	T_STREQ(r.path, "/x");
	T_STREQ(r.query, "q=1");
	T_STREQ(req_query(&r, "q"), "1");
	T_STREQ(req_header(&r, "X-Workspace-ID"), "ws-1");
	T_STREQ(req_header(&r, "Content-Type"), "application/json");
	T_STREQ(req_bearer(&r), "tok123");
	T_CHECK(req_header(&r, "X-Missing") == NULL);
	T_CHECK(strncmp(r.request_id, "local-", 6) == 0);
	arena_cleanup(&a);
	conf_free(&c);
}

void
test_req__json_body(void)
{
	char *env[] = { "REQUEST_METHOD=POST", "REQUEST_URI=/x", "CONTENT_LENGTH=17", NULL };
	struct buf_src src = { "{\"name\":\"alpha\"} ", 17, 0 };
	struct json_object *obj = NULL, *v = NULL;
	struct arena a;
	struct conf c;
	struct req r;

	load_conf(&c);
	arena_init(&a, 0);
	T_CHECK(req_init(&r, &a, &c, env, buf_read, &src) == 0);
	T_CHECK(req_json_body(&r, &obj) == 0);
	T_CHECK(json_object_object_get_ex(obj, "name", &v));
	T_STREQ(json_object_get_string(v), "alpha");
	arena_cleanup(&a);
	conf_free(&c);
}

static int
body_status(struct conf *c, const char *len, const char *body)
{
	char cl[64];
	char *env[] = { "REQUEST_METHOD=POST", "REQUEST_URI=/x", cl, NULL };
	struct buf_src src = { body, strlen(body), 0 };
	struct json_object *obj = NULL;
	struct arena a;
	struct req r;
	int status;

	snprintf(cl, sizeof(cl), "CONTENT_LENGTH=%s", len);
	arena_init(&a, 0);
	T_CHECK(req_init(&r, &a, c, env, buf_read, &src) == 0);
	status = req_json_body(&r, &obj) == 0 ? 200 : r.status;
	arena_cleanup(&a);
	return status;
}

void
test_req__json_body_limits(void)
{
	struct conf c;

	load_conf(&c);
	c.max_body_bytes = 16;
	T_CHECK(body_status(&c, "17", "{\"a\":\"0123456789\"}") == 413);
	T_CHECK(body_status(&c, "0", "") == 400);
	T_CHECK(body_status(&c, "abc", "{}") == 400);
	T_CHECK(body_status(&c, "5", "{\"a\":") == 400);
	T_CHECK(body_status(&c, "2", "[]") == 400);
	T_CHECK(body_status(&c, "10", "{}") == 400);
	T_CHECK(body_status(&c, "4", "{}{}") == 400);
	T_CHECK(body_status(&c, "2", "{}") == 200);
	conf_free(&c);
}

void
test_resp__error_shape(void)
{
	char *env[] = { "REQUEST_METHOD=GET", "REQUEST_URI=/x", NULL };
	struct json_object *extra = json_object_new_object();
	struct arena a;
	struct conf c;
	struct req r;

	load_conf(&c);
	arena_init(&a, 0);
	T_CHECK(req_init(&r, &a, &c, env, NULL, NULL) == 0);
	json_object_object_add(extra, "retry_after", json_object_new_int(60));
	T_CHECK(resp_error(&r, 429, "rate limit exceeded", extra) == -1);
	T_CHECK(r.status == 429);
	T_STREQ(r.body, "{\"error\":\"rate limit exceeded\",\"retry_after\":60}");
	T_CHECK(resp_unavailable(&r) == -1);
	T_CHECK(r.status == 503);
	T_STREQ(r.body, "{\"error\":\"platform datastore unavailable — retry shortly\",\"code\":\"platform_unavailable\"}");
	arena_cleanup(&a);
	conf_free(&c);
}

void
test_resp__render(void)
{
	char *env[] = { "REQUEST_METHOD=GET", "REQUEST_URI=/x", NULL };
	struct arena a;
	struct conf c;
	struct req r;
	size_t len = 0;
	char *out;

	load_conf(&c);
	arena_init(&a, 0);
	T_CHECK(req_init(&r, &a, &c, env, NULL, NULL) == 0);
	resp_text(&r, 201, "application/json", "{}", 2);
	resp_header(&r, "X-Test", "1");
	out = resp_render(&r, &len);
	T_CHECK(out != NULL);
	T_CHECK(strncmp(out, "Status: 201 Created\r\n", 21) == 0);
	T_CHECK(strstr(out, "Content-Length: 2\r\n") != NULL);
	T_CHECK(strstr(out, "X-Test: 1\r\n") != NULL);
	T_CHECK(len > 4 && memcmp(out + len - 6, "\r\n\r\n{}", 6) == 0);
	arena_cleanup(&a);
	conf_free(&c);
}

static const char *
serve(struct conf *c, struct arena *a, char **env)
{
	size_t len = 0;
	const char *out = dispatch(a, c, env, NULL, NULL, &len);

	return strstr(out, "\r\n\r\n") ? out : NULL;
}

void
test_dispatch__health(void)
{
	char *env[] = { "REQUEST_METHOD=GET", "REQUEST_URI=/health", "REQUEST_ID=abc", NULL };
	struct arena a;
	struct conf c;
	const char *out;

	load_conf(&c);
	arena_init(&a, 0);
	out = serve(&c, &a, env);
	T_CHECK(out != NULL && strncmp(out, "Status: 200", 11) == 0);
	T_CHECK(out != NULL && strstr(out, "\r\n\r\n{\"status\":\"ok\"}") != NULL);
	T_CHECK(out != NULL && strstr(out, "X-Request-Id: abc\r\n") != NULL);
	arena_cleanup(&a);
	conf_free(&c);
}

void
test_dispatch__not_found(void)
{
	char *env[] = { "REQUEST_METHOD=GET", "REQUEST_URI=/nope", NULL };
	char *bad[] = { "REQUEST_METHOD=GET", "REQUEST_URI=nope", NULL };
	struct arena a;
	struct conf c;
	const char *out;

	load_conf(&c);
	arena_init(&a, 0);
	out = serve(&c, &a, env);
	T_CHECK(out != NULL && strncmp(out, "Status: 404", 11) == 0);
	T_CHECK(out != NULL && strstr(out, "{\"error\":\"not found\"}") != NULL);
	out = serve(&c, &a, bad);
	T_CHECK(out != NULL && strncmp(out, "Status: 400", 11) == 0);
	arena_cleanup(&a);
	conf_free(&c);
}

void
test_dispatch__admin_guard(void)
{
	char *none[] = { "REQUEST_METHOD=GET", "REQUEST_URI=/admin/liveness", NULL };
	char *wrong[] = { "REQUEST_METHOD=GET", "REQUEST_URI=/admin/liveness",
		"HTTP_AUTHORIZATION=Bearer nope-nope", NULL };
	struct arena a;
	struct conf c;
	const char *out;

	load_conf(&c);
	free(c.admin_token);
	c.admin_token = strdup("s3cret-admin");
	arena_init(&a, 0);
	out = serve(&c, &a, none);
	T_CHECK(out != NULL && strstr(out, "{\"error\":\"admin auth required\"}") != NULL);
	out = serve(&c, &a, wrong);
	T_CHECK(out != NULL && strncmp(out, "Status: 401", 11) == 0);
	T_CHECK(out != NULL && strstr(out, "{\"error\":\"invalid admin auth token\"}") != NULL);
	arena_cleanup(&a);
	conf_free(&c);
}
