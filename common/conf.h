/*
 * conf.h: the platform's configuration, one flat table of keys (nginx ngx_command_t style).
 * Owns struct conf and its strings; values come from defaults, then the file, then the environment.
 */
#ifndef MOLECULE_CONF_H
#define MOLECULE_CONF_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct conf {
	char *env;			/* MOLECULE_ENV: development, production, ... */
	char *database_url;
	char *redis_url;
	char *fcgi_socket;
	char *migrations_dir;
	char *admin_token;
	char *log_level;
	char *bin_dir;
	char *org_id;			/* MOLECULE_ORG_ID: TenantGuard when set */
	char *cors_origins;
	char *external_platform_url;
	char *nchan_publish_socket;	/* nginx's nchan publisher, for the broadcaster */
	char *secrets_encryption_key;	/* static-key mode (crypt.c) */
	char *kms_key_arn;		/* envelope mode */
	char *kms_endpoint;
	int64_t api_workers;		/* 0 = 2 x online cores */
	int64_t max_requests;
	int64_t max_body_bytes;
	int64_t arena_cap_bytes;
	int64_t listen_backlog;
	int64_t heartbeat_interval_s;
	int64_t stop_timeout_s;
	int64_t db_statement_timeout_ms;
	int64_t db_connect_timeout_s;
	int64_t redis_timeout_ms;
	int64_t migrate_on_start;
	int64_t enable_test_tokens;
	int64_t liveness_ttl_s;
	int64_t heartbeat_event_interval_s;
	int64_t kms_cache_ttl_s;
	/* a2a proxy */
	char *a2a_socket;		/* the A2A worker pool's FastCGI socket */
	int64_t a2a_workers;		/* 0 = no separate pool */
	int64_t a2a_allow_loopback;
	int64_t a2a_max_body_bytes;
	int64_t a2a_timeout_default_s;
	int64_t a2a_timeout_max_s;
	/* sweeper */
	int64_t provision_timeout_s;
	int64_t health_sweep_interval_s;
	int64_t orphan_sweep_interval_s;
	int64_t auto_restart_per_hour;
	/* scheduler */
	int64_t scheduler_tick_ms;
	int64_t scheduler_batch;
	/* dispatcher */
	int64_t dispatcher_concurrency;
	int64_t dispatcher_deadline_ms;
	int64_t dispatcher_retries;
	int64_t dispatcher_poll_ms;
	int64_t a2a_queue_retention_hours;
	/* provisioner */
	char *container_network;	/* "host" in dev/tests; empty = port binding on 127.0.0.1 */
	char *platform_url;		/* PLATFORM_URL handed to containers */
	int64_t provision_enabled;	/* 0 = the provisioner leaves provision_jobs alone */
	int64_t tier_memory_mb[4];	/* tiers 1..4: container memory cap */
	int64_t tier_cpu_shares[4];	/* tiers 1..4: 1024 = one CPU */
	/* container engine */
	char *docker_host;		/* DOCKER_HOST: unix:///path or tcp://host:port */
	char *docker_cert_path;		/* DOCKER_CERT_PATH: ca.pem, cert.pem, key.pem for tcp:// */
	/* images (common/images.c) */
	char *image_registry;		/* MOLECULE_IMAGE_REGISTRY: set = registry mode */
	char *local_template_repo_prefix;
	char *local_template_branch;
	char *gitea_token;		/* secret */
	char *extra_runtimes;		/* comma list added to the allowlist */
	char *image_cache_dir;		/* empty = $HOME/.cache/molecule */
	int64_t image_build_timeout_s;
};

enum conf_type { CONF_STR, CONF_INT };

struct conf_key {
	const char *name;	/* key in the file */
	const char *env;	/* environment variable overriding it */
	enum conf_type type;
	size_t offset;
	int64_t min, max;
	const char *dflt;
	int secret;		/* never printed, masked in logs */
	const char *doc;
};

extern const struct conf_key conf_keys[];
extern const size_t conf_nkeys;

/*
 * Loads defaults, then path (may be NULL: no file), then the environment into c.
 * Returns 0, or -1 with a "file:line: reason" message in err. c is left
 * unchanged on failure, so a reload can keep the old configuration.
 */
int conf_load(struct conf *c, const char *path, char *err, size_t errlen);
void conf_free(struct conf *c);
/* 1 when env is development/dev (the local quickstart). */
int conf_is_dev(const struct conf *c);
int conf_is_production(const struct conf *c);
/* Effective number of API workers (resolves 0 to 2 x cores). */
int conf_api_workers(const struct conf *c);
/* Writes the key reference (markdown table) that docs/config.md embeds. */
void conf_write_docs(FILE *f);
/* Applies log_level and registers every secret value for masking (start-up and reload). */
void conf_apply_logging(const struct conf *c);
/* Writes the effective configuration, secrets masked (moleculed -t). */
void conf_dump(const struct conf *c, FILE *f);

#endif
