/*
 * tar.h: in-memory ustar writer for build contexts and PUT /archive uploads.
 * Owns t->buf (malloc'd, grown on demand, freed by tar_free); callers own the names and data they pass.
 */
#ifndef MOLECULE_TAR_H
#define MOLECULE_TAR_H

#include <stddef.h>

struct tar {
	unsigned char *buf;
	size_t len, cap;
	size_t max;                   /* 0 = no cap */
	char err[256];                /* why the last call failed (name too long, cap reached, I/O) */
};

void tar_init(struct tar *t, size_t max_bytes);
/* Names longer than 100 bytes are split into ustar's prefix (155) + name (100) at a '/'; else -1. */
int  tar_add_file(struct tar *t, const char *name, const void *data, size_t len, unsigned mode);
int  tar_add_dir(struct tar *t, const char *name, unsigned mode);
/* walks a directory into the archive (regular files, dirs, symlinks kept as links), skipping ".git" */
int  tar_add_tree(struct tar *t, const char *root);
int  tar_finish(struct tar *t);        /* two zero blocks */
void tar_free(struct tar *t);

#endif
