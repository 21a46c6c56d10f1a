#!/usr/bin/env bash
# Builds Dendrite, the Matrix homeserver the Matrix tests run against, once
# into a cache outside the clone, and prints the path of its binary.
#
# github.com/matrix-org/dendrite v0.13.8 is the last Apache-2.0 release
# (its successor element-hq/dendrite is AGPL and is not used). It comes from
# the Go module proxy like any module; a cold build takes about four
# minutes on two cores, later runs find the binary in the cache.
set -euo pipefail
version=v0.13.8
cache="${XDG_CACHE_HOME:-$HOME/.cache}/fmn/dendrite-$version"
bin="$cache/dendrite"
if [ -x "$bin" ]; then
  echo "$bin"
  exit 0
fi
if ! command -v go >/dev/null; then
  echo "ensure-dendrite: Go is needed to build Dendrite" >&2
  exit 1
fi
mkdir -p "$cache"
echo "ensure-dendrite: building Dendrite $version into $cache (about 4 minutes, once)" >&2
# Outside any module, so fmn's go.mod has no say.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && GOFLAGS= GOBIN="$tmp" go install "github.com/matrix-org/dendrite/cmd/dendrite@$version" >&2)
mv "$tmp/dendrite" "$bin"
echo "$bin"
