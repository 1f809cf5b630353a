#!/usr/bin/env bash
# a2a.sh: does a slow A2A agent starve the API? wrk against GET /health idle and while 50 A2A calls
# to an agent that sleeps 5 s are in flight, with the A2A worker pool (ADR 005) and, as the
# baseline in the same run, with the A2A route on the shared API pool (MOLECULE_A2A_WORKERS=0).
# Prints a table and rewrites the "a2a benchmark" section of docs/performance.md.
set -euo pipefail
# shellcheck source=tests/bench/lib.sh
. "$(dirname "$0")/lib.sh"
DURATION="${BENCH_DURATION:-8}"
CONNS="${BENCH_CONNECTIONS:-16}"
SLOW="${BENCH_SLOW_CALLS:-50}"
SLEEP_S="${BENCH_AGENT_SLEEP:-5}"
agent_port="$(free_port)"
agent_pid=""
export ADMIN_TOKEN=bench-admin-token-0123456789 A2A_ALLOW_LOOPBACK=1

cleanup() {
	if [ -n "$agent_pid" ]; then kill "$agent_pid" 2>/dev/null || true; fi
	bench_cleanup
}
trap cleanup EXIT

# The slow agent: answers every JSON-RPC POST after SLEEP_S seconds, one thread per call.
python3 - "$agent_port" "$SLEEP_S" <<'PY' &
import http.server, json, sys, time
port, delay = int(sys.argv[1]), float(sys.argv[2])
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_POST(self):
        req = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
        time.sleep(delay)
        body = json.dumps({"jsonrpc": "2.0", "id": req.get("id"), "result": {"parts": [{"kind": "text", "text": "ok"}]}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
# A deep accept backlog, set before the socket listens: the default of 5 drops SYNs when 50
# calls connect at once, and the bench would measure connection errors instead of slow calls.
http.server.ThreadingHTTPServer.request_queue_size = 256
s = http.server.ThreadingHTTPServer(("127.0.0.1", port), H)
s.daemon_threads = True
s.serve_forever()
PY
agent_pid=$!

cat >"$run/a2a.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"message":{"role":"user","parts":[{"kind":"text","text":"slow"}]}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer bench-admin-token-0123456789"
LUA

wrk_health() { # -> "requests rps p99 timeouts" (wrk's 2 s request timeout)
	wrk -t2 -c"$CONNS" -d"${DURATION}s" --latency "http://127.0.0.1:$port/health" >"$run/wrk.out" 2>&1
	awk '/requests in/ {req=$1} /Requests\/sec/ {rps=$2} /^ +99%/ {p99=$2}
		/Socket errors/ {for (i = 1; i <= NF; i++) if ($i == "timeout") to=$(i+1)}
		END {if (req == 0) p99="none"; print req, rps, p99, to + 0}' "$run/wrk.out"
}

measure() { # a2a_workers -> "idle_req idle_rps idle_p99 busy_req busy_rps busy_p99 a2a_done"
	local ws url slow_pid
	MOLECULE_A2A_WORKERS="$1" bench_stack_up
	# shellcheck disable=SC1091
	url="$(. "$run/stack.env" && echo "$DATABASE_URL")"
	ws="$(psql "$url" -Atc "INSERT INTO workspaces (name, status, runtime, url) VALUES ('bench-slow', 'online', 'external', \
		'http://localhost:$agent_port/') RETURNING id" | head -n 1)"
	wrk -t1 -c4 -d1s "http://127.0.0.1:$port/health" >/dev/null
	read -r _ i_rps i_p99 _ <<<"$(wrk_health)"
	# SLOW calls in flight for the whole measurement (each takes SLEEP_S seconds).
	wrk -t1 -c"$SLOW" -d"$((DURATION + SLEEP_S + 2))s" --timeout 60s -s "$run/a2a.lua" \
		"http://127.0.0.1:$port/workspaces/$ws/a2a" >"$run/slow.out" 2>&1 &
	slow_pid=$!
	sleep 1
	read -r b_req b_rps b_p99 b_to <<<"$(wrk_health)"
	wait "$slow_pid" || true
	# Answered with 200 only: an error answers at once and would inflate the count.
	sed "s/^/  a2a load: /" "$run/slow.out" >&2
	a2a_done="$(awk '/requests in/ {r=$1} /Non-2xx/ {n=$NF} END {print r - n}' "$run/slow.out")"
	"$repo/tests/stack.sh" down >/dev/null 2>&1
	echo "$i_rps $i_p99 $b_req $b_rps $b_p99 $b_to ${a2a_done:-0}"
}

read -r p_irps p_ip99 p_breq p_brps p_bp99 _ p_done <<<"$(measure 64)"
read -r s_irps s_ip99 s_breq s_brps s_bp99 _ s_done <<<"$(measure 0)"

table="$(cat <<TABLE
| GET /health | A2A pool (64 A2A + $workers API workers) | shared pool ($workers API workers) |
|---|---|---|
| idle: requests/s | $p_irps | $s_irps |
| idle: p99 | $p_ip99 | $s_ip99 |
| $SLOW slow A2A calls in flight: requests/s | $p_brps | $s_brps |
| $SLOW slow A2A calls in flight: p99 | $p_bp99 | $s_bp99 |
| $SLOW slow A2A calls in flight: /health requests answered in ${DURATION} s | $p_breq | $s_breq |
| A2A calls completed ($SLEEP_S s each) | $p_done | $s_done |
TABLE
)"
echo "$table"
echo "wrk -t2 -c$CONNS -d${DURATION}s on /health; wrk -c$SLOW on the A2A route; $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ)"

bench_write_doc a2a-bench "Measured $(date -u +%Y-%m-%d) with \`tests/bench/a2a.sh\` (\`wrk -t2 -c$CONNS -d${DURATION}s\` on /health; $SLOW concurrent A2A calls to an agent sleeping $SLEEP_S s; $(nproc) cores):" "$table"
