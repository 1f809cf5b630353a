/*
 * h_events.c: STUB, being written.
 * Owns nothing.
 */
#include "fcgi/handlers.h"

#include "fcgi/resp.h"

int
h_events_list(struct req *r)
{
	return resp_error(r, 501, "not implemented", NULL);
}

int
h_events_list_workspace(struct req *r)
{
	return resp_error(r, 501, "not implemented", NULL);
}

