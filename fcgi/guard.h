/*
 * guard.h: the auth guards a route names (AdminAuth, WorkspaceAuth, CanvasOrBearer), TenantGuard,
 * and the in-handler lazy-bootstrap check. Owns nothing; a failing check sets the response.
 */
#ifndef MOLECULE_GUARD_H
#define MOLECULE_GUARD_H

#include "fcgi/router.h"

/* 1 when MOLECULE_ENV is development/dev and no ADMIN_TOKEN is set (the quickstart hatch). */
int guard_dev_mode(const struct req *r);
/* Returns 0 to let the request through, or -1 with the response set (401/503). */
int guard_check(struct req *r, enum guard g);
/* TenantGuard: 0 to pass, or -1 with an empty 404 set. */
int guard_tenant(struct req *r);
/* 1 when the request's Origin is in CORS_ORIGINS (a browser canvas). */
int guard_origin_allowed(const struct req *r);
/*
 * Lazy bootstrap (api.md §2.6): a workspace with live tokens needs its own bearer; one with
 * none passes. A database error is 503 platform_unavailable (the reference passes), or with
 * strict=1 500 "auth check failed" (the reference's /state and /secrets/values wording).
 * Returns 0 or -1 with 401 "missing/invalid <what> auth token" (what = "workspace"/"caller").
 */
int guard_lazy_bootstrap(struct req *r, const char *workspace_id, const char *what, int strict);

#endif
