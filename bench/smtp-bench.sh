#!/bin/bash
# bench/smtp-bench.sh: postd and Postfix receiving SMTP side by side, driven
# by Postfix's own smtp-source, interleaved in one run. See bench/SMTP.md.
#
#   bench/smtp-bench.sh [--quick] [--rounds N] [--only postd|postfix]
#                       [--sizes 2048,102400] [--sessions 1,10,50]
#                       [--reconnect] [--keep]
#
# --quick: fewer messages per run. --reconnect: one connection per message
# (default: smtp-source -d, each session sends its messages over one
# connection). --keep: keep the work directory (logs, Maildirs).
# Needs root (apt-get, a private Postfix instance, postd dropping to nobody).
# Every connection goes to 127.0.0.1. Both servers are stopped when it exits,
# however it exits.
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

POSTD_BUILD=${POSTD_BUILD:-$(cd "$(dirname "$0")/.." && pwd)/build}
POSTD_BIN=$POSTD_BUILD/src/daemon/postd
POSTCTL_BIN=$POSTD_BUILD/src/cli/postctl
PD_PORT=${PD_PORT:-22526}
PF_PORT=${PF_PORT:-22525}
DOMAIN=bench.test
# Every run delivers to a Maildir of its own (recipient rK@bench.test for
# run K), and no mail is deleted until the end: on ext4, removing thousands
# of files just before a run makes the next inode allocations scan past the
# freed inodes (recently_deleted()), which would measure the bench, not the
# servers.
RCPT_PREFIX=r
SENDER=sender@example.org
RUN_TIMEOUT=${RUN_TIMEOUT:-180}	# seconds, per run, until all are delivered

QUICK=0
ROUNDS=2
ONLY=""
SIZES="2048,102400"
SESSIONS="1,10,50"
RECONNECT=0
KEEP=0
while [ $# -gt 0 ]; do
	case "$1" in
	--quick) QUICK=1 ;;
	--rounds) ROUNDS=$2; shift ;;
	--only) ONLY=$2; shift ;;
	--sizes) SIZES=$2; shift ;;
	--sessions) SESSIONS=$2; shift ;;
	--reconnect) RECONNECT=1 ;;
	--keep) KEEP=1 ;;
	*) bench_help_or_refuse "$1" 14 ;;
	esac
	shift
done
bench_check_rounds "$ROUNDS"
case "$ONLY" in
'' | postd | postfix) ;;
*) echo "bad --only" >&2; exit 2 ;;
esac
SIZES=${SIZES//,/ }
SESSIONS=${SESSIONS//,/ }
for v in $SIZES $SESSIONS; do
	case "$v" in *[!0-9]* | 0) echo "bad number: $v" >&2; exit 2 ;; esac
done

# Messages per run: each run should take a few seconds for the slower
# server; large messages get fewer so the disk is not the only story.
msg_count() { # size sessions
	local n
	if [ "$2" -le 1 ]; then n=2000; else n=10000; fi
	[ "$1" -gt 16384 ] && n=$((n / 2))
	[ "$QUICK" = 1 ] && n=$((n / 5))
	echo "$n"
}

[ "$(id -u)" = 0 ] || die "run me as root"

# ---- packages --------------------------------------------------------------

SMTP_SOURCE=/usr/sbin/smtp-source
need_pkgs=""
if [ "$ONLY" != postd ] || [ ! -x "$SMTP_SOURCE" ]; then
	{ [ -x "$SMTP_SOURCE" ] && [ -x /usr/sbin/postfix ]; } ||
		need_pkgs="$need_pkgs postfix"
fi
command -v python3 >/dev/null || need_pkgs="$need_pkgs python3"
# shellcheck disable=SC2086
install_pkgs $need_pkgs
[ -x "$SMTP_SOURCE" ] || die "no $SMTP_SOURCE after installing postfix"
PY=$(command -v python3)

# ---- work directory --------------------------------------------------------

WORK=$(mktemp -d "${TMPDIR:-/tmp}/smtp-bench.XXXXXX")
chmod 755 "$WORK"	# postfix and nobody must reach their parts
LOGS=$WORK/logs
PF=$WORK/postfix	# etc/, queue/, data/
PF_MAIL=$WORK/postfix-mail	# virtual_mailbox_base
PD=$WORK/postd	# postd.conf, data/
mkdir -p "$LOGS" "$PF/etc" "$PF/queue" "$PF/data" "$PF_MAIL" "$PD"
MAIL_UID=$(id -u nobody)
MAIL_GID=$(id -g nobody)

POSTD_PID=""
PF_STARTED=0
FAILED=0

cleanup() {
	set +e
	stop_postd
	stop_postfix
	if [ "$KEEP" = 1 ] || [ "$FAILED" != 0 ]; then
		log "work dir kept: $WORK (logs in $LOGS)"
		[ "$KEEP" = 1 ] || rm -rf "$PF_MAIL" "$PD/data/mail" "$PF/queue"
	else
		rm -rf "$WORK"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- helpers in Python: timing, disk probe (probes.py: CPU, readiness) ------

cat >"$WORK/helper.py" <<'PYEOF'
import os, subprocess, sys, threading, time

from probes import busy, cpu_times, ready, tree_cpu

STALL = 30


def count(d):
    try:
        with os.scandir(d) as it:
            return sum(1 for e in it if not e.name.startswith("."))
    except FileNotFoundError:
        return 0


def run(newdir, total, timeout, errfile, server_pid, *cmd):
    """Start smtp-source; time its exit (the last 250 and QUIT) and the
    moment NEWDIR holds TOTAL messages. Prints: rc t250 tmaildir count
    cpu% (all CPUs busy during the run, any process, neighbours included)
    server_cpu_s (the server's process tree) client_cpu_s (smtp-source)."""
    total, timeout = int(total), float(timeout)
    done = {}
    cpu0, srv0 = cpu_times(), tree_cpu(server_pid)
    with open(errfile, "ab") as err:
        t0 = time.monotonic()
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=err)

        def waiter():
            _, status, ru = os.wait4(p.pid, 0)
            done["cli"] = ru.ru_utime + ru.ru_stime
            done["rc"] = os.waitstatus_to_exitcode(status)
            done["t"] = time.monotonic() - t0

        th = threading.Thread(target=waiter, daemon=True)
        th.start()
        tmd, n, last_n, last_change = None, 0, -1, 0.0
        while True:
            n = count(newdir)
            now = time.monotonic() - t0
            if n != last_n:
                last_n, last_change = n, now
            if tmd is None and n >= total:
                tmd = now
            if "t" in done and tmd is not None:
                break
            # smtp-source failed: what it got through is all there will be.
            if "t" in done and done["rc"] != 0 and now > done["t"] + 5:
                break
            # Delivery stalled for STALL seconds after the last 250.
            if "t" in done and now > max(done["t"], last_change) + STALL:
                break
            if now > timeout:
                break
            time.sleep(0.02)
        if "t" not in done:
            p.kill()
            th.join()
            done["rc"], done["t"] = -9, None
    busy, all_ = [b - a for a, b in zip(cpu0, cpu_times())]
    srv = tree_cpu(server_pid) - srv0
    fmt = lambda v: "-" if v is None else "%.3f" % v
    print(done["rc"], fmt(done["t"]), fmt(tmd), n,
          "%.0f" % (100.0 * busy / all_ if all_ else 0),
          "%.2f" % srv, "%.2f" % done.get("cli", 0))
    return 0


def probe(d, secs):
    """Durable commit rates of the disk under D."""
    secs = float(secs)
    f = os.path.join(d, "probe")
    fd = os.open(f, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    n, t0 = 0, time.monotonic()
    while time.monotonic() - t0 < secs:
        os.write(fd, b"x" * 512)
        os.fsync(fd)
        n += 1
    a = n / (time.monotonic() - t0)
    os.close(fd)
    os.unlink(f)
    # What a Maildir delivery needs: new file, fsync, rename, fsync dir.
    tmp, new = os.path.join(d, "tmp"), os.path.join(d, "new")
    os.makedirs(tmp, exist_ok=True)
    os.makedirs(new, exist_ok=True)
    dfd = os.open(new, os.O_RDONLY | os.O_DIRECTORY)
    data = b"y" * 2048
    n, t0 = 0, time.monotonic()
    while time.monotonic() - t0 < secs:
        src = os.path.join(tmp, str(n))
        fd = os.open(src, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, data)
        os.fsync(fd)
        os.close(fd)
        os.rename(src, os.path.join(new, str(n)))
        os.fsync(dfd)
        n += 1
    b = n / (time.monotonic() - t0)
    os.close(dfd)
    print("%.0f %.0f" % (a, b))
    return 0


sys.exit({"ready": ready, "run": run, "probe": probe, "busy": busy,
          "count": lambda d: print(count(d)) or 0}[sys.argv[1]](*sys.argv[2:]))
PYEOF
bench_helper_probes
helper() { "$PY" "$WORK/helper.py" "$@"; }

# ---- Postfix ---------------------------------------------------------------

# A private instance: own config_directory, queue, data directory and log,
# listening on 127.0.0.1:PF_PORT only, delivering bench.test to Maildirs
# with virtual(8). Defaults otherwise (in particular: cleanup fsyncs the
# queue file before smtpd answers 250; in_flow_delay = 1s; virtual
# concurrency 20 per destination).
setup_postfix() {
	local etc=$PF/etc
	cat >"$etc/main.cf" <<EOF
# generated by bench/smtp-bench.sh
compatibility_level = 3.6
queue_directory = $PF/queue
data_directory = $PF/data
mail_owner = postfix
setgid_group = postdrop
maillog_file = $LOGS/postfix.log
maillog_file_prefixes = $LOGS
myhostname = mta.$DOMAIN
mydomain = $DOMAIN
myorigin = \$myhostname
# the bench domain is a virtual mailbox domain, so not in mydestination
mydestination = localhost
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
alias_maps =
alias_database =
biff = no
smtpd_banner = \$myhostname ESMTP
virtual_mailbox_domains = $DOMAIN
virtual_mailbox_base = $PF_MAIL
virtual_mailbox_maps = texthash:$etc/vmailbox
virtual_uid_maps = static:$MAIL_UID
virtual_gid_maps = static:$MAIL_GID
message_size_limit = 52428800
virtual_mailbox_limit = 0
EOF
	# trailing slash: Maildir
	local k
	for k in $(seq "$TOTAL_RUNS"); do
		echo "$RCPT_PREFIX$k@$DOMAIN $DOMAIN/$RCPT_PREFIX$k/"
	done >"$etc/vmailbox"
	postfix_master_cf bench/smtp-bench.sh >"$etc/master.cf"
	chown postfix "$PF/data"
	chown "$MAIL_UID:$MAIL_GID" "$PF_MAIL"
	postfix -c "$etc" check >>"$LOGS/postfix.setup" 2>&1 ||
		die "postfix check failed: $(tail -5 "$LOGS/postfix.setup")"
}

# Messages Postfix still holds (none once everything is delivered).
postfix_queued() {
	find "$PF/queue/incoming" "$PF/queue/active" "$PF/queue/deferred" \
		"$PF/queue/maildrop" -type f 2>/dev/null | wc -l
}

# ---- postd -----------------------------------------------------------------

setup_postd() {
	if [ ! -x "$POSTD_BIN" ] || [ ! -x "$POSTCTL_BIN" ]; then
		die "no postd at $POSTD_BIN (set POSTD_BUILD, or --only postfix)"
	fi
	cat >"$PD/postd.conf" <<EOF
# generated by bench/smtp-bench.sh
hostname = mx.$DOMAIN
domains = $DOMAIN
auth_default_domain = $DOMAIN
data_dir = $PD/data
users_file = $PD/data/users
user = nobody
listen.smtp = 127.0.0.1:$PD_PORT
# one worker per core
workers = 0
max_connections = 20000
max_connections_per_peer = 20000
max_message_size = 52428800
log_level = info
EOF
	"$POSTD_BIN" -t -c "$PD/postd.conf" >"$LOGS/postd.check" 2>&1 ||
		die "postd -t rejects the config: $(cat "$LOGS/postd.check")"
	mkdir -p "$PD/data"
	local k
	for k in $(seq "$TOTAL_RUNS"); do
		echo "bench-password-$k" |
			"$POSTCTL_BIN" -c "$PD/postd.conf" user add \
				"$RCPT_PREFIX$k@$DOMAIN" >>"$LOGS/postd.setup" 2>&1 ||
			die "postctl user add failed: $(tail -3 "$LOGS/postd.setup")"
	done
}

start_postd() {
	port_free "$PD_PORT" || die "port $PD_PORT is in use"
	"$POSTD_BIN" -f -c "$PD/postd.conf" >>"$LOGS/postd.log" 2>&1 &
	POSTD_PID=$!
	helper ready "$PD_PORT" 20 ||
		die "postd does not answer EHLO on $PD_PORT: $(tail -5 "$LOGS/postd.log")"
	# postd creates data_dir/mail on start; the Maildir may come with the
	# first delivery, which the bench does not need to wait for.
}

stop_postd() {
	[ -n "$POSTD_PID" ] || return 0
	local kids
	kids=$(pgrep -P "$POSTD_PID" | tr '\n' ' ') || true
	kill "$POSTD_PID" 2>/dev/null || true
	for _ in $(seq 50); do
		postd_alive || break
		sleep 0.1
	done
	if postd_alive; then
		log "postd $POSTD_PID ignores SIGTERM: SIGKILL to it and $kids"
		# shellcheck disable=SC2086
		kill -KILL "$POSTD_PID" $kids 2>/dev/null || true
	fi
	wait "$POSTD_PID" 2>/dev/null || true
	POSTD_PID=""
}


# ---- one run ---------------------------------------------------------------

maildir_of() { # server run-number
	if [ "$1" = postd ]; then
		echo "$PD/data/mail/$DOMAIN/$RCPT_PREFIX$2"
	else
		echo "$PF_MAIL/$DOMAIN/$RCPT_PREFIX$2"
	fi
}
port_of() { [ "$1" = postd ] && echo "$PD_PORT" || echo "$PF_PORT"; }
server_pid() {
	if [ "$1" = postd ]; then
		echo "$POSTD_PID"
	else
		tr -d ' ' <"$PF/queue/pid/master.pid"
	fi
}

# Wait until Postfix has nothing left in its queue (from a failed run).
postfix_drain() {
	for _ in $(seq 100); do
		[ "$(postfix_queued)" = 0 ] && return 0
		sleep 0.1
	done
	log "Postfix queue not empty after a run: deleting $(postfix_queued)"
	postsuper -c "$PF/etc" -d ALL >/dev/null 2>&1 || true
}

# run_one SERVER SIZE SESSIONS COUNT ROUND RUN-NUMBER -> appends to $RESULTS:
# server size sessions count round rc t250 tmaildir delivered cpu%
# server_cpu_s client_cpu_s
run_one() {
	local srv=$1 size=$2 sess=$3 n=$4 round=$5 k=$6 out
	local -a args=(-s "$sess" -m "$n" -l "$size" -f "$SENDER"
		-t "$RCPT_PREFIX$k@$DOMAIN" -M "client.$DOMAIN")
	[ "$RECONNECT" = 1 ] || args+=(-d)
	[ "$srv" = postfix ] && postfix_drain
	sync
	echo "== $srv size=$size sessions=$sess messages=$n round=$round" \
		>>"$LOGS/smtp-source.err"
	out=$(helper run "$(maildir_of "$srv" "$k")/new" "$n" "$RUN_TIMEOUT" \
		"$LOGS/smtp-source.err" "$(server_pid "$srv")" \
		"$SMTP_SOURCE" "${args[@]}" \
		"127.0.0.1:$(port_of "$srv")")
	echo "$srv $size $sess $n $round $out" >>"$RESULTS"
	local rc t250 tmd got busy scpu ccpu
	read -r rc t250 tmd got busy scpu ccpu <<<"$out"
	log "$srv ${size}B x$sess #$round: $n messages, smtp-source rc=$rc," \
		"last 250 at ${t250}s, all in Maildir at ${tmd}s ($got there)," \
		"CPUs $busy% busy, server ${scpu}s CPU, smtp-source ${ccpu}s CPU"
	if [ "$rc" != 0 ] || [ "$got" != "$n" ]; then
		FAILED=1
	fi
	if [ "$srv" = postd ] && ! postd_alive; then
		FAILED=1
		log "postd died during this run: restarting it"
		wait "$POSTD_PID" 2>/dev/null || true
		POSTD_PID=""
		start_postd
	fi
}

# ---- main ------------------------------------------------------------------

SERVERS="postd postfix"
[ -n "$ONLY" ] && SERVERS=$ONLY

machine_info | tee "$LOGS/machine.txt"
mkdir -p "$WORK/probe"
read -r FSYNC_APPEND FSYNC_MAILDIR < <(helper probe "$WORK/probe" 2)
rm -rf "$WORK/probe"
echo "disk: $FSYNC_APPEND append+fsync/s, $FSYNC_MAILDIR Maildir" \
	"commits/s (2 KiB file: write, fsync, rename, fsync dir), one at a time" |
	tee -a "$LOGS/machine.txt"
neighbours_info | tee -a "$LOGS/machine.txt"

TOTAL_RUNS=$(($(wc -w <<<"$SIZES") * $(wc -w <<<"$SESSIONS") * ROUNDS * 2))
case " $SERVERS " in *" postfix "*) setup_postfix; start_postfix ;; esac
case " $SERVERS " in *" postd "*) setup_postd; start_postd ;; esac
for s in $SERVERS; do
	log "$s is up on 127.0.0.1:$(port_of "$s")"
done

RESULTS=$WORK/results.txt
: >"$RESULTS"
k=0
for size in $SIZES; do
	for sess in $SESSIONS; do
		n=$(msg_count "$size" "$sess")
		for round in $(seq "$ROUNDS"); do
			for srv in $SERVERS; do
				k=$((k + 1))
				run_one "$srv" "$size" "$sess" "$n" "$round" "$k"
			done
		done
	done
done

# ---- report ----------------------------------------------------------------

report() {
	awk -v servers="$SERVERS" '
	function rate(n, t) { return (t == "-" || t + 0 <= 0) ? "-" : n / t }
	function median(list,   a, k, i, j, x) {
		k = split(list, a, " ")
		if (k == 0) return "-"
		for (i = 2; i <= k; i++) {	# insertion sort, k is tiny
			x = a[i] + 0
			for (j = i - 1; j >= 1 && a[j] + 0 > x; j--) a[j + 1] = a[j]
			a[j + 1] = x
		}
		return k % 2 ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
	}
	function fmt(v) { return v == "-" ? "-" : sprintf("%.0f", v) }
	function fmt2(v) { return v == "-" ? "-" : sprintf("%.2f", v) }
	function ratio(a, b) {
		return (a == "-" || b == "-" || b + 0 == 0) ? "-" : sprintf("%.1fx", a / b)
	}
	{
		key = $2 " " $3
		if (!(key in seen)) { seen[key] = 1; keys[++nk] = key }
		ok = ($6 == 0 && $9 == $4)
		r250 = ok ? rate($4, $7) : "-"
		rmd = ok ? rate($4, $8) : "-"
		if (r250 != "-") l250[$1, key] = l250[$1, key] " " r250
		if (rmd != "-") lmd[$1, key] = lmd[$1, key] " " rmd
		raw[$1, key] = raw[$1, key] sprintf(" %s/%s", fmt(r250), fmt(rmd))
		if (ok) lcpu[$1, key] = lcpu[$1, key] " " 1000 * $11 / $4
		if (ok) lcli[$1, key] = lcli[$1, key] " " 1000 * $12 / $4
		if (ok) lbusy[$1, key] = lbusy[$1, key] " " $10
		if (!ok) fails[$1, key]++
	}
	END {
		printf "| size | sessions | postd msg/s (250) | postd msg/s (in Maildir) |"
		printf " Postfix msg/s (250) | Postfix msg/s (in Maildir) |"
		printf " ratio (250) | ratio (in Maildir) |\n"
		printf "|---|---|---|---|---|---|---|---|\n"
		for (i = 1; i <= nk; i++) {
			k = keys[i]; split(k, p, " ")
			sz = p[1] % 1024 ? p[1] " B" : p[1] / 1024 " KiB"
			a = median(l250["postd", k]); b = median(lmd["postd", k])
			c = median(l250["postfix", k]); d = median(lmd["postfix", k])
			printf "| %s | %s | %s | %s | %s | %s | %s | %s |\n", sz, p[2],
				fmt(a), fmt(b), fmt(c), fmt(d), ratio(a, c), ratio(b, d)
		}
		printf "\nEach cell: median of the rounds. Ratios: postd / Postfix.\n"
		printf "\nCPU time per message, median (server: its whole process tree;"
		printf " client: smtp-source; busy: all CPUs during the run, anyone):\n\n"
		printf "| size | sessions | postd ms/msg | Postfix ms/msg |"
		printf " smtp-source ms/msg (postd / Postfix) | CPUs busy (postd / Postfix) |\n"
		printf "|---|---|---|---|---|---|\n"
		for (i = 1; i <= nk; i++) {
			k = keys[i]; split(k, p, " ")
			sz = p[1] % 1024 ? p[1] " B" : p[1] / 1024 " KiB"
			printf "| %s | %s | %s | %s | %s / %s | %s%% / %s%% |\n", sz, p[2],
				fmt2(median(lcpu["postd", k])),
				fmt2(median(lcpu["postfix", k])),
				fmt2(median(lcli["postd", k])),
				fmt2(median(lcli["postfix", k])),
				fmt(median(lbusy["postd", k])),
				fmt(median(lbusy["postfix", k]))
		}
		printf "\nRaw per round: msg/s until the last 250 / until all in the Maildir:\n"
		for (i = 1; i <= nk; i++) {
			k = keys[i]; split(k, p, " ")
			printf "  %6s B x %2s sessions:", p[1], p[2]
			n = split(servers, s, " ")
			for (j = 1; j <= n; j++) {
				printf "  %s%s", s[j], raw[s[j], k]
				if (fails[s[j], k]) printf " (%d failed)", fails[s[j], k]
			}
			printf "\n"
		}
	}' "$RESULTS"
}

echo
if [ "$RECONNECT" = 1 ]; then
	CONNS="one connection per message"
else
	CONNS="one connection per session, -d"
fi
echo "SMTP receiving, messages per second (smtp-source, 127.0.0.1," \
	"one recipient; $CONNS)"
cat "$LOGS/machine.txt"
echo
report | tee "$LOGS/table.md"

# ---- oddities --------------------------------------------------------------

# Stopped first, so that their shutdown is in the logs scanned below.
stop_postd
stop_postfix
echo
if grep -v '^== ' "$LOGS/smtp-source.err" | grep -q .; then
	echo "smtp-source said:"
	grep -v '^== ' "$LOGS/smtp-source.err" | sort | uniq -c | sort -rn | head -10
fi
if [ -f "$LOGS/postfix.log" ] &&
	grep -Eq 'warning|error|fatal|panic' "$LOGS/postfix.log"; then
	echo "Postfix log (warning|error|fatal|panic):"
	grep -E 'warning|error|fatal|panic' "$LOGS/postfix.log" |
		sed 's/^[A-Z][a-z][a-z] [ 0-9]* [0-9:]* [^ ]* //' | sort | uniq -c |
		sort -rn | head -10
fi
if [ -f "$LOGS/postd.log" ] &&
	grep -Eiq 'error|fatal|crash|abort|refused|signal' "$LOGS/postd.log"; then
	echo "postd log (error|fatal|crash|abort|refused|signal):"
	grep -Ei 'error|fatal|crash|abort|refused|signal' "$LOGS/postd.log" |
		grep -v 'signal 15' |
		sed 's/^[0-9-]* [0-9:]* //; s/\[[0-9]*\]//' |
		sort | uniq -c | sort -rn | head -10
fi
if [ "$FAILED" != 0 ]; then
	log "some runs failed (see above and $LOGS)"
	exit 1
fi
