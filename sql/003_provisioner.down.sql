-- 003_provisioner: back to 001's provision_jobs.
DROP TRIGGER IF EXISTS provision_jobs_notify ON provision_jobs;
DROP FUNCTION IF EXISTS provision_jobs_notify();
DROP INDEX IF EXISTS idx_provision_jobs_lease;
DROP INDEX IF EXISTS provision_jobs_one_running;
DELETE FROM provision_jobs WHERE kind = 'hibernate';
ALTER TABLE provision_jobs DROP COLUMN IF EXISTS not_before;
ALTER TABLE provision_jobs DROP COLUMN IF EXISTS lease_until;
ALTER TABLE provision_jobs DROP COLUMN IF EXISTS claimed_by;
ALTER TABLE provision_jobs DROP CONSTRAINT IF EXISTS provision_jobs_kind_check;
ALTER TABLE provision_jobs ADD CONSTRAINT provision_jobs_kind_check
    CHECK (kind IN ('provision', 'restart', 'stop', 'remove'));
