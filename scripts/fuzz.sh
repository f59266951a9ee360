#!/usr/bin/env bash
# Runs every fuzz target in the module (every `func FuzzX(f *testing.F)` in a
# _test.go file) for FUZZ_TIME each (default 5s). `make test` runs them
# briefly; `make fuzz FUZZ_TIME=5m` digs deeper. New targets are found by
# themselves. Failing inputs land in the package's testdata/fuzz/, which is
# committed as the seed corpus.
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZ_TIME=${FUZZ_TIME:-5s}
status=0
while IFS=: read -r file _ line; do
	name=$(sed -E 's/^func (Fuzz[A-Za-z0-9_]*)\(.*/\1/' <<<"$line")
	dir=$(dirname "$file")
	printf 'fuzz %-28s %s (%s)\n' "$name" "$dir" "$FUZZ_TIME"
	if ! go test -run '^$' -fuzz "^${name}\$" -fuzztime "$FUZZ_TIME" "$dir" >/tmp/errand-fuzz.$$ 2>&1; then
		cat /tmp/errand-fuzz.$$
		if grep -q 'context deadline exceeded' /tmp/errand-fuzz.$$ && ! grep -q 'Failing input written' /tmp/errand-fuzz.$$; then
			# Go's fuzz coordinator can miss its own -fuzztime deadline on a
			# loaded machine (a known Go issue): a failure with no input
			# written is that race, not a finding.
			echo "fuzz $name: ended by the -fuzztime race, nothing found"
			continue
		fi
		status=1
	fi
done < <(grep -rn --include='*_test.go' -E '^func Fuzz[A-Za-z0-9_]*\(f \*testing\.F\)' . | sort)
rm -f /tmp/errand-fuzz.$$
exit $status
