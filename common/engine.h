/*
 * engine.h: Docker Engine API v1.41 client over libcurl (unix socket or tcp with TLS client certs).
 * Owns one curl handle per struct engine; every call has a connect and a total timeout; not thread-safe.
 */
#ifndef MOLECULE_ENGINE_H
#define MOLECULE_ENGINE_H

#include <stddef.h>

#include <json-c/json.h>

struct engine {                       /* one per process; not thread-safe */
	char host[512];               /* "unix:///path" or "tcp://host:port" */
	char base[600];               /* URL prefix, e.g. "http://d/v1.41" */
	char unix_path[256];
	void *curl;                   /* CURL *, lazily reused between calls */
	char ca[512], cert[512], key[512];   /* TLS files for tcp:// (empty on unix / loopback) */
	int tls;
	long connect_timeout_ms;      /* default 5 s */
	long timeout_ms;              /* default per call: 30 s (builds/pulls take their own, longer) */
	size_t body_cap;              /* response body cap, default 8 MiB */
	long status;                  /* HTTP status of the last call (0 = transport error) */
	char err[512];                /* last error: engine's own "message" when it gave one */
};
enum engine_state { ENGINE_MISSING, ENGINE_STOPPED, ENGINE_RUNNING, ENGINE_PAUSED };
typedef void (*engine_line_fn)(void *arg, const char *line);   /* one decoded progress/log line */
typedef int (*engine_each_fn)(void *arg, const char *id, const char *name, struct json_object *labels);

/* docker_host NULL or "" = unix:///var/run/docker.sock. tcp:// needs DOCKER_CERT_PATH certs unless loopback. */
int  engine_init(struct engine *e, const char *docker_host, const char *cert_path, char *err, size_t errlen);
void engine_cleanup(struct engine *e);
int  engine_ping(struct engine *e);
int  engine_volume_create(struct engine *e, const char *name, struct json_object *labels /* may be NULL */);
int  engine_volume_remove(struct engine *e, const char *name);              /* 0 when already gone */
/* body = the ContainerCreate JSON (Image, Env, Labels, HostConfig...); id_out gets the new id */
int  engine_container_create(struct engine *e, const char *name, struct json_object *body, char *id_out, size_t idlen);
int  engine_container_start(struct engine *e, const char *name_or_id);
int  engine_container_stop(struct engine *e, const char *name_or_id, int timeout_s);
int  engine_container_remove(struct engine *e, const char *name_or_id);     /* force=1; 0 when already gone */
int  engine_container_pause(struct engine *e, const char *name_or_id);
int  engine_container_unpause(struct engine *e, const char *name_or_id);
int  engine_container_kill(struct engine *e, const char *name_or_id, const char *signal);
int  engine_container_state(struct engine *e, const char *name_or_id, enum engine_state *st);  /* -1 only on engine error */
/* every container (all=1) carrying label "k=v"; fn returning -1 stops the walk */
int  engine_container_list(struct engine *e, const char *label, engine_each_fn fn, void *arg);
/* every volume carrying label "k=v"; fn gets the volume name as both id and name */
int  engine_volume_list(struct engine *e, const char *label, engine_each_fn fn, void *arg);
int  engine_archive_put(struct engine *e, const char *name_or_id, const char *path, const void *tar, size_t len);
/* last `tail` lines of stdout+stderr, demultiplexed, malloc'd NUL-terminated into *out */
int  engine_container_logs(struct engine *e, const char *name_or_id, int tail, char **out);
int  engine_image_exists(struct engine *e, const char *ref);               /* 1, 0, or -1 */
int  engine_image_pull(struct engine *e, const char *ref, engine_line_fn fn, void *arg, long timeout_ms);
/* POST /build?t=tag&platform=... with a tar context; streams "stream" lines to fn; an {"error"} line fails it */
int  engine_build(struct engine *e, const char *tag, const char *platform, const void *tar, size_t len,
                  engine_line_fn fn, void *arg, long timeout_ms);
const char *engine_error(const struct engine *e);

#endif
