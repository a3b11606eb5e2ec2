#!/bin/sh
# Installs the Debian packages postd needs, only those that are missing.
#   scripts/deps.sh          what building and running needs
#   scripts/deps.sh --test   also what the tests need
# README.md ("Dependencies") says why each package is here. The lists are
# checked on a bare Debian 12 (debootstrap minbase) by
# scripts/fresh-machine-check.sh: packages come without their Recommends,
# so whatever a Recommends would have brought is named here.
set -eu

# gcc without Recommends has no C library headers: libc6-dev.
BUILD="gcc libc6-dev pkg-config meson ninja-build libevent-dev libssl-dev
       libsodium-dev libcrypt-dev libcmocka-dev libc-ares-dev libpq-dev
       libgmime-3.0-dev"
# swaks speaks TLS only with Net::SSLeay and IO::Socket::SSL (Recommends).
TEST="python3 python3-pytest curl openssl fetchmail getmail6 clang
      libclang-rt-14-dev cppcheck clang-format procps swaks
      libnet-ssleay-perl libio-socket-ssl-perl msmtp ca-certificates
      dnsmasq-base python3-aiosmtpd python3-dkim python3-nacl
      dovecot-pop3d dovecot-imapd postfix gnutls-bin git-email
      libmailtools-perl strace postgresql haproxy
      isync offlineimap3 s-nail neomutt dovecot-dev autoconf automake
      libtool make"

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
# Keep a config file this script wrote (see createcluster.conf below).
export UCF_FORCE_CONFFOLD=1
# Postfix is installed for its binaries (postctl check is tested against
# a private instance): "No configuration" keeps its own service off port 25.
if command -v debconf-set-selections >/dev/null; then
	echo "postfix postfix/main_mailer_type select No configuration" |
		debconf-set-selections
fi
# PostgreSQL is installed for its server binaries: the tests make private
# clusters with initdb. Without this, the package would also create and
# start a system-wide cluster on port 5432 that nothing here uses.
case " $missing " in
*" postgresql "*)
	if [ ! -e /etc/postgresql-common/createcluster.conf ]; then
		mkdir -p /etc/postgresql-common
		echo "create_main_cluster = false" \
			>/etc/postgresql-common/createcluster.conf
	fi
	;;
esac
log=$(mktemp "${TMPDIR:-/tmp}/postd-deps.XXXXXX")
# apt's own output is shown only when it fails, and then all of it.
run() {
	if ! "$@" >"$log" 2>&1; then
		cat "$log" >&2
		echo "deps: failed: $*" >&2
		rm -f "$log"
		exit 1
	fi
}
run apt-get update -q
# shellcheck disable=SC2086
run apt-get install -y -q -o DPkg::Lock::Timeout=900 \
	-o Dpkg::Options::=--force-confold --no-install-recommends $missing
rm -f "$log"
# A package that installed yet is not "install ok installed" (a failed
# postinst that apt did not report) must not pass silently either.
for p in $missing; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
		grep -q "install ok installed"; then
		echo "deps: $p is not installed after apt-get install" >&2
		exit 1
	fi
done
