/* t_urlcheck.c: unit tests of common/urlcheck.c: schemes, authority parsing, IP ranges, names. */
#include "tests/unit/t.h"

#include "common/urlcheck.h"

static int ok(const char *url);
static int rejected(const char *url, const char *reason_part);

void
test_urlcheck__accepts(void)
{
	static const char *const good[] = {
		"http://localhost:8000",
		"http://LOCALHOST:9999/a2a",
		"https://agent.example.com",
		"https://agent.example.com/",
		"HTTPS://Agent.Example.COM:443/path?q=1#frag",
		"http://ws-0123456789ab:8000",
		"http://my_service:8000",
		"http://agent.example.com.:80",
		"http://10.0.0.5:8000",
		"http://172.16.0.1:8000",
		"http://172.31.255.254",
		"http://192.168.1.10:8000",
		"http://8.8.8.8",
		"http://100.63.255.255",
		"http://100.128.0.1",
		"http://169.253.1.1",
		"http://223.255.255.255",
		"http://[fd00::1]:8000",
		"http://[fc00::5]",
		"http://[2606:4700::1111]/",
		"http://[::ffff:10.1.2.3]:80",
		"http://[::ffff:8.8.8.8]",
		"http://h:1",
		"http://h:65535",
		"http://a-b.c-d.e",
		"http://x1.y2",
	};
	size_t i;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		if (!ok(good[i])) {
			t_cur_failed = 1;
			fprintf(stderr, "%s: should accept %s\n", t_name, good[i]);
		}
	}
}

void
test_urlcheck__scheme_and_syntax(void)
{
	T_CHECK(rejected(NULL, "url is required"));
	T_CHECK(rejected("", "url is required"));
	T_CHECK(rejected("ftp://example.com", "scheme must be http or https"));
	T_CHECK(rejected("file:///etc/passwd", "scheme must be http or https"));
	T_CHECK(rejected("gopher://x", "scheme must be http or https"));
	T_CHECK(rejected("example.com:8000", "scheme must be http or https"));
	T_CHECK(rejected("//example.com", "scheme must be http or https"));
	T_CHECK(rejected("http:/example.com", "scheme must be http or https"));
	T_CHECK(rejected("httpx://example.com", "scheme must be http or https"));
	T_CHECK(rejected("http://", "host is missing"));
	T_CHECK(rejected("http:///path", "host is missing"));
	T_CHECK(rejected("http://:8000", "host is missing"));
	T_CHECK(rejected("http://exa mple.com", "whitespace"));
	T_CHECK(rejected("http://example.com\n", "whitespace"));
	T_CHECK(rejected("http://example.com/\x7f", "control"));
	T_CHECK(rejected("http://exa%6dple.com", "invalid host name"));
	T_CHECK(rejected("http://example.com\\@evil", "credentials"));
	T_CHECK(rejected("http://exa\\mple.com", "invalid host name"));
	T_CHECK(rejected("http://-bad.example", "invalid host name"));
	T_CHECK(rejected("http://bad-.example", "invalid host name"));
	T_CHECK(rejected("http://a..b", "invalid host name"));
	T_CHECK(rejected("http://.", "invalid host name"));
	T_CHECK(rejected("http://ex'ample.com", "invalid host name"));
	T_CHECK(rejected("http://ex;ample.com", "invalid host name"));
	T_CHECK(rejected("http://\xc3\xa9xample.com", "invalid host name"));
	T_CHECK(rejected("http://1.2.3.4.5", "invalid host name"));
	T_CHECK(rejected("http://999.1.1.1", "invalid host name"));
	T_CHECK(rejected("http://[::1", "invalid IPv6 address"));
	T_CHECK(rejected("http://[zz::1]", "invalid IPv6 address"));
	T_CHECK(rejected("http://[fe80::1%25eth0]", "invalid IPv6 address"));
	T_CHECK(rejected("http://[2606:4700::1111]x", "invalid host name"));
	T_CHECK(rejected("http://2606:4700::1111/", "brackets"));
}

void
test_urlcheck__credentials_and_ports(void)
{
	T_CHECK(rejected("http://user:pass@example.com", "credentials"));
	T_CHECK(rejected("http://user@example.com", "credentials"));
	T_CHECK(rejected("http://@example.com", "credentials"));
	T_CHECK(rejected("http://example.com:80@127.0.0.1", "credentials"));
	T_CHECK(rejected("http://example.com:http", "port is not a number"));
	T_CHECK(rejected("http://example.com:-1", "port is not a number"));
	T_CHECK(rejected("http://example.com:8o", "port is not a number"));
	T_CHECK(rejected("http://example.com:+80", "port is not a number"));
	T_CHECK(rejected("http://example.com:0", "port is out of range"));
	T_CHECK(rejected("http://example.com:65536", "port is out of range"));
	T_CHECK(rejected("http://example.com:99999999999999999999", "port is out of range"));
	T_CHECK(rejected("http://example.com:", "port is empty"));
	T_CHECK(rejected("http://[fd00::1]:", "port is empty"));
	T_CHECK(rejected("http://[fd00::1]:x", "port is not a number"));
	T_CHECK(ok("http://example.com:0080/x"));
	/* The path may hold an @ or a colon: only the authority matters. */
	T_CHECK(ok("http://example.com/a@b:c"));
	T_CHECK(ok("http://example.com?u=a@b"));
}

void
test_urlcheck__blocked_ipv4(void)
{
	T_CHECK(rejected("http://127.0.0.1:8000", "loopback"));
	T_CHECK(rejected("http://127.255.255.254", "loopback"));
	T_CHECK(rejected("http://0.0.0.0", "unspecified"));
	T_CHECK(rejected("http://0.1.2.3", "unspecified"));
	T_CHECK(rejected("http://169.254.169.254/latest/meta-data", "link-local"));
	T_CHECK(rejected("http://169.254.0.1", "link-local"));
	T_CHECK(rejected("http://224.0.0.1", "multicast"));
	T_CHECK(rejected("http://239.255.255.250", "multicast"));
	T_CHECK(rejected("http://240.0.0.1", "reserved"));
	T_CHECK(rejected("http://255.255.255.255", "reserved"));
	T_CHECK(rejected("http://100.64.0.1", "shared address space"));
	T_CHECK(rejected("http://100.127.255.255", "shared address space"));
	T_CHECK(rejected("http://192.0.2.10", "documentation"));
	T_CHECK(rejected("http://198.51.100.7", "documentation"));
	T_CHECK(rejected("http://203.0.113.99", "documentation"));
	/* Forms a resolver reads as an address but inet_pton does not. */
	T_CHECK(rejected("http://127.1", "non-canonical IPv4"));
	T_CHECK(rejected("http://0x7f.0.0.1", "non-canonical IPv4"));
	T_CHECK(rejected("http://2130706433", "non-canonical IPv4"));
	T_CHECK(rejected("http://017700000001", "non-canonical IPv4"));
	T_CHECK(rejected("http://0177.0.0.1", "non-canonical IPv4"));
	T_CHECK(rejected("http://0", "non-canonical IPv4"));
}

void
test_urlcheck__blocked_ipv6(void)
{
	T_CHECK(rejected("http://[::1]:8000", "loopback"));
	T_CHECK(rejected("http://[0:0:0:0:0:0:0:1]", "loopback"));
	T_CHECK(rejected("http://[::]", "unspecified"));
	T_CHECK(rejected("http://[fe80::1]", "link-local"));
	T_CHECK(rejected("http://[febf::1]", "link-local"));
	T_CHECK(rejected("http://[ff02::1]", "multicast"));
	T_CHECK(rejected("http://[ff05::1:3]", "multicast"));
	T_CHECK(rejected("http://[2001:db8::1]", "documentation"));
	T_CHECK(rejected("http://[2001:0db8:ffff::1]", "documentation"));
	T_CHECK(rejected("http://[::ffff:127.0.0.1]", "loopback"));
	T_CHECK(rejected("http://[::ffff:7f00:1]", "loopback"));
	T_CHECK(rejected("http://[::ffff:169.254.169.254]", "link-local"));
	T_CHECK(rejected("http://[::ffff:0.0.0.0]", "unspecified"));
	T_CHECK(rejected("http://[64:ff9b::169.254.169.254]", "link-local"));
	T_CHECK(rejected("http://[::127.0.0.1]", "IPv4-compatible"));
	T_CHECK(ok("http://[fec0::1]"));
	T_CHECK(ok("http://[2001:db9::1]"));
	T_CHECK(ok("http://[fe7f::1]"));
}

void
test_urlcheck__reason_buffer(void)
{
	char small[8];

	/* A short buffer truncates the reason; a NULL buffer is allowed. */
	T_CHECK(urlcheck_agent_url("ftp://x", small, sizeof(small)) == -1);
	T_CHECK(strlen(small) == sizeof(small) - 1);
	T_CHECK(urlcheck_agent_url("ftp://x", NULL, 0) == -1);
	T_CHECK(urlcheck_agent_url("http://ok.example", small, sizeof(small)) == 0);
	T_STREQ(small, "");
}

void
test_urlcheck__length_limit(void)
{
	char url[URLCHECK_MAX_LEN + 16], label[70];
	size_t i;

	memcpy(url, "http://e.com/", 13);
	memset(url + 13, 'a', sizeof(url) - 14);
	url[URLCHECK_MAX_LEN] = '\0';
	T_CHECK(ok(url));
	url[URLCHECK_MAX_LEN] = 'a';
	url[URLCHECK_MAX_LEN + 1] = '\0';
	T_CHECK(rejected(url, "longer than"));
	/* A 64-byte label is one too many. */
	memset(label, 'a', 64);
	label[64] = '\0';
	snprintf(url, sizeof(url), "http://%s.example", label);
	T_CHECK(rejected(url, "invalid host name"));
	label[63] = '\0';
	snprintf(url, sizeof(url), "http://%s.example", label);
	T_CHECK(ok(url));
	/* A 255-byte name is over the 253-byte limit. */
	memcpy(url, "http://", 7);
	for (i = 0; i < 127; i++)
		memcpy(url + 7 + 2 * i, "a.", 2);
	memcpy(url + 7 + 254, "b", 2);
	T_CHECK(rejected(url, "invalid host name"));
}

static int
ok(const char *url)
{
	char why[256];

	if (urlcheck_agent_url(url, why, sizeof(why)) == 0)
		return 1;
	fprintf(stderr, "  %s rejected: %s\n", url, why);
	return 0;
}

static int
rejected(const char *url, const char *reason_part)
{
	char why[256];

	if (urlcheck_agent_url(url, why, sizeof(why)) == 0) {
		fprintf(stderr, "  %s accepted\n", url ? url : "(null)");
		return 0;
	}
	if (strstr(why, reason_part) == NULL) {
		fprintf(stderr, "  %s: reason \"%s\" lacks \"%s\"\n", url ? url : "(null)", why, reason_part);
		return 0;
	}
	return 1;
}
