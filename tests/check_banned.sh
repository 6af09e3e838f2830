#!/bin/sh
# Functions git's banned.h forbids (unbounded or thread-unsafe): fail if any
# appears in gitgate's own sources. Matches calls, not words in comments.
root=${1:-.}
pattern='\b(strcpy|strcat|strncpy|strncat|sprintf|vsprintf|gets|strtok|localtime|gmtime|ctime|asctime|atoi|atol)[[:space:]]*\('
if grep -nE "$pattern" "$root"/src/*/*.c "$root"/include/gitgate/*/*.h; then
	echo "banned function used (see tests/check_banned.sh)" >&2
	exit 1
fi
echo "1 passed, 0 failed"
