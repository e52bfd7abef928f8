package controllers_test

import (
	"context"
	"errors"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/controllers"
	"floodgate.dev/floodgate/internal/manager"
	"floodgate.dev/floodgate/internal/owned"
	"floodgate.dev/floodgate/internal/provider/ingressnginx"
	"floodgate.dev/floodgate/internal/provider/registered"
	"floodgate.dev/floodgate/internal/restore"
	"floodgate.dev/floodgate/internal/scheme"
)

// Lever precedence: ShedAll and Normal are applied to every object that exists and is ours,
// whatever else is wrong; a ramp step holds instead of being half applied.
func TestTheEmergencyLeverWhateverElseIsBroken(t *testing.T) {

	t.Run("with an autoscaler gone mid-ramp: the ramp holds and says why, ShedAll and Normal still act on the targets", func(t *testing.T) {
		g := NewWithT(t)
		ns := newNamespace(t)
		ingress := sampleIngress(ns)
		hpa := sampleHPA(ns, nil)
		create(t, ingress, sampleDeployment(ns, 4), hpa, samplePolicy(ns, v1alpha1.ActionRamp))
		ingressBefore := viewOf(t, ingress)
		g.Eventually(progressOf(t, ns, "api-gateway")).Should(Equal("Ramping 1/3"))
		g.Eventually(func() string { return getIngress(ns, "api-gateway").Annotations[limitRPS] }).Should(Equal("50"))

		t.Log("the HPA is deleted, and step 1's hold ends: the ramp holds at step 1 and names the autoscaler")
		g.Expect(k8s.Delete(ctx, hpa)).To(Succeed())
		// The hold ends only once the manager has seen the HPA gone (a pass reports it), else the
		// step could advance on a cache that still holds it.
		g.Eventually(func() []v1alpha1.AutoscalerStatus { return getPolicy(t, ns, "api-gateway").Status.Autoscalers }).Should(
			ConsistOf(HaveField("Found", false)))
		clk.Advance(5 * time.Minute)
		g.Eventually(conditionOf(t, ns, v1alpha1.ConditionReady)).Should(Equal("False " + v1alpha1.ReasonAutoscalerNotFound +
			": the ramp holds: its next step cannot be applied everywhere: HorizontalPodAutoscaler api-gateway not found in namespace " + ns))
		g.Expect(conditionOf(t, ns, v1alpha1.ConditionProgressing)()).To(HavePrefix("False " + v1alpha1.ReasonRampHeld))
		g.Consistently(progressOf(t, ns, "api-gateway"), "300ms").Should(Equal("Ramping 1/3"))
		g.Expect(getIngress(ns, "api-gateway").Annotations[limitRPS]).To(Equal("50"), "step 2 is not half applied")

		t.Log("ShedAll: every target is shed at once, the missing autoscaler is reported")
		setAction(t, ns, "api-gateway", v1alpha1.ActionShedAll)
		g.Eventually(canaryAnnotations(ns)).Should(HaveKeyWithValue(ingressnginx.AnnotationWeight, "100"))
		g.Eventually(phaseOf(t, ns, "api-gateway")).Should(Equal(v1alpha1.PhaseShedding))
		g.Eventually(conditionOf(t, ns, v1alpha1.ConditionDegraded)).Should(Equal("True " + v1alpha1.ReasonAutoscalerNotFound +
			": HorizontalPodAutoscaler api-gateway not found in namespace " + ns))
		g.Expect(getPolicy(t, ns, "api-gateway").Status.Autoscalers).To(ConsistOf(And(
			HaveField("Name", "api-gateway"), HaveField("Found", false), HaveField("Reason", v1alpha1.ReasonAutoscalerNotFound))))

		t.Log("Normal: the targets get their originals back at once")
		setAction(t, ns, "api-gateway", v1alpha1.ActionNormal)
		g.Eventually(func() *networkingv1.Ingress { return getIngress(ns, canaryName) }).Should(BeNil())
		g.Eventually(func() userView { return viewOf(t, ingress) }).Should(Equal(ingressBefore))
	})

	t.Run("with a foreign canary on one target: the other targets are shed, the ramp holds, each target says what it has", func(t *testing.T) {
		g := NewWithT(t)
		ns := newNamespace(t)
		other := ingressWithHost(ns, "admin", "admin.example.com")
		foreign := ingressWithHost(ns, "admin-v2-canary", "admin.example.com")
		foreign.Annotations = map[string]string{ingressnginx.AnnotationCanary: "true", ingressnginx.AnnotationWeight: "10"}
		policy := samplePolicy(ns, v1alpha1.ActionShedAll)
		policy.Spec.AutoscalerRefs = nil
		policy.Spec.TargetRefs = append(policy.Spec.TargetRefs, v1alpha1.TargetRef{Kind: v1alpha1.TargetKindIngress, Name: "admin"})
		create(t, sampleIngress(ns), other, foreign, policy)

		g.Eventually(canaryAnnotations(ns)).Should(HaveKeyWithValue(ingressnginx.AnnotationWeight, "100"))
		g.Eventually(func() []v1alpha1.TargetStatus { return getPolicy(t, ns, "api-gateway").Status.Targets }).Should(ConsistOf(
			And(HaveField("Name", "api-gateway"), HaveField("Applied.Shed", true), HaveField("Reason", "")),
			And(HaveField("Name", "admin"), HaveField("Applied.Shed", false), HaveField("Reason", v1alpha1.ReasonConflict),
				HaveField("Message", "canary Ingress admin-v2-canary already serves rules of Ingress admin; ingress-nginx allows one canary per rule")),
		))
		g.Expect(getIngress(ns, "admin-floodgate-api-gateway")).To(BeNil())
		g.Expect(getIngress(ns, "admin-v2-canary").Annotations).To(HaveKeyWithValue(ingressnginx.AnnotationWeight, "10"), "the foreign canary is untouched")

		t.Log("Ramp: step 1 cannot be applied to admin, so the ramp holds at ShedAll")
		setAction(t, ns, "api-gateway", v1alpha1.ActionRamp)
		g.Eventually(conditionOf(t, ns, v1alpha1.ConditionReady)).Should(HavePrefix("False " + v1alpha1.ReasonConflict + ": the ramp holds"))
		g.Consistently(phaseOf(t, ns, "api-gateway"), "300ms").Should(Equal(v1alpha1.PhaseShedding))
		g.Expect(canaryAnnotations(ns)()).To(HaveKeyWithValue(ingressnginx.AnnotationWeight, "100"))
		g.Expect(getPolicy(t, ns, "api-gateway").Status.HeldRequest).To(BeEmpty(), "no request was made through the plugin")

		t.Log("Normal: the target in conflict needs no canary, and the other is restored")
		setAction(t, ns, "api-gateway", v1alpha1.ActionNormal)
		g.Eventually(func() *networkingv1.Ingress { return getIngress(ns, canaryName) }).Should(BeNil())
		g.Eventually(phaseOf(t, ns, "api-gateway")).Should(Equal(v1alpha1.PhaseNormal))
		g.Eventually(conditionOf(t, ns, v1alpha1.ConditionReady)).Should(HavePrefix("True"))

		t.Log("the team removes its canary: a ramp starts on both targets")
		setAction(t, ns, "api-gateway", v1alpha1.ActionRamp)
		g.Expect(k8s.Delete(ctx, foreign)).To(Succeed())
		g.Eventually(progressOf(t, ns, "api-gateway")).Should(Equal("Ramping 1/3"))
		g.Eventually(func() *networkingv1.Ingress { return getIngress(ns, "admin-floodgate-api-gateway") }).ShouldNot(BeNil())
		g.Eventually(func() string { return getIngress(ns, "admin").Annotations[limitRPS] }).Should(Equal("50"))
	})

	t.Run("on a target another controller owns: ShedAll works, and a step it cannot take is reported up front and holds the ramp", func(t *testing.T) {
		g := NewWithT(t)
		ns := newNamespace(t)
		ingress := sampleIngress(ns)
		ingress.OwnerReferences = []metav1.OwnerReference{{APIVersion: "gitops.example.com/v1", Kind: "Route", Name: "api", UID: "5678", Controller: ptr.To(true)}}
		policy := samplePolicy(ns, v1alpha1.ActionNormal)
		policy.Spec.AutoscalerRefs = nil
		create(t, ingress, policy)
		ingressBefore := viewOf(t, ingress)

		t.Log("at rest, before any incident: steps 1 and 2 rate-limit, which this target cannot take")
		want := "step 1 on Ingress api-gateway: perClientRequestsPerSecond needs limit-rps on Ingress api-gateway itself, which is controlled by Route api"
		g.Eventually(conditionOf(t, ns, v1alpha1.ConditionStepUnsupported)).Should(And(
			HavePrefix("True "+v1alpha1.ReasonUnsupported+": "+want), HaveSuffix("(and 1 more: see status.targets[].unsupported)")))
		g.Expect(getPolicy(t, ns, "api-gateway").Status.Targets[0].Unsupported).To(HaveLen(2))
		g.Expect(getPolicy(t, ns, "api-gateway").Status.Targets[0].Unsupported[1]).To(HavePrefix("step 2: perClientRequestsPerSecond"))

		t.Log("ShedAll needs no edit of the target: it is shed through Floodgate's own canary")
		setAction(t, ns, "api-gateway", v1alpha1.ActionShedAll)
		g.Eventually(canaryAnnotations(ns)).Should(HaveKeyWithValue(ingressnginx.AnnotationWeight, "100"))
		g.Eventually(conditionOf(t, ns, v1alpha1.ConditionReady)).Should(HavePrefix("True"))

		t.Log("Ramp: step 1 would edit limit-rps, so the ramp holds at ShedAll and says why")
		setAction(t, ns, "api-gateway", v1alpha1.ActionRamp)
		g.Eventually(conditionOf(t, ns, v1alpha1.ConditionReady)).Should(HavePrefix("False " + v1alpha1.ReasonUnsupported + ": the ramp holds"))
		g.Consistently(phaseOf(t, ns, "api-gateway"), "300ms").Should(Equal(v1alpha1.PhaseShedding))
		g.Expect(viewOf(t, ingress)).To(Equal(ingressBefore))

		t.Log("the runbook is fixed (no rate limit on this target): the ramp runs")
		p := getPolicy(t, ns, "api-gateway")
		before := p.DeepCopy()
		p.Spec.Ramp.Steps[0].PerClientRequestsPerSecond, p.Spec.Ramp.Steps[1].PerClientRequestsPerSecond = nil, nil
		g.Expect(k8s.Patch(ctx, p, client.MergeFrom(before))).To(Succeed())
		g.Eventually(progressOf(t, ns, "api-gateway")).Should(Equal("Ramping 1/3"))
		g.Eventually(conditionOf(t, ns, v1alpha1.ConditionStepUnsupported)).Should(HavePrefix("False " + v1alpha1.ReasonAllSupported))
	})

	t.Run("with a corrupt restore record: ShedAll and Normal still act through the canary, the user's Ingress is left for a human", func(t *testing.T) {
		g := NewWithT(t)
		ns := newNamespace(t)
		policy := samplePolicy(ns, v1alpha1.ActionRamp)
		policy.Spec.AutoscalerRefs = nil
		create(t, sampleIngress(ns), policy)
		g.Eventually(func() string { return getIngress(ns, "api-gateway").Annotations[limitRPS] }).Should(Equal("50"))
		ing := getIngress(ns, "api-gateway")
		good := ing.Annotations[restore.Annotation]
		before := ing.DeepCopy()
		ing.Annotations[restore.Annotation] = "{not json"
		g.Expect(k8s.Patch(ctx, ing, client.MergeFrom(before))).To(Succeed())

		setAction(t, ns, "api-gateway", v1alpha1.ActionShedAll)
		g.Eventually(canaryAnnotations(ns)).Should(HaveKeyWithValue(ingressnginx.AnnotationWeight, "100"))
		// ShedAll is in force in status too before the next flip (a held pass of the ramp, on the
		// corrupt record, already said Degraded and "the ramp holds" before ShedAll was pulled).
		g.Eventually(phaseOf(t, ns, "api-gateway")).Should(Equal(v1alpha1.PhaseShedding))
		g.Eventually(conditionOf(t, ns, v1alpha1.ConditionDegraded)).Should(HavePrefix("True " + v1alpha1.ReasonCorruptRecord))
		g.Expect(getIngress(ns, "api-gateway").Annotations[limitRPS]).To(Equal("50"), "the record cannot be read, so the Ingress is not touched")

		t.Log("Ramp: the record must be read to change limit-rps, so the ramp holds at ShedAll")
		g.Eventually(conditionOf(t, ns, v1alpha1.ConditionReady)).ShouldNot(ContainSubstring("the ramp holds"))
		setAction(t, ns, "api-gateway", v1alpha1.ActionRamp)
		g.Eventually(conditionOf(t, ns, v1alpha1.ConditionReady)).Should(HavePrefix("False " + v1alpha1.ReasonCorruptRecord + ": the ramp holds"))
		g.Consistently(phaseOf(t, ns, "api-gateway"), "300ms").Should(Equal(v1alpha1.PhaseShedding))

		setAction(t, ns, "api-gateway", v1alpha1.ActionNormal)
		g.Eventually(func() *networkingv1.Ingress { return getIngress(ns, canaryName) }).Should(BeNil())
		g.Consistently(func() string { return getIngress(ns, "api-gateway").Annotations[limitRPS] }, "300ms").Should(Equal("50"))

		t.Log("once the record is mended, the original comes back")
		ing = getIngress(ns, "api-gateway")
		before = ing.DeepCopy()
		ing.Annotations[restore.Annotation] = good
		g.Expect(k8s.Patch(ctx, ing, client.MergeFrom(before))).To(Succeed())
		g.Eventually(func() string { return getIngress(ns, "api-gateway").Annotations[limitRPS] }).Should(Equal("1000"))
		g.Eventually(conditionOf(t, ns, v1alpha1.ConditionDegraded)).Should(HavePrefix("False"))
	})
}

func TestAKindWhoseCRDIsNotInstalled(t *testing.T) {
	t.Run("is reported on the policy that names it, which still acts on everything else (this control plane has no KEDA)", func(t *testing.T) {
		g := NewWithT(t)
		ns := newNamespace(t)
		policy := samplePolicy(ns, v1alpha1.ActionShedAll)
		policy.Spec.AutoscalerRefs = []v1alpha1.AutoscalerRef{{APIGroup: v1alpha1.GroupKEDA, Kind: v1alpha1.AutoscalerKindScaledObject, Name: "api"}}
		create(t, sampleIngress(ns), policy)
		g.Eventually(canaryAnnotations(ns)).Should(HaveKeyWithValue(ingressnginx.AnnotationWeight, "100"))
		g.Eventually(conditionOf(t, ns, v1alpha1.ConditionDegraded)).Should(Equal("True " + v1alpha1.ReasonUnsupported +
			": ScaledObject api: its CustomResourceDefinition is not installed in this cluster (no ScaledObject in API group keda.sh): install it, then restart the Floodgate manager"))
		g.Expect(getPolicy(t, ns, "api-gateway").Status.Autoscalers).To(ConsistOf(And(
			HaveField("Kind", v1alpha1.AutoscalerKindScaledObject), HaveField("Reason", v1alpha1.ReasonUnsupported))))

		t.Log("a ramp holds: the hold cannot be applied")
		setAction(t, ns, "api-gateway", v1alpha1.ActionRamp)
		g.Eventually(conditionOf(t, ns, v1alpha1.ConditionReady)).Should(HavePrefix("False " + v1alpha1.ReasonUnsupported + ": the ramp holds"))
	})

	t.Run("is reported for an HTTPRoute target on a cluster without Gateway API (the manager started without its CRDs)", func(t *testing.T) {
		g := NewWithT(t)
		ns := newNamespace(t)
		policy := samplePolicy(ns, v1alpha1.ActionShedAll)
		policy.Spec.AutoscalerRefs = nil
		policy.Spec.TargetRefs = append(policy.Spec.TargetRefs, v1alpha1.TargetRef{Group: v1alpha1.GroupGatewayAPI, Kind: v1alpha1.TargetKindHTTPRoute, Name: "api"})
		create(t, sampleIngress(ns), policy)
		g.Eventually(canaryAnnotations(ns)).Should(HaveKeyWithValue(ingressnginx.AnnotationWeight, "100"))
		g.Eventually(conditionOf(t, ns, v1alpha1.ConditionDegraded)).Should(Equal("True " + v1alpha1.ReasonUnsupported +
			": HTTPRoute api: its CustomResourceDefinition is not installed in this cluster (no HTTPRoute in API group gateway.networking.k8s.io): install it, then restart the Floodgate manager"))
	})
}

func TestAWriteThatFailsOnOneTarget(t *testing.T) {
	t.Run("does not keep ShedAll from the others: they are written, the failure is reported on its target and retried", func(t *testing.T) {
		g := NewWithT(t)
		ns := newNamespace(t)
		passesByHand(t)
		policy := samplePolicy(ns, v1alpha1.ActionShedAll)
		policy.Spec.AutoscalerRefs = nil
		policy.Spec.TargetRefs = append(policy.Spec.TargetRefs, v1alpha1.TargetRef{Kind: v1alpha1.TargetKindIngress, Name: "admin"})
		create(t, sampleIngress(ns), ingressWithHost(ns, "admin", "admin.example.com"), policy)

		direct, err := client.NewWithWatch(cp.Config, client.Options{Scheme: scheme.New()})
		g.Expect(err).NotTo(HaveOccurred())
		broken := interceptor.NewClient(direct, interceptor.Funcs{
			Create: func(ctx context.Context, cl client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
				if obj.GetName() == canaryName {
					return apierrors.NewInternalError(errors.New("etcdserver: request timed out"))
				}
				return cl.Create(ctx, obj, opts...)
			},
		})
		r := &controllers.TrafficPolicyReconciler{
			Client: broken, APIReader: k8s, Clock: clk, Recorder: events.NewFakeRecorder(100),
			Providers: registered.Providers(broken), Shed: manager.DefaultShed,
		}
		req := reconcile.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: "api-gateway"}}
		_, err = r.Reconcile(ctx, req) // adds the finalizer
		for err == nil && len(getPolicy(t, ns, "api-gateway").Status.Targets) == 0 {
			_, err = r.Reconcile(ctx, req)
		}
		g.Expect(err).To(MatchError(ContainSubstring("etcdserver: request timed out")), "the failure is returned, so the pass is retried")
		g.Expect(getIngress(ns, "admin-floodgate-api-gateway").Annotations).To(HaveKeyWithValue(ingressnginx.AnnotationWeight, "100"))
		p := getPolicy(t, ns, "api-gateway")
		g.Expect(p.Status.Phase).To(Equal(v1alpha1.PhaseShedding))
		g.Expect(p.Status.Targets).To(ConsistOf(
			And(HaveField("Name", "api-gateway"), HaveField("Reason", v1alpha1.ReasonApplyFailed), HaveField("Message", ContainSubstring("request timed out"))),
			And(HaveField("Name", "admin"), HaveField("Applied.Shed", true), HaveField("Reason", "")),
		))
	})
}

func TestDeletingAPolicyWhoseObjectsAreMissing(t *testing.T) {
	t.Run("restores what exists and lets go at once: a missing target or autoscaler has nothing to restore", func(t *testing.T) {
		g := NewWithT(t)
		ns := newNamespace(t)
		ingress := sampleIngress(ns)
		create(t, ingress, sampleDeployment(ns, 4), sampleHPA(ns, nil), samplePolicy(ns, v1alpha1.ActionShedAll))
		ingressBefore := viewOf(t, ingress)
		g.Eventually(canaryAnnotations(ns)).Should(HaveKeyWithValue(ingressnginx.AnnotationWeight, "100"))
		g.Eventually(func() int32 { return *getHPA(t, ns).Spec.MinReplicas }).Should(BeEquivalentTo(4))
		g.Expect(k8s.Delete(ctx, getHPA(t, ns))).To(Succeed())
		p := getPolicy(t, ns, "api-gateway")
		before := p.DeepCopy()
		p.Spec.TargetRefs = append(p.Spec.TargetRefs, v1alpha1.TargetRef{Kind: v1alpha1.TargetKindIngress, Name: "never-created"})
		g.Expect(k8s.Patch(ctx, p, client.MergeFrom(before))).To(Succeed())
		g.Eventually(conditionOf(t, ns, v1alpha1.ConditionDegraded)).Should(ContainSubstring("not found"))

		g.Expect(k8s.Delete(ctx, getPolicy(t, ns, "api-gateway"))).To(Succeed())
		g.Eventually(func() error {
			return k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "api-gateway"}, &v1alpha1.TrafficPolicy{})
		}).Should(Satisfy(apierrors.IsNotFound))
		g.Expect(getIngress(ns, canaryName)).To(BeNil())
		g.Expect(viewOf(t, ingress)).To(Equal(ingressBefore))
	})
}

// Ownership is the controller ownerReference's UID; the label is for selection only.
func TestCompanions(t *testing.T) {

	t.Run("stay ours without their labels: a canary whose label was removed is still removed, a shed Service and EndpointSlice get theirs back", func(t *testing.T) {
		g := NewWithT(t)
		ns := newNamespace(t)
		policy := samplePolicy(ns, v1alpha1.ActionShedAll)
		policy.Spec.AutoscalerRefs = nil
		create(t, sampleIngress(ns), policy)
		g.Eventually(canaryAnnotations(ns)).Should(HaveKeyWithValue(ingressnginx.AnnotationWeight, "100"))
		g.Eventually(phaseOf(t, ns, "api-gateway")).Should(Equal(v1alpha1.PhaseShedding))

		// Without its labels the EndpointSlice is outside the manager's cache (which holds only
		// Floodgate's slices): it is found live.
		for _, obj := range []client.Object{&networkingv1.Ingress{}, &corev1.Service{}, &discoveryv1.EndpointSlice{}} {
			name := "floodgate-shed-api-gateway"
			if _, ing := obj.(*networkingv1.Ingress); ing {
				name = canaryName
			}
			g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, obj)).To(Succeed())
			patch := client.MergeFrom(obj.DeepCopyObject().(client.Object))
			obj.SetLabels(nil)
			g.Expect(k8s.Patch(ctx, obj, patch)).To(Succeed())
		}

		setAction(t, ns, "api-gateway", v1alpha1.ActionNormal)
		g.Eventually(func() *networkingv1.Ingress { return getIngress(ns, canaryName) }).Should(BeNil())
		for _, obj := range []client.Object{&corev1.Service{}, &discoveryv1.EndpointSlice{}} {
			g.Eventually(func() map[string]string {
				g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "floodgate-shed-api-gateway"}, obj)).To(Succeed())
				return obj.GetLabels()
			}).Should(HaveKeyWithValue(owned.PolicyLabel, "api-gateway"), "%T stands ready for the next lever, labelled again", obj)
		}
		g.Eventually(phaseOf(t, ns, "api-gateway")).Should(Equal(v1alpha1.PhaseNormal))
		g.Expect(conditionOf(t, ns, v1alpha1.ConditionReady)()).To(HavePrefix("True"))
		g.Expect(conditionOf(t, ns, v1alpha1.ConditionDegraded)()).To(HavePrefix("False"))

		t.Log("the policy deleted: its shed Service and EndpointSlice go with it")
		g.Expect(k8s.Delete(ctx, getPolicy(t, ns, "api-gateway"))).To(Succeed())
		for _, obj := range []client.Object{&corev1.Service{}, &discoveryv1.EndpointSlice{}} {
			g.Eventually(func() error {
				return k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "floodgate-shed-api-gateway"}, obj)
			}).Should(Satisfy(apierrors.IsNotFound), "%T", obj)
		}
	})

	t.Run("are not ours by label alone: an object with the canary's name and the policy label but no ownerReference is reported and left alone", func(t *testing.T) {
		g := NewWithT(t)
		ns := newNamespace(t)
		impostor := ingressWithHost(ns, canaryName, "api.example.com")
		impostor.Labels = map[string]string{owned.PolicyLabel: "api-gateway"}
		impostor.Annotations = map[string]string{"team": "someone"}
		policy := samplePolicy(ns, v1alpha1.ActionShedAll)
		policy.Spec.AutoscalerRefs = nil
		create(t, sampleIngress(ns), impostor, policy)

		g.Eventually(conditionOf(t, ns, v1alpha1.ConditionDegraded)).Should(Equal("True " + v1alpha1.ReasonConflict + ": canary Ingress " + canaryName +
			": Ingress " + canaryName + " exists and is not controlled by this policy (no controller ownerReference to its UID); Floodgate leaves it alone: remove it by hand if it is a leftover"))
		g.Expect(getIngress(ns, canaryName).Annotations).To(Equal(map[string]string{"team": "someone"}))
		g.Expect(getIngress(ns, canaryName).OwnerReferences).To(BeEmpty())

		setAction(t, ns, "api-gateway", v1alpha1.ActionRamp)
		g.Eventually(conditionOf(t, ns, v1alpha1.ConditionReady)).Should(HavePrefix("False " + v1alpha1.ReasonConflict + ": the ramp holds"))
		g.Consistently(phaseOf(t, ns, "api-gateway"), "300ms").Should(Equal(v1alpha1.PhaseShedding))
		g.Expect(getIngress(ns, canaryName).Annotations).To(Equal(map[string]string{"team": "someone"}))

		setAction(t, ns, "api-gateway", v1alpha1.ActionNormal)
		g.Eventually(phaseOf(t, ns, "api-gateway")).Should(Equal(v1alpha1.PhaseNormal))
		g.Consistently(func() *networkingv1.Ingress { return getIngress(ns, canaryName) }, "300ms").ShouldNot(BeNil(), "not ours to delete")
	})
}
