#!/usr/bin/env bash
# scheduler.sh: one scheduler tick over 10 000 due schedules (claim FOR UPDATE SKIP LOCKED, next fire
# in C per row, advance + queue in one statement per batch) at several batch sizes, and an idle tick,
# beside the baseline: one bare INSERT ... SELECT of the same 10 000 a2a_queue rows plus the
# UPDATE of next_run_at, timed by psql in the same run. Prints a table and rewrites the
# "scheduler-bench" section of docs/performance.md.
set -euo pipefail
# shellcheck source=tests/bench/lib.sh
. "$(dirname "$0")/lib.sh"
N="${BENCH_SCHEDULES:-10000}"
WORKSPACES=100

# The supervised scheduler ticks once at start (nothing due yet), then sleeps: the bench drives
# its own one-tick processes (molecule-scheduler -1). The dispatcher finds no agent URL to call.
export SCHEDULER_TICK_MS=3600000 MOLECULE_ENGINE=0 MOLECULE_PROVISION=0
bench_stack_up
# shellcheck disable=SC1091
. "$run/stack.env"
export DATABASE_URL REDIS_URL
q() { psql "$DATABASE_URL" -Atq -v ON_ERROR_STOP=1 -c "$1"; }

q "INSERT INTO workspaces (name, status) SELECT 'bench-' || g, 'online' FROM generate_series(1, $WORKSPACES) g"
q "INSERT INTO workspace_schedules (workspace_id, name, cron_expr, timezone, prompt, next_run_at)
   SELECT w.id, 's-' || g, (ARRAY['*/5 * * * *', '0 9 * * mon-fri', '30 2 * * *', '@hourly'])[1 + g % 4],
          (ARRAY['UTC', 'America/New_York', 'Europe/Berlin', 'Asia/Tokyo'])[1 + g % 4],
          'bench prompt ' || g, now() - interval '1 minute'
   FROM generate_series(1, $N) g JOIN (SELECT id, row_number() OVER () AS rn FROM workspaces) w
     ON w.rn = 1 + g % $WORKSPACES"
reset_due() {
	q "DELETE FROM a2a_queue"
	q "UPDATE workspace_schedules SET next_run_at = now() - interval '1 minute'"
	q "VACUUM ANALYZE workspace_schedules"
	q "VACUUM ANALYZE a2a_queue"
}
one_tick() { # batch -> "fires ms"
	SCHEDULER_BATCH="$1" MOLECULE_LOG_LEVEL=warn "$BIN_DIR/molecule-scheduler" -1 2>&1 |
		sed -n 's/.*one tick: \([0-9]*\) fires queued in \([0-9.]*\) ms.*/\1 \2/p'
}

rows=()
for b in 100 500 2000 10000; do
	reset_due
	read -r fired ms <<<"$(one_tick "$b")"
	[ "$fired" = "$N" ] || { echo "scheduler bench: batch $b queued $fired of $N fires" >&2; exit 1; }
	rows+=("| tick, $N due, batch $b | $ms | $(awk -v n="$N" -v ms="$ms" 'BEGIN { printf "%.0f", n / (ms / 1000) }') |")
done
read -r fired ms <<<"$(one_tick 500)"
rows+=("| idle tick (nothing due) | $ms | - |")

reset_due
base_ms=$(psql "$DATABASE_URL" -Atq -v ON_ERROR_STOP=1 <<SQL | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | awk '{ s += $1 } END { printf "%.1f", s }'
\timing on
BEGIN;
INSERT INTO a2a_queue (workspace_id, kind, ref_id, message_id, body)
  SELECT workspace_id, 'cron', id, 'cron-' || id || '-1', jsonb_build_object('jsonrpc', '2.0', 'id', 'cron-' || id,
    'method', 'message/send', 'params', jsonb_build_object('message', jsonb_build_object('role', 'user',
    'messageId', 'cron-' || id, 'parts', jsonb_build_array(jsonb_build_object('kind', 'text', 'text', prompt)))))
  FROM workspace_schedules;
UPDATE workspace_schedules SET next_run_at = now() + interval '1 hour';
COMMIT;
SQL
)
rows+=("| baseline: bare INSERT ... SELECT of $N queue rows + UPDATE (psql) | $base_ms | $(awk -v n="$N" -v ms="$base_ms" 'BEGIN { printf "%.0f", n / (ms / 1000) }') |")

table="| case | ms | fires/s |
|---|---:|---:|"
for r in "${rows[@]}"; do table+=$'\n'"$r"; done
echo "$table"
bench_write_doc scheduler-bench "Scheduler tick ($(nproc) cores, $N schedules over $WORKSPACES workspaces, 4 timezones; \`tests/bench/scheduler.sh\`):" "$table"
