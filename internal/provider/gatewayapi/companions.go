package gatewayapi

import (
	"slices"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/labels"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"floodgate.dev/floodgate/api/v1alpha1"
)

// What a data plane's provider needs to keep an object of its own beside a route (a Traefik
// Middleware, an Envoy Gateway HTTPRouteFilter): whether the policy still names the route, and
// whether the route may still use the object through an ExtensionRef filter.

// Targets reports whether the policy's spec names the route or selects it.
func Targets(policy *v1alpha1.TrafficPolicy, route *gatewayv1.HTTPRoute) bool {
	gk := GVK.GroupKind()
	for _, ref := range policy.Spec.TargetRefs {
		if ref.Name == route.Name && string(ref.Kind) == gk.Kind && ref.Group == gk.Group {
			return true
		}
	}
	sel := policy.Spec.TargetSelector
	if sel == nil || !sel.SelectsKind(gk.Group, gk.Kind) {
		return false
	}
	selector, err := sel.LabelSelector()
	return err == nil && selector.Matches(labels.Set(route.Labels))
}

// References reports whether a rule of the route carries the filter.
func References(route *gatewayv1.HTTPRoute, filter gatewayv1.HTTPRouteFilter) bool {
	return slices.ContainsFunc(route.Spec.Rules, func(r gatewayv1.HTTPRouteRule) bool {
		return slices.ContainsFunc(r.Filters, func(f gatewayv1.HTTPRouteFilter) bool { return equality.Semantic.DeepEqual(f, filter) })
	})
}

// StillUses says whether the route's data plane may still use the object a filter references,
// and, when it may, the generation of the route it must report on first: a rule references it
// now (this pass drops the references, so the next generation), or the gateways have not reported
// on the route's current generation.
func StillUses(route *gatewayv1.HTTPRoute, filter gatewayv1.HTTPRouteFilter) (bool, int64) {
	switch {
	case References(route, filter):
		return true, route.Generation + 1
	case len(VerdictOf(route).Pending) > 0:
		return true, route.Generation
	}
	return false, 0
}
