package gatewayapi

import (
	"slices"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

func TestARouteWithoutHostnamesCoversItsListenersHostnames(t *testing.T) {
	listener := func(name string, port gatewayv1.PortNumber, host string) gatewayv1.Listener {
		l := gatewayv1.Listener{Name: gatewayv1.SectionName(name), Port: port, Protocol: gatewayv1.HTTPProtocolType}
		if host != "" {
			l.Hostname = ptr.To(gatewayv1.Hostname(host))
		}
		return l
	}
	gateways := map[string]*gatewayv1.Gateway{
		"shop/eg": {Spec: gatewayv1.GatewaySpec{Listeners: []gatewayv1.Listener{
			listener("shop", 80, "shop.example.org"), listener("eu", 80, "*.eu.example.org"), listener("admin", 8080, "admin.example.org")}}},
		"infra/open": {Spec: gatewayv1.GatewaySpec{Listeners: []gatewayv1.Listener{listener("http", 80, "")}}},
	}
	gateway := func(ns, name string) *gatewayv1.Gateway { return gateways[ns+"/"+name] }
	parent := func(name string, edit func(*gatewayv1.ParentReference)) gatewayv1.ParentReference {
		p := gatewayv1.ParentReference{Name: gatewayv1.ObjectName(name)}
		if edit != nil {
			edit(&p)
		}
		return p
	}
	for _, c := range []struct {
		name    string
		parents []gatewayv1.ParentReference
		want    []string
	}{
		{"every listener of its Gateway", []gatewayv1.ParentReference{parent("eg", nil)}, []string{"shop.example.org", "*.eu.example.org", "admin.example.org"}},
		{"the listener its sectionName names", []gatewayv1.ParentReference{parent("eg", func(p *gatewayv1.ParentReference) { p.SectionName = ptr.To(gatewayv1.SectionName("eu")) })}, []string{"*.eu.example.org"}},
		{"the listeners of its port", []gatewayv1.ParentReference{parent("eg", func(p *gatewayv1.ParentReference) { p.Port = ptr.To(gatewayv1.PortNumber(8080)) })}, []string{"admin.example.org"}},
		{"a listener without hostname: every host", []gatewayv1.ParentReference{parent("open", func(p *gatewayv1.ParentReference) { p.Namespace = ptr.To(gatewayv1.Namespace("infra")) })}, []string{""}},
		{"a Gateway that cannot be read: every host", []gatewayv1.ParentReference{parent("gone", nil)}, []string{""}},
	} {
		t.Run(c.name, func(t *testing.T) {
			route := &gatewayv1.HTTPRoute{ObjectMeta: metav1.ObjectMeta{Namespace: "shop"},
				Spec: gatewayv1.HTTPRouteSpec{CommonRouteSpec: gatewayv1.CommonRouteSpec{ParentRefs: c.parents}, Rules: []gatewayv1.HTTPRouteRule{{}}}}
			var got []string
			for _, r := range Carried(route, gateway) {
				got = append(got, r.Host)
			}
			if !slices.Equal(got, c.want) {
				t.Fatalf("hosts %q, want %q", got, c.want)
			}
		})
	}
}

func TestARouteCarriesTrafficOnceAParentAcceptedIt(t *testing.T) {
	route := &gatewayv1.HTTPRoute{}
	if Accepted(route) {
		t.Fatal("a route without status is accepted by nobody")
	}
	route.Status.Parents = []gatewayv1.RouteParentStatus{
		{Conditions: []metav1.Condition{{Type: string(gatewayv1.RouteConditionAccepted), Status: metav1.ConditionFalse}}},
		{Conditions: []metav1.Condition{{Type: string(gatewayv1.RouteConditionAccepted), Status: metav1.ConditionTrue}}},
	}
	if !Accepted(route) {
		t.Fatal("one parent accepting it is enough")
	}
}
