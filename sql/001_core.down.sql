-- 001_core down: drops everything 001_core created, dependents first.
DROP TABLE IF EXISTS provision_jobs;
DROP TABLE IF EXISTS activity_logs;
DROP TABLE IF EXISTS org_api_tokens;
DROP TABLE IF EXISTS workspace_auth_tokens;
DROP TABLE IF EXISTS structure_events;
DROP TABLE IF EXISTS canvas_viewport;
DROP TABLE IF EXISTS canvas_layouts;
DROP TABLE IF EXISTS workspaces;
DROP TYPE IF EXISTS workspace_status;
