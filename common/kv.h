/*
 * kv.h: Redis access, one lazily opened hiredis context per process (ephemeral data only).
 * Owns the redisContext; replies returned belong to the caller (freeReplyObject or arena).
 */
#ifndef MOLECULE_KV_H
#define MOLECULE_KV_H

#include <hiredis/hiredis.h>

#include "common/arena.h"
#include "common/conf.h"

/*
 * Parses redis://[:password@]host[:port][/db] or unix:///path[?db=N].
 * Returns 0, or -1 with a reason in err.
 */
struct kv_target {
	char host[256];
	int port;
	char path[256];
	char password[128];
	int db;
};
int kv_parse_url(const char *url, struct kv_target *t, char *err, size_t errlen);

/* Remembers the target; connects on first use. Returns -1 when the URL is invalid. */
/*
 * A private connection to the configured Redis (AUTH and SELECT done, redis_timeout set), for what
 * cannot share the process's context: a subscriber. NULL with the reason in err. Caller redisFrees.
 */
redisContext *kv_open(char *err, size_t errlen);
/* The configured database number (keyspace notification channels name it). */
int kv_db(void);
/* Drops a workspace's liveness key and URL caches (it is going away); best effort, logged. */
void kv_forget_workspace(const char *id);
/* SUBSCRIBE channel on c and check the confirmation. 0, or -1 with the reason in err. */
int kv_subscribe(redisContext *c, const char *channel, char *err, size_t errlen);
/* The payload of one pub/sub "message" on a subscribed context. */
typedef void (*kv_message_fn)(void *arg, const char *payload, size_t len);
/*
 * Hands every pub/sub message already buffered on the subscribed context c to fn (other replies
 * are dropped). Returns 0, or -1 on a protocol error (the context is then unusable).
 */
int kv_drain_messages(redisContext *c, kv_message_fn fn, void *arg);
int kv_configure(const struct conf *c);
/* Returns a usable context, reconnecting after any error, or NULL (logged, rate-limited). */
redisContext *kv_conn(void);
void kv_close(void);
/* In a freshly forked child: drops the parent's context without talking to the server. */
void kv_forget_after_fork(void);
/*
 * Runs one command (hiredis format: %s, %b with length, %lld). Returns the reply, or NULL
 * on a connection error (the context is dropped and reopened next time) or an error reply.
 * With a non-NULL arena the reply is freed at reset; otherwise the caller frees it.
 */
redisReply *kv_command(struct arena *a, const char *fmt, ...);
/*
 * Sends one command without waiting for its reply (fire and forget: liveness SETs on the hot
 * path); the reply is read and dropped before the next command. Returns 0 or -1.
 */
int kv_send(const char *fmt, ...);

#endif
