/*
 * sigv4.c: AWS Signature Version 4: canonical request, string to sign, signing key, signature.
 * Owns only temporary buffers (malloc'd and wiped before return); the signing key never escapes.
 */
#include "common/sigv4.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#define SIGV4_MAX_HEADERS	32
#define SIGV4_MAX_PARAMS	64

struct sbuf {
	char	*p;
	size_t	 len;
	size_t	 cap;
	int	 err;
};

struct hdr {
	char	*name;		/* lowercased */
	char	*value;		/* trimmed, inner spaces collapsed */
	size_t	 order;
};

struct param {
	char	*key;		/* encoded */
	char	*val;		/* encoded */
};

static void	sb_putn(struct sbuf *, const char *, size_t);
static void	sb_puts(struct sbuf *, const char *);
static void	sb_putc(struct sbuf *, char);
static void	uri_encode(struct sbuf *, const char *, size_t, int);
static char	*dup_lower(const char *);
static char	*dup_trimmed(const char *);
static int	hdr_cmp(const void *, const void *);
static int	param_cmp(const void *, const void *);
static int	hmac(const unsigned char *, size_t, const char *, size_t,
		    unsigned char *);
static void	to_hex(const unsigned char *, size_t, char *);

int
sigv4_sign(const struct sigv4_request *rq, char *auth_header, size_t len)
{
	struct hdr hs[SIGV4_MAX_HEADERS + 1];
	struct param ps[SIGV4_MAX_PARAMS];
	struct sbuf creq = { NULL, 0, 0, 0 }, signed_h = { NULL, 0, 0, 0 };
	struct sbuf sts = { NULL, 0, 0, 0 }, qs = { NULL, 0, 0, 0 };
	char payload_hex[65], creq_hex[65], sig_hex[65], date[9], *kdate = NULL;
	unsigned char k1[32], k2[32], k3[32], k4[32], sig[32];
	const char *path, *q, *amp, *eq;
	size_t nh = 0, np = 0, i, klen;
	int rc = -1, n;

	memset(hs, 0, sizeof(hs));
	memset(ps, 0, sizeof(ps));
	if (rq == NULL || rq->method == NULL || rq->region == NULL || rq->service == NULL ||
	    rq->access_key == NULL || rq->secret_key == NULL || rq->amz_date == NULL ||
	    strlen(rq->amz_date) != 16 || rq->nheaders > SIGV4_MAX_HEADERS ||
	    (rq->headers == NULL && rq->nheaders > 0))
		goto out;
	memcpy(date, rq->amz_date, 8);
	date[8] = '\0';

	/* Canonical headers: lowercased names, trimmed values, sorted; repeats joined by ','. */
	for (i = 0; i < rq->nheaders; i++) {
		if (rq->headers[i].name == NULL || rq->headers[i].value == NULL)
			goto out;
		hs[nh].name = dup_lower(rq->headers[i].name);
		hs[nh].value = dup_trimmed(rq->headers[i].value);
		hs[nh].order = nh;
		if (hs[nh].name == NULL || hs[nh].value == NULL) {
			nh++;
			goto out;
		}
		nh++;
	}
	if (rq->session_token != NULL) {
		for (i = 0; i < nh; i++)
			if (strcmp(hs[i].name, "x-amz-security-token") == 0)
				break;
		if (i == nh) {
			hs[nh].name = dup_lower("x-amz-security-token");
			hs[nh].value = dup_trimmed(rq->session_token);
			hs[nh].order = nh;
			nh++;
			if (hs[nh - 1].name == NULL || hs[nh - 1].value == NULL)
				goto out;
		}
	}
	qsort(hs, nh, sizeof(hs[0]), hdr_cmp);

	/* Canonical query string: each key and value re-encoded, sorted by key then value. */
	q = rq->query != NULL ? rq->query : "";
	while (*q != '\0') {
		amp = strchr(q, '&');
		if (amp == NULL)
			amp = q + strlen(q);
		if (amp > q) {
			struct sbuf k = { NULL, 0, 0, 0 }, v = { NULL, 0, 0, 0 };

			if (np == SIGV4_MAX_PARAMS)
				goto out;
			eq = memchr(q, '=', (size_t)(amp - q));
			uri_encode(&k, q, (size_t)((eq ? eq : amp) - q), 1);
			uri_encode(&v, eq ? eq + 1 : amp, eq ? (size_t)(amp - eq - 1) : 0, 1);
			sb_putn(&k, "", 0);
			sb_putn(&v, "", 0);
			ps[np].key = k.p;
			ps[np].val = v.p;
			np++;
			if (k.err || v.err)
				goto out;
		}
		q = *amp == '&' ? amp + 1 : amp;
	}
	qsort(ps, np, sizeof(ps[0]), param_cmp);
	for (i = 0; i < np; i++) {
		if (i > 0)
			sb_putc(&qs, '&');
		sb_puts(&qs, ps[i].key);
		sb_putc(&qs, '=');
		sb_puts(&qs, ps[i].val);
	}
	sb_putn(&qs, "", 0);

	sigv4_sha256_hex(rq->payload, rq->payload_len, payload_hex);

	path = rq->path != NULL && rq->path[0] != '\0' ? rq->path : "/";
	sb_puts(&creq, rq->method);
	sb_putc(&creq, '\n');
	uri_encode(&creq, path, strlen(path), 0);
	sb_putc(&creq, '\n');
	sb_puts(&creq, qs.p != NULL ? qs.p : "");
	sb_putc(&creq, '\n');
	for (i = 0; i < nh; i++) {
		if (i > 0 && strcmp(hs[i].name, hs[i - 1].name) == 0) {
			/* Replace the previous newline with ',' and append the value. */
			creq.len--;
			sb_putc(&creq, ',');
		} else {
			sb_puts(&creq, hs[i].name);
			sb_putc(&creq, ':');
			if (signed_h.len > 0)
				sb_putc(&signed_h, ';');
			sb_puts(&signed_h, hs[i].name);
		}
		sb_puts(&creq, hs[i].value);
		sb_putc(&creq, '\n');
	}
	sb_putn(&signed_h, "", 0);
	sb_putc(&creq, '\n');
	sb_puts(&creq, signed_h.p != NULL ? signed_h.p : "");
	sb_putc(&creq, '\n');
	sb_puts(&creq, payload_hex);
	if (creq.err || signed_h.err || qs.err)
		goto out;
	sigv4_sha256_hex((const unsigned char *)creq.p, creq.len, creq_hex);

	sb_puts(&sts, "AWS4-HMAC-SHA256\n");
	sb_puts(&sts, rq->amz_date);
	sb_putc(&sts, '\n');
	sb_puts(&sts, date);
	sb_putc(&sts, '/');
	sb_puts(&sts, rq->region);
	sb_putc(&sts, '/');
	sb_puts(&sts, rq->service);
	sb_puts(&sts, "/aws4_request\n");
	sb_puts(&sts, creq_hex);
	if (sts.err)
		goto out;

	klen = strlen(rq->secret_key) + 4;
	if ((kdate = malloc(klen + 1)) == NULL)
		goto out;
	snprintf(kdate, klen + 1, "AWS4%s", rq->secret_key);
	if (hmac((const unsigned char *)kdate, klen, date, strlen(date), k1) == -1 ||
	    hmac(k1, 32, rq->region, strlen(rq->region), k2) == -1 ||
	    hmac(k2, 32, rq->service, strlen(rq->service), k3) == -1 ||
	    hmac(k3, 32, "aws4_request", 12, k4) == -1 ||
	    hmac(k4, 32, sts.p, sts.len, sig) == -1)
		goto out;
	to_hex(sig, sizeof(sig), sig_hex);

	n = snprintf(auth_header, len,
	    "AWS4-HMAC-SHA256 Credential=%s/%s/%s/%s/aws4_request, SignedHeaders=%s, Signature=%s",
	    rq->access_key, date, rq->region, rq->service,
	    signed_h.p != NULL ? signed_h.p : "", sig_hex);
	if (n < 0 || (size_t)n >= len)
		goto out;
	rc = 0;
out:
	if (kdate != NULL) {
		OPENSSL_cleanse(kdate, strlen(kdate));
		free(kdate);
	}
	OPENSSL_cleanse(k1, sizeof(k1));
	OPENSSL_cleanse(k2, sizeof(k2));
	OPENSSL_cleanse(k3, sizeof(k3));
	OPENSSL_cleanse(k4, sizeof(k4));
	for (i = 0; i < nh; i++) {
		free(hs[i].name);
		if (hs[i].value != NULL)
			OPENSSL_cleanse(hs[i].value, strlen(hs[i].value));
		free(hs[i].value);
	}
	for (i = 0; i < np; i++) {
		free(ps[i].key);
		free(ps[i].val);
	}
	if (creq.p != NULL)
		OPENSSL_cleanse(creq.p, creq.cap);
	free(creq.p);
	free(signed_h.p);
	free(sts.p);
	free(qs.p);
	if (rc == -1 && auth_header != NULL && len > 0)
		auth_header[0] = '\0';
	return rc;
}

void
sigv4_amz_date(time_t t, char *buf, size_t len)
{
	struct tm tm;

	gmtime_r(&t, &tm);
	if (strftime(buf, len, "%Y%m%dT%H%M%SZ", &tm) == 0 && len > 0)
		buf[0] = '\0';
}

void
sigv4_sha256_hex(const unsigned char *data, size_t len, char *hex)
{
	unsigned char md[SHA256_DIGEST_LENGTH];
	static const unsigned char empty[1] = { 0 };

	SHA256(data != NULL ? data : empty, len, md);
	to_hex(md, sizeof(md), hex);
}

static void
sb_putn(struct sbuf *b, const char *s, size_t n)
{
	char *np;
	size_t ncap;

	if (b->err)
		return;
	if (b->len + n + 1 > b->cap) {
		ncap = b->cap ? b->cap : 256;
		while (ncap < b->len + n + 1)
			ncap *= 2;
		if ((np = realloc(b->p, ncap)) == NULL) {
			b->err = 1;
			return;
		}
		b->p = np;
		b->cap = ncap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void
sb_puts(struct sbuf *b, const char *s)
{
	sb_putn(b, s, strlen(s));
}

static void
sb_putc(struct sbuf *b, char c)
{
	sb_putn(b, &c, 1);
}

/*
 * Percent-decodes then re-encodes s with AWS's rules: unreserved A-Z a-z 0-9 - _ . ~ kept,
 * everything else %XX uppercase; '/' kept unless encode_slash (query components).
 */
static void
uri_encode(struct sbuf *b, const char *s, size_t n, int encode_slash)
{
	static const char hx[] = "0123456789ABCDEF";
	char enc[3];
	unsigned char c;
	size_t i;
	int hi, lo;

	for (i = 0; i < n; i++) {
		c = (unsigned char)s[i];
		hi = i + 2 < n ? OPENSSL_hexchar2int((unsigned char)s[i + 1]) : -1;
		lo = i + 2 < n ? OPENSSL_hexchar2int((unsigned char)s[i + 2]) : -1;
		if (c == '%' && hi >= 0 && lo >= 0) {
			c = (unsigned char)(hi * 16 + lo);
			i += 2;
		}
		if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' ||
		    (c == '/' && !encode_slash)) {
			sb_putc(b, (char)c);
		} else {
			enc[0] = '%';
			enc[1] = hx[c >> 4];
			enc[2] = hx[c & 15];
			sb_putn(b, enc, 3);
		}
	}
}

static char *
dup_lower(const char *s)
{
	char *d;
	size_t i;

	if ((d = strdup(s)) == NULL)
		return NULL;
	for (i = 0; d[i] != '\0'; i++)
		d[i] = (char)tolower((unsigned char)d[i]);
	return d;
}

/* Trims both ends and collapses runs of spaces to one (SigV4 canonical header values). */
static char *
dup_trimmed(const char *s)
{
	char *d;
	size_t i = 0;

	while (*s == ' ' || *s == '\t')
		s++;
	if ((d = malloc(strlen(s) + 1)) == NULL)
		return NULL;
	for (; *s != '\0'; s++) {
		if ((*s == ' ' || *s == '\t') && i > 0 && d[i - 1] == ' ')
			continue;
		d[i++] = *s == '\t' ? ' ' : *s;
	}
	while (i > 0 && d[i - 1] == ' ')
		i--;
	d[i] = '\0';
	return d;
}

static int
hdr_cmp(const void *a, const void *b)
{
	const struct hdr *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	if (c != 0)
		return c;
	return x->order < y->order ? -1 : x->order > y->order;
}

static int
param_cmp(const void *a, const void *b)
{
	const struct param *x = a, *y = b;
	int c = strcmp(x->key, y->key);

	return c != 0 ? c : strcmp(x->val, y->val);
}

static int
hmac(const unsigned char *key, size_t klen, const char *msg, size_t mlen, unsigned char *out)
{
	unsigned int olen = 0;

	if (HMAC(EVP_sha256(), key, (int)klen, (const unsigned char *)msg, mlen, out,
	    &olen) == NULL || olen != 32)
		return -1;
	return 0;
}

static void
to_hex(const unsigned char *p, size_t n, char *hex)
{
	static const char hx[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		hex[2 * i] = hx[p[i] >> 4];
		hex[2 * i + 1] = hx[p[i] & 15];
	}
	hex[2 * n] = '\0';
}
