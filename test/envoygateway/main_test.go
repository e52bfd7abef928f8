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
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
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

// fixture creates a namespace with a Gateway of the eg class, Services api and api-v2, and the
// HTTPRoute api of two rules: / to api, and /v2 to api-v2 with a request header of the user's
// own (X-Team: edge); the played gateway has reported on it.
func fixture(t *testing.T, ns string) string {
	t.Helper()
	fixtures.Create(t, k8s, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}},
		&gatewayv1.Gateway{ObjectMeta: metav1.ObjectMeta{Name: "eg", Namespace: ns}, Spec: gatewayv1.GatewaySpec{
			GatewayClassName: "eg", Listeners: []gatewayv1.Listener{{Name: "http", Protocol: gatewayv1.HTTPProtocolType, Port: 80}}}},
		service(ns, "api"), service(ns, "api-v2"), userRoute(ns))
	fixtures.Eventually(t, func() (string, bool) {
		r := getRoute(t, ns)
		for _, parent := range r.Status.Parents {
			if c := meta.FindStatusCondition(parent.Conditions, string(gatewayv1.RouteConditionAccepted)); c != nil && c.ObservedGeneration == r.Generation {
				return "", true
			}
		}
		return fmt.Sprintf("no report on generation %d of HTTPRoute %s/api", r.Generation, ns), false
	})
	fixtures.DeletePoliciesWhenDone(t, k8s, ns)
	return ns
}

func userRoute(ns string) *gatewayv1.HTTPRoute {
	prefix := func(p string) []gatewayv1.HTTPRouteMatch {
		return []gatewayv1.HTTPRouteMatch{{Path: &gatewayv1.HTTPPathMatch{Type: ptr.To(gatewayv1.PathMatchPathPrefix), Value: ptr.To(p)}}}
	}
	backend := func(name string) []gatewayv1.HTTPBackendRef {
		return []gatewayv1.HTTPBackendRef{{BackendRef: gatewayv1.BackendRef{BackendObjectReference: gatewayv1.BackendObjectReference{
			Name: gatewayv1.ObjectName(name), Port: ptr.To(gatewayv1.PortNumber(80))}}}}
	}
	return &gatewayv1.HTTPRoute{
		ObjectMeta: metav1.ObjectMeta{Name: "api", Namespace: ns, Labels: map[string]string{"tier": "edge"}},
		Spec: gatewayv1.HTTPRouteSpec{
			CommonRouteSpec: gatewayv1.CommonRouteSpec{ParentRefs: []gatewayv1.ParentReference{{Name: "eg"}}},
			Hostnames:       []gatewayv1.Hostname{gatewayv1.Hostname(ns + ".example.com")},
			Rules: []gatewayv1.HTTPRouteRule{
				{Matches: prefix("/"), BackendRefs: backend("api")},
				{Matches: prefix("/v2"), BackendRefs: backend("api-v2"),
					Filters: []gatewayv1.HTTPRouteFilter{{Type: gatewayv1.HTTPRouteFilterRequestHeaderModifier,
						RequestHeaderModifier: &gatewayv1.HTTPHeaderFilter{Set: []gatewayv1.HTTPHeader{{Name: "X-Team", Value: "edge"}}}}}},
			},
		},
	}
}

func service(ns, name string) *corev1.Service {
	return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80}}}}
}

// policy is the policy api on the route api, with edit applied.
func policy(ns string, edit func(*v1alpha1.TrafficPolicy)) *v1alpha1.TrafficPolicy {
	p := &v1alpha1.TrafficPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "api", Namespace: ns},
		Spec: v1alpha1.TrafficPolicySpec{
			TargetRefs: []v1alpha1.TargetRef{{Group: v1alpha1.GroupGatewayAPI, Kind: v1alpha1.TargetKindHTTPRoute, Name: "api"}},
		},
	}
	edit(p)
	return p
}

func getRoute(t *testing.T, ns string) *gatewayv1.HTTPRoute {
	t.Helper()
	r := &gatewayv1.HTTPRoute{}
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "api"}, r); err != nil {
		t.Fatal(err)
	}
	return r
}

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
