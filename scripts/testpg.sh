# Sourced by test.sh and bench.sh: unless FMN_TEST_DATABASE_URL names a
# server to use, starts a throwaway PostgreSQL cluster (fsync off) for this
# clone, exports FMN_TEST_DATABASE_URL, and stops the cluster when the
# calling script exits. Needs bin/fmn (make builds it first).
if [ -z "${FMN_TEST_DATABASE_URL:-}" ]; then
  scripts/ensure-postgres.sh
  # One cluster per clone, outside the clone (its folder may be closed to
  # the postgres user), on a port derived from the clone's path.
  sum=$(printf '%s' "$PWD" | cksum | cut -d' ' -f1)
  fmn_testpg_dir="${TMPDIR:-/tmp}/fmn-testpg-$sum"
  port=$((20000 + sum % 20000))
  FMN_TEST_DATABASE_URL=$(bin/fmn dev-postgres start -dir "$fmn_testpg_dir" -port "$port")
  export FMN_TEST_DATABASE_URL
  trap 'bin/fmn dev-postgres stop -dir "$fmn_testpg_dir" || true' EXIT
fi
