// Package envoygateway is Envoy Gateway (v1.6 or later; its CRDs and translator v1.9.1 are what
// the tests run) as a data plane of its own, for HTTPRoutes whose parents' GatewayClass
// controllerName is Envoy Gateway's (gateway.envoyproxy.io/gatewayclass-controller; other names
// by the manager's --data-plane-controllers NAME=envoy-gateway).
//
// The writes are core Gateway API's (the provider embeds it), with two levers core Gateway API
// lacks, each an object of Envoy Gateway's that the policy owns, one per route:
//   - ShedAll: the proxy answers the herd itself, by an HTTPRouteFilter's directResponse (the
//     policy's status code, body and Retry-After) that every rule references by ExtensionRef,
//     with no backendRefs: no shed pod is in the herd's path (directresponse.go);
//   - perClientRequestsPerSecond: a BackendTrafficPolicy targeting the route, a local rate limit
//     keyed by the client address, answered 429 (ratelimit.go).
//
// Everything else (the region allowlist, admitPercent's weights, the restore record, the gateway's
// verdict) is core Gateway API's.
package envoygateway

import (
	"context"
	"maps"
	"slices"

	"k8s.io/apimachinery/pkg/api/meta"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/internal/owned"
	"floodgate.dev/floodgate/internal/provider"
	"floodgate.dev/floodgate/internal/provider/gatewayapi"
)

// DataPlane is Envoy Gateway.
const DataPlane provider.DataPlane = "envoy-gateway"

// ProviderName names this provider in status (capabilities.provider).
const ProviderName = "envoy-gateway"

// Group is Envoy Gateway's API group.
const Group = "gateway.envoyproxy.io"

// The RBAC of Envoy Gateway's levers: the HTTPRouteFilter and the BackendTrafficPolicy a policy
// owns beside each route, and the BackendTrafficPolicies already targeting a route (listed and
// watched, so a limit that would conflict with one of yours is refused up front, and a change of
// yours or of the verdict on Floodgate's wakes the policies of the routes they target).
// +kubebuilder:rbac:groups=gateway.envoyproxy.io,resources=httproutefilters,verbs=get;create;patch;delete
// +kubebuilder:rbac:groups=gateway.envoyproxy.io,resources=backendtrafficpolicies,verbs=get;list;watch;create;patch;delete

// Capabilities are what an HTTPRoute on Envoy Gateway can and cannot do, published in status:
// core Gateway API's, with a per-client limit per Envoy replica answered 429 (Envoy's local rate
// limit: a token bucket of one second's worth), backends chosen at random by weight, and a ShedAll
// answered by the proxy.
var Capabilities = func() v1alpha1.Capabilities {
	c := *gatewayapi.Capabilities.DeepCopy()
	c.Provider = ProviderName
	c.RateLimitScope = "PerClientPerReplica"
	c.RateLimitStatusCode = 429
	c.RateLimitBurstMultiplier = 1
	c.AdmitPercentSelection = "Random"
	c.ShedAnsweredBy = v1alpha1.ShedAnsweredByProxy
	c.AllowlistCost = "one rule of header matches per allowlist; Exact matches where the route's limits allow, " +
		"else one RegularExpression, RE2 (Envoy's safe_regex), compiled once per configuration"
	return c
}()

// RouteProvider applies knobs to HTTPRoutes whose Gateways are Envoy Gateway's. Build it with
// Provider.PerClient a *RateLimits and Provider.Answer a *DirectResponses (New does).
type RouteProvider struct {
	gatewayapi.Provider
}

var (
	_ provider.Provider    = (*RouteProvider)(nil)
	_ provider.OnDataPlane = (*RouteProvider)(nil)
	_ provider.Documented  = (*RouteProvider)(nil)
	_ provider.Discovering = (*RouteProvider)(nil)
	_ provider.Attached    = (*RouteProvider)(nil)
)

// New is Envoy Gateway's provider on core Gateway API's settings.
func New(core gatewayapi.Provider) *RouteProvider {
	core.PerClient, core.Answer = &RateLimits{}, &DirectResponses{}
	return &RouteProvider{Provider: core}
}

// DataPlane is Envoy Gateway.
func (p *RouteProvider) DataPlane() provider.DataPlane { return DataPlane }

// ControllerNames: Envoy Gateway's GatewayClass controllerName.
func (p *RouteProvider) ControllerNames() []string {
	return []string{gatewayapi.EnvoyGatewayController}
}

// Discover asks the cluster whether it serves Envoy Gateway's HTTPRouteFilter and
// BackendTrafficPolicy.
func (p *RouteProvider) Discover(mapper meta.RESTMapper) {
	if a, ok := p.Answer.(*DirectResponses); ok {
		_, err := mapper.RESTMapping(FilterGVK.GroupKind(), FilterGVK.Version)
		a.Served = err == nil
	}
	if l, ok := p.PerClient.(*RateLimits); ok {
		_, err := mapper.RESTMapping(PolicyGVK.GroupKind(), PolicyGVK.Version)
		l.Served = err == nil
	}
}

// answers and limits are the provider's two levers of Envoy Gateway's (nil when built without).
func (p *RouteProvider) answers() *DirectResponses {
	a, _ := p.Answer.(*DirectResponses)
	return a
}

func (p *RouteProvider) limits() *RateLimits {
	l, _ := p.PerClient.(*RateLimits)
	return l
}

// beside is what Observe read of Envoy Gateway's objects beside a route, for Render and
// Unsupported.
type beside struct {
	// others name the BackendTrafficPolicies not this policy's that target the route.
	others []string
}

// Observe is the Gateway API provider's, with Envoy Gateway's capabilities; the
// BackendTrafficPolicies of others on the route (a limit would conflict with them) and the
// verdict on this policy's; and a direct response that is to go but may still be in use.
func (p *RouteProvider) Observe(ctx context.Context, policy *v1alpha1.TrafficPolicy, ref provider.Ref, d provider.Desired) (*provider.Observation, error) {
	obs, err := p.Provider.Observe(ctx, policy, ref, d)
	if obs == nil || err != nil {
		return obs, err
	}
	obs.Status.Target.Capabilities = p.capabilities()
	route := gatewayapi.ObservedRoute(obs)
	if route == nil {
		return obs, nil
	}
	var st beside
	if l := p.limits(); l != nil && l.Served && limitsAtAll(policy, d) {
		if st.others, err = l.othersOn(ctx, p.Client, policy, route); err != nil {
			return nil, err
		}
		problems, err := l.observe(ctx, p.Client, policy, route, d, st.others)
		if err != nil {
			return nil, err
		}
		obs.Problems = append(obs.Problems, problems...)
	}
	gatewayapi.SetDataPlaneState(obs, &st)
	if a := p.answers(); a != nil && a.Served && !armed(policy, route) {
		problem, err := a.inUse(ctx, p.Client, policy, route)
		if err != nil {
			return nil, err
		}
		if problem != nil {
			obs.Problems = append(obs.Problems, *problem)
		}
	}
	return obs, nil
}

// capabilities are Envoy Gateway's, less what the cluster does not serve.
func (p *RouteProvider) capabilities() *v1alpha1.Capabilities {
	c := Capabilities.DeepCopy()
	if a := p.answers(); a == nil || !a.Served {
		c.ShedAnsweredBy = v1alpha1.ShedAnsweredByShedServer
	}
	return c
}

// Unsupported is the Gateway API provider's, and a limit on a route someone else's
// BackendTrafficPolicy targets already.
func (p *RouteProvider) Unsupported(policy *v1alpha1.TrafficPolicy, obs *provider.Observation, d provider.Desired) string {
	if why := p.Provider.Unsupported(policy, obs, d); why != "" {
		return why
	}
	st, _ := gatewayapi.DataPlaneState(obs).(*beside)
	if route := gatewayapi.ObservedRoute(obs); st != nil && route != nil && limitRate(d) > 0 && len(st.others) > 0 {
		return conflictRefusal(route.Name, st.others)
	}
	return ""
}

// Render is the Gateway API provider's, with the route's two objects of Envoy Gateway's in step:
// the direct response ensured while the policy names the route (armed: a ShedAll only adds the
// references), removed once Envoy Gateway no longer uses it; the rate limit ensured while a step
// limits, else removed. status.targets[].companion names them while either stands, so a route
// the policy no longer names is visited again until they are gone.
func (p *RouteProvider) Render(policy *v1alpha1.TrafficPolicy, obs *provider.Observation, d provider.Desired, recordCopy string) (provider.Change, error) {
	ch, err := p.Provider.Render(policy, obs, d, recordCopy)
	route := gatewayapi.ObservedRoute(obs)
	if err != nil || ch.After == nil || route == nil {
		return ch, err
	}
	standing := false
	if a := p.answers(); a != nil && a.Served {
		switch {
		case armed(policy, route):
			ch.Ensure = append(ch.Ensure, a.companion(policy, route.Name))
			standing = true
		case slices.ContainsFunc(obs.Problems, provider.InUse):
			standing = true
		default:
			ch.Remove = append(ch.Remove, filterNamed(policy, route.Name))
		}
	}
	if l := p.limits(); l != nil && l.Served {
		st, _ := gatewayapi.DataPlaneState(obs).(*beside)
		if rps := limitRate(d); rps > 0 && (st == nil || len(st.others) == 0) && policy.DeletionTimestamp.IsZero() {
			ch.Ensure = append(ch.Ensure, rateLimit(policy, route.Name, rps))
			standing = true
		} else {
			ch.Remove = append(ch.Remove, policyNamed(policy, route.Name))
		}
	}
	if standing {
		ch.Status.Target.Companion = CompanionName(policy.Name, route.Name)
	}
	return ch, nil
}

// armed reports whether the route's direct response stands: the policy names the route and is not
// being deleted, so a ShedAll can be pulled at any moment and only adds the references.
func armed(policy *v1alpha1.TrafficPolicy, route *gatewayv1.HTTPRoute) bool {
	return policy.DeletionTimestamp.IsZero() && gatewayapi.Targets(policy, route)
}

// CompanionName names the objects a policy owns beside a route (its HTTPRouteFilter and its
// BackendTrafficPolicy, one of each kind).
func CompanionName(policy, route string) string { return owned.Name(253, "floodgate", policy, route) }

// limitRate is the per-client rate d puts in force (0: none).
func limitRate(d provider.Desired) int32 {
	if k := d.Knobs.Traffic(); !k.Shed && k.PerClientRequestsPerSecond > 0 {
		return k.PerClientRequestsPerSecond
	}
	return 0
}

// limitsAtAll reports whether d or any ramp step of the policy limits per client: the
// BackendTrafficPolicies already on the route are read only then.
func limitsAtAll(policy *v1alpha1.TrafficPolicy, d provider.Desired) bool {
	if limitRate(d) > 0 {
		return true
	}
	if policy.Spec.Ramp == nil {
		return false
	}
	return slices.ContainsFunc(policy.Spec.Ramp.Steps, func(s v1alpha1.RampStep) bool {
		return s.PerClientRequestsPerSecond != nil && *s.PerClientRequestsPerSecond > 0
	})
}

// Mechanisms: Envoy Gateway's column for HTTPRoutes, as its translator (egctl x translate v1.9.1)
// shows it.
func (p *RouteProvider) Mechanisms() []provider.Mechanism {
	core := p.Provider.Mechanisms()[0]
	how := maps.Clone(core.How)
	how[provider.KnobShedAll] = "every rule of **your** HTTPRoute gets an `ExtensionRef` to an Envoy Gateway `HTTPRouteFilter` `floodgate-<policy>-<route>` and no backendRefs (the rules are recorded first): " +
		"Envoy answers the herd itself (`direct_response`: the policy's status code and body, `Retry-After`), no shed pod in its path. " +
		"The filter stands, unreferenced, from the policy's first pass (a reference to a missing one answers 500), and goes only once Envoy Gateway has reported on the route without it. " +
		"Needs Envoy Gateway v1.6 or later; without its CRDs, the shed Service answers, as on core Gateway API"
	how[provider.KnobAllowlistAdmit] = "as core Gateway API; the `RegularExpression` is RE2 (Envoy's `safe_regex`); refused regions go to the shed Service"
	how[provider.KnobAdmitPercent] = "as core Gateway API: your backendRefs' weights scaled against a shed backendRef; Envoy picks a weighted cluster at random per request (not `faultInjection`, which would need a BackendTrafficPolicy on the route and so conflict with yours)"
	how[provider.KnobPerClientRate] = "an Envoy Gateway `BackendTrafficPolicy` `floodgate-<policy>-<route>` the policy owns targets the route while a step limits: `rateLimit.local`, " +
		"two rules (`sourceCIDR` `0.0.0.0/0` and `::/0`, `type: Distinct`: one bucket per client address) of the rate per second, `mergeType: StrategicMerge` " +
		"(a BackendTrafficPolicy of yours on the Gateway keeps its retries and circuit breakers); one of yours on the route itself is refused up front " +
		"(Envoy Gateway applies only the oldest one on a route); it covers every rule of the route, Floodgate's own to the shed Service too; excess gets 429; per client and per Envoy replica"
	how[provider.KnobGatewayVerdict] = core.How[provider.KnobGatewayVerdict] + "; the BackendTrafficPolicy's `status.ancestors` too: not `Accepted` is `RejectedByGateway`"
	return []provider.Mechanism{{Name: "Envoy Gateway v1.6+ (Gateway API)", How: how}}
}
