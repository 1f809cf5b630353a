/*
 * access.c: STUB, being written.
 * Owns nothing.
 */
#include "common/access.h"

int
access_can_communicate(struct arena *a, const char *caller, const char *target)
{
	(void)a; (void)caller; (void)target;
	return -1;
}

int
access_audience(struct arena *a, const char *workspace_id, const char ***ids)
{
	(void)a; (void)workspace_id; (void)ids;
	return -1;
}
