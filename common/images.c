/*
 * images.c: decides and provides the image of a runtime: registry pull, or local build from Gitea.
 * Owns the clone cache under image_cache_dir (<runtime>/<sha>/ and <runtime>/<sha>.build.log); never the engine.
 */
#include "common/images.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "common/arena.h"
#include "common/db.h"
#include "common/gitea.h"
#include "common/log.h"
#include "common/spawn.h"
#include "common/tar.h"
#include "common/util.h"

#define GITEA_CONNECT_MS 5000L
#define GITEA_TIMEOUT_MS 15000L
#define GIT_TIMEOUT_MS (IMAGES_GIT_BUDGET_S * 1000L / 3)
#define CONTEXT_CAP ((size_t)512 * 1024 * 1024)
#define LOG_EVENT_MS 200
#define LOG_BATCH_CAP 4096
#define LOCK_POLL_MS 250

static const char *const builtin_runtimes[] = {
	"langgraph", "claude-code", "openclaw", "deepagents", "crewai", "autogen", "hermes",
	"gemini-cli", "codex", NULL
};

struct body { char *buf; size_t len; int over; };

/* What one build needs: identity, where its log goes, and the rate limiter of IMAGE_BUILD_LOG. */
struct build {
	const struct conf *c;
	const char *runtime;
	images_event_fn ev;
	void *arg;
	FILE *log;
	char batch[LOG_BATCH_CAP];
	size_t batch_len;
	int64_t last_emit_ms;
};

struct repo_url {
	char display[600];		/* prefix+runtime without any userinfo: safe for messages */
	char git[600];			/* what git fetches */
	char api_base[600];		/* scheme://host[/subpath]/api/v1/repos/<owner>/<repo> */
};

static int lock_with_db = 1;

static int valid_name(const char *s, size_t max);
static int valid_branch(const char *s);
static int list_has(const char *list, const char *name);
static void emit(images_event_fn ev, void *arg, const char *type, struct json_object *payload);
static void emit_error(images_event_fn ev, void *arg, const char *type, const char *runtime, const char *msg);
static int ensure_registry(struct engine *e, const struct conf *c, const char *prefix, const char *runtime,
    images_event_fn ev, void *arg, char *ref, size_t reflen, char *err, size_t errlen);
static int ensure_local(struct engine *e, const struct conf *c, const char *prefix, const char *runtime,
    images_event_fn ev, void *arg, char *ref, size_t reflen, char *err, size_t errlen);
static int split_repo_url(const char *prefix, const char *runtime, struct repo_url *u, char *err, size_t errlen);
static int gitea_get(const struct conf *c, const char *url, struct body *b, long *status, char *err, size_t errlen);
static size_t body_write(char *p, size_t size, size_t n, void *arg);
static int gitea_branch_sha(const struct conf *c, const struct repo_url *u, char *sha, size_t shalen,
    char *err, size_t errlen);
static int cache_root(const struct conf *c, const char *runtime, char *out, size_t outlen, char *err, size_t errlen);
static int mkdir_p(const char *path, mode_t mode);
static int rm_tree(const char *path);
static void remove_partial_clones(const char *dir);
static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw);
static int lock_acquire(const char *key, int64_t deadline, int *db_locked, char *err, size_t errlen);
static void lock_release(const char *key, int db_locked);
static char **argv_dup(const char *const *src);
static void argv_free(char **v);
static int fetch_clone(const struct conf *c, const struct repo_url *u, const char *sha, const char *dir,
    const char *log_path, char *err, size_t errlen);
static int build_image(struct engine *e, struct build *b, const char *dir, const char *tag, char *err, size_t errlen);
static void build_line(void *arg, const char *line);
static void build_flush(struct build *b);
static void scrub(const struct conf *c, char *s);

void
images_lock_with_db(int on)
{
	lock_with_db = on;
}

int
images_resolve(const struct conf *c, struct images_source *out)
{
	size_t n;

	memset(out, 0, sizeof(*out));
	if (c->image_registry != NULL && c->image_registry[0] != '\0') {
		out->mode = IMAGES_REGISTRY;
		snprintf(out->prefix, sizeof(out->prefix), "%s", c->image_registry);
		n = strlen(out->prefix);
		while (n > 0 && out->prefix[n - 1] == '/')
			out->prefix[--n] = '\0';
	} else {
		out->mode = IMAGES_LOCAL_BUILD;
		snprintf(out->prefix, sizeof(out->prefix), "%s",
		    c->local_template_repo_prefix != NULL ? c->local_template_repo_prefix : "");
	}
	return out->prefix[0] != '\0' ? 0 : -1;
}

int
images_runtime_known(const struct conf *c, const char *runtime)
{
	size_t i;

	if (runtime == NULL || !valid_name(runtime, 64) || strcmp(runtime, "external") == 0)
		return 0;
	for (i = 0; builtin_runtimes[i] != NULL; i++)
		if (strcmp(builtin_runtimes[i], runtime) == 0)
			return 1;
	return list_has(c->extra_runtimes, runtime);
}

int
images_ensure(struct engine *e, const struct conf *c, const char *runtime, images_event_fn ev, void *arg,
    char *ref, size_t reflen, char *err, size_t errlen)
{
	struct images_source src;
	int rc;

	if (ref != NULL && reflen > 0)
		ref[0] = '\0';
	if (runtime == NULL || runtime[0] == '\0') {
		set_err(err, errlen, "no runtime given: a provisioned workspace needs one of the allowed runtimes");
		return -1;
	}
	if (strcmp(runtime, "external") == 0) {
		set_err(err, errlen, "runtime \"external\" has no image: external workspaces run their own agent");
		return -1;
	}
	if (!images_runtime_known(c, runtime)) {
		set_err(err, errlen, "unknown runtime \"%.64s\": not in the allowlist (langgraph, claude-code, openclaw, "
		    "deepagents, crewai, autogen, hermes, gemini-cli, codex; more via MOLECULE_EXTRA_RUNTIMES)",
		    valid_name(runtime, 64) ? runtime : "(invalid name)");
		return -1;
	}
	if (images_resolve(c, &src) < 0) {
		set_err(err, errlen, "image source not configured: set MOLECULE_IMAGE_REGISTRY or "
		    "MOLECULE_LOCAL_TEMPLATE_REPO_PREFIX");
		return -1;
	}
	if (src.mode == IMAGES_REGISTRY)
		rc = ensure_registry(e, c, src.prefix, runtime, ev, arg, ref, reflen, err, errlen);
	else
		rc = ensure_local(e, c, src.prefix, runtime, ev, arg, ref, reflen, err, errlen);
	if (rc < 0)
		scrub(c, err);
	return rc;
}

/* ---- registry mode ---- */

static int
ensure_registry(struct engine *e, const struct conf *c, const char *prefix, const char *runtime,
    images_event_fn ev, void *arg, char *ref, size_t reflen, char *err, size_t errlen)
{
	struct json_object *p;
	char image[700];
	int64_t t0;
	int have;

	snprintf(image, sizeof(image), "%s/workspace-template-%s:latest", prefix, runtime);
	have = engine_image_exists(e, image);
	if (have < 0) {
		set_err(err, errlen, "cannot reach the container engine to look up image %s: %s", image,
		    engine_error(e));
		return -1;
	}
	if (have == 0) {
		t0 = now_mono_ms();
		p = json_object_new_object();
		json_object_object_add(p, "runtime", json_object_new_string(runtime));
		json_object_object_add(p, "image", json_object_new_string(image));
		emit(ev, arg, "IMAGE_PULL_STARTED", p);
		log_info("images: pulling %s", image);
		if (engine_image_pull(e, image, NULL, NULL, (long)c->image_build_timeout_s * 1000) < 0) {
			set_err(err, errlen, "pulling image %s failed: %s", image, engine_error(e));
			scrub(c, err);
			emit_error(ev, arg, "IMAGE_PULL_FAILED", runtime, err);
			return -1;
		}
		p = json_object_new_object();
		json_object_object_add(p, "runtime", json_object_new_string(runtime));
		json_object_object_add(p, "image", json_object_new_string(image));
		json_object_object_add(p, "duration_ms", json_object_new_int64(now_mono_ms() - t0));
		emit(ev, arg, "IMAGE_PULL_FINISHED", p);
	}
	if (strlen(image) >= reflen) {
		set_err(err, errlen, "image reference too long: %s", image);
		return -1;
	}
	snprintf(ref, reflen, "%s", image);
	return 0;
}

/* ---- local-build mode ---- */

static int
ensure_local(struct engine *e, const struct conf *c, const char *prefix, const char *runtime,
    images_event_fn ev, void *arg, char *ref, size_t reflen, char *err, size_t errlen)
{
	struct repo_url u;
	struct build b;
	struct json_object *p;
	char sha[65], tag[160], root[512], dir[700], tmp[760], logp[720], lockp[720];
	int have, lockfd = -1, db_locked = 0, started = 0, rc = -1;
	int64_t t0, deadline;
	struct stat st;

	memset(&b, 0, sizeof(b));
	if (split_repo_url(prefix, runtime, &u, err, errlen) < 0)
		return -1;
	if (gitea_branch_sha(c, &u, sha, sizeof(sha), err, errlen) < 0)
		return -1;
	snprintf(tag, sizeof(tag), "workspace-template-%s:sha-%.12s", runtime, sha);
	if (strlen(tag) >= reflen) {
		set_err(err, errlen, "image reference too long: %s", tag);
		return -1;
	}
	have = engine_image_exists(e, tag);
	if (have < 0) {
		set_err(err, errlen, "cannot reach the container engine to look up image %s: %s", tag, engine_error(e));
		return -1;
	}
	if (have == 1) {
		log_info("images: cache hit %s (runtime %s, commit %.12s): no clone, no build", tag, runtime, sha);
		snprintf(ref, reflen, "%s", tag);
		return 0;
	}

	if (cache_root(c, runtime, root, sizeof(root), err, errlen) < 0)
		return -1;
	snprintf(dir, sizeof(dir), "%s/%s", root, sha);
	snprintf(logp, sizeof(logp), "%s/%s.build.log", root, sha);
	snprintf(lockp, sizeof(lockp), "%s/%s.lock", root, sha);
	t0 = now_mono_ms();
	deadline = t0 + c->image_build_timeout_s * 1000;

	/* One build per tag: whoever gets the lock builds, everyone else re-checks the cache after it. */
	lockfd = open(lockp, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (lockfd < 0) {
		set_err(err, errlen, "cannot open build lock %s: %s", lockp, strerror(errno));
		goto out;
	}
	if (lock_acquire(tag, deadline, &db_locked, err, errlen) < 0)
		goto out;
	while (flock(lockfd, LOCK_EX | LOCK_NB) < 0) {
		if (errno != EWOULDBLOCK && errno != EINTR) {
			set_err(err, errlen, "cannot lock %s: %s", lockp, strerror(errno));
			goto out;
		}
		if (now_mono_ms() > deadline) {
			set_err(err, errlen, "waited %llds for another build of %s", (long long)c->image_build_timeout_s, tag);
			goto out;
		}
		usleep(LOCK_POLL_MS * 1000);
	}
	have = engine_image_exists(e, tag);
	if (have < 0) {
		set_err(err, errlen, "cannot reach the container engine to look up image %s: %s", tag, engine_error(e));
		goto out;
	}
	if (have == 1) {
		log_info("images: cache hit %s (runtime %s) after waiting for a concurrent build", tag, runtime);
		snprintf(ref, reflen, "%s", tag);
		rc = 0;
		goto out;
	}

	b.c = c;
	b.runtime = runtime;
	b.ev = ev;
	b.arg = arg;
	b.log = fopen(logp, "we");
	if (b.log == NULL) {
		set_err(err, errlen, "cannot write build log %s: %s", logp, strerror(errno));
		goto out;
	}
	started = 1;
	p = json_object_new_object();
	json_object_object_add(p, "runtime", json_object_new_string(runtime));
	json_object_object_add(p, "sha", json_object_new_string(sha));
	emit(ev, arg, "IMAGE_BUILD_STARTED", p);
	log_info("images: building %s from %s at %.12s (log %s)", tag, u.display, sha, logp);

	/* A finished clone is a directory named by its sha; partial ones live under a temporary name. */
	if (stat(dir, &st) < 0) {
		remove_partial_clones(dir);
		snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", dir, (long)getpid());
		fclose(b.log);
		b.log = NULL;
		if (fetch_clone(c, &u, sha, tmp, logp, err, errlen) < 0) {
			(void)rm_tree(tmp);
			goto out;
		}
		if (rename(tmp, dir) < 0) {
			set_err(err, errlen, "cannot move clone into %s: %s", dir, strerror(errno));
			(void)rm_tree(tmp);
			goto out;
		}
		b.log = fopen(logp, "ae");
		if (b.log == NULL) {
			set_err(err, errlen, "cannot write build log %s: %s", logp, strerror(errno));
			goto out;
		}
	} else {
		fprintf(b.log, "reusing clone %s\n", dir);
	}
	if (build_image(e, &b, dir, tag, err, errlen) < 0)
		goto out;
	snprintf(ref, reflen, "%s", tag);
	p = json_object_new_object();
	json_object_object_add(p, "runtime", json_object_new_string(runtime));
	json_object_object_add(p, "image", json_object_new_string(tag));
	json_object_object_add(p, "duration_ms", json_object_new_int64(now_mono_ms() - t0));
	emit(ev, arg, "IMAGE_BUILD_FINISHED", p);
	log_info("images: built %s in %lld ms", tag, (long long)(now_mono_ms() - t0));
	rc = 0;
out:
	if (rc < 0 && started) {
		scrub(c, err);
		if (b.log != NULL)
			fprintf(b.log, "FAILED: %s\n", err);
		emit_error(ev, arg, "IMAGE_BUILD_FAILED", runtime, err);
	}
	if (b.log != NULL)
		fclose(b.log);
	if (lockfd >= 0)
		close(lockfd);	/* drops the flock */
	lock_release(tag, db_locked);
	return rc;
}

/*
 * "<scheme>://[userinfo@]host[:port][/subpath]/<owner>/<repo>[.git]" -> the git URL and the Gitea API
 * URL of that repository. The runtime was validated, so only the configured prefix can be odd.
 */
static int
split_repo_url(const char *prefix, const char *runtime, struct repo_url *u, char *err, size_t errlen)
{
	char full[600], path[600], owner[256], repo[256], hostpart[300], scheme[16];
	const char *p, *host, *slash, *at, *last, *prev;
	size_t n;

	memset(u, 0, sizeof(*u));
	if ((size_t)snprintf(full, sizeof(full), "%s%s", prefix, runtime) >= sizeof(full))
		goto bad;
	p = strstr(full, "://");
	if (p == NULL || (size_t)(p - full) >= sizeof(scheme))
		goto bad;
	memcpy(scheme, full, (size_t)(p - full));
	scheme[p - full] = '\0';
	if (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)
		goto bad;
	host = p + 3;
	slash = strchr(host, '/');
	if (slash == NULL)
		goto bad;
	at = memchr(host, '@', (size_t)(slash - host));
	if (at != NULL)
		host = at + 1;
	if ((size_t)(slash - host) >= sizeof(hostpart) || slash == host)
		goto bad;
	memcpy(hostpart, host, (size_t)(slash - host));
	hostpart[slash - host] = '\0';
	snprintf(path, sizeof(path), "%s", slash);
	n = strlen(path);
	while (n > 1 && path[n - 1] == '/')
		path[--n] = '\0';
	if (n > 4 && strcmp(path + n - 4, ".git") == 0)
		path[n -= 4] = '\0';
	last = strrchr(path, '/');
	if (last == NULL || last == path || last[1] == '\0')
		goto bad;
	prev = last - 1;
	while (prev > path && *prev != '/')
		prev--;
	if ((size_t)(last - prev - 1) >= sizeof(owner) || last - prev - 1 == 0 || strlen(last + 1) >= sizeof(repo))
		goto bad;
	memcpy(owner, prev + 1, (size_t)(last - prev - 1));
	owner[last - prev - 1] = '\0';
	snprintf(repo, sizeof(repo), "%s", last + 1);
	if ((size_t)snprintf(u->display, sizeof(u->display), "%s://%s%s", scheme, hostpart, path) >=
	    sizeof(u->display) ||
	    (size_t)snprintf(u->git, sizeof(u->git), "%s", full) >= sizeof(u->git) ||
	    (size_t)snprintf(u->api_base, sizeof(u->api_base), "%s://%s%.*s/api/v1/repos/%s/%s", scheme,
	    hostpart, (int)(prev - path), path, owner, repo) >= sizeof(u->api_base))
		goto bad;
	return 0;
bad:
	set_err(err, errlen, "MOLECULE_LOCAL_TEMPLATE_REPO_PREFIX must look like "
	    "https://gitea.host/<owner>/<repo-prefix-> (got an unusable URL)");
	return -1;
}

static size_t
body_write(char *p, size_t size, size_t n, void *arg)
{
	struct body *b = arg;
	size_t add = size * n;

	if (b->len + add > GITEA_BODY_CAP) {
		b->over = 1;
		return 0;
	}
	memcpy(b->buf + b->len, p, add);
	b->len += add;
	b->buf[b->len] = '\0';
	return add;
}

static int
gitea_get(const struct conf *c, const char *url, struct body *b, long *status, char *err, size_t errlen)
{
	struct curl_slist *hdrs = NULL;
	char auth[600];
	CURL *h;
	CURLcode cc;
	int rc = -1;

	b->len = 0;
	b->over = 0;
	b->buf[0] = '\0';
	*status = 0;
	h = curl_easy_init();
	if (h == NULL) {
		set_err(err, errlen, "out of memory (curl)");
		return -1;
	}
	hdrs = curl_slist_append(hdrs, "Accept: application/json");
	if (c->gitea_token != NULL && c->gitea_token[0] != '\0') {
		snprintf(auth, sizeof(auth), "Authorization: token %s", c->gitea_token);
		hdrs = curl_slist_append(hdrs, auth);
		explicit_bzero(auth, sizeof(auth));
	}
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, GITEA_CONNECT_MS);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, GITEA_TIMEOUT_MS);
	/* No redirects: the token header must not follow the request to another host. */
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_USERAGENT, "molecule-images/1");
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, body_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, b);
	cc = curl_easy_perform(h);
	if (cc != CURLE_OK) {
		if (b->over)
			set_err(err, errlen, "Gitea answer from %s is larger than %d bytes", url, GITEA_BODY_CAP);
		else
			set_err(err, errlen, "Gitea unreachable (%s): %s", url, curl_easy_strerror(cc));
		goto out;
	}
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
	rc = 0;
out:
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(h);
	return rc;
}

/* One API call on the success path; a 404 costs a second one to say whether the repo or the branch is missing. */
static int
gitea_branch_sha(const struct conf *c, const struct repo_url *u, char *sha, size_t shalen, char *err, size_t errlen)
{
	const char *branch = c->local_template_branch != NULL && c->local_template_branch[0] != '\0' ?
	    c->local_template_branch : "main";
	char url[800];
	struct body b;
	long status;
	int rc = -1;

	b.buf = xmalloc(GITEA_BODY_CAP + 1);
	if (!valid_branch(branch)) {
		set_err(err, errlen, "MOLECULE_LOCAL_TEMPLATE_BRANCH has characters a branch name cannot have");
		goto out;
	}
	snprintf(url, sizeof(url), "%s/branches/%s", u->api_base, branch);
	if (gitea_get(c, url, &b, &status, err, errlen) < 0)
		goto out;
	if (status == 200) {
		if (gitea_parse_branch(b.buf, b.len, sha, shalen) < 0) {
			set_err(err, errlen, "Gitea answer for branch %s of %s has no usable commit id", branch, u->display);
			goto out;
		}
		rc = 0;
		goto out;
	}
	if (status == 401 || status == 403) {
		set_err(err, errlen, "Gitea refused access to %s (HTTP %ld): check MOLECULE_GITEA_TOKEN", u->display, status);
		goto out;
	}
	if (status != 404) {
		set_err(err, errlen, "Gitea answered HTTP %ld for branch %s of %s", status, branch, u->display);
		goto out;
	}
	if (gitea_get(c, u->api_base, &b, &status, err, errlen) < 0)
		goto out;
	if (status == 200)
		set_err(err, errlen, "branch %s not found in template repository %s (MOLECULE_LOCAL_TEMPLATE_BRANCH)",
		    branch, u->display);
	else if (status == 404)
		set_err(err, errlen, "template repository %s not found on Gitea: the runtime is not mirrored there",
		    u->display);
	else
		set_err(err, errlen, "Gitea answered HTTP %ld for template repository %s", status, u->display);
out:
	free(b.buf);
	return rc;
}

/* spawn_run wants char *const[]; the literals stay const here, the copies are freed by argv_free. */
static char **
argv_dup(const char *const *src)
{
	size_t n = 0, i;
	char **v;

	while (src[n] != NULL)
		n++;
	v = xcalloc(n + 1, sizeof(*v));
	for (i = 0; i < n; i++)
		v[i] = xstrdup(src[i]);
	return v;
}

static void
argv_free(char **v)
{
	size_t i;

	if (v == NULL)
		return;
	for (i = 0; v[i] != NULL; i++) {
		explicit_bzero(v[i], strlen(v[i]));
		free(v[i]);
	}
	free(v);
}

static int
fetch_clone(const struct conf *c, const struct repo_url *u, const char *sha, const char *dir,
    const char *log_path, char *err, size_t errlen)
{
	/* Hooks off, no credential helpers or prompts, only http(s); the token reaches git only via env. */
	const char *init[] = { "git", "-c", "core.hooksPath=/dev/null", "init", "-q", ".", NULL };
	const char *fetch[] = { "git", "-c", "credential.helper=", "-c", "core.hooksPath=/dev/null",
		"-c", "protocol.allow=never", "-c", "protocol.http.allow=always", "-c", "protocol.https.allow=always",
		"fetch", "-q", "--no-tags", "--depth", "1", u->git, sha, NULL };
	const char *checkout[] = { "git", "-c", "core.hooksPath=/dev/null", "-c", "advice.detachedHead=false",
		"checkout", "-q", "--detach", "FETCH_HEAD", NULL };
	const char *envs[] = { "GIT_TERMINAL_PROMPT=0", "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_ASKPASS=/bin/false", "SSH_ASKPASS=/bin/false", "GIT_ALLOW_PROTOCOL=http:https",
		"GIT_CONFIG_COUNT=0", NULL, NULL, NULL };
	const char *const *steps[3] = { init, fetch, checkout };
	const char *names[3] = { "git init", "git fetch", "git checkout" };
	char header[600] = "", why[512];
	char **env = NULL, **argv = NULL;
	int i, st, rc = -1;

	if (c->gitea_token != NULL && c->gitea_token[0] != '\0') {
		envs[6] = "GIT_CONFIG_COUNT=1";
		envs[7] = "GIT_CONFIG_KEY_0=http.extraHeader";
		snprintf(header, sizeof(header), "GIT_CONFIG_VALUE_0=Authorization: token %s", c->gitea_token);
		envs[8] = header;
	}
	env = argv_dup(envs);
	if (mkdir(dir, 0700) < 0) {
		set_err(err, errlen, "cannot create %s: %s", dir, strerror(errno));
		goto out;
	}
	for (i = 0; i < 3; i++) {
		argv = argv_dup(steps[i]);
		st = spawn_run(argv, env, dir, log_path, GIT_TIMEOUT_MS, why, sizeof(why));
		argv_free(argv);
		argv = NULL;
		if (st != 0) {
			set_err(err, errlen, "%s of %s at %.12s failed (%s); see %s", names[i], u->display, sha,
			    why, log_path);
			goto out;
		}
	}
	rc = 0;
out:
	argv_free(env);
	explicit_bzero(header, sizeof(header));
	return rc;
}

static int
build_image(struct engine *e, struct build *b, const char *dir, const char *tag, char *err, size_t errlen)
{
	struct tar t;
	int rc = -1;

	tar_init(&t, CONTEXT_CAP);
	if (tar_add_tree(&t, dir) < 0 || tar_finish(&t) < 0) {
		set_err(err, errlen, "cannot pack build context %s: %s", dir, t.err);
		goto out;
	}
	fprintf(b->log, "build %s (context %zu bytes, platform linux/amd64)\n", tag, t.len);
	fflush(b->log);
	b->last_emit_ms = now_mono_ms();
	if (engine_build(e, tag, "linux/amd64", t.buf, t.len, build_line, b,
	    (long)b->c->image_build_timeout_s * 1000) < 0) {
		build_flush(b);
		set_err(err, errlen, "building image %s failed: %s", tag, engine_error(e));
		goto out;
	}
	build_flush(b);
	rc = 0;
out:
	tar_free(&t);
	return rc;
}

/* Every line goes to the log file; the canvas gets them batched, at most one event per LOG_EVENT_MS. */
static void
build_line(void *arg, const char *line)
{
	struct build *b = arg;
	size_t n = strlen(line);

	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		n--;
	if (n == 0)
		return;
	fprintf(b->log, "%.*s\n", (int)n, line);
	if (b->batch_len + n + 2 < sizeof(b->batch)) {
		if (b->batch_len > 0)
			b->batch[b->batch_len++] = '\n';
		memcpy(b->batch + b->batch_len, line, n);
		b->batch_len += n;
		b->batch[b->batch_len] = '\0';
	}
	if (now_mono_ms() - b->last_emit_ms >= LOG_EVENT_MS)
		build_flush(b);
}

static void
build_flush(struct build *b)
{
	struct json_object *p;

	if (b->log != NULL)
		fflush(b->log);
	if (b->batch_len == 0)
		return;
	b->batch[b->batch_len] = '\0';
	scrub(b->c, b->batch);
	p = json_object_new_object();
	json_object_object_add(p, "runtime", json_object_new_string(b->runtime));
	json_object_object_add(p, "line", json_object_new_string(b->batch));
	emit(b->ev, b->arg, "IMAGE_BUILD_LOG", p);
	b->batch_len = 0;
	b->last_emit_ms = now_mono_ms();
}

/* ---- locks ---- */

static int
lock_acquire(const char *key, int64_t deadline, int *db_locked, char *err, size_t errlen)
{
	const char *params[1] = { key };
	struct arena a;
	PGresult *res;
	int rc = 0, got, failed;

	*db_locked = 0;
	if (!lock_with_db)
		return 0;
	arena_init(&a, 1 << 20);
	for (;;) {
		if (db_conn() == NULL) {
			/* The flock still serialises this host; a second host may build the same tag once. */
			log_warn("images: database unavailable, build lock %s is host-local only", key);
			break;
		}
		res = db_exec(&a, "SELECT pg_try_advisory_lock(hashtext('molecule.images'), hashtext($1))", 1, params);
		/* The value lives in the result, which the reset clears: decide first. */
		failed = res == NULL;
		got = !failed && db_value(res, 0, 0) != NULL && strcmp(db_value(res, 0, 0), "t") == 0;
		arena_reset(&a);
		if (got) {
			*db_locked = 1;
			break;
		}
		if (failed) {
			log_warn("images: advisory lock for %s failed, build lock is host-local only", key);
			break;
		}
		if (now_mono_ms() > deadline) {
			set_err(err, errlen, "timed out waiting for another platform process building %s", key);
			rc = -1;
			break;
		}
		usleep(LOCK_POLL_MS * 1000);
	}
	arena_cleanup(&a);
	return rc;
}

static void
lock_release(const char *key, int db_locked)
{
	const char *params[1] = { key };
	struct arena a;

	if (!db_locked)
		return;
	arena_init(&a, 1 << 20);
	if (db_exec(&a, "SELECT pg_advisory_unlock(hashtext('molecule.images'), hashtext($1))", 1, params) == NULL)
		log_warn("images: releasing the advisory lock of %s failed (released with the session)", key);
	arena_cleanup(&a);
}

/* ---- helpers ---- */

static int
cache_root(const struct conf *c, const char *runtime, char *out, size_t outlen, char *err, size_t errlen)
{
	const char *home = getenv("HOME");
	char base[400];

	if (c->image_cache_dir != NULL && c->image_cache_dir[0] != '\0')
		snprintf(base, sizeof(base), "%s", c->image_cache_dir);
	else if (home != NULL && home[0] == '/')
		snprintf(base, sizeof(base), "%s/.cache/molecule", home);
	else {
		set_err(err, errlen, "no image cache folder: set MOLECULE_IMAGE_CACHE_DIR (HOME is unset)");
		return -1;
	}
	if ((size_t)snprintf(out, outlen, "%s/%s", base, runtime) >= outlen) {
		set_err(err, errlen, "MOLECULE_IMAGE_CACHE_DIR is too long");
		return -1;
	}
	if (mkdir_p(out, 0700) < 0) {
		set_err(err, errlen, "cannot create image cache folder %s: %s", out, strerror(errno));
		return -1;
	}
	return 0;
}

static int
mkdir_p(const char *path, mode_t mode)
{
	char tmp[512];
	char *p;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s", path) >= sizeof(tmp)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	for (p = tmp + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, mode) < 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (mkdir(tmp, mode) < 0 && errno != EEXIST)
		return -1;
	return 0;
}

/* Under the build lock, so every "<sha>.tmp.<pid>" left is from a process that died mid-fetch. */
static void
remove_partial_clones(const char *dir)
{
	char pat[720];
	glob_t g;
	size_t i;

	snprintf(pat, sizeof(pat), "%s.tmp.*", dir);
	if (glob(pat, GLOB_NOSORT, NULL, &g) != 0)
		return;
	for (i = 0; i < g.gl_pathc; i++)
		if (rm_tree(g.gl_pathv[i]) < 0)
			log_warn("images: cannot remove partial clone %s: %s", g.gl_pathv[i], strerror(errno));
	globfree(&g);
}

static int
rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	UNUSED(sb);
	UNUSED(ftw);
	return flag == FTW_DP ? rmdir(path) : unlink(path);
}

static int
rm_tree(const char *path)
{
	struct stat st;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -1;
	return nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Docker's repository-name rules, narrowed: it becomes a tag, a path segment and part of a URL. */
static int
valid_name(const char *s, size_t max)
{
	size_t i, n = strlen(s);

	if (n == 0 || n > max || !(islower((unsigned char)s[0]) || isdigit((unsigned char)s[0])))
		return 0;
	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (!(islower(ch) || isdigit(ch) || ch == '-' || ch == '_' || ch == '.'))
			return 0;
		if (ch == '.' && i > 0 && s[i - 1] == '.')
			return 0;
	}
	return s[n - 1] != '.' && s[n - 1] != '-';
}

static int
valid_branch(const char *s)
{
	size_t i, n = strlen(s);

	if (n == 0 || n > 200 || s[0] == '-' || s[0] == '/' || strstr(s, "..") != NULL)
		return 0;
	for (i = 0; i < n; i++)
		if (!(isalnum((unsigned char)s[i]) || strchr("-_./", s[i]) != NULL))
			return 0;
	return 1;
}

static int
list_has(const char *list, const char *name)
{
	const char *p = list, *q;
	size_t n = strlen(name), len;

	if (list == NULL)
		return 0;
	while (*p != '\0') {
		while (*p == ',' || *p == ' ' || *p == '\t')
			p++;
		q = p;
		while (*q != '\0' && *q != ',')
			q++;
		len = (size_t)(q - p);
		while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
			len--;
		if (len == n && len > 0 && strncmp(p, name, n) == 0)
			return 1;
		p = q;
	}
	return 0;
}

static void
emit(images_event_fn ev, void *arg, const char *type, struct json_object *payload)
{
	if (ev != NULL)
		ev(arg, type, payload);
	else
		json_object_put(payload);
}

static void
emit_error(images_event_fn ev, void *arg, const char *type, const char *runtime, const char *msg)
{
	struct json_object *p = json_object_new_object();

	json_object_object_add(p, "runtime", json_object_new_string(runtime));
	json_object_object_add(p, "error", json_object_new_string(msg));
	emit(ev, arg, type, p);
}

/* Messages end up in API responses and events, where log.c's masking does not reach. */
static void
scrub(const struct conf *c, char *s)
{
	const char *tok = c->gitea_token;
	size_t tl;
	char *p;

	if (s == NULL || tok == NULL || (tl = strlen(tok)) < 4)
		return;
	while ((p = strstr(s, tok)) != NULL) {
		if (tl < 8) {
			memset(p, '*', tl);
			continue;
		}
		memcpy(p, "[masked]", 8);
		memmove(p + 8, p + tl, strlen(p + tl) + 1);
	}
}
