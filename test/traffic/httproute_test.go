package traffic

import (
	"context"
	"net"
	"strconv"
	"testing"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/test/fixtures"
)

// routeFixture creates the app, a Gateway of Traefik's class listening on the proxy's entry
// point, the HTTPRoute api (host NAMESPACE.example.com, / to the app), and a policy api on it with
// edit applied (Normal), and waits until the app answers through Traefik. It returns the
// namespace and the route's spec as created.
func routeFixture(t *testing.T, name string, edit func(*v1alpha1.TrafficPolicy)) (string, gatewayv1.HTTPRouteSpec) {
	t.Helper()
	ns := appBackend(t, name)
	_, port, err := net.SplitHostPort(proxy)
	if err != nil {
		t.Fatal(err)
	}
	listenerPort, err := strconv.Atoi(port)
	if err != nil {
		t.Fatal(err)
	}
	route := &gatewayv1.HTTPRoute{
		ObjectMeta: metav1.ObjectMeta{Name: "api", Namespace: ns},
		Spec: gatewayv1.HTTPRouteSpec{
			CommonRouteSpec: gatewayv1.CommonRouteSpec{ParentRefs: []gatewayv1.ParentReference{{Name: "traefik"}}},
			Hostnames:       []gatewayv1.Hostname{gatewayv1.Hostname(ns + ".example.com")},
			Rules: []gatewayv1.HTTPRouteRule{{
				Matches: []gatewayv1.HTTPRouteMatch{{Path: &gatewayv1.HTTPPathMatch{Type: ptr.To(gatewayv1.PathMatchPathPrefix), Value: ptr.To("/")}}},
				BackendRefs: []gatewayv1.HTTPBackendRef{{BackendRef: gatewayv1.BackendRef{BackendObjectReference: gatewayv1.BackendObjectReference{
					Name: "app", Port: ptr.To[gatewayv1.PortNumber](80)}}}},
			}},
		},
	}
	p := &v1alpha1.TrafficPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "api", Namespace: ns},
		Spec: v1alpha1.TrafficPolicySpec{
			TargetRefs: []v1alpha1.TargetRef{{Group: v1alpha1.GroupGatewayAPI, Kind: v1alpha1.TargetKindHTTPRoute, Name: "api"}},
			Action:     v1alpha1.ActionNormal,
		},
	}
	if edit != nil {
		edit(p)
	}
	fixtures.Create(t, k8s,
		&gatewayv1.Gateway{ObjectMeta: metav1.ObjectMeta{Name: "traefik", Namespace: ns}, Spec: gatewayv1.GatewaySpec{
			GatewayClassName: traefikGatewayClass,
			Listeners:        []gatewayv1.Listener{{Name: "web", Protocol: gatewayv1.HTTPProtocolType, Port: gatewayv1.PortNumber(listenerPort)}}}},
		route, p)
	settle(t, get(ns+".example.com"), app)
	return ns, getRoute(t, ns).Spec
}

func getRoute(t *testing.T, ns string) *gatewayv1.HTTPRoute {
	t.Helper()
	r := &gatewayv1.HTTPRoute{}
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "api"}, r); err != nil {
		t.Fatal(err)
	}
	return r
}

// routeUnchanged fails unless the route's spec is as it was set up.
func routeUnchanged(t *testing.T, ns string, was gatewayv1.HTTPRouteSpec) {
	t.Helper()
	if now := getRoute(t, ns).Spec; !equality.Semantic.DeepEqual(now, was) {
		t.Fatalf("HTTPRoute %s/api is not as it was set up:\nwas %+v\nnow %+v", ns, was, now)
	}
}
