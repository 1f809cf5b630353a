/*
 * resp.c: building the response of a request: status, headers, compact JSON, the error shape.
 * Owns nothing: bodies and headers are copied into the request's arena.
 */
#include "fcgi/resp.h"

#include <stdio.h>
#include <string.h>

#include "common/jsonx.h"
#include "common/log.h"

static const char *reason(int status);

int
resp_json(struct req *r, int status, struct json_object *obj)
{
	size_t len = 0;
	const char *s = jsonx_dump(obj, &len);
	char *body = s ? arena_strndup(r->arena, s, len) : NULL;

	if (body == NULL) {
		/* Out of arena: the fixed text needs no allocation. */
		r->status = 500;
		r->content_type = "application/json";
		r->body = "{\"error\":\"response too large\"}";
		r->body_len = strlen(r->body);
		r->responded = 1;
		return -1;
	}
	r->status = status;
	r->content_type = "application/json; charset=utf-8";
	r->body = body;
	r->body_len = len;
	r->responded = 1;
	return 0;
}

int
resp_error(struct req *r, int status, const char *msg, struct json_object *extra)
{
	struct json_object *obj = jsonx_own(r->arena, json_object_new_object());

	if (obj == NULL) {
		json_object_put(extra);
		resp_json(r, 500, NULL);
		return -1;
	}
	json_object_object_add(obj, "error", json_object_new_string(msg));
	if (extra != NULL) {
		json_object_object_foreach(extra, k, v)
			json_object_object_add(obj, k, json_object_get(v));
		json_object_put(extra);
	}
	if (status >= 500)
		log_warn("%s %s -> %d: %s", r->method, r->path, status, msg);
	resp_json(r, status, obj);
	return -1;
}

int
resp_unavailable(struct req *r)
{
	struct json_object *extra = json_object_new_object();

	json_object_object_add(extra, "code", json_object_new_string("platform_unavailable"));
	return resp_error(r, 503, "platform datastore unavailable — retry shortly", extra);
}

int
resp_text(struct req *r, int status, const char *content_type, const char *body, size_t len)
{
	r->status = status;
	r->content_type = content_type;
	r->body = body;
	r->body_len = len;
	r->responded = 1;
	return 0;
}

int
resp_header(struct req *r, const char *name, const char *value)
{
	if (r->nheaders == REQ_MAX_HEADERS)
		return -1;
	r->headers[r->nheaders].key = arena_strdup(r->arena, name);
	r->headers[r->nheaders].val = arena_strdup(r->arena, value);
	if (r->headers[r->nheaders].key == NULL || r->headers[r->nheaders].val == NULL)
		return -1;
	r->nheaders++;
	return 0;
}

char *
resp_render(struct req *r, size_t *len)
{
	char head[2048];
	size_t n, i;
	char *out;

	n = (size_t)snprintf(head, sizeof(head),
	    "Status: %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nCache-Control: no-store\r\n",
	    r->status, reason(r->status), r->content_type ? r->content_type : "application/json",
	    r->body_len);
	for (i = 0; i < r->nheaders && n < sizeof(head); i++)
		n += (size_t)snprintf(head + n, sizeof(head) - n, "%s: %s\r\n",
		    r->headers[i].key, r->headers[i].val);
	if (n + 3 > sizeof(head))
		return NULL;
	memcpy(head + n, "\r\n", 3);
	n += 2;
	out = arena_alloc(r->arena, n + r->body_len);
	if (out == NULL)
		return NULL;
	memcpy(out, head, n);
	if (r->body_len > 0)
		memcpy(out + n, r->body, r->body_len);
	*len = n + r->body_len;
	return out;
}

static const char *
reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 204: return "No Content";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 402: return "Payment Required";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 409: return "Conflict";
	case 410: return "Gone";
	case 413: return "Payload Too Large";
	case 422: return "Unprocessable Entity";
	case 429: return "Too Many Requests";
	case 500: return "Internal Server Error";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	default: return "Status";
	}
}
