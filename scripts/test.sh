#!/usr/bin/env bash
# Runs every test against a throwaway PostgreSQL cluster of its own (unless
# FMN_TEST_DATABASE_URL names a server to use), then stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${FMN_TEST_DATABASE_URL:-}" ]; then
  scripts/ensure-postgres.sh
  # One cluster per clone, outside the clone (its folder may be closed to
  # the postgres user), on a port derived from the clone's path.
  sum=$(printf '%s' "$PWD" | cksum | cut -d' ' -f1)
  dir="${TMPDIR:-/tmp}/fmn-testpg-$sum"
  port=$((20000 + sum % 20000))
  FMN_TEST_DATABASE_URL=$(bin/fmn dev-postgres start -dir "$dir" -port "$port")
  export FMN_TEST_DATABASE_URL
  trap 'bin/fmn dev-postgres stop -dir "$dir" || true' EXIT
fi
scripts/ensure-chromium.sh
scripts/ensure-ngircd.sh
go vet ./...
go test -count=1 -timeout 14m "$@" ./...
