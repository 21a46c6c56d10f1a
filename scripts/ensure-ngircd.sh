#!/usr/bin/env bash
# Makes sure ngircd (Debian's IRC server) is on this machine: the IRC tests
# start their own from it, on a free loopback port. Installs Debian's package
# when possible (without starting the system service), else says what to do.
set -euo pipefail
have() { command -v ngircd >/dev/null 2>&1 || [ -x /usr/sbin/ngircd ]; }
have && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "ngircd not found: installing Debian's ngircd package" >&2
  export DEBIAN_FRONTEND=noninteractive
  # The tests run their own server; keep the package's from starting.
  policy=/usr/sbin/policy-rc.d
  made_policy=
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && made_policy=1
  fi
  trap '[ -n "$made_policy" ] && rm -f "$policy"' EXIT
  apt-get install -y -qq --no-install-recommends ngircd >&2 ||
    { apt-get update -qq >&2 && apt-get install -y -qq --no-install-recommends ngircd >&2; }
  have && exit 0
fi
echo "ngircd (an IRC server) is missing; the IRC tests need it." >&2
echo "Install it, e.g. 'sudo apt-get install ngircd'." >&2
exit 1
