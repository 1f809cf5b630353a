#!/usr/bin/env bash
# dispatcher.sh: a2a_queue throughput: items/s the dispatcher delivers to one echo agent whose
# workspace allows 1, 8 and 32 concurrent tasks, beside wrk POSTing the same JSON-RPC body straight to
# the agent with 1, 8 and 32 connections (the baseline: what the agent itself can take).
# Prints a table and rewrites the "dispatcher-bench" section of docs/performance.md.
set -euo pipefail
# shellcheck source=tests/bench/lib.sh
. "$(dirname "$0")/lib.sh"
ITEMS="${BENCH_ITEMS:-2000}"
DURATION="${BENCH_DURATION:-5}"
LEVELS="${BENCH_LEVELS:-1 8 32}"
agent_port="$(free_port)"
agent_pid=""
trap '[ -z "$agent_pid" ] || kill "$agent_pid" 2>/dev/null || true; bench_cleanup' EXIT

# The echo agent: HTTP/1.1 keep-alive, one thread per connection, answers message/send at once.
cat >"$run/agent.py" <<'EOF'
import json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    def log_message(self, *a):
        pass
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
        text = body["params"]["message"]["parts"][0]["text"]
        out = json.dumps({"jsonrpc": "2.0", "id": body.get("id"), "result": {"kind": "message",
            "role": "agent", "parts": [{"kind": "text", "text": "echo: " + text}]}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

# A deep accept backlog: socketserver's default of 5 drops SYNs when many connections open at once.
ThreadingHTTPServer.request_queue_size = 256
s = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H)
s.daemon_threads = True
s.serve_forever()
EOF
python3 "$run/agent.py" "$agent_port" &
agent_pid=$!
body='{"jsonrpc":"2.0","id":"b","method":"message/send","params":{"message":{"role":"user","messageId":"b","parts":[{"kind":"text","text":"ping"}]}}}'
for _ in $(seq 50); do
	curl -fsS -o /dev/null -H 'Content-Type: application/json' -d "$body" "http://127.0.0.1:$agent_port/" && break
	sleep 0.1
done

export A2A_ALLOW_LOOPBACK=1 DISPATCHER_CONCURRENCY=32 DISPATCHER_POLL_MS=200
bench_stack_up
# shellcheck disable=SC1091
. "$run/stack.env"
q() { psql "$DATABASE_URL" -Atq -v ON_ERROR_STOP=1 -c "$1"; }

cat >"$run/post.lua" <<EOF
wrk.method = "POST"
wrk.body = '$body'
wrk.headers["Content-Type"] = "application/json"
EOF

rows=""
for c in $LEVELS; do
	# Baseline: wrk with c connections straight to the agent.
	base="$(wrk -t1 -c"$c" -d"${DURATION}s" -s "$run/post.lua" "http://127.0.0.1:$agent_port/" |
		awk '/Requests\/sec/ {printf "%.0f", $2}')"
	ws="$(q "INSERT INTO workspaces (name, status, runtime, url, max_concurrent_tasks) VALUES ('bench-c$c',
		'online', 'external', 'http://127.0.0.1:$agent_port', $c) RETURNING id" | head -1)"
	start="$(date +%s.%N)"
	q "INSERT INTO a2a_queue (workspace_id, kind, message_id, body) SELECT '$ws', 'a2a', 'm-' || n,
		jsonb_build_object('jsonrpc', '2.0', 'id', 'm-' || n, 'method', 'message/send', 'params',
		jsonb_build_object('message', jsonb_build_object('role', 'user', 'messageId', 'm-' || n,
		'parts', jsonb_build_array(jsonb_build_object('kind', 'text', 'text', 'ping ' || n)))))
		FROM generate_series(1, $ITEMS) n"
	for _ in $(seq 1200); do
		left="$(q "SELECT count(*) FROM a2a_queue WHERE workspace_id = '$ws' AND status IN ('queued', 'running')")"
		[ "$left" = 0 ] && break
		sleep 0.1
	done
	end="$(date +%s.%N)"
	done_n="$(q "SELECT count(*) FROM a2a_queue WHERE workspace_id = '$ws' AND status = 'done'")"
	rate="$(python3 -c "print('%.0f' % ($done_n / ($end - $start)))")"
	rows+="| $c | $base | $rate | $done_n/$ITEMS |"$'\n'
done

table="| concurrency per target | wrk straight to the agent (req/s) | dispatcher via a2a_queue (items/s) | delivered |
|---|---|---|---|
${rows%$'\n'}"
echo "$table"
bench_write_doc dispatcher-bench "Dispatcher throughput: $ITEMS queued items per level to one python echo agent on loopback (\`tests/bench/dispatcher.sh\`, $(nproc) cores). Each item costs a claim and a completion transaction besides the HTTP call." "$table"
