#!/usr/bin/env bash
# Prints the path of an egctl binary (Envoy Gateway's CLI), whose `egctl x translate` is the real
# Gateway API implementation the HTTPRoute tests route requests through, without running Envoy.
#
# Order of preference:
#   1. EGCTL, when it is already set and executable;
#   2. the user-level cache, ${XDG_CACHE_HOME:-$HOME/.cache}/floodgate/egctl/$EGCTL_VERSION/egctl;
#   3. building it from its Go module (about 10 minutes cold on 2 cores), then caching it by
#      version so a fresh clone never rebuilds.
# Progress goes to stderr; the only stdout line is the binary's path.
set -euo pipefail

EGCTL_VERSION=${EGCTL_VERSION:-v1.9.1}
CACHE_ROOT=${XDG_CACHE_HOME:-$HOME/.cache}/floodgate/egctl
DEST=$CACHE_ROOT/$EGCTL_VERSION

if [ -n "${EGCTL:-}" ] && [ -x "$EGCTL" ]; then
  echo "$EGCTL"; exit 0
fi
if [ -x "$DEST/egctl" ]; then
  echo "$DEST/egctl"; exit 0
fi
mkdir -p "$CACHE_ROOT"
exec 9>"$CACHE_ROOT/.lock"
flock 9
if [ -x "$DEST/egctl" ]; then
  echo "$DEST/egctl"; exit 0
fi
echo "egctl: building github.com/envoyproxy/gateway/cmd/egctl@$EGCTL_VERSION from its Go module (about 10 minutes, once)" >&2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
GOBIN="$work" GOFLAGS=-mod=mod CGO_ENABLED=0 go install -ldflags "-s -w" "github.com/envoyproxy/gateway/cmd/egctl@$EGCTL_VERSION" >&2
mkdir -p "$DEST"
mv "$work/egctl" "$DEST/egctl.tmp" && mv "$DEST/egctl.tmp" "$DEST/egctl"
echo "$DEST/egctl"
