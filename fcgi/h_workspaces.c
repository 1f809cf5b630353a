/*
 * h_workspaces.c: STUB, being written.
 * Owns nothing.
 */
#include "fcgi/handlers.h"

#include "fcgi/resp.h"

int
h_workspaces_list(struct req *r)
{
	return resp_error(r, 501, "not implemented", NULL);
}

int
h_workspaces_create(struct req *r)
{
	return resp_error(r, 501, "not implemented", NULL);
}

int
h_workspaces_get(struct req *r)
{
	return resp_error(r, 501, "not implemented", NULL);
}

int
h_workspaces_patch(struct req *r)
{
	return resp_error(r, 501, "not implemented", NULL);
}

int
h_workspaces_delete(struct req *r)
{
	return resp_error(r, 501, "not implemented", NULL);
}

int
h_workspaces_state(struct req *r)
{
	return resp_error(r, 501, "not implemented", NULL);
}

