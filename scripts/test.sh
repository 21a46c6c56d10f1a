#!/usr/bin/env bash
# Runs every test against a throwaway PostgreSQL cluster of its own (unless
# FMN_TEST_DATABASE_URL names a server to use), then stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/testpg.sh
scripts/ensure-chromium.sh
scripts/ensure-ngircd.sh
scripts/ensure-curl.sh
# Dendrite, the Matrix homeserver of the Matrix tests: built once into a
# cache outside the clone (about 4 minutes cold), then found there.
FMN_DENDRITE=$(scripts/ensure-dendrite.sh)
export FMN_DENDRITE
scripts/ensure-rabbitmq.sh
go vet ./...
# staticcheck, pinned in go.mod's tool block (not linked into bin/fmn).
go tool staticcheck ./...
# The race detector, wherever cgo can build it (a C compiler): tests run
# goroutines against each other on purpose (sources, ingesters, bots), and
# a race there passes unseen without it. Without a compiler the tests run
# all the same, and this says what is missing.
race=()
if [ "$(go env CGO_ENABLED)" = 1 ]; then
  race=(-race)
else
  echo "test.sh: no C compiler for cgo, so the race detector is off (install gcc to turn it on)" >&2
fi
go test -count=1 -timeout 14m "${race[@]}" "$@" ./...
