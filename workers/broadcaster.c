/*
 * broadcaster.c: relays each live event on Redis (EVENTS_CHANNEL) to this host's nchan channels.
 * Owns its subscribed redisContext, the curl handle to the publish socket and the per-event arena.
 */
#include <sys/time.h>
#include <sys/un.h>

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <hiredis/hiredis.h>

#include "common/access.h"
#include "common/arena.h"
#include "common/conf.h"
#include "common/db.h"
#include "common/events.h"
#include "common/jsonx.h"
#include "common/kv.h"
#include "common/liveness.h"
#include "common/log.h"
#include "common/sig.h"
#include "common/proc.h"
#include "common/util.h"

#define NAME "broadcaster"
#define RECONNECT_MIN_MS 100
#define RECONNECT_MAX_MS 5000
#define COMPLAIN_EVERY_MS 10000
/* nchan refuses a channel id list longer than nchan_max_channel_id_length (1024). */
#define CHANNELS_MAX_LEN 1000
#define PUBLISH_TIMEOUT_MS 2000
#define PUBLISH_CONNECT_TIMEOUT_MS 1000
#define EVENT_ARENA_CAP (16 * 1024 * 1024)
/* After a database outage, events go to their own workspace only for this long. */
#define DB_RETRY_MS 5000

/* Comma-joined channel ids, flushed to nchan when the next one would not fit. */
struct channel_list {
	char buf[CHANNELS_MAX_LEN + 1];
	size_t len;
	const char *body;
	size_t body_len;
};

/*
 * WORKSPACE_HEARTBEAT is a snapshot that the next one supersedes, and the canvas ignores it:
 * at most one per workspace per heartbeat_event_interval is forwarded (a direct-mapped cache;
 * a collision only lets an extra one through).
 */
#define HEARTBEAT_SLOTS 4096
struct hb_slot {
	char id[40];
	int64_t sent_ms;
};

struct bc {
	struct conf conf;
	const char *conf_path;
	const char *nchan_socket;
	int restarts;
	redisContext *sub;		/* subscribed: no other command may run on it */
	int64_t next_connect_ms;
	int64_t reconnect_ms;
	int64_t next_beat_ms;
	int64_t last_complaint_ms;
	int64_t db_retry_ms;
	CURL *curl;
	struct curl_slist *headers;
	char curl_err[CURL_ERROR_SIZE];
	struct arena arena;
	unsigned long relayed;
	unsigned long coalesced;
	struct hb_slot hb[HEARTBEAT_SLOTS];
};

static void setup(struct bc *b, int argc, char **argv);
static void run(struct bc *b, const sigset_t *none);
static void beat(struct bc *b, int64_t now);
static int subscribe(struct bc *b);
static void drop_subscriber(struct bc *b, const char *why);
static int read_replies(struct bc *b);
static int drain_replies(struct bc *b);
static void on_message(void *arg, const char *payload, size_t len);
static void relay(struct bc *b, const char *envelope, size_t len);
static int heartbeat_superseded(struct bc *b, const char *workspace_id);
static int add_audience(struct bc *b, struct channel_list *cl, const char *workspace_id);
static char *sse_form(struct bc *b, struct json_object *env, const char *type, size_t *len);
static int64_t envelope_ms(const char *ts);
static int publish(struct bc *b, const char *channels, const char *body, size_t len);
static size_t discard_body(char *ptr, size_t size, size_t nmemb, void *userdata);
static void cl_init(struct channel_list *cl, const char *body, size_t len);
static void cl_add(struct bc *b, struct channel_list *cl, const char *prefix, const char *id);
static void cl_flush(struct bc *b, struct channel_list *cl);
static void complain(struct bc *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void usage(void);


static const int bc_signals[] = { SIGTERM, SIGINT };
static const int bc_ignored[] = { SIGHUP };

int
main(int argc, char **argv)
{
	struct bc b;
	sigset_t blocked, none;

	memset(&b, 0, sizeof(b));
	log_set_name(NAME);
	setup(&b, argc, argv);
	sig_setup(bc_signals, NELEM(bc_signals), bc_ignored, NELEM(bc_ignored), &blocked);
	sigemptyset(&none);
	log_info("relaying %s to nchan at %s", EVENTS_CHANNEL, b.nchan_socket);
	run(&b, &none);
	log_info("stopped after relaying %lu events", b.relayed);
	if (b.sub != NULL)
		redisFree(b.sub);
	curl_slist_free_all(b.headers);
	curl_easy_cleanup(b.curl);
	curl_global_cleanup();
	arena_cleanup(&b.arena);
	db_close();
	kv_close();
	conf_free(&b.conf);
	return 0;
}

/* Configuration, Redis target, nchan socket and the curl handle; a bad config exits 2. */
static void
setup(struct bc *b, int argc, char **argv)
{
	struct sockaddr_un sun;
	char err[512];
	const char *rs;
	int opt;

	while ((opt = getopt(argc, argv, "c:h")) != -1) {
		switch (opt) {
		case 'c': b->conf_path = optarg; break;
		default: usage();
		}
	}
	if (conf_load(&b->conf, b->conf_path, err, sizeof(err)) < 0)
		fatal("configuration: %s", err);
	conf_apply_logging(&b->conf);
	if (kv_configure(&b->conf) < 0)
		fatal("configuration: invalid redis_url");
	db_configure(&b->conf);
	b->nchan_socket = b->conf.nchan_publish_socket;
	if (b->nchan_socket[0] != '/')
		fatal("configuration: NCHAN_PUBLISH_SOCKET must be an absolute unix socket path");
	if (strlen(b->nchan_socket) >= sizeof(sun.sun_path))
		fatal("configuration: NCHAN_PUBLISH_SOCKET is too long for a unix socket");
	rs = getenv("MOLECULE_RESTARTS");
	b->restarts = rs ? atoi(rs) : 0;
	arena_init(&b->arena, EVENT_ARENA_CAP);
	b->reconnect_ms = RECONNECT_MIN_MS;

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		fatal("curl_global_init failed");
	b->curl = curl_easy_init();
	b->headers = curl_slist_append(NULL, "Content-Type: application/json");
	if (b->headers != NULL)
		b->headers = curl_slist_append(b->headers, "Expect:");
	if (b->curl == NULL || b->headers == NULL)
		fatal("out of memory");
	/* One handle for the process: the connection to nginx is kept alive between events. */
	curl_easy_setopt(b->curl, CURLOPT_UNIX_SOCKET_PATH, b->nchan_socket);
	curl_easy_setopt(b->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(b->curl, CURLOPT_TIMEOUT_MS, (long)PUBLISH_TIMEOUT_MS);
	curl_easy_setopt(b->curl, CURLOPT_CONNECTTIMEOUT_MS, (long)PUBLISH_CONNECT_TIMEOUT_MS);
	curl_easy_setopt(b->curl, CURLOPT_PROTOCOLS_STR, "http");
	curl_easy_setopt(b->curl, CURLOPT_HTTPHEADER, b->headers);
	curl_easy_setopt(b->curl, CURLOPT_WRITEFUNCTION, discard_body);
	curl_easy_setopt(b->curl, CURLOPT_ERRORBUFFER, b->curl_err);
}

/*
 * The loop: beat, (re)subscribe with backoff, wait for the subscriber socket until the next
 * beat or reconnect is due. poll() before reading means an idle channel never times out.
 */
static void
run(struct bc *b, const sigset_t *none)
{
	struct pollfd pfd;
	struct timespec ts;
	int64_t now, wake;
	int n;

	while (!sig_term) {
		now = now_mono_ms();
		beat(b, now);
		if (b->sub == NULL && now >= b->next_connect_ms && subscribe(b) < 0) {
			b->next_connect_ms = now + b->reconnect_ms;
			b->reconnect_ms = b->reconnect_ms * 2 > RECONNECT_MAX_MS ?
			    RECONNECT_MAX_MS : b->reconnect_ms * 2;
		}
		wake = b->next_beat_ms;
		if (b->sub == NULL && b->next_connect_ms < wake)
			wake = b->next_connect_ms;
		now = now_mono_ms();
		wake = wake > now ? wake - now : 0;
		ts.tv_sec = (time_t)(wake / 1000);
		ts.tv_nsec = (long)(wake % 1000) * 1000000L;
		if (b->sub == NULL) {
			ppoll(NULL, 0, &ts, none);
			continue;
		}
		pfd.fd = b->sub->fd;
		pfd.events = POLLIN;
		pfd.revents = 0;
		n = ppoll(&pfd, 1, &ts, none);
		if (n < 0 && errno != EINTR) {
			drop_subscriber(b, strerror(errno));
			continue;
		}
		if (n > 0 && read_replies(b) < 0)
			drop_subscriber(b, b->sub->errstr[0] ? b->sub->errstr : "connection closed");
	}
}

/* liveness every heartbeat_interval, idle or not; Redis down only delays the next one. */
static void
beat(struct bc *b, int64_t now)
{
	if (now < b->next_beat_ms)
		return;
	liveness_beat(NAME, getpid(), b->restarts);
	b->next_beat_ms = now + b->conf.heartbeat_interval_s * 1000;
}

/*
 * Opens a context of our own (a subscribed context cannot run commands, so not kv_conn),
 * authenticates and subscribes. Returns 0, or -1 with the context closed.
 */
static int
subscribe(struct bc *b)
{
	char err[256];
	redisContext *c = kv_open(err, sizeof(err));

	if (c == NULL || kv_subscribe(c, EVENTS_CHANNEL, err, sizeof(err)) < 0) {
		complain(b, "%s", err);
		if (c != NULL)
			redisFree(c);
		return -1;
	}
	/* redis_timeout bounds a half-received message; waiting for the next one is poll's business. */
	b->sub = c;
	b->reconnect_ms = RECONNECT_MIN_MS;
	log_info("subscribed to %s", EVENTS_CHANNEL);
	/* Messages that arrived with the confirmation are buffered already: poll would not see them. */
	if (drain_replies(b) < 0) {
		drop_subscriber(b, c->errstr[0] ? c->errstr : "protocol error");
		return -1;
	}
	return 0;
}

/* hiredis 0.14: a context with an error is never reused; the loop reconnects with backoff. */
static void
drop_subscriber(struct bc *b, const char *why)
{
	log_warn("lost the redis subscription: %s; reconnecting", why);
	redisFree(b->sub);
	b->sub = NULL;
	b->reconnect_ms = RECONNECT_MIN_MS;
	b->next_connect_ms = now_mono_ms() + b->reconnect_ms;
}

/* One read (poll said readable), then every complete reply now buffered. Returns 0 or -1. */
static int
read_replies(struct bc *b)
{
	if (redisBufferRead(b->sub) != REDIS_OK)
		return -1;
	return drain_replies(b);
}

static int
drain_replies(struct bc *b)
{
	return kv_drain_messages(b->sub, on_message, b);
}

static void
on_message(void *arg, const char *payload, size_t len)
{
	struct bc *b = arg;

	relay(b, payload, len);
	arena_reset(&b->arena);
	b->relayed++;
}

/*
 * One envelope to every channel that should see it: "canvas" (all), ws-<id> for each workspace
 * in the event's audience (its own only while the audience query fails), and the SSE form on
 * sse-<id> for the event's own workspace. The envelope is forwarded byte for byte.
 */
static void
relay(struct bc *b, const char *envelope, size_t len)
{
	struct json_object *env = jsonx_own(&b->arena, jsonx_parse(envelope, len));
	struct json_object *v;
	struct channel_list cl;
	const char *type, *ws = NULL;
	char *sse;
	size_t sse_len;

	if (env == NULL || !json_object_is_type(env, json_type_object) ||
	    !json_object_object_get_ex(env, "event", &v) || !json_object_is_type(v, json_type_string)) {
		log_warn("dropping a malformed event envelope (%zu bytes)", len);
		return;
	}
	type = json_object_get_string(v);
	if (json_object_object_get_ex(env, "workspace_id", &v) && json_object_is_type(v, json_type_string) &&
	    is_lower_uuid(json_object_get_string(v)))
		ws = json_object_get_string(v);

	if (ws != NULL && strcmp(type, "WORKSPACE_HEARTBEAT") == 0 && heartbeat_superseded(b, ws)) {
		b->coalesced++;
		return;
	}
	cl_init(&cl, envelope, len);
	cl_add(b, &cl, "", "canvas");
	/*
	 * Heartbeats are most of all events and only the canvas and the agent itself act on them:
	 * they skip the audience query and the fan-out to every peer.
	 */
	if (ws != NULL && (strcmp(type, "WORKSPACE_HEARTBEAT") == 0 || add_audience(b, &cl, ws) < 0))
		cl_add(b, &cl, "ws-", ws);
	cl_flush(b, &cl);
	if (ws == NULL)
		return;
	sse = sse_form(b, env, type, &sse_len);
	if (sse == NULL)
		return;
	cl_init(&cl, sse, sse_len);
	cl_add(b, &cl, "sse-", ws);
	cl_flush(b, &cl);
}

/* 1 when a heartbeat event of this workspace went out less than the window ago. */
static int
heartbeat_superseded(struct bc *b, const char *workspace_id)
{
	uint64_t h;
	struct hb_slot *s;
	int64_t now = now_mono_ms();

	h = hash_str(workspace_id);
	s = &b->hb[h % HEARTBEAT_SLOTS];
	if (b->conf.heartbeat_event_interval_s == 0)
		return 0;
	if (strcmp(s->id, workspace_id) == 0 &&
	    now - s->sent_ms < b->conf.heartbeat_event_interval_s * 1000)
		return 1;
	snprintf(s->id, sizeof(s->id), "%s", workspace_id);
	s->sent_ms = now;
	return 0;
}

/* Adds ws-<id> for the audience of workspace_id. Returns 0, or -1 when it is unknown. */
static int
add_audience(struct bc *b, struct channel_list *cl, const char *workspace_id)
{
	const char **ids = NULL;
	int64_t now = now_mono_ms();
	int n, i, self = 0;

	if (now < b->db_retry_ms)
		return -1;
	n = access_audience(&b->arena, workspace_id, &ids);
	if (n < 0) {
		/* Each event would otherwise wait out a connect timeout while Redis queues the rest. */
		if (db_unavailable())
			b->db_retry_ms = now + DB_RETRY_MS;
		return -1;
	}
	for (i = 0; i < n; i++) {
		if (ids[i] == NULL || !is_lower_uuid(ids[i]))
			continue;
		if (strcmp(ids[i], workspace_id) == 0)
			self = 1;
		cl_add(b, cl, "ws-", ids[i]);
	}
	/* A workspace always hears its own events, even one the audience query no longer sees. */
	if (!self)
		cl_add(b, cl, "ws-", workspace_id);
	return 0;
}

/* The reference's SSE data: {"type":<event>,"timestamp":<unix ms>,"data":<payload>}. */
static char *
sse_form(struct bc *b, struct json_object *env, const char *type, size_t *len)
{
	struct json_object *out, *v, *payload = NULL;
	const char *ts = NULL, *s;

	if (json_object_object_get_ex(env, "timestamp", &v) && json_object_is_type(v, json_type_string))
		ts = json_object_get_string(v);
	json_object_object_get_ex(env, "payload", &payload);
	out = jsonx_own(&b->arena, json_object_new_object());
	if (out == NULL)
		return NULL;
	json_object_object_add(out, "type", json_object_new_string(type));
	json_object_object_add(out, "timestamp", json_object_new_int64(envelope_ms(ts)));
	json_object_object_add(out, "data", payload ? json_object_get(payload) : json_object_new_object());
	s = jsonx_dump(out, len);
	return s ? arena_strndup(&b->arena, s, *len) : NULL;
}

/* "2026-11-22T07:30:00.123456Z" as Unix milliseconds; now when absent or unparsable. */
static int64_t
envelope_ms(const char *ts)
{
	struct tm tm;
	const char *p;
	int64_t ms = 0, scale = 100;

	if (ts == NULL)
		return now_wall_ms();
	memset(&tm, 0, sizeof(tm));
	p = strptime(ts, "%Y-%m-%dT%H:%M:%S", &tm);
	if (p == NULL)
		return now_wall_ms();
	if (*p == '.') {
		for (p++; *p >= '0' && *p <= '9'; p++) {
			ms += (*p - '0') * scale;
			scale /= 10;
		}
	}
	if (*p != 'Z' || p[1] != '\0')
		return now_wall_ms();
	return (int64_t)timegm(&tm) * 1000 + ms;
}

static void
cl_init(struct channel_list *cl, const char *body, size_t len)
{
	cl->len = 0;
	cl->buf[0] = '\0';
	cl->body = body;
	cl->body_len = len;
}

static void
cl_add(struct bc *b, struct channel_list *cl, const char *prefix, const char *id)
{
	size_t need = strlen(prefix) + strlen(id) + (cl->len > 0);

	if (cl->len + need > CHANNELS_MAX_LEN)
		cl_flush(b, cl);
	if (need > CHANNELS_MAX_LEN)
		return;
	cl->len += (size_t)snprintf(cl->buf + cl->len, sizeof(cl->buf) - cl->len, "%s%s%s",
	    cl->len > 0 ? "," : "", prefix, id);
}

static void
cl_flush(struct bc *b, struct channel_list *cl)
{
	if (cl->len == 0)
		return;
	publish(b, cl->buf, cl->body, cl->body_len);
	cl->len = 0;
	cl->buf[0] = '\0';
}

/*
 * POST /pub/<ch1,ch2,...> on the nchan socket (nchan_channel_id_split_delimiter ",").
 * Live delivery is best effort: the event is durable in structure_events already.
 * Returns 0, or -1 with a (rate-limited) warning.
 */
static int
publish(struct bc *b, const char *channels, const char *body, size_t len)
{
	char url[CHANNELS_MAX_LEN + 64];
	long code = 0;
	CURLcode rc;

	snprintf(url, sizeof(url), "http://localhost/pub/%s", channels);
	b->curl_err[0] = '\0';
	curl_easy_setopt(b->curl, CURLOPT_URL, url);
	curl_easy_setopt(b->curl, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(b->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	rc = curl_easy_perform(b->curl);
	if (rc != CURLE_OK) {
		complain(b, "nchan publish failed: %s", b->curl_err[0] ? b->curl_err : curl_easy_strerror(rc));
		return -1;
	}
	curl_easy_getinfo(b->curl, CURLINFO_RESPONSE_CODE, &code);
	if (code < 200 || code > 299) {
		complain(b, "nchan publish answered %ld", code);
		return -1;
	}
	return 0;
}

/* nchan answers with channel statistics; nothing to keep. */
static size_t
discard_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	UNUSED(ptr);
	UNUSED(userdata);
	return size * nmemb;
}

/* One warning per COMPLAIN_EVERY_MS: an outage must not flood the log. */
static void
complain(struct bc *b, const char *fmt, ...)
{
	int64_t now = now_mono_ms();
	char msg[512];
	va_list ap;

	if (b->last_complaint_ms != 0 && now - b->last_complaint_ms < COMPLAIN_EVERY_MS)
		return;
	b->last_complaint_ms = now;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_warn("%s", msg);
}

static void
usage(void)
{
	fprintf(stderr, "usage: molecule-broadcaster [-c config]\n");
	exit(PROC_EXIT_FATAL);
}
