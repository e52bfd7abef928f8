// Package gatewayapi tests the HTTPRoute provider on an embedded control plane with Gateway API's
// real CRDs (test/crds/gateway-api, v1.6.3 standard channel), so the API server's CEL rules check
// every route Floodgate writes, and routes requests through a real Gateway API implementation's
// translator: Envoy Gateway's `egctl x translate` turns the stored objects into the gateway's
// route status and Envoy's ordered routes, without running Envoy.
//
// No gateway runs here: the test plays one (gatewayapi.Gateway), reporting on each route's
// current generation, as a real implementation's status writer does.
package gatewayapi

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/internal/controlplane"
	"floodgate.dev/floodgate/internal/drill"
	"floodgate.dev/floodgate/internal/provider/gatewayapi"
	"floodgate.dev/floodgate/internal/provider/registered"
	"floodgate.dev/floodgate/internal/shed"
	"floodgate.dev/floodgate/internal/warp"
	"floodgate.dev/floodgate/test/fixtures"
)

var (
	cp         *controlplane.ControlPlane
	k8s        client.Client
	clk        *warp.Clock
	kubeconfig string
	egctl      string
	// rejections are the namespaces whose routes the played gateway rejects, with its message.
	rejections sync.Map
)

// redirectHost is the one host this cluster allows a shed answer to redirect to.
const redirectHost = "status.example.com"

func TestMain(m *testing.M) {
	ctrl.SetLogger(logr.Discard())
	os.Exit(run(m))
}

func run(m *testing.M) int {
	var err error
	if egctl, err = fixtures.Tool("EGCTL", "egctl.sh"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	env, err := drill.StartEnvWith(time.Date(2024, 11, 12, 9, 0, 0, 0, time.UTC),
		drill.EnvOptions{Settings: registered.Settings{RedirectHosts: shed.ParseRedirectHosts(redirectHost)}}, gatewayCRDs()...)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer env.Close()
	cp, k8s, clk, kubeconfig = env.ControlPlane, env.Client, env.Clock, env.Kubeconfig
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	if err := k8s.Create(ctx, &gatewayv1.GatewayClass{ObjectMeta: metav1.ObjectMeta{Name: "eg"},
		Spec: gatewayv1.GatewayClassSpec{ControllerName: gatewayapi.EnvoyGatewayController}}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	gw := &gatewayapi.Gateway{Client: k8s, ControllerName: gatewayapi.EnvoyGatewayController, Judge: func(r *gatewayv1.HTTPRoute) string {
		if why, ok := rejections.Load(r.Namespace); ok {
			return why.(string)
		}
		return ""
	}}
	go gw.Run(ctx, 20*time.Millisecond)
	return m.Run()
}

// gatewayCRDs are the files of the Gateway API CRDs the suite installs.
func gatewayCRDs() []string {
	var crds []string
	for _, f := range []string{"gatewayclasses", "gateways", "httproutes", "referencegrants"} {
		crds = append(crds, filepath.Join("..", "crds", "gateway-api", "gateway.networking.k8s.io_"+f+".yaml"))
	}
	return crds
}

// fixture creates a namespace with a Gateway of the eg class, Services api and api-v2, and the
// HTTPRoute api of two rules: / to api, and /v2 to api-v2 with a request header of the user's
// own (X-Team: edge).
func fixture(t *testing.T, name string) string {
	t.Helper()
	ns := name
	create(t, fixtures.RouteNamespace(ns)...)
	fixtures.ReportedOn(t, k8s, ns)
	fixtures.DeletePoliciesWhenDone(t, k8s, ns)
	return ns
}

func userRoute(ns string) *gatewayv1.HTTPRoute { return fixtures.UserRoute(ns) }

func pathPrefix(p string) gatewayv1.HTTPRouteMatch { return fixtures.PathPrefix(p) }

func backendRef(name string, port int32) gatewayv1.HTTPBackendRef {
	return fixtures.BackendRef(name, port)
}

func service(ns, name string, port int32) *corev1.Service { return fixtures.Service(ns, name, port) }

func policy(ns string, edit func(*v1alpha1.TrafficPolicy)) *v1alpha1.TrafficPolicy {
	return fixtures.RoutePolicy(ns, edit)
}

func getRoute(t *testing.T, ns string) *gatewayv1.HTTPRoute { return fixtures.GetRoute(t, k8s, ns) }

func getPolicy(t *testing.T, ns string) *v1alpha1.TrafficPolicy {
	t.Helper()
	p := &v1alpha1.TrafficPolicy{}
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "api"}, p); err != nil {
		t.Fatal(err)
	}
	return p
}

func editPolicy(t *testing.T, ns string, edit func(*v1alpha1.TrafficPolicy)) {
	t.Helper()
	p := getPolicy(t, ns)
	patch := client.MergeFrom(p.DeepCopy())
	edit(p)
	if err := k8s.Patch(context.Background(), p, patch); err != nil {
		t.Fatal(err)
	}
}

func eventuallyPolicy(t *testing.T, ns string, ok func(*v1alpha1.TrafficPolicy) bool) *v1alpha1.TrafficPolicy {
	t.Helper()
	return fixtures.EventuallyPolicy(t, k8s, client.ObjectKey{Namespace: ns, Name: "api"}, ok)
}

// eventually is fixtures.Eventually.
func eventually[T any](t *testing.T, f func() (T, bool)) T {
	t.Helper()
	return fixtures.Eventually(t, f)
}

func condition(p *v1alpha1.TrafficPolicy, t string) string { return fixtures.Condition(p, t) }

func create(t *testing.T, objs ...client.Object) {
	t.Helper()
	fixtures.Create(t, k8s, objs...)
}

// translate is what Envoy Gateway's translator makes of the namespace's route api.
func translate(t *testing.T, ns string) fixtures.Translation {
	t.Helper()
	return fixtures.Translate(t, k8s, egctl, ns, "api")
}

// request is a request to the route's host.
type request = fixtures.Request
