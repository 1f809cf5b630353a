#!/usr/bin/env bash
# health.sh: wrk against GET /health through nginx, and in the same run against a minimal libfcgi
# hello-world behind a copy of the same nginx config; also the API workers' RSS over the run.
# Prints a table and rewrites the "health benchmark" section of docs/performance.md.
set -euo pipefail
# shellcheck source=tests/bench/lib.sh
. "$(dirname "$0")/lib.sh"
DURATION="${BENCH_DURATION:-10}"
CONNS="${BENCH_CONNECTIONS:-32}"
THREADS="${BENCH_THREADS:-2}"
MIN_REQUESTS="${BENCH_MIN_REQUESTS:-100000}"

bench_stack_up
bench_hello_up

# Only this stack's workers: the children of its API master (the supervisor's molecule-api child).
api_master="$(pgrep -P "$(cat "$run/moleculed.pid")" -x molecule-api)"
worker_pids() { pgrep -P "$api_master"; }
rss_total_kb() {
	local total=0 pid
	for pid in $(worker_pids); do
		total=$((total + $(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")))
	done
	echo "$total"
}
rss_each_kb() {
	local pid
	for pid in $(worker_pids); do
		printf '%s=%s ' "$(cat "/proc/$pid/comm")" "$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")"
	done
}

wrk_rps() { # url -> "requests rps p99"
	wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --latency "$1" >"$run/wrk.out" 2>&1
	awk '/requests in/ {req=$1} /Requests\/sec/ {rps=$2} /^ +99%/ {p99=$2} END {print req, rps, p99}' "$run/wrk.out"
}

# Warm both paths once so neither pays first-connection costs in its measured run.
wrk -t1 -c4 -d1s "http://127.0.0.1:$port/health" >/dev/null
wrk -t1 -c4 -d1s "http://127.0.0.1:$hello_port/health" >/dev/null
rss_before="$(rss_total_kb)"
each_before="$(rss_each_kb)"
read -r api_req api_rps api_p99 <<<"$(wrk_rps "http://127.0.0.1:$port/health")"
read -r hello_req hello_rps hello_p99 <<<"$(wrk_rps "http://127.0.0.1:$hello_port/health")"
# Top the API up to at least MIN_REQUESTS served before the second RSS reading.
total=$api_req
while [ "$total" -lt "$MIN_REQUESTS" ]; do
	read -r more _ _ <<<"$(wrk_rps "http://127.0.0.1:$port/health")"
	total=$((total + more))
done
rss_after="$(rss_total_kb)"
each_after="$(rss_each_kb)"
nworkers="$(worker_pids | wc -l)"
ratio="$(awk -v a="$api_rps" -v b="$hello_rps" 'BEGIN {printf "%.2f", a / b}')"
growth_kb=$((rss_after - rss_before))
per_worker_kb="$(awk -v g="$growth_kb" -v n="$nworkers" 'BEGIN {printf "%.0f", g / n}')"

table="$(cat <<TABLE
| target | requests | requests/s | p99 latency |
|---|---|---|---|
| molecule-api \`GET /health\` via nginx | $api_req | $api_rps | $api_p99 |
| libfcgi hello-world via the same nginx config | $hello_req | $hello_rps | $hello_p99 |
| **ratio molecule-api / hello-world** | | **$ratio** | |

| API worker RSS | value |
|---|---|
| workers | $nworkers |
| requests served between readings | $total |
| RSS per worker before | $each_before |
| RSS per worker after | $each_after |
| growth, all workers (KiB) | $growth_kb |
| growth per worker (KiB) | $per_worker_kb |
TABLE
)"
echo "$table"
echo "wrk -t$THREADS -c$CONNS -d${DURATION}s, $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ)"

bench_write_doc health-bench "Measured $(date -u +%Y-%m-%d) with \`make bench\` (\`wrk -t$THREADS -c$CONNS -d${DURATION}s\`, $(nproc) cores, $workers API workers):" "$table"
