#!/usr/bin/env bash
# registry.sh: registry and listing benchmarks against a real stack, each against a baseline
# measured in the same run: heartbeat throughput vs H = 1/(1/F + 1/P), where F is a libfcgi
# hello-world behind the same nginx config and P is pgbench running the heartbeat's UPDATE at
# the same concurrency; GET /workspaces latency with 1000 workspaces; register and discover rates.
# Prints a table and rewrites the "registry benchmark" section of docs/performance.md.
set -euo pipefail
# shellcheck source=tests/bench/lib.sh
. "$(dirname "$0")/lib.sh"
DURATION="${BENCH_DURATION:-15}"
CONNS="${BENCH_CONNECTIONS:-32}"
THREADS="${BENCH_THREADS:-2}"
NWS="${BENCH_WORKSPACES:-1000}"

admin="bench-admin-token-0123456789"
export ADMIN_TOKEN="$admin"
bench_stack_up
# shellcheck disable=SC1091
. "$run/stack.env"

# Workspaces md5(n)::uuid, each with a known token: 10 roots with 99 children each, so discovery
# between siblings is allowed and the hierarchy looks like a real org.
psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -q <<SQL
INSERT INTO workspaces (id, name, status, parent_id, url)
SELECT md5(n::text)::uuid, 'bench-' || n, 'online',
       CASE WHEN n % 100 = 1 THEN NULL ELSE md5((((n - 1) / 100) * 100 + 1)::text)::uuid END,
       'http://10.20.0.1:8000'
FROM generate_series(1, $NWS) n ORDER BY n;
INSERT INTO canvas_layouts (workspace_id, x, y) SELECT md5(n::text)::uuid, n, n FROM generate_series(1, $NWS) n;
INSERT INTO workspace_auth_tokens (workspace_id, token_hash, prefix)
SELECT md5(n::text)::uuid, sha256(convert_to(rpad(md5('tok' || n) || md5('tok2' || n), 43, 'x'), 'UTF8')),
       left(md5('tok' || n), 8)
FROM generate_series(1, $NWS) n;
SQL
# id, token, and a sibling (the next child of the same root) as the discover target.
psql "$DATABASE_URL" -Atq -F " " -c "SELECT md5(n::text)::uuid, rpad(md5('tok' || n) || md5('tok2' || n), 43, 'x'),
	md5((((n - 1) / 100) * 100 + 2 + ((n - ((n - 1) / 100) * 100 - 2 + 1) % 99))::text)::uuid
	FROM generate_series(1, $NWS) n WHERE n % 100 <> 1" >"$run/ids.txt"
export BENCH_IDS="$run/ids.txt"

# F: the hello-world behind a copy of the same nginx config.
bench_hello_up

wrk_run() { # mode url conns -> "requests rps p50 p99 non2xx"
	BENCH_MODE="$1" wrk -t"$THREADS" -c"$3" -d"${DURATION}s" --latency -s "$repo/tests/bench/registry.lua" "$2" >"$run/wrk.out" 2>&1
	awk '/requests in/ {req=$1} /Requests\/sec/ {rps=$2} /^ +50%/ {p50=$2} /^ +99%/ {p99=$2}
	     /Non-2xx/ {bad=$NF} END {print req, rps, p50, p99, (bad == "" ? 0 : bad)}' "$run/wrk.out"
}

# P: the heartbeat's UPDATE through pgbench at the same concurrency.
cat >"$run/heartbeat.sql" <<SQL
\\set n random(1, $NWS)
UPDATE workspaces SET last_heartbeat_at = now(), last_error_rate = 0, active_tasks = 0, uptime_seconds = :n, updated_at = now() WHERE id = md5(:n::text)::uuid;
SQL
pgbench -n -c "$CONNS" -j "$THREADS" -T "$DURATION" -f "$run/heartbeat.sql" "$DATABASE_URL" >"$run/pgbench.out" 2>&1
p_tps="$(awk '/^tps = / {print $3; exit}' "$run/pgbench.out")"
# P': the same UPDATE committed like the heartbeat's fast path does (synchronous_commit off,
# ADR 003), so the comparison can be read both ways.
cat >"$run/heartbeat-async.sql" <<SQL
\\set n random(1, $NWS)
WITH async AS (SELECT set_config('synchronous_commit', 'off', true)) UPDATE workspaces SET last_heartbeat_at = now(), last_error_rate = 0, active_tasks = 0, uptime_seconds = :n, updated_at = now() FROM async WHERE id = md5(:n::text)::uuid;
SQL
pgbench -n -c "$CONNS" -j "$THREADS" -T "$DURATION" -f "$run/heartbeat-async.sql" "$DATABASE_URL" >"$run/pgbench-async.out" 2>&1
pa_tps="$(awk '/^tps = / {print $3; exit}' "$run/pgbench-async.out")"

wrk_run heartbeat "http://127.0.0.1:$hello_port/" "$CONNS" >/dev/null   # warm-up
read -r f_req f_rps f_p50 f_p99 _ <<<"$(wrk_run heartbeat "http://127.0.0.1:$hello_port/" "$CONNS")"
read -r hb_req hb_rps hb_p50 hb_p99 hb_bad <<<"$(wrk_run heartbeat "http://127.0.0.1:$port/" "$CONNS")"
read -r rg_req rg_rps rg_p50 rg_p99 rg_bad <<<"$(wrk_run register "http://127.0.0.1:$port/" "$CONNS")"
read -r dc_req dc_rps dc_p50 dc_p99 dc_bad <<<"$(wrk_run discover "http://127.0.0.1:$port/" "$CONNS")"
h="$(awk -v f="$f_rps" -v p="$p_tps" 'BEGIN {printf "%.0f", 1 / (1 / f + 1 / p)}')"
ratio="$(awk -v a="$hb_rps" -v h="$h" 'BEGIN {printf "%.2f", a / h}')"
ha="$(awk -v f="$f_rps" -v p="$pa_tps" 'BEGIN {printf "%.0f", 1 / (1 / f + 1 / p)}')"
ratio_a="$(awk -v a="$hb_rps" -v h="$ha" 'BEGIN {printf "%.2f", a / h}')"

# GET /workspaces with NWS rows, one client at a time: the canvas's load.
list_bytes="$(curl -fsS -H "Authorization: Bearer $admin" "http://127.0.0.1:$port/workspaces" | wc -c)"
cat >"$run/list.lua" <<LUA
wrk.headers["Authorization"] = "Bearer $admin"
LUA
wrk -t1 -c1 -d"${DURATION}s" --latency -s "$run/list.lua" "http://127.0.0.1:$port/workspaces" >"$run/list.out" 2>&1
read -r ls_req ls_rps ls_p50 ls_p99 <<<"$(awk '/requests in/ {req=$1} /Requests\/sec/ {rps=$2} /^ +50%/ {p50=$2} /^ +99%/ {p99=$2} END {print req, rps, p50, p99}' "$run/list.out")"

table="$(cat <<TABLE
| measurement | requests | requests/s | p50 | p99 | non-2xx |
|---|---|---|---|---|---|
| F: libfcgi hello-world via the same nginx, heartbeat request | $f_req | $f_rps | $f_p50 | $f_p99 | |
| P: pgbench, the heartbeat UPDATE, $CONNS clients | | $p_tps | | | |
| H = 1/(1/F + 1/P) | | $h | | | |
| P': pgbench, the same UPDATE with synchronous_commit off | | $pa_tps | | | |
| H' = 1/(1/F + 1/P') | | $ha | | | |
| **POST /registry/heartbeat** (bearer, $CONNS connections) | $hb_req | **$hb_rps** | $hb_p50 | $hb_p99 | $hb_bad |
| **heartbeat / H** | | **$ratio** | | | |
| heartbeat / H' | | $ratio_a | | | |
| POST /registry/register (bearer, upsert) | $rg_req | $rg_rps | $rg_p50 | $rg_p99 | $rg_bad |
| GET /registry/discover/:id (sibling, bearer) | $dc_req | $dc_rps | $dc_p50 | $dc_p99 | $dc_bad |
| GET /workspaces, $NWS rows ($list_bytes bytes), 1 connection | $ls_req | $ls_rps | **$ls_p50** | $ls_p99 | |
TABLE
)"
echo "$table"

bench_write_doc registry-bench "Measured $(date -u +%Y-%m-%d) with \`tests/bench/registry.sh\` (\`wrk -t$THREADS -c$CONNS -d${DURATION}s\`, pgbench \`-c$CONNS -j$THREADS -T$DURATION\`, $(nproc) cores, $workers API workers, $NWS workspaces):" "$table"
