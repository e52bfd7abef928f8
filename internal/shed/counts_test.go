package shed

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
)

// TestTheShedServerCountsEachAnswerByPolicyHostAndCode: every answer is counted once, under the
// policy that gave it, the host of the route it answered for and its code; an answer no route
// gave is counted under no policy; the counts survive a new table, and /metrics exports them.
func TestTheShedServerCountsEachAnswerByPolicyHostAndCode(t *testing.T) {
	s := NewServer()
	s.SetTable(table(
		claims("edge/api-gateway", "api.example.com", map[string]networkingv1.PathType{"/": networkingv1.PathTypePrefix}, answer(503, 120), nil),
		claims("edge/admin", "*.example.com", map[string]networkingv1.PathType{"/": networkingv1.PathTypePrefix}, answer(429, 30), nil),
	))
	send := func(host string, n int) {
		for range n {
			serve(t, s, host, "/", "")
		}
	}
	send("api.example.com", 3)
	send("admin.example.com", 2)
	send("unknown.test", 1)
	// A new table (a policy changed): the same routes keep counting where they were.
	s.SetTable(table(
		claims("edge/api-gateway", "api.example.com", map[string]networkingv1.PathType{"/": networkingv1.PathTypePrefix}, answer(503, 120), nil),
	))
	send("api.example.com", 1)
	want := map[CountKey]uint64{
		{Policy: "edge/api-gateway", Host: "api.example.com", Code: 503}: 4,
		{Policy: "edge/admin", Host: "*.example.com", Code: 429}:         2,
		{Code: 503}: 1,
	}
	got := s.Counts.Snapshot()
	if len(got) != len(want) {
		t.Errorf("counts %v, want %v", got, want)
	}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("%+v: %d answers counted, want %d (all: %v)", k, got[k], n, got)
		}
	}
	rec := httptest.NewRecorder()
	MetricsHandler(s).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	for _, line := range []string{
		`floodgate_shed_responses_total{code="503",host="api.example.com",policy="edge/api-gateway"} 4`,
		`floodgate_shed_responses_total{code="429",host="*.example.com",policy="edge/admin"} 2`,
		`floodgate_shed_responses_total{code="503",host="",policy=""} 1`,
	} {
		if !strings.Contains(string(body), line) {
			t.Errorf("/metrics lacks %s:\n%s", line, body)
		}
	}
}

// TestCountsPastTheirBoundFoldIntoOtherHosts: past MaxCountKeys, a new host's answers are
// counted under its policy and code with host (other), so a flood of hosts cannot grow the
// shed server's memory without bound.
func TestCountsPastTheirBoundFoldIntoOtherHosts(t *testing.T) {
	c := &Counts{}
	for i := range MaxCountKeys {
		c.counter(CountKey{Policy: "edge/api", Host: fmt.Sprintf("h%d.example.com", i), Code: 503}).Add(1)
	}
	c.counter(CountKey{Policy: "edge/api", Host: "one-more.example.com", Code: 503}).Add(1)
	c.counter(CountKey{Policy: "edge/api", Host: "and-another.example.com", Code: 503}).Add(1)
	got := c.Snapshot()
	if len(got) != MaxCountKeys+1 || got[CountKey{Policy: "edge/api", Host: OtherHosts, Code: 503}] != 2 {
		t.Fatalf("%d keys, (other) %d", len(got), got[CountKey{Policy: "edge/api", Host: OtherHosts, Code: 503}])
	}
}
