/*
 * h_registry.c: STUB, being written.
 * Owns nothing.
 */
#include "fcgi/handlers.h"

#include "fcgi/resp.h"

int
h_registry_register(struct req *r)
{
	return resp_error(r, 501, "not implemented", NULL);
}

int
h_registry_heartbeat(struct req *r)
{
	return resp_error(r, 501, "not implemented", NULL);
}

int
h_registry_update_card(struct req *r)
{
	return resp_error(r, 501, "not implemented", NULL);
}

