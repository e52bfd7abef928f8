package ingressnginx

import (
	"floodgate.dev/floodgate/internal/provider"
)

// Mechanisms: ingress-nginx's (Traefik v3.7, which reads the same annotations, has its own:
// internal/provider/traefik).
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
	return []provider.Mechanism{nginx}
}
