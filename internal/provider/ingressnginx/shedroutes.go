package ingressnginx

import (
	"context"
	"fmt"
	"strings"

	networkingv1 "k8s.io/api/networking/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"floodgate.dev/floodgate/internal/shed"
)

// What an Ingress carries, for the shed server's table and the claims across namespaces
// (shed.Kind).
var _ shed.Kind = (*Provider)(nil)

// NewList is an empty IngressList.
func (p *Provider) NewList() client.ObjectList { return &networkingv1.IngressList{} }

// ShedRoutes are the routes an Ingress names: every host and path of its rules, and a catch-all
// for its default backend (or when it has no rules).
func ShedRoutes(ing *networkingv1.Ingress) []shed.Route {
	var out []shed.Route
	for _, rule := range ing.Spec.Rules {
		if rule.HTTP == nil {
			continue
		}
		for _, path := range rule.HTTP.Paths {
			out = append(out, shed.Route{Host: strings.ToLower(rule.Host), Path: path.Path,
				Exact: path.PathType != nil && *path.PathType == networkingv1.PathTypeExact})
		}
	}
	if ing.Spec.DefaultBackend != nil || len(ing.Spec.Rules) == 0 {
		out = append(out, shed.Route{Path: "/"})
	}
	return out
}

// NamedRoutes are ShedRoutes.
func (p *Provider) NamedRoutes(obj client.Object) []shed.Route {
	return ShedRoutes(obj.(*networkingv1.Ingress))
}

// ReadCarrier: an Ingress whose spec.ingressClassName names an IngressClass that does not exist
// carries no traffic (no controller serves it). One without spec.ingressClassName may be served
// (by the default class, the legacy annotation, a controller watching class-less Ingresses), so
// it carries its routes; so does every Ingress when the classes cannot be read (namespaced).
func (p *Provider) ReadCarrier(ctx context.Context, c client.Reader, clusterWide bool) (shed.Carrier, error) {
	var classes map[string]bool
	if clusterWide {
		var list networkingv1.IngressClassList
		if err := c.List(ctx, &list); err != nil {
			return nil, fmt.Errorf("listing IngressClasses: %w", err)
		}
		classes = make(map[string]bool, len(list.Items))
		for _, class := range list.Items {
			classes[class.Name] = true
		}
	}
	return func(obj client.Object) []shed.Route {
		ing := obj.(*networkingv1.Ingress)
		if classes != nil && ing.Spec.IngressClassName != nil && !classes[*ing.Spec.IngressClassName] {
			return nil
		}
		return ShedRoutes(ing)
	}, nil
}

// Follows: an IngressClass created or deleted makes the Ingresses of its name start or stop
// carrying traffic (cluster-scoped: followed cluster-wide only).
func (p *Provider) Follows(clusterWide bool) []client.Object {
	if clusterWide {
		return []client.Object{&networkingv1.IngressClass{}}
	}
	return nil
}

// CarryingChanged: whether an Ingress carries traffic is in its spec.
func (p *Provider) CarryingChanged(_, _ client.Object) bool { return false }
