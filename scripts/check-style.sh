#!/bin/sh
# Static checks: banned C calls, clang-format, cppcheck, and the
# citations of doc/invariants.md. Exit 1 on any finding. Called by test.sh.
set -u
cd "$(dirname "$0")/.." || exit 1
rc=0

# No unbounded or unchecked calls (doc/hacking.md, "One bounded buffer
# type"; curl's checksrc idea).
banned=$(grep -rnE --include='*.[ch]' \
	'\b(strcpy|strcat|sprintf|vsprintf|gets|strtok|atoi|atol)\s*\(' \
	src tests/unit tests/fuzz bench 2>/dev/null | grep -v '^\s*//')
if [ -n "$banned" ]; then
	echo "check-style: banned calls:"
	echo "$banned"
	rc=1
fi

files=$(find src tests/unit tests/fuzz bench -name '*.[ch]' 2>/dev/null)
# shellcheck disable=SC2086
if ! clang-format --dry-run --Werror $files 2>/tmp/postd-clang-format.log; then
	echo "check-style: clang-format wants changes:"
	head -40 /tmp/postd-clang-format.log
	rc=1
fi

if ! cppcheck --quiet --error-exitcode=1 --enable=warning,portability \
	--inline-suppr --std=c11 -D__GNUC__ -I src \
	--suppress=missingIncludeSystem src 2>/tmp/postd-cppcheck.log; then
	echo "check-style: cppcheck findings:"
	cat /tmp/postd-cppcheck.log
	rc=1
fi
# Promises: every INV-... id that code, tests or docs cite is defined in
# doc/invariants.md (a "### INV-XX title" heading), and every id defined
# there is cited somewhere else. Tests cite by name too (test_inv_xx_...).
# Then no reference to the old numbered habits or to files outside the
# repository: the repository must make sense on its own. The patterns are
# split so that this script does not match itself.
inv_doc=doc/invariants.md
inv_re='INV-[A-Z]+[0-9]+[a-z]?'
cite_dirs="src tests doc bench scripts README.md DESIGN.md SECURITY.md"
outside_re='STYLE'' habit|habit [0-9]|[.][.]/shared|STYLE[.]md|INVARIANTS[.]md'
# search OPTIONS PATTERN -- PATHS: git grep in a git checkout (tracked and
# new files, not ignored ones: no build or data folders), else grep -r.
# Both read the same arguments.
search() {
	if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
		git grep --untracked -I "$@"
	else
		grep -rIH --exclude-dir=.git --exclude-dir='build*' "$@"
	fi
}
if [ ! -f "$inv_doc" ]; then
	echo "check-style: $inv_doc is missing"
	rc=1
else
	defined=$(grep -E "^### $inv_re( |\$)" "$inv_doc" | cut -d' ' -f2)
	# shellcheck disable=SC2086
	cited=$(
		{
			search -oE "$inv_re" -- $cite_dirs |
				grep -v "^$inv_doc:" | sed 's/.*://'
			search -ohE 'test_inv_[a-z]+[0-9]+' -- tests |
				sed 's/^test_inv_//' | tr '[:lower:]' '[:upper:]' |
				sed 's/^/INV-/'
		} 2>/dev/null | sort -u
	)
	# One line each, for matching whole words with case.
	defined_words=" $(printf '%s\n' "$defined" | tr '\n' ' ') "
	cited_words=" $(printf '%s\n' "$cited" | tr '\n' ' ') "
	dups=$(printf '%s\n' "$defined" | sort | uniq -d | tr '\n' ' ')
	if [ -n "$dups" ]; then
		echo "check-style: $inv_doc defines twice: $dups"
		rc=1
	fi
	for id in $cited; do
		case $defined_words in
		*" $id "*) ;;
		*)
			echo "check-style: $id is cited but not defined in $inv_doc:"
			low=$(echo "$id" | tr 'A-Z-' 'a-z_')
			# shellcheck disable=SC2086
			search -nE -e "$id" -e "test_${low}_" -- $cite_dirs |
				sed 's/^/    /' | head -5
			rc=1
			;;
		esac
	done
	for id in $defined; do
		case $cited_words in
		*" $id "*) ;;
		*)
			echo "check-style: $id is defined in $inv_doc but nothing cites it"
			rc=1
			;;
		esac
	done
fi
# What doc/invariants.md names must exist: each test (`tests/F::NAME`,
# or `::NAME` after such a file), each file, and each function `f()`.
if [ -f "$inv_doc" ]; then
	awk '{
		s = $0
		while (match(s, /`(tests|src)\/[A-Za-z0-9_\/.]+(::[A-Za-z0-9_]+)?`|`::[A-Za-z0-9_]+`|`[a-z_0-9]+\(\)`/)) {
			tok = substr(s, RSTART + 1, RLENGTH - 2)
			s = substr(s, RSTART + RLENGTH)
			if (tok ~ /\(\)$/) {
				print "f", substr(tok, 1, length(tok) - 2)
			} else if (tok ~ /^::/) {
				print "t", file, substr(tok, 3)
			} else if ((n = index(tok, "::")) > 0) {
				file = substr(tok, 1, n - 1)
				print "t", file, substr(tok, n + 2)
			} else {
				file = tok
				print "p", tok
			}
		}
	}' "$inv_doc" >"${TMPDIR:-/tmp}/postd-inv-names.$$"
	# Read once: every identifier followed by "(" in src/, and every
	# test defined in tests/ as FILE:NAME.
	funcs=" $(grep -rhoE '[A-Za-z_][A-Za-z0-9_]*\(' src | sort -u |
		tr -d '(' | tr '\n' ' ') "
	tests=" $(grep -roE '(def|void) test_[A-Za-z0-9_]+\(' tests |
		sed 's/:[a-z]* /:/; s/($//' | tr '\n' ' ') "
	while read -r kind a b; do
		case $kind in
		p) [ -e "$a" ] && continue ;;
		t) case $tests in *" $a:$b "*) continue ;; esac ;;
		f) case $funcs in *" $a "*) continue ;; esac ;;
		esac
		echo "check-style: $inv_doc names what does not exist: $a${b:+::$b}"
		rc=1
	done <"${TMPDIR:-/tmp}/postd-inv-names.$$"
	rm -f "${TMPDIR:-/tmp}/postd-inv-names.$$"
fi
outside=$(search -nE "$outside_re" -- .)
if [ -n "$outside" ]; then
	echo "check-style: references to files outside the repository:"
	echo "$outside"
	rc=1
fi

# Leftovers of patch(1) and editors are never part of the product.
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	stray=$(git ls-files -- '*.orig' '*.rej' '*~' '*.swp')
	if [ -n "$stray" ]; then
		echo "check-style: stray files tracked by git:"
		echo "$stray"
		rc=1
	fi
fi

if [ $rc -eq 0 ]; then
	echo "check-style: ok (banned calls, clang-format, cppcheck, citations, stray files)"
fi
exit $rc
