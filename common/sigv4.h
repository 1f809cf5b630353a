/*
 * sigv4.h: AWS Signature Version 4 (HMAC-SHA256) for the few AWS calls we make (KMS).
 * Owns nothing; the Authorization header is written into the caller's buffer.
 */
#ifndef MOLECULE_SIGV4_H
#define MOLECULE_SIGV4_H

#include <stddef.h>
#include <time.h>

struct sigv4_header {
	const char *name;
	const char *value;
};

struct sigv4_request {
	const char *method;		/* "GET", "POST" */
	const char *path;		/* "/" when empty or NULL */
	const char *query;		/* without '?', may be NULL */
	const struct sigv4_header *headers;	/* must include host and x-amz-date */
	size_t nheaders;
	const unsigned char *payload;	/* may be NULL with payload_len 0 */
	size_t payload_len;
	const char *region;
	const char *service;
	const char *access_key;
	const char *secret_key;
	const char *session_token;	/* NULL: none; else signed as x-amz-security-token */
	const char *amz_date;		/* "YYYYMMDDTHHMMSSZ" */
};

/*
 * Writes "AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=..." (the header's
 * value, without "Authorization: ") into auth_header. Returns 0, or -1 (bad input, too small).
 */
int sigv4_sign(const struct sigv4_request *rq, char *auth_header, size_t len);
/* Formats t as the x-amz-date value into buf (>= 17 bytes). */
void sigv4_amz_date(time_t t, char *buf, size_t len);
/* Lowercase hex SHA-256 of data into hex (>= 65 bytes). */
void sigv4_sha256_hex(const unsigned char *data, size_t len, char *hex);

#endif
