-- 003_provisioner: what the provisioner worker needs from provision_jobs: the lifecycle kinds,
-- a lease per claim (claimed_by host:pid, lease_until) so a dead worker's job is taken over,
-- a backoff (not_before), at most one running job per workspace, and a NOTIFY on every insert.

ALTER TABLE provision_jobs DROP CONSTRAINT IF EXISTS provision_jobs_kind_check;
ALTER TABLE provision_jobs ADD CONSTRAINT provision_jobs_kind_check
    CHECK (kind IN ('provision', 'restart', 'stop', 'remove', 'hibernate'));
ALTER TABLE provision_jobs ADD COLUMN claimed_by text;
ALTER TABLE provision_jobs ADD COLUMN lease_until timestamptz;
ALTER TABLE provision_jobs ADD COLUMN not_before timestamptz NOT NULL DEFAULT now();

-- One running job per workspace: a second claim of the same workspace fails with 23505
-- instead of racing on its container.
CREATE UNIQUE INDEX provision_jobs_one_running ON provision_jobs (workspace_id)
    WHERE status = 'running';
-- The lease sweep reads only running rows.
CREATE INDEX idx_provision_jobs_lease ON provision_jobs (lease_until) WHERE status = 'running';

-- Wakes every LISTENing provisioner; the payload is only the workspace id (no secrets).
CREATE FUNCTION provision_jobs_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('provision_jobs', NEW.workspace_id::text);
    RETURN NULL;
END $$;
CREATE TRIGGER provision_jobs_notify AFTER INSERT ON provision_jobs
    FOR EACH ROW EXECUTE FUNCTION provision_jobs_notify();
