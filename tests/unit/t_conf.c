/* t_conf.c: unit tests of common/conf.c (defaults, file, environment, errors, docs coverage). */
#include "tests/unit/t.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/conf.h"

static void
write_conf(const char *path, const char *text, mode_t mode)
{
	FILE *f = fopen(path, "w");

	fputs(text, f);
	fclose(f);
	chmod(path, mode);
}

void
test_conf__defaults(void)
{
	struct conf c = { 0 };
	char err[256];

	unsetenv("MOLECULE_API_WORKERS");
	T_CHECK(conf_load(&c, NULL, err, sizeof(err)) == 0);
	T_CHECK(c.max_body_bytes == 1048576);
	T_CHECK(c.heartbeat_interval_s == 5);
	T_CHECK(conf_api_workers(&c) >= 2);
	conf_free(&c);
}

void
test_conf__file_and_env(void)
{
	struct conf c = { 0 };
	char err[256], path[] = "/tmp/t_conf_XXXXXX";
	int fd = mkstemp(path);

	close(fd);
	write_conf(path, "# comment\n\napi_workers 3\n  log_level   debug  \nenv development\n", 0600);
	setenv("MOLECULE_MAX_REQUESTS", "77", 1);
	T_CHECK(conf_load(&c, path, err, sizeof(err)) == 0);
	T_CHECK(c.api_workers == 3);
	T_CHECK(conf_api_workers(&c) == 3);
	T_STREQ(c.log_level, "debug");
	T_CHECK(c.max_requests == 77);
	T_CHECK(conf_is_dev(&c));
	T_CHECK(!conf_is_production(&c));
	unsetenv("MOLECULE_MAX_REQUESTS");
	conf_free(&c);
	unlink(path);
}

void
test_conf__unknown_key(void)
{
	struct conf c = { 0 };
	char err[256], path[] = "/tmp/t_conf_XXXXXX";
	int fd = mkstemp(path);

	close(fd);
	write_conf(path, "api_workers 2\nbogus_key 1\n", 0600);
	T_CHECK(conf_load(&c, path, err, sizeof(err)) == -1);
	T_CHECK(strstr(err, ":2: unknown key \"bogus_key\"") != NULL);
	unlink(path);
}

void
test_conf__out_of_range(void)
{
	struct conf c = { 0 };
	char err[256];

	setenv("MOLECULE_API_WORKERS", "100000", 1);
	T_CHECK(conf_load(&c, NULL, err, sizeof(err)) == -1);
	T_CHECK(strstr(err, "MOLECULE_API_WORKERS") != NULL && strstr(err, "too large") != NULL);
	setenv("MOLECULE_API_WORKERS", "3x", 1);
	T_CHECK(conf_load(&c, NULL, err, sizeof(err)) == -1);
	T_CHECK(strstr(err, "not a number") != NULL);
	unsetenv("MOLECULE_API_WORKERS");
}

void
test_conf__file_mode(void)
{
	struct conf c = { 0 };
	char err[256], path[] = "/tmp/t_conf_XXXXXX";
	int fd = mkstemp(path);

	close(fd);
	write_conf(path, "api_workers 2\n", 0644);
	T_CHECK(conf_load(&c, path, err, sizeof(err)) == -1);
	T_CHECK(strstr(err, "too open") != NULL);
	unlink(path);
}

void
test_conf__keeps_old_on_failure(void)
{
	struct conf c = { 0 };
	char err[256];

	setenv("MOLECULE_API_WORKERS", "4", 1);
	T_CHECK(conf_load(&c, NULL, err, sizeof(err)) == 0);
	setenv("MOLECULE_API_WORKERS", "-1", 1);
	T_CHECK(conf_load(&c, NULL, err, sizeof(err)) == -1);
	T_CHECK(c.api_workers == 4);
	unsetenv("MOLECULE_API_WORKERS");
	conf_free(&c);
}

/* docs/config.md must name every key and its variable, or this fails. */
void
test_conf__every_key_documented(void)
{
	FILE *f = fopen("docs/config.md", "r");
	static char doc[65536];
	size_t n, i;
	char want[128];

	T_CHECK(f != NULL);
	if (f == NULL)
		return;
	n = fread(doc, 1, sizeof(doc) - 1, f);
	doc[n] = '\0';
	fclose(f);
	for (i = 0; i < conf_nkeys; i++) {
		snprintf(want, sizeof(want), "`%s` | `%s`", conf_keys[i].name, conf_keys[i].env);
		if (strstr(doc, want) == NULL) {
			fprintf(stderr, "docs/config.md lacks %s\n", want);
			T_CHECK(!"key undocumented");
		}
	}
}
