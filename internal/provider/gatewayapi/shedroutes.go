package gatewayapi

import (
	"context"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"floodgate.dev/floodgate/internal/shed"
)

// What an HTTPRoute carries, for the shed server's table and the claims across namespaces
// (shed.Kind).
var _ shed.Kind = (*Provider)(nil)

// NewList is an empty HTTPRouteList.
func (p *Provider) NewList() client.ObjectList { return &gatewayv1.HTTPRouteList{} }

// ShedRoutes are the routes an HTTPRoute names: each of its hostnames (none: every host) with
// the path of each match of each rule (a rule without matches: every path). A path matched by a
// regular expression is claimed as the whole host: the table does not evaluate regexes.
func ShedRoutes(route *gatewayv1.HTTPRoute) []shed.Route {
	return routesOn(route, route.Spec.Hostnames)
}

// NamedRoutes are ShedRoutes.
func (p *Provider) NamedRoutes(obj client.Object) []shed.Route {
	return ShedRoutes(obj.(*gatewayv1.HTTPRoute))
}

// routesOn are the routes an HTTPRoute carries on hostnames (none: every host).
func routesOn(route *gatewayv1.HTTPRoute, hostnames []gatewayv1.Hostname) []shed.Route {
	hosts := []string{""}
	if len(hostnames) > 0 {
		hosts = hosts[:0]
		for _, h := range hostnames {
			hosts = append(hosts, strings.ToLower(string(h)))
		}
	}
	var paths []shed.Route
	for _, rule := range route.Spec.Rules {
		if len(rule.Matches) == 0 {
			paths = append(paths, shed.Route{Path: "/"})
		}
		for _, m := range rule.Matches {
			switch {
			case m.Path == nil || m.Path.Value == nil:
				paths = append(paths, shed.Route{Path: "/"})
			case m.Path.Type != nil && *m.Path.Type == gatewayv1.PathMatchRegularExpression:
				paths = append(paths, shed.Route{Path: "/"})
			default:
				paths = append(paths, shed.Route{Path: *m.Path.Value, Exact: m.Path.Type != nil && *m.Path.Type == gatewayv1.PathMatchExact})
			}
		}
	}
	var out []shed.Route
	for _, h := range hosts {
		for _, p := range paths {
			if r := (shed.Route{Host: h, Path: p.Path, Exact: p.Exact}); !slices.Contains(out, r) {
				out = append(out, r)
			}
		}
	}
	return out
}

// Accepted reports whether a route carries traffic: some parent (a Gateway) has Accepted it.
func Accepted(route *gatewayv1.HTTPRoute) bool {
	return slices.ContainsFunc(route.Status.Parents, func(p gatewayv1.RouteParentStatus) bool {
		return meta.IsStatusConditionTrue(p.Conditions, string(gatewayv1.RouteConditionAccepted))
	})
}

// ReadCarrier: a route carries traffic once a parent accepted it, on the hosts its Gateways
// serve it (Carried); its parent Gateways are read through c.
func (p *Provider) ReadCarrier(ctx context.Context, c client.Reader, _ bool) (shed.Carrier, error) {
	gateway := func(namespace, name string) *gatewayv1.Gateway {
		var gw gatewayv1.Gateway
		if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, &gw); err != nil {
			return nil
		}
		return &gw
	}
	return func(obj client.Object) []shed.Route {
		route := obj.(*gatewayv1.HTTPRoute)
		if !Accepted(route) {
			return nil
		}
		return Carried(route, gateway)
	}, nil
}

// Carried are the routes an HTTPRoute carries, as its Gateways (gateway reads one; nil: not
// found or not readable) serve it: a route without hostnames covers its listeners' hostnames
// (Gateway API's intersection: those of the listeners its parentRefs attach to, by sectionName
// and port). It is a catch-all only when one of those listeners has no hostname, or a parent
// cannot be read (the safe side: more overlap, never less).
func Carried(route *gatewayv1.HTTPRoute, gateway func(namespace, name string) *gatewayv1.Gateway) []shed.Route {
	if len(route.Spec.Hostnames) > 0 {
		return ShedRoutes(route)
	}
	var hostnames []gatewayv1.Hostname
	for _, ref := range route.Spec.ParentRefs {
		if ref.Kind != nil && *ref.Kind != "Gateway" || ref.Group != nil && *ref.Group != gatewayv1.GroupName {
			return ShedRoutes(route)
		}
		ns := route.Namespace
		if ref.Namespace != nil {
			ns = string(*ref.Namespace)
		}
		gw := gateway(ns, string(ref.Name))
		if gw == nil {
			return ShedRoutes(route)
		}
		for _, l := range gw.Spec.Listeners {
			if ref.SectionName != nil && *ref.SectionName != l.Name || ref.Port != nil && *ref.Port != l.Port {
				continue
			}
			if l.Hostname == nil || *l.Hostname == "" {
				return ShedRoutes(route)
			}
			if !slices.Contains(hostnames, *l.Hostname) {
				hostnames = append(hostnames, *l.Hostname)
			}
		}
	}
	if len(hostnames) == 0 {
		return ShedRoutes(route)
	}
	return routesOn(route, hostnames)
}

// Follows: a Gateway's listeners' hostnames are what a route without hostnames covers.
func (p *Provider) Follows(bool) []client.Object { return []client.Object{&gatewayv1.Gateway{}} }

// CarryingChanged: a gateway accepting a route, or no longer, makes it start or stop carrying.
func (p *Provider) CarryingChanged(old, new client.Object) bool {
	return Accepted(old.(*gatewayv1.HTTPRoute)) != Accepted(new.(*gatewayv1.HTTPRoute))
}
