package gatewayapi

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"k8s.io/utils/ptr"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/internal/scheme"
	"floodgate.dev/floodgate/internal/shed"
)

func TestTheShedServerAnswersAnHTTPRoutesHostWithItsPolicysAnswer(t *testing.T) {
	ns := fixture(t, "shed-answer")
	create(t, policy(ns, func(p *v1alpha1.TrafficPolicy) {
		p.Spec.Action = v1alpha1.ActionShedAll
		p.Spec.Shed = v1alpha1.ShedResponse{StatusCode: ptr.To[int32](429), RetryAfterSeconds: ptr.To[int32](90)}
	}))
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	server := shed.NewServer()
	go func() { _ = shed.SyncTable(ctx, cp.Config, scheme.New(), server, nil, nil) }()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	go func() { _ = shed.ServeAnswers(ctx, addr, server) }()

	type answer struct {
		code       int
		retryAfter string
		body       string
	}
	get := func(path string) answer {
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr+path, nil)
		req.Host = ns + ".example.com"
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return answer{}
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		return answer{res.StatusCode, res.Header.Get("Retry-After"), string(body)}
	}
	for _, path := range []string{"/", "/v2/users"} {
		got := eventually(t, func() (answer, bool) { a := get(path); return a, a.code == 429 })
		if got.retryAfter != "90" || !strings.Contains(got.body, `"policy":"`+ns+`/api"`) {
			t.Fatalf("%s: %+v", path, got)
		}
	}
}

func TestAHostClaimedByAPolicyOfAnotherNamespaceGetsTheNeutralAnswerAndBothAreTold(t *testing.T) {
	ns := fixture(t, "claimed")
	create(t, policy(ns, func(p *v1alpha1.TrafficPolicy) {
		p.Spec.Action, p.Spec.Shed = v1alpha1.ActionShedAll, v1alpha1.ShedResponse{StatusCode: ptr.To[int32](429)}
	}))
	eventuallyPolicy(t, ns, func(p *v1alpha1.TrafficPolicy) bool { return p.Status.Phase == v1alpha1.PhaseShedding })

	tenant := fixture(t, "claimed-elsewhere")
	editRoute(t, tenant, func(r *gatewayv1.HTTPRoute) {
		r.Spec.Hostnames = []gatewayv1.Hostname{gatewayv1.Hostname(ns + ".example.com")}
	})
	create(t, policy(tenant, func(p *v1alpha1.TrafficPolicy) {
		p.Spec.Action, p.Spec.Shed = v1alpha1.ActionShedAll, v1alpha1.ShedResponse{RedirectURL: "https://" + redirectHost + "/elsewhere"}
	}))
	for _, who := range [][2]string{{ns, tenant}, {tenant, ns}} {
		p := eventuallyPolicy(t, who[0], func(p *v1alpha1.TrafficPolicy) bool {
			return strings.Contains(condition(p, v1alpha1.ConditionDegraded), "also claimed by policy "+who[1]+"/api of another namespace")
		})
		if !strings.HasPrefix(condition(p, v1alpha1.ConditionDegraded), "True "+v1alpha1.ReasonConflict) {
			t.Fatalf("%s: %s", who[0], condition(p, v1alpha1.ConditionDegraded))
		}
	}
}
