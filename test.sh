#!/bin/sh
# Quick start, step 2: install what is missing, build, and run every test:
# static checks, gcc and clang builds with -Werror, cmocka unit tests,
# integration tests against the real daemon with real clients, the same
# under ASan+UBSan, and a short libFuzzer run of every parser.
#   ./test.sh            everything
#   ./test.sh --quick    gcc build, unit and integration tests only
# The last line says "N passed, N failed".
set -u
cd "$(dirname "$0")" || exit 1
quick=no
[ "${1:-}" = "--quick" ] && quick=yes
FUZZ_SECONDS=${FUZZ_SECONDS:-20}

./scripts/deps.sh --test || exit 1
if [ "$(id -u)" -eq 0 ] && ! getent passwd postd >/dev/null; then
	useradd --system --no-create-home --home-dir /nonexistent \
		--shell /usr/sbin/nologin postd
fi

passed=0
failed=0
failures=""
record() { # record NAME PASSED FAILED
	passed=$((passed + $2))
	failed=$((failed + $3))
	[ "$3" -gt 0 ] && failures="$failures $1"
	echo "== $1: $2 passed, $3 failed"
}

# meson test: counts come from its summary ("Ok: N", "Fail: N").
unit_tests() { # unit_tests NAME BUILDDIR
	out=$(meson test -C "$2" --suite unit --print-errorlogs 2>&1)
	echo "$out" | grep -E '^ *[0-9]+/[0-9]+ |FAIL|ERROR' | tail -40
	ok=$(echo "$out" | sed -n 's/^Ok: *\([0-9]*\).*/\1/p')
	bad=$(echo "$out" | sed -n 's/^Fail: *\([0-9]*\).*/\1/p')
	to=$(echo "$out" | sed -n 's/^Timeout: *\([0-9]*\).*/\1/p')
	record "$1" "${ok:-0}" $((${bad:-1} + ${to:-0}))
}

# pytest: counts come from its JUnit report.
integration_tests() { # integration_tests NAME BUILDDIR
	xml=$(mktemp)
	POSTD_BUILD="$PWD/$2" /usr/bin/python3 -m pytest -q -p no:cacheprovider \
		--junitxml="$xml" tests/integration 2>&1 | tail -25
	counts=$(/usr/bin/python3 - "$xml" <<'PY'
import sys, xml.etree.ElementTree as ET
try:
    r = ET.parse(sys.argv[1]).getroot()
    s = r if r.tag == "testsuite" else r.find("testsuite")
    t, f, e, k = (int(s.get(a, 0)) for a in ("tests", "failures", "errors", "skipped"))
    print(t - f - e - k, f + e)
except Exception:
    print(0, 1)
PY
)
	rm -f "$xml"
	# shellcheck disable=SC2086
	record "$1" $counts
}

build() { # build DIR [meson options]
	dir=$1
	shift
	if [ ! -f "$dir/build.ninja" ]; then
		meson setup "$dir" "$@" >"$dir.setup.log" 2>&1 ||
			{ cat "$dir.setup.log"; return 1; }
	fi
	ninja -C "$dir" >"$dir.ninja.log" 2>&1 ||
		{ grep -E 'error|warning' "$dir.ninja.log" | head -40; return 1; }
}

if [ $quick = no ]; then
	if ./scripts/check-style.sh; then record style 1 0; else record style 0 1; fi
fi

if build build; then record gcc-build 1 0; else record gcc-build 0 1; fi
unit_tests unit build
# The full run adds Dovecot's imaptest (its scripted IMAP conformance tests,
# tests/imaptest/), once, on the gcc build; --quick leaves it out.
[ $quick = no ] && export POSTD_IMAPTEST=1
integration_tests integration build
unset POSTD_IMAPTEST

if [ $quick = no ]; then
	if CC=clang build build-clang; then
		record clang-build 1 0
	else
		record clang-build 0 1
	fi
	if build build-asan -Db_sanitize=address,undefined -Db_lundef=false; then
		record asan-build 1 0
		export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
		export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
		unit_tests unit-asan build-asan
		integration_tests integration-asan build-asan
	else
		record asan-build 0 1
	fi
	if CC=clang build build-fuzz -Dfuzz=true -Dtests=false \
		-Db_sanitize=address,undefined -Db_lundef=false; then
		if tests/fuzz/run.sh build-fuzz "$FUZZ_SECONDS"; then
			record fuzz 1 0
		else
			record fuzz 0 1
		fi
	else
		record fuzz-build 0 1
	fi
fi

[ -n "$failures" ] && echo "failed:$failures"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
