/*
 * guard.h: the auth guards a route can name (AdminAuth now; WorkspaceAuth joins with tokens).
 * Owns nothing; a failing guard sets the 401/503 response on the request.
 */
#ifndef MOLECULE_GUARD_H
#define MOLECULE_GUARD_H

#include "fcgi/router.h"

/* 1 when MOLECULE_ENV is development/dev and no ADMIN_TOKEN is set (the quickstart hatch). */
int guard_dev_mode(const struct req *r);
/* Returns 0 to let the request through, or -1 with the response set. */
int guard_check(struct req *r, enum guard g);

#endif
