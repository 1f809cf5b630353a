/*
 * crypt.h: application-layer encryption of secrets (AES-256-GCM), static key or KMS envelope.
 * Owns the process's key material (locked in memory, wiped at exit); blobs belong to callers.
 */
#ifndef MOLECULE_CRYPT_H
#define MOLECULE_CRYPT_H

#include <stddef.h>

#include "common/conf.h"

/*
 * encryption_version values (the column beside every blob):
 * 0 plaintext (legacy, read only), 1 the reference's nonce||ct||tag with no AAD (read only, so a
 * molecule-core database migrates), 2 ours: AAD binds scope and key name, 3 KMS envelope.
 */
enum crypt_version {
	CRYPT_V_PLAINTEXT = 0,
	CRYPT_V_GCM = 1,
	CRYPT_V_GCM_AAD = 2,
	CRYPT_V_ENVELOPE = 3,
};

enum crypt_result {
	CRYPT_OK = 0,
	CRYPT_FAIL = -1,	/* bad blob, failed authentication, wrong key: never plaintext */
	CRYPT_UNAVAILABLE = -2,	/* the key source (KMS) cannot be reached: 503 */
};

/*
 * Loads the key source from c (SECRETS_ENCRYPTION_KEY: 32 bytes base64 or 64 hex chars;
 * KMS_KEY_ARN + KMS_ENDPOINT + the standard AWS credential variables). In production a
 * missing key source is an error. Returns 0, or -1 with a clear reason in err.
 */
int crypt_init(const struct conf *c, char *err, size_t errlen);
void crypt_cleanup(void);
/* The version new writes use: 3 with KMS, 2 with a static key, 0 with neither (dev only). */
enum crypt_version crypt_write_version(void);

/*
 * Encrypts pt for the row (scope = workspace id, or "global"; name = the secret's key) with
 * the write version. *out is malloc'd; *version says how to read it back.
 */
enum crypt_result crypt_seal(const char *scope, const char *name, const unsigned char *pt,
    size_t ptlen, unsigned char **out, size_t *outlen, int *version, char *err, size_t errlen);
/*
 * Decrypts a blob of the given version for the row. *pt is malloc'd and NUL-terminated (callers
 * OPENSSL_cleanse and free it). A blob moved to another row fails (versions 2 and 3).
 */
enum crypt_result crypt_open(const char *scope, const char *name, int version,
    const unsigned char *blob, size_t bloblen, unsigned char **pt, size_t *ptlen,
    char *err, size_t errlen);

#endif
