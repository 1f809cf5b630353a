#!/usr/bin/env bash
# run.sh: builds every libFuzzer target with clang (ASan+UBSan) and runs each for a bounded time.
# FUZZ_SECONDS (default 15) per target; crashes land in tests/fuzz/artifacts/ and fail the run.
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds="${FUZZ_SECONDS:-15}"
out=build-fuzz
mkdir -p "$out" tests/fuzz/artifacts
read -ra pkg_cflags <<<"$(pkg-config --cflags libpq hiredis json-c)"
read -ra pkg_libs <<<"$(pkg-config --libs json-c openssl)"
# shellcheck disable=SC2054 # the commas belong to -fsanitize=
cflags=(-std=c11 -D_GNU_SOURCE -g -O1 -I. -fsanitize=fuzzer,address,undefined
	-fno-sanitize-recover=all "${pkg_cflags[@]}")
libs=("${pkg_libs[@]}")
common=(common/arena.c common/conf.c common/util.c common/log.c common/jsonx.c common/cron.c
	common/engine_stream.c common/gitea.c common/redact.c)
fcgi=(fcgi/req.c fcgi/resp.c fcgi/router.c)
status=0
for target in query json_body config router cron engine_stream gitea redact; do
	bin="$out/fuzz_$target"
	clang "${cflags[@]}" -o "$bin" "tests/fuzz/fuzz_$target.c" "${common[@]}" "${fcgi[@]}" "${libs[@]}"
	work=$(mktemp -d)
	cp "tests/fuzz/corpus/$target/"* "$work/"
	echo "fuzz: $target for ${seconds}s"
	if ! "$bin" -max_total_time="$seconds" -max_len=8192 -artifact_prefix=tests/fuzz/artifacts/ \
		"$work" >"$out/fuzz_$target.log" 2>&1; then
		echo "fuzz: $target FAILED"; tail -40 "$out/fuzz_$target.log"; status=1
	else
		grep -E '^#[0-9]+ *DONE' "$out/fuzz_$target.log" || tail -2 "$out/fuzz_$target.log"
	fi
	rm -rf "$work"
done
exit "$status"
