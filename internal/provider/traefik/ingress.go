// Package traefik is Traefik v3.7 as a data plane of its own: what its providers make of the
// objects Floodgate writes, as real requests through it show (test/traffic).
//
// Ingresses: Traefik's kubernetesIngressNGINX provider reads ingress-nginx's canary and limit-rps
// annotations, so the writes are ingress-nginx's (this provider is the ingress-nginx provider's,
// embedded), but clients get another answer: an over-limit client gets 429 with Retry-After: 1
// (not 503), after a first burst of 5× the rate, and a canary's weight is kept by weighted round
// robin (exact shares, not random). Traefik's NGINX provider serves ingress-nginx's controller
// name by default, so a cluster says it moved with --data-plane-controllers
// k8s.io/ingress-nginx=traefik (or names the class controller it gave Traefik's NGINX provider).
//
// HTTPRoutes (route.go): Traefik's Gateway provider serves core Gateway API (its controllerName
// is Traefik's by default), and a per-client rate limit, which core Gateway API lacks, is a
// Traefik RateLimit Middleware the policy owns, referenced from the rules by ExtensionRef.
package traefik

import (
	"context"
	"maps"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/internal/provider"
	"floodgate.dev/floodgate/internal/provider/ingressnginx"
)

// DataPlane is Traefik.
const DataPlane provider.DataPlane = "traefik"

// ProviderName names this provider in status (capabilities.provider).
const ProviderName = "traefik"

// IngressCapabilities are what an Ingress on Traefik's NGINX provider can and cannot do,
// published in status: ingress-nginx's, but for the rate limit's answer and the allowlist's cost
// (Go's regexp compiles the pattern once).
var IngressCapabilities = func() v1alpha1.Capabilities {
	c := *ingressnginx.Capabilities.DeepCopy()
	c.Provider = ProviderName
	c.RateLimitStatusCode = 429
	c.AdmitPercentSelection = "WeightedRoundRobin"
	c.AllowlistCost = "Go's regexp matches the pattern, compiled once when Traefik loads the Ingress"
	return c
}()

// IngressProvider applies knobs to Ingresses that Traefik's NGINX provider serves: the writes of
// the ingress-nginx provider, with Traefik's capabilities in status.
type IngressProvider struct {
	ingressnginx.Provider
}

var (
	_ provider.Provider    = (*IngressProvider)(nil)
	_ provider.OnDataPlane = (*IngressProvider)(nil)
	_ provider.Documented  = (*IngressProvider)(nil)
)

// DataPlane is Traefik.
func (p *IngressProvider) DataPlane() provider.DataPlane { return DataPlane }

// ControllerNames: none by default. Traefik's NGINX provider serves ingress-nginx's controller
// name, which stays ingress-nginx's unless the manager maps it onto traefik.
func (p *IngressProvider) ControllerNames() []string { return nil }

// Observe is the ingress-nginx provider's, with Traefik's capabilities.
func (p *IngressProvider) Observe(ctx context.Context, policy *v1alpha1.TrafficPolicy, ref provider.Ref, d provider.Desired) (*provider.Observation, error) {
	obs, err := p.Provider.Observe(ctx, policy, ref, d)
	if obs != nil {
		obs.Status.Target.Capabilities = IngressCapabilities.DeepCopy()
	}
	return obs, err
}

// Mechanisms: Traefik v3.7's column of the knob table, as test/traffic measures it.
func (p *IngressProvider) Mechanisms() []provider.Mechanism {
	nginx := p.Provider.Mechanisms()[0]
	how := maps.Clone(nginx.How)
	how[provider.KnobAllowlistAdmit] = "as ingress-nginx; the pattern is matched by Go's `regexp` (tested against it)"
	how[provider.KnobAdmitPercent] = "the canary's `canary-weight: 100 - admitPercent`, by weighted round robin: exactly that share of every 10 requests, not random (admitPercent 30: 600 of 2,000, measured)"
	how[provider.KnobPerClientRate] = "as ingress-nginx; excess gets 429 with `Retry-After: 1`, after a first burst of 5× the rate (Traefik's default burst multiplier); exactly the rate per second after it (20 of ~2,300 a second, measured)"
	how[provider.KnobGatewayVerdict] = "not read"
	return []provider.Mechanism{{Name: "Traefik v3.7", How: how}}
}
