/*
 * images.h: the one place that decides which image a runtime uses (registry pull or local build).
 * Callers own the engine and conf; images owns the clone/build cache under conf image_cache_dir.
 */
#ifndef MOLECULE_IMAGES_H
#define MOLECULE_IMAGES_H

#include <stddef.h>

#include <json-c/json.h>

#include "common/conf.h"
#include "common/engine.h"

/* The longest the git steps of one local build may take (init, fetch, checkout: a third each). */
#define IMAGES_GIT_BUDGET_S 360

enum images_mode { IMAGES_REGISTRY, IMAGES_LOCAL_BUILD };
struct images_source { enum images_mode mode; char prefix[512]; };

/* registry mode when conf image_registry (MOLECULE_IMAGE_REGISTRY) is set, else local-build with the repo prefix */
int images_resolve(const struct conf *c, struct images_source *out);

/* progress for the canvas: kind is "IMAGE_BUILD_STARTED", "IMAGE_BUILD_LOG", ... ; payload owned by callee */
typedef void (*images_event_fn)(void *arg, const char *event_type, struct json_object *payload);

/*
 * Makes sure the image for `runtime` is on the engine and writes its ref into ref. Registry: pull if missing.
 * Local build: allowlist check, one Gitea branch call for the sha, cache hit on workspace-template-<rt>:sha-<sha12>,
 * else clone+build (shared between concurrent callers via a PostgreSQL advisory lock). Fails closed.
 * ev may be NULL. Returns 0, or -1 with an actionable message (no secrets) in err.
 */
int images_ensure(struct engine *e, const struct conf *c, const char *runtime, images_event_fn ev, void *arg,
                  char *ref, size_t reflen, char *err, size_t errlen);

/*
 * Concurrent builds of one tag are serialised by a flock on the cache dir (same host) and, when on (the
 * default), by a PostgreSQL session advisory lock on the process's db connection (hosts sharing the
 * database). Tools without a database (tests/tools/imagectl) turn it off. Call images_ensure outside a
 * transaction: the lock is taken with short pg_try_advisory_lock polls, so statement_timeout never bites.
 */
void images_lock_with_db(int on);

/* 1 when runtime is in the allowlist (built-ins + conf extra_runtimes) */
int images_runtime_known(const struct conf *c, const char *runtime);

#endif
