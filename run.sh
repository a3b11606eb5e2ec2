#!/bin/sh
# Quick start, step 1: install what is missing, build, and run postd on its
# embedded default: data in ./postd-data, POP3 on 127.0.0.1:2110, POP3S on
# 127.0.0.1:2995, and a demo user whose password is printed on first start.
set -eu
cd "$(dirname "$0")"
./scripts/deps.sh
[ -f build/build.ninja ] || meson setup build --buildtype=debugoptimized >/dev/null
ninja -C build >/dev/null
if [ "$(id -u)" -eq 0 ] && ! getent passwd postd >/dev/null; then
	# The workers and the auth process run as this unprivileged user.
	useradd --system --no-create-home --home-dir /nonexistent \
		--shell /usr/sbin/nologin postd
fi
exec ./build/src/daemon/postd -f "$@"
