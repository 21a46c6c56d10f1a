#!/usr/bin/env bash
# Runs fmn's Go benchmarks and load generators against a throwaway
# PostgreSQL cluster (unless FMN_TEST_DATABASE_URL names a server) and
# prints their figures as `bench: NAME VALUE UNIT`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/testpg.sh
scripts/ensure-ngircd.sh
# Dendrite, the Matrix homeserver of the Matrix tests: built once into a
# cache outside the clone (about 4 minutes cold), then found there.
FMN_DENDRITE=$(scripts/ensure-dendrite.sh)
export FMN_DENDRITE
scripts/ensure-rabbitmq.sh
# The full output goes to stderr for reading; the bench: lines to stdout.
# -p 1: one package's benchmarks at a time, or two packages' test binaries
# share the two cores and each one's figures measure the other too.
out=$(mktemp)
go test -p 1 -run '^$' -bench . -benchmem -count=1 ./... >"$out" 2>&1 || { cat "$out" >&2; exit 1; }
cat "$out" >&2
awk '
  /^Benchmark/ { name=$1; sub(/-[0-9]+$/, "", name); sub(/^Benchmark/, "", name);
                 for (i = 3; i < NF; i += 2) printf "bench: %s_%s %s %s\n", name, $(i+1), $i, $(i+1) }
  /^bench: / { print }' "$out"
# Load generators: tests that run only with FMN_BENCH set and print their
# own bench: lines (the consumer's publish → stored path; GET /api/v1/me
# during another user's preview flood).
FMN_BENCH=1 go test -p 1 -run 'Load$|HeardAgain$' -count=1 -v ./consumer/ ./web/ >"$out" 2>&1 || { cat "$out" >&2; exit 1; }
cat "$out" >&2
awk '/^bench: / { print }' "$out"
rm -f "$out"
