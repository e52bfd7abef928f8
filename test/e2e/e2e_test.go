// Package e2e drives the real binaries against an embedded control plane: the kubectl-floodgate
// plugin on PATH, invoked through a kubectl whose version matches the API server, with the
// manager running (in-process, on a warped clock).
package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/internal/drill"
	"floodgate.dev/floodgate/test/fixtures"
)

var (
	env        *drill.Env
	k8s        client.Client
	binDir     string
	kubectlBin string
)

func TestMain(m *testing.M) {
	code, err := run(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

func run(m *testing.M) (int, error) {
	ctrl.SetLogger(logr.Discard())
	var err error
	if binDir, err = os.MkdirTemp("", "floodgate-e2e-bin"); err != nil {
		return 0, err
	}
	defer os.RemoveAll(binDir)
	if _, err := fixtures.Build(binDir, "cmd/kubectl-floodgate"); err != nil {
		return 0, err
	}
	// The plugin binary reads the real clock: the warped clock starts at real now, so "hold left"
	// agrees until a test advances it.
	if env, err = drill.StartEnv(time.Now()); err != nil {
		return 0, err
	}
	defer env.Close()
	k8s = env.Client
	kubectlBin = env.ControlPlane.Kubectl()
	return m.Run(), nil
}

// kubectl runs the real kubectl (matching the API server) with the plugin on PATH.
func kubectl(t *testing.T, kubeconfig string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(kubectlBin, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig, "PATH="+binDir+string(os.PathListSeparator)+os.Getenv("PATH"))
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func must(t *testing.T, args ...string) string {
	t.Helper()
	out, err := kubectl(t, env.Kubeconfig, args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// fixture creates a namespace with the sample's Ingress, Deployment, HPA and policy, and waits
// for the policy to be at rest.
func fixture(t *testing.T, mutate func(*v1alpha1.TrafficPolicy)) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "e2e-"}}
	if err := k8s.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	fixtureIn(t, ns.Name, mutate)
	// At rest: Normal, and the API server's verdict on the levers written (Armed).
	eventually(t, func() bool {
		p := getPolicy(t, ns.Name)
		armed := meta.FindStatusCondition(p.Status.Conditions, v1alpha1.ConditionArmed)
		return p.Status.Phase == v1alpha1.PhaseNormal && armed != nil && armed.Status != metav1.ConditionUnknown
	})
	return ns.Name
}

// fixtureIn creates the sample's Ingress, Deployment, HPA and policy in a namespace, and deletes
// the policy when the test ends.
func fixtureIn(t *testing.T, namespace string, mutate func(*v1alpha1.TrafficPolicy)) {
	t.Helper()
	deleteWhenDone(t, k8s, fixtureOn(t, k8s, namespace, mutate))
}

// fixtureOn creates fixtureIn's objects on the cluster of c, and returns the policy.
func fixtureOn(t *testing.T, k8s client.Client, namespace string, mutate func(*v1alpha1.TrafficPolicy)) *v1alpha1.TrafficPolicy {
	t.Helper()
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}
	prefix := networkingv1.PathTypePrefix
	labels := map[string]string{"app": "api"}
	policy := &v1alpha1.TrafficPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "api", Namespace: ns.Name},
		Spec: v1alpha1.TrafficPolicySpec{
			TargetRefs:     []v1alpha1.TargetRef{{Kind: v1alpha1.TargetKindIngress, Name: "api"}},
			AutoscalerRefs: []v1alpha1.AutoscalerRef{{Name: "api"}},
			Autoscaling:    v1alpha1.Autoscaling{ReleaseAfter: &metav1.Duration{Duration: time.Minute}},
			RegionHeader:   "CF-IPCountry",
			Action:         v1alpha1.ActionNormal,
			Ramp: &v1alpha1.Ramp{Steps: []v1alpha1.RampStep{
				{AllowRegions: []string{"AU"}, PerClientRequestsPerSecond: ptr.To[int32](50), Hold: metav1.Duration{Duration: 5 * time.Minute}},
				{AdmitPercent: ptr.To[int32](50), Hold: metav1.Duration{Duration: 10 * time.Minute}, Approval: v1alpha1.ApprovalManual},
			}},
		},
	}
	if mutate != nil {
		mutate(policy)
	}
	for _, obj := range []client.Object{
		&networkingv1.Ingress{
			ObjectMeta: metav1.ObjectMeta{Name: "api", Namespace: ns.Name, Annotations: map[string]string{"nginx.ingress.kubernetes.io/limit-rps": "1000"}},
			Spec: networkingv1.IngressSpec{IngressClassName: ptr.To("nginx"), Rules: []networkingv1.IngressRule{{Host: "api.example.com",
				IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: []networkingv1.HTTPIngressPath{
					{Path: "/", PathType: &prefix, Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: "api", Port: networkingv1.ServiceBackendPort{Number: 80}}}},
				}}}}}},
		},
		&appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: "api", Namespace: ns.Name},
			Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](5), Selector: &metav1.LabelSelector{MatchLabels: labels},
				Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
					Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "api", Image: "example/api:1"}}}}},
		},
		&autoscalingv2.HorizontalPodAutoscaler{
			ObjectMeta: metav1.ObjectMeta{Name: "api", Namespace: ns.Name},
			Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
				ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "api"},
				MinReplicas:    ptr.To[int32](2), MaxReplicas: 10,
			},
		},
		policy,
	} {
		if err := k8s.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
	}
	return policy
}

// deleteWhenDone deletes the policy when the test ends, and waits until it is gone (its restore
// done).
func deleteWhenDone(t *testing.T, k8s client.Client, policy *v1alpha1.TrafficPolicy) {
	t.Helper()
	ctx := context.Background()
	t.Cleanup(func() {
		_ = k8s.Delete(ctx, policy)
		eventually(t, func() bool {
			return apierrors.IsNotFound(k8s.Get(ctx, client.ObjectKeyFromObject(policy), &v1alpha1.TrafficPolicy{}))
		})
	})
}

// setAvailable writes a Deployment's status as its controller would (envtest runs none).
func setAvailable(t *testing.T, ns string) {
	t.Helper()
	d := &appsv1.Deployment{}
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "api"}, d); err != nil {
		t.Fatal(err)
	}
	d.Status.ObservedGeneration = d.Generation
	d.Status.Replicas, d.Status.AvailableReplicas, d.Status.ReadyReplicas = *d.Spec.Replicas, *d.Spec.Replicas, *d.Spec.Replicas
	if err := k8s.Status().Update(context.Background(), d); err != nil {
		t.Fatal(err)
	}
}

// setAction flips the lever as a responder's kubectl patch does.
func setAction(t *testing.T, ns string, action v1alpha1.Action) {
	t.Helper()
	p := getPolicy(t, ns)
	before := p.DeepCopy()
	p.Spec.Action = action
	if err := k8s.Patch(context.Background(), p, client.MergeFrom(before)); err != nil {
		t.Fatal(err)
	}
}

func waitPhase(t *testing.T, ns string, phase v1alpha1.Phase) {
	t.Helper()
	eventually(t, func() bool { return getPolicy(t, ns).Status.Phase == phase })
}

func getPolicy(t *testing.T, ns string) *v1alpha1.TrafficPolicy {
	t.Helper()
	p := &v1alpha1.TrafficPolicy{}
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "api"}, p); err != nil {
		t.Fatal(err)
	}
	return p
}

func eventually(t *testing.T, cond func() bool) {
	t.Helper()
	fixtures.Eventually(t, func() (string, bool) { return "the condition is not met", cond() })
}
