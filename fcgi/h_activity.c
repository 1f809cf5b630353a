/*
 * h_activity.c: STUB, being written.
 * Owns nothing.
 */
#include "fcgi/handlers.h"

#include "fcgi/resp.h"

int
h_activity_list(struct req *r)
{
	return resp_error(r, 501, "not implemented", NULL);
}

int
h_activity_report(struct req *r)
{
	return resp_error(r, 501, "not implemented", NULL);
}

int
h_activity_notify(struct req *r)
{
	return resp_error(r, 501, "not implemented", NULL);
}

