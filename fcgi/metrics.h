/*
 * metrics.h: request counters and latency histograms shared by every API worker (Prometheus text).
 * Owns one shared anonymous mapping created by the master before fork; workers add atomically.
 */
#ifndef MOLECULE_METRICS_H
#define MOLECULE_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "common/arena.h"

/* Maps the counters for n routes (+1 for unmatched). Master only, before forking. Returns 0/-1. */
int metrics_init(size_t n);
/* Counts one request; route -1 = unmatched. Lock-free, safe from every worker. */
void metrics_record(int route, int status, int64_t duration_us);
/* Counts a respawn of an API worker (the master calls this). */
void metrics_worker_restart(void);
/* Renders the Prometheus text exposition into the arena. Returns NULL when it is full. */
char *metrics_render(struct arena *a, size_t *len);

#endif
