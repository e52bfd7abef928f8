package traefik

import (
	"context"
	"fmt"
	"maps"
	"slices"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/internal/owned"
	"floodgate.dev/floodgate/internal/provider"
	"floodgate.dev/floodgate/internal/provider/gatewayapi"
)

// MiddlewareGVK is Traefik's Middleware, which its kubernetesCRD provider serves and its Gateway
// provider resolves an ExtensionRef filter to.
var MiddlewareGVK = schema.GroupVersionKind{Group: "traefik.io", Version: "v1alpha1", Kind: "Middleware"}

// The RBAC of the per-client limit on Traefik's HTTPRoutes: the Middleware each limited route
// references, owned by its policy.
// +kubebuilder:rbac:groups=traefik.io,resources=middlewares,verbs=get;create;patch;delete

// RouteCapabilities are what an HTTPRoute on Traefik's Gateway provider can and cannot do,
// published in status: core Gateway API's, with a per-client limit by Traefik's RateLimit
// middleware, answered 429.
var RouteCapabilities = func() v1alpha1.Capabilities {
	c := *gatewayapi.Capabilities.DeepCopy()
	c.Provider = ProviderName
	c.RateLimitScope = "PerClientPerMatchPerReplica"
	c.RateLimitStatusCode = 429
	c.RateLimitBurstMultiplier = 1 // the Middleware's burst is one second's worth
	c.AdmitPercentSelection = "WeightedRoundRobin"
	c.AllowlistCost = "one rule of header matches per allowlist; Exact matches where the route's limits allow, " +
		"else one RegularExpression, compiled once by Go's regexp when Traefik loads the route"
	return c
}()

// RouteProvider applies knobs to HTTPRoutes whose Gateways are Traefik's: core Gateway API's
// writes (Traefik matches RegularExpression headers with Go's regexp), and a per-client rate
// limit core Gateway API lacks, by a Traefik Middleware (RateLimit) the policy owns, one per
// route, referenced from each of the user's rules by an ExtensionRef filter while a step limits.
// Set Provider.PerClient to a *Middlewares.
//
// Traefik reads Middlewares (its kubernetesCRD provider) and routes (its Gateway provider) apart,
// each on its own throttle, so the order of Floodgate's writes is not the order Traefik applies
// them in, and a router referencing a Middleware Traefik does not have answers 404. So the
// Middleware is armed: it stands, unreferenced, while any ramp step of the policy limits (created
// when the policy is, at the first limiting step's rate), and a lever only adds or drops the
// references (and sets the step's rate). It goes when no step limits any more, and only once the
// route references it no more and Traefik has reported on that generation of the route.
type RouteProvider struct {
	gatewayapi.Provider
}

var (
	_ provider.Provider    = (*RouteProvider)(nil)
	_ provider.OnDataPlane = (*RouteProvider)(nil)
	_ provider.Documented  = (*RouteProvider)(nil)
	_ provider.Discovering = (*RouteProvider)(nil)
)

// DataPlane is Traefik.
func (p *RouteProvider) DataPlane() provider.DataPlane { return DataPlane }

// ControllerNames: Traefik's Gateway provider's default controllerName.
func (p *RouteProvider) ControllerNames() []string {
	return []string{gatewayapi.TraefikGatewayController}
}

// Discover asks the cluster whether it serves Traefik's Middleware.
func (p *RouteProvider) Discover(mapper meta.RESTMapper) {
	if m, ok := p.PerClient.(*Middlewares); ok {
		_, err := mapper.RESTMapping(MiddlewareGVK.GroupKind(), MiddlewareGVK.Version)
		m.Served = err == nil
	}
}

func (p *RouteProvider) served() bool {
	m, ok := p.PerClient.(*Middlewares)
	return ok && m.Served
}

// MiddlewareInUseError is a Middleware that is to go while Traefik may still route through it.
type MiddlewareInUseError struct {
	Route, Middleware string
	Generation        int64
}

func (e *MiddlewareInUseError) Error() string {
	return fmt.Sprintf("HTTPRoute %s: Middleware %s goes once Traefik has reported on generation %d of the route, which no longer references it "+
		"(a route referencing a missing Middleware answers 404)", e.Route, e.Middleware, e.Generation)
}

// Unwrap: a companion still in use by the data plane (one that has not reported on a change yet).
func (e *MiddlewareInUseError) Unwrap() error { return provider.ErrCompanionInUse }

// Observe is the Gateway API provider's, with Traefik's capabilities, and a Middleware that is
// to go but may still be in use (MiddlewareInUseError).
func (p *RouteProvider) Observe(ctx context.Context, policy *v1alpha1.TrafficPolicy, ref provider.Ref, d provider.Desired) (*provider.Observation, error) {
	obs, err := p.Provider.Observe(ctx, policy, ref, d)
	if obs == nil || err != nil {
		return obs, err
	}
	obs.Status.Target.Capabilities = RouteCapabilities.DeepCopy()
	route := gatewayapi.ObservedRoute(obs)
	if route == nil || !p.served() || middlewareRate(policy, route, d) > 0 {
		return obs, nil
	}
	inUse, gen := gatewayapi.StillUses(route, *p.PerClient.Filter(policy, route.Name))
	if !inUse {
		return obs, nil
	}
	mw := named(policy, route.Name)
	switch err := p.Client.Get(ctx, client.ObjectKeyFromObject(mw), mw); {
	case apierrors.IsNotFound(err):
	case err != nil:
		return nil, fmt.Errorf("reading Middleware %s: %w", mw.GetName(), err)
	default:
		obs.Problems = append(obs.Problems, provider.ProblemOf(&MiddlewareInUseError{Route: route.Name, Middleware: mw.GetName(), Generation: gen}))
	}
	return obs, nil
}

// Render is the Gateway API provider's, with the route's Middleware in step: ensured at its rate
// while the policy limits the route or is armed to, else removed, unless Traefik may still use it.
// status.targets[].companion names it while it stands, so a route the policy no longer names is
// visited again until it is gone. (A deleted route has no data plane to resolve: its Middleware
// goes with the policy, by its ownerReference.)
func (p *RouteProvider) Render(policy *v1alpha1.TrafficPolicy, obs *provider.Observation, d provider.Desired, recordCopy string) (provider.Change, error) {
	ch, err := p.Provider.Render(policy, obs, d, recordCopy)
	if err != nil || !p.served() {
		return ch, err
	}
	route := gatewayapi.ObservedRoute(obs)
	if ch.After == nil || route == nil {
		return ch, nil
	}
	switch rps := middlewareRate(policy, route, d); {
	case rps > 0:
		ch.Ensure = append(ch.Ensure, companion(policy, route.Name, rps))
		ch.Status.Target.Companion = MiddlewareName(policy.Name, route.Name)
	case slices.ContainsFunc(obs.Problems, provider.InUse):
		ch.Status.Target.Companion = MiddlewareName(policy.Name, route.Name)
	default:
		ch.Remove = append(ch.Remove, named(policy, route.Name))
	}
	return ch, nil
}

// middlewareRate is the rate the route's Middleware carries: the step's while one limits; else,
// while the policy targets the route, is not being deleted and has a ramp step that limits, the
// first such step's (armed, unreferenced); 0 when it is to go.
func middlewareRate(policy *v1alpha1.TrafficPolicy, route *gatewayv1.HTTPRoute, d provider.Desired) int32 {
	if k := d.Knobs.Traffic(); !k.Shed && k.PerClientRequestsPerSecond > 0 {
		return k.PerClientRequestsPerSecond
	}
	if !policy.DeletionTimestamp.IsZero() || policy.Spec.Ramp == nil || !gatewayapi.Targets(policy, route) {
		return 0
	}
	for _, step := range policy.Spec.Ramp.Steps {
		if step.PerClientRequestsPerSecond != nil && *step.PerClientRequestsPerSecond > 0 {
			return *step.PerClientRequestsPerSecond
		}
	}
	return 0
}

// Mechanisms: Traefik v3.7's column for HTTPRoutes, as test/traffic measures it.
func (p *RouteProvider) Mechanisms() []provider.Mechanism {
	core := p.Provider.Mechanisms()[0]
	how := maps.Clone(core.How)
	how[provider.KnobAllowlistAdmit] = "as core Gateway API; the `RegularExpression` is matched by Go's `regexp` (Traefik is a regex controller by default)"
	how[provider.KnobAdmitPercent] = "as core Gateway API, by weighted round robin: exactly that share of every round, not random (admitPercent 30: 600 of 2,000, measured)"
	how[provider.KnobPerClientRate] = "each of your rules gets an `ExtensionRef` to a Traefik `Middleware` `floodgate-<policy>-<route>` (RateLimit: average = the rate, period 1s, burst = the rate, by client address); " +
		"the policy owns it, and it stands unreferenced while any ramp step limits (Traefik reads Middlewares and routes apart: a reference to one it lacks answers 404), going only once Traefik has reported on the route without it; " +
		"excess gets 429 with `Retry-After`; per client, per match of the route (each is a Traefik router) and per Traefik replica. Needs Traefik's `kubernetesCRD` provider: without it Traefik answers the rules 500"
	return []provider.Mechanism{{Name: "Traefik v3.7 (Gateway API)", How: how}}
}

// Middlewares are the per-client limits of HTTPRoutes on Traefik: a Middleware of Traefik's
// RateLimit, one per route and policy.
type Middlewares struct {
	// Served is whether the cluster serves Traefik's Middleware (RouteProvider.Discover).
	Served bool
}

var _ gatewayapi.PerClientLimit = (*Middlewares)(nil)

// Unavailable: without Traefik's Middleware CRD no limit can be written.
func (m *Middlewares) Unavailable() string {
	if m.Served {
		return ""
	}
	return "perClientRequestsPerSecond on Traefik's Gateway API needs Traefik's Middleware (middlewares.traefik.io), which this cluster does not serve: " +
		"install Traefik's CRDs and enable its kubernetesCRD provider, then restart the Floodgate manager"
}

// MiddlewareName names the Middleware of a policy's limit on a route.
func MiddlewareName(policy, route string) string { return owned.Name(253, "floodgate", policy, route) }

// Filter references the route's Middleware.
func (m *Middlewares) Filter(policy *v1alpha1.TrafficPolicy, route string) *gatewayv1.HTTPRouteFilter {
	return &gatewayv1.HTTPRouteFilter{Type: gatewayv1.HTTPRouteFilterExtensionRef, ExtensionRef: &gatewayv1.LocalObjectReference{
		Group: gatewayv1.Group(MiddlewareGVK.Group), Kind: gatewayv1.Kind(MiddlewareGVK.Kind),
		Name: gatewayv1.ObjectName(MiddlewareName(policy.Name, route))}}
}

// companion is the route's Middleware: rps requests a second per client address (Traefik's
// remote-address strategy), with a burst of one second's worth.
func companion(policy *v1alpha1.TrafficPolicy, route string, rps int32) provider.Companion {
	mw := named(policy, route)
	mw.Object["spec"] = map[string]any{"rateLimit": map[string]any{
		"average": int64(rps), "period": "1s", "burst": int64(rps),
		"sourceCriterion": map[string]any{"ipStrategy": map[string]any{}},
	}}
	return provider.Companion{Desired: mw, Sync: provider.SyncSpec}
}

// named is the route's Middleware, by name.
func named(policy *v1alpha1.TrafficPolicy, route string) *unstructured.Unstructured {
	mw := &unstructured.Unstructured{}
	mw.SetGroupVersionKind(MiddlewareGVK)
	mw.SetNamespace(policy.Namespace)
	mw.SetName(MiddlewareName(policy.Name, route))
	return mw
}
