#!/usr/bin/env bash
# Prints the path of a Traefik binary, the real proxy test/traffic sends requests through: $TRAEFIK
# when set, else built once per version from Traefik's Go module and cached in the user-level cache
# (${XDG_CACHE_HOME:-$HOME/.cache}/floodgate/traefik/VERSION/traefik), as hack/go-tool.sh does.
#
# `go install` refuses Traefik's module (its go.mod has replace directives), so the module's
# directory is copied and built. Three things it needs are not served by this machine's module
# proxy; each is dealt with outside Traefik's routing code, and NOTE.md beside the binary says how:
#   - the nested module github.com/traefik/traefik/dynamic/ext (pkg/config/dynamic/ext): module
#     zips leave nested modules out. Upstream it is two empty extension structs; the same two are
#     written in its place.
#   - github.com/containous/go-http-auth at the pinned pseudo-version (Traefik's fork of
#     github.com/abbot/go-http-auth, used by the basic/digest auth middlewares): replaced by
#     abbot's newest commit, which is served, plus the one method of the fork Traefik calls.
#   - the SDKs of some of lego's DNS-challenge providers (ACME certificates): lego's provider
#     registry is replaced by one that refuses every DNS provider, so no SDK is built at all.
# None of the three is on the path of a request through an Ingress or an HTTPRoute.
set -euo pipefail

version=${TRAEFIK_VERSION:-v3.7.13}
# abbot/go-http-auth's newest commit (2023-03-10), the base of Traefik's fork; its only tag, v0.4.0,
# lacks CheckSecret, which Traefik calls.
HTTP_AUTH_VERSION=v0.4.1-0.20230310155302-b2a0e3997b9a
if [ -n "${TRAEFIK:-}" ] && [ -x "$TRAEFIK" ]; then
  echo "$TRAEFIK"; exit 0
fi
CACHE_ROOT=${XDG_CACHE_HOME:-$HOME/.cache}/floodgate/traefik
DEST=$CACHE_ROOT/$version
if [ -x "$DEST/traefik" ]; then
  echo "$DEST/traefik"; exit 0
fi
mkdir -p "$CACHE_ROOT"
exec 9>"$CACHE_ROOT/.lock"
flock 9
if [ -x "$DEST/traefik" ]; then
  echo "$DEST/traefik"; exit 0
fi
echo "traefik: building github.com/traefik/traefik/v3@$version from its Go module (once, 10 to 20 minutes on 2 cores; cached in $DEST)" >&2
start=$(date +%s)
work=$(mktemp -d)
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
export GOFLAGS=-mod=mod

module_dir() { # MODULE VERSION: the module's directory in the module cache, downloaded if needed
  go mod download -json "$1@$2" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p'
}

src=$work/traefik
cp -r "$(module_dir github.com/traefik/traefik/v3 "$version")" "$src"
chmod -R u+w "$src"

# 1. The nested extension module, as upstream has it (two empty structs).
mkdir -p "$src/pkg/config/dynamic/ext"
cat >"$src/pkg/config/dynamic/ext/go.mod" <<'EOF'
module github.com/traefik/traefik/dynamic/ext

go 1.26.0
EOF
cat >"$src/pkg/config/dynamic/ext/ext.go" <<'EOF'
// Package ext stands in for Traefik's nested module pkg/config/dynamic/ext, which module zips leave
// out. Upstream it holds these two empty extension points and nothing else.
package ext

// HTTP is a dynamic.HTTP extension.
type HTTP struct{}

// Router is a dynamic.Router extension.
type Router struct{}
EOF

# 2. go-http-auth: abbot's newest commit (served) in place of Traefik's unserved fork, with the one
#    method the fork adds that Traefik calls: RequireAuthStale, a digest challenge with stale=true
#    (RFC 7616 3.3) for a request whose nonce the server no longer knows.
auth=$work/go-http-auth
cp -r "$(module_dir github.com/abbot/go-http-auth "$HTTP_AUTH_VERSION")" "$auth"
chmod -R u+w "$auth"
cat >"$auth/stale.go" <<'EOF'
package auth

import (
	"net/http"
	"strings"
)

// RequireAuthStale is RequireAuth for a request whose nonce is stale: its challenge says
// stale=true, so the client retries with the new nonce without asking its user again (RFC 7616
// 3.3). Traefik's fork of this module has it; this copy adds it for a Traefik built for tests.
func (da *DigestAuth) RequireAuthStale(w http.ResponseWriter, r *http.Request) {
	da.RequireAuth(staleChallenge{ResponseWriter: w, header: da.Headers.V().Authenticate}, r)
}

// staleChallenge adds stale=true to the challenge RequireAuth sets, before it is written.
type staleChallenge struct {
	http.ResponseWriter
	header string
}

func (s staleChallenge) WriteHeader(code int) {
	if v := s.Header().Get(s.header); v != "" && !strings.Contains(v, "stale=") {
		s.Header().Set(s.header, v+", stale=true")
	}
	s.ResponseWriter.WriteHeader(code)
}
EOF
(cd "$src" && go mod edit -replace github.com/abbot/go-http-auth="$auth")

# 3. lego's DNS-challenge provider registry, without the providers (and so without their SDKs).
lego_version=$(cd "$src" && go mod edit -json | sed -n '/"Path": "github.com\/go-acme\/lego\/v5"/{n;s/.*"Version": "\(.*\)".*/\1/p;}')
lego=$work/lego
cp -r "$(module_dir github.com/go-acme/lego/v5 "$lego_version")" "$lego"
chmod -R u+w "$lego"
rm -f "$lego/providers/dns/"*.go
cat >"$lego/providers/dns/dns_providers.go" <<'EOF'
// Package dns stands in for lego's DNS-challenge provider registry in a Traefik built for tests:
// the providers' SDKs are not all served where it is built, and no test uses an ACME DNS challenge.
package dns

import (
	"fmt"

	"github.com/go-acme/lego/v5/challenge"
)

// NewDNSChallengeProviderByName refuses every provider: none is built into this binary.
func NewDNSChallengeProviderByName(name string) (challenge.Provider, error) {
	return nil, fmt.Errorf("DNS provider %q: no DNS-challenge provider is built into this test binary of Traefik", name)
}
EOF
(cd "$src" && go mod edit -replace github.com/go-acme/lego/v5="$lego")

(cd "$src" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X github.com/traefik/traefik/v3/pkg/version.Version=$version" \
  -o "$work/traefik.bin" ./cmd/traefik) >&2

mkdir -p "$DEST"
cat >"$DEST/NOTE.md" <<EOF
# Traefik $version, built for Floodgate's tests

Built by hack/traefik.sh from github.com/traefik/traefik/v3@$version (its module directory,
copied: \`go install\` refuses a module with replace directives), CGO off, in $(( $(date +%s) - start )) s
on $(nproc) cores, with $(go version | cut -d' ' -f3). Traefik's routing code is untouched. Three
things the module proxy here does not serve were dealt with:

- \`github.com/traefik/traefik/dynamic/ext\` (the nested module pkg/config/dynamic/ext, which module
  zips leave out) is written as upstream has it: two empty structs, \`HTTP\` and \`Router\`.
- \`github.com/containous/go-http-auth\` at Traefik's pinned pseudo-version is replaced by
  \`github.com/abbot/go-http-auth@$HTTP_AUTH_VERSION\` (the original it forks, its newest
  commit) with one method added, \`DigestAuth.RequireAuthStale\` (the digest challenge with
  stale=true), the one call Traefik makes that only the fork has. Only the basic and digest auth
  middlewares use it.
- lego $lego_version's DNS-challenge provider registry (\`providers/dns\`) is replaced by one that
  refuses every provider, so none of their SDKs is built. Only ACME DNS challenges use it.
EOF
mv "$work/traefik.bin" "$DEST/traefik.tmp" && mv "$DEST/traefik.tmp" "$DEST/traefik"
echo "traefik: built in $(( $(date +%s) - start )) s" >&2
echo "$DEST/traefik"
