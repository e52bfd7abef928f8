package controllers_test

import (
	"context"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
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

var _ = Describe("the sample policy", func() {
	var ns string
	var ingress *networkingv1.Ingress
	var hpa *autoscalingv2.HorizontalPodAutoscaler
	var ingressBefore, hpaBefore userView

	BeforeEach(func() {
		ns = newNamespace()
		ingress, hpa = sampleIngress(ns), sampleHPA(ns, nil)
		create(ingress, sampleDeployment(ns, 4), hpa)
		ingressBefore, hpaBefore = viewOf(ingress), viewOf(hpa)
	})

	It("sheds, ramps step by step on the warped clock, completes, and leaves both objects exactly as before", func() {
		create(samplePolicy(ns, v1alpha1.ActionShedAll))

		By("ShedAll: a canary sends every request to the shed Service; the HPA is held at the current replicas")
		Eventually(phaseOf(ns, "api-gateway")).Should(Equal(v1alpha1.PhaseShedding))
		Eventually(canaryAnnotations(ns)).Should(HaveKeyWithValue(ingressnginx.AnnotationWeight, "100"))
		canary := getIngress(ns, canaryName)
		Expect(canary.Annotations).To(HaveKeyWithValue(ingressnginx.AnnotationCanary, "true"))
		Expect(canary.Annotations).NotTo(HaveKey(ingressnginx.AnnotationByHeader))
		Expect(canary.Labels).To(HaveKeyWithValue("traffic.floodgate.dev/policy", "api-gateway"))
		Expect(metav1.GetControllerOf(canary).Kind).To(Equal("TrafficPolicy"))
		Expect(canary.Spec.Rules).To(HaveLen(1))
		Expect(canary.Spec.Rules[0].Host).To(Equal("api.example.com"))
		Expect(canary.Spec.Rules[0].HTTP.Paths).To(HaveLen(2))
		for i, p := range canary.Spec.Rules[0].HTTP.Paths {
			Expect(p.Path).To(Equal(ingress.Spec.Rules[0].HTTP.Paths[i].Path))
			Expect(*p.PathType).To(Equal(*ingress.Spec.Rules[0].HTTP.Paths[i].PathType))
			Expect(p.Backend.Service.Name).To(Equal("floodgate-shed-api-gateway"))
		}
		Expect(getIngress(ns, "api-gateway").Annotations).To(HaveKeyWithValue(limitRPS, "1000"), "ShedAll does not touch the main Ingress")
		Eventually(func() int32 { return *getHPA(ns).Spec.MinReplicas }).Should(BeEquivalentTo(4))
		Expect(*getHPA(ns).Spec.Behavior.ScaleDown.SelectPolicy).To(Equal(autoscalingv2.DisabledPolicySelect))
		Expect(kubectl("get", "trafficpolicies", "-n", ns)).To(MatchRegexp(`api-gateway\s+ShedAll\s+Shedding`))

		By("the shed Service and EndpointSlice point at the shed pods")
		slice := &discoveryv1.EndpointSlice{}
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "floodgate-shed-api-gateway"}, slice)).To(Succeed())
		Expect(slice.Labels).To(HaveKeyWithValue(discoveryv1.LabelServiceName, "floodgate-shed-api-gateway"))
		Expect(slice.Endpoints).To(HaveLen(2))
		Expect(slice.Endpoints[0].Addresses).To(Equal([]string{"10.0.0.1"}))
		svc := &corev1.Service{}
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "floodgate-shed-api-gateway"}, svc)).To(Succeed())
		Expect(svc.Spec.Selector).To(BeEmpty())

		By("Ramp step 1: only AU is admitted, at 50 requests per second per client")
		setAction(ns, "api-gateway", v1alpha1.ActionRamp)
		Eventually(progressOf(ns, "api-gateway")).Should(Equal("Ramping 1/3"))
		Eventually(canaryAnnotations(ns)).Should(HaveKeyWithValue(ingressnginx.AnnotationByHeaderPat, "^([^A].*|A([^U].*|U(.+))?)?$"))
		Expect(getIngress(ns, canaryName).Annotations).To(HaveKeyWithValue(ingressnginx.AnnotationByHeader, "CF-IPCountry"))
		Expect(getIngress(ns, canaryName).Annotations).NotTo(HaveKey(ingressnginx.AnnotationWeight))
		Expect(getIngress(ns, "api-gateway").Annotations).To(HaveKeyWithValue(limitRPS, "50"))
		Expect(managers(getIngress(ns, "api-gateway").ManagedFields)).To(ContainElement("floodgate"),
			"GitOps tools are told to leave Floodgate's fields alone by its field manager name")
		Expect(kubectl("get", "tp", "-n", ns)).To(MatchRegexp(`api-gateway\s+Ramp\s+Ramping\s+1/3`))
		p := getPolicy(ns, "api-gateway")
		Expect(p.Status.Targets[0].Capabilities.RateLimitScope).To(Equal("PerClientPerReplica"))
		Expect(p.Status.Targets[0].Applied.AllowRegions).To(Equal([]string{"AU"}))
		Expect(p.Status.Targets[0].RestoreRecord).To(ContainSubstring(`"original":"1000"`))

		By("the hold is a minimum: 4 minutes in, still step 1")
		clk.Advance(4 * time.Minute)
		Consistently(progressOf(ns, "api-gateway"), "300ms").Should(Equal("Ramping 1/3"))

		By("step 2 after the 5 minute hold: AU, NZ and SG at 500 rps")
		clk.Advance(time.Minute)
		Eventually(progressOf(ns, "api-gateway")).Should(Equal("Ramping 2/3"))
		Eventually(func() string { return getIngress(ns, "api-gateway").Annotations[limitRPS] }).Should(Equal("500"))
		Expect(getIngress(ns, canaryName).Annotations[ingressnginx.AnnotationByHeaderPat]).To(Equal(ingressnginx.ComplementPattern([]string{"AU", "NZ", "SG"})))

		By("step 3: half of the requests from every region, no rate limit (the original limit-rps is back)")
		clk.Advance(10 * time.Minute)
		Eventually(progressOf(ns, "api-gateway")).Should(Equal("Ramping 3/3"))
		Eventually(canaryAnnotations(ns)).Should(HaveKeyWithValue(ingressnginx.AnnotationWeight, "50"))
		Expect(getIngress(ns, canaryName).Annotations).NotTo(HaveKey(ingressnginx.AnnotationByHeader))
		Expect(getIngress(ns, "api-gateway").Annotations).To(HaveKeyWithValue(limitRPS, "1000"))

		By("full traffic: the canary goes, the HPA stays held for releaseAfter")
		clk.Advance(10 * time.Minute)
		Eventually(phaseOf(ns, "api-gateway")).Should(Equal(v1alpha1.PhaseReleasing))
		Eventually(func() *networkingv1.Ingress { return getIngress(ns, canaryName) }).Should(BeNil())
		Expect(*getHPA(ns).Spec.MinReplicas).To(BeEquivalentTo(4))

		By("Completed: RampComplete, every object exactly as before")
		clk.Advance(5 * time.Minute)
		Eventually(phaseOf(ns, "api-gateway")).Should(Equal(v1alpha1.PhaseCompleted))
		p = getPolicy(ns, "api-gateway")
		Expect(meta.IsStatusConditionTrue(p.Status.Conditions, v1alpha1.ConditionRampComplete)).To(BeTrue())
		Expect(meta.FindStatusCondition(p.Status.Conditions, v1alpha1.ConditionReady).ObservedGeneration).To(Equal(p.Generation))
		Expect(viewOf(ingress)).To(Equal(ingressBefore))
		Expect(viewOf(hpa)).To(Equal(hpaBefore))
		Expect(getIngress(ns, "api-gateway").Annotations).NotTo(HaveKey(restore.Annotation))
		var standing corev1.Service
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "floodgate-shed-api-gateway"}, &standing)).To(Succeed(),
			"the shed Service stands ready while the policy exists, so a lever that sheds writes only canaries")
		Expect(standing.Spec.ClusterIP).To(Equal(corev1.ClusterIPNone))
		Expect(kubectl("get", "trafficpolicies", "-n", ns)).To(MatchRegexp(`api-gateway\s+Ramp\s+Completed\s+3/3`))

		By("the history names every transition")
		var reasons []string
		for _, t := range p.Status.History {
			reasons = append(reasons, t.Reason)
		}
		Expect(reasons).To(Equal([]string{"ActionChanged", "ActionChanged", "StepAdvanced", "StepAdvanced", "FullTraffic", "RampComplete"}))

		By("a GitOps re-apply of the same spec does not restart the run")
		p = getPolicy(ns, "api-gateway")
		before := p.DeepCopy()
		p.Annotations = map[string]string{"argocd.argoproj.io/tracking-id": "edge:traffic.floodgate.dev/TrafficPolicy:edge/api-gateway"}
		Expect(k8s.Patch(ctx, p, client.MergeFrom(before))).To(Succeed())
		Consistently(phaseOf(ns, "api-gateway"), "300ms").Should(Equal(v1alpha1.PhaseCompleted))
	})

	It("restores exactly after ShedAll then Normal, for an HPA that had its own behavior", func() {
		Expect(k8s.Delete(ctx, hpa)).To(Succeed())
		hpa = sampleHPA(ns, &autoscalingv2.HorizontalPodAutoscalerBehavior{ScaleDown: &autoscalingv2.HPAScalingRules{
			StabilizationWindowSeconds: ptr.To[int32](60),
			Policies:                   []autoscalingv2.HPAScalingPolicy{{Type: autoscalingv2.PodsScalingPolicy, Value: 1, PeriodSeconds: 30}},
		}})
		create(hpa)
		hpaBefore = viewOf(hpa)
		policy := samplePolicy(ns, v1alpha1.ActionShedAll)
		policy.Spec.Autoscaling.ReleaseAfter = nil // the HPA's own window (60s) applies
		create(policy)

		Eventually(phaseOf(ns, "api-gateway")).Should(Equal(v1alpha1.PhaseShedding))
		Eventually(func() int32 { return *getHPA(ns).Spec.MinReplicas }).Should(BeEquivalentTo(4))
		held := getHPA(ns)
		Expect(*held.Spec.Behavior.ScaleDown.SelectPolicy).To(Equal(autoscalingv2.DisabledPolicySelect))
		Expect(held.Spec.Behavior.ScaleDown.Policies).To(Equal(hpaBefore.Spec.(*autoscalingv2.HorizontalPodAutoscalerSpec).Behavior.ScaleDown.Policies))

		setAction(ns, "api-gateway", v1alpha1.ActionNormal)
		Eventually(phaseOf(ns, "api-gateway")).Should(Equal(v1alpha1.PhaseReleasing))
		Eventually(func() *networkingv1.Ingress { return getIngress(ns, canaryName) }).Should(BeNil())
		Expect(getPolicy(ns, "api-gateway").Status.ReleaseAt.Sub(clk.Now())).To(Equal(60 * time.Second))
		clk.Advance(60 * time.Second)
		Eventually(phaseOf(ns, "api-gateway")).Should(Equal(v1alpha1.PhaseNormal))
		Expect(viewOf(hpa)).To(Equal(hpaBefore))
		Expect(viewOf(ingress)).To(Equal(ingressBefore))
	})

	It("restores exactly and lets go when deleted mid-ramp", func() {
		create(samplePolicy(ns, v1alpha1.ActionRamp))
		Eventually(progressOf(ns, "api-gateway")).Should(Equal("Ramping 1/3"))
		Eventually(func() string { return getIngress(ns, "api-gateway").Annotations[limitRPS] }).Should(Equal("50"))

		Expect(k8s.Delete(ctx, getPolicy(ns, "api-gateway"))).To(Succeed())
		Eventually(func() error {
			return k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "api-gateway"}, &v1alpha1.TrafficPolicy{})
		}).Should(Satisfy(apierrors.IsNotFound))
		Expect(getIngress(ns, canaryName)).To(BeNil())
		Expect(viewOf(ingress)).To(Equal(ingressBefore))
		Expect(viewOf(hpa)).To(Equal(hpaBefore))
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "floodgate-shed-api-gateway"}, &discoveryv1.EndpointSlice{})).To(Satisfy(apierrors.IsNotFound))
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "floodgate-shed-api-gateway"}, &corev1.Service{})).To(Satisfy(apierrors.IsNotFound))
	})

	It("keeps its step and the hold time left across an operator restart", func() {
		create(samplePolicy(ns, v1alpha1.ActionRamp))
		Eventually(progressOf(ns, "api-gateway")).Should(Equal("Ramping 1/3"))
		clk.Advance(3 * time.Minute)

		stopManager()
		startManager()

		Consistently(progressOf(ns, "api-gateway"), "300ms").Should(Equal("Ramping 1/3"))
		clk.Advance(2 * time.Minute)
		Eventually(progressOf(ns, "api-gateway")).Should(Equal("Ramping 2/3"))
		Eventually(func() string { return getIngress(ns, "api-gateway").Annotations[limitRPS] }).Should(Equal("500"))
		Expect(getPolicy(ns, "api-gateway").Status.Targets[0].RestoreRecord).To(ContainSubstring(`"original":"1000"`),
			"the original recorded before the restart is the one kept")

		setAction(ns, "api-gateway", v1alpha1.ActionNormal)
		Eventually(phaseOf(ns, "api-gateway")).Should(Equal(v1alpha1.PhaseReleasing))
		clk.Advance(5 * time.Minute)
		Eventually(phaseOf(ns, "api-gateway")).Should(Equal(v1alpha1.PhaseNormal))
		Expect(viewOf(ingress)).To(Equal(ingressBefore))
		Expect(viewOf(hpa)).To(Equal(hpaBefore))
	})

	It("keeps a field someone else changed during the lever, and says so", func() {
		create(samplePolicy(ns, v1alpha1.ActionRamp))
		Eventually(func() string { return getIngress(ns, "api-gateway").Annotations[limitRPS] }).Should(Equal("50"))

		ing := getIngress(ns, "api-gateway")
		before := ing.DeepCopy()
		ing.Annotations[limitRPS] = "75" // a responder tuned it by hand
		Expect(k8s.Patch(ctx, ing, client.MergeFrom(before))).To(Succeed())

		setAction(ns, "api-gateway", v1alpha1.ActionNormal)
		Eventually(conditionOf(ns, v1alpha1.ConditionDegraded)).Should(ContainSubstring(
			"FieldChangedByOther: changed by someone else after Floodgate, kept as they are: Ingress api-gateway annotations.nginx.ingress.kubernetes.io/limit-rps"))
		Eventually(func() map[string]string { return getIngress(ns, "api-gateway").Annotations }).ShouldNot(HaveKey(restore.Annotation))
		Expect(getIngress(ns, "api-gateway").Annotations[limitRPS]).To(Equal("75"))
		kept := "Ingress api-gateway annotations.nginx.ingress.kubernetes.io/limit-rps"
		Expect(getPolicy(ns, "api-gateway").Status.KeptChanges).To(ConsistOf(kept))

		By("the next action change keeps the restore's list for the record, no longer Degraded for it")
		setAction(ns, "api-gateway", v1alpha1.ActionRamp)
		Eventually(func() string { return getIngress(ns, "api-gateway").Annotations[limitRPS] }).Should(Equal("50"))
		Eventually(func() bool { return getPolicy(ns, "api-gateway").Status.KeptChangesEarlier }).Should(BeTrue())
		Expect(getPolicy(ns, "api-gateway").Status.KeptChanges).To(ConsistOf(kept))
		Eventually(conditionOf(ns, v1alpha1.ConditionDegraded)).ShouldNot(ContainSubstring("FieldChangedByOther"))

		By("a change kept under a later action replaces the list")
		ing = getIngress(ns, "api-gateway")
		before = ing.DeepCopy()
		ing.Annotations[limitRPS] = "80"
		Expect(k8s.Patch(ctx, ing, client.MergeFrom(before))).To(Succeed())
		setAction(ns, "api-gateway", v1alpha1.ActionNormal)
		Eventually(func() bool { return getPolicy(ns, "api-gateway").Status.KeptChangesEarlier }).Should(BeFalse())
		Expect(getPolicy(ns, "api-gateway").Status.KeptChanges).To(ConsistOf(kept))
		Eventually(conditionOf(ns, v1alpha1.ConditionDegraded)).Should(ContainSubstring("FieldChangedByOther"))
		Expect(getIngress(ns, "api-gateway").Annotations[limitRPS]).To(Equal("80"))
	})

	It("applies the standing allowlist in Normal and removes it without a trace", func() {
		policy := samplePolicy(ns, v1alpha1.ActionNormal)
		policy.Spec.AllowRegions = []string{"NZ", "AU"}
		create(policy)
		Eventually(canaryAnnotations(ns)).Should(HaveKeyWithValue(ingressnginx.AnnotationByHeaderPat, ingressnginx.ComplementPattern([]string{"AU", "NZ"})))
		// The targets are written before the status of the same pass: wait for the status too.
		Eventually(phaseOf(ns, "api-gateway")).Should(Equal(v1alpha1.PhaseNormal))
		Expect(*getHPA(ns).Spec.MinReplicas).To(BeEquivalentTo(2), "Normal holds no autoscaler")

		p := getPolicy(ns, "api-gateway")
		before := p.DeepCopy()
		p.Spec.AllowRegions = nil
		Expect(k8s.Patch(ctx, p, client.MergeFrom(before))).To(Succeed())
		Eventually(func() *networkingv1.Ingress { return getIngress(ns, canaryName) }).Should(BeNil())
		Expect(viewOf(ingress)).To(Equal(ingressBefore))
		Expect(viewOf(hpa)).To(Equal(hpaBefore))
	})

	It("makes no API writes at rest", func() {
		create(samplePolicy(ns, v1alpha1.ActionShedAll))
		Eventually(canaryAnnotations(ns)).Should(HaveKeyWithValue(ingressnginx.AnnotationWeight, "100"))
		Eventually(func() int32 { return *getHPA(ns).Spec.MinReplicas }).Should(BeEquivalentTo(4))
		Eventually(func() bool {
			return meta.IsStatusConditionTrue(getPolicy(ns, "api-gateway").Status.Conditions, v1alpha1.ConditionReady)
		}).Should(BeTrue())
		// At rest includes armed: the API server's verdict on the levers is in status.
		Eventually(conditionOf(ns, v1alpha1.ConditionArmed)).Should(HavePrefix("True "))

		objects := func() []client.Object {
			return []client.Object{getPolicy(ns, "api-gateway"), getIngress(ns, canaryName), getHPA(ns)}
		}
		settled := objects()
		By("waking the controller up: a change to the target Ingress and a clock advance")
		ing := getIngress(ns, "api-gateway")
		before := ing.DeepCopy()
		ing.Labels["touched"] = "yes"
		Expect(k8s.Patch(ctx, ing, client.MergeFrom(before))).To(Succeed())
		clk.Advance(time.Minute)
		Consistently(func() string { return writtenSince(settled, objects()) }, "1s").Should(BeEmpty())
	})
})

var _ = Describe("a policy whose targets change", func() {
	It("routes every target's canary to the policy's one headless shed Service, and puts back a target or autoscaler dropped from the spec", func() {
		ns := newNamespace()
		ingressNamed := func(name, host string) *networkingv1.Ingress {
			ing := sampleIngress(ns)
			ing.Name, ing.Spec.Rules[0].Host = name, host
			return ing
		}
		internal, old := ingressNamed("api-internal", "internal.example.com"), ingressNamed("api-old", "old.example.com")
		hpa := sampleHPA(ns, nil)
		create(sampleIngress(ns), internal, old, sampleDeployment(ns, 4), hpa)
		internalBefore, hpaBefore := viewOf(internal), viewOf(hpa)
		policy := samplePolicy(ns, v1alpha1.ActionShedAll)
		policy.Spec.TargetRefs = append(policy.Spec.TargetRefs,
			v1alpha1.TargetRef{Kind: v1alpha1.TargetKindIngress, Name: "api-internal"}, v1alpha1.TargetRef{Kind: v1alpha1.TargetKindIngress, Name: "api-old"})
		create(policy)

		By("ShedAll: one canary per target, all routing to the policy's one shed Service (headless: no ClusterIP), with its EndpointSlice")
		Eventually(phaseOf(ns, "api-gateway")).Should(Equal(v1alpha1.PhaseShedding))
		const service = "floodgate-shed-api-gateway"
		for _, target := range []string{"api-gateway", "api-internal", "api-old"} {
			canary := getIngress(ns, target+"-floodgate-api-gateway")
			Expect(canary).NotTo(BeNil(), target)
			Expect(canary.Spec.Rules[0].HTTP.Paths[0].Backend.Service.Name).To(Equal(service))
		}
		var svc corev1.Service
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: service}, &svc)).To(Succeed())
		Expect(svc.Spec.ClusterIP).To(Equal(corev1.ClusterIPNone))
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: service}, &discoveryv1.EndpointSlice{})).To(Succeed())
		var services corev1.ServiceList
		Expect(k8s.List(ctx, &services, client.InNamespace(ns))).To(Succeed())
		Expect(services.Items).To(HaveLen(1), "one shed Service for the policy, not one per target")

		By("api-old is deleted and dropped from the spec, and the policy's status has lost track of the targets: its canary is still found and removed")
		p := getPolicy(ns, "api-gateway")
		before := p.DeepCopy()
		p.Status.Targets = nil
		Expect(k8s.Status().Patch(ctx, p, client.MergeFrom(before))).To(Succeed())
		Expect(k8s.Delete(ctx, old)).To(Succeed())
		p = getPolicy(ns, "api-gateway")
		before = p.DeepCopy()
		p.Spec.TargetRefs = p.Spec.TargetRefs[:2]
		Expect(k8s.Patch(ctx, p, client.MergeFrom(before))).To(Succeed())
		Eventually(func() *networkingv1.Ingress { return getIngress(ns, "api-old-floodgate-api-gateway") }).Should(BeNil())
		Expect(getIngress(ns, "api-internal-floodgate-api-gateway")).NotTo(BeNil(), "the targets still named keep shedding")
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: service}, &corev1.Service{})).To(Succeed(), "the shed Service stays while a canary routes to it")

		By("Ramp step 1 edits both main Ingresses")
		setAction(ns, "api-gateway", v1alpha1.ActionRamp)
		Eventually(func() string { return getIngress(ns, "api-internal").Annotations[limitRPS] }).Should(Equal("50"))

		By("the responder drops api-internal and the HPA from the spec mid-ramp: both are put back, the rest stays")
		p = getPolicy(ns, "api-gateway")
		before = p.DeepCopy()
		p.Spec.TargetRefs, p.Spec.AutoscalerRefs = p.Spec.TargetRefs[:1], nil
		Expect(k8s.Patch(ctx, p, client.MergeFrom(before))).To(Succeed())
		// Each effect is awaited on its own: a target restored does not mean its shed Service is gone.
		Eventually(func() userView { return viewOf(internal) }).Should(Equal(internalBefore))
		Eventually(func() userView { return viewOf(hpa) }).Should(Equal(hpaBefore))
		Eventually(func() *networkingv1.Ingress { return getIngress(ns, "api-internal-floodgate-api-gateway") }).Should(BeNil())
		Eventually(func() []string {
			var names []string
			for _, t := range getPolicy(ns, "api-gateway").Status.Targets {
				names = append(names, t.Name)
			}
			for _, a := range getPolicy(ns, "api-gateway").Status.Autoscalers {
				names = append(names, "hpa/"+a.Name)
			}
			return names
		}).Should(Equal([]string{"api-gateway"}))
		Expect(getIngress(ns, "api-gateway").Annotations).To(HaveKeyWithValue(limitRPS, "50"), "the target still named keeps its step")
		Expect(getIngress(ns, canaryName)).NotTo(BeNil())
		Expect(conditionOf(ns, v1alpha1.ConditionDegraded)()).To(HavePrefix("False"))
	})
})

var _ = Describe("refusing what cannot be done", func() {
	var ns string
	BeforeEach(func() { ns = newNamespace() })

	It("sheds the targets that exist and holds the HPA while a sibling target is missing, reports it, and sheds it once it appears", func() {
		policy := samplePolicy(ns, v1alpha1.ActionShedAll)
		policy.Spec.TargetRefs = append(policy.Spec.TargetRefs, v1alpha1.TargetRef{Kind: v1alpha1.TargetKindIngress, Name: "later"})
		create(sampleIngress(ns), sampleDeployment(ns, 3), sampleHPA(ns, nil), policy)

		By("ShedAll is applied to everything that exists: the lever never waits for the missing target")
		Eventually(canaryAnnotations(ns)).Should(HaveKeyWithValue(ingressnginx.AnnotationWeight, "100"))
		Eventually(func() int32 { return *getHPA(ns).Spec.MinReplicas }).Should(BeEquivalentTo(3))
		Eventually(phaseOf(ns, "api-gateway")).Should(Equal(v1alpha1.PhaseShedding))
		Eventually(conditionOf(ns, v1alpha1.ConditionDegraded)).Should(Equal("True " + v1alpha1.ReasonTargetNotFound + ": Ingress later not found in namespace " + ns))
		Expect(conditionOf(ns, v1alpha1.ConditionReady)()).To(HavePrefix("False " + v1alpha1.ReasonTargetNotFound + ": phase Shedding is applied to every object but: Ingress later not found"))
		missing := getPolicy(ns, "api-gateway").Status.Targets[1]
		Expect(missing).To(And(HaveField("Name", "later"), HaveField("Found", false), HaveField("Reason", v1alpha1.ReasonTargetNotFound)))

		By("Ramp while it is still missing: the targets that exist take step 1 (a missing target carries no traffic)")
		setAction(ns, "api-gateway", v1alpha1.ActionRamp)
		Eventually(progressOf(ns, "api-gateway")).Should(Equal("Ramping 1/3"))
		Eventually(func() string { return getIngress(ns, "api-gateway").Annotations[limitRPS] }).Should(Equal("50"))

		By("the missing target appears: it takes the step in force, and the policy is Ready")
		later := ingressWithHost(ns, "later", "later.example.com")
		create(later)
		Eventually(func() string { return getIngress(ns, "later").Annotations[limitRPS] }).Should(Equal("50"))
		Eventually(func() *networkingv1.Ingress { return getIngress(ns, "later-floodgate-api-gateway") }).ShouldNot(BeNil())
		Eventually(conditionOf(ns, v1alpha1.ConditionDegraded)).Should(HavePrefix("False " + v1alpha1.ReasonHealthy))
		Eventually(conditionOf(ns, v1alpha1.ConditionReady)).Should(HavePrefix("True " + v1alpha1.ReasonApplied))

		By("it goes again, and Normal restores the others")
		Expect(k8s.Delete(ctx, later)).To(Succeed())
		setAction(ns, "api-gateway", v1alpha1.ActionNormal)
		Eventually(func() *networkingv1.Ingress { return getIngress(ns, "later-floodgate-api-gateway") }).Should(BeNil())
		Eventually(func() string { return getIngress(ns, "api-gateway").Annotations[limitRPS] }).Should(Equal("1000"))
		Eventually(func() *networkingv1.Ingress { return getIngress(ns, canaryName) }).Should(BeNil())
		Eventually(conditionOf(ns, v1alpha1.ConditionDegraded)).Should(HavePrefix("True " + v1alpha1.ReasonTargetNotFound))
	})

	It("reports Conflict for the second policy on one Ingress and changes nothing for it", func() {
		create(sampleIngress(ns), sampleDeployment(ns, 3), sampleHPA(ns, nil), samplePolicy(ns, v1alpha1.ActionRamp))
		Eventually(progressOf(ns, "api-gateway")).Should(Equal("Ramping 1/3"))
		ingressBefore := viewOf(getIngress(ns, "api-gateway"))

		second := samplePolicy(ns, v1alpha1.ActionRamp)
		second.Name = "second"
		second.Spec.AutoscalerRefs = nil
		create(second)
		Eventually(func() string {
			c := meta.FindStatusCondition(getPolicy(ns, "second").Status.Conditions, v1alpha1.ConditionDegraded)
			if c == nil {
				return ""
			}
			return c.Reason + ": " + c.Message
		}).Should(HavePrefix("Conflict: Ingress api-gateway is already changed by policy " + ns + "/api-gateway"))
		Expect(getIngress(ns, "api-gateway-floodgate-second")).To(BeNil())
		Expect(viewOf(getIngress(ns, "api-gateway"))).To(Equal(ingressBefore))

		By("ShedAll on the second policy: the Ingress is the first policy's, so the second does not shed it either")
		setAction(ns, "second", v1alpha1.ActionShedAll)
		Eventually(phaseOf(ns, "second")).Should(Equal(v1alpha1.PhaseShedding))
		Expect(getPolicy(ns, "second").Status.Targets[0].Reason).To(Equal(v1alpha1.ReasonConflict))
		Consistently(func() *networkingv1.Ingress { return getIngress(ns, "api-gateway-floodgate-second") }, "300ms").Should(BeNil())
		Expect(viewOf(getIngress(ns, "api-gateway"))).To(Equal(ingressBefore))
	})

	It("reports Conflict when a canary it does not own already serves the rules", func() {
		other := sampleIngress(ns)
		other.Name = "someone-elses-canary"
		other.Annotations = map[string]string{ingressnginx.AnnotationCanary: "true", ingressnginx.AnnotationWeight: "10"}
		policy := samplePolicy(ns, v1alpha1.ActionShedAll)
		policy.Spec.AutoscalerRefs = nil
		create(sampleIngress(ns), other, policy)
		Eventually(func() string {
			c := meta.FindStatusCondition(getPolicy(ns, "api-gateway").Status.Conditions, v1alpha1.ConditionDegraded)
			if c == nil {
				return ""
			}
			return c.Message
		}).Should(Equal("canary Ingress someone-elses-canary already serves rules of Ingress api-gateway; ingress-nginx allows one canary per rule"))
		Expect(getIngress(ns, canaryName)).To(BeNil())
	})

	It("refuses missingRegion Shed on ingress-nginx with a condition that says why", func() {
		policy := samplePolicy(ns, v1alpha1.ActionRamp)
		policy.Spec.MissingRegion = v1alpha1.MissingRegionShed
		policy.Spec.AutoscalerRefs = nil
		create(sampleIngress(ns), policy)
		Eventually(func() string {
			c := meta.FindStatusCondition(getPolicy(ns, "api-gateway").Status.Conditions, v1alpha1.ConditionReady)
			if c == nil {
				return ""
			}
			return c.Reason
		}).Should(Equal(v1alpha1.ReasonUnsupported))
		Expect(getIngress(ns, canaryName)).To(BeNil())
		Expect(getIngress(ns, "api-gateway").Annotations[limitRPS]).To(Equal("1000"))
	})

	It("keeps a standing allowlist in force when missingRegion is tightened to Shed, which ingress-nginx cannot do, and says so", func() {
		policy := samplePolicy(ns, v1alpha1.ActionNormal)
		policy.Spec.AllowRegions = []string{"AU"}
		policy.Spec.AutoscalerRefs = nil
		create(sampleIngress(ns), policy)
		pattern := ingressnginx.ComplementPattern([]string{"AU"})
		Eventually(canaryAnnotations(ns)).Should(HaveKeyWithValue(ingressnginx.AnnotationByHeaderPat, pattern))
		Eventually(conditionOf(ns, v1alpha1.ConditionReady)).Should(HavePrefix("True " + v1alpha1.ReasonApplied))

		p := getPolicy(ns, "api-gateway")
		before := p.DeepCopy()
		p.Spec.MissingRegion = v1alpha1.MissingRegionShed
		Expect(k8s.Patch(ctx, p, client.MergeFrom(before))).To(Succeed())
		Eventually(conditionOf(ns, v1alpha1.ConditionReady)).Should(And(
			HavePrefix("False "+v1alpha1.ReasonUnsupported+": phase Normal is applied to every object but: missingRegion: Shed cannot be honoured on ingress-nginx"),
			HaveSuffix("; the target keeps the lever in force as it was")))
		Consistently(canaryAnnotations(ns), "1s").Should(HaveKeyWithValue(ingressnginx.AnnotationByHeaderPat, pattern),
			"US traffic stays shed: the refused setting never lifts the allowlist")
	})

	It("names the other Ingresses a canary reaches through a shared upstream, and session affinity", func() {
		main := sampleIngress(ns)
		main.Annotations[ingressnginx.AnnotationAffinity] = "cookie"
		sibling := sampleIngress(ns)
		sibling.Name = "admin"
		sibling.Spec.Rules[0].Host = "admin.example.com"
		policy := samplePolicy(ns, v1alpha1.ActionShedAll)
		policy.Spec.AutoscalerRefs = nil
		create(main, sibling, policy)
		Eventually(phaseOf(ns, "api-gateway")).Should(Equal(v1alpha1.PhaseShedding))
		t := getPolicy(ns, "api-gateway").Status.Targets[0]
		Expect(t.SharedUpstreamIngresses).To(Equal([]string{"admin"}))
		Expect(strings.Join(t.Warnings, "\n")).To(And(ContainSubstring("session affinity"), ContainSubstring("sharedUpstreamIngresses")))
	})

	It("does not edit an HPA another controller owns", func() {
		hpa := sampleHPA(ns, nil)
		hpa.OwnerReferences = []metav1.OwnerReference{{APIVersion: "keda.sh/v1alpha1", Kind: "ScaledObject", Name: "api", UID: "1234", Controller: ptr.To(true)}}
		create(sampleIngress(ns), sampleDeployment(ns, 3), hpa, samplePolicy(ns, v1alpha1.ActionShedAll))
		Eventually(func() string {
			c := meta.FindStatusCondition(getPolicy(ns, "api-gateway").Status.Conditions, v1alpha1.ConditionDegraded)
			if c == nil {
				return ""
			}
			return c.Message
		}).Should(ContainSubstring("is controlled by ScaledObject api"))
		Expect(*getHPA(ns).Spec.MinReplicas).To(BeEquivalentTo(2))
	})
})

var _ = Describe("the finalizer", func() {
	It("is not removed while the restore cannot succeed", func() {
		ns := newNamespace()
		create(sampleIngress(ns), sampleDeployment(ns, 3), sampleHPA(ns, nil), samplePolicy(ns, v1alpha1.ActionRamp))
		Eventually(func() string { return getIngress(ns, "api-gateway").Annotations[limitRPS] }).Should(Equal("50"))

		By("the restore record is corrupted by hand")
		ing := getIngress(ns, "api-gateway")
		good := ing.Annotations[restore.Annotation]
		before := ing.DeepCopy()
		ing.Annotations[restore.Annotation] = "{not json"
		Expect(k8s.Patch(ctx, ing, client.MergeFrom(before))).To(Succeed())

		Expect(k8s.Delete(ctx, getPolicy(ns, "api-gateway"))).To(Succeed())
		Eventually(conditionOf(ns, v1alpha1.ConditionDegraded)).Should(HavePrefix("True " + v1alpha1.ReasonCorruptRecord))
		Consistently(func() []string { return getPolicy(ns, "api-gateway").Finalizers }, "300ms").Should(ContainElement(controllers.Finalizer))
		Expect(getPolicy(ns, "api-gateway").Status.Phase).To(Equal(v1alpha1.PhaseRestoring))

		By("once the record is mended, the restore succeeds and the policy goes")
		ing = getIngress(ns, "api-gateway")
		before = ing.DeepCopy()
		ing.Annotations[restore.Annotation] = good
		Expect(k8s.Patch(ctx, ing, client.MergeFrom(before))).To(Succeed())
		Eventually(func() error {
			return k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "api-gateway"}, &v1alpha1.TrafficPolicy{})
		}).Should(Satisfy(apierrors.IsNotFound))
		Expect(getIngress(ns, "api-gateway").Annotations[limitRPS]).To(Equal("1000"))
	})
})

var _ = Describe("the shed server", func() {
	It("answers with the status, Retry-After and name of the policy that shed it, and cannot be steered from another namespace", func() {
		ns := newNamespace()
		policy := samplePolicy(ns, v1alpha1.ActionShedAll)
		policy.Spec.AutoscalerRefs = nil
		policy.Spec.Shed = v1alpha1.ShedResponse{StatusCode: ptr.To[int32](429), RetryAfterSeconds: ptr.To[int32](90)}
		create(sampleIngress(ns), policy)

		ask := startShedServer(shed.RedirectHosts{"evil.example"})
		get := func() fixtures.ShedAnswer { return ask("api.example.com", "/v2/health") }
		Eventually(func() int { return get().Code }).Should(Equal(429))
		res := get()
		Expect(res.RetryAfter).To(Equal("90"))
		Expect(res.Body).To(ContainSubstring(`"policy":"` + ns + `/api-gateway"`))

		By("a forged Ingress in another namespace: the policy label, the old shed annotations, the same host")
		tenant := newNamespace()
		forged := ingressWithHost(tenant, "forged", "api.example.com")
		forged.Labels = map[string]string{"traffic.floodgate.dev/policy": "api-gateway"}
		forged.Annotations = map[string]string{"traffic.floodgate.dev/shed-policy": ns + "/api-gateway",
			"traffic.floodgate.dev/shed-redirect": "https://evil.example/login-again", "traffic.floodgate.dev/shed-status-code": "302"}
		create(forged)
		Consistently(get, "1s").Should(Equal(res), "an Ingress is not a policy: the answer does not change")

		By("a real policy in another namespace over that Ingress, asking for a redirect: the answer is the neutral default, and both policies are told")
		evil := samplePolicy(tenant, v1alpha1.ActionShedAll)
		evil.Name, evil.Spec.AutoscalerRefs = "forged", nil
		evil.Spec.TargetRefs = []v1alpha1.TargetRef{{Kind: v1alpha1.TargetKindIngress, Name: "forged"}}
		evil.Spec.Shed = v1alpha1.ShedResponse{RedirectURL: "https://evil.example/login-again"}
		create(evil)
		Eventually(get).Should(And(HaveField("Code", 503), HaveField("RetryAfter", "120"), HaveField("Where", "")))
		Expect(get().Body).NotTo(ContainSubstring(`"policy"`))
		conflict := "True Conflict: route api.example.com/ is also claimed by policy "
		Eventually(conditionOf(ns, v1alpha1.ConditionDegraded)).Should(HavePrefix(conflict + tenant + "/forged of another namespace"))
		Eventually(func() string {
			c := meta.FindStatusCondition(getPolicy(tenant, "forged").Status.Conditions, v1alpha1.ConditionDegraded)
			if c == nil {
				return ""
			}
			return string(c.Status) + " " + c.Reason + ": " + c.Message
		}).Should(ContainSubstring("route api.example.com/ is also claimed by policy " + ns + "/api-gateway of another namespace"))
	})
})

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
