-- 006_approvals_memories: approval requests (human/ancestor gates), HMA memories (LOCAL/TEAM/GLOBAL
-- facts with full-text search) and the per-workspace key/value memory with TTL and a version.
-- Unlike the reference (NO ACTION), every workspace_id cascades, so a purge never leaves orphans.

CREATE TABLE approval_requests (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    workspace_id     uuid REFERENCES workspaces(id) ON DELETE CASCADE,
    task_id          text,
    action           text NOT NULL,
    reason           text,
    context          jsonb DEFAULT '{}',
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'approved', 'denied', 'escalated')),
    decided_by       text,
    decided_at       timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    -- Who may decide now: this workspace or any ancestor of it (admins always may).
    -- NULL = only a human (admin credential): the requester is a root or escalation ran out.
    assignee_id      uuid REFERENCES workspaces(id) ON DELETE SET NULL,
    escalation_level integer NOT NULL DEFAULT 0,
    -- When the current assignee's time is up and the request moves one level up.
    escalate_after   interval,
    escalate_at      timestamptz,
    expires_at       timestamptz NOT NULL DEFAULT now() + interval '10 minutes'
);
CREATE INDEX idx_approvals_workspace ON approval_requests (workspace_id, created_at DESC);
-- The lazy sweep and the pending lists only ever look at pending rows.
CREATE INDEX idx_approvals_pending ON approval_requests (created_at DESC) WHERE status = 'pending';
-- The expiry and escalation sweeps, and the decide check "is this workspace the assignee".
CREATE INDEX idx_approvals_expires ON approval_requests (expires_at) WHERE status = 'pending';
CREATE INDEX idx_approvals_escalate ON approval_requests (escalate_at) WHERE status = 'pending';
CREATE INDEX idx_approvals_assignee ON approval_requests (assignee_id);

CREATE TABLE agent_memories (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    workspace_id uuid NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    content      text NOT NULL,
    scope        varchar(10) NOT NULL CHECK (scope IN ('LOCAL', 'TEAM', 'GLOBAL')),
    namespace    varchar(50) NOT NULL DEFAULT 'general',
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    content_tsv  tsvector GENERATED ALWAYS AS (to_tsvector('english', content)) STORED
);
CREATE INDEX idx_memories_ns ON agent_memories (workspace_id, namespace);
CREATE INDEX idx_memories_scope ON agent_memories (scope, created_at DESC);
CREATE INDEX idx_memories_fts ON agent_memories USING gin (content_tsv);

CREATE TABLE workspace_memory (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    workspace_id uuid NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    key          text NOT NULL,
    value        jsonb NOT NULL,
    expires_at   timestamptz,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    version      bigint NOT NULL DEFAULT 1,
    UNIQUE (workspace_id, key)
);
COMMENT ON COLUMN workspace_memory.version IS
    'optimistic lock: bumped on every write; a write naming another version gets 409';
-- The lazy purge of expired keys.
CREATE INDEX idx_workspace_memory_expires ON workspace_memory (expires_at) WHERE expires_at IS NOT NULL;
