/*
 * log.c: one-line logs on stderr with time, process name, pid and request id.
 * Owns the process name, the current request id and the masked-secret list (plain malloc).
 */
#include "common/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define MAX_SECRETS 32
#define LINE_MAX_BYTES 4096

static void mask_secrets(char *line, size_t cap);

static char proc_name[48] = "molecule";
static enum log_level min_level = LOG_LVL_INFO;
static char request_id[64];
static char *secrets[MAX_SECRETS];
static size_t nsecrets;

static const char *level_names[] = { "debug", "info", "warn", "error" };

void
log_set_name(const char *name)
{
	snprintf(proc_name, sizeof(proc_name), "%s", name);
}

void
log_set_level(enum log_level lvl)
{
	min_level = lvl;
}

int
log_parse_level(const char *s, enum log_level *out)
{
	size_t i;

	for (i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (strcmp(s, level_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	return -1;
}

void
log_set_request_id(const char *id)
{
	if (id == NULL)
		request_id[0] = '\0';
	else
		snprintf(request_id, sizeof(request_id), "%s", id);
}

const char *
log_request_id(void)
{
	return request_id;
}

void
log_add_secret(const char *secret)
{
	size_t i;

	if (secret == NULL || strlen(secret) < 6 || nsecrets == MAX_SECRETS)
		return;
	for (i = 0; i < nsecrets; i++)
		if (strcmp(secrets[i], secret) == 0)
			return;
	secrets[nsecrets] = strdup(secret);
	if (secrets[nsecrets] != NULL)
		nsecrets++;
}

void
log_add_url_password(const char *url)
{
	const char *p = url ? strstr(url, "://") : NULL, *at, *colon;
	char pw[256];

	if (p == NULL)
		return;
	p += 3;
	at = strchr(p, '@');
	if (at == NULL || (size_t)(at - p) >= sizeof(pw))
		return;
	colon = memchr(p, ':', (size_t)(at - p));
	if (colon == NULL)
		return;
	snprintf(pw, sizeof(pw), "%.*s", (int)(at - colon - 1), colon + 1);
	log_add_secret(pw);
}

void
log_clear_secrets(void)
{
	while (nsecrets > 0)
		free(secrets[--nsecrets]);
}

void
log_msg(enum log_level lvl, const char *fmt, ...)
{
	char line[LINE_MAX_BYTES];
	char ts[32];
	struct timeval tv;
	struct tm tm;
	size_t n;
	va_list ap;

	if (lvl < min_level)
		return;
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	n = (size_t)snprintf(line, sizeof(line), "%s.%03dZ %s[%d] %s%s%s: ", ts,
	    (int)(tv.tv_usec / 1000), proc_name, (int)getpid(), level_names[lvl],
	    request_id[0] ? " req=" : "", request_id);
	if (n < sizeof(line)) {
		va_start(ap, fmt);
		vsnprintf(line + n, sizeof(line) - n, fmt, ap);
		va_end(ap);
	}
	mask_secrets(line, sizeof(line));
	n = strlen(line);
	if (n > sizeof(line) - 2)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	/* One write per line so lines from several processes never interleave. */
	if (write(STDERR_FILENO, line, n) < 0)
		return;
}

static void
mask_secrets(char *line, size_t cap)
{
	static const char mask[] = "[masked]";
	char out[LINE_MAX_BYTES];
	size_t i, slen, o;
	const char *p, *hit;

	for (i = 0; i < nsecrets; i++) {
		if (strstr(line, secrets[i]) == NULL)
			continue;
		slen = strlen(secrets[i]);
		o = 0;
		p = line;
		/* Copy into out with every hit replaced; truncation keeps the mask whole. */
		while ((hit = strstr(p, secrets[i])) != NULL) {
			size_t pre = (size_t)(hit - p);
			if (o + pre + sizeof(mask) >= sizeof(out))
				break;
			memcpy(out + o, p, pre);
			memcpy(out + o + pre, mask, sizeof(mask) - 1);
			o += pre + sizeof(mask) - 1;
			p = hit + slen;
		}
		if (hit != NULL) {
			out[o] = '\0';
		} else {
			snprintf(out + o, sizeof(out) - o, "%s", p);
		}
		snprintf(line, cap, "%s", out);
	}
}
