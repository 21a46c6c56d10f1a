#!/usr/bin/env bash
# Makes sure curl is on this machine: the README's "Try it" uses it, and
# e2e TestReadmeTryIt runs that block as written. Installs Debian's package
# when possible, else says what to install.
set -euo pipefail
command -v curl >/dev/null 2>&1 && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "curl not found: installing Debian's curl package" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends curl >&2 ||
    { apt-get update -qq >&2 && apt-get install -y -qq --no-install-recommends curl >&2; }
  command -v curl >/dev/null 2>&1 && exit 0
fi
echo "curl is missing: the README's Try it (and its test) needs it." >&2
echo "Install it, e.g. 'sudo apt-get install curl'." >&2
exit 1
