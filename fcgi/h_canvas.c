/*
 * h_canvas.c: STUB, being written.
 * Owns nothing.
 */
#include "fcgi/handlers.h"

#include "fcgi/resp.h"

int
h_canvas_viewport_get(struct req *r)
{
	return resp_error(r, 501, "not implemented", NULL);
}

int
h_canvas_viewport_put(struct req *r)
{
	return resp_error(r, 501, "not implemented", NULL);
}

