#!/usr/bin/env bash
# tests/stack.sh: the local molecule stack: PostgreSQL, Redis, the supervisor
# (moleculed, which forks the FastCGI API) and nginx in front of it.
# Used by `make run|up|down` and by the tests.
#
#   tests/stack.sh up       start everything in the background (idempotent)
#   tests/stack.sh run      up, then stay in the foreground; Ctrl-C = down
#   tests/stack.sh down     stop everything (MOLECULE_CLEAN=1: also delete $RUN)
#   tests/stack.sh status   what is running
#   tests/stack.sh env      print $RUN/stack.env (shell-sourceable)
#
# Everything any process writes goes under the run directory $RUN, and only
# the chosen HTTP/HTTPS ports are fixed (PostgreSQL and Redis listen on unix
# sockets only), so several stacks can run side by side.
#
# Environment (all optional):
#   MOLECULE_RUN_DIR     run directory (default <repo>/.run)
#   MOLECULE_HTTP_PORT   HTTP port on loopback (default 8080)
#   MOLECULE_HTTPS_PORT  also serve TLS on this port (default: no TLS)
#   MOLECULE_TLS_CERT/MOLECULE_TLS_KEY  PEM pair; default a self-signed one
#                        made once in $RUN/tls/
#   CORS_ORIGINS         comma-separated browser origins allowed to call the
#                        API (default http://localhost:3000,http://localhost:3001;
#                        set but empty = none)
#   RATE_LIMIT           requests per minute per client IP (default 600; 0 = off)
#   MOLECULE_ENV         passed to moleculed (default development)
#   BIN_DIR              where moleculed is (default <repo>/build)
#   MOLECULE_NGINX_WORKERS  nginx worker_processes (default auto)
#   MOLECULE_PG_OPTS     extra postgres options, e.g. "-c fsync=off"
#   MOLECULE_START_TIMEOUT  seconds to wait for the API (default 20)
#   MOLECULE_ENGINE      0 = do not start the private Podman engine and git
#                        server that `up` starts when DOCKER_HOST is unset and
#                        podman is installed (the dev default: workspaces with
#                        runtime "echo" build and run out of the box)
# Anything else in the environment (ADMIN_TOKEN, ...) reaches moleculed.

set -euo pipefail
umask 022

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
RUN=$(realpath -m -- "${MOLECULE_RUN_DIR:-$REPO/.run}")
BIN_DIR=$(realpath -m -- "${BIN_DIR:-$REPO/build}")
HTTP_PORT=${MOLECULE_HTTP_PORT:-8080}
HTTPS_PORT=${MOLECULE_HTTPS_PORT:-}
START_TIMEOUT=${MOLECULE_START_TIMEOUT:-20}

LOGS=$RUN/logs
PG_DIR=$RUN/pg
PG_DATA=$PG_DIR/data
PG_SOCK=$PG_DIR/sock
PG_PORT=5432 # only names the socket file: listen_addresses is empty
REDIS_SOCK=$RUN/redis.sock
REDIS_PID=$RUN/redis.pid
NGX=$RUN/nginx
NGX_PID=$NGX/nginx.pid
FCGI_SOCK=$RUN/api.sock
# The A2A worker pool's socket (ADR 005); MOLECULE_A2A_WORKERS=0 serves the
# A2A route from the API pool instead (the shared-pool baseline of the bench).
A2A_SOCK=$RUN/a2a.sock
if [[ ${MOLECULE_A2A_WORKERS:-} == 0 ]]; then A2A_ROUTE_SOCK=$FCGI_SOCK; else A2A_ROUTE_SOCK=$A2A_SOCK; fi
NCHAN_SOCK=$RUN/nchan.sock
SUP_PID=$RUN/moleculed.pid
SUP_START=$RUN/moleculed.start # its start time: tells it from a reused pid
ENV_FILE=$RUN/stack.env
ENGINE_DIR=$RUN/engine # tests/engine.sh's private Podman engine
GIT_PID=$RUN/gitserver.pid
GIT_PORT=""
MARKER=$RUN/.molecule-stack # proves $RUN is ours before MOLECULE_CLEAN=1 deletes it
NCHAN_MODULE=/usr/lib/nginx/modules/ngx_nchan_module.so
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
cert="" key="" # TLS pair, set by render_nginx

# Every process we start carries this: it tells our processes from strangers
# that reused a stale pid.
export MOLECULE_RUN_DIR=$RUN

log() { printf 'stack: %s\n' "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}

# ---------------------------------------------------------------- helpers

pg_bindir() {
	local d
	d=$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
	[[ -x $d/postgres && -x $d/initdb ]] && echo "$d"
}

# Commands of PostgreSQL's cluster run as "postgres": it refuses root.
as_pg() {
	if ((EUID == 0)); then
		(cd / && runuser -u postgres -- "$@")
	else
		"$@"
	fi
}

pid_from() { # pidfile -> pid on stdout, or failure
	local pid=""
	if [[ -s $1 ]]; then read -r pid <"$1" || true; fi
	[[ $pid =~ ^[0-9]+$ ]] && echo "$pid"
}

# A zombie counts as gone: daemons are reparented to PID 1, which may be slow
# to reap them (containers, VMs with a minimal init).
alive() {
	local st
	kill -0 "$1" 2>/dev/null || return 1
	st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	st=${st##*) }
	[[ ${st%% *} != Z ]]
}

proc_start() { # pid -> its start time (clock ticks since boot)
	local st f
	st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	st=${st##*) }
	read -ra f <<<"$st"
	echo "${f[19]}"
}

# True when pid is alive and one of ours (started for this $RUN): a pidfile
# left by a crash may name a pid since reused by an unrelated process.
# Ours = same start time as recorded at launch (optional 2nd argument: the
# file holding it), or our MOLECULE_RUN_DIR in its environment, or $RUN in
# its command line (nginx, redis and postgres rewrite their titles).
ours() {
	local pid=$1 rec=""
	alive "$pid" || return 1
	if [[ -n ${2:-} && -s $2 ]]; then
		read -r rec <"$2" || true
		[[ $rec == "$(proc_start "$pid")" ]] && return 0
	fi
	grep -qzxF "MOLECULE_RUN_DIR=$RUN" "/proc/$pid/environ" 2>/dev/null && return 0
	tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$RUN/"
}

running() { # pidfile [start-time file]
	local pid
	pid=$(pid_from "$1") && ours "$pid" "${2:-}"
}

pg_running() {
	local pid
	pid=$(head -n 1 "$PG_DATA/postmaster.pid" 2>/dev/null) &&
		[[ $pid =~ ^[0-9]+$ ]] && alive "$pid"
}

wait_gone() { # pid seconds
	local i
	for ((i = 0; i < $2 * 10; i++)); do
		alive "$1" || return 0
		sleep 0.1
	done
	! alive "$1"
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

have_ipv6_loopback() {
	awk '$1 == "00000000000000000000000000000001" && $6 == "lo" { f = 1 } END { exit !f }' \
		/proc/net/if_inet6 2>/dev/null
}

curl_local() { curl --noproxy '*' -fsS -m 3 "$@"; }

# A value written into nginx's config or a URL: keep it boring.
check_path() {
	[[ $2 =~ ^/[A-Za-z0-9_./+,=-]*$ ]] ||
		die "$1 must be an absolute path of letters, digits and _./+,=- only: '$2'"
}

# ---------------------------------------------------------------- checks

missing_deps() {
	local miss=()
	pg_bindir >/dev/null || miss+=(postgresql)
	command -v psql >/dev/null || [[ -x "$(pg_bindir)/psql" ]] || miss+=(psql)
	command -v redis-server >/dev/null || miss+=(redis-server)
	[[ -x $NGINX ]] || miss+=(nginx)
	[[ -f $NCHAN_MODULE ]] || miss+=(nginx-nchan-module)
	command -v curl >/dev/null || miss+=(curl)
	[[ -z $HTTPS_PORT ]] || command -v openssl >/dev/null || miss+=(openssl)
	echo "${miss[*]}"
}

ensure_deps() {
	local miss
	miss=$(missing_deps)
	[[ -z $miss ]] && return 0
	((EUID == 0)) || die "missing: $miss. Install them as root: sudo make -C $REPO deps"
	log "missing: $miss; installing with 'make deps'"
	make -C "$REPO" deps
	miss=$(missing_deps)
	[[ -z $miss ]] || die "still missing after 'make deps': $miss"
}

validate() {
	local p
	check_path MOLECULE_RUN_DIR "$RUN"
	# unix socket paths are limited to 107 bytes: $RUN/pg/sock/.s.PGSQL.5432
	((${#RUN} <= 80)) || die "MOLECULE_RUN_DIR is too long for unix sockets (max 80 chars): $RUN"
	for p in "$HTTP_PORT" ${HTTPS_PORT:+"$HTTPS_PORT"}; do
		if ! [[ $p =~ ^[1-9][0-9]{0,4}$ ]] || ((p > 65535)); then die "bad port: '$p'"; fi
	done
	[[ $HTTP_PORT != "$HTTPS_PORT" ]] || die "MOLECULE_HTTP_PORT and MOLECULE_HTTPS_PORT are both $HTTP_PORT"
	RATE_LIMIT=${RATE_LIMIT:-600}
	[[ $RATE_LIMIT =~ ^[0-9]+$ ]] || die "RATE_LIMIT must be a number of requests per minute (0 = off): '$RATE_LIMIT'"
	RATE_LIMIT=$((10#$RATE_LIMIT))
	NGINX_WORKERS=${MOLECULE_NGINX_WORKERS:-auto}
	[[ $NGINX_WORKERS =~ ^(auto|[1-9][0-9]*)$ ]] || die "MOLECULE_NGINX_WORKERS must be auto or a number"
	# The nchan module registers nginx's compiled-in client body temp dir
	# whatever the config says; nginx creates it as root, but not as a user.
	local body_dir
	body_dir=$("$NGINX" -V 2>&1 | sed -n 's/.*--http-client-body-temp-path=\([^ ]*\).*/\1/p')
	if ((EUID != 0)) && [[ -n $body_dir && ! -d $body_dir ]]; then
		die "nginx (with nchan) needs $body_dir to exist when not run as root: sudo mkdir -p $body_dir"
	fi
	[[ $START_TIMEOUT =~ ^[1-9][0-9]*$ ]] || die "MOLECULE_START_TIMEOUT must be a number of seconds"
	CORS_ORIGINS=${CORS_ORIGINS-http://localhost:3000,http://localhost:3001}
}

# ---------------------------------------------------------------- start

prepare_dirs() {
	mkdir -p "$RUN" "$LOGS" "$PG_DIR" "$NGX" "$RUN/tmp"
	touch "$MARKER"
	((EUID == 0)) || return 0
	# postgres must traverse every directory down to $RUN/pg (a mktemp run
	# dir is 0700, a repo may live under /root).
	local d=$RUN
	while [[ $d != / ]]; do
		if ! runuser -u postgres -- test -x "$d"; then
			log "chmod o+x $d (so that the postgres user can reach $PG_DIR)"
			chmod o+x "$d"
		fi
		d=$(dirname "$d")
	done
	chmod 755 "$RUN" "$LOGS"
	chown postgres:postgres "$PG_DIR"
	chmod 700 "$PG_DIR"
}

start_postgres() {
	local bin
	bin=$(pg_bindir)
	if [[ ! -s $PG_DATA/PG_VERSION ]]; then
		rm -rf "$PG_DATA" # a failed initdb leaves a half-made directory
		local locale=C.UTF-8
		locale -a 2>/dev/null | grep -qix 'c\.utf-\?8' || locale=C
		log "initdb $PG_DATA"
		as_pg "$bin/initdb" -D "$PG_DATA" --auth=trust -U postgres -E UTF8 \
			--locale="$locale" >>"$LOGS/postgres.log" 2>&1 ||
			{
				tail -n 20 "$LOGS/postgres.log" >&2
				die "initdb failed"
			}
	fi
	mkdir -p "$PG_SOCK"
	touch "$LOGS/postgres.log"
	if ((EUID == 0)); then chown postgres:postgres "$PG_SOCK" "$LOGS/postgres.log"; fi
	if pg_running; then
		log "postgres already running"
	else
		log "starting postgres (socket in $PG_SOCK)"
		# shellcheck disable=SC2086 # MOLECULE_PG_OPTS is a list of options
		as_pg "$bin/pg_ctl" -D "$PG_DATA" -l "$LOGS/postgres.log" -w -t 60 start \
			-o "-k $PG_SOCK -c listen_addresses='' -c port=$PG_PORT ${MOLECULE_PG_OPTS:-}" >/dev/null ||
			{
				tail -n 20 "$LOGS/postgres.log" >&2
				die "postgres did not start"
			}
	fi
	# Role and database "molecule", idempotently.
	local psql
	psql=$(command -v psql || echo "$bin/psql")
	pg_admin() { "$psql" -X -q -t -A -v ON_ERROR_STOP=1 -h "$PG_SOCK" -p "$PG_PORT" -U postgres -d postgres -c "$1"; }
	[[ $(pg_admin "SELECT 1 FROM pg_roles WHERE rolname = 'molecule'") == 1 ]] ||
		pg_admin "CREATE ROLE molecule LOGIN" >/dev/null
	[[ $(pg_admin "SELECT 1 FROM pg_database WHERE datname = 'molecule'") == 1 ]] ||
		pg_admin "CREATE DATABASE molecule OWNER molecule" >/dev/null
}

start_redis() {
	if running "$REDIS_PID"; then
		log "redis already running"
		return 0
	fi
	rm -f "$REDIS_SOCK" "$REDIS_PID"
	log "starting redis (socket $REDIS_SOCK)"
	# Unix socket only, no persistence: a cache and pub/sub for the stack.
	# Keyspace "expired" events feed the API's TTL watchers.
	redis-server --port 0 --unixsocket "$REDIS_SOCK" --unixsocketperm 770 \
		--save '' --appendonly no --dir "$RUN/tmp" \
		--daemonize yes --pidfile "$REDIS_PID" --logfile "$LOGS/redis.log" \
		--notify-keyspace-events Ex </dev/null
	local i
	for ((i = 0; i < 100; i++)); do
		if [[ -S $REDIS_SOCK ]]; then
			if ! command -v redis-cli >/dev/null ||
				[[ $(redis-cli -s "$REDIS_SOCK" ping 2>/dev/null) == PONG ]]; then
				return 0
			fi
		fi
		sleep 0.1
	done
	tail -n 20 "$LOGS/redis.log" >&2 || true
	die "redis did not start"
}

# The CORS allowlist as `map` entries: "origin" "origin";
cors_map() {
	local o list re='^[A-Za-z][A-Za-z0-9+.-]*://[]A-Za-z0-9._~:[-]+$'
	IFS=, read -ra list <<<"$CORS_ORIGINS"
	echo "# generated by tests/stack.sh from CORS_ORIGINS; do not edit"
	for o in ${list[@]+"${list[@]}"}; do
		o=${o#"${o%%[![:space:]]*}"} # trim
		o=${o%"${o##*[![:space:]]}"}
		o=${o%/}
		[[ -n $o ]] || continue
		[[ $o != '*' ]] || die "CORS_ORIGINS: '*' is not allowed with credentials; list the origins"
		[[ $o =~ $re ]] ||
			die "CORS_ORIGINS: not an origin (scheme://host[:port]): '$o'"
		printf '"%s" "%s";\n' "$o" "$o"
	done
}

render_nginx() {
	local user_line v6 f name
	if ((EUID == 0)); then user_line="user root;"; else user_line="# user: not root, workers keep the invoking user"; fi
	if have_ipv6_loopback; then v6=""; else v6="# no IPv6 loopback here: "; fi
	if [[ -n $HTTPS_PORT ]]; then
		if [[ -n ${MOLECULE_TLS_CERT:-}${MOLECULE_TLS_KEY:-} ]]; then
			[[ -n ${MOLECULE_TLS_CERT:-} && -n ${MOLECULE_TLS_KEY:-} ]] ||
				die "set both MOLECULE_TLS_CERT and MOLECULE_TLS_KEY (or neither for a self-signed pair)"
			[[ -r $MOLECULE_TLS_CERT && -r $MOLECULE_TLS_KEY ]] ||
				die "MOLECULE_TLS_CERT/MOLECULE_TLS_KEY: cannot read them"
			cert=$(realpath -- "$MOLECULE_TLS_CERT")
			key=$(realpath -- "$MOLECULE_TLS_KEY")
		else
			cert=$RUN/tls/cert.pem
			key=$RUN/tls/key.pem
			if [[ ! -s $cert || ! -s $key ]]; then
				log "generating a self-signed certificate for localhost in $RUN/tls"
				mkdir -p "$RUN/tls"
				(umask 077 && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
					-nodes -days 825 -subj /CN=localhost \
					-addext 'subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1' \
					-keyout "$key" -out "$cert" 2>"$LOGS/openssl.log") ||
					die "openssl failed: $(cat "$LOGS/openssl.log")"
			fi
		fi
		check_path MOLECULE_TLS_CERT "$cert"
		check_path MOLECULE_TLS_KEY "$key"
	fi

	render() { # template -> output
		sed -e "s|@RUN_DIR@|$RUN|g" -e "s|@HTTP_PORT@|$HTTP_PORT|g" \
			-e "s|@HTTPS_PORT@|$HTTPS_PORT|g" -e "s|@FCGI_SOCKET@|$FCGI_SOCK|g" \
			-e "s|@A2A_SOCKET@|$A2A_ROUTE_SOCK|g" \
			-e "s|@NCHAN_MODULE@|$NCHAN_MODULE|g" -e "s|@NGINX_USER_LINE@|$user_line|g" \
			-e "s|@WORKER_PROCESSES@|$NGINX_WORKERS|g" -e "s|@IPV6@|$v6|g" \
			-e "s|@TLS_CERT@|$cert|g" -e "s|@TLS_KEY@|$key|g" "$1" >"$2"
		if grep -n '@[A-Z0-9_]*@' "$2" >&2; then die "unknown placeholder left in $2"; fi
	}

	rm -rf "$NGX/generated"
	rm -f "$NGX"/*.conf
	mkdir -p "$NGX/generated" "$NGX/tmp"
	for f in "$REPO"/nginx/*.conf "$REPO"/nginx/*.conf.in; do
		[[ -e $f ]] || continue
		name=$(basename "$f" .in)
		[[ $name != tls-server.conf ]] || continue
		render "$f" "$NGX/$name"
	done

	cors_map >"$NGX/generated/cors-origins.map"
	if ((RATE_LIMIT > 0)); then
		printf '# generated by tests/stack.sh from RATE_LIMIT=%s (requests per minute per client IP)\n' "$RATE_LIMIT" |
			tee "$NGX/generated/rate-limit.conf" >"$NGX/generated/rate-limit-zone.conf"
		echo "limit_req_zone \$binary_remote_addr zone=per_ip:10m rate=${RATE_LIMIT}r/m;" \
			>>"$NGX/generated/rate-limit-zone.conf"
		# burst = the whole minute's allowance, served without delay.
		printf 'limit_req zone=per_ip burst=%s nodelay;\nlimit_req_status 429;\nlimit_req_log_level warn;\n' \
			"$RATE_LIMIT" >>"$NGX/generated/rate-limit.conf"
	else
		echo "# RATE_LIMIT=0: no rate limit" | tee "$NGX/generated/rate-limit.conf" >"$NGX/generated/rate-limit-zone.conf"
	fi
	if [[ -n $HTTPS_PORT ]]; then
		render "$REPO/nginx/tls-server.conf.in" "$NGX/generated/tls-server.conf"
	else
		echo "# MOLECULE_HTTPS_PORT unset: no TLS server" >"$NGX/generated/tls-server.conf"
	fi

	local out
	out=$("$NGINX" -t -q -p "$NGX/" -c "$NGX/nginx.conf" -e "$LOGS/nginx-error.log" 2>&1) ||
		die "nginx rejects the rendered config ($NGX/nginx.conf):"$'\n'"$out"
}

# ---------------------------------------------------------------- engine (dev default)

engine_wanted() {
	[[ -z ${DOCKER_HOST:-} && ${MOLECULE_ENGINE:-1} != 0 ]] && command -v podman >/dev/null 2>&1
}

# A private Podman engine under $RUN/engine and the test templates served as git repos with
# a Gitea-compatible API, both on loopback; moleculed gets their coordinates.
start_engine() {
	engine_wanted || return 0
	log "starting the container engine (log $LOGS/engine.log)"
	"$REPO/tests/engine.sh" start "$ENGINE_DIR" >>"$LOGS/engine.log" 2>&1 || {
		tail -n 20 "$LOGS/engine.log" >&2 || true
		die "the container engine did not start (MOLECULE_ENGINE=0 skips it)"
	}
	export DOCKER_HOST=unix://$ENGINE_DIR/engine.sock
	start_gitserver
	export MOLECULE_CONTAINER_NETWORK=${MOLECULE_CONTAINER_NETWORK:-host}
	export MOLECULE_LOCAL_TEMPLATE_REPO_PREFIX=${MOLECULE_LOCAL_TEMPLATE_REPO_PREFIX:-http://127.0.0.1:$GIT_PORT/molecule-ai/molecule-ai-workspace-template-}
	export MOLECULE_EXTRA_RUNTIMES=${MOLECULE_EXTRA_RUNTIMES:-echo}
	export A2A_ALLOW_LOOPBACK=${A2A_ALLOW_LOOPBACK:-1}
	export MOLECULE_IMAGE_CACHE_DIR=${MOLECULE_IMAGE_CACHE_DIR:-$RUN/image-cache}
}

start_gitserver() {
	local out=$RUN/gitserver.out i pid
	stop_gitserver
	rm -f "$out"
	python3 "$REPO/tests/fixtures/gitserver.py" --port 0 --log "$LOGS/gitserver.log" \
		</dev/null >"$out" 2>"$LOGS/gitserver.err" &
	pid=$!
	echo "$pid" >"$GIT_PID"
	for ((i = 0; i < 100; i++)); do
		GIT_PORT=$(head -n 1 "$out" 2>/dev/null || true)
		[[ $GIT_PORT =~ ^[0-9]+$ ]] && return 0
		alive "$pid" || break
		sleep 0.1
	done
	tail -n 20 "$LOGS/gitserver.err" >&2 || true
	die "the template git server did not start"
}

stop_gitserver() {
	local pid
	if pid=$(pid_from "$GIT_PID") && ours "$pid"; then
		kill -TERM "$pid" 2>/dev/null || true
		wait_gone "$pid" 5 || kill -KILL "$pid" 2>/dev/null || true
	fi
	rm -f "$GIT_PID"
}

stop_engine() {
	stop_gitserver
	if [[ -d $ENGINE_DIR ]]; then
		log "stopping the container engine"
		"$REPO/tests/engine.sh" stop "$ENGINE_DIR" >>"$LOGS/engine.log" 2>&1 || log "engine stop reported errors (see $LOGS/engine.log)"
	fi
}

write_env() {
	kv() { printf "%s='%s'\n" "$1" "${2//\'/\'\\\'\'}"; }
	local tmp=$ENV_FILE.tmp
	{
		echo "# written by tests/stack.sh up; source it: . $ENV_FILE"
		kv MOLECULE_RUN_DIR "$RUN"
		kv MOLECULE_HTTP_PORT "$HTTP_PORT"
		kv BASE "http://127.0.0.1:$HTTP_PORT"
		if [[ -n $HTTPS_PORT ]]; then
			kv MOLECULE_HTTPS_PORT "$HTTPS_PORT"
			kv BASE_TLS "https://127.0.0.1:$HTTPS_PORT"
			kv MOLECULE_TLS_CERT "$cert"
		fi
		kv DATABASE_URL "$DATABASE_URL"
		kv REDIS_URL "$REDIS_URL"
		kv MOLECULE_FCGI_SOCKET "$FCGI_SOCK"
		kv MOLECULE_A2A_SOCKET "$A2A_SOCK"
		kv NCHAN_PUBLISH_SOCKET "$NCHAN_SOCK"
		kv MOLECULE_LOG_DIR "$LOGS"
		kv MOLECULE_ENV "$MOLECULE_ENV"
		kv RATE_LIMIT "$RATE_LIMIT"
		if [[ -n ${DOCKER_HOST:-} ]]; then kv DOCKER_HOST "$DOCKER_HOST"; fi
		if [[ -n $GIT_PORT ]]; then kv GITSERVER_PORT "$GIT_PORT"; fi
		if [[ -n ${ADMIN_TOKEN:-} ]]; then kv ADMIN_TOKEN "$ADMIN_TOKEN"; fi
	} >"$tmp"
	if [[ -n ${ADMIN_TOKEN:-} ]]; then chmod 600 "$tmp"; fi
	mv -f "$tmp" "$ENV_FILE"
}

# The run dir's own secrets key (32 random bytes, base64), made once, readable by root only.
run_dir_secrets_key() {
	local f=$RUN/secrets.key
	if [[ ! -s $f ]]; then
		(umask 077 && openssl rand -base64 32 >"$f")
	fi
	cat "$f"
}

start_supervisor() {
	rm -f "$FCGI_SOCK" "$A2A_SOCK" "$SUP_PID" "$SUP_START"
	if [[ -f $LOGS/moleculed.log ]]; then mv -f "$LOGS/moleculed.log" "$LOGS/moleculed.log.1"; fi
	log "starting $BIN_DIR/moleculed (log $LOGS/moleculed.log)"
	(
		export DATABASE_URL REDIS_URL MOLECULE_ENV RATE_LIMIT CORS_ORIGINS
		export MOLECULE_FCGI_SOCKET=$FCGI_SOCK
		export MOLECULE_A2A_SOCKET=$A2A_SOCK
		export MOLECULE_MIGRATIONS_DIR=${MOLECULE_MIGRATIONS_DIR:-$REPO/sql}
		export MOLECULE_LOG_DIR=$LOGS
		export NCHAN_PUBLISH_SOCKET=$NCHAN_SOCK
		# A local stack encrypts secrets too: without a key source of its own it gets a key
		# kept in the run dir (so its data stays readable across restarts). Set
		# SECRETS_ENCRYPTION_KEY= (empty) to run without one.
		if [[ -z ${SECRETS_ENCRYPTION_KEY+set} && -z ${KMS_KEY_ARN:-} ]]; then
			export SECRETS_ENCRYPTION_KEY
			SECRETS_ENCRYPTION_KEY=$(run_dir_secrets_key)
		fi
		export MOLECULE_HTTP_PORT=$HTTP_PORT
		# Where workspace containers reach the platform (host networking: loopback).
		export PLATFORM_URL=${PLATFORM_URL:-http://127.0.0.1:$HTTP_PORT}
		if [[ -n $HTTPS_PORT ]]; then export MOLECULE_HTTPS_PORT=$HTTPS_PORT; fi
		# setsid: its own session and process group (pgid = its pid), away
		# from the terminal's Ctrl-C; down signals the whole group.
		exec setsid "$BIN_DIR/moleculed" </dev/null >>"$LOGS/moleculed.log" 2>&1
	) &
	local pid=$! i
	echo "$pid" >"$SUP_PID"
	proc_start "$pid" >"$SUP_START" || true
	for ((i = 0; i < START_TIMEOUT * 10; i++)); do
		[[ -S $FCGI_SOCK ]] && return 0
		if ! alive "$pid"; then
			log "moleculed exited during start-up; last lines of $LOGS/moleculed.log:"
			tail -n 30 "$LOGS/moleculed.log" >&2 || true
			die "moleculed did not start"
		fi
		sleep 0.1
	done
	tail -n 30 "$LOGS/moleculed.log" >&2 || true
	die "no FastCGI socket $FCGI_SOCK after ${START_TIMEOUT}s"
}

start_nginx() {
	log "starting nginx on 127.0.0.1:$HTTP_PORT${HTTPS_PORT:+ and :$HTTPS_PORT (TLS)}"
	"$NGINX" -p "$NGX/" -c "$NGX/nginx.conf" -e "$LOGS/nginx-error.log" </dev/null ||
		{
			tail -n 5 "$LOGS/nginx-error.log" >&2 || true
			die "nginx did not start"
		}
	local i
	for ((i = 0; i < 50; i++)); do
		running "$NGX_PID" && return 0
		sleep 0.1
	done
	die "nginx did not write $NGX_PID"
}

wait_health() {
	local base=http://127.0.0.1:$HTTP_PORT delay=0.1 deadline=$((SECONDS + START_TIMEOUT)) err=""
	# Back off: each probe counts against the rate limit.
	while ((SECONDS < deadline)); do
		if err=$(curl_local -o /dev/null "$base/health" 2>&1); then return 0; fi
		running "$SUP_PID" "$SUP_START" || break
		sleep "$delay"
		delay=$(awk -v d="$delay" 'BEGIN { d *= 2; print (d > 1 ? 1 : d) }')
	done
	tail -n 30 "$LOGS/moleculed.log" >&2 || true
	die "$base/health does not answer: $err"
}

# ---------------------------------------------------------------- stop

stop_nginx() {
	local pid workers
	if ! { pid=$(pid_from "$NGX_PID") && ours "$pid"; }; then
		rm -f "$NGX_PID"
		return 0
	fi
	log "stopping nginx ($pid)"
	workers=$(pgrep -P "$pid" || true)
	# SIGQUIT = "nginx -s quit" (graceful), without re-reading the config.
	kill -QUIT "$pid" 2>/dev/null || true
	if ! wait_gone "$pid" 10; then
		log "nginx still running after 10s: killing it"
		# shellcheck disable=SC2086 # list of pids
		kill -KILL "$pid" $workers 2>/dev/null || true
		wait_gone "$pid" 5 || true
	fi
	rm -f "$NGX_PID" "$NCHAN_SOCK"
}

stop_supervisor() {
	local pid members m
	pid=$(pid_from "$SUP_PID") || return 0
	if ours "$pid" "$SUP_START"; then
		log "stopping moleculed ($pid)"
		kill -TERM "$pid" 2>/dev/null || true
		if ! wait_gone "$pid" 15; then
			log "moleculed still running after 15s: killing its process group"
			kill -KILL -- "-$pid" 2>/dev/null || true
			wait_gone "$pid" 5 || true
		fi
	fi
	# Children that outlived it (same process group, our environment).
	members=$(pgrep -g "$pid" || true)
	for m in $members; do
		if ours "$m"; then kill -KILL "$m" 2>/dev/null || true; fi
	done
	rm -f "$SUP_PID" "$SUP_START" "$FCGI_SOCK" "$A2A_SOCK"
}

stop_redis() {
	local pid
	if pid=$(pid_from "$REDIS_PID") && ours "$pid"; then
		log "stopping redis ($pid)"
		kill -TERM "$pid" 2>/dev/null || true
		wait_gone "$pid" 10 || {
			kill -KILL "$pid" 2>/dev/null || true
			wait_gone "$pid" 5 || true
		}
	fi
	rm -f "$REDIS_PID" "$REDIS_SOCK"
}

stop_postgres() {
	pg_running || return 0
	local bin
	bin=$(pg_bindir) || die "postgres is running but its binaries are gone"
	log "stopping postgres"
	as_pg "$bin/pg_ctl" -D "$PG_DATA" -m fast -w -t 30 stop >/dev/null ||
		as_pg "$bin/pg_ctl" -D "$PG_DATA" -m immediate -w -t 10 stop >/dev/null || true
}

stop_all() {
	stop_nginx
	stop_supervisor
	stop_redis
	stop_postgres
	stop_engine
}

# ---------------------------------------------------------------- commands

all_up() { running "$NGX_PID" && running "$SUP_PID" "$SUP_START" && running "$REDIS_PID" && pg_running; }
any_up() { running "$NGX_PID" || running "$SUP_PID" "$SUP_START" || running "$REDIS_PID" || pg_running; }

announce() {
	log "API at http://localhost:$HTTP_PORT${HTTPS_PORT:+ and https://localhost:$HTTPS_PORT}"
	log "logs in $LOGS; environment in $ENV_FILE"
}

up_failed() {
	local rc=$?
	trap - EXIT INT TERM
	if ((rc != 0)); then
		log "start-up failed: stopping what was started"
		stop_all || true
	fi
	exit "$rc"
}

cmd_up() {
	validate
	ensure_deps
	[[ -x $BIN_DIR/moleculed ]] || die "$BIN_DIR/moleculed not found: build it first (make all) or set BIN_DIR"
	if all_up; then
		log "already up in $RUN: $(sed -n "s/^BASE='\(.*\)'$/\1/p" "$ENV_FILE" 2>/dev/null)"
		return 0
	fi
	if any_up; then
		log "stack in $RUN is partly running: restarting it"
		stop_all
	fi
	local p
	for p in "$HTTP_PORT" ${HTTPS_PORT:+"$HTTPS_PORT"}; do
		if port_busy "$p"; then die "port $p is already in use (set MOLECULE_HTTP_PORT / MOLECULE_HTTPS_PORT)"; fi
	done

	trap up_failed EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM

	MOLECULE_ENV=${MOLECULE_ENV:-development}
	DATABASE_URL="postgresql://molecule@/molecule?host=$PG_SOCK"
	REDIS_URL="unix://$REDIS_SOCK"
	prepare_dirs
	start_postgres
	start_redis
	render_nginx
	start_engine
	write_env
	start_supervisor
	start_nginx
	wait_health

	trap - EXIT INT TERM
	announce
}

cmd_down() {
	if [[ ! -d $RUN ]]; then
		log "nothing in $RUN"
		return 0
	fi
	stop_all
	if [[ ${MOLECULE_CLEAN:-0} == 1 ]]; then
		[[ -f $MARKER && $RUN != "$REPO" && $RUN != / ]] ||
			die "MOLECULE_CLEAN=1: $RUN does not look like a stack run directory; not deleting it"
		log "removing $RUN"
		rm -rf -- "$RUN"
	fi
	log "down"
}

SLEEPER=""
run_stop() {
	trap - INT TERM
	if [[ -n $SLEEPER ]]; then kill "$SLEEPER" 2>/dev/null || true; fi
	echo >&2
	log "stopping"
	stop_all
	exit "${1:-0}"
}

cmd_run() {
	cmd_up
	log "running in the foreground: Ctrl-C stops the stack"
	log "follow the logs with: tail -F $LOGS/moleculed.log $LOGS/nginx-access.log"
	trap 'run_stop 0' INT TERM
	while :; do
		if ! running "$SUP_PID" "$SUP_START"; then
			log "moleculed exited unexpectedly; last lines of $LOGS/moleculed.log:"
			tail -n 30 "$LOGS/moleculed.log" >&2 || true
			run_stop 1
		fi
		if ! running "$NGX_PID"; then
			log "nginx exited unexpectedly; see $LOGS/nginx-error.log"
			run_stop 1
		fi
		sleep 1 &
		SLEEPER=$!
		wait "$SLEEPER" || true
		SLEEPER=""
	done
}

cmd_status() {
	local rc=0 pid name file start base=http://127.0.0.1:$HTTP_PORT
	if [[ -f $ENV_FILE ]]; then base=$(sed -n "s/^BASE='\(.*\)'$/\1/p" "$ENV_FILE"); fi
	printf '%s\n' "run dir: $RUN"
	if pg_running; then
		printf '%-10s running (pid %s)\n' postgres "$(head -n 1 "$PG_DATA/postmaster.pid")"
	else
		printf '%-10s stopped\n' postgres
		rc=3
	fi
	for name in redis moleculed nginx; do
		start=""
		case $name in
		redis) file=$REDIS_PID ;;
		moleculed) file=$SUP_PID start=$SUP_START ;;
		nginx) file=$NGX_PID ;;
		esac
		if pid=$(pid_from "$file") && ours "$pid" "$start"; then
			printf '%-10s running (pid %s)\n' "$name" "$pid"
		else
			printf '%-10s stopped\n' "$name"
			rc=3
		fi
	done
	if [[ -d $ENGINE_DIR ]]; then
		if [[ -S $ENGINE_DIR/engine.sock ]] && curl_local --unix-socket "$ENGINE_DIR/engine.sock" -o /dev/null http://d/_ping 2>/dev/null; then
			printf '%-10s running (unix://%s)\n' engine "$ENGINE_DIR/engine.sock"
		else
			printf '%-10s stopped\n' engine
			rc=3
		fi
		if pid=$(pid_from "$GIT_PID") && ours "$pid"; then
			printf '%-10s running (pid %s)\n' gitserver "$pid"
		else
			printf '%-10s stopped\n' gitserver
			rc=3
		fi
	fi
	if ((rc == 0)); then
		if curl_local -o /dev/null "$base/health" 2>/dev/null; then
			printf '%-10s %s/health answers\n' health "$base"
		else
			printf '%-10s %s/health does NOT answer\n' health "$base"
			rc=3
		fi
	fi
	return "$rc"
}

cmd_env() {
	[[ -f $ENV_FILE ]] || die "no $ENV_FILE: start the stack first (tests/stack.sh up)"
	cat "$ENV_FILE"
}

usage() {
	sed -n '2,/^$/s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
	exit 2
}

case ${1:-} in
up) cmd_up ;;
run) cmd_run ;;
down) cmd_down ;;
status) cmd_status ;;
env) cmd_env ;;
*) usage ;;
esac
