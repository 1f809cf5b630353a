/*
 * cron.h: the 5-field cron grammar, IANA timezones read from TZif files, next-fire computation.
 * Owns the process-lifetime timezone cache; parsed expressions are plain values of the caller.
 */
#ifndef MOLECULE_CRON_H
#define MOLECULE_CRON_H

#include <stddef.h>
#include <stdint.h>

#define CRON_EXPR_MAX 256
#define CRON_TZ_NAME_MAX 64
/* cron_next gives up (the expression never fires) after this many years of local time. */
#define CRON_SEARCH_YEARS 10

/* Vixie cron's flags: a day field whose text starts with '*' (or '?'). */
#define CRON_DOM_STAR 0x1
#define CRON_DOW_STAR 0x2

struct cron_expr {
	uint64_t minute;	/* bit n: minute n, 0-59 */
	uint32_t hour;		/* 0-23 */
	uint32_t dom;		/* 1-31 */
	uint32_t month;		/* 1-12 */
	uint32_t dow;		/* 0-6, Sunday 0 (7 is folded into 0) */
	unsigned flags;
};

struct cron_tz;

/*
 * Parses a 5-field expression (minute hour day-of-month month day-of-week: numbers, names
 * jan-dec and sun-sat, '*', ranges a-b, steps /n, lists a,b) or one of @yearly @annually
 * @monthly @weekly @daily @midnight @hourly. Day-of-month and day-of-week combine as in Vixie
 * cron: when both are restricted (neither starts with '*'), a day matching either fires.
 * Returns 0, or -1 with err saying what is wrong ("minute field: 61 out of range 0-59").
 */
int cron_parse(const char *text, struct cron_expr *e, char *err, size_t errlen);

/* 1 when name is a safe zoneinfo name: [A-Za-z0-9_+-] components joined by '/', no "..". */
int cron_tz_valid_name(const char *name);
/*
 * The zone name ("" means UTC) loaded from /usr/share/zoneinfo/<name> (TZif v1-v4, with the
 * POSIX TZ footer for times after the last transition). Zones are cached for the process's
 * lifetime: the pointer stays valid until cron_tz_cache_clear. Returns NULL with err set.
 */
const struct cron_tz *cron_tz_get(const char *name, char *err, size_t errlen);
/* Frees every cached zone (end of process). */
void cron_tz_cache_clear(void);
/* Parses TZif bytes into a new zone (fuzzing, tests). NULL with err set; free with cron_tz_free. */
struct cron_tz *cron_tz_from_bytes(const unsigned char *buf, size_t len, char *err, size_t errlen);
void cron_tz_free(struct cron_tz *tz);
/* UTC offset in seconds east of Greenwich at instant t (epoch seconds). */
long cron_tz_offset(const struct cron_tz *tz, int64_t t);

/*
 * The first fire strictly after `after` (epoch seconds) into *next. Matching is done on the
 * zone's wall clock. DST: a wall time that does not exist (spring-forward gap) fires once, at
 * the first instant after the gap (the transition itself). A wall time that occurs twice
 * (fall-back overlap) fires at both occurrences when the hour field is unrestricted (all 24
 * hours: "0,15,30,45 * * * *" and "30 * * * *" keep firing through the repeated hour, as in Vixie
 * cron), and only at its first occurrence otherwise ("30 1 * * *" fires once). Returns 0, or
 * -1 when nothing matches within CRON_SEARCH_YEARS (e.g. "0 0 30 2 *").
 */
int cron_next(const struct cron_expr *e, const struct cron_tz *tz, int64_t after, int64_t *next);
/* cron_parse + cron_tz_get + cron_next; err says which part failed. Returns 0 or -1. */
int cron_next_str(const char *expr, const char *tzname, int64_t after, int64_t *next,
    char *err, size_t errlen);

#endif
