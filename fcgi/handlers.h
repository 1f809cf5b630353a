/*
 * handlers.h: every route handler, one h_<resource>.c file per API resource.
 * Owns nothing; handlers follow router.h's handler_fn contract.
 */
#ifndef MOLECULE_HANDLERS_H
#define MOLECULE_HANDLERS_H

#include "fcgi/req.h"

/* h_health.c */
int h_health(struct req *r);
int h_metrics(struct req *r);
/* h_admin.c */
int h_admin_liveness(struct req *r);

#endif
