package ingressnginx

import (
	"maps"

	"floodgate.dev/floodgate/internal/provider"
)

// Mechanisms: ingress-nginx, and Traefik v3.7, which serves the same annotations (its column is
// what test/traffic measures on real requests through Traefik's NGINX provider).
func (p *Provider) Mechanisms() []provider.Mechanism {
	nginx := provider.Mechanism{Name: "ingress-nginx", How: map[string]string{
		provider.KnobShedAll:        "a canary Ingress per target, `canary-weight: \"100\"`, to the policy's shed Service; clients holding a session-affinity cookie stay on the main backend (warned)",
		provider.KnobRedirect:       "the shed server answers 302 (the host must be on the cluster's `shed-redirect-hosts`)",
		provider.KnobAllowlistAdmit: "the canary's `canary-by-header` + `canary-by-header-pattern`, a generated PCRE matching every value **not** listed (at most 4 KB)",
		provider.KnobAdmitPercent:   "the canary's `canary-weight: 100 - admitPercent`, random per request",
		provider.KnobPerClientRate:  "`limit-rps` on **your** Ingress (recorded first): per client address **and per controller replica**; excess gets 503 without `Retry-After`",
		provider.KnobUserEditKept:   "a field someone else changed is kept and reported (`FieldChangedByOther`)",
		provider.KnobGatewayVerdict: "not read (ingress-nginx reports none)",
	}}
	traefik := provider.Mechanism{Name: "Traefik v3.7", How: maps.Clone(nginx.How)}
	traefik.How[provider.KnobAllowlistAdmit] = "as ingress-nginx; the pattern is matched by Go's `regexp` (tested against it)"
	traefik.How[provider.KnobAdmitPercent] = "the canary's `canary-weight: 100 - admitPercent`, by weighted round robin: exactly that share of every 10 requests, not random (admitPercent 30: 600 of 2,000, measured)"
	traefik.How[provider.KnobPerClientRate] = "as ingress-nginx; excess gets 429 with `Retry-After: 1`, after a first burst of 5× the rate (Traefik's default burst multiplier); exactly the rate per second after it (20 of ~2,300 a second, measured)"
	traefik.How[provider.KnobGatewayVerdict] = "not read"
	return []provider.Mechanism{nginx, traefik}
}
