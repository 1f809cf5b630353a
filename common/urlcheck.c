/*
 * urlcheck.c: the syntactic safety check of an agent URL (scheme, authority, IP ranges).
 * Owns nothing; parses in place with inet_pton/inet_aton, no regex, no DNS.
 */
#include "common/urlcheck.h"

#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static int fail(char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int check_port(const char *p, const char *end, char *why, size_t whylen);
static int check_ipv4(uint32_t a, char *why, size_t whylen);
static int check_ipv6(const unsigned char *b, char *why, size_t whylen);
static int check_hostname(const char *h, char *why, size_t whylen);

int
urlcheck_agent_url(const char *url, char *why, size_t whylen)
{
	const char *p, *auth, *end, *hend, *colon, *port = NULL;
	char host[256];
	unsigned char v6[16];
	struct in_addr v4;
	size_t len, hlen, i;
	int bracketed = 0;

	if (why != NULL && whylen > 0)
		why[0] = '\0';
	if (url == NULL || url[0] == '\0')
		return fail(why, whylen, "url is required");
	len = strlen(url);
	if (len > URLCHECK_MAX_LEN)
		return fail(why, whylen, "url is longer than %d bytes", URLCHECK_MAX_LEN);
	for (i = 0; i < len; i++)
		if ((unsigned char)url[i] <= 0x20 || (unsigned char)url[i] == 0x7f)
			return fail(why, whylen, "url contains whitespace or control characters");
	if (strncasecmp(url, "http://", 7) == 0)
		p = url + 7;
	else if (strncasecmp(url, "https://", 8) == 0)
		p = url + 8;
	else
		return fail(why, whylen, "scheme must be http or https");

	auth = p;
	end = p + strcspn(p, "/?#");
	if (memchr(auth, '@', (size_t)(end - auth)) != NULL)
		return fail(why, whylen, "credentials in the url are not allowed");
	if (memchr(auth, '\\', (size_t)(end - auth)) != NULL)
		return fail(why, whylen, "invalid host name");
	if (end == auth)
		return fail(why, whylen, "host is missing");

	if (*auth == '[') {
		bracketed = 1;
		hend = memchr(auth, ']', (size_t)(end - auth));
		if (hend == NULL)
			return fail(why, whylen, "invalid IPv6 address");
		p = auth + 1;
		hlen = (size_t)(hend - p);
		if (hend + 1 < end) {
			if (hend[1] != ':')
				return fail(why, whylen, "invalid host name");
			port = hend + 2;
		}
	} else {
		colon = memchr(auth, ':', (size_t)(end - auth));
		if (colon != NULL && memchr(colon + 1, ':', (size_t)(end - colon - 1)) != NULL)
			return fail(why, whylen, "invalid host name (IPv6 addresses need brackets)");
		p = auth;
		hlen = colon != NULL ? (size_t)(colon - auth) : (size_t)(end - auth);
		if (colon != NULL)
			port = colon + 1;
	}
	if (port != NULL && check_port(port, end, why, whylen) < 0)
		return -1;
	if (hlen == 0)
		return fail(why, whylen, "host is missing");
	if (hlen >= sizeof(host))
		return fail(why, whylen, "host name is too long");
	memcpy(host, p, hlen);
	host[hlen] = '\0';

	if (bracketed) {
		if (inet_pton(AF_INET6, host, v6) != 1)
			return fail(why, whylen, "invalid IPv6 address");
		return check_ipv6(v6, why, whylen);
	}
	if (inet_pton(AF_INET, host, &v4) == 1)
		return check_ipv4(ntohl(v4.s_addr), why, whylen);
	/* "127.1", "0x7f.0.0.1", "2130706433": resolvers read these as addresses. */
	if (inet_aton(host, &v4) != 0)
		return fail(why, whylen, "non-canonical IPv4 address");
	return check_hostname(host, why, whylen);
}

static int
fail(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	if (why != NULL && whylen > 0) {
		va_start(ap, fmt);
		vsnprintf(why, whylen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

/* The port text is p..end: decimal digits only, 1..65535. */
static int
check_port(const char *p, const char *end, char *why, size_t whylen)
{
	unsigned long v = 0;

	if (p == end)
		return fail(why, whylen, "port is empty");
	for (; p < end; p++) {
		if (*p < '0' || *p > '9')
			return fail(why, whylen, "port is not a number");
		v = v * 10 + (unsigned long)(*p - '0');
		if (v > 65535)
			return fail(why, whylen, "port is out of range");
	}
	if (v == 0)
		return fail(why, whylen, "port is out of range");
	return 0;
}

/* a in host byte order. */
static int
check_ipv4(uint32_t a, char *why, size_t whylen)
{
	static const struct {
		uint32_t net, mask;
		const char *what;
	} blocked[] = {
		{ 0x00000000, 0xff000000, "unspecified address (0.0.0.0/8)" },
		{ 0x7f000000, 0xff000000, "loopback address (127.0.0.0/8)" },
		{ 0xa9fe0000, 0xffff0000, "link-local address (169.254.0.0/16, cloud metadata)" },
		{ 0x64400000, 0xffc00000, "shared address space (100.64.0.0/10)" },
		{ 0xc0000200, 0xffffff00, "documentation address (192.0.2.0/24)" },
		{ 0xc6336400, 0xffffff00, "documentation address (198.51.100.0/24)" },
		{ 0xcb007100, 0xffffff00, "documentation address (203.0.113.0/24)" },
		{ 0xe0000000, 0xf0000000, "multicast address (224.0.0.0/4)" },
		{ 0xf0000000, 0xf0000000, "reserved address (240.0.0.0/4)" },
	};
	size_t i;

	for (i = 0; i < sizeof(blocked) / sizeof(blocked[0]); i++)
		if ((a & blocked[i].mask) == blocked[i].net)
			return fail(why, whylen, "%s is not allowed", blocked[i].what);
	return 0;
}

static int
check_ipv6(const unsigned char *b, char *why, size_t whylen)
{
	static const unsigned char zero[12], mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff },
	    nat64[12] = { 0, 0x64, 0xff, 0x9b };
	uint32_t v4 = (uint32_t)b[12] << 24 | (uint32_t)b[13] << 16 | (uint32_t)b[14] << 8 | b[15];

	if (memcmp(b, zero, 12) == 0) {
		if (v4 == 0)
			return fail(why, whylen, "unspecified address (::) is not allowed");
		if (v4 == 1)
			return fail(why, whylen, "loopback address (::1) is not allowed");
		return fail(why, whylen, "deprecated IPv4-compatible address (::/96) is not allowed");
	}
	/* An embedded IPv4 address is judged by the IPv4 rules. */
	if (memcmp(b, mapped, 12) == 0 || memcmp(b, nat64, 12) == 0)
		return check_ipv4(v4, why, whylen);
	if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80)
		return fail(why, whylen, "link-local address (fe80::/10) is not allowed");
	if (b[0] == 0xff)
		return fail(why, whylen, "multicast address (ff00::/8) is not allowed");
	if (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0d && b[3] == 0xb8)
		return fail(why, whylen, "documentation address (2001:db8::/32) is not allowed");
	return 0;
}

/*
 * DNS syntax: dot-separated labels of 1..63 letters, digits, '-' or '_' (container names),
 * no label starting or ending with '-', at most 253 bytes, one trailing dot allowed, and a
 * last label that is not all digits (that would be an address, not a name).
 */
static int
check_hostname(const char *h, char *why, size_t whylen)
{
	size_t len = strlen(h), i, lab = 0;
	int digits_only = 1;
	char c;

	if (len > 0 && h[len - 1] == '.')
		len--;
	if (len == 0 || len > 253)
		return fail(why, whylen, "invalid host name");
	for (i = 0; i <= len; i++) {
		c = i < len ? h[i] : '.';
		if (c == '.') {
			if (lab == 0 || lab > 63 || h[i - 1] == '-')
				return fail(why, whylen, "invalid host name");
			if (i == len && digits_only)
				return fail(why, whylen, "invalid host name");
			lab = 0;
			digits_only = 1;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '_'))
			return fail(why, whylen, "invalid host name");
		if (lab == 0 && c == '-')
			return fail(why, whylen, "invalid host name");
		if (c < '0' || c > '9')
			digits_only = 0;
		lab++;
	}
	return 0;
}
