-- 002_secrets down: drops the secret tables 002_secrets created.
DROP TABLE IF EXISTS global_secrets;
DROP TABLE IF EXISTS workspace_secrets;
