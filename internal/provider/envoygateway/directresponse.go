package envoygateway

import (
	"context"
	"fmt"
	"strconv"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/internal/provider"
	"floodgate.dev/floodgate/internal/provider/gatewayapi"
	"floodgate.dev/floodgate/internal/shed"
)

// FilterGVK is Envoy Gateway's HTTPRouteFilter, which an HTTPRoute rule references by
// ExtensionRef.
var FilterGVK = schema.GroupVersionKind{Group: Group, Version: "v1alpha1", Kind: "HTTPRouteFilter"}

// DirectResponses are Envoy Gateway's own answer to a ShedAll: an HTTPRouteFilter whose
// directResponse is the policy's shed answer, one per route and policy.
type DirectResponses struct {
	// Served is whether the cluster serves Envoy Gateway's HTTPRouteFilter
	// (RouteProvider.Discover).
	Served bool
}

var _ gatewayapi.ShedAnswer = (*DirectResponses)(nil)

// Unavailable: without Envoy Gateway's HTTPRouteFilter CRD the shed Service answers a ShedAll.
func (a *DirectResponses) Unavailable() string {
	if a.Served {
		return ""
	}
	return "Envoy Gateway's HTTPRouteFilter (httproutefilters.gateway.envoyproxy.io) is not served: a ShedAll sends the herd to the shed Service"
}

// Filter references the route's direct response.
func (a *DirectResponses) Filter(policy *v1alpha1.TrafficPolicy, route string) gatewayv1.HTTPRouteFilter {
	return gatewayv1.HTTPRouteFilter{Type: gatewayv1.HTTPRouteFilterExtensionRef, ExtensionRef: &gatewayv1.LocalObjectReference{
		Group: gatewayv1.Group(FilterGVK.Group), Kind: gatewayv1.Kind(FilterGVK.Kind), Name: gatewayv1.ObjectName(CompanionName(policy.Name, route))}}
}

// DirectResponse is the spec.directResponse of a policy's HTTPRouteFilter: the shed server's
// answer (status code, JSON body, Retry-After), and the marks a probe reads (the shed mark, the
// policy and its generation), so Confirmed says the proxy answers for this generation of the
// policy. Every field the CRD defaults is written, so the stored filter equals it.
func DirectResponse(policy *v1alpha1.TrafficPolicy) map[string]any {
	answer := shed.AnswerOf(policy, nil)
	headers := []any{
		header(shed.ShedHeader, "true"),
		header(shed.ProbePolicyHeader, answer.Policy),
		header(shed.ProbeGenerationHeader, strconv.FormatInt(policy.Generation, 10)),
	}
	if answer.RetryAfter > 0 {
		headers = append([]any{header("Retry-After", strconv.Itoa(answer.RetryAfter))}, headers...)
	}
	return map[string]any{
		"statusCode":  int64(answer.StatusCode),
		"contentType": "application/json",
		"body":        map[string]any{"type": "Inline", "inline": string(answer.JSONBody())},
		"header":      map[string]any{"set": headers},
	}
}

func header(name, value string) map[string]any { return map[string]any{"name": name, "value": value} }

// companion is the route's HTTPRouteFilter, as wanted.
func (a *DirectResponses) companion(policy *v1alpha1.TrafficPolicy, route string) provider.Companion {
	f := filterNamed(policy, route)
	f.Object["spec"] = map[string]any{"directResponse": DirectResponse(policy)}
	return provider.Companion{Desired: f, Sync: provider.SyncSpec}
}

// FilterInUseError is a direct response that is to go while Envoy Gateway may still route a
// rule to it.
type FilterInUseError struct {
	Route, Filter string
	Generation    int64
}

func (e *FilterInUseError) Error() string {
	return fmt.Sprintf("HTTPRoute %s: HTTPRouteFilter %s goes once Envoy Gateway has reported on generation %d of the route, which no longer references it "+
		"(a rule referencing a missing filter answers 500)", e.Route, e.Filter, e.Generation)
}

// Unwrap: a companion still in use by the data plane.
func (e *FilterInUseError) Unwrap() error { return provider.ErrCompanionInUse }

// inUse is a FilterInUseError when the route's direct response, which is to go, still stands and
// Envoy Gateway may still use it (nil when it may go).
func (a *DirectResponses) inUse(ctx context.Context, c client.Client, policy *v1alpha1.TrafficPolicy, route *gatewayv1.HTTPRoute) (*provider.Problem, error) {
	uses, gen := gatewayapi.StillUses(route, a.Filter(policy, route.Name))
	if !uses {
		return nil, nil
	}
	f := filterNamed(policy, route.Name)
	switch err := c.Get(ctx, client.ObjectKeyFromObject(f), f); {
	case apierrors.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("reading HTTPRouteFilter %s: %w", f.GetName(), err)
	}
	p := provider.ProblemOf(&FilterInUseError{Route: route.Name, Filter: f.GetName(), Generation: gen})
	return &p, nil
}

// filterNamed is the route's HTTPRouteFilter, by name.
func filterNamed(policy *v1alpha1.TrafficPolicy, route string) *unstructured.Unstructured {
	return named(FilterGVK, policy, route)
}

func named(gvk schema.GroupVersionKind, policy *v1alpha1.TrafficPolicy, route string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(gvk)
	u.SetNamespace(policy.Namespace)
	u.SetName(CompanionName(policy.Name, route))
	return u
}
