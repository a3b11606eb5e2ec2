#!/bin/bash
# tests/imaptest/run.sh -- IMAP conformance of postd, judged by Dovecot's imaptest.
#
# Usage:
#   tests/imaptest/run.sh build              compile imaptest into the cache (automatic)
#   tests/imaptest/run.sh scripted [TEST..]  imaptest's scripted tests, each in a run of
#                                            its own; prints every failure and a last line
#                                            "N passed, N failed, N skipped"
#   tests/imaptest/run.sh stress SECONDS     random commands from 10 clients with state
#                                            tracking; reports imaptest's errors
#
# Which server is tested:
#   default         postd from $POSTD_BUILD (default: build/ of this repository), started
#                   on private loopback ports with throw-away accounts, stopped at the end
#   SERVER=dovecot  a private Dovecot (dovecot-imapd; run as root), the reference
#   PASS=...        a server that is already running: HOST (127.0.0.1), PORT (143),
#                   IMAPTEST_USER or else USER, PASS, optional USER2 (same password)
# Scripted tests DELETE every mailbox named imaptest* of the account, the stress mode
# expunges its INBOX: point them only at throw-away accounts.
#
# Knobs: IMAPTEST_CACHE (${XDG_CACHE_HOME:-~/.cache}/postd-imaptest: build and results),
#   DOVECOT_LIBDIR (/usr/lib/dovecot), JOBS (2), TEST_TIMEOUT (60 s a test),
#   CLIENTS (10), IMAPTEST_ARGS (more imaptest key=value arguments), KEEP=1 (keep the
#   server's folder).
# Needs: dovecot-dev (imaptest links Dovecot's libraries), build-essential, autoconf,
#   automake, libtool, python3, openssl; dovecot-imapd for SERVER=dovecot.
# Exit status: 0 no failure, 1 failures or stress errors, 2 could not run.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$here/../.." && pwd)
rev=924f619
tarball=$here/imaptest-$rev.tar.gz
cache=${IMAPTEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/postd-imaptest}
libdir=${DOVECOT_LIBDIR:-/usr/lib/dovecot}
jobs=${JOBS:-2}
test_timeout=${TEST_TIMEOUT:-60}
clients=${CLIENTS:-10}
srcdir=$cache/imaptest-$rev
bin=$srcdir/src/imaptest
tests_dir=$srcdir/src/tests

say() { printf 'run.sh: %s\n' "$*" >&2; }
cannot() { say "$*"; exit 2; }

# ------------------------------------------------------------------ build
build_imaptest() {
	[ -x "$bin" ] && [ -f "$srcdir/.built" ] && return 0
	[ -f "$libdir/dovecot-config" ] ||
		cannot "$libdir/dovecot-config not found: install dovecot-dev"
	local tool
	for tool in autoreconf libtoolize make cc; do
		command -v "$tool" >/dev/null ||
			cannot "$tool not found: install build-essential autoconf automake libtool"
	done
	mkdir -p "$cache"
	local log=$cache/build-$rev.log
	say "building imaptest $rev in $srcdir (log $log)"
	rm -rf "$srcdir"
	mkdir -p "$srcdir"
	tar -xzf "$tarball" -C "$srcdir" --strip-components=1
	# configure asks git for a version; a tarball has no .git
	echo "0.0.0-$rev" >"$srcdir/version"
	adapt_to_dovecot_headers
	{
		(cd "$srcdir" && autoreconf -fi) &&
			(cd "$srcdir" && ./configure --with-dovecot="$libdir" \
				LDFLAGS="-Wl,-rpath,$libdir") &&
			(cd "$srcdir" && nice make -j"$jobs")
	} >"$log" 2>&1 || cannot "imaptest did not build, see $log"
	[ -x "$bin" ] || cannot "no $bin after the build, see $log"
	touch "$srcdir/.built"
}

# Debian's Dovecot 2.3.19.1 carries a backport that gave imap_parser_create() a fourth
# argument (struct imap_parser_params *; NULL keeps the old behaviour). imaptest $rev
# calls it with three.
adapt_to_dovecot_headers() {
	local inc
	inc=$(sed -n 's/^dovecot_pkgincludedir=//p' "$libdir/dovecot-config" | tr -d '"')
	inc=${inc:-/usr/include/dovecot}
	grep -q 'imap_parser_params' "$inc/imap-parser.h" 2>/dev/null || return 0
	grep -rl 'imap_parser_create(' "$srcdir/src" | while read -r f; do
		sed -i 's/imap_parser_create(\(.*\), (size_t)-1);/imap_parser_create(\1, (size_t)-1, NULL);/' "$f"
	done
}

# ------------------------------------------------------------------ servers
workdir=""
server_pid=""

free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_port() {
	local port=$1 _
	for _ in $(seq 1 150); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
		if [ -n "$server_pid" ] && ! kill -0 "$server_pid" 2>/dev/null; then
			return 1
		fi
		sleep 0.1
	done
	return 1
}

make_workdir() {
	workdir=$(mktemp -d "${TMPDIR:-/tmp}/postd-imaptest.XXXXXX")
	chmod 755 "$workdir"
	trap stop_server EXIT
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
		-days 2 -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
		-keyout "$workdir/key.pem" -out "$workdir/cert.pem" 2>/dev/null ||
		cannot "openssl could not make a test certificate"
	chmod 644 "$workdir/cert.pem"
}

stop_server() {
	if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
		kill -TERM "$server_pid"
		local _
		for _ in $(seq 1 100); do
			kill -0 "$server_pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -0 "$server_pid" 2>/dev/null && kill -KILL "$server_pid"
		wait "$server_pid" 2>/dev/null || true
	fi
	server_pid=""
	if [ -n "$workdir" ]; then
		if [ -n "${KEEP:-}" ]; then say "kept $workdir"; else rm -rf "$workdir"; fi
	fi
}

# postd with a throw-away domain and two accounts; IMAP without TLS on loopback
# (plaintext_auth = loopback allows LOGIN there)
start_postd() {
	local build=${POSTD_BUILD:-$top/build}
	local postd=$build/src/daemon/postd postctl=$build/src/cli/postctl
	if [ ! -x "$postd" ] || [ ! -x "$postctl" ]; then
		cannot "$postd or $postctl not built (set POSTD_BUILD)"
	fi
	make_workdir
	local run_as port imaps
	run_as=$(id -un)
	[ "$(id -u)" = 0 ] && run_as=nobody
	port=$(free_port)
	imaps=$(free_port)
	while [ "$imaps" = "$port" ]; do imaps=$(free_port); done
	mkdir -p "$workdir/data"
	[ "$(id -u)" = 0 ] && chown nobody "$workdir/data"
	cat >"$workdir/postd.conf" <<-EOF
		# written by tests/imaptest/run.sh
		hostname = localhost
		domains = imaptest.test
		auth_default_domain = imaptest.test
		data_dir = $workdir/data
		users_file = $workdir/users
		tls_cert = $workdir/cert.pem
		tls_key = $workdir/key.pem
		user = $run_as
		listen.imap = 127.0.0.1:$port
		listen.imaps = 127.0.0.1:$imaps
		auth_failure_delay = 0
		dns_servers = 127.0.0.1:9
	EOF
	LOGIN_USER=imaptest@imaptest.test
	USER2=imaptest2@imaptest.test
	PASS=imaptest-pass-$RANDOM$RANDOM
	local u
	for u in "$LOGIN_USER" "$USER2"; do
		printf '%s\n' "$PASS" | "$postctl" -c "$workdir/postd.conf" user add "$u" \
			>/dev/null || cannot "postctl user add $u failed"
	done
	"$postd" -f -c "$workdir/postd.conf" 2>"$workdir/postd.log" &
	server_pid=$!
	HOST=127.0.0.1
	PORT=$port
	wait_port "$PORT" || {
		tail -20 "$workdir/postd.log" >&2
		cannot "postd did not start listening on IMAP port $PORT"
	}
	say "postd ($postd) on 127.0.0.1:$PORT (log $workdir/postd.log)"
}

start_dovecot() {
	[ "$(id -u)" = 0 ] || cannot "SERVER=dovecot must run as root (Dovecot drops to nobody)"
	command -v dovecot >/dev/null || cannot "dovecot not found: install dovecot-imapd"
	make_workdir
	PORT=$(free_port)
	HOST=127.0.0.1
	LOGIN_USER=imaptest
	USER2=imaptest2
	PASS=imaptest-pass-$RANDOM$RANDOM
	mkdir -p "$workdir/run" "$workdir/mail"
	chown nobody "$workdir/mail"
	printf '%s:{PLAIN}%s\n' "$LOGIN_USER" "$PASS" "$USER2" "$PASS" >"$workdir/users"
	chmod 644 "$workdir/users"
	cat >"$workdir/dovecot.conf" <<-EOF
		# reference Dovecot for tests/imaptest/run.sh: stock settings, loopback only
		instance_name = postd-imaptest-$PORT
		protocols = imap
		listen = 127.0.0.1
		base_dir = $workdir/run
		state_dir = $workdir/run/state
		log_path = $workdir/dovecot.log
		ssl = no
		disable_plaintext_auth = no
		auth_mechanisms = plain login
		mail_location = maildir:~/Maildir
		first_valid_uid = 1
		passdb {
		  driver = passwd-file
		  args = $workdir/users
		}
		userdb {
		  driver = static
		  args = uid=nobody gid=nogroup home=$workdir/mail/%u
		}
		protocol imap {
		  mail_max_userip_connections = 100
		}
		service imap-login {
		  inet_listener imap {
		    port = $PORT
		  }
		  inet_listener imaps {
		    port = 0
		  }
		}
		service anvil {
		  chroot =
		}
	EOF
	dovecot -F -c "$workdir/dovecot.conf" 2>>"$workdir/dovecot.log" &
	server_pid=$!
	wait_port "$PORT" || {
		tail -20 "$workdir/dovecot.log" >&2
		cannot "dovecot did not start"
	}
	say "dovecot $(dovecot --version) on 127.0.0.1:$PORT"
}

choose_server() {
	if [ -n "${PASS:-}" ]; then
		HOST=${HOST:-127.0.0.1}
		PORT=${PORT:-143}
		LOGIN_USER=${IMAPTEST_USER:-${USER:-}}
		[ -n "$LOGIN_USER" ] || cannot "set IMAPTEST_USER (or USER) with PASS"
		USER2=${USER2:-}
		say "testing the running server $HOST:$PORT as $LOGIN_USER"
	elif [ "${SERVER:-postd}" = dovecot ]; then
		start_dovecot
	else
		start_postd
	fi
}

# the capabilities after LOGIN, one upper-case atom a line
server_capabilities() {
	HOST=$HOST PORT=$PORT U=$LOGIN_USER P=$PASS python3 - <<-'EOF'
		import imaplib, os
		c = imaplib.IMAP4(os.environ["HOST"], int(os.environ["PORT"]), timeout=20)
		c.login(os.environ["U"], os.environ["P"])
		typ, data = c.capability()
		for atom in data[0].decode().split():
		    print(atom.upper())
		c.logout()
	EOF
}

imaptest_args() {
	args=(host="$HOST" port="$PORT" user="$LOGIN_USER" pass="$PASS")
	[ -n "${USER2:-}" ] && args+=(user2="$USER2")
	local extra=()
	[ -n "${IMAPTEST_ARGS:-}" ] && read -r -a extra <<<"$IMAPTEST_ARGS"
	args+=("${extra[@]}")
}

# ------------------------------------------------------------------ scripted
# value of the header KEY (lower case) of a scripted test; the header ends at a blank line
test_field() {
	awk -v key="$2" '/^[ \t]*$/ { exit }
		{ i = index($0, ":"); if (i > 0 && tolower(substr($0, 1, i - 1)) == key) {
			v = substr($0, i + 1); sub(/^[ \t]+/, "", v); print v } }' "$1"
}

# one line: where the first failure of a test log is and what imaptest wanted
first_failure() {
	awk '/^\*\*\* Test / && !where { where = $0; sub(/^\*\*\* Test /, "", where); next }
		where && /^ - failed: / && !why { why = substr($0, 12); next }
		where && /^ - Command/ && !cmd { cmd = $0; sub(/^ - Command[^:]*: /, "", cmd); next }
		END { if (where) printf "%s: %s [%s]", where, why, cmd }' "$1" | cut -c1-400
}

run_scripted() {
	build_imaptest
	choose_server
	local out
	out=$cache/results/scripted-$(date -u +%Y%m%dT%H%M%SZ)
	mkdir -p "$out/log" "$out/dir"
	local caps
	caps=$(server_capabilities) || cannot "could not log in to $HOST:$PORT as $LOGIN_USER"
	printf '%s\n' "$caps" >"$out/capabilities"
	local names=() f
	if [ $# -gt 0 ]; then
		names=("$@")
	else
		for f in "$tests_dir"/*; do
			[ -f "$f" ] || continue # broken/ holds tests upstream does not run
			case ${f##*/} in *.mbox) continue ;; esac
			names+=("${f##*/}")
		done
	fi
	imaptest_args
	local passed=0 failed=0 skipped=0 name need atom missing rc summary report=$out/results
	: >"$report"
	for name in "${names[@]}"; do
		[ -f "$tests_dir/$name" ] || cannot "no scripted test $name in $tests_dir"
		# imaptest $rev skips a test whose capabilities are missing without counting it
		# as skipped, so decide here, by its rule: every listed atom must be offered
		need=$(test_field "$tests_dir/$name" capabilities)
		missing=""
		for atom in $need; do
			grep -qxF "${atom^^}" <<<"$caps" || missing+=" ${atom^^}"
		done
		if [ -n "$missing" ]; then
			echo "SKIP $name (not offered:$missing)" >>"$report"
			skipped=$((skipped + 1))
			continue
		fi
		if [ -n "$(test_field "$tests_dir/$name" 'user 2')" ] && [ -z "${USER2:-}" ]; then
			echo "SKIP $name (needs a second account: USER2)" >>"$report"
			skipped=$((skipped + 1))
			continue
		fi
		# test=DIR runs every test in DIR: give each its own DIR with its mailbox files
		rm -rf "${out:?}/dir/$name"
		mkdir -p "$out/dir/$name"
		cp "$tests_dir/$name" "$tests_dir/default.mbox" "$out/dir/$name/"
		[ -f "$tests_dir/$name.mbox" ] && cp "$tests_dir/$name.mbox" "$out/dir/$name/"
		rc=0
		(cd "$out/dir/$name" && timeout -k 5 "$test_timeout" "$bin" "${args[@]}" \
			test="$out/dir/$name") >"$out/log/$name" 2>&1 || rc=$?
		summary=$(grep -E '^[0-9]+ test groups: ' "$out/log/$name" | tail -1 || true)
		if [ -z "$summary" ]; then
			echo "FAIL $name (imaptest exit $rc without a summary: $(tail -1 "$out/log/$name" | cut -c1-200))" >>"$report"
			failed=$((failed + 1))
		elif ! grep -q ': 0 failed' <<<"$summary"; then
			echo "FAIL $name $(first_failure "$out/log/$name")" >>"$report"
			failed=$((failed + 1))
		elif ! grep -q ', 0 skipped' <<<"$summary"; then
			echo "SKIP $name (imaptest: capability missing after login)" >>"$report"
			skipped=$((skipped + 1))
		else
			echo "PASS $name" >>"$report"
			passed=$((passed + 1))
		fi
	done
	grep -E '^(FAIL|SKIP) ' "$report" || true
	echo "logs: $out/log/TEST; results: $report"
	echo "$passed passed, $failed failed, $skipped skipped" | tee -a "$report"
	[ "$failed" = 0 ]
}

# ------------------------------------------------------------------ stress
# An mbox of varied messages (plain, multipart with base64 and quoted-printable parts,
# long ones), each with a Message-ID of its own: imaptest's state tracking tells
# messages apart by it.
make_stress_mbox() {
	local mbox=$cache/stress-$rev.mbox
	[ -s "$mbox" ] || python3 - "$mbox" <<-'EOF'
		import base64, random, sys
		rnd = random.Random(42)
		words = ("post office mailbox letter parcel stamp counter morning evening "
		         "delivery address folder archive flag read unread").split()
		def text(n):
		    return "\n".join(" ".join(rnd.choice(words) for _ in range(rnd.randint(3, 12)))
		                     for _ in range(n)) + "\n"
		out = []
		for i in range(120):
		    head = ("From stress@imaptest.test Mon Jan  1 00:00:%02d 2024\n"
		            "From: Sender %d <sender%d@imaptest.test>\n"
		            "To: imaptest@imaptest.test\n"
		            "Subject: stress message %d %s\n"
		            "Date: Mon, 1 Jan 2024 00:%02d:%02d +0000\n"
		            "Message-ID: <stress-%d@imaptest.test>\n"
		            % (i % 60, i % 7, i % 7, i, rnd.choice(words), i // 60, i % 60, i))
		    kind = i % 3
		    if kind == 0:
		        body = head + "\n" + text(rnd.randint(1, 40))
		    elif kind == 1:
		        blob = base64.encodebytes(bytes(rnd.getrandbits(8) for _ in range(
		            rnd.randint(100, 3000)))).decode()
		        body = (head + "MIME-Version: 1.0\n"
		                'Content-Type: multipart/mixed; boundary="b%d"\n\n'
		                "--b%d\nContent-Type: text/plain; charset=utf-8\n"
		                "Content-Transfer-Encoding: quoted-printable\n\n%s=C3=A9t=C3=A9\n"
		                "--b%d\nContent-Type: application/octet-stream\n"
		                "Content-Transfer-Encoding: base64\n\n%s--b%d--\n"
		                % (i, i, text(3), i, blob, i))
		    else:
		        body = head + "\n" + text(rnd.randint(200, 600))
		    out.append(body.replace("\nFrom ", "\n>From "))
		with open(sys.argv[1], "w") as f:
		    f.write("\n".join(out))
	EOF
	echo "$mbox"
}

run_stress() {
	local secs=${1:-}
	[[ $secs =~ ^[1-9][0-9]*$ ]] || cannot "usage: $0 stress SECONDS"
	build_imaptest
	choose_server
	local out mbox
	out=$cache/results/stress-$(date -u +%Y%m%dT%H%M%SZ)
	mkdir -p "$out"
	mbox=$(make_stress_mbox)
	imaptest_args
	args+=(clients="$clients" secs="$secs" mbox="$mbox")
	say "stress: $clients clients, $secs s, state tracking, mbox $mbox"
	local rc=0
	(cd "$out" && timeout -k 5 $((secs + 120)) stdbuf -oL "$bin" "${args[@]}") \
		>"$out/imaptest.log" 2>&1 || rc=$?
	grep -q '^Totals:' "$out/imaptest.log" || {
		tail -20 "$out/imaptest.log"
		cannot "imaptest stopped before its totals (exit $rc), log $out/imaptest.log"
	}
	sed -n '/^Totals:/,$p' "$out/imaptest.log" | grep -vE '^(Error|Warning|Panic|Fatal): ' || true
	local errors warnings
	errors=$(grep -cE '^(Error|Panic|Fatal): ' "$out/imaptest.log" || true)
	warnings=$(grep -c '^Warning: ' "$out/imaptest.log" || true)
	if [ "$errors" != 0 ] || [ "$warnings" != 0 ]; then
		# grouped by kind: without the client's name, the IMAP line quoted after
		# ": * " kept only to its first FETCH item, numbers as N
		echo "the most frequent errors and warnings:"
		grep -E '^(Error|Warning|Panic|Fatal): ' "$out/imaptest.log" |
			sed -E 's/^([A-Za-z]+: )[^ ]+\[[0-9]+\]: /\1/; s/(: \* [0-9]+ [A-Z]+ \(?[^ ]+).*/\1 .../' |
			sed -E 's/[0-9]+/N/g' | cut -c1-160 | sort | uniq -c | sort -rn | head -15
	fi
	echo "log: $out/imaptest.log"
	echo "stress: $errors errors, $warnings warnings in $secs s with $clients clients"
	[ "$errors" = 0 ]
}

# ------------------------------------------------------------------ main
mode=${1:-}
[ $# -gt 0 ] && shift
case $mode in
build)
	build_imaptest
	echo "$bin"
	;;
scripted) run_scripted "$@" ;;
stress) run_stress "$@" ;;
*)
	sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
	exit 2
	;;
esac
