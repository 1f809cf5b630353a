/*
 * req.c: one API request: its CGI parameters, path params, query, headers and JSON body.
 * Owns nothing: strings are allocated in the request's arena.
 */
#include "fcgi/req.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "common/jsonx.h"
#include "common/util.h"
#include "fcgi/resp.h"


static unsigned long long local_ids;

int
req_init(struct req *r, struct arena *a, const struct conf *c, char **envp,
    req_read_fn read_body, void *body_src)
{
	const char *uri;
	size_t plen;

	memset(r, 0, sizeof(*r));
	r->arena = a;
	r->conf = c;
	r->envp = envp;
	r->read_body = read_body;
	r->body_src = body_src;
	r->route_index = -1;
	r->started_us = now_mono_us();
	r->method = req_env(r, "REQUEST_METHOD");
	r->request_id = req_env(r, "REQUEST_ID");
	uri = req_env(r, "REQUEST_URI");
	if (uri == NULL)
		uri = req_env(r, "DOCUMENT_URI");
	if (r->request_id == NULL || r->request_id[0] == '\0')
		r->request_id = arena_printf(a, "local-%d-%llu", (int)getpid(), ++local_ids);
	if (r->method == NULL || uri == NULL || uri[0] != '/')
		return -1;
	plen = strcspn(uri, "?");
	r->path = arena_strndup(a, uri, plen);
	r->query = uri[plen] == '?' ? uri + plen + 1 : "";
	if (r->path == NULL || r->request_id == NULL)
		return -1;
	return 0;
}

const char *
req_env(const struct req *r, const char *name)
{
	size_t n = strlen(name);
	char **e;

	if (r->envp == NULL)
		return NULL;
	for (e = r->envp; *e != NULL; e++)
		if (strncmp(*e, name, n) == 0 && (*e)[n] == '=')
			return *e + n + 1;
	return NULL;
}

const char *
req_header(const struct req *r, const char *name)
{
	char key[128];
	size_t i, n = strlen(name);

	if (n + 6 > sizeof(key))
		return NULL;
	memcpy(key, "HTTP_", 5);
	for (i = 0; i < n; i++)
		key[5 + i] = name[i] == '-' ? '_' : (char)toupper((unsigned char)name[i]);
	key[5 + n] = '\0';
	/* nginx passes these two without the HTTP_ prefix. */
	if (strcmp(key, "HTTP_CONTENT_TYPE") == 0)
		return req_env(r, "CONTENT_TYPE");
	if (strcmp(key, "HTTP_CONTENT_LENGTH") == 0)
		return req_env(r, "CONTENT_LENGTH");
	return req_env(r, key);
}

const char *
req_param(const struct req *r, const char *name)
{
	size_t i;

	for (i = 0; i < r->nparams; i++)
		if (strcmp(r->params[i].key, name) == 0)
			return r->params[i].val;
	return NULL;
}

const char *
req_query(struct req *r, const char *name)
{
	size_t i;

	if (!r->query_parsed) {
		r->nqargs = req_parse_query(r->arena, r->query, r->qargs, REQ_MAX_QUERY);
		r->query_parsed = 1;
	}
	for (i = 0; i < r->nqargs; i++)
		if (strcmp(r->qargs[i].key, name) == 0)
			return r->qargs[i].val;
	return NULL;
}

const char *
req_bearer(const struct req *r)
{
	const char *h = req_header(r, "Authorization");
	size_t len;

	if (h == NULL || strncmp(h, "Bearer ", 7) != 0)
		return NULL;
	h += 7;
	while (*h == ' ')
		h++;
	len = strlen(h);
	while (len > 0 && (h[len - 1] == ' ' || h[len - 1] == '\t'))
		len--;
	if (len == 0)
		return NULL;
	/* Trailing blanks are trimmed like the reference's TrimSpace. */
	return h[len] == '\0' ? h : arena_strndup(r->arena, h, len);
}

int
req_workspace_id(struct req *r, const char **id)
{
	*id = req_param(r, "id");
	if (*id == NULL || !is_uuid(*id))
		return resp_error(r, 400, "invalid workspace ID", NULL);
	return 0;
}

int
req_json_value(struct req *r, struct json_object **out)
{
	const char *cl = req_env(r, "CONTENT_LENGTH");
	const char *why = NULL;
	int64_t len = 0, max = r->conf->max_body_bytes;
	char *buf;
	long got, total = 0;

	*out = NULL;
	if (cl != NULL && cl[0] != '\0' && parse_int64(cl, 0, INT64_MAX, &len, &why) < 0)
		return resp_error(r, 400, "invalid Content-Length", NULL);
	if (len > max) {
		struct json_object *extra = json_object_new_object();
		json_object_object_add(extra, "max_bytes", json_object_new_int64(max));
		return resp_error(r, 413, "request body too large", extra);
	}
	if (len == 0)
		return resp_error(r, 400, "request body is empty: expected a JSON object", NULL);
	buf = arena_alloc(r->arena, (size_t)len + 1);
	if (buf == NULL)
		return resp_error(r, 413, "request body too large", NULL);
	while (total < len && r->read_body != NULL) {
		got = r->read_body(r->body_src, buf + total, (size_t)(len - total));
		if (got <= 0)
			break;
		total += got;
	}
	if (total != len)
		return resp_error(r, 400, "request body shorter than Content-Length", NULL);
	buf[len] = '\0';
	*out = jsonx_own(r->arena, jsonx_parse(buf, (size_t)len));
	if (*out == NULL)
		return resp_error(r, 400, "invalid JSON", NULL);
	return 0;
}

int
req_json_body(struct req *r, struct json_object **out)
{
	if (req_json_value(r, out) < 0)
		return -1;
	if (!json_object_is_type(*out, json_type_object)) {
		*out = NULL;
		return resp_error(r, 400, "invalid JSON: expected an object", NULL);
	}
	return 0;
}

int
req_json_body_or(struct req *r, struct json_object **out, const char *msg)
{
	if (req_json_body(r, out) == 0)
		return 0;
	return r->status == 400 ? resp_error(r, 400, msg, NULL) : -1;
}

int
req_body_str(struct req *r, struct json_object *body, const char *key, size_t max, const char **out)
{
	struct json_object *v;
	const char *s;
	char msg[96];

	*out = NULL;
	if (!json_object_object_get_ex(body, key, &v) || v == NULL)
		return 0;
	if (!json_object_is_type(v, json_type_string)) {
		snprintf(msg, sizeof(msg), "%s must be a string", key);
		return resp_error(r, 400, msg, NULL);
	}
	s = json_object_get_string(v);
	if ((size_t)json_object_get_string_len(v) != strlen(s)) {
		snprintf(msg, sizeof(msg), "%s must not contain NUL characters", key);
		return resp_error(r, 400, msg, NULL);
	}
	if (strlen(s) > max) {
		snprintf(msg, sizeof(msg), "%s too long (max %zu bytes)", key, max);
		return resp_error(r, 400, msg, NULL);
	}
	if (s[0] != '\0')
		*out = s;
	return 0;
}

size_t
req_parse_query(struct arena *a, const char *qs, struct req_kv *out, size_t max)
{
	const char *p = qs, *amp, *eq;
	size_t n = 0, seglen;
	char *k, *v;

	while (p != NULL && *p != '\0' && n < max) {
		amp = strchr(p, '&');
		seglen = amp ? (size_t)(amp - p) : strlen(p);
		eq = memchr(p, '=', seglen);
		if (seglen > 0) {
			if (eq != NULL) {
				k = req_percent_decode(a, p, (size_t)(eq - p), 1);
				v = req_percent_decode(a, eq + 1, seglen - (size_t)(eq - p) - 1, 1);
			} else {
				k = req_percent_decode(a, p, seglen, 1);
				v = arena_strdup(a, "");
			}
			/* A malformed pair is dropped, not the whole query. */
			if (k != NULL && v != NULL && k[0] != '\0') {
				out[n].key = k;
				out[n].val = v;
				n++;
			}
		}
		p = amp ? amp + 1 : NULL;
	}
	return n;
}

char *
req_percent_decode(struct arena *a, const char *s, size_t len, int plus_is_space)
{
	char *out = arena_alloc(a, len + 1);
	size_t i, o = 0;
	int hi, lo;

	if (out == NULL)
		return NULL;
	for (i = 0; i < len; i++) {
		char ch = s[i];
		if (ch == '%') {
			if (i + 2 >= len)
				return NULL;
			hi = OPENSSL_hexchar2int((unsigned char)s[i + 1]);
			lo = OPENSSL_hexchar2int((unsigned char)s[i + 2]);
			if (hi < 0 || lo < 0)
				return NULL;
			ch = (char)(hi << 4 | lo);
			i += 2;
		} else if (ch == '+' && plus_is_space) {
			ch = ' ';
		}
		if (ch == '\0')
			return NULL;
		out[o++] = ch;
	}
	out[o] = '\0';
	return out;
}

