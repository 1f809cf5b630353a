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
