/*
 * resp.h: building the response of a request: status, headers, compact JSON, the error shape.
 * Owns nothing: bodies are serialised into the request's arena.
 */
#ifndef MOLECULE_RESP_H
#define MOLECULE_RESP_H

#include <json-c/json.h>

#include "fcgi/req.h"

/* Sets status and the compact serialisation of obj as the body. Returns 0, or -1 (arena full: 500 set). */
int resp_json(struct req *r, int status, struct json_object *obj);
/*
 * The one place the error shape {"error":"<msg>"} is made; extra (may be NULL) adds keys
 * such as "code" or "retry_after" and is consumed. Always returns -1, so handlers can
 * `return resp_error(...)`.
 */
int resp_error(struct req *r, int status, const char *msg, struct json_object *extra);
/* 503 {"error":"platform datastore unavailable — retry shortly","code":"platform_unavailable"}. */
int resp_unavailable(struct req *r);
/* A non-JSON body (metrics text). */
int resp_text(struct req *r, int status, const char *content_type, const char *body, size_t len);
/* Adds a response header (copied into the arena). */
int resp_header(struct req *r, const char *name, const char *value);
/* Renders status line, headers and body as FastCGI/CGI output into the arena: the bytes to send. */
char *resp_render(struct req *r, size_t *len);

#endif
