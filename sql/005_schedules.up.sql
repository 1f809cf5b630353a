-- 005_schedules: cron schedules per workspace (reference/schema.md workspace_schedules, migrations
-- 015/022/032 folded into one). The scheduler worker claims due rows FOR UPDATE SKIP LOCKED and, in
-- the same transaction, advances next_run_at and queues the fire in a2a_queue (kind 'cron').
-- History is the activity_logs 'cron_run' rows the dispatcher writes through cronfire_record().

CREATE TABLE workspace_schedules (
    id                     uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    workspace_id           uuid NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    name                   text NOT NULL DEFAULT '',
    cron_expr              text NOT NULL,
    timezone               text NOT NULL DEFAULT 'UTC',
    prompt                 text NOT NULL,
    enabled                boolean NOT NULL DEFAULT true,
    last_run_at            timestamptz,
    next_run_at            timestamptz,
    run_count              integer NOT NULL DEFAULT 0,
    last_status            text DEFAULT '',
    last_error             text DEFAULT '',
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now(),
    source                 text NOT NULL DEFAULT 'runtime' CHECK (source IN ('template', 'runtime')),
    consecutive_empty_runs integer NOT NULL DEFAULT 0,
    -- The fire time the scheduler last queued (UTC): with the schedule id it makes the stable
    -- messageId of a fire, and it is what a fire being recorded can be checked against.
    last_fire_at           timestamptz
);
CREATE INDEX idx_schedules_workspace ON workspace_schedules (workspace_id);
-- The tick's claim: enabled rows in next_run_at order.
CREATE INDEX idx_schedules_next_run ON workspace_schedules (next_run_at) WHERE enabled;
-- The target of org import's ON CONFLICT (workspace_id, name).
CREATE UNIQUE INDEX idx_schedules_workspace_name ON workspace_schedules (workspace_id, name);
