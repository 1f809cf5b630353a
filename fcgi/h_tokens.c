/*
 * h_tokens.c: STUB, being written.
 * Owns nothing.
 */
#include "fcgi/handlers.h"

#include "fcgi/resp.h"

int
h_tokens_list(struct req *r)
{
	return resp_error(r, 501, "not implemented", NULL);
}

int
h_tokens_create(struct req *r)
{
	return resp_error(r, 501, "not implemented", NULL);
}

int
h_tokens_revoke(struct req *r)
{
	return resp_error(r, 501, "not implemented", NULL);
}

int
h_org_tokens_list(struct req *r)
{
	return resp_error(r, 501, "not implemented", NULL);
}

int
h_org_tokens_create(struct req *r)
{
	return resp_error(r, 501, "not implemented", NULL);
}

int
h_org_tokens_revoke(struct req *r)
{
	return resp_error(r, 501, "not implemented", NULL);
}

int
h_admin_test_token(struct req *r)
{
	return resp_error(r, 501, "not implemented", NULL);
}

