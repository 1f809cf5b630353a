/*
 * guard.c: the auth guards a route can name (api.md §2), with the reference's holes closed.
 * Owns nothing; tokens are compared in constant time and never logged.
 */
#include "fcgi/guard.h"

#include <string.h>

#include "common/util.h"
#include "fcgi/resp.h"

static int admin_auth(struct req *r);

int
guard_dev_mode(const struct req *r)
{
	return conf_is_dev(r->conf) && r->conf->admin_token[0] == '\0';
}

int
guard_check(struct req *r, enum guard g)
{
	switch (g) {
	case GUARD_NONE:
		return 0;
	case GUARD_ADMIN:
		return admin_auth(r);
	}
	return resp_error(r, 500, "unknown guard", NULL);
}

/*
 * AdminAuth (api.md §2.2). With ADMIN_TOKEN set only that bearer passes; without it the
 * platform is in its bootstrap state (no credential exists yet that could be checked), so
 * it fails open, as the reference does before its first token.
 */
static int
admin_auth(struct req *r)
{
	const char *tok;

	if (r->conf->admin_token[0] == '\0')
		return 0;
	tok = req_bearer(r);
	if (tok == NULL)
		return resp_error(r, 401, "admin auth required", NULL);
	if (!str_eq_ct(tok, r->conf->admin_token))
		return resp_error(r, 401, "invalid admin auth token", NULL);
	return 0;
}
