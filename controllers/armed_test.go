package controllers_test

import (
	"context"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/internal/provider/ingressnginx"
	"floodgate.dev/floodgate/internal/shed"
)

// Armed: the API server, not Floodgate's own checks, judges every lever before the incident.
var _ = Describe("armed levers, judged by the API server at rest", func() {
	var ns string
	BeforeEach(func() { ns = newNamespace() })

	It("arms the sample policy: every lever accepted for its target and autoscaler, each marked armed", func() {
		create(sampleIngress(ns), sampleDeployment(ns, 4), sampleHPA(ns, nil), samplePolicy(ns, v1alpha1.ActionNormal))
		Eventually(conditionOfPolicy(ns, "api-gateway", v1alpha1.ConditionArmed)).Should(Equal("True " + v1alpha1.ReasonLeversAccepted +
			": the API server accepts, in a dry run, every lever (ShedAll, step 1, step 2, step 3, Normal) for 1 target and 1 autoscaler"))
		p := getPolicy(ns, "api-gateway")
		Expect(meta.FindStatusCondition(p.Status.Conditions, v1alpha1.ConditionArmed).ObservedGeneration).To(Equal(p.Generation))
		Expect(p.Status.Targets).To(ConsistOf(HaveField("Armed", Equal(ptr.To(true)))))
		Expect(p.Status.Autoscalers).To(ConsistOf(HaveField("Armed", Equal(ptr.To(true)))))
		By("nothing was persisted: the Ingress has no record, no canary or shed Service exists")
		Expect(getIngress(ns, "api-gateway").Annotations).NotTo(HaveKey(HavePrefix("traffic.floodgate.dev/")))
		Expect(getIngress(ns, canaryName)).To(BeNil())
	})

	It("says Armed False, with the API server's message, for a step an admission policy refuses, before the lever is pulled; the other levers still work", func() {
		// An input Floodgate's own checks cannot know about: the cluster's own admission policy
		// caps the per-client limit an Ingress may be given at 100 requests/s.
		create(sampleIngress(ns))
		capRate(ns)
		create(sampleDeployment(ns, 4), sampleHPA(ns, nil), samplePolicy(ns, v1alpha1.ActionNormal))
		Eventually(conditionOfPolicy(ns, "api-gateway", v1alpha1.ConditionArmed)).Should(And(
			HavePrefix("False "+v1alpha1.ReasonLeverRefused+": the API server refuses, in a dry run, step 2 on Ingress api-gateway: "),
			ContainSubstring("per-client limits above 100 requests/s are not allowed in this cluster")))
		p := getPolicy(ns, "api-gateway")
		Expect(p.Status.Targets).To(ConsistOf(HaveField("Armed", Equal(ptr.To(false)))))
		Expect(p.Status.Autoscalers).To(ConsistOf(HaveField("Armed", Equal(ptr.To(true)))))
		Expect(conditionOfPolicy(ns, "api-gateway", v1alpha1.ConditionStepUnsupported)()).To(HavePrefix("False "), "Floodgate's own checks see nothing wrong")
		Expect(getIngress(ns, "api-gateway").Annotations[limitRPS]).To(Equal("1000"), "nothing was written")

		By("the lever is still pulled: ShedAll sheds")
		setAction(ns, "api-gateway", v1alpha1.ActionShedAll)
		Eventually(canaryAnnotations(ns)).Should(HaveKeyWithValue(ingressnginx.AnnotationWeight, "100"))
	})

	It("arms and sheds a policy whose name is 70 characters (its label and Service names fit their limits)", func() {
		name := strings.Repeat("a", 60) + "-gateway.x"
		ing := sampleIngress(ns)
		policy := samplePolicy(ns, v1alpha1.ActionNormal)
		policy.Name, policy.Spec.AutoscalerRefs = name, nil
		create(ing, policy)
		Eventually(conditionOfPolicy(ns, name, v1alpha1.ConditionArmed)).Should(Equal("True " + v1alpha1.ReasonLeversAccepted +
			": the API server accepts, in a dry run, every lever (ShedAll, step 1, step 2, step 3, Normal) for 1 target and 0 autoscalers"))
		setAction(ns, name, v1alpha1.ActionShedAll)
		Eventually(phaseOf(ns, name)).Should(Equal(v1alpha1.PhaseShedding))
		Eventually(conditionOfPolicy(ns, name, v1alpha1.ConditionReady)).Should(HavePrefix("True "))
		svc := &corev1.Service{}
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: shed.CompanionServiceName(name)}, svc)).To(Succeed())
		Expect(len(svc.Name)).To(BeNumerically("<=", 63))
	})

	It("sheds both of two policies named a.b and a-b in one namespace: each has a shed Service of its own", func() {
		first, second := ingressWithHost(ns, "first", "first.example.com"), ingressWithHost(ns, "second", "second.example.com")
		for _, p := range []struct{ policy, target string }{{"a.b", "first"}, {"a-b", "second"}} {
			policy := samplePolicy(ns, v1alpha1.ActionShedAll)
			policy.Name, policy.Spec.AutoscalerRefs = p.policy, nil
			policy.Spec.TargetRefs = []v1alpha1.TargetRef{{Kind: v1alpha1.TargetKindIngress, Name: p.target}}
			create(policy)
		}
		create(first, second)
		for _, name := range []string{"a.b", "a-b"} {
			Eventually(conditionOfPolicy(ns, name, v1alpha1.ConditionReady)).Should(HavePrefix("True "), name)
			Eventually(phaseOf(ns, name)).Should(Equal(v1alpha1.PhaseShedding), name)
		}
		Expect(shed.CompanionServiceName("a.b")).NotTo(Equal(shed.CompanionServiceName("a-b")))
	})

	It("with a targetSelector that cannot be read at run time: the named target is still shed, status says why, and deleting the policy restores and lets it go", func() {
		ing := sampleIngress(ns)
		create(ing)
		before := viewOf(ing)
		policy := samplePolicy(ns, v1alpha1.ActionShedAll)
		policy.Spec.AutoscalerRefs = nil
		// A label value the CRD lets through and apimachinery refuses.
		policy.Spec.TargetSelector = &v1alpha1.TargetSelector{MatchLabels: map[string]string{"tier": "not a label value"}}
		create(policy)
		Eventually(canaryAnnotations(ns)).Should(HaveKeyWithValue(ingressnginx.AnnotationWeight, "100"))
		Eventually(phaseOf(ns, "api-gateway")).Should(Equal(v1alpha1.PhaseShedding))
		Eventually(conditionOf(ns, v1alpha1.ConditionDegraded)).Should(And(HavePrefix("True "+v1alpha1.ReasonUnsupported+": targetSelector selects nothing until it is fixed: "),
			HaveSuffix("; the named targets take the lever")))

		By("deleting the policy: the target gets its original back and the finalizer goes")
		Expect(k8s.Delete(ctx, getPolicy(ns, "api-gateway"))).To(Succeed())
		Eventually(func() error {
			return k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "api-gateway"}, &v1alpha1.TrafficPolicy{})
		}).Should(MatchError(ContainSubstring("not found")))
		Expect(viewOf(ing)).To(Equal(before))
		Expect(getIngress(ns, canaryName)).To(BeNil())
	})
})

// capRate installs, for the namespace, a ValidatingAdmissionPolicy (the API server's own CEL
// admission) that refuses an Ingress given a limit-rps annotation above 100 (one it already has
// may stay).
func capRate(ns string) {
	name := "cap-rate-" + ns
	vap := &admissionregistrationv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			FailurePolicy: ptr.To(admissionregistrationv1.Fail),
			MatchConstraints: &admissionregistrationv1.MatchResources{ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{
				RuleWithOperations: admissionregistrationv1.RuleWithOperations{
					Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
					Rule: admissionregistrationv1.Rule{APIGroups: []string{"networking.k8s.io"}, APIVersions: []string{"v1"},
						Resources: []string{"ingresses"}},
				}}}},
			Validations: []admissionregistrationv1.Validation{{
				Expression: "!has(object.metadata.annotations) || !('nginx.ingress.kubernetes.io/limit-rps' in object.metadata.annotations) || " +
					"int(object.metadata.annotations['nginx.ingress.kubernetes.io/limit-rps']) <= 100 || " +
					"(oldObject != null && has(oldObject.metadata.annotations) && 'nginx.ingress.kubernetes.io/limit-rps' in oldObject.metadata.annotations && " +
					"oldObject.metadata.annotations['nginx.ingress.kubernetes.io/limit-rps'] == object.metadata.annotations['nginx.ingress.kubernetes.io/limit-rps'])",
				Message: "per-client limits above 100 requests/s are not allowed in this cluster",
			}},
		},
	}
	binding := &admissionregistrationv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{
			PolicyName:        name,
			ValidationActions: []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny},
			MatchResources: &admissionregistrationv1.MatchResources{NamespaceSelector: &metav1.LabelSelector{
				MatchLabels: map[string]string{corev1.LabelMetadataName: ns}}},
		},
	}
	create(vap, binding)
	DeferCleanup(func() {
		Expect(client.IgnoreNotFound(k8s.Delete(context.Background(), binding))).To(Succeed())
		Expect(client.IgnoreNotFound(k8s.Delete(context.Background(), vap))).To(Succeed())
	})
	// The API server enforces a new policy once its informers have it: wait until it refuses.
	Eventually(func() error {
		probe := &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Name: "probe", Namespace: ns,
			Annotations: map[string]string{"nginx.ingress.kubernetes.io/limit-rps": "500"}},
			Spec: networkingv1.IngressSpec{DefaultBackend: ptr.To(backend("api", 80))}}
		return k8s.Create(context.Background(), probe, client.DryRunAll)
	}).Should(MatchError(ContainSubstring("not allowed in this cluster")))
}

func conditionOfPolicy(ns, name, t string) func() string {
	return func() string {
		c := meta.FindStatusCondition(getPolicy(ns, name).Status.Conditions, t)
		if c == nil {
			return ""
		}
		return string(c.Status) + " " + c.Reason + ": " + c.Message
	}
}
