/*
 * req.h: one API request: its CGI parameters, path params, query, headers and JSON body.
 * Owns nothing itself: every string lives in the request's arena and dies at its reset.
 */
#ifndef MOLECULE_REQ_H
#define MOLECULE_REQ_H

#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>

#include "common/arena.h"
#include "common/conf.h"

#define REQ_MAX_PARAMS 8
#define REQ_MAX_QUERY 64
#define REQ_MAX_HEADERS 16

struct req_kv {
	const char *key;
	const char *val;
};

/* Reads the request body; the FastCGI stream in production, a buffer in tests. */
typedef long (*req_read_fn)(void *src, char *buf, size_t len);

struct req {
	struct arena *arena;
	const struct conf *conf;
	char **envp;			/* CGI parameters from nginx */
	req_read_fn read_body;
	void *body_src;

	const char *method;
	const char *path;		/* raw path, without the query */
	const char *query;		/* raw query string, "" when none */
	const char *request_id;
	int64_t started_us;		/* monotonic, for the latency histogram */
	int route_index;		/* into the route table; -1 when nothing matched */

	/* Who the guard let in (guard.c). */
	int auth_admin;			/* ADMIN_TOKEN, org token, dev hatch or bootstrap */
	const char *auth_org_token_id;	/* set when an org token was accepted */
	const char *auth_org_id;

	struct req_kv params[REQ_MAX_PARAMS];
	size_t nparams;
	struct req_kv qargs[REQ_MAX_QUERY];
	size_t nqargs;
	int query_parsed;

	/* The response, filled by resp_*() and written once by the dispatcher. */
	int status;
	const char *content_type;
	const char *body;
	size_t body_len;
	struct req_kv headers[REQ_MAX_HEADERS];
	size_t nheaders;
	int responded;
};

/*
 * Fills r from CGI parameters. Returns 0, or -1 when the request line is unusable
 * (the dispatcher answers 400).
 */
int req_init(struct req *r, struct arena *a, const struct conf *c, char **envp,
    req_read_fn read_body, void *body_src);

/* A CGI parameter by name ("REMOTE_ADDR"), or NULL. */
const char *req_env(const struct req *r, const char *name);
/* A request header by its HTTP name ("Authorization", "X-Workspace-ID"), or NULL. */
const char *req_header(const struct req *r, const char *name);
/* A path parameter of the matched route (":id" → "id"), percent-decoded, or NULL. */
const char *req_param(const struct req *r, const char *name);
/* The first value of a query argument, percent-decoded, or NULL. */
const char *req_query(struct req *r, const char *name);
/* The bearer token of "Authorization: Bearer <tok>", or NULL. */
const char *req_bearer(const struct req *r);

/* The :id path parameter, which must be a UUID. Returns 0, or -1 with 400 "invalid workspace ID" set. */
int req_workspace_id(struct req *r, const char **id);
/* The body as any JSON value (an array, too); 0, or -1 with 400/413 set. Owned by the arena. */
int req_json_value(struct req *r, struct json_object **out);
/*
 * Reads and parses a JSON object body of at most conf->max_body_bytes.
 * Returns 0 with *out owned by the arena, or -1 with the error response already set
 * (413 too large, 400 invalid JSON or not an object).
 */
int req_json_body(struct req *r, struct json_object **out);
/*
 * req_json_body, but a body that is not a JSON object answers 400 with the route's own message
 * (the reference words it per route); other failures (413) keep theirs. Returns 0 or -1.
 */
int req_json_body_or(struct req *r, struct json_object **out, const char *msg);
/*
 * An optional string member of a JSON body: absent, null or "" give *out = NULL. Returns 0,
 * or -1 with a 400 naming the field set (not a string, a NUL inside, longer than max bytes).
 */
int req_body_str(struct req *r, struct json_object *body, const char *key, size_t max, const char **out);

/*
 * Parses a query string into r->qargs (percent and '+' decoding); the fuzzed parser.
 * Returns the number of arguments kept (excess beyond REQ_MAX_QUERY is dropped).
 */
size_t req_parse_query(struct arena *a, const char *qs, struct req_kv *out, size_t max);
/* Percent-decodes s[0..len) into the arena; NULL on a malformed escape or a NUL byte. */
char *req_percent_decode(struct arena *a, const char *s, size_t len, int plus_is_space);

#endif
