#!/bin/bash
# shellcheck disable=SC2317 # functions run through step and trap
# The fresh-machine check: proves on a bare Debian 12 what the README
# promises, so that a package the developers happen to have installed can
# no longer hide a missing dependency.
#
#   1. In a bare root (debootstrap --variant=minbase from this machine's own
#      Debian apt sources, nothing else), the README's ./run.sh must print the
#      demo password, take one message over SMTP (2525) and hand it back over
#      POP3S (2995), both with curl; then ./test.sh --quick must pass there.
#   2. The Debian package builds there (apt-get build-dep + dpkg-buildpackage
#      -us -uc -b), installs into a SECOND bare root, and postd started the
#      way the package's service starts it (there is no systemd in a chroot:
#      postd -c /etc/postd/postd.conf -f) takes a message on port 25 and
#      hands it back over POP3S on 995, in a network namespace of its own.
#
#   scripts/fresh-machine-check.sh [--keep]     (as root)
#
# The base root is cached as a tarball in $POSTD_CI_CACHE (default
# /var/cache/postd-ci), keyed by the apt sources and the ISO week, so that
# a rerun skips debootstrap. --keep leaves the roots in place for a look.
# Every step prints why it failed; the last line is "N passed, N failed",
# counting the steps of this check and the tests of ./test.sh --quick.
set -uo pipefail

SRC=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${POSTD_CI_CACHE:-/var/cache/postd-ci}
WORK=${POSTD_CI_WORK:-/var/tmp}
SUITE=bookworm
RUN_SH_TIMEOUT=${RUN_SH_TIMEOUT:-1800}
# systemd-analyze security's exposure times ten: 30 is 3.0, "OK".
SECURITY_THRESHOLD=${SECURITY_THRESHOLD:-30}
KEEP=no
[ "${1:-}" = "--keep" ] && KEEP=yes

passed=0
failed=0
failures=""
roots=()
bg_pids=()
LOGDIR=$(mktemp -d "$WORK/postd-fresh-logs.XXXXXX")
T0=$(date +%s)

say() { echo "fresh: [$(($(date +%s) - T0))s] $*"; }

# Counts one step and says how it went; a failing step shows its log.
pass() {
	passed=$((passed + 1))
	say "PASS $1"
}
fail() { # fail NAME WHY [LOG]
	failed=$((failed + 1))
	failures="$failures $1"
	say "FAIL $1: $2"
	if [ -n "${3:-}" ] && [ -s "$3" ]; then
		echo "---- last 60 lines of $3 ----"
		tail -n 60 "$3"
		echo "----"
	fi
}

# step NAME COMMAND...: runs COMMAND with its output in a log of its own.
step() {
	local name=$1 log="$LOGDIR/$1.log" t rc
	t=$(date +%s)
	shift
	say "step $name ..."
	"$@" >"$log" 2>&1
	rc=$?
	if [ "$rc" -eq 0 ]; then
		pass "$name ($(($(date +%s) - t))s)"
		return 0
	fi
	fail "$name" "exit status $rc after $(($(date +%s) - t))s" "$log"
	return 1
}

finish() {
	local rc=$?
	# A signal may arrive while a step's output goes to its log.
	exec 1>&3 2>&4
	# A check that stopped early (an error of this script) must not end
	# in "0 failed".
	if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
		failed=1
		failures="$failures aborted(status-$rc)"
	fi
	for pid in "${bg_pids[@]}"; do
		kill -TERM "$pid" 2>/dev/null
	done
	for pid in "${bg_pids[@]}"; do
		wait "$pid" 2>/dev/null
	done
	for r in "${roots[@]}"; do
		unmount_root "$r"
		if [ "$KEEP" = yes ]; then
			say "kept $r"
		else
			rm -rf --one-file-system "$r"
		fi
	done
	say "logs in $LOGDIR; took $(($(date +%s) - T0))s"
	[ -n "$failures" ] && echo "fresh-machine check failed:$failures"
	echo "$passed passed, $failed failed"
	[ "$failed" -eq 0 ] && [ "$rc" -eq 0 ]
	exit $?
}
exec 3>&1 4>&2
trap finish EXIT
trap 'exit 130' INT TERM

# Ends what still runs inside root R (a daemon a failed step left behind),
# found by each process's root directory.
kill_in_root() {
	local r=$1 p link pids round
	# Repeated: a process being stopped may still start another.
	for round in 1 2 3 4 5; do
		pids=""
		for p in /proc/[0-9]*; do
			link=$(readlink "$p/root" 2>/dev/null) || continue
			case $link in "$r" | "$r"/*) pids="$pids ${p#/proc/}" ;; esac
		done
		[ -z "$pids" ] && return 0
		echo "fresh: stopping what still runs in $r:$pids" >&2
		# shellcheck disable=SC2086
		kill -TERM $pids 2>/dev/null
		sleep "$round"
		# shellcheck disable=SC2086
		kill -KILL $pids 2>/dev/null
		sleep 1
	done
	return 0
}

unmount_root() {
	local r=$1 m
	kill_in_root "$r"
	if [ -d "$r/var/cache/apt/archives" ] && [ -d "$CACHE/archives" ]; then
		find "$r/var/cache/apt/archives" -maxdepth 1 -name '*.deb' \
			-exec cp -n -t "$CACHE/archives/" {} + 2>/dev/null
	fi
	# Deepest first; a busy mount is detached rather than left behind.
	awk -v r="$r" '$2 == r || index($2, r "/") == 1 {print $2}' \
		/proc/self/mounts | sort -r | while read -r m; do
		umount "$m" 2>/dev/null || umount -l "$m" ||
			echo "fresh: cannot unmount $m" >&2
	done
}

# The Debian entries of this machine's apt sources (deb822 or one-line),
# printed as one-line "deb URI SUITE COMPONENTS" entries; other vendors'
# repositories (nodesource, Google Cloud, ...) are left out.
debian_sources() {
	local f
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[ -f "$f" ] || continue
		awk '$1 == "deb" && $0 ~ /https?:\/\/[^ ]*\/debian(-security)?\/? / {
			sub(/\[[^]]*\] /, ""); print }' "$f"
	done
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] || continue
		awk 'BEGIN { RS = ""; FS = "\n" }
		{
			types = uris = suites = comps = ""; enabled = 1
			for (i = 1; i <= NF; i++) {
				line = $i
				if (line ~ /^#/) continue
				key = tolower(substr(line, 1, index(line, ":") - 1))
				val = substr(line, index(line, ":") + 1)
				gsub(/^[ \t]+|[ \t]+$/, "", val)
				if (key == "types") types = val
				else if (key == "uris") uris = val
				else if (key == "suites") suites = val
				else if (key == "components") comps = val
				else if (key == "enabled" && val == "no") enabled = 0
			}
			if (!enabled || types !~ /(^| )deb( |$)/) next
			nu = split(uris, u, " "); ns = split(suites, s, " ")
			for (a = 1; a <= nu; a++) {
				if (u[a] !~ /^https?:\/\/.*\/debian(-security)?\/?$/) continue
				for (b = 1; b <= ns; b++) print "deb " u[a] " " s[b] " " comps
			}
		}' "$f"
	done
}

SOURCES=$(debian_sources | sort -u)
MIRROR=$(echo "$SOURCES" | awk -v s=$SUITE '$3 == s {print $2; exit}')
KEY=$(printf '%s\n%s\n' "$SOURCES" "$(date +%G-W%V)" | sha256sum | cut -c1-16)
BASE="$CACHE/debian-$SUITE-minbase-$KEY.tar.gz"

make_base() {
	local tmp
	mkdir -p "$CACHE" || return 1
	tmp=$(mktemp -d "$WORK/postd-base.XXXXXX") || return 1
	roots+=("$tmp")
	chmod 755 "$tmp" # it becomes "/": every user must reach through it
	echo "debootstrap --variant=minbase $SUITE from $MIRROR"
	debootstrap --variant=minbase "$SUITE" "$tmp" "$MIRROR" || {
		tail -n 30 "$tmp/debootstrap/debootstrap.log" 2>/dev/null
		return 1
	}
	echo "$SOURCES" >"$tmp/etc/apt/sources.list"
	rm -f "$tmp"/etc/apt/sources.list.d/*
	# A chroot shares the host's network and has no init: packages must
	# not start their services in it (dovecot would take port 110).
	printf '#!/bin/sh\nexit 101\n' >"$tmp/usr/sbin/policy-rc.d"
	chmod 755 "$tmp/usr/sbin/policy-rc.d"
	chroot "$tmp" apt-get update || return 1
	chroot "$tmp" apt-get clean
	tar -C "$tmp" --numeric-owner -czf "$BASE.tmp" . &&
		mv "$BASE.tmp" "$BASE" || return 1
	# Older bases are dead weight once a new one exists.
	find "$CACHE" -name "debian-$SUITE-minbase-*.tar.gz" ! -path "$BASE" \
		-delete
	unmount_root "$tmp"
	rm -rf --one-file-system "$tmp"
}

new_root() { # new_root VAR: a fresh copy of the base, mounted
	local r
	r=$(mktemp -d "$WORK/postd-fresh-root.XXXXXX") || return 1
	roots+=("$r")
	tar -C "$r" --numeric-owner -xzf "$BASE" || return 1
	# It becomes "/": every user (dovecot's, getmail's "nobody", postd)
	# must reach through it, whatever mode the tarball gave it.
	chmod 755 "$r"
	mount -t proc proc "$r/proc" &&
		mount --rbind /sys "$r/sys" && mount --make-rslave "$r/sys" &&
		mount --rbind /dev "$r/dev" && mount --make-rslave "$r/dev" ||
		return 1
	# Downloaded packages are kept between runs (copied, not shared: two
	# roots must not wait on one apt lock), so a rerun fetches less.
	mkdir -p "$CACHE/archives"
	find "$CACHE/archives" -maxdepth 1 -name '*.deb' \
		-exec cp -l -t "$r/var/cache/apt/archives/" {} + 2>/dev/null ||
		find "$CACHE/archives" -maxdepth 1 -name '*.deb' \
			-exec cp -t "$r/var/cache/apt/archives/" {} +
	cp /etc/resolv.conf "$r/etc/resolv.conf"
	printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n' \
		>"$r/etc/hosts"
	printf -v "$1" '%s' "$r"
}

copy_source() { # copy_source ROOT DIR: the checkout as git sees it
	mkdir -p "$1$2"
	if git -C "$SRC" rev-parse --git-dir >/dev/null 2>&1; then
		# Tracked and new files, not what .gitignore names (build
		# folders, postd-data); a file deleted but not committed is
		# skipped.
		(cd "$SRC" && git ls-files -z --cached --others --exclude-standard |
			while IFS= read -r -d '' f; do
				[ -e "$f" ] && printf '%s\0' "$f"
			done | tar --null -T - -cf -) | tar -C "$1$2" -xf -
	else
		tar -C "$SRC" --exclude='./build*' --exclude=./postd-data \
			--exclude=./debian/.debhelper -cf - . | tar -C "$1$2" -xf -
	fi
}

ports_free() { # ports_free PORT...: nothing on the host listens there
	local p busy=""
	for p in "$@"; do
		if ss -Hltn "sport = :$p" 2>/dev/null | grep -q .; then
			busy="$busy $p"
		fi
	done
	[ -z "$busy" ] && return 0
	echo "ports already in use on this machine:$busy"
	return 1
}

# --- part 1: the README's quick start -----------------------------------

wait_first_start() { # wait_first_start LOG PID: the demo user line
	local i
	for ((i = 0; i < RUN_SH_TIMEOUT; i++)); do
		if grep -q '^postd: first start: demo user: ' "$1"; then
			return 0
		fi
		if ! kill -0 "$2" 2>/dev/null; then
			echo "./run.sh exited before postd printed the demo user"
			return 1
		fi
		sleep 1
	done
	echo "no demo user line after ${RUN_SH_TIMEOUT}s"
	return 1
}

# One message in over SMTP and back over POP3S, both with curl inside ROOT.
smtp_pop3s_roundtrip() { # ROOT SMTP_URL POP3S_URL ADDRESS PASSWORD
	local root=$1 smtp=$2 pop3s=$3 addr=$4 pass=$5 token n got
	token="fresh-$(date +%s)-$$"
	printf 'From: someone@example.net\r\nTo: %s\r\nSubject: %s\r\n\r\nfirst message over SMTP\r\n%s\r\n' \
		"$addr" "$token" "$token" >"$root/tmp/hello.eml"
	chroot "$root" curl -sS --max-time 30 "$smtp" \
		--mail-from someone@example.net --mail-rcpt "$addr" \
		-T /tmp/hello.eml || { echo "curl SMTP to $smtp failed"; return 1; }
	for n in $(chroot "$root" curl -sS -k --max-time 30 "$pop3s/" \
		-u "$addr:$pass" | tr -d '\r' | awk '{print $1}'); do
		got=$(chroot "$root" curl -sS -k --max-time 30 "$pop3s/$n" \
			-u "$addr:$pass" | tr -d '\r')
		case $got in *"Subject: $token"*) ;; *) continue ;; esac
		# What was sent must come back unchanged after the trace
		# headers postd puts on top.
		if [ "$(echo "$got" | tail -n 5)" = \
			"$(tr -d '\r' <"$root/tmp/hello.eml" | tail -n 5)" ]; then
			echo "message $n came back unchanged over POP3S"
			return 0
		fi
		echo "message $n differs from what was sent:"
		echo "$got"
		return 1
	done
	echo "no message with Subject $token in the POP3S listing of $addr"
	return 1
}

stop_pid() { # stop_pid PID: SIGTERM, then wait up to 30 s
	local i
	kill -TERM "$1" 2>/dev/null || return 0
	for ((i = 0; i < 30; i++)); do
		kill -0 "$1" 2>/dev/null || { wait "$1" 2>/dev/null; return 0; }
		sleep 1
	done
	echo "pid $1 did not stop on SIGTERM"
	kill -KILL "$1" 2>/dev/null
	return 1
}

quick_start() {
	local root=$1 log="$LOGDIR/run.sh.log" pid line addr pass
	ports_free 2110 2995 2525 2587 2465 2080 >"$LOGDIR/ports.log" ||
		{ fail ports "$(cat "$LOGDIR/ports.log")"; return 1; }
	say "step run.sh (bare root: installs, builds, starts postd) ..."
	local t
	t=$(date +%s)
	chroot "$root" /root/postd/run.sh >"$log" 2>&1 &
	pid=$!
	bg_pids+=("$pid")
	if ! wait_first_start "$log" "$pid" >"$LOGDIR/wait.log" 2>&1; then
		fail run.sh "$(cat "$LOGDIR/wait.log")" "$log"
		stop_pid "$pid" >/dev/null
		return 1
	fi
	pass "run.sh printed the demo password ($(($(date +%s) - t))s)"
	line=$(grep -m1 '^postd: first start: demo user: ' "$log")
	addr=$(echo "$line" | sed -n 's/.*demo user: \([^ ]*\) password: .*/\1/p')
	pass=$(echo "$line" | sed -n 's/.* password: \([^ ]*\).*/\1/p')
	step curl-install chroot "$root" sh -c \
		'DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends curl'
	step quickstart-smtp-pop3s smtp_pop3s_roundtrip "$root" \
		smtp://127.0.0.1:2525 pop3s://127.0.0.1:2995 "$addr" "$pass"
	step run.sh-stop stop_pid "$pid"
	[ -s "$log" ] && tail -n 5 "$log" >"$LOGDIR/run.sh.tail"
}

quick_tests() {
	local root=$1 log="$LOGDIR/test.sh-quick.log" last p f t
	t=$(date +%s)
	say "step test.sh --quick (bare root) ..."
	chroot "$root" /root/postd/test.sh --quick >"$log" 2>&1
	last=$(tail -n 1 "$log")
	p=$(echo "$last" | sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\1/p')
	f=$(echo "$last" | sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\2/p')
	if [ -z "$p" ]; then
		fail test.sh-quick "its last line is not 'N passed, N failed'" "$log"
		return 1
	fi
	passed=$((passed + p))
	failed=$((failed + f))
	if [ "$f" -ne 0 ]; then
		failures="$failures test.sh-quick"
		say "FAIL test.sh --quick: $last"
		grep -E '^(FAILED|ERROR) |^== .*[1-9][0-9]* failed' "$log" | head -40
		tail -n 40 "$log"
		return 1
	fi
	say "PASS test.sh --quick: $last ($(($(date +%s) - t))s)"
}

# --- part 2: the Debian package -----------------------------------------

build_deb() { # in ROOT: the package from a clean copy of the source
	local root=$1
	copy_source "$root" /root/pkg/postd || return 1
	chroot "$root" sh -ec '
		export DEBIAN_FRONTEND=noninteractive
		cd /root/pkg/postd
		apt-get install -y -q --no-install-recommends dpkg-dev
		apt-get build-dep -y -q ./
		dpkg-buildpackage -us -uc -b
		ls -l ../*.deb'
}

# Runs in the second root, inside a network namespace of its own so that
# ports 25/110/995 of the machine are never touched.
deb_service_check() {
	local root=$1
	cat >"$root/tmp/deb-check.sh" <<'EOF'
set -u
conf=/etc/postd/postd.conf
fail() { echo "deb check: $*"; exit 1; }
getent passwd postd || fail "the package did not create the postd user"
dpkg-query -W -f='${Conffiles}\n' postd | grep -q " $conf " ||
	fail "$conf is not a conffile"
[ -f /lib/systemd/system/postd.service ] || fail "no systemd unit"
[ -L /etc/systemd/system/multi-user.target.wants/postd.service ] ||
	fail "the package did not enable postd.service"
[ "$(stat -c %a:%U /etc/postd/users)" = 600:root ] ||
	fail "/etc/postd/users is not root's alone"
postd -t -c $conf || fail "postd -t rejects the packaged $conf"
echo 'a good password' | postctl -c $conf user add alice ||
	fail "postctl user add alice failed"
# What the unit's ExecStart runs, as root like systemd would.
postd -c $conf -f >/tmp/postd.log 2>&1 &
pid=$!
for i in $(seq 1 30); do
	grep -q 'listening\|ready' /tmp/postd.log 2>/dev/null && break
	curl -s -k --max-time 2 pop3s://127.0.0.1:995/ -u x:y >/dev/null 2>&1
	[ $? -ne 7 ] && break # 7: could not connect yet
	kill -0 $pid 2>/dev/null || { cat /tmp/postd.log; fail "postd exited"; }
	sleep 1
done
echo "$pid" >/tmp/postd.pid
EOF
	unshare -n bash -c "ip link set lo up && chroot '$root' sh /tmp/deb-check.sh &&
		. '$LOGDIR/deb-roundtrip.sh'"
}

deb_install() {
	local root=$1
	cp "$2" "$root/tmp/" || return 1
	chroot "$root" sh -ec "
		export DEBIAN_FRONTEND=noninteractive
		apt-get install -y -q ./tmp/$(basename "$2") curl"
}

# The service check and the round trip share one network namespace.
deb_check() {
	local root=$1 addr
	cat >"$LOGDIR/deb-roundtrip.sh" <<EOF
$(declare -f smtp_pop3s_roundtrip stop_pid)
addr=alice@\$(sed -n 's/^domains *= *\([^ #]*\).*/\1/p' '$root/etc/postd/postd.conf')
pid=\$(cat '$root/tmp/postd.pid')
smtp_pop3s_roundtrip '$root' smtp://127.0.0.1:25 pop3s://127.0.0.1:995 \
	"\$addr" 'a good password'
rc=\$?
# The workers and the auth process must run as the package's postd user.
postd_uid=\$(awk -F: '\$1 == "postd" {print \$3}' '$root/etc/passwd')
dropped=0
echo "postd's processes in the root (pid uid):"
for p in /proc/[0-9]*; do
	case \$(readlink \$p/root 2>/dev/null) in '$root'|'$root'/*) ;; *) continue ;; esac
	uid=\$(awk '/^Uid:/ {print \$2}' \$p/status 2>/dev/null) || continue
	echo "  \${p#/proc/} \$uid"
	[ "\$uid" = "\$postd_uid" ] && dropped=\$((dropped + 1))
done
if [ "\$dropped" -lt 2 ]; then
	echo "fewer than two processes run as postd (uid \$postd_uid)"
	rc=1
fi
stop_pid \$pid || rc=1
echo "postd's log:"; cat '$root/tmp/postd.log'
[ \$rc -eq 0 ]
EOF
	deb_service_check "$root"
}

# The sandbox of the unit the package installed, as systemd rates it
# (0 is best, 10 worst); above SECURITY_THRESHOLD fails.
unit_security() {
	systemd-analyze security --offline=true --no-pager \
		--threshold="$SECURITY_THRESHOLD" \
		"$1/lib/systemd/system/postd.service"
}

# --- main ---------------------------------------------------------------

# All of it is read before any of it runs (main and the exit after it are
# one line): editing this file while it runs cannot change what runs.
main() {

	if [ "$(id -u)" -ne 0 ]; then
		echo "fresh: run as root (debootstrap, chroot, mounts)" >&2
		exit 1
	fi
	say "source $SRC; Debian sources:"
	echo "$SOURCES" | while read -r l; do echo "    $l"; done
	[ -n "$MIRROR" ] || { fail sources "no Debian $SUITE entry in /etc/apt"; exit 1; }
	for tool in debootstrap unshare ss ip git systemd-analyze; do
		command -v $tool >/dev/null || { fail host-tools "$tool is missing"; exit 1; }
	done

	if [ -f "$BASE" ]; then
		pass "base root cached: $BASE"
	else
		step debootstrap make_base || exit 1
	fi

	step root1 new_root ROOT1 || exit 1
	step copy-source copy_source "$ROOT1" /root/postd || exit 1
	quick_start "$ROOT1"
	quick_tests "$ROOT1"
	if step deb-build build_deb "$ROOT1"; then
		DEB=$(find "$ROOT1/root/pkg" -maxdepth 1 -name "postd_*.deb" | head -n 1)
		step root2 new_root ROOT2 || exit 1
		if step deb-install deb_install "$ROOT2" "$DEB"; then
			step deb-service deb_check "$ROOT2"
			if step unit-security unit_security "$ROOT2"; then
				say "$(grep -a 'Overall exposure' "$LOGDIR/unit-security.log")"
			fi
		fi
	fi
}

main "$@"; exit # one line: bash has read it all before main runs
