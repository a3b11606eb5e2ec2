#!/bin/bash
# bench/relay-bench.sh: postd's queue runner and Postfix (qmgr + smtp)
# relaying the same queued mail to one local smtp-sink, side by side,
# interleaved in one run. See bench/RELAY.md.
#
#   bench/relay-bench.sh [--quick] [--rounds N] [--only postd|postfix]
#                        [--messages N] [--postfix-release flush|reload]
#                        [--keep]
#
# Each run queues MESSAGES (10,000; --quick: 2,000) messages of 2 KiB,
# message i to r(i mod 100)@sink.test, while delivery is held, then releases
# the queue and times until Postfix's smtp-sink has received all of them.
# --postfix-release: how Postfix's held queue is let go (see RELAY.md):
# flush (default) = postqueue -f, reload = empty defer_transports, postfix
# reload, postqueue -f. --keep: keep the work directory (logs, sink output).
# Needs root (a private Postfix instance, smtp-sink and postd dropping to
# nobody). Every connection goes to 127.0.0.1. The servers and the sink are
# stopped when it exits, however it exits.
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

POSTD_BUILD=${POSTD_BUILD:-$(cd "$(dirname "$0")/.." && pwd)/build}
POSTD_BIN=$POSTD_BUILD/src/daemon/postd
POSTCTL_BIN=$POSTD_BUILD/src/cli/postctl
SINK_PORT=${SINK_PORT:-22530}	# smtp-sink, the one destination
PF_PORT=${PF_PORT:-22527}	# Postfix smtpd, only to fill its queue
PD_PORT=${PD_PORT:-22528}	# postd submission, only to fill its queue
CLOSED_PORT=${CLOSED_PORT:-22529}	# nothing listens: postd's held route
SINK_DOMAIN=sink.test
NRCPT=100	# recipients r0..r99@sink.test
MSG_SIZE=2048	# bytes per message as injected, headers included
INJECT_THREADS=8
# Both servers at 20 connections per destination: Postfix's default
# default_destination_concurrency_limit and postd's default
# max_connections_per_destination. Stated in both configs anyway.
CONCURRENCY=20
PD_USER=bench@postd.test
PD_PASS=bench-relay-password
RUN_TIMEOUT=${RUN_TIMEOUT:-600}	# seconds, per measured run
FILL_TIMEOUT=${FILL_TIMEOUT:-600}	# seconds, to queue and hold the mail

QUICK=0
ROUNDS=2
ONLY=""
MESSAGES=""
KEEP=0
PF_RELEASE=flush
while [ $# -gt 0 ]; do
	case "$1" in
	--quick) QUICK=1 ;;
	--rounds) ROUNDS=$2; shift ;;
	--only) ONLY=$2; shift ;;
	--messages) MESSAGES=$2; shift ;;
	--postfix-release) PF_RELEASE=$2; shift ;;
	--keep) KEEP=1 ;;
	*) bench_help_or_refuse "$1" 18 ;;
	esac
	shift
done
bench_check_rounds "$ROUNDS"
case "$ONLY" in
'' | postd | postfix) ;;
*) echo "bad --only" >&2; exit 2 ;;
esac
case "$PF_RELEASE" in
flush | reload) ;;
*) echo "bad --postfix-release" >&2; exit 2 ;;
esac
if [ -z "$MESSAGES" ]; then
	MESSAGES=10000
	[ "$QUICK" = 1 ] && MESSAGES=2000
fi
case "$MESSAGES" in '' | *[!0-9]* | 0) echo "bad --messages" >&2; exit 2 ;; esac

[ "$(id -u)" = 0 ] || die "run me as root"

# ---- packages --------------------------------------------------------------

SMTP_SINK=/usr/sbin/smtp-sink
need_pkgs=""
{ [ -x "$SMTP_SINK" ] && [ -x /usr/sbin/postfix ]; } ||
	need_pkgs="$need_pkgs postfix"
command -v python3 >/dev/null || need_pkgs="$need_pkgs python3"
# shellcheck disable=SC2086
install_pkgs $need_pkgs
[ -x "$SMTP_SINK" ] || die "no $SMTP_SINK after installing postfix"
PY=$(command -v python3)

# ---- work directory --------------------------------------------------------

WORK=$(mktemp -d "${TMPDIR:-/tmp}/relay-bench.XXXXXX")
chmod 755 "$WORK"	# postfix and nobody must reach their parts
LOGS=$WORK/logs
PF=$WORK/postfix	# etc/, queue/, data/
PD=$WORK/postd	# postd.conf, data/
mkdir -p "$LOGS" "$PF/etc" "$PF/queue" "$PF/data" "$PD"

POSTD_PID=""
PF_STARTED=0
SINK_PID=""
FAILED=0

cleanup() {
	set +e
	stop_sink
	stop_postd
	stop_postfix
	if [ "$KEEP" = 1 ] || [ "$FAILED" != 0 ]; then
		log "work dir kept: $WORK (logs in $LOGS)"
		[ "$KEEP" = 1 ] || rm -rf "$PF/queue" "$PD/data"
	else
		rm -rf "$WORK"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- helpers in Python: injection, the measurement (probes.py: CPU, RSS) ---

cat >"$WORK/helper.py" <<'PYEOF'
import os, re, smtplib, subprocess, sys, threading, time

from probes import busy, cpu_times, mem, ready, tree, tree_cpu

SAMPLE = 0.05	# seconds between memory samples
STALL = 60	# no progress at the sink for this long: give up


def message(i, sender, nrcpt, domain, size):
    rcpt = "r%d@%s" % (i % nrcpt, domain)
    head = ("From: <%s>\r\nTo: <%s>\r\nSubject: relay bench message %d\r\n"
            "Date: Mon, 1 Jan 2024 10:00:00 +0000\r\n"
            "Message-ID: <relay-bench-%d-%d@bench.test>\r\n\r\n" % (
                sender, rcpt, i, os.getpid(), i))
    body, line, n = [], 0, size - len(head)
    while n > 0:
        # lines of up to 76 characters + CRLF
        k = min(76, n - 2) if n > 2 else 0
        s = ("%d.%d " % (i, line) + "x" * 76)[:k] + "\r\n"
        if k == 0:
            s = "\r\n"
        body.append(s)
        n -= len(s)
        line += 1
    data = (head + "".join(body)).encode()
    return rcpt, data


def inject(port, total, threads, sender, user, password, domain, nrcpt,
           size):
    """Submit TOTAL messages over THREADS connections (AUTH PLAIN when
    USER is not "-"). Prints: sent failed seconds."""
    total, threads, nrcpt, size = int(total), int(threads), int(nrcpt), \
        int(size)
    lock = threading.Lock()
    state = {"next": 0, "sent": 0, "failed": 0, "err": []}

    def work():
        c = None
        while True:
            with lock:
                i = state["next"]
                if i >= total:
                    break
                state["next"] += 1
            rcpt, data = message(i, sender, nrcpt, domain, size)
            for attempt in range(3):
                try:
                    if c is None:
                        c = smtplib.SMTP("127.0.0.1", int(port),
                                         local_hostname="client.bench.test",
                                         timeout=60)
                        c.ehlo()
                        if user != "-":
                            c.login(user, password)
                    c.sendmail(sender, [rcpt], data)
                    with lock:
                        state["sent"] += 1
                    break
                except (OSError, smtplib.SMTPException) as e:
                    with lock:
                        state["err"].append("%s: %s" % (type(e).__name__, e))
                    try:
                        c.close()
                    except Exception:
                        pass
                    c = None
            else:
                with lock:
                    state["failed"] += 1
        if c is not None:
            try:
                c.quit()
            except (OSError, smtplib.SMTPException):
                pass

    t0 = time.monotonic()
    ts = [threading.Thread(target=work) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    for e in state["err"][:5]:
        print("inject: %s" % e, file=sys.stderr)
    print(state["sent"], state["failed"], "%.1f" % (time.monotonic() - t0))
    return 0


class Sink:
    """smtp-sink -c writes "sess=N quit=N mesg=N" + CR after each event;
    reads what is new and keeps the last complete counter."""

    def __init__(self, path):
        self.f = open(path, "rb")
        self.rest = b""
        self.mesg = 0

    def read(self):
        data = self.rest + self.f.read()
        i = data.rfind(b"\r")
        if i < 0:
            self.rest = data
            return self.mesg
        self.rest = data[i + 1:]
        m = re.findall(rb"mesg=(\d+)", data[:i])
        if m:
            self.mesg = int(m[-1])
        return self.mesg


def sink_count(path):
    print(Sink(path).read())
    return 0


def pd_held(queue_dir):
    """postd queue: entries (env/*) and how many of them have had at least
    one attempt on every recipient. Prints: entries attempted."""
    env = os.path.join(queue_dir, "env")
    n = done = 0
    try:
        names = os.listdir(env)
    except FileNotFoundError:
        names = []
    for name in names:
        try:
            with open(os.path.join(env, name)) as f:
                lines = f.read().split("\n")
        except OSError:
            continue
        n += 1
        rc = [l.split() for l in lines if l.startswith("rcpt ")]
        if rc and all(len(r) > 3 and r[3].isdigit() and int(r[3]) > 0
                      for r in rc):
            done += 1
    print(n, done)
    return 0


def measure(server, sink_out, total, timeout, pidfile, logfile, *cmd):
    """Release the queue and time until the sink has TOTAL messages.

    postfix: CMD is run to completion (it releases the queue of the running
    Postfix, whose master's pid is in PIDFILE). postd: CMD starts postd in
    the foreground; it is left running and its pid written to PIDFILE.
    The clock starts just before CMD.

    Samples every SAMPLE s: RSS and PSS of the delivery processes (postd:
    the postd-queue process, found in the log; Postfix: qmgr and every
    smtp process) and of the whole tree. Prints one line:
    delivered t_first t_last peak_deliv_rss peak_tree_rss peak_deliv_pss
    peak_tree_pss tree_cpu_s cpus_busy% samples server_pid
    (times in s from the release, memory in KiB)."""
    total, timeout = int(total), float(timeout)
    sink = Sink(sink_out)
    cpu0 = cpu_times()
    logf = open(logfile, "ab")
    if server == "postfix":
        with open(pidfile) as f:
            root = int(f.read().strip())
        srv0 = tree_cpu(root)
        t0 = time.monotonic()
        rc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=logf,
                            stderr=logf).returncode
        if rc != 0:
            print("release command failed: rc %d" % rc, file=sys.stderr)
    else:
        srv0 = 0.0
        # only what postd writes from now on (the log holds earlier runs)
        lf = open(logfile, "rb")
        lf.seek(0, os.SEEK_END)
        t0 = time.monotonic()
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logf,
                             stderr=logf)
        root = p.pid
        with open(pidfile, "w") as f:
            f.write("%d\n" % root)
        runner_re = re.compile(rb"postd-queue\[(\d+)\]")

    # per sample: {pid: (name, rss, pss)}
    samples = []
    t_first = t_last = None
    n, last_n, last_change = 0, -1, 0.0
    next_sample = 0.0

    def sample():
        s = {}
        for pid in tree(root):
            m = mem(pid)
            if m is not None:
                s[pid] = m
        samples.append(s)

    while True:
        now = time.monotonic() - t0
        n = sink.read()
        if n != last_n:
            last_n, last_change = n, now
        if n > 0 and t_first is None:
            t_first = now
        if n >= total:
            t_last = now
            break
        if now > timeout or now > last_change + STALL:
            break
        if server == "postd" and p.poll() is not None and now > 1:
            print("postd exited with %d" % p.returncode, file=sys.stderr)
            break
        if now >= next_sample:
            sample()
            next_sample = now + SAMPLE
        time.sleep(0.005)
    sample()
    srv = tree_cpu(root) - srv0
    busy_, all_ = [b - a for a, b in zip(cpu0, cpu_times())]

    if server == "postd":
        m = runner_re.search(lf.read())
        runner = int(m.group(1)) if m else None
        if runner is None:
            # not in the log: the last child postd started before the
            # first sample (the master forks auth, workers, then the runner)
            kids = sorted(k for s in samples for k in s if k != root)
            runner = kids[-1] if kids else -1
            print("runner pid not in the log; taking %d" % runner,
                  file=sys.stderr)
        deliv = lambda pid, name: pid == runner
    else:
        deliv = lambda pid, name: name in ("qmgr", "smtp")
    pk = [0, 0, 0, 0]
    for s in samples:
        d_rss = sum(v[1] for k, v in s.items() if deliv(k, v[0]))
        d_pss = sum(v[2] for k, v in s.items() if deliv(k, v[0]))
        t_rss = sum(v[1] for v in s.values())
        t_pss = sum(v[2] for v in s.values())
        pk = [max(a, b) for a, b in zip(pk, (d_rss, t_rss, d_pss, t_pss))]
    fmt = lambda v: "-" if v is None else "%.3f" % v
    print(n, fmt(t_first), fmt(t_last), pk[0], pk[1], pk[2], pk[3],
          "%.2f" % srv, "%.0f" % (100.0 * busy_ / all_ if all_ else 0),
          len(samples), root)
    return 0


sys.exit({"ready": ready, "busy": busy, "inject": inject,
          "sink_count": sink_count, "pd_held": pd_held,
          "measure": measure}[sys.argv[1]](*sys.argv[2:]))
PYEOF
bench_helper_probes
helper() { "$PY" "$WORK/helper.py" "$@"; }

# ---- the sink --------------------------------------------------------------

# One smtp-sink per run, on SINK_PORT, counting to its stdout. 256: the
# listen backlog. It accepts every message and recipient, PIPELINING on.
start_sink() { # run-number
	local out=$LOGS/sink.$1.out
	port_free "$SINK_PORT" || die "port $SINK_PORT is in use"
	: >"$out"
	"$SMTP_SINK" -c -u nobody "127.0.0.1:$SINK_PORT" 256 \
		>"$out" 2>>"$LOGS/sink.err" &
	SINK_PID=$!
	for _ in $(seq 100); do
		port_free "$SINK_PORT" || return 0
		sleep 0.05
	done
	die "smtp-sink does not listen on $SINK_PORT"
}

stop_sink() {
	[ -n "$SINK_PID" ] || return 0
	kill "$SINK_PID" 2>/dev/null || true
	wait "$SINK_PID" 2>/dev/null || true
	SINK_PID=""
}

# ---- Postfix ---------------------------------------------------------------

# A private instance: own config_directory, queue, data directory and log;
# smtpd on 127.0.0.1:PF_PORT (only to fill the queue); sink.test routed with
# transport_maps to smtp:[127.0.0.1]:SINK_PORT (no DNS). Defaults otherwise:
# qmgr (nqmgr), 20 connections per destination, connection cache on demand,
# smtp processes reused up to max_use = 100 deliveries each.
setup_postfix() {
	local etc=$PF/etc
	cat >"$etc/main.cf" <<EOF
# generated by bench/relay-bench.sh
compatibility_level = 3.6
queue_directory = $PF/queue
data_directory = $PF/data
mail_owner = postfix
setgid_group = postdrop
maillog_file = $LOGS/postfix.log
maillog_file_prefixes = $LOGS
myhostname = mta.postfix.test
mydomain = postfix.test
myorigin = \$myhostname
mydestination = localhost
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
alias_maps =
alias_database =
biff = no
smtpd_banner = \$myhostname ESMTP
message_size_limit = 52428800
transport_maps = texthash:$etc/transport
# Postfix's default, stated: at most 20 connections to one destination.
default_destination_concurrency_limit = $CONCURRENCY
# Held while the queue fills; emptied to release it.
defer_transports = smtp
EOF
	echo "$SINK_DOMAIN smtp:[127.0.0.1]:$SINK_PORT" >"$etc/transport"
	postfix_master_cf bench/relay-bench.sh >"$etc/master.cf"
	chown postfix "$PF/data"
	postfix -c "$etc" check >>"$LOGS/postfix.setup" 2>&1 ||
		die "postfix check failed: $(tail -5 "$LOGS/postfix.setup")"
}

pf_count() { # queue subdirectories...
	local d dirs=()
	for d in "$@"; do dirs+=("$PF/queue/$d"); done
	find "${dirs[@]}" -type f 2>/dev/null | wc -l
}

# Fill Postfix's queue: defer_transports = smtp, so qmgr moves every
# message to deferred/ after one look; wait until all are there.
fill_postfix() { # run-number round
	local k=$1 round=$2 out sent failed secs
	postconf -c "$PF/etc" -e "defer_transports = smtp"
	postfix -c "$PF/etc" reload >>"$LOGS/postfix.setup" 2>&1
	sleep 2	# the new qmgr with defer_transports is up
	[ "$(pf_count incoming active deferred maildrop hold)" = 0 ] ||
		die "Postfix queue not empty before run $k"
	out=$(helper inject "$PF_PORT" "$MESSAGES" "$INJECT_THREADS" \
		"bench@postfix.test" - - "$SINK_DOMAIN" "$NRCPT" "$MSG_SIZE" \
		2>>"$LOGS/inject.err")
	read -r sent failed secs <<<"$out"
	log "postfix #$round: queued $sent messages in ${secs}s ($failed failed)"
	[ "$sent" = "$MESSAGES" ] || die "injection into Postfix failed"
	local end=$((SECONDS + FILL_TIMEOUT))
	while [ "$SECONDS" -lt "$end" ]; do
		[ "$(pf_count incoming active maildrop)" = 0 ] &&
			[ "$(pf_count deferred)" = "$MESSAGES" ] && return 0
		sleep 1
	done
	die "Postfix: $(pf_count deferred) of $MESSAGES deferred after ${FILL_TIMEOUT}s"
}

# ---- postd -----------------------------------------------------------------

# held: sink.test routed to a closed port, first retry after 30 days (the
# longest allowed), so that every entry waits after one failed attempt.
# deliver: routed to the sink, retries at their defaults.
write_postd_conf() { # held|deliver
	local route=$CLOSED_PORT retry=""
	if [ "$1" = held ]; then
		retry="queue_retry_min = 30d
queue_retry_max = 30d"
	else
		route=$SINK_PORT
	fi
	cat >"$PD/postd.conf" <<EOF
# generated by bench/relay-bench.sh ($1)
hostname = mta.postd.test
domains = postd.test
auth_default_domain = postd.test
data_dir = $PD/data
users_file = $PD/data/users
user = nobody
listen.submission = 127.0.0.1:$PD_PORT
# one worker per core
workers = 0
max_connections = 20000
max_connections_per_peer = 20000
auth_failure_delay = 0
log_level = info
transport.$SINK_DOMAIN = 127.0.0.1:$route
# postd's default, stated: at most 20 connections to one destination.
max_connections_per_destination = $CONCURRENCY
$retry
EOF
	"$POSTD_BIN" -t -c "$PD/postd.conf" >"$LOGS/postd.check" 2>&1 ||
		die "postd -t rejects the config: $(cat "$LOGS/postd.check")"
}

setup_postd() {
	if [ ! -x "$POSTD_BIN" ] || [ ! -x "$POSTCTL_BIN" ]; then
		die "no postd at $POSTD_BIN (set POSTD_BUILD, or --only postfix)"
	fi
	write_postd_conf held
	mkdir -p "$PD/data"
	echo "$PD_PASS" |
		"$POSTCTL_BIN" -c "$PD/postd.conf" user add "$PD_USER" \
			>>"$LOGS/postd.setup" 2>&1 ||
		die "postctl user add failed: $(tail -3 "$LOGS/postd.setup")"
}

start_postd() {
	port_free "$PD_PORT" || die "port $PD_PORT is in use"
	"$POSTD_BIN" -f -c "$PD/postd.conf" >>"$LOGS/postd.log" 2>&1 &
	POSTD_PID=$!
	helper ready "$PD_PORT" 20 ||
		die "postd does not answer EHLO on $PD_PORT: $(tail -5 "$LOGS/postd.log")"
}

stop_postd() {
	# Started by the measuring helper, postd's pid is in a file until this
	# shell reads it: an exit during the measured run finds it there.
	if [ -z "$POSTD_PID" ] && [ -s "$WORK/postd.pid" ]; then
		POSTD_PID=$(cat "$WORK/postd.pid")
		[ "$(ps -o comm= -p "$POSTD_PID" 2>/dev/null)" = postd ] ||
			POSTD_PID=""
	fi
	rm -f "$WORK/postd.pid"
	[ -n "$POSTD_PID" ] || return 0
	local kids
	kids=$(pgrep -P "$POSTD_PID" | tr '\n' ' ') || true
	kill "$POSTD_PID" 2>/dev/null || true
	for _ in $(seq 100); do
		postd_alive || break
		sleep 0.1
	done
	if postd_alive; then
		log "postd $POSTD_PID ignores SIGTERM: SIGKILL to it and $kids"
		# shellcheck disable=SC2086
		kill -KILL "$POSTD_PID" $kids 2>/dev/null || true
	fi
	# Started by the measuring helper, postd is not this shell's child;
	# its children may outlive it for a moment.
	wait "$POSTD_PID" 2>/dev/null || true
	for _ in $(seq 50); do
		[ -z "$kids" ] && break
		# shellcheck disable=SC2086
		kill -0 $kids 2>/dev/null || break
		sleep 0.1
	done
	POSTD_PID=""
}

# A dead postd that is this shell's child stays a zombie until waited for,
# and kill -0 succeeds on a zombie.

pd_queue_count() { "$POSTCTL_BIN" -c "$PD/postd.conf" queue list 2>&1 |
	grep -c '@' || true; }

# Fill postd's queue: submission with AUTH, the route pointing at a closed
# port; wait until every entry has had its one failed attempt, then stop
# postd, route to the sink and make every entry due again.
fill_postd() { # run-number round
	local k=$1 round=$2 out sent failed secs n done_ end
	write_postd_conf held
	start_postd
	out=$(helper inject "$PD_PORT" "$MESSAGES" "$INJECT_THREADS" \
		"$PD_USER" "$PD_USER" "$PD_PASS" "$SINK_DOMAIN" "$NRCPT" \
		"$MSG_SIZE" 2>>"$LOGS/inject.err")
	read -r sent failed secs <<<"$out"
	log "postd #$round: queued $sent messages in ${secs}s ($failed failed)"
	[ "$sent" = "$MESSAGES" ] || die "injection into postd failed"
	end=$((SECONDS + FILL_TIMEOUT))
	while :; do
		read -r n done_ < <(helper pd_held "$PD/data/queue")
		[ "$n" = "$MESSAGES" ] && [ "$done_" = "$MESSAGES" ] && break
		[ "$SECONDS" -lt "$end" ] ||
			die "postd: $done_ of $n entries attempted after ${FILL_TIMEOUT}s"
		sleep 1
	done
	stop_postd
	write_postd_conf deliver
	pd_retry_all || die "postctl queue retry failed: $(tail -3 "$LOGS/postd.setup")"
}

# Every entry due now (postd is not running).
pd_retry_all() {
	"$POSTCTL_BIN" -c "$PD/postd.conf" queue retry >>"$LOGS/postd.setup" 2>&1
}

# ---- one run ---------------------------------------------------------------

# run_one SERVER ROUND RUN-NUMBER -> appends to $RESULTS:
# server round delivered t_first t_last d_rss t_rss d_pss t_pss cpu busy
# samples queue_left
run_one() {
	local srv=$1 round=$2 k=$3 out left pidfile=$WORK/pid.$3
	[ "$srv" = postd ] && pidfile=$WORK/postd.pid
	if [ "$srv" = postd ]; then
		fill_postd "$k" "$round"
	else
		fill_postfix "$k" "$round"
	fi
	start_sink "$k"
	sync
	log "$srv #$round: releasing $MESSAGES messages"
	if [ "$srv" = postd ]; then
		out=$(helper measure postd "$LOGS/sink.$k.out" "$MESSAGES" \
			"$RUN_TIMEOUT" "$pidfile" "$LOGS/postd.log" \
			"$POSTD_BIN" -f -c "$PD/postd.conf" 2>>"$LOGS/measure.err")
		POSTD_PID=$(cat "$pidfile")
	else
		cp "$PF/queue/pid/master.pid" "$pidfile"
		local -a release=(postqueue -c "$PF/etc" -f)
		# postqueue -f delivers what defer_transports holds back (it is
		# the "sendmail -q or equivalent" of postconf(5)); reload is the
		# longer way, with a new qmgr.
		[ "$PF_RELEASE" = reload ] && release=(sh -c \
			"postconf -c '$PF/etc' -e 'defer_transports =' &&
			postfix -c '$PF/etc' reload && postqueue -c '$PF/etc' -f")
		out=$(helper measure postfix "$LOGS/sink.$k.out" "$MESSAGES" \
			"$RUN_TIMEOUT" "$pidfile" "$LOGS/postfix.release" \
			"${release[@]}" 2>>"$LOGS/measure.err")
	fi
	# The queue after the run: the server gets a few seconds to remove
	# what it sent last.
	for _ in $(seq 50); do
		if [ "$srv" = postd ]; then
			left=$(pd_queue_count)
		else
			left=$(pf_count incoming active deferred maildrop hold)
		fi
		[ "$left" = 0 ] && break
		sleep 0.2
	done
	echo "$srv $round $out $left" >>"$RESULTS"
	local got tf tl drss trss cpu busy
	read -r got tf tl drss trss _ _ cpu busy _ <<<"$out"
	log "$srv #$round: $got of $MESSAGES at the sink, first at ${tf}s," \
		"all at ${tl}s; peak RSS delivery $((drss / 1024)) MiB, tree" \
		"$((trss / 1024)) MiB; server CPU ${cpu}s; CPUs $busy% busy;" \
		"$left left in the queue"
	if [ "$srv" = postfix ]; then
		postqueue -c "$PF/etc" -p >"$LOGS/postqueue.$k" 2>&1 || true
		grep -q 'Mail queue is empty' "$LOGS/postqueue.$k" || left=x
	else
		"$POSTCTL_BIN" -c "$PD/postd.conf" queue list \
			>"$LOGS/queue-list.$k" 2>&1 || true
	fi
	if [ "$got" != "$MESSAGES" ] || [ "$left" != 0 ]; then
		FAILED=1
		log "$srv #$round: FAILED (delivered $got, queue left $left)"
	fi
	if [ "$srv" = postd ]; then
		postd_alive || { FAILED=1; log "postd died during the run"; }
		stop_postd
	fi
	stop_sink
}

# ---- main ------------------------------------------------------------------

SERVERS="postd postfix"
[ -n "$ONLY" ] && SERVERS=$ONLY

for p in "$SINK_PORT" "$CLOSED_PORT"; do
	port_free "$p" || die "port $p is in use"
done
machine_info | tee "$LOGS/machine.txt"
neighbours_info | tee -a "$LOGS/machine.txt"

case " $SERVERS " in *" postfix "*) setup_postfix; start_postfix ;; esac
case " $SERVERS " in *" postd "*) setup_postd ;; esac

RESULTS=$WORK/results.txt
: >"$RESULTS"
k=0
for round in $(seq "$ROUNDS"); do
	for srv in $SERVERS; do
		k=$((k + 1))
		run_one "$srv" "$round" "$k"
	done
done

# ---- report ----------------------------------------------------------------

report() {
	awk -v servers="$SERVERS" -v total="$MESSAGES" '
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
	function f0(v) { return v == "-" ? "-" : sprintf("%.0f", v) }
	function f1(v) { return v == "-" ? "-" : sprintf("%.1f", v) }
	function f2(v) { return v == "-" ? "-" : sprintf("%.2f", v) }
	function mib(v) { return v == "-" ? "-" : sprintf("%.1f", v / 1024) }
	# $1 server $2 round $3 delivered $4 t_first $5 t_last $6 d_rss
	# $7 t_rss $8 d_pss $9 t_pss $10 cpu $11 busy $12 samples $13 pid
	# $14 left
	{
		s = $1
		ok = ($3 == total && $14 == 0 && $5 != "-")
		runs[s]++
		if (!ok) { fails[s]++ }
		raw[s] = raw[s] sprintf("  #%s: %s delivered, %s s, %s msg/s, " \
			"first at %s s, RSS %s/%s MiB, CPU %s s%s\n", $2, $3,
			$5, ($5 == "-" ? "-" : f0($3 / $5)), $4, mib($6), mib($7),
			$10, ok ? "" : " (FAILED)")
		if (!ok) next
		secs[s] = secs[s] " " $5
		rate[s] = rate[s] " " total / $5
		steady[s] = steady[s] " " ($5 > $4 ? (total - 1) / ($5 - $4) : 0)
		first[s] = first[s] " " $4
		drss[s] = drss[s] " " $6; trss[s] = trss[s] " " $7
		dpss[s] = dpss[s] " " $8; tpss[s] = tpss[s] " " $9
		cpu[s] = cpu[s] " " $10; busy[s] = busy[s] " " $11
	}
	END {
		printf "| server | runs ok | delivered | seconds | msg/s |"
		printf " msg/s after the first | first message at | peak RSS delivery |"
		printf " peak RSS tree | peak PSS delivery | peak PSS tree |"
		printf " CPU s (tree) | CPU ms/msg | CPUs busy |\n"
		printf "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
		n = split(servers, sv, " ")
		for (j = 1; j <= n; j++) {
			s = sv[j]
			name = s == "postd" ? "postd (queue runner)" : "Postfix (qmgr + smtp)"
			c = median(cpu[s])
			printf "| %s | %d/%d | %s | %s | %s | %s | %s s | %s MiB |" \
				" %s MiB | %s MiB | %s MiB | %s | %s | %s%% |\n",
				name, runs[s] - fails[s], runs[s],
				(runs[s] - fails[s]) ? total : "-",
				f2(median(secs[s])), f0(median(rate[s])),
				f0(median(steady[s])), f2(median(first[s])),
				mib(median(drss[s])), mib(median(trss[s])),
				mib(median(dpss[s])), mib(median(tpss[s])),
				f2(c), c == "-" ? "-" : f2(1000 * c / total),
				f0(median(busy[s]))
		}
		if (split(servers, sv, " ") == 2) {
			a = median(rate["postd"]); b = median(rate["postfix"])
			if (a != "-" && b != "-" && b > 0)
				printf "\nRate ratio postd / Postfix: %.2fx\n", a / b
		}
		printf "\nEach cell: median of the rounds (with 2 rounds: their mean).\n"
		printf "\nPer round:\n"
		for (j = 1; j <= n; j++) printf "%s\n%s", sv[j], raw[sv[j]]
	}' "$RESULTS"
}

echo
echo "Relay: $MESSAGES queued messages of $MSG_SIZE bytes to $NRCPT" \
	"recipients at one smtp-sink (127.0.0.1), $CONCURRENCY connections" \
	"per destination, $ROUNDS rounds"
cat "$LOGS/machine.txt"
echo
report | tee "$LOGS/table.md"

# ---- oddities --------------------------------------------------------------

stop_sink
stop_postd
stop_postfix
echo
if [ -s "$LOGS/inject.err" ]; then
	echo "injector said:"
	sort "$LOGS/inject.err" | uniq -c | sort -rn | head -5 || true
fi
if [ -s "$LOGS/measure.err" ]; then
	echo "measurement said:"
	sort "$LOGS/measure.err" | uniq -c | sort -rn | head -5 || true
fi
if [ -f "$LOGS/postfix.log" ] &&
	grep -Eq 'warning:|error:|fatal:|panic:' "$LOGS/postfix.log"; then
	echo "Postfix log (warning|error|fatal|panic):"
	grep -E 'warning:|error:|fatal:|panic:' "$LOGS/postfix.log" |
		sed 's/^[A-Z][a-z][a-z] [ 0-9]* [0-9:]* [^ ]* //; s/^[0-9T:.+-]* [^ ]* //' |
		sed 's/\[[0-9]*\]//; s/[0-9A-F]\{10,\}/ID/g' |
		sort | uniq -c | sort -rn | head -10 || true
fi
if [ -f "$LOGS/postd.log" ] &&
	grep -Eiq 'error|fatal|crash|abort|signal|quarantin' "$LOGS/postd.log"; then
	echo "postd log (error|fatal|crash|abort|signal|quarantin):"
	grep -Ei 'error|fatal|crash|abort|signal|quarantin' "$LOGS/postd.log" |
		grep -v 'signal 15' | grep -v "$CLOSED_PORT" |
		sed 's/^[0-9-]* [0-9:]* //; s/\[[0-9]*\]//' |
		sort | uniq -c | sort -rn | head -10 || true
fi
if [ "$FAILED" != 0 ]; then
	log "some runs failed (see above and $LOGS)"
	exit 1
fi
