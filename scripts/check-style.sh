#!/bin/sh
# Static checks: banned C calls, clang-format, cppcheck. Exit 1 on any
# finding. Called by test.sh.
set -u
cd "$(dirname "$0")/.." || exit 1
rc=0

# STYLE habit 5: no unbounded or unchecked calls (curl's checksrc idea).
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
[ $rc -eq 0 ] && echo "check-style: ok (banned calls, clang-format, cppcheck)"
exit $rc
