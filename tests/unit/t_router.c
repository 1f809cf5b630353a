/* t_router.c: unit tests of fcgi/router.c (params, literal priority, methods, decoding). */
#include "tests/unit/t.h"

#include "common/util.h"
#include "fcgi/router.h"

static int h_dummy(struct req *r) { (void)r; return 0; }

static const struct route table[] = {
	{ "GET", "/workspaces", GUARD_NONE, h_dummy },
	{ "GET", "/workspaces/:id", GUARD_NONE, h_dummy },
	{ "GET", "/workspaces/summary", GUARD_NONE, h_dummy },
	{ "DELETE", "/workspaces/:id/secrets/:key", GUARD_NONE, h_dummy },
	{ "GET", "/", GUARD_NONE, h_dummy },
};

static int
match(struct arena *a, struct req *r, const char *method, const char *path)
{
	memset(r, 0, sizeof(*r));
	r->arena = a;
	r->method = method;
	r->path = path;
	return router_match(table, NELEM(table), r);
}

void
test_router__literal_and_params(void)
{
	struct arena a;
	struct req r;

	arena_init(&a, 0);
	T_CHECK(match(&a, &r, "GET", "/workspaces") == 0);
	T_CHECK(match(&a, &r, "GET", "/workspaces/abc") == 1);
	T_STREQ(req_param(&r, "id"), "abc");
	T_CHECK(match(&a, &r, "DELETE", "/workspaces/w1/secrets/API_KEY") == 3);
	T_STREQ(req_param(&r, "id"), "w1");
	T_STREQ(req_param(&r, "key"), "API_KEY");
	T_CHECK(req_param(&r, "nope") == NULL);
	T_CHECK(match(&a, &r, "GET", "/") == 4);
	T_CHECK(match(&a, &r, "GET", "/workspaces/a/b") == -1);
	T_CHECK(match(&a, &r, "GET", "/workspaces//") == -1);
	arena_cleanup(&a);
}

void
test_router__literal_beats_param(void)
{
	struct arena a;
	struct req r;

	arena_init(&a, 0);
	T_CHECK(match(&a, &r, "GET", "/workspaces/summary") == 2);
	T_CHECK(r.nparams == 0);
	arena_cleanup(&a);
}

void
test_router__method_and_trailing_slash(void)
{
	struct arena a;
	struct req r;

	arena_init(&a, 0);
	T_CHECK(match(&a, &r, "POST", "/workspaces") == -1);
	T_CHECK(match(&a, &r, "GET", "/workspaces/") == 0);
	T_CHECK(match(&a, &r, "GET", "/nope") == -1);
	arena_cleanup(&a);
}

void
test_router__decodes_params(void)
{
	struct arena a;
	struct req r;

	arena_init(&a, 0);
	T_CHECK(match(&a, &r, "GET", "/workspaces/a%2Fb%20c") == 1);
	T_STREQ(req_param(&r, "id"), "a/b c");
	/* A bad escape or an encoded NUL never reaches a handler. */
	T_CHECK(match(&a, &r, "GET", "/workspaces/a%zz") == -1);
	T_CHECK(match(&a, &r, "GET", "/workspaces/a%00") == -1);
	T_CHECK(match(&a, &r, "GET", "/workspaces/a%2") == -1);
	arena_cleanup(&a);
}
