#!/bin/sh
# Runs every libFuzzer target for SECONDS each, starting from a copy of
# its seed corpus (tests/fuzz/corpus/TARGET) so that the repository is
# not modified. Prints one line per target and exits non-zero if any
# target crashed, leaked, timed out or is missing. Crash inputs and logs
# are kept in BUILD_DIR/fuzz-artifacts and BUILD_DIR/fuzz-logs.
#
# Usage: tests/fuzz/run.sh BUILD_DIR SECONDS
# BUILD_DIR was configured with:
#   CC=clang meson setup BUILD_DIR -Dfuzz=true \
#     -Db_sanitize=address,undefined -Db_lundef=false -Dtests=false
set -u

if [ $# -ne 2 ]; then
	echo "usage: $0 BUILD_DIR SECONDS" >&2
	exit 2
fi
build=$1
seconds=$2
case $seconds in
'' | *[!0-9]*)
	echo "$0: SECONDS must be a number" >&2
	exit 2
	;;
esac
here=$(cd "$(dirname "$0")" && pwd)

# target:max_len. Lengths a little above each input's own cap, so that
# the "too long" paths are reached without slowing every execution.
targets="
fuzz_pop3_parse:512
fuzz_sasl:12800
fuzz_config:8192
fuzz_username:512
fuzz_msg_wire:4096
fuzz_msg_file:4096
fuzz_passwd_file:8192
fuzz_smtp_parse:12300
fuzz_smtp_data:4096
fuzz_smtp_header:8192
fuzz_retention:300
fuzz_check_reply:9000
fuzz_autodiscover:17000
fuzz_smtp_reply:9000
fuzz_alias:20000
fuzz_srs:400
fuzz_proxy_proto:1100
fuzz_imap_command:8192
fuzz_imap_index:4096
fuzz_mime:16384
fuzz_imap_search:8192
fuzz_imap_session:4096
"

ninja -C "$build" $(for t in $targets; do printf 'tests/fuzz/%s ' \
	"${t%%:*}"; done) >/dev/null || {
	echo "$0: building the fuzz targets in $build failed" >&2
	exit 1
}

work=$(mktemp -d "${TMPDIR:-/tmp}/postd-fuzz.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT INT TERM
artifacts=$build/fuzz-artifacts
logs=$build/fuzz-logs
mkdir -p "$artifacts" "$logs"

failed=0
for t in $targets; do
	name=${t%%:*}
	max_len=${t#*:}
	exe=$build/tests/fuzz/$name
	log=$logs/$name.log
	if [ ! -x "$exe" ]; then
		printf '%-18s MISSING (%s)\n' "$name" "$exe"
		failed=1
		continue
	fi
	corpus=$work/$name
	mkdir -p "$corpus"
	if [ -d "$here/corpus/$name" ]; then
		cp "$here/corpus/$name"/* "$corpus"/ 2>/dev/null
	fi
	dict=
	if [ -f "$here/$name.dict" ]; then
		dict=-dict=$here/$name.dict
	fi
	# A run that never hits the time limit but makes no progress is
	# a hang: -timeout turns it into a failure with the input kept.
	"$exe" -max_total_time="$seconds" -max_len="$max_len" \
		-timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
		-artifact_prefix="$artifacts/$name-" $dict \
		"$corpus" >"$log" 2>&1
	rc=$?
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
	speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
	corp=$(ls "$corpus" | wc -l)
	if [ $rc -eq 0 ]; then
		printf '%-18s ok     %ss  %s runs  %s exec/s  corpus %s\n' \
			"$name" "$seconds" "${runs:-?}" "${speed:-?}" "$corp"
	else
		failed=1
		input=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' \
			"$log" | tail -n 1)
		printf '%-18s FAILED exit %s  input %s  log %s\n' \
			"$name" "$rc" "${input:-?}" "$log"
		grep -m 1 -E '^(==[0-9]+==ERROR|SUMMARY|.*invariant failed)' \
			"$log" | sed 's/^/    /'
	fi
done
exit $failed
