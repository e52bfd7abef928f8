#!/usr/bin/env bash
# Prints the path of an egctl binary (Envoy Gateway's CLI), whose `egctl x translate` is the real
# Gateway API implementation the HTTPRoute tests route requests through, without running Envoy:
# $EGCTL when set, else built once from its Go module (about 10 minutes cold on 2 cores) and
# cached by version in the user-level cache (hack/go-tool.sh).
set -euo pipefail
TOOL_EGCTL=${EGCTL:-} exec bash "$(dirname "$0")/go-tool.sh" egctl github.com/envoyproxy/gateway/cmd/egctl "${EGCTL_VERSION:-v1.9.1}"
