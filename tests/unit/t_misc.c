/* t_misc.c: unit tests of common/log.c masking, kv URL parsing, liveness values and util helpers. */
#include "tests/unit/t.h"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "common/kv.h"
#include "common/liveness.h"
#include "common/log.h"
#include "common/util.h"

void
test_log__masks_secrets(void)
{
	char path[] = "/tmp/t_log_XXXXXX", buf[512];
	int fd = mkstemp(path), saved = dup(STDERR_FILENO);
	ssize_t n;

	log_add_secret("sk-live-abcdef123456");
	log_add_secret("tiny");
	dup2(fd, STDERR_FILENO);
	log_info("token sk-live-abcdef123456 and again sk-live-abcdef123456; tiny stays");
	dup2(saved, STDERR_FILENO);
	close(saved);
	lseek(fd, 0, SEEK_SET);
	n = read(fd, buf, sizeof(buf) - 1);
	buf[n > 0 ? n : 0] = '\0';
	close(fd);
	unlink(path);
	T_CHECK(strstr(buf, "sk-live") == NULL);
	T_CHECK(strstr(buf, "token [masked] and again [masked]; tiny stays") != NULL);
	log_clear_secrets();
}

void
test_kv__parse_url(void)
{
	struct kv_target t;
	char err[128];

	T_CHECK(kv_parse_url("redis://localhost:6380/2", &t, err, sizeof(err)) == 0);
	T_STREQ(t.host, "localhost");
	T_CHECK(t.port == 6380 && t.db == 2);
	T_CHECK(kv_parse_url("redis://:pw@10.0.0.1", &t, err, sizeof(err)) == 0);
	T_STREQ(t.password, "pw");
	T_STREQ(t.host, "10.0.0.1");
	T_CHECK(t.port == 6379);
	T_CHECK(kv_parse_url("unix:///run/r.sock?db=3", &t, err, sizeof(err)) == 0);
	T_STREQ(t.path, "/run/r.sock");
	T_CHECK(t.db == 3);
	T_CHECK(kv_parse_url("http://x", &t, err, sizeof(err)) == -1);
	T_CHECK(kv_parse_url("redis://h:99999", &t, err, sizeof(err)) == -1);
	T_CHECK(kv_parse_url("unix://rel", &t, err, sizeof(err)) == -1);
}

void
test_liveness__parse(void)
{
	struct liveness_entry e;

	T_CHECK(liveness_parse("api", "123 1700000000 4", &e) == 0);
	T_CHECK(e.pid == 123 && e.last_tick == 1700000000 && e.restarts == 4);
	T_STREQ(e.name, "api");
	T_CHECK(liveness_parse("api", "garbage", &e) == -1);
	T_CHECK(liveness_parse("api", "1 2 3 4", &e) == -1);
	T_CHECK(liveness_parse("api", "-1 2 3", &e) == -1);
}

void
test_util__parse_int64(void)
{
	const char *why = NULL;
	int64_t v = 0;

	T_CHECK(parse_int64("42", 0, 100, &v, &why) == 0 && v == 42);
	T_CHECK(parse_int64("101", 0, 100, &v, &why) == -1);
	T_STREQ(why, "too large");
	T_CHECK(parse_int64("-1", 0, 100, &v, &why) == -1);
	T_CHECK(parse_int64("", 0, 100, &v, &why) == -1);
	T_CHECK(parse_int64("4x", 0, 100, &v, &why) == -1);
	T_CHECK(parse_int64("99999999999999999999", 0, INT64_MAX, &v, &why) == -1);
}

void
test_util__str_eq_ct(void)
{
	T_CHECK(str_eq_ct("abc", "abc"));
	T_CHECK(!str_eq_ct("abc", "abd"));
	T_CHECK(!str_eq_ct("abc", "abcd"));
	T_CHECK(str_eq_ct("", ""));
}

void
test_util__set_err(void)
{
	char err[8] = "old";

	set_err(err, sizeof(err), "%s %d", "code", 12345);
	T_STREQ(err, "code 12");
	set_err(NULL, 10, "ignored");
	set_err(err, 0, "ignored");
	T_STREQ(err, "code 12");
}

void
test_util__utf8_prefix_len(void)
{
	T_CHECK(utf8_prefix_len("abc", 3) == 3);
	T_CHECK(utf8_prefix_len("abcdef", 4) == 4);
	T_CHECK(utf8_prefix_len("", 0) == 0);
	/* "h\xc3\xa9!" is h, e-acute (2 bytes), !: never cut inside the e-acute */
	T_CHECK(utf8_prefix_len("h\xc3\xa9!", 2) == 1);
	T_CHECK(utf8_prefix_len("h\xc3\xa9!", 3) == 3);
	T_CHECK(utf8_prefix_len("\xe2\x82\xac", 2) == 0);
	T_CHECK(utf8_prefix_len("abc", 0) == 0);
}
