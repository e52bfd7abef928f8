package shed

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/types"

	"floodgate.dev/floodgate/api/v1alpha1"
)

// The shed table maps a request's host and path to the answer of the policy whose target
// carries that route. It is built from TrafficPolicies and their targets only, never from
// annotations on arbitrary objects, so nobody who can merely create an Ingress can change the
// answer another team's users get. A route claimed by policies of more than one namespace gets
// the neutral default answer, and both policies are told (Conflicts). Each kind of target
// contributes its routes through a function of its own (IngressRoutes, HTTPRouteRoutes).

// Route is one host and path a target carries. An empty host is a catch-all (an Ingress's
// default backend, or a rule without a host).
type Route struct {
	Host  string
	Path  string
	Exact bool
}

func (r Route) String() string {
	host := r.Host
	if host == "" {
		host = "*"
	}
	if r.Exact {
		return host + r.Path + " (exact)"
	}
	return host + r.Path
}

// Claim is a policy's claim on a route, with the answer it gives.
type Claim struct {
	Policy   types.NamespacedName
	Route    Route
	Response *Response
}

// Conflict is a route claimed by policies of more than one namespace: the shed server answers it
// with the neutral default, whatever either policy says.
type Conflict struct {
	Route    Route
	Policies []types.NamespacedName
}

// RedirectHostsEnv names the environment variable both the manager and the shed server read the
// redirect allowlist from by default (config/ sets it from one ConfigMap for both).
const RedirectHostsEnv = "FLOODGATE_SHED_REDIRECT_HOSTS"

// RedirectHosts is the cluster administrator's allowlist of hosts a shed answer may redirect to,
// set at install and read by both the manager and the shed server. Empty: redirects are off. An
// entry "*.example.com" allows every host under example.com.
type RedirectHosts []string

// ParseRedirectHosts reads a comma-separated list.
func ParseRedirectHosts(s string) RedirectHosts {
	var out RedirectHosts
	for _, h := range strings.Split(s, ",") {
		if h = strings.ToLower(strings.TrimSpace(h)); h != "" {
			out = append(out, h)
		}
	}
	return out
}

// Allows reports whether a redirect URL may be answered: https, and its host on the list.
func (hosts RedirectHosts) Allows(redirect string) bool {
	u, err := url.Parse(redirect)
	if err != nil || u.Scheme != "https" || u.User != nil {
		return false
	}
	host := strings.ToLower(u.Hostname())
	for _, h := range hosts {
		if h == host || strings.HasPrefix(h, "*.") && strings.HasSuffix(host, h[1:]) {
			return true
		}
	}
	return false
}

// RedirectRefusal says why a policy's redirect is not answered ("" when it is, or none is asked).
func (hosts RedirectHosts) RedirectRefusal(policy *v1alpha1.TrafficPolicy) string {
	redirect := policy.Spec.Shed.RedirectURL
	if redirect == "" || hosts.Allows(redirect) {
		return ""
	}
	if len(hosts) == 0 {
		return fmt.Sprintf("shed.redirectURL %s is not answered: redirects are off in this cluster (the administrator sets --shed-redirect-hosts at install); shed requests get status 503 instead", redirect)
	}
	return fmt.Sprintf("shed.redirectURL %s is not answered: its host is not on the cluster's redirect allowlist (%s); shed requests get status 503 instead", redirect, strings.Join(hosts, ", "))
}

// AnswerOf is how a policy answers shed requests: its spec.shed, with a redirect only where the
// cluster allows it (otherwise its status code).
func AnswerOf(policy *v1alpha1.TrafficPolicy, hosts RedirectHosts) *Response {
	s := policy.Spec.Shed
	code := http.StatusServiceUnavailable
	if s.StatusCode != nil && *s.StatusCode >= 400 && *s.StatusCode <= 599 {
		code = int(*s.StatusCode)
	}
	retry := 0
	if s.RetryAfterSeconds != nil && *s.RetryAfterSeconds > 0 {
		retry = int(*s.RetryAfterSeconds)
	}
	redirect := ""
	if s.RedirectURL != "" && hosts.Allows(s.RedirectURL) {
		redirect = s.RedirectURL
	}
	r := newResponse(policy.Namespace+"/"+policy.Name, code, retry, redirect)
	r.UID, r.Generation = policy.UID, policy.Generation
	return r
}

// routeKey identifies a route in the table.
type routeKey struct {
	host, path string
	exact      bool
}

// NewTable builds the table from every policy's claims. A claim whose host overlaps a host
// claimed from another namespace, in any form (the same host; a wildcard covering the other's
// host or wildcard; a catch-all, which an HTTPRoute without hostnames is), answers with
// DefaultResponse, and is returned as a Conflict naming both policies. Among policies of one
// namespace the first by name answers.
func NewTable(claims []Claim) (*Table, []Conflict) {
	claims = slices.Clone(claims)
	for i := range claims {
		claims[i].Route.Host = NormalizeHost(claims[i].Route.Host)
	}
	sort.SliceStable(claims, func(i, j int) bool { return claims[i].Policy.String() < claims[j].Policy.String() })
	rivals := overlaps(claims)

	t := &Table{exact: map[string][]route{}, wildcard: map[string][]route{}}
	seen := map[routeKey]bool{}
	conflicted := map[string]*Conflict{}
	for i, c := range claims {
		k := routeKey{c.Route.Host, c.Route.Path, c.Route.Exact}
		resp := c.Response
		if len(rivals[i]) > 0 {
			resp = DefaultResponse
			id := c.Route.String() + " " + c.Policy.String()
			if conflicted[id] == nil {
				conflicted[id] = &Conflict{Route: c.Route, Policies: []types.NamespacedName{c.Policy}}
			}
			for _, p := range rivals[i] {
				if !slices.Contains(conflicted[id].Policies, p) {
					conflicted[id].Policies = append(conflicted[id].Policies, p)
				}
			}
		}
		if seen[k] {
			continue // the first policy by name answers; overlap is symmetric, so a conflict neutralizes each
		}
		seen[k] = true
		r := route{host: k.host, path: k.path, exact: k.exact, response: resp}
		switch {
		case k.host == "":
			t.catchAll = append(t.catchAll, r)
		case isWildcard(k.host):
			t.wildcard[k.host[1:]] = append(t.wildcard[k.host[1:]], r)
		default:
			t.exact[k.host] = append(t.exact[k.host], r)
		}
		t.size++
	}
	sortRoutes(t.catchAll)
	for _, m := range []map[string][]route{t.exact, t.wildcard} {
		for _, bucket := range m {
			sortRoutes(bucket)
		}
	}
	conflicts := make([]Conflict, 0, len(conflicted))
	for _, c := range conflicted {
		conflicts = append(conflicts, *c)
	}
	sort.Slice(conflicts, func(i, j int) bool {
		a, b := conflicts[i], conflicts[j]
		if a.Route.String() != b.Route.String() {
			return a.Route.String() < b.Route.String()
		}
		return a.Policies[0].String() < b.Policies[0].String()
	})
	return t, conflicts
}

// sortRoutes orders one host's routes most specific first: the longest path, an exact path
// before a prefix of the same length.
func sortRoutes(routes []route) {
	sort.SliceStable(routes, func(i, j int) bool {
		a, b := routes[i], routes[j]
		if len(a.path) != len(b.path) {
			return len(a.path) > len(b.path)
		}
		return a.exact && !b.exact
	})
}

// overlaps are, for each claim, the policies of other namespaces whose claims' hosts overlap
// its host. Found by index (the host, its covering wildcards, the hosts under a wildcard, the
// catch-alls), never by comparing every pair.
func overlaps(claims []Claim) [][]types.NamespacedName {
	byKey := map[string][]int{}
	var catchAlls []int
	for i, c := range claims {
		if c.Route.Host == "" {
			catchAlls = append(catchAlls, i)
			continue
		}
		for _, k := range IndexKeys(c.Route.Host) {
			byKey[k] = append(byKey[k], i)
		}
	}
	namespaces := map[string]bool{}
	for _, c := range claims {
		namespaces[c.Policy.Namespace] = true
	}
	out := make([][]types.NamespacedName, len(claims))
	add := func(i, j int) {
		if claims[i].Policy.Namespace != claims[j].Policy.Namespace && !slices.Contains(out[i], claims[j].Policy) {
			out[i] = append(out[i], claims[j].Policy)
		}
	}
	for i, c := range claims {
		keys, everything := OverlapKeys(c.Route.Host)
		if everything {
			if len(namespaces) > 1 {
				for j := range claims {
					add(i, j)
				}
			}
			continue
		}
		for _, k := range keys {
			for _, j := range byKey[k] {
				add(i, j)
			}
		}
		for _, j := range catchAlls {
			add(i, j)
		}
	}
	return out
}

func namespaces(cs []Claim) int {
	seen := map[string]bool{}
	for _, c := range cs {
		seen[c.Policy.Namespace] = true
	}
	return len(seen)
}

func policies(cs []Claim) []types.NamespacedName {
	var out []types.NamespacedName
	for _, c := range cs {
		if !slices.Contains(out, c.Policy) {
			out = append(out, c.Policy)
		}
	}
	return out
}
