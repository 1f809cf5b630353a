/*
 * imagectl.c: a tiny command-line driver of common/images.c for the integration tests (not shipped).
 * Owns one engine client and the configuration from the environment; events on stdout, errors on stderr.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <json-c/json.h>

#include "common/conf.h"
#include "common/db.h"
#include "common/engine.h"
#include "common/images.h"
#include "common/log.h"
#include "common/tar.h"

static void on_event(void *arg, const char *type, struct json_object *payload);
static int usage(void);
static int cmd_run(struct engine *e, int argc, char **argv);

/* One line per event, "EVENT <type> <payload>", so tests can count and inspect them. */
static void
on_event(void *arg, const char *type, struct json_object *payload)
{
	(void)arg;
	printf("EVENT %s %s\n", type, json_object_to_json_string_ext(payload, JSON_C_TO_STRING_PLAIN));
	fflush(stdout);
	json_object_put(payload);
}

static int
usage(void)
{
	fprintf(stderr, "usage: imagectl ensure RUNTIME | known RUNTIME | resolve |\n"
	                "  run NAME IMAGE TOKEN|- [K=V...] (host network, /configs/.auth_token) | rm NAME | logs NAME\n"
	                "  configuration from the environment (MOLECULE_*, DOCKER_HOST); DATABASE_URL set = "
	                "advisory build lock in PostgreSQL\n");
	return 2;
}

/* Like the provisioner: token file in /configs before start, host networking, env from argv. */
static int
cmd_run(struct engine *e, int argc, char **argv)
{
	struct json_object *b, *env, *labels, *hc;
	struct tar t;
	char id[128];
	int i, rc = -1;

	tar_init(&t, 1 << 20);
	b = json_object_new_object();
	env = json_object_new_array();
	for (i = 5; i < argc; i++)
		json_object_array_add(env, json_object_new_string(argv[i]));
	labels = json_object_new_object();
	json_object_object_add(labels, "imagectl", json_object_new_string("1"));
	hc = json_object_new_object();
	json_object_object_add(hc, "NetworkMode", json_object_new_string("host"));
	json_object_object_add(b, "Image", json_object_new_string(argv[3]));
	json_object_object_add(b, "Env", env);
	json_object_object_add(b, "Labels", labels);
	json_object_object_add(b, "HostConfig", hc);
	if (engine_container_create(e, argv[2], b, id, sizeof(id)) != 0)
		goto out;
	if (strcmp(argv[4], "-") != 0) {
		if (tar_add_dir(&t, "configs", 0755) < 0 ||
		    tar_add_file(&t, "configs/.auth_token", argv[4], strlen(argv[4]), 0600) < 0 ||
		    tar_finish(&t) < 0 || engine_archive_put(e, id, "/", t.buf, t.len) != 0)
			goto out;
	}
	if (engine_container_start(e, id) != 0)
		goto out;
	printf("%s\n", id);
	rc = 0;
out:
	if (rc < 0)
		fprintf(stderr, "ERROR %s\n", engine_error(e));
	tar_free(&t);
	json_object_put(b);
	return rc;
}

int
main(int argc, char **argv)
{
	struct conf c;
	struct engine e;
	struct images_source src;
	char err[1024] = "", ref[512] = "";
	int rc = 1;

	memset(&c, 0, sizeof(c));
	memset(&e, 0, sizeof(e));
	if (argc < 2)
		return usage();
	log_set_name("imagectl");
	if (conf_load(&c, NULL, err, sizeof(err)) < 0) {
		fprintf(stderr, "imagectl: %s\n", err);
		return 1;
	}
	conf_apply_logging(&c);
	if (strcmp(argv[1], "resolve") == 0) {
		if (images_resolve(&c, &src) < 0) {
			fprintf(stderr, "imagectl: no image source configured\n");
			goto out;
		}
		printf("%s %s\n", src.mode == IMAGES_REGISTRY ? "registry" : "local-build", src.prefix);
		rc = 0;
		goto out;
	}
	if (argc < 3 || (argc != 3 && strcmp(argv[1], "run") != 0) || (strcmp(argv[1], "run") == 0 && argc < 5)) {
		rc = usage();
		goto out;
	}
	if (strcmp(argv[1], "known") == 0) {
		rc = images_runtime_known(&c, argv[2]) ? 0 : 1;
		printf("%s\n", rc == 0 ? "known" : "unknown");
		goto out;
	}
	if (strcmp(argv[1], "ensure") != 0 && strcmp(argv[1], "run") != 0 && strcmp(argv[1], "rm") != 0 &&
	    strcmp(argv[1], "logs") != 0) {
		rc = usage();
		goto out;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (getenv("DATABASE_URL") != NULL) {
		db_configure(&c);
		images_lock_with_db(1);
	} else {
		images_lock_with_db(0);
	}
	if (engine_init(&e, c.docker_host, c.docker_cert_path, err, sizeof(err)) < 0) {
		fprintf(stderr, "ERROR %s\n", err);
		goto out_curl;
	}
	if (strcmp(argv[1], "run") == 0) {
		rc = cmd_run(&e, argc, argv) == 0 ? 0 : 1;
	} else if (strcmp(argv[1], "rm") == 0) {
		rc = engine_container_remove(&e, argv[2]) == 0 ? 0 : 1;
	} else if (strcmp(argv[1], "logs") == 0) {
		char *logs = NULL;
		if (engine_container_logs(&e, argv[2], 200, &logs) == 0) {
			fputs(logs, stdout);
			rc = 0;
		}
		free(logs);
	} else if (images_ensure(&e, &c, argv[2], on_event, NULL, ref, sizeof(ref), err, sizeof(err)) < 0) {
		fprintf(stderr, "ERROR %s\n", err);
		printf("ERROR %s\n", err);
	} else {
		printf("REF %s\n", ref);
		rc = 0;
	}
	engine_cleanup(&e);
out_curl:
	db_close();
	curl_global_cleanup();
out:
	conf_free(&c);
	return rc;
}
