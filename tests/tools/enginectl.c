/*
 * enginectl.c: a tiny command-line driver of common/engine.c for the integration tests (not shipped).
 * Owns one engine client per run, from DOCKER_HOST / DOCKER_CERT_PATH; prints results, errors to stderr.
 */
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <json-c/json.h>

#include "common/engine.h"
#include "common/tar.h"

static void on_line(void *arg, const char *line);
static int on_container(void *arg, const char *id, const char *name, struct json_object *labels);
static int cmd_run(struct engine *e, int argc, char **argv);
static int cmd_put(struct engine *e, int argc, char **argv);
static int cmd_build(struct engine *e, const char *tag, const char *dir);
static int read_all(const char *path, char **out, size_t *len);
static int usage(void);

static void
on_line(void *arg, const char *line)
{
	(void)arg;
	printf("| %s\n", line);
}

static int
on_container(void *arg, const char *id, const char *name, struct json_object *labels)
{
	(void)arg;
	printf("%.12s %s %s\n", id, name, labels ? json_object_to_json_string_ext(labels, JSON_C_TO_STRING_PLAIN)
	                                         : "{}");
	return 0;
}

static int
usage(void)
{
	fprintf(stderr, "usage: enginectl ping | volume-create NAME | volume-rm NAME | run NAME IMAGE CMD... |\n"
	                "  state NAME | stop NAME | kill NAME | pause NAME | unpause NAME | rm NAME | list LABEL |\n"
	                "  put NAME DEST FILE... | logs NAME [TAIL] | build TAG DIR | image-exists REF | pull REF\n");
	return 2;
}

static int
cmd_run(struct engine *e, int argc, char **argv)
{
	struct json_object *b, *cmd, *labels, *hc;
	char id[128];
	int i, rc = -1;

	b = json_object_new_object();
	cmd = json_object_new_array();
	for (i = 2; i < argc; i++)
		json_object_array_add(cmd, json_object_new_string(argv[i]));
	labels = json_object_new_object();
	json_object_object_add(labels, "enginectl", json_object_new_string("1"));
	json_object_object_add(labels, "enginectl.name", json_object_new_string(argv[0]));
	hc = json_object_new_object();
	json_object_object_add(hc, "NetworkMode", json_object_new_string("host"));
	json_object_object_add(b, "Image", json_object_new_string(argv[1]));
	json_object_object_add(b, "Cmd", cmd);
	json_object_object_add(b, "Labels", labels);
	json_object_object_add(b, "HostConfig", hc);
	if (engine_container_create(e, argv[0], b, id, sizeof(id)) != 0)
		goto out;
	if (engine_container_start(e, id) != 0)
		goto out;
	printf("%s\n", id);
	rc = 0;
out:
	json_object_put(b);
	return rc;
}

static int
read_all(const char *path, char **out, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *b = NULL, *nb;
	size_t cap = 0, n;

	*len = 0;
	if (f == NULL)
		return -1;
	for (;;) {
		if (*len + 4096 > cap) {
			cap = cap ? cap * 2 : 8192;
			nb = realloc(b, cap);
			if (nb == NULL) {
				free(b);
				fclose(f);
				return -1;
			}
			b = nb;
		}
		n = fread(b + *len, 1, cap - *len, f);
		if (n == 0)
			break;
		*len += n;
	}
	fclose(f);
	*out = b;
	return 0;
}

static int
cmd_put(struct engine *e, int argc, char **argv)
{
	struct tar t;
	char *data, *copy;
	size_t len;
	int i, rc = -1;

	tar_init(&t, 16 << 20);
	for (i = 2; i < argc; i++) {
		if (read_all(argv[i], &data, &len) != 0) {
			fprintf(stderr, "enginectl: cannot read %s\n", argv[i]);
			goto out;
		}
		copy = strdup(argv[i]);
		if (copy == NULL || tar_add_file(&t, basename(copy), data, len, 0600) != 0) {
			fprintf(stderr, "enginectl: tar: %s\n", t.err);
			free(copy);
			free(data);
			goto out;
		}
		free(copy);
		free(data);
	}
	if (tar_finish(&t) != 0 || engine_archive_put(e, argv[0], argv[1], t.buf, t.len) != 0)
		goto out;
	rc = 0;
out:
	tar_free(&t);
	return rc;
}

static int
cmd_build(struct engine *e, const char *tag, const char *dir)
{
	struct tar t;
	int rc = -1;

	tar_init(&t, 64 << 20);
	if (tar_add_tree(&t, dir) != 0 || tar_finish(&t) != 0) {
		fprintf(stderr, "enginectl: tar: %s\n", t.err);
		goto out;
	}
	if (engine_build(e, tag, "linux/amd64", t.buf, t.len, on_line, NULL, 300000) != 0)
		goto out;
	printf("built %s\n", tag);
	rc = 0;
out:
	tar_free(&t);
	return rc;
}

int
main(int argc, char **argv)
{
	struct engine e;
	enum engine_state st;
	char err[512];
	char *logs = NULL;
	const char *cmd;
	int rc = -1, r;
	static const char *const names[] = { "missing", "stopped", "running", "paused" };

	if (argc < 2)
		return usage();
	cmd = argv[1];
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return 1;
	if (engine_init(&e, getenv("DOCKER_HOST"), getenv("DOCKER_CERT_PATH"), err, sizeof(err)) != 0) {
		fprintf(stderr, "enginectl: %s\n", err);
		return 1;
	}
	if (strcmp(cmd, "ping") == 0) {
		rc = engine_ping(&e);
		if (rc == 0)
			printf("OK\n");
	} else if (strcmp(cmd, "volume-create") == 0 && argc == 3) {
		struct json_object *l = json_object_new_object();

		json_object_object_add(l, "enginectl", json_object_new_string("1"));
		rc = engine_volume_create(&e, argv[2], l);
		json_object_put(l);
	} else if (strcmp(cmd, "volume-rm") == 0 && argc == 3) {
		rc = engine_volume_remove(&e, argv[2]);
	} else if (strcmp(cmd, "run") == 0 && argc >= 5) {
		rc = cmd_run(&e, argc - 2, argv + 2);
	} else if (strcmp(cmd, "state") == 0 && argc == 3) {
		rc = engine_container_state(&e, argv[2], &st);
		if (rc == 0)
			printf("%s\n", names[st]);
	} else if (strcmp(cmd, "stop") == 0 && argc == 3) {
		rc = engine_container_stop(&e, argv[2], 1);
	} else if (strcmp(cmd, "kill") == 0 && argc == 3) {
		rc = engine_container_kill(&e, argv[2], "SIGKILL");
	} else if (strcmp(cmd, "pause") == 0 && argc == 3) {
		rc = engine_container_pause(&e, argv[2]);
	} else if (strcmp(cmd, "unpause") == 0 && argc == 3) {
		rc = engine_container_unpause(&e, argv[2]);
	} else if (strcmp(cmd, "rm") == 0 && argc == 3) {
		rc = engine_container_remove(&e, argv[2]);
	} else if (strcmp(cmd, "list") == 0 && argc == 3) {
		rc = engine_container_list(&e, argv[2], on_container, NULL);
	} else if (strcmp(cmd, "put") == 0 && argc >= 5) {
		rc = cmd_put(&e, argc - 2, argv + 2);
	} else if (strcmp(cmd, "logs") == 0 && (argc == 3 || argc == 4)) {
		rc = engine_container_logs(&e, argv[2], argc == 4 ? atoi(argv[3]) : 0, &logs);
		if (rc == 0)
			fputs(logs, stdout);
		free(logs);
	} else if (strcmp(cmd, "build") == 0 && argc == 4) {
		rc = cmd_build(&e, argv[2], argv[3]);
	} else if (strcmp(cmd, "image-exists") == 0 && argc == 3) {
		r = engine_image_exists(&e, argv[2]);
		if (r >= 0)
			printf("%s\n", r ? "yes" : "no");
		rc = r < 0 ? -1 : 0;
	} else if (strcmp(cmd, "pull") == 0 && argc == 3) {
		rc = engine_image_pull(&e, argv[2], on_line, NULL, 60000);
	} else {
		engine_cleanup(&e);
		curl_global_cleanup();
		return usage();
	}
	if (rc != 0 && e.err[0])
		fprintf(stderr, "enginectl: %s\n", engine_error(&e));
	engine_cleanup(&e);
	curl_global_cleanup();
	return rc == 0 ? 0 : 1;
}
