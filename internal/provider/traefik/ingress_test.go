package traefik_test

import (
	"strings"
	"testing"

	"floodgate.dev/floodgate/internal/provider"
	"floodgate.dev/floodgate/internal/provider/ingressnginx"
	"floodgate.dev/floodgate/internal/provider/traefik"
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
