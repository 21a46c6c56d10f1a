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
go test -count=1 -timeout 14m "$@" ./...
