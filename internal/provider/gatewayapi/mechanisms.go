package gatewayapi

import "floodgate.dev/floodgate/internal/provider"

// Mechanisms: core Gateway API, which every conformant implementation serves.
func (p *Provider) Mechanisms() []provider.Mechanism {
	return []provider.Mechanism{{Name: "Gateway API HTTPRoute (core)", How: map[string]string{
		provider.KnobShedAll:        "every rule of **your** HTTPRoute sends to the policy's shed Service, without your filters (the rules are recorded first)",
		provider.KnobRedirect:       "every rule answers with a 302 `RequestRedirect` (a URL with a query string cannot be one: the shed Service answers instead, reported)",
		provider.KnobAllowlistAdmit: "one rule `floodgate-<policy>` of copies of your matches plus a `RegularExpression` match on the region header (the complement of the list) to the shed Service; needs a gateway known to do RE2/PCRE regex (`--regex-header-controllers`, Envoy Gateway and Traefik by default)",
		provider.KnobAllowlistShed:  "your rules' matches get the region header (one `Exact` match per region where the route's limits allow, else one `RegularExpression`); the rule `floodgate-<policy>` sends the originals to the shed Service",
		provider.KnobAdmitPercent:   "your backendRefs' weights scaled against a shed backendRef: exact shares",
		provider.KnobUserEditKept:   "restore takes Floodgate's rule, shed backendRefs, weights and copies out of the rules as they are then: your edit is kept and reported; a rule named `floodgate-<policy>` that Floodgate did not write is a `Conflict` (the route is left alone), never removed",
		provider.KnobGatewayVerdict: "a change counts once every parent reports `Accepted` and `ResolvedRefs` at the route's generation; a rejection is `Degraded` (`RejectedByGateway`) and holds a ramp",
	}}}
}
