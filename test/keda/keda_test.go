// Package keda tests the KEDA ScaledObject provider on an embedded control plane with KEDA's
// real CRD (test/crds/keda), so the API server validates every ScaledObject Floodgate writes. KEDA
// itself does not run: the test plays it where it matters (it copies a ScaledObject's
// annotations onto the HPA it generates) and asserts on what Floodgate writes.
package keda

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/internal/controlplane"
	"floodgate.dev/floodgate/internal/drill"
	"floodgate.dev/floodgate/internal/manager"
	"floodgate.dev/floodgate/internal/provider/keda"
	"floodgate.dev/floodgate/internal/restore"
	"floodgate.dev/floodgate/internal/warp"
	"floodgate.dev/floodgate/test/fixtures"
)

var (
	cp         *controlplane.ControlPlane
	k8s        client.Client
	clk        *warp.Clock
	kubeconfig string
)

func TestMain(m *testing.M) {
	ctrl.SetLogger(logr.Discard())
	os.Exit(run(m))
}

func run(m *testing.M) int {
	env, err := drill.StartEnvWith(time.Date(2024, 11, 12, 9, 0, 0, 0, time.UTC), drill.EnvOptions{},
		filepath.Join("..", "crds", "keda", "keda.sh_scaledobjects.yaml"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer env.Close()
	cp, k8s, clk, kubeconfig = env.ControlPlane, env.Client, env.Clock, env.Kubeconfig
	return m.Run()
}

func TestAScaledObjectIsHeldReleasedInStagesAndRestoredExactlyAndItsHPAIsNeverWritten(t *testing.T) {
	ns := fixture(t, "keda-cycle")
	before := userView(t, getSO(t, ns))
	hpaBefore := getHPA(t, ns)
	policy := samplePolicy(ns, v1alpha1.ActionShedAll)
	create(t, policy)

	t.Log("ShedAll: KEDA's paused-scale-in annotation and minReplicaCount raised to the replicas the Deployment has")
	so := eventually(t, func() (*unstructured.Unstructured, bool) {
		so := getSO(t, ns)
		return so, so.GetAnnotations()[keda.PausedScaleIn] == "true"
	})
	if min, _, _ := unstructured.NestedInt64(so.Object, "spec", "minReplicaCount"); min != 6 {
		t.Fatalf("minReplicaCount %d, want 6 (the Deployment's replicas)", min)
	}
	rec, err := restore.Read(so)
	if err != nil || rec == nil || rec.UID != so.GetUID() || rec.Kind != "ScaledObject" {
		t.Fatalf("the restore record must name the ScaledObject's kind and UID: %+v %v", rec, err)
	}
	kedaCopiesAnnotations(t, ns)
	p := eventuallyPolicy(t, ns, func(p *v1alpha1.TrafficPolicy) bool { return p.Status.Phase == v1alpha1.PhaseShedding })
	if a := p.Status.Autoscalers[0]; a.Kind != v1alpha1.AutoscalerKindScaledObject || !a.Held || a.HeldMinReplicas != 6 ||
		!strings.Contains(strings.Join(a.Warnings, " "), "KEDA 2.18.2 or later") {
		t.Fatalf("autoscaler status: %+v", a)
	}

	t.Log("Normal: the annotation goes first, then minReplicaCount is lowered stepwise with a bounded scale-down")
	setAction(t, ns, v1alpha1.ActionNormal)
	type stage struct {
		min     int64
		paused  bool
		bounded bool
	}
	stageOf := func() stage {
		so := getSO(t, ns)
		min, _, _ := unstructured.NestedInt64(so.Object, "spec", "minReplicaCount")
		policies, _, _ := unstructured.NestedSlice(so.Object, "spec", "advanced", "horizontalPodAutoscalerConfig", "behavior", "scaleDown", "policies")
		return stage{min, so.GetAnnotations()[keda.PausedScaleIn] == "true", len(policies) == 1}
	}
	var seen []stage
	want := []stage{{5, false, true}, {4, false, true}, {3, false, true}}
	for i, w := range want {
		eventually(t, func() (stage, bool) { s := stageOf(); return s, s == w })
		seen = append(seen, stageOf())
		kedaCopiesAnnotations(t, ns)
		if i < len(want)-1 {
			clk.Advance(2 * time.Minute)
		}
	}
	clk.Advance(2 * time.Minute)
	clk.Advance(2 * time.Minute)
	eventuallyPolicy(t, ns, func(p *v1alpha1.TrafficPolicy) bool { return p.Status.Phase == v1alpha1.PhaseNormal })
	eventually(t, func() (map[string]any, bool) {
		v := userView(t, getSO(t, ns))
		return v, equality.Semantic.DeepEqual(v, before)
	})
	kedaCopiesAnnotations(t, ns)

	t.Log("the HPA KEDA generates carried copies of the record throughout, and was never written by Floodgate")
	hpa := getHPA(t, ns)
	for _, f := range hpa.ManagedFields {
		if f.Manager == manager.FieldManager {
			t.Fatalf("Floodgate wrote the HPA KEDA generates: %+v", f)
		}
	}
	if !equality.Semantic.DeepEqual(hpa.Spec, hpaBefore.Spec) {
		t.Fatalf("the generated HPA's spec changed:\n%+v\n%+v", hpa.Spec, hpaBefore.Spec)
	}
}

func TestAnHPAGeneratedByKEDAIsRefusedNamingTheScaledObjectToUse(t *testing.T) {
	ns := fixture(t, "keda-refused")
	hpaBefore := getHPA(t, ns)
	policy := samplePolicy(ns, v1alpha1.ActionShedAll)
	policy.Spec.AutoscalerRefs = []v1alpha1.AutoscalerRef{{Name: "keda-hpa-api"}}
	create(t, policy)
	p := eventuallyPolicy(t, ns, func(p *v1alpha1.TrafficPolicy) bool {
		return len(p.Status.Autoscalers) == 1 && p.Status.Autoscalers[0].Reason == v1alpha1.ReasonConflict
	})
	if msg := p.Status.Autoscalers[0].Message; !strings.Contains(msg, "is controlled by ScaledObject api") ||
		!strings.Contains(msg, "autoscalerRefs: [{apiGroup: keda.sh, kind: ScaledObject, name: api}]") {
		t.Fatalf("the refusal must name the ScaledObject to use: %q", msg)
	}
	if hpa := getHPA(t, ns); hpa.ResourceVersion != hpaBefore.ResourceVersion {
		t.Fatal("the generated HPA was written")
	}
}

func TestShedDryRunPrintsTheScaledObjectDiffFromTheSameRenderCode(t *testing.T) {
	ns := fixture(t, "keda-dry-run")
	create(t, samplePolicy(ns, v1alpha1.ActionNormal))
	eventuallyPolicy(t, ns, func(p *v1alpha1.TrafficPolicy) bool { return p.Status.Phase == v1alpha1.PhaseNormal })
	out := fixtures.KubectlFloodgate(t, kubeconfig, clk, "shed", "api", "-n", ns, "--dry-run")
	for _, want := range []string{"--- ScaledObject api (now)", "+++ ScaledObject api (after)",
		`+    autoscaling.keda.sh/paused-scale-in: "true"`, "-  minReplicaCount: 2", "+  minReplicaCount: 6"} {
		if !strings.Contains(out, want) {
			t.Errorf("dry run does not show %q:\n%s", want, out)
		}
	}
}

// fixture creates a namespace with a Deployment at 6 replicas, a ScaledObject scaling it (min
// 2, max 20), the HPA KEDA would generate for it, and an Ingress.
func TestAWorkloadGateWithoutANameReadsTheDeploymentTheScaledObjectScales(t *testing.T) {
	ns := fixture(t, "keda-gate")
	var d appsv1.Deployment
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "api"}, &d); err != nil {
		t.Fatal(err)
	}
	d.Status = appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: 6, ReadyReplicas: 6, AvailableReplicas: 6}
	if err := k8s.Status().Update(context.Background(), &d); err != nil {
		t.Fatal(err)
	}
	policy := samplePolicy(ns, v1alpha1.ActionRamp)
	policy.Spec.Ramp = &v1alpha1.Ramp{Steps: []v1alpha1.RampStep{{AdmitPercent: ptr.To[int32](50), Hold: metav1.Duration{Duration: time.Hour},
		Gates: []v1alpha1.Gate{{Name: "fleet", WorkloadReady: &v1alpha1.WorkloadReadyGate{MinAvailablePercent: 90}}}}}}
	create(t, policy)
	p := eventuallyPolicy(t, ns, func(p *v1alpha1.TrafficPolicy) bool {
		return p.Status.Ramp != nil && len(p.Status.Ramp.Gates) == 1 && p.Status.Ramp.Gates[0].Verdict != ""
	})
	if g := p.Status.Ramp.Gates[0]; g.Verdict != v1alpha1.VerdictPass || g.Reading != "6/6 available (need 90%)" {
		t.Fatalf("the gate must read Deployment api, which the ScaledObject scales: %+v", g)
	}
}

func fixture(t *testing.T, name string) string {
	t.Helper()
	ns := name
	labels := map[string]string{"app": "api"}
	prefix := networkingv1.PathTypePrefix
	create(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}},
		&appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: "api", Namespace: ns},
			Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](6), Selector: &metav1.LabelSelector{MatchLabels: labels},
				Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
					Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "api", Image: "example/api:1"}}}}},
		},
		&networkingv1.Ingress{
			ObjectMeta: metav1.ObjectMeta{Name: "api", Namespace: ns},
			Spec: networkingv1.IngressSpec{IngressClassName: ptr.To("nginx"), Rules: []networkingv1.IngressRule{{Host: name + ".example.com",
				IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: []networkingv1.HTTPIngressPath{
					{Path: "/", PathType: &prefix, Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: "api", Port: networkingv1.ServiceBackendPort{Number: 80}}}},
				}}}}}},
		})
	so := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
		"metadata": map[string]any{"name": "api", "namespace": ns, "annotations": map[string]any{"team": "edge"}},
		"spec": map[string]any{
			"scaleTargetRef":  map[string]any{"name": "api"},
			"minReplicaCount": int64(2), "maxReplicaCount": int64(20),
			"triggers": []any{map[string]any{"type": "cpu", "metricType": "Utilization", "metadata": map[string]any{"value": "60"}}},
		},
	}}
	create(t, so)
	create(t, &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Name: "keda-hpa-api", Namespace: ns, Annotations: map[string]string{"team": "edge"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "keda.sh/v1alpha1", Kind: "ScaledObject", Name: "api", UID: so.GetUID(), Controller: ptr.To(true)}}},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "api"},
			MinReplicas:    ptr.To[int32](2), MaxReplicas: 20,
		},
	})
	fixtures.DeletePoliciesWhenDone(t, k8s, ns)
	return ns
}

// kedaCopiesAnnotations does what KEDA does when a ScaledObject changes: it copies the
// ScaledObject's annotations onto the HPA it generates (Floodgate's restore record included).
func kedaCopiesAnnotations(t *testing.T, ns string) {
	t.Helper()
	hpa := getHPA(t, ns)
	patch := client.MergeFrom(hpa.DeepCopy())
	hpa.Annotations = getSO(t, ns).GetAnnotations()
	if err := k8s.Patch(context.Background(), hpa, patch, client.FieldOwner("keda-operator")); err != nil {
		t.Fatal(err)
	}
}

func samplePolicy(ns string, action v1alpha1.Action) *v1alpha1.TrafficPolicy {
	return &v1alpha1.TrafficPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "api", Namespace: ns},
		Spec: v1alpha1.TrafficPolicySpec{
			TargetRefs:     []v1alpha1.TargetRef{{Name: "api"}},
			AutoscalerRefs: []v1alpha1.AutoscalerRef{{APIGroup: v1alpha1.GroupKEDA, Kind: v1alpha1.AutoscalerKindScaledObject, Name: "api"}},
			Autoscaling:    v1alpha1.Autoscaling{ReleaseAfter: &metav1.Duration{Duration: 8 * time.Minute}},
			Action:         action,
		},
	}
}

func userView(t *testing.T, u *unstructured.Unstructured) map[string]any {
	t.Helper()
	ann := map[string]any{}
	for k, v := range u.GetAnnotations() {
		if !strings.HasPrefix(k, "traffic.floodgate.dev/") {
			ann[k] = v
		}
	}
	return map[string]any{"spec": u.Object["spec"], "labels": u.GetLabels(), "annotations": ann}
}

func getSO(t *testing.T, ns string) *unstructured.Unstructured {
	t.Helper()
	so := &unstructured.Unstructured{}
	so.SetGroupVersionKind(keda.GVK)
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "api"}, so); err != nil {
		t.Fatal(err)
	}
	return so
}

func getHPA(t *testing.T, ns string) *autoscalingv2.HorizontalPodAutoscaler {
	t.Helper()
	h := &autoscalingv2.HorizontalPodAutoscaler{}
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "keda-hpa-api"}, h); err != nil {
		t.Fatal(err)
	}
	return h
}

func setAction(t *testing.T, ns string, action v1alpha1.Action) {
	t.Helper()
	p := &v1alpha1.TrafficPolicy{}
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "api"}, p); err != nil {
		t.Fatal(err)
	}
	patch := client.MergeFrom(p.DeepCopy())
	p.Spec.Action = action
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

func create(t *testing.T, objs ...client.Object) {
	t.Helper()
	fixtures.Create(t, k8s, objs...)
}
