package e2e

import (
	"context"
	"net/http"
	"path/filepath"
	"testing"

	flowcontrolv1 "k8s.io/api/flowcontrol/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// TestFloodgateHasALaneOfItsOwnThroughAPIPriorityAndFairness applies config/apf and asks the API
// server, as the manager's ServiceAccount and as a responder (impersonated: the envtest admin is
// exempt, so the objects alone prove nothing), which FlowSchema classified each request.
func TestFloodgateHasALaneOfItsOwnThroughAPIPriorityAndFairness(t *testing.T) {
	root, _ := filepath.Abs(filepath.Join("..", ".."))
	must(t, "apply", "-k", filepath.Join(root, "config", "apf"))
	uid := func(name string) string {
		var fs flowcontrolv1.FlowSchema
		if err := k8s.Get(context.Background(), client.ObjectKey{Name: name}, &fs); err != nil {
			t.Fatal(err)
		}
		return string(fs.UID)
	}
	manager, responders := uid("floodgate-manager"), uid("floodgate-responders")

	cases := []struct {
		who         rest.ImpersonationConfig
		method, url string
		want        string
	}{
		{rest.ImpersonationConfig{UserName: "system:serviceaccount:floodgate-system:floodgate-manager",
			Groups: []string{"system:serviceaccounts", "system:serviceaccounts:floodgate-system", "system:authenticated"}},
			http.MethodGet, "/apis/networking.k8s.io/v1/ingresses", manager},
		{rest.ImpersonationConfig{UserName: "system:serviceaccount:floodgate-system:floodgate-manager",
			Groups: []string{"system:serviceaccounts", "system:serviceaccounts:floodgate-system", "system:authenticated"}},
			http.MethodGet, "/apis/coordination.k8s.io/v1/namespaces/floodgate-system/leases/floodgate.traffic.floodgate.dev", manager},
		{rest.ImpersonationConfig{UserName: "jane", Groups: []string{"sre", "system:authenticated"}},
			http.MethodGet, "/apis/traffic.floodgate.dev/v1alpha1/namespaces/edge/trafficpolicies/api", responders},
		{rest.ImpersonationConfig{UserName: "jane", Groups: []string{"sre", "system:authenticated"}},
			http.MethodPatch, "/apis/traffic.floodgate.dev/v1alpha1/namespaces/edge/trafficpolicies/api", responders},
	}
	for _, c := range cases {
		if got := flowSchemaOf(t, c.who, c.method, c.url); got != c.want {
			t.Errorf("%s %s as %s: classified by FlowSchema %q, want %q", c.method, c.url, c.who.UserName, got, c.want)
		}
	}
	if got := flowSchemaOf(t, rest.ImpersonationConfig{UserName: "jane", Groups: []string{"system:authenticated"}},
		http.MethodGet, "/api/v1/namespaces/edge/pods"); got == manager || got == responders || got == "" {
		t.Errorf("jane's other requests must stay in the built-in schemas, got %q", got)
	}
}

// flowSchemaOf makes a request as someone and returns the X-Kubernetes-PF-FlowSchema-UID the API
// server answered with (whatever the answer: authorization comes after classification).
func flowSchemaOf(t *testing.T, who rest.ImpersonationConfig, method, url string) string {
	t.Helper()
	cfg := rest.CopyConfig(env.ControlPlane.Config)
	cfg.Impersonate = who
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(method, cfg.Host+url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if method == http.MethodPatch {
		req.Header.Set("Content-Type", "application/merge-patch+json")
	}
	res, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	return res.Header.Get("X-Kubernetes-PF-FlowSchema-UID")
}
