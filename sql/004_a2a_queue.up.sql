-- 004_a2a_queue: outbound A2A work for the dispatcher worker (cron fires, delegations, restart context,
-- busy-agent retries). The dispatcher owns the table; producers only INSERT 'queued' rows inside their
-- own transaction (common/a2aq.h does it for C code).

-- Statuses follow the issue-6 contract: queued -> running (leased) -> done | failed | dropped.
-- A 'running' row whose lease_until has passed belongs to a dead dispatcher and goes back to 'queued',
-- so delivery is at least once; message_id stays the same on every attempt so agents can deduplicate.
CREATE TABLE a2a_queue (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    workspace_id    uuid NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    caller_id       uuid,
    kind            text NOT NULL CHECK (kind IN ('a2a', 'cron', 'delegation', 'restart_context')),
    ref_id          uuid,
    message_id      text NOT NULL,
    body            jsonb NOT NULL,
    status          text NOT NULL DEFAULT 'queued'
                    CHECK (status IN ('queued', 'running', 'done', 'failed', 'dropped')),
    priority        smallint NOT NULL DEFAULT 50,
    idempotency_key text,
    attempts        integer NOT NULL DEFAULT 0,
    not_before      timestamptz NOT NULL DEFAULT now(),
    deadline_ms     integer NOT NULL DEFAULT 300000 CHECK (deadline_ms > 0),
    lease_until     timestamptz,
    lease_owner     text,           -- host:pid of the dispatcher holding the lease (diagnostics)
    response        jsonb,
    error           text,
    duration_ms     integer,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
-- The claim query: due queued rows, highest priority first, oldest first.
CREATE INDEX idx_a2a_queue_dispatch ON a2a_queue (workspace_id, priority DESC, created_at) WHERE status = 'queued';
-- Per-target in-flight count (max_concurrent_tasks gate) and lease expiry scan.
CREATE INDEX idx_a2a_queue_running ON a2a_queue (workspace_id, lease_until) WHERE status = 'running';
CREATE INDEX idx_a2a_queue_workspace ON a2a_queue (workspace_id, created_at DESC);
-- Housekeeping prunes finished rows by age (a2a_queue_retention_hours).
CREATE INDEX idx_a2a_queue_finished ON a2a_queue (updated_at) WHERE status IN ('done', 'failed', 'dropped');
CREATE UNIQUE INDEX idx_a2a_queue_idempotency ON a2a_queue (workspace_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL AND status IN ('queued', 'running');

-- One NOTIFY per INSERT statement (not per row: the scheduler inserts hundreds at once). It is delivered
-- at COMMIT, so the dispatcher never wakes for a row it cannot see yet. Polling covers lost notifies.
CREATE FUNCTION a2a_queue_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('a2a_queue', '');
    RETURN NULL;
END $$;
CREATE TRIGGER a2a_queue_notify AFTER INSERT ON a2a_queue
    FOR EACH STATEMENT EXECUTE FUNCTION a2a_queue_notify();

-- Delegations are not a table of their own: as in the reference they are activity_logs rows
-- (activity_type 'delegation', method 'delegate' with request_body.delegation_id, and 'delegate_result'),
-- which is what GET /workspaces/:id/delegations returns and what agent-recorded delegations (with
-- agent-chosen, not necessarily UUID, ids) update. The idempotency key is activity_logs.idempotency_key,
-- unique per workspace since 001 (activity_logs_idempotency_uniq). Platform delegations are sent
-- through a2a_queue (kind 'delegation', ref_id = delegation_id).
CREATE INDEX idx_activity_delegations ON activity_logs (workspace_id, (request_body->>'delegation_id'))
    WHERE activity_type = 'delegation';
