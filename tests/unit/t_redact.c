/* t_redact.c: the linear secret redactor of agent memories (common/redact.c). */
#include <string.h>

#include "common/arena.h"
#include "common/redact.h"
#include "tests/unit/t.h"

static const char *
red(struct arena *a, const char *in)
{
	const char *out = redact_secrets(a, in);

	return out != NULL ? out : "(null)";
}

void
test_redact__rules(void)
{
	struct arena a;

	arena_init(&a, 1 << 22);
	T_STREQ(red(&a, "plain text, nothing here"), "plain text, nothing here");
	T_STREQ(red(&a, "OPENAI_API_KEY=abc123 next"), "OPENAI_API_KEY=[REDACTED:API_KEY] next");
	T_STREQ(red(&a, "GITHUB_TOKEN : ghp_x;"), "GITHUB_TOKEN : [REDACTED:TOKEN];");
	T_STREQ(red(&a, "DB_SECRET='x'"), "DB_SECRET='x'");
	T_STREQ(red(&a, "APP_SECRET=s3cr3t"), "APP_SECRET=[REDACTED:SECRET]");
	T_STREQ(red(&a, "API_KEYS=abc"), "API_KEYS=abc");
	T_STREQ(red(&a, "Authorization: Bearer abcdefgh.ij"), "Authorization: Bearer [REDACTED:BEARER_TOKEN]");
	T_STREQ(red(&a, "Bearer short"), "Bearer short");
	T_STREQ(red(&a, "key sk-0123456789abcdefXYZ ok"), "key [REDACTED:SK_TOKEN] ok");
	T_STREQ(red(&a, "sk-short"), "sk-short");
	T_STREQ(red(&a, "ctx7_abcdefgh"), "[REDACTED:CTX7_TOKEN]");
	T_STREQ(red(&a, "blob QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZn== end"),
	    "blob [REDACTED:BASE64_BLOB] end");
	T_STREQ(red(&a, "short QUJDREVGR0hJSktMTU5PUFFSU1RVVldY end"),
	    "short QUJDREVGR0hJSktMTU5PUFFSU1RVVldY end");
	T_STREQ(red(&a, ""), "");
	arena_cleanup(&a);
}

/*
 * 100 000 characters of one run around a marker: POSIX regexec took minutes on this (quadratic);
 * one pass per rule takes milliseconds. Not timed here (no timed tests): a regression shows as a
 * unit run that hangs.
 */
void
test_redact__long_runs_are_linear(void)
{
	struct arena a;
	static char in[100001];
	const char *out;

	arena_init(&a, 1 << 24);
	memset(in, 'a', sizeof(in) - 1);
	memcpy(in + 50000, "API_KEY=", 8);
	out = redact_secrets(&a, in);
	/* The value goes first; then the name's run "aaa...API" looks like base64 and goes too. */
	T_STREQ(out != NULL ? out : "(null)", "[REDACTED:BASE64_BLOB]_KEY=[REDACTED:API_KEY]");
	arena_cleanup(&a);
}
