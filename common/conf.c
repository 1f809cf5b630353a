/*
 * conf.c: the platform's configuration, one flat table of keys parsed from file and environment.
 * Owns struct conf's strings (plain malloc, process lifetime); conf_free releases them.
 */
#include "common/conf.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"

#define O(f) offsetof(struct conf, f)
#define CONF_LINE_MAX 4096

static int set_value(struct conf *c, const struct conf_key *k, const char *val,
    const char *where, char *err, size_t errlen);
static const struct conf_key *find_key(const char *name);
static int load_file(struct conf *c, const char *path, char *err, size_t errlen);
static char *trim(char *s);
static void seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

const struct conf_key conf_keys[] = {
	{ "env", "MOLECULE_ENV", CONF_STR, O(env), 0, 0, "production", 0,
	  "Deployment mode. `development`/`dev` enables the local quickstart hatches (only while no `ADMIN_TOKEN` is set); `production` turns on every fail-closed check." },
	{ "database_url", "DATABASE_URL", CONF_STR, O(database_url), 0, 0,
	  "postgresql:///molecule", 1, "libpq connection URI of the PostgreSQL source of truth." },
	{ "redis_url", "REDIS_URL", CONF_STR, O(redis_url), 0, 0,
	  "redis://127.0.0.1:6379", 1, "Redis for liveness, pub/sub and caches: `redis://host:port[/db]` or `unix:///path/redis.sock`." },
	{ "fcgi_socket", "MOLECULE_FCGI_SOCKET", CONF_STR, O(fcgi_socket), 0, 0,
	  "/run/molecule/api.sock", 0, "Unix socket the API master listens on and nginx forwards to." },
	{ "migrations_dir", "MOLECULE_MIGRATIONS_DIR", CONF_STR, O(migrations_dir), 0, 0,
	  "sql", 0, "Folder of `NNN_name.up.sql` / `.down.sql` migrations." },
	{ "admin_token", "ADMIN_TOKEN", CONF_STR, O(admin_token), 0, 0, "", 1,
	  "Admin bearer token. When set, admin routes require it and development hatches close." },
	{ "log_level", "MOLECULE_LOG_LEVEL", CONF_STR, O(log_level), 0, 0, "info", 0,
	  "`debug`, `info`, `warn` or `error`." },
	{ "bin_dir", "MOLECULE_BIN_DIR", CONF_STR, O(bin_dir), 0, 0, "", 0,
	  "Where the supervisor finds `molecule-api` and the workers; empty = next to `moleculed`." },
	{ "org_id", "MOLECULE_ORG_ID", CONF_STR, O(org_id), 0, 0, "", 0,
	  "Tenant id. When set, TenantGuard answers 404 (empty body) to any request without a matching `X-Molecule-Org-Id` or `Fly-Replay-Src` `state=`, except /health, /metrics, /registry/register and /registry/heartbeat." },
	{ "cors_origins", "CORS_ORIGINS", CONF_STR, O(cors_origins), 0, 0,
	  "http://localhost:3000,http://localhost:3001", 0,
	  "Comma-separated browser origins. nginx enforces CORS with it; the API uses it to recognise canvas clients on the event stream." },
	{ "external_platform_url", "EXTERNAL_PLATFORM_URL", CONF_STR, O(external_platform_url), 0, 0, "", 0,
	  "Platform URL handed to external agents in the `connection` block; empty = derived from the request's Host." },
	{ "nchan_publish_socket", "NCHAN_PUBLISH_SOCKET", CONF_STR, O(nchan_publish_socket), 0, 0,
	  "", 0,
	  "Unix socket of nginx's nchan publisher server (`POST /pub/<channel>`); the broadcaster publishes live events there and refuses to start (exit 2) without one." },
	{ "secrets_encryption_key", "SECRETS_ENCRYPTION_KEY", CONF_STR, O(secrets_encryption_key), 0, 0, "", 1,
	  "Static-key mode: the AES-256 key for secrets, 32 bytes as base64 (44 characters) or 64 hex characters. See docs/security/secrets-key-custody.md." },
	{ "kms_key_arn", "KMS_KEY_ARN", CONF_STR, O(kms_key_arn), 0, 0, "", 0,
	  "Envelope mode: the AWS KMS key (`arn:aws:kms:REGION:ACCOUNT:key/ID`) that wraps a data key per secret. Credentials come from the standard AWS variables." },
	{ "kms_endpoint", "KMS_ENDPOINT", CONF_STR, O(kms_endpoint), 0, 0, "", 0,
	  "Overrides the KMS URL (default `https://kms.REGION.amazonaws.com`), e.g. for a local KMS-compatible endpoint in tests." },
	{ "api_workers", "MOLECULE_API_WORKERS", CONF_INT, O(api_workers), 0, 256, "0", 0,
	  "FastCGI worker processes; 0 = 2 x online cores." },
	{ "max_requests", "MOLECULE_MAX_REQUESTS", CONF_INT, O(max_requests), 0, 100000000, "100000", 0,
	  "A worker exits cleanly after this many requests and is replaced (0 = never)." },
	{ "max_body_bytes", "MOLECULE_MAX_BODY_BYTES", CONF_INT, O(max_body_bytes), 1024, 67108864, "1048576", 0,
	  "Largest JSON request body the API reads; bigger gets 413." },
	{ "arena_cap_bytes", "MOLECULE_ARENA_CAP_BYTES", CONF_INT, O(arena_cap_bytes), 65536, 1073741824, "67108864", 0,
	  "Most memory one request may allocate from its arena." },
	{ "listen_backlog", "MOLECULE_LISTEN_BACKLOG", CONF_INT, O(listen_backlog), 1, 65535, "1024", 0,
	  "listen(2) backlog of the FastCGI socket." },
	{ "heartbeat_interval", "MOLECULE_HEARTBEAT_INTERVAL", CONF_INT, O(heartbeat_interval_s), 1, 3600, "5", 0,
	  "Seconds between liveness heartbeats of every process." },
	{ "stop_timeout", "MOLECULE_STOP_TIMEOUT", CONF_INT, O(stop_timeout_s), 1, 600, "10", 0,
	  "Seconds a child gets after SIGTERM before SIGKILL." },
	{ "db_statement_timeout_ms", "MOLECULE_DB_STATEMENT_TIMEOUT_MS", CONF_INT, O(db_statement_timeout_ms), 100, 3600000, "5000", 0,
	  "PostgreSQL statement_timeout for every API connection." },
	{ "db_connect_timeout", "MOLECULE_DB_CONNECT_TIMEOUT", CONF_INT, O(db_connect_timeout_s), 1, 60, "3", 0,
	  "Seconds to wait for a PostgreSQL connection." },
	{ "redis_timeout_ms", "MOLECULE_REDIS_TIMEOUT_MS", CONF_INT, O(redis_timeout_ms), 10, 60000, "1000", 0,
	  "Connect and command timeout for Redis." },
	{ "enable_test_tokens", "MOLECULE_ENABLE_TEST_TOKENS", CONF_INT, O(enable_test_tokens), 0, 1, "0", 0,
	  "1 = `GET /admin/workspaces/:id/test-token` works even in production (it is always off in production otherwise)." },
	{ "liveness_ttl", "MOLECULE_LIVENESS_TTL", CONF_INT, O(liveness_ttl_s), 10, 86400, "180", 0,
	  "Seconds a workspace stays online in Redis without a heartbeat (`ws:<id>` key TTL)." },
	{ "heartbeat_event_interval", "MOLECULE_HEARTBEAT_EVENT_INTERVAL", CONF_INT, O(heartbeat_event_interval_s), 0, 3600, "5", 0,
	  "Live WORKSPACE_HEARTBEAT events are a snapshot the next one supersedes: at most one per workspace per this many seconds is published and forwarded (0 = every one). Heartbeats themselves are always recorded." },
	{ "kms_cache_ttl", "KMS_DATA_KEY_CACHE_TTL", CONF_INT, O(kms_cache_ttl_s), 0, 86400, "300", 0,
	  "Seconds a decrypted data key stays in memory (never on disk) before KMS is asked again; 0 = no cache." },
	{ "migrate_on_start", "MOLECULE_MIGRATE_ON_START", CONF_INT, O(migrate_on_start), 0, 1, "1", 0,
	  "1 = the supervisor applies pending migrations before starting anything." },
	/* a2a proxy */
	{ "a2a_socket", "MOLECULE_A2A_SOCKET", CONF_STR, O(a2a_socket), 0, 0,
	  "", 0,
	  "Unix socket of the A2A worker pool (`POST /workspaces/:id/a2a`); nginx routes that path here so long agent calls never occupy the API workers (ADR 005). Empty = `a2a.sock` in the folder of `fcgi_socket`." },
	{ "a2a_workers", "MOLECULE_A2A_WORKERS", CONF_INT, O(a2a_workers), 0, 256, "16", 0,
	  "Worker processes of the A2A pool, i.e. A2A calls in flight at once (more wait in the socket backlog); 0 = no separate pool (nginx must then route the A2A path to `fcgi_socket`)." },
	{ "a2a_allow_loopback", "A2A_ALLOW_LOOPBACK", CONF_INT, O(a2a_allow_loopback), 0, 1, "0", 0,
	  "1 = the A2A proxy may reach agents on loopback addresses (local development and tests); every other private-use, link-local and metadata address stays refused." },
	{ "a2a_max_body_bytes", "A2A_MAX_BODY_BYTES", CONF_INT, O(a2a_max_body_bytes), 1024, 67108864, "1048576", 0,
	  "Largest A2A request body the proxy accepts; bigger gets 413." },
	{ "a2a_timeout_default", "A2A_TIMEOUT_DEFAULT", CONF_INT, O(a2a_timeout_default_s), 1, 1800, "300", 0,
	  "Seconds an A2A call through the proxy may take when the request has no `X-Timeout` header." },
	{ "a2a_timeout_max", "A2A_TIMEOUT_MAX", CONF_INT, O(a2a_timeout_max_s), 1, 1800, "1800", 0,
	  "Upper bound in seconds on `X-Timeout` (the reference's 30-minute ceiling); at most 1800, below nginx's read timeout on the A2A path (1860 s)." },
	/* sweeper */
	{ "provision_timeout", "PROVISION_TIMEOUT_SECONDS", CONF_INT, O(provision_timeout_s), 5, 86400, "600", 0,
	  "Seconds a workspace may stay `provisioning` before the sweeper marks it `failed` (WORKSPACE_PROVISION_FAILED). External workspaces waiting for their agent are exempt." },
	{ "health_sweep_interval", "MOLECULE_HEALTH_SWEEP_INTERVAL", CONF_INT, O(health_sweep_interval_s), 1, 3600, "15", 0,
	  "Seconds between container health sweeps: a workspace whose container is gone or stopped goes `offline` and is restarted." },
	{ "orphan_sweep_interval", "MOLECULE_ORPHAN_SWEEP_INTERVAL", CONF_INT, O(orphan_sweep_interval_s), 1, 86400, "60", 0,
	  "Seconds between orphan sweeps: managed containers (label `molecule.platform.managed=true`) of removed or unknown workspaces are removed with their config volume." },
	{ "auto_restart_per_hour", "MOLECULE_AUTO_RESTART_PER_HOUR", CONF_INT, O(auto_restart_per_hour), 0, 1000, "5", 0,
	  "Most automatic restarts the sweeper queues per workspace in a rolling hour (0 = never restart automatically)." },
	/* scheduler */
	{ "scheduler_tick_ms", "SCHEDULER_TICK_MS", CONF_INT, O(scheduler_tick_ms), 10, 3600000, "30000", 0,
	  "Milliseconds between scheduler ticks (monotonic clock). Each tick claims the due schedules and queues their fires in `a2a_queue` for the dispatcher." },
	{ "scheduler_batch", "SCHEDULER_BATCH", CONF_INT, O(scheduler_batch), 1, 100000, "500", 0,
	  "Due schedules claimed per transaction (`FOR UPDATE SKIP LOCKED`); a tick repeats batches until nothing is due." },
	/* dispatcher */
	{ "dispatcher_concurrency", "DISPATCHER_CONCURRENCY", CONF_INT, O(dispatcher_concurrency), 1, 4096, "32", 0,
	  "Most outbound A2A calls (schedule fires, delegations, restart context) one dispatcher has in flight; each target is further held to its `max_concurrent_tasks`." },
	{ "dispatcher_deadline_ms", "DISPATCHER_DEADLINE_MS", CONF_INT, O(dispatcher_deadline_ms), 100, 3600000, "300000", 0,
	  "Upper bound in milliseconds on one outbound A2A call; a queue row's own `deadline_ms` may be shorter. Sent to the agent as `X-Timeout` (seconds)." },
	{ "dispatcher_retries", "DISPATCHER_RETRIES", CONF_INT, O(dispatcher_retries), 1, 100, "5", 0,
	  "Attempts per queued A2A item before it is marked `failed`. Only calls that never reached the agent (connection refused, name not resolved, nothing sent) are retried, with exponential backoff; a timeout or an error answer after the request was sent is final. A 429 or 503 (agent busy) requeues the item without counting an attempt. A row whose lease expires with all its attempts used is marked `failed`." },
	{ "dispatcher_poll_ms", "DISPATCHER_POLL_MS", CONF_INT, O(dispatcher_poll_ms), 10, 60000, "1000", 0,
	  "Milliseconds between queue polls when no NOTIFY arrives (retries coming due, expired leases of a dead dispatcher)." },
	{ "a2a_queue_retention_hours", "A2A_QUEUE_RETENTION_HOURS", CONF_INT, O(a2a_queue_retention_hours), 1, 87600, "168", 0,
	  "Hours finished `a2a_queue` rows (`done`, `failed`, `dropped`) are kept after their last update; the dispatcher deletes older ones, at most 1000 per poll." },
	/* provisioner */
	{ "container_network", "MOLECULE_CONTAINER_NETWORK", CONF_STR, O(container_network), 0, 0, "", 0,
	  "Network of workspace containers: `host` (dev and tests: the agent listens on a free loopback port given as `AGENT_PORT`/`PORT`), another engine network name, or empty = the engine's default network with port 8000 published on 127.0.0.1." },
	{ "platform_url", "PLATFORM_URL", CONF_STR, O(platform_url), 0, 0, "", 0,
	  "URL the workspace containers reach the platform at (`PLATFORM_URL`/`MOLECULE_URL` in their environment); empty = `external_platform_url`. Provisioning fails with a clear message when both are empty." },
	{ "provision_enabled", "MOLECULE_PROVISION", CONF_INT, O(provision_enabled), 0, 1, "1", 0,
	  "0 = the provisioner worker claims no jobs (an API-only host, or tests without a container engine); queued jobs wait for a provisioner that has one." },
	{ "tier1_memory_mb", "TIER1_MEMORY_MB", CONF_INT, O(tier_memory_mb[0]), 16, 1048576, "256", 0,
	  "Memory cap of a tier-1 (read-only root filesystem, no capabilities) workspace container, in MiB." },
	{ "tier1_cpu_shares", "TIER1_CPU_SHARES", CONF_INT, O(tier_cpu_shares[0]), 16, 1048576, "512", 0,
	  "CPU cap of a tier-1 workspace container in the reference's shares: 1024 = one CPU (`NanoCpus = shares * 1e9 / 1024`)." },
	{ "tier2_memory_mb", "TIER2_MEMORY_MB", CONF_INT, O(tier_memory_mb[1]), 16, 1048576, "512", 0,
	  "Memory cap of a tier-2 (standard) workspace container, in MiB." },
	{ "tier2_cpu_shares", "TIER2_CPU_SHARES", CONF_INT, O(tier_cpu_shares[1]), 16, 1048576, "1024", 0,
	  "CPU cap of a tier-2 workspace container in the reference's shares: 1024 = one CPU (`NanoCpus = shares * 1e9 / 1024`)." },
	{ "tier3_memory_mb", "TIER3_MEMORY_MB", CONF_INT, O(tier_memory_mb[2]), 16, 1048576, "2048", 0,
	  "Memory cap of a tier-3 (privileged) workspace container, in MiB." },
	{ "tier3_cpu_shares", "TIER3_CPU_SHARES", CONF_INT, O(tier_cpu_shares[2]), 16, 1048576, "2048", 0,
	  "CPU cap of a tier-3 workspace container in the reference's shares: 1024 = one CPU (`NanoCpus = shares * 1e9 / 1024`)." },
	{ "tier4_memory_mb", "TIER4_MEMORY_MB", CONF_INT, O(tier_memory_mb[3]), 16, 1048576, "4096", 0,
	  "Memory cap of a tier-4 (full host) workspace container, in MiB." },
	{ "tier4_cpu_shares", "TIER4_CPU_SHARES", CONF_INT, O(tier_cpu_shares[3]), 16, 1048576, "4096", 0,
	  "CPU cap of a tier-4 workspace container in the reference's shares: 1024 = one CPU (`NanoCpus = shares * 1e9 / 1024`)." },
	/* container engine */
	{ "docker_host", "DOCKER_HOST", CONF_STR, O(docker_host), 0, 0, "", 0,
	  "Docker Engine API endpoint of the container engine: `unix:///path/to.sock` or `tcp://host:port`; empty = `unix:///var/run/docker.sock`. A Podman `system service` socket works (tests/engine.sh)." },
	{ "docker_cert_path", "DOCKER_CERT_PATH", CONF_STR, O(docker_cert_path), 0, 0, "", 0,
	  "Folder with `ca.pem`, `cert.pem` and `key.pem` for a `tcp://` engine (TLS with client certificates). Without it only a loopback `tcp://` engine is accepted (plain HTTP)." },
	/* images (common/images.c) */
	{ "image_registry", "MOLECULE_IMAGE_REGISTRY", CONF_STR, O(image_registry), 0, 0, "", 0,
	  "Registry mode when set: a runtime's image is `<registry>/workspace-template-<runtime>:latest`, pulled when missing. Empty = local-build mode (images built from the template git repositories, never pulled)." },
	{ "local_template_repo_prefix", "MOLECULE_LOCAL_TEMPLATE_REPO_PREFIX", CONF_STR, O(local_template_repo_prefix), 0, 0,
	  "https://git.moleculesai.app/molecule-ai/molecule-ai-workspace-template-", 0,
	  "Local-build mode: git URL prefix of the template repositories (`<prefix><runtime>`), hosted on Gitea; its API at `<scheme://host>/api/v1` gives the branch head." },
	{ "local_template_branch", "MOLECULE_LOCAL_TEMPLATE_BRANCH", CONF_STR, O(local_template_branch), 0, 0, "main", 0,
	  "Local-build mode: branch of the template repositories whose head commit is built (one Gitea API call per provision)." },
	{ "gitea_token", "MOLECULE_GITEA_TOKEN", CONF_STR, O(gitea_token), 0, 0, "", 1,
	  "Local-build mode: Gitea access token for private template repositories, sent as `Authorization: token ...` to the API and to git (through the environment, never in a command line or URL)." },
	{ "extra_runtimes", "MOLECULE_EXTRA_RUNTIMES", CONF_STR, O(extra_runtimes), 0, 0, "", 0,
	  "Comma-separated runtimes added to the built-in allowlist (langgraph, claude-code, openclaw, deepagents, crewai, autogen, hermes, gemini-cli, codex), e.g. `echo` for the test agent." },
	{ "image_cache_dir", "MOLECULE_IMAGE_CACHE_DIR", CONF_STR, O(image_cache_dir), 0, 0, "", 0,
	  "Local-build mode: where template clones (`<runtime>/<sha>/`) and build logs (`<runtime>/<sha>.build.log`) are kept; empty = `$HOME/.cache/molecule`." },
	{ "image_build_timeout", "MOLECULE_IMAGE_BUILD_TIMEOUT", CONF_INT, O(image_build_timeout_s), 10, 86400, "1200", 0,
	  "Seconds one image build (or registry pull) may take; the git fetch gets at most 120 s of it." },
};
const size_t conf_nkeys = NELEM(conf_keys);

int
conf_load(struct conf *out, const char *path, char *err, size_t errlen)
{
	struct conf c;
	const struct conf_key *k;
	const char *v;
	char where[128];
	size_t i;

	memset(&c, 0, sizeof(c));
	for (i = 0; i < conf_nkeys; i++) {
		k = &conf_keys[i];
		if (set_value(&c, k, k->dflt, "default", err, errlen) < 0)
			goto fail;
	}
	if (path != NULL && load_file(&c, path, err, errlen) < 0)
		goto fail;
	for (i = 0; i < conf_nkeys; i++) {
		k = &conf_keys[i];
		v = getenv(k->env);
		if (v == NULL)
			continue;
		snprintf(where, sizeof(where), "environment %s", k->env);
		if (set_value(&c, k, v, where, err, errlen) < 0)
			goto fail;
	}
	conf_free(out);
	*out = c;
	return 0;
fail:
	conf_free(&c);
	return -1;
}

void
conf_free(struct conf *c)
{
	size_t i;

	if (c == NULL)
		return;
	for (i = 0; i < conf_nkeys; i++) {
		if (conf_keys[i].type == CONF_STR) {
			char **p = (char **)((char *)c + conf_keys[i].offset);
			free(*p);
			*p = NULL;
		}
	}
}

int
conf_is_dev(const struct conf *c)
{
	return c->env != NULL && (strcasecmp(c->env, "development") == 0 ||
	    strcasecmp(c->env, "dev") == 0);
}

int
conf_is_production(const struct conf *c)
{
	return c->env != NULL && (strcasecmp(c->env, "production") == 0 ||
	    strcasecmp(c->env, "prod") == 0);
}

int
conf_api_workers(const struct conf *c)
{
	long n;

	if (c->api_workers > 0)
		return (int)c->api_workers;
	n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (int)(2 * n) : 2;
}

void
conf_write_docs(FILE *f)
{
	size_t i;
	const struct conf_key *k;

	fprintf(f, "| key | environment | type | default | meaning |\n");
	fprintf(f, "|---|---|---|---|---|\n");
	for (i = 0; i < conf_nkeys; i++) {
		k = &conf_keys[i];
		fprintf(f, "| `%s` | `%s` | %s | %s%s%s | %s%s |\n", k->name, k->env,
		    k->type == CONF_INT ? "integer" : "string",
		    k->dflt[0] ? "`" : "", k->dflt[0] ? k->dflt : "(empty)", k->dflt[0] ? "`" : "",
		    k->doc, k->secret ? " Secret: never printed or logged." : "");
	}
}

void
conf_apply_logging(const struct conf *c)
{
	enum log_level lvl;

	if (log_parse_level(c->log_level, &lvl) == 0)
		log_set_level(lvl);
	log_add_secret(c->admin_token);
	log_add_url_password(c->database_url);
	log_add_url_password(c->redis_url);
	log_add_secret(c->gitea_token);
}

void
conf_dump(const struct conf *c, FILE *f)
{
	size_t i;
	const struct conf_key *k;

	for (i = 0; i < conf_nkeys; i++) {
		k = &conf_keys[i];
		if (k->secret)
			fprintf(f, "%s [masked]\n", k->name);
		else if (k->type == CONF_STR)
			fprintf(f, "%s %s\n", k->name, *(char *const *)((const char *)c + k->offset));
		else
			fprintf(f, "%s %lld\n", k->name, (long long)*(const int64_t *)((const char *)c + k->offset));
	}
}

static int
set_value(struct conf *c, const struct conf_key *k, const char *val, const char *where,
    char *err, size_t errlen)
{
	const char *why = NULL;
	int64_t n;

	if (k->type == CONF_STR) {
		char **p = (char **)((char *)c + k->offset);
		free(*p);
		*p = xstrdup(val);
		return 0;
	}
	if (parse_int64(val, k->min, k->max, &n, &why) < 0) {
		seterr(err, errlen, "%s: %s: %s (allowed %lld..%lld)", where, k->name, why,
		    (long long)k->min, (long long)k->max);
		return -1;
	}
	*(int64_t *)((char *)c + k->offset) = n;
	return 0;
}

static const struct conf_key *
find_key(const char *name)
{
	size_t i;

	for (i = 0; i < conf_nkeys; i++)
		if (strcmp(conf_keys[i].name, name) == 0)
			return &conf_keys[i];
	return NULL;
}

static int
load_file(struct conf *c, const char *path, char *err, size_t errlen)
{
	char line[CONF_LINE_MAX], where[256];
	const struct conf_key *k;
	struct stat st;
	char *key, *val;
	FILE *f = NULL;
	int lineno = 0, rc = -1;

	f = fopen(path, "r");
	if (f == NULL) {
		seterr(err, errlen, "%s: cannot open: %s", path, strerror(errno));
		goto out;
	}
	if (fstat(fileno(f), &st) == 0 && (st.st_mode & 077) != 0) {
		/* The file may hold secrets: refuse one that others can read or write. */
		seterr(err, errlen, "%s: mode %03o is too open (want 0600)", path,
		    (unsigned)(st.st_mode & 0777));
		goto out;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		lineno++;
		snprintf(where, sizeof(where), "%s:%d", path, lineno);
		if (strchr(line, '\n') == NULL && !feof(f)) {
			seterr(err, errlen, "%s: line too long", where);
			goto out;
		}
		key = trim(line);
		if (*key == '\0' || *key == '#')
			continue;
		val = key;
		while (*val != '\0' && !isspace((unsigned char)*val))
			val++;
		if (*val != '\0')
			*val++ = '\0';
		val = trim(val);
		k = find_key(key);
		if (k == NULL) {
			seterr(err, errlen, "%s: unknown key \"%s\"", where, key);
			goto out;
		}
		if (set_value(c, k, val, where, err, errlen) < 0)
			goto out;
	}
	rc = 0;
out:
	if (f != NULL)
		fclose(f);
	return rc;
}

static char *
trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

static void
seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}
