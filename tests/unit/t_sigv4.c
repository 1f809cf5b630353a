/* t_sigv4.c: unit tests of common/sigv4.c against AWS's published SigV4 test-suite vectors. */
#include "tests/unit/t.h"

#include "common/sigv4.h"

#define AK	"AKIDEXAMPLE"
#define SK	"wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define DATE	"20150830T123600Z"

static int	sign(const char *, const char *, const char *, const struct sigv4_header *,
		    size_t, const char *, char *, size_t);

static const struct sigv4_header vanilla_h[] = {
	{ "Host", "example.amazonaws.com" },
	{ "X-Amz-Date", DATE },
};

void
test_sigv4__get_vanilla(void)
{
	char auth[512];

	T_CHECK(sign("GET", "/", NULL, vanilla_h, 2, "service", auth, sizeof(auth)) == 0);
	T_STREQ(auth, "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/"
	    "aws4_request, SignedHeaders=host;x-amz-date, Signature="
	    "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
}

void
test_sigv4__get_vanilla_query_order_key_case(void)
{
	char auth[512];

	T_CHECK(sign("GET", "/", "Param2=value2&Param1=value1", vanilla_h, 2, "service", auth,
	    sizeof(auth)) == 0);
	T_CHECK(strstr(auth, "Signature="
	    "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500") != NULL);
}

void
test_sigv4__post_vanilla(void)
{
	char auth[512];

	T_CHECK(sign("POST", "/", NULL, vanilla_h, 2, "service", auth, sizeof(auth)) == 0);
	T_CHECK(strstr(auth, "Signature="
	    "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b") != NULL);
}

void
test_sigv4__iam_list_users(void)
{
	static const struct sigv4_header h[] = {
		{ "content-type", "application/x-www-form-urlencoded; charset=utf-8" },
		{ "host", "iam.amazonaws.com" },
		{ "x-amz-date", DATE },
	};
	char auth[512];

	T_CHECK(sign("GET", "/", "Action=ListUsers&Version=2010-05-08", h, 3, "iam", auth,
	    sizeof(auth)) == 0);
	T_STREQ(auth, "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/"
	    "aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature="
	    "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7");
}

void
test_sigv4__header_normalisation_and_limits(void)
{
	static const struct sigv4_header messy[] = {
		{ "X-Amz-Date", DATE },
		{ "HOST", "   example.amazonaws.com   " },
	};
	char a[512], b[512], tiny[16];
	struct sigv4_request rq;

	/* Case, order and surrounding spaces of headers do not change the signature. */
	T_CHECK(sign("GET", "/", NULL, vanilla_h, 2, "service", a, sizeof(a)) == 0);
	T_CHECK(sign("GET", "/", NULL, messy, 2, "service", b, sizeof(b)) == 0);
	T_STREQ(a, b);
	/* Too small a buffer fails and leaves an empty string. */
	T_CHECK(sign("GET", "/", NULL, vanilla_h, 2, "service", tiny, sizeof(tiny)) == -1);
	T_STREQ(tiny, "");
	/* A session token is signed as x-amz-security-token. */
	memset(&rq, 0, sizeof(rq));
	rq.method = "GET";
	rq.path = "/";
	rq.headers = vanilla_h;
	rq.nheaders = 2;
	rq.region = "us-east-1";
	rq.service = "service";
	rq.access_key = AK;
	rq.secret_key = SK;
	rq.session_token = "tok";
	rq.amz_date = DATE;
	T_CHECK(sigv4_sign(&rq, b, sizeof(b)) == 0);
	T_CHECK(strstr(b, "SignedHeaders=host;x-amz-date;x-amz-security-token,") != NULL);
	rq.amz_date = "2015";
	T_CHECK(sigv4_sign(&rq, b, sizeof(b)) == -1);
	sigv4_amz_date(1440938160, a, sizeof(a));
	T_STREQ(a, DATE);
}

static int
sign(const char *method, const char *path, const char *query, const struct sigv4_header *h,
    size_t nh, const char *service, char *out, size_t len)
{
	struct sigv4_request rq;

	memset(&rq, 0, sizeof(rq));
	rq.method = method;
	rq.path = path;
	rq.query = query;
	rq.headers = h;
	rq.nheaders = nh;
	rq.region = "us-east-1";
	rq.service = service;
	rq.access_key = AK;
	rq.secret_key = SK;
	rq.amz_date = DATE;
	return sigv4_sign(&rq, out, len);
}
