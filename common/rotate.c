/*
 * rotate.c: online re-encryption of stored secrets to the current write version.
 * Owns nothing past a call; blobs travel as hex text parameters and plaintext is wiped at once.
 */
#include "common/rotate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "common/crypt.h"
#include "common/log.h"
#include "common/util.h"

#define NVERS 4			/* encryption versions 0..3; anything else counts as failed */
#define UUID_ZERO "00000000-0000-0000-0000-000000000000"

/*
 * One table to convert. select takes $1 target version, $2 last id seen, $3 batch and returns
 * id, scope, name, version, hex blob; update takes $1 id, $2 hex blob, $3 version.
 */
struct rot_table {
	const char *label;
	const char *select;
	const char *update;
};

struct rot_count {
	long converted;
	long from[NVERS];
	long failed;
};

static int rotate_table(PGconn *c, const struct rot_table *t, int target, int batch,
    FILE *report);
static int rotate_batch(PGconn *c, const struct rot_table *t, int target, int batch,
    char *last, struct rot_count *n);
static int convert_row(const char *scope, const char *name, int version, const char *hex,
    char **newhex, int *newver);
static int exec_ok(PGconn *c, const char *sql);

static const struct rot_table tables[] = {
	{ "workspace_secrets",
	  "SELECT id, workspace_id::text, key, encryption_version, encode(encrypted_value, 'hex') "
	  "FROM workspace_secrets WHERE encryption_version <> $1::int AND id > $2::uuid "
	  "ORDER BY id LIMIT $3::int FOR UPDATE SKIP LOCKED",
	  "UPDATE workspace_secrets SET encrypted_value = decode($2, 'hex'), "
	  "encryption_version = $3::int WHERE id = $1::uuid" },
	{ "global_secrets",
	  "SELECT id, 'global', key, encryption_version, encode(encrypted_value, 'hex') "
	  "FROM global_secrets WHERE encryption_version <> $1::int AND id > $2::uuid "
	  "ORDER BY id LIMIT $3::int FOR UPDATE SKIP LOCKED",
	  "UPDATE global_secrets SET encrypted_value = decode($2, 'hex'), "
	  "encryption_version = $3::int WHERE id = $1::uuid" },
	{ "workspaces.platform_inbound_secret",
	  "SELECT id, id::text AS scope, 'platform_inbound_secret' AS name, "
	  "platform_inbound_secret_version, "
	  "encode(platform_inbound_secret, 'hex') FROM workspaces "
	  "WHERE platform_inbound_secret IS NOT NULL AND platform_inbound_secret_version <> $1::int "
	  "AND id > $2::uuid ORDER BY id LIMIT $3::int FOR NO KEY UPDATE SKIP LOCKED",
	  "UPDATE workspaces SET platform_inbound_secret = decode($2, 'hex'), "
	  "platform_inbound_secret_version = $3::int WHERE id = $1::uuid" },
};

int
rotate_secrets(PGconn *c, int batch, FILE *report)
{
	int target = (int)crypt_write_version(), left = 0, rc;
	size_t i;

	if (target == CRYPT_V_PLAINTEXT) {
		log_err("secrets rotate: no key source configured (SECRETS_ENCRYPTION_KEY or "
		    "KMS_KEY_ARN): refusing to rewrite secrets as plaintext");
		return -1;
	}
	if (batch < 1)
		batch = 1;
	for (i = 0; i < NELEM(tables); i++) {
		rc = rotate_table(c, &tables[i], target, batch, report);
		if (rc < 0)
			return -1;
		left += rc;
	}
	return left;
}

/* Walks the table in id order, one transaction per batch. Returns rows left unconverted or -1. */
static int
rotate_table(PGconn *c, const struct rot_table *t, int target, int batch, FILE *report)
{
	struct rot_count n;
	char last[40];
	int rc;

	memset(&n, 0, sizeof(n));
	snprintf(last, sizeof(last), "%s", UUID_ZERO);
	while ((rc = rotate_batch(c, t, target, batch, last, &n)) > 0)
		;
	fprintf(report, "%s: %ld converted (v0: %ld, v1: %ld, v2: %ld -> v%d)", t->label,
	    n.converted, n.from[0], n.from[1], n.from[2], target);
	if (n.from[3] > 0)
		fprintf(report, ", %ld from v3", n.from[3]);
	if (n.failed > 0)
		fprintf(report, ", %ld failed to decrypt (left unchanged)", n.failed);
	if (rc < 0)
		fprintf(report, ", interrupted: rerun to resume");
	fprintf(report, "\n");
	fflush(report);
	if (rc < 0)
		return -1;
	return (int)(n.failed > 0 ? n.failed : 0);
}

/*
 * Converts up to batch rows after *last in one transaction and advances *last.
 * Returns the number of rows looked at (0 = table done), or -1 (rolled back, logged).
 */
static int
rotate_batch(PGconn *c, const struct rot_table *t, int target, int batch, char *last,
    struct rot_count *n)
{
	const char *params[3];
	char tv[16], bv[16], nv[16], *newhex = NULL;
	PGresult *res = NULL, *up;
	int i, rows = -1, ver, newver, rc;
	struct rot_count done;

	memset(&done, 0, sizeof(done));
	snprintf(tv, sizeof(tv), "%d", target);
	snprintf(bv, sizeof(bv), "%d", batch);
	if (exec_ok(c, "BEGIN") < 0)
		return -1;
	params[0] = tv;
	params[1] = last;
	params[2] = bv;
	res = PQexecParams(c, t->select, 3, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		log_err("secrets rotate: %s: select failed: %s", t->label, PQerrorMessage(c));
		goto out;
	}
	for (i = 0; i < PQntuples(res); i++) {
		ver = atoi(PQgetvalue(res, i, 3));
		rc = convert_row(PQgetvalue(res, i, 1), PQgetvalue(res, i, 2), ver,
		    PQgetvalue(res, i, 4), &newhex, &newver);
		if (rc == CRYPT_UNAVAILABLE)
			goto out;
		if (rc != CRYPT_OK) {
			log_warn("secrets rotate: %s row %s (v%d) failed to decrypt; left unchanged",
			    t->label, PQgetvalue(res, i, 0), ver);
			done.failed++;
			continue;
		}
		snprintf(nv, sizeof(nv), "%d", newver);
		params[0] = PQgetvalue(res, i, 0);
		params[1] = newhex;
		params[2] = nv;
		up = PQexecParams(c, t->update, 3, NULL, params, NULL, NULL, 0);
		free(newhex);
		newhex = NULL;
		if (PQresultStatus(up) != PGRES_COMMAND_OK) {
			log_err("secrets rotate: %s: update failed: %s", t->label,
			    PQerrorMessage(c));
			PQclear(up);
			goto out;
		}
		PQclear(up);
		done.converted++;
		if (ver >= 0 && ver < NVERS)
			done.from[ver]++;
	}
	if (PQntuples(res) > 0)
		snprintf(last, 40, "%s", PQgetvalue(res, PQntuples(res) - 1, 0));
	if (exec_ok(c, "COMMIT") < 0)
		goto out;
	n->converted += done.converted;
	n->failed += done.failed;
	for (i = 0; i < NVERS; i++)
		n->from[i] += done.from[i];
	rows = PQntuples(res);
	PQclear(res);
	return rows;
out:
	PQclear(res);
	PQclear(PQexec(c, "ROLLBACK"));
	return -1;
}

/* Opens (scope, name, version, hex) and seals it again. Returns a crypt_result. */
static int
convert_row(const char *scope, const char *name, int version, const char *hex, char **newhex,
    int *newver)
{
	unsigned char *blob = NULL, *pt = NULL, *out = NULL;
	size_t blen = 0, ptlen = 0, outlen = 0;
	char err[256];
	enum crypt_result rc = CRYPT_FAIL;

	*newhex = NULL;
	err[0] = '\0';
	if (hex_decode(hex, &blob, &blen) < 0)
		goto out;
	rc = crypt_open(scope, name, version, blob, blen, &pt, &ptlen, err, sizeof(err));
	if (rc != CRYPT_OK) {
		if (rc == CRYPT_UNAVAILABLE)
			log_err("secrets rotate: key service unavailable: %s", err);
		goto out;
	}
	rc = crypt_seal(scope, name, pt, ptlen, &out, &outlen, newver, err, sizeof(err));
	if (rc != CRYPT_OK) {
		log_err("secrets rotate: sealing failed: %s", err);
		/* A seal failure is not the row's fault: stop rather than count it as bad. */
		rc = CRYPT_UNAVAILABLE;
		goto out;
	}
	*newhex = malloc(outlen * 2 + 1);
	if (*newhex != NULL)
		hex_encode(out, outlen, *newhex);
	if (*newhex == NULL)
		rc = CRYPT_UNAVAILABLE;
out:
	if (pt != NULL) {
		OPENSSL_cleanse(pt, ptlen);
		free(pt);
	}
	free(blob);
	free(out);
	return rc;
}

static int
exec_ok(PGconn *c, const char *sql)
{
	PGresult *res = PQexec(c, sql);
	int ok = PQresultStatus(res) == PGRES_COMMAND_OK;

	if (!ok)
		log_err("secrets rotate: %s failed: %s", sql, PQerrorMessage(c));
	PQclear(res);
	return ok ? 0 : -1;
}

