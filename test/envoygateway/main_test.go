// Package envoygateway tests Envoy Gateway's provider on an embedded control plane with Gateway
// API's and Envoy Gateway's real CRDs (test/crds/gateway-api, test/crds/envoy-gateway v1.9.1), so
// the API server's schema and CEL rules check every HTTPRoute, HTTPRouteFilter and
// BackendTrafficPolicy Floodgate writes, and routes requests through Envoy Gateway's real
// translator: `egctl x translate` v1.9.1 turns the stored objects into the route's status, the
// policies' statuses and Envoy's xDS (routes, their direct responses and local rate limits,
// clusters), without running Envoy.
//
// No gateway runs here: the test plays one, reporting on each route's current generation, as
// Envoy Gateway's status writer does; a namespace in paused gets no report.
package envoygateway

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/internal/drill"
	"floodgate.dev/floodgate/internal/provider/envoygateway"
	"floodgate.dev/floodgate/internal/provider/gatewayapi"
	"floodgate.dev/floodgate/internal/warp"
	"floodgate.dev/floodgate/test/fixtures"
)

var (
	k8s        client.Client
	clk        *warp.Clock
	kubeconfig string
	egctl      string
	// paused are the namespaces whose routes the played gateway does not report on.
	paused sync.Map
)

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
	env, err := drill.StartEnvWith(time.Date(2024, 11, 12, 9, 0, 0, 0, time.UTC), drill.EnvOptions{}, crdFiles()...)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer env.Close()
	k8s, clk, kubeconfig = env.Client, env.Clock, env.Kubeconfig
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	if err := k8s.Create(ctx, &gatewayv1.GatewayClass{ObjectMeta: metav1.ObjectMeta{Name: "eg"},
		Spec: gatewayv1.GatewayClassSpec{ControllerName: gatewayapi.EnvoyGatewayController}}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	gw := &gatewayapi.Gateway{Client: k8s, ControllerName: gatewayapi.EnvoyGatewayController}
	go wait.UntilWithContext(ctx, func(ctx context.Context) {
		var routes gatewayv1.HTTPRouteList
		if k8s.List(ctx, &routes) != nil {
			return
		}
		for i := range routes.Items {
			if _, ok := paused.Load(routes.Items[i].Namespace); !ok {
				_ = gw.Report(ctx, &routes.Items[i])
			}
		}
	}, 20*time.Millisecond)
	return m.Run()
}

// crdFiles are Gateway API's CRDs and Envoy Gateway's that Floodgate writes.
func crdFiles() []string {
	var crds []string
	for _, f := range []string{"gatewayclasses", "gateways", "httproutes", "referencegrants"} {
		crds = append(crds, filepath.Join("..", "crds", "gateway-api", "gateway.networking.k8s.io_"+f+".yaml"))
	}
	for _, f := range []string{"httproutefilters", "backendtrafficpolicies"} {
		crds = append(crds, filepath.Join("..", "crds", "envoy-gateway", "gateway.envoyproxy.io_"+f+".yaml"))
	}
	return crds
}

// fixture creates the namespace of the Gateway API suites (fixtures.RouteNamespace: a Gateway
// of the eg class, Services api and api-v2, the HTTPRoute api of two rules, the second with a
// filter of the user's own); the played gateway has reported on it.
func fixture(t *testing.T, ns string) string {
	t.Helper()
	fixtures.Create(t, k8s, fixtures.RouteNamespace(ns)...)
	fixtures.ReportedOn(t, k8s, ns)
	fixtures.DeletePoliciesWhenDone(t, k8s, ns)
	return ns
}

func policy(ns string, edit func(*v1alpha1.TrafficPolicy)) *v1alpha1.TrafficPolicy {
	return fixtures.RoutePolicy(ns, edit)
}

func getRoute(t *testing.T, ns string) *gatewayv1.HTTPRoute { return fixtures.GetRoute(t, k8s, ns) }

func editPolicy(t *testing.T, ns string, edit func(*v1alpha1.TrafficPolicy)) {
	t.Helper()
	p := &v1alpha1.TrafficPolicy{}
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "api"}, p); err != nil {
		t.Fatal(err)
	}
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

func condition(p *v1alpha1.TrafficPolicy, t string) string { return fixtures.Condition(p, t) }

// envoyObject is the policy's HTTPRouteFilter or BackendTrafficPolicy beside the route api, as
// stored (nil: absent).
func envoyObject(t *testing.T, ns, kind string) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{}
	gvk := envoygateway.FilterGVK
	if kind == envoygateway.PolicyGVK.Kind {
		gvk = envoygateway.PolicyGVK
	}
	u.SetGroupVersionKind(gvk)
	err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: envoygateway.CompanionName("api", "api")}, u)
	if client.IgnoreNotFound(err) != nil {
		t.Fatal(err)
	}
	if err != nil {
		return nil
	}
	return u
}

// translate is what Envoy Gateway's translator makes of the namespace's route api and its
// companions.
func translate(t *testing.T, ns string) fixtures.Translation {
	t.Helper()
	return fixtures.Translate(t, k8s, egctl, ns, "api")
}
