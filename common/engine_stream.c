/*
 * engine_stream.c: incremental parsers for the Engine API's JSON-lines progress and multiplexed logs.
 * Owns each parser's buffers; callbacks get borrowed strings valid only during the call.
 */
#include "common/engine_stream.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

static int buf_append(char **buf, size_t *len, size_t *cap, const void *data, size_t n);
static void jsonl_line(struct jsonl *p, char *line, size_t len);
static void jsonl_emit_text(struct jsonl *p, const char *text);
static void jsonl_set_err(struct jsonl *p, const char *msg);
static int mux_out(struct mux *m, const unsigned char *data, size_t n);

static int
buf_append(char **buf, size_t *len, size_t *cap, const void *data, size_t n)
{
	char *nb;
	size_t ncap;

	if (*len + n + 1 > *cap) {
		ncap = *cap ? *cap : 256;
		while (ncap < *len + n + 1)
			ncap *= 2;
		nb = realloc(*buf, ncap);
		if (nb == NULL)
			return -1;
		*buf = nb;
		*cap = ncap;
	}
	if (n > 0)
		memcpy(*buf + *len, data, n);
	*len += n;
	(*buf)[*len] = '\0';
	return 0;
}

void
jsonl_init(struct jsonl *p, engine_line_fn fn, void *arg)
{
	memset(p, 0, sizeof(*p));
	p->fn = fn;
	p->arg = arg;
}

void
jsonl_free(struct jsonl *p)
{
	free(p->buf);
	p->buf = NULL;
	p->len = p->cap = 0;
}

static void
jsonl_set_err(struct jsonl *p, const char *msg)
{
	size_t n;

	/* the first error is the cause; later ones are usually its echo */
	if (p->failed)
		return;
	p->failed = 1;
	snprintf(p->err, sizeof(p->err), "%s", msg && *msg ? msg : "unknown error");
	n = strlen(p->err);
	while (n > 0 && (p->err[n - 1] == '\n' || p->err[n - 1] == '\r'))
		p->err[--n] = '\0';
}

/* A "stream" value may carry several lines or half of one; each non-empty line goes out on its own. */
static void
jsonl_emit_text(struct jsonl *p, const char *text)
{
	char *copy, *s, *nl;
	size_t n;

	if (p->fn == NULL || text == NULL)
		return;
	copy = strdup(text);
	if (copy == NULL)
		return;
	for (s = copy; s != NULL && *s != '\0'; s = nl) {
		nl = strchr(s, '\n');
		if (nl != NULL)
			*nl++ = '\0';
		n = strlen(s);
		while (n > 0 && s[n - 1] == '\r')
			s[--n] = '\0';
		if (n > 0)
			p->fn(p->arg, s);
	}
	free(copy);
}

static void
jsonl_line(struct jsonl *p, char *line, size_t len)
{
	struct json_tokener *tok;
	struct json_object *o = NULL, *v, *w;
	char msg[600];

	while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == ' ' || line[len - 1] == '\t'))
		line[--len] = '\0';
	if (len == 0)
		return;
	p->lines++;
	tok = json_tokener_new();
	if (tok != NULL) {
		o = json_tokener_parse_ex(tok, line, (int)len);
		if (o != NULL && json_tokener_get_parse_end(tok) != len) {
			json_object_put(o);
			o = NULL;
		}
		json_tokener_free(tok);
	}
	if (o == NULL || !json_object_is_type(o, json_type_object)) {
		/* not JSON: pass it on as text rather than lose it */
		json_object_put(o);
		jsonl_emit_text(p, line);
		return;
	}
	if (json_object_object_get_ex(o, "error", &v) && json_object_is_type(v, json_type_string))
		jsonl_set_err(p, json_object_get_string(v));
	if (json_object_object_get_ex(o, "errorDetail", &v) && json_object_is_type(v, json_type_object) &&
	    json_object_object_get_ex(v, "message", &w) && json_object_is_type(w, json_type_string))
		jsonl_set_err(p, json_object_get_string(w));
	/* an API error body ({"message"}) arriving where a stream was expected */
	if (json_object_object_length(o) == 1 && json_object_object_get_ex(o, "message", &v) &&
	    json_object_is_type(v, json_type_string))
		jsonl_set_err(p, json_object_get_string(v));
	if (json_object_object_get_ex(o, "stream", &v) && json_object_is_type(v, json_type_string))
		jsonl_emit_text(p, json_object_get_string(v));
	if (json_object_object_get_ex(o, "status", &v) && json_object_is_type(v, json_type_string)) {
		if (json_object_object_get_ex(o, "id", &w) && json_object_is_type(w, json_type_string))
			snprintf(msg, sizeof(msg), "%.200s: %.380s", json_object_get_string(w),
			         json_object_get_string(v));
		else
			snprintf(msg, sizeof(msg), "%.580s", json_object_get_string(v));
		jsonl_emit_text(p, msg);
	}
	if (json_object_object_get_ex(o, "aux", &v) && json_object_is_type(v, json_type_object) &&
	    json_object_object_get_ex(v, "ID", &w) && json_object_is_type(w, json_type_string))
		snprintf(p->aux_id, sizeof(p->aux_id), "%s", json_object_get_string(w));
	json_object_put(o);
}

int
jsonl_feed(struct jsonl *p, const void *data, size_t len)
{
	const char *s = data, *nl;
	size_t n;

	while (len > 0) {
		nl = memchr(s, '\n', len);
		n = nl ? (size_t)(nl - s) : len;
		if (p->skipping) {
			/* the rest of an overlong line */
		} else if (p->len + n > JSONL_MAX_LINE) {
			p->skipping = 1;
			p->len = 0;
			jsonl_emit_text(p, "(overlong progress line dropped)");
		} else if (buf_append(&p->buf, &p->len, &p->cap, s, n) != 0) {
			return -1;
		}
		if (nl == NULL)
			break;
		if (!p->skipping && p->len > 0)
			jsonl_line(p, p->buf, p->len);
		p->skipping = 0;
		p->len = 0;
		s = nl + 1;
		len -= n + 1;
	}
	return 0;
}

int
jsonl_finish(struct jsonl *p)
{
	if (!p->skipping && p->len > 0)
		jsonl_line(p, p->buf, p->len);
	p->skipping = 0;
	p->len = 0;
	return 0;
}

void
mux_init(struct mux *m, size_t max_bytes)
{
	memset(m, 0, sizeof(*m));
	m->max = max_bytes ? max_bytes : (size_t)8 << 20;
}

void
mux_free(struct mux *m)
{
	free(m->out);
	m->out = NULL;
	m->len = m->cap = 0;
}

/* Appends, keeping only the last m->max bytes: for logs the tail is what explains a failure. */
static int
mux_out(struct mux *m, const unsigned char *data, size_t n)
{
	size_t drop;

	if (n >= m->max) {
		m->dropped += m->len + (n - m->max);
		data += n - m->max;
		n = m->max;
		m->len = 0;
	} else if (m->len + n > m->max) {
		drop = m->len + n - m->max;
		memmove(m->out, m->out + drop, m->len - drop);
		m->len -= drop;
		m->dropped += drop;
	}
	return buf_append(&m->out, &m->len, &m->cap, data, n);
}

int
mux_feed(struct mux *m, const void *data, size_t len)
{
	const unsigned char *s = data;
	size_t take;

	if (m->out == NULL && buf_append(&m->out, &m->len, &m->cap, "", 0) != 0)
		return -1;
	if (len == 0)
		return 0;
	if (!m->decided) {
		/* a TTY container's log is not framed: its first byte is text, not a stream id */
		m->decided = 1;
		m->raw = s[0] > 2;
	}
	if (m->raw)
		return mux_out(m, s, len);
	while (len > 0) {
		if (m->remain == 0) {
			take = 8 - m->hlen < len ? 8 - m->hlen : len;
			memcpy(m->hdr + m->hlen, s, take);
			m->hlen += take;
			s += take;
			len -= take;
			if (m->hlen < 8)
				break;
			m->hlen = 0;
			if (m->hdr[0] > 2 || m->hdr[1] || m->hdr[2] || m->hdr[3])
				return -1;
			m->remain = (size_t)m->hdr[4] << 24 | (size_t)m->hdr[5] << 16 | (size_t)m->hdr[6] << 8 |
			            (size_t)m->hdr[7];
			continue;
		}
		take = m->remain < len ? m->remain : len;
		if (mux_out(m, s, take) != 0)
			return -1;
		m->remain -= take;
		s += take;
		len -= take;
	}
	return 0;
}
