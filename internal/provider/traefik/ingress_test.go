package traefik_test

import (
	"context"
	"strings"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/internal/knobs"
	"floodgate.dev/floodgate/internal/provider"
	"floodgate.dev/floodgate/internal/provider/ingressnginx"
	"floodgate.dev/floodgate/internal/provider/traefik"
	"floodgate.dev/floodgate/internal/scheme"
)

// TestAnIngressOnTraefikIsObservedAsIngressNginxDoesWithTraefiksCapabilities: the same object
// read, the same problems, but status says what a client of Traefik gets: 429 from the limit.
func TestAnIngressOnTraefikIsObservedAsIngressNginxDoesWithTraefiksCapabilities(t *testing.T) {
	ing := &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Name: "api", Namespace: "shop"}}
	c := fake.NewClientBuilder().WithScheme(scheme.New()).WithObjects(ing).Build()
	policy := &v1alpha1.TrafficPolicy{ObjectMeta: metav1.ObjectMeta{Name: "api", Namespace: "shop"}}
	ref := provider.Ref{Group: v1alpha1.GroupNetworking, Kind: string(v1alpha1.TargetKindIngress), Name: "api"}
	d := provider.Desired{Knobs: knobs.New(false, nil, 20, 0)}

	nginx, err := (&ingressnginx.Provider{Client: c}).Observe(context.Background(), policy, ref, d)
	if err != nil {
		t.Fatal(err)
	}
	onTraefik, err := (&traefik.IngressProvider{Provider: ingressnginx.Provider{Client: c}}).Observe(context.Background(), policy, ref, d)
	if err != nil {
		t.Fatal(err)
	}
	if !onTraefik.Found || onTraefik.UID != nginx.UID || len(onTraefik.Problems) != len(nginx.Problems) {
		t.Fatalf("observed %+v, ingress-nginx's provider %+v", onTraefik, nginx)
	}
	got := onTraefik.Status.Target.Capabilities
	if got.Provider != traefik.ProviderName || got.RateLimitStatusCode != 429 || got.RateLimitScope != nginx.Status.Target.Capabilities.RateLimitScope {
		t.Errorf("capabilities %+v", got)
	}
	if nginx.Status.Target.Capabilities.RateLimitStatusCode != 503 {
		t.Errorf("ingress-nginx's capabilities changed with Traefik's: %+v", nginx.Status.Target.Capabilities)
	}
}

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

