// Package fromcluster tests `floodgate drill --from-cluster`: a "live" cluster (one embedded
// control plane, reached through a proxy that counts every request) holds a team's policy and
// its objects; the rehearsal copies them into a second embedded control plane and runs the
// default runbook there, and the live cluster receives no mutating request.
package fromcluster

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/internal/apicount"
	"floodgate.dev/floodgate/internal/controlplane"
	"floodgate.dev/floodgate/internal/drill"
	"floodgate.dev/floodgate/internal/restore"
	"floodgate.dev/floodgate/internal/scheme"
	"floodgate.dev/floodgate/test/crds"
	"floodgate.dev/floodgate/test/fixtures"
)

var (
	live       *controlplane.ControlPlane
	liveClient client.Client
	counts     *apicount.Counter
	proxied    string // a kubeconfig reaching the live cluster through the counting proxy
	binary     string // the floodgate command
)

func TestMain(m *testing.M) {
	ctrl.SetLogger(logr.Discard())
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "floodgate-fromcluster")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if binary, err = fixtures.Build(dir, "cmd/floodgate"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	paths, err := crds.Write(dir, crds.GatewayAPI)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if live, err = controlplane.Start(paths...); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = live.Stop() }()
	if liveClient, err = client.New(live.Config, client.Options{Scheme: scheme.New()}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if counts, proxied, err = apicount.Proxy(live.Config, dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// liveObjects are a team's edge in the live cluster: an Ingress and an HTTPRoute (with its Gateway
// and GatewayClass) in front of Services, a Deployment and its HPA, and the policy over them with
// a ramp whose first step waits for the Deployment.
func liveObjects(ns string) []client.Object {
	prefix := networkingv1.PathTypePrefix
	labels := map[string]string{"app": "api"}
	return []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}},
		&gatewayv1.GatewayClass{ObjectMeta: metav1.ObjectMeta{Name: ns + "-eg"}, Spec: gatewayv1.GatewayClassSpec{ControllerName: "gateway.envoyproxy.io/gatewayclass-controller"}},
		&gatewayv1.Gateway{ObjectMeta: metav1.ObjectMeta{Name: "eg", Namespace: ns}, Spec: gatewayv1.GatewaySpec{GatewayClassName: gatewayv1.ObjectName(ns + "-eg"),
			Listeners: []gatewayv1.Listener{{Name: "http", Protocol: gatewayv1.HTTPProtocolType, Port: 80}}}},
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "api", Namespace: ns}, Spec: corev1.ServiceSpec{Selector: labels, Ports: []corev1.ServicePort{{Name: "http", Port: 80}}}},
		&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "api", Namespace: ns}, Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](6),
			Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "api", Image: "example/api:1"}}}}}},
		&autoscalingv2.HorizontalPodAutoscaler{ObjectMeta: metav1.ObjectMeta{Name: "api", Namespace: ns}, Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "api"}, MinReplicas: ptr.To[int32](2), MaxReplicas: 20}},
		&networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Name: "api", Namespace: ns, Annotations: map[string]string{"nginx.ingress.kubernetes.io/limit-rps": "1000"}},
			Spec: networkingv1.IngressSpec{IngressClassName: ptr.To("nginx"), Rules: []networkingv1.IngressRule{{Host: "api.example.com",
				IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: []networkingv1.HTTPIngressPath{
					{Path: "/", PathType: &prefix, Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: "api", Port: networkingv1.ServiceBackendPort{Number: 80}}}}}}}}}}},
		&gatewayv1.HTTPRoute{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns}, Spec: gatewayv1.HTTPRouteSpec{
			CommonRouteSpec: gatewayv1.CommonRouteSpec{ParentRefs: []gatewayv1.ParentReference{{Name: "eg"}}},
			Rules: []gatewayv1.HTTPRouteRule{{BackendRefs: []gatewayv1.HTTPBackendRef{{BackendRef: gatewayv1.BackendRef{
				BackendObjectReference: gatewayv1.BackendObjectReference{Name: "api", Port: ptr.To[gatewayv1.PortNumber](80)}}}}}}}},
		&v1alpha1.TrafficPolicy{ObjectMeta: metav1.ObjectMeta{Name: "edge", Namespace: ns}, Spec: v1alpha1.TrafficPolicySpec{
			TargetRefs:     []v1alpha1.TargetRef{{Name: "api"}, {Group: v1alpha1.GroupGatewayAPI, Kind: v1alpha1.TargetKindHTTPRoute, Name: "web"}},
			AutoscalerRefs: []v1alpha1.AutoscalerRef{{Name: "api"}},
			Autoscaling:    v1alpha1.Autoscaling{ReleaseAfter: &metav1.Duration{Duration: 4 * time.Minute}},
			Ramp: &v1alpha1.Ramp{Steps: []v1alpha1.RampStep{
				{AllowRegions: []string{"AU"}, Hold: metav1.Duration{Duration: 5 * time.Minute},
					Gates: []v1alpha1.Gate{{Name: "fleet", WorkloadReady: &v1alpha1.WorkloadReadyGate{Name: "api"}}}},
				{AdmitPercent: ptr.To[int32](50), Hold: metav1.Duration{Duration: 5 * time.Minute}},
			}}}},
	}
}

func createLive(t *testing.T, ns string) {
	t.Helper()
	for _, o := range liveObjects(ns) {
		if err := liveClient.Create(context.Background(), o); err != nil {
			t.Fatal(err)
		}
	}
}

func TestARehearsalOfTheLivePolicyRunsTheWholeRunbookAndSendsTheLiveClusterNoWrite(t *testing.T) {
	ns := "shop"
	createLive(t, ns)
	before := counts.Snapshot()

	var out bytes.Buffer
	cmd := exec.Command(binary, "drill", "--from-cluster", "--kubeconfig", proxied, "-n", ns, "edge", "--report", filepath.Join(t.TempDir(), "rehearsal.html"))
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("the rehearsal failed: %v\n%s", err, out.String())
	}
	text := out.String()
	for _, want := range []string{"rehearsal of trafficpolicy shop/edge", "Ingress shop/api", "HTTPRoute shop/web", "Gateway shop/eg", "GatewayClass shop-eg",
		"HorizontalPodAutoscaler shop/api", "Deployment shop/api", "Service shop/api", "exact restore", "PASS"} {
		if !strings.Contains(text, want) {
			t.Errorf("the rehearsal does not show %q:\n%s", want, text)
		}
	}
	used := counts.Since(before)
	if m := apicount.Mutating(used); len(m) > 0 {
		t.Fatalf("the live cluster received mutating requests: %v", m)
	}
	if used["get trafficpolicies"] == 0 {
		t.Fatalf("the rehearsal did not read the live cluster through the proxy: %v", used)
	}
	t.Logf("requests to the live cluster: %v\n%s", used, text)
}

func TestARehearsalGoesOnPastMissingTargetsAndCopiesOnlyRealScaleTargets(t *testing.T) {
	ns := "patchy"
	createLive(t, ns)
	ctx := context.Background()
	t.Log("the policy also names an Ingress and an HPA that are gone, an HPA whose scaleTargetRef names a Role, and one of a kind the cluster does not serve")
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "api-admin", Namespace: ns},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get"}}}}
	rogue := &autoscalingv2.HorizontalPodAutoscaler{ObjectMeta: metav1.ObjectMeta{Name: "rogue", Namespace: ns}, Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
		ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "Role", Name: "api-admin"}, MinReplicas: ptr.To[int32](1), MaxReplicas: 3}}
	unserved := &autoscalingv2.HorizontalPodAutoscaler{ObjectMeta: metav1.ObjectMeta{Name: "widgets", Namespace: ns}, Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
		ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "widgets.example.com/v1", Kind: "Widget", Name: "w"}, MinReplicas: ptr.To[int32](1), MaxReplicas: 3}}
	for _, o := range []client.Object{role, rogue, unserved} {
		if err := liveClient.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	p := &v1alpha1.TrafficPolicy{}
	if err := liveClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "edge"}, p); err != nil {
		t.Fatal(err)
	}
	patch := client.MergeFrom(p.DeepCopy())
	p.Spec.TargetRefs = append([]v1alpha1.TargetRef{{Name: "gone"}}, p.Spec.TargetRefs...)
	p.Spec.AutoscalerRefs = append([]v1alpha1.AutoscalerRef{{Name: "gone"}}, append(p.Spec.AutoscalerRefs, v1alpha1.AutoscalerRef{Name: "rogue"}, v1alpha1.AutoscalerRef{Name: "widgets"})...)
	if err := liveClient.Patch(ctx, p, patch); err != nil {
		t.Fatal(err)
	}
	before := counts.Snapshot()

	var out bytes.Buffer
	cmd := exec.Command(binary, "drill", "--from-cluster", "--kubeconfig", proxied, "-n", ns, "edge")
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("the rehearsal failed: %v\n%s", err, out.String())
	}
	text := out.String()
	for _, want := range []string{"Not in the live cluster (the copy of the policy leaves them out): Ingress patchy/gone, HorizontalPodAutoscaler patchy/gone.",
		"Not copied, no scale target (a kind without a scale subresource; the copy of the policy leaves its autoscaler out): Role patchy/api-admin (scaleTargetRef of HorizontalPodAutoscaler rogue), Widget patchy/w (scaleTargetRef of HorizontalPodAutoscaler widgets).",
		"Ingress patchy/api", "HTTPRoute patchy/web", "Deployment patchy/api", "exact restore", "PASS"} {
		if !strings.Contains(text, want) {
			t.Errorf("the rehearsal does not show %q:\n%s", want, text)
		}
	}
	if copied, _, _ := strings.Cut(text, "Not in the live cluster"); strings.Contains(copied, "Role ") || strings.Contains(copied, "patchy/rogue") {
		t.Errorf("the Role or the autoscaler scaling it was copied:\n%s", text)
	}
	if m := apicount.Mutating(counts.Since(before)); len(m) > 0 {
		t.Fatalf("the live cluster received mutating requests: %v", m)
	}
}

func TestAPolicyThatIsNotAtRestIsRefusedWithTheReasonUnlessItsStateIsStripped(t *testing.T) {
	ns := "busy"
	createLive(t, ns)
	ing := &networkingv1.Ingress{}
	if err := liveClient.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "api"}, ing); err != nil {
		t.Fatal(err)
	}
	patch := client.MergeFrom(ing.DeepCopy())
	ing.Annotations[restore.Annotation] = `{"policy":"busy/edge","fields":[{"path":["metadata","annotations","nginx.ingress.kubernetes.io/limit-rps"],"original":"1000","set":"50"}]}`
	if err := liveClient.Patch(context.Background(), ing, patch); err != nil {
		t.Fatal(err)
	}
	before := counts.Snapshot()
	cfg, err := clientConfig()
	if err != nil {
		t.Fatal(err)
	}
	src := drill.Source{Config: cfg, Namespace: ns, Policy: "edge", CRDDir: t.TempDir()}
	_, err = drill.FromCluster(context.Background(), src)
	if err == nil || !strings.Contains(err.Error(), "is not at rest: Ingress api carries a restore record") || !strings.Contains(err.Error(), "--strip-floodgate-state") {
		t.Fatalf("want a refusal naming the restore record: %v", err)
	}
	src.StripFloodgateState = true
	f, err := drill.FromCluster(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	res, err := drill.Run(context.Background(), f, &out)
	if err != nil || res.Failed {
		t.Fatalf("the stripped rehearsal failed: %v\n%s", err, out.String())
	}
	if m := apicount.Mutating(counts.Since(before)); len(m) > 0 {
		t.Fatalf("the live cluster received mutating requests: %v", m)
	}
}

// clientConfig reaches the live cluster through the counting proxy.
func clientConfig() (*restConfig, error) { return loadKubeconfig(proxied) }

type restConfig = rest.Config

func loadKubeconfig(path string) (*rest.Config, error) {
	return clientcmd.BuildConfigFromFlags("", path)
}
