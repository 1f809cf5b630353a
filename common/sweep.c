/*
 * sweep.c: the sweeper's pure decisions: liveness key and container names, notification flags.
 * Owns nothing; every result goes to a caller buffer.
 */
#include "common/sweep.h"

#include <stdio.h>
#include <string.h>

#include "common/util.h"

int
sweep_liveness_id(const char *key, char *id, size_t idlen)
{
	if (key == NULL || strncmp(key, "ws:", 3) != 0)
		return -1;
	/* is_lower_uuid rejects "ws:<id>:url" too: the suffix makes it no UUID. */
	if (!is_lower_uuid(key + 3) || strlen(key + 3) >= idlen)
		return -1;
	snprintf(id, idlen, "%s", key + 3);
	return 0;
}

int
sweep_container_prefix(const char *name, char *out, size_t outlen)
{
	size_t i;

	if (name == NULL)
		return -1;
	if (name[0] == '/')
		name++;
	if (strncmp(name, "ws-", 3) != 0)
		return -1;
	name += 3;
	if (strlen(name) != SWEEP_ID12 || outlen <= SWEEP_ID12)
		return -1;
	for (i = 0; i < SWEEP_ID12; i++) {
		if (!((name[i] >= '0' && name[i] <= '9') || (name[i] >= 'a' && name[i] <= 'f') ||
		    name[i] == '-'))
			return -1;
	}
	memcpy(out, name, SWEEP_ID12);
	out[SWEEP_ID12] = '\0';
	return 0;
}

int
sweep_volume_prefix(const char *name, char *out, size_t outlen)
{
	static const char *const suffixes[] = { "-configs", "-claude-sessions" };
	char container[3 + SWEEP_ID12 + 1];
	size_t i, len;

	if (name == NULL || strncmp(name, "ws-", 3) != 0 || strlen(name) < 3 + SWEEP_ID12)
		return -1;
	for (i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
		len = strlen(suffixes[i]);
		if (strlen(name) == 3 + SWEEP_ID12 + len && strcmp(name + 3 + SWEEP_ID12, suffixes[i]) == 0) {
			memcpy(container, name, 3 + SWEEP_ID12);
			container[3 + SWEEP_ID12] = '\0';
			return sweep_container_prefix(container, out, outlen);
		}
	}
	return -1;
}

int
sweep_notify_flags(const char *cur, char *out, size_t outlen)
{
	size_t n;
	int need_e, need_x;

	if (cur == NULL)
		cur = "";
	/* 'A' is Redis's alias for "g$lshzxet", which includes x. */
	need_e = strchr(cur, 'E') == NULL;
	need_x = strchr(cur, 'x') == NULL && strchr(cur, 'A') == NULL;
	n = strlen(cur);
	if (n + (size_t)need_e + (size_t)need_x + 1 > outlen)
		return -1;
	memcpy(out, cur, n);
	if (need_e)
		out[n++] = 'E';
	if (need_x)
		out[n++] = 'x';
	out[n] = '\0';
	return need_e || need_x;
}
