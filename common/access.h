/*
 * access.h: the hierarchy is the access policy (api.md §7): who may talk to whom.
 * Owns nothing; answers come from one query each against workspaces.parent_id.
 */
#ifndef MOLECULE_ACCESS_H
#define MOLECULE_ACCESS_H

#include "common/arena.h"

/*
 * CanCommunicate: self; siblings (same non-null parent); any two roots; ancestor <-> descendant
 * at any depth. Unknown ids (or non-UUIDs) are denied. Returns 1 allowed, 0 denied, -1 db error.
 */
int access_can_communicate(struct arena *a, const char *caller, const char *target);
/*
 * Every workspace id that may communicate with workspace_id (itself included): the audience
 * of its live events. Returns the count with *ids in the arena, or -1 on a database error.
 */
int access_audience(struct arena *a, const char *workspace_id, const char ***ids);

#endif
