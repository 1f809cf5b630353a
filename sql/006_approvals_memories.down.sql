-- 006_approvals_memories down: drops the tables 006_approvals_memories created.
DROP TABLE IF EXISTS workspace_memory;
DROP TABLE IF EXISTS agent_memories;
DROP TABLE IF EXISTS approval_requests;
