/*
 * gitea.h: pure parsing of Gitea API answers (no I/O), kept apart so the fuzzer can reach it alone.
 * Owns nothing beyond the call; the caller owns the body and the output buffer.
 */
#ifndef MOLECULE_GITEA_H
#define MOLECULE_GITEA_H

#include <stddef.h>

/* Largest Gitea answer read at all (64 KiB); bigger ones are refused before parsing. */
#define GITEA_BODY_CAP (64 * 1024)

/*
 * Body of "GET /api/v1/repos/{owner}/{repo}/branches/{branch}": copies commit.id (40 or 64 hex digits,
 * lowercased) into sha. Returns 0, or -1 (sha = "") for anything else: bad JSON, trailing bytes,
 * missing or non-hex id, body over GITEA_BODY_CAP, shalen too small.
 */
int gitea_parse_branch(const char *body, size_t len, char *sha, size_t shalen);

#endif
