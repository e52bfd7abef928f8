package gatewayapi

import (
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"k8s.io/utils/ptr"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"floodgate.dev/floodgate/internal/knobs"
	"floodgate.dev/floodgate/internal/provider/ingressnginx"
)

// Rule is one rule of an HTTPRoute.
type Rule = gatewayv1.HTTPRouteRule

// Limits of an HTTPRoute, from the Gateway API CRD (v1.6): the API server refuses a route past
// them, so a lever that would need more is refused up front.
const (
	MaxRules            = 16
	MaxMatchesPerRule   = 64
	MaxMatchesPerRoute  = 128
	MaxHeadersPerMatch  = 16
	MaxFiltersPerRule   = 16
	MaxBackendRefWeight = 1_000_000
)

// Lever is what one policy asks of one route: the knobs, and how the policy says to carry them.
type Lever struct {
	Knobs knobs.Knobs
	// Policy is the policy's name: its rule is named OwnRuleName(Policy).
	Policy string
	// RegionHeader is the header the CDN writes the client's region into.
	RegionHeader string
	// MissingRegionShed: requests without the region header are shed (else admitted).
	MissingRegionShed bool
	// ShedService and ShedPort are the policy's shed Service in the route's namespace.
	ShedService string
	ShedPort    int32
	// Redirect, when set, answers a ShedAll with a RequestRedirect instead of the shed Service.
	Redirect *gatewayv1.HTTPRequestRedirectFilter
	// RegexAllowed: the route's gateway is known to match headers by RE2/PCRE-compatible regular
	// expressions.
	RegexAllowed bool
	// HasLimit: the route's data plane has a per-client rate limit of its own (core Gateway API
	// has none).
	HasLimit bool
	// Limit, when set, is the filter that carries that limit (an ExtensionRef to an object of the
	// data plane's): every rule of the user's gets it while a step limits. A limit that attaches
	// to the route itself needs none.
	Limit *gatewayv1.HTTPRouteFilter
	// LimitRefusal says why the route's data plane cannot take the limit now ("" when it can or
	// has no limit at all).
	LimitRefusal string
	// Answer, when set, is the filter that has the route's data plane answer a ShedAll itself (an
	// ExtensionRef to a direct response of its own): every rule gets it and no backend, unless
	// the ShedAll is redirected.
	Answer *gatewayv1.HTTPRouteFilter
}

// hasRule reports whether one of rules is named name.
func hasRule(rules []Rule, name string) bool {
	return slices.ContainsFunc(rules, func(r Rule) bool { return r.Name != nil && string(*r.Name) == name })
}

// OwnRuleName is the name of the one rule a policy adds to a route.
func OwnRuleName(policy string) string { return "floodgate-" + policy }

// OwnRulePrefix starts the name of every rule Floodgate adds: a rule so named that this policy
// did not write is someone else's in the way.
const OwnRulePrefix = "floodgate-"

// RedirectFilter is the RequestRedirect a redirect URL makes (302, full path replaced), or an
// error saying why a Gateway API redirect cannot carry it (a query string: RequestRedirect has
// no field for one).
func RedirectFilter(raw string) (*gatewayv1.HTTPRequestRedirectFilter, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("redirectURL: %w", err)
	}
	if u.RawQuery != "" || u.ForceQuery {
		return nil, fmt.Errorf("redirectURL %s has a query string, which a Gateway API RequestRedirect cannot carry", raw)
	}
	f := &gatewayv1.HTTPRequestRedirectFilter{
		Scheme:     ptr.To(u.Scheme),
		Hostname:   ptr.To(gatewayv1.PreciseHostname(u.Hostname())),
		StatusCode: ptr.To(302),
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil {
			return nil, fmt.Errorf("redirectURL port %q: %w", p, err)
		}
		f.Port = ptr.To(gatewayv1.PortNumber(n))
	}
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	f.Path = &gatewayv1.HTTPPathModifier{Type: gatewayv1.FullPathHTTPPathModifier, ReplaceFullPath: ptr.To(path)}
	return f, nil
}

// defaultMatches is what a rule without matches matches (the CRD's default): every path.
func defaultMatches() []gatewayv1.HTTPRouteMatch {
	return []gatewayv1.HTTPRouteMatch{{Path: &gatewayv1.HTTPPathMatch{
		Type: ptr.To(gatewayv1.PathMatchPathPrefix), Value: ptr.To("/")}}}
}

func matchesOf(r Rule) []gatewayv1.HTTPRouteMatch {
	if len(r.Matches) == 0 {
		return defaultMatches()
	}
	return r.Matches
}

// regionMatches are the header matches an allowlist needs, per copy of a match: one Exact match
// per allowed region when the route's limits allow it (admitted regions, missingRegion: Shed),
// else one RegularExpression. admitted says whether the copies match the allowed regions (true)
// or every other value (false).
func regionMatches(l Lever, admitted bool, perRegionFits bool) []gatewayv1.HTTPHeaderMatch {
	name := gatewayv1.HTTPHeaderName(l.RegionHeader)
	if admitted && perRegionFits {
		out := make([]gatewayv1.HTTPHeaderMatch, 0, len(l.Knobs.AllowRegions))
		for _, region := range l.Knobs.AllowRegions {
			out = append(out, gatewayv1.HTTPHeaderMatch{Type: ptr.To(gatewayv1.HeaderMatchExact), Name: name, Value: region})
		}
		return out
	}
	value := ingressnginx.ComplementPattern(l.Knobs.AllowRegions)
	if admitted {
		value = "^(" + strings.Join(l.Knobs.AllowRegions, "|") + ")$"
	}
	return []gatewayv1.HTTPHeaderMatch{{Type: ptr.To(gatewayv1.HeaderMatchRegularExpression), Name: name, Value: value}}
}

// regionShape is how an allowlist is written into a route: whether the admitted regions are one
// Exact match each, and whether a regular expression is needed.
type regionShape struct {
	perRegion bool
	regex     bool
}

// shapeOf decides the allowlist's shape for the user's rules, or says why the route cannot take
// it (the route's limits, a match already on the region header, a regular expression the gateway
// is not known to support).
func shapeOf(base []Rule, l Lever) (regionShape, string) {
	k := l.Knobs
	if !k.RestrictRegions || k.Shed {
		return regionShape{}, ""
	}
	if len(base)+1 > MaxRules {
		return regionShape{}, fmt.Sprintf("a region allowlist adds one rule, and the route already has %d of the %d rules an HTTPRoute may have", len(base), MaxRules)
	}
	total := 0
	for i, r := range base {
		for _, m := range matchesOf(r) {
			total++
			if len(m.Headers)+1 > MaxHeadersPerMatch {
				return regionShape{}, fmt.Sprintf("rule %s has a match with %d header matches: the region header would make %d, over the %d an HTTPRoute match may have",
					ruleID(r, i), len(m.Headers), len(m.Headers)+1, MaxHeadersPerMatch)
			}
			for _, h := range m.Headers {
				if strings.EqualFold(string(h.Name), l.RegionHeader) {
					return regionShape{}, fmt.Sprintf("rule %s already matches the region header %s: an allowlist cannot be added to it without changing what it means", ruleID(r, i), l.RegionHeader)
				}
			}
		}
	}
	if total > MaxMatchesPerRule {
		return regionShape{}, fmt.Sprintf("a region allowlist copies each of the route's %d matches into one rule, over the %d matches a rule may have", total, MaxMatchesPerRule)
	}
	if total*2 > MaxMatchesPerRoute {
		return regionShape{}, fmt.Sprintf("a region allowlist doubles the route's %d matches, over the %d an HTTPRoute may have", total, MaxMatchesPerRoute)
	}
	shape := regionShape{regex: true}
	if l.MissingRegionShed {
		regions := len(k.AllowRegions)
		shape.perRegion = total*regions+total <= MaxMatchesPerRoute
		for _, r := range base {
			if len(matchesOf(r))*regions > MaxMatchesPerRule {
				shape.perRegion = false
			}
		}
		shape.regex = !shape.perRegion
	}
	if shape.regex && !l.RegexAllowed {
		return shape, fmt.Sprintf("this allowlist needs a RegularExpression match on header %s, which is implementation-specific in Gateway API, "+
			"and the route's gateway is not known to support it (see the manager's --regex-header-controllers)", l.RegionHeader)
	}
	return shape, ""
}

// Refusal says why the route cannot take the lever ("" when it can): a limit of Gateway API, not
// of the moment.
func Refusal(base []Rule, l Lever) string {
	k := l.Knobs
	if l.Limits() {
		if why := limitRefusal(base, l); why != "" {
			return why
		}
	}
	_, why := shapeOf(base, l)
	if why != "" {
		return why
	}
	if !k.Shed && k.AdmitPercent > 0 {
		for i, r := range base {
			if _, err := scaledBackends(r.BackendRefs, k.AdmitPercent, l); err != nil {
				return fmt.Sprintf("rule %s: %v", ruleID(r, i), err)
			}
		}
	}
	return ""
}

// Limits reports whether the lever asks for a per-client rate limit.
func (l Lever) Limits() bool { return !l.Knobs.Shed && l.Knobs.PerClientRequestsPerSecond > 0 }

// limitRefusal says why the route cannot take the lever's per-client limit ("" when it can).
func limitRefusal(base []Rule, l Lever) string {
	switch {
	case !l.HasLimit:
		return "perClientRequestsPerSecond is not available in core Gateway API (HTTPRoute has no rate limit): " +
			"use a step without it for this route, or an implementation's own rate-limit policy"
	case l.LimitRefusal != "":
		return l.LimitRefusal
	}
	for i, r := range base {
		if l.Limit != nil && len(r.Filters)+1 > MaxFiltersPerRule {
			return fmt.Sprintf("rule %s has %d filters: the rate limit's filter would make %d, over the %d an HTTPRoute rule may have",
				ruleID(r, i), len(r.Filters), len(r.Filters)+1, MaxFiltersPerRule)
		}
	}
	return ""
}

// ProxyAnswers reports whether the gateway answers every request the lever sheds (a ShedAll
// redirected, every rule a RequestRedirect, or answered by the data plane's own filter: no shed
// backendRef).
func (l Lever) ProxyAnswers() bool { return l.Knobs.Shed && (l.Redirect != nil || l.Answer != nil) }

// Render returns the rules the lever needs on the user's rules (base), writing nothing; no knobs
// return base as it is. It does not check limits: Refusal does.
func Render(base []Rule, l Lever) []Rule {
	k := l.Knobs
	out := cloneRules(base)
	switch {
	case k.Equal(knobs.Knobs{}):
		return out
	case k.Shed:
		for i := range out {
			switch {
			case l.Redirect != nil:
				out[i].BackendRefs = nil
				out[i].Filters = []gatewayv1.HTTPRouteFilter{{Type: gatewayv1.HTTPRouteFilterRequestRedirect, RequestRedirect: l.Redirect.DeepCopy()}}
				continue
			case l.Answer != nil:
				out[i].BackendRefs = nil
				out[i].Filters = []gatewayv1.HTTPRouteFilter{*l.Answer.DeepCopy()}
				continue
			}
			out[i].BackendRefs = []gatewayv1.HTTPBackendRef{shedBackend(l, 1)}
			out[i].Filters = nil
		}
		return out
	}
	if k.AdmitPercent > 0 {
		for i := range out {
			if refs, err := scaledBackends(out[i].BackendRefs, k.AdmitPercent, l); err == nil {
				out[i].BackendRefs = refs
			}
		}
	}
	if l.Limits() && l.Limit != nil {
		for i := range out {
			out[i].Filters = append(out[i].Filters, *l.Limit.DeepCopy())
		}
	}
	if k.RestrictRegions {
		shape, _ := shapeOf(base, l)
		own := Rule{Name: ptr.To(gatewayv1.SectionName(OwnRuleName(l.Policy))), BackendRefs: []gatewayv1.HTTPBackendRef{shedBackend(l, 1)}}
		if l.MissingRegionShed {
			for i := range out {
				originals := matchesOf(base[i])
				own.Matches = append(own.Matches, cloneMatches(originals)...)
				out[i].Matches = withHeader(originals, regionMatches(l, true, shape.perRegion))
			}
		} else {
			for i := range out {
				own.Matches = append(own.Matches, withHeader(matchesOf(base[i]), regionMatches(l, false, false))...)
			}
		}
		out = append(out, own)
	}
	return out
}

// withHeader copies each match once per header match, with that header match added.
func withHeader(matches []gatewayv1.HTTPRouteMatch, headers []gatewayv1.HTTPHeaderMatch) []gatewayv1.HTTPRouteMatch {
	out := make([]gatewayv1.HTTPRouteMatch, 0, len(matches)*len(headers))
	for _, m := range matches {
		for _, h := range headers {
			c := *m.DeepCopy()
			c.Headers = append(c.Headers, h)
			out = append(out, c)
		}
	}
	return out
}

// shedBackend is the backendRef of the policy's shed Service, written as the API server stores
// it (group, kind and weight explicit) so a route at rest compares equal to its render.
func shedBackend(l Lever, weight int32) gatewayv1.HTTPBackendRef {
	return gatewayv1.HTTPBackendRef{BackendRef: gatewayv1.BackendRef{
		BackendObjectReference: gatewayv1.BackendObjectReference{
			Group: ptr.To(gatewayv1.Group("")), Kind: ptr.To(gatewayv1.Kind("Service")),
			Name: gatewayv1.ObjectName(l.ShedService), Port: ptr.To(gatewayv1.PortNumber(l.ShedPort)),
		},
		Weight: ptr.To(weight),
	}}
}

func isShedBackend(b gatewayv1.HTTPBackendRef, l Lever) bool {
	return string(b.Name) == l.ShedService && (b.Kind == nil || *b.Kind == "Service") && (b.Group == nil || *b.Group == "") && b.Namespace == nil
}

func weightOf(b gatewayv1.HTTPBackendRef) int64 {
	if b.Weight == nil {
		return 1
	}
	return int64(*b.Weight)
}

// scaledBackends admits percent of a rule's traffic: the user's weights times percent, and the
// shed Service weighted their sum times (100 - percent), reduced by their greatest common
// divisor. Weights are relative, so the share is exact. A rule without backends (a redirect)
// carries nothing to shed and is left as it is.
func scaledBackends(refs []gatewayv1.HTTPBackendRef, percent int32, l Lever) ([]gatewayv1.HTTPBackendRef, error) {
	var sum int64
	for _, b := range refs {
		sum += weightOf(b)
	}
	if len(refs) == 0 || sum == 0 {
		return refs, nil
	}
	weights := make([]int64, 0, len(refs)+1)
	for _, b := range refs {
		weights = append(weights, weightOf(b)*int64(percent))
	}
	weights = append(weights, sum*int64(100-percent))
	g := int64(0)
	for _, w := range weights {
		g = gcd(g, w)
	}
	out := make([]gatewayv1.HTTPBackendRef, 0, len(refs)+1)
	for i, b := range refs {
		c := *b.DeepCopy()
		c.Weight = ptr.To(int32(weights[i] / g))
		out = append(out, c)
	}
	for _, w := range weights {
		if w/g > MaxBackendRefWeight {
			return nil, fmt.Errorf("admitting %d%% needs a backendRef weight of %d, over Gateway API's %d: use smaller weights on the route", percent, w/g, MaxBackendRefWeight)
		}
	}
	return append(out, shedBackend(l, int32(weights[len(weights)-1]/g))), nil
}

func gcd(a, b int64) int64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// Stripped is the user's rules recovered from a route as it is now.
type Stripped struct {
	Rules []Rule
	// Kept names what someone else changed after Floodgate's last write: it is kept (it is the
	// user's intent for the route), and reported.
	Kept []string
}

// Strip recovers the user's rules from the route's rules now, given the user's rules (orig) and
// the rules Floodgate last wrote (set): when nobody else edited the route, exactly orig; else the
// rules as they are now without what Floodgate added (its rule, its shed backendRefs, its
// weights, its region copies, the backends and filters a ShedAll replaced), so an edit made
// during the incident survives the restore and is named in Kept.
func Strip(now, orig, set []Rule, l Lever) Stripped {
	if sameJSON(now, set) {
		return Stripped{Rules: cloneRules(orig)}
	}
	own := OwnRuleName(l.Policy)
	wroteOwn := hasRule(set, own) // else a rule of that name is someone else's: never removed
	var out Stripped
	used := make([]bool, len(orig))
	for _, r := range now {
		if wroteOwn && r.Name != nil && string(*r.Name) == own {
			continue
		}
		j := correspondent(r, orig, set, used)
		if j < 0 {
			out.Rules = append(out.Rules, *r.DeepCopy())
			out.Kept = append(out.Kept, fmt.Sprintf("spec.rules[%s] (added)", ruleID(r, len(out.Rules)-1)))
			continue
		}
		used[j] = true
		b, was, wrote := *r.DeepCopy(), orig[j], set[j]
		id := ruleID(was, j)
		// A field that differs from what Floodgate wrote was edited by someone else: kept, and
		// reported unless the edit only put the user's own value back (a GitOps sync).
		if sameJSON(r.Matches, wrote.Matches) {
			b.Matches = cloneMatches(was.Matches)
		} else {
			b.Matches = withoutRegionCopies(r.Matches, l)
			out.keep(b.Matches, was.Matches, "spec.rules["+id+"].matches")
		}
		if sameJSON(r.Filters, wrote.Filters) {
			b.Filters = slices.Clone(was.Filters)
		} else {
			b.Filters = withoutLimit(r.Filters, l)
			out.keep(b.Filters, was.Filters, "spec.rules["+id+"].filters")
		}
		if sameJSON(r.BackendRefs, wrote.BackendRefs) {
			b.BackendRefs = slices.Clone(was.BackendRefs)
		} else {
			b.BackendRefs = unweighted(r.BackendRefs, was.BackendRefs, wrote.BackendRefs, l)
			out.keep(b.BackendRefs, was.BackendRefs, "spec.rules["+id+"].backendRefs")
		}
		out.Rules = append(out.Rules, b)
	}
	for j, u := range used {
		if !u {
			out.Kept = append(out.Kept, fmt.Sprintf("spec.rules[%s] (removed)", ruleID(orig[j], j)))
		}
	}
	return out
}

// keep reports a field someone else edited, unless it holds the user's original value.
func (s *Stripped) keep(now, orig any, field string) {
	if !sameJSON(now, orig) {
		s.Kept = append(s.Kept, field)
	}
}

// correspondent finds the rule Floodgate wrote that a rule now stands for: by name, else the one
// it still equals, else one with any of matches, filters or backendRefs as Floodgate wrote them;
// -1 for a rule someone added.
func correspondent(r Rule, orig, set []Rule, used []bool) int {
	candidates := func(keep func(j int) bool) int {
		for j := range orig {
			if j < len(set) && !used[j] && keep(j) {
				return j
			}
		}
		return -1
	}
	if r.Name != nil {
		return candidates(func(j int) bool { return set[j].Name != nil && *set[j].Name == *r.Name })
	}
	if j := candidates(func(j int) bool { return set[j].Name == nil && sameJSON(r, set[j]) }); j >= 0 {
		return j
	}
	return candidates(func(j int) bool {
		return set[j].Name == nil && (sameJSON(r.Matches, set[j].Matches) || sameJSON(r.BackendRefs, set[j].BackendRefs) ||
			(len(r.Filters) > 0 && sameJSON(r.Filters, set[j].Filters)))
	})
}

// withoutRegionCopies drops the region header matches Floodgate added to matches someone else
// edited, and the duplicates that leaves.
func withoutRegionCopies(matches []gatewayv1.HTTPRouteMatch, l Lever) []gatewayv1.HTTPRouteMatch {
	var out []gatewayv1.HTTPRouteMatch
	for _, m := range matches {
		c := *m.DeepCopy()
		c.Headers = slices.DeleteFunc(c.Headers, func(h gatewayv1.HTTPHeaderMatch) bool {
			return strings.EqualFold(string(h.Name), l.RegionHeader)
		})
		if len(c.Headers) == 0 {
			c.Headers = nil
		}
		if !slices.ContainsFunc(out, func(o gatewayv1.HTTPRouteMatch) bool { return sameJSON(o, c) }) {
			out = append(out, c)
		}
	}
	return out
}

// withoutLimit drops the filters Floodgate's data plane filters put on a rule (the rate limit's,
// the shed answer's) from filters someone else edited.
func withoutLimit(filters []gatewayv1.HTTPRouteFilter, l Lever) []gatewayv1.HTTPRouteFilter {
	if l.Limit == nil && l.Answer == nil {
		return filters
	}
	out := slices.DeleteFunc(slices.Clone(filters), func(f gatewayv1.HTTPRouteFilter) bool {
		return l.Limit != nil && sameJSON(f, *l.Limit) || l.Answer != nil && sameJSON(f, *l.Answer)
	})
	if len(out) == 0 {
		return nil
	}
	return out
}

// unweighted takes Floodgate's shed backendRefs out of backendRefs someone else edited, and puts
// back the original weight of every backend whose weight is still the one Floodgate wrote.
func unweighted(now, orig, wrote []gatewayv1.HTTPBackendRef, l Lever) []gatewayv1.HTTPBackendRef {
	var out []gatewayv1.HTTPBackendRef
	for _, b := range now {
		if isShedBackend(b, l) {
			continue
		}
		c := *b.DeepCopy()
		for _, w := range wrote {
			if sameJSON(w.BackendObjectReference, b.BackendObjectReference) && sameJSON(w.Weight, b.Weight) {
				for _, o := range orig {
					if sameJSON(o.BackendObjectReference, b.BackendObjectReference) {
						c.Weight = o.Weight
					}
				}
			}
		}
		out = append(out, c)
	}
	return out
}

// ruleID names a rule in messages: its name, or its index.
func ruleID(r Rule, i int) string {
	if r.Name != nil && *r.Name != "" {
		return string(*r.Name)
	}
	return strconv.Itoa(i)
}

func cloneRules(rules []Rule) []Rule {
	if rules == nil {
		return nil
	}
	out := make([]Rule, len(rules))
	for i := range rules {
		rules[i].DeepCopyInto(&out[i])
	}
	return out
}

func cloneMatches(ms []gatewayv1.HTTPRouteMatch) []gatewayv1.HTTPRouteMatch {
	if ms == nil {
		return nil
	}
	out := make([]gatewayv1.HTTPRouteMatch, len(ms))
	for i := range ms {
		ms[i].DeepCopyInto(&out[i])
	}
	return out
}

// sameJSON compares two values as the API server would store them (empty lists and absent ones
// alike).
func sameJSON(a, b any) bool {
	ja, errA := json.Marshal(a)
	jb, errB := json.Marshal(b)
	if errA != nil || errB != nil {
		return false
	}
	return string(normal(ja)) == string(normal(jb))
}

func normal(b []byte) []byte {
	if s := string(b); s == "null" || s == "[]" {
		return []byte("null")
	}
	return b
}
