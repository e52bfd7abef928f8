#!/usr/bin/env bash
# Prints a directory holding kube-apiserver, etcd and kubectl for envtest.
#
# Order of preference:
#   1. KUBEBUILDER_ASSETS, when it is already set and holds both binaries;
#   2. the user-level cache, ${XDG_CACHE_HOME:-$HOME/.cache}/floodgate/envtest/$K8S_VERSION;
#   3. setup-envtest (works where its download site is reachable);
#   4. building kube-apiserver, kubectl and etcd from their Go modules (about 11 minutes cold
#      on 2 cores), then caching them by version so a fresh clone never rebuilds.
# Progress goes to stderr; the only stdout line is the directory.
set -euo pipefail

K8S_VERSION=${ENVTEST_K8S_VERSION:-1.37.2}
ETCD_VERSION=${ENVTEST_ETCD_VERSION:-v3.6.6}
SETUP_ENVTEST_VERSION=${SETUP_ENVTEST_VERSION:-release-0.25}
CACHE_ROOT=${XDG_CACHE_HOME:-$HOME/.cache}/floodgate/envtest
DEST=$CACHE_ROOT/$K8S_VERSION

log() { echo "envtest-assets: $*" >&2; }
complete() { [ -x "$1/kube-apiserver" ] && [ -x "$1/etcd" ]; }

if [ -n "${KUBEBUILDER_ASSETS:-}" ] && complete "$KUBEBUILDER_ASSETS"; then
  echo "$KUBEBUILDER_ASSETS"; exit 0
fi
if complete "$DEST" && [ -x "$DEST/kubectl" ]; then
  echo "$DEST"; exit 0
fi

mkdir -p "$CACHE_ROOT"
# One builder at a time per user (make test and make drill may start together).
exec 9>"$CACHE_ROOT/.lock"
flock 9
if complete "$DEST" && [ -x "$DEST/kubectl" ]; then
  echo "$DEST"; exit 0
fi

# setup-envtest: the fast path where its download works.
if timeout 120 go run "sigs.k8s.io/controller-runtime/tools/setup-envtest@$SETUP_ENVTEST_VERSION" \
     use "$K8S_VERSION" --bin-dir "$CACHE_ROOT/setup-envtest" -p path >"$CACHE_ROOT/.setup-envtest.out" 2>/dev/null; then
  dir=$(tail -n1 "$CACHE_ROOT/.setup-envtest.out")
  if complete "$dir" && [ -x "$dir/kubectl" ]; then
    mkdir -p "$DEST"
    cp "$dir/kube-apiserver" "$dir/etcd" "$dir/kubectl" "$DEST/"
    echo "$DEST"; exit 0
  fi
fi
log "setup-envtest could not download $K8S_VERSION; building from Go modules (about 11 minutes, once)"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
minor=$(echo "$K8S_VERSION" | cut -d. -f2)
ldflags="-s -w -X k8s.io/component-base/version.gitVersion=v$K8S_VERSION \
 -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor \
 -X k8s.io/client-go/pkg/version.gitVersion=v$K8S_VERSION \
 -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$minor"
staging="$work/out"
mkdir -p "$staging"

# etcd: a throwaway module whose main calls etcdmain.Main.
mkdir -p "$work/etcd"
(
  cd "$work/etcd"
  go mod init floodgate.local/etcd >/dev/null 2>&1
  cat > main.go <<'GO'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
  go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >&2
  go mod tidy >&2
  CGO_ENABLED=0 go build -ldflags "-s -w" -o "$staging/etcd" . >&2
)
log "etcd built"

# kube-apiserver and kubectl: k8s.io/kubernetes with its staging modules replaced by the
# published v0.$minor.x versions (its own go.mod points them at ./staging).
mkdir -p "$work/kube"
(
  cd "$work/kube"
  go mod init floodgate.local/kube >/dev/null 2>&1
  modjson=$(go mod download -json "k8s.io/kubernetes@v$K8S_VERSION")
  gomod=$(echo "$modjson" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  staging_version="v0.${K8S_VERSION#1.}"
  {
    echo "require k8s.io/kubernetes v$K8S_VERSION"
    echo "replace ("
    sed -n '/^replace (/,/^)/p' "$gomod" | grep -o 'k8s.io/[a-zA-Z0-9._/-]* => ./staging' |
      awk -v v="$staging_version" '{print "\t" $1 " => " $1 " " v}'
    echo ")"
  } >> go.mod
  cat > tools.go <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
  go get "k8s.io/kubernetes/cmd/kube-apiserver@v$K8S_VERSION" "k8s.io/kubernetes/cmd/kubectl@v$K8S_VERSION" >&2
  CGO_ENABLED=0 go build -ldflags "$ldflags" -o "$staging/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver >&2
  log "kube-apiserver built"
  CGO_ENABLED=0 go build -ldflags "$ldflags" -o "$staging/kubectl" k8s.io/kubernetes/cmd/kubectl >&2
  log "kubectl built"
)

mkdir -p "$DEST"
mv "$staging/etcd" "$staging/kube-apiserver" "$staging/kubectl" "$DEST/"
echo "$DEST"
