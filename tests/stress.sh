#!/usr/bin/env bash
# Runs the named test classes of one test project N times in a row on the Release build and stops at the
# first failing round. Usage:
#   bash tests/stress.sh N PROJECT CLASS [CLASS ...]
#   bash tests/stress.sh 20 tests/Tandem.IntegrationTests Tandem.IntegrationTests.FaultToleranceTests
set -uo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 3 ] || { sed -n 2,5p "$0"; exit 2; }
rounds=$1 project=$2; shift 2
filters=()
for class in "$@"; do filters+=(--filter-class "$class"); done
dotnet build "$project" -c Release >/dev/null || { echo "build failed"; exit 1; }
for ((i = 1; i <= rounds; i++)); do
  out=$(dotnet test --project "$project" -c Release --no-build -- "${filters[@]}" 2>&1)
  summary=$(echo "$out" | grep -E '^\s+(total|failed|succeeded):' | tr -s ' ' | tr '\n' ' ')
  if echo "$out" | grep -q 'Test run summary: Passed'; then
    echo "round $i/$rounds passed: $summary"
  else
    echo "$out" | grep -E '^failed' -A8
    echo "round $i/$rounds FAILED: $summary"
    exit 1
  fi
done
echo "$rounds rounds passed"
