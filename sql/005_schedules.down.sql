-- 005_schedules down: drops the table 005_schedules created (cron_run activity rows stay).
DROP TABLE IF EXISTS workspace_schedules;
