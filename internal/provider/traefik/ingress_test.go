package traefik_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"floodgate.dev/floodgate/internal/provider"
	"floodgate.dev/floodgate/internal/provider/gatewayapi"
	"floodgate.dev/floodgate/internal/provider/ingressnginx"
	"floodgate.dev/floodgate/internal/provider/traefik"
	"floodgate.dev/floodgate/test/fixtures"
)

// TestTraefiksColumnSaysWhatTrafficThroughTraefikShowed: the knob table's Traefik column differs
// from ingress-nginx's where test/traffic measured another answer.
func TestTraefiksColumnSaysWhatTrafficThroughTraefikShowed(t *testing.T) {
	nginx := (&ingressnginx.Provider{}).Mechanisms()[0].How
	onTraefik := (&traefik.IngressProvider{}).Mechanisms()[0].How
	for knob, want := range map[string]string{
		provider.KnobPerClientRate: "429 with `Retry-After: 1`",
		provider.KnobAdmitPercent:  "weighted round robin",
	} {
		if !strings.Contains(onTraefik[knob], want) || strings.Contains(nginx[knob], want) {
			t.Errorf("%s: Traefik %q, ingress-nginx %q: only Traefik's says %q", knob, onTraefik[knob], nginx[knob], want)
		}
	}
	if onTraefik[provider.KnobShedAll] != nginx[provider.KnobShedAll] {
		t.Errorf("ShedAll is written alike on both: %q vs %q", onTraefik[provider.KnobShedAll], nginx[provider.KnobShedAll])
	}
}

// TestTraefiksRouteColumnHasTheLimitCoreGatewayAPILacks: on Traefik's Gateway provider a
// per-client limit is Traefik's Middleware, and the status capabilities say so.
func TestTraefiksRouteColumnHasTheLimitCoreGatewayAPILacks(t *testing.T) {
	core := (&gatewayapi.Provider{}).Mechanisms()[0].How
	onTraefik := (&traefik.RouteProvider{}).Mechanisms()[0].How
	if _, ok := core[provider.KnobPerClientRate]; ok {
		t.Errorf("core Gateway API has no rate limit, yet its column says %q", core[provider.KnobPerClientRate])
	}
	if !strings.Contains(onTraefik[provider.KnobPerClientRate], "Middleware") || traefik.RouteCapabilities.RateLimitStatusCode != 429 ||
		traefik.RouteCapabilities.RateLimitScope == gatewayapi.Capabilities.RateLimitScope {
		t.Errorf("Traefik's column %q, capabilities %+v", onTraefik[provider.KnobPerClientRate], traefik.RouteCapabilities)
	}
}

// TestTheCRDCopyIsTraefiksModule: test/crds/traefik is the CRD file of the Traefik module
// hack/traefik.sh builds, byte for byte (make traefik-crds refreshes it).
func TestTheCRDCopyIsTraefiksModule(t *testing.T) {
	dir, version := fixtures.PinnedModule(t, filepath.Join("..", "..", "..", "hack", "traefik.sh"), `(?m)^version=\$\{TRAEFIK_VERSION:-(v[0-9.]+)\}$`, "github.com/traefik/traefik/v3")
	const file = "kubernetes-crd-definition-v1.yml"
	mine, _ := os.ReadFile(filepath.Join("..", "..", "..", "test", "crds", "traefik", file))
	theirs, err := os.ReadFile(filepath.Join(dir, "docs", "content", "reference", "dynamic-configuration", file))
	if err != nil || len(mine) == 0 || string(mine) != string(theirs) {
		t.Fatalf("test/crds/traefik/%s differs from Traefik %s's (run make traefik-crds): %v", file, version, err)
	}
	if !strings.Contains(string(mine), "name: middlewares.traefik.io") {
		t.Fatal("the copy has no Middleware CRD")
	}
}
