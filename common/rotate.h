/*
 * rotate.h: `moleculed secrets rotate`: re-encrypts every stored secret with the write version.
 * Owns nothing; plaintext exists only briefly in wiped buffers, one batch transaction at a time.
 */
#ifndef MOLECULE_ROTATE_H
#define MOLECULE_ROTATE_H

#include <libpq-fe.h>
#include <stdio.h>

/*
 * Converts workspace_secrets, global_secrets and workspaces.platform_inbound_secret rows whose
 * version differs from crypt_write_version(), batch rows per transaction (SELECT ... FOR UPDATE
 * SKIP LOCKED): online, idempotent and resumable. A row that fails to decrypt is counted and
 * left untouched. Writes one summary line per table to report. crypt_init must have run.
 * Returns the number of rows left unconverted (0 = done), or -1 (database or key service
 * error, logged; batches already committed stay converted).
 */
int rotate_secrets(PGconn *c, int batch, FILE *report);

#endif
