/*
 * gitea.c: pure parsing of Gitea API answers (no I/O), kept apart so the fuzzer can reach it alone.
 * Owns nothing beyond the call; the caller owns the body and the output buffer.
 */
#include "common/gitea.h"

#include <ctype.h>
#include <stdint.h>
#include <string.h>

#include <json-c/json.h>

int
gitea_parse_branch(const char *body, size_t len, char *sha, size_t shalen)
{
	struct json_tokener *tok;
	struct json_object *root, *commit, *id;
	const char *s;
	size_t n, i;
	int rc = -1;

	if (sha == NULL || shalen == 0)
		return -1;
	sha[0] = '\0';
	if (body == NULL || len == 0 || len > GITEA_BODY_CAP || len > (size_t)INT32_MAX)
		return -1;
	tok = json_tokener_new_ex(32);
	if (tok == NULL)
		return -1;
	root = json_tokener_parse_ex(tok, body, (int)len);
	if (root == NULL || json_tokener_get_error(tok) != json_tokener_success)
		goto out;
	for (i = json_tokener_get_parse_end(tok); i < len; i++)
		if (!isspace((unsigned char)body[i]))
			goto out;	/* one JSON document, nothing after it */
	if (!json_object_is_type(root, json_type_object) ||
	    !json_object_object_get_ex(root, "commit", &commit) ||
	    !json_object_is_type(commit, json_type_object) ||
	    !json_object_object_get_ex(commit, "id", &id) ||
	    !json_object_is_type(id, json_type_string))
		goto out;
	s = json_object_get_string(id);
	n = (size_t)json_object_get_string_len(id);
	/* SHA-1 or SHA-256 object names; anything else must not reach a path, a tag or git's argv. */
	if ((n != 40 && n != 64) || n + 1 > shalen)
		goto out;
	for (i = 0; i < n; i++)
		if (!isxdigit((unsigned char)s[i]))
			goto out;
	for (i = 0; i < n; i++)
		sha[i] = (char)tolower((unsigned char)s[i]);
	sha[n] = '\0';
	rc = 0;
out:
	json_object_put(root);
	json_tokener_free(tok);
	return rc;
}
