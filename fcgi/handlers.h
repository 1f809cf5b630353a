/*
 * handlers.h: every route handler, one h_<resource>.c file per API resource.
 * Owns nothing; handlers follow router.h's handler_fn contract.
 */
#ifndef MOLECULE_HANDLERS_H
#define MOLECULE_HANDLERS_H

#include "fcgi/req.h"

/* h_health.c */
int h_health(struct req *r);
int h_metrics(struct req *r);
/* h_admin.c */
int h_admin_liveness(struct req *r);
/* h_workspaces.c */
int h_workspaces_list(struct req *r);
int h_workspaces_create(struct req *r);
int h_workspaces_get(struct req *r);
int h_workspaces_patch(struct req *r);
int h_workspaces_delete(struct req *r);
int h_workspaces_state(struct req *r);
/* h_canvas.c */
int h_canvas_viewport_get(struct req *r);
int h_canvas_viewport_put(struct req *r);
/* h_events.c */
int h_events_list(struct req *r);
int h_events_list_workspace(struct req *r);
/* h_registry.c */
int h_registry_register(struct req *r);
int h_registry_heartbeat(struct req *r);
int h_registry_update_card(struct req *r);
/* h_discovery.c */
int h_discovery_discover(struct req *r);
int h_discovery_peers(struct req *r);
int h_discovery_check_access(struct req *r);
/* h_tokens.c */
int h_tokens_list(struct req *r);
int h_tokens_create(struct req *r);
int h_tokens_revoke(struct req *r);
int h_org_tokens_list(struct req *r);
int h_org_tokens_create(struct req *r);
int h_org_tokens_revoke(struct req *r);
int h_admin_test_token(struct req *r);
/* h_activity.c */
int h_activity_list(struct req *r);
int h_activity_report(struct req *r);
int h_activity_notify(struct req *r);
/* h_stream.c: nchan authorize subrequests for /ws and the per-workspace SSE stream */
int h_stream_ws_auth(struct req *r);
int h_stream_sse_auth(struct req *r);

/* a2a proxy (h_a2a.c), served by the A2A worker pool */
int h_a2a_proxy(struct req *r);

/* lifecycle (h_lifecycle.c) */
int h_lifecycle_restart(struct req *r);
int h_lifecycle_pause(struct req *r);
int h_lifecycle_resume(struct req *r);
int h_lifecycle_hibernate(struct req *r);

/* secrets (h_secrets.c) */
int h_secrets_list(struct req *r);
int h_secrets_values(struct req *r);
int h_secrets_set(struct req *r);
int h_secrets_delete(struct req *r);
int h_secrets_model_get(struct req *r);
int h_secrets_model_put(struct req *r);
int h_global_secrets_list(struct req *r);
int h_global_secrets_set(struct req *r);
int h_global_secrets_delete(struct req *r);

/*
 * Seeding secrets from POST /workspaces (h_workspaces.c) without a second code path.
 * secrets_check: key must match [A-Za-z_][A-Za-z0-9_]{0,127}, a value at most 64 KiB; returns
 * 0, or -1 with the secrets routes' 400 set. secrets_store_in_tx: seals val, upserts it into
 * workspace_secrets of ws and records SECRET_SET {key, scope} (never the value), all in the
 * caller's open transaction, with no restart job. Returns 0, or -1 with the transaction rolled
 * back and the response set (503 kms_unavailable, 502 kms_rejected, 500). Never logs val.
 */
int secrets_check(struct req *r, const char *key, size_t vlen);
int secrets_store_in_tx(struct req *r, const char *ws, const char *key, const char *val,
    size_t vlen);

/* memories (h_memories.c) */
int h_memories_commit(struct req *r);
int h_memories_search(struct req *r);
int h_memories_delete(struct req *r);
int h_memory_list(struct req *r);
int h_memory_get(struct req *r);
int h_memory_set(struct req *r);
int h_memory_delete(struct req *r);
int h_admin_memories_export(struct req *r);
int h_admin_memories_import(struct req *r);

/*
 * One HMA memory for POST /workspaces/:id/memories and the create-time initial_memories seed.
 * Redacts content (and escapes [MEMORY frames for GLOBAL), inserts it into agent_memories of
 * ws in the caller's open transaction, and audits a GLOBAL write by fingerprint. The caller has
 * checked scope and the root-only GLOBAL rule. *id (may be NULL) gets the new row id. Returns 0,
 * or -1 with the transaction rolled back and the response set (400 for text PostgreSQL refuses).
 */
int memories_insert_in_tx(struct req *r, const char *ws, const char *content, const char *scope,
    const char *ns, const char **id);

/* approvals (h_approvals.c) */
int h_approvals_create(struct req *r);
int h_approvals_list(struct req *r);
int h_approvals_decide(struct req *r);
int h_approvals_escalate(struct req *r);
int h_approvals_pending(struct req *r);
int h_approvals_pending_workspace(struct req *r);

/* delegations (h_delegations.c) */
int h_delegations_delegate(struct req *r);
int h_delegations_list(struct req *r);
int h_delegations_record(struct req *r);
int h_delegations_update(struct req *r);
int h_admin_queue_drop_stale(struct req *r);

/* schedules (h_schedules.c) */
int h_schedules_list(struct req *r);
int h_schedules_create(struct req *r);
int h_schedules_update(struct req *r);
int h_schedules_delete(struct req *r);
int h_schedules_run(struct req *r);
int h_schedules_history(struct req *r);
int h_schedules_health(struct req *r);
int h_admin_schedules_health(struct req *r);

#endif
