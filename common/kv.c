/*
 * kv.c: Redis access, one lazily opened hiredis context per process (ephemeral data only).
 * Owns the redisContext (process lifetime); a context with c->err is never reused (hiredis 0.14).
 */
#include "common/kv.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"

static void free_reply(void *p);
static redisContext *connect_target(void);
static int drain_pending(redisContext *c);

static redisContext *ctx;
static struct kv_target target;
static int configured;
static struct timeval timeout;
static int64_t last_complaint_ms;
static int pending_replies;	/* sent by kv_send, not read yet */

int
kv_parse_url(const char *url, struct kv_target *t, char *err, size_t errlen)
{
	const char *p, *at, *colon, *slash;
	int64_t n;
	const char *why;
	char buf[32];

	memset(t, 0, sizeof(*t));
	t->port = 6379;
	if (str_has_prefix(url, "unix://")) {
		p = url + strlen("unix://");
		snprintf(t->path, sizeof(t->path), "%.*s", (int)strcspn(p, "?"), p);
		if (t->path[0] != '/') {
			snprintf(err, errlen, "redis url: unix socket path must be absolute");
			return -1;
		}
		p = strstr(p, "?db=");
		if (p != NULL && parse_int64(p + 4, 0, 15, &n, &why) == 0)
			t->db = (int)n;
		return 0;
	}
	if (!str_has_prefix(url, "redis://")) {
		snprintf(err, errlen, "redis url: want redis:// or unix://");
		return -1;
	}
	p = url + strlen("redis://");
	at = strchr(p, '@');
	if (at != NULL) {
		const char *pw = memchr(p, ':', (size_t)(at - p));
		pw = pw ? pw + 1 : p;
		snprintf(t->password, sizeof(t->password), "%.*s", (int)(at - pw), pw);
		p = at + 1;
	}
	slash = strchr(p, '/');
	colon = strchr(p, ':');
	if (colon != NULL && (slash == NULL || colon < slash)) {
		snprintf(t->host, sizeof(t->host), "%.*s", (int)(colon - p), p);
		snprintf(buf, sizeof(buf), "%.*s", (int)(slash ? slash - colon - 1 : (long)strlen(colon + 1)), colon + 1);
		if (parse_int64(buf, 1, 65535, &n, &why) < 0) {
			snprintf(err, errlen, "redis url: port %s", why);
			return -1;
		}
		t->port = (int)n;
	} else {
		snprintf(t->host, sizeof(t->host), "%.*s", (int)(slash ? slash - p : (long)strlen(p)), p);
	}
	if (t->host[0] == '\0')
		snprintf(t->host, sizeof(t->host), "127.0.0.1");
	if (slash != NULL && slash[1] != '\0') {
		if (parse_int64(slash + 1, 0, 15, &n, &why) < 0) {
			snprintf(err, errlen, "redis url: database %s", why);
			return -1;
		}
		t->db = (int)n;
	}
	return 0;
}

int
kv_configure(const struct conf *c)
{
	char err[128];

	if (kv_parse_url(c->redis_url, &target, err, sizeof(err)) < 0) {
		log_err("%s", err);
		return -1;
	}
	if (target.password[0] != '\0')
		log_add_secret(target.password);
	timeout.tv_sec = c->redis_timeout_ms / 1000;
	timeout.tv_usec = (c->redis_timeout_ms % 1000) * 1000;
	configured = 1;
	kv_close();
	return 0;
}

redisContext *
kv_conn(void)
{
	if (ctx != NULL && ctx->err == 0)
		return ctx;
	kv_close();
	if (!configured)
		return NULL;
	ctx = connect_target();
	return ctx;
}

void
kv_close(void)
{
	if (ctx != NULL)
		redisFree(ctx);
	ctx = NULL;
	pending_replies = 0;
}

void
kv_forget_after_fork(void)
{
	/* redisFree only closes our copy of the socket; the parent's session is untouched. */
	kv_close();
}

redisReply *
kv_command(struct arena *a, const char *fmt, ...)
{
	redisContext *c = kv_conn();
	redisReply *r;
	va_list ap;

	if (c == NULL || drain_pending(c) < 0)
		return NULL;
	va_start(ap, fmt);
	r = redisvCommand(c, fmt, ap);
	va_end(ap);
	if (r == NULL) {
		log_warn("redis command failed: %s", c->errstr);
		kv_close();
		return NULL;
	}
	if (r->type == REDIS_REPLY_ERROR) {
		log_warn("redis error reply: %s", r->str);
		freeReplyObject(r);
		return NULL;
	}
	if (a != NULL && arena_on_reset(a, free_reply, r) < 0)
		return NULL;
	return r;
}

int
kv_send(const char *fmt, ...)
{
	redisContext *c = kv_conn();
	va_list ap;
	int done = 0, rc;

	if (c == NULL || drain_pending(c) < 0)
		return -1;
	va_start(ap, fmt);
	rc = redisvAppendCommand(c, fmt, ap);
	va_end(ap);
	while (rc == REDIS_OK && !done)
		rc = redisBufferWrite(c, &done);
	if (rc != REDIS_OK) {
		log_warn("redis send failed: %s", c->errstr);
		kv_close();
		return -1;
	}
	pending_replies++;
	return 0;
}

/* Reads the replies of earlier kv_send calls (long arrived by now), so replies stay paired. */
static int
drain_pending(redisContext *c)
{
	void *reply = NULL;

	while (pending_replies > 0) {
		if (redisGetReply(c, &reply) != REDIS_OK) {
			log_warn("redis reply failed: %s", c->errstr);
			kv_close();
			return -1;
		}
		if (((redisReply *)reply)->type == REDIS_REPLY_ERROR)
			log_warn("redis error reply: %s", ((redisReply *)reply)->str);
		freeReplyObject(reply);
		pending_replies--;
	}
	return 0;
}

static redisContext *
connect_target(void)
{
	char err[256];
	redisContext *c = kv_open(err, sizeof(err));
	int64_t now = now_mono_ms();

	/* One complaint per 10 s: a Redis outage must not flood the logs. */
	if (c == NULL && now - last_complaint_ms > 10000) {
		log_warn("%s", err);
		last_complaint_ms = now;
	}
	return c;
}

redisContext *
kv_open(char *err, size_t errlen)
{
	const struct kv_target *t = &target;
	struct timeval tmo = timeout;
	redisContext *c;
	redisReply *r = NULL;

	if (!configured) {
		snprintf(err, errlen, "redis is not configured");
		return NULL;
	}

	if (t->path[0] != '\0')
		c = redisConnectUnixWithTimeout(t->path, tmo);
	else
		c = redisConnectWithTimeout(t->host, t->port, tmo);
	if (c == NULL || c->err) {
		snprintf(err, errlen, "redis connect failed: %s", c ? c->errstr : "out of memory");
		if (c != NULL)
			redisFree(c);
		return NULL;
	}
	redisSetTimeout(c, tmo);
	if (t->password[0] != '\0') {
		r = redisCommand(c, "AUTH %s", t->password);
		if (r == NULL || r->type == REDIS_REPLY_ERROR)
			goto fail;
		freeReplyObject(r);
		r = NULL;
	}
	if (t->db != 0) {
		r = redisCommand(c, "SELECT %d", t->db);
		if (r == NULL || r->type == REDIS_REPLY_ERROR)
			goto fail;
		freeReplyObject(r);
	}
	return c;
fail:
	snprintf(err, errlen, "redis handshake failed: %s", c->err ? c->errstr : "refused");
	freeReplyObject(r);
	redisFree(c);
	return NULL;
}

int
kv_db(void)
{
	return target.db;
}

void
kv_forget_workspace(const char *id)
{
	/* Liveness and the URL caches the registry and the provisioner write; best effort. */
	redisReply *r = kv_command(NULL, "DEL ws:%s ws:%s:url ws:%s:internal_url", id, id, id);

	if (r == NULL)
		log_warn("workspace %s: redis keys not cleared", id);
	freeReplyObject(r);
}

int
kv_drain_messages(redisContext *c, kv_message_fn fn, void *arg)
{
	redisReply *kind, *payload;
	void *reply = NULL;
	redisReply *r;

	for (;;) {
		if (redisGetReplyFromReader(c, &reply) != REDIS_OK)
			return -1;
		if (reply == NULL)
			return 0;
		r = reply;
		/* ["message", channel, payload] */
		if (r->type == REDIS_REPLY_ARRAY && r->elements == 3) {
			kind = r->element[0];
			payload = r->element[2];
			if (kind->type == REDIS_REPLY_STRING && strcmp(kind->str, "message") == 0 &&
			    payload->type == REDIS_REPLY_STRING)
				fn(arg, payload->str, payload->len);
		}
		freeReplyObject(reply);
		reply = NULL;
	}
}

int
kv_subscribe(redisContext *c, const char *channel, char *err, size_t errlen)
{
	redisReply *r = redisCommand(c, "SUBSCRIBE %s", channel);
	int ok = r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 3;

	if (!ok)
		snprintf(err, errlen, "redis subscribe to %s failed: %s", channel,
		    c->err ? c->errstr : "unexpected reply");
	freeReplyObject(r);
	return ok ? 0 : -1;
}

static void
free_reply(void *p)
{
	freeReplyObject(p);
}
