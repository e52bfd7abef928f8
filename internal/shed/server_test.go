package shed

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"floodgate.dev/floodgate/api/v1alpha1"
)

// claims are a policy's claims on one host's paths, with its shed answer.
func claims(policy, host string, paths map[string]networkingv1.PathType, answer v1alpha1.ShedResponse, hosts RedirectHosts) []Claim {
	ns, name, _ := strings.Cut(policy, "/")
	p := &v1alpha1.TrafficPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: v1alpha1.TrafficPolicySpec{Shed: answer}}
	// The routes of an Ingress rule of host and paths (ingressnginx.ShedRoutes).
	var routes []Route
	for path, t := range paths {
		routes = append(routes, Route{Host: strings.ToLower(host), Path: path, Exact: t == networkingv1.PathTypeExact})
	}
	return RouteClaims(p, routes, hosts)
}

func table(all ...[]Claim) *Table {
	t, _ := NewTable(slices.Concat(all...))
	return t
}

func answer(code, retry int32) v1alpha1.ShedResponse {
	return v1alpha1.ShedResponse{StatusCode: &code, RetryAfterSeconds: &retry}
}

// listen serves s as the shed-server binary does, on a loopback port, until the test ends.
func listen(t *testing.T, s *Server) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ServeAnswers(ctx, addr, s) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("the shed server did not stop cleanly: %v", err)
		}
	})
	for i := 0; ; i++ {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			_ = c.Close()
			return "http://" + addr
		}
		if i == 500 {
			t.Fatalf("the shed server does not listen: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func serve(t *testing.T, s *Server, host, path, accept string) (*http.Response, string) {
	t.Helper()
	url := listen(t, s)
	req, _ := http.NewRequest(http.MethodGet, url+path, nil)
	req.Host = host
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return res, string(body)
}

func TestAnswersWithThePolicysStatusRetryAfterAndAShortBodyNamingIt(t *testing.T) {
	s := NewServer()
	s.SetTable(table(
		claims("edge/api-gateway", "api.example.com", map[string]networkingv1.PathType{"/": networkingv1.PathTypePrefix}, answer(503, 120), nil),
		claims("edge/admin", "api.example.com", map[string]networkingv1.PathType{"/admin": networkingv1.PathTypePrefix}, answer(429, 30), nil),
	))

	res, body := serve(t, s, "api.example.com:443", "/v2/orders", "")
	if res.StatusCode != 503 || res.Header.Get("Retry-After") != "120" || res.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("got %d Retry-After=%q type=%q", res.StatusCode, res.Header.Get("Retry-After"), res.Header.Get("Content-Type"))
	}
	want := `{"error":"traffic_shed","message":"This service is temporarily shedding traffic to recover. Please retry later.","policy":"edge/api-gateway","retryAfterSeconds":120}` + "\n"
	if body != want {
		t.Fatalf("body\n%s\nwant\n%s", body, want)
	}

	res, _ = serve(t, s, "api.example.com", "/admin/users", "")
	if res.StatusCode != 429 || res.Header.Get("Retry-After") != "30" {
		t.Fatalf("the longest path must win: got %d %q", res.StatusCode, res.Header.Get("Retry-After"))
	}
	res, _ = serve(t, s, "api.example.com", "/administrator", "")
	if res.StatusCode != 503 {
		t.Fatalf("/administrator is not under the /admin prefix: got %d", res.StatusCode)
	}
	res, body = serve(t, s, "api.example.com", "/", "text/html,application/xhtml+xml")
	if !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") || !strings.Contains(body, "edge/api-gateway") {
		t.Fatalf("browsers get a short HTML page naming the policy, got %q", body)
	}
}

func TestRedirectsToTheStatusPage(t *testing.T) {
	s := NewServer()
	s.SetTable(table(claims("edge/web", "www.example.com", map[string]networkingv1.PathType{"/": networkingv1.PathTypePrefix},
		v1alpha1.ShedResponse{RedirectURL: "https://status.example.com"}, RedirectHosts{"status.example.com"})))
	url := listen(t, s)
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest(http.MethodGet, url+"/checkout", nil)
	req.Host = "www.example.com"
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusFound || res.Header.Get("Location") != "https://status.example.com" {
		t.Fatalf("got %d Location=%q", res.StatusCode, res.Header.Get("Location"))
	}
}

func TestUnknownHostsGetTheDefaultShedResponse(t *testing.T) {
	res, body := serve(t, NewServer(), "unknown.example.com", "/", "")
	if res.StatusCode != 503 || res.Header.Get("Retry-After") != "120" || !strings.Contains(body, "traffic_shed") {
		t.Fatalf("got %d %q %s", res.StatusCode, res.Header.Get("Retry-After"), body)
	}
}

func TestExactPathsAndWildcardHosts(t *testing.T) {
	tbl := table(claims("edge/a", "*.example.com", map[string]networkingv1.PathType{"/health": networkingv1.PathTypeExact}, answer(418, 0), nil))
	if got := tbl.Lookup("api.example.com", "/health").StatusCode; got != 418 {
		t.Fatalf("wildcard host + exact path: %d", got)
	}
	if got := tbl.Lookup("api.example.com", "/health/x").StatusCode; got != 503 {
		t.Fatalf("exact path must not match a longer path: %d", got)
	}
	if got := tbl.Lookup("a.b.example.com", "/health").StatusCode; got != 503 {
		t.Fatalf("a wildcard covers one label only: %d", got)
	}
}

func TestARedirectOffTheClusterAllowlistIsNotAnswered(t *testing.T) {
	paths := map[string]networkingv1.PathType{"/": networkingv1.PathTypePrefix}
	evil := v1alpha1.ShedResponse{RedirectURL: "https://evil.example/login-again"}
	for _, hosts := range []RedirectHosts{nil, {"status.example.com"}, {"*.example.com"}} {
		got := table(claims("edge/web", "www.example.com", paths, evil, hosts)).Lookup("www.example.com", "/")
		if got.Redirect != "" || got.StatusCode != 503 {
			t.Errorf("allowlist %v: got %d redirect %q, want 503 and no redirect", hosts, got.StatusCode, got.Redirect)
		}
	}
	if !(RedirectHosts{"*.example.com"}).Allows("https://status.example.com/x") || (RedirectHosts{"*.example.com"}).Allows("https://status.example.com@evil.com/") {
		t.Error("a wildcard entry allows its subdomains, and userinfo never passes")
	}
}

func TestARouteClaimedFromTwoNamespacesGetsTheNeutralAnswerAndAConflict(t *testing.T) {
	paths := map[string]networkingv1.PathType{"/": networkingv1.PathTypePrefix}
	tbl, conflicts := NewTable(slices.Concat(
		claims("edge/api-gateway", "api.example.com", paths, answer(429, 90), nil),
		claims("tenant/forged", "API.example.com", paths, v1alpha1.ShedResponse{RedirectURL: "https://evil.example/login-again"}, RedirectHosts{"evil.example"}),
		claims("tenant/other-path", "api.example.com", map[string]networkingv1.PathType{"/tenant": networkingv1.PathTypePrefix}, answer(418, 1), nil),
	))
	if got := tbl.Lookup("api.example.com", "/v2"); got != DefaultResponse {
		t.Fatalf("a route claimed from two namespaces: got %+v, want the neutral default", got)
	}
	if got := tbl.Lookup("api.example.com", "/tenant/x"); got != DefaultResponse {
		t.Fatalf("another path of a host claimed from two namespaces: got %d, want the neutral default", got.StatusCode)
	}
	var described []string
	for _, c := range conflicts {
		described = append(described, fmt.Sprintf("%s %v", c.Route, c.Policies))
	}
	if want := []string{"api.example.com/ [edge/api-gateway tenant/forged tenant/other-path]", "api.example.com/ [tenant/forged edge/api-gateway]",
		"api.example.com/tenant [tenant/other-path edge/api-gateway]"}; !slices.Equal(described, want) {
		t.Fatalf("conflicts:\n%s\nwant\n%s", strings.Join(described, "\n"), strings.Join(want, "\n"))
	}
	same, conflicts := NewTable(slices.Concat(
		claims("edge/a", "api.example.com", paths, answer(429, 90), nil),
		claims("edge/b", "api.example.com", paths, answer(418, 1), nil),
	))
	if got := same.Lookup("api.example.com", "/"); got.Policy != "edge/a" || len(conflicts) != 0 {
		t.Fatalf("two policies of one namespace: the first by name answers, no conflict: got %s, %v", got.Policy, conflicts)
	}
}

// A policy of one namespace never chooses the shed answer for another's requests, by any host
// form: wherever two namespaces' hosts overlap, both get the neutral answer and a Conflict, in
// whichever order the claims come; hosts match as the data planes match them (any case, a
// trailing dot or a port ignored).
func TestNoNamespaceSteersAnothersAnswerByAnyHostForm(t *testing.T) {
	prefix := map[string]networkingv1.PathType{"/": networkingv1.PathTypePrefix}
	longer := map[string]networkingv1.PathType{"/v2/users": networkingv1.PathTypePrefix}
	victim := func(host string) []Claim { return claims("shop/api", host, prefix, answer(429, 30), nil) }
	for _, form := range []struct {
		name     string
		victim   []Claim
		attacker []Claim
		request  string // the victim's host as a client sends it
	}{
		{"the same exact host", victim("api.example.com"), claims("evil/x", "API.example.com", prefix, answer(418, 1), nil), "api.example.com"},
		{"a wildcard covering the victim's host, at the same path", victim("api.example.com"), claims("evil/x", "*.example.com", prefix, answer(418, 1), nil), "api.example.com"},
		{"a wildcard covering the victim's host, at a longer path", victim("api.example.com"), claims("evil/x", "*.example.com", longer, answer(418, 1), nil), "api.example.com"},
		{"a catch-all", victim("api.example.com"), claims("evil/x", "", prefix, answer(418, 1), nil), "api.example.com"},
		{"a trailing dot falling through to a catch-all", victim("api.example.com"), claims("evil/x", "", prefix, answer(418, 1), nil), "api.example.com."},
		{"a route with no hostnames", victim("shop.example.org"), RouteClaims(policyNamed("evil/x", answer(418, 1)), []Route{{Path: "/"}}, nil), "shop.example.org:8080"},
		{"an exact host over a victim route with no hostnames", RouteClaims(policyNamed("shop/api", answer(429, 30)), []Route{{Path: "/"}}, nil), claims("evil/x", "shop.example.org", prefix, answer(418, 1), nil), "shop.example.org"},
		{"a wildcard hostname over an exact one", victim("shop.example.org"), RouteClaims(policyNamed("evil/x", answer(418, 1)), []Route{{Host: "*.example.org", Path: "/"}}, nil), "shop.example.org"},
		{"two wildcards, one covering the other", claims("shop/api", "*.shop.example.org", prefix, answer(429, 30), nil),
			claims("evil/x", "*.example.org", prefix, answer(418, 1), nil), "eu.shop.example.org"},
	} {
		for _, order := range []string{"victim first", "attacker first"} {
			t.Run(form.name+", "+order, func(t *testing.T) {
				all := slices.Concat(form.victim, form.attacker)
				if order == "attacker first" {
					all = slices.Concat(form.attacker, form.victim)
				}
				tbl, conflicts := NewTable(all)
				for _, path := range []string{"/", "/v2/users/1"} {
					if got := tbl.Lookup(form.request, path); got != DefaultResponse {
						t.Errorf("%s%s: answered by %s (%d), want the neutral default", form.request, path, got.Policy, got.StatusCode)
					}
				}
				told := map[string]bool{}
				for _, c := range conflicts {
					if len(c.Policies) > 1 {
						told[c.Policies[0].String()] = true
					}
				}
				if !told["shop/api"] || !told["evil/x"] {
					t.Fatalf("both policies must be told of the conflict: %+v", conflicts)
				}
			})
		}
	}
	t.Run("a host only one namespace claims keeps its answer, in any case and with a trailing dot", func(t *testing.T) {
		tbl, conflicts := NewTable(slices.Concat(victim("api.example.com"), claims("evil/x", "*.example.net", prefix, answer(418, 1), nil)))
		if got := tbl.Lookup("API.Example.com.", "/"); got.StatusCode != 429 || len(conflicts) != 0 {
			t.Fatalf("got %d, conflicts %+v", got.StatusCode, conflicts)
		}
	})
}

func policyNamed(policy string, answer v1alpha1.ShedResponse) *v1alpha1.TrafficPolicy {
	ns, name, _ := strings.Cut(policy, "/")
	return &v1alpha1.TrafficPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: v1alpha1.TrafficPolicySpec{Shed: answer}}
}

// A miss (a host nobody claims) among 10,000 routes: lookups are indexed by host, not a scan.
func BenchmarkLookupMissAt10kRoutes(b *testing.B) {
	prefix := map[string]networkingv1.PathType{"/": networkingv1.PathTypePrefix}
	var all []Claim
	for i := range 10_000 {
		all = append(all, claims(fmt.Sprintf("ns-%d/p", i), fmt.Sprintf("app-%d.example.com", i), prefix, answer(503, 1), nil)...)
	}
	tbl, _ := NewTable(all)
	b.ResetTimer()
	for b.Loop() {
		if tbl.Lookup("nobody.example.org", "/x") != DefaultResponse {
			b.Fatal("a miss answered")
		}
	}
}

func BenchmarkServeFast(b *testing.B) {
	s := NewServer()
	s.SetTable(table(claims("edge/api-gateway", "api.example.com",
		map[string]networkingv1.PathType{"/": networkingv1.PathTypePrefix, "/v2": networkingv1.PathTypePrefix}, answer(503, 120), nil)))
	var ctx fasthttp.RequestCtx
	b.ReportAllocs()
	for b.Loop() {
		ctx.Request.Reset()
		ctx.Response.Reset()
		ctx.Request.SetRequestURI("/v2/orders")
		ctx.Request.Header.SetHost("api.example.com")
		s.ServeFast(&ctx)
	}
}
