#!/bin/sh
# Installs the Debian packages postd needs, only those that are missing.
#   scripts/deps.sh          what building and running needs
#   scripts/deps.sh --test   also what the tests need
# README.md ("Dependencies") says why each package is here.
set -eu

BUILD="gcc pkg-config meson ninja-build libevent-dev libssl-dev
       libsodium-dev libcrypt-dev libcmocka-dev libc-ares-dev"
TEST="python3 python3-pytest curl openssl fetchmail getmail6 clang
      libclang-rt-14-dev cppcheck clang-format procps swaks msmtp
      dnsmasq-base python3-aiosmtpd python3-dkim python3-nacl
      dovecot-pop3d dovecot-imapd postfix"

want="$BUILD"
[ "${1:-}" = "--test" ] && want="$BUILD $TEST"

missing=""
for p in $want; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
		grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "deps: missing packages:$missing (run as root to install them)" >&2
	exit 1
fi
echo "deps: installing:$missing"
export DEBIAN_FRONTEND=noninteractive
# Postfix is installed for its binaries (postctl check is tested against
# a private instance): "No configuration" keeps its own service off port 25.
if command -v debconf-set-selections >/dev/null; then
	echo "postfix postfix/main_mailer_type select No configuration" |
		debconf-set-selections
fi
apt-get update -q >/dev/null
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing >/dev/null
