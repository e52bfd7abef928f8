package gatewayapi

import (
	"slices"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/internal/provider/envoygateway"
	"floodgate.dev/floodgate/internal/provider/gatewayapi"
)

// TestEachRouteNamesTheDataPlanesOfItsParents: a route's data planes are its parent Gateways'
// classes' controllers (else what its status says a parent's gateway is); a route on two data
// planes is written by the portable provider and says so, one on Envoy Gateway alone by Envoy
// Gateway's; status, `kubectl floodgate status` and `--dry-run` all name them.
func TestEachRouteNamesTheDataPlanesOfItsParents(t *testing.T) {
	ns := fixture(t, "data-planes")
	traefikClass := "traefik-" + ns
	create(t, &gatewayv1.GatewayClass{ObjectMeta: metav1.ObjectMeta{Name: traefikClass},
		Spec: gatewayv1.GatewayClassSpec{ControllerName: "traefik.io/gateway-controller"}},
		&gatewayv1.Gateway{ObjectMeta: metav1.ObjectMeta{Name: "tr", Namespace: ns}, Spec: gatewayv1.GatewaySpec{
			GatewayClassName: gatewayv1.ObjectName(traefikClass), Listeners: []gatewayv1.Listener{{Name: "http", Protocol: gatewayv1.HTTPProtocolType, Port: 80}}}})
	mixed := userRoute(ns)
	mixed.Name, mixed.Spec.Hostnames = "mixed", []gatewayv1.Hostname{gatewayv1.Hostname("mixed." + ns + ".example.com")}
	mixed.Spec.ParentRefs = []gatewayv1.ParentReference{{Name: "eg"}, {Name: "tr"}}
	// A parent Gateway that cannot be read: its gateway's report in the route's status says.
	unread := userRoute(ns)
	unread.Name, unread.Spec.Hostnames = "unread", []gatewayv1.Hostname{gatewayv1.Hostname("unread." + ns + ".example.com")}
	unread.Spec.ParentRefs = []gatewayv1.ParentReference{{Name: "elsewhere"}}
	create(t, mixed, unread, policy(ns, func(p *v1alpha1.TrafficPolicy) {
		for _, name := range []string{"mixed", "unread"} {
			p.Spec.TargetRefs = append(p.Spec.TargetRefs, v1alpha1.TargetRef{Group: v1alpha1.GroupGatewayAPI, Kind: v1alpha1.TargetKindHTTPRoute, Name: name})
		}
	}))

	want := map[string][]string{"api": {"envoy-gateway"}, "mixed": {"envoy-gateway", "traefik"}, "unread": {"envoy-gateway"}}
	p := eventuallyPolicy(t, ns, func(p *v1alpha1.TrafficPolicy) bool {
		got := map[string][]string{}
		for _, tg := range p.Status.Targets {
			got[tg.Name] = tg.DataPlanes
		}
		return len(got) == 3 && slices.Equal(got["api"], want["api"]) && slices.Equal(got["mixed"], want["mixed"]) && slices.Equal(got["unread"], want["unread"])
	})
	writer := map[string]string{"api": envoygateway.ProviderName, "unread": envoygateway.ProviderName, "mixed": gatewayapi.ProviderName}
	for _, tg := range p.Status.Targets {
		if tg.Capabilities == nil || tg.Capabilities.Provider != writer[tg.Name] {
			t.Errorf("%s is written by %v, want %s", tg.Name, tg.Capabilities, writer[tg.Name])
		}
		several := slices.ContainsFunc(tg.Warnings, func(w string) bool {
			return strings.Contains(w, "served by several data planes (envoy-gateway, traefik)")
		})
		if several != (tg.Name == "mixed") {
			t.Errorf("%s: warnings %q: only the route on two data planes says it is", tg.Name, tg.Warnings)
		}
	}

	out := kubectlFloodgate(t, "status", "api", "-n", ns)
	if !strings.Contains(out, "via gateway-api on envoy-gateway, traefik") {
		t.Errorf("status does not name the mixed route's data planes:\n%s", out)
	}
	out = kubectlFloodgate(t, "shed", "api", "-n", ns, "--dry-run")
	for _, w := range []string{"HTTPRoute api: envoy-gateway on envoy-gateway", "HTTPRoute mixed: gateway-api on envoy-gateway, traefik",
		"warning: served by several data planes (envoy-gateway, traefik)"} {
		if !strings.Contains(out, w) {
			t.Errorf("dry run does not show %q:\n%s", w, out)
		}
	}
}
