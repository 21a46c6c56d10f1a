#!/usr/bin/env bash
# Runs fmn's Go benchmarks and prints their figures as `bench: NAME VALUE UNIT`.
set -euo pipefail
cd "$(dirname "$0")/.."
go test -run '^$' -bench . -benchmem -count=1 ./... | tee /dev/stderr | awk '
  /^Benchmark/ { name=$1; sub(/-[0-9]+$/, "", name); sub(/^Benchmark/, "", name);
                 for (i = 3; i < NF; i += 2) printf "bench: %s_%s %s %s\n", name, $(i+1), $i, $(i+1) }
  /^bench: / { print }'
