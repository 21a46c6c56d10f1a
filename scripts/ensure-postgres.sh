#!/usr/bin/env bash
# Makes sure PostgreSQL's server binaries are on this machine: fmn's embedded
# default and the test suite run a private cluster with them. Installs
# Debian's package when possible, else says what to install.
set -euo pipefail
have() {
  command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1 && return 0
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1
}
have && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "PostgreSQL server not found: installing Debian's postgresql package" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends postgresql >&2
  have && exit 0
fi
echo "PostgreSQL server binaries (initdb, pg_ctl) are missing." >&2
echo "Install them, e.g. 'sudo apt-get install postgresql', or set FMN_DATABASE_URL (make run) / FMN_TEST_DATABASE_URL (make test)." >&2
exit 1
