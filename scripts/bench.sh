#!/usr/bin/env bash
# Runs fmn's Go benchmarks and prints their figures as `bench: NAME VALUE UNIT`.
# Benchmarks that deliver through the job queue need PostgreSQL: like
# test.sh, a throwaway cluster unless FMN_TEST_DATABASE_URL names a server.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${FMN_TEST_DATABASE_URL:-}" ]; then
  scripts/ensure-postgres.sh
  sum=$(printf '%s' "$PWD" | cksum | cut -d' ' -f1)
  dir="${TMPDIR:-/tmp}/fmn-benchpg-$sum"
  port=$((20000 + (sum + 7) % 20000))
  FMN_TEST_DATABASE_URL=$(bin/fmn dev-postgres start -dir "$dir" -port "$port")
  export FMN_TEST_DATABASE_URL
  trap 'bin/fmn dev-postgres stop -dir "$dir" || true' EXIT
fi
scripts/ensure-ngircd.sh
go test -run '^$' -bench . -benchmem -count=1 ./... | tee /dev/stderr | awk '
  /^Benchmark/ { name=$1; sub(/-[0-9]+$/, "", name); sub(/^Benchmark/, "", name);
                 for (i = 3; i < NF; i += 2) printf "bench: %s_%s %s %s\n", name, $(i+1), $i, $(i+1) }
  /^bench: / { print }'
