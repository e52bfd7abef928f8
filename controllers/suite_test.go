package controllers_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/google/go-cmp/cmp"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/internal/controlplane"
	"floodgate.dev/floodgate/internal/drill"
	"floodgate.dev/floodgate/internal/provider"
	"floodgate.dev/floodgate/internal/provider/registered"
	"floodgate.dev/floodgate/internal/warp"
	"floodgate.dev/floodgate/test/fixtures"
)

// The suite runs one embedded control plane (real kube-apiserver and etcd) and one manager on a
// warped clock, started as the drills start theirs; each test works in a namespace of its own.
// Tests are plain `testing` with Gomega's matchers (NewWithT), as in the other suites.
var (
	env        *drill.Env
	cp         *controlplane.ControlPlane
	k8s        client.Client
	clk        *warp.Clock
	kubeconfig string
)

// traefikByFlag is an IngressClass controller name only the manager's --data-plane-controllers
// says is Traefik's.
const traefikByFlag = "example.com/nginx-by-traefik"

// suiteDataPlaneControllers is the suite manager's --data-plane-controllers.
var suiteDataPlaneControllers = map[string]provider.DataPlane{traefikByFlag: "traefik"}

func TestMain(m *testing.M) {
	// FLOODGATE_TEST_LOG=1 shows the manager's log.
	if os.Getenv("FLOODGATE_TEST_LOG") != "" {
		logf.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.UseDevMode(true)))
	} else {
		logf.SetLogger(logr.Discard())
	}
	SetDefaultEventuallyTimeout(fixtures.Within)
	SetDefaultEventuallyPollingInterval(fixtures.Poll)
	code, err := run(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "controllers suite:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

func run(m *testing.M) (int, error) {
	var err error
	env, err = drill.StartEnvWith(time.Date(2024, 11, 12, 9, 0, 0, 0, time.UTC), drill.EnvOptions{
		UnguardedGates: true, // the tests' webhooks listen on loopback
		// A class controller the suite's manager is told is Traefik's (--data-plane-controllers).
		Settings: registered.Settings{DataPlaneControllers: suiteDataPlaneControllers},
	})
	if err != nil {
		return 0, err
	}
	defer env.Close()
	cp, k8s, clk, kubeconfig = env.ControlPlane, env.Client, env.Clock, env.Kubeconfig
	// The class the sample Ingresses name is served (an Ingress of a class that does not exist
	// carries no traffic, and makes no claim on a shed answer).
	if err := k8s.Create(context.Background(), &networkingv1.IngressClass{ObjectMeta: metav1.ObjectMeta{Name: "nginx"},
		Spec: networkingv1.IngressClassSpec{Controller: "k8s.io/ingress-nginx"}}); err != nil {
		return 0, err
	}
	return m.Run(), nil
}

// restartManager stops the suite's manager and starts a new one, as a rollout or a crash does.
func restartManager(t testing.TB) {
	g := NewWithT(t)
	g.Expect(env.StopManager()).To(Succeed())
	g.Expect(env.StartManager()).To(Succeed())
}

// passesByHand stops the suite's manager for a test that runs its passes itself (the control
// plane keeps running), and starts it again when the test ends, before the cleanup of the
// test's namespace, which needs the controller.
func passesByHand(t testing.TB) {
	g := NewWithT(t)
	g.Expect(env.StopManager()).To(Succeed())
	t.Cleanup(func() { g.Expect(env.StartManager()).To(Succeed()) })
}

// newNamespace creates a namespace for one test and deletes its policies afterwards (envtest
// has no garbage collector and no namespace controller).
func newNamespace(t testing.TB) string {
	g := NewWithT(t)
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "t-"}}
	g.Expect(k8s.Create(ctx, ns)).To(Succeed())
	t.Cleanup(func() {
		var list v1alpha1.TrafficPolicyList
		g.Expect(k8s.List(ctx, &list, client.InNamespace(ns.Name))).To(Succeed())
		for i := range list.Items {
			_ = k8s.Delete(ctx, &list.Items[i])
		}
		g.Eventually(func() int {
			g.Expect(k8s.List(ctx, &list, client.InNamespace(ns.Name))).To(Succeed())
			return len(list.Items)
		}).Should(BeZero(), "policies must restore and let go when deleted")
	})
	return ns.Name
}

// The sample's objects: an Ingress with two paths, annotations of its own and a pre-existing
// limit-rps; a Deployment at 4 replicas; an HPA on it.
func sampleIngress(ns string) *networkingv1.Ingress {
	prefix := networkingv1.PathTypePrefix
	exact := networkingv1.PathTypeExact
	return &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Name: "api-gateway", Namespace: ns,
			Labels: map[string]string{"app": "api-gateway", "app.kubernetes.io/managed-by": "Helm"},
			Annotations: map[string]string{
				"nginx.ingress.kubernetes.io/limit-rps":       "1000",
				"nginx.ingress.kubernetes.io/proxy-body-size": "8m",
				"team": "edge",
			}},
		Spec: networkingv1.IngressSpec{
			IngressClassName: ptr.To("nginx"),
			Rules: []networkingv1.IngressRule{{
				Host: "api.example.com",
				IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: []networkingv1.HTTPIngressPath{
					{Path: "/", PathType: &prefix, Backend: backend("api", 80)},
					{Path: "/v2/health", PathType: &exact, Backend: backend("api-v2", 8080)},
				}}},
			}},
		},
	}
}

func backend(svc string, port int32) networkingv1.IngressBackend {
	return networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
		Name: svc, Port: networkingv1.ServiceBackendPort{Number: port}}}
}

func sampleDeployment(ns string, replicas int32) *appsv1.Deployment {
	labels := map[string]string{"app": "api-gateway"}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "api-gateway", Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "api", Image: "example/api:1"}}},
			},
		},
	}
}

func sampleHPA(ns string, behavior *autoscalingv2.HorizontalPodAutoscalerBehavior) *autoscalingv2.HorizontalPodAutoscaler {
	return &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Name: "api-gateway", Namespace: ns, Annotations: map[string]string{"owner": "sre"}},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "api-gateway"},
			MinReplicas:    ptr.To[int32](2),
			MaxReplicas:    10,
			Metrics: []autoscalingv2.MetricSpec{{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{
				Name: corev1.ResourceCPU, Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: ptr.To[int32](80)}}}},
			Behavior: behavior,
		},
	}
}

// samplePolicy is the sample.
func samplePolicy(ns string, action v1alpha1.Action) *v1alpha1.TrafficPolicy {
	return &v1alpha1.TrafficPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "api-gateway", Namespace: ns},
		Spec: v1alpha1.TrafficPolicySpec{
			TargetRefs:     []v1alpha1.TargetRef{{Kind: v1alpha1.TargetKindIngress, Name: "api-gateway"}},
			AutoscalerRefs: []v1alpha1.AutoscalerRef{{Name: "api-gateway"}},
			Autoscaling:    v1alpha1.Autoscaling{ReleaseAfter: &metav1.Duration{Duration: 5 * time.Minute}},
			RegionHeader:   "CF-IPCountry",
			MissingRegion:  v1alpha1.MissingRegionAdmit,
			Shed:           v1alpha1.ShedResponse{StatusCode: ptr.To[int32](503), RetryAfterSeconds: ptr.To[int32](120)},
			Action:         action,
			Ramp: &v1alpha1.Ramp{Steps: []v1alpha1.RampStep{
				{AllowRegions: []string{"AU"}, PerClientRequestsPerSecond: ptr.To[int32](50), Hold: metav1.Duration{Duration: 5 * time.Minute}},
				{AllowRegions: []string{"AU", "NZ", "SG"}, PerClientRequestsPerSecond: ptr.To[int32](500), Hold: metav1.Duration{Duration: 10 * time.Minute}},
				{AdmitPercent: ptr.To[int32](50), Hold: metav1.Duration{Duration: 10 * time.Minute}},
			}},
		},
	}
}

// userView is what exact restore compares: spec, labels and annotations (Floodgate's own
// excluded), as read back from the API server after defaulting.
type userView struct {
	Spec        any
	Labels      map[string]string
	Annotations map[string]string
}

func viewOf(t testing.TB, obj client.Object) userView {
	g := NewWithT(t)
	ctx := context.Background()
	g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(obj), obj)).To(Succeed())
	ann := map[string]string{}
	for k, v := range obj.GetAnnotations() {
		if !strings.HasPrefix(k, "traffic.floodgate.dev/") {
			ann[k] = v
		}
	}
	var spec any
	switch o := obj.(type) {
	case *networkingv1.Ingress:
		spec = o.Spec.DeepCopy()
	case *autoscalingv2.HorizontalPodAutoscaler:
		spec = o.Spec.DeepCopy()
	default:
		t.Fatalf("no user view for %T", obj)
	}
	return userView{Spec: spec, Labels: obj.GetLabels(), Annotations: ann}
}

func getPolicy(t testing.TB, ns, name string) *v1alpha1.TrafficPolicy {
	g := NewWithT(t)
	p := &v1alpha1.TrafficPolicy{}
	g.Expect(k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, p)).To(Succeed())
	return p
}

func phaseOf(t testing.TB, ns, name string) func() v1alpha1.Phase {
	return func() v1alpha1.Phase { return getPolicy(t, ns, name).Status.Phase }
}

func progressOf(t testing.TB, ns, name string) func() string {
	return func() string {
		p := getPolicy(t, ns, name)
		return string(p.Status.Phase) + " " + p.Status.Progress
	}
}

// setAction flips the lever the way a responder's kubectl patch does.
func setAction(t testing.TB, ns, name string, action v1alpha1.Action) {
	g := NewWithT(t)
	p := getPolicy(t, ns, name)
	before := p.DeepCopy()
	p.Spec.Action = action
	g.Expect(k8s.Patch(context.Background(), p, client.MergeFrom(before))).To(Succeed())
}

func getIngress(ns, name string) *networkingv1.Ingress {
	ing := &networkingv1.Ingress{}
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, ing); err != nil {
		return nil
	}
	return ing
}

func canaryAnnotations(ns string) func() map[string]string {
	return func() map[string]string {
		ing := getIngress(ns, "api-gateway-floodgate-api-gateway")
		if ing == nil {
			return nil
		}
		return ing.Annotations
	}
}

func getHPA(t testing.TB, ns string) *autoscalingv2.HorizontalPodAutoscaler {
	g := NewWithT(t)
	h := &autoscalingv2.HorizontalPodAutoscaler{}
	g.Expect(k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "api-gateway"}, h)).To(Succeed())
	return h
}

// kubectl runs the kubectl matching the embedded API server against it.
func kubectl(t testing.TB, args ...string) string {
	g := NewWithT(t)
	cmd := exec.Command(cp.Kubectl(), append([]string{"--kubeconfig", kubeconfig}, args...)...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig)
	out, err := cmd.CombinedOutput()
	g.Expect(err).NotTo(HaveOccurred(), string(out))
	return string(out)
}

func create(t testing.TB, objs ...client.Object) {
	g := NewWithT(t)
	for _, o := range objs {
		g.Expect(k8s.Create(context.Background(), o)).To(Succeed())
	}
}

// eventReasons are the reasons of a namespace's Events (events.k8s.io/v1, what the recorder
// writes).
func eventReasons(t testing.TB, ns string) []string {
	g := NewWithT(t)
	var list eventsv1.EventList
	g.Expect(k8s.List(context.Background(), &list, client.InNamespace(ns))).To(Succeed())
	var out []string
	for _, e := range list.Items {
		out = append(out, e.Reason)
	}
	return out
}

func mustListen(t testing.TB, addr string) net.Listener {
	g := NewWithT(t)
	var l net.Listener
	g.Eventually(func() error {
		var err error
		l, err = net.Listen("tcp", addr)
		return err
	}).Should(Succeed())
	return l
}

// writtenSince tells which objects were written between two readings, and how they changed
// ("" when none was).
func writtenSince(before, after []client.Object) string {
	var changes []string
	for i := range before {
		if before[i].GetResourceVersion() == after[i].GetResourceVersion() {
			continue
		}
		b, a := before[i].DeepCopyObject().(client.Object), after[i].DeepCopyObject().(client.Object)
		b.SetManagedFields(nil)
		a.SetManagedFields(nil)
		changes = append(changes, fmt.Sprintf("%T %s was written:\n%s", a, a.GetName(), cmp.Diff(b, a)))
	}
	return strings.Join(changes, "\n")
}
