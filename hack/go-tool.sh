#!/usr/bin/env bash
# Prints the path of a Go-built tool, building it once per version into the user-level cache.
#
#   hack/go-tool.sh NAME PACKAGE VERSION
#
# NAME's binary lives at ${XDG_CACHE_HOME:-$HOME/.cache}/floodgate/NAME/VERSION/NAME; a fresh clone
# (as CI uses) finds it there and never rebuilds. $TOOL_<NAME> (upper case, - as _), when set to an
# executable, wins. Progress goes to stderr; the only stdout line is the binary's path.
set -euo pipefail

name=$1 pkg=$2 version=$3
override_var="TOOL_$(echo "$name" | tr 'a-z-' 'A-Z_')"
if [ -n "${!override_var:-}" ] && [ -x "${!override_var}" ]; then
  echo "${!override_var}"; exit 0
fi
CACHE_ROOT=${XDG_CACHE_HOME:-$HOME/.cache}/floodgate/$name
DEST=$CACHE_ROOT/$version
if [ -x "$DEST/$name" ]; then
  echo "$DEST/$name"; exit 0
fi
mkdir -p "$CACHE_ROOT"
exec 9>"$CACHE_ROOT/.lock"
flock 9
if [ -x "$DEST/$name" ]; then
  echo "$DEST/$name"; exit 0
fi
echo "$name: building $pkg@$version from its Go module (once; cached in $DEST)" >&2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
GOBIN="$work" CGO_ENABLED=0 go install -ldflags "-s -w ${TOOL_LDFLAGS:-}" "$pkg@$version" >&2
mkdir -p "$DEST"
mv "$work/$(basename "$pkg")" "$DEST/$name.tmp" && mv "$DEST/$name.tmp" "$DEST/$name"
echo "$DEST/$name"
