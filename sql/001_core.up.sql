-- 001_core: the registry (workspaces), its append-only event log, auth tokens, activity, canvas.
-- Column names and types follow molecule-core's final schema (reference/schema.md §1.3) so its
-- clients and data migrate unchanged; the status enum admits every status the code writes.

CREATE TYPE workspace_status AS ENUM (
    'provisioning', 'online', 'offline', 'degraded', 'failed', 'removed',
    'paused', 'hibernating', 'hibernated', 'awaiting_agent'
);

CREATE TABLE workspaces (
    id                       uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name                     text NOT NULL,
    role                     text,
    tier                     integer DEFAULT 1,
    status                   workspace_status NOT NULL DEFAULT 'provisioning',
    source_bundle_id         text,
    agent_card               jsonb,
    url                      text,
    parent_id                uuid REFERENCES workspaces(id),
    forwarded_to             uuid REFERENCES workspaces(id),
    last_heartbeat_at        timestamptz,
    last_error_rate          double precision DEFAULT 0,
    last_sample_error        text,
    active_tasks             integer DEFAULT 0,
    uptime_seconds           integer DEFAULT 0,
    created_at               timestamptz DEFAULT now(),
    updated_at               timestamptz DEFAULT now(),
    current_task             text,
    awareness_namespace      text,
    runtime                  text DEFAULT 'langgraph',
    workspace_dir            text,
    workspace_access         varchar(20) NOT NULL DEFAULT 'none'
                             CHECK (workspace_access IN ('none', 'read_only', 'read_write')),
    budget_limit             bigint,
    monthly_spend            bigint NOT NULL DEFAULT 0,
    hibernation_idle_minutes integer,
    last_outbound_at         timestamptz,
    max_concurrent_tasks     integer NOT NULL DEFAULT 1,
    instance_id              text,
    -- Shared secret the platform presents to the agent; encrypted by the secrets layer.
    platform_inbound_secret  bytea,
    platform_inbound_secret_version integer NOT NULL DEFAULT 0
);
CREATE INDEX idx_workspaces_parent_id ON workspaces (parent_id);
CREATE INDEX idx_workspaces_status ON workspaces (status);
CREATE INDEX idx_workspaces_created_at ON workspaces (created_at);

CREATE TABLE canvas_layouts (
    workspace_id uuid PRIMARY KEY REFERENCES workspaces(id) ON DELETE CASCADE,
    x            double precision NOT NULL DEFAULT 0,
    y            double precision NOT NULL DEFAULT 0,
    collapsed    boolean DEFAULT false
);

CREATE TABLE canvas_viewport (
    id       uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    x        double precision NOT NULL DEFAULT 0,
    y        double precision NOT NULL DEFAULT 0,
    zoom     double precision NOT NULL DEFAULT 1,
    saved_at timestamptz DEFAULT now()
);

-- Append-only: no FK, so events outlive purged workspaces; nothing UPDATEs or DELETEs it.
CREATE TABLE structure_events (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    event_type   text NOT NULL,
    workspace_id uuid,
    agent_id     uuid,
    target_id    uuid,
    payload      jsonb,
    created_at   timestamptz DEFAULT now()
);
CREATE INDEX idx_events_workspace_id ON structure_events (workspace_id, created_at DESC);
CREATE INDEX idx_events_created_at ON structure_events (created_at DESC);

CREATE TABLE workspace_auth_tokens (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    workspace_id uuid NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    token_hash   bytea NOT NULL UNIQUE,
    prefix       text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz
);
CREATE INDEX workspace_auth_tokens_live_idx ON workspace_auth_tokens (workspace_id) WHERE revoked_at IS NULL;

CREATE TABLE org_api_tokens (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    token_hash   bytea NOT NULL UNIQUE,
    prefix       text NOT NULL,
    name         text,
    created_by   text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz,
    org_id       uuid REFERENCES workspaces(id) ON DELETE SET NULL
);
CREATE INDEX org_api_tokens_org_id_idx ON org_api_tokens (org_id) WHERE org_id IS NOT NULL;

CREATE TABLE activity_logs (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    workspace_id    uuid NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    activity_type   text NOT NULL,
    source_id       uuid,
    target_id       uuid,
    method          text,
    summary         text,
    request_body    jsonb,
    response_body   jsonb,
    duration_ms     integer,
    status          text DEFAULT 'ok',
    error_detail    text,
    created_at      timestamptz DEFAULT now(),
    idempotency_key text,
    tool_trace      jsonb
);
CREATE INDEX idx_activity_ws_type_time ON activity_logs (workspace_id, activity_type, created_at DESC);
CREATE INDEX idx_activity_ws_time ON activity_logs (workspace_id, created_at DESC);
CREATE INDEX idx_activity_created_at ON activity_logs (created_at);
CREATE UNIQUE INDEX activity_logs_idempotency_uniq ON activity_logs (workspace_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

-- Work for the provisioner worker, written in the same transaction as the change that needs it.
-- No FK: a 'remove' job must outlive a purged workspace so its container is still cleaned up.
CREATE TABLE provision_jobs (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    workspace_id uuid NOT NULL,
    kind         text NOT NULL CHECK (kind IN ('provision', 'restart', 'stop', 'remove')),
    status       text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'running', 'done', 'failed')),
    payload      jsonb NOT NULL DEFAULT '{}',
    attempts     integer NOT NULL DEFAULT 0,
    last_error   text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idx_provision_jobs_queued ON provision_jobs (created_at) WHERE status = 'queued';
CREATE INDEX idx_provision_jobs_workspace ON provision_jobs (workspace_id);
