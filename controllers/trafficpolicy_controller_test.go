package controllers_test

import (
	"context"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/controllers"
	"floodgate.dev/floodgate/internal/provider/ingressnginx"
	"floodgate.dev/floodgate/internal/restore"
	"floodgate.dev/floodgate/internal/shed"
	"floodgate.dev/floodgate/test/fixtures"
)

const (
	canaryName = "api-gateway-floodgate-api-gateway"
	limitRPS   = "nginx.ingress.kubernetes.io/limit-rps"
)

var ctx = context.Background()

func TestTheSamplePolicy(t *testing.T) {
	var (
		ns                       string
		ingress                  *networkingv1.Ingress
		hpa                      *autoscalingv2.HorizontalPodAutoscaler
		ingressBefore, hpaBefore userView
	)
	// Each test starts from the sample's objects in a namespace of its own.
	sample := func(t *testing.T) {
		ns = newNamespace(t)
		ingress, hpa = sampleIngress(ns), sampleHPA(ns, nil)
		create(t, ingress, sampleDeployment(ns, 4), hpa)
		ingressBefore, hpaBefore = viewOf(t, ingress), viewOf(t, hpa)
	}

	t.Run("sheds, ramps step by step on the warped clock, completes, and leaves both objects exactly as before", func(t *testing.T) {
		g := NewWithT(t)
		sample(t)
		create(t, samplePolicy(ns, v1alpha1.ActionShedAll))

		t.Log("ShedAll: a canary sends every request to the shed Service; the HPA is held at the current replicas")
		g.Eventually(phaseOf(t, ns, "api-gateway")).Should(Equal(v1alpha1.PhaseShedding))
		g.Eventually(canaryAnnotations(ns)).Should(HaveKeyWithValue(ingressnginx.AnnotationWeight, "100"))
		canary := getIngress(ns, canaryName)
		g.Expect(canary.Annotations).To(HaveKeyWithValue(ingressnginx.AnnotationCanary, "true"))
		g.Expect(canary.Annotations).NotTo(HaveKey(ingressnginx.AnnotationByHeader))
		g.Expect(canary.Labels).To(HaveKeyWithValue("traffic.floodgate.dev/policy", "api-gateway"))
		g.Expect(metav1.GetControllerOf(canary).Kind).To(Equal("TrafficPolicy"))
		g.Expect(canary.Spec.Rules).To(HaveLen(1))
		g.Expect(canary.Spec.Rules[0].Host).To(Equal("api.example.com"))
		g.Expect(canary.Spec.Rules[0].HTTP.Paths).To(HaveLen(2))
		for i, p := range canary.Spec.Rules[0].HTTP.Paths {
			g.Expect(p.Path).To(Equal(ingress.Spec.Rules[0].HTTP.Paths[i].Path))
			g.Expect(*p.PathType).To(Equal(*ingress.Spec.Rules[0].HTTP.Paths[i].PathType))
			g.Expect(p.Backend.Service.Name).To(Equal("floodgate-shed-api-gateway"))
		}
		g.Expect(getIngress(ns, "api-gateway").Annotations).To(HaveKeyWithValue(limitRPS, "1000"), "ShedAll does not touch the main Ingress")
		g.Eventually(func() int32 { return *getHPA(t, ns).Spec.MinReplicas }).Should(BeEquivalentTo(4))
		g.Expect(*getHPA(t, ns).Spec.Behavior.ScaleDown.SelectPolicy).To(Equal(autoscalingv2.DisabledPolicySelect))
		g.Expect(kubectl(t, "get", "trafficpolicies", "-n", ns)).To(MatchRegexp(`api-gateway\s+ShedAll\s+Shedding`))

		t.Log("the shed Service and EndpointSlice point at the shed pods")
		slice := &discoveryv1.EndpointSlice{}
		g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "floodgate-shed-api-gateway"}, slice)).To(Succeed())
		g.Expect(slice.Labels).To(HaveKeyWithValue(discoveryv1.LabelServiceName, "floodgate-shed-api-gateway"))
		g.Expect(slice.Endpoints).To(HaveLen(2))
		g.Expect(slice.Endpoints[0].Addresses).To(Equal([]string{"10.96.0.10"}), "sorted")
		svc := &corev1.Service{}
		g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "floodgate-shed-api-gateway"}, svc)).To(Succeed())
		g.Expect(svc.Spec.Selector).To(BeEmpty())

		t.Log("Ramp step 1: only AU is admitted, at 50 requests per second per client")
		setAction(t, ns, "api-gateway", v1alpha1.ActionRamp)
		g.Eventually(progressOf(t, ns, "api-gateway")).Should(Equal("Ramping 1/3"))
		g.Eventually(canaryAnnotations(ns)).Should(HaveKeyWithValue(ingressnginx.AnnotationByHeaderPat, "^([^A].*|A([^U].*|U(.+))?)?$"))
		g.Expect(getIngress(ns, canaryName).Annotations).To(HaveKeyWithValue(ingressnginx.AnnotationByHeader, "CF-IPCountry"))
		g.Expect(getIngress(ns, canaryName).Annotations).NotTo(HaveKey(ingressnginx.AnnotationWeight))
		g.Expect(getIngress(ns, "api-gateway").Annotations).To(HaveKeyWithValue(limitRPS, "50"))
		g.Expect(managers(getIngress(ns, "api-gateway").ManagedFields)).To(ContainElement("floodgate"),
			"GitOps tools are told to leave Floodgate's fields alone by its field manager name")
		g.Expect(kubectl(t, "get", "tp", "-n", ns)).To(MatchRegexp(`api-gateway\s+Ramp\s+Ramping\s+1/3`))
		p := getPolicy(t, ns, "api-gateway")
		g.Expect(p.Status.Targets[0].Capabilities.RateLimitScope).To(Equal("PerClientPerReplica"))
		g.Expect(p.Status.Targets[0].Applied.AllowRegions).To(Equal([]string{"AU"}))
		g.Expect(p.Status.Targets[0].RestoreRecord).To(ContainSubstring(`"original":"1000"`))

		t.Log("the hold is a minimum: 4 minutes in, still step 1")
		clk.Advance(4 * time.Minute)
		g.Consistently(progressOf(t, ns, "api-gateway"), "300ms").Should(Equal("Ramping 1/3"))

		t.Log("step 2 after the 5 minute hold: AU, NZ and SG at 500 rps")
		clk.Advance(time.Minute)
		g.Eventually(progressOf(t, ns, "api-gateway")).Should(Equal("Ramping 2/3"))
		g.Eventually(func() string { return getIngress(ns, "api-gateway").Annotations[limitRPS] }).Should(Equal("500"))
		g.Expect(getIngress(ns, canaryName).Annotations[ingressnginx.AnnotationByHeaderPat]).To(Equal(ingressnginx.ComplementPattern([]string{"AU", "NZ", "SG"})))

		t.Log("step 3: half of the requests from every region, no rate limit (the original limit-rps is back)")
		clk.Advance(10 * time.Minute)
		g.Eventually(progressOf(t, ns, "api-gateway")).Should(Equal("Ramping 3/3"))
		g.Eventually(canaryAnnotations(ns)).Should(HaveKeyWithValue(ingressnginx.AnnotationWeight, "50"))
		g.Expect(getIngress(ns, canaryName).Annotations).NotTo(HaveKey(ingressnginx.AnnotationByHeader))
		g.Expect(getIngress(ns, "api-gateway").Annotations).To(HaveKeyWithValue(limitRPS, "1000"))

		t.Log("full traffic: the canary goes, the HPA stays held for releaseAfter")
		clk.Advance(10 * time.Minute)
		g.Eventually(phaseOf(t, ns, "api-gateway")).Should(Equal(v1alpha1.PhaseReleasing))
		g.Eventually(func() *networkingv1.Ingress { return getIngress(ns, canaryName) }).Should(BeNil())
		g.Expect(*getHPA(t, ns).Spec.MinReplicas).To(BeEquivalentTo(4))

		t.Log("Completed: RampComplete, every object exactly as before")
		clk.Advance(5 * time.Minute)
		g.Eventually(phaseOf(t, ns, "api-gateway")).Should(Equal(v1alpha1.PhaseCompleted))
		p = getPolicy(t, ns, "api-gateway")
		g.Expect(meta.IsStatusConditionTrue(p.Status.Conditions, v1alpha1.ConditionRampComplete)).To(BeTrue())
		g.Expect(meta.FindStatusCondition(p.Status.Conditions, v1alpha1.ConditionReady).ObservedGeneration).To(Equal(p.Generation))
		g.Expect(viewOf(t, ingress)).To(Equal(ingressBefore))
		g.Expect(viewOf(t, hpa)).To(Equal(hpaBefore))
		g.Expect(getIngress(ns, "api-gateway").Annotations).NotTo(HaveKey(restore.Annotation))
		var standing corev1.Service
		g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "floodgate-shed-api-gateway"}, &standing)).To(Succeed(),
			"the shed Service stands ready while the policy exists, so a lever that sheds writes only canaries")
		g.Expect(standing.Spec.ClusterIP).To(Equal(corev1.ClusterIPNone))
		g.Expect(kubectl(t, "get", "trafficpolicies", "-n", ns)).To(MatchRegexp(`api-gateway\s+Ramp\s+Completed\s+3/3`))

		t.Log("the history names every transition")
		var reasons []string
		for _, t := range p.Status.History {
			reasons = append(reasons, t.Reason)
		}
		g.Expect(reasons).To(Equal([]string{"ActionChanged", "ActionChanged", "StepAdvanced", "StepAdvanced", "FullTraffic", "RampComplete"}))

		t.Log("a GitOps re-apply of the same spec does not restart the run")
		p = getPolicy(t, ns, "api-gateway")
		before := p.DeepCopy()
		p.Annotations = map[string]string{"argocd.argoproj.io/tracking-id": "edge:traffic.floodgate.dev/TrafficPolicy:edge/api-gateway"}
		g.Expect(k8s.Patch(ctx, p, client.MergeFrom(before))).To(Succeed())
		g.Consistently(phaseOf(t, ns, "api-gateway"), "300ms").Should(Equal(v1alpha1.PhaseCompleted))
	})

	t.Run("restores exactly after ShedAll then Normal, for an HPA that had its own behavior", func(t *testing.T) {
		g := NewWithT(t)
		sample(t)
		g.Expect(k8s.Delete(ctx, hpa)).To(Succeed())
		hpa = sampleHPA(ns, &autoscalingv2.HorizontalPodAutoscalerBehavior{ScaleDown: &autoscalingv2.HPAScalingRules{
			StabilizationWindowSeconds: ptr.To[int32](60),
			Policies:                   []autoscalingv2.HPAScalingPolicy{{Type: autoscalingv2.PodsScalingPolicy, Value: 1, PeriodSeconds: 30}},
		}})
		create(t, hpa)
		hpaBefore = viewOf(t, hpa)
		policy := samplePolicy(ns, v1alpha1.ActionShedAll)
		policy.Spec.Autoscaling.ReleaseAfter = nil // the HPA's own window (60s) applies
		create(t, policy)

		g.Eventually(phaseOf(t, ns, "api-gateway")).Should(Equal(v1alpha1.PhaseShedding))
		g.Eventually(func() int32 { return *getHPA(t, ns).Spec.MinReplicas }).Should(BeEquivalentTo(4))
		held := getHPA(t, ns)
		g.Expect(*held.Spec.Behavior.ScaleDown.SelectPolicy).To(Equal(autoscalingv2.DisabledPolicySelect))
		g.Expect(held.Spec.Behavior.ScaleDown.Policies).To(Equal(hpaBefore.Spec.(*autoscalingv2.HorizontalPodAutoscalerSpec).Behavior.ScaleDown.Policies))

		setAction(t, ns, "api-gateway", v1alpha1.ActionNormal)
		g.Eventually(phaseOf(t, ns, "api-gateway")).Should(Equal(v1alpha1.PhaseReleasing))
		g.Eventually(func() *networkingv1.Ingress { return getIngress(ns, canaryName) }).Should(BeNil())
		g.Expect(getPolicy(t, ns, "api-gateway").Status.ReleaseAt.Sub(clk.Now())).To(Equal(60 * time.Second))
		clk.Advance(60 * time.Second)
		g.Eventually(phaseOf(t, ns, "api-gateway")).Should(Equal(v1alpha1.PhaseNormal))
		g.Expect(viewOf(t, hpa)).To(Equal(hpaBefore))
		g.Expect(viewOf(t, ingress)).To(Equal(ingressBefore))
	})

	t.Run("restores exactly and lets go when deleted mid-ramp", func(t *testing.T) {
		g := NewWithT(t)
		sample(t)
		create(t, samplePolicy(ns, v1alpha1.ActionRamp))
		g.Eventually(progressOf(t, ns, "api-gateway")).Should(Equal("Ramping 1/3"))
		g.Eventually(func() string { return getIngress(ns, "api-gateway").Annotations[limitRPS] }).Should(Equal("50"))

		g.Expect(k8s.Delete(ctx, getPolicy(t, ns, "api-gateway"))).To(Succeed())
		g.Eventually(func() error {
			return k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "api-gateway"}, &v1alpha1.TrafficPolicy{})
		}).Should(Satisfy(apierrors.IsNotFound))
		g.Expect(getIngress(ns, canaryName)).To(BeNil())
		g.Expect(viewOf(t, ingress)).To(Equal(ingressBefore))
		g.Expect(viewOf(t, hpa)).To(Equal(hpaBefore))
		g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "floodgate-shed-api-gateway"}, &discoveryv1.EndpointSlice{})).To(Satisfy(apierrors.IsNotFound))
		g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "floodgate-shed-api-gateway"}, &corev1.Service{})).To(Satisfy(apierrors.IsNotFound))
	})

	t.Run("keeps its step and the hold time left across an operator restart", func(t *testing.T) {
		g := NewWithT(t)
		sample(t)
		create(t, samplePolicy(ns, v1alpha1.ActionRamp))
		g.Eventually(progressOf(t, ns, "api-gateway")).Should(Equal("Ramping 1/3"))
		clk.Advance(3 * time.Minute)

		restartManager(t)

		g.Consistently(progressOf(t, ns, "api-gateway"), "300ms").Should(Equal("Ramping 1/3"))
		clk.Advance(2 * time.Minute)
		g.Eventually(progressOf(t, ns, "api-gateway")).Should(Equal("Ramping 2/3"))
		g.Eventually(func() string { return getIngress(ns, "api-gateway").Annotations[limitRPS] }).Should(Equal("500"))
		g.Expect(getPolicy(t, ns, "api-gateway").Status.Targets[0].RestoreRecord).To(ContainSubstring(`"original":"1000"`),
			"the original recorded before the restart is the one kept")

		setAction(t, ns, "api-gateway", v1alpha1.ActionNormal)
		g.Eventually(phaseOf(t, ns, "api-gateway")).Should(Equal(v1alpha1.PhaseReleasing))
		clk.Advance(5 * time.Minute)
		g.Eventually(phaseOf(t, ns, "api-gateway")).Should(Equal(v1alpha1.PhaseNormal))
		g.Expect(viewOf(t, ingress)).To(Equal(ingressBefore))
		g.Expect(viewOf(t, hpa)).To(Equal(hpaBefore))
	})

	t.Run("keeps a field someone else changed during the lever, and says so", func(t *testing.T) {
		g := NewWithT(t)
		sample(t)
		create(t, samplePolicy(ns, v1alpha1.ActionRamp))
		g.Eventually(func() string { return getIngress(ns, "api-gateway").Annotations[limitRPS] }).Should(Equal("50"))

		ing := getIngress(ns, "api-gateway")
		before := ing.DeepCopy()
		ing.Annotations[limitRPS] = "75" // a responder tuned it by hand
		g.Expect(k8s.Patch(ctx, ing, client.MergeFrom(before))).To(Succeed())

		setAction(t, ns, "api-gateway", v1alpha1.ActionNormal)
		g.Eventually(conditionOf(t, ns, v1alpha1.ConditionDegraded)).Should(ContainSubstring(
			"FieldChangedByOther: changed by someone else after Floodgate, kept as they are: Ingress api-gateway annotations.nginx.ingress.kubernetes.io/limit-rps"))
		g.Eventually(func() map[string]string { return getIngress(ns, "api-gateway").Annotations }).ShouldNot(HaveKey(restore.Annotation))
		g.Expect(getIngress(ns, "api-gateway").Annotations[limitRPS]).To(Equal("75"))
		kept := "Ingress api-gateway annotations.nginx.ingress.kubernetes.io/limit-rps"
		g.Expect(getPolicy(t, ns, "api-gateway").Status.KeptChanges).To(ConsistOf(kept))

		t.Log("the next action change keeps the restore's list for the record, no longer Degraded for it")
		setAction(t, ns, "api-gateway", v1alpha1.ActionRamp)
		g.Eventually(func() string { return getIngress(ns, "api-gateway").Annotations[limitRPS] }).Should(Equal("50"))
		g.Eventually(func() bool { return getPolicy(t, ns, "api-gateway").Status.KeptChangesEarlier }).Should(BeTrue())
		g.Expect(getPolicy(t, ns, "api-gateway").Status.KeptChanges).To(ConsistOf(kept))
		g.Eventually(conditionOf(t, ns, v1alpha1.ConditionDegraded)).ShouldNot(ContainSubstring("FieldChangedByOther"))

		t.Log("a change kept under a later action replaces the list")
		ing = getIngress(ns, "api-gateway")
		before = ing.DeepCopy()
		ing.Annotations[limitRPS] = "80"
		g.Expect(k8s.Patch(ctx, ing, client.MergeFrom(before))).To(Succeed())
		setAction(t, ns, "api-gateway", v1alpha1.ActionNormal)
		g.Eventually(func() bool { return getPolicy(t, ns, "api-gateway").Status.KeptChangesEarlier }).Should(BeFalse())
		g.Expect(getPolicy(t, ns, "api-gateway").Status.KeptChanges).To(ConsistOf(kept))
		g.Eventually(conditionOf(t, ns, v1alpha1.ConditionDegraded)).Should(ContainSubstring("FieldChangedByOther"))
		g.Expect(getIngress(ns, "api-gateway").Annotations[limitRPS]).To(Equal("80"))
	})

	t.Run("applies the standing allowlist in Normal and removes it without a trace", func(t *testing.T) {
		g := NewWithT(t)
		sample(t)
		policy := samplePolicy(ns, v1alpha1.ActionNormal)
		policy.Spec.AllowRegions = []string{"NZ", "AU"}
		create(t, policy)
		g.Eventually(canaryAnnotations(ns)).Should(HaveKeyWithValue(ingressnginx.AnnotationByHeaderPat, ingressnginx.ComplementPattern([]string{"AU", "NZ"})))
		// The targets are written before the status of the same pass: wait for the status too.
		g.Eventually(phaseOf(t, ns, "api-gateway")).Should(Equal(v1alpha1.PhaseNormal))
		g.Expect(*getHPA(t, ns).Spec.MinReplicas).To(BeEquivalentTo(2), "Normal holds no autoscaler")

		p := getPolicy(t, ns, "api-gateway")
		before := p.DeepCopy()
		p.Spec.AllowRegions = nil
		g.Expect(k8s.Patch(ctx, p, client.MergeFrom(before))).To(Succeed())
		g.Eventually(func() *networkingv1.Ingress { return getIngress(ns, canaryName) }).Should(BeNil())
		g.Expect(viewOf(t, ingress)).To(Equal(ingressBefore))
		g.Expect(viewOf(t, hpa)).To(Equal(hpaBefore))
	})

	t.Run("makes no API writes at rest", func(t *testing.T) {
		g := NewWithT(t)
		sample(t)
		create(t, samplePolicy(ns, v1alpha1.ActionShedAll))
		g.Eventually(canaryAnnotations(ns)).Should(HaveKeyWithValue(ingressnginx.AnnotationWeight, "100"))
		g.Eventually(func() int32 { return *getHPA(t, ns).Spec.MinReplicas }).Should(BeEquivalentTo(4))
		g.Eventually(func() bool {
			return meta.IsStatusConditionTrue(getPolicy(t, ns, "api-gateway").Status.Conditions, v1alpha1.ConditionReady)
		}).Should(BeTrue())
		// At rest includes armed: the API server's verdict on the levers is in status.
		g.Eventually(conditionOf(t, ns, v1alpha1.ConditionArmed)).Should(HavePrefix("True "))

		objects := func() []client.Object {
			return []client.Object{getPolicy(t, ns, "api-gateway"), getIngress(ns, canaryName), getHPA(t, ns)}
		}
		settled := objects()
		t.Log("waking the controller up: a change to the target Ingress and a clock advance")
		ing := getIngress(ns, "api-gateway")
		before := ing.DeepCopy()
		ing.Labels["touched"] = "yes"
		g.Expect(k8s.Patch(ctx, ing, client.MergeFrom(before))).To(Succeed())
		clk.Advance(time.Minute)
		g.Consistently(func() string { return writtenSince(settled, objects()) }, "1s").Should(BeEmpty())
	})
}

func TestAPolicyWhoseTargetsChange(t *testing.T) {
	t.Run("routes every target's canary to the policy's one headless shed Service, and puts back a target or autoscaler dropped from the spec", func(t *testing.T) {
		g := NewWithT(t)
		ns := newNamespace(t)
		ingressNamed := func(name, host string) *networkingv1.Ingress {
			ing := sampleIngress(ns)
			ing.Name, ing.Spec.Rules[0].Host = name, host
			return ing
		}
		internal, old := ingressNamed("api-internal", "internal.example.com"), ingressNamed("api-old", "old.example.com")
		hpa := sampleHPA(ns, nil)
		create(t, sampleIngress(ns), internal, old, sampleDeployment(ns, 4), hpa)
		internalBefore, hpaBefore := viewOf(t, internal), viewOf(t, hpa)
		policy := samplePolicy(ns, v1alpha1.ActionShedAll)
		policy.Spec.TargetRefs = append(policy.Spec.TargetRefs,
			v1alpha1.TargetRef{Kind: v1alpha1.TargetKindIngress, Name: "api-internal"}, v1alpha1.TargetRef{Kind: v1alpha1.TargetKindIngress, Name: "api-old"})
		create(t, policy)

		t.Log("ShedAll: one canary per target, all routing to the policy's one shed Service (headless: no ClusterIP), with its EndpointSlice")
		g.Eventually(phaseOf(t, ns, "api-gateway")).Should(Equal(v1alpha1.PhaseShedding))
		const service = "floodgate-shed-api-gateway"
		for _, target := range []string{"api-gateway", "api-internal", "api-old"} {
			canary := getIngress(ns, target+"-floodgate-api-gateway")
			g.Expect(canary).NotTo(BeNil(), target)
			g.Expect(canary.Spec.Rules[0].HTTP.Paths[0].Backend.Service.Name).To(Equal(service))
		}
		var svc corev1.Service
		g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: service}, &svc)).To(Succeed())
		g.Expect(svc.Spec.ClusterIP).To(Equal(corev1.ClusterIPNone))
		g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: service}, &discoveryv1.EndpointSlice{})).To(Succeed())
		var services corev1.ServiceList
		g.Expect(k8s.List(ctx, &services, client.InNamespace(ns))).To(Succeed())
		g.Expect(services.Items).To(HaveLen(1), "one shed Service for the policy, not one per target")

		t.Log("api-old is deleted and dropped from the spec, and the policy's status has lost track of the targets: its canary is still found and removed")
		p := getPolicy(t, ns, "api-gateway")
		before := p.DeepCopy()
		p.Status.Targets = nil
		g.Expect(k8s.Status().Patch(ctx, p, client.MergeFrom(before))).To(Succeed())
		g.Expect(k8s.Delete(ctx, old)).To(Succeed())
		p = getPolicy(t, ns, "api-gateway")
		before = p.DeepCopy()
		p.Spec.TargetRefs = p.Spec.TargetRefs[:2]
		g.Expect(k8s.Patch(ctx, p, client.MergeFrom(before))).To(Succeed())
		g.Eventually(func() *networkingv1.Ingress { return getIngress(ns, "api-old-floodgate-api-gateway") }).Should(BeNil())
		g.Expect(getIngress(ns, "api-internal-floodgate-api-gateway")).NotTo(BeNil(), "the targets still named keep shedding")
		g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: service}, &corev1.Service{})).To(Succeed(), "the shed Service stays while a canary routes to it")

		t.Log("Ramp step 1 edits both main Ingresses")
		setAction(t, ns, "api-gateway", v1alpha1.ActionRamp)
		g.Eventually(func() string { return getIngress(ns, "api-internal").Annotations[limitRPS] }).Should(Equal("50"))

		t.Log("the responder drops api-internal and the HPA from the spec mid-ramp: both are put back, the rest stays")
		p = getPolicy(t, ns, "api-gateway")
		before = p.DeepCopy()
		p.Spec.TargetRefs, p.Spec.AutoscalerRefs = p.Spec.TargetRefs[:1], nil
		g.Expect(k8s.Patch(ctx, p, client.MergeFrom(before))).To(Succeed())
		// Each effect is awaited on its own: a target restored does not mean its shed Service is gone.
		g.Eventually(func() userView { return viewOf(t, internal) }).Should(Equal(internalBefore))
		g.Eventually(func() userView { return viewOf(t, hpa) }).Should(Equal(hpaBefore))
		g.Eventually(func() *networkingv1.Ingress { return getIngress(ns, "api-internal-floodgate-api-gateway") }).Should(BeNil())
		g.Eventually(func() []string {
			var names []string
			for _, t := range getPolicy(t, ns, "api-gateway").Status.Targets {
				names = append(names, t.Name)
			}
			for _, a := range getPolicy(t, ns, "api-gateway").Status.Autoscalers {
				names = append(names, "hpa/"+a.Name)
			}
			return names
		}).Should(Equal([]string{"api-gateway"}))
		g.Expect(getIngress(ns, "api-gateway").Annotations).To(HaveKeyWithValue(limitRPS, "50"), "the target still named keeps its step")
		g.Expect(getIngress(ns, canaryName)).NotTo(BeNil())
		g.Expect(conditionOf(t, ns, v1alpha1.ConditionDegraded)()).To(HavePrefix("False"))
	})
}

func TestRefusingWhatCannotBeDone(t *testing.T) {

	t.Run("sheds the targets that exist and holds the HPA while a sibling target is missing, reports it, and sheds it once it appears", func(t *testing.T) {
		g := NewWithT(t)
		ns := newNamespace(t)
		policy := samplePolicy(ns, v1alpha1.ActionShedAll)
		policy.Spec.TargetRefs = append(policy.Spec.TargetRefs, v1alpha1.TargetRef{Kind: v1alpha1.TargetKindIngress, Name: "later"})
		create(t, sampleIngress(ns), sampleDeployment(ns, 3), sampleHPA(ns, nil), policy)

		t.Log("ShedAll is applied to everything that exists: the lever never waits for the missing target")
		g.Eventually(canaryAnnotations(ns)).Should(HaveKeyWithValue(ingressnginx.AnnotationWeight, "100"))
		g.Eventually(func() int32 { return *getHPA(t, ns).Spec.MinReplicas }).Should(BeEquivalentTo(3))
		g.Eventually(phaseOf(t, ns, "api-gateway")).Should(Equal(v1alpha1.PhaseShedding))
		g.Eventually(conditionOf(t, ns, v1alpha1.ConditionDegraded)).Should(Equal("True " + v1alpha1.ReasonTargetNotFound + ": Ingress later not found in namespace " + ns))
		g.Expect(conditionOf(t, ns, v1alpha1.ConditionReady)()).To(HavePrefix("False " + v1alpha1.ReasonTargetNotFound + ": phase Shedding is applied to every object but: Ingress later not found"))
		missing := getPolicy(t, ns, "api-gateway").Status.Targets[1]
		g.Expect(missing).To(And(HaveField("Name", "later"), HaveField("Found", false), HaveField("Reason", v1alpha1.ReasonTargetNotFound)))

		t.Log("Ramp while it is still missing: the targets that exist take step 1 (a missing target carries no traffic)")
		setAction(t, ns, "api-gateway", v1alpha1.ActionRamp)
		g.Eventually(progressOf(t, ns, "api-gateway")).Should(Equal("Ramping 1/3"))
		g.Eventually(func() string { return getIngress(ns, "api-gateway").Annotations[limitRPS] }).Should(Equal("50"))

		t.Log("the missing target appears: it takes the step in force, and the policy is Ready")
		later := ingressWithHost(ns, "later", "later.example.com")
		create(t, later)
		g.Eventually(func() string { return getIngress(ns, "later").Annotations[limitRPS] }).Should(Equal("50"))
		g.Eventually(func() *networkingv1.Ingress { return getIngress(ns, "later-floodgate-api-gateway") }).ShouldNot(BeNil())
		g.Eventually(conditionOf(t, ns, v1alpha1.ConditionDegraded)).Should(HavePrefix("False " + v1alpha1.ReasonHealthy))
		g.Eventually(conditionOf(t, ns, v1alpha1.ConditionReady)).Should(HavePrefix("True " + v1alpha1.ReasonApplied))

		t.Log("it goes again, and Normal restores the others")
		g.Expect(k8s.Delete(ctx, later)).To(Succeed())
		setAction(t, ns, "api-gateway", v1alpha1.ActionNormal)
		g.Eventually(func() *networkingv1.Ingress { return getIngress(ns, "later-floodgate-api-gateway") }).Should(BeNil())
		g.Eventually(func() string { return getIngress(ns, "api-gateway").Annotations[limitRPS] }).Should(Equal("1000"))
		g.Eventually(func() *networkingv1.Ingress { return getIngress(ns, canaryName) }).Should(BeNil())
		g.Eventually(conditionOf(t, ns, v1alpha1.ConditionDegraded)).Should(HavePrefix("True " + v1alpha1.ReasonTargetNotFound))
	})

	t.Run("reports Conflict for the second policy on one Ingress and changes nothing for it", func(t *testing.T) {
		g := NewWithT(t)
		ns := newNamespace(t)
		create(t, sampleIngress(ns), sampleDeployment(ns, 3), sampleHPA(ns, nil), samplePolicy(ns, v1alpha1.ActionRamp))
		g.Eventually(progressOf(t, ns, "api-gateway")).Should(Equal("Ramping 1/3"))
		ingressBefore := viewOf(t, getIngress(ns, "api-gateway"))

		second := samplePolicy(ns, v1alpha1.ActionRamp)
		second.Name = "second"
		second.Spec.AutoscalerRefs = nil
		create(t, second)
		g.Eventually(func() string {
			c := meta.FindStatusCondition(getPolicy(t, ns, "second").Status.Conditions, v1alpha1.ConditionDegraded)
			if c == nil {
				return ""
			}
			return c.Reason + ": " + c.Message
		}).Should(HavePrefix("Conflict: Ingress api-gateway is already changed by policy " + ns + "/api-gateway"))
		g.Expect(getIngress(ns, "api-gateway-floodgate-second")).To(BeNil())
		g.Expect(viewOf(t, getIngress(ns, "api-gateway"))).To(Equal(ingressBefore))

		t.Log("ShedAll on the second policy: the Ingress is the first policy's, so the second does not shed it either")
		setAction(t, ns, "second", v1alpha1.ActionShedAll)
		g.Eventually(phaseOf(t, ns, "second")).Should(Equal(v1alpha1.PhaseShedding))
		g.Expect(getPolicy(t, ns, "second").Status.Targets[0].Reason).To(Equal(v1alpha1.ReasonConflict))
		g.Consistently(func() *networkingv1.Ingress { return getIngress(ns, "api-gateway-floodgate-second") }, "300ms").Should(BeNil())
		g.Expect(viewOf(t, getIngress(ns, "api-gateway"))).To(Equal(ingressBefore))
	})

	t.Run("reports Conflict when a canary it does not own already serves the rules", func(t *testing.T) {
		g := NewWithT(t)
		ns := newNamespace(t)
		other := sampleIngress(ns)
		other.Name = "someone-elses-canary"
		other.Annotations = map[string]string{ingressnginx.AnnotationCanary: "true", ingressnginx.AnnotationWeight: "10"}
		policy := samplePolicy(ns, v1alpha1.ActionShedAll)
		policy.Spec.AutoscalerRefs = nil
		create(t, sampleIngress(ns), other, policy)
		g.Eventually(func() string {
			c := meta.FindStatusCondition(getPolicy(t, ns, "api-gateway").Status.Conditions, v1alpha1.ConditionDegraded)
			if c == nil {
				return ""
			}
			return c.Message
		}).Should(Equal("canary Ingress someone-elses-canary already serves rules of Ingress api-gateway; ingress-nginx allows one canary per rule"))
		g.Expect(getIngress(ns, canaryName)).To(BeNil())
	})

	t.Run("refuses missingRegion Shed on ingress-nginx with a condition that says why", func(t *testing.T) {
		g := NewWithT(t)
		ns := newNamespace(t)
		policy := samplePolicy(ns, v1alpha1.ActionRamp)
		policy.Spec.MissingRegion = v1alpha1.MissingRegionShed
		policy.Spec.AutoscalerRefs = nil
		create(t, sampleIngress(ns), policy)
		g.Eventually(func() string {
			c := meta.FindStatusCondition(getPolicy(t, ns, "api-gateway").Status.Conditions, v1alpha1.ConditionReady)
			if c == nil {
				return ""
			}
			return c.Reason
		}).Should(Equal(v1alpha1.ReasonUnsupported))
		g.Expect(getIngress(ns, canaryName)).To(BeNil())
		g.Expect(getIngress(ns, "api-gateway").Annotations[limitRPS]).To(Equal("1000"))
	})

	t.Run("keeps a standing allowlist in force when missingRegion is tightened to Shed, which ingress-nginx cannot do, and says so", func(t *testing.T) {
		g := NewWithT(t)
		ns := newNamespace(t)
		policy := samplePolicy(ns, v1alpha1.ActionNormal)
		policy.Spec.AllowRegions = []string{"AU"}
		policy.Spec.AutoscalerRefs = nil
		create(t, sampleIngress(ns), policy)
		pattern := ingressnginx.ComplementPattern([]string{"AU"})
		g.Eventually(canaryAnnotations(ns)).Should(HaveKeyWithValue(ingressnginx.AnnotationByHeaderPat, pattern))
		g.Eventually(conditionOf(t, ns, v1alpha1.ConditionReady)).Should(HavePrefix("True " + v1alpha1.ReasonApplied))

		p := getPolicy(t, ns, "api-gateway")
		before := p.DeepCopy()
		p.Spec.MissingRegion = v1alpha1.MissingRegionShed
		g.Expect(k8s.Patch(ctx, p, client.MergeFrom(before))).To(Succeed())
		g.Eventually(conditionOf(t, ns, v1alpha1.ConditionReady)).Should(And(
			HavePrefix("False "+v1alpha1.ReasonUnsupported+": phase Normal is applied to every object but: missingRegion: Shed cannot be honoured on ingress-nginx"),
			HaveSuffix("; the target keeps the lever in force as it was")))
		g.Consistently(canaryAnnotations(ns), "1s").Should(HaveKeyWithValue(ingressnginx.AnnotationByHeaderPat, pattern),
			"US traffic stays shed: the refused setting never lifts the allowlist")
	})

	t.Run("names the other Ingresses a canary reaches through a shared upstream, and session affinity", func(t *testing.T) {
		g := NewWithT(t)
		ns := newNamespace(t)
		main := sampleIngress(ns)
		main.Annotations[ingressnginx.AnnotationAffinity] = "cookie"
		sibling := sampleIngress(ns)
		sibling.Name = "admin"
		sibling.Spec.Rules[0].Host = "admin.example.com"
		policy := samplePolicy(ns, v1alpha1.ActionShedAll)
		policy.Spec.AutoscalerRefs = nil
		create(t, main, sibling, policy)
		g.Eventually(phaseOf(t, ns, "api-gateway")).Should(Equal(v1alpha1.PhaseShedding))
		target := getPolicy(t, ns, "api-gateway").Status.Targets[0]
		g.Expect(target.SharedUpstreamIngresses).To(Equal([]string{"admin"}))
		g.Expect(strings.Join(target.Warnings, "\n")).To(And(ContainSubstring("session affinity"), ContainSubstring("sharedUpstreamIngresses")))
	})

	t.Run("does not edit an HPA another controller owns", func(t *testing.T) {
		g := NewWithT(t)
		ns := newNamespace(t)
		hpa := sampleHPA(ns, nil)
		hpa.OwnerReferences = []metav1.OwnerReference{{APIVersion: "keda.sh/v1alpha1", Kind: "ScaledObject", Name: "api", UID: "1234", Controller: ptr.To(true)}}
		create(t, sampleIngress(ns), sampleDeployment(ns, 3), hpa, samplePolicy(ns, v1alpha1.ActionShedAll))
		g.Eventually(func() string {
			c := meta.FindStatusCondition(getPolicy(t, ns, "api-gateway").Status.Conditions, v1alpha1.ConditionDegraded)
			if c == nil {
				return ""
			}
			return c.Message
		}).Should(ContainSubstring("is controlled by ScaledObject api"))
		g.Expect(*getHPA(t, ns).Spec.MinReplicas).To(BeEquivalentTo(2))
	})
}

func TestTheFinalizer(t *testing.T) {
	t.Run("is not removed while the restore cannot succeed", func(t *testing.T) {
		g := NewWithT(t)
		ns := newNamespace(t)
		create(t, sampleIngress(ns), sampleDeployment(ns, 3), sampleHPA(ns, nil), samplePolicy(ns, v1alpha1.ActionRamp))
		g.Eventually(func() string { return getIngress(ns, "api-gateway").Annotations[limitRPS] }).Should(Equal("50"))

		t.Log("the restore record is corrupted by hand")
		ing := getIngress(ns, "api-gateway")
		good := ing.Annotations[restore.Annotation]
		before := ing.DeepCopy()
		ing.Annotations[restore.Annotation] = "{not json"
		g.Expect(k8s.Patch(ctx, ing, client.MergeFrom(before))).To(Succeed())

		g.Expect(k8s.Delete(ctx, getPolicy(t, ns, "api-gateway"))).To(Succeed())
		g.Eventually(conditionOf(t, ns, v1alpha1.ConditionDegraded)).Should(HavePrefix("True " + v1alpha1.ReasonCorruptRecord))
		g.Consistently(func() []string { return getPolicy(t, ns, "api-gateway").Finalizers }, "300ms").Should(ContainElement(controllers.Finalizer))
		g.Expect(getPolicy(t, ns, "api-gateway").Status.Phase).To(Equal(v1alpha1.PhaseRestoring))

		t.Log("once the record is mended, the restore succeeds and the policy goes")
		ing = getIngress(ns, "api-gateway")
		before = ing.DeepCopy()
		ing.Annotations[restore.Annotation] = good
		g.Expect(k8s.Patch(ctx, ing, client.MergeFrom(before))).To(Succeed())
		g.Eventually(func() error {
			return k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "api-gateway"}, &v1alpha1.TrafficPolicy{})
		}).Should(Satisfy(apierrors.IsNotFound))
		g.Expect(getIngress(ns, "api-gateway").Annotations[limitRPS]).To(Equal("1000"))
	})
}

func TestTheShedServer(t *testing.T) {
	t.Run("answers with the status, Retry-After and name of the policy that shed it, and cannot be steered from another namespace", func(t *testing.T) {
		g := NewWithT(t)
		ns := newNamespace(t)
		policy := samplePolicy(ns, v1alpha1.ActionShedAll)
		policy.Spec.AutoscalerRefs = nil
		policy.Spec.Shed = v1alpha1.ShedResponse{StatusCode: ptr.To[int32](429), RetryAfterSeconds: ptr.To[int32](90)}
		create(t, sampleIngress(ns), policy)

		ask := startShedServer(t, shed.RedirectHosts{"evil.example"})
		get := func() fixtures.ShedAnswer { return ask("api.example.com", "/v2/health") }
		g.Eventually(func() int { return get().Code }).Should(Equal(429))
		res := get()
		g.Expect(res.RetryAfter).To(Equal("90"))
		g.Expect(res.Body).To(ContainSubstring(`"policy":"` + ns + `/api-gateway"`))

		t.Log("a forged Ingress in another namespace: the policy label, the old shed annotations, the same host")
		tenant := newNamespace(t)
		forged := ingressWithHost(tenant, "forged", "api.example.com")
		forged.Labels = map[string]string{"traffic.floodgate.dev/policy": "api-gateway"}
		forged.Annotations = map[string]string{"traffic.floodgate.dev/shed-policy": ns + "/api-gateway",
			"traffic.floodgate.dev/shed-redirect": "https://evil.example/login-again", "traffic.floodgate.dev/shed-status-code": "302"}
		create(t, forged)
		g.Consistently(get, "1s").Should(Equal(res), "an Ingress is not a policy: the answer does not change")

		t.Log("a real policy in another namespace over that Ingress, asking for a redirect: the answer is the neutral default, and both policies are told")
		evil := samplePolicy(tenant, v1alpha1.ActionShedAll)
		evil.Name, evil.Spec.AutoscalerRefs = "forged", nil
		evil.Spec.TargetRefs = []v1alpha1.TargetRef{{Kind: v1alpha1.TargetKindIngress, Name: "forged"}}
		evil.Spec.Shed = v1alpha1.ShedResponse{RedirectURL: "https://evil.example/login-again"}
		create(t, evil)
		g.Eventually(get).Should(And(HaveField("Code", 503), HaveField("RetryAfter", "120"), HaveField("Where", "")))
		g.Expect(get().Body).NotTo(ContainSubstring(`"policy"`))
		conflict := "True Conflict: route api.example.com/ is also claimed by policy "
		g.Eventually(conditionOf(t, ns, v1alpha1.ConditionDegraded)).Should(HavePrefix(conflict + tenant + "/forged of another namespace"))
		g.Eventually(func() string {
			c := meta.FindStatusCondition(getPolicy(t, tenant, "forged").Status.Conditions, v1alpha1.ConditionDegraded)
			if c == nil {
				return ""
			}
			return string(c.Status) + " " + c.Reason + ": " + c.Message
		}).Should(ContainSubstring("route api.example.com/ is also claimed by policy " + ns + "/api-gateway of another namespace"))
	})
}

// ingressWithHost is the sample Ingress under another name and host.
func ingressWithHost(ns, name, host string) *networkingv1.Ingress {
	ing := sampleIngress(ns)
	ing.Name, ing.Spec.Rules[0].Host = name, host
	return ing
}

func managers(fields []metav1.ManagedFieldsEntry) []string {
	var out []string
	for _, f := range fields {
		out = append(out, f.Manager)
	}
	return out
}
