package envoygateway

import (
	"context"
	"fmt"
	"slices"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/internal/owned"
	"floodgate.dev/floodgate/internal/provider"
	"floodgate.dev/floodgate/internal/provider/gatewayapi"
)

// PolicyGVK is Envoy Gateway's BackendTrafficPolicy.
var PolicyGVK = schema.GroupVersionKind{Group: Group, Version: "v1alpha1", Kind: "BackendTrafficPolicy"}

// RateLimits are the per-client limits of HTTPRoutes on Envoy Gateway: a BackendTrafficPolicy of
// a local rate limit keyed by the client address, one per route and policy, targeting the route
// itself (no filter on the rules).
type RateLimits struct {
	// Served is whether the cluster serves Envoy Gateway's BackendTrafficPolicy
	// (RouteProvider.Discover).
	Served bool
}

var _ gatewayapi.PerClientLimit = (*RateLimits)(nil)

// Unavailable: without Envoy Gateway's BackendTrafficPolicy CRD no limit can be written.
func (l *RateLimits) Unavailable() string {
	if l.Served {
		return ""
	}
	return "perClientRequestsPerSecond on Envoy Gateway needs its BackendTrafficPolicy (backendtrafficpolicies.gateway.envoyproxy.io), which this cluster does not serve: " +
		"install Envoy Gateway's CRDs, then restart the Floodgate manager"
}

// Filter: the limit targets the route, so its rules carry no filter for it.
func (l *RateLimits) Filter(*v1alpha1.TrafficPolicy, string) *gatewayv1.HTTPRouteFilter { return nil }

// RateLimitSpec is the spec of a policy's BackendTrafficPolicy on a route: a local rate limit of
// rps requests a second per client address, one rule per address family (sourceCIDR needs a
// value; type Distinct gives every address its own bucket), merged into a BackendTrafficPolicy of
// the user's on the route's Gateway (StrategicMerge), so its retries and circuit breakers stay.
// Every field the CRD defaults is written, so the stored policy equals it.
func RateLimitSpec(route string, rps int32) map[string]any {
	rule := func(cidr string) any {
		return map[string]any{
			"clientSelectors": []any{map[string]any{"sourceCIDR": map[string]any{"type": "Distinct", "value": cidr, "invert": false}}},
			"limit":           map[string]any{"requests": int64(rps), "unit": "Second"},
		}
	}
	return map[string]any{
		"targetRefs": []any{map[string]any{"group": gatewayv1.GroupName, "kind": gatewayapi.GVK.Kind, "name": route}},
		"mergeType":  "StrategicMerge",
		"rateLimit":  map[string]any{"local": map[string]any{"rules": []any{rule("0.0.0.0/0"), rule("::/0")}}},
	}
}

// rateLimit is the route's BackendTrafficPolicy at rps, as wanted.
func rateLimit(policy *v1alpha1.TrafficPolicy, route string, rps int32) provider.Companion {
	btp := policyNamed(policy, route)
	btp.Object["spec"] = RateLimitSpec(route, rps)
	return provider.Companion{Desired: btp, Sync: provider.SyncSpec}
}

// policyNamed is the route's BackendTrafficPolicy, by name.
func policyNamed(policy *v1alpha1.TrafficPolicy, route string) *unstructured.Unstructured {
	return named(PolicyGVK, policy, route)
}

// othersOn names the BackendTrafficPolicies in the route's namespace, not this policy's, that
// target the route (by targetRef, targetRefs, with or without a sectionName, or targetSelectors):
// Envoy Gateway applies only the oldest policy on a route and reports the others Conflicted, so a
// limit of Floodgate's would either drop the user's retries and circuit breakers or not be
// applied at all.
func (l *RateLimits) othersOn(ctx context.Context, c client.Client, policy *v1alpha1.TrafficPolicy, route *gatewayv1.HTTPRoute) ([]string, error) {
	list := &unstructured.UnstructuredList{}
	list.SetGroupVersionKind(PolicyGVK.GroupVersion().WithKind(PolicyGVK.Kind + "List"))
	if err := c.List(ctx, list, client.InNamespace(route.Namespace)); err != nil {
		return nil, fmt.Errorf("listing BackendTrafficPolicies: %w", err)
	}
	var out []string
	for i := range list.Items {
		btp := &list.Items[i]
		if owned.IsOurs(btp, policy) {
			continue
		}
		if TargetsRoute(btp, route) {
			out = append(out, btp.GetName())
		}
	}
	slices.Sort(out)
	return out, nil
}

// TargetsRoute reports whether an Envoy Gateway policy (spec.targetRef, spec.targetRefs,
// spec.targetSelectors) targets the route or one of its rules.
func TargetsRoute(policy *unstructured.Unstructured, route *gatewayv1.HTTPRoute) bool {
	refs, _, _ := unstructured.NestedSlice(policy.Object, "spec", "targetRefs")
	if one, ok, _ := unstructured.NestedMap(policy.Object, "spec", "targetRef"); ok {
		refs = append(refs, one)
	}
	for _, r := range refs {
		m, _ := r.(map[string]any)
		if isRouteKind(m) && m["name"] == route.Name {
			return true
		}
	}
	selectors, _, _ := unstructured.NestedSlice(policy.Object, "spec", "targetSelectors")
	for _, s := range selectors {
		m, _ := s.(map[string]any)
		if !isRouteKind(m) {
			continue
		}
		var sel metav1.LabelSelector
		if runtime.DefaultUnstructuredConverter.FromUnstructured(m, &sel) != nil {
			continue
		}
		if selector, err := metav1.LabelSelectorAsSelector(&sel); err == nil && selector.Matches(labels.Set(route.Labels)) {
			return true
		}
	}
	return false
}

// isRouteKind reports whether a target reference or selector is of HTTPRoutes (the group
// defaults to Gateway API's).
func isRouteKind(m map[string]any) bool {
	group, _ := m["group"].(string)
	return m["kind"] == gatewayapi.GVK.Kind && (group == "" || group == gatewayv1.GroupName)
}

// Attachments: BackendTrafficPolicies, where the cluster serves them (RouteProvider.Discover).
func (p *RouteProvider) Attachments() []client.Object {
	if l := p.limits(); l == nil || !l.Served {
		return nil
	}
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(PolicyGVK)
	return []client.Object{u}
}

// AttachedTo are the HTTPRoutes of a BackendTrafficPolicy's namespace it targets (TargetsRoute).
func (p *RouteProvider) AttachedTo(ctx context.Context, c client.Reader, obj client.Object) ([]client.Object, error) {
	policy, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return nil, nil
	}
	var routes gatewayv1.HTTPRouteList
	if err := c.List(ctx, &routes, client.InNamespace(obj.GetNamespace())); err != nil {
		return nil, fmt.Errorf("listing the HTTPRoutes BackendTrafficPolicy %s may target: %w", obj.GetName(), err)
	}
	var out []client.Object
	for i := range routes.Items {
		if TargetsRoute(policy, &routes.Items[i]) {
			out = append(out, &routes.Items[i])
		}
	}
	return out, nil
}

// conflictRefusal says why a route someone else's BackendTrafficPolicy targets takes no limit.
func conflictRefusal(route string, others []string) string {
	return fmt.Sprintf("HTTPRoute %s is targeted by BackendTrafficPolicy %s, not Floodgate's: Envoy Gateway applies only the oldest BackendTrafficPolicy on a route, "+
		"so a per-client limit of Floodgate's would either not be applied or set yours aside (its retries, circuit breakers, timeouts): "+
		"add the limit to yours (rateLimit.local) or use a step without perClientRequestsPerSecond for this route", route, strings.Join(others, ", "))
}

// observe judges the limit in force: refused when others' BackendTrafficPolicies target the
// route; rejected when Envoy Gateway reported the policy's own not Accepted (Conflicted,
// Invalid) at its current generation.
func (l *RateLimits) observe(ctx context.Context, c client.Client, policy *v1alpha1.TrafficPolicy, route *gatewayv1.HTTPRoute, d provider.Desired, others []string) ([]provider.Problem, error) {
	if limitRate(d) == 0 {
		return nil, nil
	}
	if len(others) > 0 {
		return []provider.Problem{provider.NewProblem(conflictRefusal(route.Name, others), provider.ErrUnsupported)}, nil
	}
	btp := policyNamed(policy, route.Name)
	switch err := c.Get(ctx, client.ObjectKeyFromObject(btp), btp); {
	case apierrors.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("reading BackendTrafficPolicy %s: %w", btp.GetName(), err)
	}
	if why := NotAccepted(btp); why != "" {
		return []provider.Problem{provider.NewProblem(fmt.Sprintf("BackendTrafficPolicy %s (the per-client limit of HTTPRoute %s, generation %d) was not accepted by Envoy Gateway: %s",
			btp.GetName(), route.Name, btp.GetGeneration(), why), provider.ErrRejectedByDataPlane)}, nil
	}
	return nil, nil
}

// NotAccepted says which ancestors of an Envoy Gateway policy reported it not Accepted at its
// current generation, with their reason and message ("" when none did).
func NotAccepted(policy *unstructured.Unstructured) string {
	ancestors, _, _ := unstructured.NestedSlice(policy.Object, "status", "ancestors")
	var out []string
	for _, a := range ancestors {
		m, _ := a.(map[string]any)
		var st struct {
			AncestorRef gatewayv1.ParentReference `json:"ancestorRef"`
			Conditions  []metav1.Condition        `json:"conditions"`
		}
		if runtime.DefaultUnstructuredConverter.FromUnstructured(m, &st) != nil {
			continue
		}
		c := meta.FindStatusCondition(st.Conditions, string(gatewayv1.PolicyConditionAccepted))
		if c == nil || c.Status != metav1.ConditionFalse || c.ObservedGeneration < policy.GetGeneration() {
			continue
		}
		out = append(out, fmt.Sprintf("%s %s (Accepted=False, %s: %s)", orKind(st.AncestorRef.Kind), st.AncestorRef.Name, c.Reason, c.Message))
	}
	return strings.Join(out, "; ")
}

func orKind(k *gatewayv1.Kind) string {
	if k == nil {
		return "Gateway"
	}
	return string(*k)
}
