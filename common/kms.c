/*
 * kms.c: AWS KMS over the JSON 1.1 protocol (POST /, X-Amz-Target), signed with SigV4, via libcurl.
 * Owns the ARN, region, endpoint, credentials (registered as log secrets) and one curl handle.
 */
#include "common/kms.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <json-c/json.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "common/log.h"
#include "common/sigv4.h"

#define KMS_TIMEOUT_S		5L
#define KMS_CONNECT_TIMEOUT_S	2L
#define KMS_MAX_RESPONSE	(64 * 1024)

struct resp_buf {
	char	*p;
	size_t	 len;
	int	 too_big;
};

static struct {
	int	 ready;
	char	*arn;
	char	 region[64];
	char	*url;
	char	*host;		/* host[:port] as sent in Host and signed */
	char	*access_key;
	char	*secret_key;
	char	*session_token;
	CURL	*curl;
} kms;

static enum kms_result	call(const char *, json_object *, json_object **, char *, size_t);
static size_t		on_body(char *, size_t, size_t, void *);
static char		*b64_encode(const unsigned char *, size_t);
static int		b64_decode(const char *, unsigned char *, size_t, size_t *);
static void		free_secret(char **);
static void		wipe_plaintext(json_object *);

int
kms_parse_region(const char *arn, char *region, size_t len)
{
	const char *p, *end, *acct, *res;
	size_t n, i;

	if (arn == NULL || strncmp(arn, "arn:", 4) != 0)
		return -1;
	/* arn:PARTITION:kms:REGION:ACCOUNT:key/ID */
	p = strchr(arn + 4, ':');
	if (p == NULL || strncmp(p, ":kms:", 5) != 0)
		return -1;
	p += 5;
	end = strchr(p, ':');
	if (end == NULL)
		return -1;
	n = (size_t)(end - p);
	if (n == 0 || n >= len || n >= 64)
		return -1;
	acct = end + 1;
	res = strchr(acct, ':');
	if (res == NULL || res == acct)
		return -1;
	res++;
	if ((strncmp(res, "key/", 4) != 0 && strncmp(res, "alias/", 6) != 0) ||
	    strchr(res, '/')[1] == '\0')
		return -1;
	for (i = 0; i < n; i++)
		if (!((p[i] >= 'a' && p[i] <= 'z') || (p[i] >= '0' && p[i] <= '9') || p[i] == '-'))
			return -1;
	memcpy(region, p, n);
	region[n] = '\0';
	return 0;
}

int
kms_init(const char *key_arn, const char *endpoint, char *err, size_t errlen)
{
	const char *ak, *sk, *tok, *h, *slash;
	char url[512];

	kms_cleanup();
	if (kms_parse_region(key_arn, kms.region, sizeof(kms.region)) == -1) {
		snprintf(err, errlen, "KMS_KEY_ARN is not a KMS key ARN "
		    "(arn:aws:kms:REGION:ACCOUNT:key/ID)");
		return -1;
	}
	ak = getenv("AWS_ACCESS_KEY_ID");
	sk = getenv("AWS_SECRET_ACCESS_KEY");
	tok = getenv("AWS_SESSION_TOKEN");
	if (ak == NULL || ak[0] == '\0' || sk == NULL || sk[0] == '\0') {
		snprintf(err, errlen, "KMS_KEY_ARN is set but AWS_ACCESS_KEY_ID or "
		    "AWS_SECRET_ACCESS_KEY is missing");
		return -1;
	}
	if (endpoint != NULL && endpoint[0] != '\0') {
		if (strncmp(endpoint, "https://", 8) != 0 && strncmp(endpoint, "http://", 7) != 0) {
			snprintf(err, errlen, "KMS_ENDPOINT must be an http(s) URL");
			return -1;
		}
		snprintf(url, sizeof(url), "%s", endpoint);
	} else
		snprintf(url, sizeof(url), "https://kms.%s.amazonaws.com/", kms.region);
	h = strstr(url, "://") + 3;
	slash = strchr(h, '/');
	kms.host = slash != NULL ? strndup(h, (size_t)(slash - h)) : strdup(h);
	if (slash == NULL && strlen(url) + 1 < sizeof(url))
		strcat(url, "/");
	kms.url = strdup(url);
	kms.arn = strdup(key_arn);
	kms.access_key = strdup(ak);
	kms.secret_key = strdup(sk);
	kms.session_token = tok != NULL && tok[0] != '\0' ? strdup(tok) : NULL;
	kms.curl = curl_easy_init();
	if (kms.host == NULL || kms.host[0] == '\0' || kms.url == NULL || kms.arn == NULL ||
	    kms.access_key == NULL || kms.secret_key == NULL || kms.curl == NULL ||
	    (tok != NULL && tok[0] != '\0' && kms.session_token == NULL)) {
		snprintf(err, errlen, "KMS client set-up failed");
		kms_cleanup();
		return -1;
	}
	log_add_secret(kms.secret_key);
	if (kms.session_token != NULL)
		log_add_secret(kms.session_token);
	kms.ready = 1;
	return 0;
}

void
kms_cleanup(void)
{
	curl_easy_cleanup(kms.curl);
	kms.curl = NULL;
	free(kms.arn);
	free(kms.url);
	free(kms.host);
	kms.arn = kms.url = kms.host = NULL;
	free(kms.access_key);
	kms.access_key = NULL;
	free_secret(&kms.secret_key);
	free_secret(&kms.session_token);
	kms.ready = 0;
}

enum kms_result
kms_generate_data_key(unsigned char key[KMS_DATA_KEY_LEN], unsigned char **wrapped,
    size_t *wlen, char *err, size_t errlen)
{
	json_object *req = NULL, *resp = NULL, *ctx = NULL, *v = NULL;
	unsigned char *w = NULL;
	size_t n = 0;
	enum kms_result rc = KMS_FAIL;

	*wrapped = NULL;
	*wlen = 0;
	req = json_object_new_object();
	ctx = json_object_new_object();
	json_object_object_add(ctx, "molecule", json_object_new_string("secrets"));
	json_object_object_add(req, "KeyId", json_object_new_string(kms.arn != NULL ? kms.arn : ""));
	json_object_object_add(req, "KeySpec", json_object_new_string("AES_256"));
	json_object_object_add(req, "EncryptionContext", ctx);
	if ((rc = call("TrentService.GenerateDataKey", req, &resp, err, errlen)) != KMS_OK)
		goto out;
	rc = KMS_FAIL;
	if (!json_object_object_get_ex(resp, "Plaintext", &v) ||
	    !json_object_is_type(v, json_type_string) ||
	    b64_decode(json_object_get_string(v), key, KMS_DATA_KEY_LEN, &n) == -1 ||
	    n != KMS_DATA_KEY_LEN) {
		snprintf(err, errlen, "KMS GenerateDataKey returned no usable Plaintext");
		goto out;
	}
	if ((w = malloc(KMS_MAX_WRAPPED)) == NULL ||
	    !json_object_object_get_ex(resp, "CiphertextBlob", &v) ||
	    !json_object_is_type(v, json_type_string) ||
	    b64_decode(json_object_get_string(v), w, KMS_MAX_WRAPPED, &n) == -1 || n == 0) {
		snprintf(err, errlen, "KMS GenerateDataKey returned no usable CiphertextBlob");
		OPENSSL_cleanse(key, KMS_DATA_KEY_LEN);
		goto out;
	}
	*wrapped = w;
	*wlen = n;
	w = NULL;
	rc = KMS_OK;
out:
	wipe_plaintext(resp);
	free(w);
	json_object_put(req);
	json_object_put(resp);
	return rc;
}

/* json-c keeps the response's base64 Plaintext (a data key) in its own buffer: wipe it. */
static void
wipe_plaintext(json_object *resp)
{
	json_object *v = NULL;

	if (resp != NULL && json_object_object_get_ex(resp, "Plaintext", &v) &&
	    json_object_is_type(v, json_type_string))
		OPENSSL_cleanse((void *)(uintptr_t)json_object_get_string(v),
		    (size_t)json_object_get_string_len(v));
}

enum kms_result
kms_decrypt(const unsigned char *wrapped, size_t wlen, unsigned char key[KMS_DATA_KEY_LEN],
    char *err, size_t errlen)
{
	json_object *req = NULL, *resp = NULL, *ctx = NULL, *v = NULL;
	char *b64 = NULL;
	size_t n = 0;
	enum kms_result rc = KMS_FAIL;

	if (wlen == 0 || wlen > KMS_MAX_WRAPPED || (b64 = b64_encode(wrapped, wlen)) == NULL) {
		snprintf(err, errlen, "bad wrapped data key");
		goto out;
	}
	req = json_object_new_object();
	ctx = json_object_new_object();
	json_object_object_add(ctx, "molecule", json_object_new_string("secrets"));
	json_object_object_add(req, "CiphertextBlob", json_object_new_string(b64));
	json_object_object_add(req, "KeyId", json_object_new_string(kms.arn != NULL ? kms.arn : ""));
	json_object_object_add(req, "EncryptionContext", ctx);
	if ((rc = call("TrentService.Decrypt", req, &resp, err, errlen)) != KMS_OK)
		goto out;
	rc = KMS_FAIL;
	if (!json_object_object_get_ex(resp, "Plaintext", &v) ||
	    !json_object_is_type(v, json_type_string) ||
	    b64_decode(json_object_get_string(v), key, KMS_DATA_KEY_LEN, &n) == -1 ||
	    n != KMS_DATA_KEY_LEN) {
		snprintf(err, errlen, "KMS Decrypt returned no usable Plaintext");
		OPENSSL_cleanse(key, KMS_DATA_KEY_LEN);
		goto out;
	}
	rc = KMS_OK;
out:
	wipe_plaintext(resp);
	free(b64);
	json_object_put(req);
	json_object_put(resp);
	return rc;
}

/*
 * One signed KMS call. Returns KMS_OK with *out set (caller puts it), KMS_UNAVAILABLE on
 * transport errors and 5xx, KMS_FAIL on 4xx with "__type: message" from KMS in err.
 */
static enum kms_result
call(const char *target, json_object *req, json_object **out, char *err, size_t errlen)
{
	struct sigv4_header sh[4];
	struct curl_slist *hl = NULL;
	struct resp_buf rb = { NULL, 0, 0 };
	json_object *resp = NULL, *t = NULL, *m = NULL;
	char amz_date[17], auth[1024], line[2048], cerr[CURL_ERROR_SIZE];
	const char *body, *type, *msg;
	size_t nh = 0;
	long code = 0;
	CURLcode cc;
	enum kms_result rc = KMS_FAIL;

	*out = NULL;
	if (!kms.ready) {
		snprintf(err, errlen, "KMS is not configured");
		return KMS_FAIL;
	}
	body = json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN);
	sigv4_amz_date(time(NULL), amz_date, sizeof(amz_date));
	sh[nh++] = (struct sigv4_header){ "content-type", "application/x-amz-json-1.1" };
	sh[nh++] = (struct sigv4_header){ "host", kms.host };
	sh[nh++] = (struct sigv4_header){ "x-amz-date", amz_date };
	sh[nh++] = (struct sigv4_header){ "x-amz-target", target };
	{
		struct sigv4_request rq = {
			.method = "POST", .path = "/", .query = NULL, .headers = sh,
			.nheaders = nh, .payload = (const unsigned char *)body,
			.payload_len = strlen(body), .region = kms.region, .service = "kms",
			.access_key = kms.access_key, .secret_key = kms.secret_key,
			.session_token = kms.session_token, .amz_date = amz_date,
		};

		if (sigv4_sign(&rq, auth, sizeof(auth)) == -1) {
			snprintf(err, errlen, "KMS request signing failed");
			goto out;
		}
	}
	hl = curl_slist_append(hl, "Content-Type: application/x-amz-json-1.1");
	snprintf(line, sizeof(line), "Host: %s", kms.host);
	hl = curl_slist_append(hl, line);
	snprintf(line, sizeof(line), "X-Amz-Date: %s", amz_date);
	hl = curl_slist_append(hl, line);
	snprintf(line, sizeof(line), "X-Amz-Target: %s", target);
	hl = curl_slist_append(hl, line);
	if (kms.session_token != NULL) {
		if (snprintf(line, sizeof(line), "X-Amz-Security-Token: %s", kms.session_token) >=
		    (int)sizeof(line)) {
			snprintf(err, errlen, "AWS_SESSION_TOKEN is too long");
			goto out;
		}
		hl = curl_slist_append(hl, line);
	}
	snprintf(line, sizeof(line), "Authorization: %s", auth);
	hl = curl_slist_append(hl, line);
	hl = curl_slist_append(hl, "Expect:");
	OPENSSL_cleanse(line, sizeof(line));
	if (hl == NULL) {
		snprintf(err, errlen, "KMS unavailable: out of memory");
		rc = KMS_UNAVAILABLE;
		goto out;
	}
	cerr[0] = '\0';
	curl_easy_reset(kms.curl);
	curl_easy_setopt(kms.curl, CURLOPT_URL, kms.url);
	curl_easy_setopt(kms.curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(kms.curl, CURLOPT_TIMEOUT, KMS_TIMEOUT_S);
	curl_easy_setopt(kms.curl, CURLOPT_CONNECTTIMEOUT, KMS_CONNECT_TIMEOUT_S);
	curl_easy_setopt(kms.curl, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(kms.curl, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(kms.curl, CURLOPT_HTTPHEADER, hl);
	curl_easy_setopt(kms.curl, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(kms.curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
	curl_easy_setopt(kms.curl, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(kms.curl, CURLOPT_WRITEDATA, &rb);
	curl_easy_setopt(kms.curl, CURLOPT_ERRORBUFFER, cerr);
	cc = curl_easy_perform(kms.curl);
	if (cc != CURLE_OK) {
		snprintf(err, errlen, "KMS unavailable: %s",
		    rb.too_big ? "response too large" : cerr[0] ? cerr : curl_easy_strerror(cc));
		rc = KMS_UNAVAILABLE;
		goto out;
	}
	curl_easy_getinfo(kms.curl, CURLINFO_RESPONSE_CODE, &code);
	resp = rb.p != NULL ? json_tokener_parse(rb.p) : NULL;
	if (code >= 500 || code < 200) {
		snprintf(err, errlen, "KMS unavailable: HTTP %ld", code);
		rc = KMS_UNAVAILABLE;
		goto out;
	}
	if (code >= 300) {
		type = msg = NULL;
		if (json_object_object_get_ex(resp, "__type", &t))
			type = json_object_get_string(t);
		if (json_object_object_get_ex(resp, "message", &m) ||
		    json_object_object_get_ex(resp, "Message", &m))
			msg = json_object_get_string(m);
		snprintf(err, errlen, "KMS error: HTTP %ld %s: %s", code,
		    type != NULL ? type : "unknown", msg != NULL ? msg : "no message");
		goto out;
	}
	if (resp == NULL || !json_object_is_type(resp, json_type_object)) {
		snprintf(err, errlen, "KMS returned a response that is not a JSON object");
		goto out;
	}
	*out = resp;
	resp = NULL;
	rc = KMS_OK;
out:
	OPENSSL_cleanse(auth, sizeof(auth));
	curl_slist_free_all(hl);
	if (rb.p != NULL) {
		OPENSSL_cleanse(rb.p, rb.len);
		free(rb.p);
	}
	json_object_put(resp);
	return rc;
}

static size_t
on_body(char *data, size_t size, size_t nmemb, void *arg)
{
	struct resp_buf *rb = arg;
	size_t n = size * nmemb;
	char *np;

	if (rb->len + n > KMS_MAX_RESPONSE) {
		rb->too_big = 1;
		return 0;
	}
	if ((np = malloc(rb->len + n + 1)) == NULL)
		return 0;
	if (rb->p != NULL) {
		memcpy(np, rb->p, rb->len);
		OPENSSL_cleanse(rb->p, rb->len);
		free(rb->p);
	}
	memcpy(np + rb->len, data, n);
	rb->p = np;
	rb->len += n;
	rb->p[rb->len] = '\0';
	return n;
}

static char *
b64_encode(const unsigned char *p, size_t n)
{
	char *out;

	if ((out = malloc(4 * ((n + 2) / 3) + 1)) == NULL)
		return NULL;
	EVP_EncodeBlock((unsigned char *)out, p, (int)n);
	return out;
}

/*
 * Standard base64 with padding into out (at most cap bytes). EVP_DecodeBlock counts padding
 * as zero bytes, so the '=' characters are subtracted. Returns 0, or -1 on bad input.
 */
static int
b64_decode(const char *s, unsigned char *out, size_t cap, size_t *outlen)
{
	unsigned char *tmp = NULL;
	size_t slen = strlen(s), pad = 0;
	int n, rc = -1;

	if (slen == 0 || slen % 4 != 0 || slen / 4 * 3 > cap + 2)
		goto out;
	if (s[slen - 1] == '=')
		pad++;
	if (s[slen - 2] == '=')
		pad++;
	if ((tmp = malloc(slen / 4 * 3 + 1)) == NULL)
		goto out;
	n = EVP_DecodeBlock(tmp, (const unsigned char *)s, (int)slen);
	if (n < 0 || (size_t)n < pad || (size_t)n - pad > cap)
		goto out;
	memcpy(out, tmp, (size_t)n - pad);
	*outlen = (size_t)n - pad;
	rc = 0;
out:
	if (tmp != NULL) {
		OPENSSL_cleanse(tmp, slen / 4 * 3 + 1);
		free(tmp);
	}
	return rc;
}

static void
free_secret(char **p)
{
	if (*p != NULL) {
		OPENSSL_cleanse(*p, strlen(*p));
		free(*p);
	}
	*p = NULL;
}
