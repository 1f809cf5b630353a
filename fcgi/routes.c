/*
 * routes.c: the API's one route table: method, path pattern, guard, handler (api.md §3).
 * Owns the static table; router.c matches against it and metrics.c labels with it.
 */
#include "fcgi/router.h"

#include "common/util.h"
#include "fcgi/handlers.h"

const struct route routes[] = {
	{ "GET", "/health", GUARD_NONE, h_health },
	{ "GET", "/admin/liveness", GUARD_ADMIN, h_admin_liveness },
	{ "GET", "/metrics", GUARD_NONE, h_metrics },

	{ "GET", "/workspaces", GUARD_ADMIN, h_workspaces_list },
	{ "POST", "/workspaces", GUARD_ADMIN, h_workspaces_create },
	{ "GET", "/workspaces/:id", GUARD_NONE, h_workspaces_get },
	{ "PATCH", "/workspaces/:id", GUARD_WORKSPACE, h_workspaces_patch },
	{ "DELETE", "/workspaces/:id", GUARD_ADMIN, h_workspaces_delete },
	{ "GET", "/workspaces/:id/state", GUARD_WORKSPACE, h_workspaces_state },

	{ "POST", "/registry/register", GUARD_NONE, h_registry_register },
	{ "POST", "/registry/heartbeat", GUARD_NONE, h_registry_heartbeat },
	{ "POST", "/registry/update-card", GUARD_NONE, h_registry_update_card },
	{ "GET", "/registry/discover/:id", GUARD_NONE, h_discovery_discover },
	{ "GET", "/registry/:id/peers", GUARD_NONE, h_discovery_peers },
	{ "POST", "/registry/check-access", GUARD_NONE, h_discovery_check_access },

	{ "GET", "/events", GUARD_ADMIN, h_events_list },
	{ "GET", "/events/:workspaceId", GUARD_ADMIN, h_events_list_workspace },

	{ "GET", "/workspaces/:id/activity", GUARD_WORKSPACE, h_activity_list },
	{ "POST", "/workspaces/:id/activity", GUARD_WORKSPACE, h_activity_report },
	{ "POST", "/workspaces/:id/notify", GUARD_WORKSPACE, h_activity_notify },

	{ "GET", "/canvas/viewport", GUARD_NONE, h_canvas_viewport_get },
	{ "PUT", "/canvas/viewport", GUARD_CANVAS_OR_BEARER, h_canvas_viewport_put },

	{ "GET", "/workspaces/:id/tokens", GUARD_WORKSPACE, h_tokens_list },
	{ "POST", "/workspaces/:id/tokens", GUARD_WORKSPACE, h_tokens_create },
	{ "DELETE", "/workspaces/:id/tokens/:tokenId", GUARD_WORKSPACE, h_tokens_revoke },
	{ "GET", "/org/tokens", GUARD_ADMIN, h_org_tokens_list },
	{ "POST", "/org/tokens", GUARD_ADMIN, h_org_tokens_create },
	{ "DELETE", "/org/tokens/:id", GUARD_ADMIN, h_org_tokens_revoke },
	/* Gated inside the handler: off in production, ADMIN_TOKEN bearer when one is set. */
	{ "GET", "/admin/workspaces/:id/test-token", GUARD_NONE, h_admin_test_token },

	/* nchan's authorize subrequests; nginx marks /internal/ internal-only. */
	{ "GET", "/internal/ws-auth", GUARD_NONE, h_stream_ws_auth },
	{ "GET", "/internal/sse-auth/:id", GUARD_NONE, h_stream_sse_auth },

	/* a2a proxy (h_a2a.c): caller checks in the handler; nginx sends it to the A2A pool */
	{ "POST", "/workspaces/:id/a2a", GUARD_NONE, h_a2a_proxy },

	/* lifecycle (h_lifecycle.c) */
	{ "POST", "/workspaces/:id/restart", GUARD_WORKSPACE, h_lifecycle_restart },
	{ "POST", "/workspaces/:id/pause", GUARD_WORKSPACE, h_lifecycle_pause },
	{ "POST", "/workspaces/:id/resume", GUARD_WORKSPACE, h_lifecycle_resume },
	{ "POST", "/workspaces/:id/hibernate", GUARD_WORKSPACE, h_lifecycle_hibernate },

	/* secrets (h_secrets.c) */
	{ "GET", "/workspaces/:id/secrets", GUARD_WORKSPACE, h_secrets_list },
	{ "GET", "/workspaces/:id/secrets/values", GUARD_WORKSPACE, h_secrets_values },
	{ "POST", "/workspaces/:id/secrets", GUARD_WORKSPACE, h_secrets_set },
	{ "PUT", "/workspaces/:id/secrets", GUARD_WORKSPACE, h_secrets_set },
	{ "DELETE", "/workspaces/:id/secrets/:key", GUARD_WORKSPACE, h_secrets_delete },
	{ "GET", "/workspaces/:id/model", GUARD_WORKSPACE, h_secrets_model_get },
	{ "PUT", "/workspaces/:id/model", GUARD_WORKSPACE, h_secrets_model_put },
	{ "GET", "/settings/secrets", GUARD_ADMIN, h_global_secrets_list },
	{ "PUT", "/settings/secrets", GUARD_ADMIN, h_global_secrets_set },
	{ "POST", "/settings/secrets", GUARD_ADMIN, h_global_secrets_set },
	{ "DELETE", "/settings/secrets/:key", GUARD_ADMIN, h_global_secrets_delete },
	{ "GET", "/admin/secrets", GUARD_ADMIN, h_global_secrets_list },
	{ "POST", "/admin/secrets", GUARD_ADMIN, h_global_secrets_set },
	{ "DELETE", "/admin/secrets/:key", GUARD_ADMIN, h_global_secrets_delete },

	/* memories (h_memories.c) */
	{ "POST", "/workspaces/:id/memories", GUARD_WORKSPACE, h_memories_commit },
	{ "GET", "/workspaces/:id/memories", GUARD_WORKSPACE, h_memories_search },
	{ "DELETE", "/workspaces/:id/memories/:memoryId", GUARD_WORKSPACE, h_memories_delete },
	{ "GET", "/workspaces/:id/memory", GUARD_WORKSPACE, h_memory_list },
	{ "GET", "/workspaces/:id/memory/:key", GUARD_WORKSPACE, h_memory_get },
	{ "POST", "/workspaces/:id/memory", GUARD_WORKSPACE, h_memory_set },
	{ "DELETE", "/workspaces/:id/memory/:key", GUARD_WORKSPACE, h_memory_delete },
	{ "GET", "/admin/memories/export", GUARD_ADMIN, h_admin_memories_export },
	{ "POST", "/admin/memories/import", GUARD_ADMIN, h_admin_memories_import },

	/* approvals (h_approvals.c); decide and escalate check the decider in the handler */
	{ "POST", "/workspaces/:id/approvals", GUARD_WORKSPACE, h_approvals_create },
	{ "GET", "/workspaces/:id/approvals", GUARD_WORKSPACE, h_approvals_list },
	{ "GET", "/workspaces/:id/approvals/pending", GUARD_WORKSPACE, h_approvals_pending_workspace },
	{ "POST", "/workspaces/:id/approvals/:approvalId/decide", GUARD_NONE, h_approvals_decide },
	{ "POST", "/workspaces/:id/approvals/:approvalId/escalate", GUARD_NONE, h_approvals_escalate },
	{ "GET", "/approvals/pending", GUARD_ADMIN, h_approvals_pending },

	/* delegations (h_delegations.c) */
	{ "POST", "/workspaces/:id/delegate", GUARD_WORKSPACE, h_delegations_delegate },
	{ "GET", "/workspaces/:id/delegations", GUARD_WORKSPACE, h_delegations_list },
	{ "POST", "/workspaces/:id/delegations/record", GUARD_WORKSPACE, h_delegations_record },
	{ "POST", "/workspaces/:id/delegations/:delegation_id/update", GUARD_WORKSPACE, h_delegations_update },
	{ "POST", "/admin/a2a-queue/drop-stale", GUARD_ADMIN, h_admin_queue_drop_stale },

	/* schedules (h_schedules.c); health is peer-readable, the caller checked in the handler */
	{ "GET", "/workspaces/:id/schedules", GUARD_WORKSPACE, h_schedules_list },
	{ "POST", "/workspaces/:id/schedules", GUARD_WORKSPACE, h_schedules_create },
	{ "GET", "/workspaces/:id/schedules/health", GUARD_NONE, h_schedules_health },
	{ "PATCH", "/workspaces/:id/schedules/:sid", GUARD_WORKSPACE, h_schedules_update },
	{ "DELETE", "/workspaces/:id/schedules/:sid", GUARD_WORKSPACE, h_schedules_delete },
	{ "POST", "/workspaces/:id/schedules/:sid/run", GUARD_WORKSPACE, h_schedules_run },
	{ "GET", "/workspaces/:id/schedules/:sid/history", GUARD_WORKSPACE, h_schedules_history },
	{ "GET", "/admin/schedules/health", GUARD_ADMIN, h_admin_schedules_health },
};
const size_t nroutes = NELEM(routes);
