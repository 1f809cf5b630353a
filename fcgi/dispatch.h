/*
 * dispatch.h: one request from CGI parameters to rendered response: route, guard, handler, errors.
 * Owns nothing; the caller owns the arena and sends the bytes.
 */
#ifndef MOLECULE_DISPATCH_H
#define MOLECULE_DISPATCH_H

#include "fcgi/req.h"

/*
 * Serves the request described by envp and returns the full FastCGI response (headers + body)
 * in the arena, with its length. Never fails: every error becomes a JSON error response.
 */
const char *dispatch(struct arena *a, const struct conf *c, char **envp, req_read_fn read_body,
    void *body_src, size_t *len);

#endif
