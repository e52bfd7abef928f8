package shed

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func canary(policy, host string, paths map[string]networkingv1.PathType, ann map[string]string) networkingv1.Ingress {
	ing := networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{AnnotationPolicy: policy}}}
	for k, v := range ann {
		ing.Annotations[k] = v
	}
	rule := networkingv1.IngressRule{Host: host, IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{}}}
	for p, t := range paths {
		pt := t
		rule.HTTP.Paths = append(rule.HTTP.Paths, networkingv1.HTTPIngressPath{Path: p, PathType: &pt})
	}
	ing.Spec.Rules = []networkingv1.IngressRule{rule}
	return ing
}

func serve(t *testing.T, s *Server, host, path, accept string) (*http.Response, string) {
	t.Helper()
	ts := httptest.NewServer(s)
	defer ts.Close()
	req, _ := http.NewRequest(http.MethodGet, ts.URL+path, nil)
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
	s.SetTable(TableFrom([]networkingv1.Ingress{
		canary("edge/api-gateway", "api.example.com", map[string]networkingv1.PathType{"/": networkingv1.PathTypePrefix},
			map[string]string{AnnotationStatusCode: "503", AnnotationRetryAfter: "120"}),
		canary("edge/admin", "api.example.com", map[string]networkingv1.PathType{"/admin": networkingv1.PathTypePrefix},
			map[string]string{AnnotationStatusCode: "429", AnnotationRetryAfter: "30"}),
	}))

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
	s.SetTable(TableFrom([]networkingv1.Ingress{canary("edge/web", "www.example.com",
		map[string]networkingv1.PathType{"/": networkingv1.PathTypePrefix},
		map[string]string{AnnotationRedirect: "https://status.example.com", AnnotationStatusCode: "503"})}))
	ts := httptest.NewServer(s)
	defer ts.Close()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest(http.MethodGet, ts.URL+"/checkout", nil)
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
	tbl := TableFrom([]networkingv1.Ingress{canary("edge/a", "*.example.com",
		map[string]networkingv1.PathType{"/health": networkingv1.PathTypeExact},
		map[string]string{AnnotationStatusCode: "418"})})
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

func BenchmarkServeHTTP(b *testing.B) {
	s := NewServer()
	s.SetTable(TableFrom([]networkingv1.Ingress{canary("edge/api-gateway", "api.example.com",
		map[string]networkingv1.PathType{"/": networkingv1.PathTypePrefix, "/v2": networkingv1.PathTypePrefix},
		map[string]string{AnnotationStatusCode: "503", AnnotationRetryAfter: "120"})}))
	req := httptest.NewRequest(http.MethodGet, "http://api.example.com/v2/orders", nil)
	b.ReportAllocs()
	for b.Loop() {
		s.ServeHTTP(discard{h: http.Header{}}, req)
	}
}

type discard struct{ h http.Header }

func (d discard) Header() http.Header         { return d.h }
func (d discard) Write(p []byte) (int, error) { return len(p), nil }
func (d discard) WriteHeader(int)             {}
