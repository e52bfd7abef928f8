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
// server, as the manager's and the shed server's ServiceAccounts, as a responder of the group
// floodgate-responders and as a user outside it (impersonated: the envtest admin is exempt, so the
// objects alone prove nothing), which FlowSchema and priority level classified each request.
func TestFloodgateHasALaneOfItsOwnThroughAPIPriorityAndFairness(t *testing.T) {
	root, _ := filepath.Abs(filepath.Join("..", ".."))
	must(t, "apply", "-k", filepath.Join(root, "config", "apf"))
	ctx := context.Background()
	schema := func(name string) string {
		var fs flowcontrolv1.FlowSchema
		if err := k8s.Get(ctx, client.ObjectKey{Name: name}, &fs); err != nil {
			t.Fatal(err)
		}
		return string(fs.UID)
	}
	level := func(name string) string {
		var pl flowcontrolv1.PriorityLevelConfiguration
		if err := k8s.Get(ctx, client.ObjectKey{Name: name}, &pl); err != nil {
			t.Fatal(err)
		}
		return string(pl.UID)
	}
	manager, responders := lane{schema("floodgate-manager"), level("floodgate")}, lane{schema("floodgate-responders"), level("floodgate-responders")}
	serviceAccount := func(name string) rest.ImpersonationConfig {
		return rest.ImpersonationConfig{UserName: "system:serviceaccount:floodgate-system:" + name,
			Groups: []string{"system:serviceaccounts", "system:serviceaccounts:floodgate-system", "system:authenticated"}}
	}
	jane := rest.ImpersonationConfig{UserName: "jane", Groups: []string{"floodgate-responders", "system:authenticated"}}
	mallory := rest.ImpersonationConfig{UserName: "mallory", Groups: []string{"system:authenticated"}}
	policy := "/apis/traffic.floodgate.dev/v1alpha1/namespaces/edge/trafficpolicies"

	for _, c := range []struct {
		who         rest.ImpersonationConfig
		method, url string
		want        lane
	}{
		{serviceAccount("floodgate-manager"), http.MethodGet, "/apis/networking.k8s.io/v1/ingresses", manager},
		{serviceAccount("floodgate-manager"), http.MethodGet, "/apis/coordination.k8s.io/v1/namespaces/floodgate-system/leases/floodgate.traffic.floodgate.dev", manager},
		{serviceAccount("floodgate-shed"), http.MethodGet, "/apis/networking.k8s.io/v1/ingresses", manager},
		{jane, http.MethodGet, policy + "/api", responders},
		{jane, http.MethodPatch, policy + "/api", responders},
		{jane, http.MethodGet, policy + "?watch=true&timeoutSeconds=1", responders},
	} {
		if got := laneOf(t, c.who, c.method, c.url); got != c.want {
			t.Errorf("%s %s as %s: classified into %+v, want %+v", c.method, c.url, c.who.UserName, got, c.want)
		}
	}
	for _, c := range []struct {
		who         rest.ImpersonationConfig
		method, url string
	}{
		{mallory, http.MethodGet, policy + "/api"}, // any user with no RBAC and no group: never Floodgate's lanes
		{mallory, http.MethodPatch, policy + "/api"},
		{jane, http.MethodGet, "/api/v1/namespaces/edge/pods"}, // a responder's other requests stay in the built-in schemas
		{serviceAccount("someone-else"), http.MethodGet, "/apis/networking.k8s.io/v1/ingresses"},
	} {
		if got := laneOf(t, c.who, c.method, c.url); got.level == manager.level || got.level == responders.level || got.schema == "" {
			t.Errorf("%s %s as %s: classified into %+v, Floodgate's levels are for the manager and the group floodgate-responders only", c.method, c.url, c.who.UserName, got)
		}
	}

	t.Log("the manager's level is reached by no FlowSchema but the manager's")
	var all flowcontrolv1.FlowSchemaList
	if err := k8s.List(ctx, &all); err != nil {
		t.Fatal(err)
	}
	for _, fs := range all.Items {
		if fs.Spec.PriorityLevelConfiguration.Name == "floodgate" && fs.Name != "floodgate-manager" {
			t.Errorf("FlowSchema %s also sends requests to the manager's level", fs.Name)
		}
	}
}

// lane is where API Priority and Fairness classified a request.
type lane struct{ schema, level string }

// laneOf makes a request as someone and returns the X-Kubernetes-PF-FlowSchema-UID and
// X-Kubernetes-PF-PriorityLevel-UID the API server answered with (whatever the answer:
// authorization comes after classification).
func laneOf(t *testing.T, who rest.ImpersonationConfig, method, url string) lane {
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
	return lane{res.Header.Get("X-Kubernetes-PF-FlowSchema-UID"), res.Header.Get("X-Kubernetes-PF-PriorityLevel-UID")}
}
