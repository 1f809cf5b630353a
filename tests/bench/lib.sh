# shellcheck shell=bash
# lib.sh: what every benchmark shares, sourced by tests/bench/*.sh: a private stack on a free
# port, and the baseline (build/hello-fcgi behind a copy of that stack's rendered nginx config).
# Sets: repo run port hello_port workers; cleans everything up on exit.

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BIN_DIR="${BIN_DIR:-$repo/build}"
run="$(mktemp -d /tmp/molecule-bench-XXXXXX)"
chmod 755 "$run"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port="$(free_port)"
hello_port="$(free_port)"
workers=$((2 * $(nproc)))
export MOLECULE_RUN_DIR="$run" MOLECULE_HTTP_PORT="$port" BIN_DIR RATE_LIMIT=0 \
	MOLECULE_ENV=bench MOLECULE_MAX_REQUESTS=0 MOLECULE_LOG_LEVEL=warn
# No container engine unless a bench asks for one (provision.sh): the sweeper would otherwise take
# the benches' hand-made workspaces offline for lack of a container.
export MOLECULE_ENGINE="${MOLECULE_ENGINE:-0}"
hello_pid=""

bench_cleanup() {
	if [ -n "$hello_pid" ]; then kill "$hello_pid" 2>/dev/null || true; fi
	if [ -f "$run/nginx-hello/nginx.pid" ]; then kill "$(cat "$run/nginx-hello/nginx.pid")" 2>/dev/null || true; fi
	"$repo/tests/stack.sh" down >/dev/null 2>&1 || true
	rm -rf "$run"
}
trap bench_cleanup EXIT

# Starts the stack (with the environment above plus whatever the caller exported).
bench_stack_up() {
	"$repo/tests/stack.sh" up >/dev/null
}

# The baseline: the same nginx config, pointed at the hello-world socket on its own port.
bench_hello_up() {
	"$BIN_DIR/hello-fcgi" "$run/hello.sock" "$workers" &
	hello_pid=$!
	cp -r "$run/nginx" "$run/nginx-hello"
	find "$run/nginx-hello" -type f -name '*.conf' -exec sed -i \
		-e "s#$run/api.sock#$run/hello.sock#g" -e "s#$run/nginx/#$run/nginx-hello/#g" \
		-e "s#:$port\\b#:$hello_port#g" -e "s#$run/nchan.sock#$run/nchan-hello.sock#g" \
		-e "s#nginx-error.log#nginx-hello-error.log#g" \
		-e "s#nginx-access.log#nginx-hello-access.log#g" {} +
	for _ in $(seq 50); do [ -S "$run/hello.sock" ] && break; sleep 0.1; done
	nginx -p "$run/nginx-hello" -c "$run/nginx-hello/nginx.conf"
	for _ in $(seq 50); do
		curl -fsS "http://127.0.0.1:$hello_port/health" >/dev/null 2>&1 && break
		sleep 0.1
	done
}

# Rewrites the section between <!-- NAME:start --> and <!-- NAME:end --> of docs/performance.md.
bench_write_doc() { # name intro table
	local doc="$repo/docs/performance.md"
	if [ -f "$doc" ] && grep -q "<!-- $1:start -->" "$doc"; then
		{
			sed "/<!-- $1:start -->/q" "$doc"
			echo "$2"
			echo
			echo "$3"
			sed -n "/<!-- $1:end -->/,\$p" "$doc"
		} >"$doc.new"
		mv "$doc.new" "$doc"
	fi
}
