/*
 * h_discovery.c: STUB, being written.
 * Owns nothing.
 */
#include "fcgi/handlers.h"

#include "fcgi/resp.h"

int
h_discovery_discover(struct req *r)
{
	return resp_error(r, 501, "not implemented", NULL);
}

int
h_discovery_peers(struct req *r)
{
	return resp_error(r, 501, "not implemented", NULL);
}

int
h_discovery_check_access(struct req *r)
{
	return resp_error(r, 501, "not implemented", NULL);
}

