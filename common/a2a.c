/*
 * a2a.c: A2A (agent-to-agent JSON-RPC) helpers shared by the proxy route and the dispatcher worker.
 * Owns nothing: returned json_objects belong to the caller; strings go to caller buffers.
 */
#include "common/a2a.h"

#include <sys/socket.h>
#include <sys/types.h>

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/rand.h>

#include "common/db.h"
#include "common/kv.h"
#include "common/urlcheck.h"
#include "common/util.h"

#define URL_CACHE_TTL_S 300
#define HOST_MAX 256

static int fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static struct json_object *new_uuid(void);
static void ensure_message_id(struct json_object *req);
static int split_url(const char *url, char *host, size_t hlen, int *port, int *literal,
    char *err, size_t errlen);
static int addr_allowed(const struct sockaddr *sa, int allow_loopback, char *addr, size_t alen,
    char *err, size_t errlen);
static const char *parts_text(struct json_object *parts);

struct json_object *
a2a_wrap(struct json_object *body, char *err, size_t errlen)
{
	struct json_object *out = NULL, *v = NULL, *params = NULL, *msg = NULL;

	if (body == NULL || !json_object_is_type(body, json_type_object)) {
		fail(err, errlen, "request body must be a JSON object");
		return NULL;
	}
	if (json_object_object_get_ex(body, "jsonrpc", NULL)) {
		if (json_object_deep_copy(body, &out, NULL) != 0) {
			fail(err, errlen, "out of memory");
			return NULL;
		}
		if (!json_object_object_get_ex(out, "id", &v) || v == NULL)
			json_object_object_add(out, "id", new_uuid());
		ensure_message_id(out);
		return out;
	}
	/* Bare forms: {method, params}, or the params themselves ({message}), or a message. */
	if (json_object_object_get_ex(body, "params", &v) && v != NULL)
		json_object_deep_copy(v, &params, NULL);
	else if (json_object_object_get_ex(body, "message", &v) && v != NULL)
		json_object_deep_copy(body, &params, NULL);
	else if (json_object_object_get_ex(body, "parts", NULL)) {
		params = json_object_new_object();
		if (json_object_deep_copy(body, &msg, NULL) == 0)
			json_object_object_add(params, "message", msg);
	}
	if (params == NULL) {
		fail(err, errlen, "invalid A2A request: expected params, a message or a JSON-RPC body");
		return NULL;
	}
	/* Only keys of the bare params move inside; "id" and "method" stay at the envelope. */
	if (json_object_object_get_ex(body, "message", NULL) &&
	    !json_object_object_get_ex(body, "params", NULL)) {
		json_object_object_del(params, "id");
		json_object_object_del(params, "method");
	}
	out = json_object_new_object();
	json_object_object_add(out, "jsonrpc", json_object_new_string("2.0"));
	if (json_object_object_get_ex(body, "id", &v) && v != NULL)
		json_object_object_add(out, "id", json_object_get(v));
	else
		json_object_object_add(out, "id", new_uuid());
	if (json_object_object_get_ex(body, "method", &v) && json_object_is_type(v, json_type_string))
		json_object_object_add(out, "method", json_object_get(v));
	else
		json_object_object_add(out, "method", json_object_new_string("message/send"));
	json_object_object_add(out, "params", params);
	ensure_message_id(out);
	return out;
}

struct json_object *
a2a_text_request(const char *text, const char *message_id, struct json_object *metadata)
{
	struct json_object *out, *params, *msg, *parts, *part;

	part = json_object_new_object();
	json_object_object_add(part, "kind", json_object_new_string("text"));
	json_object_object_add(part, "text", json_object_new_string(text != NULL ? text : ""));
	parts = json_object_new_array();
	json_object_array_add(parts, part);
	msg = json_object_new_object();
	json_object_object_add(msg, "role", json_object_new_string("user"));
	json_object_object_add(msg, "parts", parts);
	if (message_id != NULL)
		json_object_object_add(msg, "messageId", json_object_new_string(message_id));
	else
		json_object_object_add(msg, "messageId", new_uuid());
	if (metadata != NULL)
		json_object_object_add(msg, "metadata", json_object_get(metadata));
	params = json_object_new_object();
	json_object_object_add(params, "message", msg);
	out = json_object_new_object();
	json_object_object_add(out, "jsonrpc", json_object_new_string("2.0"));
	/* The JSON-RPC id follows the messageId, so a retried fire is recognisably the same call. */
	if (message_id != NULL)
		json_object_object_add(out, "id", json_object_new_string(message_id));
	else
		json_object_object_add(out, "id", new_uuid());
	json_object_object_add(out, "method", json_object_new_string("message/send"));
	json_object_object_add(out, "params", params);
	return out;
}

int
a2a_pin_target(const char *url, int allow_loopback, char *resolve, size_t rlen, char *err, size_t errlen)
{
	struct addrinfo hints, *res = NULL, *ai;
	char host[HOST_MAX], addr[INET6_ADDRSTRLEN + 2], list[A2A_RESOLVE_MAX];
	size_t used = 0;
	int port = 0, literal = 0, rc = -1, gai, n;

	if (resolve != NULL && rlen > 0)
		resolve[0] = '\0';
	list[0] = '\0';
	if (split_url(url, host, sizeof(host), &port, &literal, err, errlen) < 0)
		return -1;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = literal ? AI_NUMERICHOST : AI_ADDRCONFIG;
	/* One lookup: what we check is what curl connects to (no rebinding in between). */
	gai = getaddrinfo(host, NULL, &hints, &res);
	if (gai != 0) {
		fail(err, errlen, "cannot resolve %s: %s", host, gai_strerror(gai));
		if (gai == EAI_AGAIN)
			rc = A2A_PIN_TEMPORARY;
		goto out;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
			continue;
		if (addr_allowed(ai->ai_addr, allow_loopback, addr, sizeof(addr), err, errlen) < 0)
			goto out;
		/* Every checked address (curl tries them in turn), as many as fit. */
		if (used + strlen(addr) + 2 + strlen(host) + 8 < sizeof(list)) {
			n = snprintf(list + used, sizeof(list) - used, "%s%s", used ? "," : "", addr);
			used += (size_t)n;
		}
	}
	if (list[0] == '\0') {
		fail(err, errlen, "%s has no usable address", host);
		goto out;
	}
	/* An IP literal needs no pin: curl does not resolve it. */
	if (!literal && resolve != NULL) {
		n = snprintf(resolve, rlen, "%s:%d:%s", host, port, list);
		if (n < 0 || (size_t)n >= rlen) {
			fail(err, errlen, "host name too long");
			goto out;
		}
	}
	rc = 0;
out:
	if (res != NULL)
		freeaddrinfo(res);
	return rc;
}

int
a2a_target_url(struct arena *a, const char *workspace_id, char *url, size_t len)
{
	redisReply *rep;
	PGresult *res;
	const char *params[1];
	const char *v;

	if (workspace_id == NULL || !is_uuid(workspace_id) || len == 0)
		return -1;
	url[0] = '\0';
	rep = kv_command(a, "GET ws:%s:url", workspace_id);
	if (rep != NULL && rep->type == REDIS_REPLY_STRING && rep->len > 0 && rep->len < len) {
		memcpy(url, rep->str, rep->len);
		url[rep->len] = '\0';
		return 0;
	}
	params[0] = workspace_id;
	res = db_exec(a, "SELECT url FROM workspaces WHERE id = $1::uuid AND status <> 'removed' "
	    "AND url IS NOT NULL AND url <> ''", 1, params);
	if (res == NULL || PQntuples(res) != 1)
		return -1;
	v = db_value(res, 0, 0);
	if (v == NULL || strlen(v) >= len)
		return -1;
	snprintf(url, len, "%s", v);
	kv_command(a, "SET ws:%s:url %s EX %d", workspace_id, url, URL_CACHE_TTL_S);
	return 0;
}

const char *
a2a_result_text(struct json_object *response)
{
	struct json_object *result, *v, *arts, *st, *msg;
	const char *t;
	size_t i, n;

	if (response == NULL || !json_object_object_get_ex(response, "result", &result) ||
	    !json_object_is_type(result, json_type_object))
		return NULL;
	/* A Message result carries parts; a Task carries artifacts and a status message. */
	if (json_object_object_get_ex(result, "parts", &v) && (t = parts_text(v)) != NULL)
		return t;
	if (json_object_object_get_ex(result, "artifacts", &arts) &&
	    json_object_is_type(arts, json_type_array)) {
		n = json_object_array_length(arts);
		for (i = 0; i < n; i++) {
			struct json_object *art = json_object_array_get_idx(arts, i);
			if (json_object_is_type(art, json_type_object) &&
			    json_object_object_get_ex(art, "parts", &v) && (t = parts_text(v)) != NULL)
				return t;
		}
	}
	if (json_object_object_get_ex(result, "status", &st) &&
	    json_object_is_type(st, json_type_object) &&
	    json_object_object_get_ex(st, "message", &msg) &&
	    json_object_is_type(msg, json_type_object) &&
	    json_object_object_get_ex(msg, "parts", &v) && (t = parts_text(v)) != NULL)
		return t;
	if (json_object_object_get_ex(result, "message", &msg) &&
	    json_object_is_type(msg, json_type_object) &&
	    json_object_object_get_ex(msg, "parts", &v) && (t = parts_text(v)) != NULL)
		return t;
	return NULL;
}

static int
fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err != NULL && errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

/* A random (version 4) UUID as a json string. */
static struct json_object *
new_uuid(void)
{
	unsigned char b[16];
	char s[37];

	if (RAND_bytes(b, sizeof(b)) != 1)
		fatal("RAND_bytes failed");
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
	snprintf(s, sizeof(s), "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
	    b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
	    b[14], b[15]);
	return json_object_new_string(s);
}

/* Agents deduplicate on params.message.messageId; a message without one gets a fresh one. */
static void
ensure_message_id(struct json_object *req)
{
	struct json_object *params, *msg, *v;

	if (!json_object_object_get_ex(req, "params", &params) ||
	    !json_object_is_type(params, json_type_object) ||
	    !json_object_object_get_ex(params, "message", &msg) ||
	    !json_object_is_type(msg, json_type_object))
		return;
	if (json_object_object_get_ex(msg, "messageId", &v) && v != NULL &&
	    json_object_is_type(v, json_type_string) && json_object_get_string_len(v) > 0)
		return;
	json_object_object_add(msg, "messageId", new_uuid());
}

/*
 * http(s)://host[:port][/...] without credentials; host is a name, an IPv4 literal or a
 * bracketed IPv6 literal (brackets removed). Returns 0 or -1 + err.
 */
static int
split_url(const char *url, char *host, size_t hlen, int *port, int *literal, char *err, size_t errlen)
{
	const char *p, *end, *h, *hend, *colon = NULL;
	unsigned char buf[sizeof(struct in6_addr)];
	int64_t pv;
	const char *why = NULL;
	char pbuf[8];
	size_t n;

	if (url == NULL)
		return fail(err, errlen, "no URL");
	if (strncasecmp(url, "http://", 7) == 0) {
		p = url + 7;
		*port = 80;
	} else if (strncasecmp(url, "https://", 8) == 0) {
		p = url + 8;
		*port = 443;
	} else
		return fail(err, errlen, "URL scheme must be http or https");
	end = p + strcspn(p, "/?#");
	if (memchr(p, '@', (size_t)(end - p)) != NULL)
		return fail(err, errlen, "URL must not carry credentials");
	if (*p == '[') {
		h = p + 1;
		hend = memchr(h, ']', (size_t)(end - h));
		if (hend == NULL)
			return fail(err, errlen, "malformed IPv6 literal");
		if (hend + 1 < end) {
			if (hend[1] != ':')
				return fail(err, errlen, "malformed host");
			colon = hend + 1;
		}
	} else {
		h = p;
		colon = memchr(p, ':', (size_t)(end - p));
		hend = colon != NULL ? colon : end;
	}
	n = (size_t)(hend - h);
	if (n == 0 || n >= hlen)
		return fail(err, errlen, "empty or too long host");
	memcpy(host, h, n);
	host[n] = '\0';
	if (colon != NULL) {
		n = (size_t)(end - colon - 1);
		if (n == 0 || n >= sizeof(pbuf))
			return fail(err, errlen, "invalid port");
		memcpy(pbuf, colon + 1, n);
		pbuf[n] = '\0';
		if (parse_int64(pbuf, 1, 65535, &pv, &why) < 0)
			return fail(err, errlen, "invalid port: %s", why);
		*port = (int)pv;
	}
	*literal = inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
	return 0;
}

/*
 * One resolved address against the SSRF rules: loopback only when allowed, everything else as
 * urlcheck judges an IP literal (metadata, link-local, reserved ... refused). addr receives
 * the text form ("[v6]" bracketed for CURLOPT_RESOLVE).
 */
static int
addr_allowed(const struct sockaddr *sa, int allow_loopback, char *addr, size_t alen, char *err,
    size_t errlen)
{
	char text[INET6_ADDRSTRLEN], probe[INET6_ADDRSTRLEN + 16], why[128];
	int loopback = 0;

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)(const void *)sa;
		inet_ntop(AF_INET, &s4->sin_addr, text, sizeof(text));
		loopback = (ntohl(s4->sin_addr.s_addr) >> 24) == 127;
		snprintf(addr, alen, "%s", text);
		snprintf(probe, sizeof(probe), "http://%s/", text);
	} else {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)(const void *)sa;
		const unsigned char *b = s6->sin6_addr.s6_addr;
		inet_ntop(AF_INET6, &s6->sin6_addr, text, sizeof(text));
		loopback = IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr) ||
		    (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr) && b[12] == 127);
		snprintf(addr, alen, "[%s]", text);
		snprintf(probe, sizeof(probe), "http://[%s]/", text);
	}
	if (loopback) {
		if (allow_loopback)
			return 0;
		return fail(err, errlen, "%s is a loopback address", text);
	}
	if (urlcheck_agent_url(probe, why, sizeof(why)) < 0)
		return fail(err, errlen, "%s: %s", text, why);
	return 0;
}

/* The first {"kind"|"type":"text","text":...} of a parts array, or NULL. */
static const char *
parts_text(struct json_object *parts)
{
	struct json_object *part, *kind, *text;
	size_t i, n;

	if (!json_object_is_type(parts, json_type_array))
		return NULL;
	n = json_object_array_length(parts);
	for (i = 0; i < n; i++) {
		part = json_object_array_get_idx(parts, i);
		if (!json_object_is_type(part, json_type_object))
			continue;
		if (!json_object_object_get_ex(part, "kind", &kind) &&
		    !json_object_object_get_ex(part, "type", &kind))
			continue;
		if (!json_object_is_type(kind, json_type_string) ||
		    strcmp(json_object_get_string(kind), "text") != 0)
			continue;
		if (json_object_object_get_ex(part, "text", &text) &&
		    json_object_is_type(text, json_type_string))
			return json_object_get_string(text);
	}
	return NULL;
}
