/* t_crypt.c: unit tests of common/crypt.c (static key, legacy versions) and kms.c (fake KMS). */
#include "tests/unit/t.h"

#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "common/crypt.h"
#include "common/kms.h"

#define KEY_HEX		"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
#define KEY_B64		"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
#define OTHER_B64	"HxwdHhsaGRgXFhUUExIREA8ODQwLCgkIBwYFBAMCAQA="
#define SCOPE		"6f1c1f8e-3f55-4b8e-9d0b-2a6f4b3c9d10"
#define ARN		"arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"

static int	init_with(char *, char *, char *, char *, int64_t,
		    char *, size_t);
static int	free_port(void);
static pid_t	start_fake_kms(int, char *);
static void	stop_fake_kms(pid_t);
static int	kms_toggle(int, int);

void
test_crypt__key_parsing(void)
{
	char err[256];

	T_CHECK(init_with("test", KEY_B64, NULL, NULL, 0, err, sizeof(err)) == 0);
	T_CHECK(crypt_write_version() == CRYPT_V_GCM_AAD);
	T_CHECK(init_with("test", KEY_HEX, NULL, NULL, 0, err, sizeof(err)) == 0);
	T_CHECK(init_with("test", "0123456789abcdef0123456789abcdef", NULL, NULL, 0, err,
	    sizeof(err)) == -1);
	T_STREQ(err, "SECRETS_ENCRYPTION_KEY must be 32 bytes as base64 (44 chars) or 64 hex "
	    "characters");
	/* 43 chars: the same key without its padding. */
	T_CHECK(init_with("test", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8", NULL, NULL, 0,
	    err, sizeof(err)) == -1);
	/* 64 chars that are not hex, 44 chars that are not base64, 31 bytes of base64. */
	T_CHECK(init_with("test", "zz0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
	    NULL, NULL, 0, err, sizeof(err)) == -1);
	T_CHECK(init_with("test", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh!=", NULL, NULL, 0,
	    err, sizeof(err)) == -1);
	T_CHECK(init_with("test", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHg==", NULL, NULL, 0,
	    err, sizeof(err)) == -1);
	/* No key source: plaintext in test, refused in production. */
	T_CHECK(init_with("test", NULL, NULL, NULL, 0, err, sizeof(err)) == 0);
	T_CHECK(crypt_write_version() == CRYPT_V_PLAINTEXT);
	T_CHECK(init_with("production", "", "", NULL, 0, err, sizeof(err)) == -1);
	T_STREQ(err, "no secrets key source: set SECRETS_ENCRYPTION_KEY or KMS_KEY_ARN");
	T_CHECK(init_with("production", KEY_B64, NULL, NULL, 0, err, sizeof(err)) == 0);
	/* A malformed ARN is a start-up error. */
	T_CHECK(init_with("test", NULL, "arn:aws:s3:::bucket", NULL, 0, err, sizeof(err)) == -1);
	T_CHECK(strstr(err, "KMS_KEY_ARN") != NULL);
	crypt_cleanup();
}

void
test_crypt__v2_round_trip(void)
{
	unsigned char *blob = NULL, *pt = NULL;
	size_t bl = 0, pl = 0;
	int v = -1;
	char err[256];

	T_CHECK(init_with("test", KEY_B64, NULL, NULL, 0, err, sizeof(err)) == 0);
	T_CHECK(crypt_seal(SCOPE, "API_KEY", (const unsigned char *)"s3cr3t", 6, &blob, &bl, &v,
	    err, sizeof(err)) == CRYPT_OK);
	T_CHECK(v == CRYPT_V_GCM_AAD && bl == 12 + 6 + 16);
	T_CHECK(blob != NULL && memmem(blob, bl, "s3cr3t", 6) == NULL);
	T_CHECK(crypt_open(SCOPE, "API_KEY", v, blob, bl, &pt, &pl, err, sizeof(err)) == CRYPT_OK);
	T_CHECK(pl == 6 && pt != NULL);
	T_STREQ((char *)pt, "s3cr3t");
	OPENSSL_cleanse(pt, pl);
	free(pt);
	free(blob);
	/* Empty values too, and two seals of the same value differ (random nonce). */
	T_CHECK(crypt_seal("global", "E", (const unsigned char *)"", 0, &blob, &bl, &v, err,
	    sizeof(err)) == CRYPT_OK);
	T_CHECK(crypt_open("global", "E", v, blob, bl, &pt, &pl, err, sizeof(err)) == CRYPT_OK);
	T_CHECK(pl == 0 && pt != NULL && pt[0] == '\0');
	free(pt);
	{
		unsigned char *b2 = NULL;
		size_t l2 = 0;

		T_CHECK(crypt_seal("global", "E", (const unsigned char *)"", 0, &b2, &l2, &v, err,
		    sizeof(err)) == CRYPT_OK);
		T_CHECK(l2 == bl && memcmp(b2, blob, bl) != 0);
		free(b2);
	}
	free(blob);
	crypt_cleanup();
}

void
test_crypt__v1_reference_layout(void)
{
	unsigned char key[32], blob[12 + 5 + 16], *pt = NULL;
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	size_t pl = 0, i;
	int n = 0;
	char err[256];

	/* The reference's layout: nonce || ct || tag, no AAD, built here with raw EVP. */
	for (i = 0; i < 32; i++)
		key[i] = (unsigned char)i;
	memset(blob, 0x5a, 12);
	EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, blob);
	EVP_EncryptUpdate(ctx, blob + 12, &n, (const unsigned char *)"hello", 5);
	EVP_EncryptFinal_ex(ctx, blob + 17, &n);
	EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, blob + 17);
	EVP_CIPHER_CTX_free(ctx);

	T_CHECK(init_with("test", KEY_HEX, NULL, NULL, 0, err, sizeof(err)) == 0);
	/* Version 1 has no AAD: any row reads it. */
	T_CHECK(crypt_open(SCOPE, "ANY", CRYPT_V_GCM, blob, sizeof(blob), &pt, &pl, err,
	    sizeof(err)) == CRYPT_OK);
	T_CHECK(pl == 5 && pt != NULL);
	T_STREQ((char *)pt, "hello");
	free(pt);
	/* Read as version 2 it fails (AAD differs), never plaintext. */
	pt = NULL;
	T_CHECK(crypt_open(SCOPE, "ANY", CRYPT_V_GCM_AAD, blob, sizeof(blob), &pt, &pl, err,
	    sizeof(err)) == CRYPT_FAIL);
	T_CHECK(pt == NULL);
	/* Unknown versions fail. */
	T_CHECK(crypt_open(SCOPE, "ANY", 7, blob, sizeof(blob), &pt, &pl, err,
	    sizeof(err)) == CRYPT_FAIL);
	crypt_cleanup();
}

void
test_crypt__v0_passthrough(void)
{
	unsigned char *pt = NULL, *blob = NULL;
	size_t pl = 0, bl = 0;
	int v = -1;
	char err[256];

	T_CHECK(init_with("test", KEY_B64, NULL, NULL, 0, err, sizeof(err)) == 0);
	T_CHECK(crypt_open(SCOPE, "K", CRYPT_V_PLAINTEXT, (const unsigned char *)"legacy", 6, &pt,
	    &pl, err, sizeof(err)) == CRYPT_OK);
	T_STREQ((char *)pt, "legacy");
	T_CHECK(pl == 6);
	free(pt);
	/* Without a key source (dev/test) new writes are version 0. */
	T_CHECK(init_with("development", NULL, NULL, NULL, 0, err, sizeof(err)) == 0);
	T_CHECK(crypt_seal(SCOPE, "K", (const unsigned char *)"abc", 3, &blob, &bl, &v, err,
	    sizeof(err)) == CRYPT_OK);
	T_CHECK(v == CRYPT_V_PLAINTEXT && bl == 3 && memcmp(blob, "abc", 3) == 0);
	free(blob);
	/* And an encrypted blob cannot be read without the key. */
	pt = NULL;
	T_CHECK(crypt_open(SCOPE, "K", CRYPT_V_GCM_AAD, (const unsigned char *)"0123456789abcdef"
	    "0123456789abcdef", 32, &pt, &pl, err, sizeof(err)) == CRYPT_FAIL);
	T_CHECK(pt == NULL && strstr(err, "SECRETS_ENCRYPTION_KEY") != NULL);
	crypt_cleanup();
}

void
test_crypt__tamper_move_and_wrong_key(void)
{
	unsigned char *blob = NULL, *pt = NULL;
	size_t bl = 0, pl = 0, i;
	int v = -1;
	char err[256];

	T_CHECK(init_with("test", KEY_B64, NULL, NULL, 0, err, sizeof(err)) == 0);
	T_CHECK(crypt_seal(SCOPE, "TOKEN", (const unsigned char *)"value-1", 7, &blob, &bl, &v,
	    err, sizeof(err)) == CRYPT_OK);
	/* Every flipped byte (nonce, ciphertext, tag) fails. */
	for (i = 0; i < bl; i++) {
		blob[i] ^= 0x01;
		pt = NULL;
		T_CHECK(crypt_open(SCOPE, "TOKEN", v, blob, bl, &pt, &pl, err, sizeof(err)) ==
		    CRYPT_FAIL);
		T_CHECK(pt == NULL);
		blob[i] ^= 0x01;
	}
	T_CHECK(strstr(err, "failed authentication") != NULL);
	/* Truncated blobs fail. */
	T_CHECK(crypt_open(SCOPE, "TOKEN", v, blob, 20, &pt, &pl, err, sizeof(err)) ==
	    CRYPT_FAIL);
	/* Moved to another workspace, another name, or a boundary-shifted pair. */
	T_CHECK(crypt_open("global", "TOKEN", v, blob, bl, &pt, &pl, err, sizeof(err)) ==
	    CRYPT_FAIL);
	T_CHECK(crypt_open(SCOPE, "TOKEN2", v, blob, bl, &pt, &pl, err, sizeof(err)) ==
	    CRYPT_FAIL);
	T_CHECK(crypt_open(SCOPE "T", "OKEN", v, blob, bl, &pt, &pl, err, sizeof(err)) ==
	    CRYPT_FAIL);
	T_CHECK(crypt_open(SCOPE, "TOKEN", v, blob, bl, &pt, &pl, err, sizeof(err)) == CRYPT_OK);
	free(pt);
	/* Another key fails with a clear error. */
	T_CHECK(init_with("test", OTHER_B64, NULL, NULL, 0, err, sizeof(err)) == 0);
	pt = NULL;
	T_CHECK(crypt_open(SCOPE, "TOKEN", v, blob, bl, &pt, &pl, err, sizeof(err)) ==
	    CRYPT_FAIL);
	T_CHECK(pt == NULL);
	T_STREQ(err, "secret failed authentication (wrong key, tampered blob or blob moved to "
	    "another row)");
	free(blob);
	crypt_cleanup();
}

void
test_crypt__envelope_fake_kms(void)
{
	unsigned char *blob = NULL, *blob2 = NULL, *pt = NULL;
	size_t bl = 0, bl2 = 0, pl = 0;
	int v = -1, port = free_port();
	pid_t pid = -1;
	char err[512], ep[64];

	T_CHECK(port > 0);
	snprintf(ep, sizeof(ep), "http://127.0.0.1:%d", port);
	if ((pid = start_fake_kms(port, "fake-secret")) == -1) {
		T_CHECK(!"fake_kms.py did not start (run from the repository root)");
		return;
	}
	setenv("AWS_ACCESS_KEY_ID", "AKIDFAKE", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "fake-secret", 1);
	unsetenv("AWS_SESSION_TOKEN");
	T_CHECK(init_with("production", NULL, ARN, ep, 300, err, sizeof(err)) == 0);
	T_CHECK(crypt_write_version() == CRYPT_V_ENVELOPE);
	T_CHECK(crypt_seal(SCOPE, "DB_PASSWORD", (const unsigned char *)"hunter2", 7, &blob, &bl,
	    &v, err, sizeof(err)) == CRYPT_OK);
	T_CHECK(v == CRYPT_V_ENVELOPE && bl > 3 + 12 + 7 + 16 && blob[0] == 3);
	/* A fresh process state (no cache) must call Decrypt. */
	T_CHECK(init_with("production", NULL, ARN, ep, 300, err, sizeof(err)) == 0);
	T_CHECK(crypt_open(SCOPE, "DB_PASSWORD", v, blob, bl, &pt, &pl, err, sizeof(err)) ==
	    CRYPT_OK);
	T_CHECK(pt != NULL && pl == 7);
	T_STREQ((char *)pt, "hunter2");
	free(pt);
	pt = NULL;
	/* Moved to another row: the data key unwraps but GCM fails. */
	T_CHECK(crypt_open("global", "DB_PASSWORD", v, blob, bl, &pt, &pl, err, sizeof(err)) ==
	    CRYPT_FAIL && pt == NULL);
	/* Outage: cached keys still open within the TTL, new seals are unavailable. */
	T_CHECK(kms_toggle(port, 1) == 0);
	T_CHECK(crypt_open(SCOPE, "DB_PASSWORD", v, blob, bl, &pt, &pl, err, sizeof(err)) ==
	    CRYPT_OK);
	free(pt);
	pt = NULL;
	T_CHECK(crypt_seal(SCOPE, "X", (const unsigned char *)"y", 1, &blob2, &bl2, &v, err,
	    sizeof(err)) == CRYPT_UNAVAILABLE);
	T_CHECK(strncmp(err, "KMS unavailable: ", 17) == 0);
	/* Without a cache, an outage makes reads unavailable (503), never plaintext. */
	T_CHECK(init_with("production", NULL, ARN, ep, 0, err, sizeof(err)) == 0);
	T_CHECK(crypt_open(SCOPE, "DB_PASSWORD", v, blob, bl, &pt, &pl, err, sizeof(err)) ==
	    CRYPT_UNAVAILABLE && pt == NULL);
	T_CHECK(strstr(err, "KMS unavailable") != NULL);
	T_CHECK(kms_toggle(port, 0) == 0);
	/* A bad signature (wrong secret key) is a 4xx: CRYPT_FAIL with KMS's error type. */
	setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret", 1);
	T_CHECK(init_with("production", NULL, ARN, ep, 0, err, sizeof(err)) == 0);
	T_CHECK(crypt_open(SCOPE, "DB_PASSWORD", v, blob, bl, &pt, &pl, err, sizeof(err)) ==
	    CRYPT_FAIL && pt == NULL);
	T_CHECK(strstr(err, "InvalidSignatureException") != NULL);
	T_CHECK(strstr(err, "wrong-secret") == NULL);
	/* A session token is sent and signed. */
	setenv("AWS_SECRET_ACCESS_KEY", "fake-secret", 1);
	setenv("AWS_SESSION_TOKEN", "session-token-value", 1);
	T_CHECK(init_with("production", NULL, ARN, ep, 0, err, sizeof(err)) == 0);
	T_CHECK(crypt_open(SCOPE, "DB_PASSWORD", v, blob, bl, &pt, &pl, err, sizeof(err)) ==
	    CRYPT_OK);
	free(pt);
	/* KMS down entirely (nothing listening). */
	stop_fake_kms(pid);
	pt = NULL;
	T_CHECK(crypt_open(SCOPE, "DB_PASSWORD", v, blob, bl, &pt, &pl, err, sizeof(err)) ==
	    CRYPT_UNAVAILABLE && pt == NULL);
	free(blob);
	crypt_cleanup();
	unsetenv("AWS_ACCESS_KEY_ID");
	unsetenv("AWS_SECRET_ACCESS_KEY");
	unsetenv("AWS_SESSION_TOKEN");
}

void
test_crypt__kms_parse_region(void)
{
	char r[64];

	T_CHECK(kms_parse_region(ARN, r, sizeof(r)) == 0);
	T_STREQ(r, "eu-west-1");
	T_CHECK(kms_parse_region("arn:aws:kms:us-east-1:1:alias/mine", r, sizeof(r)) == 0);
	T_CHECK(kms_parse_region("arn:aws:kms::1:key/x", r, sizeof(r)) == -1);
	T_CHECK(kms_parse_region("arn:aws:kms:us-east-1:1:key/", r, sizeof(r)) == -1);
	T_CHECK(kms_parse_region("arn:aws:kms:us-east-1:1:bucket/x", r, sizeof(r)) == -1);
	T_CHECK(kms_parse_region("arn:aws:kms:us east:1:key/x", r, sizeof(r)) == -1);
	T_CHECK(kms_parse_region("1234abcd-12ab", r, sizeof(r)) == -1);
	T_CHECK(kms_parse_region(NULL, r, sizeof(r)) == -1);
}

static int
init_with(char *env, char *key, char *arn, char *endpoint,
    int64_t ttl, char *err, size_t errlen)
{
	struct conf c;

	memset(&c, 0, sizeof(c));
	c.env = env;
	c.secrets_encryption_key = key;
	c.kms_key_arn = arn;
	c.kms_endpoint = endpoint;
	c.kms_cache_ttl_s = ttl;
	err[0] = '\0';
	return crypt_init(&c, err, errlen);
}

static int
free_port(void)
{
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);
	int fd, port = -1;

	if ((fd = socket(AF_INET, SOCK_STREAM, 0)) == -1)
		return -1;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sa, &sl) == 0)
		port = ntohs(sa.sin_port);
	close(fd);
	return port;
}

/* Starts tests/integration/fake_kms.py and waits (up to 5 s) until it accepts connections. */
static pid_t
start_fake_kms(int port, char *secret)
{
	struct sockaddr_in sa;
	char ps[16];
	pid_t pid;
	int i, fd, ok = 0;

	if (access("tests/integration/fake_kms.py", R_OK) != 0)
		return -1;
	snprintf(ps, sizeof(ps), "%d", port);
	if ((pid = fork()) == -1)
		return -1;
	if (pid == 0) {
		char *argv[] = { "/usr/bin/python3", "tests/integration/fake_kms.py", "--port", ps,
		    "--key-arn", ARN, "--access-key", "AKIDFAKE", "--secret-key", secret,
		    NULL };

		execv(argv[0], argv);
		_exit(127);
	}
	for (i = 0; i < 100 && !ok; i++) {
		usleep(50000);
		fd = socket(AF_INET, SOCK_STREAM, 0);
		memset(&sa, 0, sizeof(sa));
		sa.sin_family = AF_INET;
		sa.sin_port = htons((uint16_t)port);
		sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
		close(fd);
	}
	if (!ok) {
		stop_fake_kms(pid);
		return -1;
	}
	return pid;
}

static void
stop_fake_kms(pid_t pid)
{
	if (pid > 0) {
		kill(pid, SIGTERM);
		waitpid(pid, NULL, 0);
	}
}

/* POST /__fail with "1" or "0". */
static int
kms_toggle(int port, int fail)
{
	CURL *c = curl_easy_init();
	char url[64];
	long code = 0;
	FILE *devnull = fopen("/dev/null", "w");
	int rc = -1;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/__fail", port);
	if (c == NULL || devnull == NULL)
		goto out;
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, fail ? "1" : "0");
	curl_easy_setopt(c, CURLOPT_WRITEDATA, devnull);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 5L);
	if (curl_easy_perform(c) == CURLE_OK &&
	    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code) == CURLE_OK && code == 200)
		rc = 0;
out:
	if (devnull != NULL)
		fclose(devnull);
	curl_easy_cleanup(c);
	return rc;
}
