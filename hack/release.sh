#!/usr/bin/env bash
# Builds the release archives of the kubectl plugin and the floodgate (drill) command, their
# sha256 sums, and the krew manifest (hack/krew/floodgate.yaml.tmpl) that names each archive with
# its sum.
#
#   VERSION=v0.1.0 PLATFORMS="linux/amd64 linux/arm64 darwin/amd64 darwin/arm64" DIST=dist \
#   URL_BASE=https://github.com/floodgate-dev/floodgate/releases/download hack/release.sh
#
# Each archive, floodgate_${VERSION}_${OS}_${ARCH}.tar.gz, holds kubectl-floodgate, floodgate and
# README.md; both binaries print VERSION with `version`. COMMANDS narrows the binaries and
# BUILDFLAGS replaces -trimpath (tests build the plugin alone, sharing go test's build cache).
set -euo pipefail

VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo v0.0.0-dev)}
PLATFORMS=${PLATFORMS:-"linux/amd64 linux/arm64 darwin/amd64 darwin/arm64"}
DIST=${DIST:-dist}
URL_BASE=${URL_BASE:-https://github.com/floodgate-dev/floodgate/releases/download}
COMMANDS=${COMMANDS:-"kubectl-floodgate floodgate"}
BUILDFLAGS=${BUILDFLAGS--trimpath}
root=$(cd "$(dirname "$0")/.." && pwd)

mkdir -p "$DIST"
DIST=$(cd "$DIST" && pwd)
: > "$DIST/sha256sums.txt"
platforms_yaml=""
for platform in $PLATFORMS; do
  os=${platform%/*} arch=${platform#*/}
  name="floodgate_${VERSION}_${os}_${arch}"
  stage=$(mktemp -d)
  for cmd in $COMMANDS; do
    # shellcheck disable=SC2086
    (cd "$root" && CGO_ENABLED=0 GOOS=$os GOARCH=$arch go build $BUILDFLAGS \
      -ldflags "-s -w -X floodgate.dev/floodgate/internal/version.Version=$VERSION" -o "$stage/$cmd" "./cmd/$cmd")
  done
  cp "$root/README.md" "$stage/"
  # Reproducible archives: fixed owner, mode order and time.
  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime='2024-11-12 00:00Z' \
    -C "$stage" -cf - $COMMANDS README.md | gzip -n > "$DIST/$name.tar.gz"
  rm -rf "$stage"
  sum=$(sha256sum "$DIST/$name.tar.gz" | cut -d' ' -f1)
  echo "$sum  $name.tar.gz" >> "$DIST/sha256sums.txt"
  platforms_yaml+="  - selector:
      matchLabels: {os: $os, arch: $arch}
    uri: $URL_BASE/$VERSION/$name.tar.gz
    sha256: $sum
    bin: kubectl-floodgate
    files:
    - {from: kubectl-floodgate, to: .}
    - {from: README.md, to: .}
"
  echo "release: $name.tar.gz $sum" >&2
done
VERSION=$VERSION PLATFORMS="${platforms_yaml%$'\n'}" envsubst '${VERSION} ${PLATFORMS}' \
  < "$root/hack/krew/floodgate.yaml.tmpl" > "$DIST/floodgate.yaml"
echo "$DIST/floodgate.yaml"
