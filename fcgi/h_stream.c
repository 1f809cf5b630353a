/*
 * h_stream.c: STUB, being written.
 * Owns nothing.
 */
#include "fcgi/handlers.h"

#include "fcgi/resp.h"

int
h_stream_ws_auth(struct req *r)
{
	return resp_error(r, 501, "not implemented", NULL);
}

int
h_stream_sse_auth(struct req *r)
{
	return resp_error(r, 501, "not implemented", NULL);
}

