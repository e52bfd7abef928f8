package shed

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"floodgate.dev/floodgate/api/v1alpha1"
)

// FuzzShedAnswer: whatever a policy asks for and whatever a request carries, the shed server
// answers an error status or a redirect the cluster allows, with a number in Retry-After, a
// Location that is exactly the allowed URL, and a JSON body that parses.
func FuzzShedAnswer(f *testing.F) {
	f.Add(int32(503), int32(120), "", "", "api.example.com", "/v2/orders", "")
	f.Add(int32(429), int32(0), "https://status.example.com/incident?x=1", "status.example.com", "API.example.com:443", "/", "text/html")
	f.Add(int32(0), int32(-5), "https://status.example.com@evil.example/", "evil.example", "api.example.com", "/x", "")
	f.Add(int32(302), int32(86400), "https://evil.example/\r\nSet-Cookie: x=1", "evil.example", "evil.example", "//", "*/*")
	f.Fuzz(func(t *testing.T, code, retry int32, redirect, allow, host, path, accept string) {
		policy := &v1alpha1.TrafficPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "edge", Name: "api-gateway"},
			Spec: v1alpha1.TrafficPolicySpec{Shed: v1alpha1.ShedResponse{StatusCode: &code, RetryAfterSeconds: &retry, RedirectURL: redirect}}}
		hosts := ParseRedirectHosts(allow)
		table, _ := NewTable(RouteClaims(policy, []Route{{Host: "api.example.com", Path: "/"}}, hosts))
		s := NewServer()
		s.SetTable(table)

		var ctx fasthttp.RequestCtx
		ctx.Request.Header.SetHost(host)
		ctx.Request.URI().SetPath(path)
		ctx.Request.Header.Set("Accept", accept)
		s.ServeFast(&ctx)
		status, header := ctx.Response.StatusCode(), func(k string) string { return string(ctx.Response.Header.Peek(k)) }

		switch loc := header("Location"); {
		case status == http.StatusFound:
			if loc != redirect || !hosts.Allows(redirect) {
				t.Fatalf("redirected to %q (asked %q, allowed %v)", loc, redirect, hosts)
			}
			u, err := url.Parse(loc)
			if err != nil || u.Scheme != "https" || u.User != nil || strings.ContainsAny(loc, "\r\n") {
				t.Fatalf("an unsafe Location %q", loc)
			}
		case status < 400 || status > 599 || loc != "":
			t.Fatalf("answered %d with Location %q", status, loc)
		}
		if ra := header("Retry-After"); ra != "" {
			if n, err := strconv.Atoi(ra); err != nil || n <= 0 {
				t.Fatalf("Retry-After %q", ra)
			}
		}
		if status != http.StatusFound && !strings.HasPrefix(header("Content-Type"), "text/html") {
			var body map[string]any
			if err := json.Unmarshal(ctx.Response.Body(), &body); err != nil || body["error"] != "traffic_shed" {
				t.Fatalf("body %q: %v", ctx.Response.Body(), err)
			}
		}
	})
}
