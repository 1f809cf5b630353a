/*
 * access.c: the hierarchy is the access policy (api.md §7): CanCommunicate and its audience.
 * Owns nothing; each answer is one recursive query over workspaces.parent_id, 32 levels at most.
 */
#include "common/access.h"

#include <libpq-fe.h>
#include <stddef.h>

#include "common/db.h"
#include "common/util.h"

/*
 * c/t: the two rows; ca/ta: their ancestor chains (depth 1 = parent), bounded so a corrupt
 * parent cycle cannot loop. Unknown ids give no c or t row, hence false.
 */
static const char can_sql[] =
    "WITH RECURSIVE "
    "c AS (SELECT id, parent_id FROM workspaces WHERE id = $1::uuid), "
    "t AS (SELECT id, parent_id FROM workspaces WHERE id = $2::uuid), "
    "ca(id, depth) AS (SELECT parent_id, 1 FROM c WHERE parent_id IS NOT NULL "
    "  UNION ALL SELECT w.parent_id, ca.depth + 1 FROM ca JOIN workspaces w ON w.id = ca.id "
    "  WHERE w.parent_id IS NOT NULL AND ca.depth < 32), "
    "ta(id, depth) AS (SELECT parent_id, 1 FROM t WHERE parent_id IS NOT NULL "
    "  UNION ALL SELECT w.parent_id, ta.depth + 1 FROM ta JOIN workspaces w ON w.id = ta.id "
    "  WHERE w.parent_id IS NOT NULL AND ta.depth < 32) "
    "SELECT EXISTS (SELECT 1 FROM c, t WHERE c.id = t.id "
    "  OR (c.parent_id IS NULL AND t.parent_id IS NULL) "
    "  OR c.parent_id = t.parent_id "
    "  OR EXISTS (SELECT 1 FROM ca WHERE ca.id = t.id) "
    "  OR EXISTS (SELECT 1 FROM ta WHERE ta.id = c.id))";

/* Itself, its siblings (all roots for a root), its ancestors and its descendants. */
static const char audience_sql[] =
    "WITH RECURSIVE "
    "me AS (SELECT id, parent_id FROM workspaces WHERE id = $1::uuid), "
    "anc(id, depth) AS (SELECT parent_id, 1 FROM me WHERE parent_id IS NOT NULL "
    "  UNION ALL SELECT w.parent_id, anc.depth + 1 FROM anc JOIN workspaces w ON w.id = anc.id "
    "  WHERE w.parent_id IS NOT NULL AND anc.depth < 32), "
    "des(id, depth) AS (SELECT w.id, 1 FROM workspaces w JOIN me ON w.parent_id = me.id "
    "  UNION ALL SELECT w.id, des.depth + 1 FROM des JOIN workspaces w ON w.parent_id = des.id "
    "  WHERE des.depth < 32) "
    "SELECT id::text FROM me "
    "UNION SELECT w.id::text FROM workspaces w JOIN me ON w.parent_id = me.parent_id "
    "  OR (w.parent_id IS NULL AND me.parent_id IS NULL) "
    "UNION SELECT id::text FROM anc "
    "UNION SELECT id::text FROM des";

int
access_can_communicate(struct arena *a, const char *caller, const char *target)
{
	const char *params[2];
	const char *v;
	PGresult *res;

	if (!is_uuid(caller) || !is_uuid(target))
		return 0;
	params[0] = caller;
	params[1] = target;
	res = db_exec(a, can_sql, 2, params);
	if (res == NULL || PQntuples(res) != 1)
		return -1;
	v = db_value(res, 0, 0);
	return v != NULL && v[0] == 't';
}

int
access_audience(struct arena *a, const char *workspace_id, const char ***ids)
{
	const char *params[1];
	const char **out;
	PGresult *res;
	int i, n;

	*ids = NULL;
	if (!is_uuid(workspace_id))
		return 0;
	params[0] = workspace_id;
	res = db_exec(a, audience_sql, 1, params);
	if (res == NULL)
		return -1;
	n = PQntuples(res);
	out = arena_alloc(a, (size_t)(n > 0 ? n : 1) * sizeof(*out));
	if (out == NULL)
		return -1;
	for (i = 0; i < n; i++)
		out[i] = PQgetvalue(res, i, 0);
	*ids = out;
	return n;
}
