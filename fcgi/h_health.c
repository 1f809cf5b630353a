/*
 * h_health.c: GET /health (process up, no datastore touched) and GET /metrics (Prometheus text).
 * Owns nothing; the health body is a constant, metrics are rendered into the arena.
 */
#include "fcgi/handlers.h"

#include <string.h>

#include "fcgi/metrics.h"
#include "fcgi/resp.h"

int
h_health(struct req *r)
{
	static const char body[] = "{\"status\":\"ok\"}";

	/* Constant body: the hot path allocates nothing and touches neither database. */
	return resp_text(r, 200, "application/json; charset=utf-8", body, sizeof(body) - 1);
}

int
h_metrics(struct req *r)
{
	size_t len = 0;
	char *text = metrics_render(r->arena, &len);

	if (text == NULL)
		return resp_error(r, 500, "metrics unavailable", NULL);
	return resp_text(r, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
}
