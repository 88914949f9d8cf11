#!/bin/bash
# Run every Go fuzz target in the module, one after another, for FUZZTIME each.
# Usage: test/fuzz.sh [FUZZTIME]      (default 5s; `make fuzz` passes minutes)
# Env: TAGS (build tags, e.g. pacific).
# Targets are found with `go test -list`, only in packages whose tests declare a Fuzz function
# (listing every package would compile every test binary once more). A failing input is saved by
# `go test` under the package's testdata/fuzz/<Target>/: commit it with the fix.
set -uo pipefail
REPO=$(readlink -f "$(dirname "$(readlink -f "$0")")/..")
cd "$REPO" || exit 2
FUZZTIME=${1:-${FUZZTIME:-5s}}
TAGS=${TAGS:-}

mapfile -t DIRS < <(grep -rlE --include='*_test.go' --exclude-dir=build --exclude-dir=testdata \
	'^func Fuzz[A-Z0-9_]' . | xargs -r -n1 dirname | sort -u)
FAILED=()
COUNT=0
for d in "${DIRS[@]}"; do
	if ! list=$(go test -tags "$TAGS" -list '^Fuzz' "$d" 2>&1); then
		echo "$list"
		FAILED+=("$d (does not build)")
		continue
	fi
	for t in $(grep -E '^Fuzz' <<< "$list"); do
		COUNT=$((COUNT + 1))
		echo "fuzz: $d $t for $FUZZTIME"
		if ! go test -tags "$TAGS" -run '^$' -fuzz "^$t\$" -fuzztime "$FUZZTIME" "$d"; then
			FAILED+=("$d $t")
		fi
	done
done
if [ ${#FAILED[@]} -gt 0 ]; then
	printf 'fuzz: FAILED: %s\n' "${FAILED[@]}"
	exit 1
fi
echo "fuzz: $COUNT targets, ${FUZZTIME} each, no failures"
