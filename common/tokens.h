/*
 * tokens.h: workspace and org bearer tokens: 32 random bytes as base64url (43 chars); only the
 * sha256 and an 8-char prefix are stored. Owns nothing; plaintext goes to caller buffers.
 */
#ifndef MOLECULE_TOKENS_H
#define MOLECULE_TOKENS_H

#include "common/arena.h"

#define TOKEN_LEN 43
#define TOKEN_PREFIX_LEN 8

enum token_check {
	TOKEN_OK,
	TOKEN_INVALID,
	TOKEN_ERROR,	/* the database could not answer: 503, never a pass */
};

/* Fills out (TOKEN_LEN + 1 bytes) with a fresh token. Returns 0 or -1 (no randomness). */
int token_generate(char *out);
/* Hex sha256 of tok into out (65 bytes), the form the queries take ($n decoded with 'hex'). */
void token_hash_hex(const char *tok, char *out);

/* Mints a token for the workspace (INSERT), plaintext into out. Returns 0 or -1. */
int tokens_mint_workspace(struct arena *a, const char *workspace_id, char *out);
/* Revokes every live token of the workspace. Returns the count or -1. */
int tokens_revoke_workspace(struct arena *a, const char *workspace_id);
/* A live token bound to workspace_id whose workspace is not removed. */
enum token_check tokens_check_workspace(struct arena *a, const char *workspace_id, const char *tok);
/*
 * The lazy-bootstrap question in one round trip: *live = whether the workspace has any live
 * token; the result says whether tok (may be NULL) is one of them.
 */
enum token_check tokens_lazy_check(struct arena *a, const char *workspace_id, const char *tok,
    int *live);
/* 1/0 whether the workspace has any live token; -1 on database error. */
int tokens_workspace_has_live(struct arena *a, const char *workspace_id);
/* 1/0 whether any live workspace token exists at all (AdminAuth bootstrap); -1 on error. */
int tokens_any_live(struct arena *a);
/* A live org token; on TOKEN_OK *org_id (may be NULL) and *token_id point into the arena. */
enum token_check tokens_check_org(struct arena *a, const char *tok, const char **token_id,
    const char **org_id);

#endif
