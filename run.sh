#!/bin/sh
# Quick start, step 1: install what is missing, build, and run postd on its
# embedded default: data in ./postd-data, POP3 on 127.0.0.1:2110, POP3S on
# 127.0.0.1:2995, and a demo user whose password is printed on first start.
# The build is quiet when it works; when it fails, its whole output is shown.
set -eu
cd "$(dirname "$0")"
./scripts/deps.sh || {
	echo "run.sh: installing the dependencies failed (above)" >&2
	exit 1
}
log=$(mktemp "${TMPDIR:-/tmp}/postd-run.XXXXXX")
trap 'rm -f "$log"' EXIT
quiet() { # quiet WHAT COMMAND...: the output only if it fails
	what=$1
	shift
	if ! "$@" >"$log" 2>&1; then
		cat "$log" >&2
		echo "run.sh: $what failed (above): $*" >&2
		exit 1
	fi
}
if [ ! -f build/build.ninja ]; then
	# A setup that failed half-way leaves a folder meson will not reuse.
	[ -d build ] && rm -rf build
	quiet "configuring the build" meson setup build --buildtype=debugoptimized
fi
quiet "building" ninja -C build
if [ "$(id -u)" -eq 0 ] && ! getent passwd postd >/dev/null; then
	# The workers and the auth process run as this unprivileged user.
	useradd --system --no-create-home --home-dir /nonexistent \
		--shell /usr/sbin/nologin postd
fi
rm -f "$log"
trap - EXIT
exec ./build/src/daemon/postd -f "$@"
