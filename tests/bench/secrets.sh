#!/usr/bin/env bash
# secrets.sh: decrypt cost per provision: wrk on GET /workspaces/:id/secrets/values (20 secrets,
# the workspace's own token) with a static key (version 2 rows) and with the KMS envelope
# (version 3 rows, warm data-key cache, tests/integration/fake_kms.py as KMS), beside the
# libfcgi hello-world baseline. One stack holds both key sources, as during a migration to KMS:
# the version 2 rows are written by `moleculed secrets rotate` before KMS is configured for it.
# Prints a table and rewrites the "secrets-bench" section of docs/performance.md.
set -euo pipefail
# shellcheck source=tests/bench/lib.sh
. "$(dirname "$0")/lib.sh"
DURATION="${BENCH_DURATION:-10}"
CONNS="${BENCH_CONNECTIONS:-4}"
THREADS="${BENCH_THREADS:-2}"
NSECRETS=20

admin="bench-admin-token-0123456789"
key_arn="arn:aws:kms:us-east-1:111122223333:key/bench"
kms_secret="bench-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
static_key="$(head -c 32 /dev/urandom | base64)"
kms_port="$(free_port)"
kms_pid=""
trap '[ -z "$kms_pid" ] || kill "$kms_pid" 2>/dev/null || true; bench_cleanup' EXIT

# fake_kms.py with Nagle off (its header and body writes would otherwise meet delayed ACKs).
python3 -c "import sys; sys.path.insert(0, '$repo/tests/integration'); import fake_kms; \
fake_kms.Handler.disable_nagle_algorithm = True; sys.argv = ['fake_kms.py'] + sys.argv[1:]; \
fake_kms.main()" --port "$kms_port" --key-arn "$key_arn" --access-key AKIDBENCH \
	--secret-key "$kms_secret" >"$run/fake-kms.log" 2>&1 &
kms_pid=$!
for _ in $(seq 50); do curl -fsS "http://127.0.0.1:$kms_port/__stats" >/dev/null 2>&1 && break; sleep 0.1; done

export ADMIN_TOKEN="$admin" SECRETS_ENCRYPTION_KEY="$static_key" KMS_KEY_ARN="$key_arn" \
	KMS_ENDPOINT="http://127.0.0.1:$kms_port" AWS_ACCESS_KEY_ID=AKIDBENCH \
	AWS_SECRET_ACCESS_KEY="$kms_secret"
bench_stack_up
# shellcheck disable=SC1091
. "$run/stack.env"

new_ws() { # name -> id
	psql "$DATABASE_URL" -Atq -c "INSERT INTO workspaces (name, status, runtime) VALUES ('$1', 'online', 'langgraph') RETURNING id" | head -1
}
mint() { # id -> token
	curl -fsS -X POST -H "Authorization: Bearer $admin" "http://127.0.0.1:$port/workspaces/$1/tokens" |
		python3 -c 'import json, sys; print(json.load(sys.stdin)["auth_token"])'
}

# Static: plaintext rows sealed to version 2 by the rotation tool with the static key only.
ws_static="$(new_ws bench-secrets-static)"
psql "$DATABASE_URL" -q -v ON_ERROR_STOP=1 -c "INSERT INTO workspace_secrets (workspace_id, key,
	encrypted_value, encryption_version) SELECT '$ws_static', 'KEY_' || n,
	convert_to(repeat(md5(n::text), 2), 'UTF8'), 0 FROM generate_series(1, $NSECRETS) n"
env -u KMS_KEY_ARN -u KMS_ENDPOINT -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY \
	DATABASE_URL="$DATABASE_URL" ASAN_OPTIONS=detect_leaks=0 "$BIN_DIR/moleculed" secrets rotate >/dev/null
# Envelope: the same values written through the API (version 3, one data key each).
ws_env="$(new_ws bench-secrets-envelope)"
for n in $(seq "$NSECRETS"); do
	v="$(printf '%s' "$n" | md5sum | cut -d' ' -f1)"
	curl -fsS -o /dev/null -X POST -H "Authorization: Bearer $admin" -H 'Content-Type: application/json' \
		-d "{\"key\":\"KEY_$n\",\"value\":\"$v$v\"}" "http://127.0.0.1:$port/workspaces/$ws_env/secrets"
done
versions="$(psql "$DATABASE_URL" -Atq -c "SELECT string_agg(DISTINCT encryption_version::text, ',')
	FROM workspace_secrets WHERE workspace_id = '$ws_static'")/$(psql "$DATABASE_URL" -Atq -c "SELECT
	string_agg(DISTINCT encryption_version::text, ',') FROM workspace_secrets WHERE workspace_id = '$ws_env'")"
[ "$versions" = "2/3" ] || { echo "unexpected encryption versions (static/envelope): $versions" >&2; exit 1; }
tok_static="$(mint "$ws_static")"
tok_env="$(mint "$ws_env")"
bench_hello_up

wrk_run() { # url [token] -> "requests rps p50 p99 non2xx"
	local h=()
	[ -z "${2:-}" ] || h=(-H "Authorization: Bearer $2")
	wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --latency "${h[@]}" "$1" >"$run/wrk.out" 2>&1
	awk '/requests in/ {req=$1} /Requests\/sec/ {rps=$2} /^ +50%/ {p50=$2} /^ +99%/ {p99=$2}
	     /Non-2xx/ {bad=$NF} END {print req, rps, p50, p99, (bad == "" ? 0 : bad)}' "$run/wrk.out"
}
cost() { awk -v r="$1" 'BEGIN {printf "%.0f µs", 1e6 / r}'; }

static_url="http://127.0.0.1:$port/workspaces/$ws_static/secrets/values"
env_url="http://127.0.0.1:$port/workspaces/$ws_env/secrets/values"
# Warm-up: every worker's data-key cache, connections on both paths.
wrk -t1 -c"$CONNS" -d2s "http://127.0.0.1:$hello_port/health" >/dev/null
wrk -t1 -c"$CONNS" -d2s -H "Authorization: Bearer $tok_static" "$static_url" >/dev/null
wrk -t1 -c"$CONNS" -d2s -H "Authorization: Bearer $tok_env" "$env_url" >/dev/null
kms_before="$(curl -fsS "http://127.0.0.1:$kms_port/__stats" | python3 -c 'import json, sys; print(json.load(sys.stdin)["Decrypt"])')"

read -r f_req f_rps f_p50 f_p99 _ <<<"$(wrk_run "http://127.0.0.1:$hello_port/health")"
read -r s_req s_rps s_p50 s_p99 s_bad <<<"$(wrk_run "$static_url" "$tok_static")"
read -r e_req e_rps e_p50 e_p99 e_bad <<<"$(wrk_run "$env_url" "$tok_env")"
kms_calls=$(($(curl -fsS "http://127.0.0.1:$kms_port/__stats" | python3 -c 'import json, sys; print(json.load(sys.stdin)["Decrypt"])') - kms_before))

table="$(cat <<TABLE
| measurement | requests | requests/s | p50 | p99 | per request (1/rps) | non-2xx |
|---|---|---|---|---|---|---|
| F: libfcgi hello-world via the same nginx | $f_req | $f_rps | $f_p50 | $f_p99 | $(cost "$f_rps") | |
| **/secrets/values, static key** (v2, $NSECRETS secrets) | $s_req | **$s_rps** | $s_p50 | $s_p99 | $(cost "$s_rps") | $s_bad |
| **/secrets/values, KMS envelope, warm cache** (v3, $NSECRETS secrets) | $e_req | **$e_rps** | $e_p50 | $e_p99 | $(cost "$e_rps") | $e_bad |
| KMS Decrypt calls during the measured envelope run | | | | | | $kms_calls |
TABLE
)"
echo "$table"

bench_write_doc secrets-bench "Measured $(date -u +%Y-%m-%d) with \`tests/bench/secrets.sh\` (\`wrk -t$THREADS -c$CONNS -d${DURATION}s\`, $(nproc) cores, $workers API workers; KMS is tests/integration/fake_kms.py on loopback, so a cold data key would cost far more against real KMS):" "$table"
