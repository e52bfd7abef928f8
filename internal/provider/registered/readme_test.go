package registered

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/internal/provider"
	"floodgate.dev/floodgate/internal/provider/envoygateway"
	"floodgate.dev/floodgate/internal/provider/gatewayapi"
	"floodgate.dev/floodgate/internal/provider/ingressnginx"
	"floodgate.dev/floodgate/internal/provider/traefik"
)

var update = flag.Bool("update", false, "rewrite the README's knob table from the providers' capability data")

const (
	tableBegin = "<!-- knob-table: generated from the providers' Mechanisms (go test ./internal/provider/registered -update) -->\n"
	tableEnd   = "<!-- end of knob-table -->"
)

// TestTheREADMEKnobTableIsTheProvidersCapabilityData: the knob × data plane table in README.md is
// rendered from each target provider's Mechanisms; it fails when they disagree.
func TestTheREADMEKnobTableIsTheProvidersCapabilityData(t *testing.T) {
	var mechanisms []provider.Mechanism
	for _, p := range NewRegistry(nil).Available(provider.Target) {
		d, ok := p.(provider.Documented)
		if !ok {
			t.Fatalf("target provider %s does not document its knobs (provider.Documented)", p.GroupKind())
		}
		mechanisms = append(mechanisms, d.Mechanisms()...)
	}
	// The table says what the status says: a data plane documents missingRegion: Shed and a
	// rate limit exactly when its published capabilities claim them.
	for _, c := range []struct {
		caps       v1alpha1.Capabilities
		mechanisms []provider.Mechanism
	}{
		{ingressnginx.Capabilities, (&ingressnginx.Provider{}).Mechanisms()}, {gatewayapi.Capabilities, (&gatewayapi.Provider{}).Mechanisms()},
		{traefik.IngressCapabilities, (&traefik.IngressProvider{}).Mechanisms()}, {traefik.RouteCapabilities, (&traefik.RouteProvider{}).Mechanisms()},
		{envoygateway.Capabilities, envoygateway.New(gatewayapi.Provider{}).Mechanisms()},
	} {
		for _, m := range c.mechanisms {
			if _, ok := m.How[provider.KnobAllowlistShed]; ok != c.caps.MissingRegionShed {
				t.Errorf("%s: the table says missingRegion: Shed is %t, status capabilities %t", m.Name, ok, c.caps.MissingRegionShed)
			}
			if _, ok := m.How[provider.KnobPerClientRate]; ok != (c.caps.RateLimitScope != "None") {
				t.Errorf("%s: the table says a rate limit is %t, status capabilities say scope %s", m.Name, ok, c.caps.RateLimitScope)
			}
		}
	}
	want := provider.KnobTable(mechanisms)
	path := filepath.Join("..", "..", "..", "README.md")
	readme, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	text := string(readme)
	begin, end := strings.Index(text, tableBegin), strings.Index(text, tableEnd)
	if begin < 0 || end < begin {
		t.Fatalf("README.md has no knob table between %q and %q", strings.TrimSpace(tableBegin), tableEnd)
	}
	got := text[begin+len(tableBegin) : end]
	if got == want {
		return
	}
	if *update {
		if err := os.WriteFile(path, []byte(text[:begin+len(tableBegin)]+want+text[end:]), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatalf("README.md's knob table differs from the providers' capability data; run go test ./internal/provider/registered -update\nwant:\n%s", want)
}
