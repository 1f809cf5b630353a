#!/usr/bin/env bash
# deps.sh: installs the Debian packages molecule needs to build, run and test (make deps).
# Installs only what is missing, so `make run` and `make test` stay fast on a prepared machine.
set -euo pipefail

packages=(
	build-essential pkg-config clang libclang-rt-14-dev
	libfcgi-dev libfcgi-bin libpq-dev libhiredis-dev libjson-c-dev libcurl4-openssl-dev
	libssl-dev libyaml-dev
	nginx libnginx-mod-nchan postgresql redis-server
	python3-pytest curl openssl wrk procps shellcheck cppcheck
	# container engine for the provisioner tests (tests/engine.sh): crun fails here, runc works
	podman runc busybox-static
	# local image builds: git fetches the template repositories (common/images.c, tests/fixtures/gitserver.py)
	git
	# IANA zones the scheduler reads from /usr/share/zoneinfo (common/cron.c)
	tzdata
)

missing=()
for p in "${packages[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing+=("$p")
	fi
done
ensure_nginx_dirs() {
	# Debian's nchan build registers /var/lib/nginx/body whatever the config says.
	if [ "$(id -u)" -eq 0 ]; then
		mkdir -p /var/lib/nginx/body
	fi
}
if [ "${#missing[@]}" -eq 0 ]; then
	ensure_nginx_dirs
	exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "deps: missing packages: ${missing[*]}" >&2
	echo "deps: run 'sudo make deps' (or install them with apt-get) and try again" >&2
	exit 1
fi
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# policy-rc.d keeps the packages' own services (system nginx, postgres, redis) from starting:
# the stack runs private instances on sockets and a chosen port instead.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
	printf '#!/bin/sh\nexit 101\n' >"$policy"
	chmod 755 "$policy"
	created_policy=1
fi
apt-get install -y -q --no-install-recommends "${missing[@]}"
if [ "$created_policy" -eq 1 ]; then
	rm -f "$policy"
fi
ensure_nginx_dirs
