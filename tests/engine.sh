#!/usr/bin/env bash
# engine.sh: a private Podman engine serving the Docker Engine API on DIR/engine.sock (tests and dev).
# Owns everything under DIR (storage, run state, config, pid, log); start/stop are idempotent.
#
#   tests/engine.sh start DIR   start it (if not running), import localhost/molecule-base:latest, print DOCKER_HOST=
#   tests/engine.sh stop DIR    kill the service and its containers, unmount and remove DIR's storage
#   tests/engine.sh env DIR     print DOCKER_HOST=unix://DIR/engine.sock
#
# Quirks of this machine kind (see docs/operations.md): crun fails ("cgroups in hybrid mode"), so runc;
# podman's default nofile ulimit (1048576) is above the sandbox's hard limit, so default_ulimits is pinned;
# no systemd, so cgroupfs and a file events log; vfs storage because overlay-on-overlay is not reliable
# on CI VMs (ENGINE_STORAGE_DRIVER=overlay overrides).
set -euo pipefail

die() {
	echo "engine.sh: $*" >&2
	exit 1
}

usage() {
	echo "usage: $0 start|stop|env DIR" >&2
	exit 2
}

[ $# -eq 2 ] || usage
cmd=$1
dir=$2
[ -n "$dir" ] || usage
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
sock=$dir/engine.sock
pidfile=$dir/engine.pid
conf=$dir/containers.conf
storage_conf=$dir/storage.conf
driver=${ENGINE_STORAGE_DRIVER:-vfs}
base_image=localhost/molecule-base:latest

# unix socket paths are limited to 108 bytes (sun_path)
if [ "${#sock}" -ge 108 ]; then
	die "socket path too long (${#sock} bytes): $sock"
fi

export CONTAINERS_CONF=$conf
export CONTAINERS_STORAGE_CONF=$storage_conf

ping_ok() {
	[ -S "$sock" ] || return 1
	[ "$(curl -s --max-time 2 --unix-socket "$sock" http://d/_ping 2>/dev/null)" = "OK" ]
}

write_conf() {
	local nofile
	nofile=$(ulimit -Hn)
	if [ "$nofile" = "unlimited" ] || [ "$nofile" -gt 1048576 ]; then
		nofile=1048576
	fi
	mkdir -p "$dir/storage" "$dir/run" "$dir/tmp" "$dir/cni"
	cat >"$conf" <<EOF
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=32768:32768"]
log_driver = "k8s-file"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$dir/events.log"
tmp_dir = "$dir/tmp"
num_locks = 256
# File locks under tmp_dir: the default shm segment (/dev/shm/libpod_lock) is one per machine,
# shared by every engine, and locks leaked by a killed engine would pile up across runs.
lock_type = "file"

[network]
network_config_dir = "$dir/cni"
EOF
	cat >"$storage_conf" <<EOF
[storage]
driver = "$driver"
graphroot = "$dir/storage"
runroot = "$dir/run"
EOF
}

import_base() {
	local code rootfs bb applet
	code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 --unix-socket "$sock" \
		"http://d/v1.41/images/$base_image/json" || true)
	[ "$code" = "200" ] && return 0
	bb=$(command -v busybox || true)
	[ -n "$bb" ] || bb=/bin/busybox
	[ -x "$bb" ] || die "busybox-static is not installed (tests/deps.sh)"
	rootfs=$dir/rootfs
	rm -rf "$rootfs"
	mkdir -p "$rootfs"/{bin,sbin,etc,tmp,root,proc,sys,dev,var/www,usr/bin,usr/sbin,configs}
	chmod 1777 "$rootfs/tmp"
	cp "$bb" "$rootfs/bin/busybox"
	for applet in $("$bb" --list); do
		[ "$applet" = "busybox" ] && continue
		ln -sf busybox "$rootfs/bin/$applet"
	done
	printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$rootfs/etc/passwd"
	printf 'root:x:0:\nnobody:x:65534:\n' >"$rootfs/etc/group"
	printf '127.0.0.1 localhost\n' >"$rootfs/etc/hosts"
	code=$(tar -C "$rootfs" -c . | curl -s -o "$dir/import.out" -w '%{http_code}' --max-time 120 \
		--unix-socket "$sock" -X POST -H 'Content-Type: application/x-tar' --data-binary @- \
		'http://d/v1.41/images/create?fromSrc=-&repo=localhost/molecule-base&tag=latest')
	[ "$code" = "200" ] || die "base image import failed (HTTP $code): $(cat "$dir/import.out")"
	if grep -q '"error"' "$dir/import.out"; then
		die "base image import failed: $(cat "$dir/import.out")"
	fi
	rm -rf "$rootfs"
}

# The pidfile's pid, if it is still our engine (its command line names DIR): a stale pidfile may
# name a pid the system has since given to an unrelated process.
our_pid() {
	local pid cmd
	[ -f "$pidfile" ] || return 1
	pid=$(cat "$pidfile")
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
	[[ $cmd == *podman* && $cmd == *"$dir"* ]] || return 1
	echo "$pid"
}

start() {
	local pid i
	if ! ping_ok; then
		command -v podman >/dev/null || die "podman is not installed (tests/deps.sh)"
		command -v runc >/dev/null || die "runc is not installed (tests/deps.sh)"
		if pid=$(our_pid); then
			kill "$pid" 2>/dev/null || true
		fi
		rm -f "$sock"
		write_conf
		# setsid: the service must not die with the caller's terminal or process group
		setsid podman --root "$dir/storage" --runroot "$dir/run" --storage-driver "$driver" \
			--log-level=info system service --time=0 "unix://$sock" \
			</dev/null >>"$dir/engine.log" 2>&1 &
		echo $! >"$pidfile"
		pid=$(cat "$pidfile")
		for ((i = 0; i < 300; i++)); do
			ping_ok && break
			kill -0 "$pid" 2>/dev/null || die "podman exited at start: $(tail -5 "$dir/engine.log")"
			sleep 0.1
		done
		ping_ok || die "engine did not answer /_ping within 30 s: $(tail -5 "$dir/engine.log")"
	fi
	import_base
	echo "DOCKER_HOST=unix://$sock"
}

# pids of processes whose command line names DIR's storage (the service, conmon, cleanup processes)
pids_under_dir() {
	local p args
	# builtins only: forking per process would take seconds on a busy machine
	for p in /proc/[0-9]*; do
		args=()
		mapfile -d '' -t args 2>/dev/null <"$p/cmdline" || continue
		case " ${args[*]} " in
		*"$dir/storage"* | *"$dir/run"*) echo "${p#/proc/}" ;;
		esac
	done
}

stop() {
	local pid i p mp
	if [ -f "$conf" ] && [ -d "$dir/storage" ] && command -v podman >/dev/null; then
		# containers first (the CLI works on the same storage with or without the service), so runc
		# kills their processes and conmon exits; killing conmon alone would orphan them
		timeout 60 podman --root "$dir/storage" --runroot "$dir/run" --storage-driver "$driver" \
			rm -a -f -t 0 >/dev/null 2>&1 || true
	fi
	if pid=$(our_pid); then
		kill "$pid" 2>/dev/null || true
		for ((i = 0; i < 50; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -9 "$pid" 2>/dev/null || true
	fi
	rm -f "$pidfile"
	# leftovers (conmon, containers' processes) only when their command line points into DIR
	for p in $(pids_under_dir); do
		[ "$p" = "$$" ] && continue
		kill -9 "$p" 2>/dev/null || true
	done
	# podman leaves shm, overlay and netns mounts under its root: deepest first
	while read -r mp; do
		umount -l "$mp" 2>/dev/null || true
	done < <(awk -v d="$dir/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r)
	rm -rf "$dir/storage" "$dir/run" "$dir/tmp" "$dir/cni" "$dir/rootfs" "$sock" \
		"$dir/events.log" "$dir/import.out"
}

case "$cmd" in
start) start ;;
stop) stop ;;
env) echo "DOCKER_HOST=unix://$sock" ;;
*) usage ;;
esac
