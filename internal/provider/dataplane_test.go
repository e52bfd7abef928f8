package provider

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"floodgate.dev/floodgate/api/v1alpha1"
)

// kindOnDataPlane is a provider of a kind for one data plane ("": portable), whose objects are
// served by the controllers servedBy names by object name. A pure unit: what Resolve decides.
type kindOnDataPlane struct {
	Provider
	kind      string
	dataPlane DataPlane
	names     []string
	servedBy  map[string][]string
}

func (p *kindOnDataPlane) GroupKind() schema.GroupKind { return schema.GroupKind{Kind: p.kind} }
func (p *kindOnDataPlane) Role() Role                  { return Target }
func (p *kindOnDataPlane) Classes() []client.Object    { return nil }
func (p *kindOnDataPlane) ServedBy(_ context.Context, _ *v1alpha1.TrafficPolicy, ref Ref) ([]string, error) {
	return p.servedBy[ref.Name], nil
}

// onDataPlane is kindOnDataPlane with a data plane of its own.
type onDataPlane struct{ *kindOnDataPlane }

func (p onDataPlane) DataPlane() DataPlane      { return p.dataPlane }
func (p onDataPlane) ControllerNames() []string { return p.names }

func TestEachObjectGetsItsDataPlanesProviderElseItsKindsPortableOne(t *testing.T) {
	servedBy := map[string][]string{
		"on-envoy":    {"gateway.envoyproxy.io/gatewayclass-controller"},
		"on-traefik":  {"traefik.io/gateway-controller"},
		"mapped":      {"example.com/our-envoy-build"},
		"unknown":     {"example.com/other"},
		"mixed":       {"gateway.envoyproxy.io/gatewayclass-controller", "traefik.io/gateway-controller"},
		"twice":       {"gateway.envoyproxy.io/gatewayclass-controller", "example.com/our-envoy-build"},
		"no-class":    nil,
		"nginx-class": {"k8s.io/ingress-nginx"},
		"traefik-ing": {"traefik.io/ingress-controller"},
	}
	portableRoute := &kindOnDataPlane{kind: "HTTPRoute", servedBy: servedBy}
	envoyRoute := onDataPlane{&kindOnDataPlane{kind: "HTTPRoute", dataPlane: "envoy-gateway",
		names: []string{"gateway.envoyproxy.io/gatewayclass-controller"}}}
	nginxIngress := onDataPlane{&kindOnDataPlane{kind: "Ingress", dataPlane: "ingress-nginx",
		names: []string{"k8s.io/ingress-nginx"}, servedBy: servedBy}}
	r := NewRegistry(portableRoute, envoyRoute, nginxIngress)
	r.MapControllers(map[string]DataPlane{"traefik.io/gateway-controller": "traefik", "traefik.io/ingress-controller": "traefik",
		"example.com/our-envoy-build": "envoy-gateway"})

	for _, tc := range []struct {
		kind, name string
		want       Provider
		dataPlanes []string
		warningHas string
	}{
		{"HTTPRoute", "on-envoy", envoyRoute, []string{"envoy-gateway"}, ""},
		{"HTTPRoute", "mapped", envoyRoute, []string{"envoy-gateway"}, ""},
		{"HTTPRoute", "twice", envoyRoute, []string{"envoy-gateway"}, ""},
		{"HTTPRoute", "on-traefik", portableRoute, []string{"traefik"}, ""},
		{"HTTPRoute", "unknown", portableRoute, []string{"example.com/other"}, ""},
		{"HTTPRoute", "mixed", portableRoute, []string{"envoy-gateway", "traefik"}, "only what every one of them can take"},
		{"HTTPRoute", "no-class", portableRoute, nil, ""},
		{"Ingress", "nginx-class", nginxIngress, []string{"ingress-nginx"}, ""},
		{"Ingress", "no-class", nginxIngress, nil, ""},
		{"Ingress", "traefik-ing", nginxIngress, []string{"traefik"}, "ingress-nginx's settings are written"},
	} {
		res, err := r.Resolve(context.Background(), &v1alpha1.TrafficPolicy{}, Ref{Kind: tc.kind, Name: tc.name})
		if err != nil {
			t.Fatalf("%s %s: %v", tc.kind, tc.name, err)
		}
		if res.Provider != tc.want || !reflect.DeepEqual(res.Strings(), tc.dataPlanes) {
			t.Errorf("%s %s: provider %v on %v, want %v on %v", tc.kind, tc.name, res.Provider, res.Strings(), tc.want, tc.dataPlanes)
		}
		if tc.warningHas == "" && res.Warning != "" || !strings.Contains(res.Warning, tc.warningHas) {
			t.Errorf("%s %s: warning %q, want one saying %q", tc.kind, tc.name, res.Warning, tc.warningHas)
		}
	}
	if got := len(r.Kinds(Target)); got != 2 {
		t.Errorf("Kinds(Target) = %d providers, want one per kind (2)", got)
	}
}
