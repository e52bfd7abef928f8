package shed

import (
	"context"
	"fmt"
	"slices"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// Served says which objects carry traffic. Only those make claims on a shed answer: an object no
// data plane routes (an Ingress of a class nobody serves, a route no Gateway accepted) chooses
// nobody's answer, however its hosts overlap another namespace's.
type Served struct {
	// IngressClasses are the names of the IngressClasses that exist; nil: not known (a
	// namespaced install reads none), and every Ingress counts as carrying traffic.
	IngressClasses map[string]bool
	// Gateway reads a route's parent Gateway (nil: not found, or not readable); nil: Gateways
	// are not read, and a route without hostnames counts as a catch-all.
	Gateway func(namespace, name string) *gatewayv1.Gateway
}

// HTTPRouteRoutes are the routes an HTTPRoute carries, as its Gateways serve it: a route without
// hostnames covers its listeners' hostnames (Gateway API's intersection: those of the listeners
// its parentRefs attach to, by sectionName and port). It is a catch-all only when one of those
// listeners has no hostname, or a parent cannot be read (the safe side: more overlap, never less).
func (s Served) HTTPRouteRoutes(route *gatewayv1.HTTPRoute) []Route {
	if len(route.Spec.Hostnames) > 0 || s.Gateway == nil {
		return HTTPRouteRoutes(route)
	}
	var hostnames []gatewayv1.Hostname
	for _, ref := range route.Spec.ParentRefs {
		if ref.Kind != nil && *ref.Kind != "Gateway" || ref.Group != nil && *ref.Group != gatewayv1.GroupName {
			return HTTPRouteRoutes(route)
		}
		ns := route.Namespace
		if ref.Namespace != nil {
			ns = string(*ref.Namespace)
		}
		gw := s.Gateway(ns, string(ref.Name))
		if gw == nil {
			return HTTPRouteRoutes(route)
		}
		for _, l := range gw.Spec.Listeners {
			if ref.SectionName != nil && *ref.SectionName != l.Name || ref.Port != nil && *ref.Port != l.Port {
				continue
			}
			if l.Hostname == nil || *l.Hostname == "" {
				return HTTPRouteRoutes(route)
			}
			if !slices.Contains(hostnames, *l.Hostname) {
				hostnames = append(hostnames, *l.Hostname)
			}
		}
	}
	if len(hostnames) == 0 {
		return HTTPRouteRoutes(route)
	}
	return httpRouteRoutesOn(route, hostnames)
}

// Ingress reports whether an Ingress carries traffic. One whose spec.ingressClassName names an
// IngressClass that does not exist does not: no controller serves it. One without
// spec.ingressClassName may be served (by the default class, by the legacy
// kubernetes.io/ingress.class annotation, by a controller watching class-less Ingresses), so it
// counts.
func (s Served) Ingress(ing *networkingv1.Ingress) bool {
	if s.IngressClasses == nil || ing.Spec.IngressClassName == nil {
		return true
	}
	return s.IngressClasses[*ing.Spec.IngressClassName]
}

// HTTPRoute reports whether a route carries traffic: some parent (a Gateway) has Accepted it.
func (Served) HTTPRoute(route *gatewayv1.HTTPRoute) bool {
	return slices.ContainsFunc(route.Status.Parents, func(p gatewayv1.RouteParentStatus) bool {
		return meta.IsStatusConditionTrue(p.Conditions, string(gatewayv1.RouteConditionAccepted))
	})
}

// ingressClassNames are the names of a list of IngressClasses, as Served holds them.
func ingressClassNames(list *networkingv1.IngressClassList) map[string]bool {
	out := make(map[string]bool, len(list.Items))
	for _, c := range list.Items {
		out[c.Name] = true
	}
	return out
}

// ReadServed reads, through c (a cache), what Served needs: the IngressClasses that exist when
// classes (a cluster-wide reader: they are cluster-scoped), and a lookup of Gateways when
// gateways (Gateway API is served). A Gateway that cannot be read is nil: its routes count as a
// catch-all.
func ReadServed(ctx context.Context, c client.Reader, classes, gateways bool) (Served, error) {
	var served Served
	if gateways {
		served.Gateway = func(namespace, name string) *gatewayv1.Gateway {
			var gw gatewayv1.Gateway
			if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, &gw); err != nil {
				return nil
			}
			return &gw
		}
	}
	if classes {
		var list networkingv1.IngressClassList
		if err := c.List(ctx, &list); err != nil {
			return served, fmt.Errorf("listing IngressClasses: %w", err)
		}
		served.IngressClasses = ingressClassNames(&list)
	}
	return served, nil
}
