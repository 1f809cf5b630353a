/* t_engine_stream.c: unit tests of common/engine_stream.c: JSON-lines progress and multiplexed log frames. */
#include "tests/unit/t.h"

#include <stdlib.h>

#include "common/engine_stream.h"

struct lines {
	char all[4096];
	int n;
};

static void collect(void *arg, const char *line);
static void feed_split(struct jsonl *p, const char *s, size_t step);

static void
collect(void *arg, const char *line)
{
	struct lines *l = arg;
	size_t n = strlen(l->all);

	snprintf(l->all + n, sizeof(l->all) - n, "%s|", line);
	l->n++;
}

static void
feed_split(struct jsonl *p, const char *s, size_t step)
{
	size_t len = strlen(s), off;

	for (off = 0; off < len; off += step)
		jsonl_feed(p, s + off, len - off < step ? len - off : step);
	jsonl_finish(p);
}

void
test_engine_stream__progress(void)
{
	static const char in[] =
	    "{\"stream\":\"Step 1/2 : FROM x\\n\"}\r\n"
	    "{\"stream\":\"a\\nb\\n\"}\n"
	    "\n"
	    "{\"status\":\"Downloading\",\"id\":\"abc\",\"progress\":\"[=>  ]\"}\n"
	    "{\"aux\":{\"ID\":\"sha256:feed\"}}\n"
	    "not json\n"
	    "{\"stream\":\"tail without newline\"}";
	size_t step;

	/* every split of the same bytes gives the same lines */
	for (step = 1; step <= sizeof(in); step++) {
		struct lines l;
		struct jsonl p;

		memset(&l, 0, sizeof(l));
		jsonl_init(&p, collect, &l);
		feed_split(&p, in, step);
		T_STREQ(l.all, "Step 1/2 : FROM x|a|b|abc: Downloading|not json|tail without newline|");
		T_STREQ(p.aux_id, "sha256:feed");
		T_CHECK(!p.failed);
		jsonl_free(&p);
		if (t_cur_failed)
			break;
	}
}

void
test_engine_stream__error_lines(void)
{
	struct lines l;
	struct jsonl p;

	memset(&l, 0, sizeof(l));
	jsonl_init(&p, collect, &l);
	feed_split(&p, "{\"stream\":\"STEP 2/2: RUN exit 3\\n\"}\n"
	               "{\"errorDetail\":{\"message\":\"exit status 3\"},\"error\":\"exit status 3\\n\"}\n"
	               "{\"error\":\"later\"}\n", 7);
	T_CHECK(p.failed);
	T_STREQ(p.err, "exit status 3");
	T_STREQ(l.all, "STEP 2/2: RUN exit 3|");
	jsonl_free(&p);

	/* an API error body where a stream was expected */
	jsonl_init(&p, NULL, NULL);
	feed_split(&p, "{\"message\":\"no such image\"}", 3);
	T_CHECK(p.failed);
	T_STREQ(p.err, "no such image");
	jsonl_free(&p);
}

void
test_engine_stream__overlong_line(void)
{
	struct lines l;
	struct jsonl p;
	char *big;
	size_t n = JSONL_MAX_LINE + 100;

	big = malloc(n + 1);
	memset(big, 'x', n);
	big[n] = '\0';
	memset(&l, 0, sizeof(l));
	jsonl_init(&p, collect, &l);
	jsonl_feed(&p, big, n);
	jsonl_feed(&p, "\n{\"stream\":\"ok\"}\n", 17);
	jsonl_finish(&p);
	T_STREQ(l.all, "(overlong progress line dropped)|ok|");
	T_CHECK(p.cap <= JSONL_MAX_LINE * 2 + 2);
	jsonl_free(&p);
	free(big);
}

void
test_engine_stream__mux_frames(void)
{
	static const unsigned char in[] = {
		1, 0, 0, 0, 0, 0, 0, 6, 'h', 'e', 'l', 'l', 'o', '\n',
		2, 0, 0, 0, 0, 0, 0, 4, 'e', 'r', 'r', '\n',
		1, 0, 0, 0, 0, 0, 0, 0,
		1, 0, 0, 0, 0, 0, 0, 3, 'e', 'n', 'd',
	};
	size_t step, off;

	for (step = 1; step <= sizeof(in); step++) {
		struct mux m;

		mux_init(&m, 0);
		for (off = 0; off < sizeof(in); off += step)
			T_CHECK(mux_feed(&m, in + off, sizeof(in) - off < step ? sizeof(in) - off : step) == 0);
		T_STREQ(m.out, "hello\nerr\nend");
		T_CHECK(m.hlen == 0 && m.remain == 0);
		mux_free(&m);
		if (t_cur_failed)
			break;
	}
}

void
test_engine_stream__mux_partial_and_raw(void)
{
	static const unsigned char part[] = { 1, 0, 0, 0, 0, 0, 0, 10, 'a', 'b', 'c' };
	static const unsigned char bad[] = { 1, 0, 0, 0, 0, 0, 0, 1, 'a', 7, 0, 0, 0, 0, 0, 0, 1, 'b' };
	struct mux m;

	/* a frame cut short keeps what arrived */
	mux_init(&m, 0);
	T_CHECK(mux_feed(&m, part, sizeof(part)) == 0);
	T_STREQ(m.out, "abc");
	T_CHECK(m.remain == 7);
	mux_free(&m);

	/* a bad stream id after a good frame is an error */
	mux_init(&m, 0);
	T_CHECK(mux_feed(&m, bad, sizeof(bad)) == -1);
	mux_free(&m);

	/* a TTY container's log is plain text */
	mux_init(&m, 0);
	T_CHECK(mux_feed(&m, "plain log\n", 10) == 0);
	T_CHECK(m.raw);
	T_STREQ(m.out, "plain log\n");
	mux_free(&m);

	/* the cap keeps the tail */
	mux_init(&m, 4);
	T_CHECK(mux_feed(&m, "abcdef", 6) == 0);
	T_CHECK(mux_feed(&m, "gh", 2) == 0);
	T_STREQ(m.out, "efgh");
	T_CHECK(m.dropped == 4);
	mux_free(&m);
}
