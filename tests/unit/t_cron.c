/*
 * t_cron.c: unit tests of common/cron.c: grammar, error texts, next fire, timezones and DST.
 * Owns nothing; zones come from the system's /usr/share/zoneinfo (tzdata).
 */
#include "tests/unit/t.h"

#include <stdint.h>
#include <time.h>

#include "common/cron.h"

static int64_t utc(int y, int mo, int d, int h, int mi);
static int64_t next_of(const char *expr, const char *tz, int64_t after);
static void check_error(const char *expr, const char *want);
static int count_fires(const char *expr, const char *tz, int64_t from, int64_t to, int64_t gap);

void
test_cron__grammar(void)
{
	struct cron_expr e, d;
	char err[256];

	T_CHECK(cron_parse("*/15 * * * *", &e, err, sizeof(err)) == 0);
	T_CHECK(e.minute == ((1ull << 0) | (1ull << 15) | (1ull << 30) | (1ull << 45)));
	T_CHECK(e.hour == 0xffffff && e.dom == 0xfffffffe && e.month == 0x1ffe && e.dow == 0x7f);
	T_CHECK(e.flags == (CRON_DOM_STAR | CRON_DOW_STAR));

	T_CHECK(cron_parse("0 9-17/2 * * mon-fri", &e, err, sizeof(err)) == 0);
	T_CHECK(e.hour == ((1u << 9) | (1u << 11) | (1u << 13) | (1u << 15) | (1u << 17)));
	T_CHECK(e.dow == 0x3e && e.flags == CRON_DOM_STAR);

	T_CHECK(cron_parse("  0\t0 1,15 JAN,jul 7  ", &e, err, sizeof(err)) == 0);
	T_CHECK(e.dom == ((1u << 1) | (1u << 15)) && e.month == ((1u << 1) | (1u << 7)));
	T_CHECK(e.dow == 1 && e.flags == 0);

	T_CHECK(cron_parse("5/20 * * * 5-7", &e, err, sizeof(err)) == 0);
	T_CHECK(e.minute == ((1ull << 5) | (1ull << 25) | (1ull << 45)));
	T_CHECK(e.dow == ((1u << 0) | (1u << 5) | (1u << 6)));

	T_CHECK(cron_parse("@daily", &d, err, sizeof(err)) == 0);
	T_CHECK(cron_parse("0 0 * * *", &e, err, sizeof(err)) == 0);
	T_CHECK(memcmp(&d, &e, sizeof(e)) == 0);
	T_CHECK(cron_parse("@midnight", &d, err, sizeof(err)) == 0 && memcmp(&d, &e, sizeof(e)) == 0);
	T_CHECK(cron_parse("@hourly", &e, err, sizeof(err)) == 0 && e.minute == 1 && e.hour == 0xffffff);
	T_CHECK(cron_parse("@weekly", &e, err, sizeof(err)) == 0 && e.dow == 1);
	T_CHECK(cron_parse("@monthly", &e, err, sizeof(err)) == 0 && e.dom == 2);
	T_CHECK(cron_parse("@YEARLY", &e, err, sizeof(err)) == 0 && e.month == 2);
	T_CHECK(cron_parse("@annually", &e, err, sizeof(err)) == 0 && e.month == 2 && e.dom == 2);
}

void
test_cron__errors(void)
{
	check_error("61 * * * *", "minute field: 61 out of range 0-59");
	check_error("* 24 * * *", "hour field: 24 out of range 0-23");
	check_error("* * 0 * *", "day-of-month field: 0 out of range 1-31");
	check_error("* * * 13 *", "month field: 13 out of range 1-12");
	check_error("* * * * 8", "day-of-week field: 8 out of range 0-7");
	check_error("* * * *", "expected 5 fields (minute hour day-of-month month day-of-week), got 4");
	check_error("* * * * * *", "expected 5 fields (minute hour day-of-month month day-of-week), "
	    "got more than 5");
	check_error("*/0 * * * *", "minute field: step 0 out of range 1-60");
	check_error("5-3 * * * *", "minute field: range 5-3 is reversed");
	check_error("* * * foo *", "month field: 'foo' is not a number or name");
	check_error("x * * * *", "minute field: 'x' is not a number");
	check_error("1,,2 * * * *", "minute field: empty list item");
	check_error("1, * * * *", "minute field: empty list item");
	check_error("*/ * * * *", "minute field: missing step after '/'");
	check_error("-5 * * * *", "minute field: '-5' is not a number");
	check_error("/5 * * * *", "minute field: missing value");
	check_error("", "empty expression");
	check_error("@reboot", "unsupported descriptor @reboot (use @yearly, @annually, @monthly, "
	    "@weekly, @daily, @midnight or @hourly)");
	check_error("@daily 5", "a descriptor takes no fields after it");
	/* Quotes are cut at a UTF-8 boundary (16 and 32 bytes would split a 2-byte character). */
	check_error("*/a\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9 * * * *",
	    "minute field: step 'a\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9' is not a number");
	check_error("a\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9 * * * *",
	    "minute field: 'a\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9' is not a number");
	check_error("@\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
	    "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9",
	    "unsupported descriptor @\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
	    "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9 (use @yearly, @annually, @monthly, "
	    "@weekly, @daily, @midnight or @hourly)");
}

void
test_cron__next_utc(void)
{
	const struct cron_tz *tz;
	struct cron_expr e;
	int64_t n;
	char err[256];

	T_CHECK(next_of("*/15 * * * *", "UTC", utc(2026, 1, 1, 10, 7)) == utc(2026, 1, 1, 10, 15));
	T_CHECK(next_of("*/15 * * * *", "UTC", utc(2026, 1, 1, 10, 15)) == utc(2026, 1, 1, 10, 30));
	T_CHECK(next_of("0 0 * * *", "", utc(2026, 12, 31, 23, 59)) == utc(2027, 1, 1, 0, 0));
	T_CHECK(next_of("0 0 29 2 *", "UTC", utc(2026, 3, 1, 0, 0)) == utc(2028, 2, 29, 0, 0));
	/* Vixie: both day fields restricted -> the 13th or any Friday (Feb 6, 2026 is one). */
	T_CHECK(next_of("0 0 13 * 5", "UTC", utc(2026, 2, 1, 0, 0)) == utc(2026, 2, 6, 0, 0));
	T_CHECK(next_of("0 0 13 * *", "UTC", utc(2026, 2, 1, 0, 0)) == utc(2026, 2, 13, 0, 0));
	/* A day field starting with '*' makes it AND: odd days that are Fridays. */
	T_CHECK(next_of("0 0 */2 * 5", "UTC", utc(2026, 2, 1, 0, 0)) == utc(2026, 2, 13, 0, 0));
	T_CHECK(next_of("0 12 * * mon-fri", "UTC", utc(2026, 1, 3, 0, 0)) == utc(2026, 1, 5, 12, 0));
	T_CHECK(next_of("@yearly", "UTC", utc(2026, 6, 1, 0, 0)) == utc(2027, 1, 1, 0, 0));
	/* Never fires: an error, not a loop. */
	T_CHECK(cron_parse("0 0 30 2 *", &e, err, sizeof(err)) == 0);
	tz = cron_tz_get("UTC", err, sizeof(err));
	T_CHECK(tz != NULL && cron_next(&e, tz, utc(2026, 1, 1, 0, 0), &n) == -1);
	T_CHECK(cron_next_str("0 0 30 2 *", "UTC", 0, &n, err, sizeof(err)) == -1);
	T_STREQ(err, "invalid cron expression: it never fires");
	T_CHECK(cron_next_str("0 0 * * *", "Mars/Olympus", 0, &n, err, sizeof(err)) == -1);
	T_STREQ(err, "invalid timezone: Mars/Olympus");
	T_CHECK(cron_next_str("99 * * * *", "UTC", 0, &n, err, sizeof(err)) == -1);
	T_STREQ(err, "invalid cron expression: minute field: 99 out of range 0-59");
}

void
test_cron__timezones(void)
{
	char err[256];

	T_CHECK(cron_tz_valid_name("America/New_York"));
	T_CHECK(cron_tz_valid_name("Etc/GMT+5"));
	T_CHECK(cron_tz_valid_name("UTC"));
	T_CHECK(!cron_tz_valid_name("../etc/passwd"));
	T_CHECK(!cron_tz_valid_name("/etc/passwd"));
	T_CHECK(!cron_tz_valid_name("America/../UTC"));
	T_CHECK(!cron_tz_valid_name("America//New_York"));
	T_CHECK(!cron_tz_valid_name("America/"));
	T_CHECK(!cron_tz_valid_name("a b"));
	T_CHECK(!cron_tz_valid_name(""));
	T_CHECK(cron_tz_get("../../etc/passwd", err, sizeof(err)) == NULL);
	T_CHECK(cron_tz_get("Europe", err, sizeof(err)) == NULL);		/* a directory */
	T_CHECK(cron_tz_get("zone1970.tab", err, sizeof(err)) == NULL);	/* not TZif */
	T_CHECK(cron_tz_get("No/Such_Zone", err, sizeof(err)) == NULL);
	T_CHECK(cron_tz_get("Asia/Kolkata", err, sizeof(err)) != NULL);
	T_CHECK(cron_tz_offset(cron_tz_get("Asia/Kolkata", err, sizeof(err)),
	    utc(2026, 7, 1, 0, 0)) == 19800);
	T_CHECK(cron_tz_offset(cron_tz_get("America/New_York", err, sizeof(err)),
	    utc(2026, 7, 1, 0, 0)) == -4 * 3600);
	T_CHECK(cron_tz_offset(cron_tz_get("America/New_York", err, sizeof(err)),
	    utc(2026, 1, 1, 0, 0)) == -5 * 3600);
	/* Beyond the TZif table: the POSIX footer rule. */
	T_CHECK(cron_tz_offset(cron_tz_get("Europe/Berlin", err, sizeof(err)),
	    utc(2060, 7, 1, 0, 0)) == 2 * 3600);
	T_CHECK(cron_tz_offset(cron_tz_get("Australia/Sydney", err, sizeof(err)),
	    utc(2060, 1, 1, 0, 0)) == 11 * 3600);
	T_CHECK(cron_tz_offset(cron_tz_get("Australia/Sydney", err, sizeof(err)),
	    utc(2060, 7, 1, 0, 0)) == 10 * 3600);
	T_CHECK(cron_tz_from_bytes((const unsigned char *)"TZif2xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
	    48, err, sizeof(err)) == NULL);
}

void
test_cron__dst_new_york(void)
{
	/* 2026-03-08 02:00 EST -> 03:00 EDT (07:00Z): 02:30 does not exist, fires at the gap's end. */
	T_CHECK(next_of("30 2 * * *", "America/New_York", utc(2026, 3, 7, 12, 0)) == utc(2026, 3, 8, 7, 0));
	T_CHECK(next_of("30 2 * * *", "America/New_York", utc(2026, 3, 8, 7, 0)) == utc(2026, 3, 9, 6, 30));
	/* Every minute of the gap fires only once, at 03:00 EDT. */
	T_CHECK(next_of("*/10 2 * * *", "America/New_York", utc(2026, 3, 8, 6, 55)) == utc(2026, 3, 8, 7, 0));
	T_CHECK(next_of("*/10 2 * * *", "America/New_York", utc(2026, 3, 8, 7, 0)) == utc(2026, 3, 9, 6, 0));
	/* 2026-11-01 02:00 EDT -> 01:00 EST (06:00Z): 01:30 occurs twice, fires at the first. */
	T_CHECK(next_of("30 1 * * *", "America/New_York", utc(2026, 10, 31, 12, 0)) == utc(2026, 11, 1, 5, 30));
	T_CHECK(next_of("30 1 * * *", "America/New_York", utc(2026, 11, 1, 5, 30)) == utc(2026, 11, 2, 6, 30));
	/* Every hour matches: both occurrences fire (01:00 EDT, 01:00 EST, 02:00 EST), as in Vixie cron. */
	T_CHECK(next_of("0 * * * *", "America/New_York", utc(2026, 11, 1, 4, 30)) == utc(2026, 11, 1, 5, 0));
	T_CHECK(next_of("0 * * * *", "America/New_York", utc(2026, 11, 1, 5, 0)) == utc(2026, 11, 1, 6, 0));
	T_CHECK(next_of("0 * * * *", "America/New_York", utc(2026, 11, 1, 5, 50)) == utc(2026, 11, 1, 6, 0));
	T_CHECK(next_of("0 * * * *", "America/New_York", utc(2026, 11, 1, 6, 0)) == utc(2026, 11, 1, 7, 0));
	/* The local day of the change has 25 hours, each fire a fixed interval after the last. */
	T_CHECK(count_fires("*/15 * * * *", "America/New_York", utc(2026, 11, 1, 4, 0),
	    utc(2026, 11, 2, 5, 0), 900) == 100);
	T_CHECK(count_fires("30 * * * *", "America/New_York", utc(2026, 11, 1, 4, 0),
	    utc(2026, 11, 2, 5, 0), 3600) == 25);
	/* A restricted hour field keeps the first occurrence only, even over every other hour. */
	T_CHECK(next_of("30 0-23/1 * * *", "America/New_York", utc(2026, 11, 1, 5, 30)) == utc(2026, 11, 1, 6, 30));
	T_CHECK(next_of("30 1-23 * * *", "America/New_York", utc(2026, 11, 1, 5, 30)) == utc(2026, 11, 1, 7, 30));
	/* Spring forward with every hour: 02:30 fires at the gap's end, 03:00 EDT (24 fires in 23 h). */
	T_CHECK(next_of("*/10 * * * *", "America/New_York", utc(2026, 3, 8, 6, 55)) == utc(2026, 3, 8, 7, 0));
	T_CHECK(next_of("*/10 * * * *", "America/New_York", utc(2026, 3, 8, 7, 0)) == utc(2026, 3, 8, 7, 10));
	T_CHECK(count_fires("30 * * * *", "America/New_York", utc(2026, 3, 8, 5, 0),
	    utc(2026, 3, 9, 4, 0), 0) == 24);
	/* Ordinary days keep their wall time across the change. */
	T_CHECK(next_of("0 9 * * *", "America/New_York", utc(2026, 3, 7, 15, 0)) == utc(2026, 3, 8, 13, 0));
	/* 2040 is past the TZif table: the footer rule (second Sunday of March, March 11). */
	T_CHECK(next_of("30 2 * * *", "America/New_York", utc(2040, 3, 10, 12, 0)) == utc(2040, 3, 11, 7, 0));
}

void
test_cron__dst_berlin(void)
{
	/* 2026-03-29 02:00 CET -> 03:00 CEST (01:00Z). */
	T_CHECK(next_of("30 2 * * *", "Europe/Berlin", utc(2026, 3, 28, 12, 0)) == utc(2026, 3, 29, 1, 0));
	T_CHECK(next_of("30 2 * * *", "Europe/Berlin", utc(2026, 3, 29, 1, 0)) == utc(2026, 3, 30, 0, 30));
	/* 2026-10-25 03:00 CEST -> 02:00 CET (01:00Z): 02:30 CEST (00:30Z) first, not 02:30 CET. */
	T_CHECK(next_of("30 2 * * *", "Europe/Berlin", utc(2026, 10, 24, 12, 0)) == utc(2026, 10, 25, 0, 30));
	T_CHECK(next_of("30 2 * * *", "Europe/Berlin", utc(2026, 10, 25, 0, 30)) == utc(2026, 10, 26, 1, 30));
	T_CHECK(next_of("0 12 * * *", "Europe/Berlin", utc(2026, 7, 1, 0, 0)) == utc(2026, 7, 1, 10, 0));
	/* Every hour matches: 02:xx CEST and 02:xx CET both fire; the local day has 25 hours. */
	T_CHECK(next_of("30 * * * *", "Europe/Berlin", utc(2026, 10, 25, 0, 30)) == utc(2026, 10, 25, 1, 30));
	T_CHECK(count_fires("*/15 * * * *", "Europe/Berlin", utc(2026, 10, 24, 22, 0),
	    utc(2026, 10, 25, 23, 0), 900) == 100);
	T_CHECK(count_fires("30 * * * *", "Europe/Berlin", utc(2026, 10, 24, 22, 0),
	    utc(2026, 10, 25, 23, 0), 3600) == 25);
	/* 2050: footer rule, last Sunday of March (March 27). */
	T_CHECK(next_of("30 2 * * *", "Europe/Berlin", utc(2050, 3, 26, 12, 0)) == utc(2050, 3, 27, 1, 0));
}

static int64_t
utc(int y, int mo, int d, int h, int mi)
{
	struct tm tm;

	memset(&tm, 0, sizeof(tm));
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	return (int64_t)timegm(&tm);
}

static int64_t
next_of(const char *expr, const char *tz, int64_t after)
{
	char err[256];
	int64_t n = -1;

	if (cron_next_str(expr, tz, after, &n, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s: %s [%s]: %s\n", t_name, expr, tz, err);
		return -1;
	}
	return n;
}

/*
 * Fires in [from, to), each strictly after the last; with gap > 0 every fire after the first
 * must come exactly gap seconds after the previous one. -1 on any failure.
 */
static int
count_fires(const char *expr, const char *tz, int64_t from, int64_t to, int64_t gap)
{
	int64_t t = from - 1, prev = -1;
	int n = 0;

	for (;;) {
		t = next_of(expr, tz, t);
		if (t < 0)
			return -1;
		if (t >= to)
			return n;
		if (gap > 0 && prev >= 0 && t - prev != gap) {
			fprintf(stderr, "%s: %s [%s]: %lld s between fires at %lld\n", t_name, expr, tz,
			    (long long)(t - prev), (long long)t);
			return -1;
		}
		prev = t;
		n++;
	}
}

static void
check_error(const char *expr, const char *want)
{
	struct cron_expr e;
	char err[256] = "";

	T_CHECK(cron_parse(expr, &e, err, sizeof(err)) == -1);
	T_STREQ(err, want);
}
