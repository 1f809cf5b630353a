/*
 * kms.h: the two AWS KMS calls envelope encryption needs (GenerateDataKey, Decrypt), SigV4-signed.
 * Owns the key ARN, region, endpoint, credentials and the curl handle (process lifetime).
 */
#ifndef MOLECULE_KMS_H
#define MOLECULE_KMS_H

#include <stddef.h>

enum kms_result {
	KMS_OK = 0,
	KMS_FAIL = -1,		/* KMS answered 4xx or something unusable */
	KMS_UNAVAILABLE = -2,	/* unreachable, timeout or 5xx */
};

#define KMS_DATA_KEY_LEN	32
#define KMS_MAX_WRAPPED		4096

/*
 * Parses "arn:aws:kms:REGION:ACCOUNT:key/ID" (also alias/NAME) into region.
 * Returns 0, or -1 when the ARN is malformed.
 */
int kms_parse_region(const char *arn, char *region, size_t len);
/*
 * Configures the client: endpoint NULL or "" means https://kms.REGION.amazonaws.com.
 * Credentials come from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN.
 * Returns 0, or -1 with the reason in err.
 */
int kms_init(const char *key_arn, const char *endpoint, char *err, size_t errlen);
void kms_cleanup(void);
/* GenerateDataKey AES_256: the plaintext key in key, the wrapped key (malloc'd) in *wrapped. */
enum kms_result kms_generate_data_key(unsigned char key[KMS_DATA_KEY_LEN],
    unsigned char **wrapped, size_t *wlen, char *err, size_t errlen);
/* Decrypt of a wrapped data key into key. */
enum kms_result kms_decrypt(const unsigned char *wrapped, size_t wlen,
    unsigned char key[KMS_DATA_KEY_LEN], char *err, size_t errlen);

#endif
