/*
 * cron.c: the 5-field cron grammar, IANA timezones read from TZif files, next-fire computation.
 * Owns the process-lifetime timezone cache; parsed expressions are plain values of the caller.
 */
#include "common/cron.h"

#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common/util.h"

#define ZONEINFO_DIR "/usr/share/zoneinfo"
#define TZIF_MAX_BYTES (512 * 1024)
#define TZ_CACHE_MAX 1024
#define FOOTER_MAX 128
#define SECS_PER_DAY 86400
#define ALL_HOURS 0xffffffu

struct field_def {
	const char *name;
	int min, max;
	const char *const *names;	/* 3-letter names for min..min+n, or NULL */
	int nnames;
};

/* One DST rule date of a POSIX TZ string: Jn, n or Mm.w.d, and the time of day. */
struct tz_rule_date {
	char kind;		/* 'J', 'D' (zero-based day) or 'M' */
	int n, month, week, wday;
	long secs;		/* local time of day of the change, may be negative or > 24h */
};

struct tz_posix {
	int valid;
	long std_off, dst_off;	/* seconds east */
	int has_dst;
	struct tz_rule_date start, end;
};

struct cron_tz {
	char name[CRON_TZ_NAME_MAX + 1];
	size_t ntrans, ntypes;
	int64_t *trans;		/* transition instants, ascending */
	unsigned char *idx;	/* type index per transition */
	long *types;		/* utoff per type */
	struct tz_posix posix;
};

static int parse_field(const char *text, size_t len, const struct field_def *fd, uint64_t *bits,
    char *err, size_t errlen);
static int parse_value(const char *s, size_t len, const struct field_def *fd, int *out,
    char *err, size_t errlen);
static int day_matches(const struct cron_expr *e, int y, int m, int d);
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d);
static void civil_from_days(int64_t z, int *y, int *m, int *d);
static int days_in_month(int y, int m);
static int is_leap(int y);
static int local_to_utc(const struct cron_tz *tz, int64_t local, int64_t *utc, int64_t *second);
static int quote_len(const char *s, size_t len, size_t max);
static long posix_offset(const struct tz_posix *p, int64_t t);
static int64_t rule_day(const struct tz_rule_date *r, int y);
static const char *parse_posix_name(const char *s);
static const char *parse_posix_offset(const char *s, long *out, int is_time);
static const char *parse_posix_date(const char *s, struct tz_rule_date *r);
static int parse_posix(const char *s, struct tz_posix *p);
static uint32_t be32(const unsigned char *p);
static int64_t be64(const unsigned char *p);
static struct cron_tz *tz_utc(void);
static struct cron_tz *tz_load_file(const char *name, char *err, size_t errlen);

static const char *const month_names[] = { "jan", "feb", "mar", "apr", "may", "jun", "jul",
	"aug", "sep", "oct", "nov", "dec" };
static const char *const dow_names[] = { "sun", "mon", "tue", "wed", "thu", "fri", "sat" };

static const struct field_def fields[5] = {
	{ "minute", 0, 59, NULL, 0 },
	{ "hour", 0, 23, NULL, 0 },
	{ "day-of-month", 1, 31, NULL, 0 },
	{ "month", 1, 12, month_names, 12 },
	/* 7 is Sunday too; folded into 0 after parsing. */
	{ "day-of-week", 0, 7, dow_names, 7 },
};

static const struct {
	const char *name;
	const char *expr;
} descriptors[] = {
	{ "@yearly", "0 0 1 1 *" }, { "@annually", "0 0 1 1 *" }, { "@monthly", "0 0 1 * *" },
	{ "@weekly", "0 0 * * 0" }, { "@daily", "0 0 * * *" }, { "@midnight", "0 0 * * *" },
	{ "@hourly", "0 * * * *" },
};

static struct cron_tz *tz_cache[TZ_CACHE_MAX];
static size_t tz_ncache;

int
cron_parse(const char *text, struct cron_expr *e, char *err, size_t errlen)
{
	const char *p, *start[6];
	size_t len[6], n = 0, i;
	uint64_t bits[5];

	memset(e, 0, sizeof(*e));
	if (text == NULL || text[0] == '\0')
		return set_err(err, errlen, "empty expression"), -1;
	if (strlen(text) > CRON_EXPR_MAX)
		return set_err(err, errlen, "expression too long (max %d bytes)", CRON_EXPR_MAX), -1;
	p = text;
	while (*p == ' ' || *p == '\t')
		p++;
	if (*p == '@') {
		len[0] = strcspn(p, " \t");
		if (p[len[0] + strspn(p + len[0], " \t")] != '\0')
			return set_err(err, errlen, "a descriptor takes no fields after it"), -1;
		for (i = 0; i < sizeof(descriptors) / sizeof(descriptors[0]); i++)
			if (strlen(descriptors[i].name) == len[0] &&
			    strncasecmp(p, descriptors[i].name, len[0]) == 0)
				return cron_parse(descriptors[i].expr, e, err, errlen);
		return set_err(err, errlen, "unsupported descriptor %.*s (use @yearly, @annually, "
		    "@monthly, @weekly, @daily, @midnight or @hourly)", quote_len(p, len[0], 32), p), -1;
	}
	while (*p != '\0') {
		if (n == 6)
			break;
		start[n] = p;
		len[n] = strcspn(p, " \t");
		p += len[n];
		n++;
		while (*p == ' ' || *p == '\t')
			p++;
	}
	if (n != 5 || *p != '\0')
		return set_err(err, errlen, "expected 5 fields (minute hour day-of-month month "
		    "day-of-week), got %s%zu", n > 5 ? "more than " : "", n > 5 ? (size_t)5 : n), -1;
	for (i = 0; i < 5; i++)
		if (parse_field(start[i], len[i], &fields[i], &bits[i], err, errlen) < 0)
			return -1;
	e->minute = bits[0];
	e->hour = (uint32_t)bits[1];
	e->dom = (uint32_t)bits[2];
	e->month = (uint32_t)bits[3];
	e->dow = (uint32_t)(bits[4] & 0x7f);
	if (bits[4] & 0x80)
		e->dow |= 1;
	if (start[2][0] == '*' || start[2][0] == '?')
		e->flags |= CRON_DOM_STAR;
	if (start[4][0] == '*' || start[4][0] == '?')
		e->flags |= CRON_DOW_STAR;
	return 0;
}

int
cron_tz_valid_name(const char *name)
{
	const char *p, *comp;
	size_t n;

	if (name == NULL || name[0] == '\0' || strlen(name) > CRON_TZ_NAME_MAX)
		return 0;
	for (comp = name;; comp = p + 1) {
		n = strspn(comp, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_+-.");
		p = comp + n;
		/* Empty, "." and ".." components would leave the zoneinfo tree or name a directory. */
		if (n == 0 || comp[0] == '.' || comp[0] == '-')
			return 0;
		if (*p == '\0')
			return 1;
		if (*p != '/')
			return 0;
	}
}

const struct cron_tz *
cron_tz_get(const char *name, char *err, size_t errlen)
{
	struct cron_tz *tz;
	size_t i;

	if (name == NULL || name[0] == '\0')
		name = "UTC";
	if (!cron_tz_valid_name(name))
		return set_err(err, errlen, "invalid timezone name"), NULL;
	for (i = 0; i < tz_ncache; i++)
		if (strcmp(tz_cache[i]->name, name) == 0)
			return tz_cache[i];
	if (tz_ncache == TZ_CACHE_MAX)
		return set_err(err, errlen, "too many distinct timezones in use"), NULL;
	tz = tz_load_file(name, err, errlen);
	if (tz == NULL && (strcmp(name, "UTC") == 0 || strcmp(name, "Etc/UTC") == 0))
		tz = tz_utc();	/* no tzdata installed: UTC still works */
	if (tz == NULL)
		return NULL;
	snprintf(tz->name, sizeof(tz->name), "%s", name);
	tz_cache[tz_ncache++] = tz;
	return tz;
}

void
cron_tz_cache_clear(void)
{
	size_t i;

	for (i = 0; i < tz_ncache; i++)
		cron_tz_free(tz_cache[i]);
	tz_ncache = 0;
}

struct cron_tz *
cron_tz_from_bytes(const unsigned char *buf, size_t len, char *err, size_t errlen)
{
	struct cron_tz *tz = NULL;
	const unsigned char *p, *end = buf + len;
	uint32_t cnt[6];	/* isutcnt isstdcnt leapcnt timecnt typecnt charcnt */
	size_t i, tsize, block;
	char footer[FOOTER_MAX + 1];
	const unsigned char *nl;
	int version;

	if (len < 44 || memcmp(buf, "TZif", 4) != 0)
		return set_err(err, errlen, "not a TZif file"), NULL;
	version = buf[4] == 0 ? 1 : buf[4] - '0';
	if (version < 1 || version > 4)
		return set_err(err, errlen, "unsupported TZif version"), NULL;
	p = buf;
	tsize = 4;
	for (;;) {
		for (i = 0; i < 6; i++)
			cnt[i] = be32(p + 20 + 4 * i);
		/* Bounds before multiplying: a hostile header must not wrap size_t. */
		if (cnt[3] > 100000 || cnt[4] == 0 || cnt[4] > 256 || cnt[5] > 100000 || cnt[2] > 100000 ||
		    (cnt[0] != 0 && cnt[0] != cnt[4]) || (cnt[1] != 0 && cnt[1] != cnt[4]))
			return set_err(err, errlen, "corrupt TZif header"), NULL;
		block = cnt[3] * tsize + cnt[3] + cnt[4] * 6 + cnt[5] + cnt[2] * (tsize + 4) + cnt[1] + cnt[0];
		if ((size_t)(end - p) < 44 + block)
			return set_err(err, errlen, "truncated TZif file"), NULL;
		if (version == 1 || tsize == 8)
			break;
		/* v2+: skip the 32-bit block; the 64-bit one follows with its own header. */
		p += 44 + block;
		if ((size_t)(end - p) < 44 || memcmp(p, "TZif", 4) != 0)
			return set_err(err, errlen, "corrupt TZif v2 header"), NULL;
		tsize = 8;
	}
	tz = calloc(1, sizeof(*tz));
	if (tz == NULL)
		goto oom;
	tz->ntrans = cnt[3];
	tz->ntypes = cnt[4];
	tz->trans = calloc(cnt[3] + 1, sizeof(*tz->trans));
	tz->idx = calloc(cnt[3] + 1, 1);
	tz->types = calloc(cnt[4], sizeof(*tz->types));
	if (tz->trans == NULL || tz->idx == NULL || tz->types == NULL)
		goto oom;
	p += 44;
	for (i = 0; i < cnt[3]; i++, p += tsize) {
		tz->trans[i] = tsize == 8 ? be64(p) : (int64_t)(int32_t)be32(p);
		if (i > 0 && tz->trans[i] <= tz->trans[i - 1]) {
			set_err(err, errlen, "TZif transitions out of order");
			goto fail;
		}
	}
	for (i = 0; i < cnt[3]; i++, p++) {
		tz->idx[i] = *p;
		if (*p >= cnt[4]) {
			set_err(err, errlen, "TZif transition names a missing type");
			goto fail;
		}
	}
	for (i = 0; i < cnt[4]; i++, p += 6) {
		tz->types[i] = (long)(int32_t)be32(p);
		if (tz->types[i] <= -25 * 3600 || tz->types[i] >= 26 * 3600) {
			set_err(err, errlen, "TZif offset out of range");
			goto fail;
		}
	}
	p += cnt[5] + cnt[2] * (tsize + 4) + cnt[1] + cnt[0];
	/* The footer: "\n<POSIX TZ>\n", used after the last transition. */
	if (version >= 2 && end - p >= 2 && *p == '\n') {
		nl = memchr(p + 1, '\n', (size_t)(end - p - 1));
		if (nl != NULL && (size_t)(nl - p - 1) <= FOOTER_MAX) {
			memcpy(footer, p + 1, (size_t)(nl - p - 1));
			footer[nl - p - 1] = '\0';
			if (footer[0] != '\0' && parse_posix(footer, &tz->posix) < 0) {
				set_err(err, errlen, "TZif footer is not a valid TZ string");
				goto fail;
			}
		}
	}
	return tz;
oom:
	set_err(err, errlen, "out of memory");
fail:
	cron_tz_free(tz);
	return NULL;
}

void
cron_tz_free(struct cron_tz *tz)
{
	if (tz == NULL)
		return;
	free(tz->trans);
	free(tz->idx);
	free(tz->types);
	free(tz);
}

long
cron_tz_offset(const struct cron_tz *tz, int64_t t)
{
	size_t lo, hi, mid;

	if (tz->ntrans == 0 || t < tz->trans[0]) {
		if (tz->ntrans == 0 && tz->posix.valid)
			return posix_offset(&tz->posix, t);
		return tz->types[0];
	}
	if (t >= tz->trans[tz->ntrans - 1] && tz->posix.valid)
		return posix_offset(&tz->posix, t);
	lo = 0;
	hi = tz->ntrans;
	while (hi - lo > 1) {	/* trans[lo] <= t < trans[hi] */
		mid = lo + (hi - lo) / 2;
		if (tz->trans[mid] <= t)
			lo = mid;
		else
			hi = mid;
	}
	return tz->types[tz->idx[lo]];
}

/*
 * Walks the zone's wall clock forward, skipping whole months, days and hours that cannot
 * match, and maps each matching wall time to its instant. That mapping never goes backwards
 * (gaps map to the transition, overlaps to the first occurrence), so the first instant past
 * `after` is the answer. With every hour matching, an overlap's second occurrences fire too:
 * one past `after` is kept in `late` and wins if it comes first. The walk starts from `after`
 * read with the smallest offset around it, early enough for those second occurrences.
 */
int
cron_next(const struct cron_expr *e, const struct cron_tz *tz, int64_t after, int64_t *next)
{
	int64_t local, days, secs, utc, second, l, late = INT64_MAX;
	long off = cron_tz_offset(tz, after), o;
	int y, mo, d, h, mi, ylimit, both = (e->hour & ALL_HOURS) == ALL_HOURS;

	o = cron_tz_offset(tz, after - SECS_PER_DAY);
	off = o < off ? o : off;
	o = cron_tz_offset(tz, after + SECS_PER_DAY);
	off = o < off ? o : off;
	local = after + off;
	days = local / SECS_PER_DAY;
	secs = local % SECS_PER_DAY;
	if (secs < 0) {
		secs += SECS_PER_DAY;
		days--;
	}
	civil_from_days(days, &y, &mo, &d);
	h = (int)(secs / 3600);
	mi = (int)(secs % 3600 / 60);
	ylimit = y + CRON_SEARCH_YEARS;
	while (y <= ylimit) {
		if (!(e->month & (1u << mo))) {
			mo++, d = 1, h = 0, mi = 0;
			if (mo > 12)
				mo = 1, y++;
			continue;
		}
		if (d > days_in_month(y, mo) || !day_matches(e, y, mo, d)) {
			d++, h = 0, mi = 0;
			if (d > days_in_month(y, mo)) {
				d = 1, mo++;
				if (mo > 12)
					mo = 1, y++;
			}
			continue;
		}
		if (!(e->hour & (1u << h))) {
			h++, mi = 0;
			if (h == 24)
				h = 0, d++;	/* d may pass the month's end: the day check rolls it */
			continue;
		}
		if (!(e->minute & ((uint64_t)1 << mi))) {
			mi++;
			if (mi == 60)
				mi = 0, h++;
			if (h == 24)
				h = 0, d++;
			continue;
		}
		l = days_from_civil(y, (unsigned)mo, (unsigned)d) * SECS_PER_DAY + h * 3600 + mi * 60;
		local_to_utc(tz, l, &utc, &second);
		if (both && second > after && second < late)
			late = second;
		if (utc > after) {
			*next = utc < late ? utc : late;
			return 0;
		}
		mi++;
		if (mi == 60)
			mi = 0, h++;
		if (h == 24)
			h = 0, d++;
	}
	if (late != INT64_MAX) {
		*next = late;
		return 0;
	}
	return -1;
}

int
cron_next_str(const char *expr, const char *tzname, int64_t after, int64_t *next,
    char *err, size_t errlen)
{
	struct cron_expr e;
	const struct cron_tz *tz;
	char why[256];

	if (cron_parse(expr, &e, why, sizeof(why)) < 0)
		return set_err(err, errlen, "invalid cron expression: %s", why), -1;
	tz = cron_tz_get(tzname, why, sizeof(why));
	if (tz == NULL)
		return set_err(err, errlen, "invalid timezone: %s", tzname ? tzname : ""), -1;
	if (cron_next(&e, tz, after, next) < 0)
		return set_err(err, errlen, "invalid cron expression: it never fires"), -1;
	return 0;
}

/*
 * One comma-separated field into a bit set. Items: '*' or '?', a value, a range a-b, each with
 * an optional /step ("a/step" runs to the field's maximum).
 */
static int
parse_field(const char *text, size_t len, const struct field_def *fd, uint64_t *bits,
    char *err, size_t errlen)
{
	const char *item = text, *end = text + len, *comma, *slash, *dash;
	int lo, hi, step, v;

	*bits = 0;
	for (;;) {
		comma = memchr(item, ',', (size_t)(end - item));
		if (comma == NULL)
			comma = end;
		if (comma == item)
			return set_err(err, errlen, "%s field: empty list item", fd->name), -1;
		slash = memchr(item, '/', (size_t)(comma - item));
		step = 1;
		if (slash != NULL) {
			if (slash + 1 == comma)
				return set_err(err, errlen, "%s field: missing step after '/'", fd->name), -1;
			if (strspn(slash + 1, "0123456789") < (size_t)(comma - slash - 1) ||
			    comma - slash - 1 > 4)
				return set_err(err, errlen, "%s field: step '%.*s' is not a number", fd->name,
				    quote_len(slash + 1, (size_t)(comma - slash - 1), 16), slash + 1), -1;
			step = atoi(slash + 1);
			if (step < 1 || step > fd->max - fd->min + 1)
				return set_err(err, errlen, "%s field: step %d out of range 1-%d", fd->name,
				    step, fd->max - fd->min + 1), -1;
		} else {
			slash = comma;
		}
		if (slash - item == 1 && (*item == '*' || *item == '?')) {
			lo = fd->min;
			hi = fd->max;
			/* '*' in day-of-week runs 0-6: 7 would only repeat Sunday. */
			if (fd->max == 7)
				hi = 6;
		} else {
			if (slash == item)
				return set_err(err, errlen, "%s field: missing value", fd->name), -1;
			dash = memchr(item + 1, '-', (size_t)(slash - item - 1));
			if (dash == NULL) {
				if (parse_value(item, (size_t)(slash - item), fd, &lo, err, errlen) < 0)
					return -1;
				hi = slash != comma ? fd->max : lo;
				if (slash != comma && fd->max == 7)
					hi = 6;
			} else {
				if (parse_value(item, (size_t)(dash - item), fd, &lo, err, errlen) < 0 ||
				    parse_value(dash + 1, (size_t)(slash - dash - 1), fd, &hi, err, errlen) < 0)
					return -1;
				if (lo > hi)
					return set_err(err, errlen, "%s field: range %d-%d is reversed", fd->name,
					    lo, hi), -1;
			}
		}
		for (v = lo; v <= hi; v += step)
			*bits |= (uint64_t)1 << v;
		if (comma == end)
			return 0;
		item = comma + 1;
		if (item == end)
			return set_err(err, errlen, "%s field: empty list item", fd->name), -1;
	}
}

/* A number in [min, max] or, for month and day-of-week, a three-letter English name. */
static int
parse_value(const char *s, size_t len, const struct field_def *fd, int *out, char *err, size_t errlen)
{
	int i, v = 0;
	size_t k;

	if (len == 0)
		return set_err(err, errlen, "%s field: missing value", fd->name), -1;
	if (fd->names != NULL && len == 3) {
		for (i = 0; i < fd->nnames; i++)
			if (strncasecmp(s, fd->names[i], 3) == 0) {
				*out = fd->min + i;
				return 0;
			}
	}
	for (k = 0; k < len; k++) {
		if (s[k] < '0' || s[k] > '9')
			return set_err(err, errlen, "%s field: '%.*s' is not a %s", fd->name,
			    quote_len(s, len, 16), s, fd->names ? "number or name" : "number"), -1;
		if (v < 100000)
			v = v * 10 + (s[k] - '0');
	}
	if (v < fd->min || v > fd->max)
		return set_err(err, errlen, "%s field: %d out of range %d-%d", fd->name, v, fd->min,
		    fd->max), -1;
	*out = v;
	return 0;
}

/* Vixie cron: both day fields restricted -> either matches; otherwise both must. */
static int
day_matches(const struct cron_expr *e, int y, int m, int d)
{
	int dom_ok = (e->dom >> d) & 1;
	int dow_ok = (e->dow >> (int)((days_from_civil(y, (unsigned)m, (unsigned)d) % 7 + 11) % 7)) & 1;

	if (e->flags & (CRON_DOM_STAR | CRON_DOW_STAR))
		return dom_ok && dow_ok;
	return dom_ok || dow_ok;
}

/* Howard Hinnant's algorithms: proleptic Gregorian date <-> days since 1970-01-01. */
static int64_t
days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static void
civil_from_days(int64_t z, int *y, int *m, int *d)
{
	int64_t era, doe, yoe, doy, mp;

	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = z - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = (int)(yoe + era * 400 + (*m <= 2));
}

static int
is_leap(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int
days_in_month(int y, int m)
{
	static const int dim[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

	return m == 2 && is_leap(y) ? 29 : dim[m - 1];
}

/*
 * The instant of wall time `local`: with the offsets a day either side as candidates, a wall
 * time one of them maps back to exists (two: an overlap, the earlier in *utc and the later in
 * *second); none: a gap, and the answer is the transition that ends it. Outside an overlap
 * *second == *utc. Returns 0 (always, kept for the contract).
 */
static int
local_to_utc(const struct cron_tz *tz, int64_t local, int64_t *utc, int64_t *second)
{
	long ob = cron_tz_offset(tz, local - SECS_PER_DAY), oa = cron_tz_offset(tz, local + SECS_PER_DAY);
	int64_t ub = local - ob, ua = local - oa, lo, hi, mid;
	int vb = cron_tz_offset(tz, ub) == ob, va = cron_tz_offset(tz, ua) == oa;

	if (vb && va) {
		*utc = ub < ua ? ub : ua;
		*second = ub < ua ? ua : ub;
		return 0;
	}
	if (vb || va) {
		*utc = *second = vb ? ub : ua;
		return 0;
	}
	/* Gap: the offset changes between ua and ub (oa > ob); find the first instant with oa. */
	lo = ua < ub ? ua : ub;
	hi = ua < ub ? ub : ua;
	while (hi - lo > 1) {	/* offset(lo) != oa, offset(hi) == oa */
		mid = lo + (hi - lo) / 2;
		if (cron_tz_offset(tz, mid) == oa)
			hi = mid;
		else
			lo = mid;
	}
	*utc = *second = hi;
	return 0;
}

/* How much of s[0..len) to quote in an error: at most max bytes, never half a UTF-8 character. */
static int
quote_len(const char *s, size_t len, size_t max)
{
	return (int)(len <= max ? len : utf8_prefix_len(s, max));
}

/* The offset at t from a POSIX TZ rule (std, or dst between the year's start and end). */
static long
posix_offset(const struct tz_posix *p, int64_t t)
{
	int64_t start, end, days;
	int y, m, d;

	if (!p->has_dst)
		return p->std_off;
	days = (t + p->std_off) / SECS_PER_DAY - ((t + p->std_off) % SECS_PER_DAY < 0);
	civil_from_days(days, &y, &m, &d);
	/* Rule times are wall clock: the start in standard time, the end in daylight time. */
	start = rule_day(&p->start, y) * SECS_PER_DAY + p->start.secs - p->std_off;
	end = rule_day(&p->end, y) * SECS_PER_DAY + p->end.secs - p->dst_off;
	if (start < end)
		return t >= start && t < end ? p->dst_off : p->std_off;
	return t >= end && t < start ? p->std_off : p->dst_off;
}

/* Days since the epoch of a rule's date in year y. */
static int64_t
rule_day(const struct tz_rule_date *r, int y)
{
	int64_t jan1 = days_from_civil(y, 1, 1), first;
	int dow, day;

	switch (r->kind) {
	case 'J':
		return jan1 + r->n - 1 + (is_leap(y) && r->n >= 60);
	case 'D':
		return jan1 + r->n;
	default:
		first = days_from_civil(y, (unsigned)r->month, 1);
		dow = (int)((first % 7 + 11) % 7);
		day = 1 + (r->wday - dow + 7) % 7 + (r->week - 1) * 7;
		while (day > days_in_month(y, r->month))
			day -= 7;
		return first + day - 1;
	}
}

static const char *
parse_posix_name(const char *s)
{
	const char *p = s;

	if (*p == '<') {
		p = strchr(p, '>');
		return p != NULL && p - s >= 2 ? p + 1 : NULL;
	}
	while ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z'))
		p++;
	return p - s >= 3 ? p : NULL;
}

/* [+-]hh[:mm[:ss]] into seconds (as written: callers negate offsets). */
static const char *
parse_posix_offset(const char *s, long *out, int is_time)
{
	long sign = 1, part[3] = { 0, 0, 0 };
	int i, digits;

	if (*s == '+' || *s == '-')
		sign = *s++ == '-' ? -1 : 1;
	for (i = 0; i < 3; i++) {
		if (i > 0) {
			if (*s != ':')
				break;
			s++;
		}
		for (digits = 0; *s >= '0' && *s <= '9' && digits < 3; digits++)
			part[i] = part[i] * 10 + (*s++ - '0');
		if (digits == 0)
			return NULL;
	}
	if (part[0] > (is_time ? 167 : 24) || part[1] > 59 || part[2] > 59)
		return NULL;
	*out = sign * (part[0] * 3600 + part[1] * 60 + part[2]);
	return s;
}

static const char *
parse_posix_date(const char *s, struct tz_rule_date *r)
{
	const char *q;
	char *end;
	long v;

	r->secs = 7200;
	if (*s == 'M') {
		r->kind = 'M';
		r->month = (int)strtol(s + 1, &end, 10);
		if (end == s + 1 || *end != '.')
			return NULL;
		r->week = (int)strtol(end + 1, &end, 10);
		if (*end != '.')
			return NULL;
		r->wday = (int)strtol(end + 1, &end, 10);
		if (r->month < 1 || r->month > 12 || r->week < 1 || r->week > 5 || r->wday < 0 || r->wday > 6)
			return NULL;
	} else {
		r->kind = *s == 'J' ? 'J' : 'D';
		if (*s == 'J')
			s++;
		if (*s < '0' || *s > '9')
			return NULL;
		v = strtol(s, &end, 10);
		if (v < (r->kind == 'J') || v > 365)
			return NULL;
		r->n = (int)v;
	}
	q = end;
	if (*q == '/')
		q = parse_posix_offset(q + 1, &r->secs, 1);
	return q;
}

/* "std offset [dst [offset] [,start[/time],end[/time]]]" (POSIX, RFC 8536 §3.3). */
static int
parse_posix(const char *s, struct tz_posix *p)
{
	long off;

	memset(p, 0, sizeof(*p));
	s = parse_posix_name(s);
	if (s == NULL || (s = parse_posix_offset(s, &off, 0)) == NULL)
		return -1;
	p->std_off = -off;
	p->valid = 1;
	if (*s == '\0')
		return 0;
	s = parse_posix_name(s);
	if (s == NULL)
		return -1;
	p->has_dst = 1;
	p->dst_off = p->std_off + 3600;
	if (*s != ',' && *s != '\0') {
		if ((s = parse_posix_offset(s, &off, 0)) == NULL)
			return -1;
		p->dst_off = -off;
	}
	if (*s == '\0') {
		/* No rule given: the US rules, as most implementations default to. */
		p->start = (struct tz_rule_date){ 'M', 0, 3, 2, 0, 7200 };
		p->end = (struct tz_rule_date){ 'M', 0, 11, 1, 0, 7200 };
		return 0;
	}
	if (*s != ',' || (s = parse_posix_date(s + 1, &p->start)) == NULL || *s != ',' ||
	    (s = parse_posix_date(s + 1, &p->end)) == NULL || *s != '\0')
		return -1;
	return 0;
}

static uint32_t
be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t
be64(const unsigned char *p)
{
	return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

static struct cron_tz *
tz_utc(void)
{
	struct cron_tz *tz = calloc(1, sizeof(*tz));

	if (tz == NULL)
		return NULL;
	tz->types = calloc(1, sizeof(*tz->types));
	tz->ntypes = 1;
	if (tz->types == NULL) {
		free(tz);
		return NULL;
	}
	return tz;
}

/* Reads ZONEINFO_DIR/name (a regular file, capped) and parses it. NULL with err set. */
static struct cron_tz *
tz_load_file(const char *name, char *err, size_t errlen)
{
	char path[sizeof(ZONEINFO_DIR) + CRON_TZ_NAME_MAX + 2];
	unsigned char *buf = NULL;
	struct cron_tz *tz = NULL;
	struct stat st;
	size_t got = 0;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", ZONEINFO_DIR, name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		set_err(err, errlen, "unknown timezone");
		return NULL;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size < 44 || st.st_size > TZIF_MAX_BYTES) {
		set_err(err, errlen, "unknown timezone");
		goto out;
	}
	buf = malloc((size_t)st.st_size);
	if (buf == NULL) {
		set_err(err, errlen, "out of memory");
		goto out;
	}
	while (got < (size_t)st.st_size) {
		n = read(fd, buf + got, (size_t)st.st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			set_err(err, errlen, "reading the timezone file failed");
			goto out;
		}
		got += (size_t)n;
	}
	tz = cron_tz_from_bytes(buf, got, err, errlen);
out:
	free(buf);
	close(fd);
	return tz;
}
