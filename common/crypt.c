/*
 * crypt.c: AES-256-GCM sealing of secrets with a static key (versions 1, 2) or KMS envelope (3).
 * Owns the static key (mlock'd, wiped at cleanup) and the in-memory cache of KMS data keys.
 */
#include "common/crypt.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "common/kms.h"
#include "common/log.h"
#include "common/util.h"

#define KEY_LEN		32
#define NONCE_LEN	12
#define TAG_LEN		16
#define CACHE_SLOTS	1024
#define MAX_PLAINTEXT	(16 * 1024 * 1024)

/*
 * Additional authenticated data of versions 2 and 3, exactly these bytes:
 *   "molecule:v2:" (or "molecule:v3:") || scope || 0x00 || name
 * with no terminating NUL. scope is the workspace id (or "global"), name the secret's key; a C
 * string cannot contain 0x00, so the split is unambiguous and a blob moved to any other row
 * (other scope or other name) fails authentication.
 *
 * Blob layouts:
 *   v1, v2: nonce(12) || ciphertext || tag(16)
 *   v3:     0x03 || uint16 big-endian len(wrapped) || wrapped data key || nonce(12) ||
 *           ciphertext || tag(16)
 */
#define AAD_V2		"molecule:v2:"
#define AAD_V3		"molecule:v3:"

struct cache_slot {
	unsigned char	id[SHA256_DIGEST_LENGTH];	/* sha256 of the wrapped key */
	unsigned char	key[KEY_LEN];
	int64_t		expires_ms;
	int		used;
};

static struct {
	int			have_static;
	int			have_kms;
	int64_t			ttl_ms;
	unsigned char		key[KEY_LEN];
	struct cache_slot	cache[CACHE_SLOTS];
} cs;

static int		parse_key(const char *, unsigned char *);
static unsigned char	*make_aad(const char *, const char *, const char *, size_t *);
static int		gcm_seal(const unsigned char *, const unsigned char *, size_t,
			    const unsigned char *, size_t, unsigned char *);
static int		gcm_open(const unsigned char *, const unsigned char *, size_t,
			    const unsigned char *, size_t, unsigned char *);
static int		cache_get(const unsigned char *, size_t, unsigned char *);
static void		cache_put(const unsigned char *, size_t, const unsigned char *);
static void		cache_clear(void);
static enum crypt_result open_gcm(const unsigned char *, const char *, const char *,
			    const char *, const unsigned char *, size_t, unsigned char **,
			    size_t *, char *, size_t);

int
crypt_init(const struct conf *c, char *err, size_t errlen)
{
	const char *sk = c->secrets_encryption_key, *arn = c->kms_key_arn;

	crypt_cleanup();
	if (sk != NULL && sk[0] != '\0') {
		if (parse_key(sk, cs.key) == -1) {
			snprintf(err, errlen, "SECRETS_ENCRYPTION_KEY must be 32 bytes as base64 "
			    "(44 chars) or 64 hex characters");
			OPENSSL_cleanse(cs.key, sizeof(cs.key));
			return -1;
		}
		log_add_secret(sk);
		(void)mlock(&cs, sizeof(cs));
		cs.have_static = 1;
	}
	if (arn != NULL && arn[0] != '\0') {
		if (kms_init(arn, c->kms_endpoint, err, errlen) == -1) {
			crypt_cleanup();
			return -1;
		}
		(void)mlock(&cs, sizeof(cs));
		cs.have_kms = 1;
		cs.ttl_ms = c->kms_cache_ttl_s * 1000;
	}
	if (!cs.have_static && !cs.have_kms && conf_is_production(c)) {
		snprintf(err, errlen, "no secrets key source: set SECRETS_ENCRYPTION_KEY or KMS_KEY_ARN");
		return -1;
	}
	if (!cs.have_static && !cs.have_kms)
		log_warn("no secrets key source configured: secrets are stored as plaintext "
		    "(development only)");
	return 0;
}

void
crypt_cleanup(void)
{
	if (cs.have_kms)
		kms_cleanup();
	cache_clear();
	OPENSSL_cleanse(&cs, sizeof(cs));
	memset(&cs, 0, sizeof(cs));
}

enum crypt_version
crypt_write_version(void)
{
	if (cs.have_kms)
		return CRYPT_V_ENVELOPE;
	if (cs.have_static)
		return CRYPT_V_GCM_AAD;
	return CRYPT_V_PLAINTEXT;
}

enum crypt_result
crypt_seal(const char *scope, const char *name, const unsigned char *pt, size_t ptlen,
    unsigned char **out, size_t *outlen, int *version, char *err, size_t errlen)
{
	unsigned char dk[KEY_LEN], *aad = NULL, *blob = NULL, *wrapped = NULL;
	size_t aadlen = 0, wlen = 0, n = 0;
	enum crypt_version v = crypt_write_version();
	enum crypt_result rc = CRYPT_FAIL;
	enum kms_result kr;

	*out = NULL;
	*outlen = 0;
	if (scope == NULL || name == NULL || (pt == NULL && ptlen > 0) || ptlen > MAX_PLAINTEXT) {
		snprintf(err, errlen, "bad arguments to crypt_seal");
		goto out;
	}
	if (v == CRYPT_V_PLAINTEXT) {
		if ((blob = malloc(ptlen + 1)) == NULL)
			goto oom;
		if (ptlen > 0)
			memcpy(blob, pt, ptlen);
		n = ptlen;
	} else if (v == CRYPT_V_GCM_AAD) {
		if ((aad = make_aad(AAD_V2, scope, name, &aadlen)) == NULL ||
		    (blob = malloc(NONCE_LEN + ptlen + TAG_LEN)) == NULL)
			goto oom;
		if (gcm_seal(cs.key, aad, aadlen, pt, ptlen, blob) == -1) {
			snprintf(err, errlen, "encryption failed");
			goto out;
		}
		n = NONCE_LEN + ptlen + TAG_LEN;
	} else {
		kr = kms_generate_data_key(dk, &wrapped, &wlen, err, errlen);
		if (kr != KMS_OK) {
			rc = kr == KMS_UNAVAILABLE ? CRYPT_UNAVAILABLE : CRYPT_FAIL;
			goto out;
		}
		if (wlen > UINT16_MAX) {
			snprintf(err, errlen, "KMS wrapped key too long");
			goto out;
		}
		if ((aad = make_aad(AAD_V3, scope, name, &aadlen)) == NULL ||
		    (blob = malloc(3 + wlen + NONCE_LEN + ptlen + TAG_LEN)) == NULL)
			goto oom;
		blob[0] = CRYPT_V_ENVELOPE;
		blob[1] = (unsigned char)(wlen >> 8);
		blob[2] = (unsigned char)(wlen & 0xff);
		memcpy(blob + 3, wrapped, wlen);
		if (gcm_seal(dk, aad, aadlen, pt, ptlen, blob + 3 + wlen) == -1) {
			snprintf(err, errlen, "encryption failed");
			goto out;
		}
		cache_put(wrapped, wlen, dk);
		n = 3 + wlen + NONCE_LEN + ptlen + TAG_LEN;
	}
	*out = blob;
	*outlen = n;
	*version = (int)v;
	blob = NULL;
	rc = CRYPT_OK;
	goto out;
oom:
	snprintf(err, errlen, "out of memory");
out:
	OPENSSL_cleanse(dk, sizeof(dk));
	free(blob);
	free(aad);
	free(wrapped);
	return rc;
}

enum crypt_result
crypt_open(const char *scope, const char *name, int version, const unsigned char *blob,
    size_t bloblen, unsigned char **pt, size_t *ptlen, char *err, size_t errlen)
{
	unsigned char dk[KEY_LEN];
	const unsigned char *wrapped;
	size_t wlen;
	enum crypt_result rc = CRYPT_FAIL;
	enum kms_result kr;

	*pt = NULL;
	*ptlen = 0;
	if (scope == NULL || name == NULL || (blob == NULL && bloblen > 0)) {
		snprintf(err, errlen, "bad arguments to crypt_open");
		return CRYPT_FAIL;
	}
	switch (version) {
	case CRYPT_V_PLAINTEXT:
		if ((*pt = malloc(bloblen + 1)) == NULL) {
			snprintf(err, errlen, "out of memory");
			return CRYPT_FAIL;
		}
		if (bloblen > 0)
			memcpy(*pt, blob, bloblen);
		(*pt)[bloblen] = '\0';
		*ptlen = bloblen;
		return CRYPT_OK;
	case CRYPT_V_GCM:
	case CRYPT_V_GCM_AAD:
		if (!cs.have_static) {
			snprintf(err, errlen, "secret is encrypted with a static key (version %d) "
			    "but SECRETS_ENCRYPTION_KEY is not set", version);
			return CRYPT_FAIL;
		}
		return open_gcm(cs.key, version == CRYPT_V_GCM ? NULL : AAD_V2, scope, name,
		    blob, bloblen, pt, ptlen, err, errlen);
	case CRYPT_V_ENVELOPE:
		break;
	default:
		snprintf(err, errlen, "unknown encryption_version %d", version);
		return CRYPT_FAIL;
	}

	if (!cs.have_kms) {
		snprintf(err, errlen, "secret is KMS-encrypted (version 3) but KMS_KEY_ARN is not set");
		return CRYPT_FAIL;
	}
	if (bloblen < 3 || blob[0] != CRYPT_V_ENVELOPE) {
		snprintf(err, errlen, "malformed version 3 blob");
		return CRYPT_FAIL;
	}
	wlen = (size_t)blob[1] << 8 | blob[2];
	if (wlen == 0 || bloblen < 3 + wlen + NONCE_LEN + TAG_LEN) {
		snprintf(err, errlen, "malformed version 3 blob");
		return CRYPT_FAIL;
	}
	wrapped = blob + 3;
	if (cache_get(wrapped, wlen, dk) == -1) {
		kr = kms_decrypt(wrapped, wlen, dk, err, errlen);
		if (kr != KMS_OK) {
			OPENSSL_cleanse(dk, sizeof(dk));
			return kr == KMS_UNAVAILABLE ? CRYPT_UNAVAILABLE : CRYPT_FAIL;
		}
		cache_put(wrapped, wlen, dk);
	}
	rc = open_gcm(dk, AAD_V3, scope, name, blob + 3 + wlen, bloblen - 3 - wlen, pt, ptlen,
	    err, errlen);
	OPENSSL_cleanse(dk, sizeof(dk));
	return rc;
}

/* nonce || ct || tag under key, with AAD prefix||scope||0||name (prefix NULL: no AAD). */
static enum crypt_result
open_gcm(const unsigned char *key, const char *prefix, const char *scope, const char *name,
    const unsigned char *in, size_t inlen, unsigned char **pt, size_t *ptlen, char *err,
    size_t errlen)
{
	unsigned char *aad = NULL, *out = NULL;
	size_t aadlen = 0, n;
	enum crypt_result rc = CRYPT_FAIL;

	if (inlen < NONCE_LEN + TAG_LEN) {
		snprintf(err, errlen, "encrypted secret is too short");
		goto out;
	}
	n = inlen - NONCE_LEN - TAG_LEN;
	if ((prefix != NULL && (aad = make_aad(prefix, scope, name, &aadlen)) == NULL) ||
	    (out = malloc(n + 1)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	if (gcm_open(key, aad, aadlen, in, inlen, out) == -1) {
		snprintf(err, errlen, "secret failed authentication (wrong key, tampered blob or "
		    "blob moved to another row)");
		OPENSSL_cleanse(out, n + 1);
		goto out;
	}
	out[n] = '\0';
	*pt = out;
	*ptlen = n;
	out = NULL;
	rc = CRYPT_OK;
out:
	free(out);
	free(aad);
	return rc;
}

/* 64 hex chars, or standard base64 with padding (44 chars) of exactly 32 bytes. */
static int
parse_key(const char *s, unsigned char *key)
{
	unsigned char tmp[33];
	size_t len = strlen(s), i;
	int n, hi, lo;

	if (len == 2 * KEY_LEN) {
		for (i = 0; i < KEY_LEN; i++) {
			hi = OPENSSL_hexchar2int((unsigned char)s[2 * i]);
			lo = OPENSSL_hexchar2int((unsigned char)s[2 * i + 1]);
			if (hi < 0 || lo < 0)
				return -1;
			key[i] = (unsigned char)(hi << 4 | lo);
		}
		return 0;
	}
	if (len != 44 || s[43] != '=' || s[42] == '=')
		return -1;
	for (i = 0; i < 43; i++)
		if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') ||
		    (s[i] >= '0' && s[i] <= '9') || s[i] == '+' || s[i] == '/'))
			return -1;
	n = EVP_DecodeBlock(tmp, (const unsigned char *)s, 44);
	if (n != 33) {
		OPENSSL_cleanse(tmp, sizeof(tmp));
		return -1;
	}
	memcpy(key, tmp, KEY_LEN);
	OPENSSL_cleanse(tmp, sizeof(tmp));
	return 0;
}

static unsigned char *
make_aad(const char *prefix, const char *scope, const char *name, size_t *len)
{
	size_t pl = strlen(prefix), sl = strlen(scope), nl = strlen(name);
	unsigned char *a;

	if ((a = malloc(pl + sl + 1 + nl)) == NULL)
		return NULL;
	memcpy(a, prefix, pl);
	memcpy(a + pl, scope, sl);
	a[pl + sl] = '\0';
	memcpy(a + pl + sl + 1, name, nl);
	*len = pl + sl + 1 + nl;
	return a;
}

/* Writes nonce || ct || tag (ptlen + 28 bytes) into out. Returns 0 or -1. */
static int
gcm_seal(const unsigned char *key, const unsigned char *aad, size_t aadlen,
    const unsigned char *pt, size_t ptlen, unsigned char *out)
{
	EVP_CIPHER_CTX *ctx = NULL;
	int n = 0, rc = -1;

	if (RAND_bytes(out, NONCE_LEN) != 1 || (ctx = EVP_CIPHER_CTX_new()) == NULL)
		goto out;
	if (EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, NONCE_LEN, NULL) != 1 ||
	    EVP_EncryptInit_ex(ctx, NULL, NULL, key, out) != 1)
		goto out;
	if (aadlen > 0 && EVP_EncryptUpdate(ctx, NULL, &n, aad, (int)aadlen) != 1)
		goto out;
	if (ptlen > 0 && EVP_EncryptUpdate(ctx, out + NONCE_LEN, &n, pt, (int)ptlen) != 1)
		goto out;
	if (EVP_EncryptFinal_ex(ctx, out + NONCE_LEN + ptlen, &n) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_LEN, out + NONCE_LEN + ptlen) != 1)
		goto out;
	rc = 0;
out:
	EVP_CIPHER_CTX_free(ctx);
	return rc;
}

/* Opens nonce || ct || tag (inlen bytes) into pt (inlen - 28 bytes). Returns 0 or -1. */
static int
gcm_open(const unsigned char *key, const unsigned char *aad, size_t aadlen,
    const unsigned char *in, size_t inlen, unsigned char *pt)
{
	EVP_CIPHER_CTX *ctx = NULL;
	unsigned char tag[TAG_LEN], fin[16];
	size_t ctlen = inlen - NONCE_LEN - TAG_LEN;
	int n = 0, rc = -1;

	memcpy(tag, in + inlen - TAG_LEN, TAG_LEN);
	if ((ctx = EVP_CIPHER_CTX_new()) == NULL)
		goto out;
	if (EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, NONCE_LEN, NULL) != 1 ||
	    EVP_DecryptInit_ex(ctx, NULL, NULL, key, in) != 1)
		goto out;
	if (aadlen > 0 && EVP_DecryptUpdate(ctx, NULL, &n, aad, (int)aadlen) != 1)
		goto out;
	if (ctlen > 0 && EVP_DecryptUpdate(ctx, pt, &n, in + NONCE_LEN, (int)ctlen) != 1)
		goto out;
	if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_LEN, tag) != 1 ||
	    EVP_DecryptFinal_ex(ctx, fin, &n) != 1)
		goto out;
	rc = 0;
out:
	if (rc == -1 && ctlen > 0)
		OPENSSL_cleanse(pt, ctlen);
	EVP_CIPHER_CTX_free(ctx);
	return rc;
}

static int
cache_get(const unsigned char *wrapped, size_t wlen, unsigned char *key)
{
	unsigned char id[SHA256_DIGEST_LENGTH];
	int64_t now = now_mono_ms();
	size_t i;

	if (cs.ttl_ms <= 0)
		return -1;
	SHA256(wrapped, wlen, id);
	for (i = 0; i < CACHE_SLOTS; i++) {
		if (!cs.cache[i].used)
			continue;
		if (cs.cache[i].expires_ms <= now) {
			OPENSSL_cleanse(&cs.cache[i], sizeof(cs.cache[i]));
			continue;
		}
		if (CRYPTO_memcmp(cs.cache[i].id, id, sizeof(id)) == 0) {
			memcpy(key, cs.cache[i].key, KEY_LEN);
			return 0;
		}
	}
	return -1;
}

/* Stores key under sha256(wrapped); evicts an expired slot or else the soonest to expire. */
static void
cache_put(const unsigned char *wrapped, size_t wlen, const unsigned char *key)
{
	struct cache_slot *s = NULL;
	int64_t now = now_mono_ms();
	size_t i;

	if (cs.ttl_ms <= 0)
		return;
	for (i = 0; i < CACHE_SLOTS; i++) {
		if (!cs.cache[i].used || cs.cache[i].expires_ms <= now) {
			s = &cs.cache[i];
			break;
		}
		if (s == NULL || cs.cache[i].expires_ms < s->expires_ms)
			s = &cs.cache[i];
	}
	OPENSSL_cleanse(s, sizeof(*s));
	SHA256(wrapped, wlen, s->id);
	memcpy(s->key, key, KEY_LEN);
	s->expires_ms = now + cs.ttl_ms;
	s->used = 1;
}

static void
cache_clear(void)
{
	OPENSSL_cleanse(cs.cache, sizeof(cs.cache));
}
