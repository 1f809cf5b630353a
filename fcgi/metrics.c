/*
 * metrics.c: request counters and latency histograms shared by every API worker (Prometheus text).
 * Owns the shared mapping (MAP_SHARED | MAP_ANONYMOUS, inherited across fork, never unmapped).
 */
#include "fcgi/metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "common/liveness.h"
#include "common/kv.h"
#include "fcgi/router.h"

static const int statuses[] = { 200, 201, 202, 204, 400, 401, 402, 403, 404, 405, 409, 410,
	413, 422, 429, 500, 502, 503, 504, 0 /* other */ };
#define NSTATUS (sizeof(statuses) / sizeof(statuses[0]))
/* Upper bounds in microseconds of the latency buckets (+Inf implied). */
static const int64_t bucket_us[] = { 1000, 5000, 10000, 25000, 50000, 100000, 250000,
	500000, 1000000, 2500000, 5000000, 10000000 };
#define NBUCKET (sizeof(bucket_us) / sizeof(bucket_us[0]))

struct route_stats {
	uint64_t count[NSTATUS];
	uint64_t bucket[NBUCKET];	/* non-cumulative; summed when rendered */
	uint64_t total;
	uint64_t sum_us;
};

struct shared {
	uint64_t worker_restarts;
	struct route_stats routes[];
};

static int status_index(int status);
static int append(struct arena *a, char **buf, size_t *len, size_t *cap, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void route_labels(int i, const char **method, const char **route);

static struct shared *shm;
static size_t shm_routes;

int
metrics_init(size_t n)
{
	size_t size = sizeof(struct shared) + (n + 1) * sizeof(struct route_stats);
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return -1;
	shm = p;
	shm_routes = n + 1;
	return 0;
}

void
metrics_record(int route, int status, int64_t duration_us)
{
	struct route_stats *rs;
	size_t b;

	if (shm == NULL)
		return;
	rs = &shm->routes[route < 0 || (size_t)route >= shm_routes - 1 ? shm_routes - 1 : (size_t)route];
	__atomic_fetch_add(&rs->count[status_index(status)], 1, __ATOMIC_RELAXED);
	for (b = 0; b < NBUCKET && duration_us > bucket_us[b]; b++)
		;
	if (b < NBUCKET)
		__atomic_fetch_add(&rs->bucket[b], 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&rs->total, 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&rs->sum_us, (uint64_t)(duration_us > 0 ? duration_us : 0), __ATOMIC_RELAXED);
}

void
metrics_worker_restart(void)
{
	if (shm != NULL)
		__atomic_fetch_add(&shm->worker_restarts, 1, __ATOMIC_RELAXED);
}

char *
metrics_render(struct arena *a, size_t *len)
{
	char *buf = NULL;
	size_t cap = 0, i, s, b;
	const char *method, *route;
	uint64_t cum;
	struct liveness_entry e;
	redisReply *r;

	*len = 0;
	if (shm == NULL)
		return NULL;
	if (append(a, &buf, len, &cap, "# HELP molecule_http_requests_total API requests by route and status.\n"
	    "# TYPE molecule_http_requests_total counter\n") < 0)
		return NULL;
	for (i = 0; i < shm_routes; i++) {
		route_labels((int)i, &method, &route);
		for (s = 0; s < NSTATUS; s++) {
			uint64_t c = __atomic_load_n(&shm->routes[i].count[s], __ATOMIC_RELAXED);
			char code[16];

			if (c == 0)
				continue;
			if (statuses[s] == 0)
				snprintf(code, sizeof(code), "other");
			else
				snprintf(code, sizeof(code), "%d", statuses[s]);
			if (append(a, &buf, len, &cap,
			    "molecule_http_requests_total{method=\"%s\",route=\"%s\",status=\"%s\"} %llu\n",
			    method, route, code, (unsigned long long)c) < 0)
				return NULL;
		}
	}
	if (append(a, &buf, len, &cap, "# HELP molecule_http_request_duration_seconds API latency by route.\n"
	    "# TYPE molecule_http_request_duration_seconds histogram\n") < 0)
		return NULL;
	for (i = 0; i < shm_routes; i++) {
		struct route_stats *rs = &shm->routes[i];
		uint64_t total = __atomic_load_n(&rs->total, __ATOMIC_RELAXED);
		if (total == 0)
			continue;
		route_labels((int)i, &method, &route);
		cum = 0;
		for (b = 0; b < NBUCKET; b++) {
			cum += __atomic_load_n(&rs->bucket[b], __ATOMIC_RELAXED);
			if (append(a, &buf, len, &cap, "molecule_http_request_duration_seconds_bucket"
			    "{method=\"%s\",route=\"%s\",le=\"%g\"} %llu\n", method, route,
			    (double)bucket_us[b] / 1e6, (unsigned long long)cum) < 0)
				return NULL;
		}
		if (append(a, &buf, len, &cap, "molecule_http_request_duration_seconds_bucket"
		    "{method=\"%s\",route=\"%s\",le=\"+Inf\"} %llu\n"
		    "molecule_http_request_duration_seconds_sum{method=\"%s\",route=\"%s\"} %.6f\n"
		    "molecule_http_request_duration_seconds_count{method=\"%s\",route=\"%s\"} %llu\n",
		    method, route, (unsigned long long)total, method, route,
		    (double)__atomic_load_n(&rs->sum_us, __ATOMIC_RELAXED) / 1e6,
		    method, route, (unsigned long long)total) < 0)
			return NULL;
	}
	if (append(a, &buf, len, &cap, "# HELP molecule_api_worker_restarts_total API workers respawned by the master.\n"
	    "# TYPE molecule_api_worker_restarts_total counter\nmolecule_api_worker_restarts_total %llu\n",
	    (unsigned long long)__atomic_load_n(&shm->worker_restarts, __ATOMIC_RELAXED)) < 0)
		return NULL;
	/* Restarts of every supervised process, from the shared heartbeats. */
	r = kv_command(a, "HGETALL %s", LIVENESS_KEY);
	if (r != NULL && r->type == REDIS_REPLY_ARRAY) {
		if (append(a, &buf, len, &cap, "# HELP molecule_process_restarts_total Respawns of each supervised process.\n"
		    "# TYPE molecule_process_restarts_total counter\n") < 0)
			return NULL;
		for (i = 0; i + 1 < r->elements; i += 2) {
			if (liveness_parse(r->element[i]->str, r->element[i + 1]->str, &e) < 0)
				continue;
			if (append(a, &buf, len, &cap, "molecule_process_restarts_total{process=\"%s\"} %d\n",
			    e.name, e.restarts) < 0)
				return NULL;
		}
	}
	return buf;
}

static int
status_index(int status)
{
	size_t i;

	for (i = 0; i < NSTATUS - 1; i++)
		if (statuses[i] == status)
			return (int)i;
	return (int)NSTATUS - 1;
}

static void
route_labels(int i, const char **method, const char **route)
{
	if ((size_t)i < nroutes) {
		*method = routes[i].method;
		*route = routes[i].pattern;
	} else {
		*method = "";
		*route = "unmatched";
	}
}

static int
append(struct arena *a, char **buf, size_t *len, size_t *cap, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(*buf ? *buf + *len : NULL, *buf ? *cap - *len : 0, fmt, ap);
		va_end(ap);
		if (n < 0)
			return -1;
		if (*buf != NULL && *len + (size_t)n < *cap) {
			*len += (size_t)n;
			return 0;
		}
		/* Grow by doubling; the old block stays in the arena until reset. */
		{
			size_t ncap = (*cap ? *cap * 2 : 16384) + (size_t)n;
			char *nbuf = arena_alloc(a, ncap);
			if (nbuf == NULL)
				return -1;
			if (*buf != NULL)
				memcpy(nbuf, *buf, *len);
			*buf = nbuf;
			*cap = ncap;
		}
	}
}
