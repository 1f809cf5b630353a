-- 004_a2a_queue down: drops what 004_a2a_queue created.
DROP INDEX IF EXISTS idx_activity_delegations;
DROP TABLE IF EXISTS a2a_queue;
DROP FUNCTION IF EXISTS a2a_queue_notify();
