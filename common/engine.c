/*
 * engine.c: Docker Engine API v1.41 client over libcurl (unix socket, or tcp:// with TLS client certs).
 * Owns the engine's curl handle; bodies are capped, streams are parsed incrementally (engine_stream.c).
 */
#include "common/engine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "common/engine_stream.h"

#define ENGINE_DEFAULT_HOST "unix:///var/run/docker.sock"
#define ENGINE_API "/v1.41"
#define ENGINE_BODY_CAP ((size_t)8 << 20)
#define ENGINE_CONNECT_MS 5000L
#define ENGINE_TIMEOUT_MS 30000L
/* kept of a streamed body, to explain an HTTP error that arrives instead of the stream */
#define ENGINE_ERRBODY_CAP 65536

struct body {
	char *p;
	size_t len, cap, max;
	int over;
};

/* how a call consumes its response */
struct sink {
	struct body raw;              /* capped copy (whole body, or the head of a stream) */
	struct jsonl *jl;             /* progress stream, or NULL */
	struct mux *mx;               /* multiplexed logs, or NULL */
	int bad;                      /* the stream parser failed (malformed frame, no memory) */
};

static int body_add(struct body *b, const void *data, size_t n);
static size_t on_data(char *data, size_t size, size_t nmemb, void *arg);
static int call(struct engine *e, const char *method, const char *path, const char *ctype,
                const void *req, size_t reqlen, long timeout_ms, struct sink *s);
static void set_http_err(struct engine *e, const char *what, const struct body *b);
static int ref_ok(const char *ref);
static int name_path(struct engine *e, char *out, size_t outlen, const char *pre, const char *name,
                     const char *post);
static int simple(struct engine *e, const char *method, const char *pre, const char *name, const char *post,
                  long timeout_ms, const char *what, long ok_also);
static int post_json(struct engine *e, const char *path, struct json_object *body, const char *what,
                     struct sink *s);
static int is_loopback(const char *host);
static int list_by_label(struct engine *e, const char *prefix, const char *what, const char *label,
    struct json_object **out);
static int stream_call(struct engine *e, const char *path, const char *ctype, const void *req, size_t reqlen,
                       engine_line_fn fn, void *arg, long timeout_ms, const char *what);

static int
body_add(struct body *b, const void *data, size_t n)
{
	char *np;
	size_t ncap;

	if (b->over)
		return 0;
	if (b->len + n > b->max) {
		/* keep what fits: an error message is at the front */
		n = b->max - b->len;
		b->over = 1;
	}
	if (b->len + n + 1 > b->cap) {
		ncap = b->cap ? b->cap : 1024;
		while (ncap < b->len + n + 1)
			ncap *= 2;
		np = realloc(b->p, ncap);
		if (np == NULL)
			return -1;
		b->p = np;
		b->cap = ncap;
	}
	if (n > 0)
		memcpy(b->p + b->len, data, n);
	b->len += n;
	b->p[b->len] = '\0';
	return 0;
}

static size_t
on_data(char *data, size_t size, size_t nmemb, void *arg)
{
	struct sink *s = arg;
	size_t n = size * nmemb;

	if (body_add(&s->raw, data, n) != 0)
		return 0;
	if (s->raw.over && s->jl == NULL && s->mx == NULL)
		return 0;                       /* a plain body over the cap: abort the transfer */
	if (s->jl != NULL && jsonl_feed(s->jl, data, n) != 0) {
		s->bad = 1;
		return 0;
	}
	if (s->mx != NULL && mux_feed(s->mx, data, n) != 0) {
		s->bad = 1;
		return 0;
	}
	return n;
}

static int
is_loopback(const char *host)
{
	return strcmp(host, "127.0.0.1") == 0 || strcmp(host, "localhost") == 0 ||
	       strcmp(host, "[::1]") == 0 || strncmp(host, "127.", 4) == 0;
}

int
engine_init(struct engine *e, const char *docker_host, const char *cert_path, char *err, size_t errlen)
{
	const char *h, *rest;
	char hostonly[256];
	size_t n;

	memset(e, 0, sizeof(*e));
	e->connect_timeout_ms = ENGINE_CONNECT_MS;
	e->timeout_ms = ENGINE_TIMEOUT_MS;
	e->body_cap = ENGINE_BODY_CAP;
	h = docker_host && *docker_host ? docker_host : ENGINE_DEFAULT_HOST;
	if (strlen(h) >= sizeof(e->host)) {
		snprintf(err, errlen, "DOCKER_HOST is too long");
		return -1;
	}
	snprintf(e->host, sizeof(e->host), "%s", h);
	if (strncmp(h, "unix://", 7) == 0) {
		rest = h + 7;
		if (*rest != '/' || strlen(rest) >= sizeof(e->unix_path) || strlen(rest) >= 108) {
			snprintf(err, errlen, "DOCKER_HOST %s: need unix:///absolute/path (under 108 bytes)", h);
			return -1;
		}
		snprintf(e->unix_path, sizeof(e->unix_path), "%s", rest);
		snprintf(e->base, sizeof(e->base), "http://d%s", ENGINE_API);
	} else if (strncmp(h, "tcp://", 6) == 0) {
		rest = h + 6;
		n = strcspn(rest, "/?#@");
		if (n == 0 || n >= sizeof(hostonly) || rest[n] != '\0') {
			snprintf(err, errlen, "DOCKER_HOST %s: need tcp://host:port", h);
			return -1;
		}
		memcpy(hostonly, rest, n);
		hostonly[n] = '\0';
		/* strip the port to judge the host */
		if (hostonly[0] == '[') {
			char *rb = strchr(hostonly, ']');

			if (rb != NULL)
				rb[1] = '\0';
		} else if (strchr(hostonly, ':') != NULL) {
			*strchr(hostonly, ':') = '\0';
		}
		if (cert_path && *cert_path) {
			if ((size_t)snprintf(e->ca, sizeof(e->ca), "%s/ca.pem", cert_path) >= sizeof(e->ca) ||
			    (size_t)snprintf(e->cert, sizeof(e->cert), "%s/cert.pem", cert_path) >= sizeof(e->cert) ||
			    (size_t)snprintf(e->key, sizeof(e->key), "%s/key.pem", cert_path) >= sizeof(e->key)) {
				snprintf(err, errlen, "DOCKER_CERT_PATH is too long");
				return -1;
			}
			e->tls = 1;
			snprintf(e->base, sizeof(e->base), "https://%.*s%s", (int)n, rest, ENGINE_API);
		} else if (is_loopback(hostonly)) {
			snprintf(e->base, sizeof(e->base), "http://%.*s%s", (int)n, rest, ENGINE_API);
		} else {
			/* an unauthenticated engine API over the network is root on that host */
			snprintf(err, errlen, "DOCKER_HOST %s: a non-loopback tcp engine needs TLS client certs "
			         "(DOCKER_CERT_PATH with ca.pem, cert.pem, key.pem)", h);
			return -1;
		}
	} else {
		snprintf(err, errlen, "DOCKER_HOST %s: scheme must be unix:// or tcp://", h);
		return -1;
	}
	e->curl = curl_easy_init();
	if (e->curl == NULL) {
		snprintf(err, errlen, "curl_easy_init failed");
		return -1;
	}
	return 0;
}

void
engine_cleanup(struct engine *e)
{
	if (e->curl != NULL)
		curl_easy_cleanup(e->curl);
	e->curl = NULL;
}

const char *
engine_error(const struct engine *e)
{
	return e->err[0] ? e->err : "no error";
}

/* err = "<what>: <engine's message> (HTTP n)"; the message comes from the body's JSON when it has one. */
static void
set_http_err(struct engine *e, const char *what, const struct body *b)
{
	struct json_object *o = NULL, *m;
	const char *msg = NULL;

	if (b->p != NULL && b->len > 0) {
		o = json_tokener_parse(b->p);
		if (o != NULL && json_object_object_get_ex(o, "message", &m) &&
		    json_object_is_type(m, json_type_string))
			msg = json_object_get_string(m);
	}
	if (msg != NULL)
		snprintf(e->err, sizeof(e->err), "%s: %s (HTTP %ld)", what, msg, e->status);
	else
		snprintf(e->err, sizeof(e->err), "%s: engine answered HTTP %ld", what, e->status);
	json_object_put(o);
}

/*
 * One request. Returns 0 when the transfer completed (whatever the HTTP status, in e->status),
 * -1 on a transport error with e->err naming the engine's address.
 */
static int
call(struct engine *e, const char *method, const char *path, const char *ctype, const void *req,
     size_t reqlen, long timeout_ms, struct sink *s)
{
	CURL *c = e->curl;
	struct curl_slist *hl = NULL;
	char url[2048], hdr[128], cerr[CURL_ERROR_SIZE];
	CURLcode cc;
	int rc = -1;

	e->status = 0;
	e->err[0] = '\0';
	if (c == NULL) {
		snprintf(e->err, sizeof(e->err), "engine client not initialised");
		return -1;
	}
	if ((size_t)snprintf(url, sizeof(url), "%s%s", e->base, path) >= sizeof(url)) {
		snprintf(e->err, sizeof(e->err), "request path too long");
		return -1;
	}
	cerr[0] = '\0';
	curl_easy_reset(c);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, e->connect_timeout_ms);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms > 0 ? timeout_ms : e->timeout_ms);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, cerr);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, s);
	if (e->unix_path[0])
		curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, e->unix_path);
	if (e->tls) {
		curl_easy_setopt(c, CURLOPT_CAINFO, e->ca);
		curl_easy_setopt(c, CURLOPT_SSLCERT, e->cert);
		curl_easy_setopt(c, CURLOPT_SSLKEY, e->key);
		curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
		curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
	}
	hl = curl_slist_append(hl, "Expect:");
	if (ctype != NULL) {
		snprintf(hdr, sizeof(hdr), "Content-Type: %s", ctype);
		hl = curl_slist_append(hl, hdr);
	}
	if (hl == NULL) {
		snprintf(e->err, sizeof(e->err), "out of memory");
		goto out;
	}
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
	if (strcmp(method, "GET") == 0) {
		curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
	} else if (strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, req ? (const char *)req : "");
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(req ? reqlen : 0));
		if (strcmp(method, "PUT") == 0)
			curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "PUT");
	} else {
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	}
	cc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &e->status);
	if (cc == CURLE_WRITE_ERROR && s->raw.over && s->jl == NULL && s->mx == NULL) {
		snprintf(e->err, sizeof(e->err), "engine at %.200s: response larger than %zu bytes", e->host,
		         s->raw.max);
		goto out;
	}
	if (cc == CURLE_WRITE_ERROR && s->bad) {
		snprintf(e->err, sizeof(e->err), "engine at %.200s: malformed or oversized stream", e->host);
		goto out;
	}
	if (cc == CURLE_COULDNT_CONNECT && e->unix_path[0]) {
		/* curl would say "port 80 of d": name the socket instead */
		snprintf(e->err, sizeof(e->err), "engine at %.200s: cannot connect to the socket (is the engine running?)",
		         e->host);
		goto out;
	}
	if (cc != CURLE_OK) {
		snprintf(e->err, sizeof(e->err), "engine at %.200s: %.280s", e->host, cerr[0] ? cerr : curl_easy_strerror(cc));
		goto out;
	}
	rc = 0;
out:
	curl_slist_free_all(hl);
	return rc;
}

/* Image references go into URL paths as they are; anything outside their grammar is refused. */
static int
ref_ok(const char *ref)
{
	const char *p;

	if (ref == NULL || *ref == '\0' || strlen(ref) > 255 || *ref == '/' || strstr(ref, "..") != NULL)
		return 0;
	for (p = ref; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		      strchr("._-/:@", *p) != NULL))
			return 0;
	return 1;
}

/* out = pre + escaped name + post (post may be NULL and may carry a query string). */
static int
name_path(struct engine *e, char *out, size_t outlen, const char *pre, const char *name, const char *post)
{
	char *esc;
	int n;

	if (name == NULL || *name == '\0') {
		snprintf(e->err, sizeof(e->err), "empty name");
		return -1;
	}
	esc = curl_easy_escape(e->curl, name, 0);
	if (esc == NULL) {
		snprintf(e->err, sizeof(e->err), "out of memory");
		return -1;
	}
	n = snprintf(out, outlen, "%s%s%s", pre, esc, post ? post : "");
	curl_free(esc);
	if (n < 0 || (size_t)n >= outlen) {
		snprintf(e->err, sizeof(e->err), "name too long");
		return -1;
	}
	return 0;
}

/* A body-less call whose success is any 2xx, or ok_also (e.g. 304 "already", 404 "already gone"). */
static int
simple(struct engine *e, const char *method, const char *pre, const char *name, const char *post,
       long timeout_ms, const char *what, long ok_also)
{
	struct sink s;
	char path[1024];
	int rc = -1;

	memset(&s, 0, sizeof(s));
	s.raw.max = e->body_cap;
	if (name_path(e, path, sizeof(path), pre, name, post) != 0)
		return -1;
	if (call(e, method, path, NULL, NULL, 0, timeout_ms, &s) != 0)
		goto out;
	if ((e->status >= 200 && e->status < 300) || (ok_also && e->status == ok_also)) {
		rc = 0;
		goto out;
	}
	set_http_err(e, what, &s.raw);
out:
	free(s.raw.p);
	return rc;
}

/* POSTs body as compact JSON; success is 200 or 201. Returns -1 with e->err set otherwise. */
static int
post_json(struct engine *e, const char *path, struct json_object *body, const char *what, struct sink *s)
{
	const char *js = json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN);

	if (call(e, "POST", path, "application/json", js, strlen(js), 0, s) != 0)
		return -1;
	if (e->status != 201 && e->status != 200) {
		set_http_err(e, what, &s->raw);
		return -1;
	}
	return 0;
}

int
engine_ping(struct engine *e)
{
	struct sink s;
	int rc = -1;

	memset(&s, 0, sizeof(s));
	s.raw.max = 4096;
	if (call(e, "GET", "/_ping", NULL, NULL, 0, 0, &s) != 0)
		goto out;
	if (e->status != 200) {
		set_http_err(e, "ping", &s.raw);
		goto out;
	}
	rc = 0;
out:
	free(s.raw.p);
	return rc;
}

int
engine_volume_create(struct engine *e, const char *name, struct json_object *labels)
{
	struct json_object *o;
	struct sink s;
	int rc = -1;

	memset(&s, 0, sizeof(s));
	s.raw.max = e->body_cap;
	o = json_object_new_object();
	if (o == NULL || name == NULL || *name == '\0') {
		snprintf(e->err, sizeof(e->err), "volume create: bad name or out of memory");
		goto out;
	}
	json_object_object_add(o, "Name", json_object_new_string(name));
	if (labels != NULL)
		json_object_object_add(o, "Labels", json_object_get(labels));
	if (post_json(e, "/volumes/create", o, "volume create", &s) != 0)
		goto out;
	rc = 0;
out:
	json_object_put(o);
	free(s.raw.p);
	return rc;
}

int
engine_volume_remove(struct engine *e, const char *name)
{
	return simple(e, "DELETE", "/volumes/", name, "?force=1", 0, "volume remove", 404);
}

int
engine_container_create(struct engine *e, const char *name, struct json_object *body, char *id_out, size_t idlen)
{
	struct json_object *o = NULL, *id;
	struct sink s;
	char path[1024];
	int rc = -1;

	memset(&s, 0, sizeof(s));
	s.raw.max = e->body_cap;
	if (id_out != NULL && idlen > 0)
		id_out[0] = '\0';
	if (body == NULL) {
		snprintf(e->err, sizeof(e->err), "container create: no body");
		return -1;
	}
	if (name_path(e, path, sizeof(path), "/containers/create?name=", name, NULL) != 0)
		return -1;
	if (post_json(e, path, body, "container create", &s) != 0)
		goto out;
	o = s.raw.p ? json_tokener_parse(s.raw.p) : NULL;
	if (o == NULL || !json_object_object_get_ex(o, "Id", &id) || !json_object_is_type(id, json_type_string)) {
		snprintf(e->err, sizeof(e->err), "container create: engine's answer has no Id");
		goto out;
	}
	if (id_out != NULL && idlen > 0)
		snprintf(id_out, idlen, "%s", json_object_get_string(id));
	rc = 0;
out:
	json_object_put(o);
	free(s.raw.p);
	return rc;
}

int
engine_container_start(struct engine *e, const char *name_or_id)
{
	return simple(e, "POST", "/containers/", name_or_id, "/start", 0, "container start", 304);
}

int
engine_container_stop(struct engine *e, const char *name_or_id, int timeout_s)
{
	char q[32];

	if (timeout_s < 0)
		timeout_s = 0;
	snprintf(q, sizeof(q), "/stop?t=%d", timeout_s);
	/* the engine waits up to timeout_s before SIGKILL: the call must outlast that */
	return simple(e, "POST", "/containers/", name_or_id, q, e->timeout_ms + timeout_s * 1000L,
	              "container stop", 304);
}

int
engine_container_remove(struct engine *e, const char *name_or_id)
{
	/* v=1: anonymous volumes of the image (VOLUME lines) go too; named ones are never touched. */
	return simple(e, "DELETE", "/containers/", name_or_id, "?force=1&v=1", 0, "container remove", 404);
}

int
engine_container_pause(struct engine *e, const char *name_or_id)
{
	return simple(e, "POST", "/containers/", name_or_id, "/pause", 0, "container pause", 0);
}

int
engine_container_unpause(struct engine *e, const char *name_or_id)
{
	return simple(e, "POST", "/containers/", name_or_id, "/unpause", 0, "container unpause", 0);
}

int
engine_container_kill(struct engine *e, const char *name_or_id, const char *signal)
{
	char q[64];
	const char *p;

	if (signal == NULL || *signal == '\0')
		signal = "SIGKILL";
	for (p = signal; *p; p++)
		if (!((*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9'))) {
			snprintf(e->err, sizeof(e->err), "container kill: bad signal name");
			return -1;
		}
	if ((size_t)snprintf(q, sizeof(q), "/kill?signal=%s", signal) >= sizeof(q)) {
		snprintf(e->err, sizeof(e->err), "container kill: bad signal name");
		return -1;
	}
	return simple(e, "POST", "/containers/", name_or_id, q, 0, "container kill", 0);
}

int
engine_container_state(struct engine *e, const char *name_or_id, enum engine_state *st)
{
	struct json_object *o = NULL, *state, *v;
	struct sink s;
	char path[1024];
	int rc = -1;

	memset(&s, 0, sizeof(s));
	s.raw.max = e->body_cap;
	*st = ENGINE_MISSING;
	if (name_path(e, path, sizeof(path), "/containers/", name_or_id, "/json") != 0)
		return -1;
	if (call(e, "GET", path, NULL, NULL, 0, 0, &s) != 0)
		goto out;
	if (e->status == 404) {
		rc = 0;
		goto out;
	}
	if (e->status != 200) {
		set_http_err(e, "container inspect", &s.raw);
		goto out;
	}
	o = s.raw.p ? json_tokener_parse(s.raw.p) : NULL;
	if (o == NULL || !json_object_object_get_ex(o, "State", &state)) {
		snprintf(e->err, sizeof(e->err), "container inspect: engine's answer has no State");
		goto out;
	}
	*st = ENGINE_STOPPED;
	if (json_object_object_get_ex(state, "Paused", &v) && json_object_get_boolean(v))
		*st = ENGINE_PAUSED;
	else if (json_object_object_get_ex(state, "Running", &v) && json_object_get_boolean(v))
		*st = ENGINE_RUNNING;
	rc = 0;
out:
	json_object_put(o);
	free(s.raw.p);
	return rc;
}

int
engine_container_list(struct engine *e, const char *label, engine_each_fn fn, void *arg)
{
	struct json_object *o = NULL, *c, *v, *names, *labels;
	const char *id, *name;
	size_t i, n;

	if (list_by_label(e, "/containers/json?all=1&", "container list", label, &o) < 0)
		return -1;
	if (!json_object_is_type(o, json_type_array)) {
		snprintf(e->err, sizeof(e->err), "container list: engine's answer is not a list");
		json_object_put(o);
		return -1;
	}
	n = json_object_array_length(o);
	for (i = 0; i < n; i++) {
		c = json_object_array_get_idx(o, i);
		if (!json_object_object_get_ex(c, "Id", &v) || !json_object_is_type(v, json_type_string))
			continue;
		id = json_object_get_string(v);
		name = "";
		/* Names come as ["/ws-abc"]: the leading slash is the engine's, not the name's */
		if (json_object_object_get_ex(c, "Names", &names) && json_object_is_type(names, json_type_array) &&
		    json_object_array_length(names) > 0) {
			name = json_object_get_string(json_object_array_get_idx(names, 0));
			if (name == NULL)
				name = "";
			if (*name == '/')
				name++;
		}
		labels = NULL;
		json_object_object_get_ex(c, "Labels", &labels);
		if (fn != NULL && fn(arg, id, name, labels) != 0)
			break;
	}
	json_object_put(o);
	return 0;
}

int
engine_volume_list(struct engine *e, const char *label, engine_each_fn fn, void *arg)
{
	struct json_object *o = NULL, *vols, *vol, *v, *labels;
	const char *name;
	size_t i, n;

	if (list_by_label(e, "/volumes?", "volume list", label, &o) < 0)
		return -1;
	/* {"Volumes":[...]} (null when there are none) */
	if (!json_object_object_get_ex(o, "Volumes", &vols) || vols == NULL) {
		json_object_put(o);
		return 0;
	}
	if (!json_object_is_type(vols, json_type_array)) {
		snprintf(e->err, sizeof(e->err), "volume list: engine's answer is not a list");
		json_object_put(o);
		return -1;
	}
	n = json_object_array_length(vols);
	for (i = 0; i < n; i++) {
		vol = json_object_array_get_idx(vols, i);
		if (!json_object_object_get_ex(vol, "Name", &v) || !json_object_is_type(v, json_type_string))
			continue;
		name = json_object_get_string(v);
		labels = NULL;
		json_object_object_get_ex(vol, "Labels", &labels);
		if (fn != NULL && fn(arg, name, name, labels) != 0)
			break;
	}
	json_object_put(o);
	return 0;
}

int
engine_archive_put(struct engine *e, const char *name_or_id, const char *path, const void *tar, size_t len)
{
	struct sink s;
	char p[2048];
	char *esc;
	int rc = -1;

	memset(&s, 0, sizeof(s));
	s.raw.max = e->body_cap;
	if (path == NULL || *path != '/') {
		snprintf(e->err, sizeof(e->err), "archive put: path must be absolute");
		return -1;
	}
	esc = curl_easy_escape(e->curl, path, 0);
	if (esc == NULL) {
		snprintf(e->err, sizeof(e->err), "out of memory");
		return -1;
	}
	if (name_path(e, p, sizeof(p), "/containers/", name_or_id, "/archive") != 0 ||
	    strlen(p) + strlen(esc) + 7 >= sizeof(p)) {
		curl_free(esc);
		return -1;
	}
	strcat(p, "?path=");
	strcat(p, esc);
	curl_free(esc);
	if (call(e, "PUT", p, "application/x-tar", tar, len, 0, &s) != 0)
		goto out;
	if (e->status != 200) {
		set_http_err(e, "archive put", &s.raw);
		goto out;
	}
	rc = 0;
out:
	free(s.raw.p);
	return rc;
}

int
engine_container_logs(struct engine *e, const char *name_or_id, int tail, char **out)
{
	struct mux mx;
	struct sink s;
	char path[1024], q[96];
	int rc = -1;

	*out = NULL;
	memset(&s, 0, sizeof(s));
	s.raw.max = ENGINE_ERRBODY_CAP;
	mux_init(&mx, e->body_cap);
	s.mx = &mx;
	if (tail > 0)
		snprintf(q, sizeof(q), "/logs?stdout=1&stderr=1&tail=%d", tail);
	else
		snprintf(q, sizeof(q), "/logs?stdout=1&stderr=1&tail=all");
	if (name_path(e, path, sizeof(path), "/containers/", name_or_id, q) != 0)
		goto out;
	if (call(e, "GET", path, NULL, NULL, 0, 0, &s) != 0)
		goto out;
	if (e->status != 200) {
		set_http_err(e, "container logs", &s.raw);
		goto out;
	}
	if (mux_feed(&mx, "", 0) != 0) {
		snprintf(e->err, sizeof(e->err), "out of memory");
		goto out;
	}
	*out = mx.out;
	mx.out = NULL;
	rc = 0;
out:
	mux_free(&mx);
	free(s.raw.p);
	return rc;
}

int
engine_image_exists(struct engine *e, const char *ref)
{
	struct sink s;
	char path[512];
	int rc = -1;

	memset(&s, 0, sizeof(s));
	s.raw.max = e->body_cap;
	if (!ref_ok(ref)) {
		snprintf(e->err, sizeof(e->err), "invalid image reference");
		return -1;
	}
	snprintf(path, sizeof(path), "/images/%s/json", ref);
	if (call(e, "GET", path, NULL, NULL, 0, 0, &s) != 0)
		goto out;
	if (e->status == 200)
		rc = 1;
	else if (e->status == 404)
		rc = 0;
	else
		set_http_err(e, "image inspect", &s.raw);
out:
	free(s.raw.p);
	return rc;
}

/* A JSON-lines streaming call (pull, build): fails on HTTP errors and on {"error"} lines alike. */
static int
stream_call(struct engine *e, const char *path, const char *ctype, const void *req, size_t reqlen,
            engine_line_fn fn, void *arg, long timeout_ms, const char *what)
{
	struct jsonl jl;
	struct sink s;
	int rc = -1;

	memset(&s, 0, sizeof(s));
	s.raw.max = ENGINE_ERRBODY_CAP;
	jsonl_init(&jl, fn, arg);
	s.jl = &jl;
	if (call(e, "POST", path, ctype, req, reqlen, timeout_ms, &s) != 0) {
		if (jl.failed)
			snprintf(e->err, sizeof(e->err), "%s: %.480s", what, jl.err);
		goto out;
	}
	jsonl_finish(&jl);
	if (e->status < 200 || e->status >= 300) {
		set_http_err(e, what, &s.raw);
		goto out;
	}
	if (jl.failed) {
		snprintf(e->err, sizeof(e->err), "%s: %.480s", what, jl.err);
		goto out;
	}
	rc = 0;
out:
	jsonl_free(&jl);
	free(s.raw.p);
	return rc;
}

int
engine_image_pull(struct engine *e, const char *ref, engine_line_fn fn, void *arg, long timeout_ms)
{
	char path[512];

	if (!ref_ok(ref)) {
		snprintf(e->err, sizeof(e->err), "invalid image reference");
		return -1;
	}
	snprintf(path, sizeof(path), "/images/create?fromImage=%s", ref);
	return stream_call(e, path, NULL, NULL, 0, fn, arg, timeout_ms, "image pull");
}

int
engine_build(struct engine *e, const char *tag, const char *platform, const void *tar, size_t len,
             engine_line_fn fn, void *arg, long timeout_ms)
{
	char path[768];
	char *esc = NULL;
	int rc;

	if (!ref_ok(tag)) {
		snprintf(e->err, sizeof(e->err), "build: invalid image tag");
		return -1;
	}
	if (platform != NULL && *platform != '\0') {
		esc = curl_easy_escape(e->curl, platform, 0);
		if (esc == NULL) {
			snprintf(e->err, sizeof(e->err), "out of memory");
			return -1;
		}
	}
	/* rm/forcerm: no intermediate containers left behind, even when a step fails */
	snprintf(path, sizeof(path), "/build?t=%s&rm=1&forcerm=1%s%.128s", tag, esc ? "&platform=" : "",
	         esc ? esc : "");
	curl_free(esc);
	rc = stream_call(e, path, "application/x-tar", tar, len, fn, arg, timeout_ms, "build");
	return rc;
}

/*
 * GET <prefix>filters={"label":["k=v"]} and parses the answer into *out (caller puts it).
 * what names the call in errors. Returns 0, or -1 with e->err set.
 */
static int
list_by_label(struct engine *e, const char *prefix, const char *what, const char *label,
    struct json_object **out)
{
	struct json_object *filt = NULL, *arr;
	struct sink s;
	char path[1536];
	char *esc = NULL;
	int rc = -1;

	*out = NULL;
	memset(&s, 0, sizeof(s));
	s.raw.max = e->body_cap;
	if (label == NULL || *label == '\0') {
		snprintf(e->err, sizeof(e->err), "%s: a label filter is required", what);
		return -1;
	}
	filt = json_object_new_object();
	arr = json_object_new_array();
	if (filt == NULL || arr == NULL) {
		json_object_put(arr);
		snprintf(e->err, sizeof(e->err), "out of memory");
		goto out;
	}
	json_object_array_add(arr, json_object_new_string(label));
	json_object_object_add(filt, "label", arr);
	esc = curl_easy_escape(e->curl, json_object_to_json_string_ext(filt, JSON_C_TO_STRING_PLAIN), 0);
	if (esc == NULL || (size_t)snprintf(path, sizeof(path), "%sfilters=%s", prefix, esc) >=
	                   sizeof(path)) {
		snprintf(e->err, sizeof(e->err), "%s: label too long", what);
		goto out;
	}
	if (call(e, "GET", path, NULL, NULL, 0, 0, &s) != 0)
		goto out;
	if (e->status != 200) {
		set_http_err(e, what, &s.raw);
		goto out;
	}
	*out = s.raw.p ? json_tokener_parse(s.raw.p) : NULL;
	if (*out == NULL) {
		snprintf(e->err, sizeof(e->err), "%s: engine's answer is not JSON", what);
		goto out;
	}
	rc = 0;
out:
	curl_free(esc);
	json_object_put(filt);
	free(s.raw.p);
	return rc;
}
