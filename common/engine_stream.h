/*
 * engine_stream.h: incremental parsers for the Engine API's streamed bodies: JSON-lines progress
 * (build/pull) and 8-byte-header multiplexed log frames. Pure functions over bytes (fuzzed); each parser
 * owns its buffers until *_free.
 */
#ifndef MOLECULE_ENGINE_STREAM_H
#define MOLECULE_ENGINE_STREAM_H

#include <stddef.h>

#include "common/engine.h"

/* A line longer than this is dropped (with a note to fn), never buffered without bound. */
#define JSONL_MAX_LINE (256 * 1024)

struct jsonl {
	engine_line_fn fn;            /* may be NULL */
	void *arg;
	char *buf;                    /* the unterminated tail of the stream */
	size_t len, cap;
	int skipping;                 /* inside an overlong line: drop bytes up to the next '\n' */
	int failed;                   /* an {"error"} / {"errorDetail"} line arrived */
	char err[512];                /* its message */
	char aux_id[160];             /* {"aux":{"ID":...}}: the built image's id */
	size_t lines;                 /* complete lines seen */
};

void jsonl_init(struct jsonl *p, engine_line_fn fn, void *arg);
/* Feeds bytes in any split; fn gets each "stream" line (without its newline) and each "status" line.
 * Returns 0, or -1 on out of memory. An error line does not stop the parser: check p->failed. */
int  jsonl_feed(struct jsonl *p, const void *data, size_t len);
/* Handles a last line without a newline. */
int  jsonl_finish(struct jsonl *p);
void jsonl_free(struct jsonl *p);

/* Output cap of the demultiplexer: logs beyond it are dropped from the front (the tail is what matters). */
struct mux {
	unsigned char hdr[8];
	size_t hlen;                  /* header bytes collected so far */
	size_t remain;                /* payload bytes left in the current frame */
	int raw;                      /* 1 = not multiplexed (TTY container): bytes pass through */
	int decided;                  /* first byte seen, raw decided */
	char *out;                    /* NUL-terminated demultiplexed text */
	size_t len, cap, max;
	size_t dropped;               /* bytes dropped from the front to honour max */
};

void mux_init(struct mux *m, size_t max_bytes);
/* Returns 0, or -1 on out of memory or a malformed frame header (stream type not 0/1/2). */
int  mux_feed(struct mux *m, const void *data, size_t len);
void mux_free(struct mux *m);

#endif
