/*
 * sweep.h: the sweeper's pure decisions (key and container names, Redis notification flags),
 * kept apart from workers/sweeper.c so the unit tests can reach them. Owns nothing.
 */
#ifndef MOLECULE_SWEEP_H
#define MOLECULE_SWEEP_H

#include <stddef.h>

/* Managed containers and volumes carry this label (reference §3.1). */
#define SWEEP_MANAGED_LABEL "molecule.platform.managed=true"
/* Length of the workspace id prefix in ws-<id12> names. */
#define SWEEP_ID12 12

/*
 * 0 and the workspace id in id (>= 37 bytes) when key is a liveness key "ws:<uuid>";
 * -1 for anything else ("ws:<id>:url", other keys, upper-case or malformed ids).
 */
int sweep_liveness_id(const char *key, char *id, size_t idlen);
/*
 * 0 and the 12-character workspace prefix in out (>= 13 bytes) when name is a workspace
 * container "ws-<id12>" (an optional leading '/', as the engine lists names); -1 otherwise.
 * The prefix is the first 12 characters of the UUID text, so [0-9a-f-] only.
 */
int sweep_container_prefix(const char *name, char *out, size_t outlen);
/*
 * The same for a workspace volume "ws-<id12>-configs" or "ws-<id12>-claude-sessions" (the
 * provisioner's names); -1 for any other volume.
 */
int sweep_volume_prefix(const char *name, char *out, size_t outlen);
/*
 * Merges the flags expiry notifications need (E: keyevent channel, x: expired) into cur,
 * the current notify-keyspace-events value, without dropping any flag already set.
 * Writes the result into out. Returns 1 when out differs from cur (CONFIG SET needed),
 * 0 when cur already suffices, -1 when out is too small.
 */
int sweep_notify_flags(const char *cur, char *out, size_t outlen);

#endif
