#!/usr/bin/env bash
# Makes sure a headless-capable Chromium is on this machine for the browser
# tests (e2e/browser_test.go). Installs Debian's package when possible, else
# says what to install.
set -euo pipefail
have() { command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; }
have && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "Chromium not found: installing Debian's chromium package" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >&2
  have && exit 0
fi
echo "Chromium is missing: the browser tests need it." >&2
echo "Install it, e.g. 'sudo apt-get install chromium', or put a chromium binary on PATH." >&2
exit 1
